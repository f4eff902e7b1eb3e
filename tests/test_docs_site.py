"""The documentation site builds in strict mode, so a broken link, a missing reference or a
docstring griffe cannot parse fails the tests; its CLI reference is the parser's own, and
notebooks render as pages without being run.

Needs the ``docs`` extra (mkdocs, mkdocs-material, mkdocstrings-python, mkdocs-jupyter).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

for _module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter"):
    pytest.importorskip(_module, reason="the docs extra builds the site")

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"


def _hook(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _notebook(path: Path, title: str) -> None:
    """A two-cell notebook whose code cell would fail if the build ran it."""
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n"]},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": ["raise SystemExit('notebooks are rendered, never executed')\n"]}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                       "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")


def test_cli_reference_covers_every_command_and_option():
    from npusim.cli import parser
    hook = _hook("npusim_docs")
    text = hook.cli_reference()
    subs = list(hook._subcommands(parser()))
    assert {name for name, _, _ in subs} >= {"run", "kperf", "validate", "sweep", "pim",
                                             "breakeven", "inspect", "archs", "models"}
    for name, sub, _ in subs:
        section = text.split(f"\n## npusim {name}\n", 1)[1].split("\n## npusim ", 1)[0]
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            for option in action.option_strings or [action.metavar or action.dest]:
                assert f"`{option}" in section or f", {option}" in section, (name, option)


def test_docstrings_are_made_markdown():
    """Doctests outside Examples fenced, source tags escaped, prose moved out of the type."""
    fence = _hook("griffe_docstrings").fence_doctests
    text = "\n".join([
        "Sum.", ">>> d = {'bf16': 2}", ">>> d['bf16']", "2", "", "More [P2][S1].", "",
        "Parameters", "----------", "arch : a shipped name, or :class:`Arch`",
        "    more words", "chips : int or None, optional", "    how many", "",
        "Examples", "--------", ">>> 1", "1"])
    assert fence(text).split("\n") == [
        "Sum.", "", "```pycon", ">>> d = {'bf16': 2}", ">>> d['bf16']", "2", "```", "",
        "More \\[P2\\]\\[S1\\].", "",
        "Parameters", "----------", "arch", "    a shipped name, or `Arch`", "    more words",
        "chips : int or None, optional", "    how many", "",
        "Examples", "--------", ">>> 1", "1"]


@pytest.mark.slow
def test_python_examples_of_the_pages_run(tmp_path):
    """The home and concept pages' ```python blocks, in order, each in a fresh namespace, in
    one interpreter (a scratch folder holding the repository's sweeps/ specs)."""
    pages = [ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "concepts").glob("*.md"))]
    blocks = [b for page in pages
              for b in re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"),
                                  re.M | re.S)]
    assert len(blocks) >= 4
    (tmp_path / "sweeps").symlink_to(ROOT / "sweeps")
    script = "\n".join(f"exec({b!r}, {{'__name__': '__main__'}})" for b in blocks)
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.mark.slow
def test_site_builds_strict_with_notebooks(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        (notebooks / nb.name).write_bytes(nb.read_bytes())
    _notebook(notebooks / "zz-docs-test.ipynb", "A notebook of the docs test")
    env = dict(os.environ, NPUSIM_DOCS_NOTEBOOKS=str(notebooks), NO_MKDOCS_2_WARNING="1",
               PYTHONDONTWRITEBYTECODE="1")
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "WARNING" not in run.stderr, run.stderr[-4000:]
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "npusim kperf" in cli and "--precision" in cli
    for page in ("api", "api/ir", "api/workloads", "concepts/timing", "new-arch",
                 "arch-reference", "how-to/measured-row"):
        assert (site / page / "index.html").is_file(), page
    for nb in notebooks.glob("*.ipynb"):
        html = (site / "notebooks" / nb.stem / "index.html").read_text(encoding="utf-8")
        assert "notebooks are rendered" in html or nb.stem != "zz-docs-test"
    assert "A notebook of the docs test" in (site / "index.html").read_text(encoding="utf-8")
