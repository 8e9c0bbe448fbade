//! The schema manifest read back from a file: a bounds-checked decoder of untrusted bytes into an
//! owned type tree, and the field-level diff shown when a file is opened as the wrong type.

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
        name: String,
        /// Integer representation.
        repr: Prim,
        /// `(name, discriminant)` in declaration order.
        variants: Vec<(String, i64)>,
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
        name: String,
        /// Fields in offset order.
        fields: Vec<Field>,
    },
}

/// A struct field described by a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Name.
    pub name: String,
    /// Byte offset in the struct.
    pub offset: usize,
    /// Type.
    pub ty: Type,
}

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
                name: e.name.to_owned(),
                repr: e.repr,
                variants: e
                    .variants
                    .iter()
                    .map(|v| (v.name.to_owned(), v.value))
                    .collect(),
            },
            Kind::Array { elem, len } => TypeKind::Array {
                elem: Box::new(Type::from_desc(elem)),
                len,
            },
            Kind::Str { cap } => TypeKind::Str { cap },
            Kind::Struct(s) => TypeKind::Struct {
                name: s.name.to_owned(),
                fields: s
                    .fields
                    .iter()
                    .map(|f| Field {
                        name: f.name.to_owned(),
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
            TypeKind::Enum { name, .. } | TypeKind::Struct { name, .. } => name.clone(),
            TypeKind::Array { elem, len } => format!("[{}; {len}]", elem.name()),
            TypeKind::Str { cap } => format!("FixedStr<{cap}>"),
        }
    }

    /// A full description for diffs: enums list their representation and variants.
    fn signature(&self) -> String {
        match &self.kind {
            TypeKind::Enum {
                name,
                repr,
                variants,
            } => {
                let vs: Vec<String> = variants.iter().map(|(n, v)| format!("{n}={v}")).collect();
                format!("enum {name}({}: {})", repr.name(), vs.join(", "))
            }
            TypeKind::Array { elem, len } => format!("[{}; {len}]", elem.signature()),
            _ => self.name(),
        }
    }

    /// Every leaf field (`limits.max`) with its signature and payload offset, nested structs
    /// flattened.
    fn leaves(&self, prefix: &str, base: usize, out: &mut Vec<(String, String, usize)>) {
        match &self.kind {
            TypeKind::Struct { fields, .. } => {
                for f in fields {
                    let path = if prefix.is_empty() {
                        f.name.clone()
                    } else {
                        format!("{prefix}.{}", f.name)
                    };
                    f.ty.leaves(&path, base + f.offset, out);
                }
            }
            _ => out.push((prefix.to_owned(), self.signature(), base)),
        }
    }

    /// Field-level differences from `self` (what the file holds) to `want` (the type it is opened
    /// as): `temperature_c: f32 @4 -> f64 @8`, `mode: added`, `flags: removed`.
    pub fn diff(&self, want: &Type) -> Vec<String> {
        let mut out = Vec::new();
        if let (TypeKind::Struct { name: a, .. }, TypeKind::Struct { name: b, .. }) =
            (&self.kind, &want.kind)
        {
            if a != b {
                out.push(format!("struct name: `{a}` -> `{b}`"));
            }
        }
        let (mut have, mut need) = (Vec::new(), Vec::new());
        self.leaves("", 0, &mut have);
        want.leaves("", 0, &mut need);
        for (path, sig, at) in &have {
            let shown = if path.is_empty() { "value" } else { path };
            match need.iter().find(|(p, _, _)| p == path) {
                None => out.push(format!("{shown}: removed")),
                Some((_, sig2, at2)) if sig != sig2 || at != at2 => {
                    out.push(format!("{shown}: {sig} @{at} -> {sig2} @{at2}"))
                }
                Some(_) => {}
            }
        }
        for (path, sig, at) in &need {
            if !have.iter().any(|(p, _, _)| p == path) {
                let shown = if path.is_empty() { "value" } else { path };
                out.push(format!("{shown}: added ({sig} @{at})"));
            }
        }
        if out.is_empty() && self.size != want.size {
            out.push(format!("size: {} -> {}", self.size, want.size));
        }
        out
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

    fn str(&mut self) -> Result<String, ManifestError> {
        let at = self.pos;
        let b = self.take(2)?;
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        let s = self.take(n)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s.to_owned()),
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
                    variants.push((vname, value));
                }
                Ok(Type {
                    kind: TypeKind::Enum {
                        name,
                        repr,
                        variants,
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
                    if fields.iter().any(|f| f.name == fname) {
                        return self.fail_at(fat, format!("field `{name}.{fname}` appears twice"));
                    }
                    end = offset + ty.size;
                    fields.push(Field {
                        name: fname,
                        offset,
                        ty,
                    });
                }
                Ok(Type {
                    kind: TypeKind::Struct { name, fields },
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
