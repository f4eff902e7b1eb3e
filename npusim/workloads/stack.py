"""The serving stack's host time: CPU work each engine step that the chips wait for.

A serving engine's CPU prepares every step (schedules, builds the batch's inputs, samples,
detokenises, answers the HTTP client). Today's engines overlap that work with the chips' step
(vLLM V1 schedules the next step while the GPUs run this one), so npusim's default charges no
host time. Older engines did not: vLLM's own profile of v0.5.3 serving Llama 3 8B on one H100
found the HTTP API server at 33 % of the time and scheduling at 29 %, the GPU running only
38 % of it ("vLLM v0.6.0: 2.7x Throughput Improvement and 5x Latency Reduction", vLLM blog,
2024-09-05, https://blog.vllm.ai/2024/09/05/perf-update.html). There the chips sit clocked
and waiting: throughput stops rising with the batch and board power falls toward its loaded
floor, which is what ML.ENERGY's v2 rows on vLLM 0.5.4 show (rows V19-V46 of
``npusim/validate/data/measured.csv``: 8B output throughput stays at 1,800-2,300 tok/s from 64
to 1,024 sequences while power falls from 305 to 244 W per GPU).

A stack preset (``npusim/archs/stacks/<name>.yaml``, or a user's YAML file) gives the host time
of one step as

    gap = step + per_sequence x (sequences scheduled in the step) + (multi_chip if chips > 1)

seconds, added after the chips' own step time; during it every chip draws the cost model's
static (loaded-floor) power. File shape::

    description: one line saying which engine and version
    step: 0 s              # host time of every step
    per_sequence: 0.4 ms   # host time per scheduled sequence in a step
    multi_chip: 0 s        # host time of every step when the model spans several chips
    fitted_rows: [V44]     # rows of measured.csv a value was fitted on (optional)

Examples
--------
>>> s = load_stack("vllm-0.5")
>>> s.gap_s(0, 1)
0.0
>>> s.gap_s(10, 1) == 10 * s.per_sequence_s + s.step_s
True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..arch.loader import preset_loader, preset_names
from ..arch.units import UnitProblem, brief, parse_quantity
from ..errors import NpusimError

__all__ = ["ServingStack", "load_stack", "stack_names", "NONE"]

FOLDER = "stacks"
NONE = "none"
MAX_GAP_S = 10.0          # more than 10 s of host time per step is a unit slip, not a stack
_KEYS = {"description", "step", "per_sequence", "multi_chip", "fitted_rows"}
_TIMES = ("step", "per_sequence", "multi_chip")


@dataclass(frozen=True)
class ServingStack:
    """Host time of a serving engine that the chips wait for (module docstring).

    Attributes
    ----------
    name : str
        Preset name (the file's stem).
    step_s, per_sequence_s, multi_chip_s : float
        Seconds of host time per step, per scheduled sequence per step, and per step when the
        model spans more than one chip.
    fitted_rows : tuple of str
        Rows of ``measured.csv`` a value was fitted on (held out of that stack's figures).
    """

    name: str
    description: str = ""
    step_s: float = 0.0
    per_sequence_s: float = 0.0
    multi_chip_s: float = 0.0
    fitted_rows: tuple[str, ...] = ()

    def gap_s(self, sequences: int, chips: int) -> float:
        """Host seconds after a step that schedules ``sequences`` on a system of ``chips``
        (nothing when nothing is scheduled)."""
        if sequences <= 0:
            return 0.0
        return (self.step_s + self.per_sequence_s * sequences
                + (self.multi_chip_s if chips > 1 else 0.0))


def _time(value: Any, label: str, key: str) -> float:
    try:
        s = parse_quantity(value, "time")
    except UnitProblem as e:
        raise NpusimError(f"{label}: {key}: {e}") from None
    if not (math.isfinite(s) and 0 <= s <= MAX_GAP_S):
        raise NpusimError(f"{label}: {key}: {brief(value)} is outside 0 s to {MAX_GAP_S:g} s "
                          f"of host time per step; check the value and its unit (e.g. 0.4 ms)")
    return s


def build_stack(tree: Any, label: str) -> ServingStack:
    """A :class:`ServingStack` from a parsed stack file; errors name ``label`` and the key."""
    if not isinstance(tree, Mapping):
        raise NpusimError(f"{label}: the stack file must be a mapping with keys "
                          f"{', '.join(sorted(_KEYS))}, got {brief(tree)}")
    extra = sorted(str(k) for k in tree if k not in _KEYS)
    if extra:
        raise NpusimError(f"{label}: unknown key {extra[0]!r}; the keys are "
                          f"{', '.join(sorted(_KEYS))}")
    desc = tree.get("description")
    if not isinstance(desc, str) or not desc.strip() or len(desc) > 400:
        raise NpusimError(f"{label}: description: must be one line of text naming the engine "
                          f"and its version, got {brief(desc)}")
    times = {k: _time(tree.get(k, "0 s"), label, k) for k in _TIMES}
    rows = tree.get("fitted_rows") or []
    if not isinstance(rows, list) or not all(isinstance(r, str) and 0 < len(r) <= 20
                                             for r in rows) or len(rows) > 8:
        raise NpusimError(f"{label}: fitted_rows: must be a list of row ids (e.g. [V44]), got "
                          f"{brief(rows)}")
    name = Path(label).stem if label.endswith((".yaml", ".yml")) else label
    return ServingStack(name=name, description=" ".join(desc.split()), step_s=times["step"],
                        per_sequence_s=times["per_sequence"], multi_chip_s=times["multi_chip"],
                        fitted_rows=tuple(rows))


_load = preset_loader(FOLDER, "the serving-stack file", "serving stack {name} has no preset",
                      build_stack)


def stack_names() -> list[str]:
    """The shipped serving-stack presets (``npusim/archs/stacks``), sorted."""
    return preset_names(FOLDER)


def load_stack(spec: str | Path | ServingStack | None) -> ServingStack | None:
    """A shipped stack preset by name, a stack YAML file by path, or None for ``None`` /
    ``"none"`` (host work overlapped with the chips: no host time)."""
    if spec is None or isinstance(spec, ServingStack):
        return spec
    text = str(spec).strip()
    if text.lower() == NONE:
        return None
    if not text:
        raise NpusimError("--stack: empty; give a serving-stack preset name "
                          f"({', '.join(stack_names())}), a stack YAML path, or none")
    return _load(spec)
