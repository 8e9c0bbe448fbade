//! Waiting on several state files at once: [`wait_any`] blocks until any of them has a newer
//! version (one `futex_waitv` on all their futex words), and, with feature `async`,
//! [`wait_any_async`] is the same wait as a future.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::follow::{Need, Step};
use crate::map::Mapping;
use crate::notify::{notify_acquire, Liveness};
use crate::RawReader;

struct Entry {
    map: Arc<Mapping>,
    since: u64,
    path: PathBuf,
}

/// A wait on several files, shared by the blocking and the async forms.
pub(crate) struct Any {
    entries: Vec<Entry>,
    live: Liveness,
    interval: Duration,
    deadline: Option<Instant>,
}

impl Any {
    fn new(readers: &[(&RawReader, u64)], timeout: Option<Duration>) -> Any {
        let interval = readers
            .iter()
            .map(|(r, _)| r.liveness_interval())
            .min()
            .unwrap_or(crate::raw_reader::DEFAULT_LIVENESS_INTERVAL);
        // Probing at least once per timeout means `Ok(None)` always comes with a fresh probe.
        let interval = timeout.map_or(interval, |t| t.min(interval));
        Any {
            entries: readers
                .iter()
                .map(|&(r, since)| Entry {
                    map: Arc::clone(r.mapping()),
                    since,
                    path: r.path().to_owned(),
                })
                .collect(),
            live: Liveness::new(),
            interval,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        }
    }

    fn gone(e: &Entry, superseded: bool) -> Error {
        let pid = e
            .map
            .writer_pid()
            .load(std::sync::atomic::Ordering::Relaxed);
        Error::WriterGone {
            path: e.path.clone(),
            pid: u32::try_from(pid).ok().filter(|&p| p != 0),
            superseded,
        }
    }

    pub(crate) fn step(&mut self) -> Step<Result<Option<usize>, Error>> {
        let mut words = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            // The word before the version, as in every wait (`notify.rs`).
            let seen = notify_acquire(&e.map);
            if e.map.ring().version() > e.since {
                return Step::Ready(Ok(Some(i)));
            }
            if e.map.flags().load(std::sync::atomic::Ordering::Relaxed)
                & crate::format::FLAG_SUPERSEDED
                != 0
            {
                return Step::Ready(Err(Self::gone(e, true)));
            }
            words.push((Arc::clone(&e.map), seen));
        }
        let now = Instant::now();
        if self.live.due(now, self.interval) {
            self.live.probed(now);
            for (i, e) in self.entries.iter().enumerate() {
                if !crate::lock::writer_alive(&e.map) {
                    // A last commit before the writer died is delivered first.
                    if e.map.ring().version() > e.since {
                        return Step::Ready(Ok(Some(i)));
                    }
                    return Step::Ready(Err(Self::gone(e, false)));
                }
            }
        }
        let mut until = now.checked_add(self.live.until_due(now, self.interval));
        if let Some(d) = self.deadline {
            if now >= d {
                return Step::Ready(Ok(None));
            }
            until = Some(until.map_or(d, |u| u.min(d)));
        }
        Step::Wait(Need {
            words,
            until,
            path: false,
        })
    }
}

/// Blocks until any of `readers` has a version newer than the version paired with it (for
/// instance from [`Reader::load_versioned`](crate::Reader::load_versioned)), and returns the
/// index of the first that has: `Ok(Some(i))`. `Ok(None)` when `timeout` (`None`: none)
/// passes first, with every writer seen alive during the wait. [`Error::WriterGone`] (naming
/// the file) when one of the files has no writer any more, or was superseded, and nothing newer.
///
/// One system call waits on all of them (`futex_waitv`, Linux 5.16 and later; up to 128 files,
/// the rest looked at every millisecond); elsewhere the wait sleeps on the first file's word a
/// couple of milliseconds at a time and looks at all of them in between. The readers may hold
/// different types: pass `reader.raw()`.
///
/// ```
/// # use mapped_state::{Reader, Writer};
/// # use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("ms-doc-any-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let mut a = Writer::<u64>::create(dir.join("a.state"), &0)?;
/// let _b = Writer::<[u8; 4]>::create(dir.join("b.state"), &[0; 4])?;
/// let ra = Reader::<u64>::open(dir.join("a.state"))?;
/// let rb = Reader::<[u8; 4]>::open(dir.join("b.state"))?;
/// a.publish(&1);
/// let ready = mapped_state::wait_any(&[(rb.raw(), 0), (ra.raw(), 0)], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, Some(1));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mapped_state::Error>(())
/// ```
pub fn wait_any(
    readers: &[(&RawReader, u64)],
    timeout: Option<Duration>,
) -> Result<Option<usize>, Error> {
    let mut any = Any::new(readers, timeout);
    loop {
        match any.step() {
            Step::Ready(r) => return r,
            Step::Wait(need) => crate::follow::block(&need, None),
        }
    }
}

/// [`wait_any`] as a future (feature `async`): the same result, without blocking a thread
/// (the process's waker thread sleeps on the files' words). It owns what it needs (the
/// mappings), so it is `'static` and may be spawned. Dropping it cancels the wait.
#[cfg(feature = "async")]
pub fn wait_any_async(readers: &[(&RawReader, u64)], timeout: Option<Duration>) -> WaitAny {
    WaitAny {
        any: Any::new(readers, timeout),
        slot: None,
    }
}

/// The future of [`wait_any_async`].
#[cfg(feature = "async")]
pub struct WaitAny {
    any: Any,
    slot: Option<crate::waker::Slot>,
}

#[cfg(feature = "async")]
impl std::fmt::Debug for WaitAny {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitAny")
            .field("files", &self.any.entries.len())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "async")]
impl std::future::Future for WaitAny {
    type Output = Result<Option<usize>, Error>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        match this.any.step() {
            Step::Ready(r) => {
                // Dropping the slot stops the waker thread if it was the last one.
                this.slot = None;
                std::task::Poll::Ready(r)
            }
            Step::Wait(need) => {
                crate::asynch::arm(&mut this.slot, &need, cx);
                std::task::Poll::Pending
            }
        }
    }
}
