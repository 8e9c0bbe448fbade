//! `FixedStr<N>`: a UTF-8 string of at most `N` bytes that fits in a fixed-size mapped field.

use crate::schema::{Kind, TypeDesc};
use crate::state::{DecodeError, MappedState};

/// A UTF-8 string of at most `N` bytes, stored inline.
///
/// In a state file it is a native-endian `u32` byte length followed by `N` bytes; bytes past the
/// length are zero. Decoding checks that the length is at most `N` and the bytes are UTF-8.
///
/// ```
/// use mapped_state::FixedStr;
/// let s = FixedStr::<16>::new("ready").unwrap();
/// assert_eq!(s.as_str(), "ready");
/// assert!(FixedStr::<2>::new("too long").is_err());
/// // `truncate` cuts at a character boundary instead of failing.
/// assert_eq!(FixedStr::<4>::truncate("héllo").as_str(), "hél");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FixedStr<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

/// A string longer than the `FixedStr` capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "string of {len} bytes does not fit in FixedStr<{cap}>; shorten it or use FixedStr::truncate"
)]
pub struct TooLong {
    /// Length of the rejected string in bytes.
    pub len: usize,
    /// Capacity of the `FixedStr`.
    pub cap: usize,
}

impl<const N: usize> FixedStr<N> {
    /// The empty string.
    pub const EMPTY: Self = FixedStr {
        len: 0,
        bytes: [0; N],
    };

    /// `s` if it fits in `N` bytes.
    pub fn new(s: &str) -> Result<Self, TooLong> {
        if s.len() > N {
            return Err(TooLong {
                len: s.len(),
                cap: N,
            });
        }
        let mut bytes = [0u8; N];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(FixedStr {
            len: s.len() as u32,
            bytes,
        })
    }

    /// The longest prefix of `s` that fits in `N` bytes and ends on a character boundary.
    pub fn truncate(s: &str) -> Self {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        match Self::new(&s[..end]) {
            Ok(v) => v,
            Err(_) => Self::EMPTY,
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // `len <= N` and the bytes are UTF-8: both are checked by every constructor and `decode`.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes.
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> std::ops::Deref for FixedStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for FixedStr<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> std::fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> std::fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> TryFrom<&str> for FixedStr<N> {
    type Error = TooLong;
    fn try_from(s: &str) -> Result<Self, TooLong> {
        Self::new(s)
    }
}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> From<FixedStr<N>> for String {
    fn from(s: FixedStr<N>) -> String {
        s.as_str().to_owned()
    }
}

struct StrDesc<const N: usize>;

impl<const N: usize> StrDesc<N> {
    const DESC: TypeDesc = TypeDesc {
        kind: Kind::Str { cap: N },
        size: crate::schema::align_up(4 + N, 4),
        align: 4,
    };
}

impl<const N: usize> MappedState for FixedStr<N> {
    const TYPE: &'static TypeDesc = &StrDesc::<N>::DESC;

    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.len.to_ne_bytes());
        out[4..4 + N].copy_from_slice(&self.bytes);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if len as usize > N {
            return Err(DecodeError::new(
                &bytes[..4],
                format!("string length at most {N}"),
            ));
        }
        let text = &bytes[4..4 + len as usize];
        if let Err(e) = std::str::from_utf8(text) {
            let at = 4 + e.valid_up_to();
            let end = (at + 4).min(4 + len as usize);
            let mut err = DecodeError::new(&bytes[at..end], "UTF-8 text");
            err.offset = at;
            return Err(err);
        }
        let mut out = [0u8; N];
        out[..len as usize].copy_from_slice(text);
        Ok(FixedStr { len, bytes: out })
    }

    fn decode_array<const M: usize>(bytes: &[u8]) -> Result<[Self; M], DecodeError> {
        crate::state::decode_array_in_place(bytes, Self::EMPTY)
    }
}
