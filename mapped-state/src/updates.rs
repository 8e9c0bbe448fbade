//! The reader's streams of new versions: `Update<T>` items and the blocking `Updates` iterator,
//! with its exact accounting of skipped versions. The waiting itself (futex, liveness probes)
//! is `notify.rs`.

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::notify::Liveness;
use crate::{Fields, Reader};

/// A new version delivered to a waiting reader.
///
/// `value` is a consistent snapshot (never torn) of version `version`. `skipped` counts the
/// versions committed since the previous item (or since the version the wait started from) that
/// this reader did not receive, because the writer committed faster than the reader consumed:
/// `version == previous + 1 + skipped`, so a reader always learns exactly how much it missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Update<T> {
    /// The value, as committed in `version`.
    pub value: T,
    /// The version of `value`: the number of commits since the file was created.
    pub version: u64,
    /// Versions committed after the previous item and before this one, not delivered.
    pub skipped: u64,
}

impl<T> Update<T> {
    /// The update of `value` at `version`, for a reader that last saw version `since`.
    pub(crate) fn after(value: T, version: u64, since: u64) -> Self {
        Update {
            value,
            version,
            skipped: version.saturating_sub(since).saturating_sub(1),
        }
    }
}

/// A blocking stream of new versions of a `T`, from [`Reader::updates`] or
/// [`Reader::updates_after`].
///
/// Each item is the newest value at the time the reader woke up, with how many versions it
/// skipped (see [`Update`]). Versions strictly increase; summed over the items, `1 + skipped`
/// equals the number of commits since the iterator's starting version — the version current
/// when [`Reader::updates`] was called (that version itself is not yielded; read it with
/// [`Reader::load_versioned`] and pass its version to [`Reader::updates_after`] to lose nothing
/// in between).
///
/// - By default each wait has no timeout: `next` blocks until a new version is committed.
/// - With [`timeout`](Self::timeout), `next` returns `None` after that long without a new version.
///   The iterator is not fused: calling `next` again waits again, with the accounting kept.
///   (A `for` loop ends at that `None`. To be told of a quiet period and carry on, and to cap
///   the total time separately, follow the file instead: [`Reader::follow`] with
///   [`Follow::quiet`](crate::Follow::quiet) and [`Follow::deadline`](crate::Follow::deadline).)
///   [`next_timeout`](Self::next_timeout) does the same for one wait without changing the setting.
/// - When the writer is gone (no process holds the file; found within the reader's liveness
///   interval, 100 ms by default), `next` yields `Err(Error::WriterGone)` once, after any commit
///   the writer made before it died, and then `None` for good. Create a new iterator (with
///   [`last_version`](Self::last_version)) to follow a writer that is restarted.
/// - A version that cannot be read (`Error::Contended`, `Error::InvalidValue`) is yielded as an
///   error and the iterator goes on (after an invalid value, with the next commit); the versions
///   it failed to read count as skipped in the next item.
pub struct Updates<'r, T: Fields> {
    reader: &'r Reader<T>,
    last: u64,
    /// A version whose value failed to decode: the next wait is for a newer one.
    invalid: u64,
    timeout: Option<Duration>,
    live: Liveness,
    gone: bool,
}

impl<T: Fields> fmt::Debug for Updates<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Updates")
            .field("path", &self.reader.path())
            .field("last_version", &self.last)
            .field("timeout", &self.timeout)
            .field("gone", &self.gone)
            .finish()
    }
}

impl<'r, T: Fields> Updates<'r, T> {
    pub(crate) fn new(reader: &'r Reader<T>, since: u64) -> Self {
        Updates {
            reader,
            last: since,
            invalid: since,
            timeout: None,
            live: Liveness::new(),
            gone: false,
        }
    }

    /// Makes each wait of `next` give up after `timeout` without a new version; `next` then
    /// returns `None` (and may be called again).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The version of the last item yielded, or the starting version before the first.
    pub fn last_version(&self) -> u64 {
        self.last
    }

    /// Waits at most `timeout` for the next item: `Ok(None)` when nothing newer was committed in
    /// that time (and the writer was seen alive during it), `Err(Error::WriterGone)` when the
    /// writer is gone.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Update<T>>, Error> {
        self.wait(Some(timeout))
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<Update<T>>, Error> {
        let raw = self.reader.raw();
        let Some(seen) = raw.wait_newer(self.last.max(self.invalid), timeout, &mut self.live)?
        else {
            return Ok(None);
        };
        match raw.load::<T>() {
            Ok((value, version)) => {
                let update = Update::after(value, version, self.last);
                self.last = version;
                Ok(Some(update))
            }
            Err(e) => {
                // An invalid value stays invalid until the next commit: wait for one rather than
                // failing on it again at once. (The failed load read `seen` or a later version;
                // if later, the next wait returns at once and that version fails here again.)
                // A contended read is worth retrying at once: the writer is busy committing.
                if matches!(e, Error::InvalidValue { .. }) {
                    self.invalid = seen;
                }
                Err(e)
            }
        }
    }
}

impl<T: Fields> Iterator for Updates<'_, T> {
    type Item = Result<Update<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.gone {
            return None;
        }
        match self.wait(self.timeout) {
            Ok(Some(u)) => Some(Ok(u)),
            Ok(None) => None,
            Err(e) => {
                self.gone = matches!(e, Error::WriterGone { .. });
                Some(Err(e))
            }
        }
    }
}
