//! How much of a busy writer `record` captures: a writer thread commits flat out (or at a set
//! rate) while a `Recorder` in the main thread follows it, then the writer exits and the
//! recording ends. Prints a Markdown table: commits, versions captured per second, the share
//! skipped (versions overwritten in the ring before the recorder read them), the log's write
//! rate, the share of a core the recorder thread got (its CPU time over the run: on a loaded
//! machine it waits for a CPU, and every version committed meanwhile past the ring's size is
//! lost), and versions captured per second of that CPU time. `docs/bench-record.md` has a run.
//!
//! ```sh
//! cargo run --release --example record_bench            # 1 s per row, about 12 s
//! cargo run --release --example record_bench -- 3       # 3 seconds per row
//! ```
//!
//! The log is written under the system temp dir (`TMPDIR`); on a disk-backed one the page cache
//! absorbs it at these sizes.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mapped_state::record::{EndReason, LogReader, RecordLimits, Recorder};
use mapped_state::{CreateOptions, RawReader, Writer};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Row {
    payload: usize,
    slots: u64,
    rate: Option<u64>,
    commits: u64,
    secs: f64,
    records: u64,
    skipped: u64,
    log_bytes: u64,
    /// The recorder thread's CPU time over the writer's run time.
    recorder_cpu: f64,
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One run: a `[u64; K]` writer (`8 * K` bytes) in a ring of `slots`, committing flat out or at
/// `rate` commits per second for `run`.
fn one<const K: usize>(dir: &Path, slots: u64, rate: Option<u64>, run: Duration) -> Res<Row> {
    let state = dir.join(format!("bench-{K}-{slots}-{}.state", rate.unwrap_or(0)));
    let log = state.with_extension("log");
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&log);
    let w = Writer::<[u64; K]>::create_with(&state, &[0; K], &CreateOptions::new().slots(slots))?;
    let mut rec = Recorder::create(RawReader::open(&state)?, &log)?;
    rec.capture()?;
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut w = w;
        let _ = go_rx.recv();
        let start = Instant::now();
        let mut v = 0u64;
        let period = rate.map(|r| Duration::from_secs_f64(1.0 / r as f64));
        while start.elapsed() < run {
            if let Some(p) = period {
                // Busy-wait to the next commit's time: sleeping cannot keep microsecond steps.
                let due = start + p.mul_f64(v as f64);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
            // 64 commits per clock check: the clock is not what is measured.
            for _ in 0..if period.is_some() { 1 } else { 64 } {
                v = w.publish(&[v + 1; K]);
            }
        }
        (v, start.elapsed().as_secs_f64())
    });
    let cpu0 = thread_cpu();
    go_tx.send(())?;
    let summary = rec.run(&RecordLimits {
        count: None,
        duration: Some(run + Duration::from_secs(30)),
    })?;
    let recorder_cpu = (thread_cpu() - cpu0).as_secs_f64();
    let (commits, secs) = writer.join().map_err(|_| "writer thread panicked")?;
    assert_eq!(summary.reason, Some(EndReason::WriterGone));
    assert_eq!(
        summary.records + summary.skipped,
        commits + 1,
        "exact accounting"
    );
    // The log reads back, every record validated, with the same totals.
    let mut reader = LogReader::open(&log)?.require_complete(true);
    let mut n = 0u64;
    for r in reader.by_ref() {
        let r = r?;
        let first = u64::from_ne_bytes(r.payload[..8].try_into()?);
        assert_eq!(
            first, r.version,
            "record of version {} holds {first}",
            r.version
        );
        n += 1;
    }
    assert_eq!(n, summary.records);
    let log_bytes = std::fs::metadata(&log)?.len();
    std::fs::remove_file(&state)?;
    std::fs::remove_file(&log)?;
    Ok(Row {
        payload: 8 * K,
        slots,
        rate,
        commits,
        secs,
        records: summary.records,
        skipped: summary.skipped,
        log_bytes,
        recorder_cpu: recorder_cpu / secs,
    })
}

fn main() -> Res<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1.0);
    let run = Duration::from_secs_f64(secs);
    let dir = std::env::temp_dir().join(format!("ms-record-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rows = vec![
        one::<1>(&dir, 4, None, run)?,
        one::<1>(&dir, 64, None, run)?,
        one::<8>(&dir, 4, None, run)?,
        one::<8>(&dir, 64, None, run)?,
        one::<128>(&dir, 4, None, run)?,
        one::<128>(&dir, 64, None, run)?,
        one::<2048>(&dir, 4, None, run)?,
        one::<8>(&dir, 4, Some(100_000), run)?,
        one::<8>(&dir, 4, Some(1_000_000), run)?,
        one::<8>(&dir, 64, Some(1_000_000), run)?,
    ];
    std::fs::remove_dir_all(&dir)?;
    println!(
        "| payload | slots | writer | commits/s | versions captured/s | skipped | log MB/s | recorder CPU | captured per CPU-second |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let writer = match r.rate {
            None => "flat out".to_string(),
            Some(hz) => format!("{} kHz", hz / 1000),
        };
        println!(
            "| {} B | {} | {writer} | {:.2} M | {:.3} M | {:.1}% | {:.0} | {:.0}% | {:.2} M |",
            r.payload,
            r.slots,
            r.commits as f64 / r.secs / 1e6,
            r.records as f64 / r.secs / 1e6,
            100.0 * r.skipped as f64 / (r.commits + 1) as f64,
            r.log_bytes as f64 / r.secs / 1e6,
            100.0 * r.recorder_cpu,
            r.records as f64 / r.secs / r.recorder_cpu.max(1e-9) / 1e6,
        );
    }
    Ok(())
}
