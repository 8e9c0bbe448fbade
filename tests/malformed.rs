//! Every kind of bad file gets its own typed error — naming the file, and for header fields the
//! field and its byte offset — from every way of opening it, never a panic, a hang or a changed
//! file. Also the file lifecycle: create, refuse to clobber, replace, a second writer.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{write_file, TempDir};
use mapped_state::format::{off, ENDIAN_TAG, PAYLOAD_OFFSET};
use mapped_state::schema::{fnv1a64, manifest_bytes, FieldDesc, Kind, Prim, StructDesc, TypeDesc};
use mapped_state::{
    CreateOptions, DecodeError, Error, Fields, Insecurity, MappedState, NoFields, OpenOptions,
    RawReader, RawWriter, Reader, Writer,
};

/// The payload of most files here: 32 bytes, one 64-byte slot per copy.
type P = [u64; 4];
const VALUE: P = [1, 2, 3, 4];

/// The bytes of a valid state file holding `VALUE`.
fn valid_bytes() -> Vec<u8> {
    let dir = TempDir::new("malformed-src");
    let path = dir.join("v.state");
    drop(Writer::<P>::create(&path, &VALUE).expect("create"));
    std::fs::read(&path).expect("read")
}

fn put(bytes: &mut [u8], at: usize, v: &[u8]) {
    bytes[at..at + v.len()].copy_from_slice(v);
}

fn put32(bytes: &mut [u8], at: usize, v: u32) {
    put(bytes, at, &v.to_ne_bytes());
}

fn put64(bytes: &mut [u8], at: usize, v: u64) {
    put(bytes, at, &v.to_ne_bytes());
}

fn get64(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Recomputes the header checksum, so a changed field is judged on its own merits.
fn reseal(bytes: &mut [u8]) {
    let sum = fnv1a64(&bytes[..off::CHECKSUM]);
    put64(bytes, off::CHECKSUM, sum);
}

/// Replaces the manifest and makes the header agree with it (schema hash, checksum).
fn set_manifest(bytes: &mut [u8], manifest: &[u8]) {
    let at = get64(bytes, off::MANIFEST_OFFSET) as usize;
    assert_eq!(
        bytes.len() - at,
        manifest.len(),
        "manifest length must not change"
    );
    put(bytes, at, manifest);
    put64(bytes, off::SCHEMA_HASH, fnv1a64(manifest));
    reseal(bytes);
}

/// The errors of every way to open `path`: untyped and typed, reader and writer.
fn open_errors(path: &Path) -> Vec<(&'static str, Error)> {
    vec![
        ("RawReader::open", RawReader::open(path).unwrap_err()),
        ("Reader::open", Reader::<P>::open(path).unwrap_err()),
        ("Writer::open", Writer::<P>::open(path).unwrap_err()),
        (
            "RawWriter::open",
            RawWriter::open(path, &OpenOptions::new()).unwrap_err(),
        ),
    ]
}

/// A file holding `bytes`, refused by every opener, and left exactly as it was.
struct Refused {
    _dir: TempDir,
    path: PathBuf,
    errors: Vec<(&'static str, Error)>,
}

fn refused(bytes: &[u8]) -> Refused {
    let dir = TempDir::new("malformed");
    let path = dir.join("bad.state");
    write_file(&path, bytes, 0o600);
    let errors = open_errors(&path);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a refused open changed the file"
    );
    assert_eq!(dir.names(), ["bad.state"], "an open left a file behind");
    Refused {
        _dir: dir,
        path,
        errors,
    }
}

impl Refused {
    /// Runs `check` on every opener's error, after checking its message names the file and
    /// contains each of `words`.
    fn each(&self, words: &[&str], check: impl Fn(&Error) -> bool) {
        for (opener, e) in &self.errors {
            assert!(check(e), "{opener}: unexpected error {e:?}");
            assert_eq!(e.path(), self.path, "{opener}: {e:?}");
            let text = e.to_string();
            assert!(
                text.contains(&self.path.display().to_string()),
                "{opener}: message does not name the file: {text}"
            );
            for w in words {
                assert!(text.contains(w), "{opener}: message lacks {w:?}: {text}");
            }
        }
    }
}

/// Changes a header field (checksum recomputed, so only the field check can refuse it) and
/// expects `CorruptHeader` naming that field at `offset`.
fn corrupt_field(field: &str, offset: usize, change: impl FnOnce(&mut Vec<u8>)) {
    let mut b = valid_bytes();
    change(&mut b);
    reseal(&mut b);
    let r = refused(&b);
    r.each(
        &[&format!("`{field}`"), &format!("byte {offset}"), "corrupt header"],
        |e| {
            matches!(e, Error::CorruptHeader { field: f, offset: o, .. } if *f == field && *o == offset)
        },
    );
}

#[test]
fn the_valid_file_opens_everywhere() {
    // The control for every test below: the unmodified bytes open with every opener.
    let dir = TempDir::new("malformed-valid");
    let path = dir.join("ok.state");
    write_file(&path, &valid_bytes(), 0o600);
    assert_eq!(Reader::<P>::open(&path).unwrap().load().unwrap(), VALUE);
    assert_eq!(RawReader::open(&path).unwrap().version(), 0);
    assert_eq!(Writer::<P>::open(&path).unwrap().get(), VALUE);
    drop(RawWriter::open(&path, &OpenOptions::new()).unwrap());
}

#[test]
fn wrong_magic_is_not_a_state_file() {
    let mut b = valid_bytes();
    put(&mut b, off::MAGIC, b"MAPSTATX");
    reseal(&mut b);
    refused(&b).each(
        &["not a mapped-state file", "MAPSTATE"],
        |e| matches!(e, Error::NotAStateFile { found, .. } if found == b"MAPSTATX"),
    );
}

#[test]
fn newer_version_is_unsupported() {
    let mut b = valid_bytes();
    put32(&mut b, off::VERSION, 3);
    reseal(&mut b);
    refused(&b).each(&["version 3"], |e| {
        matches!(
            e,
            Error::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        )
    });
}

/// Format v1 (the two-copy latch) is not read: no migration, a clear error.
#[test]
fn format_v1_is_unsupported() {
    let mut b = valid_bytes();
    put32(&mut b, off::VERSION, 1);
    reseal(&mut b);
    refused(&b).each(
        &["format version 1 is not supported", "reads version 2"],
        |e| {
            matches!(
                e,
                Error::UnsupportedVersion {
                    found: 1,
                    supported: 2,
                    ..
                }
            )
        },
    );
}

#[test]
fn byte_swapped_endian_tag_is_foreign_endian() {
    let mut b = valid_bytes();
    put32(&mut b, off::ENDIAN, ENDIAN_TAG.swap_bytes());
    reseal(&mut b);
    refused(&b).each(
        &["byte order"],
        |e| matches!(e, Error::ForeignEndian { found, .. } if *found == ENDIAN_TAG.swap_bytes()),
    );
}

#[test]
fn a_file_from_a_machine_of_the_other_byte_order_is_foreign_endian() {
    // Every multi-byte header field written in the other byte order, as a foreign machine would.
    let mut b = valid_bytes();
    for at in [off::VERSION, off::ENDIAN, off::HEADER_LEN, off::WORD_SIZE] {
        let v = u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
        put32(&mut b, at, v.swap_bytes());
    }
    for at in (off::SCHEMA_HASH..off::RESERVED).step_by(8) {
        let v = get64(&b, at);
        put64(&mut b, at, v.swap_bytes());
    }
    let sum = fnv1a64(&b[..off::CHECKSUM]).swap_bytes();
    put64(&mut b, off::CHECKSUM, sum);
    refused(&b).each(&["other byte order"], |e| {
        matches!(e, Error::ForeignEndian { .. })
    });
}

#[test]
fn garbage_endian_tag_is_corrupt() {
    corrupt_field("endian_tag", off::ENDIAN, |b| {
        put32(b, off::ENDIAN, 0xdead_beef)
    });
}

#[test]
fn header_len_is_checked() {
    corrupt_field("header_len", off::HEADER_LEN, |b| {
        put32(b, off::HEADER_LEN, 64)
    });
}

#[test]
fn word_size_is_checked() {
    corrupt_field("word_size", off::WORD_SIZE, |b| put32(b, off::WORD_SIZE, 4));
}

#[test]
fn zero_payload_size_is_corrupt() {
    corrupt_field("payload_size", off::PAYLOAD_SIZE, |b| {
        put64(b, off::PAYLOAD_SIZE, 0)
    });
}

#[test]
fn huge_payload_size_is_corrupt() {
    corrupt_field("payload_size", off::PAYLOAD_SIZE, |b| {
        put64(b, off::PAYLOAD_SIZE, u64::MAX)
    });
}

#[test]
fn payload_size_not_a_multiple_of_its_alignment_is_corrupt() {
    corrupt_field("payload_size", off::PAYLOAD_SIZE, |b| {
        put64(b, off::PAYLOAD_SIZE, 33)
    });
}

#[test]
fn payload_size_that_fits_the_layout_but_not_the_manifest_is_caught_by_the_manifest() {
    // 40 bytes still round up to the same 64-byte slots, so every header check passes; the
    // manifest (a 32-byte type) disagrees.
    let mut b = valid_bytes();
    put64(&mut b, off::PAYLOAD_SIZE, 40);
    reseal(&mut b);
    refused(&b).each(&["size 32", "payload_size 40"], |e| {
        matches!(e, Error::CorruptManifest { .. })
    });
}

#[test]
fn payload_align_not_a_power_of_two_is_corrupt() {
    corrupt_field("payload_align", off::PAYLOAD_ALIGN, |b| {
        put64(b, off::PAYLOAD_ALIGN, 3)
    });
}

#[test]
fn payload_align_above_the_limit_is_corrupt() {
    corrupt_field("payload_align", off::PAYLOAD_ALIGN, |b| {
        put64(b, off::PAYLOAD_ALIGN, 128)
    });
}

#[test]
fn slot_stride_is_checked() {
    corrupt_field("slot_stride", off::SLOT_STRIDE, |b| {
        put64(b, off::SLOT_STRIDE, 128)
    });
}

/// A format v1 file at the path (left by the previous release) can be replaced: it is a state
/// file, no writer holds it, it is simply not ours to read.
#[test]
fn a_format_v1_file_can_be_replaced() {
    let mut b = valid_bytes();
    put32(&mut b, off::VERSION, 1);
    reseal(&mut b);
    let dir = TempDir::new("malformed-v1-replace");
    let path = dir.join("old.state");
    write_file(&path, &b, 0o600);
    assert!(matches!(
        Writer::<P>::create(&path, &VALUE),
        Err(Error::AlreadyExists { .. })
    ));
    let w = Writer::<P>::create_with(&path, &VALUE, &CreateOptions::new().replace(true))
        .expect("replace the v1 file");
    assert_eq!(Reader::<P>::open(&path).unwrap().load().unwrap(), VALUE);
    drop(w);
    assert_eq!(
        dir.names(),
        [".old.state.lock", "old.state"],
        "no temporary left; the writer's lock file stays"
    );
}

#[test]
fn slot_count_must_be_a_power_of_two_from_2_to_256() {
    for bad in [0u64, 1, 3, 6, 512, 1 << 40, u64::MAX] {
        corrupt_field("slot_count", off::SLOT_COUNT, |b| {
            put64(b, off::SLOT_COUNT, bad)
        });
    }
}

#[test]
fn slot_count_that_disagrees_with_the_file_is_refused() {
    // A valid count, but the manifest offset and file length were computed for another one.
    corrupt_field("manifest_offset", off::MANIFEST_OFFSET, |b| {
        let n = get64(b, off::SLOT_COUNT);
        put64(b, off::SLOT_COUNT, n * 2)
    });
}

#[test]
fn file_len_is_checked() {
    corrupt_field("file_len", off::FILE_LEN, |b| {
        let v = get64(b, off::FILE_LEN);
        put64(b, off::FILE_LEN, v + 1)
    });
}

#[test]
fn manifest_offset_is_checked() {
    corrupt_field("manifest_offset", off::MANIFEST_OFFSET, |b| {
        let v = get64(b, off::MANIFEST_OFFSET);
        put64(b, off::MANIFEST_OFFSET, v + 8)
    });
}

#[test]
fn zero_manifest_len_is_corrupt() {
    corrupt_field("manifest_len", off::MANIFEST_LEN, |b| {
        put64(b, off::MANIFEST_LEN, 0)
    });
}

#[test]
fn huge_manifest_len_is_corrupt() {
    corrupt_field("manifest_len", off::MANIFEST_LEN, |b| {
        put64(b, off::MANIFEST_LEN, 1 << 40)
    });
}

#[test]
fn payload_offset_is_checked() {
    corrupt_field("payload_offset", off::PAYLOAD_OFFSET, |b| {
        put64(b, off::PAYLOAD_OFFSET, 512)
    });
}

#[test]
fn reserved_bytes_must_be_zero() {
    for at in [off::RESERVED, off::RESERVED + 7, off::CHECKSUM - 1] {
        corrupt_field("reserved", at, |b| b[at] = 1);
    }
}

#[test]
fn changed_schema_hash_no_longer_matches_the_manifest() {
    let mut b = valid_bytes();
    let v = get64(&b, off::SCHEMA_HASH);
    put64(&mut b, off::SCHEMA_HASH, v ^ 1);
    reseal(&mut b);
    refused(&b).each(&["schema manifest", "schema_hash"], |e| {
        matches!(e, Error::CorruptManifest { offset: 0, .. })
    });
}

#[test]
fn a_changed_field_without_a_new_checksum_fails_the_checksum() {
    // The nonce has no range of its own to check: only the checksum can notice it changed.
    let mut b = valid_bytes();
    let v = get64(&b, off::NONCE);
    put64(&mut b, off::NONCE, v ^ 0x100);
    refused(&b).each(&["`checksum`", "byte 120"], |e| {
        matches!(
            e,
            Error::CorruptHeader {
                field: "checksum",
                offset: 120,
                ..
            }
        )
    });
}

#[test]
fn a_changed_checksum_fails_the_checksum() {
    let mut b = valid_bytes();
    b[off::CHECKSUM + 3] ^= 0x40;
    refused(&b).each(&["`checksum`"], |e| {
        matches!(
            e,
            Error::CorruptHeader {
                field: "checksum",
                ..
            }
        )
    });
}

#[test]
fn a_new_nonce_with_its_checksum_is_accepted() {
    // Control for the checksum tests: `reseal` makes a header the library accepts.
    let mut b = valid_bytes();
    let v = get64(&b, off::NONCE);
    put64(&mut b, off::NONCE, v ^ 0x100);
    reseal(&mut b);
    let dir = TempDir::new("malformed-nonce");
    let path = dir.join("n.state");
    write_file(&path, &b, 0o600);
    assert_eq!(Reader::<P>::open(&path).unwrap().load().unwrap(), VALUE);
}

#[test]
fn corrupt_manifest_bytes_fail_the_schema_hash() {
    let mut b = valid_bytes();
    let at = get64(&b, off::MANIFEST_OFFSET) as usize;
    b[at + 1] ^= 0xff;
    refused(&b).each(&["corrupt schema manifest"], |e| {
        matches!(e, Error::CorruptManifest { offset: 0, .. })
    });
}

#[test]
fn corrupt_manifest_with_a_matching_hash_is_parsed_and_refused() {
    // The hash agrees, so the manifest decoder itself must find the unknown kind byte.
    let mut b = valid_bytes();
    let at = get64(&b, off::MANIFEST_OFFSET) as usize;
    let mut m = b[at..].to_vec();
    let last = m.len() - 1;
    assert_eq!(
        m[last],
        Prim::U64 as u8,
        "manifest of [u64; 4] ends with u64's kind byte"
    );
    m[last] = 99;
    set_manifest(&mut b, &m);
    refused(&b).each(
        &["unknown type kind 99"],
        |e| matches!(e, Error::CorruptManifest { offset, .. } if *offset == last),
    );
}

#[test]
fn manifest_whose_type_does_not_fit_the_header_is_refused() {
    // `[u32; 8]` is 32 bytes like `[u64; 4]`, but aligned to 4 where the header says 8.
    let mut b = valid_bytes();
    set_manifest(&mut b, &manifest_bytes(<[u32; 8]>::TYPE));
    refused(&b).each(&["align 4", "payload_align 8"], |e| {
        matches!(e, Error::CorruptManifest { offset: 5, .. })
    });
}

#[test]
fn a_valid_file_of_another_type_is_a_schema_mismatch() {
    let mut b = valid_bytes();
    set_manifest(&mut b, &manifest_bytes(<[i64; 4]>::TYPE));
    let dir = TempDir::new("malformed-schema");
    let path = dir.join("i64.state");
    write_file(&path, &b, 0o600);
    // Untyped openers take any valid schema.
    assert_eq!(RawReader::open(&path).unwrap().schema().name(), "[i64; 4]");
    drop(RawWriter::open(&path, &OpenOptions::new()).unwrap());
    for e in [
        Reader::<P>::open(&path).unwrap_err(),
        Writer::<P>::open(&path).unwrap_err(),
    ] {
        let text = e.to_string();
        match &e {
            Error::SchemaMismatch {
                expected_name,
                found_name,
                differences,
                ..
            } => {
                assert_eq!(expected_name, "[u64; 4]");
                assert_eq!(found_name, "[i64; 4]");
                assert_eq!(
                    differences,
                    &["this program's type is `[u64; 4]`, the file holds `[i64; 4]` (elements: `u64` here, `i64` in the file)"]
                );
            }
            other => panic!("expected SchemaMismatch, got {other:?}"),
        }
        assert!(text.contains(&path.display().to_string()) && text.contains("[i64; 4]"));
    }
}

#[test]
fn truncated_by_one_byte_is_wrong_length() {
    let b = valid_bytes();
    let n = b.len() as u64;
    refused(&b[..b.len() - 1]).each(&["truncated", &format!("expected {n}")], |e| {
        matches!(e, Error::WrongLength { expected, actual, .. } if *expected == n && *actual == n - 1)
    });
}

#[test]
fn truncated_inside_the_header_is_wrong_length() {
    let b = valid_bytes();
    refused(&b[..100]).each(&["100 bytes"], |e| {
        matches!(e, Error::WrongLength { actual: 100, .. })
    });
}

#[test]
fn truncated_inside_the_payload_is_wrong_length() {
    let b = valid_bytes();
    refused(&b[..300]).each(&["300 bytes"], |e| {
        matches!(e, Error::WrongLength { actual: 300, .. })
    });
}

#[test]
fn extended_file_is_wrong_length() {
    let mut b = valid_bytes();
    let n = b.len() as u64;
    b.extend_from_slice(&[0; 4096]);
    refused(&b).each(&[&format!("expected {n}")], |e| {
        matches!(e, Error::WrongLength { expected, actual, .. } if *expected == n && *actual == n + 4096)
    });
}

#[test]
fn empty_file_is_not_a_state_file() {
    refused(&[]).each(
        &["not a mapped-state file"],
        |e| matches!(e, Error::NotAStateFile { found, .. } if found.is_empty()),
    );
}

#[test]
fn ten_byte_file_with_the_magic_is_wrong_length() {
    refused(b"MAPSTATE\0\x01").each(&["10 bytes"], |e| {
        matches!(e, Error::WrongLength { actual: 10, .. })
    });
}

#[test]
fn ten_byte_text_file_is_not_a_state_file() {
    refused(b"key=value\n").each(
        &["not a mapped-state file"],
        |e| matches!(e, Error::NotAStateFile { found, .. } if found == b"key=valu"),
    );
}

#[test]
fn png_file_is_not_a_state_file() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(600, 0);
    refused(&png).each(
        &["not a mapped-state file", "89, 50, 4e, 47"],
        |e| matches!(e, Error::NotAStateFile { found, .. } if found == b"\x89PNG\r\n\x1a\n"),
    );
}

#[test]
fn text_file_is_not_a_state_file() {
    let text = "[server]\nport = 8080\n".repeat(40);
    refused(text.as_bytes()).each(
        &["not a mapped-state file"],
        |e| matches!(e, Error::NotAStateFile { found, .. } if found == b"[server]"),
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = TempDir::new("malformed-missing");
    let path = dir.join("absent.state");
    for (opener, e) in open_errors(&path) {
        match &e {
            Error::Io { op, source, .. } => {
                assert_eq!(*op, "open", "{opener}");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{opener}");
            }
            other => panic!("{opener}: expected Io, got {other:?}"),
        }
        assert!(e.to_string().contains(&path.display().to_string()));
    }
    assert!(dir.names().is_empty(), "opening created a file");
}

fn assert_insecure(path: &Path, why: Insecurity, words: &[&str]) {
    for (opener, e) in open_errors(path) {
        match &e {
            Error::Insecure { why: w, .. } => assert_eq!(*w, why, "{opener}"),
            other => panic!("{opener}: expected Insecure({why:?}), got {other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        for w in words {
            assert!(text.contains(w), "{opener}: message lacks {w:?}: {text}");
        }
    }
}

#[test]
fn directory_is_not_a_regular_file() {
    let dir = TempDir::new("malformed-dir");
    let path = dir.join("d.state");
    std::fs::create_dir(&path).unwrap();
    assert_insecure(&path, Insecurity::NotRegularFile, &["not a regular file"]);
}

#[test]
fn symlink_to_a_valid_file_is_refused() {
    let dir = TempDir::new("malformed-link");
    let target = dir.join("real.state");
    write_file(&target, &valid_bytes(), 0o600);
    let link = dir.join("link.state");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_insecure(&link, Insecurity::Symlink, &["symbolic link"]);
    // The target itself is fine.
    assert_eq!(Reader::<P>::open(&target).unwrap().load().unwrap(), VALUE);
}

#[test]
fn dangling_symlink_is_refused_as_a_symlink() {
    let dir = TempDir::new("malformed-dangling");
    let link = dir.join("link.state");
    std::os::unix::fs::symlink(dir.join("nowhere"), &link).unwrap();
    assert_insecure(&link, Insecurity::Symlink, &["symbolic link"]);
}

#[test]
fn fifo_is_refused_without_blocking() {
    let dir = TempDir::new("malformed-fifo");
    let path = dir.join("f.state");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
    // Opening a FIFO for reading with no writer blocks unless done with O_NONBLOCK; run the
    // opens on a thread so a regression fails here instead of hanging the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(open_errors(&p));
    });
    let errors = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("opening a FIFO blocked");
    for (opener, e) in errors {
        assert!(
            matches!(
                e,
                Error::Insecure {
                    why: Insecurity::NotRegularFile,
                    ..
                }
            ),
            "{opener}: {e:?}"
        );
    }
}

#[test]
fn group_writable_file_is_refused_unless_allowed() {
    writable_by_others(0o620);
}

#[test]
fn other_writable_file_is_refused_unless_allowed() {
    writable_by_others(0o602);
}

fn writable_by_others(mode: u32) {
    let dir = TempDir::new("malformed-mode");
    let path = dir.join("shared.state");
    write_file(&path, &valid_bytes(), mode);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        mode
    );
    assert_insecure(
        &path,
        Insecurity::WritableByOthers { mode },
        &[&format!("mode {mode:o}"), "allow_shared_writable"],
    );
    let opts = OpenOptions::new().allow_shared_writable(true);
    assert_eq!(
        Reader::<P>::open_with(&path, &opts)
            .unwrap()
            .load()
            .unwrap(),
        VALUE
    );
    RawReader::open_with(&path, &opts).unwrap();
    let mut w = Writer::<P>::open_with(&path, &opts).unwrap();
    assert_eq!(w.get(), VALUE);
    w.publish(&[9; 4]);
    drop(w);
    drop(RawWriter::open(&path, &opts).unwrap());
}

/// A struct with a `bool`, written by hand (no derive): bytes 4 must be 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Flagged {
    count: u32,
    ok: bool,
}

const FLAGGED: StructDesc = StructDesc {
    name: "Flagged",
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
    ],
};

impl Fields for Flagged {
    type ReadView = NoFields<RawReader>;
    type WriteView = NoFields<RawWriter>;
}

impl MappedState for Flagged {
    const TYPE: &'static TypeDesc = &TypeDesc {
        kind: Kind::Struct(&FLAGGED),
        size: 8,
        align: 4,
    };

    fn encode(&self, out: &mut [u8]) {
        self.count.encode(&mut out[0..4]);
        self.ok.encode(&mut out[4..5]);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Flagged {
            count: u32::decode(&bytes[0..4]).map_err(|e| e.in_field("count", 0))?,
            ok: bool::decode(&bytes[4..5]).map_err(|e| e.in_field("ok", 4))?,
        })
    }
}

#[test]
fn invalid_bool_in_the_payload_is_an_invalid_value_naming_the_field() {
    let dir = TempDir::new("malformed-bool");
    let path = dir.join("flag.state");
    let good = Flagged { count: 7, ok: true };
    drop(Writer::<Flagged>::create(&path, &good).unwrap());
    let r = Reader::<Flagged>::open(&path).unwrap();
    assert_eq!(r.load().unwrap(), good);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for copy in 0..2u64 {
            f.write_all_at(&[2], PAYLOAD_OFFSET as u64 + copy * 64 + 4)
                .unwrap();
        }
    }
    let check = |e: &Error| match e {
        Error::InvalidValue { source, .. } => {
            assert_eq!(source.field, "ok");
            assert_eq!(source.offset, 4);
            assert_eq!(source.bytes, [2]);
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("`ok`") && text.contains("bool"), "{text}");
        }
        other => panic!("expected InvalidValue, got {other:?}"),
    };
    check(&r.load().unwrap_err());
    check(&Reader::<Flagged>::open(&path).unwrap().load().unwrap_err());
    // A writer refuses to take over a value it could not decode (its `get` would have to panic).
    check(&Writer::<Flagged>::open(&path).unwrap_err());
    // The untyped reader copies the bytes without judging them.
    let (bytes, _) = RawReader::open(&path).unwrap().snapshot().unwrap();
    assert_eq!(bytes[4], 2);
}

// ---- lifecycle ----

#[test]
fn create_read_update_reopen() {
    let dir = TempDir::new("lifecycle");
    let path = dir.join("a.state");
    let mut w = Writer::<[u64; 5]>::create(&path, &[7; 5]).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let r = Reader::<[u64; 5]>::open(&path).unwrap();
    assert_eq!(r.load_versioned().unwrap(), ([7; 5], 0));
    assert_eq!(w.publish(&[9; 5]), 1);
    assert_eq!(r.load().unwrap(), [9; 5]);
    assert_eq!(w.update(|v| v[2] = 1), 2);
    assert_eq!(r.load_versioned().unwrap(), ([9, 9, 1, 9, 9], 2));
    assert!(r.writer_alive());
    assert_eq!(r.writer_pid(), Some(std::process::id()));
    drop(w);
    assert!(!r.writer_alive());
    let mut w = Writer::<[u64; 5]>::open(&path).unwrap();
    assert_eq!(w.get(), [9, 9, 1, 9, 9]);
    assert_eq!(w.version(), 2);
    w.publish(&[3; 5]);
    assert_eq!(r.load_versioned().unwrap(), ([3; 5], 3));
    assert_eq!(
        dir.names(),
        [".a.state.lock", "a.state"],
        "a temporary file was left behind (the writer's lock file stays)"
    );
}

#[test]
fn second_writer_gets_writer_active_with_the_live_pid() {
    let dir = TempDir::new("lifecycle-second");
    let path = dir.join("w.state");
    let w = Writer::<P>::create(&path, &VALUE).unwrap();
    let before = std::fs::read(&path).unwrap();
    for e in [
        Writer::<P>::open(&path).unwrap_err(),
        Writer::<P>::open_or_create(&path, &[0; 4]).unwrap_err(),
        RawWriter::open(&path, &OpenOptions::new()).unwrap_err(),
    ] {
        match &e {
            Error::WriterActive { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("expected WriterActive, got {other:?}"),
        }
        let text = e.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    drop(w);
    assert_eq!(Writer::<P>::open(&path).unwrap().get(), VALUE);
}

#[test]
fn create_refuses_an_existing_state_file_and_leaves_it_untouched() {
    let dir = TempDir::new("lifecycle-exists");
    let path = dir.join("s.state");
    drop(Writer::<P>::create(&path, &VALUE).unwrap());
    let before = std::fs::read(&path).unwrap();
    let e = Writer::<P>::create(&path, &[0; 4]).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("already exists"));
    // Nor for a different type: `create` never replaces without being asked to.
    let e = Writer::<[u8; 3]>::create(&path, &[0; 3]).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        dir.names(),
        [".s.state.lock", "s.state"],
        "a temporary file was left behind (the writer's lock file stays)"
    );
}

#[test]
fn create_refuses_an_existing_other_file_and_leaves_it_untouched() {
    let dir = TempDir::new("lifecycle-other");
    let path = dir.join("notes.txt");
    write_file(&path, b"do not overwrite me\n", 0o600);
    let e = Writer::<P>::create(&path, &VALUE).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    // `replace` is for state files only: a file that is not one is not clobbered either.
    let e =
        Writer::<P>::create_with(&path, &VALUE, &CreateOptions::new().replace(true)).unwrap_err();
    assert!(matches!(e, Error::NotAStateFile { .. }), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"do not overwrite me\n");
    assert_eq!(
        dir.names(),
        ["notes.txt"],
        "a temporary file was left behind"
    );
}

#[test]
fn replace_supersedes_the_old_file_and_old_readers_notice() {
    let dir = TempDir::new("lifecycle-replace");
    let path = dir.join("r.state");
    drop(Writer::<P>::create(&path, &VALUE).unwrap());
    let old = Reader::<P>::open(&path).unwrap();
    assert!(!old.superseded());
    let mut w =
        Writer::<[u32; 2]>::create_with(&path, &[5, 6], &CreateOptions::new().replace(true))
            .unwrap();
    assert!(old.superseded(), "the old file was not flagged superseded");
    // The old reader still reads the old file; reopening by path follows the new one.
    assert_eq!(old.load().unwrap(), VALUE);
    let new = Reader::<[u32; 2]>::open(&path).unwrap();
    assert_eq!(new.load().unwrap(), [5, 6]);
    assert!(!new.superseded());
    w.publish(&[7, 8]);
    assert_eq!(new.load().unwrap(), [7, 8]);
    assert_eq!(old.load().unwrap(), VALUE);
    assert_eq!(
        dir.names(),
        [".r.state.lock", "r.state"],
        "a temporary file was left behind (the writer's lock file stays)"
    );
}

#[test]
fn replace_refuses_while_the_old_file_has_a_live_writer() {
    let dir = TempDir::new("lifecycle-replace-live");
    let path = dir.join("r.state");
    let w = Writer::<P>::create(&path, &VALUE).unwrap();
    let before = std::fs::read(&path).unwrap();
    let e =
        Writer::<P>::create_with(&path, &[0; 4], &CreateOptions::new().replace(true)).unwrap_err();
    match &e {
        Error::WriterActive { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
        other => panic!("expected WriterActive, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!Reader::<P>::open(&path).unwrap().superseded());
    assert_eq!(
        dir.names(),
        [".r.state.lock", "r.state"],
        "a temporary file was left behind (the writer's lock file stays)"
    );
    drop(w);
}

#[test]
fn replace_refuses_a_symlink_at_the_path_and_leaves_both_untouched() {
    let dir = TempDir::new("lifecycle-replace-symlink");
    let target = dir.join("target.state");
    drop(Writer::<P>::create(&target, &VALUE).unwrap());
    let before = std::fs::read(&target).unwrap();
    let link = dir.join("link.state");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e =
        Writer::<P>::create_with(&link, &[0; 4], &CreateOptions::new().replace(true)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Insecure {
                why: Insecurity::Symlink,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), before);
    assert!(!Reader::<P>::open(&target).unwrap().superseded());
    assert_eq!(
        dir.names(),
        [".target.state.lock", "link.state", "target.state"],
        "a temporary file (or a lock file for the refused link) was left behind"
    );
}

#[test]
fn create_of_an_unstorable_type_fails_cleanly() {
    // A zero-sized payload cannot be stored in format v1.
    let dir = TempDir::new("lifecycle-empty");
    let path = dir.join("e.state");
    let e = Writer::<[u64; 0]>::create(&path, &[]).unwrap_err();
    assert!(matches!(e, Error::UnsupportedType { .. }), "{e:?}");
    assert!(e.to_string().contains("[u64; 0]"), "{e}");
    assert!(dir.names().is_empty(), "a failed create left a file behind");
}

#[test]
fn create_in_a_missing_directory_fails_cleanly() {
    let dir = TempDir::new("lifecycle-nodir");
    let path = dir.join("missing").join("x.state");
    let e = Writer::<P>::create(&path, &VALUE).unwrap_err();
    assert!(
        matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(dir.names().is_empty());
}

#[test]
fn a_unix_socket_at_the_path_is_not_a_regular_file() {
    // `open` of a socket fails with ENXIO before any `fstat`; that must still read as the file
    // being the wrong kind, not as an I/O error.
    let dir = TempDir::new("malformed-socket");
    let path = dir.join("sock.state");
    let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind a socket");
    for (opener, e) in open_errors(&path) {
        assert!(
            matches!(
                e,
                Error::Insecure {
                    why: Insecurity::NotRegularFile,
                    ..
                }
            ),
            "{opener}: {e:?}"
        );
    }
}

/// A uid that owns nothing on a test machine.
const OTHER_UID: u32 = 12345;

/// A valid file owned by `OTHER_UID`. Needs root (as in CI, which runs as root) to `chown`;
/// elsewhere the owner tests cannot be set up and say so loudly.
fn owned_by_another_user() -> Option<(TempDir, PathBuf)> {
    let dir = TempDir::new("malformed-owner");
    let path = dir.join("theirs.state");
    write_file(&path, &valid_bytes(), 0o644);
    match std::os::unix::fs::chown(&path, Some(OTHER_UID), None) {
        Ok(()) => Some((dir, path)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("NOT RUN: owner tests need root to chown a file to uid {OTHER_UID}");
            None
        }
        Err(e) => panic!("chown: {e}"),
    }
}

#[test]
fn a_file_owned_by_another_user_is_refused_naming_the_owner() {
    let Some((_dir, path)) = owned_by_another_user() else {
        return;
    };
    for (opener, e) in open_errors(&path) {
        assert!(
            matches!(
                e,
                Error::Insecure {
                    why: Insecurity::UntrustedOwner { uid: OTHER_UID },
                    ..
                }
            ),
            "{opener}: {e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("owned by uid 12345"), "{opener}: {text}");
        assert!(text.contains("trust_owner(12345)"), "{opener}: {text}");
    }
    // Trusting someone else does not trust this owner.
    let other = OpenOptions::new().trust_owner(OTHER_UID + 1);
    assert!(matches!(
        RawReader::open_with(&path, &other),
        Err(Error::Insecure {
            why: Insecurity::UntrustedOwner { uid: OTHER_UID },
            ..
        })
    ));
}

#[test]
fn a_trusted_owner_is_accepted_by_readers_and_writers() {
    let Some((_dir, path)) = owned_by_another_user() else {
        return;
    };
    let opts = OpenOptions::new()
        .trust_owner(OTHER_UID + 1)
        .trust_owner(OTHER_UID);
    assert_eq!(
        Reader::<P>::open_with(&path, &opts)
            .unwrap()
            .load()
            .unwrap(),
        VALUE
    );
    RawReader::open_with(&path, &opts).unwrap();
    let mut w = Writer::<P>::open_with(&path, &opts).unwrap();
    w.publish(&[5, 6, 7, 8]);
    // Trust does not waive the mode check: group-writable is still refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    assert!(matches!(
        RawReader::open_with(&path, &opts),
        Err(Error::Insecure {
            why: Insecurity::WritableByOthers { .. },
            ..
        })
    ));
}
