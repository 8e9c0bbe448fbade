//! Opening, validating, decoding, diffing and rendering hand-made hostile files costs memory
//! linear in the file: every operation's peak heap, measured by a counting global allocator (in
//! this test binary of its own), stays within 16 times the file plus a constant.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mapped_state::{dynamic, Error, OpenOptions, RawReader, Reader, Writer};

#[path = "../fuzz/corpus.rs"]
mod corpus;
#[path = "../fuzz/counting.rs"]
mod counting;
#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;

use corpus::Hostile;
use counting::peak_of;
use telemetry::Telemetry;

/// One measurement at a time: the counters are global, and tests run on several threads.
static MEASURING: Mutex<()> = Mutex::new(());

/// Holds the measuring lock for a whole test: anything another test allocates meanwhile would
/// count against the operation measured.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(|e| e.into_inner())
}

/// What any operation on a file of `len` bytes may use: 16 times the file, plus the decoder's
/// fixed allowance (`dynamic::DECODE_BASE`) and 4 MiB for everything else.
fn bound(len: usize) -> usize {
    16 * len + dynamic::DECODE_BASE + (4 << 20)
}

/// A scratch directory removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ms-bounded-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn write(&self, h: &Hostile) -> PathBuf {
        let p = self.0.join("f.state");
        std::fs::write(&p, &h.bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs every operation the library and the CLI offer on `h`, checking each one's peak heap;
/// returns the open error, if the file is refused.
fn every_operation_is_bounded(h: &Hostile) -> Option<Error> {
    let dir = Scratch::new(&h.name.replace(' ', "-"));
    let path = dir.write(h);
    let limit = bound(h.bytes.len());
    let check = |what: &str, used: usize| {
        assert!(
            used <= limit,
            "{}: {what} used {used} bytes of heap for a {}-byte file (bound {limit})",
            h.name,
            h.bytes.len()
        );
    };
    let (opened, used) = peak_of(|| RawReader::open_with(&path, &OpenOptions::new()));
    check("RawReader::open", used);
    let r = match opened {
        Ok(r) => r,
        Err(e) => return Some(e),
    };
    let (payload, used) = peak_of(|| r.snapshot().unwrap().0);
    check("snapshot", used);
    let (valid, used) = peak_of(|| dynamic::validate(r.schema(), &payload));
    check("dynamic::validate", used);
    assert_eq!(valid, Ok(()), "{}", h.name);
    let (_, used) = peak_of(|| drop(dynamic::decode(r.schema(), &payload)));
    check("dynamic::decode", used);
    for json in [false, true] {
        let (_, used) = peak_of(|| {
            let _ = mapped_state_cli::inspect::report(
                &path,
                &OpenOptions::new(),
                json,
                &mut std::io::sink(),
            );
        });
        check(if json { "inspect --json" } else { "inspect" }, used);
    }
    let (diff, used) = peak_of(|| {
        r.schema().diff(&mapped_state::manifest::Type::from_desc(
            <Telemetry as mapped_state::MappedState>::TYPE,
        ))
    });
    check("Type::diff", used);
    assert!(
        diff.len() <= mapped_state::manifest::MAX_DIFFERENCES + 1,
        "{}",
        h.name
    );
    let (typed, used) = peak_of(|| Reader::<Telemetry>::open(&path).map(drop));
    check("Reader::<Telemetry>::open", used);
    let (typed_writer, used) = peak_of(|| Writer::<Telemetry>::open(&path).map(drop));
    check("Writer::<Telemetry>::open", used);
    for typed in [typed, typed_writer] {
        match typed {
            Err(Error::SchemaMismatch { differences, .. }) => {
                assert!(differences.len() <= mapped_state::manifest::MAX_DIFFERENCES + 1)
            }
            other => panic!("{}: opened as Telemetry: {other:?}", h.name),
        }
    }
    None
}

/// Checks a refused file's error: a manifest error at a byte inside the manifest.
fn refused_with(h: &Hostile, words: &str) {
    match every_operation_is_bounded(h) {
        Some(Error::CorruptManifest { reason, offset, .. }) => {
            assert!(reason.contains(words), "{}: {reason}", h.name);
            assert!(offset < h.bytes.len(), "{}: offset {offset}", h.name);
        }
        other => panic!("{}: expected a manifest error, got {other:?}", h.name),
    }
}

#[test]
fn names_are_shared_not_copied_per_element() {
    let _one = serial();
    // 1,024 elements naming a 65,535-byte field: 64 MiB if names are copied per element.
    assert!(every_operation_is_bounded(&corpus::long_names(1 << 10)).is_none());
}

#[test]
fn deep_nesting_is_held_to_the_byte_budget() {
    let _one = serial();
    // 16,384 bytes, each under 31 structs: ~40 MiB of tree; the decoder refuses at its budget.
    let h = corpus::deep_nesting(1 << 14);
    assert!(every_operation_is_bounded(&h).is_none());
    let dir = Scratch::new("deep-decode");
    let r = RawReader::open(dir.write(&h)).unwrap();
    let e = dynamic::decode(r.schema(), &r.snapshot().unwrap().0).unwrap_err();
    assert!(e.expected.contains("decoded value of at most"), "{e}");
}

#[test]
fn zero_sized_values_cost_nothing_to_check_and_render() {
    let _one = serial();
    assert!(every_operation_is_bounded(&corpus::zero_sized_arrays()).is_none());
}

#[test]
fn many_variants_and_fields_stay_linear() {
    let _one = serial();
    assert!(every_operation_is_bounded(&corpus::many_variants(90_000, 1 << 16)).is_none());
    assert!(every_operation_is_bounded(&corpus::many_fields(45_000)).is_none());
}

#[test]
fn a_mismatched_type_lists_a_bounded_diff() {
    let _one = serial();
    // Every leaf path starts with a 65,535-byte name: 256 MiB if all paths are built first.
    let h = corpus::long_prefixed_fields(4_000);
    assert!(every_operation_is_bounded(&h).is_none());
    let dir = Scratch::new("long-diff");
    let Err(Error::SchemaMismatch { differences, .. }) = Reader::<Telemetry>::open(dir.write(&h))
    else {
        panic!("opened as the wrong type");
    };
    // Told from the reader's side: Telemetry's 9 top-level fields, which the file lacks. The
    // file's fields Telemetry does not read are listed only with `exact_schema`, names shortened.
    assert_eq!(differences.len(), 9, "{differences:?}");
    assert!(differences.iter().all(|d| d.len() < 300), "{differences:?}");
    let Err(Error::SchemaMismatch { differences, .. }) = Reader::<Telemetry>::open_with(
        dir.write(&h),
        &mapped_state::OpenOptions::new().exact_schema(true),
    ) else {
        panic!("opened as the wrong type");
    };
    // Telemetry's 9 fields, and the file's one top-level field (whose name is 65,535 bytes).
    assert_eq!(differences.len(), 10, "{differences:?}");
    assert!(
        differences.iter().all(|d| d.len() < 1300),
        "a line is too long"
    );
    assert!(differences[9].contains("...(") && differences[9].ends_with("does not read"));
}

#[test]
fn duplicated_and_overlapping_fields_are_refused() {
    let _one = serial();
    refused_with(&corpus::duplicated_names(45_000), "appears twice");
    refused_with(&corpus::overlapping_fields(), "overlaps");
}

#[test]
fn an_ordinary_file_renders_in_full() {
    let _one = serial();
    let h = corpus::ordinary();
    assert!(every_operation_is_bounded(&h).is_none());
    let dir = Scratch::new("ordinary");
    let path = dir.write(&h);
    let mut text = Vec::new();
    mapped_state_cli::inspect::report(&path, &OpenOptions::new(), false, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("  pts[3].y  i16"), "{text}");
    assert!(text.contains("\"hello\""), "{text}");
    assert!(!text.contains("output stops here"), "{text}");
}

#[test]
fn long_names_render_without_panicking_and_are_cut_off() {
    let _one = serial();
    let h = corpus::long_names(256);
    let dir = Scratch::new("long-text");
    let path: &Path = &dir.write(&h);
    let mut text = Vec::new();
    mapped_state_cli::inspect::report(path, &OpenOptions::new(), false, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    // Each line holds the 65,535-byte field name; the budget shows some lines, then says so.
    assert!(text.lines().any(|l| l.len() > 65_535), "no long line");
    assert!(text.contains("output stops here"), "not cut off");
    let e = mapped_state_cli::inspect::report(path, &OpenOptions::new(), true, &mut Vec::new())
        .unwrap_err();
    assert!(format!("{e:?}").contains("would exceed"), "{e:?}");
}
