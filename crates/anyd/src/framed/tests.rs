//! `write_out`: replies and items with descriptors, to a reader that
//! takes its time and to one that never reads.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::*;
use crate::transport::fds::{recv_with_fds, Arrival, OutFd};

/// A pipe's read end to send, and its write end: writing to it fails
/// with EPIPE once every copy of the read end is closed.
fn pipe() -> (OutFd, OwnedFd) {
    let (r, w) = rustix::pipe::pipe().unwrap();
    (OutFd::new(r), w)
}

fn closed(writer: &OwnedFd) -> bool {
    rustix::io::write(writer, b"?") == Err(rustix::io::Errno::PIPE)
}

/// `out`: a large run of bytes, a frame with one descriptor, another
/// large run, a frame with two, and a tail; each frame's range beside
/// its descriptors.
fn output(run: usize) -> (Vec<u8>, Attached, Vec<OwnedFd>) {
    let mut out = Vec::new();
    let mut attached = Attached::new();
    let mut writers = Vec::new();
    let mut frame = |out: &mut Vec<u8>, n: usize, attached: &mut Attached| {
        let start = out.len();
        out.extend(std::iter::repeat_n(b'f', 16));
        let (sent, kept): (Vec<_>, Vec<_>) = (0..n).map(|_| pipe()).unzip();
        writers.extend(kept);
        attached.push((start..out.len(), sent));
    };
    out.extend(std::iter::repeat_n(b'a', run));
    frame(&mut out, 1, &mut attached);
    out.extend(std::iter::repeat_n(b'b', run));
    frame(&mut out, 2, &mut attached);
    out.extend(std::iter::repeat_n(b't', 10));
    (out, attached, writers)
}

#[test]
fn frames_with_descriptors_go_out_whole_to_a_slow_reader_each_with_its_own() {
    // Runs larger than the socket's buffer: the writer waits for room,
    // the deadline's clock started.
    let (out, mut attached, writers) = output(1 << 20);
    let frames: Vec<_> = attached.iter().map(|(r, f)| (r.start, f.len())).collect();
    let (a, b) = UnixStream::pair().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut got, mut arrived) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, arrival) =
                recv_with_fds(b.as_fd(), &mut buf, rustix::net::RecvFlags::empty()).unwrap();
            if n == 0 {
                return (got, arrived);
            }
            match arrival {
                Arrival::Fds(fds) if fds.is_empty() => {}
                Arrival::Fds(fds) => arrived.push((got.len()..got.len() + n, fds)),
                Arrival::TooMany(n) => panic!("{n} descriptors at once"),
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    let mut stream = Stream::Unix(a);
    write_out(
        &mut stream,
        &out,
        &mut attached,
        Some(Duration::from_secs(30)),
    )
    .unwrap();
    assert!(attached.is_empty());
    drop(stream);
    let (got, arrived) = reader.join().unwrap();
    assert!(got == out, "the bytes, whole and in order");
    // Each frame's descriptors came with the read that brought its first
    // byte (the kernel may put bytes before it in the same read, never
    // after an earlier frame's descriptors), and only with it.
    assert_eq!(arrived.len(), frames.len());
    for ((read, fds), (start, n)) in arrived.iter().zip(&frames) {
        assert!(
            read.contains(start),
            "{read:?} brought the descriptors of {start}"
        );
        assert_eq!(fds.len(), *n);
    }
    // The writer let go of its shares: the reader's are the last.
    assert!(writers.iter().all(|w| !closed(w)));
    drop(arrived);
    assert!(writers.iter().all(closed));
}

#[test]
fn a_reader_that_never_reads_times_the_write_out_and_its_descriptors_are_let_go() {
    let (out, mut attached, writers) = output(1 << 20);
    let (a, _b) = UnixStream::pair().unwrap();
    let mut stream = Stream::Unix(a);
    let e = write_out(
        &mut stream,
        &out,
        &mut attached,
        Some(Duration::from_millis(50)),
    );
    assert_eq!(e.unwrap_err().kind(), io::ErrorKind::TimedOut);
    // Emptied however it ended: what never went out is closed.
    assert!(attached.is_empty());
    assert!(writers.iter().all(closed), "no descriptor left open");
}
