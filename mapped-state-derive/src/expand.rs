//! Code generation: `derive` reads as the pipeline (parse -> check -> generate, or the fallback
//! after an error); `impl_struct` and `impl_enum` emit the `MappedState` impl, the layout
//! assertions and the reader/writer views, all inside one `const _: () = { ... };`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr, Path};

use crate::ast::{Enum, Field, Input, Struct};
use crate::attr::{self, ContainerAttrs};
use crate::errors::Errors;
use crate::{check, fallback};

/// Expands `#[derive(MappedState)]`.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match try_expand(input) {
        Ok(tokens) => tokens,
        Err(error) => fallback::expand(input, error),
    }
}

fn try_expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let parsed = Input::from_syn(input, &mut errors);
    if let Some(parsed) = &parsed {
        check::check(parsed, &mut errors);
    }
    errors.finish()?;
    Ok(match parsed {
        Some(Input::Struct(s)) => impl_struct(&s),
        Some(Input::Enum(e)) => impl_enum(&e),
        // `from_syn` returns `None` only after reporting an error.
        None => return Err(syn::Error::new(Span::call_site(), "unsupported input")),
    })
}

/// The path of the runtime crate: `crate = "..."` or `::mapped_state`.
pub fn krate(attrs: &ContainerAttrs) -> Path {
    attrs
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::mapped_state))
}

/// Wraps generated items so their helper names stay private to this expansion.
fn wrap_in_const(body: TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(
            non_upper_case_globals,
            non_camel_case_types,
            non_snake_case,
            unused_qualifications,
            clippy::all
        )]
        const _: () = {
            #body
        };
    }
}

fn lit(s: &str) -> LitStr {
    LitStr::new(s, Span::call_site())
}

/// `const`s that fail the build when `schema_hash = ...` or `size = ...` does not match, printing
/// the actual value (rustc computes it; the macro cannot). Spanned at the pinned literal.
fn pins(ty: &Ident, attrs: &ContainerAttrs, p: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let shown = format!("`{ty}`");
    if let Some((pinned, lit_tok)) = &attrs.schema_hash {
        let head = lit(&format!("{shown} has schema hash "));
        out.extend(quote_spanned! {lit_tok.span()=>
            const _: () = {
                let __actual = <#ty as #p::MappedState>::SCHEMA_HASH;
                if __actual != #pinned {
                    let __msg = #p::ConstMsg::new()
                        .str(#head)
                        .hex(__actual)
                        .str(", not the pinned ")
                        .hex(#pinned);
                    let __msg = #p::explain_pin(
                        __msg,
                        <#ty as #p::MappedState>::TYPE,
                        #pinned,
                    )
                    .hex(__actual)
                    .str("`");
                    ::core::panic!("{}", __msg.as_str());
                }
            };
        });
    }
    if let Some((pinned, lit_tok)) = &attrs.size {
        let head = lit(&format!("{shown} is "));
        out.extend(quote_spanned! {lit_tok.span()=>
            const _: () = {
                let __actual = <#ty as #p::MappedState>::TYPE.size;
                if __actual != #pinned {
                    let __msg = #p::ConstMsg::new()
                        .str(#head)
                        .num(__actual)
                        .str(" bytes in the file, not the pinned ")
                        .num(#pinned)
                        .str("; if the change is intended, pin `size = ")
                        .num(__actual)
                        .str("`");
                    ::core::panic!("{}", __msg.as_str());
                }
            };
        });
    }
    out
}

/// Fails the build when the description cannot be encoded (names or sizes too large).
fn check_type(p: &TokenStream) -> TokenStream {
    quote! {
        const _: () = if let ::core::option::Option::Some(__msg) = #p::check_type(&__TYPE) {
            ::core::panic!("{}", __msg)
        };
    }
}

fn impl_struct(s: &Struct) -> TokenStream {
    let krate = krate(&s.attrs);
    let p = quote!(#krate::__private);
    let ident = s.ident;
    let schema_name = lit(&s.schema_name());

    let size: Vec<Ident> = (0..s.fields.len())
        .map(|i| format_ident!("__SIZE_{}", i))
        .collect();
    let align: Vec<Ident> = (0..s.fields.len())
        .map(|i| format_ident!("__ALIGN_{}", i))
        .collect();
    let offset: Vec<Ident> = (0..s.fields.len())
        .map(|i| format_ident!("__OFFSET_{}", i))
        .collect();
    let mirror_field: Vec<Ident> = (0..s.fields.len())
        .map(|i| format_ident!("__f{}", i))
        .collect();
    // `<F as MappedState>` spanned at the field's type: an unsupported type is reported there.
    let as_mapped: Vec<TokenStream> = s
        .fields
        .iter()
        .map(|f| {
            let ty = checked_ty(f, &p);
            quote_spanned!(f.ty.span()=> <#ty as #p::MappedState>)
        })
        .collect();

    // C layout in declaration order: each field at the next multiple of its alignment.
    let mut layout = TokenStream::new();
    for i in 0..s.fields.len() {
        let (sz, al, off, m) = (&size[i], &align[i], &offset[i], &as_mapped[i]);
        let at = if i == 0 {
            quote!(0)
        } else {
            let (prev_off, prev_size) = (&offset[i - 1], &size[i - 1]);
            quote!(#p::align_up(#prev_off + #prev_size, #al))
        };
        layout.extend(quote! {
            const #sz: ::core::primitive::usize = #m::TYPE.size;
            const #al: ::core::primitive::usize = #m::TYPE.align;
            const #off: ::core::primitive::usize = #at;
        });
    }
    let last = s.fields.len() - 1;
    let (last_off, last_size) = (&offset[last], &size[last]);
    layout.extend(quote! {
        const __ALIGN: ::core::primitive::usize = {
            let mut max: ::core::primitive::usize = 1;
            #( if #align > max { max = #align; } )*
            max
        };
        const __SIZE: ::core::primitive::usize = #p::align_up(#last_off + #last_size, __ALIGN);
    });

    // A `#[repr(C)]` mirror made of slots with exactly each field's size and alignment: rustc's
    // own layout of it must agree with the offsets and size computed above.
    let offset_checks = s.fields.iter().enumerate().map(|(i, f)| {
        let (mf, off) = (&mirror_field[i], &offset[i]);
        let msg = lit(&format!(
            "mapped-state: the offset computed for `{ident}.{}` differs from C layout",
            f.name()
        ));
        quote!(::core::assert!(::core::mem::offset_of!(__Mirror, #mf) == #off, #msg);)
    });
    let size_msg = lit(&format!(
        "mapped-state: the size or alignment computed for `{ident}` differs from C layout"
    ));
    let mirror = quote! {
        #[allow(dead_code)]
        #[repr(C)]
        struct __Mirror {
            #( #mirror_field: #p::Slot<{ #size }, { #align }>, )*
        }
        const _: () = {
            #( #offset_checks )*
            ::core::assert!(::core::mem::size_of::<__Mirror>() == __SIZE, #size_msg);
            ::core::assert!(::core::mem::align_of::<__Mirror>() == __ALIGN, #size_msg);
        };
    };

    let field_descs = s.fields.iter().enumerate().map(|(i, f)| {
        let (name, off, m) = (lit(&f.name()), &offset[i], &as_mapped[i]);
        quote!(#p::FieldDesc { name: #name, offset: #off, ty: #m::TYPE })
    });
    let desc = quote! {
        const __FIELDS: &[#p::FieldDesc] = &[ #( #field_descs ),* ];
        const __TYPE: #p::TypeDesc = #p::TypeDesc {
            kind: #p::Kind::Struct(&#p::StructDesc { name: #schema_name, fields: __FIELDS }),
            size: __SIZE,
            align: __ALIGN,
        };
    };

    let encode = s.fields.iter().enumerate().map(|(i, f)| {
        let (member, off, sz, m) = (f.ident, &offset[i], &size[i], &as_mapped[i]);
        // Each field writes only its own sub-slice of the zeroed buffer: padding stays zero.
        quote!(#m::encode(&self.#member, &mut __out[#off..#off + #sz]);)
    });
    let decode = s.fields.iter().enumerate().map(|(i, f)| {
        let (member, off, sz, m) = (f.ident, &offset[i], &size[i], &as_mapped[i]);
        let name = lit(&f.name());
        quote! {
            #member: match #m::decode(&__bytes[#off..#off + #sz]) {
                ::core::result::Result::Ok(__value) => __value,
                ::core::result::Result::Err(__err) => {
                    return ::core::result::Result::Err(__err.in_field(#name, #off))
                }
            },
        }
    });

    // Whether rustc laid the struct out as the file does, with every field in place: then reads
    // fill a value straight from the mapping and writes store straight from one.
    let field_in_place = as_mapped.iter().map(|m| quote!(#m::IN_PLACE));
    let field_in_place2 = field_in_place.clone();
    let members: Vec<_> = s.fields.iter().map(|f| f.ident).collect();
    let in_place = quote! {
        const __IN_PLACE: ::core::option::Option<#p::InPlace> = {
            let __fields: &[::core::option::Option<#p::InPlace>] = &[ #( #field_in_place ),* ];
            let mut __ok = ::core::mem::size_of::<#ident>() == __SIZE
                #( && ::core::mem::offset_of!(#ident, #members) == #offset )*;
            let mut __validates = false;
            let mut __padded = (0 #( + #size )*) != __SIZE;
            let mut __i = 0;
            while __i < __fields.len() {
                match __fields[__i] {
                    ::core::option::Option::Some(__p) => {
                        __validates |= __p.validates();
                        __padded |= __p.padded();
                    }
                    ::core::option::Option::None => __ok = false,
                }
                __i += 1;
            }
            if __ok {
                // SAFETY: rustc's own layout of the struct puts every field at the offset the
                // file gives it and has the file's size (checked just above), and every field's
                // memory is its encoding (each field type's own proof); the bytes between fields
                // are padding in both, zero in the encoding. The struct validates if a field
                // does (`validate` below checks exactly those fields), and is padded if a field
                // is or the fields do not fill it.
                ::core::option::Option::Some(unsafe { #p::InPlace::new(__validates, __padded) })
            } else {
                ::core::option::Option::None
            }
        };
    };
    let _ = field_in_place2;
    let validate = s.fields.iter().enumerate().map(|(i, f)| {
        let (off, sz, m) = (&offset[i], &size[i], &as_mapped[i]);
        let name = lit(&f.name());
        quote! {
            if !::core::matches!(#m::IN_PLACE, ::core::option::Option::Some(__p) if !__p.validates()) {
                if let ::core::result::Result::Err(__err) = #m::validate(&__bytes[#off..#off + #sz]) {
                    return ::core::result::Result::Err(__err.in_field(#name, #off));
                }
            }
        }
    });

    let defaults = defaults(s, &as_mapped);
    let (read_item, read_view) = read_view(s, &krate, &offset);
    let (write_item, write_view) = write_view(s, &krate, &offset);
    let (read_name, write_name) = view_names(s);
    let pins = pins(ident, &s.attrs, &p);
    let check = check_type(&p);

    let body = wrap_in_const(quote! {
        #layout
        #mirror
        #desc
        #check

        #in_place

        #[automatically_derived]
        impl #p::MappedState for #ident {
            const TYPE: &'static #p::TypeDesc = &__TYPE;
            const IN_PLACE: ::core::option::Option<#p::InPlace> = __IN_PLACE;

            fn encode(&self, __out: &mut [::core::primitive::u8]) {
                #( #encode )*
            }

            fn decode(__bytes: &[::core::primitive::u8]) -> ::core::result::Result<Self, #p::DecodeError> {
                ::core::result::Result::Ok(Self { #( #decode )* })
            }

            fn validate(__bytes: &[::core::primitive::u8]) -> ::core::result::Result<(), #p::DecodeError> {
                #( #validate )*
                ::core::result::Result::Ok(())
            }
        }

        #[automatically_derived]
        impl #p::Fields for #ident {
            type ReadView = #read_name;
            type WriteView = #write_name;
            #defaults
        }

        #read_view
        #write_view
        #pins
    });
    quote! {
        #read_item
        #write_item
        #body
    }
}

/// The `Fields` items that declare the fields' defaults (schema evolution): `HAS_DEFAULTS` and
/// `encode_field_default`, when any field has one. Each default is type-checked against the
/// field's type at the default's own span.
fn defaults(s: &Struct, as_mapped: &[TokenStream]) -> TokenStream {
    let arms: Vec<TokenStream> = s
        .fields
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let (ty, m, member) = (f.ty, &as_mapped[i], f.ident);
            let value = match (&f.attrs.default, s.attrs.default) {
                (Some(attr::FieldDefault::Expr(e)), _) => {
                    quote_spanned!(e.span()=> let __value: #ty = #e;)
                }
                (Some(attr::FieldDefault::Trait(span)), _) => {
                    quote_spanned!(*span=> let __value: #ty = ::core::default::Default::default();)
                }
                (None, Some(span)) => quote_spanned! {span=>
                    let __whole: Self = ::core::default::Default::default();
                    let __value: #ty = __whole.#member;
                },
                (None, None) => return None,
            };
            Some(quote! {
                #i => {
                    #value
                    #m::encode(&__value, __out);
                    true
                }
            })
        })
        .collect();
    if arms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const HAS_DEFAULTS: ::core::primitive::bool = true;
        #[allow(unreachable_code, clippy::all)]
        fn encode_field_default(
            __index: ::core::primitive::usize,
            __out: &mut [::core::primitive::u8],
        ) -> ::core::primitive::bool {
            match __index {
                #( #arms )*
                _ => false,
            }
        }
    }
}

/// The field's type as `<F as FieldType>::Ty`, spanned at the type: if `F` is not
/// `MappedState`, rustc reports it once there and every other use becomes an error type.
fn checked_ty(f: &Field, p: &TokenStream) -> TokenStream {
    let ty = f.ty;
    quote_spanned!(ty.span()=> <#ty as #p::FieldType>::Ty)
}

/// The names of a struct's generated view types: `<Type>ReadView` and `<Type>WriteView`, next
/// to the type, so they and their methods appear in the user's documentation.
pub fn view_names(s: &Struct) -> (Ident, Ident) {
    let base = s.ident.unraw();
    (
        format_ident!("{}ReadView", base, span = s.ident.span()),
        format_ident!("{}WriteView", base, span = s.ident.span()),
    )
}

/// `krate` as an intra-doc link path (`mapped_state`, `renamed_state`, `crate`).
fn doc_path(krate: &Path) -> String {
    krate
        .segments
        .iter()
        .map(|seg| seg.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The documentation of a field's generated method: the field's own doc comment, then `what`.
fn method_docs(f: &Field, what: &str) -> TokenStream {
    let docs = &f.docs;
    let what = lit(what);
    if docs.is_empty() {
        quote!(#[doc = #what])
    } else {
        quote! {
            #( #docs )*
            #[doc = ""]
            #[doc = #what]
        }
    }
}

/// The read view: its type (at module level, documented) and its impls (inside the const
/// block, next to the offsets they use).
fn read_view(s: &Struct, krate: &Path, offset: &[Ident]) -> (TokenStream, TokenStream) {
    let p = quote!(#krate::__private);
    let (name, _) = view_names(s);
    let (vis, ty, k) = (s.vis, s.ident, doc_path(krate));
    let doc = lit(&format!(
        "Field accessors of [`Reader<{ty}>`]({k}::Reader), generated by `#[derive(MappedState)]` \
         on [`{ty}`].\n\n\
         A `Reader<{ty}>` derefs to this type, so `reader.field()` needs no import. Each accessor \
         reads only its field's words from the mapping, as one consistent read of the current \
         version. Integers, floats and arrays of them are returned as values (any bits are \
         valid); every other field returns a `Result`, since the file may hold invalid bytes. \
         An array field also has `<field>_at(index)`, reading one element."
    ));
    let accessors = s
        .fields
        .iter()
        .zip(offset)
        .enumerate()
        .map(|(i, (f, off))| {
            let has_default = f.attrs.default.is_some() || s.attrs.default.is_some();
            accessor(f, off, has_default.then_some(i), krate, &p)
        });
    let item = quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug)]
        #vis struct #name {
            raw: #p::RawReader,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl #p::ReadView for #name {
            fn from_raw(raw: #p::RawReader) -> Self {
                Self { raw }
            }
            fn raw(&self) -> &#p::RawReader {
                &self.raw
            }
            fn raw_mut(&mut self) -> &mut #p::RawReader {
                &mut self.raw
            }
        }

        #[allow(dead_code)]
        impl #name {
            #( #accessors )*
        }
    };
    (item, impls)
}

/// A field's accessors. `index` is the field's index when it declares a default: then a reader
/// of a file that lacks the field returns the default (one test of the reader's projection,
/// which is `None` unless the file lacks some field); other fields' accessors are unchanged.
fn accessor(
    f: &Field,
    off: &Ident,
    index: Option<usize>,
    krate: &Path,
    p: &TokenStream,
) -> TokenStream {
    let whole = whole_accessor(f, off, index, krate, p);
    let Some(elem) = f.array_elem() else {
        return whole;
    };
    let (vis, name, method) = (f.vis, f.name(), f.element_accessor());
    let checked = checked_ty(f, p);
    let elem_checked = quote_spanned!(elem.span()=> <#elem as #p::FieldType>::Ty);
    let locate = quote! {
        let __len = <#checked as #p::MappedState>::TYPE.size
            / ::core::cmp::Ord::max(<#elem_checked as #p::MappedState>::TYPE.size, 1);
        if index >= __len {
            return ::core::option::Option::None;
        }
        let __esize = <#elem_checked as #p::MappedState>::TYPE.size;
        let __at = #off + index * __esize;
    };
    let elem_default = |plain: bool| match index {
        None => TokenStream::new(),
        Some(i) if plain => quote! {
            if let ::core::option::Option::Some(__bytes) = self.raw.absent_field(#i) {
                let __e = &__bytes[index * __esize..(index + 1) * __esize];
                return ::core::option::Option::Some(<#elem_checked as #p::Plain>::decode_plain(__e));
            }
        },
        Some(i) => quote! {
            if let ::core::option::Option::Some(__bytes) = self.raw.absent_field(#i) {
                let __e = &__bytes[index * __esize..(index + 1) * __esize];
                return ::core::option::Option::Some(self.raw.decode_default::<#elem_checked>(__e, #name, __at));
            }
        },
    };
    let (plain_default, field_default) = (elem_default(true), elem_default(false));
    if crate::ast::is_plain(elem) {
        let doc = lit(&format!(
            "Element `index` of field `{name}` (see [`{whole}`](Self::{whole})) of the current version, read from the mapping (only its words); `None` past the end.",
            whole = f.accessor().unraw()
        ));
        quote! {
            #whole
            #[doc = #doc]
            #[inline]
            #vis fn #method(&self, index: ::core::primitive::usize) -> ::core::option::Option<#elem> {
                #locate
                #plain_default
                ::core::option::Option::Some(self.raw.read_plain::<#elem_checked>(__at))
            }
        }
    } else {
        let doc = lit(&format!(
            "Element `index` of field `{name}` (see [`{whole}`](Self::{whole})) of the current version, read from the mapping (only its words), validated; `None` past the end.",
            whole = f.accessor().unraw()
        ));
        quote! {
            #whole
            #[doc = #doc]
            #[inline]
            #vis fn #method(&self, index: ::core::primitive::usize) -> ::core::option::Option<::core::result::Result<#elem, #krate::Error>> {
                #locate
                #field_default
                ::core::option::Option::Some(self.raw.read_field::<#elem_checked>(__at, #name))
            }
        }
    }
}

fn whole_accessor(
    f: &Field,
    off: &Ident,
    index: Option<usize>,
    krate: &Path,
    p: &TokenStream,
) -> TokenStream {
    let (vis, ty, name) = (f.vis, f.ty, f.name());
    let checked = checked_ty(f, p);
    let method = f.accessor();
    let default = |plain: bool| match index {
        None => TokenStream::new(),
        Some(i) if plain => quote! {
            if let ::core::option::Option::Some(__bytes) = self.raw.absent_field(#i) {
                return <#checked as #p::Plain>::decode_plain(__bytes);
            }
        },
        Some(i) => quote! {
            if let ::core::option::Option::Some(__bytes) = self.raw.absent_field(#i) {
                return self.raw.decode_default::<#checked>(__bytes, #name, #off);
            }
        },
    };
    let (plain_default, field_default) = (default(true), default(false));
    if f.is_plain() {
        let doc = method_docs(
            f,
            &format!(
                "Field `{name}` of the current version, read from the mapping (only its words)."
            ),
        );
        quote! {
            #doc
            #[inline]
            #vis fn #method(&self) -> #ty {
                #plain_default
                self.raw.read_plain::<#checked>(#off)
            }
        }
    } else {
        let doc = method_docs(
            f,
            &format!(
                "Field `{name}` of the current version, read from the mapping (only its words). \
                 Fails with `Error::InvalidValue` when the file holds bytes that are not a valid value, \
                 or `Error::Contended` when the writer never pauses."
            ),
        );
        quote! {
            #doc
            #[inline]
            #vis fn #method(&self) -> ::core::result::Result<#ty, #krate::Error> {
                #field_default
                self.raw.read_field::<#checked>(#off, #name)
            }
        }
    }
}

/// The write view: its type (at module level, documented) and its impls.
fn write_view(s: &Struct, krate: &Path, offset: &[Ident]) -> (TokenStream, TokenStream) {
    let p = quote!(#krate::__private);
    let (_, name) = view_names(s);
    let (vis, ty, k) = (s.vis, s.ident, doc_path(krate));
    let doc = lit(&format!(
        "Field setters of [`Writer<{ty}>`]({k}::Writer), generated by `#[derive(MappedState)]` \
         on [`{ty}`].\n\n\
         A `Writer<{ty}>` derefs mutably to this type. Each `set_<field>` is one commit that \
         stores only that field's words and returns the new version; use `Writer::update` to \
         change several fields in one atomic commit."
    ));
    let setters = s.fields.iter().zip(offset).map(|(f, off)| {
        let (vis, ty, setter) = (f.vis, f.ty, f.setter());
        let checked = checked_ty(f, &p);
        let doc = method_docs(
            f,
            &format!(
                "Commits a new value of field `{}` (storing only its words) as one update; returns the new version.",
                f.name()
            ),
        );
        quote! {
            #doc
            #[inline]
            #vis fn #setter(&mut self, value: #ty) -> ::core::primitive::u64 {
                self.raw.write_field::<#checked>(#off, &value)
            }
        }
    });
    let item = quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug)]
        #vis struct #name {
            raw: #p::RawWriter,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl #p::WriteView for #name {
            fn from_raw(raw: #p::RawWriter) -> Self {
                Self { raw }
            }
            fn raw(&self) -> &#p::RawWriter {
                &self.raw
            }
            fn raw_mut(&mut self) -> &mut #p::RawWriter {
                &mut self.raw
            }
        }

        #[allow(dead_code)]
        impl #name {
            #( #setters )*
        }
    };
    (item, impls)
}

fn impl_enum(e: &Enum) -> TokenStream {
    let krate = krate(&e.attrs);
    let p = quote!(#krate::__private);
    let ident = e.ident;
    let repr = e.int_repr();
    let (repr_ty, prim, width) = (repr.ty(), repr.prim(), repr.size());
    let schema_name = lit(&e.schema_name());
    let disc: Vec<Ident> = (0..e.variants.len())
        .map(|i| format_ident!("__DISCRIMINANT_{}", i))
        .collect();
    let variants = &e.variants;
    let names = e
        .variants
        .iter()
        .map(|v| lit(&syn::ext::IdentExt::unraw(*v).to_string()));

    let pins = pins(ident, &e.attrs, &p);
    let check = check_type(&p);

    wrap_in_const(quote! {
        #( const #disc: #repr_ty = #ident::#variants as #repr_ty; )*
        const __VARIANTS: &[#p::VariantDesc] = &[
            #( #p::VariantDesc { name: #names, value: #disc as ::core::primitive::i64 } ),*
        ];
        const __ENUM: #p::EnumDesc = #p::EnumDesc {
            name: #schema_name,
            repr: #p::Prim::#prim,
            variants: __VARIANTS,
        };
        const __TYPE: #p::TypeDesc = #p::TypeDesc {
            kind: #p::Kind::Enum(&__ENUM),
            size: #width,
            align: #width,
        };
        #check

        const _: () = ::core::assert!(::core::mem::size_of::<#ident>() == #width);

        #[automatically_derived]
        impl #p::Fields for #ident {
            type ReadView = #p::NoFields<#p::RawReader>;
            type WriteView = #p::NoFields<#p::RawWriter>;
        }

        #[automatically_derived]
        impl #p::MappedState for #ident {
            const TYPE: &'static #p::TypeDesc = &__TYPE;
            // SAFETY: a fieldless enum with an explicit integer `repr` is that integer in memory
            // (size checked above), which is its encoding; `validate` (the provided one, which
            // decodes) accepts exactly the declared discriminants; it has no padding.
            const IN_PLACE: ::core::option::Option<#p::InPlace> =
                ::core::option::Option::Some(unsafe { #p::InPlace::new(true, false) });

            fn encode(&self, __out: &mut [::core::primitive::u8]) {
                let __discriminant: #repr_ty = match self {
                    #( Self::#variants => #disc, )*
                };
                <#repr_ty as #p::MappedState>::encode(&__discriminant, __out);
            }

            fn decode(__bytes: &[::core::primitive::u8]) -> ::core::result::Result<Self, #p::DecodeError> {
                match <#repr_ty as #p::Plain>::decode_plain(__bytes) {
                    #( #disc => ::core::result::Result::Ok(Self::#variants), )*
                    _ => ::core::result::Result::Err(#p::invalid_enum(__bytes, &__ENUM)),
                }
            }
        }

        #pins
    })
}

/// The crate path for the fallback: the `crate = "..."` key if it parsed, else the default.
pub fn fallback_krate(input: &DeriveInput) -> Path {
    krate(&attr::container(&input.attrs, &mut Errors::default()))
}
