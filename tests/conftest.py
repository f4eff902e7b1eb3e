"""Shared helpers for tests of the command line's promise: bad input is one line, exit 2."""
from __future__ import annotations

import pytest

from npusim.cli import main


def is_clean_error(code: int, err: str) -> bool:
    """Exit status 2 and exactly one non-empty stderr line of the form ``npusim...: error: ...``."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return (code == 2 and len(lines) == 1 and lines[0].startswith("npusim")
            and ": error: " in lines[0] and "Traceback" not in err)


@pytest.fixture
def cli(capsys):
    """Run ``npusim ARGV...`` in-process; return ``(exit code, stdout, stderr)``.

    argparse's own exits (``SystemExit``) are turned into exit codes like the console script's.
    """
    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err
    return run
