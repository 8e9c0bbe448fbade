//! The benchmark of issue 7: mapped-state side by side with a hand-written seqlock (the lower
//! bound), a plain `memcpy` (the floor), cloudflare's mmap-sync 2.0.4 and the iceoryx2 0.10.0
//! blackboard, in one run, printed as Markdown tables of medians and ratios with every
//! contender's torn/backwards counts. `bench-peers/README.md` says what each row measures.
//!
//! ```sh
//! cd bench-peers
//! cargo bench --bench peers                       # the full run (5 rounds of 300 ms per case)
//! cargo bench --bench peers -- --quick            # a smoke run: 2 rounds of 20 ms
//! cargo bench --bench peers -- --out report.md    # also write the Markdown to a file
//! cargo bench --bench peers -- --only ping        # only the rows whose tag contains "ping"
//! ```
//!
//! Every (row, size, contender) case runs once per round, rounds interleaved, and the tables
//! give the median of the rounds. Cross-process rows re-execute this binary as the other
//! process (`remote.rs`). Progress goes to stderr, the Markdown to stdout.

mod handles;
mod local;
mod measure;
mod payload;
mod peers;
mod remote;
mod report;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use measure::Checks;
use payload::{with_payload, Size};

/// A contender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lib {
    /// A plain copy of a private buffer: the floor.
    Memcpy,
    /// The hand seqlock of `src/seqlock.rs`: the lower bound of a sound protocol.
    Hand,
    /// mapped-state (its default wake policy).
    Ms,
    /// mapped-state with `WakePolicy::EveryCommit` (publish, `set_a` and blocking wake rows).
    MsEveryCommit,
    MmapSync,
    Iox,
    /// A raw shared futex ping-pong: the lower bound of a blocking wake.
    Futex,
}

impl Lib {
    pub const ALL: [Lib; 7] = [
        Lib::Memcpy,
        Lib::Hand,
        Lib::Ms,
        Lib::MsEveryCommit,
        Lib::MmapSync,
        Lib::Iox,
        Lib::Futex,
    ];

    pub fn tag(self) -> &'static str {
        match self {
            Lib::Memcpy => "memcpy",
            Lib::Hand => "hand",
            Lib::Ms => "ms",
            Lib::MsEveryCommit => "ms-every",
            Lib::MmapSync => "mmap-sync",
            Lib::Iox => "iox",
            Lib::Futex => "futex",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Lib> {
        Lib::ALL.into_iter().find(|l| l.tag() == tag)
    }

    pub fn label(self) -> &'static str {
        match self {
            Lib::Memcpy => "memcpy",
            Lib::Hand => "hand seqlock",
            Lib::Ms => "mapped-state",
            Lib::MsEveryCommit => "mapped-state `EveryCommit`",
            Lib::MmapSync => "mmap-sync 2.0.4",
            Lib::Iox => "iceoryx2 0.10.0 blackboard",
            Lib::Futex => "raw shared futex",
        }
    }
}

/// A row of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Snapshot,
    Publish,
    Field,
    Element,
    SetField,
    ReadsFlat,
    ReadsPaced,
    SpinPingPong,
    WakePingPong,
}

const SNAPSHOT_LIBS: &[Lib] = &[Lib::Memcpy, Lib::Hand, Lib::Ms, Lib::MmapSync, Lib::Iox];
const PEER_LIBS: &[Lib] = &[Lib::Hand, Lib::Ms, Lib::MmapSync, Lib::Iox];

impl Op {
    pub const ALL: [Op; 9] = [
        Op::Snapshot,
        Op::Publish,
        Op::Field,
        Op::Element,
        Op::SetField,
        Op::ReadsFlat,
        Op::ReadsPaced,
        Op::SpinPingPong,
        Op::WakePingPong,
    ];

    pub fn tag(self) -> &'static str {
        match self {
            Op::Snapshot => "snapshot",
            Op::Publish => "publish",
            Op::Field => "field",
            Op::Element => "element",
            Op::SetField => "set-field",
            Op::ReadsFlat => "reads-flat",
            Op::ReadsPaced => "reads-paced",
            Op::SpinPingPong => "spin-ping",
            Op::WakePingPong => "wake-ping",
        }
    }

    /// The sizes the row runs at.
    pub fn sizes(self) -> &'static [Size] {
        match self {
            Op::Snapshot | Op::Publish | Op::Field => &Size::ALL,
            Op::Element => &[Size::K4, Size::K64],
            Op::SetField => &[Size::B64, Size::K64],
            Op::ReadsFlat | Op::ReadsPaced | Op::SpinPingPong => &[Size::B64, Size::K4],
            Op::WakePingPong => &[Size::B64],
        }
    }

    /// The contenders that can do it (the others' cells are "–"; the README says why).
    pub fn libs(self) -> &'static [Lib] {
        match self {
            Op::Snapshot => SNAPSHOT_LIBS,
            Op::Publish => &[
                Lib::Memcpy,
                Lib::Hand,
                Lib::Ms,
                Lib::MsEveryCommit,
                Lib::MmapSync,
                Lib::Iox,
            ],
            Op::Field | Op::Element => PEER_LIBS,
            Op::SetField => &[Lib::Hand, Lib::Ms, Lib::MsEveryCommit],
            Op::ReadsFlat | Op::ReadsPaced | Op::SpinPingPong => PEER_LIBS,
            Op::WakePingPong => &[Lib::Futex, Lib::Ms, Lib::MsEveryCommit],
        }
    }

    fn cross_process(self) -> bool {
        matches!(
            self,
            Op::ReadsFlat | Op::ReadsPaced | Op::SpinPingPong | Op::WakePingPong
        )
    }
}

/// One (row, size, contender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Case {
    pub op: Op,
    pub size: Size,
    pub lib: Lib,
}

/// What one round of a case measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// ns per operation (one-thread rows), reads per second (reads rows) or the median round
    /// trip in ns (ping-pong rows).
    pub value: f64,
    /// The 99th percentile round trip in ns (ping-pong rows).
    pub p99: f64,
    /// The other process's commits per second (reads rows).
    pub writer_rate: f64,
    pub checks: Checks,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            value: f64::NAN,
            p99: f64::NAN,
            writer_rate: f64::NAN,
            checks: Checks::default(),
        }
    }
}

/// Every round's sample of every case.
pub type Results = BTreeMap<Case, Vec<Sample>>;

/// The command line.
#[derive(Debug)]
pub struct Config {
    pub rounds: usize,
    pub round: Duration,
    pub quick: bool,
    pub only: Option<String>,
    pub out: Option<String>,
    /// Leave glibc's `memcpy` as it is (see [`avoid_rep_movsb`]).
    pub glibc_default: bool,
}

impl Config {
    fn from_args() -> Config {
        let mut cfg = Config {
            rounds: 5,
            round: Duration::from_millis(300),
            quick: false,
            only: None,
            out: None,
            glibc_default: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = |what: &str| args.next().unwrap_or_else(|| panic!("{a} needs {what}"));
            match a.as_str() {
                "--quick" => {
                    cfg.quick = true;
                    cfg.rounds = 2;
                    cfg.round = Duration::from_millis(20);
                }
                "--rounds" => cfg.rounds = value("a count").parse().expect("--rounds N"),
                "--round-ms" => {
                    cfg.round = Duration::from_millis(value("milliseconds").parse().expect("--round-ms N"))
                }
                "--only" => cfg.only = Some(value("a tag")),
                "--out" => cfg.out = Some(value("a path")),
                "--glibc-default" => cfg.glibc_default = true,
                // What `cargo bench` passes to every bench binary.
                "--bench" => {}
                other => panic!(
                    "unknown argument {other}; use --quick, --rounds N, --round-ms N, --only TAG, --out PATH, --glibc-default"
                ),
            }
        }
        cfg
    }

    /// The cases of one round, in the order they run.
    fn plan(&self) -> Vec<Case> {
        let mut cases = Vec::new();
        for op in Op::ALL {
            if let Some(only) = &self.only {
                if !op.tag().contains(only.as_str()) {
                    continue;
                }
            }
            for &size in op.sizes() {
                for &lib in op.libs() {
                    cases.push(Case { op, size, lib });
                }
            }
        }
        cases
    }
}

fn run(case: Case, round: Duration) -> Sample {
    with_payload!(case.size, T => if case.op.cross_process() {
        remote::run::<T>(case.op, case.lib, round)
    } else {
        local::run::<T>(case.op, case.lib, round)
    })
}

/// The glibc tunable that keeps `memcpy` off `rep movsb`.
pub const NO_REP_MOVSB: &str = "glibc.cpu.x86_rep_movsb_threshold=1000000000";
/// Set in the re-executed process, so it does not re-execute again.
const TUNED_ENV: &str = "BENCH_PEERS_TUNED";

/// Re-executes this process with glibc's `memcpy` kept off `rep movsb`, unless it already was.
///
/// On the AMD EPYC machines this benchmark was written on, glibc 2.36 copies blocks of a few KiB
/// and more with `rep movsb`, and `rep movsb` takes 20-30 times longer (4 KiB: 3-5 µs instead of
/// 50-200 ns) when the destination lies less than 64 bytes ahead of the source modulo 4096 —
/// which a move of a large value from one stack frame to the next often does. Which contender
/// hits it then depends on where its frames happen to fall, not on its design. The tunable is
/// read when a process starts (children inherit it) and is ignored where it does not apply.
fn avoid_rep_movsb() {
    use std::os::unix::process::CommandExt;
    let tunables = match std::env::var("GLIBC_TUNABLES") {
        Ok(t) if !t.is_empty() => format!("{t}:{NO_REP_MOVSB}"),
        _ => NO_REP_MOVSB.to_owned(),
    };
    let exe = std::env::current_exe().expect("the bench binary's path");
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", tunables)
        .env(TUNED_ENV, "1")
        .exec();
    panic!("re-execute with GLIBC_TUNABLES: {err}");
}

/// Whether this process runs with [`NO_REP_MOVSB`].
pub fn tuned() -> bool {
    std::env::var_os(TUNED_ENV).is_some()
}

fn main() {
    // iceoryx2 warns in every process that it found no config file; errors still show.
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
    if let Some(role) = remote::child_role() {
        remote::child(&role);
    }
    let cfg = Config::from_args();
    if !cfg.glibc_default && !tuned() {
        avoid_rep_movsb();
    }
    let plan = cfg.plan();
    let info = report::Info::now(&cfg);
    let start = Instant::now();
    eprintln!(
        "bench-peers: {} cases x {} rounds of {:?}",
        plan.len(),
        cfg.rounds,
        cfg.round
    );
    let mut results = Results::new();
    for round in 1..=cfg.rounds {
        for &case in &plan {
            let s = run(case, cfg.round);
            eprintln!(
                "round {round}/{}: {} {} {}: {}",
                cfg.rounds,
                case.op.tag(),
                case.size.label(),
                case.lib.tag(),
                report::sample_line(case.op, &s)
            );
            results.entry(case).or_default().push(s);
        }
    }
    let md = report::markdown(&cfg, &info.finish(start.elapsed()), &results);
    if let Some(out) = &cfg.out {
        std::fs::write(out, &md).unwrap_or_else(|e| panic!("write {out}: {e}"));
    }
    print!("{md}");
}
