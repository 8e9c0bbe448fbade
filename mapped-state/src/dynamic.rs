//! Untyped decoding: a payload read through the `manifest::Type` stored in its file into a
//! [`Value`] tree, so tools (the `mapped-state` CLI) can show any state file with no Rust type.
//!
//! The manifest has been validated by [`Type::from_manifest`], but the payload bytes are
//! untrusted: every `bool`, `char`, enum and string is checked, and an invalid one gives the same
//! [`DecodeError`] (field path, payload offset, bytes, expectation) the typed `decode` would.
//! A `Type` built by hand whose sizes or offsets disagree with the bytes also gives an error,
//! never a panic.
//!
//! Cost is bounded by the payload, not by what the manifest claims: names are shared with the
//! `Type` (`Arc<str>`, never copied per value), enum variants are found by binary search, and the
//! tree one [`decode`] builds is held to a byte budget ([`decode_budget`]). [`validate`] checks
//! the same values without building anything.

use std::fmt;
use std::sync::Arc;

use crate::manifest::{Type, TypeKind};
use crate::schema::Prim;
use crate::state::DecodeError;

/// Serializes a value of a `Type` straight from payload bytes (feature `serde`).
#[cfg(feature = "serde")]
pub use crate::serde_impls::ValueRef;

/// Bytes of decoded tree [`decode`] may build per payload byte, on top of [`DECODE_BASE`].
///
/// 32 is one [`Value`] per payload byte, so a `[u8; N]` fits; since a file holds at least two
/// copies of its payload, the tree stays within 16 times the file. Trees that need more (a
/// manifest may declare `[Empty; 4_000_000_000]` in no bytes, or nest one byte in 32 structs)
/// are refused with a [`DecodeError`]; [`validate`] checks any payload with no allocation.
pub const DECODE_BYTES_PER_BYTE: usize = 32;
/// Bytes of decoded tree [`decode`] may always build, whatever the payload's size.
pub const DECODE_BASE: usize = 16 << 20;

/// What [`decode`] may allocate for `payload_len` bytes: `DECODE_BASE + 32 * payload_len`.
pub fn decode_budget(payload_len: usize) -> usize {
    DECODE_BASE.saturating_add(DECODE_BYTES_PER_BYTE.saturating_mul(payload_len))
}

/// What the allocator is charged for one heap block beyond its bytes: a budget that counted only
/// element sizes would let a million one-field structs through for free.
const BLOCK_OVERHEAD: usize = 16;

/// A decoded value of any mapped type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `u8`, `u16`, `u32` or `u64`.
    Unsigned(u64),
    /// `i8`, `i16`, `i32` or `i64`.
    Signed(i64),
    /// `u128`.
    U128(u128),
    /// `i128`.
    I128(i128),
    /// `f32`.
    F32(f32),
    /// `f64`.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// `char`.
    Char(char),
    /// A fieldless enum: the variant's name and discriminant.
    Enum {
        /// Variant name, shared with the manifest's `Type`.
        variant: Arc<str>,
        /// Discriminant.
        value: i64,
    },
    /// `FixedStr<N>`.
    Str(String),
    /// `[T; N]`.
    Array(Vec<Value>),
    /// A struct: `(field name, value)` in offset order; names are shared with the `Type`.
    Struct(Vec<(Arc<str>, Value)>),
}

/// Decodes `bytes` (the payload, `ty.size` long) as a value of `ty`.
///
/// ```
/// use mapped_state::{dynamic::{self, Value}, manifest::Type, MappedState};
/// let ty = Type::from_desc(<[bool; 2]>::TYPE);
/// assert_eq!(
///     dynamic::decode(&ty, &[1, 0]).unwrap(),
///     Value::Array(vec![Value::Bool(true), Value::Bool(false)])
/// );
/// let err = dynamic::decode(&ty, &[1, 7]).unwrap_err();
/// assert_eq!((err.field.as_str(), err.offset), ("[1]", 1));
/// ```
pub fn decode(ty: &Type, bytes: &[u8]) -> Result<Value, DecodeError> {
    check_len(ty, bytes)?;
    let mut budget = Budget {
        left: decode_budget(bytes.len()),
        limit: decode_budget(bytes.len()),
    };
    decode_in(ty, bytes, &mut budget)
}

/// Checks that `bytes` (the payload, `ty.size` long) hold a valid value of `ty`: the same
/// checks and the same [`DecodeError`] as [`decode`], without building the value, in time linear
/// in `bytes.len()` plus the size of `ty`.
///
/// ```
/// use mapped_state::{dynamic, manifest::Type, MappedState};
/// let ty = Type::from_desc(<[bool; 2]>::TYPE);
/// assert!(dynamic::validate(&ty, &[1, 0]).is_ok());
/// assert_eq!(dynamic::validate(&ty, &[1, 7]).unwrap_err().field, "[1]");
/// ```
pub fn validate(ty: &Type, bytes: &[u8]) -> Result<(), DecodeError> {
    check_len(ty, bytes)?;
    validate_in(ty, bytes)
}

fn check_len(ty: &Type, bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() != ty.size {
        return Err(DecodeError::new(
            &bytes[..bytes.len().min(16)],
            format!("{} bytes of `{}`, got {}", ty.size, ty.name(), bytes.len()),
        ));
    }
    Ok(())
}

/// Bytes the decoded tree may still take.
struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    /// Charges a heap block of `n` items of `T`, before it is allocated.
    fn charge<T>(&mut self, n: usize) -> Result<(), DecodeError> {
        if n == 0 {
            return Ok(());
        }
        let cost = n
            .saturating_mul(std::mem::size_of::<T>())
            .saturating_add(BLOCK_OVERHEAD);
        if cost > self.left {
            return Err(DecodeError::new(
                &[],
                format!(
                    "a decoded value of at most {} bytes for this payload; \
                     use `dynamic::validate` to check it without building it",
                    self.limit
                ),
            ));
        }
        self.left -= cost;
        Ok(())
    }
}

/// The sub-slice `at..at + len`, or the error for a `Type` whose layout does not fit the bytes.
fn span(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], DecodeError> {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| {
            let mut e = DecodeError::new(
                &[],
                format!(
                    "{len} bytes at byte {at}, but the value is {} bytes long",
                    bytes.len()
                ),
            );
            e.offset = at.min(bytes.len());
            e
        })
}

fn decode_in(ty: &Type, bytes: &[u8], budget: &mut Budget) -> Result<Value, DecodeError> {
    match &ty.kind {
        TypeKind::Prim(p) => prim(*p, span(bytes, 0, p.size())?),
        TypeKind::Enum {
            name,
            repr,
            variants,
        } => {
            let b = span(bytes, 0, repr.size())?;
            let value = discriminant(*repr, b)?;
            match variants.find(value) {
                Some((variant, _)) => Ok(Value::Enum {
                    variant: variant.clone(),
                    value,
                }),
                None => Err(DecodeError::new(b, enum_expectation(name, variants))),
            }
        }
        TypeKind::Str { cap } => {
            let s = string(*cap, bytes)?;
            budget.charge::<u8>(s.len())?;
            Ok(Value::Str(s.to_owned()))
        }
        TypeKind::Array { elem, len } => {
            let stride = elem.size;
            // Sized elements past the end of the bytes fail in `span` below, so only those that
            // fit are allocated (and charged); zero-sized ones are all charged up front.
            let fit = match stride {
                0 => *len,
                _ => (*len).min(bytes.len() / stride),
            };
            budget.charge::<Value>(fit)?;
            let mut items = Vec::with_capacity(fit);
            for i in 0..*len {
                let at = i.saturating_mul(stride);
                let item = span(bytes, at, stride)
                    .and_then(|b| decode_in(elem, b, budget))
                    .map_err(|e| e.in_index(i, stride))?;
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        TypeKind::Struct { fields, .. } => {
            budget.charge::<(Arc<str>, Value)>(fields.len())?;
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                let v = span(bytes, f.offset, f.ty.size)
                    .and_then(|b| decode_in(&f.ty, b, budget))
                    .map_err(|e| e.in_field(&f.name, f.offset))?;
                out.push((f.name.clone(), v));
            }
            Ok(Value::Struct(out))
        }
    }
}

fn validate_in(ty: &Type, bytes: &[u8]) -> Result<(), DecodeError> {
    match &ty.kind {
        TypeKind::Prim(p) => prim(*p, span(bytes, 0, p.size())?).map(drop),
        TypeKind::Enum {
            name,
            repr,
            variants,
        } => {
            let b = span(bytes, 0, repr.size())?;
            match variants.find(discriminant(*repr, b)?) {
                Some(_) => Ok(()),
                None => Err(DecodeError::new(b, enum_expectation(name, variants))),
            }
        }
        TypeKind::Str { cap } => string(*cap, bytes).map(drop),
        TypeKind::Array { elem, len } => {
            let stride = elem.size;
            for i in 0..*len {
                // A sized element past the end errors here, so the loop is bounded by the bytes.
                let at = i.saturating_mul(stride);
                span(bytes, at, stride)
                    .and_then(|b| validate_in(elem, b))
                    .map_err(|e| e.in_index(i, stride))?;
                if stride == 0 {
                    // Every further element is the same empty slice of the same type, so it
                    // validates the same: this is what keeps `[Empty; 4_000_000_000]` from
                    // costing four billion steps.
                    break;
                }
            }
            Ok(())
        }
        TypeKind::Struct { fields, .. } => {
            for f in fields {
                span(bytes, f.offset, f.ty.size)
                    .and_then(|b| validate_in(&f.ty, b))
                    .map_err(|e| e.in_field(&f.name, f.offset))?;
            }
            Ok(())
        }
    }
}

/// `b` is exactly `N` bytes: `span` took `p.size()` of them.
fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

fn prim(p: Prim, b: &[u8]) -> Result<Value, DecodeError> {
    Ok(match p {
        Prim::U8 => Value::Unsigned(u64::from(b[0])),
        Prim::U16 => Value::Unsigned(u64::from(u16::from_ne_bytes(arr(b)))),
        Prim::U32 => Value::Unsigned(u64::from(u32::from_ne_bytes(arr(b)))),
        Prim::U64 => Value::Unsigned(u64::from_ne_bytes(arr(b))),
        Prim::U128 => Value::U128(u128::from_ne_bytes(arr(b))),
        Prim::I8 => Value::Signed(i64::from(b[0] as i8)),
        Prim::I16 => Value::Signed(i64::from(i16::from_ne_bytes(arr(b)))),
        Prim::I32 => Value::Signed(i64::from(i32::from_ne_bytes(arr(b)))),
        Prim::I64 => Value::Signed(i64::from_ne_bytes(arr(b))),
        Prim::I128 => Value::I128(i128::from_ne_bytes(arr(b))),
        Prim::F32 => Value::F32(f32::from_ne_bytes(arr(b))),
        Prim::F64 => Value::F64(f64::from_ne_bytes(arr(b))),
        // The expectations match the typed decoders', so both report a bad value identically.
        Prim::Bool => match b[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(DecodeError::new(b, "bool (0 or 1)")),
        },
        Prim::Char => match char::from_u32(u32::from_ne_bytes(arr(b))) {
            Some(c) => Value::Char(c),
            None => return Err(DecodeError::new(b, "char (a Unicode scalar value)")),
        },
    })
}

/// The discriminant stored in `b` (an enum representation, `repr.size()` bytes), sign-extended.
fn discriminant(repr: Prim, b: &[u8]) -> Result<i64, DecodeError> {
    match prim(repr, b)? {
        Value::Unsigned(v) => Ok(v as i64),
        Value::Signed(v) => Ok(v),
        // `Type::from_manifest` admits only integer representations of at most 32 bits.
        _ => Err(DecodeError::new(
            b,
            format!("an enum representation, not `{}`", repr.name()),
        )),
    }
}

/// "enum `Mode` (one of Idle = 0, Running = 1, Fault = 2)", listing at most 16 variants: the
/// derive's wording (`derive_support::invalid_enum`), so typed and untyped readers report a bad
/// discriminant identically.
fn enum_expectation(name: &str, variants: &[(Arc<str>, i64)]) -> String {
    const SHOWN: usize = 16;
    let mut list: Vec<String> = variants
        .iter()
        .take(SHOWN)
        .map(|(n, v)| format!("{n} = {v}"))
        .collect();
    if variants.len() > SHOWN {
        list.push(format!("... {} more", variants.len() - SHOWN));
    }
    format!("enum `{name}` (one of {})", list.join(", "))
}

/// `FixedStr<cap>`: a `u32` length at most `cap`, then that many bytes of UTF-8.
fn string(cap: usize, bytes: &[u8]) -> Result<&str, DecodeError> {
    let len_bytes = span(bytes, 0, 4)?;
    let len = u32::from_ne_bytes(arr(len_bytes)) as usize;
    if len > cap {
        return Err(DecodeError::new(
            len_bytes,
            format!("string length at most {cap}"),
        ));
    }
    let text = span(bytes, 4, len)?;
    match std::str::from_utf8(text) {
        Ok(s) => Ok(s),
        Err(e) => {
            let at = e.valid_up_to();
            let mut err = DecodeError::new(&text[at..(at + 4).min(len)], "UTF-8 text");
            err.offset = 4 + at;
            Err(err)
        }
    }
}

/// Writes `name` with control characters escaped, so a name from an untrusted manifest cannot
/// break a line or send terminal escape sequences.
pub fn write_name<W: fmt::Write + ?Sized>(f: &mut W, name: &str) -> fmt::Result {
    // `escape_debug` also escapes quotes and backslashes, which are harmless in a name.
    let escaped = |c: char| c.is_control() || (c.escape_debug().len() > 1 && !"\\\"'".contains(c));
    // Names are written once per line of output, and may be 65,535 bytes: one write when
    // nothing needs escaping (printable ASCII never does).
    if name.bytes().all(|b| (0x20..0x7f).contains(&b)) || !name.chars().any(escaped) {
        return f.write_str(name);
    }
    for c in name.chars() {
        if escaped(c) {
            write!(f, "{}", c.escape_debug())?;
        } else {
            f.write_char(c)?;
        }
    }
    Ok(())
}

/// Rust-like text: `3100`, `81.5`, `true`, `'A'`, `Running`, `"engine-1"`, `[1.0, 2.0]`,
/// `{ min_rpm: 0, max_rpm: 7000 }`. Floats always show a decimal point or exponent; strings
/// and chars are quoted with escapes; names are written with control characters escaped.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unsigned(v) => write!(f, "{v}"),
            Value::Signed(v) => write!(f, "{v}"),
            Value::U128(v) => write!(f, "{v}"),
            Value::I128(v) => write!(f, "{v}"),
            // Debug is the shortest round-trip form with `.0` and exponents (`1e30`, not 31 digits).
            Value::F32(v) => write!(f, "{v:?}"),
            Value::F64(v) => write!(f, "{v:?}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Char(c) => write!(f, "{c:?}"),
            Value::Enum { variant, .. } => write_name(f, variant),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Struct(fields) => {
                if fields.is_empty() {
                    return f.write_str("{}");
                }
                f.write_str("{ ")?;
                for (i, (n, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_name(f, n)?;
                    write!(f, ": {v}")?;
                }
                f.write_str(" }")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Field;
    use crate::{FixedStr, MappedState};

    fn prim_ty(p: Prim) -> Type {
        Type::from_desc(&crate::schema::TypeDesc::prim(p))
    }

    fn mode() -> Type {
        Type {
            kind: TypeKind::Enum {
                name: "Mode".into(),
                repr: Prim::U8,
                variants: vec![
                    ("Idle".into(), 0),
                    ("Running".into(), 1),
                    ("Fault".into(), 7),
                ]
                .into(),
            },
            size: 1,
            align: 1,
        }
    }

    fn field(name: &str, offset: usize, ty: Type) -> Field {
        Field {
            name: name.into(),
            offset,
            ty,
        }
    }

    /// `Outer { id: u128 @0, temp: i16 @16, mode: Mode @18, ok: bool @19, grade: char @20,
    /// label: FixedStr<5> @24, inner: Inner { n: i8 @0, xs: [bool; 3] @1 } @36 }`, 48 bytes.
    fn outer() -> Type {
        let inner = Type {
            kind: TypeKind::Struct {
                name: "Inner".into(),
                fields: vec![
                    field("n", 0, prim_ty(Prim::I8)),
                    field("xs", 1, Type::from_desc(<[bool; 3]>::TYPE)),
                ],
            },
            size: 4,
            align: 1,
        };
        Type {
            kind: TypeKind::Struct {
                name: "Outer".into(),
                fields: vec![
                    field("id", 0, prim_ty(Prim::U128)),
                    field("temp", 16, prim_ty(Prim::I16)),
                    field("mode", 18, mode()),
                    field("ok", 19, prim_ty(Prim::Bool)),
                    field("grade", 20, prim_ty(Prim::Char)),
                    field("label", 24, Type::from_desc(FixedStr::<5>::TYPE)),
                    field("inner", 36, inner),
                ],
            },
            size: 48,
            align: 16,
        }
    }

    fn outer_bytes() -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[0..16].copy_from_slice(&(u128::MAX - 1).to_ne_bytes());
        b[16..18].copy_from_slice(&(-300i16).to_ne_bytes());
        b[18] = 7;
        b[19] = 1;
        b[20..24].copy_from_slice(&u32::from('é').to_ne_bytes());
        b[24..28].copy_from_slice(&3u32.to_ne_bytes());
        b[28..31].copy_from_slice(b"abc");
        b[36] = (-5i8) as u8;
        b[37..40].copy_from_slice(&[1, 0, 1]);
        b
    }

    #[test]
    fn decodes_every_kind_with_names() {
        let v = decode(&outer(), &outer_bytes()).unwrap();
        let want = Value::Struct(vec![
            ("id".into(), Value::U128(u128::MAX - 1)),
            ("temp".into(), Value::Signed(-300)),
            (
                "mode".into(),
                Value::Enum {
                    variant: "Fault".into(),
                    value: 7,
                },
            ),
            ("ok".into(), Value::Bool(true)),
            ("grade".into(), Value::Char('é')),
            ("label".into(), Value::Str("abc".into())),
            (
                "inner".into(),
                Value::Struct(vec![
                    ("n".into(), Value::Signed(-5)),
                    (
                        "xs".into(),
                        Value::Array(vec![
                            Value::Bool(true),
                            Value::Bool(false),
                            Value::Bool(true),
                        ]),
                    ),
                ]),
            ),
        ]);
        assert_eq!(v, want);
        assert_eq!(
            v.to_string(),
            "{ id: 340282366920938463463374607431768211454, temp: -300, mode: Fault, ok: true, \
             grade: 'é', label: \"abc\", inner: { n: -5, xs: [true, false, true] } }"
        );
    }

    #[test]
    fn invalid_values_name_their_field_path_and_offset() {
        let cases: [(usize, &[u8], &str, usize, &str); 6] = [
            (
                18,
                &[3],
                "mode",
                18,
                "enum `Mode` (one of Idle = 0, Running = 1, Fault = 7)",
            ),
            (19, &[2], "ok", 19, "bool (0 or 1)"),
            (
                20,
                &0xD800u32.to_ne_bytes(),
                "grade",
                20,
                "char (a Unicode scalar value)",
            ),
            (
                24,
                &6u32.to_ne_bytes(),
                "label",
                24,
                "string length at most 5",
            ),
            (29, &[0xff], "label", 29, "UTF-8 text"),
            (38, &[9], "inner.xs[1]", 38, "bool (0 or 1)"),
        ];
        for (at, bad, path, offset, expected) in cases {
            let mut b = outer_bytes();
            b[at..at + bad.len()].copy_from_slice(bad);
            let e = decode(&outer(), &b).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.offset, e.expected.as_str()),
                (path, offset, expected),
                "corrupting byte {at}"
            );
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        let e = decode(&outer(), &[0u8; 47]).unwrap_err();
        assert!(e.expected.contains("48 bytes of `Outer`, got 47"), "{e}");
    }

    #[test]
    fn inconsistent_hand_built_type_is_an_error_not_a_panic() {
        let ty = Type {
            kind: TypeKind::Struct {
                name: "Bad".into(),
                fields: vec![field("x", 6, prim_ty(Prim::U32))],
            },
            size: 8,
            align: 4,
        };
        let e = decode(&ty, &[0u8; 8]).unwrap_err();
        assert_eq!(e.field, "x");
        let huge = Type {
            kind: TypeKind::Array {
                elem: Box::new(prim_ty(Prim::U64)),
                len: usize::MAX,
            },
            size: 8,
            align: 8,
        };
        assert_eq!(decode(&huge, &[0u8; 8]).unwrap_err().field, "[1]");
    }

    #[test]
    fn zero_sized_elements_are_bounded() {
        let empty = Type {
            kind: TypeKind::Struct {
                name: "E".into(),
                fields: vec![],
            },
            size: 0,
            align: 1,
        };
        let many = Type {
            kind: TypeKind::Array {
                elem: Box::new(empty.clone()),
                len: u32::MAX as usize,
            },
            size: 0,
            align: 1,
        };
        let e = decode(&many, &[]).unwrap_err();
        assert!(e.expected.contains("decoded value of at most"), "{e}");
        // Nothing to check in a zero-sized value, however many there are.
        assert_eq!(validate(&many, &[]), Ok(()));
        let few = Type {
            kind: TypeKind::Array {
                elem: Box::new(empty),
                len: 3,
            },
            size: 0,
            align: 1,
        };
        assert_eq!(
            decode(&few, &[]).unwrap(),
            Value::Array(vec![Value::Struct(vec![]); 3])
        );
    }

    #[test]
    fn signed_enum_representations_sign_extend() {
        let ty = Type {
            kind: TypeKind::Enum {
                name: "S".into(),
                repr: Prim::I16,
                variants: vec![("Neg".into(), -2), ("Pos".into(), 2)].into(),
            },
            size: 2,
            align: 2,
        };
        let v = decode(&ty, &(-2i16).to_ne_bytes()).unwrap();
        assert_eq!(
            v,
            Value::Enum {
                variant: "Neg".into(),
                value: -2
            }
        );
    }

    #[test]
    fn display_escapes_control_characters_in_names_and_strings() {
        let v = Value::Struct(vec![
            ("a\nb\u{1b}[31m".into(), Value::Str("x\ny".into())),
            (
                "e".into(),
                Value::Enum {
                    variant: "V\r".into(),
                    value: 0,
                },
            ),
            ("f".into(), Value::F32(1e30)),
            ("g".into(), Value::F64(3.0)),
        ]);
        let s = v.to_string();
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert_eq!(
            s,
            "{ a\\nb\\u{1b}[31m: \"x\\ny\", e: V\\r, f: 1e30, g: 3.0 }"
        );
    }

    /// The dynamic decoder agrees with the typed decoders on any bytes: same value or same error.
    fn agrees_with_typed<T: MappedState + PartialEq + fmt::Debug>(bytes: &[u8]) {
        let ty = Type::from_desc(T::TYPE);
        let typed = T::decode(bytes);
        let dynamic = decode(&ty, bytes);
        match (typed, dynamic) {
            (Ok(_), Ok(_)) => {}
            (Err(a), Err(b)) => assert_eq!(a, b, "bytes {bytes:02x?}"),
            (a, b) => panic!("typed {a:?} vs dynamic {b:?} on {bytes:02x?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_like_the_typed_decoders(bytes in proptest::collection::vec(
            proptest::prelude::any::<u8>(), 64)) {
            agrees_with_typed::<[bool; 8]>(&bytes[..8]);
            agrees_with_typed::<[char; 3]>(&bytes[..12]);
            agrees_with_typed::<[FixedStr<3>; 2]>(&bytes[..16]);
            agrees_with_typed::<FixedStr<7>>(&bytes[..12]);
            let mut short = bytes.clone();
            // Small lengths so the UTF-8 check is reached, not only the length check.
            short[0] &= 7;
            short[1..4].fill(0);
            agrees_with_typed::<FixedStr<7>>(&short[..12]);
            let _ = decode(&outer(), &bytes[..48]);
        }
    }

    #[test]
    fn numbers_round_trip() {
        let ty = Type::from_desc(<[i128; 2]>::TYPE);
        let mut b = vec![0u8; 32];
        b[..16].copy_from_slice(&i128::MIN.to_ne_bytes());
        b[16..].copy_from_slice(&i128::MAX.to_ne_bytes());
        assert_eq!(
            decode(&ty, &b).unwrap(),
            Value::Array(vec![Value::I128(i128::MIN), Value::I128(i128::MAX)])
        );
        let f = decode(&prim_ty(Prim::F32), &0.1f32.to_ne_bytes()).unwrap();
        assert_eq!(f.to_string(), "0.1");
        let u = decode(&prim_ty(Prim::U64), &u64::MAX.to_ne_bytes()).unwrap();
        assert_eq!(u, Value::Unsigned(u64::MAX));
    }
}
