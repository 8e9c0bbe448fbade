//! `#[derive(MappedState)]` for the mapped-state crate: parses the type, checks what can be
//! checked from syntax, and generates the `MappedState` impl, compile-time layout assertions and
//! the field accessors of `Reader<T>` / setters of `Writer<T>`.
//!
//! The pipeline is `attr` (helper attributes) -> `ast` (accepted shapes) -> `check` (syntactic
//! rules) -> `expand` (code), with `fallback` after an error. User documentation lives on the
//! re-export, `mapped_state::MappedState` (see the `derive` doc below, which it shows).

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

mod ast;
mod attr;
mod check;
mod errors;
mod expand;
mod fallback;

/// DOC-PLACEHOLDER
#[proc_macro_derive(MappedState, attributes(mapped_state))]
pub fn derive_mapped_state(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
