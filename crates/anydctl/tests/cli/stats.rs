//! `anydctl stats`: a daemon's counts as a table and as its JSON, and the
//! refusal of a caller the daemon does not show them to.

use std::path::Path;

use super::{anydctl, demo, ok, run_program_as, start, Run, PATIENCE};

#[test]
fn stats_show_the_calls_made_as_a_table_and_as_json() {
    let (_d, addr, _dir) = start(demo());
    for _ in 0..3 {
        ok(&["call", &addr, "get_sum", "1", "2"]);
    }
    // An endpoint's own error, and a missing endpoint.
    assert_eq!(anydctl(&["call", &addr, "status"]).code, 5);
    assert_eq!(anydctl(&["call", &addr, "nothing"]).code, 5);

    let reply: serde_json::Value = serde_json::from_str(&ok(&["stats", "--json", &addr])).unwrap();
    let row = |name: &str| {
        reply["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {reply}"))
            .clone()
    };
    let sum = row("get_sum");
    assert_eq!(
        (sum["calls"].as_u64(), sum["ok"].as_u64()),
        (Some(3), Some(3))
    );
    let status = row("status");
    assert_eq!(status["errors"], serde_json::json!({"VpnError": 1}));
    assert_eq!(reply["refused"], 1);

    let table = ok(&["stats", &addr]);
    let lines: Vec<&str> = table.lines().collect();
    let cells = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cells(lines[0]),
        [
            "ENDPOINT",
            "CALLS",
            "ERRORS",
            "TIMEOUTS",
            "CANCELLED",
            "P50",
            "P99"
        ]
    );
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| cells(l))
            .unwrap_or_else(|| panic!("no {name} in\n{table}"))
    };
    assert_eq!(line("get_sum")[1..5], ["3", "0", "0", "0"]);
    assert_eq!(line("status")[1..5], ["1", "1", "0", "0"]);
    // Never called: no latency to show.
    assert_eq!(line("echo")[1..], ["0", "0", "0", "0", "-", "-"]);
    // The previous `stats --json` call is counted too.
    assert_eq!(line("anyd.stats")[1..3], ["1", "0"]);
    assert!(
        table.contains("1 call of missing or refused endpoints"),
        "{table}"
    );
}

#[test]
fn stats_are_refused_to_other_users_unless_the_daemon_admits_them_as_root() {
    use std::os::unix::fs::PermissionsExt;
    anyd_testkit::root::require_root("running anydctl as another user");
    let (_bin, program) =
        anyd_testkit::root::runnable_by_others(Path::new(env!("CARGO_BIN_EXE_anydctl")));
    let as_nobody = |args: &[&str]| {
        let out = run_program_as(Some(65534), &program, args, &[], PATIENCE);
        Run {
            code: out.status.code().expect("anydctl was killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };

    let (_d, address, dir) = start(demo().socket_mode(0o666));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = as_nobody(&["stats", &address]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(
        run.stderr
            .contains("answered anyd.stats with NotImplementedError"),
        "{run:#?}"
    );
    assert!(run.stdout.is_empty(), "{run:#?}");
    // Root reads them: nobody's refused call is among them.
    let reply: serde_json::Value =
        serde_json::from_str(&ok(&["stats", "--json", &address])).unwrap();
    let stats_row = reply["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "anyd.stats")
        .cloned()
        .unwrap();
    assert_eq!(stats_row["errors"]["NotImplementedError"], 1, "{reply}");

    let (_d, address, dir) = start(
        demo()
            .socket_mode(0o666)
            .stats_allow(anyd::Allow::uid(65534)),
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = as_nobody(&["stats", &address]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.starts_with("ENDPOINT"), "{run:#?}");
}
