//! How values look: dotted field paths (`limits.max_rpm`, `wheels[2].psi`), aligned text
//! tables, and human durations and timestamps. (JSON is written by serde: see `json.rs`.)

use std::fmt::{self, Write as _};
use std::io;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use mapped_state::dynamic::{self, write_name};
use mapped_state::manifest::{Type, TypeKind};

/// Bytes of output a file may produce per byte of its length, on top of [`OUTPUT_BASE`].
///
/// A manifest can repeat a 65,535-byte name in every element of a million-element array, or
/// declare `[Empty; 4_000_000_000]` in no bytes; what is printed for such a file grows with the
/// product, so it is cut off here. Real files print a few bytes per payload byte.
pub const OUTPUT_PER_BYTE: usize = 64;
/// Output any file may produce, whatever its size (a header and a few hundred fields).
pub const OUTPUT_BASE: usize = 64 << 10;
/// Widest path and type columns padded for alignment: a longer entry is printed in full and
/// pushes its own line out, instead of padding every line to its width.
const PATH_COLUMN: usize = 60;
const TYPE_COLUMN: usize = 40;

/// How much output (and how many steps of walking the schema) a file of `file_len` bytes gets.
pub fn output_budget(file_len: u64) -> usize {
    let len = usize::try_from(file_len).unwrap_or(usize::MAX);
    OUTPUT_BASE.saturating_add(OUTPUT_PER_BYTE.saturating_mul(len))
}

/// A text sink that refuses to grow past a budget: every renderer writes through one, so the
/// cost of rendering any file is bounded by its size.
#[derive(Debug)]
pub struct Capped<W> {
    pub inner: W,
    left: usize,
    /// Set when a write was refused for the budget (not for an error of `inner`).
    pub exceeded: bool,
}

impl<W: fmt::Write> Capped<W> {
    pub fn new(inner: W, budget: usize) -> Self {
        Capped {
            inner,
            left: budget,
            exceeded: false,
        }
    }
}

impl<W: fmt::Write> fmt::Write for Capped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() > self.left {
            self.exceeded = true;
            return Err(fmt::Error);
        }
        self.left -= s.len();
        self.inner.write_str(s)
    }
}

/// A sink that keeps nothing: with [`Capped`], it measures output without storing it.
#[derive(Debug)]
pub struct Discard;

impl fmt::Write for Discard {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

/// Text written to an `io::Write` (stdout), keeping the I/O error that `fmt::Error` cannot carry.
pub struct IoText<W> {
    pub out: W,
    pub error: Option<io::Error>,
}

impl<W> fmt::Debug for IoText<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoText")
            .field("error", &self.error)
            .finish()
    }
}

impl<W: io::Write> fmt::Write for IoText<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            fmt::Error
        })
    }
}

/// Counts characters and refuses to go past `cap`: how wide a column entry is, without
/// building it.
struct Width {
    n: usize,
    cap: usize,
}

impl fmt::Write for Width {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.n += s.chars().count();
        if self.n > self.cap {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// `f`'s output width, or `cap + 1` if it is wider than `cap`.
fn width(cap: usize, f: impl FnOnce(&mut Width) -> fmt::Result) -> usize {
    let mut w = Width { n: 0, cap };
    let _ = f(&mut w);
    w.n.min(cap + 1)
}

/// One step of a field path: a field name (from the file) or an array index.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'t> {
    Field(&'t str),
    Index(usize),
}

/// One displayed field: its path, its type, and where its bytes are in the payload. The path is
/// written on demand ([`write_path`]): a hostile manifest can make paths far longer than the file.
#[derive(Debug)]
pub struct Leaf<'p, 't> {
    pub path: &'p [Seg<'t>],
    pub ty: &'t Type,
    pub offset: usize,
}

impl Leaf<'_, '_> {
    /// The leaf's bytes in `payload`, or `None` for a schema that does not fit it.
    pub fn bytes<'b>(&self, payload: &'b [u8]) -> Option<&'b [u8]> {
        payload.get(self.offset..self.offset.checked_add(self.ty.size)?)
    }
}

/// `limits.max_rpm`, `wheels[2].psi`, names escaped; `value` for a top-level non-struct value.
pub fn write_path<W: fmt::Write + ?Sized>(path: &[Seg<'_>], out: &mut W) -> fmt::Result {
    if path.is_empty() {
        return out.write_str("value");
    }
    for (i, seg) in path.iter().enumerate() {
        match seg {
            Seg::Field(name) => {
                if i > 0 {
                    out.write_char('.')?;
                }
                write_name(out, name)?;
            }
            Seg::Index(n) => write!(out, "[{n}]")?,
        }
    }
    Ok(())
}

/// The path as a JSON object key: names as they are (JSON escapes what it must), with `\`,
/// `.`, `[` and `]` in names escaped by a backslash so that no two leaves share a key (a field
/// named `a.b` is `a\.b`, a field `b` of a struct `a` is `a.b`). Rust field names never need it.
pub fn key_string(path: &[Seg<'_>]) -> String {
    if path.is_empty() {
        return "value".into();
    }
    let mut s = String::new();
    for (i, seg) in path.iter().enumerate() {
        match seg {
            Seg::Field(name) => {
                if i > 0 {
                    s.push('.');
                }
                for c in name.chars() {
                    if matches!(c, '\\' | '.' | '[' | ']') {
                        s.push('\\');
                    }
                    s.push(c);
                }
            }
            Seg::Index(n) => {
                let _ = write!(s, "[{n}]");
            }
        }
    }
    s
}

/// The path as a string (for one leaf the caller has already decided to show).
pub fn path_string(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    let _ = write_path(path, &mut s);
    s
}

/// Whether `ty` holds a struct anywhere: arrays of such types are shown element by element.
fn has_struct(ty: &Type) -> bool {
    match &ty.kind {
        TypeKind::Struct { .. } => true,
        TypeKind::Array { elem, .. } => has_struct(elem),
        _ => false,
    }
}

/// Calls `f` for each leaf of `ty`: nested structs are flattened into dotted paths, arrays of
/// structs into indexed paths; other arrays are one leaf. Visits at most `steps` nodes and
/// returns `false` if it stopped there (or `f` stopped it): `[Empty; 4_000_000_000]` is cheap to
/// declare and must not be cheap to be made to walk.
pub fn for_each_leaf<'t>(
    ty: &'t Type,
    steps: usize,
    mut f: impl FnMut(&Leaf<'_, 't>) -> ControlFlow<()>,
) -> bool {
    let mut path = Vec::new();
    let mut steps = steps;
    walk(ty, 0, &mut path, &mut steps, &mut f).is_continue()
}

fn walk<'t>(
    ty: &'t Type,
    offset: usize,
    path: &mut Vec<Seg<'t>>,
    steps: &mut usize,
    f: &mut impl FnMut(&Leaf<'_, 't>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if *steps == 0 {
        return ControlFlow::Break(());
    }
    *steps -= 1;
    match &ty.kind {
        TypeKind::Struct { fields, .. } => {
            for fl in fields {
                path.push(Seg::Field(&fl.name));
                let r = walk(&fl.ty, offset.saturating_add(fl.offset), path, steps, f);
                path.pop();
                r?;
            }
            ControlFlow::Continue(())
        }
        TypeKind::Array { elem, len } if has_struct(elem) => {
            for i in 0..*len {
                path.push(Seg::Index(i));
                let at = offset.saturating_add(i.saturating_mul(elem.size));
                let r = walk(elem, at, path, steps, f);
                path.pop();
                r?;
            }
            ControlFlow::Continue(())
        }
        _ => f(&Leaf { path, ty, offset }),
    }
}

/// Escaped type name (enum and struct names come from the file), written without building it.
pub fn write_type_name<W: fmt::Write + ?Sized>(ty: &Type, out: &mut W) -> fmt::Result {
    match &ty.kind {
        TypeKind::Prim(p) => out.write_str(p.name()),
        TypeKind::Enum { name, .. } | TypeKind::Struct { name, .. } => write_name(out, name),
        TypeKind::Array { elem, len } => {
            out.write_char('[')?;
            write_type_name(elem, out)?;
            write!(out, "; {len}]")
        }
        TypeKind::Str { cap } => write!(out, "FixedStr<{cap}>"),
    }
}

/// Escaped type name as a string.
pub fn type_name(ty: &Type) -> String {
    let mut s = String::new();
    let _ = write_type_name(ty, &mut s);
    s
}

/// The leaves of `ty` over `payload` as an aligned three-column table (path, type, value), each
/// line indented by two, written to `out` until its budget runs out. Returns whether every leaf
/// was written; `Err` only for an error of the sink other than the budget.
pub fn table<W: fmt::Write>(
    ty: &Type,
    payload: &[u8],
    out: &mut Capped<W>,
) -> Result<bool, fmt::Error> {
    let steps = out.left;
    // Column widths from the leaves that can be shown at all: each line takes at least 5 bytes.
    let (mut pw, mut tw) = (0, 0);
    for_each_leaf(ty, steps.min(out.left / 5 + 1), |l| {
        pw = pw.max(width(PATH_COLUMN, |w| write_path(l.path, w)));
        tw = tw.max(width(TYPE_COLUMN, |w| write_type_name(l.ty, w)));
        ControlFlow::Continue(())
    });
    let (pw, tw) = (pw.min(PATH_COLUMN), tw.min(TYPE_COLUMN));
    let mut failed = false;
    let complete = for_each_leaf(ty, steps, |l| {
        let line = |out: &mut Capped<W>| -> fmt::Result {
            out.write_str("  ")?;
            pad(out, pw, |o| write_path(l.path, o))?;
            out.write_str("  ")?;
            pad(out, tw, |o| write_type_name(l.ty, o))?;
            out.write_str("  ")?;
            match l.bytes(payload) {
                Some(b) => write_value(l.ty, b, out)?,
                None => out.write_str("?")?,
            }
            out.write_char('\n')
        };
        match line(out) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => {
                failed = !out.exceeded;
                ControlFlow::Break(())
            }
        }
    });
    if failed {
        return Err(fmt::Error);
    }
    Ok(complete && !out.exceeded)
}

/// Writes `f`'s text, then spaces up to `cols` characters.
fn pad<W: fmt::Write>(
    out: &mut W,
    cols: usize,
    f: impl Fn(&mut dyn fmt::Write) -> fmt::Result,
) -> fmt::Result {
    let w = width(cols, |w| f(w));
    f(out)?;
    for _ in w..cols {
        out.write_char(' ')?;
    }
    Ok(())
}

/// The value of `ty` in `bytes` (validated) as text, the way [`Value`]'s `Display` writes it,
/// streamed from the bytes: no value tree is built, so memory does not grow with the value.
pub fn write_value<W: fmt::Write + ?Sized>(ty: &Type, bytes: &[u8], out: &mut W) -> fmt::Result {
    match &ty.kind {
        TypeKind::Array { elem, len } => {
            out.write_char('[')?;
            for i in 0..*len {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_value(elem, element(bytes, elem, i), out)?;
            }
            out.write_char(']')
        }
        TypeKind::Struct { fields, .. } => {
            if fields.is_empty() {
                return out.write_str("{}");
            }
            out.write_str("{ ")?;
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_name(out, &f.name)?;
                out.write_str(": ")?;
                write_value(&f.ty, slice(bytes, f.offset, f.ty.size), out)?;
            }
            out.write_str(" }")
        }
        _ => match dynamic::decode(ty, bytes) {
            Ok(v) => write!(out, "{v}"),
            // Validated before rendering; a value that fails here is shown, not trusted.
            Err(_) => out.write_str("?"),
        },
    }
}

/// Bytes `at..at + len`, or none for a schema that does not fit (never for a validated one).
fn slice(bytes: &[u8], at: usize, len: usize) -> &[u8] {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .unwrap_or(&[])
}

fn element<'b>(bytes: &'b [u8], elem: &Type, i: usize) -> &'b [u8] {
    slice(bytes, i.saturating_mul(elem.size), elem.size)
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
    use mapped_state::dynamic::Value;
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
        // The CLI prints values through `Value`'s (and `ValueRef`'s) `Serialize`.
        let s = serde_json::to_string(&v).unwrap();
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
    fn json_keys_of_distinct_leaves_are_distinct() {
        let key = |p: &[Seg<'_>]| key_string(p);
        assert_eq!(
            key(&[Seg::Field("limits"), Seg::Field("max")]),
            "limits.max"
        );
        assert_eq!(key(&[Seg::Field("limits.max")]), "limits\\.max");
        assert_eq!(key(&[Seg::Field("w[0]")]), "w\\[0\\]");
        assert_eq!(key(&[Seg::Field("w"), Seg::Index(0)]), "w[0]");
        assert_eq!(key(&[Seg::Field("a\\"), Seg::Field("b")]), "a\\\\.b");
        assert_eq!(key(&[Seg::Field("a\\.b")]), "a\\\\\\.b");
        assert_eq!(key(&[Seg::Index(3), Seg::Field("x")]), "[3].x");
        assert_eq!(key(&[]), "value");
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
        let payload = [1, 2, 3, 4];
        let mut got: Vec<(String, String)> = Vec::new();
        assert!(for_each_leaf(&ty, 100, |l| {
            let mut v = String::new();
            write_value(l.ty, l.bytes(&payload).unwrap(), &mut v).unwrap();
            got.push((path_string(l.path), v));
            ControlFlow::Continue(())
        }));
        assert_eq!(
            got,
            [
                ("ps[0].x".to_string(), "1".to_string()),
                ("ps[1].x".into(), "2".into()),
                ("xs\\n".into(), "[3, 4]".into()),
            ]
        );
        let top = Type::from_desc(<[u8; 2] as mapped_state::MappedState>::TYPE);
        let mut paths = Vec::new();
        for_each_leaf(&top, 100, |l| {
            paths.push(path_string(l.path));
            ControlFlow::Continue(())
        });
        assert_eq!(paths, ["value"]);
    }
}
