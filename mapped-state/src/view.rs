//! How generated accessors attach to `Reader<T>` and `Writer<T>`: a type with [`Fields`] names
//! a read view and a write view that wrap the untyped reader/writer; `Reader<T>` derefs to the
//! read view, so `reader.rpm()` needs no import. The derive generates the views of structs.
//!
//! Kept apart from [`MappedState`](crate::MappedState), the encoding contract, which knows
//! nothing of files or handles.

use crate::{FixedStr, MappedState, RawReader, RawWriter};

/// A type that `Reader<T>` derefs to, giving per-field accessors.
pub trait ReadView {
    /// Wraps an opened reader.
    fn from_raw(raw: RawReader) -> Self;
    /// The wrapped reader.
    fn raw(&self) -> &RawReader;
    /// The wrapped reader, mutably (for settings such as the retry budget).
    fn raw_mut(&mut self) -> &mut RawReader;
}

/// A type that `Writer<T>` derefs to, giving per-field setters.
pub trait WriteView {
    /// Wraps an opened writer.
    fn from_raw(raw: RawWriter) -> Self;
    /// The wrapped writer.
    fn raw(&self) -> &RawWriter;
    /// The wrapped writer, mutably.
    fn raw_mut(&mut self) -> &mut RawWriter;
}

/// A type that can be the value of a [`Reader`](crate::Reader) and a [`Writer`](crate::Writer):
/// its views give the per-field accessors and setters (none, [`NoFields`], for types without
/// named fields). `#[derive(MappedState)]` implements it; so does the runtime for primitives,
/// arrays and [`FixedStr`].
pub trait Fields: MappedState {
    /// Per-field read accessors reached through `Deref` from [`Reader<Self>`](crate::Reader).
    type ReadView: ReadView;
    /// Per-field setters reached through `DerefMut` from [`Writer<Self>`](crate::Writer).
    type WriteView: WriteView;
}

/// The view of types without named fields (primitives, arrays, strings, enums): no accessors.
#[derive(Debug)]
pub struct NoFields<R>(R);

impl ReadView for NoFields<RawReader> {
    fn from_raw(raw: RawReader) -> Self {
        NoFields(raw)
    }
    fn raw(&self) -> &RawReader {
        &self.0
    }
    fn raw_mut(&mut self) -> &mut RawReader {
        &mut self.0
    }
}

impl WriteView for NoFields<RawWriter> {
    fn from_raw(raw: RawWriter) -> Self {
        NoFields(raw)
    }
    fn raw(&self) -> &RawWriter {
        &self.0
    }
    fn raw_mut(&mut self) -> &mut RawWriter {
        &mut self.0
    }
}

macro_rules! no_fields {
    ($($t:ty),* $(,)?) => {$(
        impl Fields for $t {
            type ReadView = NoFields<RawReader>;
            type WriteView = NoFields<RawWriter>;
        }
    )*};
}

no_fields!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, bool, char);

impl<T: MappedState, const N: usize> Fields for [T; N] {
    type ReadView = NoFields<RawReader>;
    type WriteView = NoFields<RawWriter>;
}

impl<const N: usize> Fields for FixedStr<N> {
    type ReadView = NoFields<RawReader>;
    type WriteView = NoFields<RawWriter>;
}
