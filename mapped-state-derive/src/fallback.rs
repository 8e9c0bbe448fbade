//! What the derive emits after an error: the error itself plus a stub `MappedState` impl, so the
//! user sees the one real error instead of a cascade of "`T: MappedState` is not satisfied".

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::expand::fallback_krate;

/// The error and a stub impl that is never called (the crate does not compile anyway).
pub fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let krate = fallback_krate(input);
    let p = quote!(#krate::__private);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let error = error.to_compile_error();
    quote! {
        #error

        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #p::MappedState for #ident #ty_generics #where_clause {
                const TYPE: &'static #p::TypeDesc = &#p::TypeDesc::prim(#p::Prim::U8);

                fn encode(&self, _: &mut [::core::primitive::u8]) {
                    ::core::unreachable!()
                }

                fn decode(_: &[::core::primitive::u8]) -> ::core::result::Result<Self, #p::DecodeError> {
                    ::core::unreachable!()
                }
            }

            #[automatically_derived]
            impl #impl_generics #p::Fields for #ident #ty_generics #where_clause {
                type ReadView = #p::NoFields<#p::RawReader>;
                type WriteView = #p::NoFields<#p::RawWriter>;
            }
        };
    }
}
