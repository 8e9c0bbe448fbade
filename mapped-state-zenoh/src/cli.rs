//! The `mirror` command line, shared by the `mapped-state-mirror` binary and the
//! `mapped-state mirror` subcommand.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::{Event, FollowOptions, Follower, Network, PublishOptions, Publisher};

/// Mirror a state file to other machines over zenoh.
#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Follow a local state file and publish each version it observes on KEY.
    ///
    /// Survives the writer's restarts and the file's replacement. Listens on
    /// tcp/127.0.0.1:7447 unless told otherwise: nothing is reachable from another machine
    /// until you give a --listen endpoint on a non-loopback address (see the README's
    /// "Mirroring over zenoh" for TLS and authentication).
    Publish {
        /// The state file.
        file: PathBuf,
        /// The zenoh key to publish on (a concrete key expression such as `plant/engine`).
        #[arg(long)]
        key: String,
        /// The zenoh session's options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Receive KEY's versions and commit them into a local replica state file.
    ///
    /// Creates the replica (or takes over the one at the path) from the source's manifest, and
    /// replaces it when the source's schema changes. Source versions, skipped counts and
    /// whether the source's writer is alive are in FILE.mirror. Connects to tcp/127.0.0.1:7447
    /// unless told otherwise; survives network loss and publisher restarts.
    Follow {
        /// The zenoh key to follow.
        key: String,
        /// The replica state file to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Permission bits of the replica, in octal (default 600).
        #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
        mode: Option<u32>,
        /// The zenoh session's options.
        #[command(flatten)]
        net: NetArgs,
    },
}

/// The zenoh session's options.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Listen on ENDPOINT (repeatable), e.g. tcp/127.0.0.1:7447 or tls/192.0.2.10:7447.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Connect to ENDPOINT (repeatable); retried forever in peer mode.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// A zenoh configuration file (JSON5): TLS, authentication, transport options. Its
    /// endpoints and scouting settings are replaced by this command's.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run the zenoh session in client mode (through a zenoh router) instead of peer mode.
    #[arg(long)]
    client: bool,
    /// Allow zenoh's UDP multicast scouting (off by default: no multicast traffic).
    #[arg(long)]
    multicast_scouting: bool,
    /// Allow zenoh's gossip scouting (off by default).
    #[arg(long)]
    gossip: bool,
}

impl NetArgs {
    fn network(&self, default_listen: &[&str], default_connect: &[&str]) -> Network {
        let given = !self.listen.is_empty() || !self.connect.is_empty();
        let or = |v: &Vec<String>, d: &[&str]| {
            if given {
                v.clone()
            } else {
                d.iter().map(|s| s.to_string()).collect()
            }
        };
        Network {
            listen: or(&self.listen, default_listen),
            connect: or(&self.connect, default_connect),
            config_file: self.config.clone(),
            client: self.client,
            multicast_scouting: self.multicast_scouting,
            gossip: self.gossip,
        }
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode such as 600 or 640"))
}

fn say(line: impl std::fmt::Display) {
    eprintln!("mapped-state mirror: {line}");
}

/// Runs a `mirror` command until the process is stopped (or a failure it cannot get past);
/// prints the failure and exits 1 then.
pub fn run(cmd: MirrorCommand) -> ExitCode {
    match execute(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(e);
            ExitCode::from(1)
        }
    }
}

/// Runs a `mirror` command until the process is stopped, printing its events on stderr;
/// returns the failure it cannot get past.
pub fn execute(cmd: MirrorCommand) -> Result<(), crate::MirrorError> {
    let events: crate::EventSink = Arc::new(|e: &Event| say(e));
    match cmd {
        MirrorCommand::Publish { file, key, net } => {
            let network = net.network(&[crate::DEFAULT_LISTEN], &[]);
            say(format_args!(
                "publishing {} on {key} (listen {:?}, connect {:?})",
                file.display(),
                network.listen,
                network.connect
            ));
            let opts = PublishOptions {
                network,
                events: Some(events),
                ..PublishOptions::new()
            };
            Publisher::spawn(file, &key, opts).and_then(|p| {
                while !p.is_finished() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                p.stop()
            })
        }
        MirrorCommand::Follow { key, to, mode, net } => {
            let network = net.network(&[], &[crate::DEFAULT_CONNECT]);
            say(format_args!(
                "following {key} into {} (status in {}; listen {:?}, connect {:?})",
                to.display(),
                crate::status_path(&to).display(),
                network.listen,
                network.connect
            ));
            let mut opts = FollowOptions {
                network,
                events: Some(events),
                ..FollowOptions::new()
            };
            if let Some(m) = mode {
                opts.create = opts.create.mode(m);
            }
            Follower::spawn(&key, to, opts).and_then(|f| {
                while !f.is_finished() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                f.stop()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: MirrorCommand,
    }

    #[test]
    fn definition_is_consistent_and_defaults_are_loopback() {
        Cli::command().debug_assert();
        let Cli {
            command: MirrorCommand::Publish { net, .. },
        } = Cli::try_parse_from(["m", "publish", "f.state", "--key", "a/b"]).unwrap()
        else {
            panic!("not publish")
        };
        let n = net.network(&[crate::DEFAULT_LISTEN], &[]);
        assert_eq!(n.listen, [crate::DEFAULT_LISTEN]);
        assert!(n.connect.is_empty() && !n.multicast_scouting && !n.gossip);
        let Cli {
            command: MirrorCommand::Follow { net, mode, .. },
        } = Cli::try_parse_from([
            "m",
            "follow",
            "a/b",
            "--to",
            "r.state",
            "--mode",
            "640",
            "--connect",
            "tcp/127.0.0.1:9",
        ])
        .unwrap()
        else {
            panic!("not follow")
        };
        assert_eq!(mode, Some(0o640));
        let n = net.network(&[], &[crate::DEFAULT_CONNECT]);
        assert_eq!(n.connect, ["tcp/127.0.0.1:9"]);
        assert!(n.listen.is_empty());
        assert!(Cli::try_parse_from(["m", "follow", "a/b", "--to", "r", "--mode", "9"]).is_err());
    }
}
