//! serde support (feature `serde`): [`FixedStr`] as a string, [`Value`] and [`ValueRef`] in the
//! JSON form the `mapped-state` CLI prints.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::dynamic::{self, Value};
use crate::manifest::{Type, TypeKind};
use crate::FixedStr;

/// A `FixedStr` serializes as its string.
impl<const N: usize> Serialize for FixedStr<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A `FixedStr<N>` deserializes from a string of at most `N` bytes; a longer one is an error
/// naming its length and the capacity (never truncated silently: use [`FixedStr::truncate`]
/// on a `String` for that).
impl<'de, const N: usize> Deserialize<'de> for FixedStr<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FixedStrVisitor::<N>)
    }
}

struct FixedStrVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for FixedStrVisitor<N> {
    type Value = FixedStr<N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {N} bytes (FixedStr<{N}>)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FixedStr<N>, E> {
        FixedStr::new(v).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<FixedStr<N>, E> {
        let s = std::str::from_utf8(v)
            .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))?;
        self.visit_str(s)
    }
}

/// A [`Value`] serializes in the JSON form the `mapped-state` CLI prints (`inspect --json`), so
/// a value read through the manifest looks the same from Rust and from the command line:
///
/// - integers up to 64 bits as integers; `u128` and `i128` as decimal strings (a field's JSON
///   type never depends on its value, and no parser rounds them);
/// - finite floats as floats; NaN and infinities as the strings `"NaN"`, `"Infinity"`,
///   `"-Infinity"` (JSON has no such numbers);
/// - `bool` as a bool, `char` and `FixedStr` as strings, an enum as its variant's name;
/// - arrays as sequences, structs as maps from field name to value, in offset order.
///
/// ```
/// use mapped_state::dynamic::Value;
/// let v = Value::Array(vec![Value::U128(7), Value::F32(f32::NAN), Value::Unsigned(3)]);
/// assert_eq!(serde_json::to_string(&v).unwrap(), r#"["7","NaN",3]"#);
/// ```
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Unsigned(v) => s.serialize_u64(*v),
            Value::Signed(v) => s.serialize_i64(*v),
            Value::U128(v) => s.collect_str(v),
            Value::I128(v) => s.collect_str(v),
            Value::F32(v) if v.is_finite() => s.serialize_f32(*v),
            Value::F64(v) if v.is_finite() => s.serialize_f64(*v),
            Value::F32(v) => s.serialize_str(non_finite(f64::from(*v))),
            Value::F64(v) => s.serialize_str(non_finite(*v)),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Char(c) => s.serialize_char(*c),
            Value::Enum { variant, .. } => s.serialize_str(variant),
            Value::Str(v) => s.serialize_str(v),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Struct(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (name, v) in fields {
                    map.serialize_entry(&**name, v)?;
                }
                map.end()
            }
        }
    }
}

fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A value of a manifest [`Type`] in payload bytes, serialized straight from the bytes in the
/// same form as [`Value`], without building a value tree: memory stays constant however large
/// the value, which is how the CLI prints files it does not trust.
///
/// Validate the bytes first ([`dynamic::validate`]): a leaf that does not decode (an invalid
/// `bool`, a schema that does not fit the bytes) serializes as a unit (JSON `null`).
///
/// ```
/// use mapped_state::{dynamic::{self, ValueRef}, manifest::Type, MappedState};
/// let ty = Type::from_desc(<[u16; 2]>::TYPE);
/// let bytes = [1u16.to_ne_bytes(), 2u16.to_ne_bytes()].concat();
/// dynamic::validate(&ty, &bytes).unwrap();
/// assert_eq!(serde_json::to_string(&ValueRef::new(&ty, &bytes)).unwrap(), "[1,2]");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ValueRef<'a> {
    ty: &'a Type,
    bytes: &'a [u8],
}

impl<'a> ValueRef<'a> {
    /// The value of `ty` in `bytes` (`ty.size` bytes, validated).
    pub fn new(ty: &'a Type, bytes: &'a [u8]) -> Self {
        ValueRef { ty, bytes }
    }
}

/// Bytes `at..at + len`, or none for a schema that does not fit (never for a validated one).
fn slice(bytes: &[u8], at: usize, len: usize) -> &[u8] {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .unwrap_or(&[])
}

impl Serialize for ValueRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.ty.kind {
            TypeKind::Array { elem, len } => {
                let mut seq = s.serialize_seq(Some(*len))?;
                for i in 0..*len {
                    let at = i.saturating_mul(elem.size);
                    seq.serialize_element(&ValueRef::new(elem, slice(self.bytes, at, elem.size)))?;
                }
                seq.end()
            }
            TypeKind::Struct { fields, .. } => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for f in fields {
                    let v = ValueRef::new(&f.ty, slice(self.bytes, f.offset, f.ty.size));
                    map.serialize_entry(&*f.name, &v)?;
                }
                map.end()
            }
            _ => match dynamic::decode(self.ty, self.bytes) {
                Ok(v) => v.serialize(s),
                Err(_) => s.serialize_unit(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MappedState;

    #[test]
    fn fixed_str_round_trips_and_rejects_overlong_strings() {
        let s = FixedStr::<8>::new("engine").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""engine""#);
        assert_eq!(serde_json::from_str::<FixedStr<8>>(&json).unwrap(), s);
        // Exactly the capacity fits; one byte more (here a two-byte character) does not.
        assert_eq!(
            serde_json::from_str::<FixedStr<4>>(r#""héy""#).unwrap(),
            "héy"
        );
        let err = serde_json::from_str::<FixedStr<4>>(r#""héyy""#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("string of 5 bytes does not fit in FixedStr<4>"),
            "{err}"
        );
        let err = serde_json::from_str::<FixedStr<4>>("12")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a string of at most 4 bytes"), "{err}");
    }

    #[test]
    fn value_ref_serializes_like_the_decoded_value() {
        let ty = Type::from_desc(<[u8; 0]>::TYPE);
        assert_eq!(
            serde_json::to_string(&ValueRef::new(&ty, &[])).unwrap(),
            "[]"
        );
        let ty = Type::from_desc(<[f64; 3]>::TYPE);
        let bytes: Vec<u8> = [0.1f64, f64::INFINITY, -2.5]
            .iter()
            .flat_map(|f| f.to_ne_bytes())
            .collect();
        let tree = dynamic::decode(&ty, &bytes).unwrap();
        let streamed = serde_json::to_string(&ValueRef::new(&ty, &bytes)).unwrap();
        assert_eq!(streamed, serde_json::to_string(&tree).unwrap());
        assert_eq!(streamed, r#"[0.1,"Infinity",-2.5]"#);
        // Bytes that do not decode become null, never a panic.
        let ty = Type::from_desc(<[bool; 2]>::TYPE);
        assert_eq!(
            serde_json::to_string(&ValueRef::new(&ty, &[1, 9])).unwrap(),
            "[true,null]"
        );
        assert_eq!(
            serde_json::to_string(&ValueRef::new(&ty, &[1])).unwrap(),
            "[true,null]"
        );
    }
}
