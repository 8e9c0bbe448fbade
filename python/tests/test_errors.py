"""Broken copies of a file the Rust writer wrote: the package must refuse each as the CLI does
(the same exit code and the same message), with the error class the Rust library names."""

import os
import random
import shutil
import struct
import sys
import tempfile
import unittest

import mapped_state
from mapped_state import format as F
from support import CLI, SCRIPT, comparable, inspect_json, needs_files, path, run


def native(v):
    return struct.pack("=Q", v)


def native32(v):
    return struct.pack("=I", v)


# (what is broken, patches (offset, bytes), the error class, its field and offset) in the order
# of FORMAT.md 3.1: each breaks only its own check.
HEADER_CASES = [
    ("magic", [(0, b"MAPSTATX")], mapped_state.NotAStateFile, None),
    ("endian tag of the other byte order", [(12, struct.pack("=I", 0x04030201))], mapped_state.ForeignEndian, None),
    ("endian tag", [(12, native32(7))], mapped_state.CorruptHeader, ("endian_tag", 12)),
    ("version 1", [(8, native32(1))], mapped_state.UnsupportedVersion, None),
    ("version 3", [(8, native32(3))], mapped_state.UnsupportedVersion, None),
    ("header length", [(16, native32(256))], mapped_state.CorruptHeader, ("header_len", 16)),
    ("word size", [(20, native32(4))], mapped_state.CorruptHeader, ("word_size", 20)),
    ("payload size 0", [(32, native(0))], mapped_state.CorruptHeader, ("payload_size", 32)),
    ("payload size over 1 GiB", [(32, native((1 << 30) + 8))], mapped_state.CorruptHeader, ("payload_size", 32)),
    ("payload align 3", [(40, native(3))], mapped_state.CorruptHeader, ("payload_align", 40)),
    ("payload size not a multiple of its alignment", [(32, native(12))], mapped_state.CorruptHeader, ("payload_size", 32)),
    ("slot stride", [(48, native(4096))], mapped_state.CorruptHeader, ("slot_stride", 48)),
    ("payload offset", [(88, native(192))], mapped_state.CorruptHeader, ("payload_offset", 88)),
    ("slot count 3", [(96, native(3))], mapped_state.CorruptHeader, ("slot_count", 96)),
    ("slot count 512", [(96, native(512))], mapped_state.CorruptHeader, ("slot_count", 96)),
    (
        "a ring over 4 GiB",
        [(32, native(1 << 30)), (48, native(1 << 30)), (96, native(8))],
        mapped_state.CorruptHeader,
        ("slot_count", 96),
    ),
    ("slot count against the manifest offset", [(96, native(8))], mapped_state.CorruptHeader, ("manifest_offset", 64)),
    ("manifest length 0", [(72, native(0))], mapped_state.CorruptHeader, ("manifest_len", 72)),
    ("file length", [(56, native(1 << 20))], mapped_state.CorruptHeader, ("file_len", 56)),
    ("reserved byte", [(104, b"\x01")], mapped_state.CorruptHeader, ("reserved", 104)),
    ("nonce (caught by the checksum)", [(80, b"\xff")], mapped_state.CorruptHeader, ("checksum", 120)),
    ("checksum", [(127, b"\x5a")], mapped_state.CorruptHeader, ("checksum", 120)),
]


@needs_files
class Refusals(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ms-py-errors-")
        self.good = path("telemetry.state")
        with open(self.good, "rb") as f:
            self.pristine = f.read()
        with mapped_state.open(self.good) as r:
            self.header = r.header
            self.schema = r.schema
            self.version = r.version

    def tearDown(self):
        for root, dirs, _ in os.walk(self.dir):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o700)
        shutil.rmtree(self.dir)

    def broken(self, patches=(), data=None, name="bad.state"):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(self.pristine if data is None else data)
        with open(p, "r+b") as f:
            for offset, b in patches:
                f.seek(offset)
                f.write(b)
        os.chmod(p, 0o600)
        return p

    def same_as_cli(self, p, code, *extra, script=None):
        """Both commands exit with `code` and print the same message; returns it. `script`: the
        console script runs as a process (else `mapped_state.cli.main` runs in this one)."""
        ccode, cdocs, cmsg = inspect_json(CLI, p, *extra)
        pcode, pdocs, pmsg = inspect_json(SCRIPT if script else None, p, *extra)
        self.assertEqual(ccode, code, cmsg)
        self.assertEqual(pcode, code, pmsg)
        self.assertEqual(([comparable(d) for d in pdocs], pmsg), ([comparable(d) for d in cdocs], cmsg))
        return pmsg

    def test_corrupt_headers(self):
        for what, patches, cls, named in HEADER_CASES:
            with self.subTest(what):
                p = self.broken(patches)
                self.same_as_cli(p, 1, script=what == "magic")
                with self.assertRaises(cls) as cm:
                    mapped_state.open(p)
                self.assertIsInstance(cm.exception, mapped_state.InvalidFile)
                if named is not None:
                    self.assertEqual((cm.exception.field, cm.exception.offset), named)

    def test_corrupt_manifest(self):
        mo = self.header.manifest_offset
        p = self.broken([(mo + 20, b"X")])
        msg = self.same_as_cli(p, 1)
        self.assertIn("manifest byte 0", msg)
        with self.assertRaises(mapped_state.CorruptManifest) as cm:
            mapped_state.open(p)
        self.assertEqual(cm.exception.offset, 0)

    def test_wrong_lengths(self):
        for what, data, expected in [
            ("one byte short", self.pristine[:-1], len(self.pristine)),
            ("one byte long", self.pristine + b"\0", len(self.pristine)),
            ("shorter than a header", self.pristine[:100], F.MIN_FILE_LEN),
        ]:
            with self.subTest(what):
                p = self.broken(data=data)
                self.same_as_cli(p, 1)
                with self.assertRaises(mapped_state.WrongLength) as cm:
                    mapped_state.open(p)
                self.assertEqual(cm.exception.expected, expected)
        p = self.broken(data=b"")
        self.same_as_cli(p, 1)
        with self.assertRaises(mapped_state.NotAStateFile):
            mapped_state.open(p)

    def field_offset(self, name):
        for f in self.schema.fields:
            if f.name == name:
                return f.offset
        raise KeyError(name)

    def test_invalid_values_in_the_newest_slot(self):
        slot = F.PAYLOAD_OFFSET + (self.version % self.header.slot_count) * self.header.slot_stride
        label = self.field_offset("label")
        cases = [
            ("bool", [(slot + self.field_offset("healthy"), b"\x02")], "healthy"),
            ("enum", [(slot + self.field_offset("mode"), b"\x09")], "mode"),
            ("char", [(slot + self.field_offset("grade"), native32(0xD800))], "grade"),
            ("string length", [(slot + label, native32(33))], "label"),
            ("UTF-8", [(slot + label + 4, b"\xff")], "label"),
        ]
        for what, patches, field in cases:
            with self.subTest(what):
                p = self.broken(patches)
                self.same_as_cli(p, 1)
                with mapped_state.open(p) as r:
                    with self.assertRaises(mapped_state.InvalidValue) as cm:
                        r.load()
                self.assertEqual(cm.exception.field, field)
        # The same byte in every other slot: the newest version is still read whole and valid.
        others = [
            (F.PAYLOAD_OFFSET + s * self.header.slot_stride + self.field_offset("healthy"), b"\x02")
            for s in range(self.header.slot_count)
            if s != self.version % self.header.slot_count
        ]
        p = self.broken(others)
        self.same_as_cli(p, 0)
        with mapped_state.open(p) as r:
            self.assertTrue(r.load()["healthy"])

    def test_files_that_cannot_be_opened(self):
        missing = os.path.join(self.dir, "missing.state")
        self.same_as_cli(missing, 3, script=True)
        with self.assertRaises(mapped_state.Io):
            mapped_state.open(missing)

        shared = self.broken(name="shared.state")
        os.chmod(shared, 0o666)
        self.same_as_cli(shared, 3)
        with self.assertRaises(mapped_state.Insecure) as cm:
            mapped_state.open(shared)
        self.assertEqual((cm.exception.why, cm.exception.mode), ("writable-by-others", 0o666))
        self.same_as_cli(shared, 0, "--allow-shared-writable")
        mapped_state.open(shared, allow_shared_writable=True).close()

        if os.geteuid() == 0:
            # Owned by another user: refused unless that owner is trusted.
            other = self.broken(name="other.state")
            os.chown(other, 12345, -1)
            msg = self.same_as_cli(other, 3, script=True)
            self.assertIn("--trust-owner 12345", msg)
            with self.assertRaises(mapped_state.Insecure) as cm:
                mapped_state.open(other)
            self.assertEqual((cm.exception.why, cm.exception.uid), ("untrusted-owner", 12345))
            self.same_as_cli(other, 0, "--trust-owner", "12345")
            mapped_state.open(other, trust_owner=[12345]).close()

        link = os.path.join(self.dir, "link.state")
        os.symlink(self.good, link)
        self.same_as_cli(link, 3)
        with self.assertRaises(mapped_state.Insecure) as cm:
            mapped_state.open(link)
        self.assertEqual(cm.exception.why, "symlink")

        fifo = os.path.join(self.dir, "fifo.state")
        os.mkfifo(fifo, 0o600)
        directory = os.path.join(self.dir, "dir.state")
        os.mkdir(directory, 0o700)
        for p in (fifo, directory):
            with self.subTest(p):
                self.same_as_cli(p, 3)
                with self.assertRaises(mapped_state.Insecure) as cm:
                    mapped_state.open(p)
                self.assertEqual(cm.exception.why, "not-regular-file")

    def test_a_truncation_inside_the_last_page_is_reported(self):
        p = self.broken()
        with mapped_state.open(p) as r:
            r.load()
            os.truncate(p, 200)  # the file is one page: its lost bytes now read as zeros
            with self.assertRaises(mapped_state.Truncated) as cm:
                r.load()
            self.assertEqual(cm.exception.exit_code, 1)

    def test_usage_errors_exit_2(self):
        for argv in (["inspect"], ["inspect", "--no-such-flag", self.good], ["frobnicate"]):
            with self.subTest(argv):
                code, _, _ = run([SCRIPT, *argv])
                ccode, _, _ = run([CLI, *argv])
                self.assertEqual((code, ccode), (2, 2))


@needs_files
class Contention(unittest.TestCase):
    def test_a_writer_that_laps_every_read_gives_contended(self):
        class Lapping:
            """A `seq` that moves N commits on between every two loads."""

            def __init__(self, n):
                self.n, self.s, self.loads = n, 0, 0

            @property
            def value(self):
                self.loads += 1
                self.s += 2 * self.n
                return self.s

        with mapped_state.open(path("telemetry.state"), max_attempts=5) as r:
            seq = Lapping(r.header.slot_count)
            r._seq = seq
            with self.assertRaises(mapped_state.Contended) as cm:
                r.load()
            self.assertEqual(cm.exception.attempts, 5)
            self.assertEqual(cm.exception.exit_code, 3)
            self.assertEqual(seq.loads, 10)


if __name__ == "__main__":
    unittest.main()


@needs_files
class Fuzz(unittest.TestCase):
    """Random bytes in the header, the manifest and the newest slot, with the checksum and schema
    hash fixed up so that mutations reach the manifest decoder and the value decoder: the package
    raises only `mapped_state.Error`s (never another exception), and the command agrees with the
    CLI's exit code and message."""

    CASES = int(os.environ.get("MS_PY_FUZZ_CASES", "1500"))
    COMPARED = 150

    def test_mutated_files(self):
        with open(path("kinds.state"), "rb") as f:
            pristine = f.read()
        with mapped_state.open(path("kinds.state")) as r:
            h, version = r.header, r.version
        slot = F.PAYLOAD_OFFSET + (version % h.slot_count) * h.slot_stride
        regions = [(0, F.OFF_CHECKSUM), (h.manifest_offset, h.file_len), (slot, slot + h.payload_size)]
        rng = random.Random(11)
        d = tempfile.mkdtemp(prefix="ms-py-fuzz-")
        outcomes = {}
        disagreements = []
        try:
            p = os.path.join(d, "fuzz.state")
            for i in range(self.CASES):
                data = bytearray(pristine)
                lo, hi = regions[rng.randrange(3)]
                for _ in range(rng.randint(1, 4)):
                    at = rng.randrange(lo, hi)
                    data[at] = rng.choice([0, 1, 0xFF, 0x7F, 0x80, rng.randrange(256)])
                if rng.random() < 0.9:
                    data[24:32] = struct.pack("=Q", F.fnv1a64(data[h.manifest_offset :]))
                    data[120:128] = struct.pack("=Q", F.fnv1a64(data[:120]))
                with open(p, "wb") as f:
                    f.write(data)
                try:
                    with mapped_state.open(p) as r:
                        r.load()
                        r.inspect()
                    outcome = "ok"
                except mapped_state.Error as e:
                    outcome = type(e).__name__
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if i % max(self.CASES // self.COMPARED, 1) == 0:
                    ccode, cdocs, cmsg = inspect_json(CLI, p)
                    pcode, pdocs, pmsg = inspect_json(None, p)
                    if (pcode, [comparable(x) for x in pdocs]) != (ccode, [comparable(x) for x in cdocs]):
                        disagreements.append((i, ccode, pcode, cmsg, pmsg))
                    elif pmsg != cmsg:
                        disagreements.append((i, "message", cmsg, pmsg))
        finally:
            shutil.rmtree(d)
        print(f"\n{self.CASES} mutated files: {sorted(outcomes.items())}", file=sys.stderr)
        self.assertEqual(disagreements, [], "\n".join(map(repr, disagreements)))
        # The mutations reached every stage: refused headers, manifests, values, and files read.
        for stage in ("CorruptHeader", "CorruptManifest", "InvalidValue", "ok"):
            self.assertIn(stage, outcomes)


class Scripted:
    """A `seq` whose loads return the given values, in order."""

    def __init__(self, *values):
        self.values = list(values)

    @property
    def value(self):
        return self.values.pop(0)


@needs_files
class AcceptanceRule(unittest.TestCase):
    """FORMAT.md 9.3: a read of version c is accepted iff the re-loaded seq is at most
    2(c + N) - 2; one half-step more (the start of the write of version c + N into its slot) is
    rejected. Checked at the boundary with scripted loads of `seq`."""

    def test_the_newest_version(self):
        with mapped_state.open(path("telemetry.state"), max_attempts=1) as r:
            n, c = r.header.slot_count, r.version
            want = r.load()
            r._seq = Scripted(2 * c, 2 * (c + n) - 2)
            self.assertEqual(r.load_versioned(), (want, c))
            r._seq = Scripted(2 * c + 1, 2 * (c + n) - 2)  # a write of c + 1 in progress: reads c
            self.assertEqual(r.load_versioned(), (want, c))
            r._seq = Scripted(2 * c, 2 * (c + n) - 1)
            with self.assertRaises(mapped_state.Contended):
                r.load()
            self.assertEqual(r.retries, 1)

    def test_the_history(self):
        with mapped_state.open(path("history.state")) as r:
            n, c = r.header.slot_count, r.version
            h = c - 2
            r._seq = Scripted(2 * c, 2 * (h + n) - 2)
            self.assertEqual(r.load_version(h), [h, 2 * h, 3 * h])
            r._seq = Scripted(2 * c, 2 * (h + n) - 1)
            with self.assertRaises(mapped_state.VersionGone):
                r.load_version(h)
