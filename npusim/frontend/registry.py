"""The lowering registry: one function per ONNX ``(domain, op_type)``.

A lowering receives a :class:`~npusim.frontend.context.Node` (the ONNX node with its input and
output tensors already resolved to IR tensors) and returns the IR ops it becomes, possibly none
(a free reshape). Lowerings know nothing of architectures or mappings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..ir import Op

#: ONNX writes the default domain as "" or "ai.onnx"; both mean the same operator set.
DEFAULT_DOMAIN = ""
_DOMAIN_ALIASES = {"ai.onnx": "", "": ""}


def canonical_domain(domain: str) -> str:
    """Return the registry's spelling of an ONNX domain (``"ai.onnx"`` -> ``""``)."""
    return _DOMAIN_ALIASES.get(domain, domain)


@dataclass(frozen=True)
class Lowering:
    """A registered lowering.

    Attributes
    ----------
    fn : callable
        ``fn(node) -> iterable of Op``.
    weight_inputs : tuple of int
        Input positions that hold trained data even when integer-typed (quantised weights),
        so a constant there is given the ``weight`` role.
    table_inputs : tuple of int
        Input positions that hold computed tables (rotary cos/sin caches), so a float
        constant there is a ``constant``, not a parameter.
    """

    fn: Callable[..., Iterable[Op]]
    weight_inputs: tuple[int, ...] = ()
    table_inputs: tuple[int, ...] = ()


LOWERINGS: dict[tuple[str, str], Lowering] = {}


def register(*op_types: str, domain: str = DEFAULT_DOMAIN, weight_inputs: tuple[int, ...] = (),
             table_inputs: tuple[int, ...] = ()) -> Callable:
    """Decorator registering a lowering for one or more op types of one domain.

    Raises
    ------
    ValueError
        If a lowering is already registered for one of the keys: two lowerings for the same
        op would silently shadow each other.
    """
    dom = canonical_domain(domain)

    def deco(fn: Callable) -> Callable:
        for op_type in op_types:
            key = (dom, op_type)
            if key in LOWERINGS:
                raise ValueError(f"duplicate lowering for op {op_type!r} in domain "
                                 f"{dom or 'ai.onnx'!r} ({LOWERINGS[key].fn.__module__})")
            LOWERINGS[key] = Lowering(fn, tuple(weight_inputs), tuple(table_inputs))
        return fn

    return deco


def lookup(domain: str, op_type: str) -> Lowering | None:
    """Return the lowering of ``op_type`` in ``domain``, or None if there is none."""
    return LOWERINGS.get((canonical_domain(domain), op_type))


def supported_ops() -> list[tuple[str, str]]:
    """Every ``(domain, op_type)`` with a lowering, sorted; the default domain is ``""``.

    >>> from npusim.frontend import supported_ops
    >>> ("", "Conv") in supported_ops()
    True
    """
    from . import lowerings  # noqa: F401  (registers every family)
    return sorted(LOWERINGS)
