"""Read mapped-state files from Python: the standard library only.

A mapped-state file (https://github.com/mapped-state/mapped-state) holds a typed value that a
Rust writer commits and any number of reader processes read, through a memory-mapped file; the
file describes its own type (a schema manifest), so no code generation is needed here::

    import mapped_state

    with mapped_state.open("/run/pump/telemetry.state") as r:
        print(r.version, r.load())            # {'rpm': 3100, 'mode': 'Running', ...}
        for u in r.updates(timeout=5.0):      # sleeps on the file's futex between commits
            print(u.version, u.skipped, u.value["rpm"])

`open` validates the header and manifest exactly as the Rust reader does (docs/FORMAT.md 3.2) and
maps the file read-only; errors are the classes of `mapped_state.errors`, named like the Rust
library's. The `mapped-state-py` command mirrors `mapped-state inspect` (see `mapped_state.cli`).
"""

from . import errors
from .errors import (
    Contended,
    CorruptHeader,
    CorruptManifest,
    Error,
    ForeignEndian,
    Insecure,
    InvalidFile,
    InvalidValue,
    Io,
    NotAStateFile,
    SchemaMismatch,
    Truncated,
    Unreadable,
    UnsupportedVersion,
    VersionGone,
    VersionNotYet,
    WriterGone,
    WrongLength,
)
from .format import FORMAT_VERSION_SUPPORTED as FORMAT_VERSION
from .reader import Reader, Update

__version__ = "0.1.0"

__all__ = [
    "open",
    "Reader",
    "Update",
    "FORMAT_VERSION",
    "errors",
    "Error",
    "InvalidFile",
    "NotAStateFile",
    "UnsupportedVersion",
    "ForeignEndian",
    "CorruptHeader",
    "CorruptManifest",
    "WrongLength",
    "Truncated",
    "InvalidValue",
    "SchemaMismatch",
    "WriterGone",
    "VersionGone",
    "VersionNotYet",
    "Unreadable",
    "Io",
    "Insecure",
    "Contended",
]


def open(path, *, allow_shared_writable=False, trust_owner=(), max_attempts=10_000, liveness_interval=0.1):
    """Opens and validates the state file at `path` and maps it read-only: a `Reader`.

    - `allow_shared_writable`: accept a file that group or other users may write (refused by
      default: such a user could change it under the reader).
    - `trust_owner`: uids besides this user and root whose files are accepted.
    - `max_attempts`: ring read attempts per snapshot before `Contended` (at least 1).
    - `liveness_interval`: seconds between writer liveness probes while a wait blocks.

    Raises an `mapped_state.Error`: `InvalidFile` subclasses for a file that is not a valid state
    file, `Unreadable` ones (`Io`, `Insecure`) for one that cannot be opened."""
    return Reader(
        path,
        allow_shared_writable=allow_shared_writable,
        trust_owner=trust_owner,
        max_attempts=max_attempts,
        liveness_interval=liveness_interval,
    )
