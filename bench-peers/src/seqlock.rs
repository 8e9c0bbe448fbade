//! The hand seqlock: a mapped file holding a sequence word and ONE copy of the payload, read and
//! written word by word with `AtomicU64` (no data race in the Rust memory model), with the fences
//! of crossbeam's `SeqLock` and mapped-state's ring. About as little as a sound seqlock can do,
//! so the benchmark divides every contender's time by this one's.
//!
//! Layout: word 0 is `seq` (odd while a write is under way), the payload starts at byte 64 (its
//! own cache line). The writer keeps its own copy of `seq`, so a commit makes no
//! read-modify-write.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

/// Byte offset of the payload in the file.
const PAYLOAD: usize = 64;

/// A mapping of a seqlock file of `words` payload words.
#[derive(Debug)]
struct Map {
    /// Kept for its pointer: unmapped on drop.
    map: MmapRaw,
    words: usize,
}

impl Map {
    fn new(file: &File, words: usize, writable: bool) -> io::Result<Self> {
        let len = PAYLOAD + words * 8;
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::other("seqlock file shorter than its payload"));
        }
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        Ok(Map { map, words })
    }

    /// The sequence word.
    fn seq(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned (so 8-aligned) and at least `PAYLOAD` bytes long
        // (checked in `new`); it lives as long as `self`. Other processes only ever access it
        // atomically. A read-only mapping is only loaded from, never stored to (`SeqlockReader`).
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().cast::<u64>()) }
    }

    /// Payload word `i`; `i < self.words` is the caller's to check (once per copy, not per word).
    ///
    /// # Safety
    ///
    /// `i < self.words`.
    #[inline(always)]
    unsafe fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.words);
        // SAFETY: `PAYLOAD + 8 * i + 8 <= len` by the caller's `i < words` and `new`'s length;
        // 8-aligned as `PAYLOAD` is; accessed only atomically by every process (see `seq`).
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(PAYLOAD).cast::<u64>().add(i)) }
    }
}

/// The one writer of a seqlock file.
#[derive(Debug)]
pub struct SeqlockWriter {
    map: Map,
    /// The writer's own copy of the sequence word (even between writes).
    seq: u64,
}

impl SeqlockWriter {
    /// Creates (or truncates) the file at `path` holding `initial`.
    pub fn create(path: &Path, initial: &[u64]) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len((PAYLOAD + initial.len() * 8) as u64)?;
        let mut w = SeqlockWriter {
            map: Map::new(&file, initial.len(), true)?,
            seq: 0,
        };
        w.publish(initial);
        Ok(w)
    }

    /// Commits `value` (exactly the payload's length).
    #[inline]
    pub fn publish(&mut self, value: &[u64]) {
        assert_eq!(value.len(), self.map.words, "publish of the wrong length");
        self.begin();
        for (i, &w) in value.iter().enumerate() {
            // SAFETY: `i < value.len() == words`, asserted above.
            unsafe { self.map.word(i) }.store(w, Ordering::Relaxed);
        }
        self.end();
    }

    /// Commits a new value of payload word `i` alone (a one-field setter).
    #[inline]
    pub fn set_word(&mut self, i: usize, w: u64) {
        assert!(i < self.map.words, "word {i} past the payload");
        self.begin();
        // SAFETY: `i < words`, asserted above.
        unsafe { self.map.word(i) }.store(w, Ordering::Relaxed);
        self.end();
    }

    #[inline(always)]
    fn begin(&mut self) {
        // Relaxed store then a release fence: a reader that loads any word stored after the
        // fence, then fences with acquire, sees `seq` odd (or newer) on its second load.
        self.map.seq().store(self.seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    #[inline(always)]
    fn end(&mut self) {
        self.seq += 2;
        // Release: a reader whose first load sees this value sees every word stored before it.
        self.map.seq().store(self.seq, Ordering::Release);
    }
}

/// A reader of a seqlock file; maps it read-only.
#[derive(Debug)]
pub struct SeqlockReader {
    map: Map,
}

impl SeqlockReader {
    /// Opens the file at `path`, of `words` payload words.
    pub fn open(path: &Path, words: usize) -> io::Result<Self> {
        let file = File::open(path)?;
        Ok(SeqlockReader {
            map: Map::new(&file, words, false)?,
        })
    }

    /// One attempt at a consistent copy into `out` (exactly the payload's length): true when it
    /// is consistent, false when a write overlapped it (then `out` holds garbage).
    #[inline]
    pub fn try_read(&self, out: &mut [u64]) -> bool {
        assert_eq!(out.len(), self.map.words, "read of the wrong length");
        let s1 = self.begin();
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: `i < out.len() == words`, asserted above.
            *o = unsafe { self.map.word(i) }.load(Ordering::Relaxed);
        }
        self.end(s1)
    }

    /// A consistent copy into `out`, retrying until one is; returns the attempts it took.
    #[inline]
    pub fn read(&self, out: &mut [u64]) -> u32 {
        let mut attempts = 1;
        while !self.try_read(out) {
            attempts += 1;
            std::hint::spin_loop();
        }
        attempts
    }

    /// Payload word `i` alone, through the same protocol (a one-field read).
    #[inline]
    pub fn read_word(&self, i: usize) -> u64 {
        assert!(i < self.map.words, "word {i} past the payload");
        loop {
            let s1 = self.begin();
            // SAFETY: `i < words`, asserted above.
            let w = unsafe { self.map.word(i) }.load(Ordering::Relaxed);
            if self.end(s1) {
                return w;
            }
            std::hint::spin_loop();
        }
    }

    #[inline(always)]
    fn begin(&self) -> u64 {
        // Relaxed load then an acquire fence: synchronizes with the writer's release store of
        // this value, so the words loaded next are at least that commit's.
        let s1 = self.map.seq().load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        s1
    }

    #[inline(always)]
    fn end(&self, s1: u64) -> bool {
        // Acquire fence before the second load: if any word came from a write begun after `s1`,
        // this load sees that write's odd `seq` (or a later one).
        fence(Ordering::Acquire);
        let s2 = self.map.seq().load(Ordering::Relaxed);
        s1 == s2 && s1 & 1 == 0
    }
}
