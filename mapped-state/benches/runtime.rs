//! Criterion benchmarks of the runtime, quoted in the README and the `WakePolicy` docs as ratios
//! within one run: what waking readers costs a publish under each wake policy, publish and load of
//! small to larger payloads, a single-field read, and the wake latency between two threads.
//!
//! ```sh
//! cargo bench -p mapped-state --bench runtime -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Files live in `/dev/shm` (tmpfs) when it exists, else in the system temp dir; `wake_policy`
//! also runs on a file in the temp dir, since the futex of a file-backed page is keyed
//! differently.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mapped_state::{MappedState, RawReader, Reader, WakePolicy, Writer};

/// A fresh state file path in `dir`, unique to this process.
fn scratch(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("ms-bench-{}-{name}.state", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn shm_or_tmp() -> (PathBuf, &'static str) {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        (shm.to_owned(), "tmpfs")
    } else {
        (std::env::temp_dir(), "tempdir")
    }
}

/// The publish of a `[u64; 2]` under each wake policy, with nobody waiting: what the wake costs.
fn wake_policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake_policy");
    let mut dirs = vec![shm_or_tmp()];
    if dirs[0].1 == "tmpfs" {
        dirs.push((std::env::temp_dir(), "tempdir"));
    }
    for (dir, fs) in &dirs {
        let path = scratch(dir, "wake");
        let mut w = Writer::<[u64; 2]>::create(&path, &[0; 2]).expect("create");
        let cases: [(&str, WakePolicy); 2] = [
            ("coalesce_100us", WakePolicy::default()),
            ("every_commit", WakePolicy::EveryCommit),
        ];
        for (name, policy) in cases {
            w.set_wake_policy(policy);
            let mut i = 0u64;
            g.bench_function(BenchmarkId::new(*fs, name), |b| {
                b.iter(|| {
                    i += 1;
                    black_box(w.publish(black_box(&[i, i])))
                })
            });
        }
        drop(w);
        let _ = std::fs::remove_file(&path);
    }
    g.finish();
}

/// Publishes alternating between two values that differ in every word (the worst case: every
/// word is stored into the commit's slot).
fn publish_of<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &Path,
) where
    [u64; N]: MappedState,
{
    let path = scratch(dir, &format!("publish{N}"));
    let mut w = Writer::<[u64; N]>::create(&path, &[0; N]).expect("create");
    let values = [[1u64; N], [2u64; N]];
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("u64", N * 8), |b| {
        b.iter(|| {
            i ^= 1;
            black_box(w.publish(black_box(&values[i])))
        })
    });
    drop(w);
    let _ = std::fs::remove_file(&path);
}

fn publish(c: &mut Criterion) {
    let (dir, _) = shm_or_tmp();
    let mut g = c.benchmark_group("publish");
    publish_of::<2>(&mut g, &dir);
    publish_of::<64>(&mut g, &dir);
    publish_of::<512>(&mut g, &dir);
    g.finish();
}

fn load_of<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &Path,
) where
    [u64; N]: MappedState,
{
    let path = scratch(dir, &format!("load{N}"));
    let w = Writer::<[u64; N]>::create(&path, &[7; N]).expect("create");
    let r = Reader::<[u64; N]>::open(&path).expect("open");
    g.bench_function(BenchmarkId::new("load", N * 8), |b| {
        b.iter(|| black_box(r.load().expect("load")))
    });
    drop((r, w));
    let _ = std::fs::remove_file(&path);
}

/// `Reader::load` of each size, and one `u64` field read at an offset of a 512-byte payload.
fn read(c: &mut Criterion) {
    let (dir, _) = shm_or_tmp();
    let mut g = c.benchmark_group("read");
    load_of::<2>(&mut g, &dir);
    load_of::<64>(&mut g, &dir);
    load_of::<512>(&mut g, &dir);

    let path = scratch(&dir, "field");
    let w = Writer::<[u64; 64]>::create(&path, &[9; 64]).expect("create");
    let r = RawReader::open(&path).expect("open");
    g.bench_function(BenchmarkId::new("read_plain_u64", 512), |b| {
        b.iter(|| black_box(r.read_plain::<u64>(black_box(8 * 17))))
    });
    drop((r, w));
    let _ = std::fs::remove_file(&path);
    g.finish();
}

fn wait_newer(r: &RawReader, since: u64) -> u64 {
    r.wait_for_version_change(since, Duration::from_secs(5))
}

fn writer_for(path: &Path, policy: WakePolicy) -> Writer<[u64; 2]> {
    let mut w = Writer::<[u64; 2]>::create(path, &[0; 2]).expect("create");
    w.set_wake_policy(policy);
    w
}

/// Round trip between two threads over two files: A publishes on `ping`, B wakes and publishes
/// on `pong`, A wakes. One iteration is one round trip, i.e. two futex wake-ups. (No spinning
/// reference: two spinning threads on a loaded 2-core machine measure the scheduler.)
fn wake_latency(c: &mut Criterion) {
    let (dir, _) = shm_or_tmp();
    let mut g = c.benchmark_group("wake_latency_round_trip");
    let cases = [
        ("every_commit", WakePolicy::EveryCommit),
        ("coalesce_100us", WakePolicy::default()),
    ];
    for (name, policy) in cases {
        let (ping, pong) = (scratch(&dir, "ping"), scratch(&dir, "pong"));
        let mut w_ping = writer_for(&ping, policy);
        let w_pong = writer_for(&pong, policy);
        let r_pong = RawReader::open(&pong).expect("open pong");
        let stop = Arc::new(AtomicBool::new(false));
        let partner = {
            let r_ping = RawReader::open(&ping).expect("open ping");
            let stop = Arc::clone(&stop);
            let mut w_pong = w_pong;
            std::thread::spawn(move || {
                let mut seen = r_ping.version();
                while !stop.load(Ordering::Relaxed) {
                    seen = wait_newer(&r_ping, seen);
                    w_pong.publish(&[seen, seen]);
                }
            })
        };
        let mut n = 0u64;
        let mut pong_seen = r_pong.version();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    w_ping.publish(&[n, n]);
                    pong_seen = wait_newer(&r_pong, pong_seen);
                }
                start.elapsed()
            })
        });
        stop.store(true, Ordering::Relaxed);
        w_ping.publish(&[0, 0]);
        partner.join().expect("partner thread");
        drop(w_ping);
        let _ = std::fs::remove_file(&ping);
        let _ = std::fs::remove_file(&pong);
    }
    g.finish();
}

criterion_group!(benches, wake_policy, publish, read, wake_latency);
criterion_main!(benches);
