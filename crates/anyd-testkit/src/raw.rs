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

/// A framed MessagePack request, to send or pipeline on a raw socket.
pub fn request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    codec::encode_request(Codec::MsgPack, endpoint, &args, &(), &mut out).unwrap();
    frame::finish(&mut out, mark);
    out
}

/// A framed MessagePack request that asks for a stream.
pub fn stream_request(endpoint: &str, args: impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mark = frame::begin(&mut out);
    codec::encode_stream_request(Codec::MsgPack, endpoint, &args, &(), &mut out).unwrap();
    frame::finish(&mut out, mark);
    out
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
