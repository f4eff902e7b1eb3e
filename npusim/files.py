"""Writing result files: text, spreadsheet-safe CSV. Shared by every layer that writes files
(reports, K-Perf, validation); imports nothing of npusim but its errors.

Every failure to write is one :class:`~npusim.errors.OutputError` naming the file; the CLI adds the flag that chose the path.
"""
from __future__ import annotations

import csv
import os
import stat
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import NpusimError, OutputError

# Text a spreadsheet would run as a formula (OWASP "CSV Injection"): op names and sheet cells
# come from user files, so such text gets a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def user_path(text: str | Path) -> Path:
    """A path the user typed, ``~`` expanded; as typed when there is no such home (``~nobody``
    on a machine without that user), so it is then simply a file that does not exist.

    >>> user_path("~nosuchuser_x/a.yaml").name
    'a.yaml'
    """
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


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
    through :func:`spreadsheet_safe`; numbers in Python's shortest round-trip form.

    Every line break is ``\\n``, between rows and inside a quoted cell alike: a ``\\r\\n`` or a
    bare ``\\r`` in a text (an error message from another tool) is written as ``\\n``, so the
    file never mixes line endings.

    >>> import tempfile, pathlib
    >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "a.csv", ["x"], [{"x": "a\\r\\nb\\rc"}])
    >>> p.read_bytes()
    b'x\\n"a\\nb\\nc"\\n'
    """
    path = Path(path)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([_one_newline(c) for c in columns])
            for r in rows:
                w.writerow([_one_newline(spreadsheet_safe(r.get(c))) for c in columns])
    except (OSError, ValueError) as e:
        raise cannot_write(path, what, e) from None
    return path


def _one_newline(v: Any) -> Any:
    """Text with its CR LF and bare CR line breaks as LF; anything else as is."""
    if isinstance(v, str) and "\r" in v:
        return v.replace("\r\n", "\n").replace("\r", "\n")
    return v


# ----------------------------------------------------------------------------- reading

# Largest file npusim reads from a user as data (assumption: the shipped measured data is about
# 60 KB and a K-Perf sheet a few hundred KB; 64 MiB leaves ample room while a wrong file cannot
# fill memory).
MAX_READ_BYTES = 64 * 2**20


def _named(path: Path, what: str, flag: str | None) -> str:
    return f"{what} {path}" + (f" ({flag})" if flag else "")


def read_bytes(path: str | Path, what: str = "the file", flag: str | None = None,
               max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The bytes of a user's regular file, at most ``max_bytes``.

    A FIFO, a device or a folder is refused before anything is read (opening without
    blocking, then checking the opened file itself), so a path like ``/dev/zero`` or a named
    pipe never hangs a run. ``what`` and ``flag`` name the file in the error.

    Raises
    ------
    NpusimError
        The file is missing, unreadable, not a regular file, or larger than ``max_bytes``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
    >>> _ = p.write_bytes(b"x,y\\n")
    >>> read_bytes(p)
    b'x,y\\n'
    """
    path = Path(path)
    name = _named(path, what, flag)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise NpusimError(f"cannot read {name}: no such file; check the path") from None
    except OSError as e:
        raise NpusimError(f"cannot read {name}: {e.strerror}; check the path and its "
                          f"permissions") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                    "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "not a regular file")
            raise NpusimError(f"{name} is {kind}; give a regular file")
        if st.st_size > max_bytes:
            raise NpusimError(f"{name} is {st.st_size:,} bytes, more than the {max_bytes:,} "
                              f"bytes npusim reads; is it the right file?")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise NpusimError(f"cannot read {name}: {e.strerror}") from None
    if len(data) > max_bytes:            # grew while being read
        raise NpusimError(f"{name} is more than the {max_bytes:,} bytes npusim reads; is it "
                          f"the right file?")
    return data


def read_npy(path: str | Path, flag: str | None = None):
    """A numeric array from a user's ``.npy`` file, never unpickled (object arrays refused).

    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(p, np.ones((2, 3), np.float32))
    >>> read_npy(p).shape
    (2, 3)
    """
    import io

    import numpy as np
    path = Path(path)
    name = _named(path, "the array file", flag)
    data = read_bytes(path, "the array file", flag)
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise NpusimError(f"{name} is not a numeric .npy array ({' '.join(str(e).split())}); "
                          f"save one with numpy.save(path, array)") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        raise NpusimError(f"{name} holds {getattr(a, 'dtype', type(a).__name__)} data; give a "
                          f"numeric array saved with numpy.save")
    return a


def decode_text(data: bytes, path: str | Path, what: str = "the file",
                flag: str | None = None) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark is allowed and dropped).

    Text in another encoding is one error naming the encoding it looks like and where the
    first byte that is not UTF-8 sits; a NUL byte means a binary file, not text.

    >>> decode_text("\\ufeffid,x\\n".encode("utf-8"), "a.csv")
    'id,x\\n'
    >>> decode_text("é".encode("latin-1"), "a.csv")
    Traceback (most recent call last):
    ...
    npusim.errors.NpusimError: the file a.csv is not UTF-8 text: byte 0xe9 at line 1 (Latin-1 or Windows-1252 text?); save it as UTF-8 (in Excel: CSV UTF-8)
    """
    name = _named(Path(path), what, flag)
    fix = "save it as UTF-8" + (" (in Excel: CSV UTF-8)" if str(path).lower().endswith(".csv") else "")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise NpusimError(f"{name} is UTF-16 (or UTF-32) text, not UTF-8; {fix}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        if b"\x00" in data[:4096]:
            raise NpusimError(f"{name} is not text: it holds NUL bytes (a binary file, or "
                              f"UTF-16 without a byte-order mark); {fix}") from None
        guess = " (Latin-1 or Windows-1252 text?)" if data[e.start] >= 0xA0 else ""
        raise NpusimError(f"{name} is not UTF-8 text: byte 0x{data[e.start]:02x} at line "
                          f"{line}{guess}; {fix}") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise NpusimError(f"{name} is not text: a NUL character at line "
                          f"{text.count(chr(10), 0, nul) + 1} (a binary file?); {fix}")
    return text


def read_text(path: str | Path, what: str = "the file", flag: str | None = None,
              max_bytes: int = MAX_READ_BYTES) -> str:
    """A user's UTF-8 text file: :func:`read_bytes` then :func:`decode_text`."""
    return decode_text(read_bytes(path, what, flag, max_bytes), path, what, flag)


def csv_rows(text: str, path: str | Path, what: str = "the file",
             flag: str | None = None) -> list[tuple[int, list[str]]]:
    """The rows of comma-separated ``text`` as ``(line number, cells)``, blank lines dropped.

    Quoted cells may span lines (the number is the line a row starts on). A cell longer than
    the csv module's field limit (131,072 characters by default; npusim leaves that process-wide
    setting alone) or a malformed quote is one error naming the line.

    >>> csv_rows('a,b\\n\\n1,"x\\ny"\\n', "t.csv")
    [(1, ['a', 'b']), (3, ['1', 'x\\ny'])]
    """
    import io
    name = _named(Path(path), what, flag)
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                out.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as e:
        if "field larger than field limit" in str(e):
            raise NpusimError(f"{name}, line {start}: a cell is longer than "
                              f"{csv.field_size_limit():,} characters; a data cell is a number or "
                              f"a short text (an unclosed quote makes the rest of the file one "
                              f"cell)") from None
        raise NpusimError(f"{name}, line {start}: not a well-formed CSV row ({e}); save it "
                          f"again as a plain comma-separated CSV") from None
    return out
