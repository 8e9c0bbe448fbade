//! Records the compiler's version for the machine line of the benchmark report.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=BENCH_PEERS_RUSTC={}", version.trim());
    println!("cargo:rerun-if-changed=build.rs");
}
