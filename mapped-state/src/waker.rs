//! The process's async waker: one thread that sleeps on the futex words of every file an async
//! task waits on and wakes those tasks (feature `async`, alias `tokio`).
//!
//! # How it works
//!
//! A task that finds nothing new *arms* its [`Slot`] with what it waits for: the futex words it
//! read (each with the value it saw before checking the version, exactly as a blocking wait in
//! `notify.rs` does), a time to wake up at (the next liveness probe, a quiet period, a deadline)
//! and its `Waker`. The waker thread compares each armed word with the value its task saw and
//! wakes the task as soon as one differs or its time has come; otherwise it sleeps in one
//! `futex_waitv` (Linux 5.16 and later) on every distinct word armed plus a private control
//! word of its own, which an arming task bumps so that the thread re-reads the list, until the
//! earliest wake-up time. A commit's wake therefore reaches the task within one `futex_waitv`
//! round trip, and a wake between a task's check and the thread's sleep is never lost: the word
//! then differs from the value the task saw.
//!
//! The thread only loads the words (readers stay read-only: the writer's wake in `notify.rs`
//! is all it needs), keeps the mappings it sleeps on alive while it sleeps on them, and never
//! runs task code: it calls `Waker::wake` with no lock held.
//!
//! # Lifetime
//!
//! The thread is started by the first slot (a task's first wait that found nothing new) and
//! exits when the last slot is dropped (the stream or future that owned it is dropped or
//! completed), so a process that stops waiting has no thread left. While slots exist but none
//! is armed it sleeps on its control word only.
//!
//! # Fallbacks
//!
//! - More armed files than one `futex_waitv` takes (127 besides the control word): the rest
//!   are looked at every [`OVERFLOW_POLL`].
//! - No `futex_waitv` (kernels before 5.16, other systems): the thread sleeps on the first
//!   armed word alone for at most [`FALLBACK_NAP`], so a commit to any other armed file, or a
//!   newly armed slot, is noticed within that nap.
//! - No thread can be started: an armed task is woken at once, and so polls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::map::Mapping;

use crate::os::{FALLBACK_NAP, OVERFLOW_POLL};

/// Longest sleep with nothing due (a formality: any change of the list bumps the control word).
const IDLE_NAP: Duration = Duration::from_secs(3600);

/// What one armed slot waits for.
struct Armed {
    /// Each file's mapping and the value of its futex word the task saw.
    words: Vec<(Arc<Mapping>, u32)>,
    until: Option<Instant>,
    waker: Waker,
}

#[derive(Default)]
struct State {
    armed: HashMap<u64, Armed>,
    /// Slots alive (armed or not): the thread runs while there is one.
    slots: usize,
    next_id: u64,
    running: bool,
}

/// The process-wide waker: its control word and what is armed.
struct Hub {
    /// Bumped (and woken, process-privately) after every change of what is armed.
    control: AtomicU32,
    state: Mutex<State>,
}

static HUB: OnceLock<Hub> = OnceLock::new();

/// Waker threads running (0 or 1), for tests.
static THREADS: AtomicUsize = AtomicUsize::new(0);

fn hub() -> &'static Hub {
    HUB.get_or_init(|| Hub {
        control: AtomicU32::new(0),
        state: Mutex::new(State::default()),
    })
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing run under the lock can panic half-way through an update of `State`.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the thread re-read what is armed.
    fn poke(&self) {
        self.control.fetch_add(1, Ordering::Release);
        crate::os::futex_wake_private(&self.control);
    }

    /// Starts the thread unless it runs. Called with the lock held.
    fn ensure_thread(&'static self, st: &mut State) -> bool {
        if st.running {
            return true;
        }
        THREADS.fetch_add(1, Ordering::SeqCst);
        match std::thread::Builder::new()
            .name("mapped-state-async".into())
            .spawn(move || self.run())
        {
            Ok(_) => {
                st.running = true;
                true
            }
            Err(_) => {
                THREADS.fetch_sub(1, Ordering::SeqCst);
                false
            }
        }
    }

    /// The thread: wake the tasks whose word changed or whose time came, sleep on the rest.
    fn run(&self) {
        // The default timer slack (50 µs) would make every timed wake-up that much late.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
        // Taken out under the lock, woken and dropped after it: a waker's `wake` or drop may
        // run executor code, which may drop a slot (and so take the lock).
        let mut fire: Vec<Armed> = Vec::new();
        // The mappings slept on, kept mapped until the sleep ends, and the values expected.
        let mut keep: Vec<Arc<Mapping>> = Vec::new();
        let mut vals: Vec<u32> = Vec::new();
        loop {
            // Before reading the list: an arming after this bumps the word, so the sleep below
            // returns at once rather than missing it.
            let control_seen = self.control.load(Ordering::Acquire);
            keep.clear();
            vals.clear();
            let mut next: Option<Instant> = None;
            {
                let mut st = self.lock();
                if st.slots == 0 {
                    st.running = false;
                    THREADS.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                let now = Instant::now();
                fire.extend(
                    st.armed
                        .extract_if(|_, a| {
                            let changed = a
                                .words
                                .iter()
                                .any(|(m, seen)| m.notify().load(Ordering::Relaxed) != *seen);
                            changed || a.until.is_some_and(|u| u <= now)
                        })
                        .map(|(_, a)| a),
                );
                for a in st.armed.values() {
                    if let Some(u) = a.until {
                        next = Some(next.map_or(u, |n| n.min(u)));
                    }
                    for (m, seen) in &a.words {
                        // Every slot armed on a word saw its current value (else it fired).
                        if !keep.iter().any(|k| Arc::ptr_eq(k, m)) {
                            keep.push(Arc::clone(m));
                            vals.push(*seen);
                        }
                    }
                }
            }
            for a in fire.drain(..) {
                a.waker.wake();
            }
            let mut nap = next.map_or(IDLE_NAP, |n| n.saturating_duration_since(Instant::now()));
            let room = crate::os::WAITV_MAX - 1;
            if keep.len() > room {
                nap = nap.min(OVERFLOW_POLL);
            }
            let mut list: Vec<(&AtomicU32, u32, bool)> = keep
                .iter()
                .zip(&vals)
                .take(room)
                .map(|(m, &v)| (m.notify(), v, false))
                .collect();
            list.push((&self.control, control_seen, true));
            if !crate::os::futex_wait_any(&list, nap) {
                match keep.first() {
                    None => crate::os::futex_wait_private(&self.control, control_seen, nap),
                    Some(m) => crate::os::futex_wait(m.notify(), vals[0], nap.min(FALLBACK_NAP)),
                }
            }
        }
    }
}

/// One waiting task's registration with the waker thread: alive while the stream or future
/// that owns it is; armed while its task waits. Dropping it disarms it and, if it was the last
/// slot, stops the thread.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
}

impl Slot {
    /// Registers a slot, starting the thread if it is not running.
    pub(crate) fn new() -> Slot {
        let hub = hub();
        let mut st = hub.lock();
        st.slots += 1;
        st.next_id += 1;
        let id = st.next_id;
        hub.ensure_thread(&mut st);
        Slot { id }
    }

    /// Wakes `waker` once one of `words` (mapping, value its task saw) differs from what the
    /// task saw, or at `until`. Replaces what the slot was armed with.
    pub(crate) fn arm(
        &self,
        words: &[(&Arc<Mapping>, u32)],
        until: Option<Instant>,
        waker: &Waker,
    ) {
        let hub = hub();
        let mut st = hub.lock();
        if let Some(a) = st.armed.get(&self.id) {
            let same = a.until == until
                && a.words.len() == words.len()
                && a.words
                    .iter()
                    .zip(words)
                    .all(|((m, s), (n, t))| Arc::ptr_eq(m, n) && s == t)
                && a.waker.will_wake(waker);
            if same {
                // A spurious poll: the thread already watches exactly this.
                return;
            }
        }
        if !hub.ensure_thread(&mut st) {
            // No thread to wake the task: let it poll.
            drop(st);
            waker.wake_by_ref();
            return;
        }
        let old = st.armed.insert(
            self.id,
            Armed {
                words: words.iter().map(|&(m, s)| (Arc::clone(m), s)).collect(),
                until,
                waker: waker.clone(),
            },
        );
        drop(st);
        // Dropped without the lock (see `run`).
        drop(old);
        hub.poke();
    }

    /// Stops waking the task (it found what it waited for, or stopped waiting).
    pub(crate) fn disarm(&self) {
        let old = hub().lock().armed.remove(&self.id);
        // Dropped without the lock (see `run`).
        drop(old);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let hub = hub();
        let mut st = hub.lock();
        let old = st.armed.remove(&self.id);
        st.slots -= 1;
        drop(st);
        drop(old);
        // The thread re-reads the list: it lets go of mappings this slot's task no longer
        // needs, and exits if no slot is left.
        hub.poke();
    }
}

/// How many waker threads run (0 or 1): a test hook.
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
pub(crate) fn threads() -> usize {
    THREADS.load(Ordering::SeqCst)
}
