//! File format v2: the 128-byte header, its encoding and its validation. Pure functions over
//! bytes, so every check runs on a `pread` copy before anything is mapped (and under proptest).
//!
//! The byte-by-byte specification is `docs/FORMAT.md`; the offsets below are the source of truth
//! for it.

use std::path::Path;

use crate::error::Error;
use crate::schema::fnv1a64;

/// The file magic, fixed forever.
pub const MAGIC: [u8; 8] = *b"MAPSTATE";
/// The format version this library reads and writes.
pub const VERSION: u32 = 2;
/// The endian tag, written natively; reads back as `0x04030201` on a foreign-endian machine.
pub const ENDIAN_TAG: u32 = 0x0102_0304;
/// Length of the header.
pub const HEADER_LEN: usize = 128;
/// Word size of every atomic access to the payload.
pub const WORD: usize = 8;
/// Offset of the control block.
pub const CONTROL_OFFSET: usize = 128;
/// Offset of slot 0 of the ring.
pub const PAYLOAD_OFFSET: usize = 256;
/// Slot strides are multiples of this (a cache line, so two slots never share one).
pub const STRIDE_ALIGN: usize = 64;
/// Largest payload format v2 accepts (1 GiB).
pub const MAX_PAYLOAD: u64 = 1 << 30;
/// Largest ring (slot count times stride) accepted (4 GiB): a bound on what a corrupt header can
/// make a reader map.
pub const MAX_RING_BYTES: u64 = 1 << 32;
/// Fewest slots a ring may have.
pub const MIN_SLOTS: u64 = 2;
/// Most slots a ring may have.
pub const MAX_SLOTS: u64 = crate::ring::MAX_SLOTS;
/// Slot count of a new file unless `CreateOptions::slots` says otherwise (see its docs for the
/// benchmark that chose it).
pub const DEFAULT_SLOTS: u64 = 4;
/// Largest manifest accepted (1 MiB).
pub const MAX_MANIFEST: u64 = 1 << 20;
/// Largest payload alignment.
pub const MAX_ALIGN: u64 = 64;

/// Byte offsets of the header fields.
pub mod off {
    /// `[u8; 8]` magic.
    pub const MAGIC: usize = 0;
    /// `u32` format version.
    pub const VERSION: usize = 8;
    /// `u32` endian tag.
    pub const ENDIAN: usize = 12;
    /// `u32` header length (128).
    pub const HEADER_LEN: usize = 16;
    /// `u32` word size (8).
    pub const WORD_SIZE: usize = 20;
    /// `u64` schema hash.
    pub const SCHEMA_HASH: usize = 24;
    /// `u64` payload size.
    pub const PAYLOAD_SIZE: usize = 32;
    /// `u64` payload alignment.
    pub const PAYLOAD_ALIGN: usize = 40;
    /// `u64` slot stride.
    pub const SLOT_STRIDE: usize = 48;
    /// `u64` file length.
    pub const FILE_LEN: usize = 56;
    /// `u64` manifest offset.
    pub const MANIFEST_OFFSET: usize = 64;
    /// `u64` manifest length.
    pub const MANIFEST_LEN: usize = 72;
    /// `u64` creation nonce.
    pub const NONCE: usize = 80;
    /// `u64` payload offset (256).
    pub const PAYLOAD_OFFSET: usize = 88;
    /// `u64` slot count `N` of the ring: a power of two, 2 to 256.
    pub const SLOT_COUNT: usize = 96;
    /// 16 reserved bytes, zero.
    pub const RESERVED: usize = 104;
    /// `u64` FNV-1a 64 of bytes 0..120.
    pub const CHECKSUM: usize = 120;

    /// Control block: `u64` ring sequence (`2v` when version `v` is committed, `2v + 1` while
    /// version `v + 1` is being written).
    pub const SEQ: usize = 128;
    /// Control block: `u32` futex word, bumped whenever waiters are woken.
    pub const NOTIFY: usize = 136;
    /// Control block: `u32` state flags (bit 0: superseded, bit 1: closed by its writer).
    pub const FLAGS: usize = 140;
    /// Control block: `u64` pid of the last writer.
    pub const WRITER_PID: usize = 144;
    /// Control block: `u64` time of the last commit, nanoseconds since the Unix epoch.
    pub const COMMIT_TIME: usize = 152;
    /// Control block: `u64` start time of the writer process (clock ticks since boot, field 22
    /// of `/proc/PID/stat` on Linux; 0 where unknown), so that a recycled pid is not taken for the
    /// writer.
    pub const WRITER_START: usize = 160;
    /// Control block: 88 reserved bytes, zero in v2.
    pub const RESERVED_CONTROL: usize = 168;
}

/// Control-block flag: a newer file has replaced this one at its path; reopen by path.
pub const FLAG_SUPERSEDED: u32 = 1;
/// Control-block flag: the last writer closed the file (dropped its handle); set until the next
/// writer opens it. Readers take the writer for gone.
pub const FLAG_CLOSED: u32 = 2;

/// The validated contents of a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Schema hash of the stored type.
    pub schema_hash: u64,
    /// Payload size in bytes.
    pub payload_size: u64,
    /// Payload alignment.
    pub payload_align: u64,
    /// Distance between two slots.
    pub slot_stride: u64,
    /// Slots in the ring.
    pub slot_count: u64,
    /// Total file length.
    pub file_len: u64,
    /// Offset of the manifest.
    pub manifest_offset: u64,
    /// Length of the manifest.
    pub manifest_len: u64,
    /// Random value chosen at creation, distinguishing files created at the same path.
    pub nonce: u64,
}

impl Header {
    /// The layout of a file for a payload of `size` bytes aligned to `align` in a ring of
    /// `slots` slots, with a manifest of `manifest_len` bytes. `None` when any of them is beyond
    /// format v2's limits.
    pub fn for_payload(
        schema_hash: u64,
        size: usize,
        align: usize,
        slots: u64,
        manifest_len: usize,
        nonce: u64,
    ) -> Option<Header> {
        let size = size as u64;
        let align = align as u64;
        if size == 0 || size > MAX_PAYLOAD || !align.is_power_of_two() || align > MAX_ALIGN {
            return None;
        }
        if manifest_len as u64 > MAX_MANIFEST || manifest_len == 0 || !slots_ok(slots) {
            return None;
        }
        let stride = size.div_ceil(STRIDE_ALIGN as u64) * STRIDE_ALIGN as u64;
        if slots * stride > MAX_RING_BYTES {
            return None;
        }
        let manifest_offset = PAYLOAD_OFFSET as u64 + slots * stride;
        Some(Header {
            schema_hash,
            payload_size: size,
            payload_align: align,
            slot_stride: stride,
            slot_count: slots,
            file_len: manifest_offset + manifest_len as u64,
            manifest_offset,
            manifest_len: manifest_len as u64,
            nonce,
        })
    }

    /// Number of 8-byte words a payload occupies in its slot.
    pub fn payload_words(&self) -> usize {
        (self.payload_size as usize).div_ceil(WORD)
    }

    /// Number of 8-byte words from one slot to the next.
    pub fn stride_words(&self) -> usize {
        self.slot_stride as usize / WORD
    }

    /// The 128 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC);
        put32(&mut b, off::VERSION, VERSION);
        put32(&mut b, off::ENDIAN, ENDIAN_TAG);
        put32(&mut b, off::HEADER_LEN, HEADER_LEN as u32);
        put32(&mut b, off::WORD_SIZE, WORD as u32);
        put64(&mut b, off::SCHEMA_HASH, self.schema_hash);
        put64(&mut b, off::PAYLOAD_SIZE, self.payload_size);
        put64(&mut b, off::PAYLOAD_ALIGN, self.payload_align);
        put64(&mut b, off::SLOT_STRIDE, self.slot_stride);
        put64(&mut b, off::FILE_LEN, self.file_len);
        put64(&mut b, off::MANIFEST_OFFSET, self.manifest_offset);
        put64(&mut b, off::MANIFEST_LEN, self.manifest_len);
        put64(&mut b, off::NONCE, self.nonce);
        put64(&mut b, off::PAYLOAD_OFFSET, PAYLOAD_OFFSET as u64);
        put64(&mut b, off::SLOT_COUNT, self.slot_count);
        let sum = fnv1a64(&b[..off::CHECKSUM]);
        put64(&mut b, off::CHECKSUM, sum);
        b
    }

    /// Parses and validates header bytes read from `path`, whose length is `actual_len`.
    ///
    /// `bytes` may be shorter than a header (a truncated file). Checks run in an order that gives
    /// the most specific error first: identity (magic, endianness, version), then each field's own
    /// range, then the checksum, then the fields' consistency with each other and with the file.
    pub fn parse(path: &Path, bytes: &[u8], actual_len: u64) -> Result<Header, Error> {
        let path_buf = || path.to_owned();
        if bytes.len() < MAGIC.len() || bytes[..8] != MAGIC {
            return Err(Error::NotAStateFile {
                path: path_buf(),
                found: bytes[..bytes.len().min(8)].to_vec(),
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::WrongLength {
                path: path_buf(),
                expected: min_file_len(),
                actual: actual_len,
            });
        }
        let corrupt = |field: &'static str, offset: usize, expected: String, found: String| {
            Error::CorruptHeader {
                path: path.to_owned(),
                field,
                offset,
                expected,
                found,
            }
        };
        let endian = get32(bytes, off::ENDIAN);
        if endian != ENDIAN_TAG {
            if endian == ENDIAN_TAG.swap_bytes() {
                return Err(Error::ForeignEndian {
                    path: path_buf(),
                    found: endian,
                });
            }
            return Err(corrupt(
                "endian_tag",
                off::ENDIAN,
                format!("{ENDIAN_TAG:#010x}"),
                format!("{endian:#010x}"),
            ));
        }
        let version = get32(bytes, off::VERSION);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                path: path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        let exact32 = |field, offset, want: u32| {
            let v = get32(bytes, offset);
            if v == want {
                Ok(())
            } else {
                Err(corrupt(field, offset, want.to_string(), v.to_string()))
            }
        };
        exact32("header_len", off::HEADER_LEN, HEADER_LEN as u32)?;
        exact32("word_size", off::WORD_SIZE, WORD as u32)?;

        let h = Header {
            schema_hash: get64(bytes, off::SCHEMA_HASH),
            payload_size: get64(bytes, off::PAYLOAD_SIZE),
            payload_align: get64(bytes, off::PAYLOAD_ALIGN),
            slot_stride: get64(bytes, off::SLOT_STRIDE),
            file_len: get64(bytes, off::FILE_LEN),
            manifest_offset: get64(bytes, off::MANIFEST_OFFSET),
            manifest_len: get64(bytes, off::MANIFEST_LEN),
            nonce: get64(bytes, off::NONCE),
            slot_count: get64(bytes, off::SLOT_COUNT),
        };
        if h.payload_size == 0 || h.payload_size > MAX_PAYLOAD {
            return Err(corrupt(
                "payload_size",
                off::PAYLOAD_SIZE,
                format!("1..={MAX_PAYLOAD}"),
                h.payload_size.to_string(),
            ));
        }
        if !h.payload_align.is_power_of_two() || h.payload_align > MAX_ALIGN {
            return Err(corrupt(
                "payload_align",
                off::PAYLOAD_ALIGN,
                format!("a power of two up to {MAX_ALIGN}"),
                h.payload_align.to_string(),
            ));
        }
        if !h.payload_size.is_multiple_of(h.payload_align) {
            return Err(corrupt(
                "payload_size",
                off::PAYLOAD_SIZE,
                format!("a multiple of payload_align {}", h.payload_align),
                h.payload_size.to_string(),
            ));
        }
        let stride = h.payload_size.div_ceil(STRIDE_ALIGN as u64) * STRIDE_ALIGN as u64;
        if h.slot_stride != stride {
            return Err(corrupt(
                "slot_stride",
                off::SLOT_STRIDE,
                format!("{stride} (payload_size rounded up to {STRIDE_ALIGN})"),
                h.slot_stride.to_string(),
            ));
        }
        let payload_offset = get64(bytes, off::PAYLOAD_OFFSET);
        if payload_offset != PAYLOAD_OFFSET as u64 {
            return Err(corrupt(
                "payload_offset",
                off::PAYLOAD_OFFSET,
                PAYLOAD_OFFSET.to_string(),
                payload_offset.to_string(),
            ));
        }
        if !slots_ok(h.slot_count) {
            return Err(corrupt(
                "slot_count",
                off::SLOT_COUNT,
                format!("a power of two from {MIN_SLOTS} to {MAX_SLOTS}"),
                h.slot_count.to_string(),
            ));
        }
        // `stride <= 1 GiB` and `slot_count <= 256`, so this cannot overflow.
        let ring = h.slot_count * stride;
        if ring > MAX_RING_BYTES {
            return Err(corrupt(
                "slot_count",
                off::SLOT_COUNT,
                format!(
                    "at most {} slots of {stride} bytes (a ring of at most {MAX_RING_BYTES} bytes)",
                    MAX_RING_BYTES / stride
                ),
                h.slot_count.to_string(),
            ));
        }
        let manifest_offset = PAYLOAD_OFFSET as u64 + ring;
        if h.manifest_offset != manifest_offset {
            return Err(corrupt(
                "manifest_offset",
                off::MANIFEST_OFFSET,
                format!("{manifest_offset} (right after the last slot)"),
                h.manifest_offset.to_string(),
            ));
        }
        if h.manifest_len == 0 || h.manifest_len > MAX_MANIFEST {
            return Err(corrupt(
                "manifest_len",
                off::MANIFEST_LEN,
                format!("1..={MAX_MANIFEST}"),
                h.manifest_len.to_string(),
            ));
        }
        let file_len = manifest_offset + h.manifest_len;
        if h.file_len != file_len {
            return Err(corrupt(
                "file_len",
                off::FILE_LEN,
                format!("{file_len} (manifest_offset + manifest_len)"),
                h.file_len.to_string(),
            ));
        }
        if let Some(i) = bytes[off::RESERVED..off::CHECKSUM]
            .iter()
            .position(|&b| b != 0)
        {
            return Err(corrupt(
                "reserved",
                off::RESERVED + i,
                "0".into(),
                bytes[off::RESERVED + i].to_string(),
            ));
        }
        let sum = fnv1a64(&bytes[..off::CHECKSUM]);
        let stored = get64(bytes, off::CHECKSUM);
        if sum != stored {
            return Err(corrupt(
                "checksum",
                off::CHECKSUM,
                format!("{sum:#018x} (FNV-1a 64 of bytes 0..120)"),
                format!("{stored:#018x}"),
            ));
        }
        if actual_len != h.file_len {
            return Err(Error::WrongLength {
                path: path_buf(),
                expected: h.file_len,
                actual: actual_len,
            });
        }
        Ok(h)
    }
}

/// The shortest possible state file: header, control block, two 64-byte slots, a manifest byte.
pub fn min_file_len() -> u64 {
    PAYLOAD_OFFSET as u64 + MIN_SLOTS * STRIDE_ALIGN as u64 + 1
}

/// Whether `n` is a slot count format v2 allows: a power of two from 2 to 256 (a power of two,
/// so that a version's slot is a mask, not a division, on every read).
pub fn slots_ok(n: u64) -> bool {
    n.is_power_of_two() && (MIN_SLOTS..=MAX_SLOTS).contains(&n)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}
