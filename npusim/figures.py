"""Drawing primitives shared by every layer that draws (reports, K-Perf, validation):
matplotlib's object API on the Agg canvas (never ``pyplot``, so a notebook's backend is left
alone), imported lazily because matplotlib is the optional extra ``reports``. Imports nothing
of npusim but its errors.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .errors import NpusimError
from .files import cannot_write

COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown",
           "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def figure_class():
    """matplotlib's ``Figure``, or an error naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NpusimError("plots need matplotlib, which comes with npusim's optional extra "
                          "'reports': pip install 'npusim[reports]' (or pip install "
                          "matplotlib)") from None
    return Figure


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix), with one clear error on failure."""
    path = Path(path)
    try:
        fig.savefig(path)
    except OSError as e:
        raise cannot_write(path, "the plot", e) from None
    except ValueError as e:   # an unknown image format, from the suffix
        raise NpusimError(f"cannot write the plot {path}: {e}. Use a .png, .svg or .pdf "
                          f"file name.") from None
    return path


def log_ticks(ax, values: Sequence[int], axis: str) -> None:
    """A log axis labelled at a sweep's own values, dropping labels that would collide."""
    values = sorted(v for v in values if v > 0)
    if not values:
        return
    getattr(ax, f"set_{axis}scale")("log")
    lo, hi = math.log10(values[0]), math.log10(values[-1])
    gap = max(hi - lo, 1.0) / 14.0
    shown, last = [], -math.inf
    for v in values:
        if math.log10(v) - last >= gap or v == values[-1]:
            if shown and v == values[-1] and math.log10(v) - last < gap:
                shown.pop()          # the last value of the sweep is always labelled
            shown.append(v)
            last = math.log10(v)
    from matplotlib.ticker import FixedLocator, NullLocator
    axis_obj = getattr(ax, f"{axis}axis")
    axis_obj.set_major_locator(FixedLocator(shown))
    axis_obj.set_minor_locator(NullLocator())
    getattr(ax, f"set_{axis}ticklabels")([str(v) for v in shown])
    pad = 10 ** (gap / 2)
    getattr(ax, f"set_{axis}lim")(values[0] / pad, values[-1] * pad)
