//! How generated accessors attach to `Reader<T>` and `Writer<T>`: each type names a read view and
//! a write view that wrap the untyped reader/writer; `Reader<T>` derefs to the read view, so
//! `reader.rpm()` needs no import. The derive generates the views of structs.

use crate::{RawReader, RawWriter};

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
