//! Compile-fail tests of `#[derive(MappedState)]`: one mistake per file in `tests/ui/`, each with
//! its reviewed `.stderr`. Regenerate with `TRYBUILD=overwrite cargo test --test ui`, then read
//! every changed `.stderr` like code: the error must point at the offending token and say what to
//! do instead.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
