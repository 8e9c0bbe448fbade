//! Helpers that `#[derive(MappedState)]`'s generated code needs at compile time (layout mirror
//! slots, const-built panic messages) and at run time (the enum decode error). Reached through
//! `__private`; not a public API.

use crate::schema::{EnumDesc, Kind, TypeDesc};
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
const MSG_CAP: usize = 2048;

/// A message assembled in a `const` context, for compile-time layout errors that must print
/// values only the compiler knows (the actual schema hash, the actual size).
#[derive(Clone, Copy, Debug)]
pub struct ConstMsg {
    buf: [u8; MSG_CAP],
    len: usize,
    /// A piece did not fit: nothing more is appended (a later, shorter piece would read as if
    /// it followed the dropped one).
    full: bool,
}

impl ConstMsg {
    /// The empty message.
    pub const fn new() -> Self {
        ConstMsg {
            buf: [0; MSG_CAP],
            len: 0,
            full: false,
        }
    }

    const fn push_bytes(mut self, b: &[u8]) -> Self {
        // Whole pieces only, so the buffer always holds valid UTF-8.
        if self.full || self.len + b.len() > MSG_CAP {
            self.full = true;
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

/// Appends the Rust spelling of `ty` (`u32`, `[f32; 8]`, `FixedStr<32>`, a struct's or enum's
/// schema name).
const fn push_type(m: ConstMsg, ty: &TypeDesc) -> ConstMsg {
    match ty.kind {
        Kind::Prim(p) => m.str(p.name()),
        Kind::Array { elem, len } => push_type(m.str("["), elem).str("; ").num(len).str("]"),
        Kind::Str { cap } => m.str("FixedStr<").num(cap).str(">"),
        Kind::Struct(s) => m.str(s.name),
        Kind::Enum(e) => m.str(e.name),
    }
}

/// The body of the error for a pinned schema hash (`#[mapped_state(schema_hash = ...)]`) that
/// is not `ty`'s: which fields (or variants) changed, as far as the pinned hash tells. If the
/// pinned hash is that of `ty` with its last fields left out, those fields were appended (a
/// compatible change, named); otherwise something before them changed, and the message lists
/// the current layout to compare with the old one.
pub const fn explain_pin(m: ConstMsg, ty: &TypeDesc, pinned: u64) -> ConstMsg {
    let (count, what) = match ty.kind {
        Kind::Struct(s) => (s.fields.len(), "field"),
        Kind::Enum(e) => (e.variants.len(), "variant"),
        _ => (0, ""),
    };
    let mut keep = 0;
    let mut found = false;
    while keep < count {
        if crate::schema::prefix_hash(ty, keep) == pinned {
            found = true;
            break;
        }
        keep += 1;
    }
    let mut m = m;
    if found {
        m = m.str(": the pinned hash is this type's without its last ");
        m = m
            .num(count - keep)
            .str(" ")
            .str(what)
            .str(if count - keep == 1 { "" } else { "s" });
        m = m.str(", so these were appended: ");
        let mut i = keep;
        while i < count {
            if i > keep {
                m = m.str(", ");
            }
            m = m.str("`");
            m = match ty.kind {
                Kind::Struct(s) => {
                    let f = &s.fields[i];
                    push_type(m.str(f.name).str(": "), f.ty)
                        .str(" @")
                        .num(f.offset)
                }
                Kind::Enum(e) => m.str(e.variants[i].name),
                _ => m,
            };
            m = m.str("`");
            i += 1;
        }
        m = m.str(". Appending is a compatible change: readers of the old layout keep reading new files, and this type reads old files if the appended fields declare defaults (`#[mapped_state(default ...)]`); a writer migrates an old file with `Writer::open_migrating`. Pin `schema_hash = ");
    } else {
        m = m.str(": no earlier version of it made by appending has the pinned hash, so a field (or variant) that was there changed its name, type, offset or value, or was removed, or the type was renamed; files of the pinned layout will not open as this type (see `mapped-state diff OLD NEW`). It is now ");
        match ty.kind {
            Kind::Struct(s) => {
                m = m.str("`").str(s.name).str(" { ");
                let mut i = 0;
                while i < s.fields.len() {
                    let f = &s.fields[i];
                    if i > 0 {
                        m = m.str(", ");
                    }
                    m = push_type(m.str(f.name).str(": "), f.ty)
                        .str(" @")
                        .num(f.offset);
                    i += 1;
                }
                m = m.str(" }` (").num(ty.size).str(" bytes)");
            }
            Kind::Enum(e) => {
                m = m.str("`").str(e.name).str(" { ");
                let mut i = 0;
                while i < e.variants.len() {
                    if i > 0 {
                        m = m.str(", ");
                    }
                    let v = e.variants[i].value;
                    m = m.str(e.variants[i].name).str(" = ");
                    m = if v < 0 {
                        m.str("-").num(v.unsigned_abs() as usize)
                    } else {
                        m.num(v as usize)
                    };
                    i += 1;
                }
                m = m.str(" }`");
            }
            _ => m = push_type(m.str("`"), ty).str("`"),
        }
        m = m.str(". If the change is intended, pin `schema_hash = ");
    }
    m
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
