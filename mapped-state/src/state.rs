//! The contract between a Rust type and its bytes in a state file: the `MappedState` trait, its
//! implementations for primitives and arrays, and `DecodeError` for invalid bytes.

use crate::schema::{Kind, Prim, TypeDesc};

/// A type that can live in a state file.
///
/// Normally implemented by `#[derive(MappedState)]`, which computes a C layout with fixed
/// primitive alignments, checks it at compile time and generates field accessors. The runtime
/// implements it for the primitives, `[T; N]` and [`FixedStr`](crate::FixedStr).
///
/// The encoding is the type's C layout in native byte order: `encode` writes exactly
/// [`TYPE.size`](TypeDesc::size) bytes (padding as zeros) and `decode` reads them back, validating
/// every value that has invalid bit patterns (`bool`, `char`, enums, strings). Memory safety never
/// depends on an implementation being right — every access is bounds-checked — but a wrong one
/// gives wrong values.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a mapped file",
    label = "`{Self}` does not implement `MappedState`",
    note = "add `#[derive(MappedState)]` to `{Self}`, or use a supported type: an integer, a float, `bool`, `char`, `[T; N]`, `FixedStr<N>`, or a struct or fieldless enum that derives `MappedState`"
)]
pub trait MappedState: Sized {
    /// Description of the type: kind, size and alignment. The manifest and schema hash derive from it.
    const TYPE: &'static TypeDesc;

    /// The schema hash: FNV-1a 64 of the type's manifest. Stable across builds and compilers;
    /// changes whenever a name, kind, offset, size or enum variant changes.
    const SCHEMA_HASH: u64 = crate::schema::schema_hash(Self::TYPE);

    /// Whether the type's memory is its encoding, so that readers fill a value straight from the
    /// mapping and writers store straight from it (see [`InPlace`]). `None` (the default) means
    /// every read decodes from a copy of the bytes and every write encodes into one.
    const IN_PLACE: Option<InPlace> = None;

    /// Writes the value's bytes into `out`, which is exactly `TYPE.size` bytes long and zeroed.
    fn encode(&self, out: &mut [u8]);

    /// Reads a value from `bytes`, exactly `TYPE.size` bytes long, validating it.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;

    /// Checks that `bytes` (exactly `TYPE.size` long) hold a valid value without building one:
    /// `Ok` exactly when [`decode`](Self::decode) would succeed. The provided version decodes.
    fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
        Self::decode(bytes).map(drop)
    }

    /// Reads `[Self; N]` from `bytes` (`N * TYPE.size` long): how `<[Self; N]>::decode` works.
    ///
    /// The provided version builds the array element by element through `Option`s, which works
    /// for any type but costs a few nanoseconds per element. The runtime's `Copy` types override
    /// it to fill a zeroed array in place, several times faster for large arrays. Implementations
    /// must give the same result as decoding each element with [`decode`](Self::decode).
    #[doc(hidden)]
    fn decode_array<const N: usize>(bytes: &[u8]) -> Result<[Self; N], DecodeError> {
        decode_array_by_element(bytes)
    }
}

/// Proof that a type's memory is its file encoding: what lets a read copy words from the mapping
/// straight into a value (and a write store straight from one), instead of decoding from a copy.
///
/// It can only be made with `unsafe` ([`InPlace::new`]); `#[derive(MappedState)]` makes it, with
/// compile-time checks of the offsets rustc chose, for structs whose every field is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InPlace {
    validates: bool,
    padded: bool,
}

impl InPlace {
    /// The proof for a type `T`.
    ///
    /// # Safety
    ///
    /// - `size_of::<T>() == T::TYPE.size`, and the encoding of every value is its memory: each
    ///   byte of the encoding is the byte at the same offset of the value, except padding bytes,
    ///   which the encoding holds as zero.
    /// - If `validates` is false, every byte pattern of `T::TYPE.size` bytes is a valid `T`. If it
    ///   is true, every byte pattern for which `T::validate` returns `Ok` is a valid `T` (padding
    ///   bytes being arbitrary).
    /// - If `padded` is false, `T` has no padding: every byte of every valid `T` is initialized.
    pub const unsafe fn new(validates: bool, padded: bool) -> Self {
        InPlace { validates, padded }
    }

    /// Whether bytes must be checked with `validate` before they are taken for a value.
    pub const fn validates(self) -> bool {
        self.validates
    }

    /// Whether the type has padding (then its memory is never read as bytes).
    pub const fn padded(self) -> bool {
        self.padded
    }

    /// The proof for `[T; N]`, from the proof for `T`: an array's elements are `size_of::<T>()`
    /// apart with no padding between them, as in the encoding.
    pub const fn array(elem: Option<InPlace>) -> Option<InPlace> {
        elem
    }
}

/// `decode_array` for any element type: decodes each element, stopping at the first error.
fn decode_array_by_element<T: MappedState, const N: usize>(
    bytes: &[u8],
) -> Result<[T; N], DecodeError> {
    let stride = T::TYPE.size;
    let mut err = None;
    let arr = ::core::array::from_fn(|i| {
        if err.is_some() {
            return None;
        }
        match T::decode(&bytes[i * stride..(i + 1) * stride]) {
            Ok(v) => Some(v),
            Err(e) => {
                err = Some(e.in_index(i, stride));
                None
            }
        }
    });
    match err {
        Some(e) => Err(e),
        // Every element is `Some` when no error was recorded.
        None => Ok(arr.map(|v: Option<T>| v.expect("element decoded"))),
    }
}

/// `decode_array` for `Copy` types with a cheap first value: fills `[first; N]` in place.
pub(crate) fn decode_array_in_place<T: MappedState + Copy, const N: usize>(
    bytes: &[u8],
    first: T,
) -> Result<[T; N], DecodeError> {
    let stride = T::TYPE.size;
    let mut out = [first; N];
    for (i, (slot, chunk)) in out.iter_mut().zip(bytes.chunks_exact(stride)).enumerate() {
        *slot = T::decode(chunk).map_err(|e| e.in_index(i, stride))?;
    }
    Ok(out)
}

/// Bytes that are not a valid value of the type they are read as.
///
/// `field` is the path of the offending value inside the payload (`limits.max[3]`), empty for the
/// top-level value; `offset` is its byte offset inside the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Path of the invalid value: field names joined with `.`, array indices in brackets.
    pub field: String,
    /// Byte offset of the invalid value inside the payload.
    pub offset: usize,
    /// The invalid bytes.
    pub bytes: Vec<u8>,
    /// What a valid value looks like (`"bool (0 or 1)"`).
    pub expected: String,
}

impl DecodeError {
    /// An invalid value at offset 0 of the bytes being decoded.
    pub fn new(bytes: &[u8], expected: impl Into<String>) -> Self {
        DecodeError {
            field: String::new(),
            offset: 0,
            bytes: bytes.to_vec(),
            expected: expected.into(),
        }
    }

    /// Re-anchors an error from a field decoded at `offset` inside a struct.
    pub fn in_field(mut self, name: &str, offset: usize) -> Self {
        self.field = if self.field.is_empty() {
            name.to_owned()
        } else if self.field.starts_with('[') {
            format!("{name}{}", self.field)
        } else {
            format!("{name}.{}", self.field)
        };
        self.offset += offset;
        self
    }

    /// Re-anchors an error from element `index` of an array whose elements are `stride` bytes.
    pub fn in_index(mut self, index: usize, stride: usize) -> Self {
        self.field = if self.field.is_empty() || self.field.starts_with('[') {
            format!("[{index}]{}", self.field)
        } else {
            format!("[{index}].{}", self.field)
        };
        self.offset += index * stride;
        self
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = if self.field.is_empty() {
            "value"
        } else {
            &self.field
        };
        write!(
            f,
            "field `{field}` at payload byte {} holds {:02x?}, expected {}",
            self.offset, self.bytes, self.expected
        )
    }
}

impl std::error::Error for DecodeError {}

/// Marker for field types whose every bit pattern is valid (integers, floats and arrays of them).
/// Their accessors return the value itself rather than a `Result`.
pub trait Plain: MappedState {
    /// Decodes `bytes` (exactly `TYPE.size` long); cannot fail.
    fn decode_plain(bytes: &[u8]) -> Self;
}

macro_rules! impl_number {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl MappedState for $t {
            const TYPE: &'static TypeDesc = &TypeDesc::prim(Prim::$p);
            // SAFETY: a number's memory is its native-endian bytes, which is its encoding; every
            // bit pattern is a valid number; numbers have no padding.
            const IN_PLACE: Option<InPlace> = Some(unsafe { InPlace::new(false, false) });

            #[inline]
            fn encode(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }

            #[inline]
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                Ok(<$t as Plain>::decode_plain(bytes))
            }

            #[inline]
            fn decode_array<const N: usize>(bytes: &[u8]) -> Result<[Self; N], DecodeError> {
                decode_array_in_place(bytes, 0 as $t)
            }
        }

        impl Plain for $t {
            #[inline]
            fn decode_plain(bytes: &[u8]) -> Self {
                let mut b = [0u8; ::core::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_ne_bytes(b)
            }
        }
    )*};
}

impl_number!(
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    f32 => F32, f64 => F64,
);

impl MappedState for bool {
    const TYPE: &'static TypeDesc = &TypeDesc::prim(Prim::Bool);
    // SAFETY: a `bool` is one byte, 0 or 1, which is its encoding; `validate` (via `decode`)
    // accepts exactly 0 and 1; it has no padding.
    const IN_PLACE: Option<InPlace> = Some(unsafe { InPlace::new(true, false) });

    #[inline]
    fn encode(&self, out: &mut [u8]) {
        out[0] = u8::from(*self);
    }

    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::new(bytes, "bool (0 or 1)")),
        }
    }
    #[inline]
    fn decode_array<const N: usize>(bytes: &[u8]) -> Result<[Self; N], DecodeError> {
        decode_array_in_place(bytes, false)
    }
}

impl MappedState for char {
    const TYPE: &'static TypeDesc = &TypeDesc::prim(Prim::Char);
    // SAFETY: a `char` is its `u32` scalar value in native byte order, which is its encoding;
    // `validate` (via `decode`) accepts exactly the Unicode scalar values; it has no padding.
    const IN_PLACE: Option<InPlace> = Some(unsafe { InPlace::new(true, false) });

    #[inline]
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(&u32::from(*self).to_ne_bytes());
    }

    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        char::from_u32(u32::decode_plain(bytes))
            .ok_or_else(|| DecodeError::new(bytes, "char (a Unicode scalar value)"))
    }
    #[inline]
    fn decode_array<const N: usize>(bytes: &[u8]) -> Result<[Self; N], DecodeError> {
        decode_array_in_place(bytes, '\0')
    }
}

/// Description of `[T; N]`, built in a const so the reference is `'static`.
struct ArrayDesc<T, const N: usize>(T);

impl<T: MappedState, const N: usize> ArrayDesc<T, N> {
    const DESC: TypeDesc = TypeDesc {
        kind: Kind::Array {
            elem: T::TYPE,
            len: N,
        },
        size: T::TYPE.size * N,
        align: T::TYPE.align,
    };
}

impl<T: MappedState, const N: usize> MappedState for [T; N] {
    const TYPE: &'static TypeDesc = &ArrayDesc::<T, N>::DESC;
    const IN_PLACE: Option<InPlace> = InPlace::array(T::IN_PLACE);

    fn encode(&self, out: &mut [u8]) {
        let stride = T::TYPE.size;
        for (item, chunk) in self.iter().zip(out.chunks_exact_mut(stride.max(1))) {
            item.encode(chunk);
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        T::decode_array::<N>(bytes)
    }

    fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
        let stride = T::TYPE.size;
        if stride == 0 {
            return Ok(());
        }
        for (i, chunk) in bytes.chunks_exact(stride).enumerate() {
            T::validate(chunk).map_err(|e| e.in_index(i, stride))?;
        }
        Ok(())
    }
}

impl<T: Plain, const N: usize> Plain for [T; N] {
    fn decode_plain(bytes: &[u8]) -> Self {
        let stride = T::TYPE.size;
        ::core::array::from_fn(|i| T::decode_plain(&bytes[i * stride..(i + 1) * stride]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_decoding_names_the_first_invalid_element_on_both_paths() {
        // `bool` fills a zeroed array in place; `[bool; 2]` goes element by element.
        let e = <[bool; 4]>::decode(&[1, 0, 7, 9]).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.offset, e.bytes.as_slice()),
            ("[2]", 2, &[7u8][..])
        );
        let e = <[[bool; 2]; 2]>::decode(&[1, 0, 0, 3]).unwrap_err();
        assert_eq!((e.field.as_str(), e.offset), ("[1][1]", 3));
        let mut chars = [0u8; 12];
        chars[4..8].copy_from_slice(&0xD800u32.to_ne_bytes());
        let e = <[char; 3]>::decode(&chars).unwrap_err();
        assert_eq!((e.field.as_str(), e.offset), ("[1]", 4));
        assert_eq!(
            <[u16; 3]>::decode(&[1, 0, 2, 0, 3, 0]).unwrap(),
            [1, 2, 3].map(u16::from_le)
        );
        assert_eq!(
            <[[bool; 2]; 2]>::decode(&[1, 0, 0, 1]).unwrap(),
            [[true, false], [false, true]]
        );
    }
}
