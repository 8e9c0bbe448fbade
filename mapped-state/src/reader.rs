//! `Reader<T>`: a typed, read-only view of a state file. Lock-free, syscall-free reads.

use std::marker::PhantomData;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::open::{open_checked, validate, OpenOptions};
use crate::updates::{Update, Updates};
use crate::view::ReadView;
use crate::{Fields, RawReader};

/// Reads a `T` published by a [`Writer<T>`](crate::Writer) in another process (or this one).
///
/// Opening validates the file completely and checks that it holds a `T`, or a compatible
/// version of `T` (fields appended by a newer writer, or fields of `T` the file lacks that declare
/// a default; see [`evolve`](crate::evolve)); otherwise it fails with the fields that differ. After that, reads are plain loads from the mapping with no
/// lock and no system call: [`load`](Self::load) copies a consistent snapshot of the whole value,
/// and the derive's accessors (`reader.rpm()`, reached through `Deref`) read one field's words.
///
/// A reader never writes to the file: read permission is enough.
pub struct Reader<T: Fields> {
    view: T::ReadView,
    _type: PhantomData<fn() -> T>,
}

impl<T: Fields> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.raw().path())
            .field("version", &self.version())
            .finish()
    }
}

impl<T: Fields> Reader<T> {
    /// Opens `path` with default options (refusing symlinks and files others can write).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// Opens `path` with `opts`.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, Error> {
        let path = path.as_ref();
        let v = validate(path, open_checked(path, false, opts)?)?;
        // The file holds a `T`, or a compatible version of it (`crate::evolve`).
        let projection = crate::evolve::reader_fit::<T>(path, &v, opts.exact_schema)?;
        let mut raw = RawReader::from_validated(path, v)?;
        raw.set_projection(projection);
        Ok(Reader {
            view: T::ReadView::from_raw(raw),
            _type: PhantomData,
        })
    }

    /// The untyped reader underneath.
    pub fn raw(&self) -> &RawReader {
        self.view.raw()
    }

    /// A consistent copy of the whole value. Retries while the writer commits during the copy;
    /// gives up with [`Error::Contended`] after the retry budget (10,000 attempts by default, see
    /// [`set_max_attempts`](Self::set_max_attempts)). Invalid bytes give [`Error::InvalidValue`]
    /// naming the field.
    #[inline(always)]
    pub fn load(&self) -> Result<T, Error> {
        let mut out = std::mem::MaybeUninit::<T>::uninit();
        self.raw().load_uninit(&mut out)?;
        // SAFETY: `load_uninit` succeeded, so `out` holds a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// Like [`load`](Self::load), with the version the value belongs to.
    #[inline(always)]
    pub fn load_versioned(&self) -> Result<(T, u64), Error> {
        self.raw().load::<T>()
    }

    /// Like [`load_versioned`](Self::load_versioned), into `out`, which it overwrites: no copy of
    /// the value is made, for large values the cheapest way to take snapshots again and again.
    /// On an error `out` is left unchanged, or (for types whose every bit pattern is valid, read
    /// straight into `out`) holds an unspecified value.
    #[inline(always)]
    pub fn load_into(&self, out: &mut T) -> Result<u64, Error> {
        match crate::words::as_uninit(out) {
            Some(slot) => self.raw().load_uninit(slot),
            None => {
                let (value, version) = self.raw().load::<T>()?;
                *out = value;
                Ok(version)
            }
        }
    }

    /// Version `version` of the value, if it is still in the ring (the newest `slots` versions,
    /// see [`CreateOptions::slots`](crate::CreateOptions::slots)): [`Error::VersionGone`] once
    /// the writer has overwritten it (also when it does so during the read: an old version is
    /// never returned torn), [`Error::VersionNotYet`] if it is not committed yet.
    pub fn load_version(&self, version: u64) -> Result<T, Error> {
        self.raw().load_version::<T>(version)
    }

    /// The versions still in the ring, newest first, each read and validated when the iterator
    /// reaches it: `(version, value)`. Ends at the oldest version the ring still holds, or
    /// earlier, at the first version the writer overwrites before the iterator reaches it.
    /// Invalid bytes are yielded as [`Error::InvalidValue`] and the iteration goes on.
    pub fn load_history(&self) -> impl Iterator<Item = Result<(u64, T), Error>> + '_ {
        let newest = self.version();
        let slots = self.raw().header().slot_count;
        (0..slots)
            .map_while(move |back| newest.checked_sub(back))
            .map_while(move |v| match self.load_version(v) {
                Ok(value) => Some(Ok((v, value))),
                Err(Error::VersionGone { .. }) => None,
                Err(e) => Some(Err(e)),
            })
    }

    /// Sets how many times a snapshot read retries before [`Error::Contended`].
    pub fn set_max_attempts(&mut self, n: u32) {
        self.view.raw_mut().set_max_attempts(n);
    }

    /// Number of commits made since the file was created.
    pub fn version(&self) -> u64 {
        self.raw().version()
    }

    /// Whether a writer currently holds the file.
    pub fn writer_alive(&self) -> bool {
        self.raw().writer_alive()
    }

    /// The pid of the writer that last held the file.
    pub fn writer_pid(&self) -> Option<u32> {
        self.raw().writer_pid()
    }

    /// When the current value was committed.
    pub fn last_commit(&self) -> SystemTime {
        self.raw().last_commit()
    }

    /// How long ago the current value was committed.
    pub fn age(&self) -> Duration {
        self.raw().age()
    }

    /// Whether the file was replaced at its path by a newer one (reopen to follow it).
    pub fn superseded(&self) -> bool {
        self.raw().superseded()
    }

    /// The path the reader was opened with.
    pub fn path(&self) -> &Path {
        self.raw().path()
    }

    /// Blocks until a version newer than the current one is committed, for at most `timeout`,
    /// and returns it as an [`Update`] (`skipped` counts the versions after the one current at
    /// the call). `Ok(None)`: nothing new in time, and the writer was seen alive during the wait.
    /// [`Error::WriterGone`]: no writer holds the file any more (or it was superseded), so
    /// nothing new can come; found within the [liveness interval](Self::set_liveness_interval).
    ///
    /// A commit made between a read of yours and this call is not waited for — it is already
    /// current. To wait for anything newer than a version you read, use
    /// [`wait_for_update_after`](Self::wait_for_update_after); to follow every version, use
    /// [`updates`](Self::updates).
    ///
    /// Sleeps on the file's futex (no CPU used) and wakes within microseconds of a commit in any
    /// process; see [`WakePolicy`](crate::WakePolicy) for writers that coalesce wakes.
    pub fn wait_for_update(&self, timeout: Duration) -> Result<Option<Update<T>>, Error> {
        self.wait_for_update_after(self.version(), timeout)
    }

    /// Like [`wait_for_update`](Self::wait_for_update), for a version newer than `version`
    /// (returns at once when there already is one). `skipped` counts the versions after
    /// `version` that were not delivered.
    pub fn wait_for_update_after(
        &self,
        version: u64,
        timeout: Duration,
    ) -> Result<Option<Update<T>>, Error> {
        let raw = self.raw();
        if raw.wait_for_update(version, Some(timeout))?.is_none() {
            return Ok(None);
        }
        let (value, now) = self.load_versioned()?;
        Ok(Some(Update::after(value, now, version)))
    }

    /// A blocking iterator of the versions committed from now on: each item is the newest value
    /// when the reader wakes, with the number of versions it skipped. The version current now is
    /// the starting point and is not yielded. Ends with [`Error::WriterGone`] when the writer is
    /// gone. See [`Updates`] for timeouts and the exact accounting.
    ///
    /// ```
    /// # use mapped_state::{Reader, Writer};
    /// # let dir = std::env::temp_dir().join(format!("ms-doc-updates-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let path = dir.join("counter.state");
    /// let mut w = Writer::<[u64; 2]>::create(&path, &[0, 0])?;
    /// let r = Reader::<[u64; 2]>::open(&path)?;
    /// let (_, start) = r.load_versioned()?;
    /// std::thread::scope(|s| {
    ///     s.spawn(move || {
    ///         for i in 1..=1000 {
    ///             w.publish(&[i, i]);
    ///         }
    ///     }); // the writer is dropped here: `updates` then ends with `WriterGone`
    ///     let (mut seen, mut missed) = (0, 0);
    ///     for item in r.updates_after(start) {
    ///         match item {
    ///             Ok(u) => {
    ///                 assert_eq!(u.value, [u.version, u.version]); // never torn
    ///                 seen += 1;
    ///                 missed += u.skipped;
    ///             }
    ///             Err(mapped_state::Error::WriterGone { .. }) => break,
    ///             Err(e) => panic!("{e}"),
    ///         }
    ///     }
    ///     assert_eq!(seen + missed, 1000); // every commit is delivered or counted
    /// });
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), mapped_state::Error>(())
    /// ```
    pub fn updates(&self) -> Updates<'_, T> {
        Updates::new(self, self.version())
    }

    /// Like [`updates`](Self::updates), starting after `version` (typically from
    /// [`load_versioned`](Self::load_versioned)): the first item is the first version newer than
    /// `version`, so nothing committed after your read goes unaccounted.
    pub fn updates_after(&self, version: u64) -> Updates<'_, T> {
        Updates::new(self, version)
    }

    /// Sets how often a blocked wait checks that a writer still holds the file (default 100 ms):
    /// a wait learns that the writer died within this interval.
    pub fn set_liveness_interval(&mut self, every: Duration) {
        self.view.raw_mut().set_liveness_interval(every);
    }
}

impl<T: Fields> std::ops::Deref for Reader<T> {
    type Target = T::ReadView;
    fn deref(&self) -> &T::ReadView {
        &self.view
    }
}
