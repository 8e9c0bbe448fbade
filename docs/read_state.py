#!/usr/bin/env python3
"""read_state.py: a standalone reader of mapped-state files, written from docs/FORMAT.md alone.

It validates the header (FORMAT.md 3.1) and the manifest (6.3), takes a consistent snapshot with
the latch read protocol (9.3), decodes every field with the validity rules of section 10 and
prints the result as one JSON object per line:

    {"file": ..., "format_version": 1,
     "schema": {"name": ..., "hash": "0x...", "size": N, "align": N},
     "version": N, "writer_pid": N or null, "writer_alive": bool, "last_commit_ns": N,
     "superseded": bool, "value": ...}

Values: integers up to 64 bits are JSON numbers, 128-bit integers decimal strings, floats numbers
(the shortest text that reads back to the same f32/f64) or "NaN"/"Infinity"/"-Infinity", bool
true/false, char and FixedStr strings, enums the variant name, arrays lists, structs objects in
field order.

Usage: read_state.py [--count N] [--max-attempts N] [--allow-shared-writable] FILE
Exit status: 0 success, 2 the file is refused (not a valid state file, insecure, I/O error),
3 the snapshot holds an invalid value, 4 no consistent snapshot within the attempt budget.

Python only reads bytes (standard library: os, mmap, struct, json; fcntl for the liveness probe). See `snapshot` for why its
reads are not the atomic loads FORMAT.md asks for and why that is acceptable for this tool.
"""

import argparse
import errno
import fcntl
import json
import math
import mmap
import os
import stat
import struct
import sys
import time

# FORMAT.md section 1 and 3.
MAGIC = b"MAPSTATE"
VERSION = 1
ENDIAN_TAG = 0x01020304
HEADER_LEN = 128
WORD = 8
PAYLOAD_OFFSET = 256
STRIDE_ALIGN = 64
MAX_PAYLOAD = 1 << 30
MAX_MANIFEST = 1 << 20
MAX_ALIGN = 64
MIN_FILE_LEN = PAYLOAD_OFFSET + 2 * STRIDE_ALIGN + 1
# Control block, section 5.
OFF_SEQ, OFF_FLAGS, OFF_WRITER_PID, OFF_COMMIT_TIME = 128, 140, 144, 152
FLAG_SUPERSEDED = 1
# Manifest, section 6.
MANIFEST_MAGIC = b"MSMF"
MANIFEST_VERSION = 1
MAX_DEPTH = 32
MAX_NODES = 100_000
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
    if len(b) < 8 or b[:8] != MAGIC:
        raise Refused(f"not a mapped-state file (first bytes {b[:8].hex(' ')}, expected \"MAPSTATE\")")
    if len(b) < HEADER_LEN:
        raise Refused(f"file is {actual_len} bytes long, expected {MIN_FILE_LEN} (truncated?)")
    endian = u32n(b, 12)
    if endian != ENDIAN_TAG:
        if endian == 0x04030201:
            raise Refused(f"written with the other byte order (endian tag {endian:#010x})")
        raise corrupt("endian_tag", 12, f"{ENDIAN_TAG:#010x}", f"{endian:#010x}")
    version = u32n(b, 8)
    if version != VERSION:
        raise Refused(f"format version {version} is not supported (this reader reads version {VERSION})")
    if u32n(b, 16) != HEADER_LEN:
        raise corrupt("header_len", 16, HEADER_LEN, u32n(b, 16))
    if u32n(b, 20) != WORD:
        raise corrupt("word_size", 20, WORD, u32n(b, 20))
    h = {
        "schema_hash": u64n(b, 24),
        "payload_size": u64n(b, 32),
        "payload_align": u64n(b, 40),
        "slot_stride": u64n(b, 48),
        "file_len": u64n(b, 56),
        "manifest_offset": u64n(b, 64),
        "manifest_len": u64n(b, 72),
        "nonce": u64n(b, 80),
    }
    size, align = h["payload_size"], h["payload_align"]
    if not 1 <= size <= MAX_PAYLOAD:
        raise corrupt("payload_size", 32, f"1..={MAX_PAYLOAD}", size)
    if not is_pow2(align) or align > MAX_ALIGN:
        raise corrupt("payload_align", 40, f"a power of two up to {MAX_ALIGN}", align)
    if size % align != 0:
        raise corrupt("payload_size", 32, f"a multiple of payload_align {align}", size)
    stride = align_up(size, STRIDE_ALIGN)
    if h["slot_stride"] != stride:
        raise corrupt("slot_stride", 48, stride, h["slot_stride"])
    if u64n(b, 88) != PAYLOAD_OFFSET:
        raise corrupt("payload_offset", 88, PAYLOAD_OFFSET, u64n(b, 88))
    manifest_offset = PAYLOAD_OFFSET + 2 * stride
    if h["manifest_offset"] != manifest_offset:
        raise corrupt("manifest_offset", 64, manifest_offset, h["manifest_offset"])
    if not 1 <= h["manifest_len"] <= MAX_MANIFEST:
        raise corrupt("manifest_len", 72, f"1..={MAX_MANIFEST}", h["manifest_len"])
    file_len = manifest_offset + h["manifest_len"]
    if h["file_len"] != file_len:
        raise corrupt("file_len", 56, file_len, h["file_len"])
    for i in range(96, 120):
        if b[i] != 0:
            raise corrupt("reserved", i, 0, b[i])
    checksum = fnv1a64(b[:120])
    if u64n(b, 120) != checksum:
        raise corrupt("checksum", 120, f"{checksum:#018x}", f"{u64n(b, 120):#018x}")
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


def writer_alive(fd):
    """FORMAT.md 9.9: a shared flock succeeds only when no writer holds the exclusive one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


# ---------------------------------------------------------------------------------------------
# The latch read: FORMAT.md 9.3.


def load_seq(mm):
    # Native "@" format: CPython copies the 8 bytes with one memcpy, which compilers emit as a
    # single aligned 8-byte load on 64-bit targets. That is what the word needs in practice, but
    # nothing guarantees it (see `snapshot`).
    return struct.unpack_from("@Q", mm, OFF_SEQ)[0]


def snapshot(mm, header, max_attempts):
    """A consistent copy of the payload and its version, by the latch read protocol.

    FORMAT.md asks for 8-byte atomic loads and acquire fences. Python can do neither: an mmap
    slice is a memcpy whose loads may be of any width and in any order the C library picks, and
    there is no fence. So this reader relies on the validation alone: it re-reads `seq` after
    copying the words and accepts only when it is unchanged, retrying otherwise. This is sound on
    x86-64, where loads are not reordered with other loads and the writer's stores become visible
    in program order (TSO); on weakly ordered CPUs (ARM, POWER) a torn snapshot could in rare
    cases pass the check. That is acceptable for a diagnostic tool: it only reads, so the worst
    outcome is one wrong line of output (and every value is still validated, so it cannot crash);
    programs that act on the values should use the Rust reader, which does the real atomic loads.
    """
    stride = header["slot_stride"]
    nbytes = -(-header["payload_size"] // WORD) * WORD
    for attempt in range(max_attempts):
        s1 = load_seq(mm)
        base = PAYLOAD_OFFSET + (s1 & 1) * stride
        words = mm[base : base + nbytes]
        if load_seq(mm) == s1:
            return words[: header["payload_size"]], s1 >> 1
        # Back off as the Rust reader does: busy retries first (a commit takes nanoseconds, and
        # one Python attempt takes longer than that), then give up the CPU.
        if attempt >= 16:
            time.sleep(0)
    raise Contended(f"gave up reading a consistent snapshot after {max_attempts} attempts")


def control(mm):
    """Control-block fields other than `seq` (FORMAT.md 5); hints, read without the latch."""
    pid = struct.unpack_from("@Q", mm, OFF_WRITER_PID)[0]
    return {
        "writer_pid": pid if 0 < pid < (1 << 32) else None,
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


def decode(ty, b, offset, path):
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
        listed = ", ".join(f"{n} = {x}" for n, x in ty["variants"])
        raise invalid(path, offset, raw, f"enum `{ty['name']}` (one of {listed})")
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
        return [decode(elem, b, offset + i * elem["size"], f"{path}[{i}]") for i in range(ty["len"])]
    if kind == "struct":
        return {name: decode(fty, b, offset + at, join(path, name)) for name, at, fty in ty["fields"]}
    raise AssertionError(kind)


# ---------------------------------------------------------------------------------------------


def main(argv):
    ap = argparse.ArgumentParser(description="Print a mapped-state file as JSON (see docs/FORMAT.md).")
    ap.add_argument("file")
    ap.add_argument("--count", type=int, default=1, help="snapshots to take, one JSON line each")
    ap.add_argument("--max-attempts", type=int, default=10_000, help="latch read attempts per snapshot")
    ap.add_argument("--allow-shared-writable", action="store_true", help="accept files others may write")
    args = ap.parse_args(argv)
    try:
        fd, header, ty, mm = open_state(args.file, args.allow_shared_writable)
        try:
            with mm:
                for _ in range(max(args.count, 1)):
                    payload, version = snapshot(mm, header, max(args.max_attempts, 1))
                    doc = {
                        "file": args.file,
                        "format_version": VERSION,
                        "schema": {
                            "name": ty["name"],
                            "hash": f"{header['schema_hash']:#018x}",
                            "size": header["payload_size"],
                            "align": header["payload_align"],
                        },
                        "version": version,
                        "writer_alive": writer_alive(fd),
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
