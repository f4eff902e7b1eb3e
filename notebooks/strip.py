"""Strip the course notebooks for committing: no outputs, no execution counts, no widget state.

Usage, from the repository's folder::

    python notebooks/strip.py            # strip every notebooks/*.ipynb in place
    python notebooks/strip.py A.ipynb    # only these files
    python notebooks/strip.py --check    # list the notebooks that are not stripped, exit 1 if any

Cell tags and ``jupyter.source_hidden`` (how a solution cell stays collapsed) are kept.
Needs ``nbformat`` (in npusim's ``test`` extra).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
# notebook-level metadata an executed notebook picks up and a committed one does not need
VOLATILE_NB_KEYS = ("widgets", "papermill", "execution")
# cell-level metadata of the same kind (run times, scroll state, the old collapsed flag)
VOLATILE_CELL_KEYS = ("execution", "collapsed", "scrolled", "ExecuteTime")


def stripped(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without outputs, execution counts and volatile metadata."""
    nb = nbformat.from_dict(nb)
    for key in VOLATILE_NB_KEYS:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def text_of(nb: nbformat.NotebookNode) -> str:
    """The notebook as it is written to disk (nbformat 4, one-space indent, final newline)."""
    return nbformat.writes(nb, version=4) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any is not stripped")
    args = ap.parse_args(argv)
    paths = args.paths or sorted(HERE.glob("*.ipynb"))
    dirty = []
    for path in paths:
        old = path.read_text(encoding="utf-8")
        new = text_of(stripped(nbformat.reads(old, as_version=4)))
        if new != old:
            dirty.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "not stripped" if args.check else "stripped"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
