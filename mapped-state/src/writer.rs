//! `Writer<T>`: the one process that publishes a `T`. Holds the file's exclusive lock.

use std::marker::PhantomData;
use std::path::Path;

use crate::create::CreateOptions;
use crate::error::Error;
use crate::open::OpenOptions;
use crate::view::WriteView;
use crate::{Fields, RawWriter, WakePolicy};

/// Publishes a `T` to readers in any process.
///
/// Exactly one writer may hold a file: it takes an exclusive `flock` for its whole life (the
/// kernel drops it if the process dies), and a second writer gets [`Error::WriterActive`] with
/// the first one's pid. Every commit is atomic for readers: they see the whole old value or the
/// whole new one, never a mix, even if this process is killed in the middle of a commit.
pub struct Writer<T: Fields> {
    view: T::WriteView,
    _type: PhantomData<fn() -> T>,
}

impl<T: Fields> std::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.raw().path())
            .field("version", &self.version())
            .finish()
    }
}

impl<T: Fields> Writer<T> {
    fn wrap(raw: RawWriter) -> Self {
        Writer {
            view: T::WriteView::from_raw(raw),
            _type: PhantomData,
        }
    }

    /// Creates a new state file holding `initial`, mode `0600`; fails with
    /// [`Error::AlreadyExists`] if `path` exists. The file appears complete or not at all.
    pub fn create(path: impl AsRef<Path>, initial: &T) -> Result<Self, Error> {
        Self::create_with(path, initial, &CreateOptions::new())
    }

    /// Creates a new state file with `opts` (permissions, replacing an existing file).
    pub fn create_with(
        path: impl AsRef<Path>,
        initial: &T,
        opts: &CreateOptions,
    ) -> Result<Self, Error> {
        crate::words::with_encoding(initial, |bytes| {
            RawWriter::create(path.as_ref(), T::TYPE, bytes, opts)
        })
        .map(Self::wrap)
    }

    /// Takes over an existing state file holding a `T`, e.g. after the previous writer exited
    /// or crashed. A commit the previous writer left half done (readers never saw it) is
    /// completed as a commit of the last complete value, so the version moves on by one and
    /// names that value; then writing resumes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, &OpenOptions::new())
    }

    /// [`open`](Self::open) with options.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self, Error> {
        let path = path.as_ref();
        let raw = RawWriter::open_vetted(path, opts, |v| crate::evolve::writer_fit::<T>(path, v))?;
        // Refuse a file whose committed value is not a valid `T`.
        T::decode(raw.current()).map_err(|source| Error::InvalidValue {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::wrap(raw))
    }

    /// Takes over the state file at `path` as a `T`, rewriting it as a `T` first when it holds
    /// another version of the type (schema evolution, [`evolve`](crate::evolve)).
    ///
    /// When the file's schema is `T`'s, this is [`open`](Self::open). Otherwise, under the
    /// path's writer lock (so no other writer runs, [`Error::WriterActive`] if one does), it
    /// reads the file's committed value, builds a new file for `T` whose value takes every field
    /// the old file has with a fitting type (by name, at any offset) from the old value and every
    /// other field from `fill`, and renames it over the old file in one step. The old file is
    /// flagged superseded: its readers learn from [`Reader::superseded`](crate::Reader::superseded)
    /// or [`Error::WriterGone`] (`superseded: true`) to reopen the path, where they find the new
    /// file holding the old value's fields. A field the old file has with another type cannot be
    /// converted and is refused with [`Error::SchemaMismatch`] naming it. The new file's version
    /// starts again at 0.
    pub fn open_migrating(path: impl AsRef<Path>, fill: &T) -> Result<Self, Error> {
        Self::open_migrating_with(path, fill, &OpenOptions::new(), &CreateOptions::new())
    }

    /// [`open_migrating`](Self::open_migrating) with options for opening the file and for
    /// creating the new one (`replace` is implied).
    pub fn open_migrating_with(
        path: impl AsRef<Path>,
        fill: &T,
        open: &OpenOptions,
        create: &CreateOptions,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let v = crate::open::validate(path, crate::open::open_checked(path, false, open)?)?;
        if v.header.schema_hash == T::SCHEMA_HASH {
            drop(v);
            return Self::open_with(path, open);
        }
        // Planned before anything is locked, so that a type that cannot be migrated leaves the
        // file untouched; planned again under the lock, for the file found there then.
        crate::evolve::plan_migration::<T>(path, &v)?;
        drop(v);
        let raw = crate::words::with_encoding(fill, |fill_bytes| {
            RawWriter::create_migrating(path, T::TYPE, open, create, |old, payload| {
                let plan = crate::evolve::plan_migration::<T>(path, old)?;
                let bytes = plan.apply(fill_bytes, payload);
                // Carried bytes were validated as the old type's; check them as `T`'s.
                T::decode(&bytes).map_err(|source| Error::InvalidValue {
                    path: path.to_owned(),
                    source,
                })?;
                Ok(bytes)
            })
        })?;
        Ok(Self::wrap(raw))
    }

    /// Opens `path` if it exists, otherwise creates it holding `default`.
    pub fn open_or_create(path: impl AsRef<Path>, default: &T) -> Result<Self, Error> {
        let path = path.as_ref();
        match Self::create(path, default) {
            Err(Error::AlreadyExists { .. }) => Self::open(path),
            other => other,
        }
    }

    /// The untyped writer underneath.
    pub fn raw(&self) -> &RawWriter {
        self.view.raw()
    }

    /// Commits `value` as one atomic update and wakes waiting readers. Only the words that
    /// differ from the current value are stored. Returns the new version.
    pub fn publish(&mut self, value: &T) -> u64 {
        let raw = self.view.raw_mut();
        crate::words::with_encoding(value, |bytes| raw.publish_bytes(bytes))
    }

    /// Changes the current value with `f` and commits the result as one atomic update.
    /// Returns the new version.
    pub fn update(&mut self, f: impl FnOnce(&mut T)) -> u64 {
        let mut value = self.get();
        f(&mut value);
        self.publish(&value)
    }

    /// The current (last committed) value, decoded from the writer's own copy.
    pub fn get(&self) -> T {
        // The writer's copy only ever holds values it encoded itself or validated in `open`.
        match T::decode(self.raw().current()) {
            Ok(v) => v,
            Err(e) => panic!("mapped-state: the writer's own copy failed to decode ({e}); the type's MappedState impl does not round-trip"),
        }
    }

    /// Number of commits since the file was created.
    pub fn version(&self) -> u64 {
        self.raw().version()
    }

    /// Sets when commits wake readers blocked in [`Reader::updates`](crate::Reader::updates) and
    /// [`Reader::wait_for_update`](crate::Reader::wait_for_update). The default wakes on every
    /// isolated commit and, during a burst, once per 100 µs from a helper thread; see
    /// [`WakePolicy`].
    pub fn set_wake_policy(&mut self, policy: WakePolicy) {
        self.view.raw_mut().set_wake_policy(policy);
    }

    /// When commits wake waiting readers.
    pub fn wake_policy(&self) -> WakePolicy {
        self.raw().wake_policy()
    }

    /// Writes dirty pages to disk (`msync`). Readers do not need it; durability does.
    pub fn flush(&self) -> Result<(), Error> {
        self.raw().flush()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.raw().path()
    }
}

impl<T: Fields> std::ops::Deref for Writer<T> {
    type Target = T::WriteView;
    fn deref(&self) -> &T::WriteView {
        &self.view
    }
}

impl<T: Fields> std::ops::DerefMut for Writer<T> {
    fn deref_mut(&mut self) -> &mut T::WriteView {
        &mut self.view
    }
}
