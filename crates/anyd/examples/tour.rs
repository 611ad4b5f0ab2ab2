//! A tour of anyd in one command: a daemon on a temporary Unix socket with
//! an authkey, called every way a program would, with a transcript.
//!
//! ```sh
//! cargo run -p anyd-ipc --example tour
//! RUST_LOG=debug cargo run -p anyd-ipc --example tour   # with the daemon's log
//! ```
//!
//! Every step checks what it shows: the tour exits non-zero with a message
//! as soon as something does not behave as described, so it doubles as a
//! smoke test.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use anyd::{
    ApiError, Appd, AsyncClientSession, ClientOptions, ClientSession, Codec, EndpointInfo, Error,
    Hub, Items, Peer, RemoteError, Value,
};
use serde::{Deserialize, Serialize};

const AUTHKEY: &[u8] = b"tour secret";

/// How long the blocking endpoint sleeps.
const SLOW: Duration = Duration::from_secs(1);

/// The application's own errors. Each becomes an error reply whose kind a
/// client can match on (and that a Python client raises as an exception).
enum BankError {
    InsufficientFunds { balance: i64, wanted: i64 },
    NegativeAmount,
}

impl ApiError for BankError {
    fn into_remote(self) -> RemoteError {
        match self {
            BankError::InsufficientFunds { balance, wanted } => {
                let mut e = RemoteError::new(
                    "BankError",
                    format!("cannot withdraw {wanted}: the balance is {balance}"),
                );
                // Structured detail, for a client that wants more than text.
                e.data = Some(Value::Map(vec![
                    ("balance".into(), balance.into()),
                    ("wanted".into(), wanted.into()),
                ]));
                e
            }
            BankError::NegativeAmount => RemoteError::new("ValueError", "negative amount"),
        }
    }
}

fn withdraw(amount: i64) -> Result<i64, BankError> {
    const BALANCE: i64 = 100;
    if amount < 0 {
        Err(BankError::NegativeAmount)
    } else if amount > BALANCE {
        Err(BankError::InsufficientFunds {
            balance: BALANCE,
            wanted: amount,
        })
    } else {
        Ok(BALANCE - amount)
    }
}

/// What `watch()` pushes: a withdrawal someone made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Withdrawal {
    amount: i64,
    balance: i64,
}

fn daemon(withdrawals: &Hub<Withdrawal>) -> Appd {
    let published = withdrawals.clone();
    let watched = withdrawals.clone();
    Appd::new()
        .api("echo(arg)", |arg: Value| arg)
        .doc("Returns its argument.")
        .api("get_sum(arg1, arg2)", |a: i64, b: i64| a + b)
        .doc("Adds two integers.")
        .api(
            "greet(name, greeting)",
            |name: String, greeting: Option<String>| {
                format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello"))
            },
        )
        .doc("An optional parameter may be left out.")
        .api("withdraw(amount)", move |amount: i64| {
            let balance = withdraw(amount)?;
            // Pushed to every watcher; nobody waits for them.
            published.publish(Withdrawal { amount, balance });
            Ok::<i64, BankError>(balance)
        })
        .doc("Fails with BankError when the balance is too low.")
        .api("count(n)", |n: u64| Items::from_iter(0..n))
        .doc("A stream: 0, 1, ... n-1, each sent as it is made.")
        .api("watch()", move || watched.subscribe())
        .doc("A stream: every withdrawal from now on, by anyone.")
        .api("slow()", || {
            // Plain blocking code: it holds up its own connection only.
            thread::sleep(SLOW);
            "rested"
        })
        .doc("Sleeps one second.")
        .api("whoami()", |peer: Peer| peer.uid())
        .doc("The caller's uid, as the kernel reports it.")
        .api("crash()", || -> i64 { panic!("something went very wrong") })
        .doc("Panics.")
        .authkey(AUTHKEY)
}

/// Prints a step's heading.
fn step(title: &str) {
    println!("\n# {title}");
}

/// Prints one call and its result.
fn show(call: &str, result: &impl Serialize) {
    let shown = serde_json::to_string(result).unwrap_or_else(|e| format!("<{e}>"));
    println!("-> {call}  = {shown}");
}

/// Prints one call that failed with an error reply.
fn show_err(call: &str, e: &RemoteError) {
    match &e.data {
        Some(data) => println!(
            "-> {call}  ! {}: {}  (data: {})",
            e.kind,
            e.message,
            serde_json::to_string(data).unwrap_or_default()
        ),
        None => println!("-> {call}  ! {}: {}", e.kind, e.message),
    }
}

/// The error reply of a call that must fail with one.
fn remote_err<T: std::fmt::Debug>(r: anyd::Result<T>) -> RemoteError {
    match r {
        Err(Error::Remote(e)) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() -> anyd::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    quiet_handler_panics();
    let started = Instant::now();

    step("start a daemon");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tour.sock");
    let withdrawals = Hub::new(16);
    let running = daemon(&withdrawals)
        .bind(format!("unix:{}", path.display()))?
        .spawn()?;
    let address = running.address().clone();
    println!("   listening on {address} (authkey required)");
    assert!(path.exists(), "the socket file exists while serving");
    let options = ClientOptions::new().authkey(AUTHKEY);

    step("calls");
    let mut s = options.clone().connect(&address)?;
    let r: String = s.commit("echo", ("hello",))?;
    show(r#"echo("hello")"#, &r);
    assert_eq!(r, "hello");
    let r: Value = s.commit("echo", (vec![Value::from(1), "two".into(), 3.5.into()],))?;
    show(r#"echo([1, "two", 3.5])"#, &r);
    assert_eq!(r, Value::List(vec![1.into(), "two".into(), 3.5.into()]));
    let r: i64 = s.commit("get_sum", (1, 2))?;
    show("get_sum(1, 2)", &r);
    assert_eq!(r, 3);

    step("keyword arguments, and an optional one left out");
    let r: i64 = s.commit_with("get_sum", (), BTreeMap::from([("arg1", 40), ("arg2", 2)]))?;
    show("get_sum(arg1=40, arg2=2)", &r);
    assert_eq!(r, 42);
    let r: String = s.commit_with("greet", ("Ada",), BTreeMap::from([("greeting", "Hi")]))?;
    show(r#"greet("Ada", greeting="Hi")"#, &r);
    assert_eq!(r, "Hi, Ada!");
    let r: String = s.commit("greet", ("Ada",))?;
    show(r#"greet("Ada")"#, &r);
    assert_eq!(r, "Hello, Ada!");

    step("the caller, as the kernel reports it");
    let r: Option<u32> = s.commit("whoami", ())?;
    show("whoami()", &r);
    assert_eq!(r, Some(rustix::process::getuid().as_raw()));

    step("errors reach the caller; the session goes on");
    let r: i64 = s.commit("withdraw", (30,))?;
    show("withdraw(30)", &r);
    assert_eq!(r, 70);
    let e = remote_err(s.commit::<i64>("withdraw", (500,)));
    show_err("withdraw(500)", &e);
    assert_eq!(e.kind, "BankError");
    assert!(e.data.is_some());
    let e = remote_err(s.commit::<i64>("withdraw", (-1,)));
    show_err("withdraw(-1)", &e);
    assert_eq!(e.kind, "ValueError");
    let e = remote_err(s.commit::<Value>("launch_rockets", ()));
    show_err("launch_rockets()", &e);
    assert_eq!(e.kind, "NotImplementedError");
    let e = remote_err(s.commit::<i64>("get_sum", ("one", 2)));
    show_err(r#"get_sum("one", 2)"#, &e);
    assert_eq!(e.kind, "TypeError");
    let e = remote_err(s.commit::<i64>("get_sum", (1, 2, 3)));
    show_err("get_sum(1, 2, 3)", &e);
    assert_eq!(e.kind, "TypeError");
    let e = remote_err(s.commit::<i64>("get_sum", (1,)));
    show_err("get_sum(1)", &e);
    assert_eq!(e.kind, "TypeError");
    match s.commit::<i64>("echo", ("not a number",)) {
        Err(e @ Error::ResultType(_)) => println!(r#"-> echo("not a number") as i64  ! {e}"#),
        other => panic!("expected a result type error, got {other:?}"),
    }
    let r: i64 = s.commit("get_sum", (2, 2))?;
    show("get_sum(2, 2)", &r);
    assert_eq!(r, 4);

    step("a panicking handler is an error reply; the daemon stays up");
    let e = remote_err(s.commit::<i64>("crash", ()));
    show_err("crash()", &e);
    assert_eq!(e.kind, "RuntimeError");
    // The panic's own text is for the daemon's log, not for callers
    // (Appd::panic_details(true) would send it).
    assert!(!e.message.contains("something went very wrong"), "{e}");
    let r: String = s.commit("echo", ("still here",))?;
    show(r#"echo("still here")"#, &r);
    assert_eq!(r, "still here");

    step("a wrong key is refused before anything is decoded");
    match ClientOptions::new().authkey("guess").connect(&address) {
        Err(e @ Error::Auth(_)) => println!("-> connect with a wrong key  ! {e}"),
        other => panic!("expected an authentication error, got {other:?}"),
    }
    match ClientSession::connect(&address) {
        Err(e) => println!("-> connect without a key  ! {e}"),
        Ok(mut s) => {
            // Connecting needs no key; the daemon's first frame is its
            // challenge, which the client recognises in place of a reply.
            let r = s.commit::<Value>("echo", ("sneaky",));
            println!("-> connect without a key, then echo  ! {}", r.unwrap_err());
        }
    }

    step("introspection: anyd.endpoints");
    let endpoints: Vec<EndpointInfo> = s.commit("anyd.endpoints", ())?;
    for e in &endpoints {
        let params: Vec<String> = e
            .params
            .iter()
            .map(|p| {
                let name = p.name.as_deref().unwrap_or("_");
                let opt = if p.optional { "?" } else { "" };
                format!("{name}{opt}: {}", p.ty)
            })
            .collect();
        let returns = if e.stream {
            format!("stream of {}", e.returns)
        } else {
            e.returns.clone()
        };
        println!(
            "   {}({}) -> {returns}    {}",
            e.name,
            params.join(", "),
            e.doc
        );
    }
    let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["echo", "get_sum", "greet", "withdraw", "count", "watch", "slow", "whoami", "crash"]
    );
    let streams: Vec<&str> = endpoints
        .iter()
        .filter(|e| e.stream)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(streams, ["count", "watch"]);
    let pong: bool = s.commit("anyd.ping", ())?;
    show("anyd.ping()", &pong);
    assert!(pong);

    step("streams: items as they come, a cancel, a push");
    let items: Vec<u64> = s.stream("count", (5,))?.collect::<anyd::Result<_>>()?;
    show("count(5)", &items);
    assert_eq!(items, [0, 1, 2, 3, 4]);
    // An endless stream, left after three items: the cancel reaches the
    // daemon, which drops its iterator, and the session goes on.
    let mut endless = s.stream::<u64>("count", (u64::MAX,))?;
    let first: Vec<u64> = endless.by_ref().take(3).collect::<anyd::Result<_>>()?;
    endless.cancel()?;
    show("count(2**64 - 1), three items then cancelled", &first);
    assert_eq!(first, [0, 1, 2]);
    let r: i64 = s.commit("get_sum", (1, 1))?;
    show("get_sum(1, 1), on the same session", &r);
    assert_eq!(r, 2);
    // A watcher on a session of its own sees what another client does.
    let mut watcher = options.clone().connect(&address)?;
    let mut events = watcher.stream::<Withdrawal>("watch", ())?;
    // Subscribed once the hub counts the watcher: from then on, no
    // withdrawal is missed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while withdrawals.subscribers() == 0 {
        assert!(Instant::now() < deadline, "watch() did not subscribe");
        thread::sleep(Duration::from_millis(1));
    }
    let r: i64 = s.commit("withdraw", (25,))?;
    show("withdraw(25)", &r);
    let seen = events.next().expect("the stream goes on")?;
    show("the watcher's next item", &seen);
    assert_eq!(
        seen,
        Withdrawal {
            amount: 25,
            balance: 75
        }
    );
    drop(events);
    watcher.end_session()?;

    step("the same call in every codec");
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        let mut c = options.clone().codec(codec).connect(&address)?;
        let r: i64 = c.commit("get_sum", (20, 22))?;
        show(&format!("get_sum(20, 22) over {codec:?}"), &r);
        assert_eq!(r, 42);
        c.end_session()?;
    }

    step("a blocking handler delays nobody else");
    let slow_client = {
        let options = options.clone();
        let address = address.clone();
        thread::spawn(move || -> anyd::Result<(String, Duration)> {
            let mut c = options.connect(&address)?;
            let t = Instant::now();
            let r: String = c.commit("slow", ())?;
            Ok((r, t.elapsed()))
        })
    };
    // Let the slow call get going first.
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let mut quick = options.clone().connect(&address)?;
    let r: String = quick.commit("echo", ("meanwhile",))?;
    let quick_took = t.elapsed();
    quick.end_session()?;
    let (slow_result, slow_took) = slow_client.join().expect("the slow client panicked")?;
    show(
        &format!("slow()                 (took {})", ms(slow_took)),
        &slow_result,
    );
    show(
        &format!(
            r#"echo("meanwhile")      (connect + call took {}, while slow() ran)"#,
            ms(quick_took)
        ),
        &r,
    );
    assert!(slow_took >= SLOW);
    assert!(
        quick_took < Duration::from_millis(500),
        "a call took {quick_took:?} while another connection was blocked"
    );

    step("concurrent clients");
    const CLIENTS: usize = 8;
    const CALLS: i64 = 500;
    let t = Instant::now();
    let workers: Vec<_> = (0..CLIENTS as i64)
        .map(|id| {
            let options = options.clone();
            let address = address.clone();
            thread::spawn(move || -> anyd::Result<()> {
                let mut c = options.connect(&address)?;
                for i in 0..CALLS {
                    let r: i64 = c.commit("get_sum", (id * 1_000_000, i))?;
                    assert_eq!(r, id * 1_000_000 + i, "a reply for another call");
                }
                c.end_session()
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client thread panicked")?;
    }
    let took = t.elapsed();
    let total = CLIENTS as f64 * CALLS as f64;
    println!(
        "   {CLIENTS} threads x {CALLS} calls, every reply checked: {} ({:.0} calls/s)",
        ms(took),
        total / took.as_secs_f64()
    );

    step("the async client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut a = AsyncClientSession::connect_with(&address, options.clone()).await?;
        let r: String = a.commit("echo", ("from async",)).await?;
        show(r#"echo("from async").await"#, &r);
        assert_eq!(r, "from async");
        // Two sessions at once on one thread: the slow call does not hold
        // up the other one.
        let mut b = AsyncClientSession::connect_with(&address, options.clone()).await?;
        let t = Instant::now();
        let (slow, sum) = tokio::join!(a.commit::<String>("slow", ()), async {
            let r = b.commit::<i64>("get_sum", (1, 1)).await;
            (r, t.elapsed())
        });
        let (sum, sum_took) = sum;
        show(
            &format!(
                "join!(slow(), get_sum(1, 1))  (get_sum answered after {})",
                ms(sum_took)
            ),
            &(slow?, sum?),
        );
        assert!(sum_took < Duration::from_millis(500));
        a.end_session().await?;
        b.end_session().await?;
        Ok::<(), Error>(())
    })?;

    step("an interface: a daemon and its CLI, built apart (vpnmd and vpnm)");
    interface_pair(&dir)?;

    step("shutdown");
    s.end_session()?;
    running.shutdown()?;
    println!(
        "   stopped; socket file removed: {}",
        if path.exists() { "no" } else { "yes" }
    );
    assert!(!path.exists(), "the socket file is removed on shutdown");
    match ClientSession::connect(&address) {
        Err(e @ Error::Connect { .. }) => println!("-> connect after shutdown  ! {e}"),
        other => panic!("expected a connection error, got {other:?}"),
    }

    println!("\ntour complete in {}", ms(started.elapsed()));
    Ok(())
}

/// A pretend VPN daemon that implements the interface of the example
/// pair (the `vpnm-api` crate): what vpnmd does with files and a root-only
/// log, in memory.
#[derive(Default)]
struct PretendVpn {
    state: std::sync::Mutex<vpnm_api::State>,
    events: Option<Hub<vpnm_api::Event>>,
}

impl vpnm_api::Vpnm for PretendVpn {
    fn status(&self) -> Result<vpnm_api::State, vpnm_api::VpnError> {
        Ok(self.state.lock().unwrap().clone())
    }

    fn watch(&self, _: &Peer) -> Items<vpnm_api::Event> {
        self.events
            .as_ref()
            .map_or_else(|| Items::from_iter([]), Hub::subscribe)
    }

    fn up(&self, profile: String, peer: &Peer) -> Result<vpnm_api::State, vpnm_api::VpnError> {
        let mut state = self.state.lock().unwrap();
        if state.tunnels.contains_key(&profile) {
            return Err(vpnm_api::VpnError::AlreadyUp(profile));
        }
        let tunnel = vpnm_api::Tunnel {
            by_uid: peer.uid(),
            since: 0,
        };
        state.tunnels.insert(profile, tunnel);
        Ok(state.clone())
    }

    fn down(&self, profile: String, _: &Peer) -> Result<vpnm_api::State, vpnm_api::VpnError> {
        let mut state = self.state.lock().unwrap();
        match state.tunnels.remove(&profile) {
            Some(_) => Ok(state.clone()),
            None => Err(vpnm_api::VpnError::NotConnected(profile)),
        }
    }

    fn open_log(&self, _: &Peer) -> Result<anyd::Fd, vpnm_api::VpnError> {
        let file =
            std::fs::File::open("/dev/null").map_err(|e| vpnm_api::VpnError::Io(e.to_string()))?;
        Ok(anyd::Fd::from(file))
    }
}

/// The interface step: the contract from the interface alone, a daemon
/// that implements it, the typed client vpnm uses, and the same contract
/// from the running daemon.
fn interface_pair(dir: &tempfile::TempDir) -> anyd::Result<()> {
    use vpnm_api::{VpnmClient, VpnmContract, VpnmService};

    let contract = VpnmContract::contract();
    let names: Vec<_> = contract.methods.iter().map(|m| m.name.as_str()).collect();
    println!(
        "   the interface crate, with no daemon code: {} {}, {names:?}",
        VpnmContract::NAME,
        VpnmContract::VERSION
    );
    let path = dir.path().join("vpn.sock");
    let running = Appd::new()
        .mount(VpnmService::new(PretendVpn::default()))
        .bind(path.to_str().unwrap_or_default())?
        .spawn()?;
    // What vpnm does: the typed client, the interface's types.
    let mut vpn = VpnmClient::connect(running.address())?;
    let state = vpn.up("office".into())?;
    show("vpn.up(\"office\")", &state);
    assert!(state.tunnels.contains_key("office"));
    let e = remote_err(vpn.up("office".into()));
    show_err("vpn.up(\"office\")", &e);
    assert_eq!(e.kind, "VpnError");
    // What other languages read: the daemon's contract, the same.
    let mut s = ClientSession::connect(running.address())?;
    let served: anyd::contract::Document = s.commit("anyd.describe", ())?;
    println!(
        "-> anyd.describe  = {} methods, types {:?}",
        served.methods.len(),
        served.components.schemas.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        served, contract,
        "the daemon serves its interface's contract"
    );
    vpn.end_session()?;
    s.end_session()?;
    running.shutdown()
}

/// Keeps the transcript readable: the panic in `crash()` is on purpose and
/// already shown as the error reply, so the daemon's connection threads do
/// not print it. Any other panic (a failed check) is printed as usual.
fn quiet_handler_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name() != Some("anyd-conn") {
            default(info);
        }
    }));
}
