//! The Markdown of a run: the machine and command, one table per kind of row (medians of the
//! rounds, ratios to the hand seqlock at the same size and of mapped-state to each peer), the
//! torn/backwards counts of every contender's checked reads, and the goals of issue 7.

use std::fmt::Write as _;
use std::time::Duration;

use crate::measure::{median, Checks};
use crate::payload::Size;
use crate::{Case, Config, Lib, Op, Results, Sample};

/// The machine and the command of a run.
#[derive(Debug)]
pub struct Info {
    command: String,
    cores: usize,
    cpu: String,
    kernel: String,
    rustc: &'static str,
    load_start: String,
    load_end: String,
    elapsed: Duration,
}

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn loadavg() -> String {
    first_line("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Info {
    pub fn now(cfg: &Config) -> Info {
        let mut command = "cd bench-peers && cargo bench --bench peers".to_owned();
        let mut args = Vec::new();
        if cfg.quick {
            args.push("--quick".to_owned());
        }
        if cfg.glibc_default {
            args.push("--glibc-default".to_owned());
        }
        if let Some(only) = &cfg.only {
            args.push(format!("--only {only}"));
        }
        if !args.is_empty() {
            command = format!("{command} -- {}", args.join(" "));
        }
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "?".to_owned());
        Info {
            command,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel: first_line("/proc/sys/kernel/osrelease"),
            rustc: env!("BENCH_PEERS_RUSTC"),
            load_start: loadavg(),
            load_end: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn finish(mut self, elapsed: Duration) -> Info {
        self.load_end = loadavg();
        self.elapsed = elapsed;
        self
    }
}

/// A case's rounds, summarized: medians, and the checks summed.
#[derive(Clone, Copy, Debug)]
struct Summary {
    value: f64,
    p99: f64,
    writer_rate: f64,
    checks: Checks,
}

fn summary(results: &Results, op: Op, size: Size, lib: Lib) -> Option<Summary> {
    let samples = results.get(&Case { op, size, lib })?;
    let pick = |f: fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    let mut checks = Checks::default();
    for s in samples {
        checks.add(&s.checks);
    }
    Some(Summary {
        value: pick(|s| s.value),
        p99: pick(|s| s.p99),
        writer_rate: pick(|s| s.writer_rate),
        checks,
    })
}

pub fn ns(x: f64) -> String {
    if x.is_nan() {
        "?".to_owned()
    } else if x < 10.0 {
        format!("{x:.2} ns")
    } else if x < 1e3 {
        format!("{x:.0} ns")
    } else if x < 1e4 {
        format!("{:.2} µs", x / 1e3)
    } else if x < 1e5 {
        format!("{:.1} µs", x / 1e3)
    } else if x < 1e6 {
        format!("{:.0} µs", x / 1e3)
    } else {
        format!("{:.2} ms", x / 1e6)
    }
}

fn rate(x: f64) -> String {
    if x.is_nan() {
        "?".to_owned()
    } else if x >= 1e6 {
        format!("{:.2}M/s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k/s", x / 1e3)
    } else {
        format!("{x:.0}/s")
    }
}

fn ratio(x: f64) -> String {
    if x.is_infinite() {
        // Divided by zero: the hand seqlock's reader starved.
        "∞".to_owned()
    } else if x.is_nan() {
        "?".to_owned()
    } else if x < 10.0 {
        format!("{x:.2}×")
    } else if x < 100.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.0}×")
    }
}

fn count(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{:.0}M", n as f64 / 1e6)
    } else if n >= 10_000 {
        format!("{:.0}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// One line of progress.
pub fn sample_line(op: Op, s: &Sample) -> String {
    let c = s.checks;
    let checks = format!(
        "checked {} torn {} backwards {} failed {}",
        c.checked, c.torn, c.backwards, c.failed
    );
    match op {
        Op::ReadsFlat | Op::ReadsPaced => format!(
            "{} reads, writer {}; {checks}",
            rate(s.value),
            rate(s.writer_rate)
        ),
        Op::SpinPingPong | Op::WakePingPong => {
            format!("p50 {} p99 {}; {checks}", ns(s.value), ns(s.p99))
        }
        _ => format!("{}; {checks}", ns(s.value)),
    }
}

fn op_label(op: Op, size: Size) -> String {
    let n = match size {
        Size::B64 => 0,
        Size::K4 => 511,
        Size::K64 => 8191,
    };
    match op {
        Op::Snapshot => "snapshot (`load()`)".to_owned(),
        Op::Publish => "publish, every word changes".to_owned(),
        Op::Field => "one `u64` field (`r.a()`)".to_owned(),
        Op::Element => format!("last element of `b: [u64; {n}]` (`r.b_at({})`)", n - 1),
        Op::SetField => "`set_a` (one `u64` field)".to_owned(),
        Op::ReadsFlat => "reads/s, writer in another process flat out".to_owned(),
        Op::ReadsPaced => "reads/s, writer in another process paced at 100k/s".to_owned(),
        Op::SpinPingPong => "spinning ping-pong round trip".to_owned(),
        Op::WakePingPong => "blocking wake ping-pong round trip".to_owned(),
    }
}

const ONE_THREAD: [Op; 5] = [
    Op::Snapshot,
    Op::Publish,
    Op::Field,
    Op::Element,
    Op::SetField,
];
const TABLE_LIBS: [Lib; 6] = [
    Lib::Memcpy,
    Lib::Hand,
    Lib::Ms,
    Lib::MsEveryCommit,
    Lib::MmapSync,
    Lib::Iox,
];
const PEERS: [Lib; 2] = [Lib::MmapSync, Lib::Iox];

fn header(out: &mut String, first: &[&str], libs: &[Lib], peers: bool) {
    let mut cols: Vec<String> = first.iter().map(|s| (*s).to_owned()).collect();
    cols.extend(libs.iter().map(|l| l.label().to_owned()));
    if peers {
        cols.extend(
            PEERS
                .iter()
                .map(|p| format!("mapped-state ÷ {}", p.label())),
        );
    }
    let _ = writeln!(out, "| {} |", cols.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(cols.len()));
}

/// The one-thread table: ns per operation, × the hand seqlock.
fn one_thread(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### One thread, nobody else touching the state\n\nMedian time per operation; in \
         parentheses ÷ the hand seqlock at the same size (lower is better). The last two columns \
         are mapped-state's time ÷ the peer's (below 1: mapped-state is faster). mapped-state runs \
         under its default wake policy; the `EveryCommit` column is a wake system call on every \
         commit, with nobody waiting.\n"
    );
    header(out, &["operation", "size"], &TABLE_LIBS, true);
    for op in ONE_THREAD {
        for &size in op.sizes() {
            let hand = summary(results, op, size, Lib::Hand);
            if TABLE_LIBS
                .iter()
                .all(|&l| summary(results, op, size, l).is_none())
            {
                continue;
            }
            let mut cells = vec![op_label(op, size), size.label().to_owned()];
            for lib in TABLE_LIBS {
                cells.push(match summary(results, op, size, lib) {
                    None => "–".to_owned(),
                    Some(s) if lib == Lib::Hand => ns(s.value),
                    Some(s) => match hand {
                        Some(h) => format!("{} ({})", ns(s.value), ratio(s.value / h.value)),
                        None => ns(s.value),
                    },
                });
            }
            let ms = summary(results, op, size, Lib::Ms);
            for peer in PEERS {
                cells.push(match (ms, summary(results, op, size, peer)) {
                    (Some(m), Some(p)) => ratio(m.value / p.value),
                    _ => "–".to_owned(),
                });
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    out.push('\n');
}

const CROSS_LIBS: [Lib; 4] = [Lib::Hand, Lib::Ms, Lib::MmapSync, Lib::Iox];

/// Reads/s with a writer in another process.
fn reads(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### Reads with the writer in another process\n\nMedian completed (consistent) whole-value \
         reads per second of one reader; in parentheses × the hand seqlock's reads/s at the same \
         size (higher is better); then the writer's achieved commits per second. The last two \
         columns are mapped-state's reads/s ÷ the peer's (above 1: mapped-state reads more).\n"
    );
    header(out, &["operation", "size"], &CROSS_LIBS, true);
    for op in [Op::ReadsFlat, Op::ReadsPaced] {
        for &size in op.sizes() {
            let Some(hand) = summary(results, op, size, Lib::Hand).or_else(|| {
                CROSS_LIBS
                    .iter()
                    .find_map(|&l| summary(results, op, size, l))
                    .map(|s| Summary {
                        value: f64::NAN,
                        ..s
                    })
            }) else {
                continue;
            };
            let mut cells = vec![op_label(op, size), size.label().to_owned()];
            for lib in CROSS_LIBS {
                cells.push(match summary(results, op, size, lib) {
                    None => "–".to_owned(),
                    Some(s) if lib == Lib::Hand => {
                        format!("{}; writer {}", rate(s.value), rate(s.writer_rate))
                    }
                    Some(s) => format!(
                        "{} ({}); writer {}",
                        rate(s.value),
                        ratio(s.value / hand.value),
                        rate(s.writer_rate)
                    ),
                });
            }
            let ms = summary(results, op, size, Lib::Ms);
            for peer in PEERS {
                cells.push(match (ms, summary(results, op, size, peer)) {
                    (Some(m), Some(p)) => ratio(m.value / p.value),
                    _ => "–".to_owned(),
                });
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    for &size in Op::ReadsFlat.sizes() {
        let mut cells = vec![
            "reads/s flat out ÷ reads/s paced".to_owned(),
            size.label().to_owned(),
        ];
        let mut any = false;
        for lib in CROSS_LIBS {
            cells.push(
                match (
                    summary(results, Op::ReadsFlat, size, lib),
                    summary(results, Op::ReadsPaced, size, lib),
                ) {
                    (Some(f), Some(p)) => {
                        any = true;
                        ratio(f.value / p.value)
                    }
                    _ => "–".to_owned(),
                },
            );
        }
        cells.extend(["".to_owned(), "".to_owned()]);
        if any {
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    out.push('\n');
}

/// Spinning ping-pong round trips.
fn spin(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### Update to observe, both sides spinning, across processes\n\nOne round trip: this \
         process publishes `i`, the other spins reading until it sees `i` and publishes `i` back \
         on a second object, this process spins until it sees it (two updates observed). Median \
         of the rounds' p50 and p99; in parentheses ÷ the hand seqlock (lower is better).\n"
    );
    header(out, &["size", "round trip"], &CROSS_LIBS, true);
    for &size in Op::SpinPingPong.sizes() {
        for (q, pick) in [("p50", 0), ("p99", 1)] {
            let get = |lib| {
                summary(results, Op::SpinPingPong, size, lib).map(|s| {
                    if pick == 0 {
                        s.value
                    } else {
                        s.p99
                    }
                })
            };
            let hand = get(Lib::Hand);
            if CROSS_LIBS.iter().all(|&l| get(l).is_none()) {
                continue;
            }
            let mut cells = vec![size.label().to_owned(), q.to_owned()];
            for lib in CROSS_LIBS {
                cells.push(match (get(lib), hand) {
                    (None, _) => "–".to_owned(),
                    (Some(v), _) if lib == Lib::Hand => ns(v),
                    (Some(v), Some(h)) => format!("{} ({})", ns(v), ratio(v / h)),
                    (Some(v), None) => ns(v),
                });
            }
            for peer in PEERS {
                cells.push(match (get(Lib::Ms), get(peer)) {
                    (Some(m), Some(p)) => ratio(m / p),
                    _ => "–".to_owned(),
                });
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    out.push('\n');
}

const WAKE_LIBS: [Lib; 3] = [Lib::Futex, Lib::Ms, Lib::MsEveryCommit];

/// Blocking wake ping-pong round trips.
fn wake(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### Blocking wake ping-pong across processes (64 B)\n\nAs above, but each side sleeps \
         until the other's commit: mapped-state in `wait_for_update_after` (under its default \
         policy `Coalesce(100 µs)`, and under `EveryCommit`), the floor as a bare shared futex \
         (`FUTEX_WAIT`/`FUTEX_WAKE` on a word of a shared mapping). In parentheses ÷ the raw \
         futex. mmap-sync and the blackboard cannot wait for an update: no cell.\n"
    );
    header(out, &["round trip"], &WAKE_LIBS, false);
    for (q, pick) in [("p50", 0), ("p99", 1)] {
        let get = |lib| {
            summary(results, Op::WakePingPong, Size::B64, lib).map(|s| {
                if pick == 0 {
                    s.value
                } else {
                    s.p99
                }
            })
        };
        if WAKE_LIBS.iter().all(|&l| get(l).is_none()) {
            return;
        }
        let futex = get(Lib::Futex);
        let mut cells = vec![q.to_owned()];
        for lib in WAKE_LIBS {
            cells.push(match (get(lib), futex) {
                (None, _) => "–".to_owned(),
                (Some(v), _) if lib == Lib::Futex => ns(v),
                (Some(v), Some(f)) => format!("{} ({})", ns(v), ratio(v / f)),
                (Some(v), None) => ns(v),
            });
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// The checked reads of every case: checked · torn · backwards (· failed).
fn checks(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### Checked reads\n\nEvery read of every round (both processes in the cross-process \
         rows): `checked · torn · backwards`, and `failed` when a read returned an error. Torn: \
         the first and last words differ (every value written holds one number in both), or a \
         read without a concurrent writer did not return the value written. Backwards: older \
         than a value or version read before it. Publish rows check mapped-state's returned \
         versions.\n"
    );
    let _ = writeln!(
        out,
        "| row | size | {} |",
        Lib::ALL.map(|l| l.label()).join(" | ")
    );
    let _ = writeln!(out, "|{}", "---|".repeat(Lib::ALL.len() + 2));
    let mut total = [Checks::default(); Lib::ALL.len()];
    for op in Op::ALL {
        for &size in op.sizes() {
            let cells: Vec<String> = Lib::ALL
                .iter()
                .enumerate()
                .map(|(i, &lib)| match summary(results, op, size, lib) {
                    Some(s) if s.checks.checked > 0 || s.checks.failed > 0 => {
                        total[i].add(&s.checks);
                        check_cell(s.checks)
                    }
                    _ => "–".to_owned(),
                })
                .collect();
            if cells.iter().all(|c| c == "–") {
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                op.tag(),
                size.label(),
                cells.join(" | ")
            );
        }
    }
    let _ = writeln!(
        out,
        "| **all** | | {} |\n",
        total.map(check_cell).join(" | ")
    );
}

fn check_cell(c: Checks) -> String {
    let mut s = format!(
        "{} · {} · {}",
        count(c.checked),
        count(c.torn),
        count(c.backwards)
    );
    if c.failed > 0 {
        let _ = write!(s, " · failed {}", count(c.failed));
    }
    s
}

/// Issue 7's goals, each with its measured value.
fn goals(out: &mut String, results: &Results) {
    let v = |op, size, lib| summary(results, op, size, lib).map(|s| s.value);
    let vs = |op, size, lib| {
        v(op, size, lib)
            .zip(v(op, size, Lib::Hand))
            .map(|(a, b)| a / b)
    };
    let mut rows: Vec<(String, Option<f64>, &str, Option<bool>)> = Vec::new();
    let mut le = |what: String, x: Option<f64>, goal: f64, shown: &'static str| {
        let x = x.filter(|x| x.is_finite());
        rows.push((what, x, shown, x.map(|x| x <= goal)));
    };
    le(
        "snapshot 64 B ÷ hand".into(),
        vs(Op::Snapshot, Size::B64, Lib::Ms),
        1.5,
        "≤ 1.5×",
    );
    le(
        "snapshot 64 B, mapped-state ÷ mmap-sync".into(),
        v(Op::Snapshot, Size::B64, Lib::Ms)
            .zip(v(Op::Snapshot, Size::B64, Lib::MmapSync))
            .map(|(m, p)| m / p),
        0.2,
        "≤ 0.2× (5× faster)",
    );
    for size in [Size::K4, Size::K64] {
        le(
            format!("snapshot {} ÷ hand", size.label()),
            vs(Op::Snapshot, size, Lib::Ms),
            1.3,
            "≤ 1.3×",
        );
    }
    le(
        "publish 64 B ÷ hand".into(),
        vs(Op::Publish, Size::B64, Lib::Ms),
        3.0,
        "≤ 3×",
    );
    le(
        "publish 4 KiB ÷ hand".into(),
        vs(Op::Publish, Size::K4, Lib::Ms),
        1.5,
        "≤ 1.5×",
    );
    le(
        "one `u64` field 4 KiB ÷ hand".into(),
        vs(Op::Field, Size::K4, Lib::Ms),
        2.0,
        "≤ 2×",
    );
    le(
        "last element of `[u64; 511]` ÷ hand".into(),
        vs(Op::Element, Size::K4, Lib::Ms),
        2.0,
        "≤ 2×",
    );
    let set64k = v(Op::SetField, Size::K64, Lib::Ms);
    rows.push((
        "`set_a` on 64 KiB (ns)".into(),
        set64k,
        "≤ 150 ns",
        set64k.map(|x| x <= 150.0),
    ));
    let set_ratio = set64k
        .zip(v(Op::SetField, Size::B64, Lib::Ms))
        .map(|(a, b)| a / b);
    rows.push((
        "`set_a` on 64 KiB ÷ on 64 B".into(),
        set_ratio,
        "≤ 3×",
        set_ratio.map(|x| x <= 3.0),
    ));
    let flat = summary(results, Op::ReadsFlat, Size::K4, Lib::Ms);
    let paced = v(Op::ReadsPaced, Size::K4, Lib::Ms);
    let fp = flat.map(|f| f.value).zip(paced).map(|(f, p)| f / p);
    rows.push((
        "reads/s 4 KiB, flat out ÷ paced".into(),
        fp,
        "≥ 0.6×",
        fp.map(|x| x >= 0.6),
    ));
    let wr = flat
        .zip(summary(results, Op::ReadsFlat, Size::K4, Lib::Hand))
        .map(|(m, h)| m.writer_rate / h.writer_rate);
    rows.push((
        "writer commits/s 4 KiB flat out ÷ hand's".into(),
        wr,
        "≥ 0.8×",
        wr.map(|x| x >= 0.8),
    ));
    for size in [Size::B64, Size::K4] {
        let x = vs(Op::ReadsPaced, size, Lib::Ms);
        rows.push((
            format!("reads/s paced {} ÷ hand", size.label()),
            x,
            "≥ 0.8×",
            x.map(|x| x >= 0.8),
        ));
    }
    let mut le = |what: String, x: Option<f64>, goal: f64, shown: &'static str| {
        let x = x.filter(|x| x.is_finite());
        rows.push((what, x, shown, x.map(|x| x <= goal)));
    };
    for size in [Size::B64, Size::K4] {
        le(
            format!("spinning ping-pong p50 {} ÷ hand", size.label()),
            vs(Op::SpinPingPong, size, Lib::Ms),
            1.2,
            "≤ 1.2×",
        );
    }
    le(
        "blocking wake p50, default policy ÷ raw futex".into(),
        v(Op::WakePingPong, Size::B64, Lib::Ms)
            .zip(v(Op::WakePingPong, Size::B64, Lib::Futex))
            .map(|(m, f)| m / f),
        1.3,
        "≤ 1.3×",
    );
    let _ = writeln!(
        out,
        "### Issue 7's goals\n\n| goal | measured | target | met |\n|---|---|---|---|"
    );
    for (what, x, target, met) in rows {
        let (x, met) = match x {
            Some(x) if x.is_finite() => (Some(x), met),
            _ => (None, None),
        };
        let shown = match x {
            None => "–".to_owned(),
            Some(x) if what.ends_with("(ns)") => ns(x),
            Some(x) => ratio(x),
        };
        let met = match met {
            None => "–",
            Some(true) => "yes",
            Some(false) => "**no**",
        };
        let _ = writeln!(out, "| {what} | {shown} | {target} | {met} |");
    }
    out.push('\n');
}

pub fn markdown(cfg: &Config, info: &Info, results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Benchmarks: mapped-state and its peers\n\n\
         - command: `{}` ({} rounds of {} ms per case, interleaved; medians of the rounds; the \
         run took {:.0} s)\n\
         - machine: {} cores, {}, Linux {}, {}; load average {} at the start, {} at the end\n\
         - files and shared memory on tmpfs (`/dev/shm`); nothing pinned; {}\n",
        info.command,
        cfg.rounds,
        cfg.round.as_millis(),
        info.elapsed.as_secs_f64(),
        info.cores,
        info.cpu,
        info.kernel,
        info.rustc,
        info.load_start,
        info.load_end,
        if crate::tuned() {
            format!(
                "glibc's `memcpy` kept off `rep movsb` (`GLIBC_TUNABLES={}`, see the README; \
                 `--glibc-default` runs without)",
                crate::NO_REP_MOVSB
            )
        } else {
            "glibc's `memcpy` as it is (`--glibc-default`)".to_owned()
        },
    );
    let has = |ops: &[Op]| results.keys().any(|c| ops.contains(&c.op));
    if has(&ONE_THREAD) {
        one_thread(&mut out, results);
    }
    if has(&[Op::ReadsFlat, Op::ReadsPaced]) {
        reads(&mut out, results);
    }
    if has(&[Op::SpinPingPong]) {
        spin(&mut out, results);
    }
    if has(&[Op::WakePingPong]) {
        wake(&mut out, results);
    }
    checks(&mut out, results);
    goals(&mut out, results);
    out
}
