//! Schema evolution: whether a program's type can read a file written with another version of
//! it, and how.
//!
//! The rules (README "Schema evolution", `docs/FORMAT.md` 7):
//!
//! - A new version of a struct may **append** fields after the last field of the old one (the
//!   payload grows). Every field it keeps has the same name, type, offset and size. Nothing is
//!   removed, retyped, moved or renamed: deprecate a field instead, and append its replacement.
//! - A reader opens a file whose schema differs from its type `T` when `T` is a *compatible
//!   projection* of the file's schema: every top-level field of `T` is in the file with the same
//!   name, at the same offset, with a type that [fits](check); or it is absent from the file and
//!   declares a default (`#[mapped_state(default)]`, `#[mapped_state(default = EXPR)]`, or the
//!   struct's `#[mapped_state(default)]`, which takes the struct's `Default`). Fields of the file
//!   that `T` does not name are not read.
//! - When every field of `T` is in the file, `T`'s layout is a prefix of the file's payload (same
//!   offsets, the file's payload is just longer): the reader reads exactly as it reads a file of
//!   its own type, straight from the ring. When fields are absent, a whole-value read copies the
//!   file's payload and assembles `T` from it and the defaults; accessors of present fields still
//!   read only their words, accessors of absent fields return the default.
//! - An enum may gain variants: the file's enum may declare variants `T`'s does not (a value of
//!   one fails that read with `Error::InvalidValue`, as any unknown discriminant does), and `T`'s
//!   may declare variants the file's does not. A variant in both keeps its name and value, and
//!   the representation never changes.
//! - A nested struct is one field: its whole layout must stay the same (name, size, every field
//!   at its offset, fitting). To extend it, append a new field to the outer struct.
//! - A writer must match the file exactly (a writer of an older type would leave the newer
//!   fields of each slot stale). [`Writer::open_migrating`](crate::Writer::open_migrating)
//!   rewrites a file to the writer's type.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, SchemaFix};
use crate::manifest::{Type, TypeKind};
use crate::open::Validated;
use crate::view::Fields;

/// How a reader's type relates to a file's schema: see [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compatibility {
    /// The reader's top-level fields (name, signature, offset) that the file does not have: they
    /// read as their declared defaults, or the open fails if one has none.
    pub absent: Vec<AbsentField>,
    /// Why the reader's type cannot read the file at all, one caller-side line each
    /// (``this program's `Config` has `rpm: u64 @0`, the file has `rpm: u32 @0` ``). Empty when
    /// it can (given defaults for the absent fields).
    pub problems: Vec<String>,
    /// Notes that do not prevent reading: fields of the file the reader does not know, enum
    /// variants of the file the reader does not know.
    pub notes: Vec<String>,
}

/// A field of the reader's type that the file does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsentField {
    /// Index of the field in the reader's struct.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its type and offset, as shown in messages (`u32 @96`).
    pub shown: String,
}

impl Compatibility {
    /// Whether a reader of the type can open the file, given defaults for every absent field.
    pub fn readable_with_defaults(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether a reader of the type can open the file without any default.
    pub fn readable(&self) -> bool {
        self.problems.is_empty() && self.absent.is_empty()
    }
}

/// Most lines a check lists; the rest are counted in a last line.
const MAX_LINES: usize = crate::manifest::MAX_DIFFERENCES;

/// A name as shown in a message: names may be 65,535 bytes long, a line stays short.
fn short(name: &str) -> String {
    crate::manifest::dotted(&[name])
}

fn push(lines: &mut Vec<String>, more: &mut usize, line: impl FnOnce() -> String) {
    if lines.len() < MAX_LINES {
        lines.push(line());
    } else {
        *more += 1;
    }
}

/// Whether a program whose type is `reader` can read a file whose schema is `file`, by the rules
/// of this module. Costs time linear in the two types' sizes (fields are matched by name through
/// a hash map); lists at most 32 problems and 32 notes.
pub fn check(reader: &Type, file: &Type) -> Compatibility {
    let mut c = Compatibility {
        absent: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let (mut more_problems, mut more_notes) = (0, 0);
    let mine = short(&reader.name());
    match (&reader.kind, &file.kind) {
        (
            TypeKind::Struct {
                name: rn,
                fields: rf,
            },
            TypeKind::Struct {
                name: fname,
                fields: ff,
            },
        ) => {
            if rn != fname {
                push(&mut c.problems, &mut more_problems, || {
                    format!(
                        "this program's type is named `{}`, the file holds a `{}` (if it is the same data, name it with `#[mapped_state(name = \"{}\")]`)",
                        short(rn), short(fname), short(fname)
                    )
                });
            }
            let by_name: std::collections::HashMap<&str, &crate::manifest::Field> =
                ff.iter().map(|f| (&*f.name, f)).collect();
            for (index, f) in rf.iter().enumerate() {
                let shown = format!("{}: {} @{}", short(&f.name), f.ty.signature(), f.offset);
                match by_name.get(&*f.name) {
                    None => c.absent.push(AbsentField {
                        index,
                        name: short(&f.name),
                        shown: format!("{} @{}", f.ty.signature(), f.offset),
                    }),
                    Some(g) => {
                        let why = fits(&f.ty, &g.ty, &mut c.notes, &mut more_notes, &f.name);
                        if g.offset != f.offset || why.is_some() {
                            push(&mut c.problems, &mut more_problems, || {
                                let detail = why.map(|w| format!(" ({w})")).unwrap_or_default();
                                format!(
                                    "this program's `{mine}` has `{shown}`, the file has `{}: {} @{}`{detail}",
                                    short(&g.name),
                                    g.ty.signature(),
                                    g.offset
                                )
                            });
                        }
                    }
                }
            }
            let known: std::collections::HashSet<&str> = rf.iter().map(|f| &*f.name).collect();
            for g in ff.iter().filter(|g| !known.contains(&*g.name)) {
                push(&mut c.notes, &mut more_notes, || {
                    format!(
                        "the file has `{}: {} @{}`, which this program's `{mine}` does not read",
                        short(&g.name),
                        g.ty.signature(),
                        g.offset
                    )
                });
            }
        }
        _ => {
            if let Some(why) = fits(reader, file, &mut c.notes, &mut more_notes, "value") {
                push(&mut c.problems, &mut more_problems, || {
                    format!(
                        "this program's type is `{}`, the file holds `{}` ({why})",
                        reader.signature(),
                        file.signature()
                    )
                });
            }
        }
    }
    if more_problems > 0 {
        c.problems
            .push(format!("... and {more_problems} more problems"));
    }
    if more_notes > 0 {
        c.notes.push(format!("... and {more_notes} more notes"));
    }
    c
}

/// `None` when a value of the file's type `file` reads correctly as the reader's type `reader`
/// (same layout; enums may differ in the variants only one of them declares), else why not.
/// Notes about unknown enum variants go to `notes`.
fn fits(
    reader: &Type,
    file: &Type,
    notes: &mut Vec<String>,
    more: &mut usize,
    at: &str,
) -> Option<String> {
    if reader.size != file.size || reader.align != file.align {
        return Some(format!(
            "size {} align {} here, size {} align {} in the file",
            reader.size, reader.align, file.size, file.align
        ));
    }
    match (&reader.kind, &file.kind) {
        (TypeKind::Prim(a), TypeKind::Prim(b)) if a == b => None,
        (TypeKind::Str { cap: a }, TypeKind::Str { cap: b }) if a == b => None,
        (TypeKind::Array { elem: a, len: la }, TypeKind::Array { elem: b, len: lb }) => {
            if la != lb {
                Some(format!("{la} elements here, {lb} in the file"))
            } else {
                fits(a, b, notes, more, at).map(|w| format!("elements: {w}"))
            }
        }
        (
            TypeKind::Enum {
                name: na,
                repr: ra,
                variants: va,
            },
            TypeKind::Enum {
                name: nb,
                repr: rb,
                variants: vb,
            },
        ) => {
            if na != nb {
                return Some(format!("enum `{na}` here, `{nb}` in the file"));
            }
            if ra != rb {
                return Some(format!(
                    "enum `{na}` is `repr({})` here, `repr({})` in the file",
                    ra.name(),
                    rb.name()
                ));
            }
            let mine: std::collections::HashMap<&str, i64> =
                va.iter().map(|(n, v)| (&**n, *v)).collect();
            for (n, v) in vb.iter() {
                match mine.get(&**n) {
                    Some(m) if m != v => {
                        return Some(format!("variant `{na}::{n}` is {m} here, {v} in the file"))
                    }
                    Some(_) => {}
                    None => {
                        if let Some((other, _)) = va.find(*v) {
                            return Some(format!(
                                "value {v} is `{na}::{other}` here, `{na}::{n}` in the file"
                            ));
                        }
                        push(notes, more, || {
                            format!(
                                "`{at}`: the file's enum `{nb}` has variant `{n}` = {v}, unknown here: reading that value fails"
                            )
                        });
                    }
                }
            }
            None
        }
        (
            TypeKind::Struct {
                name: na,
                fields: fa,
            },
            TypeKind::Struct {
                name: nb,
                fields: fb,
            },
        ) => {
            if na != nb {
                return Some(format!("struct `{na}` here, `{nb}` in the file"));
            }
            if fa.len() != fb.len() {
                return Some(format!(
                    "nested struct `{na}` has {} fields here, {} in the file (a nested struct cannot gain or lose fields)",
                    fa.len(),
                    fb.len()
                ));
            }
            for (a, b) in fa.iter().zip(fb) {
                if a.name != b.name || a.offset != b.offset {
                    return Some(format!(
                        "nested struct `{na}` has `{}` @{} here, `{}` @{} in the file",
                        a.name, a.offset, b.name, b.offset
                    ));
                }
                if let Some(w) = fits(&a.ty, &b.ty, notes, more, at) {
                    return Some(format!("`{na}.{}`: {w}", a.name));
                }
            }
            None
        }
        _ => Some(format!(
            "`{}` here, `{}` in the file",
            reader.signature(),
            file.signature()
        )),
    }
}

/// How a typed reader reads a file whose schema is not exactly its type: the reader's encoding
/// with the absent fields' defaults in place, and the byte ranges to take from the file.
#[derive(Debug)]
pub(crate) struct Projection {
    /// By the reader's field index: the field's `(offset, size)` when it is absent (read from
    /// `base`), `None` when the file has it.
    absent: Vec<Option<(usize, usize)>>,
    /// The reader's encoding: absent fields hold their defaults, the rest zeros.
    base: Vec<u8>,
    /// `(offset, len)` of the present fields: copied from the file's payload (same offsets).
    present: Vec<(usize, usize)>,
    /// How many bytes of the file's payload a whole-value read copies.
    read_len: usize,
}

impl Projection {
    /// The default's encoding when field `index` of the reader's type is absent from the file.
    #[inline]
    pub(crate) fn absent(&self, index: usize) -> Option<&[u8]> {
        match self.absent.get(index) {
            Some(Some((off, size))) => Some(&self.base[*off..*off + *size]),
            _ => None,
        }
    }

    /// The number of bytes of the file's payload needed.
    pub(crate) fn read_len(&self) -> usize {
        self.read_len
    }

    /// The reader's encoding assembled from the file's payload bytes `file` (at least
    /// `read_len` long) and the defaults.
    pub(crate) fn assemble(&self, file: &[u8]) -> Vec<u8> {
        let mut out = self.base.clone();
        for &(off, len) in &self.present {
            out[off..off + len].copy_from_slice(&file[off..off + len]);
        }
        out
    }
}

/// The fix a reader's mismatch error suggests.
fn reader_fix(c: &Compatibility, missing_defaults: bool) -> SchemaFix {
    match (missing_defaults, c.problems.is_empty()) {
        (true, true) => SchemaFix::DeclareDefaults,
        (true, false) => SchemaFix::DeclareDefaultsAndKeepFields,
        (false, _) => SchemaFix::KeepFields,
    }
}

fn mismatch<T: Fields>(
    path: &Path,
    v: &Validated,
    mut differences: Vec<String>,
    fix: SchemaFix,
) -> Error {
    if differences.len() > MAX_LINES + 1 {
        let more = differences.len() - MAX_LINES;
        differences.truncate(MAX_LINES);
        differences.push(format!("... and {more} more lines"));
    }
    Error::SchemaMismatch {
        path: path.to_owned(),
        expected_name: Type::from_desc(T::TYPE).name(),
        expected_hash: T::SCHEMA_HASH,
        found_name: v.schema.name(),
        found_hash: v.header.schema_hash,
        differences,
        fix,
    }
}

/// What a reader of `T` needs to read the validated file: nothing (`None`: the file holds a `T`,
/// or `T`'s layout is a prefix of the file's), or a projection; or the caller-side error.
pub(crate) fn reader_fit<T: Fields>(
    path: &Path,
    v: &Validated,
    exact: bool,
) -> Result<Option<Arc<Projection>>, Error> {
    if v.header.schema_hash == T::SCHEMA_HASH {
        return Ok(None);
    }
    let mine = Type::from_desc(T::TYPE);
    let c = check(&mine, &v.schema);
    if exact {
        let mut lines = c.problems.clone();
        lines.extend(c.absent.iter().map(|a| {
            format!(
                "this program's `{}` has `{}: {}`, the file has no such field",
                mine.name(),
                a.name,
                a.shown
            )
        }));
        lines.extend(c.notes.iter().cloned());
        if lines.is_empty() {
            lines.push(format!(
                "this program's `{}` reads the file's `{}` field for field, but the schemas differ (enum variants only this program declares)",
                mine.name(),
                v.schema.name()
            ));
        }
        let fix = if c.readable_with_defaults() {
            SchemaFix::DropExactSchema
        } else {
            reader_fix(&c, false)
        };
        return Err(mismatch::<T>(path, v, lines, fix));
    }
    let mut lines = c.problems.clone();
    let mut missing_defaults = false;
    let mut base = vec![0u8; T::TYPE.size];
    let mut absent = Vec::new();
    let fields = match T::TYPE.kind {
        crate::schema::Kind::Struct(s) => s.fields,
        _ => &[],
    };
    for a in &c.absent {
        let f = &fields[a.index];
        let at = f.offset..f.offset + f.ty.size;
        if T::encode_field_default(a.index, &mut base[at]) {
            absent.push((a.index, f.offset, f.ty.size));
        } else {
            missing_defaults = true;
            lines.push(format!(
                "this program's `{}` has `{}: {}`, the file has no such field, and it declares no default",
                mine.name(),
                a.name,
                a.shown
            ));
        }
    }
    if !lines.is_empty() {
        let fix = reader_fix(&c, missing_defaults);
        return Err(mismatch::<T>(path, v, lines, fix));
    }
    if absent.is_empty() {
        // Every field of `T` is in the file at its own offset: `T`'s layout is a prefix of the
        // file's payload (checked, not assumed: a read of `T` spans `T::TYPE.size` bytes).
        if T::TYPE.size as u64 > v.header.payload_size {
            return Err(mismatch::<T>(
                path,
                v,
                vec![format!(
                    "this program's `{}` is {} bytes, the file's payload {}",
                    mine.name(),
                    T::TYPE.size,
                    v.header.payload_size
                )],
                reader_fix(&c, false),
            ));
        }
        return Ok(None);
    }
    let mut by_index = vec![None; fields.len()];
    for &(i, off, size) in &absent {
        by_index[i] = Some((off, size));
    }
    let present: Vec<(usize, usize)> = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| by_index[*i].is_none())
        .map(|(_, f)| (f.offset, f.ty.size))
        .collect();
    let read_len = present.iter().map(|(o, s)| o + s).max().unwrap_or(0);
    Ok(Some(Arc::new(Projection {
        absent: by_index,
        base,
        present,
        read_len,
    })))
}

/// `Ok` when a writer of `T` may take over the file: its schema is exactly `T`'s. Otherwise the
/// caller-side error, with the fix: migrate or replace.
pub(crate) fn writer_fit<T: Fields>(path: &Path, v: &Validated) -> Result<(), Error> {
    if v.header.schema_hash == T::SCHEMA_HASH {
        return Ok(());
    }
    let mine = Type::from_desc(T::TYPE);
    let c = check(&mine, &v.schema);
    let mut lines = c.problems.clone();
    lines.extend(c.absent.iter().map(|a| {
        format!(
            "this program's `{}` has `{}: {}`, the file has no such field",
            mine.name(),
            a.name,
            a.shown
        )
    }));
    lines.extend(c.notes.iter().cloned());
    if lines.is_empty() {
        lines.push(format!(
            "the layouts agree field by field, but the schemas differ (nested type names or size: {} bytes here, {} in the file)",
            mine.size, v.schema.size
        ));
    }
    let fix = SchemaFix::Migrate;
    Err(mismatch::<T>(path, v, lines, fix))
}

/// The migration of a file's value to a writer's type: for each field of the new type, where
/// its bytes come from.
#[derive(Debug)]
pub(crate) struct Migration {
    /// `(old offset, new offset, size)` of each field carried over.
    carried: Vec<(usize, usize, usize)>,
}

/// Plans the migration of a file of schema `old` to the writer's type `T`: fields of `T` that the
/// file has with a fitting type are carried over (at any offset); fields it lacks take their
/// value from the caller's `fill`. A field the file has with another type cannot be converted:
/// the error names it.
pub(crate) fn plan_migration<T: Fields>(path: &Path, v: &Validated) -> Result<Migration, Error> {
    let mine = Type::from_desc(T::TYPE);
    let mut carried = Vec::new();
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    let mut more = 0;
    match (&mine.kind, &v.schema.kind) {
        (TypeKind::Struct { fields: mf, .. }, TypeKind::Struct { fields: of, .. }) => {
            let by_name: std::collections::HashMap<&str, &crate::manifest::Field> =
                of.iter().map(|f| (&*f.name, f)).collect();
            for f in mf {
                if let Some(g) = by_name.get(&*f.name) {
                    match fits(&f.ty, &g.ty, &mut notes, &mut more, &f.name) {
                        None => carried.push((g.offset, f.offset, f.ty.size)),
                        Some(why) => refused.push(format!(
                            "this program's `{}` has `{}: {} @{}`, the file has `{}: {} @{}` ({why}): a migration cannot convert it",
                            mine.name(),
                            f.name,
                            f.ty.signature(),
                            f.offset,
                            g.name,
                            g.ty.signature(),
                            g.offset
                        )),
                    }
                }
            }
        }
        _ => {
            if fits(&mine, &v.schema, &mut notes, &mut more, "value").is_none() {
                carried.push((0, 0, mine.size));
            }
        }
    }
    if refused.is_empty() && carried.is_empty() {
        return Err(mismatch::<T>(
            path,
            v,
            vec![format!(
                "this program's `{}` shares no field with the file's `{}`: a migration would carry nothing over",
                mine.name(),
                v.schema.name()
            )],
            SchemaFix::Replace,
        ));
    }
    if !refused.is_empty() {
        return Err(mismatch::<T>(path, v, refused, SchemaFix::RenameOrReplace));
    }
    Ok(Migration { carried })
}

impl Migration {
    /// The new type's encoding: `fill`'s, with the carried fields' bytes from the old payload.
    pub(crate) fn apply(&self, fill: &[u8], old: &[u8]) -> Vec<u8> {
        let mut out = fill.to_vec();
        for &(from, to, size) in &self.carried {
            out[to..to + size].copy_from_slice(&old[from..from + size]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Prim, TypeDesc};

    fn prim(p: Prim) -> Type {
        Type::from_desc(&TypeDesc::prim(p))
    }

    fn st(name: &str, size: usize, fields: Vec<(&str, usize, Type)>) -> Type {
        let align = fields.iter().map(|f| f.2.align).max().unwrap_or(1);
        Type {
            kind: TypeKind::Struct {
                name: name.into(),
                fields: fields
                    .into_iter()
                    .map(|(n, o, ty)| crate::manifest::Field {
                        name: n.into(),
                        offset: o,
                        ty,
                    })
                    .collect(),
            },
            size,
            align,
        }
    }

    fn en(variants: &[(&str, i64)]) -> Type {
        Type {
            kind: TypeKind::Enum {
                name: "Mode".into(),
                repr: Prim::U8,
                variants: variants
                    .iter()
                    .map(|(n, v)| (Arc::from(*n), *v))
                    .collect::<Vec<_>>()
                    .into(),
            },
            size: 1,
            align: 1,
        }
    }

    #[test]
    fn appended_fields_are_readable_by_old_readers_and_absent_ones_need_defaults() {
        let v1 = st(
            "C",
            8,
            vec![("a", 0, prim(Prim::U32)), ("b", 4, prim(Prim::U8))],
        );
        let v2 = st(
            "C",
            16,
            vec![
                ("a", 0, prim(Prim::U32)),
                ("b", 4, prim(Prim::U8)),
                ("c", 8, prim(Prim::U64)),
            ],
        );
        let old_reader = check(&v1, &v2);
        assert!(old_reader.readable(), "{old_reader:?}");
        assert_eq!(
            old_reader.notes,
            ["the file has `c: u64 @8`, which this program's `C` does not read"]
        );
        let new_reader = check(&v2, &v1);
        assert!(!new_reader.readable() && new_reader.readable_with_defaults());
        assert_eq!(new_reader.absent[0].name, "c");
        assert_eq!(new_reader.absent[0].shown, "u64 @8");
    }

    #[test]
    fn retyped_moved_and_renamed_fields_are_refused_from_the_callers_side() {
        let file = st(
            "C",
            8,
            vec![("a", 0, prim(Prim::U32)), ("b", 4, prim(Prim::U8))],
        );
        let retyped = st(
            "C",
            8,
            vec![("a", 0, prim(Prim::I32)), ("b", 4, prim(Prim::U8))],
        );
        let c = check(&retyped, &file);
        assert_eq!(
            c.problems,
            ["this program's `C` has `a: i32 @0`, the file has `a: u32 @0` (`i32` here, `u32` in the file)"]
        );
        let moved = st(
            "C",
            8,
            vec![("b", 0, prim(Prim::U8)), ("a", 4, prim(Prim::U32))],
        );
        assert_eq!(check(&moved, &file).problems.len(), 2);
        let renamed = st(
            "D",
            8,
            vec![("a", 0, prim(Prim::U32)), ("b", 4, prim(Prim::U8))],
        );
        assert!(check(&renamed, &file).problems[0].contains("named `D`"));
    }

    #[test]
    fn enums_may_gain_variants_but_never_change_one() {
        let old = en(&[("Idle", 0), ("Run", 1)]);
        let new = en(&[("Idle", 0), ("Run", 1), ("Fault", 2)]);
        let c = check(&old, &new);
        assert!(c.readable(), "{c:?}");
        assert!(c.notes[0].contains("variant `Fault` = 2"), "{:?}", c.notes);
        assert!(check(&new, &old).readable());
        let changed = en(&[("Idle", 0), ("Run", 2)]);
        assert!(check(&old, &changed).problems[0].contains("`Mode::Run` is 1 here, 2 in the file"));
        let renamed = en(&[("Idle", 0), ("Running", 1)]);
        assert!(check(&old, &renamed).problems[0].contains("value 1 is `Mode::Run` here"));
    }

    #[test]
    fn nested_structs_keep_their_whole_layout() {
        let inner1 = st("I", 4, vec![("x", 0, prim(Prim::U32))]);
        let inner2 = st(
            "I",
            8,
            vec![("x", 0, prim(Prim::U32)), ("y", 4, prim(Prim::U32))],
        );
        let outer = |i: Type| st("O", i.size, vec![("i", 0, i)]);
        let c = check(&outer(inner1.clone()), &outer(inner2.clone()));
        assert_eq!(c.problems.len(), 1);
        assert!(
            c.problems[0].contains("size 4 align 4 here, size 8"),
            "{:?}",
            c.problems
        );
        assert!(check(&outer(inner1.clone()), &outer(inner1)).readable());
    }
}
