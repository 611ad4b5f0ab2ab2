//! Descriptor passing end to end (docs/PROTOCOL.md section 8.2): `Fd`s as
//! arguments and results, alone and inside structs, through both clients,
//! both native codecs and the typed clients; the clear errors where they
//! cannot travel; and what the daemon does with descriptors it must not
//! keep. Leaks against a daemon in its own process are in `process` below.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use anyd::wire::message::Reply;
use anyd::{Appd, AsyncClientSession, ClientOptions, ClientSession, Codec, Error, Fd, Running};
use anyd_testkit::raw::{self, start};
use serde::de::IgnoredAny;
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
    let rt = runtime();
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

/// A client asks for descriptors only where its result may hold one (or
/// its arguments carry some): a call whose result type cannot take the
/// daemon's descriptor is told so by the daemon, which was not asked,
/// rather than sent a descriptor the client has no room for.
#[test]
fn descriptors_are_asked_for_only_where_the_result_may_hold_one() {
    let (d, _dir) = start(daemon());
    let (_files, path) = temp_file("asked");
    let path = path.to_str().unwrap();
    let not_asked = |e: Error| {
        let (kind, message) = remote_kind(&e);
        assert_eq!(kind, "RuntimeError", "{e}");
        assert!(message.contains("asked for descriptors"), "{message}");
    };
    let mut s = session(&d, Codec::MsgPack);
    // A `String` cannot hold one: not asked.
    not_asked(s.commit::<String>("open", (path,)).unwrap_err());
    // An `Fd`, an `Option<Fd>`, a struct with one: asked, and taken.
    let fd: Fd = s.commit("open", (path,)).unwrap();
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text).unwrap();
    assert_eq!(text, "asked");
    assert!(s.commit::<Option<Fd>>("open", (path,)).unwrap().is_some());
    let pipe: Pipe = s.commit("pipe", ("p",)).unwrap();
    assert_eq!(pipe.label, "p");
    // A `Value` may hold anything: asked, and the descriptor (taken by
    // nothing) closed.
    let v: anyd::Value = s.commit("open", (path,)).unwrap();
    assert!(matches!(v, anyd::Value::Map(_)), "{v:?}");
    // A result that cannot hold one, with arguments that carry one: the
    // request says it carries descriptors, and they go.
    let mut mine = tempfile::tempfile().unwrap();
    mine.write_all(b"mine").unwrap();
    assert_eq!(
        s.commit::<String>("read_all", (Fd::from(mine),)).unwrap(),
        "mine"
    );
    // The session went on through all of it; the async client alike.
    assert_eq!(s.commit::<u64>("echo", (2,)).unwrap(), 2);
    runtime().block_on(async {
        let mut s = AsyncClientSession::connect(d.address()).await.unwrap();
        not_asked(s.commit::<String>("open", (path,)).await.unwrap_err());
        let fd: Fd = s.commit("open", (path,)).await.unwrap();
        drop(fd);
        assert_eq!(s.commit::<u64>("echo", (3,)).await.unwrap(), 3);
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

/// A runtime for the async client.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The error reply a raw MessagePack payload holds.
fn error_reply(payload: &[u8]) -> anyd::RemoteError {
    match raw::reply::<IgnoredAny>(payload) {
        Reply::Err(e) => e,
        other => panic!("expected an error reply, got {other:?}"),
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

#[test]
fn over_tcp_and_in_pickle_descriptors_are_a_clear_error() {
    let (_files, path) = temp_file("x");
    let path = path.to_str().unwrap();
    let d = daemon()
        .authkey("k")
        .bind("tcp:127.0.0.1:0")
        .unwrap()
        .spawn()
        .unwrap();
    let mut s = ClientOptions::new()
        .authkey("k")
        .connect(d.address())
        .unwrap();
    let e = s.commit::<Fd>("open", (path,)).unwrap_err();
    let (kind, message) = remote_kind(&e);
    assert_eq!(kind, "RuntimeError");
    assert!(message.contains("only over a Unix socket"), "{message}");
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let e = s.commit::<String>("read_all", (Fd::from(r),)).unwrap_err();
    assert!(e.to_string().contains("Unix socket"), "{e}");
    assert_eq!(s.commit::<u64>("echo", (2,)).unwrap(), 2);
    // Pickle, on a Unix socket.
    let (d, _dir) = start(daemon());
    let mut s = ClientOptions::new()
        .codec(Codec::Pickle)
        .connect(d.address())
        .unwrap();
    let e = s.commit::<Fd>("open", (path,)).unwrap_err();
    let (_, message) = remote_kind(&e);
    assert!(message.contains("MessagePack or JSON"), "{message}");
    assert_eq!(s.commit::<u64>("echo", (3,)).unwrap(), 3);
}

/// A raw connection to `d`, and a request sent on it with `fds` attached.
fn send_raw(
    d: &Running,
    frame: &[u8],
    fds: &[std::os::fd::OwnedFd],
) -> std::os::unix::net::UnixStream {
    let s = raw::raw(d.address());
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    raw::send_with_fds(&s, frame, &borrowed);
    s
}

#[test]
fn descriptors_no_parameter_takes_are_closed_at_once() {
    let (d, _dir) = start(daemon());
    // An endpoint with no descriptor parameter, sent two.
    let (readers, writers) = raw::pipes(2);
    let mut s = send_raw(&d, &raw::fd_request("echo", (5,)), &readers);
    drop(readers);
    let payload = raw::read_frame(&mut s).unwrap();
    assert!(matches!(raw::reply::<u64>(&payload), Reply::Ok(5)));
    assert!(
        raw::all_closed(&writers),
        "the daemon kept what echo() did not take"
    );
    // One parameter takes the first of three; the others close.
    let (readers, writers) = raw::pipes(3);
    let frame = raw::fd_request("inode", (raw::placeholder(0),));
    raw::send_with_fds(
        &s,
        &frame,
        &readers.iter().map(AsFd::as_fd).collect::<Vec<_>>(),
    );
    let taken = inode(&readers[0]);
    drop(readers);
    let payload = raw::read_frame(&mut s).unwrap();
    assert!(
        matches!(raw::reply::<(u64, Option<u64>)>(&payload), Reply::Ok((i, None)) if i == taken)
    );
    assert!(raw::all_closed(&writers[1..]));
    // A request that does not say it carries descriptors: refused, and
    // they are closed.
    let (readers, writers) = raw::pipes(1);
    let frame = raw::request("inode", (raw::placeholder(0),));
    raw::send_with_fds(
        &s,
        &frame,
        &readers.iter().map(AsFd::as_fd).collect::<Vec<_>>(),
    );
    drop(readers);
    let payload = raw::read_frame(&mut s).unwrap();
    let e = error_reply(&payload);
    assert!(
        e.message.contains("does not say it carries them"),
        "{}",
        e.message
    );
    assert!(raw::all_closed(&writers));
    // A placeholder that names no descriptor of the frame.
    let frame = raw::fd_request("inode", (raw::placeholder(3),));
    std::io::Write::write_all(&mut s, &frame).unwrap();
    let payload = raw::read_frame(&mut s).unwrap();
    let e = error_reply(&payload);
    assert_eq!(e.kind, "TypeError", "{}", e.message);
    assert!(e.message.contains("no descriptor came"), "{}", e.message);
    // ... or none of those that came.
    let (readers, _writers) = raw::pipes(1);
    let frame = raw::fd_request("inode", (raw::placeholder(3),));
    raw::send_with_fds(
        &s,
        &frame,
        &readers.iter().map(AsFd::as_fd).collect::<Vec<_>>(),
    );
    let payload = raw::read_frame(&mut s).unwrap();
    let e = error_reply(&payload);
    assert!(e.message.contains("did not come with it"), "{}", e.message);
}

#[test]
fn more_descriptors_than_a_frame_may_carry_are_refused_and_closed() {
    let (d, _dir) = start(daemon());
    // The client does not send such a frame.
    let mut s = session(&d, Codec::MsgPack);
    let (readers, _writers) = raw::pipes(17);
    let many: Vec<Fd> = readers.into_iter().map(Fd::from).collect();
    let e = s.commit::<IgnoredAny>("inode", (many,)).unwrap_err();
    assert!(e.to_string().contains("at most 16"), "{e}");
    assert_eq!(s.commit::<u64>("echo", (1,)).unwrap(), 1);
    // A peer that sends one anyway gets an error reply, every descriptor
    // is closed, and the session goes on.
    let (readers, writers) = raw::pipes(17);
    let mut raw_s = send_raw(
        &d,
        &raw::fd_request("inode", (raw::placeholder(0),)),
        &readers,
    );
    drop(readers);
    let payload = raw::read_frame(&mut raw_s).unwrap();
    let e = error_reply(&payload);
    assert_eq!(e.kind, "ValueError");
    assert!(e.message.contains("at most 16"), "{}", e.message);
    assert!(raw::all_closed(&writers));
    std::io::Write::write_all(&mut raw_s, &raw::request("echo", (9,))).unwrap();
    let payload = raw::read_frame(&mut raw_s).unwrap();
    assert!(matches!(raw::reply::<u64>(&payload), Reply::Ok(9)));
}

#[test]
fn truncated_ancillary_data_closes_the_connection_and_leaks_nothing() {
    let (d, _dir) = start(daemon());
    let mut other = session(&d, Codec::MsgPack);
    // More than the daemon has room for: the kernel cuts them short.
    let (readers, writers) = raw::pipes(40);
    let mut s = send_raw(&d, &raw::fd_request("echo", (1,)), &readers);
    drop(readers);
    assert!(raw::closed_by_daemon(&mut s), "the connection goes on");
    assert!(raw::all_closed(&writers));
    // Only that connection.
    assert_eq!(other.commit::<u64>("echo", (2,)).unwrap(), 2);
}

#[test]
fn a_caller_the_policy_denies_has_its_descriptors_closed() {
    let nobody = rustix::process::getuid().as_raw() + 4242;
    let (d, _dir) = start(
        daemon()
            .api("guarded(fd)", |fd: Fd| inode(fd))
            .restrict(anyd::Allow::uid(nobody)),
    );
    let mut s = session(&d, Codec::MsgPack);
    let (readers, writers) = raw::pipes(1);
    let reader = readers.into_iter().next().unwrap();
    let e = s.commit::<u64>("guarded", (Fd::from(reader),)).unwrap_err();
    // What a missing endpoint gets: the caller learns nothing.
    assert_eq!(remote_kind(&e).0, "NotImplementedError");
    assert!(
        raw::all_closed(&writers),
        "the daemon kept a denied caller's descriptor"
    );
}

/// Against a daemon in its own process: what descriptor passing costs it,
/// counted in `/proc/<pid>/fd`, and what it costs the client (each test
/// runs in a process of its own under nextest, so `/proc/self/fd` is this
/// test's).
mod process {
    use super::*;
    use anyd_testkit::process::{open_fds, Daemon};

    fn null() -> Fd {
        Fd::from(File::open("/dev/null").unwrap())
    }

    /// The daemon's open descriptors and this process's, once the daemon
    /// holds no connection.
    fn quiet_counts(d: &Daemon) -> (usize, usize) {
        d.wait_quiet();
        (d.open_fds(), open_fds(None))
    }

    #[test]
    fn ten_thousand_calls_passing_descriptors_both_ways_leak_nothing() {
        let d = Daemon::start(None);
        // Once first: whatever is set up on first use is not a leak.
        let _: Fd = d.session().commit("fd_swap", (null(),)).unwrap();
        let before = quiet_counts(&d);
        let null_inode = inode(null());
        let mut s = d.session();
        for i in 0..10_000 {
            // One descriptor each way in one call.
            let back: Fd = s.commit("fd_swap", (null(),)).unwrap();
            if i % 1000 == 0 {
                assert_eq!(inode(&back), null_inode);
            }
        }
        // Streams of them, read to the end and cancelled half way.
        for _ in 0..10 {
            assert_eq!(s.stream::<Fd>("fd_stream", (500,)).unwrap().count(), 500);
            let mut items = s.stream::<Fd>("fd_stream", (1_000_000,)).unwrap();
            items.nth(200).unwrap().unwrap();
            drop(items);
        }
        drop(s);
        assert_eq!(quiet_counts(&d), before, "(daemon, client) descriptors");
        // The async client, on the same daemon.
        let rt = runtime();
        let before = rt.block_on(async {
            let mut s = AsyncClientSession::connect(d.path()).await.unwrap();
            let _: Fd = s.commit("fd_swap", (null(),)).await.unwrap();
            s.end_session().await.unwrap();
            quiet_counts(&d)
        });
        rt.block_on(async {
            let mut s = AsyncClientSession::connect(d.path()).await.unwrap();
            for _ in 0..2_000 {
                let _: Fd = s.commit("fd_swap", (null(),)).await.unwrap();
            }
            s.end_session().await.unwrap();
        });
        assert_eq!(
            quiet_counts(&d),
            before,
            "(daemon, async client) descriptors"
        );
    }

    #[test]
    fn error_replies_and_denied_calls_leak_nothing() {
        let d = Daemon::start(None);
        let _: u64 = d.session().commit("fd_inode", (null(),)).unwrap();
        let before = quiet_counts(&d);
        let mut s = d.session();
        for _ in 0..1_000 {
            // A descriptor where a string goes.
            let e = s.commit::<String>("echo", (null(),)).unwrap_err();
            assert_eq!(remote_kind(&e).0, "TypeError");
            // One argument too many.
            let e = s.commit::<u64>("fd_inode", (null(), null())).unwrap_err();
            assert_eq!(remote_kind(&e).0, "TypeError");
            // A caller the policy denies, and an endpoint that is not.
            let e = s.commit::<()>("fd_denied", (null(),)).unwrap_err();
            assert_eq!(remote_kind(&e).0, "NotImplementedError");
            let e = s.commit::<()>("no_such", (null(),)).unwrap_err();
            assert_eq!(remote_kind(&e).0, "NotImplementedError");
            // A result with a descriptor where the caller expects a
            // string: not asked for one, the daemon says so (and closes
            // its own); one that may take it closes it on its side.
            let e = s.commit::<String>("fd_null", ()).unwrap_err();
            assert_eq!(remote_kind(&e).0, "RuntimeError");
            let e = s.commit::<(String, Fd)>("fd_null", ()).unwrap_err();
            assert!(matches!(e, Error::ResultType(_)), "{e}");
        }
        assert_eq!(s.commit::<String>("echo", ("on",)).unwrap(), "on");
        drop(s);
        assert_eq!(quiet_counts(&d), before, "(daemon, client) descriptors");
    }
}

/// Descriptors through `#[anyd::api]`: parameters, results, inside a
/// struct, sync and async methods, and both typed clients.
struct Pipes;

#[anyd::api]
impl Pipes {
    /// A new pipe, both ends handed over.
    fn open_pipe(&self, label: String) -> std::io::Result<Pipe> {
        let (r, w) = rustix::pipe::pipe()?;
        Ok(Pipe {
            label,
            read: r.into(),
            write: w.into(),
        })
    }

    /// Writes `text` into the caller's descriptor.
    fn write_to(&self, fd: Fd, text: String) -> std::io::Result<()> {
        File::from(fd).write_all(text.as_bytes())
    }

    /// The inode of the caller's descriptor, and the descriptor back.
    async fn inspect(&self, fd: Fd) -> (u64, Fd) {
        (inode(&fd), fd)
    }
}

#[test]
fn descriptors_through_the_typed_clients() {
    let (d, _dir) = start(Appd::new().mount(Pipes));
    let mut client = PipesClient::connect(d.address()).unwrap();
    let pipe = client.open_pipe("typed".into()).unwrap();
    assert_eq!(pipe.label, "typed");
    client.write_to(pipe.write, "across".into()).unwrap();
    let mut got = String::new();
    File::from(pipe.read).read_to_string(&mut got).unwrap();
    assert_eq!(got, "across");
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let ri = inode(&r);
    let (i, back) = client.inspect(r.into()).unwrap();
    assert_eq!((i, inode(&back)), (ri, ri));
    let rt = runtime();
    rt.block_on(async {
        let mut client = PipesAsyncClient::connect(d.address()).await.unwrap();
        let pipe = client.open_pipe("async".into()).await.unwrap();
        client.write_to(pipe.write, "x".into()).await.unwrap();
        let mut one = [0u8; 1];
        File::from(pipe.read).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let ri = inode(&r);
        let (i, _back) = client.inspect(r.into()).await.unwrap();
        assert_eq!(i, ri);
    });
}

#[test]
fn stream_items_carry_descriptors() {
    let (d, _dir) = start(
        daemon()
            .api("pipes(n)", |n: usize| {
                anyd::Items::ready((0..n).map(|i| {
                    let (r, w) = rustix::pipe::pipe().unwrap();
                    Pipe {
                        label: i.to_string(),
                        read: r.into(),
                        write: w.into(),
                    }
                }))
            })
            .api("threaded()", || {
                anyd::Items::from_iter(std::iter::once(Fd::from(File::open("/dev/null").unwrap())))
            }),
    );
    let mut s = session(&d, Codec::MsgPack);
    let mut n = 0;
    // More than are written at once, so that several writes carry some.
    for (i, pipe) in s.stream::<Pipe>("pipes", (50,)).unwrap().enumerate() {
        let pipe = pipe.unwrap();
        assert_eq!(pipe.label, i.to_string());
        File::from(pipe.write).write_all(b"i").unwrap();
        let mut one = [0u8; 1];
        File::from(pipe.read).read_exact(&mut one).unwrap();
        n += 1;
    }
    assert_eq!(n, 50);
    // The async client.
    let rt = runtime();
    rt.block_on(async {
        let mut s = AsyncClientSession::connect(d.address()).await.unwrap();
        let mut items = s.stream::<Pipe>("pipes", (20,)).await.unwrap();
        let mut n = 0;
        while let Some(pipe) = items.next().await {
            let pipe = pipe.unwrap();
            let flags = rustix::io::fcntl_getfd(&pipe.read).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
            n += 1;
        }
        assert_eq!(n, 20);
    });
    // Items made on a thread of their own cannot carry any: the stream
    // ends with an error that says so.
    let e = s
        .stream::<Fd>("threaded", ())
        .unwrap()
        .find_map(Result::err)
        .unwrap();
    assert!(remote_kind(&e).1.contains("Items::ready"), "{e}");
    assert_eq!(s.commit::<u64>("echo", (4,)).unwrap(), 4);
}

/// A struct parameter that holds a descriptor, which the daemon cannot
/// see from the parameter's type.
#[derive(Serialize, Deserialize)]
struct Wrapped {
    fd: Fd,
}

#[test]
fn a_daemon_takes_descriptors_only_when_its_parameters_do() {
    // No parameter names `Fd`: the daemon reads without ancillary data,
    // and the kernel closes what a caller sends. It still hands some out.
    let (d, _dir) = start(
        Appd::new()
            .api("echo(n)", |n: u64| n)
            .api("null()", || File::open("/dev/null").map(Fd::from))
            .api("wrapped(w)", |w: Wrapped| inode(w.fd)),
    );
    let (readers, writers) = raw::pipes(2);
    let mut s = send_raw(&d, &raw::fd_request("echo", (5,)), &readers);
    drop(readers);
    let payload = raw::read_frame(&mut s).unwrap();
    assert!(matches!(raw::reply::<u64>(&payload), Reply::Ok(5)));
    assert!(raw::all_closed(&writers), "the descriptors were taken");
    let mut client = session(&d, Codec::MsgPack);
    let _null: Fd = client.commit("null", ()).unwrap();
    // A descriptor inside a struct of its own: the error says what to do.
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let e = client
        .commit::<u64>("wrapped", (Wrapped { fd: r.into() },))
        .unwrap_err();
    assert!(
        remote_kind(&e).1.contains("Appd::receive_descriptors"),
        "{e}"
    );
    // Which it then does.
    let (d, _dir) = start(
        Appd::new()
            .api("wrapped(w)", |w: Wrapped| inode(w.fd))
            .receive_descriptors(true),
    );
    let mut client = session(&d, Codec::MsgPack);
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let ri = inode(&r);
    let got: u64 = client
        .commit("wrapped", (Wrapped { fd: r.into() },))
        .unwrap();
    assert_eq!(got, ri);
}

#[test]
fn an_item_sent_into_another_streams_channel_takes_none_of_this_streams_descriptors() {
    use std::sync::{Arc, Mutex};
    let sink: Arc<Mutex<Option<anyd::ItemSender<Fd>>>> = Arc::default();
    let (to_store, to_use) = (sink.clone(), sink.clone());
    let (d, _dir) = start(
        daemon()
            // A stream fed by a channel...
            .api("sink()", move || {
                let (tx, items) = anyd::channel::<Fd>();
                *to_store.lock().unwrap() = Some(tx);
                items
            })
            // ... into which another stream's source sends while its own
            // connection fills that stream, which may carry descriptors.
            .api("relay()", move || {
                let tx = to_use.lock().unwrap().clone().unwrap();
                anyd::Items::ready((0..3u64).inspect(move |_| {
                    let null = Fd::from(File::open("/dev/null").unwrap());
                    let _ = tx.send(null);
                }))
            }),
    );
    let mut watcher = session(&d, Codec::MsgPack);
    let mut sunk = watcher.stream::<Fd>("sink", ()).unwrap();
    anyd_testkit::process::wait_until("the channel is open", || sink.lock().unwrap().is_some());
    let mut relayer = session(&d, Codec::MsgPack);
    let got: Vec<u64> = relayer
        .stream::<u64>("relay", ())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(relayer.commit::<u64>("echo", (1,)).unwrap(), 1);
    // The channel's items could not carry them: its stream says why.
    let e = sunk.find_map(Result::err).unwrap();
    assert!(remote_kind(&e).1.contains("Items::ready"), "{e}");
    drop(sunk);
    assert_eq!(watcher.commit::<u64>("echo", (2,)).unwrap(), 2);
}

#[test]
fn a_hub_hands_every_subscriber_its_own_copy_of_a_descriptor() {
    let hub: anyd::Hub<Fd> = anyd::Hub::new(64);
    let subscribe = hub.clone();
    let (d, _dir) = start(daemon().api("events()", move || subscribe.subscribe()));
    let mut a = session(&d, Codec::MsgPack);
    let mut b = session(&d, Codec::Json);
    let mut a_items = a.stream::<Fd>("events", ()).unwrap();
    let mut b_items = b.stream::<Fd>("events", ()).unwrap();
    anyd_testkit::process::wait_until("both subscribed", || hub.subscribers() == 2);
    let (readers, _writers) = raw::pipes(10);
    let inodes: Vec<u64> = readers.iter().map(inode).collect();
    for r in readers {
        hub.publish(Fd::from(r));
    }
    for items in [&mut a_items, &mut b_items] {
        let got: Vec<u64> = items.take(10).map(|fd| inode(fd.unwrap())).collect();
        assert_eq!(got, inodes);
    }
}
