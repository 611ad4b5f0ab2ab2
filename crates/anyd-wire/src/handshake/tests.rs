//! The two state machines against each other, against an emulation of
//! Python 3.11 in memory, against the real `python3` over pipes, and against
//! arbitrary bytes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

const KEY: &[u8] = b"secret";

/// How a side ended a run.
#[derive(Debug, PartialEq)]
enum End {
    /// `is_done()` after its last step.
    Done,
    /// `receive` returned this error.
    Failed(HandshakeError),
    /// The peer stopped sending while this side still waited.
    Starved,
}

impl End {
    fn is_done(&self) -> bool {
        matches!(self, End::Done)
    }
}

/// Passes payloads between two sides in memory, the way two socket-owning
/// loops would, until neither can move. A side that fails sends
/// [`HandshakeError::send_before_close`] and then stops reading.
fn run_pair(server: &mut dyn Handshake, client: &mut dyn Handshake) -> (End, End) {
    let mut to_server = VecDeque::new();
    let mut to_client = VecDeque::new();
    to_client.extend(server.start());
    to_server.extend(client.start());
    let mut server_end = None;
    let mut client_end = None;

    fn feed(
        side: &mut dyn Handshake,
        inbox: &mut VecDeque<Vec<u8>>,
        outbox: &mut VecDeque<Vec<u8>>,
        end: &mut Option<End>,
    ) -> bool {
        if end.is_some() {
            return false;
        }
        let Some(payload) = inbox.pop_front() else {
            return false;
        };
        match side.receive(&payload) {
            Ok(step) => {
                outbox.extend(step.send);
                assert_eq!(step.done, side.is_done());
                if step.done {
                    *end = Some(End::Done);
                }
            }
            Err(err) => {
                outbox.extend(err.send_before_close().map(<[u8]>::to_vec));
                assert!(!side.is_done());
                *end = Some(End::Failed(err));
            }
        }
        true
    }

    loop {
        let a = feed(server, &mut to_server, &mut to_client, &mut server_end);
        let b = feed(client, &mut to_client, &mut to_server, &mut client_end);
        if !a && !b {
            break;
        }
    }
    let server_end = server_end.unwrap_or(End::Starved);
    let client_end = client_end.unwrap_or(End::Starved);
    // A finished handshake leaves nothing unread: the next frame belongs to
    // the session.
    if server_end.is_done() {
        assert!(to_server.is_empty(), "server left {to_server:?}");
    }
    if client_end.is_done() {
        assert!(to_client.is_empty(), "client left {to_client:?}");
    }
    (server_end, client_end)
}

fn options(digest: Digest, require_modern: bool) -> HandshakeOptions {
    HandshakeOptions {
        digest,
        require_modern,
    }
}

fn server(key: &[u8], options: HandshakeOptions) -> ServerHandshake {
    ServerHandshake::new(key, options, [0x11; CHALLENGE_RANDOM_LEN])
}

fn client(key: &[u8], options: HandshakeOptions) -> ClientHandshake {
    ClientHandshake::new(key, options, [0x22; CHALLENGE_RANDOM_LEN])
}

// ---------------------------------------------------------------------------
// Ours against ours.

#[test]
fn pair_same_key_completes() {
    for server_digest in Digest::ALL {
        for client_digest in Digest::ALL {
            let mut s = server(KEY, options(server_digest, false));
            let mut c = client(KEY, options(client_digest, false));
            assert_eq!(
                run_pair(&mut s, &mut c),
                (End::Done, End::Done),
                "{server_digest} / {client_digest}"
            );
        }
    }
}

#[test]
fn pair_different_keys_fail_on_both_sides() {
    let mut s = server(KEY, HandshakeOptions::default());
    let mut c = client(b"not the key", HandshakeOptions::default());
    // The server checks first: it sees the wrong digest and sends #FAILURE#,
    // which is how the client learns its key is wrong.
    assert_eq!(
        run_pair(&mut s, &mut c),
        (
            End::Failed(HandshakeError::WrongDigest),
            End::Failed(HandshakeError::Rejected)
        )
    );
}

#[test]
fn pair_require_modern_accepts_modern_peers() {
    for (server_modern, client_modern) in [(true, false), (false, true), (true, true)] {
        let mut s = server(KEY, options(Digest::Sha384, server_modern));
        let mut c = client(KEY, options(Digest::Sha3_256, client_modern));
        assert_eq!(run_pair(&mut s, &mut c), (End::Done, End::Done));
    }
}

#[test]
fn pair_require_modern_refuses_md5_challengers() {
    // A client that asks for md5 gets an md5 answer; a client that requires a
    // modern digest refuses it, whatever it asked for.
    let mut s = server(KEY, HandshakeOptions::default());
    let mut c = client(KEY, options(Digest::Md5, true));
    assert_eq!(
        run_pair(&mut s, &mut c),
        (
            End::Failed(HandshakeError::Rejected),
            End::Failed(HandshakeError::LegacyRefused)
        )
    );
}

#[test]
fn out_of_order_frames_are_errors() {
    // The client speaks first, with its own challenge.
    let mut s = server(KEY, HandshakeOptions::default());
    let _ = s.start();
    let err = s.receive(&[CHALLENGE, &[0; 20]].concat()).unwrap_err();
    assert_eq!(err, HandshakeError::MalformedReply { len: 31 });
    assert_eq!(err.send_before_close(), Some(FAILURE));

    // A verdict where the reply belongs.
    let mut s = server(KEY, HandshakeOptions::default());
    let _ = s.start();
    assert_eq!(
        s.receive(WELCOME),
        Err(HandshakeError::MalformedReply { len: 9 })
    );

    // A verdict where the server's challenge belongs.
    let mut c = client(KEY, HandshakeOptions::default());
    assert_eq!(
        c.receive(WELCOME),
        Err(HandshakeError::MissingChallengePrefix)
    );

    // A second challenge where the verdict belongs.
    let mut c = client(KEY, HandshakeOptions::default());
    let challenge = [CHALLENGE, &[0; 20]].concat();
    let _ = c.receive(&challenge).unwrap();
    assert_eq!(c.receive(&challenge), Err(HandshakeError::Rejected));

    // The server's reply replayed as its challenge.
    let mut s = server(KEY, HandshakeOptions::default());
    let mut c = client(KEY, HandshakeOptions::default());
    let reply = c.receive(&s.start().unwrap()).unwrap().send.unwrap();
    let welcome = s.receive(&reply).unwrap().send.unwrap();
    let _ = c.receive(&welcome).unwrap();
    assert_eq!(
        s.receive(&reply),
        Err(HandshakeError::MissingChallengePrefix)
    );
}

// ---------------------------------------------------------------------------
// Ours against Python 3.11, emulated line by line from
// multiprocessing/connection.py (deliver_challenge / answer_challenge).

/// Which of Python's steps comes next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PyStage {
    AnswerChallenge,
    ReadVerdict,
    ReadReply,
    Done,
}

/// Python 3.11 as `Listener.accept` (deliver, then answer) or `Client`
/// (answer, then deliver) runs it: 20-byte challenges, raw HMAC-MD5 of the
/// whole message whatever it contains, `==` comparison.
struct Py311 {
    key: Vec<u8>,
    is_server: bool,
    stage: PyStage,
    /// `os.urandom(MESSAGE_LENGTH)`.
    message: [u8; 20],
}

impl Py311 {
    fn server(key: &[u8]) -> Self {
        Py311 {
            key: key.to_vec(),
            is_server: true,
            stage: PyStage::ReadReply,
            message: [0x33; 20],
        }
    }

    fn client(key: &[u8]) -> Self {
        Py311 {
            key: key.to_vec(),
            is_server: false,
            stage: PyStage::AnswerChallenge,
            message: [0x44; 20],
        }
    }

    fn md5(&self, message: &[u8]) -> Vec<u8> {
        Digest::Md5.mac(&self.key, message)
    }
}

impl Handshake for Py311 {
    fn start(&mut self) -> Option<Vec<u8>> {
        // deliver_challenge: connection.send_bytes(CHALLENGE + message)
        self.is_server.then(|| [CHALLENGE, &self.message].concat())
    }

    fn receive(&mut self, payload: &[u8]) -> Result<Step, HandshakeError> {
        match self.stage {
            PyStage::AnswerChallenge => {
                // assert message[:len(CHALLENGE)] == CHALLENGE
                let message = payload
                    .strip_prefix(CHALLENGE)
                    .ok_or(HandshakeError::MissingChallengePrefix)?;
                self.stage = PyStage::ReadVerdict;
                Ok(Step::send(self.md5(message)))
            }
            PyStage::ReadVerdict => {
                if payload != WELCOME {
                    return Err(HandshakeError::Rejected);
                }
                if self.is_server {
                    self.stage = PyStage::Done;
                    Ok(Step {
                        send: None,
                        done: true,
                    })
                } else {
                    self.stage = PyStage::ReadReply;
                    Ok(Step::send([CHALLENGE, &self.message].concat()))
                }
            }
            PyStage::ReadReply => {
                // if response == digest: send WELCOME else send FAILURE, raise
                if payload != self.md5(&self.message) {
                    return Err(HandshakeError::WrongDigest);
                }
                if self.is_server {
                    self.stage = PyStage::AnswerChallenge;
                    Ok(Step::send(WELCOME.to_vec()))
                } else {
                    self.stage = PyStage::Done;
                    Ok(Step {
                        send: Some(WELCOME.to_vec()),
                        done: true,
                    })
                }
            }
            PyStage::Done => Err(HandshakeError::Unexpected {
                state: "python is done",
                len: payload.len(),
            }),
        }
    }

    fn is_done(&self) -> bool {
        self.stage == PyStage::Done
    }
}

#[test]
fn py311_client_against_our_server() {
    for digest in Digest::ALL {
        let mut s = server(KEY, options(digest, false));
        let mut py = Py311::client(KEY);
        assert_eq!(
            run_pair(&mut s, &mut py),
            (End::Done, End::Done),
            "{digest}"
        );
    }
}

#[test]
fn py311_client_with_wrong_key_against_our_server() {
    let mut s = server(KEY, HandshakeOptions::default());
    let mut py = Py311::client(b"wrong");
    assert_eq!(
        run_pair(&mut s, &mut py),
        (
            End::Failed(HandshakeError::WrongDigest),
            End::Failed(HandshakeError::Rejected)
        )
    );
}

#[test]
fn py311_client_against_our_server_requiring_modern() {
    let mut s = server(KEY, options(Digest::Sha256, true));
    let mut py = Py311::client(KEY);
    assert_eq!(
        run_pair(&mut s, &mut py),
        (
            End::Failed(HandshakeError::LegacyRefused),
            End::Failed(HandshakeError::Rejected)
        )
    );
}

#[test]
fn py311_server_against_our_client() {
    for digest in Digest::ALL {
        let mut py = Py311::server(KEY);
        let mut c = client(KEY, options(digest, false));
        assert_eq!(
            run_pair(&mut py, &mut c),
            (End::Done, End::Done),
            "{digest}"
        );
    }
}

#[test]
fn py311_server_with_wrong_key_against_our_client() {
    let mut py = Py311::server(b"wrong");
    let mut c = client(KEY, HandshakeOptions::default());
    assert_eq!(
        run_pair(&mut py, &mut c),
        (
            End::Failed(HandshakeError::WrongDigest),
            End::Failed(HandshakeError::Rejected)
        )
    );
}

#[test]
fn py311_server_against_our_client_requiring_modern() {
    // We still answer its legacy challenge, then refuse its md5 answer to ours.
    let mut py = Py311::server(KEY);
    let mut c = client(KEY, options(Digest::Sha256, true));
    assert_eq!(
        run_pair(&mut py, &mut c),
        (
            End::Failed(HandshakeError::Rejected),
            End::Failed(HandshakeError::LegacyRefused)
        )
    );
}

// ---------------------------------------------------------------------------
// Ours against the real python3, over its stdin and stdout.

/// Runs one side of Python's handshake over stdin/stdout frames (4-byte
/// big-endian length, then the payload). Exit 0 on success, 3 on
/// `AuthenticationError` with the message on stderr.
const PY_SCRIPT: &str = r#"
import struct, sys
import multiprocessing.connection as mc

class Frames:
    def send_bytes(self, payload):
        sys.stdout.buffer.write(struct.pack("!i", len(payload)) + payload)
        sys.stdout.buffer.flush()

    def recv_bytes(self, maxlength=None):
        header = sys.stdin.buffer.read(4)
        if len(header) < 4:
            raise EOFError
        (size,) = struct.unpack("!i", header)
        if maxlength is not None and size > maxlength:
            raise OSError("bad message length")
        payload = sys.stdin.buffer.read(size)
        if len(payload) < size:
            raise EOFError
        return payload

role, key = sys.argv[1], sys.argv[2].encode()
conn = Frames()
try:
    if role == "server":  # as Listener.accept()
        mc.deliver_challenge(conn, key)
        mc.answer_challenge(conn, key)
    else:  # as Client()
        mc.answer_challenge(conn, key)
        mc.deliver_challenge(conn, key)
except mc.AuthenticationError as e:
    print("AuthenticationError:", e, file=sys.stderr)
    sys.exit(3)
print("OK", file=sys.stderr)
"#;

/// The same bound on every I/O test: a stuck peer fails the test instead of
/// hanging it.
const PY_TIMEOUT: Duration = Duration::from_secs(30);

fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = i32::try_from(payload.len()).expect("handshake payloads are small");
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut header = [0; 4];
    r.read_exact(&mut header)?;
    let len = usize::try_from(i32::from_be_bytes(header))
        .ok()
        .filter(|&len| len <= MAX_HANDSHAKE_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad handshake frame length"))?;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok(payload)
}

/// How our side ended against a real peer.
#[derive(Debug)]
enum Driven {
    Done,
    Failed(HandshakeError),
    Io(#[expect(dead_code, reason = "read through Debug in assertion messages")] io::Error),
}

/// The loop a socket-owning caller writes (see the module docs).
fn drive(hs: &mut dyn Handshake, r: &mut impl Read, w: &mut impl Write) -> Driven {
    if let Some(payload) = hs.start() {
        if let Err(err) = write_frame(w, &payload) {
            return Driven::Io(err);
        }
    }
    while !hs.is_done() {
        let payload = match read_frame(r) {
            Ok(payload) => payload,
            Err(err) => return Driven::Io(err),
        };
        match hs.receive(&payload) {
            Ok(step) => {
                if let Some(reply) = step.send {
                    if let Err(err) = write_frame(w, &reply) {
                        return Driven::Io(err);
                    }
                }
            }
            Err(err) => {
                if let Some(last) = err.send_before_close() {
                    // The peer may already be gone; the error is what matters.
                    let _ = write_frame(w, last);
                }
                return Driven::Failed(err);
            }
        }
    }
    Driven::Done
}

/// What the Python process did.
#[derive(Debug)]
struct PyEnd {
    code: Option<i32>,
    stderr: String,
}

/// Runs `ours` against `python3` playing `role` with `py_key`.
fn against_python(
    role: &str,
    py_key: &str,
    mut ours: Box<dyn Handshake + Send>,
) -> (Driven, PyEnd) {
    let mut child = Command::new("python3")
        .args(["-c", PY_SCRIPT, role, py_key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be on PATH for the compatibility tests");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();

    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let driven = drive(ours.as_mut(), &mut stdout, &mut stdin);
        // Closing stdin here lets a Python still reading see EOF and exit.
        drop(stdin);
        let _ = tx.send(driven);
    });
    let driven = match rx.recv_timeout(PY_TIMEOUT) {
        Ok(driven) => driven,
        Err(_) => {
            let _ = child.kill();
            panic!("handshake with python3 timed out");
        }
    };

    let deadline = Instant::now() + PY_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("python3 did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    (
        driven,
        PyEnd {
            code: status.code(),
            stderr: text,
        },
    )
}

/// True for Python 3.11 and older, which can only answer with md5.
fn python_is_legacy() -> bool {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys; sys.exit(0 if sys.version_info < (3, 12) else 1)",
        ])
        .status()
        .expect("python3 must be on PATH for the compatibility tests");
    status.success()
}

fn assert_py_ok(py: &PyEnd) {
    assert_eq!(py.code, Some(0), "python: {}", py.stderr);
    assert!(py.stderr.contains("OK"), "python: {}", py.stderr);
}

fn assert_py_auth_error(py: &PyEnd, message: &str) {
    assert_eq!(py.code, Some(3), "python: {}", py.stderr);
    assert!(py.stderr.contains(message), "python: {}", py.stderr);
}

#[test]
fn real_python_client_against_our_server() {
    let ours = Box::new(server(b"secret", HandshakeOptions::default()));
    let (driven, py) = against_python("client", "secret", ours);
    assert!(matches!(driven, Driven::Done), "{driven:?}");
    assert_py_ok(&py);
}

#[test]
fn real_python_client_with_wrong_key_against_our_server() {
    let ours = Box::new(server(b"secret", HandshakeOptions::default()));
    let (driven, py) = against_python("client", "wrong", ours);
    assert!(
        matches!(driven, Driven::Failed(HandshakeError::WrongDigest)),
        "{driven:?}"
    );
    assert_py_auth_error(&py, "digest sent was rejected");
}

#[test]
fn real_python_client_against_our_server_requiring_modern() {
    let ours = Box::new(server(b"secret", options(Digest::Sha256, true)));
    let (driven, py) = against_python("client", "secret", ours);
    if python_is_legacy() {
        assert!(
            matches!(driven, Driven::Failed(HandshakeError::LegacyRefused)),
            "{driven:?}"
        );
        assert_py_auth_error(&py, "digest sent was rejected");
    } else {
        assert!(matches!(driven, Driven::Done), "{driven:?}");
        assert_py_ok(&py);
    }
}

#[test]
fn real_python_server_against_our_client() {
    let ours = Box::new(client(b"secret", HandshakeOptions::default()));
    let (driven, py) = against_python("server", "secret", ours);
    assert!(matches!(driven, Driven::Done), "{driven:?}");
    assert_py_ok(&py);
}

#[test]
fn real_python_server_with_wrong_key_against_our_client() {
    let ours = Box::new(client(b"secret", HandshakeOptions::default()));
    let (driven, py) = against_python("server", "wrong", ours);
    assert!(
        matches!(driven, Driven::Failed(HandshakeError::Rejected)),
        "{driven:?}"
    );
    assert_py_auth_error(&py, "digest received was wrong");
}

#[test]
fn real_python_server_against_our_client_requiring_modern() {
    let ours = Box::new(client(b"secret", options(Digest::Sha256, true)));
    let (driven, py) = against_python("server", "secret", ours);
    if python_is_legacy() {
        assert!(
            matches!(driven, Driven::Failed(HandshakeError::LegacyRefused)),
            "{driven:?}"
        );
        assert_py_auth_error(&py, "digest sent was rejected");
    } else {
        assert!(matches!(driven, Driven::Done), "{driven:?}");
        assert_py_ok(&py);
    }
}

// ---------------------------------------------------------------------------
// Arbitrary bytes at every state.

/// A server at `stage`: 0 new, 1 challenge sent, 2 client welcomed, 3 client
/// challenge answered, 4 done, 5 failed.
fn server_at(stage: u8) -> ServerHandshake {
    let mut s = server(KEY, HandshakeOptions::default());
    if stage == 0 {
        return s;
    }
    let mut c = client(KEY, HandshakeOptions::default());
    let challenge = s.start().unwrap();
    if stage == 5 {
        let _ = s.receive(b"wrong");
        return s;
    }
    let reply = c.receive(&challenge).unwrap().send.unwrap();
    if stage == 1 {
        return s;
    }
    let welcome = s.receive(&reply).unwrap().send.unwrap();
    if stage == 2 {
        return s;
    }
    let client_challenge = c.receive(&welcome).unwrap().send.unwrap();
    let answer = s.receive(&client_challenge).unwrap().send.unwrap();
    if stage == 3 {
        return s;
    }
    let verdict = c.receive(&answer).unwrap().send.unwrap();
    let _ = s.receive(&verdict).unwrap();
    s
}

/// A client at `stage`: 0 new, 1 answered, 2 challenge sent, 3 done,
/// 4 failed.
fn client_at(stage: u8) -> ClientHandshake {
    let mut c = client(KEY, HandshakeOptions::default());
    if stage == 4 {
        let _ = c.receive(b"garbage");
        return c;
    }
    let mut s = server(KEY, HandshakeOptions::default());
    if stage == 0 {
        return c;
    }
    let reply = c.receive(&s.start().unwrap()).unwrap().send.unwrap();
    if stage == 1 {
        return c;
    }
    let welcome = s.receive(&reply).unwrap().send.unwrap();
    let challenge = c.receive(&welcome).unwrap().send.unwrap();
    if stage == 2 {
        return c;
    }
    let answer = s.receive(&challenge).unwrap().send.unwrap();
    let _ = c.receive(&answer).unwrap();
    c
}

/// Payloads worth throwing: raw bytes, and bytes behind the prefixes the
/// parsers branch on.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let bytes = || vec(any::<u8>(), 0..300);
    prop_oneof![
        bytes(),
        bytes().prop_map(|b| [CHALLENGE, &b].concat()),
        bytes().prop_map(|b| [CHALLENGE, b"{", &b].concat()),
        (0..Digest::ALL.len(), bytes()).prop_map(|(i, b)| {
            let name = Digest::ALL[i].name().as_bytes();
            [CHALLENGE, b"{", name, b"}", &b].concat()
        }),
        bytes().prop_map(|b| [b"{".as_slice(), &b].concat()),
        Just(WELCOME.to_vec()),
        Just(FAILURE.to_vec()),
    ]
}

/// Feeds `payloads` and checks what must hold whatever they are: no panic,
/// an error is final, done is final, and whatever we send fits in a
/// handshake frame.
fn feed_all(hs: &mut dyn Handshake, payloads: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let mut failed = false;
    for payload in payloads {
        let was_done = hs.is_done();
        match hs.receive(payload) {
            Ok(step) => {
                prop_assert!(!failed, "accepted a payload after an error");
                prop_assert!(!was_done, "accepted a payload after completing");
                prop_assert_eq!(step.done, hs.is_done());
                if let Some(send) = step.send {
                    prop_assert!(send.len() <= MAX_HANDSHAKE_FRAME);
                }
            }
            Err(_) => {
                failed = true;
                prop_assert_eq!(hs.is_done(), was_done);
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn server_survives_anything(stage in 0u8..6, payloads in vec(payload(), 1..4)) {
        let mut s = server_at(stage);
        feed_all(&mut s, &payloads)?;
    }

    #[test]
    fn client_survives_anything(stage in 0u8..5, payloads in vec(payload(), 1..4)) {
        let mut c = client_at(stage);
        feed_all(&mut c, &payloads)?;
    }

    #[test]
    fn pure_functions_survive_anything(
        key in vec(any::<u8>(), 0..80),
        message in payload(),
        reply in payload(),
        require_modern in any::<bool>(),
    ) {
        if let Ok(answered) = answer(&key, &message) {
            // Whatever we answer, we accept.
            let m = &message[CHALLENGE.len()..];
            let checked = verify(&key, m, &answered, require_modern);
            prop_assert!(
                checked.is_ok() || checked == Err(HandshakeError::LegacyRefused),
                "{:?}", checked
            );
        }
        let _ = verify(&key, &message, &reply, require_modern);
    }
}

#[test]
fn stages_are_what_they_claim() {
    // The property tests are only as good as the states they start from.
    assert!(server_at(4).is_done());
    assert!(client_at(3).is_done());
    for stage in 0..4 {
        assert!(!server_at(stage).is_done());
    }
    let mut failed = server_at(5);
    assert!(matches!(
        failed.receive(b""),
        Err(HandshakeError::Unexpected { .. })
    ));
    let mut failed = client_at(4);
    assert!(matches!(
        failed.receive(b""),
        Err(HandshakeError::Unexpected { .. })
    ));
    assert!(format!("{:?}", server_at(3)).contains("verdict"));
    assert!(format!("{:?}", client_at(2)).contains("reply"));
}
