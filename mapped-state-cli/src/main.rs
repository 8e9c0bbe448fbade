//! The `mapped-state` command: inspect, watch, check and compare any state file through the
//! schema manifest stored in it, with no Rust types.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use mapped_state_cli::{check, exit::Exit, inspect, record, watch};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (check: the file is valid; diff: same schema)
  1  the file is not a valid state file, or holds an invalid value, or has another schema hash
  2  usage error (unknown option, bad argument)
  3  the file cannot be opened or read (missing, permission denied, not a regular file,
     a symbolic link, writable by other users, owned by an untrusted user, or a writer too
     busy to copy a value)
  4  negative answer: diff found differences; watch --timeout passed before --count versions

Errors are one line on stderr: `mapped-state: <file>: <what is wrong>`.";

const JSON_NUMBERS: &str = "\
JSON output (--json): one object per line.
  integers up to 64 bits  JSON numbers, every digit exact (parsers that use doubles, such as
                          JavaScript's, round values beyond 2^53)
  u128, i128              decimal strings (\"340282366920938463463374607431768211455\"), so a
                          field's JSON type never depends on its value
  f32, f64                numbers in shortest round-trip form (0.1, not 0.10000000149011612);
                          NaN and infinities as the strings \"NaN\", \"Infinity\", \"-Infinity\"
  bool                    true / false
  char, FixedStr          strings
  enums                   the variant's name (\"Running\")
  arrays, structs         arrays, objects with fields in declaration order
  keys                    never repeated in an object; in watch's \"changes\", field paths
                          with `\\`, `.`, `[`, `]` inside a name escaped by a backslash";

/// Inspect, watch and check mapped-state files: any state file describes its own layout, so no
/// Rust code is needed to read it.
#[derive(Debug, Parser)]
#[command(name = "mapped-state", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a state file's header, writer, version and every field by name with its value;
    /// or, for a log written by `record`, its header, totals and every record's value.
    #[command(after_help = format!("{JSON_NUMBERS}\n\n{EXIT_CODES}"))]
    Inspect {
        /// The state file, or a log written by `record` (told apart by its first bytes).
        file: PathBuf,
        /// Print one JSON object instead of text (see below for how numbers are written).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Print each new version of a state file with the fields that changed (old -> new).
    ///
    /// Sleeps on the file's futex between commits, so it uses no CPU while nothing changes.
    /// Also reports when the writer process exits or starts, and follows the path when the file
    /// is replaced by a newer one (`CreateOptions::replace`). A file that is not there yet is
    /// waited for (`waiting for FILE to appear`, `"event":"waiting"`; exit code 3 if --timeout
    /// passes first). The first line (text) or object (`"event":"start"`) about the file is
    /// printed once the watch is armed: a change after it is never missed.
    /// Commits made in quick succession may be reported together, with the number not seen.
    #[command(after_help = format!("{JSON_NUMBERS}\n\n{EXIT_CODES}"))]
    Watch {
        /// The state file.
        file: PathBuf,
        /// Print one JSON object per event instead of text.
        #[arg(long)]
        json: bool,
        /// Exit after N new versions have been printed (exit code 0).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit after SECS seconds (fractions allowed). Exit code 4 if --count versions were not
        /// seen by then, 0 otherwise.
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Validate a state file completely: header, schema manifest, and a snapshot of the value
    /// decoded field by field. Prints one line; the exit code says whether the file is valid.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The state file.
        file: PathBuf,
        /// Also require this schema hash (16 hex digits, `0x` optional, as `inspect` prints it).
        #[arg(long, value_name = "HASH", value_parser = parse_hash)]
        schema_hash: Option<u64>,
        /// Print nothing when the file is valid.
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Append every version of a state file to a log of its own (never writing to the state
    /// file), until --count, --duration, or the writer's exit or the file's replacement.
    ///
    /// After a burst of commits, reads every version still in the file's ring; the versions it
    /// could not read are counted as skipped. Prints a line once the first version is in the
    /// log and one when it ends. The log format is in docs/FORMAT.md, section 13.
    #[command(after_help = EXIT_CODES)]
    Record {
        /// The state file.
        file: PathBuf,
        /// The log to create (refused if anything exists there).
        #[arg(long, value_name = "LOG")]
        out: PathBuf,
        /// Stop once N versions are in the log (the first counts).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after SECS seconds (fractions allowed).
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        duration: Option<Duration>,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Re-publish a log's records into a new state file of the same schema: the first record is
    /// its version 0, each later record one commit, at the recorded pace divided by --speed.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The log, written by `record`.
        log: PathBuf,
        /// The state file to create.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// A factor on the recorded pace (2 = twice as fast), or `max` (or 0) for as fast as
        /// possible.
        #[arg(long, value_name = "X", default_value = "1", value_parser = record::parse_speed)]
        speed: mapped_state::record::Speed,
        /// Replace a state file already at --to (it must have no live writer; its readers are
        /// told to reopen).
        #[arg(long)]
        replace: bool,
    },
    /// Compare the schemas stored in two state files field by field, and say whether readers of
    /// the first (OLD) can open the second (NEW), and why not.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The file taken as the old schema.
        file_a: PathBuf,
        /// The file taken as the new schema.
        file_b: PathBuf,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Write code that reads a state file's schema from another language: `codegen c FILE`.
    #[command(subcommand)]
    Codegen(mapped_state_cli::codegen_c::Codegen),
    /// Mirror a state file to other machines over zenoh: `publish` a local file, `follow` it
    /// into a local replica (feature `mirror`, on by default).
    #[cfg(feature = "mirror")]
    #[command(subcommand)]
    Mirror(mapped_state_zenoh::cli::MirrorCommand),
}

/// Options for opening a state file.
#[derive(Debug, Args)]
struct OpenArgs {
    /// Open files that group or other users may write (refused by default: such a user could
    /// change the file under a reader).
    #[arg(long)]
    allow_shared_writable: bool,
    /// Also open files owned by user UID (repeatable). Files owned by this user or root are
    /// always opened; others are refused by default, since a file's owner can change or
    /// truncate it under a reader.
    #[arg(long, value_name = "UID")]
    trust_owner: Vec<u32>,
}

impl OpenArgs {
    fn options(&self) -> mapped_state::OpenOptions {
        let opts =
            mapped_state::OpenOptions::new().allow_shared_writable(self.allow_shared_writable);
        self.trust_owner
            .iter()
            .fold(opts, |opts, &uid| opts.trust_owner(uid))
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (e.g. 5 or 0.5)"))?;
    if secs.is_nan() || secs < 0.0 {
        return Err(format!("`{s}`: the number of seconds must be 0 or more"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` seconds is too long"))
}

fn parse_hash(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let valid = !digits.is_empty() && digits.len() <= 16;
    match u64::from_str_radix(digits, 16) {
        Ok(h) if valid && !digits.starts_with('+') => Ok(h),
        _ => Err(format!(
            "`{s}` is not a schema hash: expected up to 16 hex digits, as `inspect` prints it"
        )),
    }
}

fn run(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Inspect { file, json, .. } if record::is_log(&file) => {
            record::inspect(&file, json)
        }
        Command::Inspect { file, json, open } => inspect::run(&file, &open.options(), json),
        Command::Record {
            file,
            out,
            count,
            duration,
            open,
        } => record::record(
            &file,
            &open.options(),
            &out,
            &mapped_state::record::RecordLimits { count, duration },
        ),
        Command::Replay {
            log,
            to,
            speed,
            replace,
        } => record::replay(&log, &to, speed, replace),
        Command::Watch {
            file,
            json,
            count,
            timeout,
            open,
        } => watch::run(
            &file,
            &open.options(),
            &watch::Settings {
                json,
                count,
                timeout,
            },
        ),
        Command::Check {
            file,
            schema_hash,
            quiet,
            open,
        } => check::check(&file, &open.options(), schema_hash, quiet),
        Command::Diff {
            file_a,
            file_b,
            open,
        } => check::diff(&file_a, &file_b, &open.options()),
        Command::Codegen(codegen) => codegen.run(),
        #[cfg(feature = "mirror")]
        Command::Mirror(cmd) => mapped_state_zenoh::cli::execute(cmd).map_err(|e| {
            eprintln!("mapped-state: mirror: {e}");
            Exit::silent(mapped_state_cli::exit::IO)
        }),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn hashes_parse_with_or_without_prefix() {
        assert_eq!(parse_hash("0x00ff"), Ok(255));
        assert_eq!(parse_hash("DEADbeef00000001"), Ok(0xdead_beef_0000_0001));
        assert!(parse_hash("0x").is_err());
        assert!(parse_hash("+ff").is_err());
        assert!(parse_hash("0x1234567890abcdef0").is_err());
        assert!(parse_hash("xyz").is_err());
    }

    #[test]
    fn seconds_parse_and_reject_nonsense() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("3"), Ok(Duration::from_secs(3)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("1e300").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
