//! The protocol core: a seqcount latch (Linux `seqcount_latch`) over two copies of the payload.
//!
//! Generic over where its words live — the mapping, a heap buffer in unit tests, loom's atomics
//! in the model (`tests/loom.rs`) — because it only ever sees `&AtomicU64`s.
//!
//! Encoding: `seq` counts half-commits. A commit of value `v` takes `seq` from `s` to `s + 2`;
//! while `seq == t`, readers read `copy[t & 1]` and the writer writes `copy[(t & 1) ^ 1]`, so the
//! copy being read is never the one being written. After a complete commit both copies hold `v`.
//! The version, `seq >> 1`, counts commits. A writer that dies at any point leaves readers on a
//! complete copy: the new value once `seq` reached `s + 2`, the old one before; `recover` then
//! repairs the other copy (and completes a commit interrupted in its first step as a commit of
//! the unchanged value, so that a version never names two values).
//!
//! Every payload access is a full 8-byte atomic access (`Relaxed`); ordering comes from the
//! fences. A racy plain copy would be undefined behaviour (RFC 3301, Boehm 2012).

use crate::sync::{fence, spin_loop, yield_now, AtomicU64, Ordering};

/// Fault-injection bits for the loom negative controls: each removes one part of the protocol,
/// and the model must then find a torn read. Production code always uses `0`.
pub mod faults {
    /// Writer: no release fence between publishing `seq` and writing the copy.
    pub const NO_WRITE_FENCE: u8 = 1;
    /// Reader: no acquire fence between loading `seq` and loading the words.
    pub const NO_READ_FENCE_BEFORE: u8 = 2;
    /// Reader: no acquire fence between loading the words and re-loading `seq`.
    pub const NO_READ_FENCE_AFTER: u8 = 4;
    /// Reader: accept without re-checking `seq`.
    pub const NO_VALIDATE: u8 = 8;
    /// Writer: write the copy readers are reading (parity ignored).
    pub const WRONG_COPY: u8 = 16;
    /// Recovery: no release fence before repairing the copy readers are not reading.
    pub const NO_RECOVER_FENCE: u8 = 32;
    /// Recovery: leave an odd `seq` odd instead of completing the interrupted commit.
    pub const NO_RECOVER_BUMP: u8 = 64;
}

/// A view of a latch: the sequence word and the two payload copies.
#[derive(Clone, Copy, Debug)]
pub struct Latch<'a> {
    seq: &'a AtomicU64,
    copies: [&'a [AtomicU64]; 2],
}

/// Spins first (a commit takes nanoseconds), then yields so a descheduled writer can finish.
fn backoff(attempt: u32) {
    if attempt < 16 {
        for _ in 0..(1u32 << attempt.min(6)) {
            spin_loop();
        }
    } else {
        yield_now();
    }
}

impl<'a> Latch<'a> {
    /// A latch over `seq` and two copies of equal length.
    pub fn new(seq: &'a AtomicU64, copy0: &'a [AtomicU64], copy1: &'a [AtomicU64]) -> Self {
        assert_eq!(copy0.len(), copy1.len(), "latch copies differ in length");
        Latch {
            seq,
            copies: [copy0, copy1],
        }
    }

    /// Words per copy.
    pub fn words(&self) -> usize {
        self.copies[0].len()
    }

    /// The current sequence value. A `Relaxed` load (valid on a read-only mapping) followed by an
    /// acquire fence, so a caller that sees a new value also sees the control-block stores the
    /// writer made before it (commit time, flags).
    pub fn seq(&self) -> u64 {
        let s = self.seq.load(Ordering::Relaxed);
        // Pairs with the writer's release store of `s`.
        fence(Ordering::Acquire);
        s
    }

    /// One optimistic read of words `first..first + out.len() / 8` into `out` (native byte order).
    /// Returns the sequence value the words belong to, or `None` when a commit overlapped the read
    /// and the words must be discarded. `out.len()` must be a multiple of 8.
    pub fn try_read(&self, first: usize, out: &mut [u8]) -> Option<u64> {
        self.try_read_faulty::<0>(first, out)
    }

    /// `try_read` with protocol parts removed, for the loom negative controls.
    #[doc(hidden)]
    pub fn try_read_faulty<const F: u8>(&self, first: usize, out: &mut [u8]) -> Option<u64> {
        // Relaxed: ordering against the copy's words comes from the fence below.
        let s1 = self.seq.load(Ordering::Relaxed);
        if F & faults::NO_READ_FENCE_BEFORE == 0 {
            // Pairs with the writer's `seq.store(t, Release)` of `s1`: every word written into
            // `copy[s1 & 1]` before that store is visible to the loads below.
            fence(Ordering::Acquire);
        }
        let copy = self.copies[(s1 & 1) as usize];
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            // Relaxed: a racing store may be seen; the validation below discards such a read.
            chunk.copy_from_slice(&copy[first + i].load(Ordering::Relaxed).to_ne_bytes());
        }
        if F & faults::NO_READ_FENCE_AFTER == 0 {
            // Pairs with the writer's release fence: if any load above saw a word stored after
            // `seq` moved past `s1`, the re-load of `seq` below sees that move.
            fence(Ordering::Acquire);
        }
        if F & faults::NO_VALIDATE != 0 {
            return Some(s1);
        }
        (self.seq.load(Ordering::Relaxed) == s1).then_some(s1)
    }

    /// Reads words as `try_read` does, retrying with backoff up to `max_attempts` times.
    /// On success returns the sequence value; on failure the number of attempts made.
    pub fn read(&self, first: usize, out: &mut [u8], max_attempts: u32) -> Result<u64, u32> {
        for attempt in 0..max_attempts {
            if let Some(s) = self.try_read(first, out) {
                return Ok(s);
            }
            backoff(attempt);
        }
        Err(max_attempts)
    }

    /// Reads as `try_read` does until it succeeds. Lock-free, not wait-free: it can only keep
    /// failing while the writer keeps completing commits faster than `out` is copied.
    pub fn read_until_consistent(&self, first: usize, out: &mut [u8]) -> u64 {
        let mut attempt = 0u32;
        loop {
            if let Some(s) = self.try_read(first, out) {
                return s;
            }
            backoff(attempt);
            attempt = attempt.saturating_add(1);
        }
    }

    /// Commits a new value: `write` is called once per copy and stores the words that change
    /// (the same words each time) with `Relaxed` stores. Only the single writer may call this.
    /// Returns the new sequence value.
    pub fn commit(&self, write: impl FnMut(&[AtomicU64])) -> u64 {
        self.commit_faulty::<0>(write)
    }

    /// `commit` with protocol parts removed, for the loom negative controls.
    #[doc(hidden)]
    pub fn commit_faulty<const F: u8>(&self, write: impl FnMut(&[AtomicU64])) -> u64 {
        self.commit_steps::<F>(2, write)
    }

    /// What a writer killed in the middle of `commit` leaves behind: only the first `halves`
    /// (0, 1 or 2) of its two steps run, and `write` may store only some of the words in the
    /// last one. For the loom model of recovery; returns the sequence value left in the file.
    #[doc(hidden)]
    pub fn commit_interrupted(&self, halves: usize, write: impl FnMut(&[AtomicU64])) -> u64 {
        self.commit_steps::<0>(halves.min(2), write)
    }

    fn commit_steps<const F: u8>(&self, halves: usize, mut write: impl FnMut(&[AtomicU64])) -> u64 {
        // Relaxed: only this writer stores `seq`.
        let s = self.seq.load(Ordering::Relaxed);
        for t in [s.wrapping_add(1), s.wrapping_add(2)]
            .into_iter()
            .take(halves)
        {
            // Release: the words written into `copy[t & 1]` in the previous step (or the previous
            // commit) are visible to a reader that loads `t` and then fences.
            self.seq.store(t, Ordering::Release);
            if F & faults::NO_WRITE_FENCE == 0 {
                // Orders the store of `t` before the word stores below: a reader that sees any of
                // them (and fences) also sees `seq == t`, so its validation fails.
                fence(Ordering::Release);
            }
            let target = if F & faults::WRONG_COPY != 0 {
                t & 1
            } else {
                (t & 1) ^ 1
            };
            write(self.copies[target as usize]);
        }
        s.wrapping_add(halves as u64)
    }

    /// After a writer died mid-commit: makes the copy readers are not reading equal to the one
    /// they are, so both hold the last committed value again, and completes an interrupted
    /// commit's version. Only the single writer may call it, before its first commit.
    ///
    /// A writer killed in its first step leaves `seq` odd: readers read the old value, and the
    /// other copy is half-written. Without the bump below, the next commit's first step would
    /// expose the repaired old value at version `(s + 1) >> 1` and its second step the new value
    /// under that same version, so one version would name two values (and a waiter that woke
    /// on the first would miss the second). Bumping `seq` to even makes the interrupted commit
    /// count as a commit of the unchanged value; every commit then starts from an even `seq`.
    pub fn recover(&self) {
        self.recover_faulty::<0>();
    }

    /// `recover` with protocol parts removed, for the loom negative controls.
    #[doc(hidden)]
    pub fn recover_faulty<const F: u8>(&self) {
        // Relaxed: only the writer (us, holding the lock) stores `seq`.
        let s = self.seq.load(Ordering::Relaxed);
        let src = self.copies[(s & 1) as usize];
        let dst = self.copies[((s & 1) ^ 1) as usize];
        if F & faults::NO_RECOVER_FENCE == 0 {
            // As in `commit`: a reader still validating an older `seq` that sees one of the
            // stores below (and fences) must also see `s`, which the dead writer stored before
            // it began writing `dst`; this process's own stores are not ordered after `s` by
            // the dead writer's fence, so we need our own.
            fence(Ordering::Release);
        }
        for (d, w) in dst.iter().zip(src) {
            // Readers read only `src` while `seq == s`; nobody else writes either copy.
            d.store(w.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if s & 1 == 1 && F & faults::NO_RECOVER_BUMP == 0 {
            // Release: a reader that loads `s + 1` reads `dst`, repaired above.
            self.seq.store(s.wrapping_add(1), Ordering::Release);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn heap(words: usize) -> (AtomicU64, Vec<AtomicU64>, Vec<AtomicU64>) {
        let mk = || (0..words).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        (AtomicU64::new(0), mk(), mk())
    }

    #[test]
    fn commit_updates_both_copies_and_counts_versions() {
        let (seq, a, b) = heap(3);
        let latch = Latch::new(&seq, &a, &b);
        for v in 1..=5u64 {
            let s = latch.commit(|copy| {
                for w in copy {
                    w.store(v, Ordering::Relaxed);
                }
            });
            assert_eq!(s, 2 * v);
            let mut out = [0u8; 24];
            assert_eq!(latch.try_read(0, &mut out), Some(2 * v));
            assert!(out.chunks(8).all(|c| c == v.to_ne_bytes()));
            assert!(a.iter().chain(&b).all(|w| w.load(Ordering::Relaxed) == v));
        }
    }

    #[test]
    fn a_read_overlapping_a_commit_is_rejected() {
        let (seq, a, b) = heap(1);
        let latch = Latch::new(&seq, &a, &b);
        // Simulate a commit landing between the two loads of `seq`: the read must be refused.
        seq.store(1, Ordering::Relaxed);
        let mut out = [0u8; 8];
        let s1 = latch.seq();
        seq.store(2, Ordering::Relaxed);
        assert_ne!(latch.try_read(0, &mut out), Some(s1));
        assert_eq!(latch.try_read(0, &mut out), Some(2));
    }

    #[test]
    fn recover_copies_the_readable_copy_over_the_other() {
        let (seq, a, b) = heap(2);
        // A writer died at seq 3 (odd): readers read copy 1, copy 0 is half-written.
        seq.store(3, Ordering::Relaxed);
        b[0].store(7, Ordering::Relaxed);
        b[1].store(7, Ordering::Relaxed);
        a[0].store(9, Ordering::Relaxed);
        let latch = Latch::new(&seq, &a, &b);
        latch.recover();
        assert!(a.iter().all(|w| w.load(Ordering::Relaxed) == 7));
        // The interrupted commit completes as a commit of the unchanged value: readers now
        // read the repaired copy 0 under version 2, and the next commit starts from even.
        let mut out = [0u8; 16];
        assert_eq!(latch.try_read(0, &mut out), Some(4));
        assert!(out.chunks(8).all(|c| c == 7u64.to_ne_bytes()));
        assert_eq!(latch.commit(|c| c[0].store(8, Ordering::Relaxed)), 6);
        assert_eq!(latch.try_read(0, &mut out), Some(6));
        assert_eq!(out[..8], 8u64.to_ne_bytes());
        assert_eq!(out[8..], 7u64.to_ne_bytes());
    }

    #[test]
    fn recover_after_a_death_in_the_second_step_keeps_the_new_value() {
        let (seq, a, b) = heap(2);
        let latch = Latch::new(&seq, &a, &b);
        latch.commit(|c| c.iter().for_each(|w| w.store(1, Ordering::Relaxed)));
        // Killed after `seq` reached 4 with copy 1 half-written: readers already read the new
        // value from copy 0, so recovery must keep it.
        let left = latch.commit_interrupted(2, {
            let mut step = 0;
            move |c: &[AtomicU64]| {
                let n = if step == 0 { c.len() } else { 1 };
                c[..n].iter().for_each(|w| w.store(2, Ordering::Relaxed));
                step += 1;
            }
        });
        assert_eq!(left, 4);
        latch.recover();
        assert_eq!(seq.load(Ordering::Relaxed), 4);
        assert!(a.iter().chain(&b).all(|w| w.load(Ordering::Relaxed) == 2));
    }
}
