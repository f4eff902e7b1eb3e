"""How far a multi-chip step moves with the link constants nobody publishes.

The PCIe peer-to-peer latency per hop of the NPU archs is an assumption (see their ``link:``
blocks) and their P2P bandwidth a line rate, not a measurement. :func:`link_sensitivity`
re-costs one multi-chip decode step with ``link.latency`` and ``link.bandwidth`` each scaled by
the given factors (the others held), in the same layout, and says which layout the automatic
choice would take under each; a report prints the swing beside any multi-chip figure.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..arch import load_arch
from ..errors import NpusimError
from .stepcost import ParallelLayout, StepCostModel

FACTORS = (0.5, 2.0)
FIELDS = ("latency", "bandwidth")


def _scaled(arch, field: str, factor: float):
    """``arch`` with one link field scaled (a null latency stays null: it is 0 either way)."""
    value = getattr(arch.link, field)
    return replace(arch, link=replace(arch.link, **{field: None if value is None
                                                     else value * factor}))


def link_sensitivity(model: str, arch, *, chips: int | None = None,
                     precision: str = "bf16", parallel: "str | ParallelLayout | None" = None,
                     users: int = 1, kv_len: int | None = None, factors: Sequence[float] = FACTORS,
                     fields: Sequence[str] = FIELDS, rechoose: bool = True,
                     overrides: Mapping[str, str] | Sequence[str] | None = None) -> dict[str, Any]:
    """One decode step of ``users`` sequences at ``kv_len`` cached tokens, at the arch's link
    constants and at each field x factor.

    Parameters
    ----------
    model, arch, chips, precision, parallel, overrides
        As for :class:`~npusim.workloads.stepcost.StepCostModel`; the layout found for the
        arch as given is kept for every variation.
    users, kv_len : the decode step (``kv_len`` default 2048, or the model's context window
        less one if shorter)
    factors, fields : the variations (default x0.5 and x2 of latency and bandwidth)
    rechoose : also give the layout the automatic choice takes under each variation (when
        ``parallel`` is not given)

    Returns
    -------
    dict
        ``model``, ``arch``, ``chips``, ``parallel``, ``link`` (the constants as given),
        ``step_s`` and ``cases``: one dict per variation with ``field``, ``factor``,
        ``value``, ``step_s``, ``change`` (relative to ``step_s``) and, with ``rechoose``,
        ``auto_parallel``; and ``swing`` (the largest relative change).

    Examples
    --------
    >>> r = link_sensitivity("tiny-llama", "edu", chips=2, factors=(2.0,), fields=("latency",))
    >>> r["parallel"], r["cases"][0]["step_s"] >= r["step_s"]
    ('tp=2,pp=1', True)
    """
    arch = load_arch(arch, overrides) if isinstance(arch, (str, Path)) else arch
    if arch.link is None:
        raise NpusimError(f"{arch.name} has no chip-to-chip link (link: null); a link "
                          f"sensitivity needs a multi-chip system")
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise NpusimError(f"link field {bad[0]!r} is not one of {', '.join(FIELDS)}")
    from ..frontend.llm import check_sizes, model_spec
    spec = model_spec(model)
    kv_len = min(2048, (spec.context or 2049) - 1) if kv_len is None else kv_len
    check_sizes(spec, decode=True, batch=users, kv_len=kv_len)
    base = StepCostModel(model, arch, chips=chips, precision=precision, parallel=parallel)
    decode = [kv_len] * users
    step = base.step([], decode).seconds
    cases = []
    for field in fields:
        for factor in factors:
            varied = _scaled(arch, field, factor)
            cost = StepCostModel(model, varied, chips=base.chips, precision=precision,
                                 parallel=base.parallel)
            t = cost.step([], decode).seconds
            case = {"field": field, "factor": factor, "value": getattr(varied.link, field),
                    "step_s": t, "change": t / step - 1.0 if step else 0.0}
            if rechoose and parallel is None:
                case["auto_parallel"] = str(StepCostModel(model, varied, chips=base.chips,
                                                          precision=precision).parallel)
            cases.append(case)
    return {"model": model, "arch": arch.name, "chips": base.chips,
            "parallel": str(base.parallel), "parallel_why": base.parallel_why,
            "precision": base.precision, "users": users, "kv_len": kv_len,
            "link": {"kind": arch.link.kind, "latency": arch.link.latency,
                     "bandwidth": arch.link.bandwidth},
            "step_s": step, "cases": cases,
            "swing": max((abs(c["change"]) for c in cases), default=0.0)}


def format_sensitivity(r: Mapping[str, Any]) -> str:
    """One line per variation, for a report."""
    head = (f"{r['model']} {r['precision']} on {r['chips']} x {r['arch']} ({r['parallel']}), "
            f"decode step of {r['users']} at {r['kv_len']} KV: {r['step_s'] * 1e3:.4g} ms")
    lines = [head]
    for c in r["cases"]:
        auto = f", auto {c['auto_parallel']}" if "auto_parallel" in c else ""
        lines.append(f"  link.{c['field']} x{c['factor']:g}: {c['step_s'] * 1e3:.4g} ms "
                     f"({100 * c['change']:+.1f}%{auto})")
    return "\n".join(lines)


__all__ = ["FACTORS", "FIELDS", "format_sensitivity", "link_sensitivity"]
