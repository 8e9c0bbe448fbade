//! `RawReader`: a validated, read-only mapping of a state file and the ring reads over it, with
//! no Rust type attached. `Reader<T>` and the CLI are built on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Error;
use crate::evolve::Projection;
use crate::format::{Header, FLAG_SUPERSEDED};
use crate::manifest::Type;
use crate::map::Mapping;
use crate::notify::{Liveness, Woke};
use crate::open::{open_checked, validate, OpenOptions};
use crate::state::{MappedState, Plain};
use crate::view::Fields;
use crate::words::{read_value, ReadError};

/// How many times a snapshot read is retried before `Error::Contended`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10_000;

/// How often a blocked wait checks that a writer still holds the file, by default.
pub const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

/// An open state file, read through its manifest: no Rust type needed.
///
/// Holds a read-only mapping; never writes to the file, so it needs only read permission and a
/// crashed reader harms no one.
#[derive(Debug)]
pub struct RawReader {
    /// Shared with the process's async waker thread while a task waits on this file, so the
    /// futex word it sleeps on stays mapped (`waker.rs`).
    map: Arc<Mapping>,
    max_attempts: u32,
    /// How often a blocked wait probes the writer's liveness.
    liveness_interval: Duration,
    path: PathBuf,
    header: Header,
    schema: Type,
    /// The manifest's bytes as validated at open (they never change once published).
    manifest: Box<[u8]>,
    /// Set by `Reader<T>` when `T` reads the file through defaults for fields it lacks.
    projection: Option<std::sync::Arc<Projection>>,
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
        let map = Mapping::read_only(&v.file, &v.header, v.canary)
            .map_err(|e| Error::io(path, "mmap", e))?;
        Ok(RawReader {
            map: Arc::new(map),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            liveness_interval: DEFAULT_LIVENESS_INTERVAL,
            path: path.to_owned(),
            header: v.header,
            schema: v.schema,
            manifest: v.manifest.into_boxed_slice(),
            projection: None,
        })
    }

    /// Makes typed reads assemble the reader's type from the file and `projection`'s defaults.
    pub(crate) fn set_projection(&mut self, projection: Option<std::sync::Arc<Projection>>) {
        self.projection = projection;
    }

    /// The encoded default of field `index` of the reader's type when the file lacks that
    /// field (the reader then reads the default); `None` when the file has it. Used by the
    /// derive's accessors of fields that declare a default.
    #[doc(hidden)]
    #[inline]
    pub fn absent_field(&self, index: usize) -> Option<&[u8]> {
        match &self.projection {
            None => None,
            Some(p) => p.absent(index),
        }
    }

    /// Decodes a field's default (from [`absent_field`](Self::absent_field)), naming the field
    /// in the error a wrong hand-written `MappedState` impl could give.
    #[doc(hidden)]
    #[cold]
    pub fn decode_default<F: MappedState>(
        &self,
        bytes: &[u8],
        name: &str,
        offset: usize,
    ) -> Result<F, Error> {
        F::decode(bytes).map_err(|e| Error::InvalidValue {
            path: self.path.clone(),
            source: e.in_field(name, offset),
        })
    }

    /// A whole `T` (of `version`, or the newest) read through the projection: the file's payload
    /// copied, then `T` assembled from its present fields and the defaults.
    #[cold]
    #[inline(never)]
    fn load_projected<T: MappedState>(
        &self,
        p: &Projection,
        version: Option<u64>,
    ) -> Result<(T, u64), Error> {
        let (file, v) = match version {
            None => {
                let mut buf = vec![0u8; p.read_len()];
                let v = self.snapshot_into(&mut buf)?;
                (buf, v)
            }
            Some(h) => (self.snapshot_version(h)?, h),
        };
        let bytes = p.assemble(&file);
        let value = T::decode(&bytes).map_err(|source| Error::InvalidValue {
            path: self.path.clone(),
            source,
        })?;
        Ok((value, v))
    }

    /// The mapping, for waits that outlive a borrow of the reader (`follow.rs`, `waker.rs`).
    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.map
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

    /// The schema manifest's bytes as validated at open (section 6 of `docs/FORMAT.md`): what
    /// [`schema`](Self::schema) was decoded from, and what
    /// [`RawWriter::create_from_manifest`](crate::RawWriter::create_from_manifest) takes to
    /// create a file of the same schema.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// Sets how many times a snapshot read retries before `Error::Contended`.
    pub fn set_max_attempts(&mut self, n: u32) {
        self.max_attempts = n.max(1);
    }

    /// Number of commits made to the file since it was created. Two reads that return the same
    /// version return the same value.
    #[inline]
    pub fn version(&self) -> u64 {
        self.map.ring().version()
    }

    /// A consistent copy of the whole payload and its version.
    pub fn snapshot(&self) -> Result<(Vec<u8>, u64), Error> {
        let mut buf = vec![0u8; self.header.payload_size as usize];
        let version = self.snapshot_into(&mut buf)?;
        Ok((buf, version))
    }

    /// A consistent copy of the payload's first `out.len()` bytes (at most `payload_size`) into
    /// `out`; returns the version.
    pub fn snapshot_into(&self, out: &mut [u8]) -> Result<u64, Error> {
        let n = out.len().min(self.header.payload_size as usize);
        let v = crate::words::read_into(&self.map.ring(), 0, &mut out[..n], self.max_attempts)
            .map_err(|attempts| self.contended(attempts))?;
        self.check_intact()?;
        Ok(v)
    }

    /// A consistent copy of the payload of version `version`, if it is still in the ring.
    pub fn snapshot_version(&self, version: u64) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; self.header.payload_size as usize];
        self.snapshot_version_into(version, &mut out)?;
        Ok(out)
    }

    /// `snapshot_version` into `out` (its first `payload_size` bytes at most), allocating
    /// nothing: what a recorder reading every version of a busy writer uses. On an error `out`
    /// holds nothing valid.
    pub fn snapshot_version_into(&self, version: u64, out: &mut [u8]) -> Result<(), Error> {
        let n = out.len().min(self.header.payload_size as usize);
        let out = &mut out[..n];
        let ring = self.map.ring();
        let (first, words) = crate::words::word_span(0, n);
        ring.try_read_version(version, first, words, |i, w| {
            let b = w.to_ne_bytes();
            let at = i * 8;
            let take = (n - at).min(8);
            out[at..at + take].copy_from_slice(&b[..take]);
        })
        .map_err(|past| self.past(version, past))?;
        self.check_intact()
    }

    /// `Ok` unless the file was truncated under the mapping (`Error::Truncated`). Every read
    /// that returns a `Result` checks this itself after its bytes were accepted; the infallible
    /// accessors of always-valid fields (which have no error to return) do not, so a program
    /// that reads only those can call this after a group of reads: one load of a word nobody
    /// writes.
    #[inline]
    pub fn check_intact(&self) -> Result<(), Error> {
        if self.map.intact() {
            Ok(())
        } else {
            Err(self.truncated())
        }
    }

    #[cold]
    fn truncated(&self) -> Error {
        Error::Truncated {
            path: self.path.clone(),
            len: self.header.file_len,
        }
    }

    fn contended(&self, attempts: u32) -> Error {
        Error::Contended {
            path: self.path.clone(),
            attempts,
        }
    }

    fn past(&self, version: u64, past: crate::ring::Past) -> Error {
        let newest = self.version();
        match past {
            crate::ring::Past::NotYet => Error::VersionNotYet {
                path: self.path.clone(),
                version,
                newest,
            },
            crate::ring::Past::Gone => Error::VersionGone {
                path: self.path.clone(),
                version,
                newest,
            },
        }
    }

    fn read_error(&self, e: ReadError, version: u64, name: Option<(&str, usize)>) -> Error {
        match e {
            ReadError::Contended(attempts) => self.contended(attempts),
            ReadError::Past(past) => self.past(version, past),
            ReadError::Truncated => self.truncated(),
            ReadError::Invalid(source) => Error::InvalidValue {
                path: self.path.clone(),
                source: match name {
                    Some((name, offset)) => source.in_field(name, offset),
                    None => source,
                },
            },
        }
    }

    /// Reads and decodes a whole `T` at once. The caller has checked the schema.
    #[inline(always)]
    pub(crate) fn load<T: Fields>(&self) -> Result<(T, u64), Error> {
        // `HAS_DEFAULTS` is a constant: a type without defaults never has a projection, and
        // compiles to the plain read below.
        if T::HAS_DEFAULTS {
            if let Some(p) = &self.projection {
                return self.load_projected(p, None);
            }
        }
        read_value::<T>(&self.map.ring(), 0, None, self.max_attempts, || {
            self.map.intact()
        })
        .map_err(|e| self.read_error(e, 0, None))
    }

    /// Reads and decodes a whole `T` into `out` where it stands. The caller has checked the
    /// schema. On failure `out` holds nothing valid.
    #[inline(always)]
    pub(crate) fn load_uninit<T: Fields>(
        &self,
        out: &mut std::mem::MaybeUninit<T>,
    ) -> Result<u64, Error> {
        if T::HAS_DEFAULTS {
            if let Some(p) = &self.projection {
                let (value, v) = self.load_projected::<T>(p, None)?;
                out.write(value);
                return Ok(v);
            }
        }
        crate::words::read_value_into::<T>(
            &self.map.ring(),
            0,
            None,
            self.max_attempts,
            || self.map.intact(),
            out,
        )
        .map_err(|e| self.read_error(e, 0, None))
    }

    /// Reads and decodes version `version` of a whole `T`, if it is still in the ring.
    pub(crate) fn load_version<T: Fields>(&self, version: u64) -> Result<T, Error> {
        if T::HAS_DEFAULTS {
            if let Some(p) = &self.projection {
                return self.load_projected(p, Some(version)).map(|(v, _)| v);
            }
        }
        read_value::<T>(&self.map.ring(), 0, Some(version), 1, || self.map.intact())
            .map(|(v, _)| v)
            .map_err(|e| self.read_error(e, version, None))
    }

    /// Reads the field of type `F` at payload byte `offset`, touching only its words, validating
    /// it. Used by the derive's accessors; the field name goes into the error.
    #[doc(hidden)]
    #[inline(always)]
    pub fn read_field<F: MappedState>(&self, offset: usize, name: &str) -> Result<F, Error> {
        read_value::<F>(&self.map.ring(), offset, None, self.max_attempts, || {
            self.map.intact()
        })
        .map(|(v, _)| v)
        .map_err(|e| self.read_error(e, 0, Some((name, offset))))
    }

    /// Reads the always-valid field of type `F` at payload byte `offset`, touching only its words.
    /// Retries until consistent (a read is disturbed only when the writer laps it by the ring's
    /// slot count minus one), so it cannot fail — and so, having no error to report, it does not
    /// check for truncation: on a file truncated inside its last page it may return zeros.
    /// `load`, `load_into` and the fallible accessors refuse such a file (`Error::Truncated`);
    /// [`check_intact`](Self::check_intact) asks.
    #[doc(hidden)]
    #[inline(always)]
    pub fn read_plain<F: Plain>(&self, offset: usize) -> F {
        loop {
            match read_value::<F>(&self.map.ring(), offset, None, u32::MAX, || true) {
                Ok((v, _)) => return v,
                // Cannot happen for a `Plain` type (every bit pattern is valid) and `u32::MAX`
                // attempts; a wrong hand-written `Plain` impl gets retried, never a panic.
                Err(_) => crate::ring::backoff(16),
            }
        }
    }

    /// Whether the file's writer is alive: the writer recorded in the control block has not
    /// closed the file and its process (that pid, with that start time) still exists. Takes no
    /// lock and writes nothing; reads `/proc/PID/stat`.
    pub fn writer_alive(&self) -> bool {
        crate::lock::writer_alive(&self.map)
    }

    /// The pid of the writer that last opened the file, if any has.
    pub fn writer_pid(&self) -> Option<u32> {
        let pid = self.map.writer_pid().load(Ordering::Relaxed);
        u32::try_from(pid).ok().filter(|&p| p != 0)
    }

    /// When the current value was committed (wall clock of the writer's machine). Exact to the
    /// clock for a commit after a quiet spell; during a burst of commits (see
    /// [`WakePolicy`](crate::WakePolicy)) the writer stops reading the clock and its wake keeper
    /// stamps the time once per period, so the time shown is at most one period older than the
    /// commit.
    pub fn last_commit(&self) -> SystemTime {
        self.map.ring().seq();
        let ns = self.map.commit_time().load(Ordering::Relaxed);
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
    }

    /// How long ago the current value was committed (zero if the clock went backwards); see
    /// [`last_commit`](Self::last_commit) for its resolution.
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.last_commit())
            .unwrap_or_default()
    }

    /// Whether a newer file has replaced this one at its path (`CreateOptions::replace`): reopen
    /// by path to follow it.
    pub fn superseded(&self) -> bool {
        self.map.ring().seq();
        self.map.flags().load(Ordering::Relaxed) & FLAG_SUPERSEDED != 0
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

    /// Blocks until the version is newer than `since` or `timeout` passes; returns the version
    /// then current. Sleeps on the file's futex word (Linux; polling elsewhere). Does not check
    /// that the writer is alive; [`wait_for_update`](Self::wait_for_update) does.
    pub fn wait_for_version_change(&self, since: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now().checked_add(timeout);
        // No liveness probe: its interval is longer than the wait.
        let never = timeout.saturating_add(Duration::from_secs(1));
        let _ = crate::notify::wait_newer(
            &self.map,
            since,
            deadline,
            never,
            &mut Liveness::new(),
            || true,
        );
        self.version()
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
        match crate::notify::wait_newer(&self.map, since, deadline, every, live, || {
            self.writer_alive()
        }) {
            Woke::Newer(v) => Ok(Some(v)),
            Woke::TimedOut => Ok(None),
            Woke::Gone => Err(self.writer_gone(false)),
            Woke::Superseded => Err(self.writer_gone(true)),
        }
    }

    pub(crate) fn writer_gone(&self, superseded: bool) -> Error {
        Error::WriterGone {
            path: self.path.clone(),
            pid: self.writer_pid(),
            superseded,
        }
    }
}
