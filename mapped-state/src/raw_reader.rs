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

/// How many times a snapshot read is retried before `Error::Contended`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10_000;

/// Payloads up to this many bytes are copied through a stack buffer, larger ones through the heap.
const STACK_SCRATCH: usize = 512;

/// Runs `f` on a zeroed scratch buffer of `len` bytes.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    if len <= STACK_SCRATCH {
        let mut buf = [0u8; STACK_SCRATCH];
        f(&mut buf[..len])
    } else {
        f(&mut vec![0u8; len])
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

    /// Blocks until the version differs from `since` or `timeout` passes; returns the version
    /// then current. Sleeps on the file's futex word (Linux; polling elsewhere): no CPU is used
    /// while waiting, and a commit from any process wakes the wait within microseconds.
    pub fn wait_for_version_change(&self, since: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Load the futex word before checking the version: a commit after the check bumps it,
            // so the wait below returns at once instead of missing the wake.
            let seen = self.map.notify().load(Ordering::Relaxed);
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
            crate::os::futex_wait(self.map.notify(), seen, left);
        }
    }
}
