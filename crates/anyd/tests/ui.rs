//! The macros' diagnostics: each `fail/` case must be refused with the
//! message in its `.stderr` file, each `pass/` case must compile without
//! warnings and run. Regenerate the `.stderr` files after a deliberate
//! change with `TRYBUILD=overwrite cargo test -p anyd-ipc --test ui`, and
//! review them.
//!
//! A test binary of its own: it runs the compiler on every case, minutes
//! on a loaded machine, with a longer nextest timeout of its own
//! (`.config/nextest.toml`, `binary(ui)`), and `cargo test --test ui` is
//! how its expected output is regenerated.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
