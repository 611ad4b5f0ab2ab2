//! `call --fd N` and `call --file PATH`: descriptors sent with a call, for
//! a daemon's `Fd` parameters; the daemon reads (or writes) through them
//! and answers with what it found.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyd::{Appd, Fd};

use super::{anydctl, ok, run_program, start, Run, PATIENCE};

/// What the descriptor `file` gives to read.
fn read_all(file: Fd) -> std::io::Result<String> {
    let mut text = String::new();
    File::from(file).read_to_string(&mut text)?;
    Ok(text)
}

/// A daemon whose endpoints take descriptors.
fn reading() -> Appd {
    Appd::new()
        .api("read(file)", read_all)
        .api(
            "read_two(first, second)",
            |a: Fd, b: Fd| -> std::io::Result<String> {
                Ok(format!("{}+{}", read_all(a)?, read_all(b)?))
            },
        )
        .api(
            "labelled(label, file)",
            |label: String, file: Fd| -> std::io::Result<String> {
                Ok(format!("{label}: {}", read_all(file)?))
            },
        )
        .api(
            "write_to(file, text)",
            |file: Fd, text: String| -> std::io::Result<usize> {
                File::from(file).write_all(text.as_bytes())?;
                Ok(text.len())
            },
        )
}

/// A file holding `content` in `dir`.
fn file_in(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs anydctl with `args` from a shell, as `line` says (`"$0" "$@"`
/// being anydctl and its arguments: `exec "$0" "$@" 3<file`), as a user
/// at a prompt would.
fn from_a_shell(line: &str, args: &[&str]) -> Run {
    let script = line.to_owned();
    let mut all = vec!["-c", &script, env!("CARGO_BIN_EXE_anydctl")];
    all.extend_from_slice(args);
    let out = run_program(Path::new("sh"), &all, &[], PATIENCE);
    let run = Run {
        code: out.status.code().expect("anydctl was killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("sh -c {script:?} {args:?} -> {run:#?}");
    run
}

#[test]
fn file_sends_a_file_the_daemon_reads() {
    let (_d, addr, dir) = start(reading());
    let a = file_in(dir.path(), "a.txt", "alpha");
    let b = file_in(dir.path(), "b.txt", "beta");
    for codec in ["msgpack", "json"] {
        assert_eq!(
            ok(&["--codec", codec, "call", &addr, "read", "--file", &a]),
            "\"alpha\"\n",
            "{codec}"
        );
    }
    // Without a placeholder, descriptors follow the ARGs, in order.
    assert_eq!(
        ok(&["call", &addr, "labelled", "x", "--file", &a]),
        "\"x: alpha\"\n"
    );
    assert_eq!(
        ok(&["call", &addr, "read_two", "--file", &b, "--file", &a]),
        "\"beta+alpha\"\n"
    );
    // Placeholders say where each goes: descriptor 0 is the first given.
    assert_eq!(
        ok(&[
            "call",
            &addr,
            "read_two",
            r#"{"$fd":1}"#,
            r#"{"$fd":0}"#,
            "--file",
            &a,
            "--file",
            &b
        ]),
        "\"beta+alpha\"\n"
    );
    assert_eq!(
        ok(&[
            "call",
            &addr,
            "labelled",
            "-k",
            r#"file={"$fd":0}"#,
            "-k",
            "label=y",
            "--file",
            &b
        ]),
        "\"y: beta\"\n"
    );
    // --verbose says where they went.
    let run = anydctl(&["call", "--verbose", &addr, "labelled", "x", "--file", &a]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("descriptors: --file {a} is ARG 2")),
        "{run:#?}"
    );
}

#[test]
fn fd_sends_a_descriptor_anydctl_inherited() {
    let (_d, addr, dir) = start(reading());
    let a = file_in(dir.path(), "a.txt", "alpha");
    let b = file_in(dir.path(), "b.txt", "beta");
    // One the shell opens, and stdin.
    let run = from_a_shell(
        &format!("exec \"$0\" \"$@\" 3<'{a}'"),
        &["call", &addr, "read", "--fd", "3"],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "\"alpha\"\n"),
        "{run:#?}"
    );
    let run = from_a_shell(
        &format!("exec \"$0\" \"$@\" <'{b}'"),
        &["call", &addr, "read", "--fd", "0"],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "\"beta\"\n"),
        "{run:#?}"
    );
    // Stdin from a pipe: what a command writes into it.
    let run = from_a_shell(
        "printf 'through a pipe' | \"$0\" \"$@\"",
        &["call", &addr, "read", "--fd", "0"],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "\"through a pipe\"\n"),
        "{run:#?}"
    );
    // --fd and --file mixed: numbered in the order given.
    let run = from_a_shell(
        &format!("exec \"$0\" \"$@\" 3<'{a}'"),
        &["call", &addr, "read_two", "--file", &b, "--fd", "3"],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "\"beta+alpha\"\n"),
        "{run:#?}"
    );
    // A descriptor opened for writing, placed first by its placeholder:
    // the daemon writes through it.
    let out = dir.path().join("out.txt");
    let run = from_a_shell(
        &format!("exec \"$0\" \"$@\" 3>'{}'", out.display()),
        &[
            "call",
            &addr,
            "write_to",
            r#"{"$fd":0}"#,
            "written by the daemon",
            "--fd",
            "3",
        ],
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "21\n"), "{run:#?}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "written by the daemon"
    );
}

#[test]
fn descriptors_that_cannot_be_sent_are_usage_errors() {
    let (_d, addr, dir) = start(reading());
    let a = file_in(dir.path(), "a.txt", "alpha");
    let missing = dir.path().join("missing").to_str().unwrap().to_owned();
    let refused = |args: &[&str], why: &str| {
        let run = anydctl(args);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (2, ""),
            "{args:?}: {run:#?}"
        );
        assert!(run.stderr.contains(why), "{why}: {run:#?}");
    };
    refused(
        &["call", &addr, "read", "--fd", "9"],
        "descriptor 9 is not open",
    );
    refused(
        &["call", &addr, "read", "--file", &missing],
        "cannot open --file",
    );
    refused(
        &["--codec", "pickle", "call", &addr, "read", "--file", &a],
        "travels only over a Unix socket",
    );
    refused(
        &["call", "tcp:127.0.0.1:9", "read", "--file", &a],
        "travels only over a Unix socket",
    );
    refused(
        &["call", &addr, "read", r#"{"$fd":1}"#, "--file", &a],
        "names descriptor 1",
    );
    refused(
        &[
            "call",
            &addr,
            "read_two",
            r#"{"$fd":0}"#,
            r#"{"$fd":0}"#,
            "--file",
            &a,
        ],
        "is named twice",
    );
    refused(
        &[
            "call",
            &addr,
            "read_two",
            r#"{"$fd":0}"#,
            "--file",
            &a,
            "--file",
            &a,
        ],
        "is descriptor 1, but no",
    );
    // Without --fd or --file, a path is a string, which the daemon
    // refuses for a descriptor; anydctl says how to send one.
    let run = anydctl(&["call", &addr, "read", &a]);
    assert_eq!(run.code, 5, "{run:#?}");
    assert!(run.stderr.starts_with("TypeError: "), "{run:#?}");
    assert!(
        run.stderr
            .contains("hint: a parameter of type Fd takes a descriptor: send one with --file"),
        "{run:#?}"
    );
}
