"""MkDocs hooks of npusim's documentation site (registered under ``hooks:`` in mkdocs.yml).

- ``cli.md`` is generated at build time from ``npusim.cli.parser()``, the parser the
  ``npusim`` command itself runs, so the CLI reference cannot drift from the code.
- Every ``notebooks/*.ipynb`` of the repository becomes a page (rendered by mkdocs-jupyter,
  never executed) under "Notebooks" in the navigation, without copying it into ``docs/``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
# NPUSIM_DOCS_NOTEBOOKS: another folder named notebooks (tests/test_docs_site.py's)
NOTEBOOKS = Path(os.environ.get("NPUSIM_DOCS_NOTEBOOKS") or ROOT / "notebooks")
CLI_PAGE = "cli.md"
WIDTH = 88


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb")) if NOTEBOOKS.is_dir() else []


def _text(s: str) -> str:
    """Help text as markdown: angle brackets shown as written, not taken for HTML."""
    return s.replace("<", "&lt;").replace(">", "&gt;")


def _invocation(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    if action.choices is not None and action.metavar is None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    if action.nargs in ("+", "*"):
        metavar += " ..."
    elif action.nargs == "?":
        metavar = f"[{metavar}]"
    return ", ".join(f"{o} {metavar}" for o in action.option_strings)


def _action_lines(p: argparse.ArgumentParser, action: argparse.Action) -> str:
    help_text = p._get_formatter()._expand_help(action) if action.help else ""
    extra = []
    if action.required and action.option_strings:
        extra.append("required")
    shown = action.default not in (None, False, [], argparse.SUPPRESS)
    if shown and action.option_strings and "default" not in help_text:
        extra.append(f"default `{action.default}`")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"- `{_invocation(action)}`: {_text(help_text)}{tail}"


def _subcommands(p: argparse.ArgumentParser):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


def _parser_section(p: argparse.ArgumentParser, level: int) -> list[str]:
    usage = argparse.HelpFormatter(p.prog, width=WIDTH)  # not the terminal's width
    usage.add_usage(p.usage, p._actions, p._mutually_exclusive_groups, prefix="")
    out = ["```text", usage.format_help().strip(), "```", ""]
    if p.description:
        out += [_text(p.description), ""]
    for group in p._action_groups:
        actions = [a for a in group._group_actions
                   if a.help is not argparse.SUPPRESS
                   and not isinstance(a, argparse._SubParsersAction)]
        if not actions:
            continue
        title = {"positional arguments": "Arguments", "options": "Options",
                 "optional arguments": "Options"}.get(group.title, group.title.capitalize())
        out += [f"{'#' * (level + 1)} {title}", ""]
        if group.description:
            out += [_text(group.description), ""]
        out += [_action_lines(p, a) for a in actions] + [""]
    return out


def cli_reference() -> str:
    """The CLI reference page, as markdown, from the ``npusim`` command's own parser."""
    sys.path.insert(0, str(ROOT))
    try:
        from npusim.cli import parser
    finally:
        sys.path.remove(str(ROOT))
    top = parser()
    lines = ["# Command-line reference", "",
             "Generated from the `npusim` command's own argument parser (`npusim.cli.parser()`) "
             "each time the site is built; `npusim COMMAND --help` prints the same.", ""]
    lines += _parser_section(top, 1)
    subs = list(_subcommands(top))
    lines += ["## Commands", ""]
    lines += [f"- [`{name}`](#npusim-{name}): {_text(h)}" for name, _, h in subs] + [""]
    for name, sub, h in subs:
        lines += [f"## npusim {name}", ""]
        if h and not sub.description:
            lines += [_text(h[0].upper() + h[1:]) + ".", ""]
        lines += _parser_section(sub, 2)
    return "\n".join(lines).rstrip() + "\n"


def on_config(config, **kwargs):
    notebooks = _notebooks()
    has = any(isinstance(e, dict) and "Notebooks" in e for e in config.nav or [])
    if notebooks and config.nav is not None and not has:
        config.nav.append({"Notebooks": [f"notebooks/{p.name}" for p in notebooks]})
    return config


@event_priority(50)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files, config, **kwargs):
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    for nb in _notebooks():
        # read in place, not copied into docs/
        files.append(File(f"notebooks/{nb.name}", src_dir=str(NOTEBOOKS.parent),
                          dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files
