//! One writer process and two reader processes sharing a `Telemetry` struct through a state file.
//!
//! ```sh
//! cargo run --release --example quickstart             # about 4 seconds
//! cargo run --release --example quickstart -- 10       # publish for 10 seconds
//! ```
//!
//! The program re-executes itself in each role: `writer PATH` publishes at 1 kHz (each commit
//! carries its own version in `uptime_s`, and samples derived from `rpm`, so a torn read would be
//! caught), then bursts as fast as it can for half a second; `reader PATH ID` blocks in
//! `Reader::updates()`, checks every snapshot, and reports what it saw. The summary shows the
//! updates published, seen and skipped per reader (a slow reader conflates bursts and learns
//! exactly how much it missed), torn reads (zero), and the wake latency from commit to reader.

#[path = "shared/telemetry.rs"]
mod telemetry;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mapped_state::{Error, FixedStr, Reader, Writer};
use telemetry::{Limits, Mode, Telemetry};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The value of version `n`: every field is a function of `n`, so a reader can tell whether a
/// snapshot mixes two versions.
fn telemetry_at(n: u64, phase: &str) -> Telemetry {
    let rpm = 1_000 + (n % 4_000) as u32;
    let mut samples = [0.0f32; 8];
    for (i, s) in samples.iter_mut().enumerate() {
        *s = rpm as f32 + i as f32;
    }
    Telemetry {
        rpm,
        temperature_c: rpm as f32 / 40.0,
        uptime_s: n,
        mode: if phase == "done" {
            Mode::Idle
        } else {
            Mode::Running
        },
        healthy: true,
        grade: 'A',
        samples,
        limits: Limits {
            min_rpm: 800,
            max_rpm: 6_000,
        },
        label: FixedStr::truncate(phase),
    }
}

/// Whether `t` is exactly the value the writer committed as `version`.
fn consistent(t: &Telemetry, version: u64) -> bool {
    let phase = t.label.as_str();
    t.uptime_s == version && *t == telemetry_at(version, phase)
}

fn writer(path: &Path, seconds: f64) -> Res<()> {
    let mut w = Writer::<Telemetry>::create(path, &telemetry_at(0, "paced"))?;
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?; // "go": both readers are waiting

    // Paced: one commit per millisecond, each waking the readers.
    let start = Instant::now();
    let mut n = 0;
    let mut next = start;
    while start.elapsed().as_secs_f64() < seconds {
        n += 1;
        w.publish(&telemetry_at(n, "paced"));
        next += Duration::from_millis(1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let paced = n;
    // Burst: as fast as possible; readers cannot keep up and conflate.
    let burst_start = Instant::now();
    while burst_start.elapsed() < Duration::from_millis(500) {
        n += 1;
        w.publish(&telemetry_at(n, "burst"));
    }
    n += 1;
    let last = w.publish(&telemetry_at(n, "done"));
    assert_eq!(last, n, "each publish is one version");
    println!("done {last} {paced} {}", n - 1 - paced);
    Ok(())
}

/// Per-reader results, printed as one `result` line for the summary.
struct Seen {
    updates: u64,
    skipped: u64,
    torn: u64,
    start: u64,
    end: u64,
    latencies_us: Vec<f64>,
}

fn reader(path: &Path, id: u32) -> Res<()> {
    let r = Reader::<Telemetry>::open(path)?;
    let (first, start) = r.load_versioned()?;
    let mut seen = Seen {
        updates: 0,
        skipped: 0,
        torn: u64::from(!consistent(&first, start)),
        start,
        end: start,
        latencies_us: Vec::new(),
    };
    println!("ready {start}");
    let mut last_report = Instant::now();
    for update in r.updates_after(start).timeout(Duration::from_secs(10)) {
        let update = match update {
            Ok(u) => u,
            Err(Error::WriterGone { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        // Wake latency: commit time (in the control block) to now, for paced commits when no
        // newer commit has landed since (so the commit time is this version's).
        let now = SystemTime::now();
        if update.value.label.as_str() == "paced" && r.version() == update.version {
            if let Ok(d) = now.duration_since(r.last_commit()) {
                seen.latencies_us.push(d.as_secs_f64() * 1e6);
            }
        }
        seen.updates += 1;
        seen.skipped += update.skipped;
        seen.end = update.version;
        if !consistent(&update.value, update.version) {
            seen.torn += 1;
        }
        if last_report.elapsed() >= Duration::from_millis(500) {
            last_report = Instant::now();
            let t = &update.value;
            println!(
                "live reader {id}: v{:<6} rpm {:>4}  temp {:>5.1} C  {:?}  seen {} skipped {}",
                update.version, t.rpm, t.temperature_c, t.mode, seen.updates, seen.skipped
            );
        }
        if update.value.mode == Mode::Idle {
            break;
        }
    }
    seen.latencies_us.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        let v = &seen.latencies_us;
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    println!(
        "result {id} {} {} {} {} {} {:.1} {:.1} {}",
        seen.updates,
        seen.skipped,
        seen.torn,
        seen.start,
        seen.end,
        pct(0.5),
        pct(0.99),
        seen.latencies_us.len()
    );
    Ok(())
}

/// Sends every stdout line of `child` to `tx`, tagged with `who`.
fn forward(who: &'static str, out: ChildStdout, tx: mpsc::Sender<(&'static str, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((who, line)).is_err() {
                break;
            }
        }
    });
}

fn spawn(role: &[&str], stdin: bool) -> Res<Child> {
    let child = Command::new(std::env::current_exe()?)
        .args(role)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .spawn()?;
    Ok(child)
}

fn run(seconds: f64) -> Res<()> {
    let dir = std::env::temp_dir().join(format!("mapped-state-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("engine.state");
    let p = path.to_str().ok_or("temp path is not UTF-8")?;
    println!("state file: {p}");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds + 30.0);
    let (tx, rx) = mpsc::channel();
    let next = |rx: &mpsc::Receiver<(&'static str, String)>| -> Res<(&'static str, String)> {
        let left = deadline.saturating_duration_since(Instant::now());
        Ok(rx
            .recv_timeout(left)
            .map_err(|_| "a child process stopped answering")?)
    };

    let mut children = Vec::new();
    let mut w = spawn(&["writer", p, &seconds.to_string()], true)?;
    forward("writer", w.stdout.take().ok_or("no stdout")?, tx.clone());
    let mut w_in = w.stdin.take().ok_or("no stdin")?;
    children.push(w);
    let result = (|| -> Res<()> {
        if next(&rx)? != ("writer", "ready".to_string()) {
            return Err("the writer failed to start".into());
        }
        for (who, id) in [("reader 1", "1"), ("reader 2", "2")] {
            let mut c = spawn(&["reader", p, id], false)?;
            forward(who, c.stdout.take().ok_or("no stdout")?, tx.clone());
            children.push(c);
        }
        let mut ready = 0;
        while ready < 2 {
            let (who, line) = next(&rx)?;
            if line.starts_with("ready") {
                ready += 1;
            } else {
                println!("{who}: {line}");
            }
        }
        println!("writer: publishing for {seconds} s at 1 kHz, then a 0.5 s burst\n");
        writeln!(w_in, "go")?;

        let mut done: Option<Vec<u64>> = None;
        let mut results: Vec<Vec<String>> = Vec::new();
        while done.is_none() || results.len() < 2 {
            let (who, line) = next(&rx)?;
            if let Some(rest) = line.strip_prefix("done ") {
                done = Some(rest.split(' ').map(str::parse).collect::<Result<_, _>>()?);
            } else if let Some(rest) = line.strip_prefix("result ") {
                results.push(rest.split(' ').map(String::from).collect());
            } else if let Some(rest) = line.strip_prefix("live ") {
                println!("{rest}");
            } else {
                println!("{who}: {line}");
            }
        }
        let done = done.unwrap_or_default();
        let (last, paced, burst) = (done[0], done[1], done[2]);
        println!("\nsummary");
        println!(
            "  writer:   {last} versions published ({paced} paced at 1 kHz, {burst} in a burst, 1 final)"
        );
        let mut torn_total = 0;
        for r in &results {
            let num = |i: usize| r[i].parse::<u64>().unwrap_or(u64::MAX);
            let (updates, skipped, torn, start, end) = (num(1), num(2), num(3), num(4), num(5));
            torn_total += torn;
            let exact = updates + skipped == end - start && end == last;
            println!(
                "  reader {}: {updates} updates seen, {skipped} skipped (conflated), {torn} torn reads; \
                 seen + skipped = {} of {} versions since it started{}; \
                 wake latency median {} us, p99 {} us ({} samples)",
                r[0],
                updates + skipped,
                last - start,
                if exact { "" } else { "  <-- MISMATCH" },
                r[6],
                r[7],
                r[8],
            );
            if !exact {
                return Err(format!("reader {} accounting is off", r[0]).into());
            }
        }
        println!("  torn reads: {torn_total}");
        if torn_total != 0 {
            return Err("torn reads seen".into());
        }
        Ok(())
    })();
    for mut c in children {
        if result.is_err() {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("writer") => writer(Path::new(&args[2]), args[3].parse()?),
        Some("reader") => reader(&PathBuf::from(&args[2]), args[3].parse()?),
        Some(secs) => run(secs.parse().map_err(|_| "usage: quickstart [SECONDS]")?),
        None => run(3.0),
    }
}
