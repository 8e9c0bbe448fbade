//! `mapped-state codegen c`: the generated header compiles cleanly as C11 (`-Wall -Wextra
//! -Werror -pedantic`), its reader reads what the Rust writer writes — under load with zero torn
//! reads, and the same values as `mapped-state inspect --json` at a quiet point — waits on the
//! futex, refuses corrupt files with the error codes the Rust reader's errors correspond to, and
//! the example in the docs is what the generator writes today.
//!
//! These tests need a C compiler (`$CC`, default `cc`): without one they fail, they never skip.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mapped_state::manifest::{Field, Type, TypeKind};
use mapped_state::schema::{fnv1a64, manifest_bytes, Prim};
use mapped_state::{CreateOptions, Error, FixedStr, MappedState, RawReader, Writer};
use mapped_state_cli::codegen_c::{encode_manifest, header_for, header_from_manifest, Options};
use serde_json::Value;

#[path = "../../examples/shared/telemetry.rs"]
mod telemetry;

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Mode {
    Idle = 0,
    Running = 1,
    Stopped = 7,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(i16)]
enum Trend {
    Falling = -1,
    Flat = 0,
    Rising = 1,
}

/// Values beyond `INT_MAX`: C enumeration constants cannot hold them, so they become macros.
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u32)]
enum Wide {
    Small = 1,
    Huge = 4_000_000_000,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Limits {
    min: i16,
    max: f64,
    enabled: bool,
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Sample {
    at: u32,
    level: f32,
}

/// Every kind of field: all integer widths (128-bit too), floats (NaN, infinity), bool, char,
/// enums of three widths (negative and above-INT_MAX discriminants), arrays of numbers, of
/// arrays, of structs and of enums, strings (multi-byte UTF-8, capacity 0), a nested struct,
/// C keywords as names (`short`, `int`, `default`), and a zero-sized field that moves the next
/// one (`gap: [u64; 0]`, so C needs explicit padding before `tail`).
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Every {
    rpm: u32,
    temperature_c: f32,
    uptime_s: u64,
    delta: i64,
    tiny: i8,
    short: u16,
    big: u128,
    debt: i128,
    ratio: f64,
    unknown: f64,
    hot: bool,
    grade: char,
    mode: Mode,
    trend: Trend,
    wide: Wide,
    samples: [f32; 3],
    grid: [[u16; 2]; 2],
    history: [Sample; 2],
    modes: [Mode; 2],
    label: FixedStr<16>,
    nothing: FixedStr<0>,
    limits: Limits,
    int: i32,
    default: u8,
    gap: [u64; 0],
    tail: u8,
}

fn every() -> Every {
    Every {
        rpm: 4_000_000_123,
        temperature_c: 81.5,
        uptime_s: (1 << 53) + 1,
        delta: -9_000_000_000_000_000_001,
        tiny: -128,
        short: 65_535,
        big: u128::MAX - 12_345,
        debt: -170_141_183_460_469_231_731_687_303_715_884_105_727,
        ratio: 0.1,
        unknown: f64::NAN,
        hot: true,
        grade: 'ß',
        mode: Mode::Stopped,
        trend: Trend::Falling,
        wide: Wide::Huge,
        samples: [0.1, f32::INFINITY, -0.0],
        grid: [[1, 2], [3, 65_000]],
        history: [
            Sample { at: 7, level: 1.25 },
            Sample {
                at: 9,
                level: f32::NEG_INFINITY,
            },
        ],
        modes: [Mode::Running, Mode::Idle],
        label: FixedStr::new("µ-engine ✓").unwrap(),
        nothing: FixedStr::EMPTY,
        limits: Limits {
            min: -300,
            max: 1e300,
            enabled: true,
        },
        int: i32::MIN,
        default: 200,
        gap: [],
        tail: 42,
    }
}

#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Phase {
    A = 0,
    B = 1,
    C = 2,
}

/// The load test's payload: every field is a function of the version, so a snapshot mixing two
/// commits shows (2 KiB, so a copy takes long enough for a flat-out writer to lap it).
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Stress {
    stamp: u64,
    words: [u64; 250],
    tag: u32,
    odd: bool,
    mode: Phase,
    label: FixedStr<23>,
}

fn stress_at(v: u64) -> Stress {
    Stress {
        stamp: v,
        words: [v; 250],
        tag: (v as u32).wrapping_mul(2_654_435_761),
        odd: v % 2 == 1,
        mode: [Phase::A, Phase::B, Phase::C][(v % 3) as usize],
        label: FixedStr::new(&format!("v{v}")).unwrap(),
    }
}

/// A top-level array: error paths start with the index (`[1].mode`).
#[derive(MappedState, Clone, Copy, Debug, PartialEq)]
struct Pair {
    on: bool,
    mode: Mode,
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// A directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ms-codegen-c-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_owned())
}

/// The brief's flags, and the conversion and shadowing warnings a strict C project may use: a
/// header-only library must be silent under them too.
const CFLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wconversion",
    "-Wsign-conversion",
    "-Wshadow",
    "-O2",
];

/// Compiles `args` with the strict flags; the test fails with the compiler's output otherwise,
/// and with a clear message when there is no compiler.
fn compile(dir: &Path, args: &[&str]) {
    let out = Command::new(cc())
        .args(CFLAGS)
        .arg("-I")
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{}` ({e}): these tests need one; install a C \
                 compiler (e.g. `apt-get install gcc`) or set CC",
                cc()
            )
        });
    assert!(
        out.status.success(),
        "`{} {} {}` failed:\n{}{}",
        cc(),
        CFLAGS.join(" "),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The C programs, built once per test process from freshly generated headers, in
/// `target/tmp/codegen-c-<pid>` (a static is never dropped, so the directories of earlier runs
/// whose process is gone are removed here instead).
struct Built {
    dir: Scratch,
}

fn build_dir() -> Scratch {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("codegen-c-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = root.join(format!("codegen-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

impl Built {
    fn exe(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = build_dir();
        let write = |name: &str, text: String| std::fs::write(dir.path(name), text).unwrap();
        let gen = |desc, prefix: Option<&str>| {
            header_for(
                desc,
                &Options {
                    prefix: prefix.map(str::to_owned),
                },
            )
            .unwrap()
        };
        write("every.h", gen(Every::TYPE, None));
        write("stress.h", gen(Stress::TYPE, None));
        write("pairs.h", gen(<[Pair; 2]>::TYPE, Some("pairs")));
        let d = dir.0.clone();
        let p = |s: &Path| s.to_str().unwrap().to_owned();
        compile(
            &d,
            &[&p(&c_source("every.c")), "-o", &p(&dir.path("every"))],
        );
        compile(
            &d,
            &[&p(&c_source("stress.c")), "-o", &p(&dir.path("stress"))],
        );
        compile(
            &d,
            &[
                "-include",
                &p(&dir.path("pairs.h")),
                "-DPREFIX=pairs",
                &p(&c_source("probe.c")),
                "-o",
                &p(&dir.path("probe-pairs")),
            ],
        );
        Built { dir }
    })
}

fn run(exe: &Path, args: &[&Path]) -> Output {
    let out = Command::new(exe).args(args).output().unwrap();
    assert!(
        out.status.code().is_some(),
        "{} was killed: {:?}\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn docs_example_is_up_to_date() {
    let header = header_for(telemetry::Telemetry::TYPE, &Options::default()).unwrap();
    let path = repo_file("docs/codegen-c-example.h");
    if std::env::var_os("MAPPED_STATE_BLESS").is_some() {
        std::fs::write(&path, &header).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == header,
        "docs/codegen-c-example.h is not what `mapped-state codegen c` writes for the quickstart's \
         Telemetry: regenerate it with \
         `MAPPED_STATE_BLESS=1 cargo test -p mapped-state-cli --test codegen_c docs_example`"
    );
    // It compiles as it is, with a program that uses every function it declares.
    let dir = Scratch::new("docs");
    let src = dir.path("use.c");
    std::fs::write(
        &src,
        "#include \"codegen-c-example.h\"\n\
         int main(int argc, char **argv) {\n\
             telemetry_reader r;\n telemetry v;\n uint64_t version = 0;\n\
             if (argc < 2 || telemetry_open(&r, argv[1], NULL) != MS_OK) return 1;\n\
             if (telemetry_load(&r, &v, &version) != MS_OK) return 2;\n\
             printf(\"%s %.*s %s\\n\", telemetry_mode_name(v.mode), (int)v.label.len, v.label.bytes,\n\
                    ms_strerror(telemetry_wait(&r, version, 0, &version)));\n\
             printf(\"%llu\\n\", (unsigned long long)telemetry_version(&r));\n\
             telemetry_close(&r);\n return v.mode == TELEMETRY_MODE_RUNNING ? 0 : 3;\n}\n",
    )
    .unwrap();
    compile(
        &repo_file("docs"),
        &[
            src.to_str().unwrap(),
            "-o",
            dir.path("use").to_str().unwrap(),
        ],
    );
    // Also in GNU mode, as C17, and with only POSIX asked for (the last -std wins).
    for extra in ["-std=gnu11", "-std=c17", "-D_POSIX_C_SOURCE=200809L"] {
        compile(
            &repo_file("docs"),
            &[
                extra,
                src.to_str().unwrap(),
                "-o",
                dir.path("use").to_str().unwrap(),
            ],
        );
    }
    // The README's C example compiles against it as written (its statements wrapped in main).
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let section = &readme[readme.find("## Reading from C").expect("README section")..];
    let start = section.find("```c\n").expect("a C example") + 5;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let (include, body) = block.split_once('\n').unwrap();
    assert!(include.starts_with("#include \"engine.h\""), "{include}");
    let program =
        format!("#include \"codegen-c-example.h\"\nint main(void) {{\n{body}return 0;\n}}\n");
    std::fs::write(dir.path("readme.c"), program).unwrap();
    compile(
        &repo_file("docs"),
        &[
            dir.path("readme.c").to_str().unwrap(),
            "-o",
            dir.path("readme").to_str().unwrap(),
        ],
    );
}

#[test]
fn the_command_writes_the_same_header_from_a_file_and_from_a_manifest() {
    let dir = Scratch::new("cmd");
    let file = dir.path("engine.state");
    let t = telemetry::Telemetry {
        rpm: 1,
        temperature_c: 2.0,
        uptime_s: 3,
        mode: telemetry::Mode::Running,
        healthy: true,
        grade: 'A',
        samples: [0.0; 8],
        limits: telemetry::Limits {
            min_rpm: 1,
            max_rpm: 2,
        },
        label: FixedStr::new("x").unwrap(),
    };
    let _w = Writer::create(&file, &t).unwrap();
    let cli = env!("CARGO_BIN_EXE_mapped-state");
    let out = Command::new(cli)
        .args(["codegen", "c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let want = std::fs::read_to_string(repo_file("docs/codegen-c-example.h")).unwrap();
    assert_eq!(
        stdout(&out),
        want,
        "codegen c FILE differs from the docs example"
    );
    // From a raw manifest, into a file, with a prefix.
    let manifest = dir.path("telemetry.msmf");
    std::fs::write(&manifest, manifest_bytes(telemetry::Telemetry::TYPE)).unwrap();
    let header = dir.path("engine.h");
    let out = Command::new(cli)
        .args(["codegen", "c", "--prefix", "engine", "-o"])
        .arg(&header)
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&header).unwrap();
    assert!(text.contains("static inline ms_status engine_load(engine_reader *r, engine *out"));
    assert!(text.contains("ENGINE_MODE_RUNNING = 1"));
    // Errors: a corrupt manifest names its byte (exit 1), a bad prefix, a missing file (3),
    // no input at all (usage, 2).
    let mut bad = manifest_bytes(telemetry::Telemetry::TYPE);
    bad[0] = b'X';
    std::fs::write(&manifest, &bad).unwrap();
    let out = Command::new(cli)
        .args(["codegen", "c", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest byte 0"));
    for (args, code) in [
        (vec!["--prefix", "int"], 1),
        (vec!["--prefix", "9lives"], 1),
        (vec!["--prefix", "ms_x"], 1),
    ] {
        let out = Command::new(cli)
            .args(["codegen", "c"])
            .args(&args)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a C identifier"));
    }
    let out = Command::new(cli)
        .args(["codegen", "c"])
        .arg(dir.path("missing.state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = Command::new(cli).args(["codegen", "c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn re_encoding_a_decoded_manifest_gives_its_bytes() {
    for desc in [
        Every::TYPE,
        Stress::TYPE,
        <[Pair; 2]>::TYPE,
        telemetry::Telemetry::TYPE,
        <u8>::TYPE,
        <[[char; 3]; 2]>::TYPE,
    ] {
        let bytes = manifest_bytes(desc);
        let ty = Type::from_manifest(&bytes).unwrap();
        assert_eq!(encode_manifest(&ty), bytes, "{}", ty.name());
    }
}

/// One line per leaf value, `path=value`, in the C program's notation, from `inspect --json`'s
/// value and the schema.
fn canonical(ty: &Type, v: &Value, path: &str, out: &mut Vec<String>) {
    let float = |v: &Value| -> Option<f64> {
        match v {
            Value::String(s) if s == "NaN" => None,
            Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
            n => Some(
                n.as_f64()
                    .unwrap_or_else(|| panic!("{path}: {n} is not a number")),
            ),
        }
    };
    let line = match &ty.kind {
        TypeKind::Prim(p) => match p {
            Prim::U8 | Prim::U16 | Prim::U32 | Prim::U64 => v.as_u64().unwrap().to_string(),
            Prim::I8 | Prim::I16 | Prim::I32 | Prim::I64 => v.as_i64().unwrap().to_string(),
            Prim::U128 => format!("0x{:032x}", v.as_str().unwrap().parse::<u128>().unwrap()),
            Prim::I128 => format!(
                "0x{:032x}",
                v.as_str().unwrap().parse::<i128>().unwrap() as u128
            ),
            Prim::F32 => float(v).map_or("NaN".into(), |f| {
                format!("f32:{:08x}", (f as f32).to_bits())
            }),
            Prim::F64 => float(v).map_or("NaN".into(), |f| format!("f64:{:016x}", f.to_bits())),
            Prim::Bool => v.as_bool().unwrap().to_string(),
            Prim::Char => format!(
                "U+{:04x}",
                v.as_str().unwrap().chars().next().unwrap() as u32
            ),
        },
        TypeKind::Enum { .. } => v.as_str().unwrap().to_owned(),
        TypeKind::Str { .. } => {
            let hex: String = v
                .as_str()
                .unwrap()
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("str:{hex}")
        }
        TypeKind::Array { elem, .. } => {
            for (i, e) in v.as_array().unwrap().iter().enumerate() {
                canonical(elem, e, &format!("{path}[{i}]"), out);
            }
            return;
        }
        TypeKind::Struct { fields, .. } => {
            for Field { name, ty, .. } in fields {
                let p = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                canonical(ty, &v[&**name], &p, out);
            }
            return;
        }
    };
    out.push(format!("{path}={line}"));
}

#[test]
fn the_c_reader_shows_what_inspect_json_shows() {
    let b = built();
    let dir = Scratch::new("values");
    let file = dir.path("every.state");
    let mut w = Writer::create(&file, &every()).unwrap();
    w.update(|e| e.rpm += 1);
    // A quiet point: the writer lives but commits nothing while both read.
    let json = inspect_json(&file);
    let mut want = vec![format!("version={}", json["version"])];
    let ty = Type::from_desc(Every::TYPE);
    canonical(&ty, &json["value"], "", &mut want);
    let c = run(&b.exe("every"), &[Path::new("dump"), &file]);
    assert!(c.status.success(), "{}", stdout(&c));
    let have: Vec<String> = stdout(&c).lines().map(str::to_owned).collect();
    assert_eq!(have, want, "the C reader and inspect --json disagree");
    assert_eq!(want[0], "version=1");
    assert!(want.iter().any(|l| l == "wide=Huge"), "{want:?}");
    drop(w);
}

/// Runs the C `every open` probe on `file`: its status code and output.
fn probe(exe: &Path, args: &[&Path]) -> (i32, String) {
    let out = stdout(&run(exe, args));
    let code = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("status="))
        .unwrap_or_else(|| panic!("no status in {out}"))
        .parse()
        .unwrap();
    (code, out)
}

/// The C reader's status code for the Rust reader's error (the same list as `ms_status`).
fn code_of(e: &Error) -> i32 {
    match e {
        Error::Io { .. } => 1,
        Error::Insecure { why, .. } => match why {
            mapped_state::Insecurity::Symlink => 2,
            mapped_state::Insecurity::NotRegularFile => 3,
            mapped_state::Insecurity::UntrustedOwner { .. } => 4,
            mapped_state::Insecurity::WritableByOthers { .. } => 5,
            other => panic!("no C code for {other:?}"),
        },
        Error::NotAStateFile { .. } => 7,
        Error::WrongLength { .. } => 8,
        Error::ForeignEndian { .. } => 9,
        Error::UnsupportedVersion { .. } => 10,
        Error::CorruptHeader { .. } => 11,
        Error::CorruptManifest { .. } => 12,
        Error::SchemaMismatch { .. } => 13,
        Error::InvalidValue { .. } => 14,
        other => panic!("no C code for {other}"),
    }
}

fn put64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Recomputes the header checksum, so that a changed field is what the reader meets first.
fn reseal(bytes: &mut [u8]) {
    let sum = fnv1a64(&bytes[..120]);
    put64(bytes, 120, sum);
}

#[test]
fn corrupt_files_give_the_c_readers_error_codes() {
    let b = built();
    let dir = Scratch::new("corrupt");
    let good = dir.path("good.state");
    drop(Writer::create(&good, &every()).unwrap());
    let bytes = std::fs::read(&good).unwrap();
    let r = RawReader::open(&good).unwrap();
    let h = *r.header();
    let slot0 = 256usize;
    let ty = Type::from_desc(Every::TYPE);
    let offset_of = |name: &str| match &ty.kind {
        TypeKind::Struct { fields, .. } => fields.iter().find(|f| &*f.name == name).unwrap().offset,
        _ => unreachable!(),
    };
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, i32)> = vec![
        ("magic", Box::new(|b| b[0] = b'X'), 7),
        ("short", Box::new(|b| b.truncate(100)), 8),
        (
            "endian",
            Box::new(|b| {
                b[12..16].copy_from_slice(&0x0403_0201u32.to_ne_bytes());
                reseal(b)
            }),
            9,
        ),
        (
            "version",
            Box::new(|b| {
                b[8..12].copy_from_slice(&1u32.to_ne_bytes());
                reseal(b)
            }),
            10,
        ),
        (
            "slot_count",
            Box::new(|b| {
                put64(b, 96, 3);
                reseal(b)
            }),
            11,
        ),
        (
            "reserved",
            Box::new(|b| {
                b[110] = 1;
                reseal(b)
            }),
            11,
        ),
        ("checksum", Box::new(|b| b[80] ^= 1), 11),
        ("longer", Box::new(|b| b.push(0)), 8),
        (
            "manifest",
            {
                let at = h.manifest_offset as usize + 20;
                Box::new(move |b| b[at] ^= 0x20)
            },
            12,
        ),
        (
            "bool",
            {
                let at = slot0 + offset_of("hot");
                Box::new(move |b| b[at] = 2)
            },
            14,
        ),
        (
            "char",
            {
                let at = slot0 + offset_of("grade");
                Box::new(move |b| b[at..at + 4].copy_from_slice(&0xD800u32.to_ne_bytes()))
            },
            14,
        ),
        (
            "enum in an array",
            {
                let at = slot0 + offset_of("modes") + 1;
                Box::new(move |b| b[at] = 5)
            },
            14,
        ),
        (
            "nested bool",
            {
                let at = slot0 + offset_of("limits") + 16;
                Box::new(move |b| b[at] = 9)
            },
            14,
        ),
        (
            "string length",
            {
                let at = slot0 + offset_of("label");
                Box::new(move |b| b[at..at + 4].copy_from_slice(&17u32.to_ne_bytes()))
            },
            14,
        ),
        (
            "utf-8",
            {
                let at = slot0 + offset_of("label") + 4;
                Box::new(move |b| b[at + 1] = 0xff)
            },
            14,
        ),
        (
            "wide enum",
            {
                let at = slot0 + offset_of("wide");
                Box::new(move |b| b[at..at + 4].copy_from_slice(&2u32.to_ne_bytes()))
            },
            14,
        ),
    ];
    for (name, patch, want) in &cases {
        let file = dir.path(&format!("{}.state", name.replace(' ', "-")));
        let mut b2 = bytes.clone();
        patch(&mut b2);
        std::fs::write(&file, &b2).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (code, out) = probe(&b.exe("every"), &[Path::new("open"), &file]);
        assert_eq!(code, *want, "{name}: {out}");
        // The Rust reader refuses it with the corresponding error, naming the same place.
        let rust = match RawReader::open(&file) {
            Err(e) => e,
            Ok(r) => {
                let (payload, _) = r.snapshot().unwrap();
                let source = mapped_state::dynamic::validate(r.schema(), &payload).unwrap_err();
                Error::InvalidValue {
                    path: file.clone(),
                    source,
                }
            }
        };
        assert_eq!(
            code_of(&rust),
            code,
            "{name}: rust says {rust}, C says {out}"
        );
        match &rust {
            Error::CorruptHeader { field, offset, .. } => {
                assert!(
                    out.contains(&format!("field={field} offset={offset} ")),
                    "{name}: {rust} vs {out}"
                );
            }
            Error::CorruptManifest { offset, .. } => {
                assert!(
                    out.contains(&format!("offset={offset} ")),
                    "{name}: {rust} vs {out}"
                );
            }
            Error::InvalidValue { source, .. } => {
                assert!(
                    out.contains(&format!("offset={} ", source.offset))
                        && out.contains(&format!("path={}\n", source.field)),
                    "{name}: {rust} vs {out}"
                );
                assert!(
                    out.contains(&format!("expected {}", source.expected)),
                    "{name}: {rust} vs {out}"
                );
            }
            _ => {}
        }
    }

    // Another schema: SCHEMA_MISMATCH, as the typed Rust reader says.
    let other = dir.path("telemetry.state");
    let t = mapped_state::Reader::<Every>::open(&other).unwrap_err();
    assert!(matches!(t, Error::Io { .. }), "{t}");
    drop(Writer::create(&other, &stress_at(3)).unwrap());
    let (code, out) = probe(&b.exe("every"), &[Path::new("open"), &other]);
    assert!(matches!(
        mapped_state::Reader::<Every>::open(&other),
        Err(Error::SchemaMismatch { .. })
    ));
    assert_eq!(code, 13, "{out}");

    // The checks before the header: a missing file, a symlink, a directory, a file others may
    // write.
    let (code, out) = probe(&b.exe("every"), &[Path::new("open"), &dir.path("missing")]);
    assert!(code == 1 && out.contains(&format!("errno={} ", 2)), "{out}");
    let link = dir.path("link.state");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert_eq!(probe(&b.exe("every"), &[Path::new("open"), &link]).0, 2);
    assert_eq!(probe(&b.exe("every"), &[Path::new("open"), &dir.0]).0, 3);
    let shared = dir.path("shared.state");
    std::fs::copy(&good, &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(probe(&b.exe("every"), &[Path::new("open"), &shared]).0, 5);
    // And the good file opens.
    let (code, out) = probe(&b.exe("every"), &[Path::new("open"), &good]);
    assert_eq!(code, 0, "{out}");
}

/// A file truncated after the open (inside its last page, so the lost bytes read as zeros rather
/// than raising SIGBUS): the load fails with MS_E_TRUNCATED instead of returning lost bytes.
#[test]
fn a_file_truncated_under_the_reader_gives_truncated() {
    use std::io::{BufRead, BufReader, Write};
    let b = built();
    let dir = Scratch::new("truncate");
    let file = dir.path("every.state");
    drop(Writer::create(&file, &every()).unwrap());
    let h = *RawReader::open(&file).unwrap().header();
    assert!(h.file_len < 4096, "the whole file is in one page");
    let mut child = Command::new(b.exe("every"))
        .arg("hold")
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(h.manifest_offset)
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let status = lines.next().unwrap().unwrap();
    assert!(status.starts_with("status=15 "), "{status}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_top_level_array_names_the_element_in_errors() {
    let b = built();
    let dir = Scratch::new("pairs");
    let file = dir.path("pairs.state");
    let pairs = [
        Pair {
            on: true,
            mode: Mode::Idle,
        },
        Pair {
            on: false,
            mode: Mode::Running,
        },
    ];
    drop(Writer::create(&file, &pairs).unwrap());
    assert_eq!(probe(&b.exe("probe-pairs"), &[&file]).0, 0);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[256 + 3] = 4; // [1].mode
    std::fs::write(&file, &bytes).unwrap();
    let (code, out) = probe(&b.exe("probe-pairs"), &[&file]);
    assert_eq!(code, 14, "{out}");
    assert!(
        out.contains("offset=3 ") && out.contains("path=[1].mode\n"),
        "{out}"
    );
    assert!(
        out.contains("message=invalid value: field `[1].mode` at payload byte 3 holds [04], expected enum `Mode` (one of Idle = 0, Running = 1, Stopped = 7)"),
        "{out}"
    );
}

#[test]
fn the_c_reader_never_tears_under_a_flat_out_writer() {
    let b = built();
    let dir = Scratch::new("stress");
    let file = dir.path("stress.state");
    // Two slots: a read is disturbed as soon as the writer laps it by one commit.
    let mut w = Writer::create_with(&file, &stress_at(0), &CreateOptions::new().slots(2)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut v = 0;
            // Bounded: stops when the reader is done, or after 10 million commits.
            while !stop.load(Ordering::Relaxed) && v < 10_000_000 {
                v += 1;
                w.publish(&stress_at(v));
            }
            v
        })
    };
    let out = run(
        &b.exe("stress"),
        &[Path::new("load"), &file, Path::new("1500")],
    );
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let stat = |key: &str| -> u64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .parse()
            .unwrap()
    };
    eprintln!("C reader under a flat-out writer ({commits} commits): {text}");
    assert_eq!(stat("torn"), 0, "{text}");
    assert_eq!(stat("backwards"), 0, "{text}");
    assert!(stat("reads") > 0, "{text}");
    // The writer ran during the reads: the reader saw it move on.
    assert!(
        stat("distinct") >= 2 && stat("last") > stat("first"),
        "{text}"
    );
    // At the quiet point after the load, the C reader and `inspect --json` agree on the file.
    let c = run(&b.exe("stress"), &[Path::new("dump"), &file]);
    assert!(c.status.success(), "{}", stdout(&c));
    let json = inspect_json(&file);
    let mut want = vec![format!("version={}", json["version"])];
    canonical(
        &Type::from_desc(Stress::TYPE),
        &json["value"],
        "",
        &mut want,
    );
    let have: Vec<String> = stdout(&c).lines().map(str::to_owned).collect();
    assert_eq!(have, want, "the C reader and inspect --json disagree");
    assert_eq!(want[0], format!("version={commits}"));
}

fn inspect_json(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mapped-state"))
        .args(["inspect", "--json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_c_reader_waits_on_the_futex_until_a_commit_or_the_writer_is_gone() {
    use std::io::{BufRead, BufReader};
    let b = built();
    let dir = Scratch::new("wait");
    let file = dir.path("wait.state");
    let mut w = Writer::create(&file, &stress_at(0)).unwrap();
    w.publish(&stress_at(1));
    let mut child = Command::new(b.exe("stress"))
        .arg("wait")
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("the C program ended early").unwrap();
    assert_eq!(next(), "ready v=1 alive=1");
    // Give it time to fall asleep (not needed for correctness: a commit before the wait begins
    // is seen at once), then commit once.
    std::thread::sleep(Duration::from_millis(100));
    w.publish(&stress_at(2));
    assert_eq!(next(), "woke v=2 loaded=2 consistent=1");
    // No commit for 200 ms, the writer alive: a timeout.
    assert_eq!(next(), "timeout status=17");
    assert_eq!(next(), "ready2");
    drop(w);
    let gone = next();
    assert!(gone.starts_with("gone status=18 alive=0"), "{gone}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_wait_on_a_replaced_file_ends_superseded() {
    use std::io::{BufRead, BufReader};
    let b = built();
    let dir = Scratch::new("superseded");
    let file = dir.path("old.state");
    drop(Writer::create(&file, &stress_at(0)).unwrap());
    let mut child = Command::new(b.exe("stress"))
        .arg("superseded")
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let _new =
        Writer::create_with(&file, &stress_at(5), &CreateOptions::new().replace(true)).unwrap();
    let status = lines.next().unwrap().unwrap();
    assert!(status.starts_with("status=19 "), "{status}");
    assert!(child.wait().unwrap().success());
}

/// Layouts the derive never makes but a manifest may describe (FORMAT.md 6.3): gaps between
/// fields, a struct aligned beyond its fields, a struct of nothing but padding, a zero-sized
/// struct field, names that need escaping or collide once escaped, two different structs with
/// one name. The header must still compile with its layout assertions.
#[test]
fn unusual_manifests_give_headers_that_compile() {
    let prim = |p: Prim| Type {
        kind: TypeKind::Prim(p),
        size: Prim::size(p),
        align: Prim::size(p),
    };
    let field = |name: &str, offset: usize, ty: Type| Field {
        name: name.into(),
        offset,
        ty,
    };
    let strukt = |name: &str, size: usize, align: usize, fields: Vec<Field>| Type {
        kind: TypeKind::Struct {
            name: name.into(),
            fields,
        },
        size,
        align,
    };
    let padded = strukt("Inner", 16, 16, vec![field("x", 4, prim(Prim::U8))]);
    let other_inner = strukt("Inner", 4, 4, vec![field("y", 0, prim(Prim::F32))]);
    let blank = strukt("Blank", 8, 8, vec![]);
    let empty = strukt("Empty", 0, 1, vec![]);
    let top = strukt(
        "weird Name*/??=",
        96,
        32,
        vec![
            field("a b", 0, prim(Prim::U8)),
            field("a_b", 2, prim(Prim::U16)),
            field("int", 8, prim(Prim::U64)),
            field("linux", 16, padded),
            field("9lives", 32, other_inner),
            field("empty", 36, empty),
            field("__x", 40, blank),
            field("ü", 48, prim(Prim::I128)),
            field("ms_pad_0", 64, prim(Prim::Bool)),
        ],
    );
    let manifest = encode_manifest(&top);
    Type::from_manifest(&manifest).expect("a valid manifest");
    let header = header_from_manifest(&manifest, &Options::default()).unwrap();
    let dir = Scratch::new("weird");
    // Type names that are libc names get a prefix that is not (`stat` is a struct and a
    // function of <sys/stat.h>, `shm_open` a function of <sys/mman.h>).
    for (name, prefix) in [
        ("Stat", "stat_state"),
        ("Shm", "shm_state"),
        ("Ms", "ms_state"),
    ] {
        let ty = strukt(name, 8, 8, vec![field("open", 0, prim(Prim::U64))]);
        let h = header_from_manifest(&encode_manifest(&ty), &Options::default()).unwrap();
        assert!(h.contains(&format!("typedef struct {prefix} {{")), "{name}");
        let src = format!("{prefix}.c");
        std::fs::write(dir.path(&format!("{prefix}.h")), h).unwrap();
        std::fs::write(
            dir.path(&src),
            format!(
                "#include \"{prefix}.h\"\nint main(void) {{ {prefix}_reader r; \
                 return {prefix}_open(&r, \"x\", NULL) == MS_OK; }}\n"
            ),
        )
        .unwrap();
        compile(
            &dir.0,
            &[
                dir.path(&src).to_str().unwrap(),
                "-o",
                dir.path("a.out").to_str().unwrap(),
            ],
        );
    }
    std::fs::write(dir.path("weird.h"), &header).unwrap();
    std::fs::write(
        dir.path("weird.c"),
        "#include \"weird.h\"\nint main(void) { weird_name w; (void)w; return 0; }\n",
    )
    .unwrap();
    // Two generated headers in one translation unit share the runtime.
    std::fs::write(
        dir.path("two.h"),
        header_for(Stress::TYPE, &Options::default()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path("both.c"),
        "#include \"weird.h\"\n#include \"two.h\"\nint main(void) { return (int)sizeof(stress) == 0; }\n",
    )
    .unwrap();
    let d = dir.0.clone();
    for src in ["weird.c", "both.c"] {
        compile(
            &d,
            &[
                dir.path(src).to_str().unwrap(),
                "-o",
                dir.path("a.out").to_str().unwrap(),
            ],
        );
    }
    assert!(header.contains("_Alignas(32)"), "{header}");
    assert!(header.contains("ms_pad_"), "{header}");
}

/// A small deterministic generator of valid manifests: nested structs (C layout, sometimes with
/// gaps and extra alignment), enums of every representation (repeated names and values),
/// strings, arrays (empty ones too), every primitive, and names that are keywords, macros,
/// non-ASCII or equal once escaped.
struct Schemas(u64);

impl Schemas {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    fn name(&mut self) -> String {
        const POOL: &[&str] = &[
            "a", "int", "a b", "a_b", "linux", "9x", "ü", "default", "ms_pad_0", "x*/y", "q??=",
            "Mode", "T", "Open", "Stat", "errno", "value", "Inner",
        ];
        POOL[self.next(POOL.len() as u64) as usize].to_owned()
    }

    fn ty(&mut self, depth: usize) -> Type {
        let prim = |p: Prim| Type {
            kind: TypeKind::Prim(p),
            size: p.size(),
            align: p.size(),
        };
        match self.next(if depth >= 3 { 4 } else { 6 }) {
            0 | 3 => prim(Prim::ALL[self.next(14) as usize]),
            1 => {
                let reprs = [
                    Prim::U8,
                    Prim::U16,
                    Prim::U32,
                    Prim::I8,
                    Prim::I16,
                    Prim::I32,
                ];
                let repr = reprs[self.next(6) as usize];
                let bits = 8 * repr.size() as u32;
                let (lo, hi): (i64, i64) = if matches!(repr, Prim::U8 | Prim::U16 | Prim::U32) {
                    (0, (1i64 << bits) - 1)
                } else {
                    (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
                };
                let variants: Vec<(std::sync::Arc<str>, i64)> = (0..1 + self.next(4))
                    .map(|_| {
                        let v = match self.next(4) {
                            0 => lo,
                            1 => hi,
                            _ => self.next(3) as i64,
                        };
                        (self.name().into(), v)
                    })
                    .collect();
                Type {
                    kind: TypeKind::Enum {
                        name: self.name().into(),
                        repr,
                        variants: variants.into(),
                    },
                    size: repr.size(),
                    align: repr.size(),
                }
            }
            2 => {
                let cap = [0, 1, 5, 16][self.next(4) as usize];
                Type {
                    kind: TypeKind::Str { cap },
                    size: (4 + cap).div_ceil(4) * 4,
                    align: 4,
                }
            }
            4 => {
                let elem = self.ty(depth + 1);
                let len = [0, 1, 3][self.next(3) as usize];
                Type {
                    size: elem.size * len,
                    align: elem.align,
                    kind: TypeKind::Array {
                        elem: Box::new(elem),
                        len,
                    },
                }
            }
            _ => self.strukt(depth),
        }
    }

    fn strukt(&mut self, depth: usize) -> Type {
        let mut fields: Vec<Field> = Vec::new();
        let (mut end, mut align) = (0usize, 1usize);
        for i in 0..self.next(5) {
            let ty = self.ty(depth + 1);
            let mut name = self.name();
            if fields.iter().any(|f| *f.name == *name) {
                name = format!("{name}{i}");
            }
            let gap = if self.next(4) == 0 { ty.align } else { 0 };
            let offset = (end + gap).div_ceil(ty.align) * ty.align;
            end = offset + ty.size;
            align = align.max(ty.align);
            fields.push(Field {
                name: name.into(),
                offset,
                ty,
            });
        }
        if self.next(5) == 0 {
            align = (align * 2).min(64);
        }
        let size = (end + if self.next(4) == 0 { 1 } else { 0 }).div_ceil(align) * align;
        Type {
            kind: TypeKind::Struct {
                name: self.name().into(),
                fields,
            },
            size,
            align,
        }
    }
}

#[test]
fn generated_schemas_give_headers_that_compile_together() {
    let dir = Scratch::new("random");
    let mut gen = Schemas(0x5eed);
    let mut main = String::new();
    let mut count = 0;
    // What the schemas must have exercised between them.
    let marks = [
        "_Alignas(",
        "ms_pad_",
        "u) /* ",
        "zero-sized",
        "ms_str_0",
        "_2 ",
        "int_",
    ];
    let mut seen = [false; 7];
    while count < 40 {
        let ty = gen.strukt(0);
        if ty.size == 0 {
            continue;
        }
        let manifest = encode_manifest(&ty);
        Type::from_manifest(&manifest).unwrap_or_else(|e| panic!("{e:?}: {ty:?}"));
        let prefix = format!("r{count}");
        let header = header_from_manifest(
            &manifest,
            &Options {
                prefix: Some(prefix.clone()),
            },
        )
        .unwrap();
        for (i, mark) in marks.iter().enumerate() {
            seen[i] |= header.contains(mark);
        }
        std::fs::write(dir.path(&format!("{prefix}.h")), header).unwrap();
        main.push_str(&format!("#include \"{prefix}.h\"\n"));
        count += 1;
    }
    for (mark, seen) in marks.iter().zip(seen) {
        assert!(seen, "no generated schema exercised `{mark}`");
    }
    main.push_str("int main(void) {\n    size_t n = 0;\n");
    for i in 0..count {
        main.push_str(&format!(
            "    {{ static r{i} v; ms_error e; n += sizeof v + (r{i}_validate(&v, &e) == MS_OK); }}\n"
        ));
    }
    main.push_str("    return n == 0;\n}\n");
    std::fs::write(dir.path("all.c"), main).unwrap();
    compile(
        &dir.0,
        &[
            dir.path("all.c").to_str().unwrap(),
            "-o",
            dir.path("all").to_str().unwrap(),
        ],
    );
    let out = Command::new(dir.path("all")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}
