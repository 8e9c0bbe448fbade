//! Fuzzes the whole open -> validate -> decode -> render path on stable Rust:
//! `cargo run --release -p mapped-state-cli --example fuzz -- --inputs 1000000 [--seed N]`.
//!
//! Prints the inputs run, how many opened and how each other one was refused, every panic (its
//! input is saved in the printed directory), the slowest input and the peak heap of one input.
//! Exits 1 if any input panicked. A panic that aborts (an allocation failure) ends the run.
//! `FUZZ_KEEP=1` keeps the work directory (with `slowest.state`, the slowest input);
//! `FUZZ_SHOW_PANICS=1` prints each panic's message.

#[path = "../fuzz/corpus.rs"]
mod corpus;
#[path = "../fuzz/counting.rs"]
mod counting;
#[path = "../fuzz/engine.rs"]
mod engine;
#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;

use counting::{peak, reset};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} takes a number")),
        None => default,
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let inputs = arg(&args, "--inputs", 100_000);
    let seed = arg(&args, "--seed", 1);
    let dir = std::env::temp_dir().join(format!("ms-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the work directory");
    // Inputs are meant to fail; their panics are counted and saved, not printed one by one.
    let quiet = std::env::var_os("FUZZ_SHOW_PANICS").is_none();
    if quiet {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let probe = engine::Probe { reset, peak };
    let stats = engine::run(inputs, seed, &dir, probe, &mut |s| {
        eprintln!(
            "{} inputs, {} opened, {} panics, slowest {:?}, peak {} bytes",
            s.inputs,
            s.opened,
            s.panics.len(),
            s.slowest.0,
            s.peak.0
        );
    });
    println!("inputs          {} (seed {seed})", stats.inputs);
    println!("opened          {}", stats.opened);
    for (kind, n) in &stats.refused {
        println!("refused         {n:>8}  {kind}");
    }
    println!("panics          {}", stats.panics.len());
    for p in stats.panics.iter().take(20) {
        println!("  saved         {}", p.display());
    }
    println!(
        "slowest input   {:?} of CPU (input {}: every operation on it)",
        stats.slowest.0, stats.slowest.1
    );
    println!(
        "peak heap       {} bytes for a {}-byte file; worst excess over 16x the file: {} bytes",
        stats.peak.0, stats.peak.1, stats.worst_excess
    );
    if std::env::var_os("FUZZ_KEEP").is_none() && stats.panics.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        std::process::ExitCode::SUCCESS
    } else {
        println!("inputs kept in  {}", dir.display());
        std::process::ExitCode::FAILURE
    }
}
