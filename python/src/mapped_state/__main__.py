"""`python -m mapped_state inspect ...`: the `mapped-state-py` command."""

from .cli import console

console()
