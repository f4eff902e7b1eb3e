"""Quantities with units at the parsing edge of an architecture file.

pint's default registry makes ``bit`` (and so ``byte``) dimensionless, which would let
``'3 GHz'`` pass for ``'3 TB/s'`` (both 1/[time]). We build a small registry of our own in
which information is a dimension of its own, so a wrong unit kind is always caught. The
registry is built on first use (never at import time) and cached.

Sizes follow SI and IEC: ``kB``/``MB``/``GB``/``TB`` are decimal (1e3 ... 1e12),
``KiB``/``MiB``/``GiB``/``TiB`` binary (2**10 ... 2**40); ``B`` is a byte, ``b`` a bit.
"""
from __future__ import annotations

import math
import re
import tokenize
from dataclasses import dataclass
from functools import lru_cache

import pint

# Why not pint's default file: see the module docstring. Kept minimal on purpose.
_DEFINITIONS = """
pico- = 1e-12 = p-
nano- = 1e-9 = n-
micro- = 1e-6 = u- = µ-
milli- = 1e-3 = m-
kilo- = 1e3 = k-
mega- = 1e6 = M-
giga- = 1e9 = G-
tera- = 1e12 = T-
peta- = 1e15 = P-
kibi- = 2**10 = Ki-
mebi- = 2**20 = Mi-
gibi- = 2**30 = Gi-
tebi- = 2**40 = Ti-
second = [time] = s = sec
hertz = 1 / second = Hz
bit = [information] = b
byte = 8 * bit = B = octet
joule = [energy] = J
watt = joule / second = W
cycle = [cycle]
"""

# A number, then a unit expression; the number part is never handed to pint, so no
# arithmetic ("2 * 1.5 TB/s") sneaks in as an expression language. Matched against text
# already stripped, so no lazy group meets trailing blanks (that backtracks quadratically).
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>.*)$", re.DOTALL)
# Longer text is no quantity anyone writes; refusing it up front bounds the parsing work.
MAX_QUANTITY_CHARS = 100


def split_quantity(text: str) -> tuple[str, str] | None:
    """``(number, unit)`` parts of a quantity string, or None if it is not one.

    >>> split_quantity(" 1.5 TB/s ")
    ('1.5', 'TB/s')
    """
    text = text.strip()
    if len(text) > MAX_QUANTITY_CHARS:
        return None
    m = _QUANTITY.match(text)
    return (m.group("num"), m.group("unit")) if m else None


# A unit expression as people write one: names joined by '/' or '*' (or a space), each with
# an optional small integer power ('s^2', 's**-1'). Nothing else reaches pint's parser, whose
# tokenizer raises a zoo of exceptions (ZeroDivisionError, TokenError, AssertionError...) on
# text such as 'B/0' or '(B'.
UNIT_TEXT = re.compile(r"^[A-Za-zµ]+(?:(?:\^|\*\*)-?[1-9])?"
                       r"(?:\s*[/* ]\s*[A-Za-zµ]+(?:(?:\^|\*\*)-?[1-9])?)*$")
# Exceptions pint may raise on a unit name it cannot resolve (it is third-party code fed
# user text; these are its documented and observed failure modes).
PINT_FAILURES = (pint.errors.PintError, ValueError, AttributeError, TypeError, KeyError,
                 ZeroDivisionError, AssertionError, SyntaxError, tokenize.TokenError)


def brief(value: object) -> str:
    """``repr`` of a user's value for a one-line message: long text cut, a huge integer shown
    by its size (its digits can run to thousands, and str() of it may even refuse)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 18:
        try:
            approx = f"{float(value):.4g}"
        except OverflowError:
            approx = "beyond any float"
        return f"an integer of {value.bit_length()} bits ({approx})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Kind:
    """A kind of quantity: its name in messages, SI unit, pint dimensionality, an example."""

    name: str
    si: str
    dims: tuple[tuple[str, int], ...]
    example: str


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("frequency", "Hz", (("[time]", -1),), "1 GHz"),
    Kind("size", "B", (("[information]", 1),), "256 MiB"),
    Kind("bandwidth", "B/s", (("[information]", 1), ("[time]", -1)), "1.5 TB/s"),
    Kind("time", "s", (("[time]", 1),), "500 ns"),
    Kind("power", "W", (("[energy]", 1), ("[time]", -1)), "150 W"),
    Kind("energy", "J", (("[energy]", 1),), "0.5 pJ"),
    Kind("bytes per cycle", "B/cycle", (("[information]", 1), ("[cycle]", -1)), "128 B/cycle"),
)}

# What to call a unit the user wrote, when it is not the kind expected.
_DESCRIBE = {k.dims: (f"a {k.name}" if k.name != "bytes per cycle" else "bytes per cycle")
             for k in KINDS.values()}
_DESCRIBE[(("[information]", 1), ("[time]", -1))] = "a bandwidth (bytes per second)"
_DESCRIBE[(("[information]", 1),)] = "a size in bytes"
_EXPECT = {"frequency": "a frequency", "size": "a size in bytes",
           "bandwidth": "bytes per second", "time": "a time", "power": "a power",
           "energy": "an energy", "bytes per cycle": "bytes per cycle"}


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """Return npusim's unit registry (built once, on first use)."""
    ureg = pint.UnitRegistry(None)
    ureg.load_definitions([line for line in _DEFINITIONS.splitlines() if line.strip()])
    return ureg


@lru_cache(maxsize=512)
def _unit(text: str) -> tuple[tuple[tuple[str, int], ...], float]:
    """Dimensions of a unit expression and its factor to the SI unit of those dimensions.

    Cached: sweeps load the same few units thousands of times, and pint is slow.
    """
    ureg = registry()
    q = ureg.Quantity(1.0, ureg.parse_units(text))
    dims = tuple(sorted(dict(q.dimensionality).items()))
    kind = next((k for k in KINDS.values() if tuple(sorted(k.dims)) == dims), None)
    to_si = float(q.to(ureg.parse_units(kind.si)).magnitude) if kind else float("nan")
    return dims, to_si


class UnitProblem(ValueError):
    """A quantity string that cannot be read as the expected kind; the text says why and how."""


def parse_quantity(value: object, kind: str) -> float:
    """Read ``value`` (e.g. ``'1.5 TB/s'``) as a quantity of ``kind`` and return SI float.

    Parameters
    ----------
    value : object
        What the YAML held: must be a string of a number and a unit.
    kind : str
        A key of :data:`KINDS` (``"bandwidth"``, ``"size"``...).

    Returns
    -------
    float
        The magnitude in the kind's SI unit (bytes, bytes/s, Hz, s, W, J, bytes/cycle).

    Raises
    ------
    UnitProblem
        With a message that says what was found and what is expected.

    Examples
    --------
    >>> parse_quantity("1.5 TB/s", "bandwidth")
    1500000000000.0
    >>> parse_quantity("512 KiB", "size")
    524288.0
    """
    k = KINDS[kind]
    expected = f"expected {_EXPECT[kind]}, e.g. '{k.example}'"
    shown = brief(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UnitProblem(f"{shown} is not a quantity; {expected}")
    if isinstance(value, (int, float)):
        raise UnitProblem(f"{shown} is a number without a unit; {expected}")
    parts = split_quantity(value)
    if parts is None:
        raise UnitProblem(f"{shown} is not a number followed by a unit; {expected}")
    num, unit = parts
    if not unit:
        raise UnitProblem(f"{shown} is a number without a unit; {expected}")
    dims, to_si = unit_of(unit, value, expected)
    if dims != tuple(sorted(k.dims)):
        found = _DESCRIBE.get(dims, "dimensionless" if not dims else f"of dimension {dims}")
        raise UnitProblem(f"{shown} is {found}; {expected}")
    out = float(num) * to_si
    if not math.isfinite(out):
        raise UnitProblem(f"{shown} is not finite; {expected}")
    return out


def unit_of(text: str, value: object, expected: str) -> tuple[tuple[tuple[str, int], ...], float]:
    """Dimensions and SI factor of the unit part ``text`` of ``value``; a unit that is not a
    plain unit expression, or that pint does not know, is a :class:`UnitProblem`."""
    hint = " (write kB for 1000 bytes or KiB for 1024 bytes)" if "KB" in text else ""
    problem = f"{brief(value)}: unknown unit {brief(text)}{hint}; {expected}"
    if not UNIT_TEXT.match(text):
        raise UnitProblem(problem)
    try:
        return _unit(text)
    except PINT_FAILURES as exc:
        raise UnitProblem(problem) from exc


@lru_cache(maxsize=64)
def _per_information(unit_text: str, per: str) -> float:
    """Factor from ``unit_text`` (an energy per information) to joules per ``per`` (B or bit).

    Cached: pint is slow and tables reuse a handful of units.
    """
    ureg = registry()
    unit = ureg.parse_units(unit_text)
    dims = dict(ureg.Quantity(1.0, unit).dimensionality)
    if dims != {"[energy]": 1, "[information]": -1}:
        raise UnitProblem(f"unit {unit_text!r} is not an energy per bit or byte")
    return float(ureg.Quantity(1.0, unit).to(ureg.parse_units(f"J/{per}")).magnitude)


def parse_energy_per(value: object, per: str) -> float:
    """Read ``value`` (e.g. ``'3.5 pJ/bit'``) as joules per ``per`` (``"B"`` or ``"bit"``).

    >>> parse_energy_per("0.5 pJ/B", "bit")
    6.25e-14

    Raises
    ------
    UnitProblem
        With a message that says what was found and what is expected.
    """
    example = "0.1 pJ/B" if per == "B" else "3.5 pJ/bit"
    expected = f"expected an energy per {'byte' if per == 'B' else 'bit'}, e.g. '{example}'"
    if isinstance(value, bool) or not isinstance(value, str):
        what = "a number without a unit" if isinstance(value, (int, float)) else "not a quantity"
        raise UnitProblem(f"{brief(value)} is {what}; {expected}")
    parts = split_quantity(value)
    if parts is None or not parts[1]:
        raise UnitProblem(f"{brief(value)} is not a number followed by a unit; {expected}")
    num, unit = parts
    try:
        if not UNIT_TEXT.match(unit):
            raise UnitProblem(unit)
        factor = _per_information(unit, per)
    except (UnitProblem, *PINT_FAILURES):
        raise UnitProblem(f"{brief(value)}: {brief(unit)} is not an energy per bit or byte; "
                          f"{expected}") from None
    out = float(num) * factor
    if not math.isfinite(out):
        raise UnitProblem(f"{brief(value)} is not finite; {expected}")
    return out
