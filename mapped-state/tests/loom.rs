#![cfg(loom)]
//! Loom model of the latch (`mapped_state::latch`): every interleaving and every weak-memory
//! outcome loom can produce of one writer and concurrent readers, checked for torn reads, plus a
//! writer killed at each point of a commit and the recovery after it. The negative controls
//! remove one part of the protocol each and must be caught.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p mapped-state --test loom --release`
//! (`docs/FORMAT.md`, "Model checking", says what each control shows).

use loom::model::Builder;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use mapped_state::latch::{faults, Latch};

/// Words per payload copy: two are enough for a torn read (one old word, one new).
const WORDS: usize = 2;

/// The latch's memory: what the mapping holds in a real file.
struct Shared {
    seq: AtomicU64,
    copies: [[AtomicU64; WORDS]; 2],
}

impl Shared {
    /// The state after `commits` complete commits of values `1..=commits` (both copies hold
    /// the last one), made before any thread of the model starts. `0` is a freshly created file.
    fn committed(commits: u64) -> Arc<Self> {
        let copy = || std::array::from_fn(|_| AtomicU64::new(commits));
        Arc::new(Shared {
            seq: AtomicU64::new(2 * commits),
            copies: [copy(), copy()],
        })
    }

    fn latch(&self) -> Latch<'_> {
        Latch::new(&self.seq, &self.copies[0], &self.copies[1])
    }
}

/// Stores `v` into every word of `copy`: the payload of commit number `v`.
fn store_all(copy: &[AtomicU64], v: u64) {
    for w in copy {
        w.store(v, Ordering::Relaxed);
    }
}

/// A model bounded to `preemptions` preemptions per execution unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise. Every failure the negative controls below provoke needs only one preemption
/// (they are all found with a bound of 1); the positive models use 2 or 3, as many as keeps the
/// whole file within about a minute on two cores.
fn builder(preemptions: usize) -> Builder {
    let mut b = Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b
}

/// What one reader thread has accepted so far, checked on every accepted read.
struct Observer<E: Fn(u64) -> u64> {
    /// The value every version must hold: `expected(seq >> 1)`, or `None` to check only that
    /// no read mixes words of two commits.
    expected: Option<E>,
    /// The last accepted `(version, value)`.
    last: Option<(u64, u64)>,
}

impl<E: Fn(u64) -> u64> Observer<E> {
    fn new(expected: Option<E>) -> Self {
        Observer {
            expected,
            last: None,
        }
    }

    /// Checks words accepted at sequence value `seq`. A failure message starts with
    /// "torn read" when the accepted bytes are not one committed state of the version reported.
    fn accept(&mut self, seq: u64, bytes: &[u8]) {
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8-byte chunk")))
            .collect();
        assert!(
            words.iter().all(|&w| w == words[0]),
            "torn read: words {words:?} accepted at seq {seq} mix two commits"
        );
        let (version, value) = (seq >> 1, words[0]);
        if let Some(expected) = &self.expected {
            let want = expected(version);
            assert!(
                value == want,
                "torn read: value {value} accepted at seq {seq} belongs to another version \
                 (version {version} holds {want})"
            );
        }
        if let Some((v0, x0)) = self.last {
            assert!(
                version >= v0 && value >= x0,
                "went backwards: version {v0} value {x0}, then version {version} value {value}"
            );
        }
        self.last = Some((version, value));
    }

    /// One snapshot attempt of all words with the (possibly faulty) read protocol.
    fn snapshot<const F: u8>(&mut self, latch: &Latch<'_>) {
        let mut out = [0u8; WORDS * 8];
        if let Some(seq) = latch.try_read_faulty::<F>(0, &mut out) {
            self.accept(seq, &out);
        }
    }

    /// One attempt at reading the last word alone, as a single-field read does.
    fn field(&mut self, latch: &Latch<'_>) {
        let mut out = [0u8; 8];
        if let Some(seq) = latch.try_read(WORDS - 1, &mut out) {
            self.accept(seq, &out);
        }
    }
}

/// Commit `k` stores value `k`: version `v` holds value `v`.
fn identity(v: u64) -> u64 {
    v
}

/// One writer making `commits` commits with write faults `W`, one reader making two attempts
/// with read faults `R` (checking versions too when `versions`). The reader's attempts straddle
/// the commits in every possible way.
fn writer_and_reader<const W: u8, const R: u8>(commits: u64, versions: bool, preemptions: usize) {
    builder(preemptions).check(move || {
        let shared = Shared::committed(0);
        let reader = {
            let shared = shared.clone();
            thread::spawn(move || {
                let latch = shared.latch();
                let mut seen = Observer::new(versions.then_some(identity));
                seen.snapshot::<R>(&latch);
                seen.snapshot::<R>(&latch);
            })
        };
        let latch = shared.latch();
        for v in 1..=commits {
            let seq = latch.commit_faulty::<W>(|copy| store_all(copy, v));
            assert_eq!(seq, 2 * v, "commit {v} left seq {seq}");
        }
        reader.join().unwrap();
    });
}

#[test]
fn a_reader_never_sees_a_torn_or_mislabelled_value() {
    writer_and_reader::<0, 0>(2, true, 3);
}

#[test]
fn two_readers_snapshots_and_field_reads_stay_consistent_and_monotonic() {
    builder(2).check(|| {
        let shared = Shared::committed(0);
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let latch = shared.latch();
                    let mut seen = Observer::new(Some(identity));
                    if i == 0 {
                        seen.snapshot::<0>(&latch);
                        seen.field(&latch);
                    } else {
                        seen.field(&latch);
                        seen.snapshot::<0>(&latch);
                    }
                })
            })
            .collect();
        let latch = shared.latch();
        latch.commit(|copy| store_all(copy, 1));
        for r in readers {
            r.join().unwrap();
        }
    });
}

#[test]
fn a_bounded_read_returns_a_committed_value_or_gives_up() {
    builder(3).check(|| {
        let shared = Shared::committed(0);
        let reader = {
            let shared = shared.clone();
            thread::spawn(move || {
                let latch = shared.latch();
                let mut seen = Observer::new(Some(identity));
                let mut out = [0u8; WORDS * 8];
                match latch.read(0, &mut out, 2) {
                    Ok(seq) => seen.accept(seq, &out),
                    Err(attempts) => assert_eq!(attempts, 2),
                }
            })
        };
        shared.latch().commit(|copy| store_all(copy, 1));
        reader.join().unwrap();
    });
}

/// Value 1 is committed; a writer is killed during the commit of value 2: it ran `halves` of
/// the commit's two steps and stored only `stored` words in the last one. A new writer (another
/// thread, ordered after the dead one as the file lock orders them) recovers with faults `F`
/// (or not at all) and commits value 3, while a reader reads throughout.
fn killed_writer<const F: u8>(halves: usize, stored: usize, recover: bool) {
    builder(2).check(move || {
        let shared = Shared::committed(1);
        let dead = {
            let shared = shared.clone();
            thread::spawn(move || {
                let latch = shared.latch();
                let mut step = 0;
                latch.commit_interrupted(halves, |copy| {
                    step += 1;
                    let n = if step < halves { WORDS } else { stored };
                    store_all(&copy[..n], 2);
                });
            })
        };
        let reader = {
            let shared = shared.clone();
            thread::spawn(move || {
                let latch = shared.latch();
                // Killed in its second step, the dead writer had already published version 2
                // (readers may have read it). Killed in its first, it published nothing: recovery
                // completes version 2 as a commit of the unchanged value 1.
                let mut seen = Observer::new(Some(move |v| match v {
                    2 if halves < 2 => 1,
                    v => v,
                }));
                seen.snapshot::<0>(&latch);
                seen.snapshot::<0>(&latch);
            })
        };
        dead.join().unwrap();
        let latch = shared.latch();
        if recover {
            latch.recover_faulty::<F>();
        }
        let seq = latch.commit(|copy| store_all(copy, 3));
        if recover && F & faults::NO_RECOVER_BUMP == 0 {
            assert_eq!(seq, 6, "the commit after recovery left seq {seq}");
        }
        reader.join().unwrap();
    });
}

#[test]
fn recovery_after_a_writer_killed_at_any_point_of_a_commit() {
    for halves in 1..=2 {
        for stored in 0..=WORDS {
            killed_writer::<0>(halves, stored, true);
        }
    }
}

// Negative controls: each removes one part of the protocol, and the model must find a torn read.

/// Without the writer's release fence, the word stores may become visible before the store of
/// `seq` that announces them, so a reader can see new words and still validate the old `seq`.
#[test]
#[should_panic(expected = "torn read: words")]
fn control_no_write_fence() {
    writer_and_reader::<{ faults::NO_WRITE_FENCE }, 0>(1, false, 1);
}

/// Without the first acquire fence, a reader that loads the new `seq` may still load stale
/// words of the copy it names (written just before that `seq` was stored).
#[test]
#[should_panic(expected = "torn read: words")]
fn control_no_read_fence_before() {
    writer_and_reader::<0, { faults::NO_READ_FENCE_BEFORE }>(1, false, 1);
}

/// Without the second acquire fence, the re-load of `seq` is not ordered after the word loads:
/// it may return the old `seq` although the words were already being overwritten.
#[test]
#[should_panic(expected = "torn read: words")]
fn control_no_read_fence_after() {
    writer_and_reader::<0, { faults::NO_READ_FENCE_AFTER }>(1, false, 1);
}

/// Without the re-check of `seq`, nothing rejects a copy the writer is in the middle of.
#[test]
#[should_panic(expected = "torn read: words")]
fn control_no_validate() {
    writer_and_reader::<0, { faults::NO_VALIDATE }>(1, false, 1);
}

/// Writing the copy readers are reading tears reads that the `seq` check cannot see: `seq`
/// does not change during the stores.
#[test]
#[should_panic(expected = "torn read: words")]
fn control_wrong_copy() {
    writer_and_reader::<{ faults::WRONG_COPY }, 0>(1, false, 1);
}

/// A new writer that skips recovery after a death in the first step commits next into the copy
/// readers will read, which still holds the dead writer's half-written words.
#[test]
#[should_panic(expected = "torn read: words")]
fn control_no_recovery() {
    killed_writer::<0>(1, 1, false);
}

/// Recovery without its release fence: a reader still validating the `seq` before the dead
/// writer's last step can see the repaired words and miss that `seq` moved on.
#[test]
#[should_panic(expected = "torn read: words")]
fn control_no_recover_fence() {
    killed_writer::<{ faults::NO_RECOVER_FENCE }>(2, 1, true);
}

/// Recovery that leaves an odd `seq` odd: the next commit shows the old value and then the new
/// one under the same version.
#[test]
#[should_panic(expected = "torn read: value 3 accepted at seq 5 belongs to another version")]
fn control_no_recover_bump() {
    killed_writer::<{ faults::NO_RECOVER_BUMP }>(1, 1, true);
}
