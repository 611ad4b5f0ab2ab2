//! The macros' diagnostics: each `fail/` case must be refused with the
//! message in its `.stderr` file, each `pass/` case must compile without
//! warnings and run. Regenerate the `.stderr` files after a deliberate
//! change with `TRYBUILD=overwrite cargo test -p anyd-ipc --test ui`, and
//! review them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
