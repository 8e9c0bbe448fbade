//! Each snapshot library's writer (`Sink`) and reader (`Source`) behind one pair of traits, so
//! that a row is written once, generic over the library, and monomorphized per library (no
//! dispatch inside a timed loop; see [`by_lib!`]). Every handle is made the way a separate
//! process would make it: a source opens by name, never borrows the sink.

use std::hint::black_box;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bench_peers::seqlock::{SeqlockReader, SeqlockWriter};
use mapped_state::{CreateOptions, Reader, Writer};

use crate::payload::Payload;
use crate::peers::{self, IoxNode, IoxService, Sync, SyncFiles};

/// Whether mmap-sync's reads validate the archived bytes (`check_bytes`). Off, as in
/// mmap-sync's own examples: the fastest way it reads, so the strongest contender.
pub const MMAP_SYNC_CHECK_BYTES: bool = false;

/// The base name of one shared object: a file for the hand seqlock, mapped-state and the raw
/// futex, a path prefix for mmap-sync, a service name for iceoryx2. Unique per process and call.
#[derive(Clone, Debug)]
pub struct Name(pub String);

impl Name {
    pub fn new(tag: &str) -> Name {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("bench-peers-{}-{n}-{tag}", std::process::id()))
    }

    /// The file (or path prefix) in the scratch directory.
    pub fn path(&self) -> PathBuf {
        scratch_dir().join(&self.0)
    }

    fn prefix(&self) -> String {
        self.path()
            .to_str()
            .expect("a UTF-8 scratch directory")
            .to_owned()
    }
}

/// tmpfs when there is one: no contender then touches a disk.
fn scratch_dir() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A file removed on drop.
#[derive(Debug)]
pub struct Removed(pub PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One read attempt.
#[derive(Clone, Copy, Debug)]
pub enum Read {
    /// A complete read: its first and last words.
    Got((u64, u64)),
    /// Disturbed by a write; try again (the hand seqlock's one attempt).
    Retry,
    /// The library gave up with an error (mapped-state's `Contended` after its retry budget).
    Failed,
}

/// A library's writer, the one creating the shared object.
pub trait Sink<T: Payload>: Sized {
    /// Creates the object `name` holding `T::filled(0)`.
    fn create(name: &Name) -> Self;
    /// Publishes `value`; the new version where the library has one.
    fn publish(&mut self, value: &T) -> Option<u64>;
    /// Commits a new value of field `a` alone (only where the library can).
    fn set_a(&mut self, _x: u64) -> Option<u64> {
        unreachable!("no per-field write")
    }
}

/// A library's reader, opening the object a sink created (here or in another process).
pub trait Source<T: Payload>: Sized {
    fn open(name: &Name) -> Self;
    /// One snapshot of the whole value.
    fn read(&mut self) -> Read;
    /// Field `a` alone.
    fn field_a(&mut self) -> u64;
    /// Payload word `word` (an element of `b`) alone.
    fn element(&mut self, word: usize) -> u64;
}

/// Calls `$f::<T, Sink, Source>(args)` for the library `$lib`.
macro_rules! by_lib {
    ($lib:expr, $t:ty, $f:ident($($arg:expr),* $(,)?)) => {
        match $lib {
            $crate::Lib::Hand => $f::<$t, $crate::handles::HandSink<$t>, $crate::handles::HandSource<$t>>($($arg),*),
            $crate::Lib::Ms => $f::<$t, $crate::handles::MsSink<$t>, $crate::handles::MsSource<$t>>($($arg),*),
            $crate::Lib::MmapSync => $f::<$t, $crate::handles::SyncSink<$t>, $crate::handles::SyncSource<$t>>($($arg),*),
            $crate::Lib::Iox => $f::<$t, $crate::handles::IoxSink<$t>, $crate::handles::IoxSource<$t>>($($arg),*),
            other => unreachable!("{other:?} has no snapshot handles"),
        }
    };
}
pub(crate) use by_lib;

fn words<T>() -> usize {
    size_of::<T>() / 8
}

// ---------------------------------------------------------------------------------------------
// The hand seqlock.

#[derive(Debug)]
pub struct HandSink<T> {
    w: SeqlockWriter,
    _file: Removed,
    _t: PhantomData<T>,
}

impl<T: Payload> Sink<T> for HandSink<T> {
    fn create(name: &Name) -> Self {
        let path = name.path();
        let w = SeqlockWriter::create(&path, T::filled(0).words()).expect("seqlock create");
        HandSink {
            w,
            _file: Removed(path),
            _t: PhantomData,
        }
    }
    #[inline]
    fn publish(&mut self, value: &T) -> Option<u64> {
        self.w.publish(value.words());
        None
    }
    #[inline]
    fn set_a(&mut self, x: u64) -> Option<u64> {
        self.w.set_word(0, x);
        None
    }
}

#[derive(Debug)]
pub struct HandSource<T> {
    r: SeqlockReader,
    /// The destination of every copy.
    out: Box<T>,
}

impl<T: Payload> Source<T> for HandSource<T> {
    fn open(name: &Name) -> Self {
        HandSource {
            r: SeqlockReader::open(&name.path(), words::<T>()).expect("seqlock open"),
            out: Box::new(T::filled(0)),
        }
    }
    #[inline]
    fn read(&mut self) -> Read {
        if self.r.try_read(self.out.words_mut()) {
            Read::Got(black_box(&*self.out).ends())
        } else {
            Read::Retry
        }
    }
    #[inline]
    fn field_a(&mut self) -> u64 {
        self.r.read_word(0)
    }
    #[inline]
    fn element(&mut self, word: usize) -> u64 {
        self.r.read_word(word)
    }
}

// ---------------------------------------------------------------------------------------------
// mapped-state.

/// mapped-state's create options: the ring's slot count from `BENCH_PEERS_SLOTS` (default: the
/// library's default), which child processes inherit, to compare ring sizes.
pub fn ms_options() -> CreateOptions {
    let opts = CreateOptions::new().replace(true);
    match std::env::var("BENCH_PEERS_SLOTS") {
        Ok(n) => opts.slots(n.parse().expect("BENCH_PEERS_SLOTS is a number")),
        Err(_) => opts,
    }
}

#[derive(Debug)]
pub struct MsSink<T: Payload> {
    pub w: Writer<T>,
    _file: Removed,
}

impl<T: Payload> Sink<T> for MsSink<T> {
    fn create(name: &Name) -> Self {
        let path = name.path();
        let w = Writer::<T>::create_with(&path, &T::filled(0), &ms_options())
            .expect("mapped-state create");
        MsSink {
            w,
            _file: Removed(path),
        }
    }
    #[inline]
    fn publish(&mut self, value: &T) -> Option<u64> {
        Some(self.w.publish(value))
    }
    #[inline]
    fn set_a(&mut self, x: u64) -> Option<u64> {
        Some(T::ms_set_a(&mut self.w, x))
    }
}

/// mapped-state's writer under `WakePolicy::EveryCommit`: what a wake system call on every
/// commit costs when nobody waits.
#[derive(Debug)]
pub struct MsEverySink<T: Payload>(MsSink<T>);

impl<T: Payload> Sink<T> for MsEverySink<T> {
    fn create(name: &Name) -> Self {
        let mut s = <MsSink<T> as Sink<T>>::create(name);
        s.w.set_wake_policy(mapped_state::WakePolicy::EveryCommit);
        MsEverySink(s)
    }
    #[inline]
    fn publish(&mut self, value: &T) -> Option<u64> {
        self.0.publish(value)
    }
    #[inline]
    fn set_a(&mut self, x: u64) -> Option<u64> {
        self.0.set_a(x)
    }
}

#[derive(Debug)]
pub struct MsSource<T: Payload> {
    pub r: Reader<T>,
}

impl<T: Payload> Source<T> for MsSource<T> {
    fn open(name: &Name) -> Self {
        MsSource {
            r: Reader::<T>::open(name.path()).expect("mapped-state open"),
        }
    }
    #[inline]
    fn read(&mut self) -> Read {
        match self.r.load() {
            Ok(v) => Read::Got(black_box(&v).ends()),
            Err(_) => Read::Failed,
        }
    }
    #[inline]
    fn field_a(&mut self) -> u64 {
        T::ms_a(&self.r)
    }
    #[inline]
    fn element(&mut self, word: usize) -> u64 {
        T::ms_element(&self.r, word)
    }
}

// ---------------------------------------------------------------------------------------------
// mmap-sync.

pub struct SyncSink<T> {
    w: Sync,
    _files: SyncFiles,
    /// Writes that reset a reader count (a reader taken for dead after the grace period).
    pub resets: u64,
    _t: PhantomData<T>,
}

impl<T: Payload> Sink<T> for SyncSink<T> {
    fn create(name: &Name) -> Self {
        let (files, w) = SyncFiles::create::<T>(name.prefix());
        SyncSink {
            w,
            _files: files,
            resets: 0,
            _t: PhantomData,
        }
    }
    #[inline]
    fn publish(&mut self, value: &T) -> Option<u64> {
        self.resets += u64::from(T::sync_write(&mut self.w, value));
        None
    }
}

pub struct SyncSource<T> {
    r: Sync,
    _t: PhantomData<T>,
}

impl<T: Payload> Source<T> for SyncSource<T> {
    fn open(name: &Name) -> Self {
        SyncSource {
            r: Sync::with_params(name.prefix().as_ref()),
            _t: PhantomData,
        }
    }
    #[inline]
    fn read(&mut self) -> Read {
        Read::Got(black_box(&T::sync_load(&mut self.r, MMAP_SYNC_CHECK_BYTES)).ends())
    }
    #[inline]
    fn field_a(&mut self) -> u64 {
        T::sync_a(&mut self.r, MMAP_SYNC_CHECK_BYTES)
    }
    #[inline]
    fn element(&mut self, word: usize) -> u64 {
        T::sync_element(&mut self.r, MMAP_SYNC_CHECK_BYTES, word)
    }
}

// ---------------------------------------------------------------------------------------------
// The iceoryx2 blackboard. Fields drop in declaration order: the entry before its port, the
// port before its service, the service before its node.

pub struct IoxSink<T: Payload> {
    entry: peers::IoxWriteEntry<T>,
    _port: iceoryx2::port::writer::Writer<iceoryx2::prelude::ipc::Service, u64>,
    _service: IoxService,
    _node: IoxNode,
}

impl<T: Payload> std::fmt::Debug for IoxSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoxSink")
    }
}

impl<T: Payload> Sink<T> for IoxSink<T> {
    fn create(name: &Name) -> Self {
        let node = peers::iox_node();
        let service = peers::iox_create::<T>(&node, &name.0);
        let (port, entry) = peers::iox_writer::<T>(&service);
        IoxSink {
            entry,
            _port: port,
            _service: service,
            _node: node,
        }
    }
    #[inline]
    fn publish(&mut self, value: &T) -> Option<u64> {
        self.entry.update_with_copy(*value);
        None
    }
}

pub struct IoxSource<T: Payload> {
    entry: peers::IoxReadEntry<T>,
    _port: iceoryx2::port::reader::Reader<iceoryx2::prelude::ipc::Service, u64>,
    _service: IoxService,
    _node: IoxNode,
}

impl<T: Payload> std::fmt::Debug for IoxSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoxSource")
    }
}

impl<T: Payload> IoxSource<T> {
    /// A copy of the whole entry: the blackboard's unit of reading.
    #[inline]
    fn get(&self) -> T {
        *self.entry.get()
    }
}

impl<T: Payload> Source<T> for IoxSource<T> {
    fn open(name: &Name) -> Self {
        let node = peers::iox_node();
        let service = peers::iox_open(&node, &name.0);
        let (port, entry) = peers::iox_reader::<T>(&service);
        IoxSource {
            entry,
            _port: port,
            _service: service,
            _node: node,
        }
    }
    #[inline]
    fn read(&mut self) -> Read {
        Read::Got(black_box(&self.get()).ends())
    }
    #[inline]
    fn field_a(&mut self) -> u64 {
        black_box(&self.get()).words()[0]
    }
    #[inline]
    fn element(&mut self, word: usize) -> u64 {
        black_box(&self.get()).words()[word]
    }
}
