"""Writing result files: text, spreadsheet-safe CSV. Shared by every layer that writes files
(reports, K-Perf, validation); imports nothing of npusim but its errors.

Every failure to write is one :class:`~npusim.errors.OutputError` naming the file; the CLI adds the flag that chose the path.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import OutputError

# Text a spreadsheet would run as a formula (OWASP "CSV Injection"): op names and sheet cells
# come from user files, so such text gets a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(v: Any) -> Any:
    """A CSV or xlsx cell value: text that would run as a formula gets a leading ``'``; a
    missing value (None) is an empty cell; numbers pass unchanged.

    >>> spreadsheet_safe("=1+1"), spreadsheet_safe(None), spreadsheet_safe(2.5)
    ("'=1+1", '', 2.5)
    """
    if v is None:
        return ""
    if isinstance(v, str):
        return "'" + v if v.startswith(_FORMULA_START) else v
    return v


def cannot_write(path: Path, what: str, e: OSError | ValueError) -> OutputError:
    """The error for an ``OSError`` (or the ``ValueError`` of a path with a NUL byte) while
    writing ``what`` to ``path``."""
    return OutputError(f"cannot write {what} to {_shown(path)}: {_why(e)}. Check that the "
                       f"folder exists and is writable, or choose another path.")


def _shown(path: Path) -> str:
    """A path for a one-line message: control characters escaped, at most 300 characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))
    return text if len(text) <= 300 else text[:297] + "..."


def _why(e: OSError | ValueError) -> str:
    """The operating system's reason, or the path's fault (a NUL byte) for a ValueError."""
    return getattr(e, "strerror", None) or str(e).replace("\n", " ")


def make_folder(path: str | Path, what: str = "output") -> Path:
    """Create the folder ``path`` (and its parents) if missing; ``what`` names it in the error.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "a" / "b"
    >>> make_folder(d) == d and d.is_dir()
    True
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise OutputError(f"cannot create the {what} folder {_shown(path)}: {_why(e)}. Choose "
                          f"another folder.") from None
    return path


def write_text(path: str | Path, text: str, what: str = "the file") -> Path:
    """Write ``text`` (UTF-8) to ``path``."""
    path = Path(path)
    try:
        path.write_text(text, encoding="utf-8")
    except (OSError, ValueError) as e:
        raise cannot_write(path, what, e) from None
    return path


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict],
              what: str = "CSV") -> Path:
    """One header row of ``columns``, then one row per dict (missing keys empty), every cell
    through :func:`spreadsheet_safe`; numbers in Python's shortest round-trip form."""
    path = Path(path)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for r in rows:
                w.writerow([spreadsheet_safe(r.get(c)) for c in columns])
    except (OSError, ValueError) as e:
        raise cannot_write(path, what, e) from None
    return path
