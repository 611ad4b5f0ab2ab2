//! Talking to a daemon below the client: raw Unix-socket connections,
//! hand-made frames, and daemons on fresh socket paths, for the tests that
//! check what the daemon does with bytes a real client would never send.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyd::wire::{codec, frame, message, Codec};
use anyd::{Address, Appd, Running};

/// How long a raw read waits before the test fails rather than hang.
pub const READ_PATIENCE: Duration = Duration::from_secs(20);

/// Sends `payload` as one frame on a fresh connection to the abstract
/// socket `name`, and returns the payload of the one frame that comes back
/// (the connection is closed after it).
pub fn call_abstract(name: &str, payload: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    let addr = SocketAddr::from_abstract_name(name).unwrap();
    let mut s = UnixStream::connect_addr(&addr).unwrap();
    s.set_read_timeout(Some(READ_PATIENCE)).unwrap();
    let mut framed = Vec::with_capacity(payload.len() + frame::HEADER_LEN);
    frame::encode(payload, &mut framed);
    s.write_all(&framed).unwrap();
    read_frame(&mut s).expect("the daemon closed the connection without a reply")
}

/// A daemon on a fresh socket path; the directory lives as long as the
/// returned guard.
pub fn start(appd: Appd) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let running = appd.bind(path.to_str().unwrap()).unwrap().spawn().unwrap();
    (running, dir)
}

/// A bare connection to a Unix-socket daemon, with a read timeout.
pub fn raw(address: &Address) -> UnixStream {
    let Address::Unix(path) = address else {
        panic!("{address}")
    };
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(READ_PATIENCE)).unwrap();
    s
}

/// A framed MessagePack request with `options`.
pub fn request_with(
    endpoint: &str,
    args: impl serde::Serialize,
    options: codec::RequestOptions,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    codec::encode_request_with(Codec::MsgPack, endpoint, &args, &(), &options, &mut out).unwrap();
    frame::finish(&mut out, mark);
    out
}

/// A framed MessagePack request, to send or pipeline on a raw socket.
pub fn request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    request_with(endpoint, args, codec::RequestOptions::NONE)
}

/// A framed MessagePack request that asks for a stream.
pub fn stream_request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    request_with(
        endpoint,
        args,
        codec::RequestOptions::NONE.with_stream(true),
    )
}

/// A framed MessagePack request that says it speaks descriptors
/// (docs/PROTOCOL.md section 8.2): its arguments may name them with
/// `{"$fd": n}` placeholders (a map serializes as one).
pub fn fd_request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    request_with(endpoint, args, codec::RequestOptions::NONE.with_fds(true))
}

/// The placeholder of descriptor `n` of a frame.
pub fn placeholder(n: usize) -> std::collections::BTreeMap<&'static str, usize> {
    [("$fd", n)].into()
}

/// Writes `bytes` with `fds` attached (however many: the kernel allows up
/// to 253), in one `sendmsg`, all of it.
pub fn send_with_fds(s: &UnixStream, bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::mem::MaybeUninit;
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    let sent = sendmsg(
        s,
        &[std::io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    let mut s: &UnixStream = s;
    std::io::Write::write_all(&mut s, &bytes[sent..]).unwrap();
}

/// `n` pipes: their read ends, to send, and their write ends, which tell
/// whether every copy of the read ends is closed ([`all_closed`]).
pub fn pipes(n: usize) -> (Vec<std::os::fd::OwnedFd>, Vec<std::os::fd::OwnedFd>) {
    (0..n).map(|_| rustix::pipe::pipe().unwrap()).unzip()
}

/// Whether every copy of the read ends of the pipes of `writers` is closed,
/// in every process: a write then fails with EPIPE (Rust programs ignore
/// SIGPIPE). Exact where counting descriptors would race with other
/// threads.
pub fn all_closed(writers: &[std::os::fd::OwnedFd]) -> bool {
    writers
        .iter()
        .all(|w| rustix::io::write(w, b"?") == Err(rustix::io::Errno::PIPE))
}

/// A framed MessagePack CANCEL.
pub fn cancel() -> Vec<u8> {
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    codec::encode_cancel(Codec::MsgPack, &mut out).unwrap();
    frame::finish(&mut out, mark);
    out
}

/// Decodes a MessagePack frame of a stream.
pub fn stream_reply<T: serde::de::DeserializeOwned>(payload: &[u8]) -> message::StreamReply<T> {
    codec::decode_stream_reply(Codec::MsgPack, payload, &Default::default()).unwrap()
}

/// Reads one frame's payload, or `None` when the stream ends.
pub fn read_frame(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).ok()?;
    let mut payload = vec![0; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut payload).ok()?;
    Some(payload)
}

/// Decodes a MessagePack reply payload.
pub fn reply<T: serde::de::DeserializeOwned>(payload: &[u8]) -> message::Reply<T> {
    codec::decode_reply(Codec::MsgPack, payload, &Default::default()).unwrap()
}

/// True once the daemon has closed `s` (EOF, or a reset).
pub fn closed_by_daemon(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
