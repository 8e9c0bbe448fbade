#![cfg(loom)]
//! Loom model of the ring (`mapped_state::ring`): every interleaving and every weak-memory
//! outcome loom can produce of one writer and concurrent readers of the newest version and of
//! the history, checked for torn and mislabelled reads, plus a writer killed at each point of a
//! commit and the recovery after it. The negative controls remove or loosen one part of the
//! protocol each (`ring::faults`) and must be caught: each runs a model with its fault under
//! `catch_unwind` and asserts that it panicked with the expected kind of bad read.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p mapped-state --test loom --release`
//! (`LOOM_MAX_PREEMPTIONS` overrides every model's preemption bound; the bounds below keep the
//! whole file within about two minutes on two cores).
//!
//! Every payload is `WORDS` words, and every word of version `v` holds the version's value:
//! `v` itself, except where a recovery completed an interrupted commit as a commit of the
//! unchanged value. So a read mixing two commits shows as words that differ ("torn read"), and
//! a read of the wrong version as a value that is not the version's ("mislabelled read").

use std::panic::{self, AssertUnwindSafe};

use loom::model::Builder;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use mapped_state::ring::{faults, Past, Ring};

/// Words per payload (and per slot): two are enough for a torn read (one old word, one new).
const WORDS: usize = 2;

/// The ring's memory: what the mapping holds in a real file.
struct Shared {
    seq: AtomicU64,
    slots: Vec<AtomicU64>,
    n: u64,
}

impl Shared {
    /// A ring of `n` slots after versions `1..=c` were committed with value `v` each, made
    /// before any thread of the model starts: `seq == 2c`, and each slot holds the newest
    /// version `<= c` that lives in it (a slot no version reached yet holds version 0's `0`).
    fn committed(n: u64, c: u64) -> Arc<Self> {
        let slots = (0..n * WORDS as u64)
            .map(|i| {
                let k = i / WORDS as u64;
                AtomicU64::new(if k <= c { c - (c - k) % n } else { 0 })
            })
            .collect();
        Arc::new(Shared {
            seq: AtomicU64::new(2 * c),
            slots,
            n,
        })
    }

    fn ring(&self) -> Ring<'_> {
        Ring::new(&self.seq, &self.slots, self.n, WORDS, WORDS)
    }
}

/// Stores `value` into every word of `words`.
fn fill(words: &[AtomicU64], value: u64) {
    for w in words {
        w.store(value, Ordering::Relaxed);
    }
}

/// Commits versions `from..=to` (value = version) as the single writer with write faults `W`,
/// starting from `seq == 2(from - 1)`.
fn commit_range<const W: u16>(ring: &Ring<'_>, from: u64, to: u64) {
    let mut seq = 2 * (from - 1);
    for v in from..=to {
        seq = ring.commit_with::<W>(seq, |slot| fill(slot, v));
        assert_eq!(seq, 2 * v, "commit of version {v} left seq {seq}");
    }
}

/// A model bounded to `preemptions` preemptions per execution unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise. Every failure the negative controls provoke is found with a bound of 1 (a
/// weak-memory outcome needs no preemption, only a stale load); the positive models use as
/// many as keeps the whole file within about two minutes on two cores.
fn builder(preemptions: usize) -> Builder {
    let mut b = Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b
}

/// One read a reader thread makes.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `try_read` of all words of the newest version.
    Newest,
    /// `try_read` of the last word alone, as a single-field read does.
    Field,
    /// `try_read_version` of version `h`, all words.
    Version(u64),
}

/// What one reader thread has accepted so far, checked on every accepted read. Failure
/// messages start with "torn read" (the words mix two commits), "mislabelled read" (the value
/// is not the one of the version reported), "two values" (one version read as two values) or
/// "went backwards" (a version older than one already read, or a version lost again).
struct Observer<E: Fn(u64) -> u64> {
    /// The value every word of version `v` holds: `expected(v)`.
    expected: E,
    /// The last accepted newest `(version, value)`.
    newest: Option<(u64, u64)>,
    /// Every accepted `(version, value)`, newest or history.
    seen: Vec<(u64, u64)>,
    /// The newest version this reader knows is committed (from any accepted read, or committed
    /// before it started).
    floor: u64,
    /// Versions reported `Past::Gone`.
    gone: Vec<u64>,
}

impl<E: Fn(u64) -> u64> Observer<E> {
    /// An observer of a ring on which version `committed` was committed before the reader
    /// started.
    fn new(expected: E, committed: u64) -> Self {
        Observer {
            expected,
            newest: None,
            seen: Vec::new(),
            floor: committed,
            gone: Vec::new(),
        }
    }

    /// Checks `words` (the payload words `first..first + words.len()`) accepted as `version`.
    fn check(&mut self, what: &str, version: u64, words: &[u64]) {
        assert!(
            words.iter().all(|&w| w == words[0]),
            "torn read: {what} of version {version} accepted words {words:?}, which mix two commits"
        );
        let (value, want) = (words[0], (self.expected)(version));
        assert!(
            value == want,
            "mislabelled read: {what} of version {version} accepted value {value}, but version \
             {version} holds {want}"
        );
        if let Some(&(_, before)) = self.seen.iter().find(|&&(v, _)| v == version) {
            assert!(
                before == value,
                "two values: version {version} was read as {before} and then as {value}"
            );
        }
        self.seen.push((version, value));
        self.floor = self.floor.max(version);
    }

    fn run<const F: u16>(&mut self, ring: &Ring<'_>, op: Op) {
        match op {
            Op::Newest => self.newest::<F>(ring, 0, WORDS),
            Op::Field => self.newest::<F>(ring, WORDS - 1, 1),
            Op::Version(h) => self.version::<F>(ring, h),
        }
    }

    /// One attempt at reading words `first..first + len` of the newest version with read
    /// faults `F`.
    fn newest<const F: u16>(&mut self, ring: &Ring<'_>, first: usize, len: usize) {
        let mut out = [0u64; WORDS];
        let Some(version) = ring.try_read_with::<F>(first, len, |i, w| out[i] = w) else {
            return;
        };
        let floor = self.floor;
        self.check("newest read", version, &out[..len]);
        assert!(
            version >= floor,
            "went backwards: newest read returned version {version} after version {floor} was read"
        );
        let value = out[0];
        if let Some((v0, x0)) = self.newest {
            assert!(
                version >= v0 && value >= x0,
                "went backwards: version {v0} value {x0}, then version {version} value {value}"
            );
        }
        self.newest = Some((version, value));
    }

    /// One attempt at reading all words of version `h` of the history with read faults `F`.
    fn version<const F: u16>(&mut self, ring: &Ring<'_>, h: u64) {
        let mut out = [0u64; WORDS];
        match ring.try_read_version_with::<F>(h, 0, WORDS, |i, w| out[i] = w) {
            Ok(()) => {
                self.check("history read", h, &out);
                assert!(
                    !self.gone.contains(&h),
                    "went backwards: version {h} was reported gone, then read"
                );
            }
            Err(Past::NotYet) => assert!(
                h > self.floor,
                "went backwards: version {h} not yet committed after version {} was read",
                self.floor
            ),
            Err(Past::Gone) => self.gone.push(h),
        }
    }
}

/// The start of a failure message for a read mixing two commits.
const TORN: &str = "torn read";
/// The start of a failure message for a read of another version's value.
const MISLABELLED: &str = "mislabelled read";

/// Runs `model` (a loom model that must fail) and asserts that it panicked with a message
/// starting with `expected`, so a control fails for the reason it is meant to and not for
/// another (a bookkeeping assertion, loom's own limits).
fn caught(expected: &str, model: impl FnOnce()) {
    let payload = panic::catch_unwind(AssertUnwindSafe(model))
        .expect_err("the model passed: the fault went unnoticed");
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("<not a string>");
    assert!(
        message.starts_with(expected),
        "the model failed, but not with {expected:?}: {message}"
    );
}

/// One writer, starting from `Shared::committed(n, 0)`, commits versions `1..=commits` with
/// write faults `W`, while one reader per entry of `readers` makes that entry's reads with read
/// faults `R`.
fn newest_model<const W: u16, const R: u16>(
    n: u64,
    commits: u64,
    readers: &'static [&'static [Op]],
    preemptions: usize,
) {
    builder(preemptions).check(move || {
        let shared = Shared::committed(n, 0);
        let readers: Vec<_> = readers
            .iter()
            .map(|&ops| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let ring = shared.ring();
                    let mut seen = Observer::new(|v| v, 0);
                    for &op in ops {
                        seen.run::<R>(&ring, op);
                    }
                })
            })
            .collect();
        commit_range::<W>(&shared.ring(), 1, commits);
        for r in readers {
            r.join().unwrap();
        }
    });
}

/// One writer, starting from `Shared::committed(n, c)`, commits versions `c + 1..=c + commits`,
/// while one reader makes the reads `ops` (history, mostly) with read faults `R`.
fn history_model<const R: u16>(
    n: u64,
    c: u64,
    commits: u64,
    ops: &'static [Op],
    preemptions: usize,
) {
    builder(preemptions).check(move || {
        let shared = Shared::committed(n, c);
        let reader = {
            let shared = shared.clone();
            thread::spawn(move || {
                let ring = shared.ring();
                let mut seen = Observer::new(|v| v, c);
                for &op in ops {
                    seen.run::<R>(&ring, op);
                }
            })
        };
        commit_range::<0>(&shared.ring(), c + 1, c + commits);
        reader.join().unwrap();
    });
}

/// On `Shared::committed(n, n - 1)` (slot `k` holds version `k`, `seq == 2(n - 1)`), a writer
/// is killed during the commit of version `n` into slot 0, over version 0: only the first
/// `steps` of its two `seq` stores run, and it stored only the first `stored` words (value `n`).
/// A new writer (another thread, ordered after the dead one as the file lock orders them)
/// recovers with faults `F` and commits one more version, while a reader makes the reads `ops`
/// throughout.
///
/// Version `n` holds value `n` when the dead writer completed it (`steps == 2`) or never began
/// it (`steps == 0`: the new writer commits it); value `n - 1` when recovery completed it as a
/// commit of the unchanged value (`steps == 1`).
fn recovery_model<const F: u16>(
    n: u64,
    steps: u32,
    stored: usize,
    ops: &'static [Op],
    preemptions: usize,
) {
    assert!(
        steps != 2 || stored == WORDS,
        "a commit with both steps wrote all its words"
    );
    builder(preemptions).check(move || {
        let c = n - 1;
        let shared = Shared::committed(n, c);
        let dead = {
            let shared = shared.clone();
            thread::spawn(move || {
                let left = shared
                    .ring()
                    .commit_interrupted(2 * c, steps, |slot| fill(&slot[..stored], n));
                assert_eq!(left, 2 * c + u64::from(steps));
            })
        };
        // Rolling back (the ROLL_BACK control) leaves version `n` to the new writer's commit.
        let completes = steps == 1 && F & faults::ROLL_BACK == 0;
        let reader = {
            let shared = shared.clone();
            thread::spawn(move || {
                let ring = shared.ring();
                let expected = move |v| if v == n && completes { c } else { v };
                let mut seen = Observer::new(expected, c);
                for &op in ops {
                    seen.run::<0>(&ring, op);
                }
            })
        };
        dead.join().unwrap();
        let ring = shared.ring();
        let (seq, completed) = ring.recover_with::<F>();
        if F == 0 {
            assert_eq!(
                (seq, completed),
                (2 * c + if steps == 0 { 0 } else { 2 }, steps == 1),
                "recovery after a writer killed at step {steps}"
            );
        }
        let v = (seq >> 1) + 1;
        let seq = ring.commit(seq, |slot| fill(slot, v));
        assert_eq!(seq, 2 * v);
        reader.join().unwrap();
    });
}

// Positive models.

/// Two snapshot reads, as one reader makes them.
const TWO_NEWEST: &[&[Op]] = &[&[Op::Newest, Op::Newest]];
/// A snapshot read, a single-field read and a snapshot read, as one reader makes them.
const NEWEST_FIELD_NEWEST: &[&[Op]] = &[&[Op::Newest, Op::Field, Op::Newest]];
/// Two readers mixing snapshot and single-field reads.
const TWO_READERS: &[&[Op]] = &[&[Op::Newest, Op::Field], &[Op::Field, Op::Newest]];

/// N = 2, two commits (the second laps the slot a reader of version 0 reads), one reader making
/// a snapshot read, a single-field read and a snapshot read: every accepted read holds words of
/// one commit only, the value of the version returned, and neither goes backwards. Bound 3
/// (bound 4 is about four times slower).
#[test]
fn n2_a_reader_of_the_newest_never_sees_a_torn_or_mislabelled_value() {
    newest_model::<0, 0>(2, 2, NEWEST_FIELD_NEWEST, 3);
}

/// N = 4, four commits (the fourth laps the slot of version 0), one reader making two snapshot
/// reads: as for N = 2, with the three whole commits a read of a 4-slot ring tolerates. Bound 3
/// (bound 4 is about five times slower).
#[test]
fn n4_a_reader_of_the_newest_never_sees_a_torn_or_mislabelled_value() {
    newest_model::<0, 0>(4, 4, TWO_NEWEST, 3);
}

/// N = 2, two commits, two readers, one reading a snapshot then a single field, the other a
/// field then a snapshot: single-word reads are checked as snapshots are, and each reader's
/// versions never go backwards across the two kinds of read. Bound 1 (three threads: bound 2
/// takes minutes; every weak-memory outcome is explored at any bound).
#[test]
fn n2_two_readers_snapshots_and_field_reads_stay_consistent_and_monotonic() {
    newest_model::<0, 0>(2, 2, TWO_READERS, 1);
}

/// The reads of the history model with N = 2: version 0 (lapped by the writer's first commit),
/// version 1, version 2 (not yet committed when the reader starts), then version 0 again.
const HISTORY_N2: &[Op] = &[
    Op::Version(0),
    Op::Version(1),
    Op::Version(2),
    Op::Version(0),
];

/// N = 2, from version 1, two commits while a reader reads versions 0, 1, 2 and 0 again: every
/// `Ok` is exactly version h's value, a version the writer has begun to overwrite is
/// `Err(Past::Gone)` (and stays gone), a version already seen is never `Err(Past::NotYet)`.
/// Bound 3 (bound 4 is about seven times slower).
#[test]
fn n2_history_reads_are_exact_or_gone_while_the_writer_laps_them() {
    history_model::<0>(2, 1, 2, HISTORY_N2, 3);
}

/// The reads of the history model with N = 4: the oldest version of the history (lapped by the
/// writer's first commit), the newest, the next, and the oldest again.
const HISTORY_N4: &[Op] = &[
    Op::Version(0),
    Op::Version(3),
    Op::Version(4),
    Op::Version(0),
];

/// N = 4, from version 3 (all four slots hold a version), two commits while a reader reads the
/// history: as for N = 2. Bound 3 (bound 4 is about five times slower).
#[test]
fn n4_history_reads_are_exact_or_gone_while_the_writer_laps_them() {
    history_model::<0>(4, 3, 2, HISTORY_N4, 3);
}

/// The reads of the recovery model with N = 2: the newest (before, during or after the kill),
/// version 0 (the version whose slot the dead writer was overwriting: still readable before
/// the kill, gone after recovery) and version 2 (completed by the dead writer, or by recovery).
const ACROSS_RECOVERY: &[Op] = &[Op::Newest, Op::Version(0), Op::Version(2)];

/// The recovery model's cases: a writer killed before any `seq` store (`steps == 0`), after
/// the odd one with 0, 1 or all words of the slot stored, and after both.
const KILLS: [(u32, usize); 5] = [(0, 0), (1, 0), (1, 1), (1, WORDS), (2, WORDS)];

/// N = 2: a writer killed at every point of the commit of version 2, then recovery and one more
/// commit by a new writer, with a reader of the newest and of the history throughout: every
/// accepted read is whole and carries its version's value; one version never names two values
/// (version 2 completed by recovery is the unchanged value 1, and nothing else was ever
/// accepted as version 2); version 2 read as the newest before recovery (the dead writer
/// completed it) reads the same from the history after; versions never go backwards; version 0
/// is readable or gone, never torn by the dead writer's or the repair's stores. Bound 2 (a
/// fourth read at bound 2 takes minutes: see the next model).
#[test]
fn n2_recovery_after_a_writer_killed_at_any_point_of_a_commit() {
    for (steps, stored) in KILLS {
        recovery_model::<0>(2, steps, stored, ACROSS_RECOVERY, 2);
    }
}

/// N = 2, four reads across the kill and recovery, adding version 1 (the newest before the
/// kill, read again from the history after recovery: the same value). As above, at bound 1
/// (bound 2 takes several minutes).
#[test]
fn n2_recovery_keeps_every_version_read_before_the_kill() {
    const OPS: &[Op] = &[Op::Newest, Op::Version(0), Op::Version(1), Op::Version(2)];
    for (steps, stored) in KILLS {
        recovery_model::<0>(2, steps, stored, OPS, 1);
    }
}

/// N = 4: a writer killed at every point of the commit of version 4 (into slot 0, over version
/// 0, the oldest of the history), with a reader of the newest, of version 0, of version 4 and
/// of version 1 (three commits old, untouched by the kill and the repair): as for N = 2. Bound 1.
#[test]
fn n4_recovery_after_a_writer_killed_at_any_point_of_a_commit() {
    const OPS: &[Op] = &[Op::Newest, Op::Version(0), Op::Version(4), Op::Version(1)];
    for (steps, stored) in KILLS {
        recovery_model::<0>(4, steps, stored, OPS, 1);
    }
}

// Negative controls: each removes or loosens one part of the protocol (one bit of
// `ring::faults`), and the model must find a bad read. Each runs a positive model above with
// the fault at bound 1 (the positive model passes at a higher bound), so the fault is all that
// differs from a model that passes.

/// Without the writer's release fence, the word stores of version 2 into slot 0 may become
/// visible before the odd `seq` that announces them, so a reader of version 0 can see a new
/// word and still validate against an old `seq`.
#[test]
fn control_no_write_fence() {
    caught(TORN, || {
        newest_model::<{ faults::NO_WRITE_FENCE }, 0>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// With the odd `seq` stored relaxed, a reader that loads it synchronises with nothing that
/// stored the words of the version it names (a plain store continues no release sequence): it
/// may accept version 1 holding version 0's words.
#[test]
fn control_relaxed_odd_seq() {
    caught(MISLABELLED, || {
        newest_model::<{ faults::RELAXED_ODD_SEQ }, 0>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// Without the first acquire fence, a reader that loads the new `seq` may still load stale
/// words of the slot it names (written just before that `seq` was stored): version 1 read as
/// version 0's value.
#[test]
fn control_no_read_fence_before() {
    caught(MISLABELLED, || {
        newest_model::<0, { faults::NO_READ_FENCE_BEFORE }>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// Without the second acquire fence, the re-load of `seq` is not ordered after the word loads:
/// it may return an old `seq` although a word was already overwritten by a lapping commit.
#[test]
fn control_no_read_fence_after() {
    caught(TORN, || {
        newest_model::<0, { faults::NO_READ_FENCE_AFTER }>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// Without the re-check of `seq`, nothing rejects a slot the writer is overwriting.
#[test]
fn control_no_validate() {
    caught(TORN, || {
        newest_model::<0, { faults::NO_VALIDATE }>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// The acceptance rule loosened by one half-step (`s2 <= 2(c + N) - 1`): a reader loads
/// `s1 = 0` (version 0, slot 0), the writer commits version 1 and begins version 2 into slot 0
/// (`seq = 3 = 2(0 + 2) - 1`) and stores one word; the reader sees that word and `s2 = 3`, which
/// the loose rule accepts. (It takes `N` commits to get there, so the control uses N = 2.)
#[test]
fn control_loose_rule() {
    caught(TORN, || {
        newest_model::<0, { faults::LOOSE_RULE }>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// Writing version `v + 1` into the slot of version `v` tears reads of the newest that the
/// `seq` check cannot see: the rule accepts `seq = 2v + 1` for version `v`.
#[test]
fn control_wrong_slot() {
    caught(TORN, || {
        newest_model::<{ faults::WRONG_SLOT }, 0>(2, 2, NEWEST_FIELD_NEWEST, 1)
    });
}

/// The reader's faults on the history path (`try_read_version`), N = 2: without the first fence
/// version 2 is read as the stale version 0 still in its slot.
#[test]
fn control_history_no_read_fence_before() {
    caught(MISLABELLED, || {
        history_model::<{ faults::NO_READ_FENCE_BEFORE }>(2, 1, 2, HISTORY_N2, 1)
    });
}

/// Without the second fence, version 0 is accepted with a word of version 2 beside it.
#[test]
fn control_history_no_read_fence_after() {
    caught(TORN, || {
        history_model::<{ faults::NO_READ_FENCE_AFTER }>(2, 1, 2, HISTORY_N2, 1)
    });
}

/// Without the re-check, likewise.
#[test]
fn control_history_no_validate() {
    caught(TORN, || {
        history_model::<{ faults::NO_VALIDATE }>(2, 1, 2, HISTORY_N2, 1)
    });
}

/// With the loose rule, version 0 (slot 0) is accepted at `seq = 3`, the write of version 2
/// into slot 0 under way.
#[test]
fn control_history_loose_rule() {
    caught(TORN, || {
        history_model::<{ faults::LOOSE_RULE }>(2, 1, 2, HISTORY_N2, 1)
    });
}

/// Recovery without its release fence: a reader of version 0 (slot 0, the slot being repaired)
/// under the old `seq` can see a repaired word and still validate against `seq == 2`: the dead
/// writer's fence orders its own stores after its odd `seq`, not the new writer's. Caught
/// whatever the dead writer stored.
#[test]
fn control_no_recover_fence() {
    for stored in 0..=WORDS {
        caught(TORN, || {
            recovery_model::<{ faults::NO_RECOVER_FENCE }>(2, 1, stored, ACROSS_RECOVERY, 1)
        });
    }
}

/// Rolling an odd `seq` back to even leaves slot 0 written by the dead writer but still listed
/// as version 0 of the history (`seq == 2`, version 0 within `N` of version 1): a history read
/// of version 0 accepts the dead writer's words beside (or instead of) version 0's. A dead writer
/// that stored no word left slot 0 intact, and rolling back is then harmless (the model
/// passes), so the control covers the other two cases.
#[test]
fn control_roll_back() {
    caught(TORN, || {
        recovery_model::<{ faults::ROLL_BACK }>(2, 1, 1, ACROSS_RECOVERY, 1)
    });
    caught(TORN, || {
        recovery_model::<{ faults::ROLL_BACK }>(2, 1, WORDS, ACROSS_RECOVERY, 1)
    });
    recovery_model::<{ faults::ROLL_BACK }>(2, 1, 0, ACROSS_RECOVERY, 2);
}

/// Completing the interrupted commit without repairing its slot publishes what the dead writer
/// left there as version 2: version 0's words (mislabelled), a mix (torn), or the dead
/// writer's value 2, which no reader could accept before and which is not version 2's value 1.
#[test]
fn control_no_recover_copy() {
    caught(MISLABELLED, || {
        recovery_model::<{ faults::NO_RECOVER_COPY }>(2, 1, 0, ACROSS_RECOVERY, 1)
    });
    caught(TORN, || {
        recovery_model::<{ faults::NO_RECOVER_COPY }>(2, 1, 1, ACROSS_RECOVERY, 1)
    });
    caught(MISLABELLED, || {
        recovery_model::<{ faults::NO_RECOVER_COPY }>(2, 1, WORDS, ACROSS_RECOVERY, 1)
    });
}
