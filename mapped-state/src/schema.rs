//! The schema of a mapped type: a const-constructible description (`TypeDesc`), its binary
//! manifest encoding (stored in every state file) and the stable 64-bit schema hash.
//!
//! One `const fn` walker (`emit_type`) both computes the hash at compile time and writes the
//! manifest bytes at run time, so the two can never disagree. The encoding is specified in
//! `docs/FORMAT.md` ("Manifest"); `crate::manifest` decodes it back from untrusted files.

/// Primitive scalar kinds. The discriminants are the manifest's kind bytes and are fixed forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Prim {
    /// `u8`
    U8 = 1,
    /// `u16`
    U16 = 2,
    /// `u32`
    U32 = 3,
    /// `u64`
    U64 = 4,
    /// `u128`
    U128 = 5,
    /// `i8`
    I8 = 6,
    /// `i16`
    I16 = 7,
    /// `i32`
    I32 = 8,
    /// `i64`
    I64 = 9,
    /// `i128`
    I128 = 10,
    /// `f32`
    F32 = 11,
    /// `f64`
    F64 = 12,
    /// `bool`: one byte, 0 or 1.
    Bool = 13,
    /// `char`: a `u32` that must be a Unicode scalar value.
    Char = 14,
}

impl Prim {
    /// Every primitive, in kind-byte order.
    pub const ALL: [Prim; 14] = [
        Prim::U8,
        Prim::U16,
        Prim::U32,
        Prim::U64,
        Prim::U128,
        Prim::I8,
        Prim::I16,
        Prim::I32,
        Prim::I64,
        Prim::I128,
        Prim::F32,
        Prim::F64,
        Prim::Bool,
        Prim::Char,
    ];

    /// Size in bytes (also the alignment: mapped-state aligns every primitive to its size).
    pub const fn size(self) -> usize {
        match self {
            Prim::U8 | Prim::I8 | Prim::Bool => 1,
            Prim::U16 | Prim::I16 => 2,
            Prim::U32 | Prim::I32 | Prim::F32 | Prim::Char => 4,
            Prim::U64 | Prim::I64 | Prim::F64 => 8,
            Prim::U128 | Prim::I128 => 16,
        }
    }

    /// The Rust spelling of the type.
    pub const fn name(self) -> &'static str {
        match self {
            Prim::U8 => "u8",
            Prim::U16 => "u16",
            Prim::U32 => "u32",
            Prim::U64 => "u64",
            Prim::U128 => "u128",
            Prim::I8 => "i8",
            Prim::I16 => "i16",
            Prim::I32 => "i32",
            Prim::I64 => "i64",
            Prim::I128 => "i128",
            Prim::F32 => "f32",
            Prim::F64 => "f64",
            Prim::Bool => "bool",
            Prim::Char => "char",
        }
    }

    /// The primitive whose kind byte is `b`, if any.
    pub const fn from_byte(b: u8) -> Option<Prim> {
        if b >= 1 && b <= 14 {
            Some(Prim::ALL[(b - 1) as usize])
        } else {
            None
        }
    }

    /// Whether this is an integer type usable as an enum representation.
    pub const fn is_enum_repr(self) -> bool {
        matches!(
            self,
            Prim::U8 | Prim::U16 | Prim::U32 | Prim::I8 | Prim::I16 | Prim::I32
        )
    }
}

/// Kind bytes of the composite kinds in the manifest (primitives use `Prim as u8`).
pub(crate) mod kind_byte {
    pub const ENUM: u8 = 32;
    pub const ARRAY: u8 = 33;
    pub const STR: u8 = 34;
    pub const STRUCT: u8 = 35;
}

/// A compile-time description of a mapped type: its kind, size and alignment.
///
/// Sizes and alignments follow C rules with mapped-state's fixed primitive alignments
/// (every primitive is aligned to its own size, `u128`/`i128` to 16), so a layout is the same on
/// every target.
#[derive(Clone, Copy, Debug)]
pub struct TypeDesc {
    /// What the type is.
    pub kind: Kind,
    /// Size in bytes, a multiple of `align`.
    pub size: usize,
    /// Alignment in bytes, a power of two.
    pub align: usize,
}

/// The kind of a mapped type.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A primitive scalar.
    Prim(Prim),
    /// A fieldless enum with an integer representation.
    Enum(&'static EnumDesc),
    /// `[elem; len]`.
    Array {
        /// Element type.
        elem: &'static TypeDesc,
        /// Number of elements.
        len: usize,
    },
    /// `FixedStr<cap>`: a `u32` byte length followed by `cap` bytes of UTF-8.
    Str {
        /// Capacity in bytes.
        cap: usize,
    },
    /// A struct with named fields.
    Struct(&'static StructDesc),
}

/// A fieldless enum.
#[derive(Clone, Copy, Debug)]
pub struct EnumDesc {
    /// Schema name of the enum.
    pub name: &'static str,
    /// Integer representation.
    pub repr: Prim,
    /// Variants in declaration order.
    pub variants: &'static [VariantDesc],
}

/// One variant of a fieldless enum.
#[derive(Clone, Copy, Debug)]
pub struct VariantDesc {
    /// Variant name.
    pub name: &'static str,
    /// Discriminant, sign-extended to `i64`.
    pub value: i64,
}

/// A struct with named fields.
#[derive(Clone, Copy, Debug)]
pub struct StructDesc {
    /// Schema name of the struct (the Rust name unless overridden with `name = "..."`).
    pub name: &'static str,
    /// Fields in declaration (and offset) order.
    pub fields: &'static [FieldDesc],
}

/// One field of a struct.
#[derive(Clone, Copy, Debug)]
pub struct FieldDesc {
    /// Field name.
    pub name: &'static str,
    /// Byte offset inside the struct.
    pub offset: usize,
    /// Field type.
    pub ty: &'static TypeDesc,
}

impl TypeDesc {
    /// The description of a primitive.
    pub const fn prim(p: Prim) -> TypeDesc {
        TypeDesc {
            kind: Kind::Prim(p),
            size: p.size(),
            align: p.size(),
        }
    }
}

/// Manifest magic: the first four bytes of every manifest.
pub const MANIFEST_MAGIC: [u8; 4] = *b"MSMF";
/// Manifest encoding version.
pub const MANIFEST_VERSION: u8 = 1;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`: the hash used for the schema hash and the header checksum.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// Streams manifest bytes: always into the running hash, and into `out` when it is long enough.
struct Emit<'a> {
    out: &'a mut [u8],
    pos: usize,
    hash: u64,
}

impl Emit<'_> {
    const fn byte(&mut self, b: u8) {
        if self.pos < self.out.len() {
            self.out[self.pos] = b;
        }
        self.pos += 1;
        self.hash ^= b as u64;
        self.hash = self.hash.wrapping_mul(FNV_PRIME);
    }

    const fn bytes(&mut self, bs: &[u8]) {
        let mut i = 0;
        while i < bs.len() {
            self.byte(bs[i]);
            i += 1;
        }
    }

    const fn u32(&mut self, v: usize) {
        // Sizes above u32::MAX are rejected by `check_type` before anything is emitted.
        self.bytes(&(v as u32).to_le_bytes());
    }

    const fn i64(&mut self, v: i64) {
        self.bytes(&v.to_le_bytes());
    }

    const fn str(&mut self, s: &str) {
        self.bytes(&(s.len() as u16).to_le_bytes());
        self.bytes(s.as_bytes());
    }
}

const fn emit_type(e: &mut Emit<'_>, ty: &TypeDesc) {
    match ty.kind {
        Kind::Prim(p) => e.byte(p as u8),
        Kind::Enum(en) => {
            e.byte(kind_byte::ENUM);
            e.str(en.name);
            e.byte(en.repr as u8);
            e.u32(en.variants.len());
            let mut i = 0;
            while i < en.variants.len() {
                e.str(en.variants[i].name);
                e.i64(en.variants[i].value);
                i += 1;
            }
        }
        Kind::Array { elem, len } => {
            e.byte(kind_byte::ARRAY);
            e.u32(len);
            emit_type(e, elem);
        }
        Kind::Str { cap } => {
            e.byte(kind_byte::STR);
            e.u32(cap);
        }
        Kind::Struct(st) => {
            e.byte(kind_byte::STRUCT);
            e.str(st.name);
            e.u32(ty.size);
            e.u32(ty.align);
            e.u32(st.fields.len());
            let mut i = 0;
            while i < st.fields.len() {
                let f = &st.fields[i];
                e.str(f.name);
                e.u32(f.offset);
                emit_type(e, f.ty);
                i += 1;
            }
        }
    }
}

const fn emit_manifest(e: &mut Emit<'_>, ty: &TypeDesc) {
    e.bytes(&MANIFEST_MAGIC);
    e.byte(MANIFEST_VERSION);
    e.u32(ty.size);
    e.u32(ty.align);
    emit_type(e, ty);
}

/// Length in bytes of the manifest of `ty`.
pub const fn manifest_len(ty: &TypeDesc) -> usize {
    let mut e = Emit {
        out: &mut [],
        pos: 0,
        hash: FNV_OFFSET,
    };
    emit_manifest(&mut e, ty);
    e.pos
}

/// Writes the manifest of `ty` into `out`, which must be `manifest_len(ty)` bytes long.
pub const fn write_manifest(ty: &TypeDesc, out: &mut [u8]) {
    let mut e = Emit {
        out,
        pos: 0,
        hash: FNV_OFFSET,
    };
    emit_manifest(&mut e, ty);
}

/// The manifest of `ty` as a vector.
pub fn manifest_bytes(ty: &TypeDesc) -> Vec<u8> {
    let mut v = vec![0u8; manifest_len(ty)];
    write_manifest(ty, &mut v);
    v
}

/// The schema hash of `ty`: FNV-1a 64 of its manifest bytes.
pub const fn schema_hash(ty: &TypeDesc) -> u64 {
    let mut e = Emit {
        out: &mut [],
        pos: 0,
        hash: FNV_OFFSET,
    };
    emit_manifest(&mut e, ty);
    e.hash
}

/// The schema hash `ty` would have with only its first `keep` fields (a struct; the size and
/// alignment those fields give it) or its first `keep` variants (an enum): the hash of the older
/// version of the type it extends by appending (schema evolution). For other kinds, or `keep` at
/// least the count, the hash of `ty` itself.
pub const fn prefix_hash(ty: &TypeDesc, keep: usize) -> u64 {
    let mut e = Emit {
        out: &mut [],
        pos: 0,
        hash: FNV_OFFSET,
    };
    match ty.kind {
        Kind::Struct(st) if keep < st.fields.len() => {
            let mut align = 1;
            let mut end = 0;
            let mut i = 0;
            while i < keep {
                let f = &st.fields[i];
                if f.ty.align > align {
                    align = f.ty.align;
                }
                end = f.offset + f.ty.size;
                i += 1;
            }
            let size = align_up(end, align);
            e.bytes(&MANIFEST_MAGIC);
            e.byte(MANIFEST_VERSION);
            e.u32(size);
            e.u32(align);
            e.byte(kind_byte::STRUCT);
            e.str(st.name);
            e.u32(size);
            e.u32(align);
            e.u32(keep);
            let mut i = 0;
            while i < keep {
                let f = &st.fields[i];
                e.str(f.name);
                e.u32(f.offset);
                emit_type(&mut e, f.ty);
                i += 1;
            }
        }
        Kind::Enum(en) if keep < en.variants.len() => {
            e.bytes(&MANIFEST_MAGIC);
            e.byte(MANIFEST_VERSION);
            e.u32(ty.size);
            e.u32(ty.align);
            e.byte(kind_byte::ENUM);
            e.str(en.name);
            e.byte(en.repr as u8);
            e.u32(keep);
            let mut i = 0;
            while i < keep {
                e.str(en.variants[i].name);
                e.i64(en.variants[i].value);
                i += 1;
            }
        }
        _ => emit_manifest(&mut e, ty),
    }
    e.hash
}

/// Checks at compile time what the manifest encoding can represent: names of at most 65,535
/// bytes, sizes, offsets and counts that fit in `u32`. Returns a message on failure.
pub const fn check_type(ty: &TypeDesc) -> Option<&'static str> {
    if ty.size > u32::MAX as usize {
        return Some("a mapped type must be smaller than 4 GiB");
    }
    match ty.kind {
        Kind::Prim(_) | Kind::Str { .. } => None,
        Kind::Enum(en) => {
            if en.name.len() > u16::MAX as usize {
                return Some("enum name too long");
            }
            let mut i = 0;
            while i < en.variants.len() {
                if en.variants[i].name.len() > u16::MAX as usize {
                    return Some("variant name too long");
                }
                i += 1;
            }
            None
        }
        Kind::Array { elem, .. } => check_type(elem),
        Kind::Struct(st) => {
            if st.name.len() > u16::MAX as usize {
                return Some("struct name too long");
            }
            let mut i = 0;
            while i < st.fields.len() {
                if st.fields[i].name.len() > u16::MAX as usize {
                    return Some("field name too long");
                }
                if let Some(m) = check_type(st.fields[i].ty) {
                    return Some(m);
                }
                i += 1;
            }
            None
        }
    }
}

/// `x` rounded up to a multiple of `align` (a power of two).
pub const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Formats `v` as `0x` and 16 lowercase hex digits, in const context (for pinned-hash errors).
pub const fn hex_u64(v: u64) -> [u8; 18] {
    let mut out = *b"0x0000000000000000";
    let mut i = 0;
    while i < 16 {
        let nib = ((v >> ((15 - i) * 4)) & 0xf) as u8;
        out[2 + i] = if nib < 10 {
            b'0' + nib
        } else {
            b'a' + nib - 10
        };
        i += 1;
    }
    out
}
