//! Hostile input against a live daemon: each attack gets a clear refusal,
//! runs no code, costs no memory, and leaves other clients served. The
//! same limits met by ordinary clients are in `serving`.

use anyd_testkit::raw;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyd::wire::{codec, frame, message, Codec};
use anyd::{Appd, ClientOptions, ClientSession, Digest, Error};
use raw::{raw, start};

const PATIENCE: Duration = Duration::from_secs(20);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Reads until the daemon closes the stream; returns what it sent.
fn until_closed(s: &mut UnixStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("the daemon did not close the connection: {e}"),
        }
    }
}

#[test]
fn absurd_length_headers_are_refused_before_any_allocation() {
    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a));
    let before = rss_kib();
    for header in [
        // 2^31 - 1
        vec![0x7f, 0xff, 0xff, 0xff],
        // -1 and then 2^63 - 1
        vec![
            0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        // -1 and then 2^63 (negative as a signed length)
        vec![0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
        // -2: no length at all, as signed or unsigned
        vec![0xff, 0xff, 0xff, 0xfe],
    ] {
        for _ in 0..20 {
            let mut s = raw(d.address());
            s.write_all(&header).unwrap();
            assert!(until_closed(&mut s).is_empty());
        }
    }
    // Sixty claims of gigabytes later, the process has not grown by even
    // one of them.
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<u32>("echo", (9,)).unwrap(), 9);
}

#[test]
fn malicious_pickles_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let (d, _sock_dir) = start(Appd::new().api("echo(a)", |a: anyd::Value| a));
    let cmd = format!("touch {}", marker.display());
    let python = |src: &str| {
        let out = std::process::Command::new("python3")
            .args(["-c", src])
            .output()
            .expect("python3 must be on PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // Each payload would create the marker if a pickle were executed.
    let payloads: Vec<Vec<u8>> = vec![
        // REDUCE of os.system, at every protocol.
        python(&format!(
            "import os, pickle, sys\n\
             class P:\n    def __reduce__(self): return (os.system, ({cmd:?},))\n\
             sys.stdout.buffer.write(pickle.dumps(('echo', (P(),), {{}}), protocol=4))"
        )),
        python(&format!(
            "import subprocess, pickle, sys\n\
             class P:\n    def __reduce__(self): return (subprocess.Popen, ({cmd:?},), None)\n\
             sys.stdout.buffer.write(pickle.dumps(('echo', (P(),), {{}}), protocol=2))"
        )),
        python(&format!(
            "import builtins, pickle, sys\n\
             class P:\n    def __reduce__(self): return (builtins.eval, (\"__import__('os').system('{cmd}')\",))\n\
             sys.stdout.buffer.write(pickle.dumps(('echo', (P(),), {{}}), protocol=3))"
        )),
        // INST and OBJ, by hand (behind a protocol 2 header, so that the
        // daemon detects pickle and answers instead of closing).
        format!("\u{80}\u{2}(S'{cmd}'\nios\nsystem\n.")
            .chars()
            .map(|c| c as u8)
            .collect(),
        format!("\u{80}\u{2}(cos\nsystem\nS'{cmd}'\no.")
            .chars()
            .map(|c| c as u8)
            .collect(),
        // BUILD on an object.
        b"\x80\x04}Nb.".to_vec(),
    ];
    for p in &payloads {
        let mut s = raw(d.address());
        let mut f = Vec::new();
        frame::encode(p, &mut f);
        s.write_all(&f).unwrap();
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let mut reply = vec![0; u32::from_be_bytes(header) as usize];
        s.read_exact(&mut reply).unwrap();
        // A pickle error reply (a Python client would raise it).
        let decoded: anyd::wire::message::Reply<anyd::Value> =
            anyd::wire::codec::decode_reply(anyd::Codec::Pickle, &reply, &Default::default())
                .unwrap();
        match decoded {
            anyd::wire::message::Reply::Err(e) => {
                assert_eq!(e.kind, "ValueError", "{e}");
                assert!(e.message.contains("pickle"), "{e}");
            }
            other => panic!("a malicious pickle was answered with {other:?}"),
        }
    }
    assert!(!marker.exists(), "a pickle ran code");
}

#[test]
fn a_silent_or_trickling_client_is_cut_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let (d, _dir) = start(Appd::new().authkey("k").handshake_timeout(timeout));
    // Silent: the challenge comes first; then nothing from us until the
    // daemon gives up.
    let mut s = raw(d.address());
    let challenge = raw::read_frame(&mut s).unwrap();
    assert!(challenge.starts_with(b"#CHALLENGE#"));
    let t = Instant::now();
    assert!(raw::closed_by_daemon(&mut s));
    assert!(t.elapsed() < PATIENCE);
    // Trickling.
    let mut s = raw(d.address());
    let mut header = [0u8; 4];
    s.read_exact(&mut header).unwrap();
    let mut challenge = vec![0; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut challenge).unwrap();
    // Trickle a plausible reply a byte at a time, four bytes per timeout:
    // each byte would reset a per-read timeout, and the whole frame would
    // take ten timeouts to arrive. The daemon must hang up while it is
    // still coming.
    let mut reply = vec![0u8, 0, 0, 36];
    reply.extend(1..=36u8);
    let mut cut = false;
    for b in reply {
        std::thread::sleep(timeout / 4);
        if s.write_all(&[b]).is_err() {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "the daemon read a trickled handshake frame to its end instead of cutting it at the timeout"
    );
    // Others go on.
    let mut ok = anyd::ClientOptions::new()
        .authkey("k")
        .connect(d.address())
        .unwrap();
    assert!(ok.commit::<bool>("anyd.ping", ()).unwrap());
}

#[test]
fn an_idle_session_or_a_request_trickled_slower_than_the_idle_timeout_is_cut() {
    let timeout = Duration::from_millis(300);
    let (d, _dir) = start(
        Appd::new()
            .api("echo(a)", |a: String| a)
            .idle_timeout(Some(timeout)),
    );
    // Idle after a reply: closed.
    let mut s = raw(d.address());
    s.write_all(&raw::request("echo", ("3",))).unwrap();
    assert!(matches!(
        raw::reply::<String>(&raw::read_frame(&mut s).unwrap()),
        message::Reply::Ok(v) if v == "3"
    ));
    assert!(raw::closed_by_daemon(&mut s));
    // Trickling.
    let mut s = raw(d.address());
    // A request of 40 bytes, four bytes per timeout: each byte would
    // reset a per-read timeout, and the whole would take ten timeouts.
    let request = raw::request("echo", ("x".repeat(30),));
    assert!(request.len() >= 40, "{}", request.len());
    let mut cut = false;
    for b in &request[..40] {
        std::thread::sleep(timeout / 4);
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "the daemon read a trickled request past its idle timeout"
    );
    // Others go on.
    let mut ok = ClientSession::connect(d.address()).unwrap();
    assert_eq!(ok.commit::<String>("echo", ("y",)).unwrap(), "y");
}

/// Bytes written on `s` that the daemon has not read yet: on a Unix
/// stream socket the sender is charged for what it wrote until the
/// receiver reads it.
#[allow(unsafe_code)]
fn unread_by_daemon(s: &UnixStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) stores one int through the pointer,
    // which points at a live int.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(r, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    n
}

/// Writes `bytes` and waits until the daemon has read them.
fn write_and_wait_read(s: &mut UnixStream, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while unread_by_daemon(s) > 0 {
        assert!(Instant::now() < deadline, "the daemon never read the bytes");
        std::thread::yield_now();
    }
}

#[test]
fn headers_claiming_the_limit_cost_the_daemon_no_memory_until_the_bytes_come() {
    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a));
    let before = rss_kib();
    // Forty connections each announce a frame just under the 16 MiB limit
    // and send one byte of it. Sized by the claim, their buffers would
    // take 640 MiB.
    let claim = (frame::DEFAULT_MAX_FRAME as u32 - 1).to_be_bytes();
    let held: Vec<UnixStream> = (0..40)
        .map(|_| {
            let mut s = raw(d.address());
            write_and_wait_read(&mut s, &claim);
            // Read after the buffer was made room in: the header was
            // decoded, and its claim acted on, before this read.
            write_and_wait_read(&mut s, &[0x93]);
            s
        })
        .collect();
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB for {} headers",
        held.len()
    );
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<u32>("echo", (7,)).unwrap(), 7);
}

#[test]
fn size_and_depth_bombs_in_every_codec_get_error_replies_and_the_session_goes_on() {
    // A dynamic parameter: the whole argument is decoded, however deep.
    let (d, _dir) = start(
        Appd::new()
            .api("echo(a)", |a: u32| a)
            .api("take(a)", |_a: anyd::Value| "taken"),
    );
    let before = rss_kib();
    let deep = 100_000;
    let mut json_depth = b"[\"take\", [".to_vec();
    json_depth.extend(std::iter::repeat_n(b'[', deep));
    json_depth.extend(std::iter::repeat_n(b']', deep));
    json_depth.extend_from_slice(b"], {}]");
    let mut msgpack_depth = vec![0x93, 0xa4, b't', b'a', b'k', b'e', 0x91];
    msgpack_depth.extend(std::iter::repeat_n(0x91, deep));
    // The innermost array, then the kwargs.
    msgpack_depth.extend([0x90, 0x80]);
    // ("take", ([x] * 990,), {}) with x a list of 1000 ints: 5 KB that
    // would decode to a million values.
    let mut pickle_memo = vec![0x80, 0x04, 0x8c, 4, b't', b'a', b'k', b'e'];
    pickle_memo.extend_from_slice(&[b']', 0x94, b'(']);
    for _ in 0..1000 {
        pickle_memo.extend_from_slice(&[b'K', 1]);
    }
    pickle_memo.extend_from_slice(b"e0](");
    for _ in 0..990 {
        pickle_memo.extend_from_slice(&[b'h', 0]);
    }
    pickle_memo.extend_from_slice(&[b'e', 0x85, b'}', 0x87, b'.']);
    // Named first, as every Python client writes a request: a pickle in
    // another shape is refused before it is decoded.
    let mut pickle_depth = vec![0x80, 0x04, 0x8c, 4, b't', b'a', b'k', b'e'];
    pickle_depth.extend(std::iter::repeat_n(b'(', deep));
    // Each bomb, and the error that answers it: the request's own decoder
    // refuses claims and pickle nesting before anything is allocated for
    // them; nesting in a native codec's argument meets the depth limit of
    // the parameter's deserializer.
    let bombs: [(&str, Vec<u8>, &str, &str); 8] = [
        (
            // args: an array32 claiming 2^32 - 1 elements
            "msgpack array32",
            vec![
                0x93, 0xa4, b'e', b'c', b'h', b'o', 0xdd, 0xff, 0xff, 0xff, 0xff,
            ],
            "ValueError",
            "truncated MessagePack value",
        ),
        (
            // args: one str32 claiming 4 GiB
            "msgpack str32",
            vec![
                0x93, 0xa4, b'e', b'c', b'h', b'o', 0x91, 0xdb, 0xff, 0xff, 0xff, 0xff,
            ],
            "ValueError",
            "truncated MessagePack value",
        ),
        (
            "msgpack depth",
            msgpack_depth,
            "TypeError",
            "nests too deeply",
        ),
        ("json depth", json_depth, "TypeError", "nests too deeply"),
        // LONG4 claiming 2^31 - 1 bytes
        (
            "pickle LONG4",
            vec![0x80, 0x04, 0x8b, 0xff, 0xff, 0xff, 0x7f],
            "ValueError",
            "truncated pickle",
        ),
        // BINBYTES8 claiming 2^62 bytes
        (
            "pickle BINBYTES8",
            vec![0x80, 0x04, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40],
            "ValueError",
            "truncated pickle",
        ),
        (
            "pickle depth",
            pickle_depth,
            "ValueError",
            "nesting deeper than 128",
        ),
        (
            "pickle memo expansion",
            pickle_memo,
            "ValueError",
            "too many values",
        ),
    ];
    let mut s = raw(d.address());
    for (name, bomb, kind, says) in bombs {
        let mut framed = Vec::new();
        frame::encode(&bomb, &mut framed);
        s.write_all(&framed).unwrap();
        let payload =
            raw::read_frame(&mut s).unwrap_or_else(|| panic!("{name}: connection closed"));
        let codec = codec::detect(&bomb).unwrap();
        let reply: message::Reply<anyd::Value> =
            codec::decode_reply(codec, &payload, &Default::default())
                .unwrap_or_else(|e| panic!("{name}: unreadable reply: {e}"));
        match reply {
            message::Reply::Err(e) => {
                assert_eq!(e.kind, kind, "{name}: {e:?}");
                assert!(e.message.contains(says), "{name}: {e:?}");
            }
            other => panic!("{name}: not an error reply: {other:?}"),
        }
        // The same session still answers.
        s.write_all(&raw::request("echo", (5,))).unwrap();
        let payload = raw::read_frame(&mut s).expect("a reply after the bomb");
        assert!(
            matches!(raw::reply::<u32>(&payload), message::Reply::Ok(5)),
            "{name}"
        );
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

#[test]
fn an_idle_flood_hits_the_cap_while_established_clients_are_served() {
    let (d, _dir) = start(Appd::new().api("echo(a)", |a: u32| a).max_connections(50));
    let mut established = ClientSession::connect(d.address()).unwrap();
    assert_eq!(established.commit::<u32>("echo", (1,)).unwrap(), 1);
    // Connections are accepted in the order they were made, so the first
    // 49 of the flood fill the cap and every later one is refused.
    let mut flood: Vec<UnixStream> = (0..200).map(|_| raw(d.address())).collect();
    for (i, s) in flood.iter_mut().enumerate().skip(49) {
        assert!(until_closed(s).is_empty(), "connection {i} was not refused");
    }
    for i in 0..100 {
        assert_eq!(established.commit::<u32>("echo", (i,)).unwrap(), i);
    }
    // Places freed are available again.
    drop(flood);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut s = ClientSession::connect(d.address()).unwrap();
        match s.commit::<u32>("echo", (4,)) {
            Ok(v) => {
                assert_eq!(v, 4);
                break;
            }
            // The daemon may not have seen the flood go yet.
            Err(_) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// An endpoint that records that it ran.
fn tripwire() -> (Appd, Arc<AtomicBool>) {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let appd = Appd::new().api("touch(a)", move |_a: String| {
        flag.store(true, Ordering::SeqCst);
        "touched"
    });
    (appd, ran)
}

/// Splits what a daemon sent into frame payloads; a torn last frame is
/// returned as is, to show in an assertion.
fn frames_of(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = frame::decode(bytes, frame::DEFAULT_MAX_FRAME) {
        out.push(bytes[f.payload].to_vec());
        bytes = &bytes[f.consumed..];
    }
    if !bytes.is_empty() {
        out.push(bytes.to_vec());
    }
    out
}

#[test]
fn requests_sent_instead_of_the_handshake_are_never_decoded() {
    let (appd, ran) = tripwire();
    let (d, _dir) = start(appd.authkey("k"));
    let request = |codec: Codec, arg: &str| {
        let mut out = Vec::new();
        let mark = frame::begin(&mut out);
        codec::encode_request(codec, "touch", &(arg,), &(), &mut out).unwrap();
        frame::finish(&mut out, mark);
        out
    };
    let mut attempts = Vec::new();
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        // One request; several pipelined; one over the handshake's frame
        // limit.
        attempts.push(request(codec, "x"));
        attempts.push(request(codec, "x").repeat(10));
        attempts.push(request(codec, &"x".repeat(1000)));
    }
    for (i, attempt) in attempts.iter().enumerate() {
        // Sent at once, before the challenge is even read.
        let mut s = raw(d.address());
        s.write_all(attempt).unwrap();
        let frames = frames_of(&until_closed(&mut s));
        // The challenge, and at most the verdict on what was taken for a
        // reply to it: never a reply to a request.
        assert!(
            frames
                .first()
                .is_some_and(|f| f.starts_with(b"#CHALLENGE#")),
            "attempt {i}: {frames:?}"
        );
        assert!(
            frames[1..].iter().all(|f| f == b"#FAILURE#") && frames.len() <= 2,
            "attempt {i}: {frames:?}"
        );
    }
    // Sent after the challenge was read: a malformed reply to it.
    let mut s = raw(d.address());
    let _ = raw::read_frame(&mut s).unwrap();
    s.write_all(&raw::request("touch", ("x",))).unwrap();
    assert_eq!(
        frames_of(&until_closed(&mut s)),
        vec![b"#FAILURE#".to_vec()]
    );
    assert!(
        !ran.load(Ordering::SeqCst),
        "a request ran before the handshake"
    );
    // The tripwire works: after a handshake, the same call runs it.
    let mut s = ClientOptions::new()
        .authkey("k")
        .connect(d.address())
        .unwrap();
    assert_eq!(s.commit::<String>("touch", ("x",)).unwrap(), "touched");
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn wrong_keys_always_fail() {
    const KEY: &[u8] = b"sesame";
    let mut flipped = KEY.to_vec();
    flipped[KEY.len() - 1] ^= 1;
    let wrong: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"sesam".to_vec(),
        b"sesame!".to_vec(),
        b"Sesame".to_vec(),
        b"\0sesame".to_vec(),
        flipped,
        b"emases".to_vec(),
        KEY.repeat(1000),
    ];
    for digest in Digest::ALL {
        let (appd, ran) = tripwire();
        let (d, _dir) = start(appd.authkey(KEY).digest(digest));
        for key in &wrong {
            for _ in 0..10 {
                match ClientOptions::new()
                    .authkey(key.clone())
                    .connect(d.address())
                {
                    Err(Error::Auth(_)) => {}
                    Err(e) => panic!("{digest:?}, key {key:?}: {e}"),
                    Ok(_) => panic!("{digest:?}: key {key:?} was let in"),
                }
            }
        }
        // Guesses at the MAC on a raw socket, in the shape the daemon
        // asked for and in the legacy shape (16 raw bytes).
        for guess in 0..50u8 {
            let mut s = raw(d.address());
            let mut header = [0u8; 4];
            s.read_exact(&mut header).unwrap();
            let mut challenge = vec![0; u32::from_be_bytes(header) as usize];
            s.read_exact(&mut challenge).unwrap();
            let mac: Vec<u8> = (0..digest.output_len())
                .map(|i| guess.wrapping_mul(31).wrapping_add(i as u8))
                .collect();
            let reply = if guess % 2 == 0 {
                [format!("{{{}}}", digest.name()).as_bytes(), &mac].concat()
            } else {
                mac[..16].to_vec()
            };
            let mut f = Vec::new();
            frame::encode(&reply, &mut f);
            s.write_all(&f).unwrap();
            assert_eq!(
                frames_of(&until_closed(&mut s)),
                vec![b"#FAILURE#".to_vec()],
                "{digest:?}, guess {guess}"
            );
        }
        assert!(
            !ran.load(Ordering::SeqCst),
            "{digest:?}: a wrong key got a call in"
        );
        // Not a wrong key: HMAC pads keys with zero bytes to its block size,
        // so trailing zeros do not change one, here as in Python.
        let padded = [KEY, b"\0"].concat();
        assert!(ClientOptions::new()
            .authkey(padded)
            .connect(d.address())
            .is_ok());
        // The right key still gets in, and its call runs.
        let mut s = ClientOptions::new()
            .authkey(KEY)
            .connect(d.address())
            .unwrap();
        assert_eq!(s.commit::<String>("touch", ("x",)).unwrap(), "touched");
        assert!(ran.load(Ordering::SeqCst));
    }
}
