//! Moving values between the ring's 8-byte words and Rust values, for both sides: the words a
//! byte range spans, filling a value (or a byte buffer) straight from words without zeroing it
//! first, and viewing a value or a word buffer as bytes. The `unsafe` of the typed read and write
//! paths lives here, next to the proofs it relies on ([`InPlace`]).

use std::mem::MaybeUninit;

use crate::ring::Ring;
use crate::state::{DecodeError, MappedState};

/// The words covering bytes `offset..offset + size` of the payload: `(first word, word count)`.
#[inline]
pub(crate) fn word_span(offset: usize, size: usize) -> (usize, usize) {
    let first = offset / 8;
    if size == 0 {
        return (first, 0);
    }
    (first, (offset + size).div_ceil(8) - first)
}

/// Stores word `i` of a read that began at word `offset / 8` into `dst`, which receives payload
/// bytes `offset..offset + dst.len()`: the whole word when it lies inside, else its overlap.
#[inline(always)]
fn put(dst: &mut [MaybeUninit<u8>], offset: usize, i: usize, w: u64) {
    let bytes = w.to_ne_bytes();
    let word_start = (offset / 8 + i) * 8;
    let lo = word_start.max(offset);
    let hi = (word_start + 8).min(offset + dst.len());
    if lo >= hi {
        return;
    }
    let src = &bytes[lo - word_start..hi - word_start];
    let out = &mut dst[lo - offset..hi - offset];
    for (d, s) in out.iter_mut().zip(src) {
        d.write(*s);
    }
}

/// Reads payload bytes `offset..offset + dst.len()` of the newest version into `dst`, retrying
/// up to `max_attempts` times; returns the version, or the attempts made. On success every byte
/// of `dst` is written.
#[inline(always)]
fn read_bytes(
    ring: &Ring<'_>,
    offset: usize,
    dst: &mut [MaybeUninit<u8>],
    max_attempts: u32,
) -> Result<u64, u32> {
    let (first, words) = word_span(offset, dst.len());
    if offset.is_multiple_of(8) && dst.len().is_multiple_of(8) {
        // Whole words: one unaligned 8-byte store per word, straight into the destination, in
        // a loop over the slot's words that the compiler keeps as tight as a hand-written one.
        let base = dst.as_mut_ptr().cast::<u8>();
        ring.read_slice(first, words, max_attempts, |src| {
            for (i, w) in src.iter().take(words).enumerate() {
                // Relaxed: the ring validates the read after this returns.
                let w = w.load(std::sync::atomic::Ordering::Relaxed);
                // SAFETY: `dst` is `words * 8` bytes long and `i < words` (`take`), so the 8
                // bytes at `i * 8` are inside it; `write_unaligned` needs no alignment; any
                // bytes may be stored into `MaybeUninit<u8>`s.
                unsafe { base.add(i * 8).cast::<u64>().write_unaligned(w) };
            }
        })
    } else {
        ring.read(first, words, max_attempts, |i, w| put(dst, offset, i, w))
    }
}

/// As `read_bytes`, for version `h` of the history.
fn read_version_bytes(
    ring: &Ring<'_>,
    h: u64,
    offset: usize,
    dst: &mut [MaybeUninit<u8>],
) -> Result<(), crate::ring::Past> {
    let (first, words) = word_span(offset, dst.len());
    ring.try_read_version(h, first, words, |i, w| put(dst, offset, i, w))
}

/// Why a typed read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The writer lapped every attempt.
    Contended(u32),
    /// The history version is gone or not yet committed.
    Past(crate::ring::Past),
    /// The bytes are not a valid value.
    Invalid(DecodeError),
    /// The read was accepted but the file was truncated under the mapping: the bytes may be
    /// zeros of lost pages, not a committed value.
    Truncated,
}

/// The bytes of an initialized prefix of a buffer.
///
/// # Safety
///
/// Every byte of `buf` has been written.
unsafe fn assume_init(buf: &[MaybeUninit<u8>]) -> &[u8] {
    // SAFETY: the caller says every byte was written; `MaybeUninit<u8>` has the layout of `u8`.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len()) }
}

/// Runs `f` on an uninitialized scratch buffer of `len` bytes: on the stack for the sizes of
/// single fields and small payloads (tiers, so a small read reserves little), beyond that in a
/// buffer of the calling thread's, allocated by its first large read and reused by every later
/// one. Nothing is zeroed: the buffer is only read after it was completely written.
fn with_uninit<R>(len: usize, f: impl FnOnce(&mut [MaybeUninit<u8>]) -> R) -> R {
    thread_local! {
        static LARGE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn on_stack<const N: usize, R>(len: usize, f: impl FnOnce(&mut [MaybeUninit<u8>]) -> R) -> R {
        let mut buf = [MaybeUninit::<u8>::uninit(); N];
        f(&mut buf[..len])
    }
    match len {
        0..=16 => on_stack::<16, R>(len, f),
        17..=128 => on_stack::<128, R>(len, f),
        129..=1024 => on_stack::<1024, R>(len, f),
        1025..=8192 => on_stack::<8192, R>(len, f),
        _ => LARGE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.reserve(len);
                f(&mut buf.spare_capacity_mut()[..len])
            }
            // Only if `f` itself reads a large value (a decoder that reads the file): its own.
            Err(_) => f(&mut Vec::with_capacity(len).spare_capacity_mut()[..len]),
        }),
    }
}

/// Reads a `T` from payload byte `offset` of the newest version (or of version `history`),
/// touching only its words: straight into the value when `T`'s memory is its encoding, then
/// validated in place; else into a scratch buffer and decoded from there. Returns the version.
/// `intact` is asked after the bytes were accepted (before they are validated or decoded) whether
/// the file still holds them (`Mapping::intact`); it is asked inside, rather than by the caller
/// afterwards, so that the value is built once where it is returned (a check after the read made
/// the optimizer copy a large value a second time).
#[inline(always)]
pub(crate) fn read_value<T: MappedState>(
    ring: &Ring<'_>,
    offset: usize,
    history: Option<u64>,
    max_attempts: u32,
    intact: impl Fn() -> bool,
) -> Result<(T, u64), ReadError> {
    let mut out = MaybeUninit::<T>::uninit();
    let version = read_value_into(ring, offset, history, max_attempts, intact, &mut out)?;
    // SAFETY: `read_value_into` succeeded, so `out` holds a valid `T`.
    Ok((unsafe { out.assume_init() }, version))
}

/// `read_value`, filling `out` where it stands (no copy of the value afterwards, which for a
/// large value costs more than the read). On success `out` holds a valid `T`; on failure it
/// holds nothing valid.
#[inline(always)]
pub(crate) fn read_value_into<T: MappedState>(
    ring: &Ring<'_>,
    offset: usize,
    history: Option<u64>,
    max_attempts: u32,
    intact: impl Fn() -> bool,
    out: &mut MaybeUninit<T>,
) -> Result<u64, ReadError> {
    let size = T::TYPE.size;
    match T::IN_PLACE {
        Some(proof) => {
            // SAFETY: `proof` says `size_of::<T>() == size`; any bytes may be written into a
            // `MaybeUninit<T>`'s storage, viewed as `MaybeUninit<u8>`s.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<MaybeUninit<u8>>(), size)
            };
            let version = fill(ring, offset, history, max_attempts, &intact, dst)?;
            if proof.validates() {
                // SAFETY: `fill` succeeded, so it wrote every byte of `dst`.
                T::validate(unsafe { assume_init(dst) }).map_err(ReadError::Invalid)?;
            }
            // Every byte was written and, by `proof`, the bytes of any encoding (that
            // `validate` accepted, when the type validates) are a valid `T`.
            Ok(version)
        }
        None => with_uninit(size, |dst| {
            let version = fill(ring, offset, history, max_attempts, &intact, dst)?;
            // SAFETY: `fill` succeeded, so it wrote every byte of `dst`.
            let bytes = unsafe { assume_init(dst) };
            out.write(T::decode(bytes).map_err(ReadError::Invalid)?);
            Ok(version)
        }),
    }
}

/// The bytes of `read_value_into`: the newest version's (or version `history`'s) payload bytes
/// `offset..offset + dst.len()` into `dst`, then `intact` asked. A function rather than a
/// closure so that it can be forced inline: each accessor calls it with a constant offset and
/// size, which folds the general word-splitting code away.
#[inline(always)]
fn fill(
    ring: &Ring<'_>,
    offset: usize,
    history: Option<u64>,
    max_attempts: u32,
    intact: &impl Fn() -> bool,
    dst: &mut [MaybeUninit<u8>],
) -> Result<u64, ReadError> {
    let version = match history {
        None => read_bytes(ring, offset, dst, max_attempts).map_err(ReadError::Contended)?,
        Some(h) => read_version_bytes(ring, h, offset, dst)
            .map(|()| h)
            .map_err(ReadError::Past)?,
    };
    if intact() {
        Ok(version)
    } else {
        Err(ReadError::Truncated)
    }
}

/// A reference to `value`'s storage as a `MaybeUninit<T>`, for `read_value_into`, when every
/// byte pattern is a valid `T` (in place, no validation): a read that fails then leaves garbage
/// there, but never an invalid `T`. `None` for other types.
#[inline(always)]
pub(crate) fn as_uninit<T: MappedState>(value: &mut T) -> Option<&mut MaybeUninit<T>> {
    match T::IN_PLACE {
        Some(p) if !p.validates() => {
            // SAFETY: `MaybeUninit<T>` has `T`'s layout; by the proof every byte pattern
            // written through it (a failed read's included) is a valid `T`, so `value` stays
            // valid whatever the read leaves in it.
            Some(unsafe { &mut *(value as *mut T).cast::<MaybeUninit<T>>() })
        }
        _ => None,
    }
}

/// Reads payload bytes `offset..offset + out.len()` of the newest version into `out`.
pub(crate) fn read_into(
    ring: &Ring<'_>,
    offset: usize,
    out: &mut [u8],
    max_attempts: u32,
) -> Result<u64, u32> {
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and only initialized bytes (`u8`s)
    // are ever stored through the view.
    let dst = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), out.len()) };
    read_bytes(ring, offset, dst, max_attempts)
}

/// `value`'s encoding, read straight from its memory when its proof allows (in place and
/// without padding); `None` when it must be encoded.
#[inline]
pub(crate) fn value_bytes<T: MappedState>(value: &T) -> Option<&[u8]> {
    match T::IN_PLACE {
        Some(p) if !p.padded() => {
            // SAFETY: by the proof, `T` has no padding, so all `size_of::<T>() == TYPE.size`
            // bytes of a valid value are initialized, and they are its encoding.
            Some(unsafe {
                std::slice::from_raw_parts((value as *const T).cast::<u8>(), T::TYPE.size)
            })
        }
        _ => None,
    }
}

/// Encodes `value` and hands the encoding to `f`: from the value's memory when possible, else
/// through a zeroed scratch buffer (the encoding's padding must be zero).
#[inline]
pub(crate) fn with_encoding<T: MappedState, R>(value: &T, f: impl FnOnce(&[u8]) -> R) -> R {
    if let Some(bytes) = value_bytes(value) {
        return f(bytes);
    }
    let size = T::TYPE.size;
    with_uninit(size, |buf| {
        for b in buf.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte was just written.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), size) };
        value.encode(buf);
        f(buf)
    })
}

/// The bytes of a word buffer.
pub(crate) fn bytes_of(words: &[u64]) -> &[u8] {
    // SAFETY: a `u64` is 8 initialized bytes with no padding; `u8` has alignment 1.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// The bytes of a word buffer, mutably.
pub(crate) fn bytes_of_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; every byte pattern is a valid `u64`, so any store through the
    // view leaves valid words.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

/// Word `i` of `bytes` (zero-extended past the end), native byte order.
#[inline(always)]
pub(crate) fn word_of(bytes: &[u8], i: usize) -> u64 {
    match bytes.get(i * 8..i * 8 + 8) {
        Some(b) => u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        None => {
            let mut w = [0u8; 8];
            let tail = bytes.get(i * 8..).unwrap_or_default();
            w[..tail.len()].copy_from_slice(tail);
            u64::from_ne_bytes(w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_exactly_the_words_of_a_byte_range() {
        assert_eq!(word_span(0, 8), (0, 1));
        assert_eq!(word_span(4, 4), (0, 1));
        assert_eq!(word_span(4, 8), (0, 2));
        assert_eq!(word_span(16, 4096), (2, 512));
        assert_eq!(word_span(13, 0), (1, 0));
    }

    #[test]
    fn put_writes_only_the_overlap() {
        let w = u64::from_ne_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        let mut dst = [MaybeUninit::new(0u8); 6];
        // Bytes 5..11 of the payload: word 0 gives bytes 5..8, word 1 bytes 8..11.
        put(&mut dst, 5, 0, w);
        put(&mut dst, 5, 1, w);
        // SAFETY: every byte was initialized above.
        let got = unsafe { assume_init(&dst) };
        assert_eq!(got, &[6, 7, 8, 1, 2, 3]);
    }

    #[test]
    fn words_of_bytes_zero_extend() {
        let b = [1u8, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(word_of(&b, 0), u64::from_ne_bytes([1, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(word_of(&b, 1), u64::from_ne_bytes([2, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(word_of(&b, 2), 0);
    }
}
