//! `#[derive(MappedState)]` for the mapped-state crate (placeholder until the derive lands).

use proc_macro::TokenStream;

/// Derives `mapped_state::MappedState`.
#[proc_macro_derive(MappedState, attributes(mapped_state))]
pub fn derive_mapped_state(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
