#!/usr/bin/env python3
"""read_state.py: prints a mapped-state file as JSON, `mapped-state inspect --json` style.

The reader that used to live here, written from docs/FORMAT.md alone, is now the `mapped_state`
Python package in `python/` (install it with `pip install ./python`; it also waits on the
futex, follows updates and loads dataclasses). This script is kept for the commands that name
it: it runs that package from the source tree and is exactly

    mapped-state-py inspect --json [--count N | --history] [--max-attempts N]
                                   [--allow-shared-writable] [--trust-owner UID] FILE

with the exit codes of the `mapped-state` command: 0 success, 1 not a valid state file or an
invalid value, 2 usage error, 3 the file cannot be opened or read.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "src"))

from mapped_state.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["inspect", "--json", *sys.argv[1:]]))
