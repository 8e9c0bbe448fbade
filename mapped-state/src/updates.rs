//! Waiting for new versions: the writer's wake policy, the reader's `Update<T>` items and the
//! blocking `Updates` iterator, and the liveness probing that ends a wait whose writer is gone.
//!
//! # How a wait works
//!
//! A waiter loads the control block's `notify` word, checks the version, and sleeps on `notify`
//! with a shared futex (`FUTEX_WAIT` without `FUTEX_PRIVATE_FLAG`: keyed by the file's page, so it
//! works across processes, on file-backed and tmpfs mappings, from a read-only mapping). A commit
//! bumps `notify` after the new version is visible, so a commit between the check and the sleep
//! makes the sleep return at once. Elsewhere than Linux the waiter polls `notify` with backoff
//! (spin, yield, then naps from 50 µs up to 5 ms).
//!
//! Readers stay read-only: they never announce themselves, so the writer cannot know whether
//! anyone waits. The kernel knows (it queues the futex waiters), but asking it is a system call
//! too, as is testing a lock readers could take to announce themselves (and POSIX record locks
//! do not even see waiters in the writer's own process). So instead of skipping the wake when
//! nobody waits, the writer bounds how often it wakes: [`WakePolicy`], measured there.
//!
//! # Liveness
//!
//! While it is blocked (never on the read path), a wait probes whether a writer still holds the
//! file — a non-blocking shared `flock`, released at once — once per
//! [`liveness_interval`](crate::RawReader::set_liveness_interval) (100 ms by default) of waiting,
//! and at least once per timeout; a wait that is over sooner makes no system call besides the
//! futex. When no writer holds the file and nothing newer arrived, the wait ends with
//! [`Error::WriterGone`]; a commit the writer made just before dying is still delivered first.
//! A writer taking over from a dead one retries its lock for up to 200 ms when it collides with a
//! probe, so probing readers do not keep it out.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Error;
use crate::{MappedState, Reader};

/// When a commit wakes the readers blocked in [`Reader::wait_for_update`] or
/// [`Reader::updates`] (set with [`Writer::set_wake_policy`](crate::Writer::set_wake_policy)).
///
/// Waking is a `FUTEX_WAKE` system call. Readers cannot tell the writer that they wait (they only
/// read the file), so a writer that wakes on every commit pays the call even when nobody waits,
/// and the call costs several times a small commit. `publish` of a `[u64; 2]`, nobody waiting,
/// as ratios to a publish that skips waking altogether, within each of two runs on a shared
/// 2-core VM (Linux 6.18) of
/// `cargo bench -p mapped-state --bench runtime -- --warm-up-time 1 --measurement-time 3`:
///
/// | policy | tmpfs (`/dev/shm`) | file in the temp dir |
/// |---|---|---|
/// | no wake at all (readers would have to poll; benchmark only) | 1.0 (74–76 ns) | 1.0 (70–95 ns) |
/// | [`Coalesce`](Self::Coalesce)`(100 µs)`, the default, commits back to back | 1.7–1.8 | 1.8–2.0 |
/// | [`EveryCommit`](Self::EveryCommit) | 7.3–8.8 | 7.1–7.8 |
///
/// What coalescing still adds is one clock read, needed so that a commit whose wake is skipped
/// is visible before the deadline waiters sleep until (see below), even if the writer is
/// preempted in the middle of the commit.
///
/// A coalescing writer wakes at most once per window: a commit less than `window` after the last
/// wake skips the call, and waiters cap their sleep at the end of the window (the writer publishes
/// it in the control block, `format::off::WAKE_DEADLINE`), so such a commit reaches them at most
/// `window` late. A commit after a quiet spell longer than the window wakes at once, so an
/// occasional publish is delivered with no delay under either policy; only commits closer together
/// than the window are batched — and a reader conflates those anyway.
///
/// The price is latency for exchanges faster than the window: a request/response ping-pong
/// between two threads over two files took 8.5–19 µs per round trip with `EveryCommit` and
/// 97–107 µs with the default window in the same runs (benchmark `wake_latency_round_trip`).
/// Choose `EveryCommit` for such a protocol, or a shorter window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WakePolicy {
    /// Wake waiters on every commit: the lowest latency in bursts, one system call per commit.
    EveryCommit,
    /// Wake waiters at most once per window (capped at 1 s); commits inside the window reach
    /// waiters by its end.
    Coalesce(Duration),
}

impl WakePolicy {
    /// The default coalescing window: 100 µs, at most 10,000 wake calls a second.
    pub const DEFAULT_WINDOW: Duration = Duration::from_micros(100);

    /// The window in nanoseconds, capped at `MAX_WAKE_WINDOW_NS`; `None` for `EveryCommit`.
    pub(crate) fn window_ns(self) -> Option<u64> {
        match self {
            WakePolicy::EveryCommit => None,
            WakePolicy::Coalesce(w) => Some(
                u64::try_from(w.as_nanos())
                    .unwrap_or(u64::MAX)
                    .min(crate::format::MAX_WAKE_WINDOW_NS),
            ),
        }
    }
}

impl Default for WakePolicy {
    /// `Coalesce(WakePolicy::DEFAULT_WINDOW)`.
    fn default() -> Self {
        WakePolicy::Coalesce(Self::DEFAULT_WINDOW)
    }
}

/// Whether a coalescing writer may skip the wake of a commit made at `now`: the last wake opened
/// a window `[deadline - window, deadline)` that `now` falls in. A clock that jumped back lands
/// outside it, so the commit wakes and opens a new window.
pub(crate) fn inside_window(now: u64, deadline: u64, window: u64) -> bool {
    now < deadline && now >= deadline.saturating_sub(window)
}

/// Wall-clock nanoseconds since the Unix epoch: the clock of `off::WAKE_DEADLINE`, the one every
/// process on the machine shares (monotonic clocks may differ between time namespaces).
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Added to a waiter's sleep cap: the writer reads its clock after its commit is visible, so the
/// commit precedes the deadline; the slack covers clocks of different cores disagreeing slightly.
const CAP_SLACK: Duration = Duration::from_micros(10);

/// How long a waiter may sleep before a coalescing writer's window ends, when one is open:
/// `None` when there is no deadline ahead, or it is implausibly far (a clock that jumped back).
pub(crate) fn sleep_cap(deadline: u64, now: u64) -> Option<Duration> {
    let ahead = deadline.checked_sub(now).filter(|&a| a > 0)?;
    (ahead <= crate::format::MAX_WAKE_WINDOW_NS).then(|| Duration::from_nanos(ahead) + CAP_SLACK)
}

/// When a blocked wait last probed the writer's liveness (or began to wait, if it has not yet),
/// so probes stay at most one per interval across the consecutive waits of one [`Updates`], and a
/// wait that does not block long makes no system call at all.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Liveness {
    last_probe: Instant,
}

impl Liveness {
    /// A schedule whose first probe is due one interval from now.
    pub(crate) fn new() -> Self {
        Liveness {
            last_probe: Instant::now(),
        }
    }

    /// Whether a probe is due at `now`, probing at most once per `every`.
    pub(crate) fn due(&self, now: Instant, every: Duration) -> bool {
        now.saturating_duration_since(self.last_probe) >= every
    }

    /// Records a probe made at `now`.
    pub(crate) fn probed(&mut self, now: Instant) {
        self.last_probe = now;
    }

    /// How long from `now` until the next probe is due.
    pub(crate) fn until_due(&self, now: Instant, every: Duration) -> Duration {
        (self.last_probe + every).saturating_duration_since(now)
    }
}

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
///   [`next_timeout`](Self::next_timeout) does the same for one wait without changing the setting.
/// - When the writer is gone (no process holds the file; found within the reader's liveness
///   interval, 100 ms by default), `next` yields `Err(Error::WriterGone)` once, after any commit
///   the writer made before it died, and then `None` for good. Create a new iterator (with
///   [`last_version`](Self::last_version)) to follow a writer that is restarted.
/// - A version that cannot be read (`Error::Contended`, `Error::InvalidValue`) is yielded as an
///   error and the iterator goes on (after an invalid value, with the next commit); the versions
///   it failed to read count as skipped in the next item.
pub struct Updates<'r, T: MappedState> {
    reader: &'r Reader<T>,
    last: u64,
    /// A version whose value failed to decode: the next wait is for a newer one.
    invalid: u64,
    timeout: Option<Duration>,
    live: Liveness,
    gone: bool,
}

impl<T: MappedState> fmt::Debug for Updates<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Updates")
            .field("path", &self.reader.path())
            .field("last_version", &self.last)
            .field("timeout", &self.timeout)
            .field("gone", &self.gone)
            .finish()
    }
}

impl<'r, T: MappedState> Updates<'r, T> {
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

impl<T: MappedState> Iterator for Updates<'_, T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn a_window_skips_only_commits_inside_it() {
        let (d, w) = (1_000_100, 100);
        assert!(inside_window(1_000_000, d, w));
        assert!(inside_window(1_000_099, d, w));
        assert!(!inside_window(1_000_100, d, w), "the window has ended");
        assert!(!inside_window(999_999, d, w), "clock went back: wake");
        assert!(!inside_window(5, 0, w), "no window opened yet");
        assert!(!inside_window(u64::MAX, u64::MAX, 0), "an empty window");
    }

    #[test]
    fn waiters_cap_sleep_only_at_a_plausible_deadline() {
        assert_eq!(sleep_cap(0, 1_000), None);
        assert_eq!(sleep_cap(1_000, 1_000), None);
        assert_eq!(
            sleep_cap(1_500, 1_000),
            Some(Duration::from_nanos(500) + CAP_SLACK)
        );
        let far = 1_000 + crate::format::MAX_WAKE_WINDOW_NS + 1;
        assert_eq!(sleep_cap(far, 1_000), None, "beyond the 1 s window limit");
    }

    #[test]
    fn coalesce_windows_are_capped_at_one_second() {
        assert_eq!(WakePolicy::EveryCommit.window_ns(), None);
        assert_eq!(WakePolicy::default().window_ns(), Some(100_000));
        assert_eq!(
            WakePolicy::Coalesce(Duration::from_secs(5)).window_ns(),
            Some(crate::format::MAX_WAKE_WINDOW_NS)
        );
    }

    #[test]
    fn liveness_probes_at_most_once_per_interval() {
        let mut live = Liveness::new();
        let t0 = Instant::now();
        let every = Duration::from_millis(100);
        assert!(!live.due(t0, every), "the first probe is one interval away");
        assert!(live.due(t0 + every, every));
        live.probed(t0 + every);
        assert!(!live.due(t0 + Duration::from_millis(199), every));
        assert_eq!(
            live.until_due(t0 + Duration::from_millis(140), every),
            Duration::from_millis(60)
        );
        assert_eq!(
            live.until_due(t0 + Duration::from_millis(300), every),
            Duration::ZERO
        );
        assert!(live.due(t0 + 2 * every, every));
    }

    #[test]
    fn polling_fallback_returns_on_change_and_on_timeout() {
        let word = AtomicU32::new(7);
        let t = Instant::now();
        crate::os::poll_wait(&word, 7, Duration::from_millis(30));
        assert!(
            t.elapsed() >= Duration::from_millis(30),
            "no change: waits the whole timeout"
        );
        crate::os::poll_wait(&word, 6, Duration::from_secs(60));
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                word.store(8, Ordering::Relaxed);
            });
            // Returns once the store lands (at most one nap later); the minute is never waited.
            crate::os::poll_wait(&word, 7, Duration::from_secs(60));
            assert_eq!(word.load(Ordering::Relaxed), 8);
        });
    }
}
