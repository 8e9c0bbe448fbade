//! Parsing of `#[mapped_state(...)]` (container and field keys) and of the `#[repr(...)]` items
//! the derive cares about. Every problem becomes a spanned error collected in `Errors`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitInt, LitStr, Path};

use crate::errors::Errors;

/// The helper attribute's name.
pub const MAPPED_STATE: &str = "mapped_state";

// Container keys.
const CRATE: &str = "crate";
const NAME: &str = "name";
const SCHEMA_HASH: &str = "schema_hash";
const SIZE: &str = "size";
// Field keys.
const ACCESSOR: &str = "accessor";
// Both: a field's default (`default` or `default = EXPR`), the struct's (`default`).
const DEFAULT: &str = "default";

/// `#[mapped_state(...)]` on the struct or enum.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `crate = "path"`: where the runtime is (default `::mapped_state`).
    pub krate: Option<Path>,
    /// `name = "..."`: the schema name (default: the Rust name).
    pub name: Option<LitStr>,
    /// `schema_hash = 0x...`: the pinned hash and its literal (for the error span).
    pub schema_hash: Option<(u64, LitInt)>,
    /// `size = N`: the pinned payload size and its literal.
    pub size: Option<(usize, LitInt)>,
    /// `default`: every field a file lacks reads as that field of the struct's `Default`.
    pub default: Option<Span>,
}

/// `#[mapped_state(...)]` on a field.
#[derive(Default)]
pub struct FieldAttrs {
    /// `accessor = "..."`: the reader method's name (the setter is `set_` + it).
    pub accessor: Option<Ident>,
    /// `default` / `default = EXPR`: the value the field reads as in a file that lacks it.
    pub default: Option<FieldDefault>,
}

/// A field's declared default.
pub enum FieldDefault {
    /// `default`: the field type's `Default::default()` (the span of the key).
    Trait(Span),
    /// `default = EXPR`.
    Expr(Box<syn::Expr>),
}

/// Records the first occurrence of each key so a second one is reported at its own span.
struct Seen(Vec<String>);

impl Seen {
    fn first(&mut self, meta: &ParseNestedMeta, key: &str, errors: &mut Errors) -> bool {
        if self.0.iter().any(|k| k == key) {
            errors.push(syn::Error::new(
                meta.path.span(),
                format!(
                    "duplicate `{MAPPED_STATE}` attribute key `{key}`; remove this one or the first"
                ),
            ));
            false
        } else {
            self.0.push(key.to_owned());
            true
        }
    }
}

fn key_name(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_else(|| {
            quote::ToTokens::to_token_stream(&meta.path)
                .to_string()
                .replace(' ', "")
        })
}

/// Reads `= "..."` after a key.
fn string_value(meta: &ParseNestedMeta, key: &str, example: &str) -> syn::Result<LitStr> {
    let value = meta
        .value()
        .map_err(|_| syn::Error::new(meta.path.span(), format!("expected `{key} = {example}`")))?;
    let expr: syn::Expr = value.parse()?;
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{key}` takes a string literal, like `{key} = {example}`"),
        )),
    }
}

/// Reads `= <integer literal>` after a key.
/// The integer literal of `key = <int>`, parsed as `N`; `what` says what the key takes when the
/// literal does not fit (`a byte count`).
fn int_value<N>(
    meta: &ParseNestedMeta,
    key: &str,
    example: &str,
    what: &str,
) -> syn::Result<(N, LitInt)>
where
    N: std::str::FromStr,
    N::Err: std::fmt::Display,
{
    let value = meta
        .value()
        .map_err(|_| syn::Error::new(meta.path.span(), format!("expected `{key} = {example}`")))?;
    let expr: syn::Expr = value.parse()?;
    let lit = match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!("`{key}` takes an integer literal, like `{key} = {example}`"),
            ))
        }
    };
    let n = lit.base10_parse::<N>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`{key}` takes {what}, like `{key} = {example}`"),
        )
    })?;
    Ok((n, lit))
}

fn is_helper(attr: &Attribute) -> bool {
    attr.path().is_ident(MAPPED_STATE)
}

/// Runs `f` on every key of every `#[mapped_state(...)]` in `attrs`. A key `f` fails on is
/// reported and parsing moves to the next attribute (the rest of that one cannot be trusted).
fn each_key(
    attrs: &[Attribute],
    errors: &mut Errors,
    mut f: impl FnMut(&ParseNestedMeta, &mut Errors) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| is_helper(a)) {
        if let syn::Meta::Path(p) = &attr.meta {
            errors.push(syn::Error::new_spanned(
                p,
                format!("expected `#[{MAPPED_STATE}(key = value)]`"),
            ));
            continue;
        }
        let mut local = Errors::default();
        let result = attr.parse_nested_meta(|meta| f(&meta, &mut local));
        errors.append(local);
        if let Err(e) = result {
            errors.push(e);
        }
    }
}

/// Parses the container's `#[mapped_state(...)]` attributes.
pub fn container(attrs: &[Attribute], errors: &mut Errors) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    let mut seen = Seen(Vec::new());
    each_key(attrs, errors, |meta, errors| {
        let key = key_name(meta);
        let span = meta.path.span();
        match key.as_str() {
            // crate = "path::to::mapped_state"
            CRATE => {
                let lit = string_value(meta, CRATE, "\"my_crate::mapped_state\"")?;
                let path = lit.parse::<Path>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "`crate` takes a path to the mapped-state crate, like `crate = \"my_crate::mapped_state\"`",
                    )
                })?;
                if seen.first(meta, CRATE, errors) {
                    out.krate = Some(path);
                }
            }
            // name = "Telemetry"
            NAME => {
                let lit = string_value(meta, NAME, "\"Telemetry\"")?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "the schema name must not be empty; remove `name` to use the type's name",
                    ));
                }
                if seen.first(meta, NAME, errors) {
                    out.name = Some(lit);
                }
            }
            // schema_hash = 0x1234_5678_9abc_def0
            SCHEMA_HASH => {
                let v = int_value::<u64>(
                    meta,
                    SCHEMA_HASH,
                    "0x1234_5678_9abc_def0",
                    "a 64-bit unsigned integer",
                )?;
                if seen.first(meta, SCHEMA_HASH, errors) {
                    out.schema_hash = Some(v);
                }
            }
            // size = 64
            SIZE => {
                let v = int_value::<usize>(meta, SIZE, "64", "a byte count")?;
                if seen.first(meta, SIZE, errors) {
                    out.size = Some(v);
                }
            }
            // default: absent fields read as the struct's `Default`
            DEFAULT => {
                if meta.input.peek(syn::Token![=]) {
                    return Err(syn::Error::new(
                        span,
                        format!("on the type, `{DEFAULT}` takes no value: it reads every field a file lacks from the struct's `Default` impl; put `{DEFAULT} = EXPR` on a field instead"),
                    ));
                }
                if seen.first(meta, DEFAULT, errors) {
                    out.default = Some(span);
                }
            }
            ACCESSOR => {
                return Err(syn::Error::new(
                    span,
                    format!("`{ACCESSOR}` belongs on a field, not on the type"),
                ))
            }
            _ => {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "unknown `{MAPPED_STATE}` attribute key `{key}`; expected `{CRATE}`, `{NAME}`, `{SCHEMA_HASH}`, `{SIZE}` or `{DEFAULT}`"
                    ),
                ))
            }
        }
        Ok(())
    });
    out
}

/// Parses a field's `#[mapped_state(...)]` attributes.
pub fn field(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    let mut seen = Seen(Vec::new());
    each_key(attrs, errors, |meta, errors| {
        let key = key_name(meta);
        match key.as_str() {
            // accessor = "current_rpm"
            ACCESSOR => {
                let lit = string_value(meta, ACCESSOR, "\"current_rpm\"")?;
                let ident = lit
                    .parse::<Ident>()
                    .ok()
                    .filter(|i| !i.to_string().starts_with("r#"))
                    .ok_or_else(|| {
                        syn::Error::new(
                            lit.span(),
                            format!(
                                "`{}` is not a method name; `accessor` takes an identifier, like `accessor = \"current_rpm\"`",
                                lit.value()
                            ),
                        )
                    })?;
                if seen.first(meta, ACCESSOR, errors) {
                    out.accessor = Some(Ident::new(&ident.to_string(), lit.span()));
                }
            }
            // default, or default = 30_000
            DEFAULT => {
                let value = if meta.input.peek(syn::Token![=]) {
                    let expr: syn::Expr = meta.value()?.parse()?;
                    FieldDefault::Expr(Box::new(expr))
                } else if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
                    FieldDefault::Trait(meta.path.span())
                } else {
                    return Err(syn::Error::new(
                        meta.path.span(),
                        format!("expected `{DEFAULT}` or `{DEFAULT} = EXPR`, like `{DEFAULT} = 30_000`"),
                    ));
                };
                if seen.first(meta, DEFAULT, errors) {
                    out.default = Some(value);
                }
            }
            CRATE | NAME | SCHEMA_HASH | SIZE => {
                return Err(syn::Error::new(
                    meta.path.span(),
                    format!("`{key}` belongs on the type, not on a field"),
                ))
            }
            _ => {
                return Err(syn::Error::new(
                    meta.path.span(),
                    format!(
                    "unknown `{MAPPED_STATE}` field attribute key `{key}`; expected `{ACCESSOR}` or `{DEFAULT}`"
                ),
                ))
            }
        }
        Ok(())
    });
    out
}

/// Reports `#[mapped_state]` where it has no meaning (enum variants).
pub fn reject(attrs: &[Attribute], what: &str, errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| is_helper(a)) {
        errors.push(syn::Error::new_spanned(
            attr.path(),
            format!("`#[{MAPPED_STATE}]` has no keys for {what}; remove it"),
        ));
    }
}

/// An integer representation a mapped enum may have.
#[derive(Clone, Copy)]
pub enum IntRepr {
    U8,
    U16,
    U32,
    I8,
    I16,
    I32,
}

impl IntRepr {
    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "u8" => IntRepr::U8,
            "u16" => IntRepr::U16,
            "u32" => IntRepr::U32,
            "i8" => IntRepr::I8,
            "i16" => IntRepr::I16,
            "i32" => IntRepr::I32,
            _ => return None,
        })
    }

    /// The Rust type, as an absolute path (`::core::primitive::u8`).
    pub fn ty(self) -> TokenStream {
        let name = Ident::new(self.name(), Span::call_site());
        quote::quote!(::core::primitive::#name)
    }

    /// The `Prim` variant (`U8`).
    pub fn prim(self) -> Ident {
        Ident::new(&self.name().to_uppercase(), Span::call_site())
    }

    fn name(self) -> &'static str {
        match self {
            IntRepr::U8 => "u8",
            IntRepr::U16 => "u16",
            IntRepr::U32 => "u32",
            IntRepr::I8 => "i8",
            IntRepr::I16 => "i16",
            IntRepr::I32 => "i32",
        }
    }

    /// Size (and alignment) in bytes.
    pub fn size(self) -> usize {
        match self {
            IntRepr::U8 | IntRepr::I8 => 1,
            IntRepr::U16 | IntRepr::I16 => 2,
            IntRepr::U32 | IntRepr::I32 => 4,
        }
    }
}

/// What `#[repr(...)]` says, as far as the derive cares.
#[derive(Default)]
pub struct Repr {
    /// The integer representation (enums).
    pub int: Option<IntRepr>,
    /// `packed` / `packed(N)` / `align(N)`: the ident, for the error span.
    pub packed: Option<Ident>,
    /// `align(N)`: the ident, for the error span.
    pub align: Option<Ident>,
    /// An integer repr the format cannot hold was seen (and reported).
    pub unsupported_int: bool,
}

const INT_REPRS: &str = "`u8`, `u16`, `u32`, `i8`, `i16` or `i32`";

/// Parses every `#[repr(...)]`. Unsupported integer widths are reported here; whether a repr is
/// allowed on this kind of item is decided in `check`.
pub fn repr(attrs: &[Attribute], errors: &mut Errors) -> Repr {
    let mut out = Repr::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let result = attr.parse_nested_meta(|meta| {
            let name = key_name(&meta);
            // Skip arguments such as `packed(2)` or `align(8)`: only the item's name matters here.
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                content.parse::<proc_macro2::TokenStream>()?;
            }
            let ident = meta.path.get_ident().cloned();
            match (name.as_str(), ident) {
                ("packed", Some(i)) => out.packed = Some(i),
                ("align", Some(i)) => out.align = Some(i),
                (n @ ("u64" | "i64" | "u128" | "i128" | "usize" | "isize"), _) => {
                    errors.push(syn::Error::new(
                        meta.path.span(),
                        format!("`repr({n})` is not supported for a mapped enum; use {INT_REPRS}"),
                    ));
                    out.unsupported_int = true;
                }
                (n, _) => {
                    if let Some(r) = IntRepr::from_name(n) {
                        out.int = Some(r);
                    }
                }
            }
            Ok(())
        });
        // A malformed `#[repr]` is rustc's to report.
        let _ = result;
    }
    out
}

/// Advice listing the accepted enum representations.
pub fn int_reprs() -> &'static str {
    INT_REPRS
}
