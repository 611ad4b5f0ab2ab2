//! Interoperability with unmodified Python programs (docs/PROTOCOL.md sections 2
//! to 4 and 6): Python `anyd` 0.4.1 and `multiprocessing.connection`
//! clients calling a Rust daemon, a Rust client calling a Python
//! `anyd.Appd`, the authkey handshake across Python's legacy and modern
//! generations, and a JSON client written with nothing but Python's socket
//! module.
//!
//! The Python side runs in a venv under the target directory, made once and
//! shared by every test process (see `support`). Each Python program
//! asserts what it receives and prints a result line; a failing program
//! fails its test with its traceback.

use anyd_testkit::python as support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyd::wire::handshake::HandshakeError;
use anyd::{Address, Appd, ClientOptions, Codec, Error, RemoteError, Running, Value};
use support::{base_python, run, run_ok, venv, PythonDaemon};

/// The authkey shared by the daemons and clients under test.
const KEY: &str = "interop secret";

/// How long a Rust client waits for a Python daemon's reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Records the frames of every authkey handshake this Python process takes
/// part in, as `direction kind size` descriptions in `HANDSHAKE`, by
/// wrapping the two steps `multiprocessing.connection` runs for `Client`
/// and `Listener.accept`. A frame is classified by length first, as
/// docs/PROTOCOL.md section 2 does: a 20-byte challenge is legacy and a 16-byte
/// digest is raw MD5, whatever bytes they start with.
const HANDSHAKE_RECORDER: &str = r##"
import json
import multiprocessing.connection as _mpc

HANDSHAKE = []


def _named(data):
    if data.startswith(b"{") and b"}" in data:
        name, rest = data[1:].split(b"}", 1)
        return "{%s} %d bytes" % (name.decode("ascii", "replace"), len(rest))
    return "unnamed %d bytes" % len(data)


def _describe(direction, frame):
    frame = bytes(frame)
    if frame.startswith(b"#CHALLENGE#"):
        message = frame[len(b"#CHALLENGE#"):]
        if len(message) == 20:
            return "%s challenge legacy 20 bytes" % direction
        return "%s challenge %s" % (direction, _named(message))
    if frame in (b"#WELCOME#", b"#FAILURE#"):
        return "%s %s" % (direction, frame.decode())
    if len(frame) == 16:
        return "%s digest raw 16 bytes" % direction
    return "%s digest %s" % (direction, _named(frame))


def _recording(step):
    def recorded(connection, *args, **kwargs):
        send, recv = connection.send_bytes, connection.recv_bytes

        def send_bytes(buf, *a, **k):
            HANDSHAKE.append(_describe("send", buf))
            return send(buf, *a, **k)

        def recv_bytes(*a, **k):
            buf = recv(*a, **k)
            HANDSHAKE.append(_describe("recv", buf))
            return buf

        connection.send_bytes, connection.recv_bytes = send_bytes, recv_bytes
        try:
            return step(connection, *args, **kwargs)
        finally:
            del connection.send_bytes, connection.recv_bytes

    return recorded


_mpc.deliver_challenge = _recording(_mpc.deliver_challenge)
_mpc.answer_challenge = _recording(_mpc.answer_challenge)
"##;

/// A Python `anyd.ClientSession` over TCP: argv is the port and the authkey
/// (empty for none). Prints the handshake it saw and `SESSION OK` with the
/// daemon's answer to SIGENDS.
const PYTHON_CLIENT_SESSION: &str = r##"
import sys

import anyd

port, key = int(sys.argv[1]), sys.argv[2].encode() or None


def raises(kind, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except kind as e:
        return e
    raise AssertionError("%s%r%r did not raise %s" % (call.__name__, args, kwargs, kind.__name__))


with anyd.ClientSession(("127.0.0.1", port), authkey=key) as client:
    assert client.commit("echo", "hello") == "hello"
    assert client.commit("echo", arg="hello world!") == "hello world!"
    assert client.commit("get_sum", 1, 2) == 3
    assert client.commit("get_sum", arg1=1, arg2=2) == 3
    assert client.commit("get_sum", 40, arg2=2) == 42
    assert client.commit("summary", [1, 2, 3]) == {"count": 3, "total": 6}

    e = raises(NotImplementedError, client.commit, "nope", 1)
    assert e.args == ("nope",), e.args
    e = raises(TypeError, client.commit, "get_sum", 1)
    assert "arg2" in str(e), e
    raises(TypeError, client.commit, "get_sum", 1, 2, 3)
    e = raises(TypeError, client.commit, "get_sum", 1, "2")
    assert "arg2" in str(e), e
    raises(TypeError, client.commit, "get_sum", 1, arg3=2)
    e = raises(ValueError, client.commit, "fail", "ValueError", "bad")
    assert e.args == ("bad",), e.args
    # A kind that is not a Python builtin arrives as a RuntimeError.
    e = raises(RuntimeError, client.commit, "fail", "VpnError", "down")
    assert e.args == ("VpnError: down",), e.args

    # A streaming endpoint needs a native client: said plainly, and the
    # session goes on.
    e = raises(TypeError, client.commit, "ticks")
    assert "sends a stream of items" in str(e) and "MessagePack or JSON" in str(e), e

    # So does a result that holds a descriptor: an error reply, never a
    # placeholder pointing nowhere.
    e = raises(RuntimeError, client.commit, "open_null")
    assert "descriptor travels only over a Unix socket" in str(e), e

    # Error replies leave the session usable.
    assert client.commit("echo", "still here") == "still here"

# Leaving the block sent SIGENDS and checked that SIGENDS came back.
print("HANDSHAKE", json.dumps(HANDSHAKE))
print("SESSION OK", client.response)
"##;

/// Tries to open an `anyd.ClientSession`: argv is the port and the authkey.
/// Prints the handshake it saw and `REFUSED` or `ACCEPTED`.
const PYTHON_CLIENT_CONNECT: &str = r##"
import sys
from multiprocessing import AuthenticationError

import anyd

port, key = int(sys.argv[1]), sys.argv[2].encode()
try:
    anyd.ClientSession(("127.0.0.1", port), authkey=key)
    outcome = "ACCEPTED"
except AuthenticationError as e:
    outcome = "REFUSED %s" % e
print("HANDSHAKE", json.dumps(HANDSHAKE))
print(outcome)
"##;

/// `multiprocessing.connection.Client` over Unix sockets: argv is a socket
/// path without authkey, then one with. Prints `OK`.
const MULTIPROCESSING_CLIENT: &str = r##"
import pickle
import sys
from multiprocessing.connection import Client


def session(path, key, sigends_protocol):
    with Client(path, family="AF_UNIX", authkey=key) as c:
        c.send(("echo", ("hi",), {}))
        assert c.recv() == "hi"
        # Every pickle protocol a Python client may use.
        for protocol in (2, 3, 4, 5):
            c.send_bytes(pickle.dumps(("get_sum", (1,), {"arg2": 2}), protocol=protocol))
            assert c.recv() == 3, protocol
        c.send(("nope", (), {}))
        e = c.recv()
        assert type(e) is NotImplementedError and e.args == ("nope",), repr(e)
        # Pipelined: replies come back in request order.
        for word in ("one", "two", "three"):
            c.send(("echo", (word,), {}))
        assert [c.recv() for _ in range(3)] == ["one", "two", "three"]
        c.send_bytes(pickle.dumps(b"SIGENDS", protocol=sigends_protocol))
        assert c.recv() == b"SIGENDS"
        # Then the daemon closes the connection.
        try:
            c.recv()
        except EOFError:
            pass
        else:
            raise AssertionError("the daemon kept the connection open after SIGENDS")


# Protocol 2 writes bytes as _codecs.encode(str, "latin1").
session(sys.argv[1], None, sigends_protocol=2)
session(sys.argv[2], sys.argv[3].encode(), sigends_protocol=4)
print("OK")
"##;

/// A Python `anyd.Appd` on a free TCP port; argv is the authkey. Prints
/// `READY <port>` once it listens, then serves until killed.
const PYTHON_APPD: &str = r##"
import sys

import anyd

appd = anyd.Appd(("127.0.0.1", 0), authkey=sys.argv[1].encode())


@appd.api
def echo(arg):
    return arg


@appd.api
def get_sum(arg1, arg2):
    return arg1 + arg2


@appd.api
def numbers():
    return [1, 2, 3]


@appd.api
def pair():
    return (7, "seven")


@appd.api
def mapping():
    return {"a": 1, "b": 2}


@appd.api
def nothing():
    return None


@appd.api
def maybe(arg=None):
    return arg


@appd.api
def type_names(*args, **kwargs):
    return [type(a).__name__ for a in args], {k: type(v).__name__ for k, v in kwargs.items()}


# Python anyd does not catch exceptions raised by an endpoint (the daemon
# would die); an endpoint returns one to make the client raise it.
@appd.api
def fail(message):
    return ValueError(message)


@appd.api
def last_handshake():
    return HANDSHAKE[-6:]


print("READY", appd.address[1], flush=True)
appd.start()
"##;

/// A client in plain Python, no anyd and no pickle: 4-byte big-endian
/// length prefixes and JSON. argv is the socket path. Prints `OK`.
const JSON_CLIENT: &str = r##"
import json
import socket
import struct
import sys


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def call(sock, message):
    payload = json.dumps(message).encode()
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (n,) = struct.unpack(">i", recv_exactly(sock, 4))
    return json.loads(recv_exactly(sock, n))


with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.settimeout(30)
    sock.connect(sys.argv[1])
    reply = call(sock, ["echo", ["hi"], {}])
    assert reply == {"ok": "hi"}, reply
    reply = call(sock, ["get_sum", [], {"arg1": 1, "arg2": 2}])
    assert reply == {"ok": 3}, reply
    reply = call(sock, ["nope", [], {}])
    assert reply["error"]["kind"] == "NotImplementedError", reply
    assert reply["error"]["message"] == "nope", reply
    reply = call(sock, "SIGENDS")
    assert reply == "SIGENDS", reply
    assert sock.recv(1) == b"", "the daemon kept the connection open after SIGENDS"
print("OK")
"##;

/// A Rust daemon with the endpoints the Python clients call, bound to
/// `address`, after `configure` set its options.
fn rust_daemon(address: &str, configure: impl FnOnce(Appd) -> Appd) -> Running {
    let appd = Appd::new()
        .api("echo(arg)", |arg: String| arg)
        .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
        .api("summary(numbers)", |numbers: Vec<i64>| {
            BTreeMap::from([
                ("count", numbers.len() as i64),
                ("total", numbers.iter().sum()),
            ])
        })
        .api(
            "fail(kind, message)",
            |kind: String, message: String| -> Result<(), RemoteError> {
                Err(RemoteError::new(kind, message))
            },
        )
        .api("ticks()", || anyd::Items::from_iter(0..3))
        .api("open_null()", || {
            std::fs::File::open("/dev/null").map(anyd::Fd::from)
        });
    configure(appd)
        .bind(address)
        .expect("bind")
        .spawn()
        .expect("spawn")
}

fn tcp_port(address: &Address) -> String {
    match address {
        Address::Tcp { port, .. } => port.to_string(),
        other => panic!("not a TCP address: {other}"),
    }
}

fn unix_path(address: &Address) -> &Path {
    match address {
        Address::Unix(path) => path,
        other => panic!("not a Unix socket address: {other}"),
    }
}

/// The value after `label ` on the line of `stdout` that starts with it.
fn line<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {label} line in the output:\n{stdout}"))
}

/// The handshake frames a Python program recorded.
fn recorded_handshake(stdout: &str) -> Vec<String> {
    serde_json::from_str(line(stdout, "HANDSHAKE")).expect("HANDSHAKE is a JSON list")
}

/// The handshake a Python client sees with a Rust daemon that challenges
/// with `{sha256}` (docs/PROTOCOL.md section 2): the client answers first, then
/// challenges.
fn python_client_handshake(legacy: bool) -> Vec<&'static str> {
    if legacy {
        vec![
            "recv challenge {sha256} 40 bytes",
            // Python 3.11 answers any challenge with raw MD5 over all of M.
            "send digest raw 16 bytes",
            "recv #WELCOME#",
            "send challenge legacy 20 bytes",
            // A legacy challenge gets a raw MD5 answer.
            "recv digest raw 16 bytes",
            "send #WELCOME#",
        ]
    } else {
        vec![
            "recv challenge {sha256} 40 bytes",
            "send digest {sha256} 32 bytes",
            "recv #WELCOME#",
            "send challenge {sha256} 40 bytes",
            "recv digest {sha256} 32 bytes",
            "send #WELCOME#",
        ]
    }
}

/// Python `anyd.ClientSession` without an authkey calls a Rust daemon over
/// TCP: positional and keyword calls, error kinds raised as Python
/// exceptions, a clean SIGENDS.
#[test]
fn python_client_session_calls_rust_daemon_over_tcp() {
    let venv = venv();
    let daemon = rust_daemon("tcp:127.0.0.1:0", |a| a);
    let port = tcp_port(daemon.address());
    let out = run_ok(&venv.python, &python(PYTHON_CLIENT_SESSION), &[&port, ""]);
    assert_eq!(line(&out, "SESSION OK"), "b'SIGENDS'");
    assert!(recorded_handshake(&out).is_empty());
    daemon.shutdown().unwrap();
}

/// The same session with an authkey. Python 3.11 authenticates the legacy
/// way and the Rust daemon the modern way; each side checks the other.
#[test]
fn python_client_session_with_authkey_calls_rust_daemon() {
    let venv = venv();
    let daemon = rust_daemon("tcp:127.0.0.1:0", |a| a.authkey(KEY));
    let port = tcp_port(daemon.address());
    let out = run_ok(&venv.python, &python(PYTHON_CLIENT_SESSION), &[&port, KEY]);
    assert_eq!(line(&out, "SESSION OK"), "b'SIGENDS'");
    assert_eq!(
        recorded_handshake(&out),
        python_client_handshake(venv.legacy_handshake())
    );
    daemon.shutdown().unwrap();
}

/// A Python client with the wrong key gets `AuthenticationError`, because
/// the daemon answers its digest with `#FAILURE#`; the daemon goes on.
#[test]
fn python_client_with_wrong_authkey_gets_authentication_error() {
    let venv = venv();
    let daemon = rust_daemon("tcp:127.0.0.1:0", |a| a.authkey(KEY));
    let port = tcp_port(daemon.address());
    let out = run_ok(
        &venv.python,
        &python(PYTHON_CLIENT_CONNECT),
        &[&port, "wrong key"],
    );
    assert_eq!(line(&out, "REFUSED"), "digest sent was rejected");
    let handshake = recorded_handshake(&out);
    assert_eq!(handshake.last().map(String::as_str), Some("recv #FAILURE#"));
    assert_eq!(handshake.len(), 3, "{handshake:?}");

    let mut session = ClientOptions::new()
        .authkey(KEY)
        .connect(daemon.address())
        .unwrap();
    assert_eq!(session.commit::<String>("echo", ("up",)).unwrap(), "up");
    session.end_session().unwrap();
    daemon.shutdown().unwrap();
}

/// `require_modern_digest(true)` refuses a client that can only prove the
/// key with MD5, which Python 3.11 is.
#[test]
fn rust_daemon_requiring_modern_digest_refuses_python_3_11_client() {
    let venv = venv();
    let daemon = rust_daemon("tcp:127.0.0.1:0", |a| {
        a.authkey(KEY).require_modern_digest(true)
    });
    let port = tcp_port(daemon.address());
    let out = run_ok(&venv.python, &python(PYTHON_CLIENT_CONNECT), &[&port, KEY]);
    let handshake = recorded_handshake(&out);
    if venv.legacy_handshake() {
        assert_eq!(line(&out, "REFUSED"), "digest sent was rejected");
        assert_eq!(
            handshake,
            [
                "recv challenge {sha256} 40 bytes",
                "send digest raw 16 bytes",
                "recv #FAILURE#",
            ]
        );
    } else {
        assert!(out.lines().any(|l| l == "ACCEPTED"), "{out}");
        assert_eq!(handshake, python_client_handshake(false));
    }
    daemon.shutdown().unwrap();
}

/// `multiprocessing.connection.Client` over Unix sockets, with and without
/// an authkey: tuple requests in every pickle protocol, pipelining, and
/// SIGENDS as `b"SIGENDS"`.
#[test]
fn multiprocessing_client_calls_rust_daemon_over_unix_socket() {
    let venv = venv();
    let dir = tempfile::tempdir().unwrap();
    let plain = rust_daemon(
        &format!("unix:{}", dir.path().join("plain.sock").display()),
        |a| a,
    );
    let keyed = rust_daemon(
        &format!("unix:{}", dir.path().join("keyed.sock").display()),
        |a| a.authkey(KEY),
    );
    let plain_path = unix_path(plain.address()).to_str().unwrap();
    let keyed_path = unix_path(keyed.address()).to_str().unwrap();
    let out = run_ok(
        &venv.python,
        MULTIPROCESSING_CLIENT,
        &[plain_path, keyed_path, KEY],
    );
    assert_eq!(out.trim(), "OK");
    plain.shutdown().unwrap();
    keyed.shutdown().unwrap();
}

fn python_appd_options() -> ClientOptions {
    ClientOptions::new()
        .codec(Codec::Pickle)
        .authkey(KEY)
        .timeout(Some(CALL_TIMEOUT))
}

/// A Rust `ClientSession` calls a Python `anyd.Appd`: results of every
/// shape, keyword arguments, exceptions as remote errors, and sessions one
/// after another.
#[test]
fn rust_client_calls_python_appd() {
    let venv = venv();
    let appd = PythonDaemon::start(&venv.python, &python(PYTHON_APPD), &[KEY]);
    let address = format!("tcp:127.0.0.1:{}", appd.port());
    let mut s = python_appd_options().connect(&address).unwrap();

    assert_eq!(s.commit::<String>("echo", ("hello",)).unwrap(), "hello");
    assert_eq!(s.commit::<i64>("get_sum", (1, 2)).unwrap(), 3);
    let kwargs = BTreeMap::from([("arg1", 1), ("arg2", 2)]);
    assert_eq!(s.commit_with::<i64>("get_sum", (), kwargs).unwrap(), 3);
    let kwargs = BTreeMap::from([("arg2", 2)]);
    assert_eq!(s.commit_with::<i64>("get_sum", (40,), kwargs).unwrap(), 42);

    assert_eq!(s.commit::<Vec<i64>>("numbers", ()).unwrap(), [1, 2, 3]);
    assert_eq!(
        s.commit::<(i64, String)>("pair", ()).unwrap(),
        (7, "seven".to_owned())
    );
    assert_eq!(
        s.commit::<Vec<Value>>("pair", ()).unwrap(),
        [Value::Int(7), Value::Str("seven".into())]
    );
    let expected = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
    assert_eq!(
        s.commit::<BTreeMap<String, i64>>("mapping", ()).unwrap(),
        expected
    );
    assert_eq!(
        s.commit::<HashMap<String, i64>>("mapping", ()).unwrap(),
        expected.into_iter().collect::<HashMap<_, _>>()
    );
    assert_eq!(s.commit::<Option<i64>>("nothing", ()).unwrap(), None);
    assert_eq!(s.commit::<Option<String>>("maybe", ()).unwrap(), None);
    let kwargs = BTreeMap::from([("arg", "given")]);
    assert_eq!(
        s.commit_with::<Option<String>>("maybe", (), kwargs)
            .unwrap()
            .as_deref(),
        Some("given")
    );

    // What Python makes of what the Rust client sends.
    let args = (
        vec![1, 2],
        "text",
        true,
        1.5,
        None::<i64>,
        (1, "x"),
        BTreeMap::from([("k", 1)]),
        Value::Bytes(b"\x00\xff".to_vec()),
        Value::Set(vec![Value::Int(1)]),
        1u128 << 70,
    );
    let kwargs = BTreeMap::from([("flag", Value::Bool(false)), ("none", Value::Nil)]);
    let (arg_types, kwarg_types): (Vec<String>, BTreeMap<String, String>) =
        s.commit_with("type_names", args, kwargs).unwrap();
    assert_eq!(
        arg_types,
        ["list", "str", "bool", "float", "NoneType", "tuple", "dict", "bytes", "set", "int"]
    );
    assert_eq!(
        kwarg_types,
        BTreeMap::from([
            ("flag".to_owned(), "bool".to_owned()),
            ("none".to_owned(), "NoneType".to_owned())
        ])
    );

    // And back, unchanged.
    let nested = Value::Map(vec![
        (
            Value::Str("a".into()),
            Value::List(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Nil,
                Value::Bool(true),
            ]),
        ),
        (
            Value::Str("b".into()),
            Value::Tuple(vec![Value::Bytes(b"x".to_vec())]),
        ),
        (Value::Str("big".into()), Value::Int(-(1 << 70))),
        (
            Value::Str("text".into()),
            Value::Str("h\u{e9}llo \u{2713}".into()),
        ),
        (
            Value::Int(3),
            Value::Set(vec![Value::Int(1), Value::Int(2)]),
        ),
    ]);
    assert_eq!(
        s.commit::<Value>("echo", (nested.clone(),)).unwrap(),
        nested
    );

    // An exception object the endpoint returned, and the one Python anyd
    // sends for an unknown endpoint.
    let err = s.commit::<Value>("fail", ("bad",)).unwrap_err();
    let remote = err.remote().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(
        (remote.kind.as_str(), remote.message.as_str()),
        ("ValueError", "bad")
    );
    let err = s.commit::<Value>("nope", ()).unwrap_err();
    let remote = err.remote().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(
        (remote.kind.as_str(), remote.message.as_str()),
        ("NotImplementedError", "nope")
    );
    assert_eq!(
        s.commit::<String>("echo", ("still here",)).unwrap(),
        "still here"
    );
    // Python anyd answers SIGENDS with SIGENDS, which end_session requires.
    s.end_session().unwrap();

    // Python anyd serves one client at a time: the next session starts
    // only because the last one ended. Dropping a session ends it too.
    let mut s = python_appd_options().connect(&address).unwrap();
    assert_eq!(s.commit::<i64>("get_sum", (2, 3)).unwrap(), 5);
    drop(s);
    let mut s = python_appd_options().connect(&address).unwrap();
    assert_eq!(s.commit::<String>("echo", ("again",)).unwrap(), "again");
    s.end_session().unwrap();
}

/// A Rust client authenticating with a Python 3.11 `Appd`: Python
/// challenges the legacy way and answers the Rust client's `{sha256}`
/// challenge with raw MD5, which the client accepts unless told to require
/// a modern digest.
#[test]
fn rust_client_authenticates_with_python_appd() {
    let venv = venv();
    let appd = PythonDaemon::start(&venv.python, &python(PYTHON_APPD), &[KEY]);
    let address = format!("tcp:127.0.0.1:{}", appd.port());
    let mut s = python_appd_options().connect(&address).unwrap();
    let handshake: Vec<String> = s.commit("last_handshake", ()).unwrap();
    let expected = if venv.legacy_handshake() {
        [
            "send challenge legacy 20 bytes",
            "recv digest raw 16 bytes",
            "send #WELCOME#",
            "recv challenge {sha256} 40 bytes",
            "send digest raw 16 bytes",
            "recv #WELCOME#",
        ]
    } else {
        [
            "send challenge {sha256} 40 bytes",
            "recv digest {sha256} 32 bytes",
            "send #WELCOME#",
            "recv challenge {sha256} 40 bytes",
            "send digest {sha256} 32 bytes",
            "recv #WELCOME#",
        ]
    };
    assert_eq!(handshake, expected);
    s.end_session().unwrap();

    // Last: a refused handshake makes Python anyd's accept() raise, which
    // ends that daemon.
    let refused = python_appd_options()
        .require_modern_digest(true)
        .connect(&address);
    if venv.legacy_handshake() {
        match refused {
            Err(Error::Auth(HandshakeError::LegacyRefused)) => {}
            other => panic!("expected the MD5 answer to be refused, got {other:?}"),
        }
    } else {
        refused.unwrap();
    }
}

/// Any language that speaks JSON: a plain Python socket client, no anyd and
/// no pickle, gets `{"ok": ...}` replies.
#[test]
fn json_client_in_plain_python_calls_rust_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = rust_daemon(
        &format!("unix:{}", dir.path().join("json.sock").display()),
        |a| a,
    );
    let path = unix_path(daemon.address()).to_str().unwrap();
    let out = run(Path::new(&base_python()), JSON_CLIENT, &[path]);
    assert!(
        out.status.success(),
        "the JSON client failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "OK");
    daemon.shutdown().unwrap();
}

/// A Python program with the handshake recorder in front.
fn python(body: &str) -> String {
    format!("{HANDSHAKE_RECORDER}\n{body}")
}
