//! `mapped-state codegen c`: a C11 header for a schema — the payload as a C struct whose offsets,
//! size and alignment are `_Static_assert`ed, and a header-only reader that opens and validates a
//! state file (docs/FORMAT.md 3.1, 3.2), takes consistent snapshots by the ring protocol (9.3),
//! validates values (10) and waits on the futex (9.10).
//!
//! The schema comes from a state file's manifest (`codegen c FILE`), from a raw manifest
//! (`codegen c --manifest FILE`, the bytes `mapped_state::schema::manifest_bytes(T::TYPE)`
//! gives), or, from Rust, from a type: [`header_for`]. There is no `--type NAME`: a Rust type
//! exists only inside a compiled program, and the command has none of the user's types.
//!
//! Naming (C has one global namespace, so every generated name carries the prefix, by default
//! the top-level type's name in snake case, `telemetry` for `Telemetry`):
//! - the payload is `struct telemetry` (typedef `telemetry`); nested structs and enums are
//!   `telemetry_limits`, `telemetry_mode`; a non-struct payload is wrapped in a struct with one
//!   member, `value`;
//! - an enum is its integer representation (`typedef uint8_t telemetry_mode`) with one constant
//!   per variant (`TELEMETRY_MODE_RUNNING`) and `telemetry_mode_name(v)`;
//! - `bool` is C `bool` (validated before it is read as one), `char` a `uint32_t`, `u128` /
//!   `i128` the runtime's `ms_u128` / `ms_i128` (two 64-bit halves, aligned to 16: ISO C has no
//!   128-bit integer), `FixedStr<N>` the runtime's `ms_str_N { uint32_t len; char bytes[N]; }`
//!   (not NUL-terminated);
//! - field names that are C keywords or common macros (`int`, `default`, `errno`, `linux`...)
//!   get a trailing `_`; other characters than ASCII letters, digits and `_` become `_`; names
//!   made equal by this get `_2`, `_3`... The field paths in error messages keep the schema's
//!   names.
//! - zero-sized fields (`[u32; 0]`, empty structs) have no C member (ISO C has no zero-sized
//!   members); their alignment is kept with `_Alignas`. A manifest whose layout has gaps (it need
//!   not be exactly the C layout, FORMAT.md 6.3) gets explicit `ms_pad_N` members.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use mapped_state::manifest::{ManifestError, Type, TypeKind};
use mapped_state::schema::{fnv1a64, manifest_bytes, Prim, TypeDesc};
use mapped_state::OpenOptions;

use crate::exit::{Exit, INVALID, IO};

/// The reader runtime every generated header carries (guarded, so several headers can share one
/// translation unit).
const RUNTIME: &str = include_str!("codegen_c/runtime.h");

/// `mapped-state codegen`: write code that reads a schema from another language.
#[derive(Debug, clap::Subcommand)]
pub enum Codegen {
    /// Write a C11 header for a state file's schema: the payload as a struct with
    /// `_Static_assert`ed offsets and size, and a header-only reader (open + validate,
    /// consistent snapshots, waiting on the futex).
    C(CArgs),
}

/// Arguments of `mapped-state codegen c`.
#[derive(Debug, clap::Args)]
pub struct CArgs {
    /// A state file holding the schema (only its header and manifest are used).
    #[arg(required_unless_present = "manifest", conflicts_with = "manifest")]
    pub file: Option<PathBuf>,
    /// Read the schema from a file holding a raw manifest instead (the bytes
    /// `mapped_state::schema::manifest_bytes(T::TYPE)` gives, e.g. written by a build script).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Prefix of every generated C name (default: the top-level type's name in snake case).
    #[arg(long, value_name = "NAME")]
    pub prefix: Option<String>,
    /// Write the header to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Open a state file that group or other users may write.
    #[arg(long)]
    pub allow_shared_writable: bool,
    /// Also open a state file owned by user UID (repeatable).
    #[arg(long, value_name = "UID")]
    pub trust_owner: Vec<u32>,
}

impl Codegen {
    /// Runs the command.
    pub fn run(&self) -> Result<(), Exit> {
        match self {
            Codegen::C(args) => run_c(args),
        }
    }
}

fn run_c(args: &CArgs) -> Result<(), Exit> {
    let opts = Options {
        prefix: args.prefix.clone(),
    };
    let (source, text) = match (&args.file, &args.manifest) {
        (Some(file), _) => {
            let open = args.trust_owner.iter().fold(
                OpenOptions::new().allow_shared_writable(args.allow_shared_writable),
                |o, &uid| o.trust_owner(uid),
            );
            let r = crate::inspect::open(file, &open)?;
            let manifest = encode_manifest(r.schema());
            // The manifest is stored once and never changes; re-encoding the decoded tree gives
            // its bytes back (the encoding has no slack), which the schema hash confirms.
            if fnv1a64(&manifest) != r.header().schema_hash {
                return Err(Exit::about(
                    INVALID,
                    file,
                    "the re-encoded manifest does not hash to the file's schema hash",
                ));
            }
            (file.as_path(), header_from_manifest(&manifest, &opts))
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| Exit::about(IO, path, e))?;
            (path.as_path(), header_from_manifest(&bytes, &opts))
        }
        (None, None) => unreachable!("clap requires FILE or --manifest"),
    };
    let text = text.map_err(|e| Exit::about(INVALID, source, e))?;
    match &args.output {
        Some(out) => std::fs::write(out, text).map_err(|e| Exit::about(IO, out, e)),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Options of the generator.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Prefix of every generated name; `None`: the top-level type's name in snake case
    /// (`state` when the payload is not a struct or enum).
    pub prefix: Option<String>,
}

/// Why no header was generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodegenError {
    /// The manifest does not decode.
    Manifest(ManifestError),
    /// `--prefix` is not usable as the start of C identifiers.
    Prefix(String),
    /// The type has no bytes: no state file can hold it (a payload is at least 1 byte) and ISO
    /// C has no empty struct.
    ZeroSized(String),
}

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodegenError::Manifest(e) => write!(
                f,
                "corrupt schema manifest at manifest byte {}: {}",
                e.offset, e.reason
            ),
            CodegenError::Prefix(p) => write!(
                f,
                "prefix `{}` is not a C identifier free to use (ASCII letters, digits and `_`, \
                 starting with a letter; not a keyword, a libc name or `ms_...`)",
                crate::exit::one_line(p)
            ),
            CodegenError::ZeroSized(name) => write!(
                f,
                "type `{}` has no bytes: no state file can hold it",
                crate::exit::one_line(name)
            ),
        }
    }
}

impl std::error::Error for CodegenError {}

/// The C header for the type `desc` describes (`T::TYPE` of a `#[derive(MappedState)]` type):
/// what `mapped-state codegen c` prints for a file holding a `T`.
pub fn header_for(desc: &TypeDesc, opts: &Options) -> Result<String, CodegenError> {
    header_from_manifest(&manifest_bytes(desc), opts)
}

/// The C header for the schema whose manifest is `manifest` (FORMAT.md 6.1), decoded and
/// validated first.
pub fn header_from_manifest(manifest: &[u8], opts: &Options) -> Result<String, CodegenError> {
    let ty = Type::from_manifest(manifest).map_err(CodegenError::Manifest)?;
    if ty.size == 0 {
        return Err(CodegenError::ZeroSized(ty.name()));
    }
    let prefix = match &opts.prefix {
        Some(p) => {
            let ok = p.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && prefix_free(p);
            if !ok {
                return Err(CodegenError::Prefix(p.clone()));
            }
            p.clone()
        }
        None => match &ty.kind {
            TypeKind::Struct { name, .. } | TypeKind::Enum { name, .. } => {
                let s = snake(name);
                if prefix_free(&s) {
                    s
                } else {
                    format!("{s}_state")
                }
            }
            _ => "state".to_owned(),
        },
    };
    Ok(Gen::new(prefix).header(&ty, manifest))
}

/// The manifest bytes of `ty` (FORMAT.md 6.1): the inverse of `Type::from_manifest`.
pub fn encode_manifest(ty: &Type) -> Vec<u8> {
    let mut out = b"MSMF\x01".to_vec();
    put_u32(&mut out, ty.size);
    put_u32(&mut out, ty.align);
    encode_type(ty, &mut out);
    out
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    // A decoded manifest's sizes, counts and offsets came from u32s.
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_type(ty: &Type, out: &mut Vec<u8>) {
    match &ty.kind {
        TypeKind::Prim(p) => out.push(*p as u8),
        TypeKind::Enum {
            name,
            repr,
            variants,
        } => {
            out.push(0x20);
            put_str(out, name);
            out.push(*repr as u8);
            put_u32(out, variants.len());
            for (n, v) in variants.iter() {
                put_str(out, n);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        TypeKind::Array { elem, len } => {
            out.push(0x21);
            put_u32(out, *len);
            encode_type(elem, out);
        }
        TypeKind::Str { cap } => {
            out.push(0x22);
            put_u32(out, *cap);
        }
        TypeKind::Struct { name, fields } => {
            out.push(0x23);
            put_str(out, name);
            put_u32(out, ty.size);
            put_u32(out, ty.align);
            put_u32(out, fields.len());
            for f in fields {
                put_str(out, &f.name);
                put_u32(out, f.offset);
                encode_type(&f.ty, out);
            }
        }
    }
}

/// Keywords of C11 and C23, and macros of the headers the runtime includes (or that compilers
/// predefine) that could stand where a member name does.
const RESERVED: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "alignas",
    "alignof",
    "bool",
    "constexpr",
    "false",
    "nullptr",
    "static_assert",
    "thread_local",
    "true",
    "typeof",
    "typeof_unqual",
    "noreturn",
    "complex",
    "imaginary",
    "asm",
    "errno",
    "stdin",
    "stdout",
    "stderr",
    "assert",
    "offsetof",
    "linux",
    "unix",
    "i386",
    "st_atime",
    "st_mtime",
    "st_ctime",
    "st_atim",
    "st_mtim",
    "st_ctim",
];

/// Names the runtime's headers declare (or their prefixes) that a type's name could plausibly
/// turn into a prefix: the payload's typedef is the prefix itself, the functions and nested types
/// are `prefix_*`, so none may meet a libc name (`stat`, `time`, `shm_open`, `uint8_t`...).
const LIBC: &[&str] = &[
    "ms",
    "stat",
    "time",
    "clock",
    "open",
    "close",
    "read",
    "write",
    "sync",
    "link",
    "pipe",
    "select",
    "signal",
    "kill",
    "div",
    "ldiv",
    "lldiv",
    "tm",
    "timespec",
    "timeval",
    "exit",
    "abort",
    "free",
    "malloc",
    "calloc",
    "realloc",
    "rand",
    "random",
    "system",
    "remove",
    "rename",
    "access",
    "alarm",
    "pause",
    "sleep",
    "nice",
    "fork",
    "dup",
    "chdir",
    "chown",
    "chmod",
    "mkdir",
    "umask",
    "truncate",
    "environ",
    "timezone",
    "daylight",
    "tzname",
    "file",
    "fpos",
    "printf",
    "puts",
    "gets",
    "getline",
    "fopen",
    "fclose",
    "mmap",
    "munmap",
    "syscall",
    "shm",
    "sem",
    "mq",
    "posix",
    "pthread",
    "sched",
    "str",
    "mem",
    "atomic",
    "memory",
    "int",
    "uint",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "intptr",
    "uintptr",
    "intmax",
    "uintmax",
    "int_least8",
    "int_least16",
    "int_least32",
    "int_least64",
    "uint_least8",
    "uint_least16",
    "uint_least32",
    "uint_least64",
    "int_fast8",
    "int_fast16",
    "int_fast32",
    "int_fast64",
    "uint_fast8",
    "uint_fast16",
    "uint_fast32",
    "uint_fast64",
    "size",
    "ssize",
    "off",
    "pid",
    "uid",
    "gid",
    "mode",
    "dev",
    "ino",
    "nlink",
    "blksize",
    "blkcnt",
    "clockid",
    "timer",
    "va",
    "max_align",
    "ptrdiff",
    "wchar",
    "sig",
    "errno",
    "fd",
    "std",
    "get",
    "set",
    "lstat",
    "fstat",
    "mknod",
    "utime",
    "unlink",
    "rmdir",
    "getpid",
    "sigset",
    "fd_set",
    "lseek",
    "pread",
    "pwrite",
    "ftruncate",
    "nanosleep",
    "strtol",
];

/// Whether `p` can prefix every generated name without meeting a C keyword, the runtime's
/// `ms_` names or a libc name.
fn prefix_free(p: &str) -> bool {
    let lower = p.to_ascii_lowercase();
    !RESERVED.contains(&p) && !LIBC.contains(&lower.as_str()) && !lower.starts_with("ms_")
}

/// A member name for a schema name (see the module docs).
fn member_ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push_str("field");
    }
    let b = s.as_bytes();
    if b[0].is_ascii_digit()
        || (b[0] == b'_' && b.len() > 1 && (b[1] == b'_' || b[1].is_ascii_uppercase()))
    {
        s.insert_str(0, "f_");
    }
    if RESERVED.contains(&s.as_str()) || s.starts_with("ms_pad_") {
        s.push('_');
    }
    s
}

/// `HttpServer` -> `http_server`; other characters than ASCII letters and digits become `_`.
fn snake(name: &str) -> String {
    let mut s = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            s.push(c);
            prev_lower = true;
        } else {
            s.push('_');
            prev_lower = false;
        }
    }
    let mut out = String::new();
    for part in s.split('_').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(part);
    }
    if out.is_empty() || out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, 't');
    }
    out
}

/// A C string literal of `s`: printable ASCII as is, everything else (and `"`, `\`, `?`, which
/// could form a trigraph) escaped in octal.
fn c_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' | b'?' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

/// `s` made safe inside a `/* */` comment: control characters escaped, no `*/`, no trigraph.
fn comment(s: &str) -> String {
    crate::exit::one_line(s)
        .replace("*/", "* /")
        .replace("??", "? ?")
}

/// The C type of a primitive.
fn prim_c(p: Prim) -> &'static str {
    match p {
        Prim::U8 => "uint8_t",
        Prim::U16 => "uint16_t",
        Prim::U32 | Prim::Char => "uint32_t",
        Prim::U64 => "uint64_t",
        Prim::U128 => "ms_u128",
        Prim::I8 => "int8_t",
        Prim::I16 => "int16_t",
        Prim::I32 => "int32_t",
        Prim::I64 => "int64_t",
        Prim::I128 => "ms_i128",
        Prim::F32 => "float",
        Prim::F64 => "double",
        Prim::Bool => "bool",
    }
}

/// Whether a value of `ty` has invalid bit patterns (so a snapshot must be validated).
fn needs_check(ty: &Type) -> bool {
    ty.size > 0
        && match &ty.kind {
            TypeKind::Prim(p) => matches!(p, Prim::Bool | Prim::Char),
            TypeKind::Enum { .. } | TypeKind::Str { .. } => true,
            TypeKind::Array { elem, len } => *len > 0 && needs_check(elem),
            TypeKind::Struct { fields, .. } => fields.iter().any(|f| needs_check(&f.ty)),
        }
}

/// The generator's state: names taken, types already defined, and the text so far.
struct Gen {
    prefix: String,
    /// Every global C name generated (types, functions, constants).
    names: HashSet<String>,
    /// The next suffix to try per base name (see `unique_in`).
    next: HashMap<String, usize>,
    /// Structs and enums defined so far, by their manifest encoding: C name.
    types: HashMap<Vec<u8>, String>,
    /// `FixedStr` capacities used.
    strs: BTreeSet<usize>,
    /// Type definitions and their checks, in dependency order.
    defs: String,
}

impl Gen {
    fn new(prefix: String) -> Self {
        let mut names = HashSet::new();
        for suffix in [
            "",
            "_reader",
            "_open",
            "_load",
            "_wait",
            "_close",
            "_validate",
            "_version",
        ] {
            names.insert(format!("{prefix}{suffix}"));
        }
        let upper = prefix.to_ascii_uppercase();
        for suffix in [
            "_SCHEMA_HASH",
            "_SIZE",
            "_ALIGN",
            "_MANIFEST_LEN",
            "_MAPPED_STATE_H",
        ] {
            names.insert(format!("{upper}{suffix}"));
        }
        Gen {
            prefix,
            names,
            next: HashMap::new(),
            types: HashMap::new(),
            strs: BTreeSet::new(),
            defs: String::new(),
        }
    }

    /// `base`, or `base_2`, `base_3`... whichever is free; taken from then on.
    fn unique(&mut self, base: String) -> String {
        unique_in(&mut self.names, &mut self.next, base)
    }

    /// The C spelling of `ty` with declarator `decl` (`uint32_t rpm`, `float samples[8]`),
    /// defining the types it needs first.
    fn declare(&mut self, ty: &Type, decl: &str) -> String {
        match &ty.kind {
            TypeKind::Array { elem, len } => self.declare(elem, &format!("{decl}[{len}]")),
            _ => format!("{} {decl}", self.type_name(ty)),
        }
    }

    /// The C name of a non-array type, defining it when it is a struct, enum or string.
    fn type_name(&mut self, ty: &Type) -> String {
        match &ty.kind {
            TypeKind::Prim(p) => prim_c(*p).to_owned(),
            TypeKind::Str { cap } => {
                self.strs.insert(*cap);
                format!("ms_str_{cap}")
            }
            TypeKind::Enum { .. } | TypeKind::Struct { .. } => self.define(ty, None),
            TypeKind::Array { .. } => unreachable!("arrays are declarators"),
        }
    }

    /// Defines the struct or enum `ty` (once per distinct type) and gives its C name; `name`
    /// forces the name (the top-level type).
    fn define(&mut self, ty: &Type, name: Option<String>) -> String {
        let mut key = Vec::new();
        encode_type(ty, &mut key);
        if name.is_none() {
            if let Some(n) = self.types.get(&key) {
                return n.clone();
            }
        }
        let c_name = match name {
            Some(n) => n,
            None => match &ty.kind {
                TypeKind::Struct { name, .. } | TypeKind::Enum { name, .. } => {
                    let base = format!("{}_{}", self.prefix, snake(name));
                    self.unique(base)
                }
                _ => unreachable!("only structs and enums are defined"),
            },
        };
        self.types.insert(key, c_name.clone());
        match &ty.kind {
            TypeKind::Enum {
                name,
                repr,
                variants,
            } => self.define_enum(&c_name, name, *repr, variants),
            TypeKind::Struct { name, fields } => {
                let fields: Vec<(String, usize, &Type)> = fields
                    .iter()
                    .map(|f| (f.name.to_string(), f.offset, &f.ty))
                    .collect();
                self.define_struct(&c_name, name, ty, &fields);
            }
            _ => unreachable!("only structs and enums are defined"),
        }
        c_name
    }

    fn define_enum(
        &mut self,
        c_name: &str,
        name: &str,
        repr: Prim,
        variants: &[(std::sync::Arc<str>, i64)],
    ) {
        let int = prim_c(repr);
        let upper = c_name.to_ascii_uppercase();
        let mut d = String::new();
        let _ = writeln!(
            d,
            "/* enum `{}`: stored as its {} representation; any other value is invalid. */",
            comment(name),
            repr.name()
        );
        let _ = writeln!(d, "typedef {int} {c_name};");
        let consts: Vec<(String, &str, i64)> = variants
            .iter()
            .map(|(n, v)| {
                let c = self.unique(format!("{upper}_{}", snake(n).to_ascii_uppercase()));
                (c, &**n, *v)
            })
            .collect();
        // Enumeration constants are `int`s: a `u32` value above INT_MAX needs a macro.
        let fits = consts.iter().all(|(_, _, v)| i32::try_from(*v).is_ok());
        if !consts.is_empty() {
            if fits {
                d.push_str("enum {\n");
                for (c, n, v) in &consts {
                    let _ = writeln!(d, "    {c} = {v}, /* {} */", comment(n));
                }
                d.push_str("};\n");
            } else {
                for (c, n, v) in &consts {
                    let _ = writeln!(d, "#define {c} (({c_name}){v}u) /* {} */", comment(n));
                }
            }
        }
        let name_fn = self.unique(format!("{c_name}_name"));
        let _ = writeln!(
            d,
            "/* The variant's name, or NULL for a value that is none of them. */\n\
             static inline const char *{name_fn}({c_name} v) {{\n    switch (v) {{"
        );
        let mut seen = HashSet::new();
        for (_, n, v) in &consts {
            if seen.insert(*v) {
                let _ = writeln!(d, "    case {}: return {};", case_label(*v, repr), c_str(n));
            }
        }
        d.push_str("    default: return NULL;\n    }\n}\n");
        let check = self.unique(format!("{c_name}_check_"));
        const SHOWN: usize = 16;
        let mut listed: Vec<String> = variants
            .iter()
            .take(SHOWN)
            .map(|(n, v)| format!("{n} = {v}"))
            .collect();
        if variants.len() > SHOWN {
            listed.push(format!("... {} more", variants.len() - SHOWN));
        }
        let expected = format!("enum `{name}` (one of {})", listed.join(", "));
        let _ = writeln!(
            d,
            "static inline int {check}(const unsigned char *p, size_t off, ms_error *e) {{\n    \
             {c_name} v;\n    memcpy(&v, p + off, sizeof v);\n    \
             if ({name_fn}(v) != NULL) return 0;\n    \
             return ms__invalid(e, p, off, sizeof v, {});\n}}\n",
            c_str(&expected)
        );
        self.types.insert(check_key(c_name), check);
        self.defs.push_str(&d);
    }

    /// A struct: the members at the manifest's offsets (padding made explicit where the C
    /// layout would differ), the assertions, and the check of its fields.
    fn define_struct(
        &mut self,
        c_name: &str,
        name: &str,
        ty: &Type,
        fields: &[(String, usize, &Type)],
    ) {
        let mut members: Vec<String> = Vec::new();
        let mut asserts: Vec<String> = Vec::new();
        let mut local = HashSet::new();
        let mut local_next = HashMap::new();
        let mut cur = 0usize;
        let mut natural_align = 1usize;
        let mut pads = 0usize;
        let pad = |members: &mut Vec<String>, bytes: usize, pads: &mut usize| {
            members.push(format!("    uint8_t ms_pad_{pads}[{bytes}]; /* padding */"));
            *pads += 1;
        };
        let mut idents = Vec::new();
        for (fname, offset, fty) in fields {
            if fty.size == 0 {
                members.push(format!(
                    "    /* `{}`: {}, zero-sized, has no C member */",
                    comment(fname),
                    comment(&fty.name())
                ));
                idents.push(None);
                continue;
            }
            let natural = cur.div_ceil(fty.align) * fty.align;
            if *offset != natural {
                pad(&mut members, offset - cur, &mut pads);
            }
            let ident = unique_in(&mut local, &mut local_next, member_ident(fname));
            let decl = self.declare(fty, &ident);
            members.push(format!(
                "    {decl}; /* {} @{offset}{} */",
                comment(&fty.name()),
                if ident == **fname {
                    String::new()
                } else {
                    format!(", `{}`", comment(fname))
                }
            ));
            asserts.push(format!(
                "_Static_assert(offsetof({c_name}, {ident}) == {offset}, \"{c_name}.{ident} is at byte {offset}\");"
            ));
            idents.push(Some(ident));
            natural_align = natural_align.max(fty.align);
            cur = offset + fty.size;
        }
        // Field alignments never exceed the struct's (FORMAT.md 6.3), so with the `_Alignas`
        // below the C struct is aligned to `ty.align` and ends at `cur` rounded up to it.
        if cur.div_ceil(ty.align) * ty.align != ty.size {
            pad(&mut members, ty.size - cur, &mut pads);
        }
        if ty.align > natural_align {
            // Raise the struct's alignment to the manifest's (a zero-sized field's, or a
            // hand-written manifest's) without moving anything: the first member is at 0.
            if let Some(first) = members
                .iter_mut()
                .find(|m| !m.trim_start().starts_with("/*"))
            {
                *first = format!("    _Alignas({}) {}", ty.align, first.trim_start());
            }
        }
        let mut d = String::new();
        let _ = writeln!(
            d,
            "/* struct `{}`: {} bytes, align {}. */\ntypedef struct {c_name} {{",
            comment(name),
            ty.size,
            ty.align
        );
        for m in &members {
            d.push_str(m);
            d.push('\n');
        }
        let _ = writeln!(d, "}} {c_name};");
        for a in &asserts {
            d.push_str(a);
            d.push('\n');
        }
        let _ = writeln!(
            d,
            "_Static_assert(sizeof({c_name}) == {}, \"{c_name} is {} bytes\");\n\
             _Static_assert(_Alignof({c_name}) == {}, \"{c_name} is aligned to {}\");",
            ty.size, ty.size, ty.align, ty.align
        );
        if needs_check(ty) {
            let check = self.unique(format!("{c_name}_check_"));
            let mut body = String::new();
            for (fname, offset, fty) in fields {
                if !needs_check(fty) {
                    continue;
                }
                let fail = format!("ms__path_field(e, {}); return 1;", c_str(fname));
                body.push_str(&self.check_value(fty, &format!("off + {offset}"), 0, &fail, 1));
            }
            let _ = writeln!(
                d,
                "static inline int {check}(const unsigned char *p, size_t off, ms_error *e) {{\n\
                 {body}    return 0;\n}}"
            );
            self.types.insert(check_key(c_name), check);
        }
        d.push('\n');
        self.defs.push_str(&d);
    }

    /// Statements that check the value of `ty` at payload byte `off` (a C expression) and run
    /// `fail` (which prepends the path and returns) when it is invalid.
    fn check_value(
        &mut self,
        ty: &Type,
        off: &str,
        depth: usize,
        fail: &str,
        indent: usize,
    ) -> String {
        let pad = "    ".repeat(indent);
        match &ty.kind {
            TypeKind::Array { elem, len } => {
                let i = format!("i{depth}");
                let inner_fail = format!("ms__path_index(e, {i}); {fail}");
                let inner = self.check_value(
                    elem,
                    &format!("{off} + {i} * {}", elem.size),
                    depth + 1,
                    &inner_fail,
                    indent + 1,
                );
                format!("{pad}for (size_t {i} = 0; {i} < {len}; {i}++) {{\n{inner}{pad}}}\n")
            }
            _ => {
                let call = match &ty.kind {
                    TypeKind::Prim(Prim::Bool) => format!("ms__check_bool(p, {off}, e)"),
                    TypeKind::Prim(Prim::Char) => format!("ms__check_char(p, {off}, e)"),
                    TypeKind::Str { cap } => format!("ms__check_str(p, {off}, {cap}u, e)"),
                    TypeKind::Enum { .. } | TypeKind::Struct { .. } => {
                        let c = self.define(ty, None);
                        let check = self.types[&check_key(&c)].clone();
                        format!("{check}(p, {off}, e)")
                    }
                    _ => unreachable!("only types that need a check are checked"),
                };
                format!("{pad}if ({call}) {{ {fail} }}\n")
            }
        }
    }

    fn header(mut self, ty: &Type, manifest: &[u8]) -> String {
        let p = self.prefix.clone();
        let upper = p.to_ascii_uppercase();
        let hash = fnv1a64(manifest);
        let top_name = ty.name();
        // The payload type: the top-level struct itself, or a struct wrapping the value.
        match &ty.kind {
            TypeKind::Struct { .. } => {
                self.define(ty, Some(p.clone()));
            }
            _ => {
                let fields = vec![("value".to_owned(), 0usize, ty)];
                let wrapper = Type {
                    kind: TypeKind::Struct {
                        name: std::sync::Arc::from(format!("{p} (wraps {top_name})")),
                        fields: vec![],
                    },
                    size: ty.size,
                    align: ty.align,
                };
                self.define_struct(
                    &p,
                    &format!("{p}: wraps a {top_name} payload"),
                    &wrapper,
                    &fields,
                );
            }
        }
        let mut h = String::new();
        let _ = writeln!(
            h,
            "/* Reads `{}` from mapped-state files, in C11.\n \
             * Generated by `mapped-state codegen c` (mapped-state-cli {}). Do not edit: generate\n \
             * it again when the type changes. Schema hash {hash:#018x}; payload {} bytes, align {}.\n \
             *\n \
             *   {p}_reader r;\n \
             *   if ({p}_open(&r, path, NULL) != MS_OK) {{ fprintf(stderr, \"%s: %s\\n\", path, r.ms.error.message); ... }}\n \
             *   {p} value; uint64_t version = 0;\n \
             *   if ({p}_load(&r, &value, &version) == MS_OK) {{ ... }}       consistent and validated\n \
             *   {p}_wait(&r, version, 5000000000, &version);              block until a newer one\n \
             *   {p}_close(&r);\n \
             *\n \
             * Every function returns an ms_status (ms_strerror names it; r.ms.error says more). The\n \
             * reader follows docs/FORMAT.md of mapped-state: header and schema are validated at\n \
             * open, snapshots use the ring protocol with C11 atomics, values are validated before\n \
             * they are returned, waits sleep on the file's futex (Linux). Needs a 64-bit target\n \
             * whose uint64_t and double are aligned to 8 (the assertions below check the layout).\n \
             * Link nothing: it is header-only. Include it before other system headers under\n \
             * -std=c11, or define _DEFAULT_SOURCE. */",
            comment(&top_name),
            env!("CARGO_PKG_VERSION"),
            ty.size,
            ty.align
        );
        let _ = writeln!(
            h,
            "#ifndef {upper}_MAPPED_STATE_H\n#define {upper}_MAPPED_STATE_H\n"
        );
        h.push_str(RUNTIME);
        h.push('\n');
        for cap in &self.strs {
            let size = (4 + cap).div_ceil(4) * 4;
            let _ = writeln!(
                h,
                "#ifndef MS_STR_{cap}_DEFINED\n#define MS_STR_{cap}_DEFINED"
            );
            if *cap == 0 {
                let _ = writeln!(
                    h,
                    "/* FixedStr<0>: always empty. */\ntypedef struct ms_str_0 {{ uint32_t len; }} ms_str_0;"
                );
            } else {
                let _ = writeln!(
                    h,
                    "/* FixedStr<{cap}>: `len` (at most {cap}) bytes of UTF-8 in `bytes`, not NUL-terminated:\n \
                     * printf(\"%.*s\", (int)s.len, s.bytes). */\n\
                     typedef struct ms_str_{cap} {{ uint32_t len; char bytes[{cap}]; }} ms_str_{cap};"
                );
            }
            let _ = writeln!(
                h,
                "_Static_assert(sizeof(ms_str_{cap}) == {size} && _Alignof(ms_str_{cap}) == 4, \"FixedStr<{cap}> layout\");\n#endif\n"
            );
        }
        let _ = writeln!(
            h,
            "/* ---- the schema ------------------------------------------------------------------------ */\n"
        );
        h.push_str(&self.defs);
        let words = manifest.len();
        let _ = writeln!(
            h,
            "#define {upper}_SCHEMA_HASH UINT64_C({hash:#018x})\n\
             #define {upper}_SIZE {}u\n#define {upper}_ALIGN {}u\n#define {upper}_MANIFEST_LEN {words}u\n",
            ty.size, ty.align
        );
        let _ = writeln!(
            h,
            "/* Checks that `bytes` ({} bytes) hold a valid `{}` (FORMAT.md 10): MS_OK, or\n \
             * MS_E_INVALID_VALUE with the field's path, payload byte and bytes in `e`. */\n\
             static inline ms_status {p}_validate(const void *bytes, ms_error *e) {{",
            ty.size,
            comment(&top_name)
        );
        if needs_check(ty) {
            h.push_str("    const unsigned char *p = (const unsigned char *)bytes;\n");
            // The top-level struct's own check prepends field names, the arrays their indices.
            let body = self.check_value(ty, "0", 0, "return ms__finish_invalid(e);", 1);
            h.push_str(&body);
        } else {
            h.push_str("    (void)bytes;\n    (void)e; /* every bit pattern is a valid value */\n");
        }
        h.push_str("    return MS_OK;\n}\n\n");
        // The manifest, byte for byte: the open compares the file's with it.
        let mut bytes = String::new();
        for (i, b) in manifest.iter().enumerate() {
            if i % 16 == 0 {
                bytes.push_str("\n        ");
            } else {
                bytes.push(' ');
            }
            let _ = write!(bytes, "0x{b:02x},");
        }
        let _ = writeln!(
            h,
            "/* A reader of files holding exactly this schema. */\n\
             typedef struct {p}_reader {{ ms_reader ms; }} {p}_reader;\n\n\
             /* Opens and validates `path` (FORMAT.md 3.2; `opts` may be NULL): MS_OK, or an error\n \
             * code with the details in r->ms.error. Close it with {p}_close, even after a failure. */\n\
             static inline ms_status {p}_open({p}_reader *r, const char *path, const ms_open_options *opts) {{\n    \
             static const unsigned char manifest[{words}] = {{{bytes}\n    }};\n    \
             if (r == NULL) return MS_E_INVALID_ARGUMENT;\n    \
             return ms_open_schema(&r->ms, path, opts, {upper}_SCHEMA_HASH, manifest, sizeof manifest,\n                          \
             {upper}_SIZE, {upper}_ALIGN);\n}}\n\n\
             /* A consistent, validated copy of the newest version into *out, its version into\n \
             * *version (may be NULL). On any error *out is zeroed. */\n\
             static inline ms_status {p}_load({p}_reader *r, {p} *out, uint64_t *version) {{\n    \
             if (r == NULL) return MS_E_INVALID_ARGUMENT;\n    \
             ms_status s = ms_snapshot(&r->ms, out, sizeof *out, version);\n    \
             if (s == MS_OK) s = {p}_validate(out, &r->ms.error);\n    \
             if (s != MS_OK && out != NULL) memset(out, 0, sizeof *out);\n    \
             return s;\n}}\n\n\
             /* The newest committed version, without reading the value. */\n\
             static inline uint64_t {p}_version(const {p}_reader *r) {{ return ms_version(&r->ms); }}\n\n\
             /* Blocks until a version newer than `since` is committed (see ms_wait). */\n\
             static inline ms_status {p}_wait({p}_reader *r, uint64_t since, int64_t timeout_ns, uint64_t *version) {{\n    \
             if (r == NULL) return MS_E_INVALID_ARGUMENT;\n    \
             return ms_wait(&r->ms, since, timeout_ns, version);\n}}\n\n\
             static inline void {p}_close({p}_reader *r) {{\n    if (r != NULL) ms_close(&r->ms);\n}}\n\n\
             #endif /* {upper}_MAPPED_STATE_H */"
        );
        h
    }
}

/// `base`, or `base_2`, `base_3`... whichever is not in `names`, added to it. `next` remembers
/// each base's next suffix, so that many names made equal by escaping cost linear time.
fn unique_in(
    names: &mut HashSet<String>,
    next: &mut HashMap<String, usize>,
    base: String,
) -> String {
    let n = next.entry(base.clone()).or_insert(1);
    loop {
        let name = if *n == 1 {
            base.clone()
        } else {
            format!("{base}_{n}")
        };
        *n += 1;
        if names.insert(name.clone()) {
            return name;
        }
    }
}

/// The key under which a struct's or enum's check function is remembered.
fn check_key(c_name: &str) -> Vec<u8> {
    // Manifest encodings never start with 0xff, so these keys cannot meet a type's.
    let mut k = vec![0xff];
    k.extend_from_slice(c_name.as_bytes());
    k
}

/// A case label for the enum value `v` of representation `repr`.
fn case_label(v: i64, repr: Prim) -> String {
    match repr {
        Prim::U32 => format!("{v}u"),
        // INT32_MIN cannot be written as a literal: `-2147483648` is `-(2147483648)`, a long.
        Prim::I32 if v == i64::from(i32::MIN) => "INT32_MIN".to_owned(),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_c_identifiers() {
        assert_eq!(snake("HttpServer"), "http_server");
        assert_eq!(snake("Telemetry"), "telemetry");
        assert_eq!(snake("a b--c"), "a_b_c");
        assert_eq!(snake("9"), "t9");
        assert_eq!(snake("ü"), "t");
        assert_eq!(member_ident("rpm"), "rpm");
        assert_eq!(member_ident("int"), "int_");
        assert_eq!(member_ident("linux"), "linux_");
        assert_eq!(member_ident("9lives"), "f_9lives");
        assert_eq!(member_ident("__x"), "f___x");
        assert_eq!(member_ident("_X"), "f__X");
        assert_eq!(member_ident("_x"), "_x");
        assert_eq!(member_ident("größe"), "gr__e");
        assert_eq!(member_ident(""), "field");
        assert_eq!(member_ident("ms_pad_0"), "ms_pad_0_");
    }

    #[test]
    fn strings_and_comments_are_escaped() {
        assert_eq!(c_str("a\"b\\c?"), "\"a\\\"b\\\\c\\?\"");
        assert_eq!(c_str("µ\n"), "\"\\302\\265\\012\"");
        assert_eq!(comment("x*/y??=z\n"), "x* /y? ?=z\\n");
    }

    #[test]
    fn suffixes_are_unique_and_linear() {
        let (mut names, mut next) = (HashSet::new(), HashMap::new());
        names.insert("a_2".to_owned());
        let got: Vec<String> = (0..4)
            .map(|_| unique_in(&mut names, &mut next, "a".into()))
            .collect();
        assert_eq!(got, ["a", "a_3", "a_4", "a_5"]);
    }

    #[test]
    fn prefixes_are_checked() {
        let m = manifest_bytes(<u32 as mapped_state::MappedState>::TYPE);
        let with = |p: &str| {
            header_from_manifest(
                &m,
                &Options {
                    prefix: Some(p.into()),
                },
            )
        };
        assert!(with("engine").is_ok());
        for bad in ["", "9a", "a-b", "int", "stat", "ms", "ms_x", "MS_X", "shm"] {
            assert_eq!(with(bad), Err(CodegenError::Prefix(bad.into())), "{bad}");
        }
        let empty = manifest_bytes(<[u64; 0] as mapped_state::MappedState>::TYPE);
        assert_eq!(
            header_from_manifest(&empty, &Options::default()),
            Err(CodegenError::ZeroSized("[u64; 0]".into()))
        );
        // A payload that is no struct or enum is wrapped, under the default prefix `state`.
        let h = header_from_manifest(&m, &Options::default()).unwrap();
        assert!(h.contains("typedef struct state {\n    uint32_t value; /* u32 @0 */\n} state;"));
    }
}
