//! vpnmd's contract against the copy committed beside the crate
//! (`vpnmd.contract.json`): a change that breaks vpnm's clients (an
//! endpoint or parameter gone, a type that accepts less, a result that
//! may hold what it never did) fails here until the copy is updated on
//! purpose, with `ANYD_UPDATE_CONTRACT=1 cargo test -p vpnm-api`.
//! Compatible changes pass, and are listed.

use std::path::Path;

use anyd::contract::{diff, Document};

#[test]
fn the_contract_does_not_break_the_committed_copy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vpnmd.contract.json");
    let now = vpnm_api::VpnmContract::contract();
    if std::env::var_os("ANYD_UPDATE_CONTRACT").is_some() {
        std::fs::write(&path, now.to_json_pretty()).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with ANYD_UPDATE_CONTRACT=1)",
            path.display()
        )
    });
    let committed = Document::from_json(&text).unwrap();
    let d = diff(&committed, &now);
    eprint!("{d}");
    assert!(
        !d.is_breaking(),
        "vpnmd's contract breaks its clients:\n{d}If that is meant, update {} with \
         ANYD_UPDATE_CONTRACT=1 cargo test -p vpnm-api, and say so in CHANGELOG.md.",
        path.display()
    );
}

#[test]
fn the_contract_says_what_vpnm_relies_on() {
    let doc = vpnm_api::VpnmContract::contract();
    let names: Vec<_> = doc.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["status", "watch", "connect", "disconnect", "open_log"]
    );
    assert!(doc.method("watch").unwrap().stream);
    assert!(doc.method("open_log").unwrap().returns_fds());
    let kinds: Vec<_> = doc
        .method("connect")
        .unwrap()
        .errors
        .as_ref()
        .unwrap()
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    assert_eq!(kinds, ["VpnError", "ValueError", "OSError"]);
    for name in vpnm_api::CHANGERS {
        assert!(doc.method(name).is_some(), "{name}");
    }
}
