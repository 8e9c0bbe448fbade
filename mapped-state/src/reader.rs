//! `Reader<T>`: a typed, read-only view of a state file. Lock-free, syscall-free reads.

use std::marker::PhantomData;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::open::{check_schema, open_checked, validate, OpenOptions};
use crate::view::ReadView;
use crate::{MappedState, RawReader};

/// Reads a `T` published by a [`Writer<T>`](crate::Writer) in another process (or this one).
///
/// Opening validates the file completely and checks that it holds a `T` (schema hash, with a
/// field-level diff when it does not). After that, reads are plain loads from the mapping with no
/// lock and no system call: [`load`](Self::load) copies a consistent snapshot of the whole value,
/// and the derive's accessors (`reader.rpm()`, reached through `Deref`) read one field's words.
///
/// A reader never writes to the file: read permission is enough.
pub struct Reader<T: MappedState> {
    view: T::ReadView,
    _type: PhantomData<fn() -> T>,
}

impl<T: MappedState> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.raw().path())
            .field("version", &self.version())
            .finish()
    }
}

impl<T: MappedState> Reader<T> {
    /// Opens `path` with default options (refusing symlinks and files others can write).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// Opens `path` with `opts`.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, Error> {
        let path = path.as_ref();
        let v = validate(path, open_checked(path, false, opts)?)?;
        check_schema::<T>(path, &v)?;
        Ok(Reader {
            view: T::ReadView::from_raw(RawReader::from_validated(path, v)?),
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
    pub fn load(&self) -> Result<T, Error> {
        self.raw().load::<T>().map(|(v, _)| v)
    }

    /// Like [`load`](Self::load), with the version the value belongs to.
    pub fn load_versioned(&self) -> Result<(T, u64), Error> {
        self.raw().load::<T>()
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
}

impl<T: MappedState> std::ops::Deref for Reader<T> {
    type Target = T::ReadView;
    fn deref(&self) -> &T::ReadView {
        &self.view
    }
}
