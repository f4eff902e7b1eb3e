"""The power trend check of REPORT.md (issue 13 item 3): does npusim's power move with the batch
the way the meter's does?

Issue 13 asks for "the right direction and size of change with batch (power rising with load on
GPUs from about 0.7 to about 1.0 of TDP, as measured)". A MAPE over rows cannot show that: a
model that draws the same power at every batch can sit within 15 % of every row of a series
whose measured power rises by 40 %. So the rows are grouped into series that differ only in
the batch, and each series' two ends are compared: the measured change (power at the highest
batch over power at the lowest) against the predicted one.

A series is every ran power row (``avg_power_w`` or ``avg_power_w_per_chip``) with the same
source (the id's letters), arch, model, chip count, precision, mode, meter boundary, metric,
input length and a like output length, read from the row results alone (no list of ids). The
batch is the leading number of the row's load (``"512 users (max load), tp=4"``,
``"batch 1024, seq 384"``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from .core import source_of

if TYPE_CHECKING:
    from .core import RowResult

TREND_METRICS = ("avg_power_w", "avg_power_w_per_chip")
# The size of a change is right when the predicted ratio (power at the highest batch over the
# lowest) is within 15 % of the measured ratio: the bound on held-out average power,
# applied to the ratio; with the low end exact it is the high end's own power error.
TREND_TOLERANCE = 0.15
# ML.ENERGY states each run's mean output length, which moves a few percent with the batch
# (Y1-Y9: 350-359 tokens); a run whose mean output is more than 1.25x another's is another
# workload (Y31-Y35's long reasoning outputs against Y11-Y17's). Assumption: the bound sits
# well between the two (a few percent within a series, 12x between those two).
SAME_OUTPUT = 1.25
_BATCH = re.compile(r"\s*(?:(\d+)\s+users?\b|batch\s+(\d+)\b)")


def batch_of(load: str) -> int | None:
    """The batch (concurrent users, or a graph's batch) a row's load text starts with.

    Examples
    --------
    >>> batch_of("512 users (max load), tp=4"), batch_of("batch 1024, seq 384, back to back")
    (512, 1024)
    >>> batch_of("2.5 req/s (open loop)") is None
    True
    """
    m = _BATCH.match(load or "")
    return int(m.group(1) or m.group(2)) if m else None


@dataclass(frozen=True)
class Trend:
    """One series' two ends.

    Attributes
    ----------
    label : str
        What the rows share (source, model, precision, chips x arch, boundary, lengths).
    rows : tuple of RowResult
        The series' rows in batch order.
    low, high : int
        The lowest and highest batch.
    measured, predicted : tuple of float
        Power at the low and the high end, per chip on the card boundary (the rows at one
        end averaged when several share it), per system on the system boundary.
    tdp : float or None
        The chip's TDP (W) on the card boundary, for the fractions; None on the system one.
    """

    label: str
    rows: tuple
    low: int
    high: int
    measured: tuple[float, float]
    predicted: tuple[float, float]
    tdp: float | None

    @property
    def measured_ratio(self) -> float:
        return self.measured[1] / self.measured[0]

    @property
    def predicted_ratio(self) -> float:
        return self.predicted[1] / self.predicted[0]

    @property
    def ratio_error(self) -> float:
        """The predicted ratio over the measured one, minus 1."""
        return self.predicted_ratio / self.measured_ratio - 1

    @property
    def direction_agrees(self) -> bool:
        return _direction(self.measured_ratio) == _direction(self.predicted_ratio)

    @property
    def size_agrees(self) -> bool:
        return abs(self.ratio_error) <= TREND_TOLERANCE


def _direction(ratio: float) -> str:
    return "rises" if ratio > 1 else "falls" if ratio < 1 else "flat"


def per_chip(r: "RowResult", value: float) -> float:
    """A row's power per chip on the card boundary (``avg_power_w`` is the system's)."""
    card = (r.boundary or "card") == "card"
    return value / r.chips if card and r.metric == "avg_power_w" else value


def _key(r: "RowResult") -> tuple:
    return (source_of(r.id), r.arch, r.model, r.chips, r.precision, r.mode,
            r.boundary or "card", r.metric, r.input_len)


def _by_output(rows: list) -> list[list]:
    """Rows split where the output length jumps by more than :data:`SAME_OUTPUT`."""
    out: list[list] = []
    for r in sorted(rows, key=lambda r: r.output_len or 0):
        if out and (r.output_len or 0) <= SAME_OUTPUT * (out[-1][0].output_len or 0):
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _natural(row_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", row_id))


def trend_series(rows: Iterable["RowResult"],
                 metrics: tuple[str, ...] = TREND_METRICS) -> list[list["RowResult"]]:
    """The ran rows of ``metrics`` (power, unless told) grouped into series that differ only in
    the batch (module docstring); only series with two batches or more, each in batch order."""
    groups: dict[tuple, list] = {}
    for r in rows:
        if (r.metric in metrics and r.predicted is not None and math.isfinite(r.predicted)
                and r.predicted > 0 and r.measured > 0 and batch_of(r.load) is not None):
            groups.setdefault(_key(r), []).append(r)
    out = []
    for grouped in groups.values():
        for part in _by_output(grouped):
            if len({batch_of(r.load) for r in part}) > 1:
                out.append(sorted(part, key=lambda r: (batch_of(r.load), _natural(r.id))))
    return sorted(out, key=lambda s: _natural(min((r.id for r in s), key=_natural)))


def series_label(series: list["RowResult"]) -> str:
    """What a series' rows share: ``"Y: llama-3.1-70b bf16 on 4 x h100, card, in 512, out
    350-359"`` (source, model, precision, chips x arch, boundary, input, output lengths)."""
    r = series[0]
    outs = sorted(x.output_len for x in series if x.output_len)
    out = "" if not outs else (f", out {outs[0]}" if outs[0] == outs[-1]
                               else f", out {outs[0]}-{outs[-1]}")
    inp = f", in {r.input_len}" if r.input_len else ""
    return (f"{source_of(r.id)}: {r.model} {r.precision or ''} on {r.chips} x {r.arch}, "
            f"{r.boundary or 'card'}{inp}{out}").replace("  ", " ")


def _end(series: list, batch: int) -> tuple[float, float]:
    at = [r for r in series if batch_of(r.load) == batch]
    return (sum(per_chip(r, r.measured) for r in at) / len(at),
            sum(per_chip(r, r.predicted) for r in at) / len(at))


def power_trends(rows: Iterable["RowResult"],
                 tdp: Callable[[str], float | None]) -> list[Trend]:
    """Each series of :func:`trend_series` as a :class:`Trend`; ``tdp(arch)`` gives a chip's
    TDP in W (None when unknown)."""
    out = []
    for s in trend_series(rows):
        low, high = batch_of(s[0].load), batch_of(s[-1].load)
        (m0, p0), (m1, p1) = _end(s, low), _end(s, high)
        card = (s[0].boundary or "card") == "card"
        out.append(Trend(label=series_label(s), rows=tuple(s), low=low, high=high,
                         measured=(m0, m1), predicted=(p0, p1),
                         tdp=tdp(s[0].arch) if card else None))
    return out


def _watts(w: float, tdp: float | None) -> str:
    return f"{w:,.0f} W" + (f" ({w / tdp:.2f})" if tdp else "")


def trend_markdown(trends: list[Trend]) -> str:
    """The trend table, one line a series, and a line counting the agreements."""
    if not trends:
        return "No series of power rows that differ only in the batch ran.\n"
    lines = ["| series | rows (* fitted) | batch low → high | measured (x TDP) low → high | "
             "npusim (x TDP) low → high | measured change | npusim change | direction | "
             f"size within {TREND_TOLERANCE:.0%} |", "|---|---|---|---|---|---|---|---|---|"]
    for t in trends:
        ids = ", ".join(r.id + ("*" if r.fitted else "") for r in t.rows)
        md, pd = _direction(t.measured_ratio), _direction(t.predicted_ratio)
        lines.append(
            f"| {t.label} | {ids} | {t.low} → {t.high} | {_watts(t.measured[0], t.tdp)} → "
            f"{_watts(t.measured[1], t.tdp)} | {_watts(t.predicted[0], t.tdp)} → "
            f"{_watts(t.predicted[1], t.tdp)} | x{t.measured_ratio:.3f} | "
            f"x{t.predicted_ratio:.3f} | {md} / {pd}: "
            f"{'agrees' if t.direction_agrees else 'disagrees'} | "
            f"{'yes' if t.size_agrees else 'no'} ({100 * t.ratio_error:+.1f}%) |")
    agree = sum(t.direction_agrees for t in trends)
    size = sum(t.direction_agrees and t.size_agrees for t in trends)
    lines += ["", f"Direction agrees in {agree} of {len(trends)} series; direction and size "
              f"both in {size} of {len(trends)}."]
    return "\n".join(lines) + "\n"


__all__ = ["Trend", "batch_of", "per_chip", "series_label", "trend_series", "power_trends", "trend_markdown",
           "TREND_TOLERANCE", "TREND_METRICS", "SAME_OUTPUT"]
