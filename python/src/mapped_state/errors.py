"""Every way opening or reading a state file can fail, named as the Rust library names them
(`mapped_state::Error`), grouped by the exit code the `mapped-state` command gives for them.

- `InvalidFile` and its subclasses, `InvalidValue`, `SchemaMismatch`, `WriterGone`,
  `VersionGone`, `VersionNotYet`: exit code 1 (the file is not a valid state file, holds an
  invalid value, or is not what was asked for).
- `Unreadable` and its subclasses (`Io`, `Insecure`, `Contended`): exit code 3 (the file cannot
  be opened or read; its contents were not judged).

Every error names the file; its text (``str(e)``) is ``"<path>: <message>"``, the message being
the Rust library's for the same problem.
"""

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_IO = 3
EXIT_NEGATIVE = 4


class Error(Exception):
    """Base class of every mapped-state error. `path` is the file, `message` what is wrong."""

    exit_code = EXIT_INVALID

    def __init__(self, path, message):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


# --- exit code 1: the file's contents are not valid --------------------------------------------


class InvalidFile(Error):
    """The file is not a valid state file (header, manifest or length)."""


class NotAStateFile(InvalidFile):
    def __init__(self, path, found):
        self.found = bytes(found)
        hexes = ", ".join(f"{b:02x}" for b in self.found)
        super().__init__(path, f'not a mapped-state file (first bytes [{hexes}], expected "MAPSTATE")')


class UnsupportedVersion(InvalidFile):
    def __init__(self, path, found, supported):
        self.found, self.supported = found, supported
        super().__init__(path, f"format version {found} is not supported (this library reads version {supported})")


class ForeignEndian(InvalidFile):
    def __init__(self, path, found):
        self.found = found
        super().__init__(
            path,
            f"written with the other byte order (endian tag {found:#010x}); state files are "
            "native-endian and cannot be shared across byte orders",
        )


class CorruptHeader(InvalidFile):
    def __init__(self, path, field, offset, expected, found):
        self.field, self.offset, self.expected, self.found = field, offset, str(expected), str(found)
        super().__init__(path, f"corrupt header: field `{field}` at byte {offset} is {found}, expected {expected}")


class CorruptManifest(InvalidFile):
    def __init__(self, path, offset, reason):
        self.offset, self.reason = offset, reason
        super().__init__(path, f"corrupt schema manifest at manifest byte {offset}: {reason}")


class WrongLength(InvalidFile):
    def __init__(self, path, expected, actual):
        self.expected, self.actual = expected, actual
        note = " (truncated?)" if actual < expected else ""
        super().__init__(path, f"file is {actual} bytes long, expected {expected}{note}")


class Truncated(InvalidFile):
    def __init__(self, path, length):
        self.length = length
        super().__init__(
            path,
            f"truncated while open (it was {length} bytes): the value read may be lost bytes, "
            "not a committed value; reopen the file",
        )


class InvalidValue(Error):
    """The snapshot holds bytes that are not a valid value of the file's type (FORMAT.md 10)."""

    def __init__(self, path, field, offset, found, expected):
        self.field, self.offset, self.found, self.expected = field, offset, bytes(found), expected
        hexes = ", ".join(f"{b:02x}" for b in self.found)
        super().__init__(
            path,
            f"invalid value: field `{field or 'value'}` at payload byte {offset} holds [{hexes}], expected {expected}",
        )


class SchemaMismatch(Error):
    """The file's type does not have the fields of the class a value was asked for as."""

    def __init__(self, path, message, differences=()):
        self.differences = list(differences)
        super().__init__(path, message + "".join(f"\n  {d}" for d in self.differences))


class WriterGone(Error):
    """A wait cannot end with a new version: no writer holds the file, or it was superseded."""

    def __init__(self, path, pid, superseded):
        self.pid, self.superseded = pid, superseded
        if superseded:
            msg = "superseded by a newer file at the same path; reopen it by path to follow the new one"
        else:
            who = f" (pid {pid})" if pid is not None else ""
            msg = f"the writer{who} is gone: no process holds the file, so no update can come until a writer opens it again"
        super().__init__(path, msg)


class VersionGone(Error):
    def __init__(self, path, version, newest):
        self.version, self.newest = version, newest
        super().__init__(
            path,
            f"version {version} is gone: the writer has overwritten it (the newest is {newest}; the "
            "ring holds as many versions as it has slots, see `CreateOptions::slots`)",
        )


class VersionNotYet(Error):
    def __init__(self, path, version, newest):
        self.version, self.newest = version, newest
        super().__init__(path, f"version {version} is not committed yet (the newest is {newest})")


# --- exit code 3: the file cannot be opened or read --------------------------------------------


class Unreadable(Error):
    """The file could not be opened or read; its contents were not judged."""

    exit_code = EXIT_IO


class Io(Unreadable):
    def __init__(self, path, op, os_error):
        self.op, self.errno = op, os_error.errno
        super().__init__(path, f"{op}: {os_error.strerror or os_error} (os error {os_error.errno})")


class Insecure(Unreadable):
    """Refused before reading (FORMAT.md 3.2). `why` is one of "symlink", "not-regular-file",
    "writable-by-others", "untrusted-owner"."""

    def __init__(self, path, why, message, mode=None, uid=None):
        self.why, self.mode, self.uid = why, mode, uid
        super().__init__(path, f"refused: {message}")


class Contended(Unreadable):
    def __init__(self, path, attempts):
        self.attempts = attempts
        super().__init__(
            path,
            f"gave up reading a consistent snapshot after {attempts} attempts: the writer commits "
            "faster than the value can be copied",
        )
