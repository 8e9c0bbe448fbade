"""`Reader`: an open state file, read by the ring protocol of FORMAT.md 9.3 from a read-only
shared mapping, with waits on the file's futex (9.10) and the writer's liveness (9.9)."""

import ctypes
import datetime
import errno
import os
import stat
import struct
import time

from . import _sys
from . import errors as E
from . import format as F

DEFAULT_MAX_ATTEMPTS = 10_000
DEFAULT_LIVENESS_INTERVAL = 0.1


class Update:
    """A new version delivered by `Reader.updates`: `value` is a consistent snapshot of version
    `version`; `skipped` counts the versions committed since the previous item (or the starting
    version) that were not delivered, so `version == previous + 1 + skipped`."""

    __slots__ = ("value", "version", "skipped")

    def __init__(self, value, version, skipped):
        self.value, self.version, self.skipped = value, version, skipped

    def __eq__(self, other):
        if not isinstance(other, Update):
            return NotImplemented
        return (self.value, self.version, self.skipped) == (other.value, other.version, other.skipped)

    def __repr__(self):
        return f"Update(value={self.value!r}, version={self.version}, skipped={self.skipped})"


def _open_fd(path, allow_shared_writable, trust_owner):
    """FORMAT.md 3.2 steps 1 and 2: the open and the checks before any byte is read."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise E.Insecure(path, "symlink", "it is a symbolic link; open the file it points to") from None
        if e.errno in (errno.EISDIR, errno.ENXIO):
            raise E.Insecure(path, "not-regular-file", "it is not a regular file") from None
        raise E.Io(path, "open", e) from None
    try:
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise E.Io(path, "stat", e) from None
        if not stat.S_ISREG(st.st_mode):
            raise E.Insecure(path, "not-regular-file", "it is not a regular file")
        uid = st.st_uid
        if uid not in (0, os.geteuid()) and uid not in trust_owner:
            raise E.Insecure(
                path,
                "untrusted-owner",
                f"it is owned by uid {uid}, neither this user nor root, and its owner could change or "
                f"truncate it under this process; trust that owner with `trust_owner=[{uid}]`",
                uid=uid,
            )
        mode = st.st_mode & 0o7777
        if mode & 0o022 and not allow_shared_writable:
            raise E.Insecure(
                path,
                "writable-by-others",
                f"its mode {mode:o} lets group or other users write it; `chmod go-w` it or opt in "
                "with `allow_shared_writable=True`",
                mode=mode,
            )
        return fd, st.st_size
    except BaseException:
        os.close(fd)
        raise


def _pread_full(fd, n, offset):
    out = b""
    while len(out) < n:
        try:
            chunk = os.pread(fd, n - len(out), offset + len(out))
        except InterruptedError:
            continue
        if not chunk:
            break
        out += chunk
    return out


def process_start(pid):
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if there is no such
    process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    fields = line[line.rfind(b")") + 1 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _proc_unavailable():
    return not os.path.exists("/proc/self/stat")


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Reader:
    """An open state file. Made by `mapped_state.open(path)`; see that function.

    Reads never write to the file and take no lock. A `Reader` is not safe to `close()` while
    another thread uses it (the mapping would be gone under it); otherwise it may be shared by
    threads (each read is independent)."""

    def __init__(
        self,
        path,
        *,
        allow_shared_writable=False,
        trust_owner=(),
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        liveness_interval=DEFAULT_LIVENESS_INTERVAL,
    ):
        self.path = os.fspath(path)
        self._base = None
        self.max_attempts = max(int(max_attempts), 1)
        self.liveness_interval = max(float(liveness_interval), 0.001)
        #: How each `FUTEX_WAIT` of this reader returned ("woken", "changed", "timed out",
        #: "interrupted", "polled"), counted: what a test needs to tell a wake from a timeout.
        self.wait_results = {}
        #: Snapshot attempts rejected by the re-check of `seq` (the writer lapped the copy) and
        #: retried, over the reader's life.
        self.retries = 0
        p = self.path
        fd, size = _open_fd(p, allow_shared_writable, set(trust_owner))
        try:
            try:
                head = _pread_full(fd, F.HEADER_LEN, 0)
            except OSError as e:
                raise E.Io(p, "read header", e) from None
            h = F.parse_header(p, head, size)
            try:
                manifest = _pread_full(fd, h.manifest_len, h.manifest_offset)
            except OSError as e:
                raise E.Io(p, "read manifest", e) from None
            if len(manifest) != h.manifest_len:
                raise E.WrongLength(p, h.file_len, h.manifest_offset + len(manifest))
            digest = F.fnv1a64(manifest)
            if digest != h.schema_hash:
                raise E.CorruptManifest(
                    p, 0, f"FNV-1a 64 of the manifest is {digest:#018x}, the header's schema_hash is {h.schema_hash:#018x}"
                )
            ty = F.parse_manifest(p, manifest)
            if ty.size != h.payload_size or ty.align != h.payload_align:
                raise E.CorruptManifest(
                    p,
                    5,
                    f"manifest type has size {ty.size} align {ty.align}, header says payload_size "
                    f"{h.payload_size} payload_align {h.payload_align}",
                )
            try:
                base = _sys.map_readonly(fd, h.file_len)
            except OSError as e:
                raise E.Io(p, "mmap", e) from None
        finally:
            os.close(fd)
        self.header = h
        self.schema = ty
        self._base = base
        self._canary = struct.unpack("=Q", (manifest + bytes(8))[:8])[0]
        # Views of the control block and the ring, read in place (`.value` loads from the mapping
        # each time). Every address is inside the `file_len` bytes mapped.
        self._seq = ctypes.c_uint64.from_address(base + F.OFF_SEQ)
        self._notify = ctypes.c_uint32.from_address(base + F.OFF_NOTIFY)
        self._flags = ctypes.c_uint32.from_address(base + F.OFF_FLAGS)
        self._pid = ctypes.c_uint64.from_address(base + F.OFF_WRITER_PID)
        self._commit_time = ctypes.c_uint64.from_address(base + F.OFF_COMMIT_TIME)
        self._writer_start = ctypes.c_uint64.from_address(base + F.OFF_WRITER_START)
        self._manifest_head = ctypes.c_uint64.from_address(base + h.manifest_offset)
        self._words_len = -(-h.payload_size // F.WORD) * F.WORD
        self._mask = h.slot_count - 1
        self._stride = h.slot_stride
        self._polling = _sys.futex_wait is None

    # -- lifetime ------------------------------------------------------------------------------

    def close(self):
        """Unmaps the file. Idempotent; the reader cannot be used afterwards."""
        if self._base is not None:
            base, self._base = self._base, None
            _sys.unmap(base, self.header.file_len)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _check_open(self):
        if self._base is None:
            raise ValueError(f"{self.path}: the reader is closed")

    def __repr__(self):
        state = "closed" if self._base is None else f"version {self.version}"
        return f"<mapped_state.Reader {self.path!r} {self.schema.name} {state}>"

    # -- the ring: FORMAT.md 9.3 ---------------------------------------------------------------

    def _copy_slot(self, v):
        return ctypes.string_at(self._base + F.PAYLOAD_OFFSET + (v & self._mask) * self._stride, self._words_len)

    def _accept(self, v):
        # 2(v + N) - 2: slot v mod N is next written by version v + N, whose write starts with
        # the store of seq = 2(v + N) - 1. (Python integers do not overflow; the Rust reader
        # saturates at 2^64 - 1, which accepts the same values of a 64-bit seq.)
        return 2 * (v + self._mask + 1) - 2

    def _intact(self):
        # FORMAT.md 12: a truncation reaching slot data zeroes the manifest's first word.
        if self._manifest_head.value != self._canary:
            raise E.Truncated(self.path, self.header.file_len)

    def snapshot(self):
        """A consistent copy of the newest payload and its version: `(bytes, version)`.

        How: load `seq`, copy slot `seq >> 1 mod N`, re-load `seq`, accept if the writer did not
        begin rewriting that slot (FORMAT.md 9.3); otherwise back off and retry, at most
        `max_attempts` times (then `Contended`).

        Python has no atomic loads or fences: `seq` is read with one aligned 8-byte load (ctypes
        `c_uint64`) and the slot copied with `memcpy`. The re-check alone makes this sound where
        loads are not reordered with loads and stores become visible in program order (x86-64,
        TSO), which is what CI tests. On weakly ordered CPUs (ARM, POWER) a torn copy could in
        rare cases pass the check; values are still validated, so the worst outcome is a wrong
        value, never a crash."""
        self._check_open()
        seq, accept = self._seq, self._accept
        for attempt in range(self.max_attempts):
            s1 = seq.value
            c = s1 >> 1
            payload = self._copy_slot(c)
            if seq.value <= accept(c):
                self._intact()
                return payload[: self.header.payload_size], c
            self.retries += 1
            # Lapped: N - 1 commits and the start of another during one copy. A commit takes
            # nanoseconds and an attempt here microseconds, so retry at once a few times, then
            # give up the CPU.
            if attempt >= 16:
                time.sleep(0)
        raise E.Contended(self.path, self.max_attempts)

    def snapshot_version(self, version):
        """The payload of version `version` if the ring still holds it (FORMAT.md 9.3,
        history): one attempt, as the Rust reader makes. `VersionNotYet` / `VersionGone`."""
        self._check_open()
        c = self._seq.value >> 1
        if version > c:
            raise E.VersionNotYet(self.path, version, c)
        if c - version > self._mask:
            raise E.VersionGone(self.path, version, c)
        payload = self._copy_slot(version)
        s2 = self._seq.value
        if s2 > self._accept(version):
            raise E.VersionGone(self.path, version, s2 >> 1)
        self._intact()
        return payload[: self.header.payload_size]

    # -- values --------------------------------------------------------------------------------

    @property
    def version(self):
        """The newest committed version (the number of commits since the file was created)."""
        self._check_open()
        return self._seq.value >> 1

    def load(self, cls=None):
        """The newest value, consistent (never torn) and validated (FORMAT.md 10): a dict of
        field names to values (see `mapped_state.format.decode` for the Python types), or an
        instance of `cls`, a dataclass whose fields are the struct's (nested dataclasses, lists
        and `enum.Enum` classes by variant name inside). `InvalidValue` names the field."""
        return self.load_versioned(cls)[0]

    def load_versioned(self, cls=None):
        """`(value, version)`: `load` and the version it read, from the same snapshot."""
        payload, version = self.snapshot()
        return self._value(payload, cls), version

    def load_version(self, version, cls=None):
        """Version `version` from the ring's history (`VersionGone` once overwritten)."""
        return self._value(self.snapshot_version(version), cls)

    def history(self, cls=None):
        """`(version, value)` of every version still in the ring, newest first, ending at the
        first one the writer has overwritten (FORMAT.md 9.3)."""
        for v, payload in self.history_payloads():
            yield v, self._value(payload, cls)

    def history_payloads(self):
        """`(version, payload bytes)` of every version still in the ring, newest first."""
        newest = self.version
        for back in range(self._mask + 1):
            v = newest - back
            if v < 0:
                return
            try:
                payload = self.snapshot_version(v)
            except (E.VersionGone, E.VersionNotYet):
                return
            yield v, payload

    def _value(self, payload, cls):
        value = F.decode(self.path, self.schema, payload)
        if cls is None:
            return value
        return _convert(self.path, self.schema, value, cls, "")

    # -- the control block: FORMAT.md 5 and 9.9 -------------------------------------------------

    @property
    def writer_pid(self):
        """The pid of the writer that last opened the file, or None if none was recorded."""
        self._check_open()
        pid = self._pid.value
        return pid if 0 < pid < (1 << 32) else None

    @property
    def writer_start(self):
        """The recorded writer's process start time (clock ticks since boot), or None."""
        self._check_open()
        return self._writer_start.value or None

    @property
    def writer_alive(self):
        """Whether the writer is alive (FORMAT.md 9.9): the file is not flagged closed and a
        process with the recorded pid and start time exists. No lock, no write; reads
        /proc/PID/stat (where there is no /proc, `kill(pid, 0)`)."""
        self._check_open()
        pid = self._pid.value
        start = self._writer_start.value
        if self._flags.value & F.FLAG_CLOSED or not 0 < pid < (1 << 32):
            return False
        now = process_start(pid)
        if now is None:
            return _proc_unavailable() and _process_exists(pid)
        return start == 0 or now == start

    @property
    def superseded(self):
        """Whether a newer file has replaced this one at its path: reopen by path to follow it."""
        self._check_open()
        self._seq.value
        return bool(self._flags.value & F.FLAG_SUPERSEDED)

    @property
    def last_commit_ns(self):
        """When the current value was committed: nanoseconds since the Unix epoch, writer's
        wall clock (during a burst of commits, up to one coalescing period late)."""
        self._check_open()
        self._seq.value
        return self._commit_time.value

    @property
    def last_commit(self):
        """`last_commit_ns` as an aware UTC `datetime` (microseconds)."""
        ns = self.last_commit_ns
        return datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=ns // 1000)

    @property
    def age(self):
        """Seconds since the last commit (0 if the clock went backwards)."""
        return max(time.time_ns() - self.last_commit_ns, 0) / 1e9

    # -- waiting: FORMAT.md 9.10 ---------------------------------------------------------------

    def _count(self, result):
        self.wait_results[result] = self.wait_results.get(result, 0) + 1

    def _nap(self, n, seconds):
        if not self._polling:
            try:
                self._count(_sys.futex_wait(self._notify_addr(), n, seconds))
                return
            except OSError:
                # No usable futex here (ENOSYS under some sandboxes): poll from now on.
                self._polling = True
        self._count("polled")
        deadline = time.monotonic() + seconds
        pause = 50e-6
        while self._notify.value == n and time.monotonic() < deadline:
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 5e-3)

    def _notify_addr(self):
        return self._base + F.OFF_NOTIFY

    def wait(self, timeout=None, since=None):
        """Blocks until a version newer than `since` (default: the version current now) is
        committed and returns it; None when `timeout` seconds pass first (None: no timeout) with
        the writer seen alive; `WriterGone` when no writer holds the file (probed once per
        `liveness_interval` of blocking, and at least once per timeout) or the file was
        superseded. A commit made just before the writer died is still returned.

        Sleeps on the file's futex word with `FUTEX_WAIT` (no CPU used while nothing changes),
        from the read-only mapping; the writer's `FUTEX_WAKE` ends the sleep."""
        self._check_open()
        if since is None:
            since = self.version
        start = time.monotonic()
        deadline = None if timeout is None else start + max(float(timeout), 0.0)
        every = self.liveness_interval if timeout is None else min(max(float(timeout), 0.0), self.liveness_interval)
        next_probe = start + every
        while True:
            n = self._notify.value
            v = self._seq.value >> 1
            if v > since:
                return v
            flags = self._flags.value
            if flags & F.FLAG_SUPERSEDED:
                raise E.WriterGone(self.path, self.writer_pid, True)
            if flags & F.FLAG_CLOSED:
                # The writer closed the file (and woke us): no probe needed to know it is gone.
                # (The Rust reader learns it at its next probe; this ends the wait sooner.)
                v = self._seq.value >> 1
                if v > since:
                    return v
                raise E.WriterGone(self.path, self.writer_pid, False)
            now = time.monotonic()
            timed_out = deadline is not None and now >= deadline
            if now >= next_probe or timed_out:
                # A probe at least once per timeout: None always comes with a fresh probe.
                next_probe = now + every
                if not self.writer_alive:
                    v = self._seq.value >> 1
                    if v > since:
                        return v
                    raise E.WriterGone(self.path, self.writer_pid, False)
                if timed_out:
                    return None
            nap = next_probe - now
            if deadline is not None:
                nap = min(nap, deadline - now)
            self._nap(n, max(nap, 0.0))

    def updates(self, since=None, timeout=None, cls=None):
        """A generator of the versions committed from now on (or after `since`): each item an
        `Update(value, version, skipped)`, the newest value when the reader woke and how many
        versions it did not see. Summed over the items, `1 + skipped` is the number of commits
        since the start. Ends (StopIteration) after `timeout` seconds without a new version
        (None: waits forever); raises `WriterGone` when the writer is gone (after delivering its
        last commit), and `InvalidValue` or `Contended` for a version it cannot read (a new
        generator with `since=` the last version seen carries on)."""
        last = self.version if since is None else since
        while True:
            if self.wait(timeout, since=last) is None:
                return
            value, version = self.load_versioned(cls)
            yield Update(value, version, max(version - last - 1, 0))
            last = version

    # -- reports -------------------------------------------------------------------------------

    def inspect(self, limit=None):
        """What `mapped-state inspect --json` prints, as a dict (its field names and values)."""
        payload, version = self.snapshot()
        return self.report(payload, version, limit)

    def report(self, payload, version, limit=None):
        """The `inspect --json` document of `payload` at `version` (the value in its JSON forms)."""
        value = F.decode(self.path, self.schema, payload, json=True, limit=limit)
        pid, alive = self.writer_pid, self.writer_alive
        h = self.header
        ns = self.last_commit_ns
        return {
            "file": self.path,
            "format_version": F.VERSION,
            "file_size": h.file_len,
            "slots": h.slot_count,
            "schema": {"name": self.schema.name, "hash": f"{h.schema_hash:#018x}", "size": h.payload_size, "align": h.payload_align},
            "writer": {"pid": pid, "alive": alive},
            "version": version,
            "last_commit": timestamp(ns),
            "age_s": max(time.time_ns() - ns, 0) / 1e9,
            "superseded": self.superseded,
            "value": value,
        }


def timestamp(ns):
    """RFC 3339 UTC with nanoseconds, as the CLI prints `last_commit`."""
    secs, nanos = divmod(ns, 1_000_000_000)
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
    return f"{t.year:04}-{t.month:02}-{t.day:02}T{t.hour:02}:{t.minute:02}:{t.second:02}.{nanos:09}Z"


def _convert(path, ty, value, cls, where):
    """`value` (decoded from `ty`) as an instance of `cls`, matched by field name."""
    # Imported here: they cost a command-line run more than the rest of the package.
    import dataclasses
    import enum
    import typing

    origin = typing.get_origin(cls)
    if cls is typing.Any or cls is None:
        return value
    if dataclasses.is_dataclass(cls) and isinstance(cls, type):
        if ty.kind != "struct":
            raise E.SchemaMismatch(path, f"`{where or 'value'}` is a {ty.name}, not a struct: cannot make a {cls.__name__}")
        hints = typing.get_type_hints(cls)
        wanted = [f.name for f in dataclasses.fields(cls) if f.init]
        have = [f.name for f in ty.fields]
        missing = [n for n in wanted if n not in have]
        extra = [n for n in have if n not in wanted]
        if missing or extra:
            diffs = [f"- `{_join(where, n)}`: in {cls.__name__}, not in the file's `{ty.name}`" for n in missing]
            diffs += [f"+ `{_join(where, n)}`: in the file's `{ty.name}`, not in {cls.__name__}" for n in extra]
            raise E.SchemaMismatch(path, f"schema mismatch: file holds `{ty.name}`, asked for as {cls.__name__}", diffs)
        kwargs = {}
        for f in ty.fields:
            kwargs[f.name] = _convert(path, f.type, value[f.name], hints.get(f.name, typing.Any), _join(where, f.name))
        return cls(**kwargs)
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        if ty.kind != "enum":
            raise E.SchemaMismatch(path, f"`{where or 'value'}` is a {ty.name}, not an enum: cannot make a {cls.__name__}")
        try:
            return cls[value]
        except KeyError:
            raise E.SchemaMismatch(path, f"`{where or 'value'}`: {cls.__name__} has no member {value!r}") from None
    if origin in (list, tuple) and ty.kind == "array":
        args = typing.get_args(cls)
        elem = args[0] if args else typing.Any
        items = [_convert(path, ty.elem, x, elem, f"{where}[{i}]") for i, x in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return value


def _join(path, name):
    return f"{path}.{name}" if path else name
