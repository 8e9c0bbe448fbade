//! The schema manifest read back from a file: a bounds-checked decoder of untrusted bytes into an
//! owned type tree, and the field-level diff shown when a file is opened as the wrong type.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::schema::{align_up, kind_byte, Kind, Prim, TypeDesc, MANIFEST_MAGIC, MANIFEST_VERSION};

/// A type described by a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    /// What it is.
    pub kind: TypeKind,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: usize,
}

/// The kind of a manifest type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeKind {
    /// A primitive.
    Prim(Prim),
    /// A fieldless enum.
    Enum {
        /// Schema name.
        name: Arc<str>,
        /// Integer representation.
        repr: Prim,
        /// `(name, discriminant)` in declaration order, with a lookup by discriminant.
        variants: Variants,
    },
    /// `[elem; len]`.
    Array {
        /// Element type.
        elem: Box<Type>,
        /// Length.
        len: usize,
    },
    /// `FixedStr<cap>`.
    Str {
        /// Capacity in bytes.
        cap: usize,
    },
    /// A struct.
    Struct {
        /// Schema name.
        name: Arc<str>,
        /// Fields in offset order.
        fields: Vec<Field>,
    },
}

/// A struct field described by a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Name, shared (not copied) by every value decoded from this field.
    pub name: Arc<str>,
    /// Byte offset in the struct.
    pub offset: usize,
    /// Type.
    pub ty: Type,
}

/// The variants of an enum in declaration order, indexed by discriminant so that decoding a
/// value costs `O(log variants)`, not a scan: a manifest may declare 100,000 variants and a
/// payload a million values of the enum.
#[derive(Clone, Debug, Default)]
pub struct Variants {
    list: Vec<(Arc<str>, i64)>,
    /// Indices into `list`, sorted by `(discriminant, index)`.
    by_value: Vec<u32>,
}

impl Variants {
    /// The first-declared variant whose discriminant is `value`.
    pub fn find(&self, value: i64) -> Option<&(Arc<str>, i64)> {
        let at = self
            .by_value
            .partition_point(|&i| self.list[i as usize].1 < value);
        let &i = self.by_value.get(at)?;
        let v = &self.list[i as usize];
        (v.1 == value).then_some(v)
    }
}

impl From<Vec<(Arc<str>, i64)>> for Variants {
    fn from(list: Vec<(Arc<str>, i64)>) -> Self {
        // The parser admits at most `MAX_NODES` variants, far below `u32::MAX`; a hand-built
        // list longer than that keeps its first `u32::MAX` variants findable.
        let n = list.len().min(u32::MAX as usize) as u32;
        let mut by_value: Vec<u32> = (0..n).collect();
        by_value.sort_unstable_by_key(|&i| (list[i as usize].1, i));
        Variants { list, by_value }
    }
}

impl std::ops::Deref for Variants {
    type Target = [(Arc<str>, i64)];
    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

/// Equal when the declared lists are: the index is derived from the list.
impl PartialEq for Variants {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Variants {}

/// Why manifest bytes were refused: the byte offset inside the manifest and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// Offset inside the manifest.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// Deepest nesting of arrays and structs a manifest may have.
const MAX_DEPTH: usize = 32;
/// Most nodes (types, fields, variants) a manifest may have.
const MAX_NODES: usize = 100_000;
/// Most differences [`Type::diff`] lists; the rest are counted in a last `... and N more` line,
/// so an error about a mismatched type stays small whatever the two types are.
pub const MAX_DIFFERENCES: usize = 32;

impl Type {
    /// Decodes and validates a manifest. Every count, size, offset and alignment is checked, so
    /// the resulting tree describes a layout that fits in `size` bytes.
    pub fn from_manifest(bytes: &[u8]) -> Result<Type, ManifestError> {
        let mut p = Parser {
            bytes,
            pos: 0,
            nodes: 0,
        };
        let magic = p.take(4)?;
        if magic != MANIFEST_MAGIC {
            return p.fail_at(0, "manifest does not start with \"MSMF\"");
        }
        let version = p.u8()?;
        if version != MANIFEST_VERSION {
            return p.fail_at(
                4,
                format!("manifest version {version}, expected {MANIFEST_VERSION}"),
            );
        }
        let size_at = p.pos;
        let size = p.u32()?;
        let align = p.u32()?;
        let ty = p.ty(0)?;
        if ty.size != size || ty.align != align {
            return p.fail_at(
                size_at,
                format!(
                    "manifest says size {size} align {align}, its type has size {} align {}",
                    ty.size, ty.align
                ),
            );
        }
        if p.pos != bytes.len() {
            return p.fail_at(
                p.pos,
                format!(
                    "{} bytes after the end of the manifest",
                    bytes.len() - p.pos
                ),
            );
        }
        Ok(ty)
    }

    /// The owned form of a compile-time description.
    pub fn from_desc(desc: &TypeDesc) -> Type {
        let kind = match desc.kind {
            Kind::Prim(p) => TypeKind::Prim(p),
            Kind::Enum(e) => TypeKind::Enum {
                name: e.name.into(),
                repr: e.repr,
                variants: e
                    .variants
                    .iter()
                    .map(|v| (Arc::from(v.name), v.value))
                    .collect::<Vec<_>>()
                    .into(),
            },
            Kind::Array { elem, len } => TypeKind::Array {
                elem: Box::new(Type::from_desc(elem)),
                len,
            },
            Kind::Str { cap } => TypeKind::Str { cap },
            Kind::Struct(s) => TypeKind::Struct {
                name: s.name.into(),
                fields: s
                    .fields
                    .iter()
                    .map(|f| Field {
                        name: f.name.into(),
                        offset: f.offset,
                        ty: Type::from_desc(f.ty),
                    })
                    .collect(),
            },
        };
        Type {
            kind,
            size: desc.size,
            align: desc.align,
        }
    }

    /// The type's name: `u32`, `[f32; 16]`, `FixedStr<32>`, or the enum's or struct's name.
    pub fn name(&self) -> String {
        match &self.kind {
            TypeKind::Prim(p) => p.name().to_owned(),
            TypeKind::Enum { name, .. } | TypeKind::Struct { name, .. } => name.to_string(),
            TypeKind::Array { elem, len } => format!("[{}; {len}]", elem.name()),
            TypeKind::Str { cap } => format!("FixedStr<{cap}>"),
        }
    }

    /// A description for diffs: enums list their representation and up to 16 variants (a
    /// manifest may declare 100,000; the message stays readable and small).
    pub(crate) fn signature(&self) -> String {
        const SHOWN: usize = 16;
        match &self.kind {
            TypeKind::Enum {
                name,
                repr,
                variants,
            } => {
                let mut vs: Vec<String> = variants
                    .iter()
                    .take(SHOWN)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                if variants.len() > SHOWN {
                    vs.push(format!("... {} more", variants.len() - SHOWN));
                }
                format!("enum {name}({}: {})", repr.name(), vs.join(", "))
            }
            TypeKind::Array { elem, len } => format!("[{}; {len}]", elem.signature()),
            _ => self.name(),
        }
    }

    /// Whether two leaves have the same signature, compared structurally so that nothing is
    /// formatted for the (usually many) leaves that agree. Structs inside arrays compare by name,
    /// as their signature shows only the name.
    fn same_signature(&self, other: &Type) -> bool {
        match (&self.kind, &other.kind) {
            (TypeKind::Prim(a), TypeKind::Prim(b)) => a == b,
            (
                TypeKind::Enum {
                    name: a,
                    repr: ra,
                    variants: va,
                },
                TypeKind::Enum {
                    name: b,
                    repr: rb,
                    variants: vb,
                },
            ) => a == b && ra == rb && va == vb,
            (TypeKind::Array { elem: a, len: la }, TypeKind::Array { elem: b, len: lb }) => {
                la == lb && a.same_signature(b)
            }
            (TypeKind::Str { cap: a }, TypeKind::Str { cap: b }) => a == b,
            (TypeKind::Struct { name: a, .. }, TypeKind::Struct { name: b, .. }) => a == b,
            _ => false,
        }
    }

    /// Field-level differences from `self` (what the file holds) to `want` (the type it is opened
    /// as), per leaf field (`limits.max`, nested structs flattened): `temperature_c: f32 @4 -> f64
    /// @8`, `mode: added (...)`, `flags: removed`.
    ///
    /// Lists at most [`MAX_DIFFERENCES`] lines and then `... and N more differences`; costs time
    /// linear in the two types' sizes and builds a field path only for a line it lists.
    pub fn diff(&self, want: &Type) -> Vec<String> {
        let mut d = Differences::default();
        if let (TypeKind::Struct { name: a, .. }, TypeKind::Struct { name: b, .. }) =
            (&self.kind, &want.kind)
        {
            if a != b {
                d.push(|| format!("struct name: `{a}` -> `{b}`"));
            }
        }
        let mut path = Vec::new();
        diff_side(self, Some(want), 0, 0, &mut path, &mut d, Side::Have);
        diff_side(want, Some(self), 0, 0, &mut path, &mut d, Side::Want);
        if d.lines.is_empty() && d.more == 0 && self.size != want.size {
            d.push(|| format!("size: {} -> {}", self.size, want.size));
        }
        if d.more > 0 {
            d.lines.push(format!("... and {} more differences", d.more));
        }
        d.lines
    }
}

/// The differences listed so far, and how many more were found but not formatted.
#[derive(Default)]
struct Differences {
    lines: Vec<String>,
    more: usize,
}

impl Differences {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.lines.len() < MAX_DIFFERENCES {
            self.lines.push(line());
        } else {
            self.more += 1;
        }
    }
}

/// Which type `diff_side` walks: the file's (reporting changed and removed leaves) or the wanted
/// one (reporting added leaves).
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Have,
    Want,
}

/// Longest field path a difference line shows in full; longer ones keep their start and end.
const SHOWN_PATH: usize = 1024;

/// `a.b.c`, or `value` for the top-level leaf of a non-struct type. A path longer than
/// `SHOWN_PATH` bytes (names may be 65,535 bytes and nest 32 deep) is shortened around `...`, so
/// that the 32 lines of a diff stay small.
pub(crate) fn dotted(path: &[&str]) -> String {
    if path.is_empty() {
        return "value".to_owned();
    }
    let full = path.join(".");
    if full.len() <= SHOWN_PATH {
        return full;
    }
    let head = floor_char_boundary(&full, SHOWN_PATH / 2);
    let tail = ceil_char_boundary(&full, full.len() - SHOWN_PATH / 4);
    format!(
        "{}...({} bytes)...{}",
        &full[..head],
        tail - head,
        &full[tail..]
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Walks the leaves of `ty` (at payload offset `at`) beside the node at the same path in the
/// other type (`other`, at `other_at`), if it has one. Fields are matched by name through a
/// hash map, so each struct costs time linear in its fields.
fn diff_side<'a>(
    ty: &'a Type,
    other: Option<&'a Type>,
    at: usize,
    other_at: usize,
    path: &mut Vec<&'a str>,
    d: &mut Differences,
    side: Side,
) {
    if let TypeKind::Struct { fields, .. } = &ty.kind {
        let others: HashMap<&str, &Field> = match other.map(|o| &o.kind) {
            Some(TypeKind::Struct { fields: of, .. }) => of.iter().map(|f| (&*f.name, f)).collect(),
            // A leaf (or nothing) at this path in the other type: nothing below it matches.
            _ => HashMap::new(),
        };
        for f in fields {
            let o = others.get(&*f.name);
            path.push(&f.name);
            diff_side(
                &f.ty,
                o.map(|o| &o.ty),
                at.saturating_add(f.offset),
                o.map_or(0, |o| other_at.saturating_add(o.offset)),
                path,
                d,
                side,
            );
            path.pop();
        }
        return;
    }
    let other_leaf = other.filter(|o| !matches!(o.kind, TypeKind::Struct { .. }));
    match (side, other_leaf) {
        (Side::Have, None) => d.push(|| format!("{}: removed", dotted(path))),
        (Side::Have, Some(o)) if !ty.same_signature(o) || at != other_at => d.push(|| {
            format!(
                "{}: {} @{at} -> {} @{other_at}",
                dotted(path),
                ty.signature(),
                o.signature()
            )
        }),
        (Side::Want, None) => {
            d.push(|| format!("{}: added ({} @{at})", dotted(path), ty.signature()))
        }
        _ => {}
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    nodes: usize,
}

impl<'a> Parser<'a> {
    fn fail_at<T>(&self, offset: usize, reason: impl Into<String>) -> Result<T, ManifestError> {
        Err(ManifestError {
            offset,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => self.fail_at(
                self.pos,
                format!("manifest ends early (needed {n} more bytes)"),
            ),
        }
    }

    fn u8(&mut self) -> Result<u8, ManifestError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, ManifestError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn i64(&mut self) -> Result<i64, ManifestError> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(i64::from_le_bytes(w))
    }

    /// A name, borrowed from the manifest (the caller decides whether to keep a copy).
    fn str(&mut self) -> Result<&'a str, ManifestError> {
        let at = self.pos;
        let b = self.take(2)?;
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        let s = self.take(n)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s),
            Err(_) => self.fail_at(at, "name is not UTF-8"),
        }
    }

    fn node(&mut self) -> Result<(), ManifestError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return self.fail_at(
                self.pos,
                format!("more than {MAX_NODES} types, fields and variants"),
            );
        }
        Ok(())
    }

    fn ty(&mut self, depth: usize) -> Result<Type, ManifestError> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return self.fail_at(at, format!("types nested deeper than {MAX_DEPTH}"));
        }
        self.node()?;
        let k = self.u8()?;
        if let Some(p) = Prim::from_byte(k) {
            return Ok(Type::from_desc(&TypeDesc::prim(p)));
        }
        match k {
            kind_byte::ENUM => {
                let name = self.str()?;
                let repr_at = self.pos;
                let repr = match Prim::from_byte(self.u8()?) {
                    Some(p) if p.is_enum_repr() => p,
                    _ => {
                        return self
                            .fail_at(repr_at, "enum representation is not u8/u16/u32/i8/i16/i32")
                    }
                };
                let count = self.u32()?;
                let mut variants = Vec::new();
                for _ in 0..count {
                    self.node()?;
                    let vname = self.str()?;
                    let vat = self.pos;
                    let value = self.i64()?;
                    if !fits(repr, value) {
                        return self.fail_at(
                            vat,
                            format!(
                                "variant `{vname}` = {value} does not fit in {}",
                                repr.name()
                            ),
                        );
                    }
                    variants.push((Arc::from(vname), value));
                }
                Ok(Type {
                    kind: TypeKind::Enum {
                        name: name.into(),
                        repr,
                        variants: variants.into(),
                    },
                    size: repr.size(),
                    align: repr.size(),
                })
            }
            kind_byte::ARRAY => {
                let len = self.u32()?;
                let elem = self.ty(depth + 1)?;
                let size = match elem.size.checked_mul(len) {
                    Some(s) if s as u64 <= crate::format::MAX_PAYLOAD => s,
                    _ => return self.fail_at(at, "array larger than the payload limit"),
                };
                let align = elem.align;
                Ok(Type {
                    kind: TypeKind::Array {
                        elem: Box::new(elem),
                        len,
                    },
                    size,
                    align,
                })
            }
            kind_byte::STR => {
                let cap = self.u32()?;
                if cap as u64 > crate::format::MAX_PAYLOAD {
                    return self.fail_at(at, "string capacity larger than the payload limit");
                }
                Ok(Type {
                    kind: TypeKind::Str { cap },
                    size: align_up(4 + cap, 4),
                    align: 4,
                })
            }
            kind_byte::STRUCT => {
                let name = self.str()?;
                let size_at = self.pos;
                let size = self.u32()?;
                let align = self.u32()?;
                if !align.is_power_of_two() || align > 64 || size % align != 0 {
                    return self.fail_at(
                        size_at,
                        format!("struct `{name}` has size {size} and alignment {align}"),
                    );
                }
                if size as u64 > crate::format::MAX_PAYLOAD {
                    return self.fail_at(size_at, "struct larger than the payload limit");
                }
                let count = self.u32()?;
                let mut fields: Vec<Field> = Vec::new();
                // Hashed: a struct may have 100,000 fields, and a scan per field is quadratic.
                let mut seen: HashSet<&str> = HashSet::new();
                let mut end = 0usize;
                for _ in 0..count {
                    self.node()?;
                    let fat = self.pos;
                    let fname = self.str()?;
                    let offset = self.u32()?;
                    let ty = self.ty(depth + 1)?;
                    if offset < end
                        || offset % ty.align != 0
                        || ty.align > align
                        || offset + ty.size > size
                    {
                        return self.fail_at(
                            fat,
                            format!("field `{name}.{fname}` ({} @{offset}) overlaps, is misaligned or lies outside the struct", ty.name()),
                        );
                    }
                    if !seen.insert(fname) {
                        return self.fail_at(fat, format!("field `{name}.{fname}` appears twice"));
                    }
                    end = offset + ty.size;
                    fields.push(Field {
                        name: fname.into(),
                        offset,
                        ty,
                    });
                }
                Ok(Type {
                    kind: TypeKind::Struct {
                        name: name.into(),
                        fields,
                    },
                    size,
                    align,
                })
            }
            other => self.fail_at(at, format!("unknown type kind {other}")),
        }
    }
}

fn fits(repr: Prim, v: i64) -> bool {
    match repr {
        Prim::U8 => u8::try_from(v).is_ok(),
        Prim::U16 => u16::try_from(v).is_ok(),
        Prim::U32 => u32::try_from(v).is_ok(),
        Prim::I8 => i8::try_from(v).is_ok(),
        Prim::I16 => i16::try_from(v).is_ok(),
        Prim::I32 => i32::try_from(v).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u8_ty() -> Type {
        Type::from_desc(&TypeDesc::prim(Prim::U8))
    }

    fn structure(name: &str, fields: Vec<(String, Type)>) -> Type {
        let size = fields.len();
        Type {
            kind: TypeKind::Struct {
                name: name.into(),
                fields: fields
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, ty))| Field {
                        name: n.into(),
                        offset: i,
                        ty,
                    })
                    .collect(),
            },
            size,
            align: 1,
        }
    }

    #[test]
    fn diff_lists_at_most_max_differences_then_counts() {
        let many = structure("S", (0..40).map(|i| (format!("f{i}"), u8_ty())).collect());
        let none = structure("S", vec![]);
        let d = many.diff(&none);
        assert_eq!(d.len(), MAX_DIFFERENCES + 1);
        assert_eq!(d[0], "f0: removed");
        assert_eq!(d[MAX_DIFFERENCES], "... and 8 more differences");
        let d = none.diff(&many);
        assert_eq!(d[0], "f0: added (u8 @0)");
    }

    #[test]
    fn diff_shortens_long_paths() {
        let long = "x".repeat(5000);
        let inner = structure("I", vec![("leaf".into(), u8_ty())]);
        let outer = structure("S", vec![(long.clone(), inner)]);
        let d = outer.diff(&structure("S", vec![]));
        assert_eq!(d.len(), 1);
        assert!(d[0].len() < 1200, "{} bytes", d[0].len());
        assert!(
            d[0].starts_with("xxx") && d[0].ends_with("x.leaf: removed"),
            "{}",
            d[0]
        );
        assert!(d[0].contains("...(4237 bytes)..."), "{}", &d[0][500..560]);
    }

    #[test]
    fn variants_are_found_by_value_first_declared_first() {
        let v: Variants = vec![
            (Arc::from("B"), 5),
            (Arc::from("A"), -3),
            (Arc::from("C"), 5),
        ]
        .into();
        assert_eq!(v.find(5).map(|x| &*x.0), Some("B"));
        assert_eq!(v.find(-3).map(|x| &*x.0), Some("A"));
        assert_eq!(v.find(4), None);
        assert_eq!(v.iter().map(|x| &*x.0).collect::<Vec<_>>(), ["B", "A", "C"]);
    }
}
