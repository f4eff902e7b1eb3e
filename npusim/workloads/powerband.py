"""The power band of a serving run: its power at the low and high end of the assumed parts.

An NPU's loaded floor, dynamic overhead and operand delivery are not measured; its energy table
states a central value for each (what every run charges) and the range the assumption allows
(``ranges:``, :data:`npusim.energy.table.RANGED`). For a fixed timeline a run's energy is linear
in those three entries::

    E(floor, overhead, delivery) = E_c + (overhead - overhead_c) x B + (delivery - delivery_c) x C
                                   + (floor / floor_c - 1) x S

with ``B`` the on-chip action energy before any overhead (MAC, vector, SRAM, shared SRAM, NoC),
``C`` the DRAM bits the chip moved and ``S`` the floor energy charged at the central values. So
the band needs no second simulation: :class:`BandCostModel` carries ``B``, ``C`` and ``S``
beside each serving step's joules (one serving pass), and :func:`band` prices the run's window
at the low and the high table. The timeline is the central one: a chip at the high edge that
would draw more than its power limit (TDP or cap) would slow instead, so the high power is held
at the limit (energy per token is then the unslowed figure, a lower bound at that edge).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..energy.cost import DELIVERY, ON_CHIP
from .stepcost import DecodeRun, StepCostModel, StepResult


class StepEnergy:
    """Joules of a step (``total``) with the parts the band needs: ``onchip`` (on-chip action
    energy before overhead, J), ``bits`` (DRAM bits moved) and ``floor`` (floor energy, J).

    Arithmetic follows the cost model's: sums and scaling act on every part; a plain number
    added is floor energy (the cost model adds only floor power x time as plain numbers), and
    comparisons (``max`` of two estimates) go by the total.

    >>> a = StepEnergy(10.0, 4.0, 8.0, 2.0)
    >>> b = 2 * a + 1.0
    >>> b.total, b.onchip, b.bits, b.floor
    (21.0, 8.0, 16.0, 5.0)
    >>> max(a, 0.4 * b) is a
    True
    """

    __slots__ = ("total", "onchip", "bits", "floor")

    def __init__(self, total: float, onchip: float, bits: float, floor: float) -> None:
        self.total, self.onchip, self.bits, self.floor = total, onchip, bits, floor

    @classmethod
    def of(cls, components: dict[str, float], dram_bytes: float, delivery: float | None,
           floor_w: float) -> "StepEnergy":
        """The parts of one simulated graph from its energy by component."""
        onchip = sum(components.get(k, 0.0) for k in ON_CHIP)
        # the delivery component is the DRAM bits times the table's operand_delivery (already
        # scaled when a cap lowered the voltage); without it, the bits the records moved
        bits = components.get(DELIVERY, 0.0) / delivery if delivery else 8.0 * dram_bytes
        return cls(float(sum(components.values())), onchip, bits,
                   components.get("static", 0.0) if floor_w > 0 else 0.0)

    def __add__(self, other):
        # written out field by field: the serving loop calls this ~10^5 times per scenario
        if other.__class__ is StepEnergy:
            return StepEnergy(self.total + other.total, self.onchip + other.onchip,
                              self.bits + other.bits, self.floor + other.floor)
        x = float(other)
        return StepEnergy(self.total + x, self.onchip, self.bits, self.floor + x)

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-1.0) * other

    def __mul__(self, k):
        return StepEnergy(self.total * k, self.onchip * k, self.bits * k, self.floor * k)

    __rmul__ = __mul__

    def __truediv__(self, k):
        return self * (1.0 / k)

    def __lt__(self, other):
        return self.total < _total(other)

    def __gt__(self, other):
        return self.total > _total(other)

    def __float__(self) -> float:
        return float(self.total)


def _total(x) -> float:
    return x.total if isinstance(x, StepEnergy) else float(x)


class BandCostModel(StepCostModel):
    """A :class:`~npusim.workloads.stepcost.StepCostModel` whose steps also report the parts of
    their energy the band needs; the serving simulation sees the same seconds and joules.

    The parts of each step are appended to the list :meth:`start_log` returns, one entry per
    :meth:`step` call (the serving simulation logs one step per call, in order).
    """

    def start_log(self) -> list:
        """A fresh list that receives ``(onchip J, DRAM bits, floor J)`` of each later step
        (or a ``(k, 3)`` array of ``k`` steps at once: read it with :func:`band_parts`)."""
        self._band_log: list = []
        return self._band_log

    def _run(self, *args, tp: int | None = None):
        tp = self.parallel.tp if tp is None else tp
        key = ("band", tp) + args
        hit = self._cache.get(key)
        if hit is None:
            from ..energy import load_energy_table
            from ..engine.simulate import simulate_graph
            table = self._cache.get("band-table")
            if table is None:
                table = self._cache["band-table"] = load_energy_table(self.arch)
            r = simulate_graph(self._graph(*args, tp=tp), self.arch, records=False)
            hit = (r.latency_s, StepEnergy.of(r.energy_by_component(), r.dram_bytes,
                                              table.operand_delivery, table.floor_w))
            self._cache[key] = hit
        return hit

    # the vectorised decode runs carry the same four parts as StepEnergy, a plain number
    # landing on the total and the floor energy (StepEnergy.__add__)
    _PLAIN_PARTS = (True, False, False, True)
    _ENERGY_OBJECTS = True

    def _parts(self, e) -> tuple:
        return (e.total, e.onchip, e.bits, e.floor)

    def decode_run(self, decode, steps: int) -> "DecodeRun | None":
        """:meth:`StepCostModel.decode_run`, with each step's band parts; the steps the caller
        keeps (``DecodeRun.keep``) enter the log of :meth:`start_log` as :meth:`step`'s do."""
        if type(self).step is not BandCostModel.step:
            return None
        out = self._decode_many(decode, steps)
        if out is None:
            return None
        seconds, e = out
        return DecodeRun(seconds, e[:, 0], e[:, 1:], getattr(self, "_band_log", None))

    def step(self, prefill, decode) -> StepResult:
        res = super().step(prefill, decode)
        e = res.energy_j
        parts = (e.onchip, e.bits, e.floor) if isinstance(e, StepEnergy) \
            else (0.0, 0.0, float(e))
        log = getattr(self, "_band_log", None)
        if log is not None:
            log.append(parts)
        return StepResult(res.seconds, float(e))


def has_band(arch) -> bool:
    """Whether ``arch``'s energy table gives ranges (its power is reported as a band)."""
    from ..energy import load_energy_table
    table = load_energy_table(arch)
    return table is not None and bool(table.ranges)


def nan_band() -> dict[str, float]:
    """The band keys of a record without a band."""
    from .kperf import BAND_KEYS
    return {k: math.nan for k in BAND_KEYS}


def _window_weights(result) -> tuple[np.ndarray, float]:
    """The share of each step inside the measured window, and the idle seconds in it, as the
    serving summary weighs them (closed loop: the window runs from the warm-up's last
    completion to the last measured one)."""
    sc, steps = result.scenario, result.steps
    done = sorted(q.finish_s for q in result.requests)
    w, end = sc.warmup_requests, sc.warmup_requests + sc.measured_requests
    t0 = done[w - 1] if w else min(q.arrival_s for q in result.requests)
    t1 = done[end - 1]
    start, stop = steps.start_s, steps.end_s
    dur = stop - start
    overlap = np.clip(np.minimum(stop, t1) - np.maximum(start, t0), 0.0, None)
    inside = (start >= t0) & (start <= t1)
    frac = np.where(dur > 0, overlap / np.where(dur > 0, dur, 1.0), inside.astype(float))
    idle = steps.idle
    idle_s = float(np.clip(np.minimum(idle[:, 1], t1) - np.maximum(idle[:, 0], t0), 0.0,
                           None).sum())
    return frac, idle_s


def band(result, log: list, table, limit_w: float | None) -> dict[str, Any]:
    """The band keys of a serving ``result`` run on a :class:`BandCostModel` (``log`` its
    step parts) with energy table ``table`` (which gives ``ranges``); ``limit_w`` is one
    chip's power limit (None: no limit).

    Returns ``card_power_w_low``/``_high`` (one chip, W) and ``energy_per_token_j_low``/
    ``_high``; the power's high edge is held at ``limit_w``.
    """
    s = result.summary
    energy, chips, window = s["energy_j"], s["chips"], s["window_s"]
    ept = s["energy_per_token_j"]
    parts = band_parts(log)
    if not (len(parts) == len(result.steps.start_s) and window > 0 and energy > 0
            and math.isfinite(ept) and ept > 0):
        return nan_band()
    frac, idle_s = _window_weights(result)
    onchip, bits, floor = (float((parts[:, i] * frac).sum()) for i in range(3))
    floor += float(s["static_power_w"]) * idle_s
    tokens = energy / ept
    out = {}
    for edge, i in (("low", 0), ("high", 1)):
        e = energy + _delta(table, "dynamic_overhead", i, 1.0) * onchip \
            + _delta(table, "operand_delivery", i, 0.0) * bits \
            + _floor_scale(table, i) * floor
        watts = e / window / chips
        if limit_w:
            watts = min(watts, float(limit_w))
        out[f"card_power_w_{edge}"] = watts
        out[f"energy_per_token_j_{edge}"] = e / tokens
    from .kperf import BAND_KEYS
    return {k: out[k] for k in BAND_KEYS}     # the CSV's column order, whichever run comes first


def band_parts(log: list) -> np.ndarray:
    """The ``(steps, 3)`` array of a band log (:meth:`BandCostModel.start_log`), whose entries
    are one step's ``(onchip J, DRAM bits, floor J)`` each, or a ``(k, 3)`` array of ``k``
    steps (what the compiled serving loop appends, in one piece per run)."""
    blocks, rows = [], []
    for item in log:
        if isinstance(item, np.ndarray):
            if rows:
                blocks.append(np.asarray(rows, dtype=float).reshape(-1, 3))
                rows = []
            blocks.append(np.asarray(item, dtype=float).reshape(-1, 3))
        else:
            rows.append(item)
    if rows or not blocks:
        blocks.append(np.asarray(rows, dtype=float).reshape(-1, 3))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _delta(table, field: str, edge: int, absent: float) -> float:
    """How far the ``edge`` (0 low, 1 high) of ``field``'s range lies from its central value."""
    rng = table.ranges.get(field)
    if rng is None:
        return 0.0
    central = getattr(table, field)
    return rng[edge] - (absent if central is None else central)


def _floor_scale(table, edge: int) -> float:
    rng = table.ranges.get("loaded_floor")
    if rng is None or not table.floor_w:
        return 0.0
    return rng[edge] / table.floor_w - 1.0


__all__ = ["BandCostModel", "StepEnergy", "band", "band_parts", "has_band", "nan_band"]
