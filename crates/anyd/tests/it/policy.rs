//! Allow rules against callers with real, distinct credentials.
//!
//! The tests run as root; each caller is a thread that switches its own
//! uid, gid and supplementary groups (Linux credentials are per thread at
//! the system call level) before it connects, so the daemon's kernel-given
//! peer credentials are genuinely another user's.

use std::collections::BTreeMap;

use anyd::{Allow, Appd, ClientSession, EndpointInfo, Error, Peer, Running};

const NOBODY: u32 = 65534;
/// A group id no account on the machine has; only our caller thread gets
/// it, as a supplementary group.
const EXTRA_GROUP: u32 = 4242;

use anyd_testkit::{raw, root};

use root::as_user;

fn daemon() -> Running {
    // An abstract socket: no file permissions stand between the test's
    // users and the daemon, so the policy is the only gate.
    let name = format!(
        "anyd-policy-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    Appd::new()
        .api("open()", || "anyone")
        .api("root_only()", || "root")
        .restrict(Allow::root())
        .api("extra_group()", || "member")
        .restrict(Allow::gid(EXTRA_GROUP))
        .api("nobody_or_root()", || "either")
        .restrict(Allow::uid(NOBODY).or(Allow::root()))
        .api("who()", |p: Peer| (p.uid(), p.gid(), p.groups().to_vec()))
        .bind(format!("unix:@{name}"))
        .unwrap()
        .spawn()
        .unwrap()
}

/// What a caller gets from each endpoint: its result or its error kind.
fn survey(address: String) -> (BTreeMap<String, String>, Vec<String>) {
    let mut s = ClientSession::connect(address.as_str()).unwrap();
    let mut out = BTreeMap::new();
    for ep in ["open", "root_only", "extra_group", "nobody_or_root"] {
        let r = match s.commit::<String>(ep, ()) {
            Ok(v) => v,
            Err(Error::Remote(e)) => {
                // Word for word what a missing endpoint gets.
                assert_eq!(e.message, ep, "{e}");
                e.kind
            }
            Err(e) => panic!("{e}"),
        };
        out.insert(ep.to_owned(), r);
    }
    let listed: Vec<EndpointInfo> = s.commit("anyd.endpoints", ()).unwrap();
    // The contract document leaves out the same endpoints.
    let described: anyd::contract::Document = s.commit("anyd.describe", ()).unwrap();
    let described: Vec<_> = described.methods.into_iter().map(|m| m.name).collect();
    let listed: Vec<_> = listed.into_iter().map(|e| e.name).collect();
    assert_eq!(described, listed);
    (out, listed)
}

#[test]
fn each_caller_sees_and_may_call_what_its_credentials_allow_as_root() {
    root::require_root("switching to other users");
    let d = daemon();
    let address = d.address().to_string();

    let (root, root_list) = survey(address.clone());
    assert_eq!(root["open"], "anyone");
    assert_eq!(root["root_only"], "root");
    assert_eq!(root["extra_group"], "NotImplementedError");
    assert_eq!(root["nobody_or_root"], "either");
    assert_eq!(root_list, ["open", "root_only", "nobody_or_root", "who"]);

    let a = address.clone();
    let (nobody, nobody_list) = as_user(NOBODY, NOBODY, &[], move || survey(a));
    assert_eq!(nobody["open"], "anyone");
    assert_eq!(nobody["root_only"], "NotImplementedError");
    assert_eq!(nobody["extra_group"], "NotImplementedError");
    assert_eq!(nobody["nobody_or_root"], "either");
    assert_eq!(nobody_list, ["open", "nobody_or_root", "who"]);

    // Another unprivileged uid with a supplementary group.
    let a = address.clone();
    let (member, member_list) = as_user(4000, 4000, &[EXTRA_GROUP], move || survey(a));
    assert_eq!(member["extra_group"], "member");
    assert_eq!(member["root_only"], "NotImplementedError");
    assert_eq!(member["nobody_or_root"], "NotImplementedError");
    assert_eq!(member_list, ["open", "extra_group", "who"]);

    // The daemon saw exactly those credentials.
    let a = address.clone();
    let who: (Option<u32>, Option<u32>, Vec<u32>) =
        as_user(4000, 4000, &[EXTRA_GROUP], move || {
            ClientSession::connect(a.as_str())
                .unwrap()
                .commit("who", ())
                .unwrap()
        });
    assert_eq!(who.0, Some(4000));
    assert_eq!(who.1, Some(4000));
    let mut groups = who.2;
    groups.sort_unstable();
    assert_eq!(groups, [4000, EXTRA_GROUP]);
}

#[test]
fn a_daemon_wide_rule_gates_everything_and_denial_keeps_the_session_as_root() {
    root::require_root("switching to other users");
    let name = format!("anyd-policy-wide-{}", std::process::id());
    let d = Appd::new()
        .allow(Allow::root())
        .api("hello()", || "hi")
        .bind(format!("unix:@{name}"))
        .unwrap()
        .spawn()
        .unwrap();
    let address = d.address().to_string();
    let denied = as_user(NOBODY, NOBODY, &[], move || {
        let mut s = ClientSession::connect(address.as_str()).unwrap();
        let kinds: Vec<String> = ["hello", "anyd.ping", "anyd.endpoints", "no_such_endpoint"]
            .iter()
            .map(|ep| {
                let e = s.commit::<anyd::Value>(ep, ()).unwrap_err();
                let e = e.remote().unwrap();
                assert_eq!(e.message, *ep, "{e}");
                e.kind.clone()
            })
            .collect();
        kinds
    });
    // Every call, as if no endpoint existed: an outsider learns nothing
    // about the API, not even that a rule turned it away.
    assert_eq!(denied, ["NotImplementedError"; 4]);
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<String>("hello", ()).unwrap(), "hi");
}

#[test]
fn tcp_callers_have_no_credentials_to_match() {
    let d = Appd::new()
        .api("open()", || 1)
        .api("root_only()", || 2)
        .restrict(Allow::root())
        .bind("tcp:127.0.0.1:0")
        .unwrap()
        .spawn()
        .unwrap();
    let mut s = ClientSession::connect(d.address()).unwrap();
    assert_eq!(s.commit::<i32>("open", ()).unwrap(), 1);
    let e = s.commit::<i32>("root_only", ()).unwrap_err();
    assert_eq!(e.remote().unwrap().kind, "NotImplementedError");
}

#[test]
fn unknown_names_fail_at_bind() {
    let e = Appd::new()
        .allow(Allow::group("no-such-group-for-anyd"))
        .bind("tcp:127.0.0.1:0")
        .err()
        .unwrap();
    assert!(e.to_string().contains("no-such-group-for-anyd"), "{e}");
}

#[test]
fn a_denied_call_gets_the_very_bytes_of_a_missing_endpoint_in_every_codec_as_root() {
    root::require_root("switching to other users");
    use anyd::wire::{codec, message, Codec};
    let guarded = format!("anyd-policy-guarded-{}", std::process::id());
    let bare = format!("anyd-policy-bare-{}", std::process::id());
    let _guarded = Appd::new()
        .api("secret(a)", |a: String| a)
        .restrict(Allow::root())
        .bind(format!("unix:@{guarded}"))
        .unwrap()
        .spawn()
        .unwrap();
    let _bare = Appd::new()
        .api("other(a)", |a: String| a)
        .bind(format!("unix:@{bare}"))
        .unwrap()
        .spawn()
        .unwrap();
    for codec in [Codec::MsgPack, Codec::Json, Codec::Pickle] {
        // Well formed, with too many arguments, and with an argument of the
        // wrong type: the policy answers before any of them is read.
        let mut requests = Vec::new();
        for args in [vec!["x"], vec!["x", "y", "z"]] {
            let mut p = Vec::new();
            codec::encode_request(codec, "secret", &args, &(), &mut p).unwrap();
            requests.push(p);
        }
        let mut p = Vec::new();
        codec::encode_request(codec, "secret", &(7,), &(), &mut p).unwrap();
        requests.push(p);
        for payload in requests {
            let (g, b) = (guarded.clone(), bare.clone());
            let (denied, missing) = as_user(NOBODY, NOBODY, &[], move || {
                (
                    raw::call_abstract(&g, &payload),
                    raw::call_abstract(&b, &payload),
                )
            });
            assert_eq!(denied, missing, "{codec:?}");
            let reply: message::Reply<anyd::Value> =
                codec::decode_reply(codec, &denied, &Default::default()).unwrap();
            match reply {
                message::Reply::Err(e) => {
                    assert_eq!(
                        (e.kind.as_str(), e.message.as_str()),
                        ("NotImplementedError", "secret")
                    );
                }
                other => panic!("{codec:?}: {other:?}"),
            }
        }
    }
}
