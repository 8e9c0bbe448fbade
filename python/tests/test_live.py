"""Against a writer that commits while the package reads (`python_package_snapshots_are_never_torn_under_load`
and `python_package_waits_on_the_futex` in mapped-state-cli/tests/python_package.rs)."""

import os
import struct
import sys
import time
import unittest

import mapped_state

LIVE = os.environ.get("MS_PY_LIVE")
WAIT = os.environ.get("MS_PY_WAIT")
STOP = os.environ.get("MS_PY_STOP")
SNAPSHOTS = 3000
DISTINCT = 1000


@unittest.skipUnless(LIVE, "run by python_package_snapshots_are_never_torn_under_load (MS_PY_LIVE)")
class Load(unittest.TestCase):
    def test_snapshots_are_whole_and_never_go_back(self):
        # Commit k stores k in each of the 32 words: a snapshot's words must all equal its version.
        # Reads go on until they have met DISTINCT versions (the writer shares two loaded cores
        # with other processes and may be descheduled for a while), bounded in reads and seconds.
        with mapped_state.open(LIVE) as r:
            words = r.header.payload_size // 8
            first = r.version
            last, torn, seen, reads = first, [], set(), 0
            deadline = time.monotonic() + 15
            while (len(seen) < DISTINCT or reads < SNAPSHOTS) and reads < 1_000_000 and time.monotonic() < deadline:
                payload, version = r.snapshot()
                reads += 1
                got = struct.unpack(f"={words}Q", payload)
                if any(w != version for w in got):
                    torn.append((version, got))
                self.assertGreaterEqual(version, last, "a version went back")
                last = version
                seen.add(version)
            # `load` goes through the same read and the decoder.
            value, version = r.load_versioned()
            self.assertEqual(value, [version] * words)
            print(
                f"\n{reads} snapshots, {len(seen)} versions ({first}..{last}), {r.retries} reads rejected "
                f"by the re-check and retried, {len(torn)} torn",
                file=sys.stderr,
            )
        self.assertEqual(torn, [], f"{len(torn)} torn snapshots of {reads}")
        # The writer really committed during the reads, many times.
        self.assertGreaterEqual(len(seen), DISTINCT, f"versions {first}..{last} in {reads} reads")


@unittest.skipUnless(WAIT and STOP, "run by python_package_waits_on_the_futex (MS_PY_WAIT, MS_PY_STOP)")
class Wait(unittest.TestCase):
    def test_wait_updates_and_writer_gone(self):
        # A liveness interval longer than the test: only a futex wake (or the word changing just
        # before the sleep) can end these waits.
        with mapped_state.open(WAIT, liveness_interval=60.0) as r:
            for _ in range(5):
                before = r.version
                v = r.wait(timeout=60)
                self.assertIsNotNone(v)
                self.assertGreater(v, before)
            self.assertGreaterEqual(r.wait_results.get("woken", 0), 1, r.wait_results)
            self.assertNotIn("timed out", r.wait_results)
            self.assertNotIn("polled", r.wait_results)

            start = r.version
            items = []
            for u in r.updates(timeout=60, since=start):
                self.assertEqual(u.value, [u.version, u.version])
                items.append(u)
                if len(items) == 10:
                    break
            self.assertEqual(len(items), 10)
            prev = start
            for u in items:
                self.assertEqual(u.version, prev + 1 + u.skipped)
                prev = u.version

            # Ask the writer to close the file; the blocked wait ends with WriterGone, after any
            # commits it made before it saw the request.
            open(STOP, "w").close()
            with self.assertRaises(mapped_state.WriterGone) as cm:
                for _ in range(10_000):
                    r.wait(timeout=60)
            self.assertEqual(cm.exception.pid, os.getppid())
            self.assertFalse(cm.exception.superseded)
            self.assertFalse(r.writer_alive)


if __name__ == "__main__":
    unittest.main()
