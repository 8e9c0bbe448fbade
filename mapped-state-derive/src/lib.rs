//! `#[derive(MappedState)]` for the mapped-state crate: parses the type, checks what can be
//! checked from syntax, and generates the `MappedState` impl, compile-time layout assertions and
//! the field accessors of `Reader<T>` / setters of `Writer<T>`.
//!
//! The pipeline is `attr` (helper attributes) -> `ast` (accepted shapes) -> `check` (syntactic
//! rules) -> `expand` (code), with `fallback` after an error. The user documentation is the
//! doc comment of the derive below, shown on the re-export `mapped_state::MappedState`.

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

mod ast;
mod attr;
mod check;
mod errors;
mod expand;
mod fallback;

/// Derives `MappedState` for a struct with named fields or a fieldless enum, so it can be
/// published with `Writer<T>` and read with `Reader<T>`.
///
/// ```
/// # extern crate renamed_state as mapped_state;
/// use mapped_state::{FixedStr, MappedState, Reader, Writer};
///
/// #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
/// #[repr(u8)]
/// pub enum Mode { Idle = 0, Running = 1 }
///
/// #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
/// pub struct Limits { pub min: f32, pub max: f32 }
///
/// #[derive(MappedState, Clone, Copy, Debug, PartialEq)]
/// #[mapped_state(name = "Telemetry", size = 56)]
/// pub struct Telemetry {
///     pub rpm: u32,
///     pub samples: [f32; 4],
///     pub mode: Mode,
///     pub label: FixedStr<16>,
///     pub limits: Limits,
///     #[mapped_state(accessor = "schema_version")]
///     pub version: u16,
/// }
///
/// # let dir = std::env::temp_dir().join(format!("ms-derive-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("telemetry.state");
/// let initial = Telemetry {
///     rpm: 0,
///     samples: [0.0; 4],
///     mode: Mode::Idle,
///     label: FixedStr::new("pump")?,
///     limits: Limits { min: 0.0, max: 100.0 },
///     version: 3,
/// };
/// let mut w = Writer::<Telemetry>::create(&path, &initial)?;
/// w.set_rpm(3100);                      // commits only the words of `rpm`
/// w.set_mode(Mode::Running);
///
/// let r = Reader::<Telemetry>::open(&path)?;
/// let rpm: u32 = r.rpm();               // integers, floats and arrays of them: the value
/// let mode: Mode = r.mode()?;           // everything else: a `Result`
/// assert_eq!((rpm, mode), (3100, Mode::Running));
/// assert_eq!(r.limits()?.max, 100.0);   // a nested struct is read whole
/// assert_eq!(r.schema_version(), 3);    // renamed: `Reader::version` is the commit count
/// assert_eq!(r.version(), 2);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Accepted types
///
/// * A struct with named fields and no generic or lifetime parameters. It needs no `#[repr]`:
///   the file layout is computed by the macro, whatever rustc does with the Rust struct.
///   `repr(packed)` and `repr(align(N))` are rejected because they would not change that layout.
/// * A fieldless enum with an explicit `#[repr(u8)]`, `u16`, `u32`, `i8`, `i16` or `i32` (the
///   width is part of the file format). Discriminants may be implicit or any constant expression.
///
/// Field types: `u8`..`u64`, `i8`..`i64`, `u128`, `i128`, `f32`, `f64`, `bool`, `char`, `[T; N]`
/// of any field type (arrays of arrays too), `FixedStr<N>`, and structs and enums that derive
/// `MappedState` themselves. `String`, `Vec`, `Box`, `Option`, references, pointers, tuples,
/// slices, `usize` and `isize` are rejected at the field's type with advice; any other type
/// that does not implement `MappedState` fails with one error at the field's type.
///
/// # Layout
///
/// C rules in declaration order, with mapped-state's fixed primitive sizes and alignments (every
/// primitive aligned to its size, `u128`/`i128` to 16, `char` 4, `bool` 1, `FixedStr<N>` a `u32`
/// length + `N` bytes aligned to 4, an array aligned like its element): each field sits at the
/// next multiple of its alignment, the struct's alignment is its largest field's, and its size
/// is rounded up to that alignment. The layout is therefore the same on every target and every
/// compiler version. The macro emits the offsets as constants built from each field type's
/// `MappedState::TYPE` (so rustc computes what the macro cannot see, like a nested struct's size)
/// and asserts at compile time, against a hidden `#[repr(C)]` mirror struct, that rustc's C
/// layout agrees. Padding is always zero in the file: `encode` gets a zeroed buffer and every
/// field writes only its own bytes.
///
/// The schema (`TYPE`) names the struct (or its `name = "..."`) and every field with its offset
/// and type; `SCHEMA_HASH` is a stable hash of it, stored in the file and checked on open. An
/// enum's schema lists its variants with their discriminants; decoding any other value fails
/// with `Error::InvalidValue` naming the field and the allowed values.
///
/// # Generated accessors
///
/// Next to a struct `T`, the derive generates two documented types with `T`'s visibility, so
/// they appear in your crate's documentation with every method:
///
/// * `TReadView` (for `Telemetry`, `TelemetryReadView`): `Reader<T>` derefs to it, so
///   `reader.rpm()` needs no import;
/// * `TWriteView`: `Writer<T>` derefs mutably to it, so `writer.set_rpm(..)` does too.
///
/// `T`'s `Fields` impl names them (`type ReadView = TReadView`), and each method repeats its
/// field's doc comment, followed by what the method does. The two names are taken in `T`'s
/// module: another item with one of them is a compile error ("defined multiple times").
///
/// `TReadView` has one method per field, with the field's visibility; each reads only that
/// field's words from the mapping, consistently:
///
/// * fields whose type is *syntactically* an integer or float (`u32`, `f64`, ...) or an array (of
///   arrays) of them return the value itself, e.g. `fn rpm(&self) -> u32`: every bit pattern is a
///   valid value, and the read retries until it is consistent, so it cannot fail;
/// * every other field (`bool`, `char`, enums, `FixedStr`, nested structs, and type aliases even
///   of integers, which the macro cannot see through) returns
///   `Result<F, mapped_state::Error>`, because the file may hold bytes that are not a valid value
///   (`Error::InvalidValue`, naming the field) and the snapshot read has a retry budget
///   (`Error::Contended`);
/// * an array field also gets `<accessor>_at(index)`, reading one element: `Option<E>` (or
///   `Option<Result<E, Error>>` as above), `None` past the end.
///
/// A nested struct field is read whole (`reader.limits()?.max`), touching only its own words;
/// there are no accessors for the fields inside it.
///
/// `TWriteView` has `fn set_<field>(&mut self, value: F) -> u64` per field: one commit that
/// stores only that field's words, returning the new version. Use `Writer::update` to change
/// several fields in one atomic commit.
///
/// `Reader<T>`'s own methods take precedence over the generated ones, so a field whose accessor
/// would be named `open`, `open_with`, `raw`, `load`, `load_versioned`, `load_into`,
/// `load_version`, `load_history`, `set_max_attempts`, `version`, `writer_alive`, `writer_pid`,
/// `last_commit`, `age`, `superseded`, `path`, `wait_for_update`, `wait_for_update_after`,
/// `updates`, `updates_after`, `set_liveness_interval`, `into` or `try_into` is a compile error,
/// and so is one whose setter would be `Writer`'s `set_wake_policy`: rename its accessor with
/// `#[mapped_state(accessor = "...")]`. (This list is checked against the macro's own by a test.)
///
/// # Attributes
///
/// On the type, `#[mapped_state(...)]` takes:
///
/// * `crate = "path"`: where the runtime is, when it is not reachable as `::mapped_state`
///   (renamed in `Cargo.toml`, or re-exported by another crate);
/// * `name = "..."`: the schema name (default: the Rust name). Renaming the Rust type then
///   keeps existing files readable;
/// * `schema_hash = 0x...`: pins the schema hash; the build fails when it differs, printing the
///   actual hash and which fields changed as far as the pin tells (the fields appended since,
///   when the pinned hash is that of the type without its last fields; else the current
///   layout), so a layout change is always a visible decision;
/// * `size = N`: pins the payload size in bytes; the build fails when it differs, printing the
///   actual size;
/// * `default` (structs): a reader of this type opening a file written by an older version of
///   it, which lacks some fields, reads those fields from the struct's `Default` impl (schema
///   evolution: `mapped_state::evolve`).
///
/// On a field:
///
/// * `accessor = "..."` renames the reader method (the setter becomes `set_<accessor>`); the
///   schema keeps the field's name;
/// * `default = EXPR` or `default` (the field type's `Default`): the value the field reads as
///   in a file that lacks it (one written by an older version of the type). `EXPR` must have
///   the field's type; it is evaluated when a reader opens such a file. A field without a
///   default (here or on the struct) that the file lacks makes the open fail. Its accessor then
///   makes one test of the reader before reading; other fields' accessors are unchanged.
///
/// Unknown keys, a key given twice and malformed values are errors at the offending token.
#[proc_macro_derive(MappedState, attributes(mapped_state))]
pub fn derive_mapped_state(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
