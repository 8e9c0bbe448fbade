//! Helpers that `#[derive(MappedState)]`'s generated code needs at compile time (layout mirror
//! slots, const-built panic messages) and at run time (the enum decode error). Reached through
//! `__private`; not a public API.

use crate::schema::EnumDesc;
use crate::state::{DecodeError, MappedState};

/// Every mention of a field type in generated code goes through `<F as FieldType>::Ty` (which is
/// `F`). When `F` does not implement `MappedState`, rustc then reports one error at the field's
/// type and treats the projection as an error type everywhere else, instead of one error per
/// use (encode, decode, accessor, setter, layout constants).
pub trait FieldType {
    /// The field type itself.
    type Ty: MappedState;
}

impl<T: MappedState> FieldType for T {
    type Ty = T;
}

/// Names an alignment so a const generic can select a marker type with exactly that alignment.
#[derive(Debug)]
pub struct Align<const N: usize>;

/// Maps `Align<N>` to a zero-sized type aligned to `N`.
pub trait AlignMarker {
    /// A zero-sized type whose alignment is `N`.
    type Marker: Copy + core::fmt::Debug;
}

macro_rules! align_markers {
    ($($name:ident = $n:literal),* $(,)?) => {$(
        /// A zero-sized type with this alignment.
        #[derive(Clone, Copy, Debug)]
        #[repr(align($n))]
        pub struct $name;

        impl AlignMarker for Align<$n> {
            type Marker = $name;
        }
    )*};
}

// Up to 64: the largest payload alignment the format accepts (`format::MAX_ALIGN`).
align_markers!(A1 = 1, A2 = 2, A4 = 4, A8 = 8, A16 = 16, A32 = 32, A64 = 64);

/// A type of exactly `SIZE` bytes aligned to `ALIGN` (when `SIZE` is a multiple of `ALIGN`, as
/// every `TypeDesc` size is). The derive builds a hidden `#[repr(C)]` mirror of each struct out of
/// one slot per field, so rustc's own C layout checks the offsets the macro computed.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Slot<const SIZE: usize, const ALIGN: usize>
where
    Align<ALIGN>: AlignMarker,
{
    _align: [<Align<ALIGN> as AlignMarker>::Marker; 0],
    _bytes: [u8; SIZE],
}

/// Capacity of a [`ConstMsg`]; longer messages are cut at a piece boundary.
const MSG_CAP: usize = 512;

/// A message assembled in a `const` context, for compile-time layout errors that must print
/// values only the compiler knows (the actual schema hash, the actual size).
#[derive(Clone, Copy, Debug)]
pub struct ConstMsg {
    buf: [u8; MSG_CAP],
    len: usize,
}

impl ConstMsg {
    /// The empty message.
    pub const fn new() -> Self {
        ConstMsg {
            buf: [0; MSG_CAP],
            len: 0,
        }
    }

    const fn push_bytes(mut self, b: &[u8]) -> Self {
        // Whole pieces only, so the buffer always holds valid UTF-8.
        if self.len + b.len() > MSG_CAP {
            return self;
        }
        let mut i = 0;
        while i < b.len() {
            self.buf[self.len] = b[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Appends `s`.
    pub const fn str(self, s: &str) -> Self {
        self.push_bytes(s.as_bytes())
    }

    /// Appends `v` as `0x` and 16 hex digits.
    pub const fn hex(self, v: u64) -> Self {
        self.push_bytes(&crate::schema::hex_u64(v))
    }

    /// Appends `v` in decimal.
    pub const fn num(self, v: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut n = v;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push_bytes(digits.split_at(i).1)
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.buf.split_at(self.len).0) {
            Ok(s) => s,
            // Unreachable: only whole `&str` pieces and ASCII digits are ever pushed.
            Err(_) => "invalid layout message",
        }
    }
}

impl Default for ConstMsg {
    fn default() -> Self {
        Self::new()
    }
}

/// How many variants an invalid-enum error lists before eliding the rest.
const LISTED_VARIANTS: usize = 16;

/// The error for bytes that hold none of `desc`'s discriminants: names the enum and its
/// allowed values, e.g. ``enum `Mode` (one of Idle = 0, Running = 1)``.
pub fn invalid_enum(bytes: &[u8], desc: &EnumDesc) -> DecodeError {
    let mut listed: Vec<String> = desc
        .variants
        .iter()
        .take(LISTED_VARIANTS)
        .map(|v| format!("{} = {}", v.name, v.value))
        .collect();
    if desc.variants.len() > LISTED_VARIANTS {
        listed.push(format!(
            "... {} more",
            desc.variants.len() - LISTED_VARIANTS
        ));
    }
    DecodeError::new(
        bytes,
        format!("enum `{}` (one of {})", desc.name, listed.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Prim, VariantDesc};

    #[test]
    fn slots_have_the_requested_layout() {
        assert_eq!(core::mem::size_of::<Slot<24, 8>>(), 24);
        assert_eq!(core::mem::align_of::<Slot<24, 8>>(), 8);
        assert_eq!(core::mem::size_of::<Slot<0, 1>>(), 0);
        assert_eq!(core::mem::align_of::<Slot<16, 16>>(), 16);
        assert_eq!(core::mem::align_of::<Slot<64, 64>>(), 64);
    }

    #[test]
    fn const_msg_formats_numbers_and_hex() {
        const M: ConstMsg = ConstMsg::new()
            .str("size ")
            .num(0)
            .str(", ")
            .num(1234567)
            .str(", ")
            .hex(0xdead_beef);
        assert_eq!(M.as_str(), "size 0, 1234567, 0x00000000deadbeef");
        let long = "x".repeat(MSG_CAP);
        // A piece that does not fit is dropped whole, never cut inside a character.
        assert_eq!(ConstMsg::new().str("é").str(&long).as_str(), "é");
    }

    #[test]
    fn enum_error_lists_variants() {
        static DESC: EnumDesc = EnumDesc {
            name: "Mode",
            repr: Prim::I8,
            variants: &[
                VariantDesc {
                    name: "Idle",
                    value: 0,
                },
                VariantDesc {
                    name: "Back",
                    value: -1,
                },
            ],
        };
        let e = invalid_enum(&[7], &DESC);
        assert_eq!(e.expected, "enum `Mode` (one of Idle = 0, Back = -1)");
        assert_eq!(e.bytes, vec![7]);
    }
}
