//! Property tests over untrusted bytes: random and mutated headers (`format::Header::parse`),
//! manifests (`manifest::Type::from_manifest`) and whole files (every opener, then a load) give
//! a value or a typed error, never a panic — and whatever is accepted is exactly what was valid.

use std::path::{Path, PathBuf};

use mapped_state::format::{off, Header, ENDIAN_TAG, HEADER_LEN, MAGIC, VERSION};
use mapped_state::manifest::Type;
use mapped_state::schema::{
    fnv1a64, manifest_bytes, EnumDesc, FieldDesc, Kind, Prim, StructDesc, TypeDesc, VariantDesc,
};
use mapped_state::{
    DecodeError, Error, Fields, MappedState, NoFields, OpenOptions, RawReader, RawWriter, Reader,
    Writer,
};
use proptest::prelude::*;

// ---- headers ----

/// A valid header for a payload of `words * align` bytes aligned to `align`.
fn valid_header(
    hash: u64,
    units: usize,
    align_log2: u32,
    manifest_len: usize,
    nonce: u64,
) -> Header {
    let align = 1usize << align_log2;
    // The slot count varies with the nonce so every power of two from 2 to 256 is exercised.
    let slots = 2u64 << (nonce % 8);
    Header::for_payload(hash, units * align, align, slots, manifest_len, nonce)
        .expect("valid layout")
}

/// Header fields the parser may name in `CorruptHeader`.
const FIELDS: &[&str] = &[
    "endian_tag",
    "header_len",
    "word_size",
    "payload_size",
    "payload_align",
    "slot_stride",
    "payload_offset",
    "slot_count",
    "manifest_offset",
    "manifest_len",
    "file_len",
    "reserved",
    "checksum",
];

/// Checks what `Header::parse` may return for `bytes`: an accepted header re-encodes to exactly
/// the bytes given (nothing unvalidated slips through), an error is one of the header errors.
fn check_parse(bytes: &[u8], actual_len: u64) -> Result<Header, Error> {
    let path = Path::new("fuzz.state");
    let r = Header::parse(path, bytes, actual_len);
    match &r {
        Ok(h) => {
            assert_eq!(&h.encode()[..], &bytes[..HEADER_LEN]);
            assert_eq!(h.file_len, actual_len);
        }
        Err(Error::CorruptHeader { field, offset, .. }) => {
            assert!(FIELDS.contains(field), "unknown field {field}");
            assert!(*offset < HEADER_LEN);
        }
        Err(
            Error::NotAStateFile { .. }
            | Error::UnsupportedVersion { .. }
            | Error::ForeignEndian { .. }
            | Error::WrongLength { .. },
        ) => {}
        Err(e) => panic!("unexpected error from Header::parse: {e:?}"),
    }
    if let Err(e) = &r {
        assert_eq!(e.path(), path);
        assert!(e.to_string().contains("fuzz.state"));
    }
    r
}

fn any_header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        1usize..=600,
        0u32..=6,
        1usize..=2048,
        any::<u64>(),
    )
        .prop_map(|(h, units, a, m, n)| valid_header(h, units, a, m, n))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    /// Random buffers of any length up to a bit more than a header; half of them start with a
    /// valid identity (magic, version, endian tag, lengths) so the field checks are reached.
    #[test]
    fn random_headers_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 0..=160),
        identity in any::<bool>(),
        actual_len in prop_oneof![any::<u64>(), 0u64..4096],
    ) {
        if identity && bytes.len() >= HEADER_LEN {
            bytes[..8].copy_from_slice(&MAGIC);
            bytes[off::VERSION..off::VERSION + 4].copy_from_slice(&VERSION.to_ne_bytes());
            bytes[off::ENDIAN..off::ENDIAN + 4].copy_from_slice(&ENDIAN_TAG.to_ne_bytes());
            bytes[off::HEADER_LEN..off::HEADER_LEN + 4].copy_from_slice(&128u32.to_ne_bytes());
            bytes[off::WORD_SIZE..off::WORD_SIZE + 4].copy_from_slice(&8u32.to_ne_bytes());
        }
        let _ = check_parse(&bytes, actual_len);
    }

    /// Valid headers with 1 to 8 bytes changed. Without a new checksum every change is refused;
    /// with one, only headers whose every field is still consistent are accepted.
    #[test]
    fn mutated_headers_never_panic(
        h in any_header(),
        mutations in prop::collection::vec((0usize..HEADER_LEN, 1u8..=255), 1..=8),
        reseal in any::<bool>(),
        wrong_len in prop::option::of(any::<u64>()),
    ) {
        let original = h.encode();
        prop_assert_eq!(check_parse(&original, h.file_len).unwrap(), h);
        let mut b = original;
        for (at, x) in mutations {
            b[at] ^= x;
        }
        if reseal {
            let sum = fnv1a64(&b[..off::CHECKSUM]);
            b[off::CHECKSUM..].copy_from_slice(&sum.to_ne_bytes());
        }
        let len = wrong_len.unwrap_or(h.file_len);
        let r = check_parse(&b, len);
        if !reseal && b != original {
            // FNV-1a 64 catches every change of up to 8 bytes (a collision would take 2^-64 luck).
            prop_assert!(r.is_err(), "changed header accepted: {:?}", r);
        }
        if b == original && len == h.file_len {
            prop_assert_eq!(r.unwrap(), h);
        }
    }

    /// Valid headers cut short anywhere: refused, never read past the end.
    #[test]
    fn truncated_headers_never_panic(h in any_header(), cut in 0usize..HEADER_LEN) {
        let b = h.encode();
        let r = check_parse(&b[..cut], cut as u64);
        let truncated = matches!(r, Err(Error::WrongLength { .. }) | Err(Error::NotAStateFile { .. }));
        prop_assert!(truncated, "{:?}", r);
    }
}

// ---- manifests ----

const MODE: EnumDesc = EnumDesc {
    name: "Mode",
    repr: Prim::I16,
    variants: &[
        VariantDesc {
            name: "Idle",
            value: -1,
        },
        VariantDesc {
            name: "Run",
            value: 7,
        },
        VariantDesc {
            name: "Stop",
            value: 300,
        },
    ],
};

const LIMITS: StructDesc = StructDesc {
    name: "Limits",
    fields: &[
        FieldDesc {
            name: "lo",
            offset: 0,
            ty: &TypeDesc::prim(Prim::I8),
        },
        FieldDesc {
            name: "hi",
            offset: 8,
            ty: &TypeDesc::prim(Prim::F64),
        },
    ],
};

const LIMITS_TY: TypeDesc = TypeDesc {
    kind: Kind::Struct(&LIMITS),
    size: 16,
    align: 8,
};

/// A struct using every kind of the manifest: primitives, an enum, a string, arrays, a nested
/// struct and an array of structs.
const TELEMETRY: StructDesc = StructDesc {
    name: "Telemetry",
    fields: &[
        FieldDesc {
            name: "rpm",
            offset: 0,
            ty: &TypeDesc::prim(Prim::U32),
        },
        FieldDesc {
            name: "mode",
            offset: 4,
            ty: &TypeDesc {
                kind: Kind::Enum(&MODE),
                size: 2,
                align: 2,
            },
        },
        FieldDesc {
            name: "ok",
            offset: 6,
            ty: &TypeDesc::prim(Prim::Bool),
        },
        FieldDesc {
            name: "name",
            offset: 8,
            ty: &TypeDesc {
                kind: Kind::Str { cap: 6 },
                size: 12,
                align: 4,
            },
        },
        FieldDesc {
            name: "samples",
            offset: 20,
            ty: &TypeDesc {
                kind: Kind::Array {
                    elem: &TypeDesc::prim(Prim::F32),
                    len: 3,
                },
                size: 12,
                align: 4,
            },
        },
        FieldDesc {
            name: "limits",
            offset: 32,
            ty: &LIMITS_TY,
        },
        FieldDesc {
            name: "history",
            offset: 48,
            ty: &TypeDesc {
                kind: Kind::Array {
                    elem: &LIMITS_TY,
                    len: 2,
                },
                size: 32,
                align: 8,
            },
        },
        FieldDesc {
            name: "big",
            offset: 80,
            ty: &TypeDesc::prim(Prim::U128),
        },
        FieldDesc {
            name: "letter",
            offset: 96,
            ty: &TypeDesc::prim(Prim::Char),
        },
    ],
};

const TELEMETRY_TY: TypeDesc = TypeDesc {
    kind: Kind::Struct(&TELEMETRY),
    size: 112,
    align: 16,
};

/// Descriptions whose manifests are mutated.
fn descs() -> [&'static TypeDesc; 5] {
    [
        &TELEMETRY_TY,
        &LIMITS_TY,
        <[u64; 4]>::TYPE,
        <[[i16; 3]; 5]>::TYPE,
        <mapped_state::FixedStr<9>>::TYPE,
    ]
}

/// Checks what `from_manifest` may return: an accepted type is internally consistent and can be
/// named and diffed; an error points inside (or just past) the bytes.
fn check_manifest(bytes: &[u8], original: Option<&Type>) {
    match Type::from_manifest(bytes) {
        Ok(t) => {
            assert!(t.size as u64 <= mapped_state::format::MAX_PAYLOAD);
            assert!(t.align.is_power_of_two() && t.align <= 64, "{t:?}");
            let _ = t.name();
            if let Some(o) = original {
                let _ = t.diff(o);
                let _ = o.diff(&t);
                // The evolution check of any pair of accepted types, both ways: no panic, a
                // bounded list, a type always reads itself, and a type that reads another with
                // no default is a prefix of it (the reader reads its own size from the slot).
                for (a, b) in [(&t, o), (o, &t)] {
                    let c = mapped_state::evolve::check(a, b);
                    assert!(c.problems.len() <= mapped_state::manifest::MAX_DIFFERENCES + 1);
                    if c.readable() {
                        assert!(a.size <= b.size, "{a:?} reads {b:?}");
                    }
                }
                assert!(mapped_state::evolve::check(&t, &t).readable());
            }
        }
        Err(e) => {
            assert!(e.offset <= bytes.len(), "{e:?} for {} bytes", bytes.len());
            assert!(!e.reason.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    /// Random bytes; most start with the manifest magic and version so the type decoder runs.
    #[test]
    fn random_manifests_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..200),
        prefix in any::<bool>(),
    ) {
        let mut bytes = Vec::new();
        if prefix {
            bytes.extend_from_slice(b"MSMF\x01");
        }
        bytes.extend_from_slice(&tail);
        check_manifest(&bytes, None);
    }

    /// Valid manifests with 1 to 8 bytes changed, sometimes cut short or extended.
    #[test]
    fn mutated_manifests_never_panic(
        which in 0usize..5,
        mutations in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..=8),
        cut in prop::option::of(any::<prop::sample::Index>()),
        extra in prop::collection::vec(any::<u8>(), 0..3),
    ) {
        let desc = descs()[which];
        let mut m = manifest_bytes(desc);
        let original = Type::from_manifest(&m).expect("valid manifest");
        prop_assert_eq!(&original, &Type::from_desc(desc));
        for (at, x) in mutations {
            let i = at.index(m.len());
            m[i] ^= x;
        }
        if let Some(c) = cut {
            m.truncate(c.index(m.len()));
        }
        m.extend_from_slice(&extra);
        check_manifest(&m, Some(&original));
    }
}

#[test]
fn deeply_nested_manifest_is_refused_not_overflowing_the_stack() {
    // [[[...u8; 1]; 1]; 1] nested 10,000 deep.
    let depth = 10_000;
    let mut m = b"MSMF\x01".to_vec();
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    for _ in 0..depth {
        m.push(33);
        m.extend_from_slice(&1u32.to_le_bytes());
    }
    m.push(Prim::U8 as u8);
    let e = Type::from_manifest(&m).unwrap_err();
    assert!(e.reason.contains("nested deeper"), "{e:?}");
}

#[test]
fn huge_counts_in_a_short_manifest_are_refused() {
    // A struct claiming 4 billion fields and an enum claiming 4 billion variants, in a few bytes.
    let mut m = b"MSMF\x01".to_vec();
    m.extend_from_slice(&8u32.to_le_bytes());
    m.extend_from_slice(&8u32.to_le_bytes());
    m.push(35);
    m.extend_from_slice(&1u16.to_le_bytes());
    m.push(b'S');
    m.extend_from_slice(&8u32.to_le_bytes());
    m.extend_from_slice(&8u32.to_le_bytes());
    m.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = Type::from_manifest(&m).unwrap_err();
    assert!(e.reason.contains("ends early"), "{e:?}");

    let mut m = b"MSMF\x01".to_vec();
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    m.push(32);
    m.extend_from_slice(&1u16.to_le_bytes());
    m.push(b'E');
    m.push(Prim::U8 as u8);
    m.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = Type::from_manifest(&m).unwrap_err();
    assert!(e.reason.contains("ends early"), "{e:?}");
}

// ---- whole files ----

/// A hand-written type with values that need validating (`bool`, `char`) next to plain words.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mixed {
    count: u32,
    ok: bool,
    letter: char,
    words: [u64; 2],
}

const MIXED: StructDesc = StructDesc {
    name: "Mixed",
    fields: &[
        FieldDesc {
            name: "count",
            offset: 0,
            ty: &TypeDesc::prim(Prim::U32),
        },
        FieldDesc {
            name: "ok",
            offset: 4,
            ty: &TypeDesc::prim(Prim::Bool),
        },
        FieldDesc {
            name: "letter",
            offset: 8,
            ty: &TypeDesc::prim(Prim::Char),
        },
        FieldDesc {
            name: "words",
            offset: 16,
            ty: &TypeDesc {
                kind: Kind::Array {
                    elem: &TypeDesc::prim(Prim::U64),
                    len: 2,
                },
                size: 16,
                align: 8,
            },
        },
    ],
};

impl Fields for Mixed {
    type ReadView = NoFields<RawReader>;
    type WriteView = NoFields<RawWriter>;
}

impl MappedState for Mixed {
    const TYPE: &'static TypeDesc = &TypeDesc {
        kind: Kind::Struct(&MIXED),
        size: 32,
        align: 8,
    };

    fn encode(&self, out: &mut [u8]) {
        self.count.encode(&mut out[0..4]);
        self.ok.encode(&mut out[4..5]);
        self.letter.encode(&mut out[8..12]);
        self.words.encode(&mut out[16..32]);
    }

    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        Ok(Mixed {
            count: u32::decode(&b[0..4]).map_err(|e| e.in_field("count", 0))?,
            ok: bool::decode(&b[4..5]).map_err(|e| e.in_field("ok", 4))?,
            letter: char::decode(&b[8..12]).map_err(|e| e.in_field("letter", 8))?,
            words: <[u64; 2]>::decode(&b[16..32]).map_err(|e| e.in_field("words", 16))?,
        })
    }
}

/// A directory for this test process, removed when the guard drops.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ms-prop-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bytes of a valid file of each test type.
fn valid_files() -> &'static [Vec<u8>; 2] {
    static FILES: std::sync::OnceLock<[Vec<u8>; 2]> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = Scratch::new("src");
        let a = dir.0.join("words.state");
        drop(Writer::<[u64; 4]>::create(&a, &[1, 2, 3, 4]).unwrap());
        let b = dir.0.join("mixed.state");
        let mixed = Mixed {
            count: 5,
            ok: true,
            letter: 'é',
            words: [6, 7],
        };
        drop(Writer::<Mixed>::create(&b, &mixed).unwrap());
        [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()]
    })
}

/// Writes `bytes` to `path` with mode 0600 (so only the contents are under test).
fn write_0600(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Any error from opening or loading must name the file.
fn names_file(e: &Error, path: &Path) {
    assert_eq!(e.path(), path, "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

/// Opens `path` every way there is and uses whatever opens; nothing may panic.
fn exercise<T: Fields + std::fmt::Debug>(path: &Path) {
    match RawReader::open(path) {
        Ok(r) => {
            let (bytes, _) = r.snapshot().unwrap();
            assert_eq!(bytes.len() as u64, r.header().payload_size);
            let _ = (
                r.version(),
                r.writer_alive(),
                r.writer_pid(),
                r.age(),
                r.superseded(),
            );
            let _ = r.schema().name();
        }
        Err(e) => names_file(&e, path),
    }
    match Reader::<T>::open(path) {
        Ok(r) => match r.load_versioned() {
            Ok(_) => {}
            Err(e @ Error::InvalidValue { .. }) => names_file(&e, path),
            Err(e) => panic!("load of a quiet file failed: {e:?}"),
        },
        Err(e) => names_file(&e, path),
    }
    match Writer::<T>::open(path) {
        Ok(mut w) => {
            let v = w.get();
            w.publish(&v);
        }
        Err(e) => names_file(&e, path),
    }
    match RawWriter::open(path, &OpenOptions::new()) {
        Ok(mut w) => {
            let cur = w.current().to_vec();
            w.write_bytes(0, &cur);
        }
        Err(e) => names_file(&e, path),
    }
}

proptest! {
    // Each case writes a file and opens it four times: 2,000 cases take a few seconds in debug.
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Valid files with 1 to 8 bytes changed, all in one region (header, control block, payload
    /// copies or manifest, picked evenly, so each gets its share of cases that stop nowhere
    /// else), optionally with the header's schema hash and checksum recomputed so a change
    /// reaches the deeper checks, and in a quarter of the cases cut short or extended.
    #[test]
    fn mutated_files_never_panic(
        which in 0usize..2,
        region in 0usize..4,
        mutations in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..=8),
        reseal in any::<bool>(),
        resize in prop_oneof![3 => Just(0i64), 1 => -300i64..300],
    ) {
        let mut b = valid_files()[which].clone();
        let manifest_at = u64::from_ne_bytes(
            b[off::MANIFEST_OFFSET..off::MANIFEST_OFFSET + 8].try_into().unwrap(),
        ) as usize;
        let regions = [(0, 128), (128, 256), (256, manifest_at), (manifest_at, b.len())];
        let (lo, hi) = regions[region];
        for (at, x) in mutations {
            b[lo + at.index(hi - lo)] ^= x;
        }
        if reseal {
            let hash = fnv1a64(&b[manifest_at..]);
            b[off::SCHEMA_HASH..off::SCHEMA_HASH + 8].copy_from_slice(&hash.to_ne_bytes());
            let sum = fnv1a64(&b[..off::CHECKSUM]);
            b[off::CHECKSUM..off::CHECKSUM + 8].copy_from_slice(&sum.to_ne_bytes());
        }
        let n = (b.len() as i64 + resize).max(0) as usize;
        b.resize(n, 0xa5);
        let dir = Scratch::new("case");
        let path = dir.0.join("m.state");
        write_0600(&path, &b);
        if which == 0 {
            exercise::<[u64; 4]>(&path);
        } else {
            exercise::<Mixed>(&path);
        }
    }
}
