//! Rules the macro can decide from syntax alone, one function per rule: field types that can
//! never live in a mapped file, accessor names, `#[repr]` items. Everything that needs type
//! information (does a field type implement `MappedState`? what is the layout?) is left to rustc
//! through the generated code.

use std::collections::HashMap;

use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::Type;

use crate::ast::{Enum, Field, Input, Struct};
use crate::attr;
use crate::errors::Errors;

/// Inherent methods of `Reader<T>` (mapped-state/src/reader.rs). They win over the accessors
/// reached through `Deref`, so an accessor with one of these names could never be called.
/// `into` and `try_into` come from prelude traits implemented for every type, which also win.
/// Keep this list in step with reader.rs.
const RESERVED_READER_METHODS: &[&str] = &[
    "open",
    "open_with",
    "raw",
    "load",
    "load_versioned",
    "load_into",
    "load_version",
    "load_history",
    "set_max_attempts",
    "version",
    "writer_alive",
    "writer_pid",
    "last_commit",
    "age",
    "superseded",
    "path",
    "wait_for_update",
    "wait_for_update_after",
    "updates",
    "updates_after",
    "set_liveness_interval",
    "into",
    "try_into",
];

/// Inherent methods of `Writer<T>` (mapped-state/src/writer.rs) named like a setter: they would
/// hide the setter `set_<accessor>` reached through `DerefMut`. Keep in step with writer.rs (the
/// test below reads both files).
const RESERVED_WRITER_SETTERS: &[&str] = &["set_wake_policy"];

/// Runs every rule on an accepted input.
pub fn check(input: &Input, errors: &mut Errors) {
    match input {
        Input::Struct(s) => {
            struct_repr(s, errors);
            has_fields(s, errors);
            for f in &s.fields {
                field_type(f.ty, errors);
            }
            accessors(&s.fields, errors);
        }
        Input::Enum(e) => {
            enum_default(e, errors);
            enum_repr(e, errors);
            has_variants(e, errors);
        }
    }
}

/// `packed` would make the generated code take unaligned references, and `align(N)` would
/// suggest a padding the mapped layout does not have: the mapped layout is always C layout.
fn struct_repr(s: &Struct, errors: &mut Errors) {
    if let Some(p) = &s.repr.packed {
        errors.push(syn::Error::new(
            p.span(),
            "`repr(packed)` is not supported: the mapped layout is always C layout with aligned, zeroed padding; remove it (the Rust struct needs no `repr`)",
        ));
    }
    if let Some(a) = &s.repr.align {
        errors.push(syn::Error::new(
            a.span(),
            "`repr(align)` does not change the mapped layout, which is always C layout; remove it",
        ));
    }
}

fn has_fields(s: &Struct, errors: &mut Errors) {
    if s.fields.is_empty() {
        errors.push(syn::Error::new(
            s.ident.span(),
            "a `MappedState` struct needs at least one field",
        ));
    }
}

/// The discriminant width is part of the file format, so it must be written down.
/// A default is declared for a struct's fields (a file may lack them); an enum is always one
/// whole field.
fn enum_default(e: &Enum, errors: &mut Errors) {
    if let Some(span) = e.attrs.default {
        errors.push(syn::Error::new(
            span,
            "`default` on an enum has no meaning: a file never lacks part of an enum; declare the default on the struct field that holds it, like `#[mapped_state(default = Mode::Idle)]`",
        ));
    }
}

fn enum_repr(e: &Enum, errors: &mut Errors) {
    if e.repr.int.is_none() && !e.repr.unsupported_int {
        errors.push(syn::Error::new(
            e.ident.span(),
            format!(
                "a `MappedState` enum needs an explicit integer representation, like `#[repr(u8)]`: its width is part of the file format; use {}",
                attr::int_reprs()
            ),
        ));
    }
}

fn has_variants(e: &Enum, errors: &mut Errors) {
    if e.declared_variants == 0 {
        errors.push(syn::Error::new(
            e.ident.span(),
            "a `MappedState` enum needs at least one variant",
        ));
    }
}

/// Rejects field types that can never live in a mapped file, with advice, at the offending
/// token. Types this cannot judge are left to the `MappedState` bound.
fn field_type(ty: &Type, errors: &mut Errors) {
    match ty {
        Type::Array(a) => field_type(&a.elem, errors),
        Type::Paren(p) => field_type(&p.elem, errors),
        Type::Group(g) => field_type(&g.elem, errors),
        Type::Path(p) if p.qself.is_none() => {
            if let Some(last) = p.path.segments.last() {
                if let Some(advice) = named_type_advice(&last.ident.to_string()) {
                    errors.push(syn::Error::new(last.ident.span(), advice));
                }
            }
        }
        Type::Reference(r) => {
            let msg = if is_str(&r.elem) {
                "`&str` cannot live in a mapped file: it points into this process's memory; use `FixedStr<N>`"
            } else {
                "references cannot live in a mapped file: the address means nothing to another process; store the value inline"
            };
            errors.push(syn::Error::new(r.and_token.span, msg));
        }
        Type::Ptr(p) => errors.push(syn::Error::new(
            p.star_token.span,
            "raw pointers cannot live in a mapped file: the address means nothing to another process; store the value inline",
        )),
        Type::Slice(s) => errors.push(syn::Error::new(
            s.bracket_token.span.join(),
            "slices have no fixed size; use an array `[T; N]` (with a length field if the count varies)",
        )),
        Type::Tuple(t) => errors.push(syn::Error::new(
            t.paren_token.span.join(),
            "tuples cannot live in a mapped file: the schema names every field; use a nested struct that derives `MappedState`",
        )),
        Type::BareFn(f) => errors.push(syn::Error::new(
            f.fn_token.span,
            "function pointers cannot live in a mapped file: the address means nothing to another process",
        )),
        Type::TraitObject(_) | Type::ImplTrait(_) => errors.push(syn::Error::new(
            ty.span(),
            "trait objects have no fixed layout; use a concrete type that derives `MappedState`",
        )),
        _ => {}
    }
}

fn is_str(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("str"))
}

/// Advice for well-known types that cannot be mapped, by their last path segment.
fn named_type_advice(name: &str) -> Option<String> {
    let heap = |t: &str, instead: &str| {
        format!("`{t}` cannot live in a mapped file: it points to heap memory of one process; {instead}")
    };
    Some(match name {
        "String" => "`String` cannot live in a mapped file; use `FixedStr<N>`".to_owned(),
        "str" => "`str` has no fixed size; use `FixedStr<N>`".to_owned(),
        "Vec" | "VecDeque" => heap(
            name,
            "use an array `[T; N]` (with a length field if the count varies)",
        ),
        "Box" | "Rc" | "Arc" => heap(name, "store the value inline"),
        "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" => heap(
            name,
            "use an array of fixed-size entries with a count field",
        ),
        "Option" => "`Option` cannot live in a mapped file: its layout is not fixed across compilers; store a `bool` flag field next to the value".to_owned(),
        "usize" => "`usize` has a different size on different targets; use `u64`".to_owned(),
        "isize" => "`isize` has a different size on different targets; use `i64`".to_owned(),
        _ => return None,
    })
}

/// Accessors must be callable through `Reader<T>` (no reserved name) and distinct.
fn accessors(fields: &[Field], errors: &mut Errors) {
    let mut seen: HashMap<String, &Field> = HashMap::new();
    for f in fields {
        let acc = f.accessor();
        let name = acc.unraw().to_string();
        if RESERVED_READER_METHODS.contains(&name.as_str()) {
            let advice = match &f.attrs.accessor {
                Some(_) => "choose another `accessor`".to_owned(),
                None => format!(
                    "rename the accessor with `#[mapped_state(accessor = \"{}_value\")]`",
                    name
                ),
            };
            errors.push(syn::Error::new(
                acc.span(),
                format!("the accessor `{name}` would be hidden by `Reader::{name}`; {advice}"),
            ));
        }
        let setter = format!("set_{name}");
        if RESERVED_WRITER_SETTERS.contains(&setter.as_str()) {
            let advice = match &f.attrs.accessor {
                Some(_) => "choose another `accessor`".to_owned(),
                None => format!(
                    "rename the accessor with `#[mapped_state(accessor = \"{name}_value\")]`"
                ),
            };
            errors.push(syn::Error::new(
                acc.span(),
                format!("the setter `{setter}` would be hidden by `Writer::{setter}`; {advice}"),
            ));
        }
        let element = f.array_elem().map(|_| format!("{name}_at"));
        for name in std::iter::once(name).chain(element) {
            if RESERVED_READER_METHODS.contains(&name.as_str()) && name.ends_with("_at") {
                errors.push(syn::Error::new(
                    acc.span(),
                    format!("the element accessor `{name}` would be hidden by `Reader::{name}`; choose another `accessor`"),
                ));
            }
            match seen.get(&name) {
                Some(first) => errors.push(syn::Error::new(
                    acc.span(),
                    format!(
                        "the accessor `{name}` is already used by field `{}`; choose another `accessor`",
                        first.name()
                    ),
                )),
                None => {
                    seen.insert(name, f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RESERVED_READER_METHODS, RESERVED_WRITER_SETTERS};

    /// Names of the `pub fn`s in a source file's inherent `impl` blocks (a line-based scan; the
    /// runtime's files put each signature's name on the `pub fn` line).
    fn pub_fns(source: &str) -> Vec<String> {
        source
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("pub fn "))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect()
    }

    /// The backticked names of the derive's documented reserved list (the paragraph of
    /// lib.rs that starts "`Reader<T>`'s own methods take precedence").
    fn documented_reserved_names() -> Vec<String> {
        let lib = include_str!("lib.rs");
        let start = lib
            .find("`Reader<T>`'s own methods take precedence")
            .expect("the reserved-name paragraph");
        let para: String = lib[start..]
            .lines()
            .take_while(|l| l.trim() != "///")
            .map(|l| l.trim().trim_start_matches("///"))
            .collect::<Vec<_>>()
            .join(" ");
        let para = &para[..para.find("rename its accessor").expect("the advice")];
        para.split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn documented_reserved_names_are_the_real_ones() {
        let mut documented = documented_reserved_names();
        documented.sort();
        let mut real: Vec<String> = RESERVED_READER_METHODS
            .iter()
            .chain(RESERVED_WRITER_SETTERS)
            .map(|s| s.to_string())
            .collect();
        real.sort();
        assert_eq!(documented, real, "update the list in lib.rs's derive docs");
    }

    #[test]
    fn reserved_names_cover_every_reader_method_and_writer_setter() {
        let reader = include_str!("../../mapped-state/src/reader.rs");
        let writer = include_str!("../../mapped-state/src/writer.rs");
        let reader_fns = pub_fns(reader);
        assert!(
            reader_fns.iter().any(|f| f == "load"),
            "the scan found {reader_fns:?}"
        );
        for f in &reader_fns {
            assert!(
                RESERVED_READER_METHODS.contains(&f.as_str()),
                "`Reader::{f}` would hide an accessor named `{f}`: add it to RESERVED_READER_METHODS"
            );
        }
        let writer_fns = pub_fns(writer);
        assert!(
            writer_fns.iter().any(|f| f == "publish"),
            "the scan found {writer_fns:?}"
        );
        for f in writer_fns.iter().filter(|f| f.starts_with("set_")) {
            assert!(
                RESERVED_WRITER_SETTERS.contains(&f.as_str()),
                "`Writer::{f}` would hide a setter: add it to RESERVED_WRITER_SETTERS"
            );
        }
    }
}
