//! Waiting for updates without blocking a thread (feature `async`, alias `tokio`):
//! [`AsyncUpdates`] (`changed().await`, and a [`Stream`] of updates), the [`Stream`] of a
//! [`Follow`], and the future of [`wait_any_async`](crate::wait_any_async).
//!
//! Runtime-agnostic: a task that finds nothing new arms the process's one waker thread
//! (`waker.rs`) with the futex word it read and returns `Pending`; the thread wakes it on the
//! next commit's wake, at its next liveness probe, or at its quiet period or deadline. No
//! executor thread ever blocks: a poll makes no system call but reading a clock, except a
//! liveness probe (reading `/proc/PID/stat`, once per liveness interval of waiting) and, for a
//! [`Follow`], opening the file at its path when it looks for one. Every future and stream here
//! is cancellation-safe: dropping it loses nothing (versions are accounted for only once
//! yielded) and leaves nothing armed.

use std::borrow::Borrow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::error::Error;
use crate::follow::{Event, Follow, FollowReader, Need, Step};
use crate::notify::{notify_acquire, Liveness};
use crate::waker::Slot;
use crate::{Fields, Reader, Update};

/// How often an async [`Follow`] whose path holds no file looks at the path again (the
/// blocking one is woken by inotify instead).
pub const ASYNC_PATH_POLL: Duration = Duration::from_millis(10);

/// Arms `slot` (registering it first) with what `need` waits for and `cx`'s waker.
pub(crate) fn arm(slot: &mut Option<Slot>, need: &Need, cx: &Context<'_>) {
    let mut until = need.until;
    if need.path {
        if let Some(t) = Instant::now().checked_add(ASYNC_PATH_POLL) {
            until = Some(until.map_or(t, |u| u.min(t)));
        }
    }
    let words: Vec<_> = need.words.iter().map(|(m, s)| (m, *s)).collect();
    slot.get_or_insert_with(Slot::new)
        .arm(&words, until, cx.waker());
}

/// The async counterpart of [`Updates`](crate::Updates): the versions committed after a
/// starting version, awaited with [`changed`](Self::changed) or as a [`Stream`], with the same
/// exact accounting (`version == previous + 1 + skipped`).
///
/// It holds its reader as `R`: anything that borrows a [`Reader<T>`] — the reader itself
/// (`Reader::into_updates_async`), an `Arc<Reader<T>>` (to share it with other tasks) or a
/// `&Reader<T>` (`Reader::updates_async`). With an owned reader or an `Arc` it is `'static`
/// and `Send`, so it can be moved into a spawned task.
///
/// The stream ends (`None`) after yielding [`Error::WriterGone`] (found within the reader's
/// liveness interval; also for a file that has no writer yet: wait for one with
/// [`Reader::wait_for_writer`] first); [`changed`](Self::changed) returns that error again on
/// every call. To carry on across writer restarts and replacements, use [`Follow`] as a stream.
///
/// For a bound on one wait, wrap `changed()` in your runtime's timeout
/// (`tokio::time::timeout`): it is cancellation-safe, so a wait that times out loses nothing,
/// and the next `changed()` goes on from the same version. For quiet periods reported as
/// items and a total deadline, use [`Follow`] with `quiet` and `deadline`.
///
/// ```
/// # use mapped_state::{AsyncUpdates, Reader, Writer};
/// # use std::sync::Arc;
/// # let dir = std::env::temp_dir().join(format!("ms-doc-async-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("counter.state");
/// let mut w = Writer::<u64>::create(&path, &0)?;
/// let mut updates = AsyncUpdates::new(Arc::new(Reader::<u64>::open(&path)?));
/// w.publish(&41);
/// w.publish(&42);
/// # let fut = async {
/// let u = updates.changed().await?;
/// assert_eq!((u.value, u.version, u.skipped), (42, 2, 1));
/// # Ok::<(), mapped_state::Error>(())
/// # };
/// # // A minimal executor: the update is already there, so one poll completes it.
/// # use std::future::Future;
/// # let waker = std::task::Waker::noop();
/// # let mut cx = std::task::Context::from_waker(&waker);
/// # let mut fut = std::pin::pin!(fut);
/// # assert!(matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(()))));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mapped_state::Error>(())
/// ```
pub struct AsyncUpdates<T: Fields, R: Borrow<Reader<T>> = std::sync::Arc<Reader<T>>> {
    reader: R,
    last: u64,
    /// A version whose value failed to decode: the next wait is for a newer one.
    invalid: u64,
    live: Liveness,
    gone: bool,
    slot: Option<Slot>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Fields, R: Borrow<Reader<T>>> std::fmt::Debug for AsyncUpdates<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncUpdates")
            .field("path", &self.reader().path())
            .field("last_version", &self.last)
            .field("gone", &self.gone)
            .finish_non_exhaustive()
    }
}

impl<T: Fields> Reader<T> {
    /// The versions committed from now on, to await (see [`AsyncUpdates`]), borrowing this
    /// reader.
    pub fn updates_async(&self) -> AsyncUpdates<T, &Reader<T>> {
        AsyncUpdates::new(self)
    }

    /// The versions committed from now on, to await, owning this reader (`'static`).
    pub fn into_updates_async(self) -> AsyncUpdates<T, Reader<T>> {
        AsyncUpdates::new(self)
    }
}

impl<T: Fields, R: Borrow<Reader<T>>> AsyncUpdates<T, R> {
    /// The versions committed after the one current now.
    pub fn new(reader: R) -> Self {
        let since = reader.borrow().version();
        Self::after(reader, since)
    }

    /// The versions committed after `version` (typically from
    /// [`Reader::load_versioned`]): nothing committed after your read goes unaccounted.
    pub fn after(reader: R, version: u64) -> Self {
        AsyncUpdates {
            reader,
            last: version,
            invalid: version,
            live: Liveness::new(),
            gone: false,
            slot: None,
            _type: PhantomData,
        }
    }

    /// The reader.
    pub fn reader(&self) -> &Reader<T> {
        self.reader.borrow()
    }

    /// The reader handle, giving up the waits.
    pub fn into_inner(self) -> R {
        // The slot is dropped with the rest, which deregisters it.
        self.reader
    }

    /// The version of the last update returned, or the starting version before the first.
    pub fn last_version(&self) -> u64 {
        self.last
    }

    /// Waits for a version newer than the last one returned (or the starting one) and returns
    /// it, with the versions skipped since. Returns at once if there already is one.
    /// [`Error::WriterGone`] when the writer is gone (or the file superseded) and nothing newer
    /// was committed.
    ///
    /// Cancellation-safe: dropping the future before it completes loses no version (the next
    /// call returns it) and disarms the wait.
    pub fn changed(&mut self) -> Changed<'_, T, R> {
        Changed { updates: self }
    }

    fn poll_update(&mut self, cx: &mut Context<'_>) -> Poll<Result<Update<T>, Error>> {
        loop {
            let r = self.reader.borrow();
            let raw = r.raw();
            let map = raw.mapping();
            // The word before the version, as in every wait (`notify.rs`).
            let seen = notify_acquire(map);
            let v = raw.version();
            if v > self.last.max(self.invalid) {
                if let Some(s) = &self.slot {
                    s.disarm();
                }
                return Poll::Ready(match r.load_versioned() {
                    Ok((value, version)) => {
                        let u = Update::after(value, version, self.last);
                        self.last = version;
                        Ok(u)
                    }
                    Err(e) => {
                        if matches!(e, Error::InvalidValue { .. }) {
                            self.invalid = v;
                        }
                        Err(e)
                    }
                });
            }
            if raw.superseded() {
                return Poll::Ready(Err(raw.writer_gone(true)));
            }
            let now = Instant::now();
            let every = raw.liveness_interval();
            if self.live.due(now, every) {
                let alive = raw.writer_alive();
                if !alive && raw.version() > self.last.max(self.invalid) {
                    // A last commit before the writer died is delivered first.
                    continue;
                }
                self.live.probed(now);
                if !alive {
                    return Poll::Ready(Err(raw.writer_gone(false)));
                }
            }
            let need = Need {
                words: vec![(std::sync::Arc::clone(map), seen)],
                until: now.checked_add(self.live.until_due(now, every)),
                path: false,
            };
            arm(&mut self.slot, &need, cx);
            return Poll::Pending;
        }
    }
}

/// The future of [`AsyncUpdates::changed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'a, T: Fields, R: Borrow<Reader<T>>> {
    updates: &'a mut AsyncUpdates<T, R>,
}

impl<T: Fields, R: Borrow<Reader<T>>> std::fmt::Debug for Changed<'_, T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changed")
            .field("updates", &self.updates)
            .finish()
    }
}

impl<T: Fields, R: Borrow<Reader<T>>> Future for Changed<'_, T, R> {
    type Output = Result<Update<T>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().updates.poll_update(cx)
    }
}

impl<T: Fields, R: Borrow<Reader<T>>> Drop for Changed<'_, T, R> {
    fn drop(&mut self) {
        // Cancelled (or done): nobody waits on the old waker any more.
        if let Some(s) = &self.updates.slot {
            s.disarm();
        }
    }
}

impl<T: Fields, R: Borrow<Reader<T>> + Unpin> Stream for AsyncUpdates<T, R> {
    type Item = Result<Update<T>, Error>;

    /// The next update; `None` after [`Error::WriterGone`] was yielded.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.gone {
            return Poll::Ready(None);
        }
        this.poll_update(cx).map(|r| {
            if matches!(r, Err(Error::WriterGone { .. })) {
                this.gone = true;
                // Nothing more to wait for: let the waker thread stop if this was the last.
                this.slot = None;
            }
            Some(r)
        })
    }
}

impl<R: FollowReader + Unpin> Stream for Follow<R>
where
    R::Value: Unpin,
{
    type Item = Result<Event<R::Value>, Error>;

    /// The next event (see [`Follow`]); `None` only at the deadline.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.step() {
            Step::Ready(item) => {
                if item.is_none() {
                    this.slot = None;
                } else if let Some(s) = &this.slot {
                    s.disarm();
                }
                Poll::Ready(item)
            }
            Step::Wait(need) => {
                arm(&mut this.slot, &need, cx);
                Poll::Pending
            }
        }
    }
}
