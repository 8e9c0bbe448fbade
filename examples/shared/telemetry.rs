//! The telemetry record an engine controller publishes: the quickstart's writer and readers
//! share it, and the CLI tests inspect and watch files written with it.
//!
//! Include it with `#[path = "shared/telemetry.rs"] mod telemetry;` (from `examples/`). It uses
//! every kind of field a state file can hold except 128-bit integers: numbers, an enum, `bool`,
//! `char`, an array, a nested struct and a fixed-capacity string.

// Each includer uses a different subset (a reader never constructs `Mode::Idle`, for example).
#![allow(dead_code)]

use mapped_state::{FixedStr, MappedState};

/// What the engine is doing. Stored as one byte; a reader finding any other byte gets an error
/// naming the field instead of an invalid enum.
#[derive(MappedState, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Idle = 0,
    Running = 1,
    Fault = 2,
}

/// The operating range the controller enforces.
#[derive(MappedState, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub min_rpm: u32,
    pub max_rpm: u32,
}

/// One engine's published state.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
pub struct Telemetry {
    pub rpm: u32,
    pub temperature_c: f32,
    pub uptime_s: u64,
    pub mode: Mode,
    pub healthy: bool,
    /// Service grade, `'A'` (best) to `'F'`.
    pub grade: char,
    /// The last eight temperature samples, oldest first.
    pub samples: [f32; 8],
    pub limits: Limits,
    /// A name for dashboards, at most 32 bytes of UTF-8.
    pub label: FixedStr<32>,
}
