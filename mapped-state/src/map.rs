//! The mapping of a validated state file, seen only as atomics: the one place that turns the
//! mapping's address into `&AtomicU64`/`&AtomicU32`. Every other module goes through it.
//!
//! # Safety model
//!
//! A `Mapping` is created only after the file's header was validated against the file's length
//! (`Header::parse`), and it maps exactly `header.file_len` bytes with memmap2's `MmapRaw`, which
//! hands out a raw pointer and nothing else: no `&[u8]` over memory that other processes change
//! is ever formed, not even transiently. The pointers to the control words and to the ring are
//! computed once, here, from the validated geometry; every offset is inside the mapping and a
//! multiple of its access size, and the mapping is page-aligned, so every atomic is aligned.
//! Memory another process writes is only ever accessed through atomics, never through `&T` or a
//! plain copy.
//!
//! Readers map the file read-only and only ever *load* from it, with `Relaxed` loads of at most
//! 8 bytes: std documents such loads as valid on read-only memory ("Atomic accesses to read-only
//! memory" in `std::sync::atomic`). Ordering comes from separate fences.
//!
//! Limit: if another process truncates the file while it is mapped, an access past the new end
//! raises SIGBUS. The format never shrinks a published file.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::format::{off, Header, PAYLOAD_OFFSET};
use crate::ring::Ring;

/// A mapped, validated state file.
pub(crate) struct Mapping {
    map: memmap2::MmapRaw,
    /// The mapping's first byte (page-aligned), valid for `len` bytes while `map` lives.
    base: *mut u8,
    len: usize,
    slot_count: u64,
    /// Words from one slot to the next.
    stride: usize,
    /// Words per payload.
    words: usize,
    /// Byte offset of the manifest (8-aligned: it follows the last slot) and its first word as
    /// validated, for `intact`.
    manifest_offset: usize,
    canary: u64,
}

// SAFETY: the mapping is shared memory accessed only through atomics (module docs), so handing
// it to another thread, or sharing it between threads, is as sound as sharing the atomics; the
// raw pointer is only an address into `map`, which is itself `Send + Sync`.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.len)
            .field("slot_count", &self.slot_count)
            .field("stride_words", &self.stride)
            .field("words", &self.words)
            .finish_non_exhaustive()
    }
}

impl Mapping {
    /// Maps `file` read-only. `header` must have been validated against this file's length;
    /// `canary` is the manifest's first word as validated.
    pub(crate) fn read_only(file: &File, header: &Header, canary: u64) -> io::Result<Self> {
        let len = usize::try_from(header.file_len).map_err(io::Error::other)?;
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw_read_only(file)?;
        let mut m = Self::new(map, header)?;
        m.canary = canary;
        Ok(m)
    }

    /// Maps `file` read-write. The caller holds the writer lock; `header` is validated.
    pub(crate) fn read_write(file: &File, header: &Header) -> io::Result<Self> {
        let len = usize::try_from(header.file_len).map_err(io::Error::other)?;
        let map = memmap2::MmapOptions::new().len(len).map_raw(file)?;
        Self::new(map, header)
    }

    fn new(map: memmap2::MmapRaw, header: &Header) -> io::Result<Self> {
        let len = map.len();
        let stride = header.stride_words();
        let words = header.payload_words();
        let ring_end = (header.slot_count as usize)
            .checked_mul(header.slot_stride as usize)
            .and_then(|r| r.checked_add(PAYLOAD_OFFSET));
        // `Header::parse` proved all of this; checked again here because the pointers below rely
        // on it, and a mismatch must be an error rather than an out-of-bounds atomic.
        if ring_end.is_none_or(|end| end > len)
            || words > stride
            || !crate::format::slots_ok(header.slot_count)
            || !(map.as_ptr() as usize).is_multiple_of(8)
        {
            return Err(io::Error::other(
                "mapping does not fit the validated header",
            ));
        }
        let manifest_offset = usize::try_from(header.manifest_offset).map_err(io::Error::other)?;
        if !manifest_offset.is_multiple_of(8) || manifest_offset >= len {
            return Err(io::Error::other(
                "mapping does not fit the validated header",
            ));
        }
        Ok(Mapping {
            base: map.as_mut_ptr(),
            map,
            len,
            slot_count: header.slot_count,
            stride,
            words,
            manifest_offset,
            canary: 0,
        })
    }

    /// The `u64` atomic at control-block byte `offset` (a constant of `format::off`).
    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= PAYLOAD_OFFSET);
        // SAFETY: `offset` is one of the control block's 8-aligned `u64` words, inside the
        // header-validated mapping (whose length is at least `PAYLOAD_OFFSET`), which lives as
        // long as `&self`; the base is page-aligned. The memory is only accessed atomically.
        unsafe { AtomicU64::from_ptr(self.base.add(offset).cast::<u64>()) }
    }

    /// The `u32` atomic at control-block byte `offset`.
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= PAYLOAD_OFFSET);
        // SAFETY: as in `u64_at`, for a 4-aligned `u32` control word. The bytes of a `u32`
        // control word are never accessed with another size.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast::<u32>()) }
    }

    /// The ring over the sequence word and the slots.
    #[inline]
    pub(crate) fn ring(&self) -> Ring<'_> {
        let n_words = self.slot_count as usize * self.stride;
        // SAFETY: `new` checked that the ring, `slot_count * stride` 8-byte words from byte
        // `PAYLOAD_OFFSET`, lies inside the mapping, which lives as long as `&self`; the offset
        // is a multiple of 8 and the base page-aligned, so each `AtomicU64` is aligned; the memory
        // is only ever accessed atomically (`AtomicU64` has the layout of `u64`).
        let slots = unsafe {
            std::slice::from_raw_parts(
                self.base
                    .add(PAYLOAD_OFFSET)
                    .cast::<AtomicU64>()
                    .cast_const(),
                n_words,
            )
        };
        Ring::from_validated(
            self.u64_at(off::SEQ),
            slots,
            self.slot_count,
            self.stride,
            self.words,
        )
    }

    /// Whether the file still holds the bytes it was validated with at the start of its manifest,
    /// which follows every slot: a truncation that reaches any slot data zeroes that word (the
    /// rest of a truncated last page reads as zeros), so a read that checks this after it was
    /// accepted never takes zeros of a truncated file for a value. One relaxed load of a cache
    /// line nobody writes. (A truncation by whole pages makes an access to them raise SIGBUS
    /// instead: the documented limit.)
    #[inline(always)]
    pub(crate) fn intact(&self) -> bool {
        // SAFETY: `new` checked that `manifest_offset` is 8-aligned and inside the mapping (the
        // manifest is at least one byte; the word's other bytes lie in the same page, past the
        // file's end, where a mapping reads zeros); only ever loaded atomically, never written.
        let w = unsafe { AtomicU64::from_ptr(self.base.add(self.manifest_offset).cast::<u64>()) };
        w.load(std::sync::atomic::Ordering::Relaxed) == self.canary
    }

    /// The futex word, bumped whenever waiters are woken.
    pub(crate) fn notify(&self) -> &AtomicU32 {
        self.u32_at(off::NOTIFY)
    }

    /// The state flags (`FLAG_SUPERSEDED`).
    pub(crate) fn flags(&self) -> &AtomicU32 {
        self.u32_at(off::FLAGS)
    }

    /// The pid of the last writer.
    pub(crate) fn writer_pid(&self) -> &AtomicU64 {
        self.u64_at(off::WRITER_PID)
    }

    /// The start time of the last writer's process.
    pub(crate) fn writer_start(&self) -> &AtomicU64 {
        self.u64_at(off::WRITER_START)
    }

    /// Time of the last commit, nanoseconds since the Unix epoch.
    pub(crate) fn commit_time(&self) -> &AtomicU64 {
        self.u64_at(off::COMMIT_TIME)
    }

    /// Schedules the mapping's dirty pages to be written to disk and waits for it (`msync`).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }
}
