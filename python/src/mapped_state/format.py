"""The bytes of a state file (docs/FORMAT.md): header validation (3.1), the schema manifest
(6), FNV-1a 64 (4) and value decoding (10). Pure functions over bytes: nothing here touches a
mapping."""

import math
import struct
import sys

from . import errors as E

# FORMAT.md sections 1, 2 and 3.
MAGIC = b"MAPSTATE"
VERSION = 2
FORMAT_VERSION_SUPPORTED = VERSION
ENDIAN_TAG = 0x01020304
HEADER_LEN = 128
WORD = 8
PAYLOAD_OFFSET = 256
STRIDE_ALIGN = 64
MAX_PAYLOAD = 1 << 30
MAX_MANIFEST = 1 << 20
MAX_ALIGN = 64
MIN_SLOTS = 2
MAX_SLOTS = 256
MAX_RING_BYTES = 1 << 32
MIN_FILE_LEN = PAYLOAD_OFFSET + MIN_SLOTS * STRIDE_ALIGN + 1
# Header field offsets, section 3.
OFF_VERSION, OFF_ENDIAN, OFF_HEADER_LEN, OFF_WORD_SIZE = 8, 12, 16, 20
OFF_SCHEMA_HASH, OFF_PAYLOAD_SIZE, OFF_PAYLOAD_ALIGN, OFF_SLOT_STRIDE = 24, 32, 40, 48
OFF_FILE_LEN, OFF_MANIFEST_OFFSET, OFF_MANIFEST_LEN, OFF_NONCE = 56, 64, 72, 80
OFF_PAYLOAD_OFFSET, OFF_SLOT_COUNT, OFF_RESERVED, OFF_CHECKSUM = 88, 96, 104, 120
# Control block, section 5.
OFF_SEQ, OFF_NOTIFY, OFF_FLAGS = 128, 136, 140
OFF_WRITER_PID, OFF_COMMIT_TIME, OFF_WRITER_START = 144, 152, 160
FLAG_SUPERSEDED = 1
FLAG_CLOSED = 2
# Manifest, section 6.
MANIFEST_MAGIC = b"MSMF"
MANIFEST_VERSION = 1
MAX_DEPTH = 32
MAX_NODES = 100_000
# Decoding budget, section 10: values of size zero are not bounded by the payload's length.
MAX_ZERO_SIZED = 1 << 20
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x00000100000001B3
MASK64 = (1 << 64) - 1

# kind byte -> (name, size, struct format without byte-order prefix or None)
PRIMS = {
    1: ("u8", 1, "B"),
    2: ("u16", 2, "H"),
    3: ("u32", 4, "I"),
    4: ("u64", 8, "Q"),
    5: ("u128", 16, None),
    6: ("i8", 1, "b"),
    7: ("i16", 2, "h"),
    8: ("i32", 4, "i"),
    9: ("i64", 8, "q"),
    10: ("i128", 16, None),
    11: ("f32", 4, "f"),
    12: ("f64", 8, "d"),
    13: ("bool", 1, "B"),
    14: ("char", 4, "I"),
}
ENUM_REPRS = {1, 2, 3, 6, 7, 8}
KIND_ENUM, KIND_ARRAY, KIND_STR, KIND_STRUCT = 0x20, 0x21, 0x22, 0x23


def fnv1a64(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    return h


def align_up(x, align):
    return (x + align - 1) & ~(align - 1)


def is_pow2(x):
    return x > 0 and x & (x - 1) == 0


# ---------------------------------------------------------------------------------------------
# Header: FORMAT.md 3.1, checked in the documented order.


class Header:
    """A validated header (FORMAT.md 3): every field as an attribute of the same name."""

    __slots__ = (
        "schema_hash", "payload_size", "payload_align", "slot_stride", "file_len",
        "manifest_offset", "manifest_len", "nonce", "slot_count",
    )

    def __repr__(self):
        return "Header(" + ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__) + ")"


def _u32n(b, at):
    return struct.unpack_from("=I", b, at)[0]


def _u64n(b, at):
    return struct.unpack_from("=Q", b, at)[0]


def parse_header(path, b, actual_len):
    """FORMAT.md 3.1: `b` is the first (up to) 128 bytes, `actual_len` the file's length. The
    checks in the order of the table (the Rust parser's), each naming the field and byte the Rust
    reader names."""

    def corrupt(field, offset, expected, found):
        return E.CorruptHeader(path, field, offset, expected, found)

    if len(b) < 8 or b[:8] != MAGIC:
        raise E.NotAStateFile(path, b[:8])
    if len(b) < HEADER_LEN:
        raise E.WrongLength(path, MIN_FILE_LEN, actual_len)
    endian = _u32n(b, OFF_ENDIAN)
    if endian != ENDIAN_TAG:
        if endian == 0x04030201:
            raise E.ForeignEndian(path, endian)
        raise corrupt("endian_tag", OFF_ENDIAN, f"{ENDIAN_TAG:#010x}", f"{endian:#010x}")
    version = _u32n(b, OFF_VERSION)
    if version != VERSION:
        raise E.UnsupportedVersion(path, version, VERSION)
    if _u32n(b, OFF_HEADER_LEN) != HEADER_LEN:
        raise corrupt("header_len", OFF_HEADER_LEN, HEADER_LEN, _u32n(b, OFF_HEADER_LEN))
    if _u32n(b, OFF_WORD_SIZE) != WORD:
        raise corrupt("word_size", OFF_WORD_SIZE, WORD, _u32n(b, OFF_WORD_SIZE))
    h = Header()
    h.schema_hash = _u64n(b, OFF_SCHEMA_HASH)
    h.payload_size = _u64n(b, OFF_PAYLOAD_SIZE)
    h.payload_align = _u64n(b, OFF_PAYLOAD_ALIGN)
    h.slot_stride = _u64n(b, OFF_SLOT_STRIDE)
    h.file_len = _u64n(b, OFF_FILE_LEN)
    h.manifest_offset = _u64n(b, OFF_MANIFEST_OFFSET)
    h.manifest_len = _u64n(b, OFF_MANIFEST_LEN)
    h.nonce = _u64n(b, OFF_NONCE)
    h.slot_count = _u64n(b, OFF_SLOT_COUNT)
    size, align = h.payload_size, h.payload_align
    if not 1 <= size <= MAX_PAYLOAD:
        raise corrupt("payload_size", OFF_PAYLOAD_SIZE, f"1..={MAX_PAYLOAD}", size)
    if not is_pow2(align) or align > MAX_ALIGN:
        raise corrupt("payload_align", OFF_PAYLOAD_ALIGN, f"a power of two up to {MAX_ALIGN}", align)
    if size % align != 0:
        raise corrupt("payload_size", OFF_PAYLOAD_SIZE, f"a multiple of payload_align {align}", size)
    stride = align_up(size, STRIDE_ALIGN)
    if h.slot_stride != stride:
        raise corrupt(
            "slot_stride", OFF_SLOT_STRIDE, f"{stride} (payload_size rounded up to {STRIDE_ALIGN})", h.slot_stride
        )
    payload_offset = _u64n(b, OFF_PAYLOAD_OFFSET)
    if payload_offset != PAYLOAD_OFFSET:
        raise corrupt("payload_offset", OFF_PAYLOAD_OFFSET, PAYLOAD_OFFSET, payload_offset)
    n = h.slot_count
    if not is_pow2(n) or not MIN_SLOTS <= n <= MAX_SLOTS:
        raise corrupt("slot_count", OFF_SLOT_COUNT, f"a power of two from {MIN_SLOTS} to {MAX_SLOTS}", n)
    ring = n * stride
    if ring > MAX_RING_BYTES:
        raise corrupt(
            "slot_count",
            OFF_SLOT_COUNT,
            f"at most {MAX_RING_BYTES // stride} slots of {stride} bytes (a ring of at most {MAX_RING_BYTES} bytes)",
            n,
        )
    manifest_offset = PAYLOAD_OFFSET + ring
    if h.manifest_offset != manifest_offset:
        raise corrupt(
            "manifest_offset", OFF_MANIFEST_OFFSET, f"{manifest_offset} (right after the last slot)", h.manifest_offset
        )
    if not 1 <= h.manifest_len <= MAX_MANIFEST:
        raise corrupt("manifest_len", OFF_MANIFEST_LEN, f"1..={MAX_MANIFEST}", h.manifest_len)
    file_len = manifest_offset + h.manifest_len
    if h.file_len != file_len:
        raise corrupt("file_len", OFF_FILE_LEN, f"{file_len} (manifest_offset + manifest_len)", h.file_len)
    for i in range(OFF_RESERVED, OFF_CHECKSUM):
        if b[i] != 0:
            raise corrupt("reserved", i, 0, b[i])
    checksum = fnv1a64(b[:OFF_CHECKSUM])
    stored = _u64n(b, OFF_CHECKSUM)
    if stored != checksum:
        raise corrupt("checksum", OFF_CHECKSUM, f"{checksum:#018x} (FNV-1a 64 of bytes 0..120)", f"{stored:#018x}")
    if actual_len != file_len:
        raise E.WrongLength(path, file_len, actual_len)
    return h


# ---------------------------------------------------------------------------------------------
# Manifest: FORMAT.md 6.1 (little-endian) and 6.3.


class Field:
    """A struct field: `name`, its payload `offset` inside the struct, its `type`."""

    __slots__ = ("name", "offset", "type")

    def __init__(self, name, offset, ty):
        self.name, self.offset, self.type = name, offset, ty

    def __repr__(self):
        return f"Field({self.name!r} @{self.offset}: {self.type.name})"


class Type:
    """A type of the manifest. `kind` is "prim", "enum", "array", "str" or "struct"; `name` the
    name the Rust library gives it (`u32`, `[f32; 16]`, `FixedStr<32>`, the enum's or struct's
    name); `size` and `align` in bytes. Per kind: `prim` (the kind byte) for primitives; `repr`
    (the kind byte of its integer) and `variants` (a list of (name, value)) for enums; `elem` and
    `len` for arrays; `cap` for strings; `fields` (a list of `Field`) for structs."""

    __slots__ = ("kind", "name", "size", "align", "prim", "repr", "variants", "elem", "len", "cap", "fields")

    def __init__(self, kind, name, size, align, **extra):
        self.kind, self.name, self.size, self.align = kind, name, size, align
        for k in ("prim", "repr", "variants", "elem", "len", "cap", "fields"):
            setattr(self, k, extra.get(k))

    def __repr__(self):
        return f"Type({self.name}, size={self.size}, align={self.align})"


class _ManifestParser:
    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.pos = 0
        self.nodes = 0

    def fail(self, offset, reason):
        return E.CorruptManifest(self.path, offset, reason)

    def take(self, n):
        if self.pos + n > len(self.data):
            raise self.fail(self.pos, f"manifest ends early (needed {n} more bytes)")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def i64(self):
        return struct.unpack("<q", self.take(8))[0]

    def string(self):
        at = self.pos
        n = struct.unpack("<H", self.take(2))[0]
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(at, "name is not UTF-8") from None

    def node(self):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(self.pos, f"more than {MAX_NODES} types, fields and variants")

    def manifest(self):
        if self.take(4) != MANIFEST_MAGIC:
            raise self.fail(0, 'manifest does not start with "MSMF"')
        version = self.u8()
        if version != MANIFEST_VERSION:
            raise self.fail(4, f"manifest version {version}, expected {MANIFEST_VERSION}")
        size, align = self.u32(), self.u32()
        ty = self.type(0)
        if ty.size != size or ty.align != align:
            raise self.fail(5, f"manifest says size {size} align {align}, its type has size {ty.size} align {ty.align}")
        if self.pos != len(self.data):
            raise self.fail(self.pos, f"{len(self.data) - self.pos} bytes after the end of the manifest")
        return ty

    def type(self, depth):
        at = self.pos
        if depth > MAX_DEPTH:
            raise self.fail(at, f"types nested deeper than {MAX_DEPTH}")
        self.node()
        k = self.u8()
        if k in PRIMS:
            name, size, _ = PRIMS[k]
            return Type("prim", name, size, size, prim=k)
        if k == KIND_ENUM:
            name = self.string()
            repr_at = self.pos
            repr_kind = self.u8()
            if repr_kind not in ENUM_REPRS:
                raise self.fail(repr_at, "enum representation is not u8/u16/u32/i8/i16/i32")
            rname, rsize, _ = PRIMS[repr_kind]
            bits = 8 * rsize
            lo, hi = (0, (1 << bits) - 1) if rname[0] == "u" else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            variants = []
            for _ in range(self.u32()):
                self.node()
                vname = self.string()
                vat = self.pos
                value = self.i64()
                if not lo <= value <= hi:
                    raise self.fail(vat, f"variant `{vname}` = {value} does not fit in {rname}")
                variants.append((vname, value))
            return Type("enum", name, rsize, rsize, repr=repr_kind, variants=variants)
        if k == KIND_ARRAY:
            length = self.u32()
            elem = self.type(depth + 1)
            if elem.size * length > MAX_PAYLOAD:
                raise self.fail(at, "array larger than the payload limit")
            return Type("array", f"[{elem.name}; {length}]", elem.size * length, elem.align, elem=elem, len=length)
        if k == KIND_STR:
            cap = self.u32()
            if cap > MAX_PAYLOAD:
                raise self.fail(at, "string capacity larger than the payload limit")
            return Type("str", f"FixedStr<{cap}>", align_up(4 + cap, 4), 4, cap=cap)
        if k == KIND_STRUCT:
            name = self.string()
            size_at = self.pos
            size, align = self.u32(), self.u32()
            if not is_pow2(align) or align > MAX_ALIGN or size % align != 0:
                raise self.fail(size_at, f"struct `{name}` has size {size} and alignment {align}")
            if size > MAX_PAYLOAD:
                raise self.fail(size_at, "struct larger than the payload limit")
            fields, end, seen = [], 0, set()
            for _ in range(self.u32()):
                self.node()
                fat = self.pos
                fname = self.string()
                offset = self.u32()
                fty = self.type(depth + 1)
                if offset < end or offset % fty.align != 0 or fty.align > align or offset + fty.size > size:
                    raise self.fail(
                        fat,
                        f"field `{name}.{fname}` ({fty.name} @{offset}) overlaps, is misaligned or lies outside the struct",
                    )
                if fname in seen:
                    raise self.fail(fat, f"field `{name}.{fname}` appears twice")
                seen.add(fname)
                end = offset + fty.size
                fields.append(Field(fname, offset, fty))
            return Type("struct", name, size, align, fields=fields)
        raise self.fail(at, f"unknown type kind {k}")


def parse_manifest(path, data):
    """The top-level type of a manifest (FORMAT.md 6.3), or `CorruptManifest`."""
    return _ManifestParser(path, data).manifest()


# ---------------------------------------------------------------------------------------------
# Values: FORMAT.md 8 and 10. Payload integers are native-endian ("=" formats).


def _join(path, name):
    return f"{path}.{name}" if path else name


def shortest_f32(x, raw):
    """The shortest decimal that reads back as the same f32 (9 significant digits always do),
    as the float it denotes: 0.1f32 is 0.1, not 0.10000000149011612."""
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        try:
            if struct.pack("=f", float(text)) == raw:
                return float(text)
        except OverflowError:
            # Rounded past the largest f32 (near f32::MAX): more digits are needed.
            continue
    return x


def _json_float(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


class _Budget:
    """Counts zero-sized values (at most MAX_ZERO_SIZED per payload, FORMAT.md 10) and, for a
    rendering, a lower bound of the JSON text's length, so that a manifest that repeats a long
    name in a huge array is refused before its rendering is built (`limit`, None: no bound)."""

    __slots__ = ("zero_sized", "out", "limit")

    def __init__(self, limit=None):
        self.zero_sized = 0
        self.out = 0
        self.limit = limit


class OutputTooLarge(Exception):
    """A rendering would pass its output budget."""


def decode(path, ty, b, json=False, limit=None):
    """The value of type `ty` held in payload bytes `b` (FORMAT.md 10), or `InvalidValue`.

    Python values: integers `int` (128-bit ones too), floats `float` (an f32 widened exactly:
    0.1f32 is 0.10000000149011612), `bool`, `char` and `FixedStr` `str`, enums the variant's name,
    arrays lists, structs dicts in field order. With `json=True`, the forms of
    `mapped-state inspect --json`: 128-bit integers decimal strings, NaN and infinities the
    strings "NaN", "Infinity", "-Infinity", f32 the shortest decimal that reads back to
    it. `limit` bounds the JSON text (`OutputTooLarge`)."""
    return _decode(path, ty, b, 0, "", _Budget(limit), json)


def _invalid(path, field, offset, raw, expected):
    return E.InvalidValue(path, field, offset, raw, expected)


def _decode(fpath, ty, b, offset, path, budget, json):
    if ty.size == 0:
        budget.zero_sized += 1
        if budget.zero_sized > MAX_ZERO_SIZED:
            raise _invalid(fpath, path, offset, b"", f"at most {MAX_ZERO_SIZED} zero-sized values in one payload")
    if budget.limit is not None:
        budget.out += 2
        if budget.out > budget.limit:
            raise OutputTooLarge()
    kind = ty.kind
    if kind == "prim":
        k = ty.prim
        raw = b[offset : offset + ty.size]
        if k in (5, 10):
            v = int.from_bytes(raw, sys.byteorder, signed=(k == 10))
            return str(v) if json else v
        v = struct.unpack("=" + PRIMS[k][2], raw)[0]
        if k == 11:
            # Natively the f32's exact value; in JSON the shortest decimal that reads back to
            # it, as the CLI prints it (0.1, not 0.10000000149011612).
            if json and math.isfinite(v):
                v = shortest_f32(v, raw)
            return _json_float(v) if json else v
        if k == 12:
            return _json_float(v) if json else v
        if k == 13:
            if v > 1:
                raise _invalid(fpath, path, offset, raw, "bool (0 or 1)")
            return v == 1
        if k == 14:
            if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                raise _invalid(fpath, path, offset, raw, "char (a Unicode scalar value)")
            return chr(v)
        return v
    if kind == "enum":
        raw = b[offset : offset + ty.size]
        v = struct.unpack("=" + PRIMS[ty.repr][2], raw)[0]
        for name, value in ty.variants:
            if value == v:
                return name
        # At most 16 variants listed, as the Rust reader does.
        listed = [f"{n} = {x}" for n, x in ty.variants[:16]]
        if len(ty.variants) > 16:
            listed.append(f"... {len(ty.variants) - 16} more")
        raise _invalid(fpath, path, offset, raw, f"enum `{ty.name}` (one of {', '.join(listed)})")
    if kind == "str":
        n = struct.unpack_from("=I", b, offset)[0]
        if n > ty.cap:
            raise _invalid(fpath, path, offset, b[offset : offset + 4], f"string length at most {ty.cap}")
        text = b[offset + 4 : offset + 4 + n]
        try:
            s = text.decode("utf-8")
        except UnicodeDecodeError as e:
            at = offset + 4 + e.start
            raise _invalid(fpath, path, at, b[at : min(at + 4, offset + 4 + n)], "UTF-8 text") from None
        if budget.limit is not None:
            budget.out += len(text)
        return s
    if kind == "array":
        elem = ty.elem
        return [_decode(fpath, elem, b, offset + i * elem.size, f"{path}[{i}]", budget, json) for i in range(ty.len)]
    if kind == "struct":
        out = {}
        for f in ty.fields:
            if budget.limit is not None:
                budget.out += len(f.name.encode("utf-8")) + 3
            out[f.name] = _decode(fpath, f.type, b, offset + f.offset, _join(path, f.name), budget, json)
        return out
    raise AssertionError(kind)
