//! Hand-made hostile state files (deep nesting, huge arrays of zero-sized values, very long and
//! duplicated names, many variants, many fields, overlapping fields) and the encoder that builds
//! them: the seeds of the fuzz harness and the inputs of the bounded-cost tests.
//!
//! Shared by `examples/fuzz.rs`, `tests/fuzz_slice.rs` and `tests/bounded.rs` through
//! `#[path]`, so the hostile inputs live in one place.

// Each includer uses a different subset.
#![allow(dead_code)]

use mapped_state::format::{Header, CONTROL_OFFSET, HEADER_LEN};
use mapped_state::schema::fnv1a64;

/// Kind bytes of the manifest (docs/FORMAT.md, "Manifest").
pub const U8: u8 = 1;
pub const U32: u8 = 3;
pub const ENUM: u8 = 32;
pub const ARRAY: u8 = 33;
pub const STR: u8 = 34;
pub const STRUCT: u8 = 35;

/// Writes manifest bytes node by node, so a manifest of 100,000 nodes needs no tree first.
#[derive(Debug, Default)]
pub struct Manifest(pub Vec<u8>);

impl Manifest {
    /// A manifest whose top type is `size` bytes aligned to `align`; the type follows.
    pub fn new(size: u32, align: u32) -> Self {
        let mut m = Manifest(b"MSMF\x01".to_vec());
        m.u32(size).u32(align);
        m
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn name(&mut self, s: &str) -> &mut Self {
        let n = u16::try_from(s.len()).expect("names are at most 65,535 bytes");
        self.0.extend_from_slice(&n.to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// `[elem; len]`: the element type follows.
    pub fn array(&mut self, len: u32) -> &mut Self {
        self.u8(ARRAY).u32(len)
    }

    /// A struct header: `count` fields follow, each as `field` then its type.
    pub fn structure(&mut self, name: &str, size: u32, align: u32, count: u32) -> &mut Self {
        self.u8(STRUCT).name(name).u32(size).u32(align).u32(count)
    }

    pub fn field(&mut self, name: &str, offset: u32) -> &mut Self {
        self.name(name).u32(offset)
    }

    /// An enum of `u32` with `variants` `(name, value)`.
    pub fn enumeration(&mut self, name: &str, variants: &[(&str, i64)]) -> &mut Self {
        self.u8(ENUM).name(name).u8(U32).u32(variants.len() as u32);
        for (n, v) in variants {
            self.name(n).i64(*v);
        }
        self
    }
}

/// A complete state file holding `payload` (in every slot of a 2-slot ring) described by
/// `manifest`, with a
/// correct header, schema hash and checksum: everything a reader checks before the manifest's
/// contents passes.
pub fn state_file(manifest: &[u8], payload: &[u8]) -> Vec<u8> {
    let size = u32::from_le_bytes(manifest[5..9].try_into().unwrap()) as usize;
    let align = u32::from_le_bytes(manifest[9..13].try_into().unwrap()) as usize;
    assert_eq!(size, payload.len(), "payload must be the manifest's size");
    let h = Header::for_payload(fnv1a64(manifest), size, align, 2, manifest.len(), 7)
        .expect("a payload and manifest within format v2's limits");
    let mut f = vec![0u8; h.file_len as usize];
    f[..HEADER_LEN].copy_from_slice(&h.encode());
    debug_assert_eq!(CONTROL_OFFSET, HEADER_LEN);
    for slot in 0..h.slot_count as usize {
        let at = 256 + slot * h.slot_stride as usize;
        f[at..at + size].copy_from_slice(payload);
    }
    f[h.manifest_offset as usize..].copy_from_slice(manifest);
    f
}

/// One hostile file: what it attacks, and its bytes.
#[derive(Debug)]
pub struct Hostile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// `[Deep; n]` where `Deep` nests one `u8` 31 structs deep: a decoded tree that is ~60 times
/// the payload however it is represented, and a field path of 31 names per byte.
pub fn deep_nesting(n: u32) -> Hostile {
    let mut m = Manifest::new(n, 1);
    m.array(n);
    for _ in 0..31 {
        m.structure("Deep", 1, 1, 1).field("a", 0);
    }
    m.u8(U8);
    Hostile {
        name: "deep nesting",
        bytes: state_file(&m.0, &vec![0u8; n as usize]),
    }
}

/// `{ zs: [[Empty; u32::MAX]; u32::MAX], b: u8 }`: 2^64 values in no bytes.
pub fn zero_sized_arrays() -> Hostile {
    let mut m = Manifest::new(1, 1);
    m.structure("Z", 1, 1, 2).field("zs", 0);
    m.array(u32::MAX)
        .array(u32::MAX)
        .structure("Empty", 0, 1, 0);
    m.field("b", 0).u8(U8);
    Hostile {
        name: "huge arrays of zero-sized values",
        bytes: state_file(&m.0, &[0]),
    }
}

/// `[S; n]`, `S` a struct with a 65,535-byte name and one `u8` field with a 65,535-byte name:
/// names cloned per element (or printed per line) cost 64 KiB per payload byte.
pub fn long_names(n: u32) -> Hostile {
    let long = "n".repeat(65_535);
    let mut m = Manifest::new(n, 1);
    m.array(n).structure(&long, 1, 1, 1).field(&long, 0).u8(U8);
    Hostile {
        name: "very long names",
        bytes: state_file(&m.0, &vec![0u8; n as usize]),
    }
}

/// A struct of `n` `u8` fields with distinct names, whose last field repeats the first's name:
/// refused, but only after every name was checked against the others.
pub fn duplicated_names(n: u32) -> Hostile {
    let mut m = Manifest::new(n, 1);
    m.structure("Dup", n, 1, n);
    for i in 0..n {
        let name = if i + 1 == n {
            "f0".to_string()
        } else {
            format!("f{i}")
        };
        m.field(&name, i).u8(U8);
    }
    Hostile {
        name: "duplicated names",
        bytes: state_file(&m.0, &vec![0u8; n as usize]),
    }
}

/// `[E; n]` where `E` has `variants` variants (empty names) and every element holds the last.
pub fn many_variants(variants: u32, n: u32) -> Hostile {
    let mut m = Manifest::new(4 * n, 4);
    m.array(n).u8(ENUM).name("Many").u8(U32).u32(variants);
    for v in 0..variants {
        m.name("").i64(i64::from(v));
    }
    let last = (variants - 1).to_ne_bytes();
    let payload: Vec<u8> = (0..n).flat_map(|_| last).collect();
    Hostile {
        name: "many variants",
        bytes: state_file(&m.0, &payload),
    }
}

/// A struct named `Telemetry` of `n` `u8` fields: opened as the real `Telemetry`, every field
/// differs, and the mismatch error must still be small.
pub fn many_fields(n: u32) -> Hostile {
    let mut m = Manifest::new(n, 1);
    m.structure("Telemetry", n, 1, n);
    for i in 0..n {
        m.field(&format!("f{i}"), i).u8(U8);
    }
    Hostile {
        name: "many fields",
        bytes: state_file(&m.0, &vec![1u8; n as usize]),
    }
}

/// `Telemetry { <65,535-byte name>: Inner { f0, f1, ..: u8 } }`: every leaf path starts with
/// the long name, so a diff that builds all leaf paths first needs 64 KiB per field.
pub fn long_prefixed_fields(n: u32) -> Hostile {
    let long = "p".repeat(65_535);
    let mut m = Manifest::new(n, 1);
    m.structure("Telemetry", n, 1, 1).field(&long, 0);
    m.structure("Inner", n, 1, n);
    for i in 0..n {
        m.field(&format!("f{i}"), i).u8(U8);
    }
    Hostile {
        name: "fields under a long name",
        bytes: state_file(&m.0, &vec![0u8; n as usize]),
    }
}

/// Two fields covering the same byte.
pub fn overlapping_fields() -> Hostile {
    let mut m = Manifest::new(4, 4);
    m.structure("Overlap", 4, 4, 2);
    m.field("a", 0).u8(U32);
    m.field("b", 2).u8(U8);
    Hostile {
        name: "overlapping fields",
        bytes: state_file(&m.0, &[0; 4]),
    }
}

/// A valid, ordinary file: a struct with a string, an enum, an array of structs.
pub fn ordinary() -> Hostile {
    let mut m = Manifest::new(48, 4);
    m.structure("Plain", 48, 4, 4);
    m.field("label", 0).u8(STR).u32(8);
    m.field("mode", 12)
        .enumeration("Mode", &[("Idle", 0), ("Run", 1), ("Stop", 7)]);
    m.field("pts", 16)
        .array(4)
        .structure("Pt", 4, 2, 2)
        .field("x", 0)
        .u8(U8)
        .field("y", 2)
        .u8(7);
    m.field("flags", 32).array(16).u8(13);
    let mut p = vec![0u8; 48];
    p[0..4].copy_from_slice(&5u32.to_ne_bytes());
    p[4..9].copy_from_slice(b"hello");
    p[12..16].copy_from_slice(&7u32.to_ne_bytes());
    Hostile {
        name: "ordinary",
        bytes: state_file(&m.0, &p),
    }
}

/// Every hostile file at a size that keeps one open in milliseconds when costs are linear, and
/// makes a quadratic step take minutes or gigabytes.
pub fn all() -> Vec<Hostile> {
    vec![
        deep_nesting(1 << 16),
        zero_sized_arrays(),
        long_names(1 << 12),
        duplicated_names(45_000),
        many_variants(90_000, 1 << 16),
        many_fields(45_000),
        long_prefixed_fields(4_000),
        overlapping_fields(),
        ordinary(),
    ]
}

/// Small versions, to seed the fuzzer (each input is written to disk, so seeds stay small).
pub fn seeds() -> Vec<Hostile> {
    vec![
        deep_nesting(64),
        zero_sized_arrays(),
        long_names(4),
        duplicated_names(200),
        many_variants(300, 64),
        many_fields(300),
        long_prefixed_fields(16),
        overlapping_fields(),
        ordinary(),
    ]
}
