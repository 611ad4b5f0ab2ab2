//! Descriptor passing end to end (docs/PROTOCOL.md section 8.2): `Fd`s as
//! arguments and results, alone and inside structs, through both clients,
//! both native codecs and the typed clients; the clear errors where they
//! cannot travel; and what the daemon does with descriptors it must not
//! keep. Leaks against a daemon in its own process are in `process` below.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use anyd::{Appd, AsyncClientSession, ClientOptions, ClientSession, Codec, Error, Fd, Running};
use anyd_testkit::raw::start;
use serde::{Deserialize, Serialize};

const PATIENCE: Duration = Duration::from_secs(20);

/// A pipe opened by the daemon, as a struct holding two descriptors.
#[derive(Serialize, Deserialize)]
struct Pipe {
    label: String,
    read: Fd,
    write: Fd,
}

fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_ino
}

fn daemon() -> Appd {
    Appd::new()
        .api("open(path)", |path: String| -> std::io::Result<Fd> {
            Ok(File::open(path)?.into())
        })
        .api("pipe(label)", |label: String| -> std::io::Result<Pipe> {
            let (r, w) = rustix::pipe::pipe()?;
            Ok(Pipe {
                label,
                read: r.into(),
                write: w.into(),
            })
        })
        .api("read_all(fd)", |fd: Fd| -> std::io::Result<String> {
            let mut text = String::new();
            let mut file = File::from(fd);
            file.rewind()?;
            file.read_to_string(&mut text)?;
            Ok(text)
        })
        .api("inode(fd, also)", |fd: Fd, also: Option<Fd>| {
            (inode(&fd), also.map(inode))
        })
        .api("same(fd)", |fd: Fd| fd)
        .api("echo(n)", |n: u64| n)
}

fn session(d: &Running, codec: Codec) -> ClientSession {
    ClientOptions::new()
        .codec(codec)
        .timeout(Some(PATIENCE))
        .connect(d.address())
        .unwrap()
}

fn temp_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn descriptors_travel_both_ways_in_both_codecs() {
    let (d, _dir) = start(daemon());
    let (_files, path) = temp_file("hello from the daemon");
    for codec in [Codec::MsgPack, Codec::Json] {
        let mut s = session(&d, codec);
        // A result: the daemon opens, the caller reads.
        let fd: Fd = s.commit("open", (path.to_str().unwrap(),)).unwrap();
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello from the daemon", "{codec:?}");
        // An argument: the caller opens, the daemon reads.
        let mut mine = tempfile::tempfile().unwrap();
        mine.write_all(b"hello from the caller").unwrap();
        let read: String = s.commit("read_all", (Fd::from(mine),)).unwrap();
        assert_eq!(read, "hello from the caller");
        // Inside a struct, two at once: a pipe that works across.
        let pipe: Pipe = s.commit("pipe", ("p",)).unwrap();
        assert_eq!(pipe.label, "p");
        File::from(pipe.write).write_all(b"through").unwrap();
        let mut got = String::new();
        File::from(pipe.read).read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
        // Both ways in one call, and an optional one.
        let (r, w) = rustix::pipe::pipe().unwrap();
        let (ri, wi) = (inode(&r), inode(&w));
        let got: (u64, Option<u64>) = s.commit("inode", (Fd::from(r), Some(Fd::from(w)))).unwrap();
        assert_eq!(got, (ri, Some(wi)));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let ri = inode(&r);
        let back: Fd = s.commit("same", (Fd::from(r),)).unwrap();
        assert_eq!(inode(&back), ri);
        // And plain calls on the same session.
        assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
    }
}

#[test]
fn descriptors_travel_through_the_async_client() {
    let (d, _dir) = start(daemon());
    let (_files, path) = temp_file("async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = AsyncClientSession::connect(d.address()).await.unwrap();
        let fd: Fd = s.commit("open", (path.to_str().unwrap(),)).await.unwrap();
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text).unwrap();
        assert_eq!(text, "async");
        let mut mine = tempfile::tempfile().unwrap();
        mine.write_all(b"from async").unwrap();
        let read: String = s.commit("read_all", (Fd::from(mine),)).await.unwrap();
        assert_eq!(read, "from async");
        let pipe: Pipe = s.commit("pipe", ("q",)).await.unwrap();
        File::from(pipe.write).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        File::from(pipe.read).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        s.end_session().await.unwrap();
    });
}

#[test]
fn received_descriptors_are_close_on_exec() {
    let (d, _dir) = start(daemon());
    let mut s = session(&d, Codec::MsgPack);
    let pipe: Pipe = s.commit("pipe", ("c",)).unwrap();
    for fd in [&pipe.read, &pipe.write] {
        let flags = rustix::io::fcntl_getfd(fd).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
    }
}

fn remote_kind(e: &Error) -> (&str, &str) {
    match e {
        Error::Remote(r) => (&r.kind, &r.message),
        other => panic!("expected an error reply, got {other}"),
    }
}

#[test]
fn where_descriptors_cannot_travel_the_error_says_so() {
    let (d, _dir) = start(daemon());
    let (_files, path) = temp_file("x");
    // A client that does not speak descriptors asks for one.
    let mut s = ClientOptions::new()
        .descriptors(false)
        .connect(d.address())
        .unwrap();
    let e = s
        .commit::<Fd>("open", (path.to_str().unwrap(),))
        .unwrap_err();
    let (kind, message) = remote_kind(&e);
    assert_eq!(kind, "RuntimeError");
    assert!(message.contains("asked for descriptors"), "{message}");
    // ... or passes one: refused here, before anything is sent.
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let e = s.commit::<String>("read_all", (Fd::from(r),)).unwrap_err();
    assert!(matches!(e, Error::Encode(_)), "{e}");
    assert!(e.to_string().contains("Unix socket"), "{e}");
    // The session goes on.
    assert_eq!(s.commit::<u64>("echo", (1,)).unwrap(), 1);
}
