//! The daemon's behaviour as a client sees it: errors, binding, reserved
//! endpoints, addresses and socket files, authentication. The clients'
//! own behaviour is in `client`.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use anyd::{
    Address, ApiError, Appd, ClientOptions, ClientSession, Codec, EndpointInfo, Error, Peer,
    RemoteError, Running, Value,
};

use anyd_testkit::root;

/// A daemon on a fresh socket path; the directory lives as long as the
/// returned guard.
fn start(appd: Appd) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let running = appd.bind(path.to_str().unwrap()).unwrap().spawn().unwrap();
    (running, dir)
}

#[derive(Debug)]
enum VpnError {
    NotConnected,
}

impl ApiError for VpnError {
    fn into_remote(self) -> RemoteError {
        match self {
            VpnError::NotConnected => RemoteError::new("VpnError", "not connected"),
        }
    }
}

/// A daemon with an endpoint of each kind (shared with `client`).
pub(super) fn demo() -> Appd {
    Appd::new()
        .api("echo(arg)", |arg: Value| arg)
        .doc("Returns its argument.")
        .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
        .api(
            "greet(name, greeting)",
            |name: String, greeting: Option<String>| {
                format!("{}, {name}", greeting.as_deref().unwrap_or("hello"))
            },
        )
        .api("positional", |a: u8, b: u8| u16::from(a) * u16::from(b))
        .api("status()", || -> Result<String, VpnError> {
            Err(VpnError::NotConnected)
        })
        .api("boom()", || -> u32 { panic!("the handler fell over") })
        .api("whoami()", |peer: Peer| {
            (peer.uid(), peer.gid(), peer.pid())
        })
        .api("later(x)", |x: u64| async move {
            tokio::task::yield_now().await;
            x * 2
        })
}

/// The remote error in `e` (shared with `client`).
pub(super) fn remote(e: Error) -> RemoteError {
    match e {
        Error::Remote(r) => r,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn calls_and_their_errors() {
    let (d, _dir) = start(demo());
    let mut s = ClientSession::connect(d.address()).unwrap();

    let v: Value = s.commit("echo", (vec![1, 2, 3],)).unwrap();
    assert_eq!(
        v,
        Value::from(vec![Value::from(1), Value::from(2), Value::from(3)])
    );
    let kw = BTreeMap::from([("arg1", 2), ("arg2", 3)]);
    assert_eq!(s.commit_with::<i64>("get_sum", (), kw).unwrap(), 5);
    assert_eq!(
        s.commit_with::<i64>("get_sum", (10,), BTreeMap::from([("arg2", 1)]))
            .unwrap(),
        11
    );
    // An Option parameter may be left out, or passed by keyword.
    assert_eq!(s.commit::<String>("greet", ("ann",)).unwrap(), "hello, ann");
    let kw = BTreeMap::from([("greeting", "hi")]);
    assert_eq!(
        s.commit_with::<String>("greet", ("bo",), kw).unwrap(),
        "hi, bo"
    );
    assert_eq!(s.commit::<u16>("positional", (3, 4)).unwrap(), 12);
    assert_eq!(s.commit::<u64>("later", (21,)).unwrap(), 42);

    let e = remote(s.commit::<Value>("nope", ()).unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("NotImplementedError", "nope")
    );

    let e = remote(s.commit::<i64>("get_sum", (1, 2, 3)).unwrap_err());
    assert_eq!(e.kind, "TypeError");
    assert_eq!(
        e.message,
        "get_sum() takes 2 positional arguments but 3 were given"
    );

    let e = remote(s.commit::<i64>("get_sum", (1, "two")).unwrap_err());
    assert_eq!(e.kind, "TypeError");
    assert!(
        e.message == "get_sum() argument 'arg2' must be i64, not str",
        "{}",
        e.message
    );

    let e = remote(s.commit::<i64>("get_sum", (1,)).unwrap_err());
    assert_eq!(e.message, "get_sum() missing required argument: 'arg2'");

    let e = remote(
        s.commit_with::<i64>("get_sum", (1, 2), BTreeMap::from([("arg3", 1)]))
            .unwrap_err(),
    );
    assert_eq!(
        e.message,
        "get_sum() got an unexpected keyword argument 'arg3'"
    );

    let e = remote(
        s.commit_with::<i64>("get_sum", (1,), BTreeMap::from([("arg1", 1)]))
            .unwrap_err(),
    );
    assert_eq!(
        e.message,
        "get_sum() got multiple values for argument 'arg1'"
    );

    let e = remote(
        s.commit_with::<u16>("positional", (), BTreeMap::from([("a", 1)]))
            .unwrap_err(),
    );
    assert_eq!(e.kind, "TypeError");
    assert!(
        e.message.contains("takes no keyword arguments"),
        "{}",
        e.message
    );

    let e = remote(s.commit::<String>("status", ()).unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("VpnError", "not connected")
    );

    // A panic's message stays in the daemon's log unless asked for.
    let e = remote(s.commit::<u32>("boom", ()).unwrap_err());
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        (
            "RuntimeError",
            "boom() failed: internal error (see the daemon's log)"
        )
    );

    // A result of the wrong type is the caller's problem; the session goes on.
    assert!(matches!(
        s.commit::<u32>("echo", ("text",)),
        Err(Error::ResultType(_))
    ));
    // After every error above, the same session still works.
    assert_eq!(s.commit::<i64>("get_sum", (1, 1)).unwrap(), 2);
    s.end_session().unwrap();
}

#[test]
fn peer_credentials_on_unix_sockets() {
    let (d, _dir) = start(demo());
    let mut s = ClientSession::connect(d.address()).unwrap();
    let (uid, gid, pid): (Option<u32>, Option<u32>, Option<u32>) = s.commit("whoami", ()).unwrap();
    assert_eq!(uid, Some(rustix::process::getuid().as_raw()));
    assert_eq!(gid, Some(rustix::process::getgid().as_raw()));
    assert_eq!(pid, Some(std::process::id()));
}

#[test]
fn reserved_endpoints() {
    let (d, _dir) = start(demo());
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        let mut s = ClientOptions::new()
            .codec(codec)
            .connect(d.address())
            .unwrap();
        assert!(s.commit::<bool>("anyd.ping", ()).unwrap());
        let v: BTreeMap<String, Value> = s.commit("anyd.version", ()).unwrap();
        assert_eq!(v["anyd"], Value::from(env!("CARGO_PKG_VERSION")));
        assert_eq!(v["protocol"], Value::from(1));
        let eps: Vec<EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
        let names: Vec<&str> = eps.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "echo",
                "get_sum",
                "greet",
                "positional",
                "status",
                "boom",
                "whoami",
                "later"
            ]
        );
        assert_eq!(eps[0].doc, "Returns its argument.");
        let greet = &eps[2];
        assert_eq!(greet.params.len(), 2);
        assert_eq!(greet.params[1].name.as_deref(), Some("greeting"));
        assert_eq!(greet.params[1].ty, "Option<String>");
        assert!(greet.params[1].optional && !greet.params[0].optional);
        assert_eq!(greet.returns, "String");
        assert_eq!(eps[4].returns, "String", "the Ok type of a Result");
        assert!(eps[6].params.is_empty(), "a Peer is not a wire parameter");
        assert_eq!(eps[3].params[0].name, None);
        let e = remote(s.commit::<bool>("anyd.nothing", ()).unwrap_err());
        assert_eq!(e.kind, "NotImplementedError");
        let e = remote(s.commit::<bool>("anyd.ping", (1,)).unwrap_err());
        assert_eq!(e.kind, "TypeError");
    }
}

#[test]
fn panic_details_reach_the_caller_only_when_asked_for() {
    for (details, says) in [
        (
            false,
            "boom() failed: internal error (see the daemon's log)",
        ),
        (true, "boom() panicked: the handler fell over"),
    ] {
        let (d, _dir) = start(demo().panic_details(details));
        let mut s = ClientSession::connect(d.address()).unwrap();
        let e = remote(s.commit::<u32>("boom", ()).unwrap_err());
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("RuntimeError", says)
        );
        assert_eq!(s.commit::<i64>("get_sum", (1, 2)).unwrap(), 3);
    }
}

#[test]
fn socket_files_are_private_replaced_when_stale_and_never_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let addr = format!("unix:{}", path.display());

    // A stale socket: bound once, nobody listening now.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let d = Appd::new().bind(addr.as_str()).unwrap().spawn().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A live one is not taken over.
    match Appd::new().bind(addr.as_str()) {
        Err(Error::AlreadyRunning(a)) => assert_eq!(a, addr),
        other => panic!("expected AlreadyRunning, got {:?}", other.err()),
    }
    // And the first daemon still serves.
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert!(s.commit::<bool>("anyd.ping", ()).unwrap());
    drop(s);
    d.shutdown().unwrap();
    assert!(!path.exists(), "the socket file is removed on exit");

    // Another mode on request.
    let d = Appd::new().socket_mode(0o660).bind(addr.as_str()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    drop(d);
    assert!(!path.exists(), "a server never served still cleans up");

    // Not a socket: left alone.
    std::fs::write(&path, b"precious").unwrap();
    let e = Appd::new().bind(addr.as_str()).err().unwrap();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");

    // A link is not a socket either, whether it leads to a file, to a
    // stale socket or nowhere: neither it nor its target is touched, and
    // no private directory is left behind.
    std::fs::remove_file(&path).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let nowhere = dir.path().join("nowhere");
    for to in [&target, &stale, &nowhere] {
        std::os::unix::fs::symlink(to, &path).unwrap();
        let e = Appd::new()
            .socket_mode(0o666)
            .bind(addr.as_str())
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_link(&path).unwrap(), *to);
        std::fs::remove_file(&path).unwrap();
    }
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&stale)
        .unwrap()
        .file_type()
        .is_socket());
    assert!(!nowhere.exists());
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["stale.sock", "target"]);
}

#[test]
fn the_kernel_names_the_socket_by_its_path() {
    // In a directory only this user may write (the common case), the
    // socket is bound at its path, so that is the name the kernel keeps:
    // what `ss -xl` lists (from /proc/net/unix) and what a client's
    // getpeername returns, not a name it was made under elsewhere.
    let (d, dir) = start(Appd::new());
    let path = dir.path().join("d.sock");
    assert_eq!(d.address().to_string(), format!("unix:{}", path.display()));
    let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let peer = client.peer_addr().unwrap();
    assert_eq!(peer.as_pathname(), Some(path.as_path()), "{peer:?}");
    let listed = std::fs::read_to_string("/proc/net/unix").unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.ends_with(&format!(" {}", path.display()))),
        "{} is not in /proc/net/unix",
        path.display()
    );
}

#[test]
fn a_directory_others_may_write_is_refused_unless_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    // Every user, or a group, could replace the socket there.
    for mode in [0o777, 0o770, 0o730] {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Appd::new().bind(path.to_str().unwrap()).err().unwrap();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(e.to_string().contains("not sticky"), "{e}");
        assert!(!path.exists());
    }
    // Sticky, like /tmp: others cannot replace what is ours.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let d = Appd::new().bind(path.to_str().unwrap()).unwrap();
    assert!(path.exists());
    drop(d);
    assert!(!path.exists());
    // Only the socket ever appears there, never its private directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn abstract_and_tcp_addresses() {
    let name = format!(
        "anyd-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let d = Appd::new()
        .api("echo(arg)", |a: String| a)
        .bind(format!("unix:@{name}"))
        .unwrap()
        .spawn()
        .unwrap();
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(
        s.commit::<String>("echo", ("abstract",)).unwrap(),
        "abstract"
    );
    assert!(matches!(
        Appd::new().bind(format!("unix:@{name}")),
        Err(Error::AlreadyRunning(_))
    ));

    let d = Appd::new()
        .api("echo(arg)", |a: String| a)
        .bind("tcp:127.0.0.1:0")
        .unwrap()
        .spawn()
        .unwrap();
    let Address::Tcp { port, .. } = d.address() else {
        panic!("{}", d.address())
    };
    assert_ne!(*port, 0, "the real port is reported");
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<String>("echo", ("v4",)).unwrap(), "v4");

    // IPv6 loopback, where the machine has it.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let d = Appd::new()
            .api("echo(arg)", |a: String| a)
            .bind("tcp:[::1]:0")
            .unwrap()
            .spawn()
            .unwrap();
        assert!(d.address().to_string().starts_with("tcp:[::1]:"));
        let mut s = ClientSession::connect(d.address()).unwrap();
        assert_eq!(s.commit::<String>("echo", ("v6",)).unwrap(), "v6");
    }
}

#[test]
fn remote_tcp_needs_an_authkey() {
    let e = Appd::new().bind("tcp:0.0.0.0:0").err().unwrap();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(e.to_string().contains("authkey"), "{e}");
    drop(Appd::new().authkey("k").bind("tcp:0.0.0.0:0").unwrap());
    drop(
        Appd::new()
            .allow_remote_without_authkey(true)
            .bind("tcp:0.0.0.0:0")
            .unwrap(),
    );
}

#[test]
fn authkey_handshake() {
    let (d, _dir) = start(demo().authkey("sesame"));
    let good = ClientOptions::new().authkey("sesame");
    let mut s = good.clone().connect(d.address()).unwrap();
    assert_eq!(s.commit::<i64>("get_sum", (2, 2)).unwrap(), 4);
    s.end_session().unwrap();
    // The async client and the modern-only option both pass with the right
    // key (both sides are modern here).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = anyd::AsyncClientSession::connect_with(
            d.address(),
            good.clone().require_modern_digest(true),
        )
        .await
        .unwrap();
        assert_eq!(s.commit::<u64>("later", (5,)).await.unwrap(), 10);
        s.end_session().await.unwrap();
    });

    let e = ClientOptions::new()
        .authkey("wrong")
        .connect(d.address())
        .unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "{e:?}");

    // No key against a keyed daemon: the challenge is not a reply.
    let mut s = ClientSession::connect(d.address()).unwrap();
    let e = s.commit::<bool>("anyd.ping", ()).unwrap_err();
    assert!(matches!(e, Error::AuthRequired), "{e:?}");

    // The daemon still serves the right key after all that.
    let mut s = good.connect(d.address()).unwrap();
    assert!(s.commit::<bool>("anyd.ping", ()).unwrap());
}

#[test]
fn ten_typed_arguments_bind_by_position_and_by_name() {
    let (d, _dir) = start(Appd::new().api(
        "ten(a, b, c, d, e, f, g, h, i, j)",
        |a: u8,
         b: u16,
         c: u32,
         d: u64,
         e: i8,
         f: i16,
         g: i32,
         h: i64,
         i: String,
         j: Option<bool>| { format!("{a} {b} {c} {d} {e} {f} {g} {h} {i} {j:?}") },
    ));
    let mut s = ClientSession::connect(d.address()).unwrap();
    let r: String = s
        .commit("ten", (1, 2, 3, 4, -5, -6, -7, -8, "nine", true))
        .unwrap();
    assert_eq!(r, "1 2 3 4 -5 -6 -7 -8 nine Some(true)");
    // The last ones by name, the Option left out.
    let kw = BTreeMap::from([("h", Value::from(80)), ("i", Value::from("ix"))]);
    let r: String = s.commit_with("ten", (1, 2, 3, 4, 5, 6, 7), kw).unwrap();
    assert_eq!(r, "1 2 3 4 5 6 7 80 ix None");
    // The eighth parameter by position and by name at once.
    let kw = BTreeMap::from([("h", Value::from(80)), ("i", Value::from("ix"))]);
    let e = remote(
        s.commit_with::<String>("ten", (1, 2, 3, 4, 5, 6, 7, 8), kw)
            .unwrap_err(),
    );
    assert_eq!(e.kind, "TypeError", "{e:?}");
    assert!(e.message.contains("'h'"), "{e:?}");
}

#[test]
fn socket_mode_and_group_are_set_on_the_socket_file_as_root() {
    use std::os::unix::fs::MetadataExt;
    root::require_root("giving a socket file to another group");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.sock");
    let d = Appd::new()
        .socket_mode(0o660)
        .socket_group(65534)
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
    drop(d);
    assert!(!path.exists());
    // The group by its name, looked up at bind.
    let d = Appd::new()
        .socket_mode(0o660)
        .socket_group_name("nogroup")
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().gid(), 65534);
    drop(d);
    let e = Appd::new()
        .socket_group_name("no-such-group-anyd")
        .bind(path.to_str().unwrap())
        .err()
        .expect("a group that does not exist");
    assert!(
        matches!(&e, Error::Config(m) if m.contains("no-such-group-anyd")),
        "{e:?}"
    );
    assert!(!path.exists());
}

/// Binds with a wide mode and another group in nobody's directory, where
/// nobody has planted links to root's files; returns the error.
fn bind_over(path: &std::path::Path) -> Error {
    Appd::new()
        .socket_mode(0o666)
        .socket_group(65534)
        .bind(path.to_str().unwrap())
        .err()
        .expect("bound over a planted link")
}

#[test]
fn links_planted_by_the_directorys_owner_lead_root_nowhere_as_root() {
    root::require_root("planting links as another user in a directory root binds in");
    let dir = root::nobodys_directory();
    let (_roots, precious, absent) = root::roots_files();
    let before = root::FileState::of(&precious);
    let path = dir.path().join("d.sock");
    for target in [&precious, &absent] {
        root::as_nobody(|| std::os::unix::fs::symlink(target, &path).unwrap());
        let e = bind_over(&path);
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(root::FileState::of(&precious), before);
        assert!(!absent.exists(), "a file was created through the link");
        root::as_nobody(|| std::fs::remove_file(&path).unwrap());
    }
}

#[test]
fn a_link_swapped_in_right_after_bind_is_not_followed_as_root() {
    use std::sync::atomic::{AtomicBool, Ordering};
    root::require_root("racing root's bind as another user");
    // The old way (bind, then chmod and chown by path) left a window in
    // which the owner of the directory could swap the fresh socket for a
    // link; this one has none, so whatever the timing nothing of root's
    // changes. A race cannot be forced: for two seconds nobody swaps as
    // fast as it can while root binds again and again (the old way lost
    // within milliseconds on a loaded two-core machine).
    let dir = root::nobodys_directory();
    let (_roots, precious, _) = root::roots_files();
    let before = root::FileState::of(&precious);
    let path = dir.path().join("d.sock");
    let link = dir.path().join("link");
    let ready = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let (swaps, binds) = std::thread::scope(|s| {
        let swapper = s.spawn(|| {
            root::as_nobody(|| {
                let mut swaps = 0u64;
                std::os::unix::fs::symlink(&precious, &link).unwrap();
                ready.store(true, Ordering::SeqCst);
                while !done.load(Ordering::Relaxed) {
                    let is_socket =
                        std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket());
                    if is_socket && std::fs::rename(&link, &path).is_ok() {
                        swaps += 1;
                        std::os::unix::fs::symlink(&precious, &link).unwrap();
                    }
                }
                swaps
            })
        });
        while !ready.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let until = std::time::Instant::now() + Duration::from_secs(2);
        let mut binds = 0u64;
        while std::time::Instant::now() < until {
            // Bound or refused, depending on who came first.
            drop(
                Appd::new()
                    .socket_mode(0o666)
                    .socket_group(65534)
                    .bind(path.to_str().unwrap()),
            );
            binds += 1;
            let _ = std::fs::remove_file(&path);
            if root::FileState::of(&precious) != before {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        (swapper.join().unwrap(), binds)
    });
    eprintln!("{binds} binds; nobody swapped {swaps} sockets for links");
    assert_eq!(root::FileState::of(&precious), before);
    // A swap may land after root's last removal (nobody saw the socket,
    // root removed it, nobody renamed the link over the empty name): the
    // link it leaves is nobody's, not a socket or directory of root's.
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&path).unwrap();
    }
    // Every private directory the sockets were made in is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "link")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
