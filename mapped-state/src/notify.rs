//! Both sides of waiting for a commit: the writer's wake policy (and the helper thread that
//! wakes waiters during bursts), the reader's blocking wait on the futex word, and the schedule
//! of liveness probes that ends a wait whose writer is gone.
//!
//! # How a wait works
//!
//! A waiter loads the control block's `notify` word, checks the version, and sleeps on `notify`
//! with a shared futex (`FUTEX_WAIT` without `FUTEX_PRIVATE_FLAG`: keyed by the file's page, so
//! it works across processes, on file-backed and tmpfs mappings, from a read-only mapping). A
//! wake bumps `notify` after the commits it announces are visible, so a wake between the check
//! and the sleep makes the sleep return at once. Elsewhere than Linux the waiter polls `notify`
//! with backoff.
//!
//! # How a writer wakes
//!
//! Readers stay read-only: they never announce themselves, so the writer cannot know whether
//! anyone waits, and a `FUTEX_WAKE` costs several hundred nanoseconds even when nobody does —
//! a hundred times a small commit. So under the default policy ([`WakePolicy::Coalesce`]) a
//! writer wakes on a commit at once only when the commit is *isolated*: an occasional update, or
//! one side of a request/response exchange. Once commits come in a burst (three in a row less
//! than [`BURST_GAP`] apart, the previous one's wake having found nobody asleep) the writer
//! stops waking and stops reading the clock, and a helper thread of its process (the *wake
//! keeper*, started on the first burst and parked between bursts) wakes waiters once per period
//! while the commits go on, stamps the commit time, and hands waking back to the writer after a
//! period without commits, or with only a few that someone was waiting for. A commit in a burst
//! costs the writer two loads of a flag its own process keeps.
//!
//! A wake that finds someone asleep is the mark of an exchange: the next commit, however soon
//! it comes (the answer may arrive before the wake call even returns), does not count towards a
//! burst.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::map::Mapping;

/// When commits wake the readers blocked in [`Reader::wait_for_update`](crate::Reader::wait_for_update)
/// or [`Reader::updates`](crate::Reader::updates) (set with
/// [`Writer::set_wake_policy`](crate::Writer::set_wake_policy)).
///
/// Waking is a `FUTEX_WAKE` system call, which the writer pays even when nobody waits (readers
/// cannot tell the writer that they wait: they only read the file).
///
/// `BENCHMARKS.md` has the measured costs: the wake latency of both policies beside a raw shared
/// futex ping-pong, and a publish under each policy with nobody waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WakePolicy {
    /// Wake waiters on every commit: one system call and one clock read per commit.
    EveryCommit,
    /// The default, with a period of [`WakePolicy::DEFAULT_PERIOD`]: an isolated commit (one
    /// that does not follow two others each less than [`BURST_GAP`] apart) wakes waiters at
    /// once, as `EveryCommit` does; the commits of a burst are announced by the writer's wake
    /// keeper thread, at most once per period, so they reach waiters at most one period (plus
    /// the timer's slack) late. The period is capped at 1 s.
    Coalesce(Duration),
}

/// Commits closer together than this are a burst (after three of them in a row), the gap being
/// measured from the end of one commit's wake to the start of the next commit: shorter than any
/// futex round trip, so a request/response exchange never counts as one.
pub const BURST_GAP: Duration = Duration::from_micros(4);

/// How many consecutive short gaps make a burst.
const BURST_AFTER: u8 = 2;

/// Fewest commits a period during a burst in which the keeper woke someone; fewer, and the
/// keeper hands waking back to the writer.
const MIN_BURST_COMMITS: u64 = 4;

/// Longest coalescing period.
const MAX_PERIOD: Duration = Duration::from_secs(1);

impl WakePolicy {
    /// The default period of [`Coalesce`](Self::Coalesce): 100 µs, at most 10,000 wakes a
    /// second during a burst.
    pub const DEFAULT_PERIOD: Duration = Duration::from_micros(100);
}

impl Default for WakePolicy {
    /// `Coalesce(WakePolicy::DEFAULT_PERIOD)`.
    fn default() -> Self {
        WakePolicy::Coalesce(Self::DEFAULT_PERIOD)
    }
}

/// Wall-clock nanoseconds since the Unix epoch: the clock of the commit time, shared by every
/// process on the machine.
pub(crate) fn wall_ns() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // The vDSO clock without `SystemTime`'s conversions: about a third cheaper.
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        u64::try_from(t.tv_sec)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Bumps the futex word and wakes every waiter. Release: a waiter that sees the new value also
/// sees every commit made before it. A read-modify-write because two threads of the writer's
/// process (the writer, its keeper) may wake at the same moment; it is paid next to a system
/// call, never on a commit that does not wake.
fn wake_all(map: &Mapping) -> usize {
    map.notify().fetch_add(1, Ordering::Release);
    crate::os::futex_wake_all(map.notify())
}

/// What the writer and its wake keeper share.
#[derive(Debug)]
struct KeeperState {
    /// The writer is in a burst: it neither wakes nor reads the clock; the keeper does both.
    hot: AtomicBool,
    /// The writer is gone: wake for its last commits and exit.
    stop: AtomicBool,
    /// Wakes the keeper made (for tests).
    wakes: AtomicU64,
}

/// The writer's side of waking: its policy, burst detection and the keeper thread.
#[derive(Debug)]
pub(crate) struct Waker {
    policy: WakePolicy,
    /// Clock at the end of the last commit that woke waiters itself, for burst detection.
    last_ns: u64,
    /// Consecutive commits less than `BURST_GAP` after the previous one.
    short_gaps: u8,
    /// The last wake found someone asleep: the next commit is an answer to it, not a burst.
    woke_someone: bool,
    keeper: Option<Keeper>,
    /// The keeper could not be started: never enter a burst (wake on every commit instead).
    no_keeper: bool,
    /// Wakes the writer made itself (for tests).
    wakes: u64,
}

#[derive(Debug)]
struct Keeper {
    state: Arc<KeeperState>,
    thread: JoinHandle<()>,
}

impl Waker {
    pub(crate) fn new() -> Self {
        Waker {
            policy: WakePolicy::default(),
            last_ns: 0,
            short_gaps: 0,
            woke_someone: false,
            keeper: None,
            no_keeper: false,
            wakes: 0,
        }
    }

    pub(crate) fn policy(&self) -> WakePolicy {
        self.policy
    }

    pub(crate) fn set_policy(&mut self, policy: WakePolicy) {
        let policy = match policy {
            WakePolicy::Coalesce(p) => {
                WakePolicy::Coalesce(p.clamp(Duration::from_micros(1), MAX_PERIOD))
            }
            p => p,
        };
        self.policy = policy;
        if let Some(k) = &self.keeper {
            // A running keeper keeps its period; a new one is started with the new policy.
            k.state.hot.store(false, Ordering::SeqCst);
        }
        if let Some(k) = self.keeper.take() {
            stop_keeper(k);
        }
        self.short_gaps = 0;
    }

    /// Before a commit: stamps the commit time, unless the keeper does it for a burst. Returns
    /// whether the commit must wake waiters itself once it is visible ([`after_commit`]).
    #[inline]
    pub(crate) fn before_commit(&mut self, map: &Arc<Mapping>) -> bool {
        if let Some(k) = &self.keeper {
            // Relaxed: a `true` that is stale by the time the commit is visible is caught by
            // the writer's second look in `after_commit`, or else by the keeper's last look one
            // period after it cleared the flag (see `keeper_loop`). What neither covers is a
            // clearing that reaches the writer only nanoseconds late *and* a commit that stays
            // invisible to the keeper for a whole period after; the memory model allows it, no
            // store buffer does, and a waiter would still learn of the commit at its next
            // liveness probe.
            if k.state.hot.load(Ordering::Relaxed) {
                return false;
            }
        }
        let now = wall_ns();
        // Relaxed: published with the commit by the ring's release store of `seq`.
        map.commit_time().store(now, Ordering::Relaxed);
        if let WakePolicy::Coalesce(period) = self.policy {
            let gap = now.wrapping_sub(self.last_ns);
            // A commit right after a wake that woke someone is the next step of an exchange
            // (the reply came back while our wake call was still returning), not a burst.
            if gap < BURST_GAP.as_nanos() as u64 && !self.woke_someone {
                self.short_gaps = self.short_gaps.saturating_add(1);
                if self.short_gaps >= BURST_AFTER && !self.no_keeper {
                    self.enter_burst(map, period);
                }
            } else {
                self.short_gaps = 0;
            }
        }
        true
    }

    /// After a commit is visible: wakes waiters if `before_commit` said so, or if the burst
    /// ended meanwhile (the writer was descheduled between the two: the keeper may have handed
    /// waking back and parked before this commit became visible).
    #[inline]
    pub(crate) fn after_commit(&mut self, map: &Mapping, wake: bool) {
        let wake = wake
            || self
                .keeper
                .as_ref()
                .is_some_and(|k| !k.state.hot.load(Ordering::Relaxed));
        if wake {
            self.wakes += 1;
            self.woke_someone = wake_all(map) > 0;
            if matches!(self.policy, WakePolicy::Coalesce(_)) {
                // The gap to the next commit is measured from here: what the caller does
                // between commits, not what this commit and its wake cost (which, on a busy
                // machine, can take longer than a burst's gap by themselves).
                self.last_ns = wall_ns();
            }
        }
    }

    /// Hands waking to the keeper, starting it on the first burst.
    #[cold]
    fn enter_burst(&mut self, map: &Arc<Mapping>, period: Duration) {
        if self.keeper.is_none() {
            let state = Arc::new(KeeperState {
                hot: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                wakes: AtomicU64::new(0),
            });
            let (m, s) = (Arc::clone(map), Arc::clone(&state));
            match std::thread::Builder::new()
                .name("mapped-state-wake".into())
                .spawn(move || keeper_loop(&m, &s, period))
            {
                Ok(thread) => self.keeper = Some(Keeper { state, thread }),
                Err(_) => {
                    // No thread: wake on every commit, which is always correct.
                    self.no_keeper = true;
                    return;
                }
            }
        }
        if let Some(k) = &self.keeper {
            // SeqCst, as the keeper's clearing of the flag: one total order of the two.
            k.state.hot.store(true, Ordering::SeqCst);
            k.thread.thread().unpark();
        }
        self.short_gaps = 0;
    }

    /// Wakes made by the writer and its keeper.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes
            + self
                .keeper
                .as_ref()
                .map_or(0, |k| k.state.wakes.load(Ordering::Relaxed))
    }
}

impl Waker {
    /// Stops the keeper (which first announces the last commits of a burst). Idempotent.
    pub(crate) fn stop(&mut self) {
        if let Some(k) = self.keeper.take() {
            stop_keeper(k);
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Tells the keeper to wake for the last commits and exit, and waits for it.
fn stop_keeper(k: Keeper) {
    k.state.stop.store(true, Ordering::Release);
    k.thread.thread().unpark();
    let _ = k.thread.join();
}

/// The wake keeper: while the writer is in a burst, once per period, wakes waiters if a commit
/// was made since its last look (and stamps the commit time, which the writer no longer does);
/// after a period without commits (or with only a few, each answered: an exchange, not a
/// burst), clears the burst flag so the writer wakes for itself again, looks once more a period
/// later (a commit that read the flag just before it was cleared is found then), and parks
/// until the next burst.
fn keeper_loop(map: &Mapping, state: &KeeperState, period: Duration) {
    // The default timer slack (50 µs) would stretch every period by up to that much.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
    let ring = map.ring();
    loop {
        while !state.hot.load(Ordering::SeqCst) {
            if state.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::park();
        }
        // Unknown: commits the writer made in the burst before this thread got to run are not
        // announced yet, so the first look always wakes.
        let mut last: Option<u64> = None;
        loop {
            std::thread::park_timeout(period);
            // Read `stop` before `seq`: the writer sets it after its last commit.
            let stopping = state.stop.load(Ordering::Acquire);
            let seq = ring.seq();
            let mut hand_back = last == Some(seq);
            if last != Some(seq) {
                // Half-steps: two per commit (a first look counts as a full burst).
                let commits = last.map_or(u64::MAX, |l| seq.wrapping_sub(l) / 2);
                last = Some(seq);
                map.commit_time().store(wall_ns(), Ordering::Relaxed);
                state.wakes.fetch_add(1, Ordering::Relaxed);
                let woke = wake_all(map);
                // A few commits a period, each answered (someone was waiting), is no burst: an
                // exchange whose steps the gap test mistook for one, each step now waiting for
                // a period. Hand waking back at once.
                hand_back = commits < MIN_BURST_COMMITS && woke > 0;
            }
            if stopping {
                return;
            }
            if !state.hot.load(Ordering::SeqCst) {
                // Waking was handed back a period ago: this was the last look.
                break;
            }
            if hand_back {
                state.hot.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// When a blocked wait last probed the writer's liveness (or began to wait, if it has not yet),
/// so probes stay at most one per interval across the consecutive waits of one `Updates`, and a
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

/// The futex word, with acquire ordering. A `Relaxed` load and a fence rather than an `Acquire`
/// load: std guarantees only small `Relaxed` loads on read-only memory, which is how readers map
/// the file.
pub(crate) fn notify_acquire(map: &Mapping) -> u32 {
    let v = map.notify().load(Ordering::Relaxed);
    std::sync::atomic::fence(Ordering::Acquire);
    v
}

/// What a blocked wait ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// A version newer than the one waited on.
    Newer(u64),
    /// The time ran out.
    TimedOut,
    /// No writer holds the file and nothing newer was committed.
    Gone,
    /// The file was replaced at its path.
    Superseded,
}

/// Blocks until the version exceeds `since`, `deadline` passes, the writer is found gone (the
/// `alive` probe, run at most once per `every` of blocking), or the file is superseded. Sleeps
/// on the futex word; no system call besides the futex unless a probe is due.
pub(crate) fn wait_newer(
    map: &Mapping,
    since: u64,
    deadline: Option<Instant>,
    every: Duration,
    live: &mut Liveness,
    alive: impl Fn() -> bool,
) -> Woke {
    let ring = map.ring();
    loop {
        // Load the futex word before checking the version: a wake after the check bumps it, so
        // the sleep below returns at once instead of missing the wake.
        let seen = notify_acquire(map);
        let v = ring.version();
        if v > since {
            return Woke::Newer(v);
        }
        if map.flags().load(Ordering::Relaxed) & crate::format::FLAG_SUPERSEDED != 0 {
            return Woke::Superseded;
        }
        let now = Instant::now();
        if live.due(now, every) {
            let is_alive = alive();
            live.probed(now);
            if !is_alive {
                // The writer's lock is dropped only after its last store: re-read, so a final
                // commit is delivered before the verdict.
                let v = ring.version();
                return if v > since {
                    Woke::Newer(v)
                } else {
                    Woke::Gone
                };
            }
        }
        let mut nap = live.until_due(now, every);
        if let Some(d) = deadline {
            match d.checked_duration_since(now) {
                Some(left) if !left.is_zero() => nap = nap.min(left),
                _ => return Woke::TimedOut,
            }
        }
        crate::os::futex_wait(map.notify(), seen, nap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

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
    fn coalescing_periods_are_clamped() {
        let mut w = Waker::new();
        assert_eq!(w.policy(), WakePolicy::Coalesce(WakePolicy::DEFAULT_PERIOD));
        w.set_policy(WakePolicy::Coalesce(Duration::from_secs(5)));
        assert_eq!(w.policy(), WakePolicy::Coalesce(MAX_PERIOD));
        w.set_policy(WakePolicy::Coalesce(Duration::ZERO));
        assert_eq!(w.policy(), WakePolicy::Coalesce(Duration::from_micros(1)));
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
