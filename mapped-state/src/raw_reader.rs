//! `RawReader`: a validated, read-only mapping of a state file and the latch reads over it, with
//! no Rust type attached. `Reader<T>` and the CLI are built on it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Error;
use crate::format::{Header, FLAG_SUPERSEDED};
use crate::manifest::Type;
use crate::map::Mapping;
use crate::open::{open_checked, validate, OpenOptions};
use crate::state::{MappedState, Plain};
use crate::updates::Liveness;

/// How many times a snapshot read is retried before `Error::Contended`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10_000;

/// How often a blocked wait checks that a writer still holds the file, by default.
pub const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `f` on a zeroed scratch buffer of `len` bytes: on the stack for the sizes of single
/// fields and small payloads (in tiers, so a one-word read does not zero 512 bytes), on the heap
/// beyond.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    fn on_stack<const N: usize, R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut buf = [0u8; N];
        f(&mut buf[..len])
    }
    match len {
        0..=16 => on_stack::<16, R>(len, f),
        17..=64 => on_stack::<64, R>(len, f),
        65..=512 => on_stack::<512, R>(len, f),
        513..=4096 => on_stack::<4096, R>(len, f),
        _ => f(&mut vec![0u8; len]),
    }
}

/// The words covering bytes `offset..offset + size` of the payload: `(first word, word count,
/// offset of the bytes inside the words)`.
pub(crate) fn word_span(offset: usize, size: usize) -> (usize, usize, usize) {
    let first = offset / 8;
    let end = (offset + size).div_ceil(8);
    (first, end - first, offset % 8)
}

/// An open state file, read through its manifest: no Rust type needed.
///
/// Holds a read-only mapping; never writes to the file, so it needs only read permission and a
/// crashed reader harms no one.
#[derive(Debug)]
pub struct RawReader {
    path: PathBuf,
    file: File,
    header: Header,
    schema: Type,
    map: Mapping,
    max_attempts: u32,
    /// How often a blocked wait probes the writer's liveness.
    liveness_interval: Duration,
}

impl RawReader {
    /// Opens and validates `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// Opens and validates `path`: `O_RDONLY | O_NOFOLLOW`, `fstat` checks, header and manifest
    /// read with `pread` and validated, then a read-only mapping of exactly the file's length.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, Error> {
        let path = path.as_ref();
        let file = open_checked(path, false, opts)?;
        Self::from_validated(path, validate(path, file)?)
    }

    pub(crate) fn from_validated(path: &Path, v: crate::open::Validated) -> Result<Self, Error> {
        let map = Mapping::read_only(&v.file, &v.header).map_err(|e| Error::io(path, "mmap", e))?;
        Ok(RawReader {
            path: path.to_owned(),
            file: v.file,
            header: v.header,
            schema: v.schema,
            map,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            liveness_interval: DEFAULT_LIVENESS_INTERVAL,
        })
    }

    /// The file's path as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The type stored in the file, from its manifest.
    pub fn schema(&self) -> &Type {
        &self.schema
    }

    /// Sets how many times a snapshot read retries before `Error::Contended`.
    pub fn set_max_attempts(&mut self, n: u32) {
        self.max_attempts = n.max(1);
    }

    /// Number of commits made to the file since it was created. Two reads that return the same
    /// version return the same value.
    pub fn version(&self) -> u64 {
        self.map.latch().seq() >> 1
    }

    /// A consistent copy of the whole payload and its version.
    pub fn snapshot(&self) -> Result<(Vec<u8>, u64), Error> {
        let mut buf = vec![0u8; self.header.payload_words() * 8];
        let seq = self.read_words(0, &mut buf)?;
        buf.truncate(self.header.payload_size as usize);
        Ok((buf, seq >> 1))
    }

    /// Reads words `first..` into `out` consistently, retrying up to the attempt budget.
    pub(crate) fn read_words(&self, first: usize, out: &mut [u8]) -> Result<u64, Error> {
        self.map
            .latch()
            .read(first, out, self.max_attempts)
            .map_err(|attempts| Error::Contended {
                path: self.path.clone(),
                attempts,
            })
    }

    /// Reads and decodes a whole `T` at once. The caller has checked the schema.
    pub(crate) fn load<T: MappedState>(&self) -> Result<(T, u64), Error> {
        let size = T::TYPE.size;
        with_scratch(self.header.payload_words() * 8, |buf| {
            let seq = self.read_words(0, buf)?;
            let v = T::decode(&buf[..size]).map_err(|source| Error::InvalidValue {
                path: self.path.clone(),
                source,
            })?;
            Ok((v, seq >> 1))
        })
    }

    /// Reads the field of type `F` at payload byte `offset`, touching only its words, validating
    /// it. Used by the derive's accessors; the field name goes into the error.
    #[doc(hidden)]
    pub fn read_field<F: MappedState>(&self, offset: usize, name: &str) -> Result<F, Error> {
        let (first, words, skip) = word_span(offset, F::TYPE.size);
        with_scratch(words * 8, |buf| {
            self.read_words(first, buf)?;
            F::decode(&buf[skip..skip + F::TYPE.size]).map_err(|e| Error::InvalidValue {
                path: self.path.clone(),
                source: e.in_field(name, offset),
            })
        })
    }

    /// Reads the always-valid field of type `F` at payload byte `offset`, touching only its words.
    /// Retries until consistent (see `Latch::read_until_consistent`), so it cannot fail.
    #[doc(hidden)]
    pub fn read_plain<F: Plain>(&self, offset: usize) -> F {
        let (first, words, skip) = word_span(offset, F::TYPE.size);
        with_scratch(words * 8, |buf| {
            self.map.latch().read_until_consistent(first, buf);
            F::decode_plain(&buf[skip..skip + F::TYPE.size])
        })
    }

    /// Whether a writer holds the file's lock (probed with a non-blocking shared `flock`).
    pub fn writer_alive(&self) -> bool {
        match self.file.try_lock_shared() {
            Ok(()) => {
                // Dropping our probe lock at once keeps the window in which a starting writer
                // could see it tiny; writers retry briefly when the recorded pid is dead.
                let _ = self.file.unlock();
                false
            }
            Err(_) => true,
        }
    }

    /// The pid of the writer that last opened the file, if any has.
    pub fn writer_pid(&self) -> Option<u32> {
        let pid = self.map.writer_pid().load(Ordering::Relaxed);
        u32::try_from(pid).ok().filter(|&p| p != 0)
    }

    /// When the current value was committed (wall clock of the writer's machine).
    pub fn last_commit(&self) -> SystemTime {
        self.map.latch().seq();
        let ns = self.map.commit_time().load(Ordering::Relaxed);
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
    }

    /// How long ago the current value was committed (zero if the clock went backwards).
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.last_commit())
            .unwrap_or_default()
    }

    /// Whether a newer file has replaced this one at its path (`CreateOptions::replace`): reopen
    /// by path to follow it.
    pub fn superseded(&self) -> bool {
        self.map.latch().seq();
        self.map.flags().load(Ordering::Relaxed) & FLAG_SUPERSEDED != 0
    }

    /// The futex word, with acquire ordering. A `Relaxed` load and a fence rather than an
    /// `Acquire` load: std guarantees only small `Relaxed` loads on read-only memory, which is
    /// how readers map the file.
    fn notify_acquire(&self) -> u32 {
        let v = self.map.notify().load(Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Acquire);
        v
    }

    /// Blocks until the version differs from `since` or `timeout` passes; returns the version
    /// then current. Sleeps on the file's futex word (Linux; polling elsewhere): no CPU is used
    /// while waiting, and a commit from any process wakes the wait within microseconds (within
    /// the writer's coalescing window, see [`WakePolicy`](crate::WakePolicy), in a burst).
    /// Does not check that the writer is alive; [`wait_for_update`](Self::wait_for_update) does.
    pub fn wait_for_version_change(&self, since: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Load the futex word before checking the version: a commit after the check bumps it,
            // so the wait below returns at once instead of missing the wake. Acquire: pairs with
            // the writer's release bump, so the wake deadline read below is at least as new.
            let seen = self.notify_acquire();
            let v = self.version();
            if v != since {
                return v;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return v,
                },
                None => Duration::from_secs(3600),
            };
            let nap = self.wake_cap().map_or(left, |cap| cap.min(left));
            crate::os::futex_wait(self.map.notify(), seen, nap);
        }
    }

    /// Sets how often a blocked wait checks that a writer still holds the file (default 100 ms,
    /// at least 1 ms). Each check is a non-blocking shared `flock` and its release, made only
    /// while waiting.
    pub fn set_liveness_interval(&mut self, every: Duration) {
        self.liveness_interval = every.max(Duration::from_millis(1));
    }

    /// How often a blocked wait checks that a writer still holds the file.
    pub fn liveness_interval(&self) -> Duration {
        self.liveness_interval
    }

    /// Blocks until a version newer than `since` is committed and returns it; `Ok(None)` when
    /// `timeout` passes first (`None`: no timeout), and the writer was seen alive during the wait;
    /// [`Error::WriterGone`] when no writer holds the file (probed once per
    /// [`liveness_interval`](Self::liveness_interval) of blocking, and at least once per
    /// `timeout`) or the file was superseded. A commit made just before the writer died is still
    /// returned.
    pub fn wait_for_update(
        &self,
        since: u64,
        timeout: Option<Duration>,
    ) -> Result<Option<u64>, Error> {
        self.wait_newer(since, timeout, &mut Liveness::new())
    }

    /// `wait_for_update` with the probe schedule kept by the caller across waits.
    pub(crate) fn wait_newer(
        &self,
        since: u64,
        timeout: Option<Duration>,
        live: &mut Liveness,
    ) -> Result<Option<u64>, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // Probing at least once per timeout means `Ok(None)` always comes with a fresh probe.
        let every = timeout.map_or(self.liveness_interval, |t| t.min(self.liveness_interval));
        loop {
            // Acquire: as in `wait_for_version_change`.
            let seen = self.notify_acquire();
            let v = self.version();
            if v > since {
                return Ok(Some(v));
            }
            if self.superseded() {
                return Err(self.writer_gone(true));
            }
            let now = Instant::now();
            if live.due(now, every) {
                let alive = self.writer_alive();
                live.probed(now);
                if !alive {
                    // The lock is dropped only after the writer's last store: re-read, so a
                    // final commit is delivered before the verdict.
                    let v = self.version();
                    return if v > since {
                        Ok(Some(v))
                    } else {
                        Err(self.writer_gone(false))
                    };
                }
            }
            let mut nap = live.until_due(now, every);
            if let Some(d) = deadline {
                match d.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => nap = nap.min(left),
                    _ => return Ok(None),
                }
            }
            if let Some(cap) = self.wake_cap() {
                nap = nap.min(cap);
            }
            crate::os::futex_wait(self.map.notify(), seen, nap);
        }
    }

    /// How long a waiter may sleep before a coalescing writer's open window ends (a commit in
    /// the window may not wake it). Relaxed load: ordered after the caller's acquire load of
    /// `notify`, so the deadline is at least as new as the futex value the wait sleeps on.
    fn wake_cap(&self) -> Option<Duration> {
        let deadline = self.map.wake_deadline().load(Ordering::Relaxed);
        crate::updates::sleep_cap(deadline, crate::updates::wall_ns())
    }

    fn writer_gone(&self, superseded: bool) -> Error {
        Error::WriterGone {
            path: self.path.clone(),
            pid: self.writer_pid(),
            superseded,
        }
    }
}
