#!/usr/bin/env python3
"""read_state.py: a standalone reader of mapped-state files, written from docs/FORMAT.md alone.

It validates the header (FORMAT.md 3.1) and the manifest (6.3), takes a consistent snapshot with
the ring read protocol (FORMAT.md 9.3; with --history, every version still in the ring), decodes every
field with the validity rules of section 10 and prints the result as one JSON object per line:

    {"file": ..., "format_version": 2, "slots": N,
     "schema": {"name": ..., "hash": "0x...", "size": N, "align": N},
     "version": N, "writer_pid": N or null, "writer_start": N or null, "writer_alive": bool,
     "last_commit_ns": N, "superseded": bool, "value": ...}

Values: integers up to 64 bits are JSON numbers, 128-bit integers decimal strings, floats numbers
(the shortest text that reads back to the same f32/f64) or "NaN"/"Infinity"/"-Infinity", bool
true/false, char and FixedStr strings, enums the variant name, arrays lists, structs objects in
field order.

Usage: read_state.py [--count N | --history] [--max-attempts N] [--allow-shared-writable] FILE

--history prints the versions still in the ring, newest first, one line each, and stops at the
first one the writer has overwritten (FORMAT.md 9.3, "History").

Exit status: 0 success, 2 the file is refused (not a valid state file, insecure, I/O error),
3 the snapshot holds an invalid value, 4 no consistent snapshot within the attempt budget.

Python only reads bytes (standard library: os, mmap, struct, json; /proc for the liveness probe).
See `read_words` for why its reads are not quite the atomic loads FORMAT.md asks for and why that
is acceptable for this tool.
"""

import argparse
import errno
import json
import math
import mmap
import os
import stat
import struct
import sys
import time

# FORMAT.md sections 1, 2 and 3.
MAGIC = b"MAPSTATE"
VERSION = 2
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
OFF_SEQ, OFF_NOTIFY, OFF_FLAGS, OFF_WRITER_PID, OFF_COMMIT_TIME, OFF_WRITER_START = 128, 136, 140, 144, 152, 160
FLAG_CLOSED = 2
FLAG_SUPERSEDED = 1
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


class Refused(Exception):
    """The file is not a state file this reader accepts (exit status 2)."""


class InvalidValue(Exception):
    """The snapshot holds bytes that are not a valid value (exit status 3)."""


class Contended(Exception):
    """No consistent snapshot within the attempt budget (exit status 4)."""


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


def u32n(b, at):
    return struct.unpack_from("=I", b, at)[0]


def u64n(b, at):
    return struct.unpack_from("=Q", b, at)[0]


def corrupt(field, offset, expected, found):
    return Refused(f"corrupt header: field `{field}` at byte {offset} is {found}, expected {expected}")


def parse_header(b, actual_len):
    """FORMAT.md 3.1: the checks in the order of the table (the Rust parser's), each naming the
    field and the byte the Rust reader names."""
    if len(b) < 8 or b[:8] != MAGIC:
        raise Refused(f"not a mapped-state file (first bytes {b[:8].hex(' ')}, expected \"MAPSTATE\")")
    if len(b) < HEADER_LEN:
        raise Refused(f"file is {actual_len} bytes long, expected {MIN_FILE_LEN} (truncated?)")
    endian = u32n(b, OFF_ENDIAN)
    if endian != ENDIAN_TAG:
        if endian == 0x04030201:
            raise Refused(f"written with the other byte order (endian tag {endian:#010x})")
        raise corrupt("endian_tag", OFF_ENDIAN, f"{ENDIAN_TAG:#010x}", f"{endian:#010x}")
    version = u32n(b, OFF_VERSION)
    if version != VERSION:
        raise Refused(f"format version {version} is not supported (this reader reads version {VERSION})")
    if u32n(b, OFF_HEADER_LEN) != HEADER_LEN:
        raise corrupt("header_len", OFF_HEADER_LEN, HEADER_LEN, u32n(b, OFF_HEADER_LEN))
    if u32n(b, OFF_WORD_SIZE) != WORD:
        raise corrupt("word_size", OFF_WORD_SIZE, WORD, u32n(b, OFF_WORD_SIZE))
    h = {
        "schema_hash": u64n(b, OFF_SCHEMA_HASH),
        "payload_size": u64n(b, OFF_PAYLOAD_SIZE),
        "payload_align": u64n(b, OFF_PAYLOAD_ALIGN),
        "slot_stride": u64n(b, OFF_SLOT_STRIDE),
        "file_len": u64n(b, OFF_FILE_LEN),
        "manifest_offset": u64n(b, OFF_MANIFEST_OFFSET),
        "manifest_len": u64n(b, OFF_MANIFEST_LEN),
        "nonce": u64n(b, OFF_NONCE),
        "slot_count": u64n(b, OFF_SLOT_COUNT),
    }
    size, align = h["payload_size"], h["payload_align"]
    if not 1 <= size <= MAX_PAYLOAD:
        raise corrupt("payload_size", OFF_PAYLOAD_SIZE, f"1..={MAX_PAYLOAD}", size)
    if not is_pow2(align) or align > MAX_ALIGN:
        raise corrupt("payload_align", OFF_PAYLOAD_ALIGN, f"a power of two up to {MAX_ALIGN}", align)
    if size % align != 0:
        raise corrupt("payload_size", OFF_PAYLOAD_SIZE, f"a multiple of payload_align {align}", size)
    stride = align_up(size, STRIDE_ALIGN)
    if h["slot_stride"] != stride:
        raise corrupt("slot_stride", OFF_SLOT_STRIDE, f"{stride} (payload_size rounded up to {STRIDE_ALIGN})", h["slot_stride"])
    payload_offset = u64n(b, OFF_PAYLOAD_OFFSET)
    if payload_offset != PAYLOAD_OFFSET:
        raise corrupt("payload_offset", OFF_PAYLOAD_OFFSET, PAYLOAD_OFFSET, payload_offset)
    n = h["slot_count"]
    if not is_pow2(n) or not MIN_SLOTS <= n <= MAX_SLOTS:
        raise corrupt("slot_count", OFF_SLOT_COUNT, f"a power of two from {MIN_SLOTS} to {MAX_SLOTS}", n)
    ring = n * stride
    if ring > MAX_RING_BYTES:
        raise corrupt(
            "slot_count", OFF_SLOT_COUNT,
            f"at most {MAX_RING_BYTES // stride} slots of {stride} bytes (a ring of at most {MAX_RING_BYTES} bytes)", n,
        )
    manifest_offset = PAYLOAD_OFFSET + ring
    if h["manifest_offset"] != manifest_offset:
        raise corrupt("manifest_offset", OFF_MANIFEST_OFFSET, f"{manifest_offset} (right after the last slot)", h["manifest_offset"])
    if not 1 <= h["manifest_len"] <= MAX_MANIFEST:
        raise corrupt("manifest_len", OFF_MANIFEST_LEN, f"1..={MAX_MANIFEST}", h["manifest_len"])
    file_len = manifest_offset + h["manifest_len"]
    if h["file_len"] != file_len:
        raise corrupt("file_len", OFF_FILE_LEN, f"{file_len} (manifest_offset + manifest_len)", h["file_len"])
    for i in range(OFF_RESERVED, OFF_CHECKSUM):
        if b[i] != 0:
            raise corrupt("reserved", i, 0, b[i])
    checksum = fnv1a64(b[:OFF_CHECKSUM])
    stored = u64n(b, OFF_CHECKSUM)
    if stored != checksum:
        raise corrupt("checksum", OFF_CHECKSUM, f"{checksum:#018x} (FNV-1a 64 of bytes 0..120)", f"{stored:#018x}")
    if actual_len != file_len:
        raise Refused(f"file is {actual_len} bytes long, expected {file_len}")
    return h


# ---------------------------------------------------------------------------------------------
# Manifest: FORMAT.md 6.1 (little-endian) and 6.3. A type is a dict with "kind", "size",
# "align" and per-kind entries.


class ManifestParser:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.nodes = 0

    def fail(self, offset, reason):
        return Refused(f"corrupt schema manifest at manifest byte {offset}: {reason}")

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
        size_at = self.pos
        size, align = self.u32(), self.u32()
        ty = self.type(0)
        if ty["size"] != size or ty["align"] != align:
            raise self.fail(size_at, f"manifest says size {size} align {align}, its type has size {ty['size']} align {ty['align']}")
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
            return {"kind": "prim", "prim": k, "name": name, "size": size, "align": size}
        if k == KIND_ENUM:
            name = self.string()
            repr_at = self.pos
            repr_kind = self.u8()
            if repr_kind not in ENUM_REPRS:
                raise self.fail(repr_at, "enum representation is not u8/u16/u32/i8/i16/i32")
            rname, rsize, _ = PRIMS[repr_kind]
            lo, hi = (0, (1 << (8 * rsize)) - 1) if rname[0] == "u" else (-(1 << (8 * rsize - 1)), (1 << (8 * rsize - 1)) - 1)
            variants = []
            for _ in range(self.u32()):
                self.node()
                vname = self.string()
                vat = self.pos
                value = self.i64()
                if not lo <= value <= hi:
                    raise self.fail(vat, f"variant `{vname}` = {value} does not fit in {rname}")
                variants.append((vname, value))
            return {"kind": "enum", "name": name, "repr": repr_kind, "variants": variants, "size": rsize, "align": rsize}
        if k == KIND_ARRAY:
            length = self.u32()
            elem = self.type(depth + 1)
            if elem["size"] * length > MAX_PAYLOAD:
                raise self.fail(at, "array larger than the payload limit")
            return {"kind": "array", "elem": elem, "len": length, "size": elem["size"] * length, "align": elem["align"],
                    "name": f"[{elem['name']}; {length}]"}
        if k == KIND_STR:
            cap = self.u32()
            if cap > MAX_PAYLOAD:
                raise self.fail(at, "string capacity larger than the payload limit")
            return {"kind": "str", "cap": cap, "size": align_up(4 + cap, 4), "align": 4, "name": f"FixedStr<{cap}>"}
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
                if offset < end or offset % fty["align"] != 0 or fty["align"] > align or offset + fty["size"] > size:
                    raise self.fail(fat, f"field `{name}.{fname}` ({fty['name']} @{offset}) overlaps, is misaligned or lies outside the struct")
                if fname in seen:
                    raise self.fail(fat, f"field `{name}.{fname}` appears twice")
                seen.add(fname)
                end = offset + fty["size"]
                fields.append((fname, offset, fty))
            return {"kind": "struct", "name": name, "fields": fields, "size": size, "align": align}
        raise self.fail(at, f"unknown type kind {k}")


# ---------------------------------------------------------------------------------------------
# Opening: FORMAT.md 3.2.


def open_state(path, allow_shared_writable):
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Refused("refused: it is a symbolic link; open the file it points to") from None
        raise Refused(f"open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("refused: it is not a regular file")
        mode = st.st_mode & 0o7777
        if mode & 0o022 and not allow_shared_writable:
            raise Refused(f"refused: its mode {mode:o} lets group or other users write it (--allow-shared-writable)")
        head = os.pread(fd, HEADER_LEN, 0)
        header = parse_header(head, st.st_size)
        manifest = os.pread(fd, header["manifest_len"], header["manifest_offset"])
        if len(manifest) != header["manifest_len"]:
            raise Refused(f"file is {header['manifest_offset'] + len(manifest)} bytes long, expected {header['file_len']}")
        digest = fnv1a64(manifest)
        if digest != header["schema_hash"]:
            raise Refused(
                f"corrupt schema manifest at manifest byte 0: FNV-1a 64 of the manifest is {digest:#018x}, "
                f"the header's schema_hash is {header['schema_hash']:#018x}"
            )
        ty = ManifestParser(manifest).manifest()
        if ty["size"] != header["payload_size"] or ty["align"] != header["payload_align"]:
            raise Refused(
                f"corrupt schema manifest at manifest byte 5: manifest type has size {ty['size']} align {ty['align']}, "
                f"header says payload_size {header['payload_size']} payload_align {header['payload_align']}"
            )
        mm = mmap.mmap(fd, header["file_len"], flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    except BaseException:
        os.close(fd)
        raise
    return fd, header, ty, mm


def process_start(pid):
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    fields = stat_line[stat_line.rfind(b")") + 1:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def writer_alive(mm):
    """FORMAT.md 9.9: no lock, no write. The recorded writer is alive while the file is not
    flagged closed and a process with its pid and its start time exists."""
    pid = struct.unpack_from("@Q", mm, OFF_WRITER_PID)[0]
    start = struct.unpack_from("@Q", mm, OFF_WRITER_START)[0]
    flags = struct.unpack_from("@I", mm, OFF_FLAGS)[0]
    if flags & FLAG_CLOSED or not 0 < pid < (1 << 32):
        return False
    now = process_start(pid)
    if now is None:
        if os.path.exists("/proc/self/stat"):
            return False
        try:
            os.kill(pid, 0)
        except PermissionError:
            return True
        except OSError:
            return False
        return True
    return start == 0 or now == start


# ---------------------------------------------------------------------------------------------
# The ring read: FORMAT.md 9.3 (the newest version and the history).


def load_seq(mm):
    # Native "@" format: CPython copies the 8 bytes with one memcpy, which compilers emit as a
    # single aligned 8-byte load on 64-bit targets. That is what the word needs in practice, but
    # nothing guarantees it (see `read_words`).
    return struct.unpack_from("@Q", mm, OFF_SEQ)[0]


def last_acceptable(v, n):
    """FORMAT.md 9.3: a read of version `v`'s slot is valid iff the re-loaded `seq` is at most
    2(v + N) - 2: the slot is next written by version v + N, whose write starts at seq 2(v+N) - 1.
    (Python integers do not overflow; the Rust reader saturates at 2^64 - 1, which accepts the
    same values of a 64-bit `seq`.)"""
    return 2 * (v + n) - 2


def read_words(mm, header, v):
    """Copies the payload words of version `v`'s slot, `v mod N`, one 8-byte word at a time.

    FORMAT.md asks for 8-byte atomic loads and acquire fences. Python has neither: this copies
    with `struct.unpack_from("@<n>Q")`, which reads each word with its own 8-byte `memcpy`, in
    order (a single aligned 8-byte load per word on 64-bit targets, in practice, but nothing
    guarantees it), and there is no fence. So this reader relies on the validation alone. That
    is sound on x86-64, where loads are not reordered with other loads and the writer's stores
    become visible in program order (TSO); on weakly ordered CPUs (ARM, POWER) a torn read could
    in rare cases pass the check. That is acceptable for a diagnostic tool: it only reads, so the
    worst outcome is one wrong line of output (and every value is still validated, so it cannot
    crash); programs that act on the values should use the Rust reader, which does the real
    atomic loads and fences.
    """
    n = header["slot_count"]
    words = -(-header["payload_size"] // WORD)
    base = PAYLOAD_OFFSET + (v & (n - 1)) * header["slot_stride"]
    copied = struct.unpack_from(f"@{words}Q", mm, base)
    return struct.pack(f"@{words}Q", *copied)[: header["payload_size"]]


def snapshot(mm, header, max_attempts):
    """A consistent copy of the newest payload and its version (FORMAT.md 9.3)."""
    n = header["slot_count"]
    for attempt in range(max_attempts):
        s1 = load_seq(mm)
        c = s1 >> 1
        payload = read_words(mm, header, c)
        if load_seq(mm) <= last_acceptable(c, n):
            return payload, c
        # The writer lapped this read (N - 1 commits and the start of another during one copy).
        # Back off as the Rust reader does: busy retries first (a commit takes nanoseconds, and
        # one Python attempt takes longer than that), then give up the CPU.
        if attempt >= 16:
            time.sleep(0)
    raise Contended(f"gave up reading a consistent snapshot after {max_attempts} attempts")


GONE, NOT_YET = "gone", "not yet"


def snapshot_version(mm, header, h):
    """Version `h` of the history, if the ring still holds it (FORMAT.md 9.3): one attempt, as
    the Rust reader makes. Returns the payload, or GONE / NOT_YET."""
    n = header["slot_count"]
    c = load_seq(mm) >> 1
    if h > c:
        return NOT_YET
    if c - h >= n:
        return GONE
    payload = read_words(mm, header, h)
    if load_seq(mm) <= last_acceptable(h, n):
        return payload
    return GONE


def control(mm):
    """Control-block fields other than `seq` (FORMAT.md 5): hints, not covered by the ring."""
    pid = struct.unpack_from("@Q", mm, OFF_WRITER_PID)[0]
    start = struct.unpack_from("@Q", mm, OFF_WRITER_START)[0]
    return {
        "writer_pid": pid if 0 < pid < (1 << 32) else None,
        "writer_start": start or None,
        "last_commit_ns": struct.unpack_from("@Q", mm, OFF_COMMIT_TIME)[0],
        "superseded": bool(struct.unpack_from("@I", mm, OFF_FLAGS)[0] & FLAG_SUPERSEDED),
    }


# ---------------------------------------------------------------------------------------------
# Values: FORMAT.md 8 and 10. Payload integers are native-endian ("=" formats).


def invalid(path, offset, raw, expected):
    field = path or "value"
    return InvalidValue(f"invalid value: field `{field}` at payload byte {offset} holds {raw.hex(' ')}, expected {expected}")


def join(path, name):
    return f"{path}.{name}" if path else name


def shortest_f32(x, raw):
    """The shortest decimal that reads back as the same f32 (9 significant digits always do)."""
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        try:
            if struct.pack("=f", float(text)) == raw:
                return float(text)
        except OverflowError:
            # Rounded past the largest f32 (near f32::MAX): more digits are needed.
            continue
    return x


def float_json(x, raw=None):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return shortest_f32(x, raw) if raw is not None else x


def decode(ty, b, offset, path, zero_sized=None):
    """The JSON form of the value of type `ty` at payload byte `offset` of `b`. `zero_sized`
    counts the values of size zero decoded so far: a manifest can declare billions of them in no
    bytes (`[Empty; 4000000000]`), so they share a budget of MAX_ZERO_SIZED per payload."""
    if zero_sized is None:
        zero_sized = [0]
    if ty["size"] == 0:
        zero_sized[0] += 1
        if zero_sized[0] > MAX_ZERO_SIZED:
            raise invalid(path, offset, b"", f"at most {MAX_ZERO_SIZED} zero-sized values in one payload")
    kind = ty["kind"]
    raw = b[offset : offset + ty["size"]]
    if kind == "prim":
        k = ty["prim"]
        if k in (5, 10):
            return str(int.from_bytes(raw, sys.byteorder, signed=(k == 10)))
        fmt = "=" + PRIMS[k][2]
        v = struct.unpack(fmt, raw)[0]
        if k == 11:
            return float_json(v, raw)
        if k == 12:
            return float_json(v)
        if k == 13:
            if v > 1:
                raise invalid(path, offset, raw, "bool (0 or 1)")
            return v == 1
        if k == 14:
            if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                raise invalid(path, offset, raw, "char (a Unicode scalar value)")
            return chr(v)
        return v
    if kind == "enum":
        rname, _, fmt = PRIMS[ty["repr"]]
        v = struct.unpack("=" + fmt, raw)[0]
        for name, value in ty["variants"]:
            if value == v:
                return name
        # At most 16 variants listed, as the Rust reader does.
        listed = [f"{n} = {x}" for n, x in ty["variants"][:16]]
        if len(ty["variants"]) > 16:
            listed.append(f"... {len(ty['variants']) - 16} more")
        raise invalid(path, offset, raw, f"enum `{ty['name']}` (one of {', '.join(listed)})")
    if kind == "str":
        n = struct.unpack_from("=I", b, offset)[0]
        if n > ty["cap"]:
            raise invalid(path, offset, raw[:4], f"string length at most {ty['cap']}")
        text = b[offset + 4 : offset + 4 + n]
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            at = offset + 4 + e.start
            raise invalid(path, at, b[at : min(at + 4, offset + 4 + n)], "UTF-8 text") from None
    if kind == "array":
        elem = ty["elem"]
        return [decode(elem, b, offset + i * elem["size"], f"{path}[{i}]", zero_sized) for i in range(ty["len"])]
    if kind == "struct":
        return {name: decode(fty, b, offset + at, join(path, name), zero_sized) for name, at, fty in ty["fields"]}
    raise AssertionError(kind)


# ---------------------------------------------------------------------------------------------


def history(mm, header):
    """The versions still in the ring, newest first (FORMAT.md 9.3), as `(payload, version)`:
    from the newest back through at most N versions, ending at the first one the writer has
    overwritten (also when it does so during the read)."""
    newest = load_seq(mm) >> 1
    for back in range(header["slot_count"]):
        v = newest - back
        if v < 0:
            return
        got = snapshot_version(mm, header, v)
        if got is GONE or got is NOT_YET:
            return
        yield got, v


def main(argv):
    ap = argparse.ArgumentParser(description="Print a mapped-state file as JSON (see docs/FORMAT.md).")
    ap.add_argument("file")
    ap.add_argument("--count", type=int, default=1, help="snapshots to take, one JSON line each")
    ap.add_argument("--history", action="store_true", help="print every version still in the ring, newest first")
    ap.add_argument("--max-attempts", type=int, default=10_000, help="ring read attempts per snapshot")
    ap.add_argument("--allow-shared-writable", action="store_true", help="accept files others may write")
    args = ap.parse_args(argv)
    try:
        fd, header, ty, mm = open_state(args.file, args.allow_shared_writable)
        try:
            with mm:
                if args.history:
                    reads = history(mm, header)
                else:
                    reads = (snapshot(mm, header, max(args.max_attempts, 1)) for _ in range(max(args.count, 1)))
                for payload, version in reads:
                    doc = {
                        "file": args.file,
                        "format_version": VERSION,
                        "slots": header["slot_count"],
                        "schema": {
                            "name": ty["name"],
                            "hash": f"{header['schema_hash']:#018x}",
                            "size": header["payload_size"],
                            "align": header["payload_align"],
                        },
                        "version": version,
                        "writer_alive": writer_alive(mm),
                        **control(mm),
                        "value": decode(ty, payload, 0, ""),
                    }
                    print(json.dumps(doc), flush=True)
        finally:
            os.close(fd)
    except Refused as e:
        print(f"read_state.py: {args.file}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"read_state.py: {args.file}: {e}", file=sys.stderr)
        return 2
    except InvalidValue as e:
        print(f"read_state.py: {args.file}: {e}", file=sys.stderr)
        return 3
    except Contended as e:
        print(f"read_state.py: {args.file}: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
