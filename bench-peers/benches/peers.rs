//! Criterion benchmarks of mapped-state side by side with cloudflare's `mmap-sync` and the
//! iceoryx2 blackboard, all in one run: publish, whole-value snapshot, one-field read, and both
//! sides' speed while the other side runs in another thread. `bench-peers/README.md` has the
//! results as ratios and what each library guarantees.
//!
//! ```sh
//! cd bench-peers
//! cargo bench --bench peers -- --warm-up-time 1 --measurement-time 3
//! cargo run --release --bin ratios   # the table of ratios to mapped-state, from criterion's output
//! ```
//!
//! Every library gets the same two plain structs, `Small` (two `u64`, 16 bytes) and `Big`
//! (512 `u64`, 4 KiB), through its own idiomatic API, on tmpfs (`/dev/shm` when it exists).
//! Writers alternate between two values that differ in every word, so no library can skip work
//! because a value did not change.

use std::fmt::Debug;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytecheck::CheckBytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use iceoryx2::prelude::*;
use mapped_state::{MappedState, Reader, WriteView, Writer};
use mmap_sync::locks::SingleWriter;
use mmap_sync::synchronizer::Synchronizer;
use rkyv::ser::serializers::AllocSerializer;
use rkyv::validation::validators::DefaultValidator;
use rkyv::{Archive, Deserialize, Infallible, Serialize};
use wyhash::WyHash;

/// mmap-sync's serializer scratch space (its default).
const SCRATCH: usize = 1024;
/// How long mmap-sync's writer sleeps between checks while a reader still holds the copy it is
/// about to overwrite. Its default is 1 s, which would turn every such collision in the
/// contended benchmarks into a one-second stall; 10 µs lets the writer go on as soon as the
/// reader is done (a sleep this short still costs a timer round trip, ~50-100 µs on Linux).
const MMAP_SYNC_SLEEP_NS: u64 = 10_000;
/// How long mmap-sync's writer waits for a reader before it assumes the reader died and resets
/// the copy's reader count. Reads here take well under a microsecond, so no reset is expected;
/// any that happens is counted and printed.
const MMAP_SYNC_GRACE: Duration = Duration::from_secs(1);

/// The writer, with mmap-sync's single-writer lock (flock, taken on the first write) so that it
/// promises what mapped-state's writer does; readers use the same type and never lock.
type Sync = Synchronizer<WyHash, SingleWriter, SCRATCH, MMAP_SYNC_SLEEP_NS>;

/// 16 bytes.
#[derive(MappedState, Archive, Serialize, Deserialize, ZeroCopySend, Clone, Copy, Debug)]
#[archive_attr(derive(CheckBytes))]
#[repr(C)]
pub struct Small {
    pub a: u64,
    pub b: u64,
}

/// 4 KiB: 512 `u64`.
#[derive(MappedState, Archive, Serialize, Deserialize, ZeroCopySend, Clone, Copy, Debug)]
#[archive_attr(derive(CheckBytes))]
#[repr(C)]
pub struct Big {
    pub a: u64,
    pub b: [u64; 511],
}

/// What the benchmarks need of a payload type, per library. The mmap-sync operations are here
/// (not bounds on the generic functions) because rkyv's bounds on `Self::Archived` are not
/// implied by a supertrait.
trait Sample: MappedState + ZeroCopySend + Copy + Send + Debug + 'static {
    /// The size label in benchmark ids.
    const LABEL: &'static str;
    /// A value holding `x` in every word.
    fn filled(x: u64) -> Self;
    /// The first and the last word: equal in every value written here, so a torn copy (first
    /// word from one value, last from another) shows as a difference.
    fn ends(&self) -> (u64, u64);
    /// mapped-state's generated accessor of field `a`.
    fn field_a(r: &Reader<Self>) -> u64;
    /// mmap-sync: publish `value`; true when the writer reset a reader count (a reader it
    /// took for dead).
    fn sync_write(s: &mut Sync, value: &Self) -> bool;
    /// mmap-sync: a copy of the whole value.
    fn sync_load(s: &mut Sync, check_bytes: bool) -> Self;
    /// mmap-sync: field `a`, read from the archived value in place.
    fn sync_field_a(s: &mut Sync, check_bytes: bool) -> u64;
}

fn sync_write<T>(s: &mut Sync, value: &T) -> bool
where
    T: Archive + Serialize<AllocSerializer<SCRATCH>>,
    T::Archived: for<'b> CheckBytes<DefaultValidator<'b>>,
{
    s.write(value, MMAP_SYNC_GRACE).expect("mmap-sync write").1
}

fn sync_load<T>(s: &mut Sync, check_bytes: bool) -> T
where
    T: Archive,
    T::Archived: for<'b> CheckBytes<DefaultValidator<'b>> + Deserialize<T, Infallible>,
{
    // SAFETY: the guard lives only for this statement, far shorter than MMAP_SYNC_GRACE, after
    // which the writer would reuse the copy it points into.
    let guard = unsafe { s.read::<T>(check_bytes) }.expect("mmap-sync read");
    match <T::Archived as Deserialize<T, Infallible>>::deserialize(&guard, &mut Infallible) {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

macro_rules! sample {
    ($t:ty, $label:literal, $filled:expr, last = $($last:tt)+) => {
        impl Sample for $t {
            const LABEL: &'static str = $label;
            fn filled(x: u64) -> Self {
                $filled(x)
            }
            fn ends(&self) -> (u64, u64) {
                (self.a, self.$($last)+)
            }
            fn field_a(r: &Reader<Self>) -> u64 {
                r.a()
            }
            fn sync_write(s: &mut Sync, value: &Self) -> bool {
                sync_write(s, value)
            }
            fn sync_load(s: &mut Sync, check_bytes: bool) -> Self {
                sync_load(s, check_bytes)
            }
            fn sync_field_a(s: &mut Sync, check_bytes: bool) -> u64 {
                // SAFETY: as in `sync_load`: the guard is dropped at the end of this statement.
                unsafe { s.read::<Self>(check_bytes) }
                    .expect("mmap-sync read")
                    .a
            }
        }
    };
}

sample!(Small, "16B", |x| Small { a: x, b: x }, last = b);
sample!(Big, "4KiB", |x| Big { a: x, b: [x; 511] }, last = b[510]);

/// tmpfs when there is one: none of the three libraries then touches a disk.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A name unique to this process and case, for files and iceoryx2 services.
fn unique(lib: &str, op: &str, label: &str) -> String {
    format!("bench-peers-{}-{lib}-{op}-{label}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// One library's handles, created the same way by every benchmark.

struct MsFile {
    path: PathBuf,
}

impl MsFile {
    fn create<T: Sample>(op: &str) -> (Self, Writer<T>) {
        let path = scratch_dir().join(unique("ms", op, T::LABEL) + ".state");
        let _ = std::fs::remove_file(&path);
        let w = Writer::<T>::create(&path, &T::filled(0)).expect("mapped-state create");
        (MsFile { path }, w)
    }
}

impl Drop for MsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// mmap-sync's path prefix: it makes `<prefix>_state`, `<prefix>_data_0` and `<prefix>_data_1`.
struct SyncFiles {
    prefix: String,
}

impl SyncFiles {
    fn create<T: Sample>(op: &str) -> (Self, Sync) {
        let prefix = scratch_dir()
            .join(unique("mmap-sync", op, T::LABEL))
            .to_str()
            .expect("a UTF-8 scratch dir")
            .to_owned();
        let files = SyncFiles { prefix };
        files.remove();
        let mut w = files.open();
        // Readers can only open once something was written.
        T::sync_write(&mut w, &T::filled(0));
        (files, w)
    }

    fn open(&self) -> Sync {
        Sync::with_params(self.prefix.as_ref())
    }

    fn remove(&self) {
        for suffix in ["_state", "_data_0", "_data_1"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.prefix));
        }
    }
}

impl Drop for SyncFiles {
    fn drop(&mut self) {
        self.remove();
    }
}

type IoxNode = Node<ipc::Service>;
type IoxService = iceoryx2::service::port_factory::blackboard::PortFactory<ipc::Service, u64>;

/// The blackboard's one entry, key 0, holding the whole struct.
const KEY: u64 = 0;

fn iox_node() -> IoxNode {
    NodeBuilder::new()
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

fn iox_service_name(name: &str) -> ServiceName {
    ServiceName::new(name).expect("iceoryx2 service name")
}

fn iox_create<T: Sample>(node: &IoxNode, name: &str) -> IoxService {
    node.service_builder(&iox_service_name(name))
        .blackboard_creator::<u64>()
        .add::<T>(KEY, T::filled(0))
        .create()
        .expect("iceoryx2 blackboard create")
}

fn iox_open(node: &IoxNode, name: &str) -> IoxService {
    node.service_builder(&iox_service_name(name))
        .blackboard_opener::<u64>()
        .open()
        .expect("iceoryx2 blackboard open")
}

// ---------------------------------------------------------------------------------------------
// Uncontended: one thread, nobody else touching the state.

fn publish_of<T: Sample>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let values = [T::filled(1), T::filled(2)];
    let id = |lib: &str| BenchmarkId::new(lib, T::LABEL);
    {
        let (_f, mut w) = MsFile::create::<T>("publish");
        let mut i = 0;
        g.bench_function(id("mapped-state"), |b| {
            b.iter(|| {
                i ^= 1;
                black_box(w.publish(black_box(&values[i])))
            })
        });
        // The peers wake no one; this shows what mapped-state's default wake policy adds.
        w.raw_mut().set_wake_disabled_for_benchmarks(true);
        g.bench_function(id("mapped-state_nowake"), |b| {
            b.iter(|| {
                i ^= 1;
                black_box(w.publish(black_box(&values[i])))
            })
        });
    }
    {
        let (_f, mut w) = SyncFiles::create::<T>("publish");
        let mut i = 0;
        g.bench_function(id("mmap-sync"), |b| {
            b.iter(|| {
                i ^= 1;
                black_box(T::sync_write(&mut w, black_box(&values[i])))
            })
        });
    }
    {
        let node = iox_node();
        let service = iox_create::<T>(&node, &unique("iox", "publish", T::LABEL));
        let writer = service.writer_builder().create().expect("iceoryx2 writer");
        let entry = writer.entry::<T>(&KEY).expect("iceoryx2 entry");
        let mut i = 0;
        g.bench_function(id("iceoryx2"), |b| {
            b.iter(|| {
                i ^= 1;
                entry.update_with_copy(black_box(values[i]))
            })
        });
    }
}

fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    publish_of::<Small>(&mut g);
    publish_of::<Big>(&mut g);
    g.finish();
}

/// The whole value (`snapshot`) or field `a` only (`field`), per library.
fn read_of<T: Sample>(g: &mut BenchmarkGroup<'_, WallTime>, whole: bool) {
    let id = |lib: &str| BenchmarkId::new(lib, T::LABEL);
    let op = if whole { "snapshot" } else { "field" };
    {
        let (_f, w) = MsFile::create::<T>(op);
        let r = Reader::<T>::open(w.path()).expect("mapped-state open");
        g.bench_function(id("mapped-state"), |b| {
            if whole {
                b.iter(|| black_box(r.load().expect("load")))
            } else {
                b.iter(|| black_box(T::field_a(&r)))
            }
        });
        if whole {
            // The same consistent copy as bytes, not decoded into a `T`: what the latch protocol
            // costs apart from decoding.
            g.bench_function(id("mapped-state_bytes"), |b| {
                b.iter(|| black_box(r.raw().snapshot().expect("snapshot")))
            });
        }
    }
    {
        let (f, _w) = SyncFiles::create::<T>(op);
        let mut r = f.open();
        for (lib, check) in [("mmap-sync_check", true), ("mmap-sync_nocheck", false)] {
            g.bench_function(id(lib), |b| {
                if whole {
                    b.iter(|| black_box(T::sync_load(&mut r, check)))
                } else {
                    b.iter(|| black_box(T::sync_field_a(&mut r, check)))
                }
            });
        }
    }
    {
        let name = unique("iox", op, T::LABEL);
        let node = iox_node();
        let service = iox_create::<T>(&node, &name);
        let reader = service.reader_builder().create().expect("iceoryx2 reader");
        let entry = reader.entry::<T>(&KEY).expect("iceoryx2 entry");
        g.bench_function(id("iceoryx2"), |b| {
            if whole {
                b.iter(|| black_box(*entry.get()))
            } else {
                // The blackboard's unit is the entry: one field costs a copy of the whole value.
                b.iter(|| black_box(entry.get().ends().0))
            }
        });
    }
}

fn snapshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    read_of::<Small>(&mut g, true);
    read_of::<Big>(&mut g, true);
    g.finish();
}

fn field(c: &mut Criterion) {
    let mut g = c.benchmark_group("field");
    read_of::<Small>(&mut g, false);
    read_of::<Big>(&mut g, false);
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Contended: the other side runs flat out in a second thread (its own handles, opened the way
// another process would open them) while criterion times this side.

/// What the background side did while criterion measured (warm-up included).
#[derive(Debug, Default)]
struct Counts {
    ops: u64,
    /// Snapshots whose first and last word differ: a torn read.
    torn: u64,
    /// Reads that failed (mapped-state's `Error::Contended` after its retry budget).
    failed: u64,
    /// mmap-sync writes that reset a reader count.
    resets: u64,
    elapsed: Duration,
}

struct Background {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Counts>,
}

impl Background {
    /// Runs `setup` in a new thread, then the operation it returns until stopped; waits until
    /// the thread is running before returning.
    fn spawn<S, F>(setup: S) -> Self
    where
        S: FnOnce() -> F + Send + 'static,
        F: FnMut(&mut Counts),
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut op = setup();
                let mut counts = Counts::default();
                let _ = ready_tx.send(());
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    op(&mut counts);
                    counts.ops += 1;
                }
                counts.elapsed = start.elapsed();
                counts
            })
        };
        ready_rx.recv().expect("background thread started");
        Background { stop, handle }
    }

    /// Stops the thread and prints what it did, so the README can quote the other side's rate.
    fn finish(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let c = self.handle.join().expect("background thread");
        let per_op = c.elapsed.as_nanos() as f64 / c.ops.max(1) as f64;
        eprintln!(
            "side: {what}: {} ops in {:.2} s ({per_op:.0} ns/op); torn {}, failed {}, resets {}",
            c.ops,
            c.elapsed.as_secs_f64(),
            c.torn,
            c.failed,
            c.resets
        );
    }
}

/// Counts `v` as torn when its ends differ. Callers pass values through `black_box` first: a
/// check of two words would otherwise let the compiler copy only those two words of a peer's
/// plain-memory value, while mapped-state's atomic loads are never elided.
fn check<T: Sample>(v: &T, counts: &mut Counts) {
    let (first, last) = v.ends();
    if first != last {
        counts.torn += 1;
    }
}

/// Writer timed, a reader thread taking whole snapshots continuously.
fn contended_publish_of<T: Sample>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let values = [T::filled(1), T::filled(2)];
    let id = |lib: &str| BenchmarkId::new(lib, T::LABEL);
    let what = |lib: &str| format!("contended_publish/{lib}/{}: reader", T::LABEL);
    {
        let (f, mut w) = MsFile::create::<T>("cpub");
        let path = f.path.clone();
        let bg = Background::spawn(move || {
            let r = Reader::<T>::open(&path).expect("mapped-state open");
            move |c: &mut Counts| match r.load() {
                Ok(v) => check(&black_box(v), c),
                Err(_) => c.failed += 1,
            }
        });
        let mut i = 0;
        g.bench_function(id("mapped-state"), |b| {
            b.iter(|| {
                i ^= 1;
                black_box(w.publish(black_box(&values[i])))
            })
        });
        bg.finish(&what("mapped-state"));
    }
    {
        let (f, mut w) = SyncFiles::create::<T>("cpub");
        let prefix = f.prefix.clone();
        let bg = Background::spawn(move || {
            let mut r = Sync::with_params(prefix.as_ref());
            move |c: &mut Counts| check(&black_box(T::sync_load(&mut r, true)), c)
        });
        let mut i = 0;
        let mut resets = 0u64;
        g.bench_function(id("mmap-sync"), |b| {
            b.iter(|| {
                i ^= 1;
                resets += u64::from(T::sync_write(&mut w, black_box(&values[i])));
            })
        });
        bg.finish(&what("mmap-sync (check_bytes)"));
        eprintln!(
            "side: contended_publish/mmap-sync/{}: writer resets {resets}",
            T::LABEL
        );
    }
    {
        let name = unique("iox", "cpub", T::LABEL);
        let node = iox_node();
        let service = iox_create::<T>(&node, &name);
        let writer = service.writer_builder().create().expect("iceoryx2 writer");
        let entry = writer.entry::<T>(&KEY).expect("iceoryx2 entry");
        let bg = Background::spawn(move || {
            let node = iox_node();
            let service = iox_open(&node, &name);
            let reader = service.reader_builder().create().expect("iceoryx2 reader");
            let entry = reader.entry::<T>(&KEY).expect("iceoryx2 entry");
            // The handles borrow nothing, but must outlive the entry: move them in.
            let keep = (node, service, reader);
            move |c: &mut Counts| {
                black_box(&keep);
                check(&black_box(*entry.get()), c)
            }
        });
        let mut i = 0;
        g.bench_function(id("iceoryx2"), |b| {
            b.iter(|| {
                i ^= 1;
                entry.update_with_copy(black_box(values[i]))
            })
        });
        bg.finish(&what("iceoryx2"));
    }
}

/// Reader timed (whole snapshots, each checked for tearing), a writer thread publishing
/// continuously.
fn contended_snapshot_of<T: Sample>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let id = |lib: &str| BenchmarkId::new(lib, T::LABEL);
    let what = |lib: &str| format!("contended_snapshot/{lib}/{}: writer", T::LABEL);
    let mut torn = Counts::default();
    let report = |lib: &str, c: &mut Counts| {
        eprintln!(
            "side: contended_snapshot/{lib}/{}: reader torn {}, failed {}",
            T::LABEL,
            c.torn,
            c.failed
        );
        *c = Counts::default();
    };
    {
        let (f, w) = MsFile::create::<T>("csnap");
        drop(w); // the writer thread takes the file over, as a restarted writer process would
        let r = Reader::<T>::open(&f.path).expect("mapped-state open");
        let path = f.path.clone();
        let bg = Background::spawn(move || {
            let w = Writer::<T>::open(&path).expect("mapped-state open writer");
            let (mut w, values, mut i) = (w, [T::filled(1), T::filled(2)], 0);
            move |_: &mut Counts| {
                i ^= 1;
                w.publish(&values[i]);
            }
        });
        g.bench_function(id("mapped-state"), |b| {
            b.iter(|| match r.load() {
                Ok(v) => check(&black_box(v), &mut torn),
                Err(_) => torn.failed += 1,
            })
        });
        bg.finish(&what("mapped-state"));
        report("mapped-state", &mut torn);
    }
    {
        let (f, w) = SyncFiles::create::<T>("csnap");
        drop(w); // releases its single-writer lock for the writer thread
        let mut r = f.open();
        let prefix = f.prefix.clone();
        let bg = Background::spawn(move || {
            let w = Sync::with_params(prefix.as_ref());
            let (mut w, values, mut i) = (w, [T::filled(1), T::filled(2)], 0);
            move |c: &mut Counts| {
                i ^= 1;
                c.resets += u64::from(T::sync_write(&mut w, &values[i]));
            }
        });
        for (lib, check_bytes) in [("mmap-sync_check", true), ("mmap-sync_nocheck", false)] {
            g.bench_function(id(lib), |b| {
                b.iter(|| check(&black_box(T::sync_load(&mut r, check_bytes)), &mut torn))
            });
            report(lib, &mut torn);
        }
        bg.finish(&what("mmap-sync"));
    }
    {
        let name = unique("iox", "csnap", T::LABEL);
        let node = iox_node();
        let service = iox_create::<T>(&node, &name);
        let reader = service.reader_builder().create().expect("iceoryx2 reader");
        let entry = reader.entry::<T>(&KEY).expect("iceoryx2 entry");
        let bg = {
            let name = name.clone();
            Background::spawn(move || {
                let node = iox_node();
                let service = iox_open(&node, &name);
                let writer = service.writer_builder().create().expect("iceoryx2 writer");
                let entry = writer.entry::<T>(&KEY).expect("iceoryx2 entry");
                let keep = (node, service, writer);
                let (values, mut i) = ([T::filled(1), T::filled(2)], 0);
                move |_: &mut Counts| {
                    black_box(&keep);
                    i ^= 1;
                    entry.update_with_copy(values[i]);
                }
            })
        };
        g.bench_function(id("iceoryx2"), |b| {
            b.iter(|| check(&black_box(*entry.get()), &mut torn))
        });
        bg.finish(&what("iceoryx2"));
        report("iceoryx2", &mut torn);
    }
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_publish");
    contended_publish_of::<Small>(&mut g);
    contended_publish_of::<Big>(&mut g);
    g.finish();
    let mut g = c.benchmark_group("contended_snapshot");
    contended_snapshot_of::<Small>(&mut g);
    contended_snapshot_of::<Big>(&mut g);
    g.finish();
}

criterion_group!(benches, publish, snapshot, field, contended);
criterion_main!(benches);
