//! `mapped-state-mirror publish|follow`: the mirror without the rest of the `mapped-state`
//! command (which has the same commands as `mapped-state mirror`).

use std::process::ExitCode;

use clap::Parser;

/// Mirror a mapped-state file to other machines over zenoh.
#[derive(Debug, Parser)]
#[command(name = "mapped-state-mirror", version)]
struct Cli {
    #[command(subcommand)]
    command: mapped_state_zenoh::cli::MirrorCommand,
}

fn main() -> ExitCode {
    mapped_state_zenoh::cli::run(Cli::parse().command)
}
