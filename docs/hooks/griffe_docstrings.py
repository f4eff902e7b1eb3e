"""A griffe extension for the API pages (mkdocs.yml's mkdocstrings ``extensions``).

npusim's docstrings are numpydoc, run as doctests by pytest. Two habits of that style render
badly as markdown, so they are rewritten on the page only (the source is untouched):

- a doctest outside an ``Examples`` section would become a block quote (``>>>``) whose
  output (``d["bf16"]``, ``[12]``) markdown reads as links: it is fenced as ``pycon`` code;
- Sphinx roles (``:func:`load_arch```) become plain code spans;
- source tags (``[P2][S1]``, as the arch files cite sources) are escaped, not taken for
  reference links;
- a parameter written ``name : what it is`` (prose where numpydoc puts a type) gets its prose
  as the description, where the page shows it as text rather than as a type.
"""
from __future__ import annotations

import re

import griffe

_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc|const):`~?([^`]+)`")
_CITE = re.compile(r"\[([A-Z][A-Za-z]?\d+[a-z]?)\]")
_EXAMPLES = {"example", "examples"}
_NAMED = {"parameters", "other parameters", "attributes", "keyword arguments"}
_ITEM = re.compile(r"^(\s*)(\*{0,2}[A-Za-z_][\w, *]*?)\s+:\s+(.+)$")
_TYPE_PIECE = re.compile(r"^([\w.\[\]\"'{}*~-]+|optional|default\b.*"
                         r"|(list|tuple|dict|set|sequence|iterable|array|mapping|ndarray) of .+)$")


def _is_type(text: str) -> bool:
    """Whether ``text`` reads as a numpydoc type (``str or Path, optional``), not prose."""
    pieces = re.split(r",\s*|\s+or\s+|\s*\|\s*", text.strip().rstrip("."))
    return all(_TYPE_PIECE.match(p) for p in pieces if p)


def _prose(line: str) -> str:
    return _CITE.sub(r"\\[\1\\]", _ROLE.sub(r"`\1`", line))


def fence_doctests(text: str) -> str:
    """Fence every run of doctest lines that is not inside an ``Examples`` section.

    (tests/test_docs_site.py shows it on an example.)
    """
    lines = text.split("\n")
    out: list[str] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]) and line.strip():
            section = line.strip().lower()
        stripped = line.lstrip()
        item = _ITEM.match(line) if section in _NAMED else None
        if item and not _is_type(item.group(3)):
            indent = item.group(1)
            out += [f"{indent}{item.group(2)}", f"{indent}    {_prose(item.group(3))}"]
            i += 1
            continue
        if stripped.startswith(">>>") and section not in _EXAMPLES:
            indent = line[:len(line) - len(stripped)]
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *lines[i:end], f"{indent}```"]
            if end < len(lines):
                out.append("")
                end += 1
            i = end
            continue
        out.append(line if stripped.startswith(">>>") else _prose(line))
        i += 1
    return "\n".join(out)


class NumpydocMarkdown(griffe.Extension):
    """Rewrite each docstring as the module docstring above says, once, when it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
