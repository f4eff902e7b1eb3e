"""Malformed command lines: unknown commands and options, values of the wrong type."""
from __future__ import annotations

import pathlib
import random

_COMMANDS = ["run", "inspect", "kperf", "validate", "archs", "models", "bogus", ""]
_OPTIONS = ["--arch", "--set", "--dim", "--batch", "--seq", "--kv-len", "--phase", "--dtype",
            "--chips", "--users", "--precision", "--json", "--top", "--engine", "--model",
            "--rows", "--data", "--frobnicate", "-x"]
_VALUES = ["", "abc", "-1", "0", "1e400", "nan", "=", "==", "a=b=c", "\x00", "\u2603", "9" * 40,
           "dram.bandwidth", "dram.bandwidth=", "=3TB/s", "clock=fast"]


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)``: random commands, options and junk values."""
    for _ in range(n):
        argv = [rng.choice(_COMMANDS)]
        for _ in range(rng.randint(1, 3)):
            argv += [rng.choice(_OPTIONS), rng.choice(_VALUES)]
        yield "cli/options", [a for a in argv if a != ""] or ["bogus"], True
