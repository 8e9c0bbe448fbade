//! How values look: dotted field paths (`limits.max_rpm`, `wheels[2].psi`), aligned text
//! tables, JSON with documented number handling, and human durations and timestamps.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use mapped_state::dynamic::{write_name, Value};
use mapped_state::manifest::{Type, TypeKind};

/// One displayed field: its dotted path (escaped), its type's name and its value.
pub struct Leaf<'a> {
    pub path: String,
    pub ty: &'a Type,
    pub value: &'a Value,
}

/// Whether `ty` holds a struct anywhere: arrays of such types are shown element by element.
fn has_struct(ty: &Type) -> bool {
    match &ty.kind {
        TypeKind::Struct { .. } => true,
        TypeKind::Array { elem, .. } => has_struct(elem),
        _ => false,
    }
}

/// The fields of `value` (of type `ty`) as leaves: nested structs are flattened into dotted
/// paths, arrays of structs into indexed paths; other arrays are one leaf. A top-level
/// non-struct value is one leaf with the path `value`.
pub fn leaves<'a>(ty: &'a Type, value: &'a Value) -> Vec<Leaf<'a>> {
    let mut out = Vec::new();
    walk(ty, value, String::new(), &mut out);
    if let [only] = out.as_mut_slice() {
        if only.path.is_empty() {
            only.path = "value".into();
        }
    }
    out
}

fn walk<'a>(ty: &'a Type, value: &'a Value, path: String, out: &mut Vec<Leaf<'a>>) {
    match (&ty.kind, value) {
        (TypeKind::Struct { fields, .. }, Value::Struct(vals)) => {
            for (f, (_, v)) in fields.iter().zip(vals) {
                let mut p = path.clone();
                if !p.is_empty() {
                    p.push('.');
                }
                let _ = write_name(&mut p, &f.name);
                walk(&f.ty, v, p, out);
            }
        }
        (TypeKind::Array { elem, .. }, Value::Array(items)) if has_struct(elem) => {
            for (i, v) in items.iter().enumerate() {
                walk(elem, v, format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(Leaf { path, ty, value }),
    }
}

/// Escaped type name (enum and struct names come from the file).
pub fn type_name(ty: &Type) -> String {
    let mut s = String::new();
    let _ = write_name(&mut s, &ty.name());
    s
}

/// Leaves as an aligned three-column table (path, type, value), each line indented by two.
pub fn table(leaves: &[Leaf<'_>]) -> String {
    let names: Vec<String> = leaves.iter().map(|l| type_name(l.ty)).collect();
    let pw = leaves
        .iter()
        .map(|l| l.path.chars().count())
        .max()
        .unwrap_or(0);
    let tw = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (l, n) in leaves.iter().zip(&names) {
        let _ = writeln!(out, "  {:<pw$}  {n:<tw$}  {}", l.path, l.value);
    }
    out
}

/// `value` as JSON, appended to `out`. Integers up to 64 bits are numbers; 128-bit integers
/// are decimal strings; non-finite floats are the strings `NaN`, `Infinity`, `-Infinity`.
pub fn json(value: &Value, out: &mut String) {
    match value {
        Value::Unsigned(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Signed(v) => {
            let _ = write!(out, "{v}");
        }
        Value::U128(v) => {
            let _ = write!(out, "\"{v}\"");
        }
        Value::I128(v) => {
            let _ = write!(out, "\"{v}\"");
        }
        Value::F32(v) => float(out, v.is_finite(), f64::from(*v), || {
            serde_json::to_string(v).unwrap_or_default()
        }),
        Value::F64(v) => float(out, v.is_finite(), *v, || {
            serde_json::to_string(v).unwrap_or_default()
        }),
        Value::Bool(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Char(c) => json_str(&c.to_string(), out),
        Value::Enum { variant, .. } => json_str(variant, out),
        Value::Str(s) => json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(v, out);
            }
            out.push(']');
        }
        Value::Struct(fields) => {
            out.push('{');
            for (i, (name, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(name, out);
                out.push(':');
                json(v, out);
            }
            out.push('}');
        }
    }
}

/// A finite float in serde_json's shortest round-trip form (an `f32` printed as an `f32`, so
/// 0.1 stays 0.1); others as strings, since JSON has no NaN or infinity.
fn float(out: &mut String, finite: bool, wide: f64, finite_text: impl FnOnce() -> String) {
    if finite {
        out.push_str(&finite_text());
    } else if wide.is_nan() {
        out.push_str("\"NaN\"");
    } else if wide > 0.0 {
        out.push_str("\"Infinity\"");
    } else {
        out.push_str("\"-Infinity\"");
    }
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str, out: &mut String) {
    // Serializing a `str` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// `2.315s`, `4m 05s`, `3h 04m`, `5d 03h`: precise for fresh values, short for old ones.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.3}s", d.as_secs_f64()),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `t` as an RFC 3339 UTC timestamp with nanoseconds (`2025-06-01T12:00:03.123456789Z`), or
/// `before 1970` for times before the Unix epoch.
pub fn timestamp(t: SystemTime) -> String {
    let Ok(since) = t.duration_since(SystemTime::UNIX_EPOCH) else {
        return "before 1970".into();
    };
    let secs = since.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01, counting in 400-year eras (each
/// exactly 146,097 days) with years starting in March so the leap day falls at the end.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year, 0..365
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapped_state::manifest::Field;
    use mapped_state::schema::{Prim, TypeDesc};

    fn prim(p: Prim) -> Type {
        Type::from_desc(&TypeDesc::prim(p))
    }

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_089), (2025, 1, 1));
        let t = SystemTime::UNIX_EPOCH + Duration::new(951_782_400 + 3661, 5);
        assert_eq!(timestamp(t), "2000-02-29T01:01:01.000000005Z");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_millis(42)), "42ms");
        assert_eq!(duration(Duration::from_millis(2315)), "2.315s");
        assert_eq!(duration(Duration::from_secs(245)), "4m 05s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 240)), "3h 04m");
        assert_eq!(
            duration(Duration::from_secs(5 * 86400 + 3 * 3600)),
            "5d 03h"
        );
    }

    #[test]
    fn json_numbers_follow_the_documented_rules() {
        let v = Value::Array(vec![
            Value::Unsigned(u64::MAX),
            Value::Signed(i64::MIN),
            Value::U128(u128::MAX),
            Value::I128(-1),
            Value::F32(0.1),
            Value::F64(f64::NAN),
            Value::F32(f32::NEG_INFINITY),
            Value::F64(1e300),
            Value::Char('"'),
        ]);
        let mut s = String::new();
        json(&v, &mut s);
        assert_eq!(
            s,
            "[18446744073709551615,-9223372036854775808,\"340282366920938463463374607431768211455\",\
             \"-1\",0.1,\"NaN\",\"-Infinity\",1e+300,\"\\\"\"]"
        );
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed[0].as_u64(), Some(u64::MAX));
        assert_eq!(parsed[1].as_i64(), Some(i64::MIN));
    }

    #[test]
    fn nested_structs_and_arrays_of_structs_flatten_to_paths() {
        let point = Type {
            kind: TypeKind::Struct {
                name: "P".into(),
                fields: vec![Field {
                    name: "x".into(),
                    offset: 0,
                    ty: prim(Prim::U8),
                }],
            },
            size: 1,
            align: 1,
        };
        let ty = Type {
            kind: TypeKind::Struct {
                name: "S".into(),
                fields: vec![
                    Field {
                        name: "ps".into(),
                        offset: 0,
                        ty: Type {
                            kind: TypeKind::Array {
                                elem: Box::new(point),
                                len: 2,
                            },
                            size: 2,
                            align: 1,
                        },
                    },
                    Field {
                        name: "xs\n".into(),
                        offset: 2,
                        ty: Type::from_desc(<[u8; 2] as mapped_state::MappedState>::TYPE),
                    },
                ],
            },
            size: 4,
            align: 1,
        };
        let v = mapped_state::dynamic::decode(&ty, &[1, 2, 3, 4]).unwrap();
        let l = leaves(&ty, &v);
        let got: Vec<(String, String)> = l
            .iter()
            .map(|l| (l.path.clone(), l.value.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("ps[0].x".to_string(), "1".to_string()),
                ("ps[1].x".into(), "2".into()),
                ("xs\\n".into(), "[3, 4]".into()),
            ]
        );
        let top = Type::from_desc(<[u8; 2] as mapped_state::MappedState>::TYPE);
        let v = mapped_state::dynamic::decode(&top, &[5, 6]).unwrap();
        assert_eq!(leaves(&top, &v)[0].path, "value");
    }
}
