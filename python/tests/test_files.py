"""Files written by the Rust writer (`python_package_reads_what_the_rust_writer_wrote`), read by
the package and compared with `mapped-state inspect --json`."""

import dataclasses
import enum
import glob
import math
import os
import struct
import unittest

import mapped_state
from support import CLI, FILES, SCRIPT, comparable, inspect_json, needs_files, path, run

# The writer's pid: the Rust test process, which started this one.
WRITER = os.getppid()
F32_MAX = struct.unpack("=f", struct.pack("=I", 0x7F7FFFFF))[0]
# 0.1f32 widened exactly (natively values are exact; JSON spells f32 in shortest form).
F32_POINT_ONE = struct.unpack("=f", struct.pack("=f", 0.1))[0]


class Trend(enum.Enum):
    Falling = -1
    Flat = 0
    Rising = 1


class Mode(enum.Enum):
    Idle = 0
    Running = 1
    Fault = 2


@dataclasses.dataclass
class Sample:
    at: int
    level: float


@dataclasses.dataclass
class Limits:
    min_rpm: int
    max_rpm: int


@dataclasses.dataclass
class Kinds:
    tiny: int
    short: int
    big: int
    debt: int
    delta: int
    uptime: int
    ratio: float
    unknown: float
    level: float
    hot: bool
    grade: str
    trend: Trend
    mode: Mode
    samples: list[float]
    grid: list[list[int]]
    history: list[Sample]
    label: str
    limits: Limits


@needs_files
class AgainstTheCli(unittest.TestCase):
    def test_every_file_reads_as_the_cli_reads_it(self):
        files = sorted(glob.glob(os.path.join(FILES, "*.state")))
        self.assertGreaterEqual(len(files), 7, files)
        for f in files:
            with self.subTest(file=os.path.basename(f)):
                code, cli, err = inspect_json(CLI, f)
                self.assertEqual(code, 0, err)
                pcode, py, perr = inspect_json(SCRIPT, f)
                self.assertEqual(pcode, 0, perr)
                self.assertEqual(len(py), 1)
                self.assertEqual(comparable(py[0]), comparable(cli[0]))
                # The API's document is the script's.
                with mapped_state.open(f) as r:
                    self.assertEqual(comparable(r.inspect()), comparable(cli[0]))
                    self.assertEqual(r.version, cli[0]["version"])

    def test_liveness_agrees_with_the_rust_reader(self):
        # Alive: the writer (the Rust test process) holds these open during this run.
        # Closed by the writer, a recycled pid (another start time), a pid that exited: not.
        want = {
            "kinds.state": True,
            "telemetry.state": True,
            "history.state": True,
            "closed.state": False,
            "recycled.state": False,
            "dead.state": False,
            "superseded.state": False,
        }
        for name, alive in want.items():
            with self.subTest(file=name):
                _, cli, err = inspect_json(CLI, path(name))
                self.assertEqual(cli[0]["writer"]["alive"], alive, err)
                with mapped_state.open(path(name)) as r:
                    self.assertEqual(r.writer_alive, alive)
                    if name != "dead.state":
                        self.assertEqual(r.writer_pid, WRITER)
        with mapped_state.open(path("kinds.state")) as r:
            # FORMAT.md 9.9: the writer records its start time, field 22 of /proc/PID/stat.
            self.assertEqual(r.writer_start, mapped_state.reader.process_start(WRITER))

    def test_text_report(self):
        code, out, err = run([SCRIPT, "inspect", path("telemetry.state")])
        self.assertEqual(code, 0, err)
        self.assertIn("telemetry.state", out)
        self.assertRegex(out, r"\n  rpm +u32 +3400\n")
        self.assertRegex(out, r'\n  label +FixedStr<32> +"engine-1"\n')
        self.assertIn(f"pid {WRITER}, alive", out)


@needs_files
class Values(unittest.TestCase):
    def test_every_kind_as_python_values(self):
        with mapped_state.open(path("kinds.state")) as r:
            value, version = r.load_versioned()
        self.assertEqual(version, 1)
        self.assertTrue(math.isnan(value.pop("unknown")))
        samples = value.pop("samples")
        self.assertEqual(samples[:2], [F32_POINT_ONE, math.inf])
        self.assertEqual(math.copysign(1.0, samples[2]), -1.0)
        self.assertEqual(
            value,
            {
                "tiny": -128,
                "short": 65535,
                "big": 2**128 - 1,
                "debt": -(2**127) + 1,
                "delta": -(2**63),
                "uptime": 2**53 + 1,
                "ratio": 0.1,
                "level": F32_MAX,
                "hot": True,
                "grade": "é",
                "trend": "Falling",
                "mode": "Fault",
                "grid": [[1, 2], [3, 4]],
                "history": [{"at": 7, "level": 0.5}, {"at": 8, "level": -math.inf}],
                "label": "pompe-à-eau",
                "limits": {"min_rpm": 800, "max_rpm": 7200},
            },
        )
        # In field order, as declared.
        self.assertEqual(list(value)[:3], ["tiny", "short", "big"])

    def test_as_a_dataclass(self):
        with mapped_state.open(path("kinds.state")) as r:
            k = r.load(Kinds)
        self.assertIsInstance(k, Kinds)
        self.assertIs(k.trend, Trend.Falling)
        self.assertIs(k.mode, Mode.Fault)
        self.assertEqual(k.history, [Sample(7, 0.5), Sample(8, -math.inf)])
        self.assertEqual(k.limits, Limits(800, 7200))
        self.assertEqual(k.big, 2**128 - 1)

    def test_a_dataclass_with_other_fields_is_a_schema_mismatch(self):
        @dataclasses.dataclass
        class Wrong:
            min_rpm: int
            max: int

        @dataclasses.dataclass
        class Holder:
            rpm: int

        with mapped_state.open(path("telemetry.state")) as r:
            with self.assertRaises(mapped_state.SchemaMismatch) as cm:
                r.load(Holder)
            text = str(cm.exception)
            self.assertIn("temperature_c", text)
            self.assertEqual(cm.exception.exit_code, 1)

    def test_strings_and_arrays_without_a_struct(self):
        with mapped_state.open(path("strings.state")) as r:
            self.assertEqual(r.schema.name, "[FixedStr<6>; 3]")
            self.assertEqual(r.load(), ["ab", "", "日本"])

    def test_history_the_ring_holds(self):
        with mapped_state.open(path("history.state")) as r:
            self.assertEqual(r.header.slot_count, 8)
            got = list(r.history())
            self.assertEqual(got, [(k, [k, 2 * k, 3 * k]) for k in range(10, 2, -1)])
            with self.assertRaises(mapped_state.VersionGone):
                r.load_version(2)
            with self.assertRaises(mapped_state.VersionNotYet):
                r.load_version(11)
            self.assertEqual(r.load_version(5), [5, 10, 15])
        code, docs, err = inspect_json(SCRIPT, path("history.state"), "--history")
        self.assertEqual(code, 0, err)
        self.assertEqual([(d["version"], d["value"]) for d in docs], [(k, [k, 2 * k, 3 * k]) for k in range(10, 2, -1)])


@needs_files
class Mapping(unittest.TestCase):
    def test_the_mapping_is_shared_and_read_only(self):
        f = os.path.realpath(path("telemetry.state"))
        with mapped_state.open(f) as r:
            r.load()
            with open("/proc/self/maps") as maps:
                lines = [line for line in maps if line.rstrip("\n").endswith(f)]
            self.assertEqual(len(lines), 1, lines)
            perms = lines[0].split()[1]
            self.assertEqual(perms, "r--s", lines[0])
        with open("/proc/self/maps") as maps:
            self.assertFalse(any(line.rstrip("\n").endswith(f) for line in maps), "unmapped by close()")

    def test_a_closed_reader_refuses_to_read(self):
        r = mapped_state.open(path("telemetry.state"))
        r.close()
        r.close()
        with self.assertRaises(ValueError):
            r.load()
        with self.assertRaises(ValueError):
            r.version


@needs_files
class Waits(unittest.TestCase):
    def test_a_wait_on_a_file_without_writer_ends_with_writer_gone(self):
        for name, pid in [("closed.state", WRITER), ("recycled.state", WRITER), ("dead.state", None)]:
            with self.subTest(file=name), mapped_state.open(path(name), liveness_interval=0.01) as r:
                with self.assertRaises(mapped_state.WriterGone) as cm:
                    r.wait(timeout=60)
                self.assertFalse(cm.exception.superseded)
                if pid is not None:
                    self.assertEqual(cm.exception.pid, pid)
                self.assertIn("is gone", str(cm.exception))

    def test_a_superseded_file_says_so_and_ends_waits(self):
        _, cli, err = inspect_json(CLI, path("superseded.state"))
        self.assertTrue(cli[0]["superseded"], err)
        with mapped_state.open(path("superseded.state")) as r:
            self.assertTrue(r.superseded)
            self.assertEqual(r.load(), 10)
            with self.assertRaises(mapped_state.WriterGone) as cm:
                r.wait(timeout=60)
            self.assertTrue(cm.exception.superseded)
            self.assertIn("reopen it by path", str(cm.exception))
        with mapped_state.open(path("replaced.state")) as r:
            self.assertFalse(r.superseded)
            self.assertEqual(r.load(), 11)

    def test_a_wait_with_a_live_idle_writer_times_out(self):
        with mapped_state.open(path("kinds.state")) as r:
            self.assertIsNone(r.wait(timeout=0.05))
            self.assertIsNone(r.wait(timeout=0))
            # A version already newer than `since` returns at once.
            self.assertEqual(r.wait(timeout=60, since=0), 1)
            self.assertEqual(list(r.updates(timeout=0.02)), [])


if __name__ == "__main__":
    unittest.main()
