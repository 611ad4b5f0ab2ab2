//! `call --raw` on a descriptor that never ends: a pipe or a socket whose
//! other end the daemon keeps open is read within `--timeout`, what came
//! is printed, and the exit status is the timeout's (6).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyd::{Appd, Fd, Items};

use super::{anydctl, start, Run};

/// What the daemon has written before it stops writing, without closing.
const BEFORE: &str = "before\n";

/// A daemon that hands out descriptors it keeps the other end of, open,
/// for as long as it runs: the read end of a pipe (`pipe()`), one end of
/// a socket pair (`socket()`), and pipes as a stream's items (`pipes()`).
fn holding() -> Appd {
    // The ends the daemon keeps (closed with it), so that what it handed
    // out never ends.
    let kept: Arc<Mutex<Vec<OwnedFd>>> = Arc::default();
    let pipe = {
        let kept = Arc::clone(&kept);
        move || -> std::io::Result<Fd> {
            let (r, w) = rustix::pipe::pipe()?;
            rustix::io::write(&w, BEFORE.as_bytes())?;
            kept.lock().unwrap().push(w);
            Ok(r.into())
        }
    };
    let pipes = pipe.clone();
    Appd::new()
        .api("pipe()", pipe)
        .api("socket()", move || -> std::io::Result<Fd> {
            let (mine, theirs) = UnixStream::pair()?;
            std::io::Write::write_all(&mut &mine, BEFORE.as_bytes())?;
            kept.lock().unwrap().push(mine.into());
            Ok(theirs.into())
        })
        .api("pipes()", move || Items::ready([pipes().unwrap()]))
}

/// Runs anydctl; how long it took too.
fn timed(args: &[&str]) -> (Run, Duration) {
    let start = Instant::now();
    let run = anydctl(args);
    (run, start.elapsed())
}

#[test]
fn raw_reads_a_descriptor_that_never_ends_within_the_timeout() {
    let (_d, addr, _dir) = start(holding());
    let within = Duration::from_secs(1);
    for endpoint in ["pipe", "socket", "pipes"] {
        let (run, took) = timed(&["call", "--raw", "--timeout", "1s", &addr, endpoint]);
        assert_eq!((run.code, run.stdout.as_str()), (6, BEFORE), "{run:#?}");
        assert!(
            run.stderr
                .starts_with("anydctl: timed out reading through the descriptor"),
            "{run:#?}"
        );
        // Not before the deadline, and not much after it: the reading
        // ended at it, and nothing else waited (the bound is loose for a
        // loaded machine, and far below the daemon's keeping it open).
        assert!(took >= within, "{endpoint}: {took:?}");
        assert!(took < within * 15, "{endpoint}: {took:?}");
        eprintln!("{endpoint}: anydctl --timeout 1s ended after {took:?}");
    }
    // Without --raw, the same descriptor is only described.
    let (run, _) = timed(&["call", "--timeout", "1s", &addr, "pipe"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("\"kind\":\"pipe\""), "{run:#?}");
}
