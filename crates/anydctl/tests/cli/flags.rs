//! One flag letter, one meaning, across the commands: `-c` is a count
//! (a stream's items in `call`, calls in `ping`); `bench`'s clients are
//! `-j`, and its old `-c` is refused with a word on what to write.

use super::{anydctl, ok, start, streaming};

#[test]
fn c_counts_in_every_command_and_bench_says_what_replaced_it() {
    let (appd, _streams) = streaming();
    let (_d, addr, _dir) = start(appd);
    // call: the first items of a stream.
    assert_eq!(ok(&["call", "-c", "2", &addr, "count", "5"]), "0\n1\n");
    // ping: that many calls.
    let out = ok(&["ping", "-c", "2", "-i", "10ms", &addr]);
    assert_eq!(out.matches("reply from").count(), 2, "{out}");

    // bench: -c is refused before anything runs, saying what to write.
    let run = anydctl(&["bench", &addr, "echo", "x", "-c", "2", "-n", "4"]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:#?}");
    assert!(run.stderr.contains("write -j 2 or --clients 2"), "{run:#?}");
    // -j and --clients are the clients.
    for flag in ["-j", "--clients"] {
        let out = ok(&["bench", "--json", &addr, "echo", "x", flag, "3", "-n", "6"]);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (report["clients"].as_u64(), report["calls"].as_u64()),
            (Some(3), Some(6))
        );
    }
    // The help does not offer the old -c.
    let help = ok(&["bench", "--help"]);
    assert!(help.contains("-j, --clients <N>"), "{help}");
    assert!(
        !help.lines().any(|l| l.trim_start().starts_with("-c")),
        "{help}"
    );
}
