//! The mapping of a validated state file, seen only as atomics: the one place that turns the
//! mapping's address into `&AtomicU64`/`&AtomicU32`. Every other module goes through it.
//!
//! # Safety model
//!
//! A `Mapping` is created only after the file's header was validated against the file's length
//! (`Header::parse`), and it maps exactly `header.file_len` bytes. Every offset used below is
//! checked against that length, and every offset is a multiple of the access size; the mapping
//! is page-aligned, so every atomic is aligned. Memory another process writes is only ever
//! accessed through atomics, never through `&T` or a plain copy.
//!
//! Readers map the file read-only and only ever *load* from it, with `Relaxed` loads of at most
//! 8 bytes: std documents such loads as valid on read-only memory ("Atomic accesses to read-only
//! memory" in `std::sync::atomic`). Ordering comes from separate fences.
//!
//! Limit: if another process of the same user truncates the file while it is mapped, an access
//! past the new end raises SIGBUS. The format never shrinks a published file.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::format::{off, Header, PAYLOAD_OFFSET};
use crate::latch::Latch;

enum Map {
    ReadOnly(memmap2::Mmap),
    ReadWrite(memmap2::MmapMut),
}

/// A mapped, validated state file.
pub(crate) struct Mapping {
    map: Map,
    /// Mapped length, equal to the validated `header.file_len`.
    len: usize,
    /// Offset between the two payload copies.
    stride: usize,
    /// Words per payload copy.
    words: usize,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.len)
            .field("stride", &self.stride)
            .field("words", &self.words)
            .finish_non_exhaustive()
    }
}

impl Mapping {
    /// Maps `file` read-only. `header` must have been validated against this file's length.
    pub(crate) fn read_only(file: &File, header: &Header) -> io::Result<Self> {
        let len = usize::try_from(header.file_len).map_err(io::Error::other)?;
        // SAFETY: the mapping is only accessed through atomics (see the module docs), so a
        // concurrent writer in another process cannot cause a data race on it; a truncation by
        // another process is the documented SIGBUS limit.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Self::new(Map::ReadOnly(map), header))
    }

    /// Maps `file` read-write. The caller holds the writer lock; `header` is validated.
    pub(crate) fn read_write(file: &File, header: &Header) -> io::Result<Self> {
        let len = usize::try_from(header.file_len).map_err(io::Error::other)?;
        // SAFETY: as for `read_only`; besides, the exclusive lock makes this the only writer.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? };
        Ok(Self::new(Map::ReadWrite(map), header))
    }

    fn new(map: Map, header: &Header) -> Self {
        let len = match &map {
            Map::ReadOnly(m) => m.len(),
            Map::ReadWrite(m) => m.len(),
        };
        Mapping {
            map,
            len,
            stride: header.slot_stride as usize,
            words: header.payload_words(),
        }
    }

    fn base(&self) -> *const u8 {
        match &self.map {
            Map::ReadOnly(m) => m.as_ptr(),
            Map::ReadWrite(m) => m.as_ptr(),
        }
    }

    /// The `u64` atomic at byte `offset`.
    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        &self.words_at(offset, 1)[0]
    }

    /// `n` consecutive `u64` atomics starting at byte `offset`.
    fn words_at(&self, offset: usize, n: usize) -> &[AtomicU64] {
        assert!(
            offset.is_multiple_of(8)
                && n.checked_mul(8).and_then(|b| b.checked_add(offset)) <= Some(self.len),
            "mapping access out of bounds"
        );
        // SAFETY: `offset..offset + 8n` lies inside the mapping (checked above), which lives as
        // long as `&self`; the base is page-aligned and `offset` a multiple of 8, so every
        // `AtomicU64` is aligned. The memory is only accessed atomically (module docs).
        unsafe { std::slice::from_raw_parts(self.base().add(offset).cast::<AtomicU64>(), n) }
    }

    /// The `u32` atomic at byte `offset`.
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.len,
            "mapping access out of bounds"
        );
        // SAFETY: as in `words_at`, for one 4-aligned `AtomicU32` inside the mapping. The bytes
        // of a `u32` control word are never accessed with another size.
        unsafe { &*self.base().add(offset).cast::<AtomicU32>() }
    }

    /// The latch over the sequence word and both payload copies.
    pub(crate) fn latch(&self) -> Latch<'_> {
        Latch::new(
            self.u64_at(off::SEQ),
            self.words_at(PAYLOAD_OFFSET, self.words),
            self.words_at(PAYLOAD_OFFSET + self.stride, self.words),
        )
    }

    /// The futex word bumped after every commit.
    pub(crate) fn notify(&self) -> &AtomicU32 {
        self.u32_at(off::NOTIFY)
    }

    /// Until when the writer may commit without waking waiters (`off::WAKE_DEADLINE`).
    pub(crate) fn wake_deadline(&self) -> &AtomicU64 {
        self.u64_at(off::WAKE_DEADLINE)
    }

    /// The state flags (`FLAG_SUPERSEDED`).
    pub(crate) fn flags(&self) -> &AtomicU32 {
        self.u32_at(off::FLAGS)
    }

    /// The pid of the last writer.
    pub(crate) fn writer_pid(&self) -> &AtomicU64 {
        self.u64_at(off::WRITER_PID)
    }

    /// Time of the last commit, nanoseconds since the Unix epoch.
    pub(crate) fn commit_time(&self) -> &AtomicU64 {
        self.u64_at(off::COMMIT_TIME)
    }

    /// Schedules the mapping's dirty pages to be written to disk and waits for it (`msync`).
    pub(crate) fn flush(&self) -> io::Result<()> {
        match &self.map {
            Map::ReadWrite(m) => m.flush(),
            Map::ReadOnly(_) => Ok(()),
        }
    }
}
