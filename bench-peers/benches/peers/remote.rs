//! The cross-process rows. The other process is this bench binary itself, started again with
//! `BENCH_PEERS_ROLE` set (as the main repository's `tests/common/mod.rs` does for its tests):
//! a *writer* publishing flat out or paced at 100k commits/s while this process counts reads, or
//! a *pong* answering each value this process publishes, spinning or blocked in a wait. Children
//! report on stdout, one `BENCH-PEERS <what> key=value ...` line each, and stop when their stdin
//! closes (or on the ping-pong's sentinel value).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench_peers::futex::{FutexPair, Word};
use mapped_state::{Reader, WakePolicy};

use crate::handles::{by_lib, MsSink, Name, Read, Removed, Sink, Source};
use crate::measure::{quantile, Checker, Checks};
use crate::payload::{with_payload, Payload, Size};
use crate::{Lib, Op, Sample};

const ROLE_ENV: &str = "BENCH_PEERS_ROLE";
const LIB_ENV: &str = "BENCH_PEERS_LIB";
const SIZE_ENV: &str = "BENCH_PEERS_SIZE";
const PING_ENV: &str = "BENCH_PEERS_PING";
const PONG_ENV: &str = "BENCH_PEERS_PONG";
const PREFIX: &str = "BENCH-PEERS";

/// The paced writer's commit period: 100k commits/s.
const PACE: Duration = Duration::from_micros(10);
/// The ping-pong's last value: the answering side stops when it sees it.
const SENTINEL: u64 = u64::MAX;
/// How long a side waits for an answer before it calls the other side dead.
const STALL: Duration = Duration::from_secs(10);

/// The role this process was started in, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// Runs the cross-process row `op` for `lib` at size `T` in this (the parent) process.
pub fn run<T: Payload>(op: Op, lib: Lib, round: Duration) -> Sample {
    match op {
        Op::ReadsFlat => by_lib!(lib, T, reads(lib, false, round)),
        Op::ReadsPaced => by_lib!(lib, T, reads(lib, true, round)),
        Op::SpinPingPong => by_lib!(lib, T, spin_ping(lib, round)),
        Op::WakePingPong => match lib {
            Lib::Ms => ms_wake_ping::<T>(WakePolicy::default(), "ms", round),
            Lib::MsEveryCommit => ms_wake_ping::<T>(WakePolicy::EveryCommit, "ms-every", round),
            Lib::Futex => futex_ping(round),
            _ => unreachable!("{lib:?} cannot wait"),
        },
        _ => unreachable!("{op:?} is not a cross-process row"),
    }
}

// ---------------------------------------------------------------------------------------------
// The values. The first and last words hold the commit number; the words between alternate
// between two patterns, so every word changes on every commit (no diffing writer gets a free
// commit) while making a value costs two stores, not a fill of the whole payload.

struct Stamper<T> {
    values: Box<[T; 2]>,
}

impl<T: Payload> Stamper<T> {
    fn new() -> Self {
        Stamper {
            values: Box::new([T::filled(1), T::filled(2)]),
        }
    }

    /// The value of commit `i`.
    #[inline]
    fn stamp(&mut self, i: u64) -> &T {
        let v = &mut self.values[(i & 1) as usize];
        let w = v.words_mut();
        let last = w.len() - 1;
        w[0] = i;
        w[last] = i;
        v
    }
}

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// A child process and its pipes.
struct Child {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Child {
    fn spawn(role: &str, lib: &str, size: Size, ping: &Name, pong: Option<&Name>) -> Child {
        let mut cmd = Command::new(std::env::current_exe().expect("the bench binary's path"));
        cmd.env(ROLE_ENV, role)
            .env(LIB_ENV, lib)
            .env(SIZE_ENV, size.tag())
            .env(PING_ENV, &ping.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(pong) = pong {
            cmd.env(PONG_ENV, &pong.0);
        }
        let mut child = cmd.spawn().expect("start the child process");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
        Child {
            child,
            stdin,
            lines,
        }
    }

    /// The fields of the child's next `BENCH-PEERS <what>` line (other lines are passed on).
    fn expect(&mut self, what: &str) -> HashMap<String, String> {
        for line in self.lines.by_ref() {
            let line = line.expect("read the child's stdout");
            let Some(rest) = line.strip_prefix(PREFIX) else {
                eprintln!("child: {line}");
                continue;
            };
            let mut words = rest.split_whitespace();
            if words.next() != Some(what) {
                panic!("child said {line:?}, expected {what}");
            }
            return words
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
        panic!("child exited before saying {what}");
    }

    /// Closes the child's stdin (its signal to stop), then reads its report and waits for it.
    fn finish(mut self) -> HashMap<String, String> {
        drop(self.stdin.take());
        let report = self.expect("report");
        let status = self.child.wait().expect("wait for the child");
        assert!(status.success(), "child failed: {status}");
        report
    }
}

fn num(report: &HashMap<String, String>, key: &str) -> Option<u64> {
    report.get(key).and_then(|v| v.parse().ok())
}

fn checks_of(report: &HashMap<String, String>) -> Checks {
    Checks::from_fields(|k| num(report, k))
}

/// Reads/s of this process while a child publishes flat out (or paced at 100k/s).
fn reads<T: Payload, W: Sink<T>, R: Source<T>>(lib: Lib, paced: bool, round: Duration) -> Sample {
    let name = Name::new("reads");
    let role = if paced { "paced" } else { "flat" };
    let mut child = Child::spawn(role, lib.tag(), T::SIZE, &name, None);
    child.expect("ready");
    let mut r = R::open(&name);
    let mut c = Checker::default();
    let mut count = |until: Instant, c: &mut Checker| {
        let mut n = 0u64;
        while Instant::now() < until {
            for _ in 0..64 {
                match r.read() {
                    Read::Got(ends) => {
                        c.see(ends);
                        n += 1;
                    }
                    Read::Retry => {}
                    Read::Failed => c.failed(),
                }
            }
        }
        n
    };
    count(Instant::now() + round / 10, &mut Checker::default());
    let start = Instant::now();
    let n = count(start + round, &mut c);
    let secs = start.elapsed().as_secs_f64();
    let report = child.finish();
    let commits = num(&report, "commits").unwrap_or(0) as f64;
    let writer_secs = report
        .get("secs")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    Sample {
        value: n as f64 / secs,
        writer_rate: commits / writer_secs,
        checks: c.checks,
        ..Sample::default()
    }
}

/// Round trips with both sides spinning: this process publishes `i` on `ping` and spins reading
/// `pong` until it holds `i`; the child spins on `ping` and answers each `i` on `pong`.
fn spin_ping<T: Payload, W: Sink<T>, R: Source<T>>(lib: Lib, round: Duration) -> Sample {
    let (ping, pong) = (Name::new("ping"), Name::new("pong"));
    let mut w = W::create(&ping);
    let mut child = Child::spawn("spin", lib.tag(), T::SIZE, &ping, Some(&pong));
    child.expect("ready");
    let mut r = R::open(&pong);
    let mut stamper = Stamper::<T>::new();
    let mut c = Checker::default();
    let rtts = round_trips(round, |i| {
        w.publish(stamper.stamp(i));
        let t0 = Instant::now();
        let mut spins = 0u32;
        loop {
            match r.read() {
                Read::Got(ends) => {
                    c.see(ends);
                    if ends.0 == i {
                        return;
                    }
                }
                Read::Retry => {}
                Read::Failed => c.failed(),
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) && t0.elapsed() > STALL {
                panic!("the pong process stopped answering at {i}");
            }
        }
    });
    w.publish(stamper.stamp(SENTINEL));
    let mut checks = c.checks;
    checks.add(&checks_of(&child.finish()));
    rtt_sample(rtts, checks)
}

/// Round trips through mapped-state's blocking wait: each side waits in
/// `wait_for_update_after` for the other's commit, under wake policy `policy`.
fn ms_wake_ping<T: Payload>(policy: WakePolicy, tag: &str, round: Duration) -> Sample {
    let (ping, pong) = (Name::new("ping"), Name::new("pong"));
    let mut w = <MsSink<T> as Sink<T>>::create(&ping);
    w.w.set_wake_policy(policy);
    let mut child = Child::spawn("wake", tag, T::SIZE, &ping, Some(&pong));
    child.expect("ready");
    let r = Reader::<T>::open(pong.path()).expect("mapped-state open");
    let mut seen = r.version();
    let mut stamper = Stamper::<T>::new();
    let mut c = Checker::default();
    let rtts = round_trips(round, |i| {
        w.w.publish(stamper.stamp(i));
        let t0 = Instant::now();
        loop {
            match r.wait_for_update_after(seen, STALL) {
                Ok(Some(u)) => {
                    seen = u.version;
                    c.see_version(u.version);
                    c.see(u.value.ends());
                    if u.value.ends().0 == i {
                        return;
                    }
                }
                Ok(None) => panic!("the pong process stopped answering at {i}"),
                Err(e) => {
                    c.failed();
                    assert!(t0.elapsed() < STALL, "waiting for the pong process: {e}");
                }
            }
        }
    });
    w.w.publish(stamper.stamp(SENTINEL));
    let mut checks = c.checks;
    checks.add(&checks_of(&child.finish()));
    rtt_sample(rtts, checks)
}

/// The floor of a blocking wake: two processes, one shared mapping, `FUTEX_WAIT`/`FUTEX_WAKE`.
fn futex_ping(round: Duration) -> Sample {
    let name = Name::new("futex");
    let _file = Removed(name.path());
    let pair = FutexPair::create(&name.path()).expect("futex file");
    let mut child = Child::spawn("wake", "futex", Size::B64, &name, None);
    child.expect("ready");
    let mut c = Checker::default();
    let rtts = round_trips(round, |i| {
        let i = i as u32;
        pair.post(Word::Ping, i);
        let t0 = Instant::now();
        let mut v = i - 1;
        while v != i {
            v = pair.wait_while(Word::Pong, v, Duration::from_secs(1));
            assert!(t0.elapsed() < STALL, "the pong process stopped answering");
        }
        c.see((u64::from(v), u64::from(v)));
    });
    pair.post(Word::Ping, u32::MAX);
    let mut checks = c.checks;
    checks.add(&checks_of(&child.finish()));
    rtt_sample(rtts, checks)
}

/// Runs `trip(i)` for i = 1, 2, ... for a tenth of `round` (warm-up) plus `round` (and until one
/// round trip started after the warm-up); returns the nanoseconds of each such round trip.
fn round_trips(round: Duration, mut trip: impl FnMut(u64)) -> Vec<f64> {
    let start = Instant::now();
    let (warm, end) = (start + round / 10, start + round / 10 + round);
    let mut rtts = Vec::with_capacity(1 << 16);
    let mut i = 0;
    loop {
        i += 1;
        let t0 = Instant::now();
        trip(i);
        let t1 = Instant::now();
        if t0 >= warm {
            rtts.push((t1 - t0).as_nanos() as f64);
        }
        // At least one measured round trip, even when one takes longer than the round.
        if t1 >= end && !rtts.is_empty() {
            return rtts;
        }
    }
}

fn rtt_sample(mut rtts: Vec<f64>, checks: Checks) -> Sample {
    Sample {
        value: quantile(&mut rtts, 0.5),
        p99: quantile(&mut rtts, 0.99),
        checks,
        ..Sample::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The child's side.

/// Set when stdin closes: the parent wants the child to stop.
static STOP: AtomicBool = AtomicBool::new(false);

fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PREFIX} {line}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child started without {name}"))
}

/// Runs this process as the child `role`, then exits.
pub fn child(role: &str) -> ! {
    std::thread::spawn(|| {
        // Ends at EOF: the parent closed our stdin.
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        STOP.store(true, Ordering::Relaxed);
    });
    let lib = env(LIB_ENV);
    let size = Size::from_tag(&env(SIZE_ENV)).expect("a size tag");
    let ping = Name(env(PING_ENV));
    let pong = std::env::var(PONG_ENV).ok().map(Name);
    match (role, lib.as_str()) {
        ("wake", "futex") => futex_pong(&ping),
        ("wake", policy) => {
            let policy = match policy {
                "ms" => WakePolicy::default(),
                _ => WakePolicy::EveryCommit,
            };
            with_payload!(size, T => ms_wake_pong::<T>(policy, &ping, &pong.expect("pong name")))
        }
        (_, tag) => {
            let lib = crate::Lib::from_tag(tag).expect("a library tag");
            match role {
                "flat" => with_payload!(size, T => by_lib!(lib, T, writer(false, &ping))),
                "paced" => with_payload!(size, T => by_lib!(lib, T, writer(true, &ping))),
                "spin" => {
                    with_payload!(size, T => by_lib!(lib, T, spin_pong(&ping, &pong.expect("pong name"))))
                }
                _ => panic!("unknown child role {role}"),
            }
        }
    }
    std::process::exit(0)
}

/// Publishes until stopped, flat out or paced; reports the commits and the time they took.
fn writer<T: Payload, W: Sink<T>, R: Source<T>>(paced: bool, name: &Name) {
    let mut w = W::create(name);
    let mut stamper = Stamper::<T>::new();
    say("ready");
    let start = Instant::now();
    let mut i = 0u64;
    let mut due = start;
    while !stopped() {
        i += 1;
        if paced {
            due += PACE;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        w.publish(stamper.stamp(i));
    }
    let secs = start.elapsed().as_secs_f64();
    say(&format!("report commits={i} secs={secs}"));
}

/// Answers each value seen on `ping` with the same number on `pong`, spinning.
fn spin_pong<T: Payload, W: Sink<T>, R: Source<T>>(ping: &Name, pong: &Name) {
    let mut r = R::open(ping);
    let mut w = W::create(pong);
    let mut stamper = Stamper::<T>::new();
    let mut c = Checker::default();
    say("ready");
    let mut expect = 1;
    while !stopped() {
        match r.read() {
            Read::Got(ends) => {
                c.see(ends);
                if ends.0 == SENTINEL {
                    break;
                }
                if ends.0 == expect {
                    w.publish(stamper.stamp(expect));
                    expect += 1;
                }
            }
            Read::Retry => {}
            Read::Failed => c.failed(),
        }
    }
    wait_for_stdin_close();
    say(&format!("report {}", c.checks.to_line()));
}

/// Answers each version seen on `ping` with the same number on `pong`, blocked in
/// `wait_for_update_after` between them.
fn ms_wake_pong<T: Payload>(policy: WakePolicy, ping: &Name, pong: &Name) {
    let r = Reader::<T>::open(ping.path()).expect("mapped-state open");
    let mut w = <MsSink<T> as Sink<T>>::create(pong);
    w.w.set_wake_policy(policy);
    let mut stamper = Stamper::<T>::new();
    let mut c = Checker::default();
    let mut seen = r.version();
    say("ready");
    while !stopped() {
        match r.wait_for_update_after(seen, Duration::from_millis(100)) {
            Ok(Some(u)) => {
                seen = u.version;
                c.see_version(u.version);
                let ends = u.value.ends();
                c.see(ends);
                if ends.0 == SENTINEL {
                    break;
                }
                w.w.publish(stamper.stamp(ends.0));
            }
            Ok(None) => {}
            Err(_) => c.failed(),
        }
    }
    wait_for_stdin_close();
    say(&format!("report {}", c.checks.to_line()));
}

/// The raw futex's answering side.
fn futex_pong(name: &Name) {
    let pair = FutexPair::open(&name.path()).expect("futex file");
    let mut c = Checker::default();
    say("ready");
    let mut last = 0;
    while !stopped() {
        let v = pair.wait_while(Word::Ping, last, Duration::from_millis(100));
        if v == last {
            continue;
        }
        if v == u32::MAX {
            break;
        }
        c.see((u64::from(v), u64::from(v)));
        last = v;
        pair.post(Word::Pong, v);
    }
    wait_for_stdin_close();
    say(&format!("report {}", c.checks.to_line()));
}

/// The parent reads the report only after closing stdin; a child that stopped on the sentinel
/// waits for that, so that it still holds its files while the parent reads them.
fn wait_for_stdin_close() {
    while !stopped() {
        std::thread::sleep(Duration::from_millis(1));
    }
}
