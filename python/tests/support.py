"""Shared by the tests: the environment `mapped-state-cli/tests/python_package.rs` sets, and
running the `mapped-state` CLI and the `mapped-state-py` script side by side."""

import io
import json
import os
import subprocess
import unittest

import mapped_state.cli

FILES = os.environ.get("MS_PY_FILES")
CLI = os.environ.get("MS_PY_CLI")
SCRIPT = os.environ.get("MS_PY_SCRIPT")

needs_files = unittest.skipUnless(
    FILES and CLI and SCRIPT,
    "run by `cargo test -p mapped-state-cli --test python_package` (MS_PY_FILES, MS_PY_CLI, MS_PY_SCRIPT)",
)


def run(cmd):
    """(exit code, stdout text, stderr text) of `cmd`."""
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def inspect_json(program, path, *extra):
    """(exit code, parsed JSON lines, the error message without the program's name). `program`
    None runs `mapped-state-py` in this process (`mapped_state.cli.main`): the same code as the
    console script, without a Python start-up per call."""
    if program is None:
        out, err = io.BytesIO(), io.StringIO()
        code = mapped_state.cli.main(["inspect", "--json", *extra, path], stdout=out, stderr=err)
        out, err = out.getvalue().decode("utf-8"), err.getvalue()
    else:
        code, out, err = run([program, "inspect", "--json", *extra, path])
    docs = [json.loads(line) for line in out.splitlines()]
    msg = err.strip()
    for prefix in ("mapped-state: ", "mapped-state-py: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return code, docs, msg


def comparable(doc):
    """An `inspect --json` document without `age_s`, the one field that depends on when it was
    printed."""
    doc = dict(doc)
    doc.pop("age_s", None)
    return doc


def path(name):
    return os.path.join(FILES, name)
