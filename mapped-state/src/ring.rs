//! The protocol core of format v2: a seqlock over a ring of `N` payload slots.
//!
//! Generic over where its words live — the mapping, a heap buffer in unit tests, loom's atomics
//! in the model (`tests/loom.rs`) — because it only ever sees `&AtomicU64`s.
//!
//! # Encoding
//!
//! `seq` counts half-steps: `seq == 2v` when version `v` is committed and no write is in
//! progress, `seq == 2v + 1` while version `v + 1` is being written. Version `v` lives in slot
//! `v mod N` (`N` a power of two, so `v & (N - 1)`).
//!
//! - **Write** of `v + 1` (the single writer): store `2v + 1` (release), release fence, bring slot
//!   `(v + 1) mod N` up to date with `Relaxed` stores, store `2v + 2` (release).
//! - **Read** of the newest: `s1 = seq` (then an acquire fence), `c = s1 >> 1`, load the words of
//!   slot `c mod N`, acquire fence, `s2 = seq`; accept iff `s2 <= 2(c + N) - 2`. Slot `c mod N`
//!   is next written when the write of version `c + N` begins (`seq = 2(c + N) - 1`); a load that
//!   saw any store of that write forces `s2` to see at least that value (the writer's fence), so
//!   an accepted read holds version `c` whole. A read is disturbed only when the writer laps it
//!   by `N - 1` whole commits.
//! - **History**: version `h` with `c - N < h <= c` is read from slot `h mod N` under the same
//!   rule with `h` for `c`.
//! - **Recovery** after a writer died: an odd `seq` (`2c + 1`) means slot `(c + 1) mod N` is half
//!   written and slot `c mod N` is intact. The new writer completes the interrupted commit as a
//!   commit of the unchanged value: it copies slot `c mod N` over slot `(c + 1) mod N` and stores
//!   `2c + 2`. No reader ever accepted version `c + 1` before (its `seq` never became even), so
//!   one version never names two values, and every other slot still holds the complete version
//!   it was last given (the writer only ever writes the slot of the version in progress), so
//!   history needs no floor: the loom model checks history reads across a kill and recovery.
//!
//! Every payload access is a full 8-byte atomic access (`Relaxed`); ordering comes from the
//! fences. A racy plain copy would be undefined behaviour (RFC 3301, Boehm 2012).

use crate::sync::{fence, spin_loop, yield_now, AtomicU64, Ordering};

/// Fault-injection bits for the loom negative controls: each removes or loosens one part of the
/// protocol, and the model must then find a torn or mislabelled read. Production code passes `0`
/// (the module is public only under `cfg(loom)`, where the model reaches it).
pub mod faults {
    /// Writer: no release fence between publishing the odd `seq` and writing the slot.
    pub const NO_WRITE_FENCE: u16 = 1;
    /// Reader: no acquire fence between loading `seq` and loading the words.
    pub const NO_READ_FENCE_BEFORE: u16 = 2;
    /// Reader: no acquire fence between loading the words and re-loading `seq`.
    pub const NO_READ_FENCE_AFTER: u16 = 4;
    /// Reader: accept without re-checking `seq`.
    pub const NO_VALIDATE: u16 = 8;
    /// Reader: the acceptance rule loosened by one half-step (`s2 <= 2(c + N) - 1`).
    pub const LOOSE_RULE: u16 = 16;
    /// Writer: write version `v + 1` into the slot of version `v` (the one readers read).
    pub const WRONG_SLOT: u16 = 32;
    /// Recovery: no release fence before repairing the interrupted slot.
    pub const NO_RECOVER_FENCE: u16 = 64;
    /// Recovery: roll an odd `seq` back to even instead of completing the commit.
    pub const ROLL_BACK: u16 = 128;
    /// Recovery: complete the commit without repairing the interrupted slot.
    pub const NO_RECOVER_COPY: u16 = 256;
    /// Writer: store the odd `seq` relaxed instead of release.
    pub const RELAXED_ODD_SEQ: u16 = 512;
}

/// Largest slot count a ring may have.
pub const MAX_SLOTS: u64 = 256;

/// Why a version of the history could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Past {
    /// The version is not committed yet (newer than the newest).
    NotYet,
    /// The writer has overwritten (or is overwriting) the version's slot.
    Gone,
}

/// A view of a ring: the sequence word and the slots.
#[derive(Clone, Copy, Debug)]
pub struct Ring<'a> {
    seq: &'a AtomicU64,
    /// `n` slots of `stride` words each; the payload is the first `words` words of a slot.
    slots: &'a [AtomicU64],
    stride: usize,
    words: usize,
    /// Slot count, a power of two in `2..=MAX_SLOTS`.
    n: u64,
}

/// A slice consumer that loads each word (`Relaxed`) and hands `(index, word)` to `sink`.
#[inline(always)]
fn each_word<'a>(mut sink: impl FnMut(usize, u64)) -> impl FnMut(&'a [AtomicU64]) {
    move |words| {
        for (i, w) in words.iter().enumerate() {
            sink(i, w.load(Ordering::Relaxed));
        }
    }
}

/// Spins first (a commit takes nanoseconds), then yields so a descheduled writer can finish.
#[inline]
pub(crate) fn backoff(attempt: u32) {
    if attempt < 16 {
        for _ in 0..(1u32 << attempt.min(6)) {
            spin_loop();
        }
    } else {
        yield_now();
    }
}

#[cfg_attr(not(any(loom, test)), allow(dead_code))]
impl<'a> Ring<'a> {
    /// A ring over `seq` and `slots`: `n` slots (a power of two, `2..=MAX_SLOTS`) of `stride`
    /// words, each holding a payload of `words <= stride` words. Panics when the geometry does
    /// not fit `slots` (callers derive it from a validated header).
    pub fn new(
        seq: &'a AtomicU64,
        slots: &'a [AtomicU64],
        n: u64,
        stride: usize,
        words: usize,
    ) -> Self {
        assert!(
            n.is_power_of_two() && (2..=MAX_SLOTS).contains(&n),
            "slot count {n} is not a power of two in 2..={MAX_SLOTS}"
        );
        assert!(
            words <= stride && (n as usize).checked_mul(stride) == Some(slots.len()),
            "ring geometry does not fit its words"
        );
        Self::from_validated(seq, slots, n, stride, words)
    }

    /// `new` without its checks, for a geometry already validated (the mapping's, checked when
    /// the file was opened): a wrong one can only make slicing panic, never access memory
    /// outside `slots`.
    #[inline]
    pub(crate) fn from_validated(
        seq: &'a AtomicU64,
        slots: &'a [AtomicU64],
        n: u64,
        stride: usize,
        words: usize,
    ) -> Self {
        debug_assert!(n.is_power_of_two() && words <= stride && n as usize * stride == slots.len());
        Ring {
            seq,
            slots,
            stride,
            words,
            n,
        }
    }

    /// Slot count.
    #[inline]
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn slot_count(&self) -> u64 {
        self.n
    }

    /// Words per payload.
    #[inline]
    pub fn words(&self) -> usize {
        self.words
    }

    /// The payload words of the slot holding version `v`.
    #[inline]
    fn slot(&self, v: u64) -> &'a [AtomicU64] {
        let start = (v & (self.n - 1)) as usize * self.stride;
        &self.slots[start..start + self.words]
    }

    /// The current sequence value: a `Relaxed` load (valid on a read-only mapping) and an acquire
    /// fence, so a caller that sees a new value also sees the control-block stores the writer
    /// made before it.
    #[inline]
    pub fn seq(&self) -> u64 {
        let s = self.seq.load(Ordering::Relaxed);
        // Pairs with the writer's release store of `s`.
        fence(Ordering::Acquire);
        s
    }

    /// The newest committed version.
    #[inline]
    pub fn version(&self) -> u64 {
        self.seq() >> 1
    }

    /// One optimistic read of payload words `first..first + len` of the newest version, handing
    /// each `(index from first, word)` to `sink`. Returns the version the words belong to, or
    /// `None` when the writer lapped the read and what `sink` got must be discarded.
    #[inline]
    pub fn try_read(&self, first: usize, len: usize, sink: impl FnMut(usize, u64)) -> Option<u64> {
        self.try_read_faulty::<0>(first, len, each_word(sink))
    }

    /// `try_read`, handing the slot's words `first..first + len` to `copy` as one slice (to load
    /// with `Relaxed` loads in a plain loop, which the compiler keeps tight for a large read).
    #[inline(always)]
    pub fn try_read_slice(
        &self,
        first: usize,
        len: usize,
        copy: impl FnMut(&'a [AtomicU64]),
    ) -> Option<u64> {
        self.try_read_faulty::<0>(first, len, copy)
    }

    /// `try_read` with protocol parts removed, for the loom negative controls.
    #[inline(always)]
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn try_read_faulty<const F: u16>(
        &self,
        first: usize,
        len: usize,
        copy: impl FnMut(&'a [AtomicU64]),
    ) -> Option<u64> {
        // Relaxed: ordering against the slot's words comes from the fence below.
        let s1 = self.seq.load(Ordering::Relaxed);
        if F & faults::NO_READ_FENCE_BEFORE == 0 {
            // Pairs with the writer's release store of `s1` (or of `s1 - 1`'s successor): every
            // word written into slot `c mod N` for version `c` is visible to the loads below.
            fence(Ordering::Acquire);
        }
        let c = s1 >> 1;
        self.load_words::<F>(c, first, len, copy).then_some(c)
    }

    /// Hands words `first..first + len` of version `v`'s slot to `copy`, which loads them
    /// (`Relaxed`: a racing store may be seen; the validation below discards such a read), and
    /// validates what it loaded for version `v`.
    #[inline(always)]
    fn load_words<const F: u16>(
        &self,
        v: u64,
        first: usize,
        len: usize,
        mut copy: impl FnMut(&'a [AtomicU64]),
    ) -> bool {
        copy(&self.slot(v)[first..first + len]);
        if F & faults::NO_READ_FENCE_AFTER == 0 {
            // Pairs with the writer's release fence after its odd `seq` store: if any load above
            // saw a word of a later write into this slot, the re-load below sees that write began.
            fence(Ordering::Acquire);
        }
        if F & faults::NO_VALIDATE != 0 {
            return true;
        }
        let s2 = self.seq.load(Ordering::Relaxed);
        // The slot of `v` is next written by version `v + N`, whose write begins at
        // `seq = 2(v + N) - 1`. Saturating: a hostile file may hold any `seq`.
        let last_ok = (2 * v)
            .saturating_add(2 * self.n - 2)
            .saturating_add(u64::from(F & faults::LOOSE_RULE != 0));
        s2 <= last_ok
    }

    /// Reads version `h` of the history (the newest `N - 1` versions before the current one, and
    /// the current one), handing its words to `sink` as `try_read` does.
    #[inline]
    pub fn try_read_version(
        &self,
        h: u64,
        first: usize,
        len: usize,
        sink: impl FnMut(usize, u64),
    ) -> Result<(), Past> {
        self.try_read_version_faulty::<0>(h, first, len, each_word(sink))
    }

    /// `try_read_version` with protocol parts removed, for the loom negative controls.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn try_read_version_faulty<const F: u16>(
        &self,
        h: u64,
        first: usize,
        len: usize,
        copy: impl FnMut(&'a [AtomicU64]),
    ) -> Result<(), Past> {
        let s1 = self.seq.load(Ordering::Relaxed);
        if F & faults::NO_READ_FENCE_BEFORE == 0 {
            // As in `try_read_faulty`: version `h <= c` was completely written before `s1`.
            fence(Ordering::Acquire);
        }
        let c = s1 >> 1;
        if h > c {
            return Err(Past::NotYet);
        }
        if c - h >= self.n {
            return Err(Past::Gone);
        }
        if self.load_words::<F>(h, first, len, copy) {
            Ok(())
        } else {
            Err(Past::Gone)
        }
    }

    /// Reads words `first..first + len` of the newest version until a read is accepted, with
    /// backoff, at most `max_attempts` times. `Err` holds the attempts made.
    #[inline]
    pub fn read(
        &self,
        first: usize,
        len: usize,
        max_attempts: u32,
        sink: impl FnMut(usize, u64),
    ) -> Result<u64, u32> {
        self.read_slice(first, len, max_attempts, each_word(sink))
    }

    /// `read`, handing the words to `copy` as one slice, as `try_read_slice` does.
    #[inline(always)]
    pub fn read_slice(
        &self,
        first: usize,
        len: usize,
        max_attempts: u32,
        mut copy: impl FnMut(&'a [AtomicU64]),
    ) -> Result<u64, u32> {
        for attempt in 0..max_attempts {
            if let Some(v) = self.try_read_slice(first, len, &mut copy) {
                return Ok(v);
            }
            backoff(attempt);
        }
        Err(max_attempts)
    }

    /// Commits version `(seq >> 1) + 1`, where `seq` is the current (even) value, which only the
    /// single writer stores and so may keep itself: `write` brings the slot of the new version up
    /// to date with `Relaxed` stores. Returns the new `seq`.
    #[inline]
    pub fn commit(&self, seq: u64, write: impl FnOnce(&[AtomicU64])) -> u64 {
        self.commit_faulty::<0>(seq, write)
    }

    /// `commit` with protocol parts removed, for the loom negative controls.
    #[inline]
    pub(crate) fn commit_faulty<const F: u16>(
        &self,
        seq: u64,
        write: impl FnOnce(&[AtomicU64]),
    ) -> u64 {
        self.commit_steps::<F>(seq, 2, write)
    }

    /// What a writer killed in the middle of `commit` leaves behind: only the first `steps`
    /// (0, 1 or 2) of its two `seq` stores run, and `write` (called after the first) may store
    /// only some of the words. For the loom model of recovery; returns the `seq` left behind.
    #[cfg(loom)]
    pub fn commit_interrupted(
        &self,
        seq: u64,
        steps: u32,
        write: impl FnOnce(&[AtomicU64]),
    ) -> u64 {
        self.commit_steps::<0>(seq, steps.min(2), write)
    }

    #[inline]
    fn commit_steps<const F: u16>(
        &self,
        seq: u64,
        steps: u32,
        write: impl FnOnce(&[AtomicU64]),
    ) -> u64 {
        if steps == 0 {
            return seq;
        }
        let v = seq >> 1;
        // Release: a reader that loads `seq + 1` reads version `v`'s slot, whose words were
        // stored before `seq` became `2v`; a relaxed store would not carry that (a later plain
        // store continues no release sequence), so the reader could accept stale words.
        let odd = if F & faults::RELAXED_ODD_SEQ != 0 {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.seq.store(seq + 1, odd);
        if F & faults::NO_WRITE_FENCE == 0 {
            // Orders the odd `seq` before the word stores: a reader that sees any of them (and
            // fences) also sees the write began, so its validation fails.
            fence(Ordering::Release);
        }
        let target = if F & faults::WRONG_SLOT != 0 {
            v
        } else {
            v + 1
        };
        write(self.slot(target));
        if steps == 1 {
            return seq + 1;
        }
        // Release: the slot's words are visible to a reader that loads `seq + 2` and fences.
        self.seq.store(seq + 2, Ordering::Release);
        seq + 2
    }

    /// After a writer died: completes a commit it left half done (odd `seq`) as a commit of the
    /// unchanged value, by copying the newest complete slot over the interrupted one. Only the
    /// single writer may call it, before its first commit. Returns the (even) `seq` to resume
    /// from, and whether a commit was completed.
    pub fn recover(&self) -> (u64, bool) {
        self.recover_faulty::<0>()
    }

    /// `recover` with protocol parts removed, for the loom negative controls.
    pub(crate) fn recover_faulty<const F: u16>(&self) -> (u64, bool) {
        // Relaxed: only the writer (us, holding the lock) stores `seq`.
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 0 {
            return (s, false);
        }
        let c = s >> 1;
        if F & faults::ROLL_BACK != 0 {
            self.seq.store(s - 1, Ordering::Release);
            return (s - 1, false);
        }
        if F & faults::NO_RECOVER_FENCE == 0 {
            // As in `commit`: a reader still reading the interrupted slot under an older `seq`
            // that sees one of the stores below (and fences) must also see `s`. The dead writer's
            // fence does not order *our* stores after `s`, so we need our own.
            fence(Ordering::Release);
        }
        if F & faults::NO_RECOVER_COPY == 0 {
            for (d, w) in self.slot(c + 1).iter().zip(self.slot(c)) {
                // Readers read version `c + 1`'s slot only as an older version, and reject it
                // while `seq` is odd; nobody else writes either slot.
                d.store(w.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        // Release: a reader that loads `s + 1` and reads version `c + 1` sees the repaired slot.
        self.seq.store(s + 1, Ordering::Release);
        (s + 1, true)
    }
}

/// Loom-only entry points to the faulty variants (the model lives in another crate).
#[cfg(loom)]
impl Ring<'_> {
    /// `try_read` with faults `F`.
    pub fn try_read_with<const F: u16>(
        &self,
        first: usize,
        len: usize,
        sink: impl FnMut(usize, u64),
    ) -> Option<u64> {
        self.try_read_faulty::<F>(first, len, each_word(sink))
    }
    /// `try_read_version` with faults `F`.
    pub fn try_read_version_with<const F: u16>(
        &self,
        h: u64,
        first: usize,
        len: usize,
        sink: impl FnMut(usize, u64),
    ) -> Result<(), Past> {
        self.try_read_version_faulty::<F>(h, first, len, each_word(sink))
    }
    /// `commit` with faults `F`.
    pub fn commit_with<const F: u16>(&self, seq: u64, write: impl FnOnce(&[AtomicU64])) -> u64 {
        self.commit_faulty::<F>(seq, write)
    }
    /// `recover` with faults `F`.
    pub fn recover_with<const F: u16>(&self) -> (u64, bool) {
        self.recover_faulty::<F>()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Heap {
        seq: AtomicU64,
        slots: Vec<AtomicU64>,
    }

    fn heap(n: u64, stride: usize) -> Heap {
        Heap {
            seq: AtomicU64::new(0),
            slots: (0..n as usize * stride)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn fill(v: u64) -> impl FnOnce(&[AtomicU64]) {
        move |slot| slot.iter().for_each(|w| w.store(v, Ordering::Relaxed))
    }

    fn read_all(ring: &Ring<'_>) -> Option<(u64, Vec<u64>)> {
        let mut out = vec![0; ring.words()];
        let v = ring.try_read(0, ring.words(), |i, w| out[i] = w)?;
        Some((v, out))
    }

    #[test]
    fn each_commit_writes_the_next_slot_and_counts_versions() {
        let h = heap(4, 3);
        let ring = Ring::new(&h.seq, &h.slots, 4, 3, 2);
        let mut seq = 0;
        for v in 1..=9u64 {
            seq = ring.commit(seq, fill(v));
            assert_eq!(seq, 2 * v);
            assert_eq!(read_all(&ring), Some((v, vec![v, v])));
            // Slot v mod 4 holds v; the stride's spare word is never touched.
            let slot = (v % 4) as usize * 3;
            assert_eq!(h.slots[slot].load(Ordering::Relaxed), v);
            assert_eq!(h.slots[slot + 2].load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn history_holds_the_last_n_versions_and_reports_the_rest_gone() {
        let h = heap(4, 1);
        let ring = Ring::new(&h.seq, &h.slots, 4, 1, 1);
        let mut seq = 0;
        for v in 1..=10u64 {
            seq = ring.commit(seq, fill(100 + v));
        }
        for v in 7..=10u64 {
            let mut got = 0;
            assert_eq!(ring.try_read_version(v, 0, 1, |_, w| got = w), Ok(()));
            assert_eq!(got, 100 + v);
        }
        assert_eq!(ring.try_read_version(6, 0, 1, |_, _| ()), Err(Past::Gone));
        assert_eq!(
            ring.try_read_version(11, 0, 1, |_, _| ()),
            Err(Past::NotYet)
        );
    }

    #[test]
    fn a_read_is_refused_only_once_the_writer_starts_on_its_slot() {
        let h = heap(2, 1);
        let ring = Ring::new(&h.seq, &h.slots, 2, 1, 1);
        // Version 1 in slot 1; a write of version 2 (into slot 0) in progress does not disturb
        // version 1...
        let seq = ring.commit(0, fill(1));
        h.seq.store(seq + 1, Ordering::Relaxed);
        let mut got = 0;
        assert!(ring.load_words::<0>(1, 0, 1, each_word(|_, w| got = w)));
        assert_eq!(got, 1);
        // ...nor does its completion; the write of version 3 (into slot 1) does.
        h.seq.store(seq + 2, Ordering::Relaxed);
        assert!(ring.load_words::<0>(1, 0, 1, each_word(|_, _| ())));
        h.seq.store(seq + 3, Ordering::Relaxed);
        assert!(!ring.load_words::<0>(1, 0, 1, each_word(|_, _| ())));
    }

    #[test]
    fn recovery_completes_an_interrupted_commit_with_the_unchanged_value() {
        let h = heap(4, 2);
        let ring = Ring::new(&h.seq, &h.slots, 4, 2, 2);
        // Version 1 = 7, then killed while writing version 2 into slot 2: one word written.
        let seq = ring.commit(0, fill(7));
        h.seq.store(seq + 1, Ordering::Relaxed);
        h.slots[4].store(99, Ordering::Relaxed);
        assert_eq!(ring.recover(), (seq + 2, true));
        assert_eq!(read_all(&ring), Some((2, vec![7, 7])));
        // Version 1 is still in the history, and an even `seq` needs nothing.
        let mut got = vec![0; 2];
        assert_eq!(ring.try_read_version(1, 0, 2, |i, w| got[i] = w), Ok(()));
        assert_eq!(got, vec![7, 7]);
        assert_eq!(ring.recover(), (seq + 2, false));
    }

    #[test]
    fn hostile_sequence_values_never_panic() {
        let h = heap(2, 1);
        let ring = Ring::new(&h.seq, &h.slots, 2, 1, 1);
        for s in [u64::MAX, u64::MAX - 1, 1 << 63, 3] {
            h.seq.store(s, Ordering::Relaxed);
            let _ = ring.try_read(0, 1, |_, _| ());
            let _ = ring.try_read_version(0, 0, 1, |_, _| ());
            let _ = ring.try_read_version(s >> 1, 0, 1, |_, _| ());
        }
    }
}
