//! The derive's view of the input: a borrowed AST of the shapes it accepts (a struct with named
//! fields, a fieldless enum), with parsed attributes. Shapes it cannot accept are reported here.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::attr::{self, ContainerAttrs, FieldAttrs, IntRepr, Repr};
use crate::errors::Errors;

/// An accepted input.
pub enum Input<'a> {
    Struct(Struct<'a>),
    Enum(Enum<'a>),
}

/// A struct with named fields.
pub struct Struct<'a> {
    pub ident: &'a Ident,
    /// The struct's visibility, given to its generated view types.
    pub vis: &'a Visibility,
    pub attrs: ContainerAttrs,
    pub repr: Repr,
    pub fields: Vec<Field<'a>>,
}

/// One named field.
pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub vis: &'a Visibility,
    pub attrs: FieldAttrs,
    /// The field's doc comment (`#[doc = ...]` attributes), repeated on its accessor and setter.
    pub docs: Vec<&'a syn::Attribute>,
}

/// A fieldless enum.
pub struct Enum<'a> {
    pub ident: &'a Ident,
    pub attrs: ContainerAttrs,
    pub repr: Repr,
    /// The fieldless variants (variants with data are reported and left out).
    pub variants: Vec<&'a Ident>,
    /// How many variants the enum declares.
    pub declared_variants: usize,
}

impl<'a> Input<'a> {
    /// Builds the AST, reporting every shape and attribute problem into `errors`. Returns `None`
    /// when the shape itself is unusable (then no further check makes sense).
    pub fn from_syn(input: &'a DeriveInput, errors: &mut Errors) -> Option<Input<'a>> {
        let shape_ok = check_generics(input, errors);
        let attrs = attr::container(&input.attrs, errors);
        let repr = attr::repr(&input.attrs, errors);
        let parsed = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(Input::Struct(Struct {
                    ident: &input.ident,
                    vis: &input.vis,
                    attrs,
                    repr,
                    fields: named
                        .named
                        .iter()
                        .map(|f| Field {
                            // Named fields always have an ident.
                            ident: f.ident.as_ref().unwrap_or(&input.ident),
                            ty: &f.ty,
                            vis: &f.vis,
                            attrs: attr::field(&f.attrs, errors),
                            docs: f
                                .attrs
                                .iter()
                                .filter(|a| a.path().is_ident("doc"))
                                .collect(),
                        })
                        .collect(),
                })),
                Fields::Unnamed(unnamed) => {
                    errors.push(syn::Error::new(
                        unnamed.paren_token.span.join(),
                        "tuple structs cannot derive `MappedState`: the schema names every field; use named fields, like `struct S { a: u32 }`",
                    ));
                    None
                }
                Fields::Unit => {
                    errors.push(syn::Error::new(
                        input.ident.span(),
                        "unit structs cannot derive `MappedState`: there is nothing to store; add named fields",
                    ));
                    None
                }
            },
            Data::Enum(data) => {
                let mut variants = Vec::new();
                for v in &data.variants {
                    attr::reject(&v.attrs, "enum variants", errors);
                    match &v.fields {
                        Fields::Unit => variants.push(&v.ident),
                        fields => errors.push(syn::Error::new(
                            fields.span(),
                            format!(
                                "variant `{}` carries data, but a mapped enum must be fieldless; move the data into struct fields next to the enum",
                                v.ident
                            ),
                        )),
                    }
                }
                Some(Input::Enum(Enum {
                    ident: &input.ident,
                    attrs,
                    repr,
                    variants,
                    declared_variants: data.variants.len(),
                }))
            }
            Data::Union(data) => {
                errors.push(syn::Error::new(
                    data.union_token.span,
                    "unions cannot derive `MappedState`: which field is valid cannot be checked; use a struct, or a fieldless enum next to the fields",
                ));
                None
            }
        };
        if shape_ok {
            parsed
        } else {
            None
        }
    }
}

/// Reports generic and lifetime parameters; returns whether there were none.
fn check_generics(input: &DeriveInput, errors: &mut Errors) -> bool {
    let mut ok = true;
    for param in &input.generics.params {
        ok = false;
        let msg = match param {
            syn::GenericParam::Lifetime(_) => {
                "a `MappedState` type cannot borrow: its bytes live in a file shared with other processes; remove the lifetime parameter and store the data inline"
            }
            syn::GenericParam::Type(_) | syn::GenericParam::Const(_) => {
                "generic types cannot derive `MappedState`: the layout must be fixed when the macro runs; use concrete field types"
            }
        };
        errors.push(syn::Error::new(param_span(param), msg));
    }
    ok
}

fn param_span(param: &syn::GenericParam) -> Span {
    match param {
        syn::GenericParam::Lifetime(l) => l.lifetime.span(),
        syn::GenericParam::Type(t) => t.ident.span(),
        syn::GenericParam::Const(c) => c.ident.span(),
    }
}

impl Struct<'_> {
    /// The schema name: `name = "..."` or the Rust name.
    pub fn schema_name(&self) -> String {
        schema_name(&self.attrs, self.ident)
    }
}

impl Enum<'_> {
    /// The schema name: `name = "..."` or the Rust name.
    pub fn schema_name(&self) -> String {
        schema_name(&self.attrs, self.ident)
    }

    /// The integer representation (present once `check` passed).
    pub fn int_repr(&self) -> IntRepr {
        self.repr.int.unwrap_or(IntRepr::U8)
    }
}

fn schema_name(attrs: &ContainerAttrs, ident: &Ident) -> String {
    match &attrs.name {
        Some(lit) => lit.value(),
        None => ident.unraw().to_string(),
    }
}

impl Field<'_> {
    /// The field's name in the schema (raw identifiers without `r#`).
    pub fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// The reader method: `accessor = "..."` or the field's own identifier.
    pub fn accessor(&self) -> Ident {
        match &self.attrs.accessor {
            Some(a) => a.clone(),
            None => self.ident.clone(),
        }
    }

    /// The writer method: `set_` + the accessor's name.
    pub fn setter(&self) -> Ident {
        let acc = self.accessor();
        Ident::new(&format!("set_{}", acc.unraw()), acc.span())
    }

    /// The element type when the field is syntactically an array (`[E; N]`): it then also gets an
    /// element accessor, `<accessor>_at(index)`.
    pub fn array_elem(&self) -> Option<&Type> {
        let mut ty = self.ty;
        loop {
            match ty {
                Type::Array(a) => return Some(&a.elem),
                Type::Paren(p) => ty = &p.elem,
                Type::Group(g) => ty = &g.elem,
                _ => return None,
            }
        }
    }

    /// The element accessor of an array field.
    pub fn element_accessor(&self) -> Ident {
        let acc = self.accessor();
        Ident::new(&format!("{}_at", acc.unraw()), acc.span())
    }

    /// Whether the accessor returns the value directly: the type is syntactically an integer or
    /// float, or an array (of arrays) of them. Every bit pattern of those is valid, so the read
    /// cannot fail. Anything else (bool, char, enums, strings, structs, aliases) may hold invalid
    /// bytes and returns a `Result`.
    pub fn is_plain(&self) -> bool {
        is_plain(self.ty)
    }
}

/// Primitive names whose every bit pattern is a valid value.
const PLAIN_PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "i8", "i16", "i32", "i64", "i128", "f32", "f64",
];

/// Whether every bit pattern of `ty` is a valid value, judged by its spelling.
pub fn is_plain(ty: &Type) -> bool {
    match ty {
        Type::Array(a) => is_plain(&a.elem),
        Type::Paren(p) => is_plain(&p.elem),
        Type::Group(g) => is_plain(&g.elem),
        Type::Path(p) => {
            p.qself.is_none()
                && p.path.leading_colon.is_none()
                && p.path.segments.len() == 1
                && p.path.segments[0].arguments.is_none()
                && PLAIN_PRIMITIVES.contains(&p.path.segments[0].ident.to_string().as_str())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain;

    #[test]
    fn plain_is_syntactic() {
        for yes in ["u8", "f64", "i128", "[u16; 3]", "[[u16; 3]; 2]", "(u32)"] {
            assert!(is_plain(&syn::parse_str(yes).unwrap()), "{yes}");
        }
        for no in [
            "bool",
            "char",
            "Mode",
            "FixedStr<8>",
            "[bool; 2]",
            "core::primitive::u32",
            "usize",
        ] {
            assert!(!is_plain(&syn::parse_str(no).unwrap()), "{no}");
        }
    }
}
