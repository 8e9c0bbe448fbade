//! Prints the peer benchmarks of the last `cargo bench --bench peers` run as a Markdown table of
//! ratios to mapped-state (time of the library / time of mapped-state, same operation and size,
//! same run), with the absolute times beside them.
//!
//! ```sh
//! cargo run --release --bin ratios                 # reads ../target/peers/criterion
//! cargo run --release --bin ratios -- DIR          # another criterion output directory
//! ```
//!
//! The time of a benchmark is the estimate criterion prints first on its `time:` line: the slope
//! of the linear regression when criterion computed one, else the mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The operations in the order the bench runs them.
const GROUPS: [&str; 5] = [
    "publish",
    "snapshot",
    "field",
    "contended_publish",
    "contended_snapshot",
];
/// The libraries (criterion function ids), the baseline first.
const LIBS: [&str; 7] = [
    "mapped-state",
    "mapped-state_nowake",
    "mapped-state_bytes",
    "mmap-sync",
    "mmap-sync_check",
    "mmap-sync_nocheck",
    "iceoryx2",
];
const BASELINE: &str = "mapped-state";
const SIZES: [&str; 2] = ["16B", "4KiB"];

/// (group, function, size) -> nanoseconds.
type Times = BTreeMap<(String, String, String), f64>;

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Collects every benchmark under `dir` (criterion keeps `<id>/new/{benchmark,estimates}.json`).
fn collect(dir: &Path, out: &mut Times) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if !path.is_dir() {
            continue;
        }
        let new = path.join("new");
        if new.join("benchmark.json").is_file() {
            let bench = read_json(&new.join("benchmark.json"))?;
            let est = read_json(&new.join("estimates.json"))?;
            let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let ns = ["slope", "mean"]
                .iter()
                .find_map(|k| est.get(k)?.get("point_estimate")?.as_f64());
            if let (Some(g), Some(f), Some(s), Some(ns)) = (
                field(&bench, "group_id"),
                field(&bench, "function_id"),
                field(&bench, "value_str"),
                ns,
            ) {
                out.insert((g, f, s), ns);
            }
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect(&path, out)?;
        }
    }
    Ok(())
}

fn ns(t: f64) -> String {
    if t >= 10_000.0 {
        format!("{:.1} µs", t / 1000.0)
    } else if t >= 100.0 {
        format!("{t:.0} ns")
    } else {
        format!("{t:.1} ns")
    }
}

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers/criterion"));
    let mut times = Times::new();
    if let Err(e) = collect(&dir, &mut times) {
        eprintln!("ratios: {e}");
        std::process::exit(1);
    }
    let libs: Vec<&str> = LIBS
        .iter()
        .copied()
        .filter(|l| times.keys().any(|(_, f, _)| f == l))
        .collect();
    println!("| operation | size | {} |", libs.join(" | "));
    println!("|---|---|{}", "---|".repeat(libs.len()));
    for g in GROUPS {
        for s in SIZES {
            let get = |lib: &str| times.get(&(g.to_owned(), lib.to_owned(), s.to_owned()));
            let Some(&base) = get(BASELINE) else {
                continue;
            };
            let cells: Vec<String> = libs
                .iter()
                .map(|lib| match get(lib) {
                    Some(&t) => format!("{:.2} ({})", t / base, ns(t)),
                    None => "–".to_owned(),
                })
                .collect();
            println!("| {g} | {s} | {} |", cells.join(" | "));
        }
    }
}
