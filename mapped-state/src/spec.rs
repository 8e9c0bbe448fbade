//! The file format and protocols, as specified in `docs/FORMAT.md` (below).
//!
//! `mapped-state/FORMAT.md` is a symbolic link to the repository's `docs/FORMAT.md`, so there is
//! one text and `cargo package` (which stores the linked file's contents) ships it inside the
//! crate. It is left out of doctests: its code blocks are byte dumps and pseudocode, not Rust.
//!
//! ---
//!
#![cfg_attr(not(doctest), doc = include_str!("../FORMAT.md"))]
// The byte dumps and pseudocode are untagged code blocks (GitHub renders them as they are).
#![allow(rustdoc::invalid_rust_codeblocks)]
