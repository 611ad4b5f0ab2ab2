//! The contract: `describe` shows a daemon's document, `call` checks
//! arguments against it before sending, `schema diff` tells a breaking
//! change from a compatible one, by its exit status.

use anyd::schemars::JsonSchema;
use anyd::Appd;
use serde::{Deserialize, Serialize};

use super::{anydctl, ok, start};

/// A tunnel's state.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "anyd::schemars")]
pub(super) struct State {
    up: bool,
    mtu: u16,
}

/// A test interface.
#[anyd::interface(name = "tunnel", version = "1.0.0")]
pub(super) trait Tunnel {
    /// Brings it up.
    #[api(name = "connect")]
    fn up(&self, profile: String, mtu: Option<u16>) -> State;

    /// Its changes.
    fn watch(&self) -> anyd::Items<State>;
}

struct Daemon;

impl Tunnel for Daemon {
    fn up(&self, profile: String, mtu: Option<u16>) -> State {
        State {
            up: !profile.is_empty(),
            mtu: mtu.unwrap_or(1500),
        }
    }

    fn watch(&self) -> anyd::Items<State> {
        anyd::Items::from_iter([self.up("a".into(), None), self.up(String::new(), Some(9))])
    }
}

fn daemon() -> Appd {
    Appd::new()
        .mount(TunnelService::new(Daemon))
        .api("echo(arg)", |arg: String| arg)
}

#[test]
fn describe_shows_the_contract_as_text_and_as_json() {
    let (_d, addr, _dir) = start(daemon());
    let text = ok(&["describe", &addr]);
    let expected = "\
tunnel 1.0.0 (contract format 1, protocol 1)
A test interface.

connect(profile: string, mtu?: integer | null) -> State
    Brings it up.
watch() -> stream of State
    Its changes.
echo(arg: any (String)) -> any (String)
    errors: any kind

Types:
  State = {mtu: integer, up: boolean}  # A tunnel's state.
";
    assert_eq!(text, expected);
    let json = ok(&["describe", "--json", &addr]);
    let doc = anyd::contract::Document::from_json(&json).unwrap();
    let mut interface = TunnelContract::contract();
    assert_eq!(doc.methods[..2], interface.methods[..]);
    interface.methods.push(doc.methods[2].clone());
    assert_eq!(doc, interface);
}

#[test]
fn call_checks_the_arguments_against_the_schema_and_names_the_parameter() {
    let (_d, addr, _dir) = start(daemon());
    assert_eq!(
        ok(&["call", &addr, "connect", "office", "-k", "mtu=1400"]),
        "{\"up\":true,\"mtu\":1400}\n"
    );
    let run = anydctl(&["call", &addr, "connect", "42"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:#?}");
    assert!(
        run.stderr.starts_with(
            "anydctl: connect(): parameter 'profile': expected a string, got 42 (for the \
             string, quote it as JSON: '\"42\"')\n"
        ),
        "{run:#?}"
    );
    let run = anydctl(&["call", &addr, "connect", "office", "-k", "mtu=70000"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("parameter 'mtu': 70000 is out of range"),
        "{run:#?}"
    );
    let run = anydctl(&["call", &addr, "connect"]);
    assert!(
        run.stderr
            .contains("connect(): parameter 'profile': missing"),
        "{run:#?}"
    );
    // Unchecked, the daemon says no itself.
    let run = anydctl(&["call", "--no-check", &addr, "connect", "42"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(run.stderr.starts_with("TypeError: "), "{run:#?}");
    // A closure's parameters have no schema: anything goes to the daemon.
    let run = anydctl(&["call", &addr, "echo", "5"]);
    assert_eq!(run.code, 5, "{run:#?}");
    // A stream is known from the contract: called for its items at once.
    assert_eq!(
        ok(&["call", &addr, "watch"]),
        "{\"up\":true,\"mtu\":1500}\n{\"up\":false,\"mtu\":9}\n"
    );
}

#[test]
fn schema_diff_tells_breaking_from_compatible_by_its_exit_status() {
    let (_d, addr, dir) = start(daemon());
    let old = dir.path().join("old.json");
    std::fs::write(&old, ok(&["describe", "--json", &addr])).unwrap();
    let old = old.to_str().unwrap();

    // The same contract: nothing to say.
    assert_eq!(ok(&["schema", "diff", old, &addr]), "no changes\n");

    // Compatible: a new endpoint, a new optional parameter.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(old).unwrap()).unwrap();
    doc["methods"][0]["params"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "note", "required": false, "schema": {"type": "string"}}));
    let mut extra = doc["methods"][2].clone();
    extra["name"] = "echo2".into();
    doc["methods"].as_array_mut().unwrap().push(extra);
    let compatible = dir.path().join("compatible.json");
    std::fs::write(&compatible, doc.to_string()).unwrap();
    let compatible = compatible.to_str().unwrap();
    assert_eq!(
        ok(&["schema", "diff", old, compatible]),
        "compatible: connect: new optional parameter 'note'\n\
         compatible: echo2: new endpoint\n\
         compatible: 2 change(s), none breaking\n"
    );

    // Breaking the other way round: a parameter and an endpoint gone.
    let run = anydctl(&["schema", "diff", compatible, old]);
    assert_eq!(run.code, 7, "{run:#?}");
    assert_eq!(
        run.stdout,
        "breaking: connect: parameter 'note' removed\n\
         breaking: echo2: removed\n\
         BREAKING: 2 breaking change(s), 0 compatible\n"
    );

    // A narrowed parameter, from stdin.
    doc["methods"][0]["params"][1]["schema"]["maximum"] = 1500.into();
    let narrowed = doc.to_string();
    let run = super::run_program_with_stdin(&["schema", "diff", compatible, "-"], &narrowed);
    assert_eq!(run.code, 7, "{run:#?}");
    assert!(
        run.stdout.starts_with(
            "breaking: connect: parameter 'mtu' no longer accepts numbers above 1500\n"
        ),
        "{run:#?}"
    );

    // What is not a contract document is said so.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"methods\": []}").unwrap();
    let run = anydctl(&["schema", "diff", old, bad.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.starts_with(&format!(
            "anydctl: {}: not a contract document: missing field",
            bad.display()
        )),
        "{run:#?}"
    );
    let run = anydctl(&["schema", "diff", old, "/no/such/file.json"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .starts_with("anydctl: cannot read /no/such/file.json: "),
        "{run:#?}"
    );
}
