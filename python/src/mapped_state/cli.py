"""`mapped-state-py`: the `mapped-state inspect` command in Python.

    mapped-state-py inspect [--json] [--count N | --history] [--allow-shared-writable]
                            [--trust-owner UID]... FILE

`inspect --json` prints the object `mapped-state inspect --json` prints, with the same field
names and values (numbers may be spelled differently, e.g. `1e+300` for `1e300`: compare parsed
JSON). `--count N` prints N snapshots, one object per line; `--history` every version still in
the ring, newest first. Without `--json`, a text report.

Exit codes, those of `mapped-state`:
  0  success
  1  the file is not a valid state file, or holds an invalid value
  2  usage error (unknown option, bad argument)
  3  the file cannot be opened or read (missing, permission denied, not a regular file, a
     symbolic link, writable by other users, owned by an untrusted user, or a writer too busy to
     copy a value)

Errors are one line on stderr: `mapped-state-py: <file>: <what is wrong>`.
"""

import argparse
import json
import sys
import unicodedata

from . import errors as E
from . import format as F
from .reader import Reader

PROG = "mapped-state-py"
# The CLI's output budget (mapped-state-cli/src/render.rs): 64 KiB plus 64 bytes per file byte.
OUTPUT_BASE = 64 << 10
OUTPUT_PER_BYTE = 64


def output_budget(file_len):
    return OUTPUT_BASE + OUTPUT_PER_BYTE * file_len


_ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n"}
# Rust's `char::escape_debug` escapes what is not printable and grapheme extenders: these
# Unicode categories stand for both (spaces other than U+0020 included).
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Mn", "Me"}


def _one_line(s):
    """`s` with control and other unprintable characters escaped as the CLI escapes them
    (`\\n`, `\\0`, `\\u{1b}`), so a message stays on one line and cannot drive the terminal:
    paths, names and strings come from the file system and from untrusted files."""
    if s.isascii() and s.isprintable():
        return s
    out = []
    for c in s:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c != " " and unicodedata.category(c) in _UNPRINTABLE:
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect mapped-state files (docs/FORMAT.md) from Python.",
        epilog=__doc__.split("Exit codes", 1)[1].join(["Exit codes", ""]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("inspect", help="print a state file's header, writer, version and every field")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print one JSON object (as `mapped-state inspect --json`)")
    g = i.add_mutually_exclusive_group()
    g.add_argument("--count", type=int, default=1, metavar="N", help="take N snapshots, one line each")
    g.add_argument("--history", action="store_true", help="every version still in the ring, newest first")
    i.add_argument("--max-attempts", type=int, default=10_000, metavar="N", help="ring read attempts per snapshot")
    i.add_argument("--allow-shared-writable", action="store_true", help="open files that group or other users may write")
    i.add_argument("--trust-owner", type=int, action="append", default=[], metavar="UID", help="also open files owned by UID")
    return p


class _Refused(Exception):
    def __init__(self, code, message):
        self.code, self.message = code, message


def _write(out, text):
    out.write(text.encode("utf-8"))


def _text_report(doc, r):
    lines = [
        f"{'file':<10}{_one_line(doc['file'])}",
        f"{'format':<10}version {doc['format_version']}, native-endian, {doc['file_size']} bytes, a ring of {doc['slots']} slots",
        f"{'schema':<10}{doc['schema']['name']} (hash {doc['schema']['hash']})",
        f"{'payload':<10}{doc['schema']['size']} bytes, align {doc['schema']['align']}",
    ]
    pid, alive = doc["writer"]["pid"], doc["writer"]["alive"]
    if pid is not None:
        who = f"pid {pid}, {'alive' if alive else 'exited'}"
    else:
        who = "alive (pid not recorded)" if alive else "none has opened the file"
    lines.append(f"{'writer':<10}{who}")
    lines.append(f"{'version':<10}{doc['version']}, committed {doc['age_s']:.3f}s ago ({doc['last_commit']})")
    if doc["superseded"]:
        lines.append(f"{'superseded':<10}yes: a newer file has replaced this one at its path; inspect again")
    leaves = []
    _leaves(r.schema, doc["value"], "", leaves)
    if not leaves:
        lines.append(f"{'fields':<10}(none)")
    else:
        lines.append("fields")
        pw = min(max(len(p) for p, _, _ in leaves), 60)
        tw = min(max(len(t) for _, t, _ in leaves), 40)
        lines += [f"  {p:<{pw}}  {t:<{tw}}  {v}" for p, t, v in leaves]
    return "\n".join(lines) + "\n"


def _leaves(ty, value, path, out):
    if ty.kind == "struct":
        for f in ty.fields:
            _leaves(f.type, value[f.name], f"{path}.{f.name}" if path else f.name, out)
    elif ty.kind == "array":
        for i, x in enumerate(value):
            _leaves(ty.elem, x, f"{path}[{i}]", out)
    else:
        quoted = ty.kind == "str" or (ty.kind == "prim" and ty.prim == 14)
        shown = json.dumps(value, ensure_ascii=False) if quoted else str(value)
        out.append((_one_line(path or "value"), ty.name, _one_line(shown)))


def _report(args, out):
    r = Reader(
        args.file,
        allow_shared_writable=args.allow_shared_writable,
        trust_owner=args.trust_owner,
        max_attempts=args.max_attempts,
    )
    budget = output_budget(r.header.file_len)
    try:
        if args.history:
            reads = ((payload, v) for v, payload in r.history_payloads())
        else:
            reads = (r.snapshot() for _ in range(max(args.count, 1)))
        for payload, version in reads:
            try:
                doc = r.report(payload, version, limit=budget)
            except F.OutputTooLarge:
                doc = None
            text = None
            if doc is not None:
                text = json.dumps(doc, ensure_ascii=False) + "\n" if args.json else _text_report(doc, r)
            if text is None or len(text) > budget:
                what = "JSON rendering" if args.json else "report"
                raise _Refused(
                    E.EXIT_INVALID,
                    f"{args.file}: its {what} would exceed {budget} bytes ({OUTPUT_PER_BYTE} times the file's "
                    "size, plus 64 KiB): the manifest repeats very long names or very many empty values",
                )
            _write(out, text)
            out.flush()
    finally:
        r.close()


def main(argv=None, stdout=None, stderr=None):
    """Runs the command with `argv` (default: sys.argv[1:]); returns the exit code. Output goes
    to `stdout` (a binary stream, default sys.stdout.buffer) and `stderr` (text, default
    sys.stderr). Usage errors exit (SystemExit 2) as argparse does."""
    args = _parser().parse_args(argv)
    out = sys.stdout.buffer if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        _report(args, out)
    except E.Insecure as e:
        # The library's message names its API; a command user needs the flag (as the CLI says).
        if e.why == "writable-by-others":
            e = E.Insecure(e.path, e.why, f"its mode {e.mode:o} lets group or other users write it; `chmod go-w` it or pass --allow-shared-writable")
        elif e.why == "untrusted-owner":
            e = E.Insecure(
                e.path,
                e.why,
                f"it is owned by uid {e.uid}, neither this user nor root, and its owner could change or truncate it "
                f"under this process; pass --trust-owner {e.uid} to trust that owner",
            )
        print(f"{PROG}: {_one_line(str(e))}", file=err)
        return e.exit_code
    except E.Error as e:
        print(f"{PROG}: {_one_line(str(e))}", file=err)
        return e.exit_code
    except _Refused as e:
        print(f"{PROG}: {_one_line(e.message)}", file=err)
        return e.code
    except BrokenPipeError:
        # `mapped-state-py inspect --count 100 f | head -1`: the reader has what it wanted.
        return 0
    return 0


def console():
    """The `mapped-state-py` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console()
