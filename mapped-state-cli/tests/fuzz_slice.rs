//! The bounded slice of the fuzzer that `cargo test` (and so CI) runs: a few hundred mutated
//! hostile and valid files through every reader and renderer, none of which may panic or use
//! more heap than 16 times the file plus the decoder's fixed allowance. The full run is
//! `cargo run --release -p mapped-state-cli --example fuzz -- --inputs 1000000`.

#[path = "../fuzz/corpus.rs"]
mod corpus;
#[path = "../fuzz/counting.rs"]
mod counting;
#[path = "../fuzz/engine.rs"]
mod engine;
#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;

use counting::{peak, reset};

/// Inputs per run: a few seconds in a debug build on two cores.
const INPUTS: u64 = 1_000;

#[test]
fn mutated_files_never_panic_and_stay_within_their_memory_bound() {
    let dir = std::env::temp_dir().join(format!("ms-fuzz-slice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let probe = engine::Probe { reset, peak };
    // The same slice every run, so CI is deterministic; `MS_FUZZ_SEED=N` explores another.
    let seed = std::env::var("MS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let stats = engine::run(INPUTS, seed, &dir, probe, &mut |_| {});
    println!("seed {seed}: {stats:?}");
    assert_eq!(stats.inputs, INPUTS);
    assert!(
        stats.panics.is_empty(),
        "seed {seed}: {} inputs panicked, kept in {}",
        stats.panics.len(),
        dir.display()
    );
    let allowance = (mapped_state::dynamic::DECODE_BASE + (4 << 20)) as i64;
    assert!(
        stats.worst_excess <= allowance,
        "seed {seed}: an input used {} bytes more than 16x its file",
        stats.worst_excess
    );
    // Mutations must still reach past the header: some inputs open and render.
    assert!(stats.opened > 0, "seed {seed}: no input opened: {stats:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
