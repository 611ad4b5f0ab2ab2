//! Format characters (Unicode general category Cf: bidirectional
//! overrides, isolates and marks, zero-width characters, invisible tags)
//! in what a daemon sends: a stream's items, a descriptor's path and
//! content, an error, the endpoint docs. On a terminal they are shown as
//! `\u{202e}` and the like, as control characters are; `--raw` into a
//! pipe writes them exactly as they came.

use std::path::Path;

use anyd::{Appd, Items, RemoteError};

use super::{
    anydctl, anydctl_on_a_terminal, assert_nothing_for_a_terminal, json_of, ok, run_program, start,
    PATIENCE,
};

/// Text that reads as something it is not: an override that shows
/// `fdp.exe` backwards (`invoiceexe.pdf`), an isolate, zero-width
/// characters, the BOM, invisible tags (beyond U+FFFF), a soft hyphen.
const REORDERED: &str =
    "invoice\u{202e}fdp.exe \u{2066}isolated\u{2069} zero\u{200b}width\u{200d} \
     \u{feff}bom tag\u{e0041}\u{e007f} soft\u{ad}hyphen";
/// `REORDERED` as anydctl shows it on a terminal.
const REORDERED_SHOWN: &str = r"invoice\u{202e}fdp.exe \u{2066}isolated\u{2069} zero\u{200b}width\u{200d} \u{feff}bom tag\u{e0041}\u{e007f} soft\u{ad}hyphen";

/// A daemon whose words, and whose files' names, read as something else.
fn reordering() -> Appd {
    Appd::new()
        .api("name()", || REORDERED)
        .doc(REORDERED)
        .api("names()", || Items::from_iter([REORDERED, REORDERED]))
        .api("fail()", || -> Result<(), RemoteError> {
            Err(RemoteError::new("VpnError", REORDERED))
        })
        .api("open(path)", |path: String| -> std::io::Result<anyd::Fd> {
            Ok(std::fs::File::open(path)?.into())
        })
}

/// A file whose name and content hold `REORDERED`, as /proc/self/fd
/// names it; its directory lives as long as the guard.
fn file_named_reordered() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("report {REORDERED}.txt"));
    std::fs::write(&path, format!("{REORDERED}\n")).unwrap();
    let path = std::fs::canonicalize(path).unwrap();
    (dir, path.to_str().unwrap().to_owned())
}

/// What anydctl writes to stdout, as bytes.
fn stdout_bytes(args: &[&str]) -> Vec<u8> {
    let out = run_program(
        Path::new(env!("CARGO_BIN_EXE_anydctl")),
        args,
        &[],
        PATIENCE,
    );
    assert!(out.status.success(), "{args:?}: {out:?}");
    out.stdout
}

#[test]
fn on_a_terminal_format_characters_are_shown_not_obeyed() {
    let (_d, addr, _dir) = start(reordering());
    let (_files, path) = file_named_reordered();

    // A stream's items, JSON a line each: escaped as JSON escapes, and
    // the same strings once parsed.
    let (code, shown) = anydctl_on_a_terminal(&["call", &addr, "names"]);
    assert_eq!(code, 0, "{shown:?}");
    assert_nothing_for_a_terminal("a stream's items", &shown);
    let items: Vec<String> = shown
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items, [REORDERED, REORDERED]);
    assert!(shown.contains(r"invoice\u202efdp.exe"), "{shown:?}");
    assert!(shown.contains(r"tag\udb40\udc41\udb40\udc7f"), "{shown:?}");

    // The same items bare, with --raw.
    let (code, shown) = anydctl_on_a_terminal(&["call", "--raw", &addr, "names"]);
    assert_eq!(code, 0, "{shown:?}");
    assert_eq!(shown, format!("{REORDERED_SHOWN}\n{REORDERED_SHOWN}\n"));

    // A descriptor whose path holds them: the JSON that shows it.
    let (code, shown) = anydctl_on_a_terminal(&["call", &addr, "open", &path]);
    assert_eq!(code, 0, "{shown:?}");
    assert_nothing_for_a_terminal("a descriptor's path", &shown);
    assert_eq!(json_of(&shown)["$fd"]["path"], path.as_str(), "{shown:?}");
    assert!(shown.contains(r"report invoice\u202efdp.exe"), "{shown:?}");

    // Its content, with --raw.
    let (code, shown) = anydctl_on_a_terminal(&["call", "--raw", &addr, "open", &path]);
    assert_eq!(code, 0, "{shown:?}");
    assert_eq!(shown, format!("{REORDERED_SHOWN}\n"));

    // An error reply, and the endpoint docs.
    let (code, shown) = anydctl_on_a_terminal(&["call", &addr, "fail"]);
    assert_eq!(code, 5, "{shown:?}");
    assert_eq!(shown, format!("VpnError: {REORDERED_SHOWN}\n"));
    let (code, shown) = anydctl_on_a_terminal(&["endpoints", &addr]);
    assert_eq!(code, 0, "{shown:?}");
    assert_nothing_for_a_terminal("the endpoint table", &shown);
    assert!(shown.contains(REORDERED_SHOWN), "{shown:?}");
}

#[test]
fn into_a_pipe_raw_is_exact_and_json_means_the_same() {
    let (_d, addr, _dir) = start(reordering());
    let (_files, path) = file_named_reordered();

    // --raw: the bytes the daemon sent, items and content alike.
    assert_eq!(
        stdout_bytes(&["call", "--raw", &addr, "names"]),
        format!("{REORDERED}\n{REORDERED}\n").into_bytes()
    );
    assert_eq!(
        stdout_bytes(&["call", "--raw", &addr, "name"]),
        format!("{REORDERED}\n").into_bytes()
    );
    assert_eq!(
        stdout_bytes(&["call", "--raw", &addr, "open", &path]),
        format!("{REORDERED}\n").into_bytes()
    );

    // JSON is the same to a pipe as to a terminal: escaped, meaning the
    // same strings.
    let out = ok(&["call", &addr, "open", &path]);
    assert_nothing_for_a_terminal("a descriptor's path as JSON", &out);
    assert_eq!(json_of(&out)["$fd"]["path"], path.as_str(), "{out}");
    let out = ok(&["call", &addr, "names"]);
    assert_nothing_for_a_terminal("a stream's items as JSON", &out);
    let run = anydctl(&["call", &addr, "fail"]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert_eq!(run.stderr, format!("VpnError: {REORDERED_SHOWN}\n"));
}
