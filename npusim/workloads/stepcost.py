"""What one serving iteration costs: the engine, run on the parts of a transformer step.

A serving step packs prefill chunks and decoding sequences together. Its cost is

    step = sum over layer types (count x [dense(T) + sum_i attention(chunk_i)
                                          + attention(decodes)]) + head(R)

where ``T`` is the step's total new tokens (every linear layer, norm and FFN sees them as one
batch, so weights stream once per step), each prefill chunk pays its own attention over the
tokens already cached for its request, the decoding sequences share one attention call at their
mean KV length (decode attention reads each sequence's cache once, so its cost is linear in the
total KV length), and ``R`` sequences emit logits. Each part is the builder's ONNX for one layer
(``npusim/graphs/builder.py``, ``part=...``), lowered by the same frontend, put through the precision
pass and timed by the tile engine; answers are cached on grids of sizes and interpolated
linearly, so a long serving run costs seconds.

Parallel layout
---------------
``chips = tp x pp`` (:class:`ParallelLayout`). Tensor parallelism over ``tp`` chips uses the
builder's Megatron sharding: the part graphs are one chip's, with their all-reduces timed on the
arch's chip-to-chip link (:func:`npusim.engine.roofline.collective_seconds`).

Pipeline parallelism over ``pp`` stages splits the layers into contiguous runs as evenly as
possible; the ``layers mod pp`` extra layers go to the first stages, so the last stage, which
also holds the final norm, the LM head and the embedding, is never the larger one
(:func:`stage_layers`). Each chip holds its stage's weights and its stage's KV cache for every
token, so the KV capacity is the smallest over the stages. Between stages a micro-batch's
activations cross the link once: ``transfer = link.latency + hidden x tokens x activation bytes
/ link.bandwidth`` (:meth:`StepCostModel.transfer_seconds`); each of a stage's ``tp`` chips
sends its replica to its peer at once, so it is one hop.

A step over a batch runs as a serving stack's pipeline does (vLLM keeps ``pp`` micro-batches in
flight, one per virtual engine): the step's sequences are split into ``m = min(pp, sequences)``
micro-batches, each with 1/m of the step's tokens, decoding sequences, logits rows and prefill
attention. With ``t_s`` one micro-batch's time on stage ``s`` and ``x`` one transfer,

    period = max(m x max(max_s t_s, x),  sum_s t_s + (pp - 1) x + link.latency)

The first term is throughput at full load: the slowest stage (or the link) is busy with all m
micro-batches back to back. The second is one micro-batch's own round trip (the bubble a single
user pays): every stage in turn, the transfers between them, and one latency-only hop returning
the sampled tokens to the first stage, which its next step needs. The serving loop advances one
step at a time, so it sees ``period`` (plus the arch's ``step_overhead``) as the time in which
every running sequence gets one token: at one user that is the full pipeline latency, at full
load the steady-state time per step of the whole batch. Each stage streams its weights once per
micro-batch, so pipelining a memory-bound decode does not shorten it; it pays when the stages
are compute-bound or when tensor parallelism's all-reduces cost more than the transfers.
``pp = 1`` is exactly the tensor-parallel step above.

Energy: each chip's engine energy for its busy time (``m x`` its stage's, dynamic plus static
while busy), plus static power for the rest of the period, summed over all chips; the
transfers add no energy of their own (no per-byte link energy is modelled).

Choosing the layout (when ``parallel`` is not given): on a system whose chips talk over PCIe
(``link.kind`` starting with ``pcie``) every ``tp x pp = chips`` layout that the model admits
and that fits (weights plus the KV tokens the run needs, ``kv_tokens``, default
:data:`MIN_KV_TOKENS`) is costed on a
representative load (:data:`REP_USERS` users' prompts of :data:`REP_PROMPT` tokens prefilled,
then :data:`REP_OUTPUT` decode steps of all of them) and the fastest is taken, as a serving
deployment guide picks TP, PP or both by measurement. On other links (NVLink, Infinity Fabric)
tensor parallelism is kept: the serving stacks' default inside a node. The smallest chip count
with a layout that fits is chosen when ``chips`` is not given either.
"""
from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

from ..arch import load_arch
from ..errors import CapacityError, ModelError, NpusimError
from ..ir import dtype
# The precisions and what each name means live with the precision pass, shared by every entry
# point; re-exported here, where the serving cost model uses them.
from ..passes.quantize import (PRECISIONS, Precision, checkpoint_dtype,
                               resolve_precision)

# vLLM's default share of device memory it may use (gpu_memory_utilization = 0.9).
MEMORY_UTILIZATION = 0.9
# assumption: a deployment needs room for at least this many KV tokens besides its weights
MIN_KV_TOKENS = 4096
# vLLM's default KV-cache block (page) size in tokens.
KV_BLOCK_TOKENS = 16
# assumption: the sequence length at which a sliding-window layer's KV is amortised into a
# per-token capacity (K-Perf-like contexts: a few thousand tokens in, a few thousand out)
CAPACITY_CONTEXT = 8192
CHIP_COUNTS = (1, 2, 4, 8, 16, 32, 64)
# assumption: the representative load the layout is chosen on (K-Perf's longer lengths, a
# moderately loaded server); clamped to the model's context window
REP_USERS = 16
REP_PROMPT = 2048
REP_OUTPUT = 2048


@dataclass(frozen=True)
class ParallelLayout:
    """How a multi-chip system splits a model: ``tp`` chips per tensor-parallel group, ``pp``
    pipeline stages; ``chips = tp x pp``.

    Examples
    --------
    >>> ParallelLayout.parse("tp=4,pp=2")
    ParallelLayout(tp=4, pp=2)
    >>> str(ParallelLayout.parse("pp=2")), ParallelLayout(2, 2).chips
    ('tp=1,pp=2', 4)
    """

    tp: int = 1
    pp: int = 1

    @property
    def chips(self) -> int:
        return self.tp * self.pp

    def __str__(self) -> str:
        return f"tp={self.tp},pp={self.pp}"

    @classmethod
    def parse(cls, text: "str | ParallelLayout") -> "ParallelLayout":
        """``"tp=4,pp=2"`` (either key may be left out: it is then 1) as a layout.

        Raises
        ------
        ModelError
            An unknown or repeated key, a value that is not a whole number >= 1, or nothing
            given; the message shows the form expected.
        """
        if isinstance(text, ParallelLayout):
            return text
        form = "give it as tp=N,pp=M, e.g. --parallel tp=4,pp=2"
        if not isinstance(text, str) or not text.strip():
            raise ModelError(f"--parallel {text!r}: empty; {form}")
        got: dict[str, int] = {}
        for item in text.split(","):
            key, eq, value = (x.strip() for x in item.partition("="))
            if not eq or key not in ("tp", "pp"):
                raise ModelError(f"--parallel {text!r}: {item.strip()!r} is not tp=N or pp=M; "
                                 f"{form}")
            if key in got:
                raise ModelError(f"--parallel {text!r}: {key} is given twice; {form}")
            if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
                raise ModelError(f"--parallel {text!r}: {key}={value!r} is not a whole number "
                                 f">= 1; {form}")
            got[key] = int(value)
        return cls(tp=got.get("tp", 1), pp=got.get("pp", 1))


def stage_layers(layers: int, pp: int) -> list[range]:
    """The contiguous layer indices of each of ``pp`` pipeline stages, as even as possible,
    the ``layers mod pp`` extra layers on the first stages (the last also holds the LM head).

    >>> [len(r) for r in stage_layers(36, 2)], [len(r) for r in stage_layers(10, 4)]
    ([18, 18], [3, 3, 2, 2])
    """
    base, extra = divmod(layers, pp)
    out, start = [], 0
    for s in range(pp):
        n = base + (1 if s < extra else 0)
        out.append(range(start, start + n))
        start += n
    return out


@dataclass(frozen=True)
class StepResult:
    """Seconds and joules of one serving step (static power included)."""

    seconds: float
    energy_j: float


class StepCost(Protocol):
    """What the serving simulation needs from a cost model (StepCostModel is one)."""

    kv_capacity_tokens: int   # KV-cache tokens that fit the system's DRAM after weights
    kv_block_tokens: int      # paging granularity
    chips: int
    static_power_w: float     # whole system, burned while idle too
    tdp_w: float | None       # whole system

    def step(self, prefill: Sequence[tuple[int, int]], decode: Sequence[int]) -> StepResult:
        """Cost of one step: prefill chunks as (new tokens, tokens already cached), and one new
        token for each decoding sequence at the given KV lengths."""
        ...


def _grid(lo: int, hi: int, ratio: float = 2.0) -> list[int]:
    out = [lo]
    while out[-1] < hi:
        out.append(max(out[-1] + 1, int(math.ceil(out[-1] * ratio))))
    return out


TOKENS = _grid(1, 1 << 17, 1.5)         # dense / head sizes
KV = [0] + _grid(16, 1 << 18)           # cached tokens
BATCH = _grid(1, 4096)                  # decoding sequences
CHUNK = _grid(1, 1 << 17)               # prefill chunk tokens
# decode-attention answers kept per model before the memo starts afresh (mean KV lengths are
# many; a pipeline step asks for the same one per stage)
DECODE_MEMO = 4096


# Python 3.12 and later add floats in sum() with Neumaier's compensation; the vectorised decode
# runs (StepCostModel.decode_run) add as the running interpreter's sum() does
_SUM_COMPENSATED = sum([0.1] * 10) == 1.0


@dataclass(frozen=True)
class DecodeRun:
    """Seconds and joules of each of a run of consecutive decode steps
    (:meth:`StepCostModel.decode_run`). ``parts``: the power band's ``(onchip J, DRAM bits,
    floor J)`` of each step, or None. :meth:`keep` records the first ``n`` steps in whatever
    per-step log the cost model keeps (the caller keeps those, in order)."""

    seconds: np.ndarray
    energy_j: np.ndarray
    parts: "np.ndarray | None" = None
    log: "list | None" = None

    def keep(self, n: int) -> None:
        if self.log is not None and self.parts is not None:
            self.log.extend(map(tuple, self.parts[:n].tolist()))


def _bracket_many(grid: Sequence[int], x: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """:func:`_bracket` of every element of ``x``, as indices into ``grid``: (lower, upper,
    weight of the upper), the same arithmetic element by element."""
    g = np.asarray(grid, dtype=np.int64)
    i = np.clip(np.searchsorted(g, x, side="left"), 1, len(g) - 1)
    lo, hi = i - 1, i.copy()
    w = (x - g[lo]) / (g[hi] - g[lo])
    hit = g[i] == x
    lo[hit] = i[hit]
    below, above = x <= g[0], x >= g[-1]
    lo[below] = hi[below] = 0
    lo[above] = hi[above] = len(g) - 1
    same = below | above | hit
    w[same] = 0.0
    return lo, hi, w


def _pysum(values: list, floats: bool):
    """``sum(values)`` of floats (or arrays of them, element by element) as the interpreter
    adds them: from 0, one by one, or with Neumaier's compensation on Python >= 3.12 when the
    items are floats (``floats``)."""
    total = 0.0 + values[0]
    if not (_SUM_COMPENSATED and floats):
        for v in values[1:]:
            total = total + v
        return total
    c = np.zeros_like(total)
    for v in values[1:]:
        t = total + v
        c = c + np.where(np.abs(total) >= np.abs(v), (total - t) + v, (v - t) + total)
        total = t
    return np.where((c != 0) & np.isfinite(c), total + c, total)


def _bracket(grid: Sequence[int], x: float) -> tuple[int, int, float]:
    """Grid points around ``x`` and the weight of the upper one (clamped at the ends)."""
    if x <= grid[0]:
        return grid[0], grid[0], 0.0
    if x >= grid[-1]:
        return grid[-1], grid[-1], 0.0
    i = bisect.bisect_left(grid, x)
    if grid[i] == x:
        return grid[i], grid[i], 0.0
    lo, hi = grid[i - 1], grid[i]
    return lo, hi, (x - lo) / (hi - lo)


class PartRuns:
    """Part graphs and their engine runs, shared by the cost models that ask for the same.

    Cost models of one kind, model, arch and precision that differ only in chips or layout
    build and time the same part graphs: a layer's dense part at ``tp=4`` is one graph
    whether the system is four chips or eight in two pipeline stages, and its run one answer
    (every entry of the store is keyed by its tensor-parallel degree, never by the layout).
    Choosing a chip count builds a cost model for each count it tries (and each scores its
    layouts); given one of these (``StepCostModel(..., parts=...)``) they build and simulate
    each graph once. Each cost model class, model, served arch and precision has its own
    store, so cost models that differ in any of those never see each other's answers.

    Examples
    --------
    >>> parts = PartRuns()
    >>> one = StepCostModel("tiny-llama", "rngd", chips=1, parts=parts)
    >>> two = StepCostModel("tiny-llama", "rngd", chips=2, parts=parts)  # one's graphs too
    >>> len(parts)      # one store: StepCostModel, tiny-llama on rngd at bf16
    1
    """

    def __init__(self) -> None:
        self._stores: dict[tuple, dict] = {}

    def runs(self, kind: type, model: str, arch, precision: Precision) -> dict:
        """The store of cost models of class ``kind`` for ``model`` on the (served) ``arch``
        at ``precision``: graphs and runs by their arguments. A fresh, unshared one when the
        arch cannot be a key."""
        try:
            return self._stores.setdefault((kind, model, arch, precision), {})
        except TypeError:    # an arch with an unhashable field
            return {}

    def __len__(self) -> int:
        return len(self._stores)


class PendingLayout:
    """A cost model whose layout is still to be chosen among several that fit
    (:meth:`StepCostModel.pending`): what is known before costing them, and :meth:`build`.

    Attributes
    ----------
    chips : int
    fitting : list of ParallelLayout
        The layouts that hold the weights and the KV tokens the run needs; one of them will
        be chosen.
    kv_capacity_range : tuple of int
        The least and the most KV tokens the fitting layouts hold: the model's
        ``kv_capacity_tokens`` lies between them.
    """

    def __init__(self, model: "StepCostModel", chips: int,
                 fitting: Sequence[ParallelLayout]) -> None:
        self._model, self.chips, self.fitting = model, chips, list(fitting)
        held = [model._kv_capacity(lay) for lay in self.fitting]
        self.kv_capacity_range = (min(held), max(held))
        self._built: StepCostModel | None = None

    def build(self) -> "StepCostModel":
        """The cost model (built once): the fastest of the fitting layouts chosen, as the
        constructor chooses it."""
        return self._built if self._built is not None else self.settle(*self.choose())

    def choose(self) -> tuple[ParallelLayout, str]:
        """The layout :meth:`build` takes, and why: costs every fitting layout on the
        representative load (a process may do this and hand the answer to :meth:`settle`
        in another)."""
        return self._model._fastest(self.fitting)

    def settle(self, layout: ParallelLayout, why: str) -> "StepCostModel":
        """The cost model with the layout :meth:`choose` gave (once built, the model
        built)."""
        if self._built is None:
            if layout not in self.fitting:
                raise ValueError(f"{layout} is not one of the fitting layouts {self.fitting}")
            self._model._settle(layout, why)
            self._built = self._model
        return self._built

    @property
    def built(self) -> bool:
        """Whether :meth:`build` has chosen the layout."""
        return self._built is not None

    @property
    def kv_capacity_tokens(self) -> int:
        """The built model's KV capacity (builds it)."""
        return self.build().kv_capacity_tokens


class StepCostModel:
    """Serving-step costs of a built-in LLM on an arch (the StepCost protocol).

    Parameters
    ----------
    model : str
        A built-in LLM (``npusim models``).
    arch : str, Path or Arch
    chips : int, optional
        Chips in the system; the smallest with a layout that fits when omitted.
    precision : str or Precision
        One of :data:`PRECISIONS` or a custom :class:`Precision`.
    overrides : arch field overrides (``{"dram.bandwidth": "3 TB/s"}``)
    graphs : bool
        The serving stack replays each step's kernels from captured graphs (CUDA graphs: vLLM
        V1's default, TensorRT-LLM's PyTorch backend, torch.compile's reduce-overhead mode),
        so every kernel costs the arch's ``graph_launch_overhead`` (where it has one) instead
        of a standalone ``launch_overhead``. False for stacks that launch kernel by kernel.
    parallel : str or ParallelLayout, optional
        The layout, ``"tp=4,pp=2"`` (its product must equal ``chips`` when both are given);
        when omitted, the fastest that fits on a PCIe-linked system and tensor parallelism on
        others (module docstring). ``parallel`` and ``parallel_why`` say which and why.
    kv_tokens : int, optional
        KV-cache tokens the run needs beside the weights (e.g. the largest users x (input +
        output) of a K-Perf matrix); a layout or chip count chosen automatically must hold
        them. Default :data:`MIN_KV_TOKENS`.
    parts : PartRuns, optional
        Part graphs and their engine runs to share with other cost models (of other chip
        counts or layouts); by default this model keeps its own.

    Examples
    --------
    >>> m = StepCostModel("tiny-llama", "rngd")
    >>> m.step([(16, 0)], []).seconds > 0
    True
    """

    def __init__(self, model: str, arch, *, chips: int | None = None,
                 precision: str | Precision = "bf16",
                 overrides: Mapping[str, str] | Sequence[str] | None = None,
                 graphs: bool = True,
                 parallel: "str | ParallelLayout | None" = None,
                 kv_tokens: int | None = None, parts: "PartRuns | None" = None) -> None:
        layout = self._prepare(model, arch, chips=chips, precision=precision,
                               overrides=overrides, graphs=graphs, parallel=parallel,
                               kv_tokens=kv_tokens, parts=parts)
        self._settle(*self._choose(chips, layout))

    @classmethod
    def pending(cls, model: str, arch, *, chips: int, precision: str | Precision = "bf16",
                graphs: bool = True, kv_tokens: int | None = None,
                parts: "PartRuns | None" = None) -> "StepCostModel | PendingLayout":
        """The cost model of ``chips`` chips, or, when its layout is to be chosen by costing
        several (a PCIe-linked system: module docstring), a :class:`PendingLayout` that
        chooses it only when asked.

        The arguments are the constructor's; ``PendingLayout.build()`` is then the model the
        constructor gives, and whatever the constructor raises before costing a layout is
        raised here.

        Examples
        --------
        >>> p = StepCostModel.pending("tiny-llama", "rngd", chips=2)
        >>> [str(lay) for lay in p.fitting], p.built
        (['tp=2,pp=1', 'tp=1,pp=2'], False)
        >>> p.build().parallel_why == StepCostModel("tiny-llama", "rngd", chips=2).parallel_why
        True
        """
        out = cls.__new__(cls)
        out._prepare(model, arch, chips=chips, precision=precision, overrides=None,
                     graphs=graphs, parallel=None, kv_tokens=kv_tokens, parts=parts)
        decided, fitting = out._fitting(chips, None)
        if decided is not None:
            out._settle(*decided)
            return out
        return PendingLayout(out, chips, fitting)

    def _prepare(self, model: str, arch, *, chips, precision, overrides, graphs, parallel,
                 kv_tokens, parts) -> "ParallelLayout | None":
        """Everything the constructor sets before the layout; the layout given, if any."""
        arch = load_arch(arch, overrides) if isinstance(arch, (str, Path)) else arch
        # a serving stack that captures graphs replays each step's kernels from them
        self.arch = arch.for_serving() if graphs else arch
        self.graphs = graphs
        self.model = model
        from ..frontend.llm import check_sizes, model_spec
        self.spec = model_spec(model)
        layout = ParallelLayout.parse(parallel) if parallel is not None else None
        check_sizes(self.spec, chips=chips)
        if layout is not None:
            check_sizes(self.spec, chips=layout.chips)
        self._precision = resolve_precision(precision, self.arch)
        self.precision = self._precision.name
        # part graphs and their runs by their arguments (tp resolved): the same for every
        # chip count and layout of this model, arch and precision, so they may be shared
        self._cache: dict = {} if parts is None else parts.runs(type(self), model, self.arch,
                                                                self._precision)
        # dense, head and prefill-attention answers by their arguments: a serving run asks
        # for the same few sizes again and again (pure functions of the cached runs)
        self._memo: dict = {}
        self._decode_memo: dict = {}
        self.layer_groups = self._layer_groups()
        self.kv_block_tokens = KV_BLOCK_TOKENS
        self._kv_need = MIN_KV_TOKENS if kv_tokens is None else int(kv_tokens)
        from ..energy import load_energy_table
        table = load_energy_table(self.arch)
        self._chip_static_w = table.floor_w if table is not None else 0.0
        return layout

    def _settle(self, parallel: ParallelLayout, why: str) -> None:
        """Everything the constructor sets once the layout is chosen."""
        model = self.model
        self.parallel, self.parallel_why = parallel, why
        self.chips = self.parallel.chips
        self.arch.require_link(self.chips, f" (parallelism {self.parallel} of {model})")
        self.weight_bytes_per_chip = self._weight_bytes(self.parallel.tp, self.parallel.pp)
        self.kv_capacity_tokens = self._kv_capacity(self.parallel)
        if self.kv_capacity_tokens < 1:
            raise CapacityError(
                f"{model} at {self.precision} on {self.chips} x {self.arch.name} "
                f"({self.parallel}): the weights ({self.weight_bytes_per_chip / 1e9:.1f} GB "
                f"per chip) leave no room for the KV cache in "
                f"{self.arch.dram.capacity / 1e9:.1f} GB; use more chips (--chips) or a "
                f"narrower precision")
        self.static_power_w = self._static_w(self.parallel)
        self.tdp_w = self.arch.power.tdp * self.chips if self.arch.power.tdp else None

    # -- structure -------------------------------------------------------------------
    def _layer_groups(self) -> list[tuple[int, int]]:
        """(representative layer index, count) per distinct layer type."""
        s = self.spec
        groups: dict[tuple, list[int]] = {}
        for i in range(s.layers):
            groups.setdefault((s.is_sliding(i), s.uses_rope(i)), []).append(i)
        return [(idx[0], len(idx)) for idx in groups.values()]

    def _check_tp(self, n: int) -> None:
        problem = self._layout_problem(ParallelLayout(n, 1))
        if problem:
            raise NpusimError(f"--chips {n}: {problem}")

    def _layout_problem(self, lay: ParallelLayout) -> str | None:
        """Why the model cannot run in ``lay`` (None if it can): tensor parallelism must share
        the attention heads evenly and divide or be divided by the KV heads (the builder's
        sharding rule), and every pipeline stage needs a layer."""
        s = self.spec
        if lay.tp < 1 or s.heads % lay.tp:
            return (f"{self.model} has {s.heads} attention heads, which tp={lay.tp} chips "
                    f"cannot share evenly; use a divisor")
        if s.kv_heads % lay.tp and lay.tp % s.kv_heads:
            return (f"{self.model} has {s.kv_heads} KV heads, which tp={lay.tp} neither "
                    f"divides nor is a multiple of; use a divisor of {s.kv_heads}")
        if lay.pp < 1 or lay.pp > s.layers:
            return (f"{self.model} has {s.layers} layers, too few for pp={lay.pp} pipeline "
                    f"stages; use at most {s.layers}")
        return None

    def _stages(self, pp: int) -> list[list[tuple[int, int]]]:
        """Per pipeline stage, (representative layer, count) per layer type it holds; the
        representatives are :attr:`layer_groups`' so every stage shares their graphs."""
        if pp == 1:
            return [self.layer_groups]
        hit = self._memo.get(("stages", pp))
        if hit is not None:
            return hit
        s = self.spec
        rep = {(s.is_sliding(i), s.uses_rope(i)): i for i, _ in self.layer_groups}
        out = []
        for layers in stage_layers(s.layers, pp):
            counts: dict[int, int] = {}
            for i in layers:
                r = rep[(s.is_sliding(i), s.uses_rope(i))]
                counts[r] = counts.get(r, 0) + 1
            out.append([(r, counts[r]) for r, _ in self.layer_groups if counts.get(r)])
        self._memo[("stages", pp)] = out
        return out

    # -- choosing the layout ---------------------------------------------------------
    def _candidates(self, chips: int) -> list[ParallelLayout]:
        """The layouts of ``chips`` the model admits, tensor parallelism first; pipeline
        layouts only on a PCIe-linked system (see the module docstring)."""
        pcie = chips > 1 and self.arch.link is not None and \
            self.arch.link.kind.lower().startswith("pcie")
        out = [ParallelLayout(chips // pp, pp) for pp in range(1, chips + 1)
               if chips % pp == 0 and (pp == 1 or pcie)]
        return [lay for lay in out if self._layout_problem(lay) is None]

    def _choose(self, chips: int | None,
                layout: ParallelLayout | None) -> tuple[ParallelLayout, str]:
        """The layout and why: the one given, else the fastest that fits (module docstring)."""
        decided, fitting = self._fitting(chips, layout)
        return decided if decided is not None else self._fastest(fitting)

    def _fitting(self, chips: int | None, layout: ParallelLayout | None
                 ) -> "tuple[tuple[ParallelLayout, str] | None, list[ParallelLayout]]":
        """:meth:`_choose` up to costing layouts: ``((layout, why), [])`` when that is not
        needed, else ``(None, the layouts that fit)``, two or more of ``chips`` chips."""
        wanted = layout.chips if layout is not None else chips
        if wanted is not None:
            self.arch.require_link(wanted, f" (parallelism of {self.model} over {wanted} chips)")
        if layout is not None:
            if chips is not None and layout.chips != chips:
                raise NpusimError(f"--parallel {layout}: tp x pp = {layout.chips} chips, but "
                                  f"--chips is {chips}; make the product equal the chip count "
                                  f"or leave --chips out")
            problem = self._layout_problem(layout)
            if problem:
                raise NpusimError(f"--parallel {layout}: {problem}")
            return (layout, "given (--parallel)"), []
        if chips is None:
            chips, fitting = self._smallest_fit()
        else:
            self._check_chips(chips)
            admitted = self._candidates(chips)
            fitting = [lay for lay in admitted if self._kv_capacity(lay) >= self._kv_need]
            # nothing holds the KV needed: keep the tensor-parallel layout (or the first the
            # model admits), whose capacity check below says what is wrong
            fitting = fitting or admitted[:1]
        if len(fitting) == 1:
            lay = fitting[0]
            if chips == 1:
                return (lay, "one chip"), []
            if lay.pp == 1 and not (self.arch.link.kind.lower().startswith("pcie")):
                return (lay, (f"tensor parallelism, the serving stacks' default over "
                              f"{self.arch.link.kind}")), []
            return (lay, ("the only layout that fits" if len(self._candidates(chips)) > 1 else
                          f"the only layout {self.model} admits on {chips} chips")), []
        return None, fitting

    def _fastest(self, fitting: Sequence[ParallelLayout]) -> tuple[ParallelLayout, str]:
        """The fastest of ``fitting`` on the representative load, and why."""
        scored = sorted(((self._score(lay), lay.pp, lay) for lay in fitting),
                        key=lambda x: x[:2])
        best = scored[0][2]
        what = ", ".join(f"{lay} {t:.4g} s" for t, _, lay in scored)
        return best, (f"fastest that fits on a representative load ({self._rep_text()}): "
                      f"{what}")

    def _check_chips(self, chips: int) -> None:
        """A chip count with no admissible layout: the tensor-parallel message, as before."""
        if not self._candidates(chips):
            self._check_tp(chips)
            raise NpusimError(f"--chips {chips}: {self.model} admits no layout of {chips} chips")

    def _rep(self) -> tuple[int, int, int]:
        """(users, prompt tokens, output tokens) of the representative load."""
        ctx = self.spec.context or (REP_PROMPT + REP_OUTPUT)
        prompt = max(1, min(REP_PROMPT, ctx // 2))
        out = max(1, min(REP_OUTPUT, ctx - prompt - 1))
        return REP_USERS, prompt, out

    def _rep_text(self) -> str:
        users, prompt, out = self._rep()
        return f"{users} users, {prompt} tokens in, {out} out"

    def _score(self, lay: ParallelLayout) -> float:
        """Seconds to serve the representative load in ``lay``: every user's prompt prefilled
        on its own, then the output decoded for all of them at their mid-output KV length."""
        users, prompt, out = self._rep()
        prefill = self._step([(prompt, 0)], [], lay).seconds
        decode = self._step([], [prompt + out // 2] * users, lay).seconds
        return users * prefill + out * decode

    def _graph(self, part: str, phase: str, batch: int, seq: int | None, kv_len: int | None,
               layer: int | None, tp: int):
        key = ("graph", part, phase, batch, seq, kv_len, layer, tp)
        g = self._cache.get(key)
        if g is None:
            from ..frontend.llm import load_part, mx_experts_only
            p = self._precision
            # built, loaded and quantised once per process: the cost models of other
            # precisions and archs ask for the same parts
            g = load_part(self.model, phase, batch, seq=seq, kv_len=kv_len,
                          dtype=checkpoint_dtype(p), part=part, layer=layer, tp=tp,
                          name=f"{self.model} {part}", precision=p,
                          experts_only=mx_experts_only(self.model, p))
            self._cache[key] = g
        return g

    # -- the part answers at one grid point, which the costs interpolate between (the
    # compiled serving loop fills its tables through these too)
    def _dense_point(self, tokens: int, layer: int, tp) -> tuple:
        """One layer's dense part for ``tokens`` new tokens."""
        return self._run("dense", "prefill", 1, tokens, None, layer, tp=tp)

    def _head_point(self, rows: int, tp) -> tuple:
        """The head (final norm, LM head, embedding) for ``rows`` sequences."""
        return self._run("head", "prefill", rows, rows, None, None, tp=tp)

    def _decode_point(self, batch: int, kv: int, layer: int, tp) -> tuple:
        """One layer's decode attention of ``batch`` sequences at ``kv`` cached tokens (at
        least 1: a decoding sequence has its prompt cached)."""
        return self._run("attention", "decode", batch, None, max(kv, 1), layer, tp=tp)

    def _prefill_point(self, chunk: int, cached: int, layer: int, tp) -> tuple:
        """One layer's attention for a prefill chunk of ``chunk`` tokens over ``cached``."""
        return self._run("attention", "prefill", 1, chunk, cached, layer, tp=tp)

    def _run(self, *args, tp: int | None = None) -> tuple[float, float]:
        tp = self.parallel.tp if tp is None else tp
        key = ("run", tp) + args
        hit = self._cache.get(key)
        if hit is None:
            from ..engine.simulate import simulate_graph
            # the totals alone (RunTotals: the same sums as the records', to the last bit)
            r = simulate_graph(self._graph(*args, tp=tp), self.arch, records=False)
            hit = (r.latency_s, r.energy_j)
            self._cache[key] = hit
        return hit

    # -- capacity --------------------------------------------------------------------
    def _layer_weight(self, layer: int | None, tp: int) -> float:
        """One layer's weight bytes on one chip (``layer`` None: the head and embedding)."""
        if layer is None:
            return self._graph("head", "prefill", 1, 1, None, None, tp).bytes_by_role()["weight"]
        # every expert of an MoE layer is resident: a dense part over enough tokens to touch
        # them all holds them all (its step cost uses only the experts a step's tokens reach)
        tokens = 1 if not self.spec.experts else 1 << 20
        return self._graph("dense", "prefill", 1, tokens, None, layer, tp).bytes_by_role()["weight"]

    def _stage_weights(self, tp: int, pp: int) -> list[float]:
        """Weight bytes on one chip of each pipeline stage (the last holds the head)."""
        out = []
        for s, groups in enumerate(self._stages(pp)):
            total = 0.0
            for layer, count in groups:
                total += count * self._layer_weight(layer, tp)
            if s == pp - 1:
                total += self._layer_weight(None, tp)
            out.append(total)
        return out

    def _weight_bytes(self, tp: int, pp: int = 1) -> float:
        """Weight bytes on the fullest chip."""
        return max(self._stage_weights(tp, pp))

    def _stage_kv(self, tp: int, layers: Sequence[int]) -> tuple[float, float]:
        s = self.spec
        per_layer = 2 * max(1, s.kv_heads // tp) * s.head_dim * dtype(self._precision.kv).bytes
        full = sum(per_layer for i in layers if not s.is_sliding(i))
        sliding = sum(per_layer for i in layers if s.is_sliding(i))
        return full, sliding

    def kv_bytes_per_token(self, tp: int | None = None,
                           pp: int | None = None) -> tuple[float, float]:
        """KV bytes per token on one chip of the first (largest) pipeline stage: (full-attention
        layers, sliding-window layers)."""
        tp = tp or self.parallel.tp
        pp = pp or self.parallel.pp
        return self._stage_kv(tp, stage_layers(self.spec.layers, pp)[0])

    def _kv_capacity(self, lay: "ParallelLayout | int") -> int:
        """KV tokens the system holds: the smallest over the pipeline stages (each chip keeps
        its stage's layers' KV for every token)."""
        lay = lay if isinstance(lay, ParallelLayout) else ParallelLayout(lay, 1)
        # a sliding layer keeps at most a window per sequence: per token of a sequence of
        # CAPACITY_CONTEXT tokens it holds window / CAPACITY_CONTEXT of a token
        share = min(1.0, (self.spec.window or 0) / CAPACITY_CONTEXT)
        caps = []
        for weights, layers in zip(self._stage_weights(lay.tp, lay.pp),
                                   stage_layers(self.spec.layers, lay.pp)):
            usable = self.arch.dram.capacity * MEMORY_UTILIZATION - weights
            full, sliding = self._stage_kv(lay.tp, layers)
            per_token = full + sliding * share
            caps.append(int(usable // per_token) if usable > 0 and per_token > 0 else 0)
        return min(caps)

    def _smallest_fit(self) -> tuple[int, list[ParallelLayout]]:
        """The fewest chips with a layout that fits, and those layouts."""
        tried = []
        for n in CHIP_COUNTS:
            cands = self._candidates(n)
            if not cands:
                continue
            fitting = [lay for lay in cands if self._kv_capacity(lay) >= self._kv_need]
            tried.append((n, min(self._weight_bytes(lay.tp, lay.pp) for lay in cands)))
            if fitting:
                return n, fitting
        n, w = tried[-1]
        raise CapacityError(
            f"{self.model} at {self.precision} does not fit {self.arch.name}: even {n} chips "
            f"hold {w / 1e9:.1f} GB of weights each against {self.arch.dram.capacity / 1e9:.1f} "
            f"GB of DRAM with {self._kv_need} KV tokens to spare; use a narrower precision or a "
            f"larger memory (--set dram.capacity=...)")

    # -- costs -----------------------------------------------------------------------
    def _interp1(self, grid, x, fn) -> tuple[float, float]:
        lo, hi, w = _bracket(grid, x)
        a = fn(lo)
        if w == 0.0:
            return a
        b = fn(hi)
        return a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1])

    def _interp2(self, gx, x, gy, y, fn) -> tuple[float, float]:
        xl, xh, wx = _bracket(gx, x)
        yl, yh, wy = _bracket(gy, y)
        f00 = fn(xl, yl)
        f10 = fn(xh, yl) if wx else f00
        f01 = fn(xl, yh) if wy else f00
        f11 = fn(xh, yh) if wx and wy else (f10 if wx else f01)
        return tuple(f00[i] * (1 - wx) * (1 - wy) + f10[i] * wx * (1 - wy)
                     + f01[i] * (1 - wx) * wy + f11[i] * wx * wy for i in range(2))

    def dense(self, tokens: float, *, groups=None, tp: int | None = None) -> tuple[float, float]:
        """All layers' (or ``groups``' layers') dense work (projections, norms, FFN) for
        ``tokens`` new tokens on one chip of ``tp``."""
        key = ("dense", tokens, None if groups is None else tuple(groups), tp)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        t = e = 0.0
        for layer, count in (self.layer_groups if groups is None else groups):
            dt, de = self._interp1(TOKENS, tokens,
                                   lambda n, L=layer: self._dense_point(n, L, tp))
            t += count * dt
            e += count * de
        self._memo[key] = t, e
        return t, e

    def attention_decode(self, batch: float, kv: float, *, groups=None,
                         tp: int | None = None) -> tuple[float, float]:
        """All layers' attention for ``batch`` decoding sequences at mean KV length ``kv``."""
        t = e = 0.0
        memo = self._decode_memo
        for layer, count in (self.layer_groups if groups is None else groups):
            # one layer's answer, kept for the other pipeline stages of the same step (and
            # whatever repeats): the mean KV length takes too many values to keep them all
            key = (batch, kv, layer, tp)
            hit = memo.get(key)
            if hit is None:
                if len(memo) >= DECODE_MEMO:
                    memo.clear()
                hit = memo[key] = self._interp2(
                    BATCH, batch, KV, kv,
                    lambda b, k, L=layer: self._decode_point(b, k, L, tp))
            dt, de = hit
            t += count * dt
            e += count * de
        return t, e

    def attention_prefill(self, chunk: int, cached: int, *, groups=None,
                          tp: int | None = None) -> tuple[float, float]:
        """All layers' attention for one prefill chunk over its request's cached tokens.

        The built graph computes the whole ``chunk x (cached + chunk)`` score rectangle and
        masks it, as ONNX must. A serving kernel skips the tiles above the causal diagonal
        (FlashAttention-2, Dao 2023, section 3.1: blocks whose keys all follow their queries
        are never computed), so the chunk's new tokens see on average half of themselves: the
        cost is the graph's at ``cached + chunk / 2`` keys. Attention time is linear in the
        key count at a fixed chunk (both matmuls, the softmax and the cache reads scale with
        it), so that is ``1.5 t(cached) - 0.5 t(cached + chunk)``, the graph's line through
        ``cached`` and ``cached + chunk`` evaluated half a chunk earlier; it is kept at or above
        half the rectangle's cost. Assumption for NPUs: their attention kernels skip fully
        masked tiles as the GPU kernels do.
        """
        key = ("prefill", chunk, cached, None if groups is None else tuple(groups), tp)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        t = e = 0.0
        for layer, count in (self.layer_groups if groups is None else groups):
            t0, e0 = self._prefill_layer(chunk, cached, layer, tp)
            t += count * t0
            e += count * e0
        self._memo[key] = t, e
        return t, e

    def _prefill_layer(self, chunk: int, cached: int, layer: int, tp) -> tuple[float, float]:
        """One layer's prefill attention (:meth:`attention_prefill`), kept by its arguments
        (every pipeline stage of a step asks for the same)."""
        key = ("prefill-layer", chunk, cached, layer, tp)
        hit = self._memo.get(key)
        if hit is not None:
            return hit

        def rect(k):
            return self._interp2(
                CHUNK, chunk, KV, k,
                lambda c, kk: self._prefill_point(c, kk, layer, tp))
        t0, e0 = rect(cached)
        if chunk > 1:
            t1, e1 = rect(cached + chunk)
            t0 = max(1.5 * t0 - 0.5 * t1, 0.5 * t0)
            e0 = max(1.5 * e0 - 0.5 * e1, 0.5 * e0)
        self._memo[key] = t0, e0
        return t0, e0

    def head(self, rows: float, *, tp: int | None = None) -> tuple[float, float]:
        """Final norm, LM head and embedding for ``rows`` sequences emitting logits."""
        key = ("head", rows, tp)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._interp1(
                TOKENS, rows, lambda n: self._head_point(n, tp))
        return hit

    def transfer_seconds(self, tokens: float) -> float:
        """One inter-stage hop of a pipeline: ``tokens`` rows of the hidden state at the
        activation precision over the link, plus its per-hop latency (null: 0, as for a
        collective)."""
        link = self.arch.link
        if link is None:
            return 0.0
        nbytes = tokens * self.spec.hidden * dtype(self._precision.activations).bytes
        return (link.latency or 0.0) + nbytes / link.bandwidth

    def step(self, prefill: Sequence[tuple[int, int]], decode: Sequence[int]) -> StepResult:
        """Cost of one step: ``prefill`` chunks as (new tokens, already cached tokens), and one
        token for each decoding sequence at the given KV lengths."""
        return self._step(prefill, decode, self.parallel)

    def _step(self, prefill: Sequence[tuple[int, int]], decode: Sequence[int],
              lay: ParallelLayout) -> StepResult:
        tokens = sum(c for c, _ in prefill) + len(decode)
        if tokens == 0:
            return StepResult(0.0, 0.0)
        if lay.pp > 1:
            return self._pipeline_step(prefill, decode, lay, tokens)
        tp = lay.tp
        t, e = self.dense(tokens, tp=tp)
        if decode and min(decode) < 1:   # a decoding sequence has at least its prompt cached
            decode = [max(1, k) for k in decode]
        for c, p in prefill:
            at, ae = self.attention_prefill(c, p, tp=tp)
            t, e = t + at, e + ae
        if decode:
            at, ae = self.attention_decode(len(decode), sum(decode) / len(decode), tp=tp)
            t, e = t + at, e + ae
        ht, he = self.head(len(prefill) + len(decode), tp=tp)
        # the serving stack's fixed cost per iteration (scheduler, sampling), at static power
        extra = self.arch.step_overhead
        return StepResult(t + ht + extra,
                          (e + he) * tp + extra * self._static_w(lay))

    def _static_w(self, lay: ParallelLayout) -> float:
        """Static power of all the chips of ``lay``."""
        return self._chip_static_w * lay.chips

    def stage_times(self, prefill: Sequence[tuple[int, int]], decode: Sequence[int],
                    lay: ParallelLayout | None = None) -> tuple[int, list[tuple[float, float]]]:
        """``(m, [(seconds, joules) of one micro-batch on one chip of each stage])`` for a
        step split into ``m`` micro-batches (module docstring)."""
        lay = lay or self.parallel
        seqs = len(prefill) + len(decode)
        m = max(1, min(lay.pp, seqs))
        tokens = sum(c for c, _ in prefill) + len(decode)
        if decode and min(decode) < 1:
            decode = [max(1, k) for k in decode]
        out = []
        stages = self._stages(lay.pp)
        for s, groups in enumerate(stages):
            t, e = self.dense(tokens / m, groups=groups, tp=lay.tp)
            for c, p in prefill:
                at, ae = self.attention_prefill(c, p, groups=groups, tp=lay.tp)
                t, e = t + at / m, e + ae / m
            if decode:
                at, ae = self.attention_decode(len(decode) / m, sum(decode) / len(decode),
                                               groups=groups, tp=lay.tp)
                t, e = t + at, e + ae
            if s == len(stages) - 1:
                ht, he = self.head(seqs / m, tp=lay.tp)
                t, e = t + ht, e + he
            out.append((t, e))
        return m, out

    def _pipeline_step(self, prefill, decode, lay: ParallelLayout, tokens: int) -> StepResult:
        m, stages = self.stage_times(prefill, decode, lay)
        hop = self.transfer_seconds(tokens / m)
        back = (self.arch.link.latency or 0.0) if self.arch.link is not None else 0.0
        busiest = max(max(t for t, _ in stages), hop)
        one_pass = sum(t for t, _ in stages) + (lay.pp - 1) * hop + back
        period = max(m * busiest, one_pass)
        chip_static = self._static_w(lay) / lay.chips
        energy = lay.tp * sum(m * e + chip_static * max(0.0, period - m * t) for t, e in stages)
        extra = self.arch.step_overhead
        return StepResult(period + extra, energy + extra * self._static_w(lay))

    # -- runs of decode steps, vectorised -------------------------------------------
    # What an energy value is made of: one float here; the power band's model carries more
    # parts (powerband.StepEnergy). A plain number added to an energy lands on the parts
    # flagged in _PLAIN_PARTS (the total, and the floor energy for the band).
    _PLAIN_PARTS = (True,)
    _ENERGY_OBJECTS = False   # energies are floats (sum() adds them on its float path)

    def _parts(self, e) -> tuple:
        return (e,)

    def _vectorised(self) -> bool:
        """Whether :meth:`decode_run` reproduces this model's steps (a subclass that changes
        how a step is costed falls back to the step loop)."""
        cls = type(self)
        return all(getattr(cls, name) is getattr(StepCostModel, name) for name in
                   ("_step", "_pipeline_step", "stage_times", "dense", "attention_decode",
                    "head", "transfer_seconds", "_interp1", "_interp2", "_static_w"))

    def decode_run(self, decode: Sequence[int], steps: int) -> "DecodeRun | None":
        """Costs of ``steps`` consecutive steps in which the same sequences all decode, their KV
        lengths ``decode`` before the first and one longer each step after: what ``steps`` calls
        of :meth:`step` with ``([], decode + j)`` return, to the bit, evaluated as arrays.

        Returns None when this model cannot (a subclass that costs steps differently, or a
        KV length below 1); the caller then calls :meth:`step` per step.

        Examples
        --------
        >>> m = StepCostModel("tiny-llama", "rngd")
        >>> run = m.decode_run([40, 70], 3)
        >>> [m.step([], [40 + j, 70 + j]).seconds for j in range(3)] == run.seconds.tolist()
        True
        """
        if type(self).step is not StepCostModel.step:
            return None
        out = self._decode_many(decode, steps)
        return None if out is None else DecodeRun(out[0], out[1][:, 0])

    def _decode_many(self, decode, steps: int):
        """(seconds (steps,), energy parts (steps, parts)) of a decode run, or None."""
        if not self._vectorised() or steps < 1:
            return None
        decode = np.asarray(decode, dtype=np.int64)
        R = len(decode)
        if R == 0 or int(decode.min()) < 1:
            return None
        # the mean KV length of step j: sum(decode + j) / R, exact integers divided once
        kv = (int(decode.sum()) + R * np.arange(steps, dtype=np.int64)) / R
        lay = self.parallel
        if lay.pp > 1:
            return self._pipeline_many(R, kv, lay)
        tp = lay.tp
        td, ed = self.dense(R, tp=tp)
        at, ae = self._attention_decode_many(R, kv, None, tp)
        t, e = td + at, self._vec(ed) + ae
        ht, he = self.head(R, tp=tp)
        extra = self.arch.step_overhead
        return (t + ht + extra,
                self._plus_plain((e + self._vec(he)) * tp, extra * self._static_w(lay)))

    def _vec(self, e) -> np.ndarray:
        return np.asarray(self._parts(e), dtype=float)

    def _plus_plain(self, e: np.ndarray, x) -> np.ndarray:
        """``e + x`` for a plain number (or a column of them) ``x``, as the energy values add
        it."""
        out = e.copy()
        for i, plain in enumerate(self._PLAIN_PARTS):
            if plain:
                out[..., i] = e[..., i] + x
        return out

    def _attention_decode_many(self, batch, kv: np.ndarray, groups, tp: int):
        """:meth:`attention_decode` at each mean KV length of ``kv``."""
        t, e = 0.0, None
        for layer, count in (self.layer_groups if groups is None else groups):
            dt, de = self._interp2_many(
                BATCH, batch, KV, kv, lambda b, k, L=layer: self._decode_point(b, k, L, tp))
            t = t + count * dt
            e = self._plus_plain(count * de, 0.0) if e is None else e + count * de
        return t, e

    def _interp2_many(self, gx, x, gy, y: np.ndarray, fn):
        """:meth:`_interp2` at each ``y`` (``x`` fixed), the same lookups and arithmetic."""
        xl, xh, wx = _bracket(gx, x)
        lo, hi, wy = _bracket_many(gy, y)
        need = np.unique(np.concatenate((lo, hi)))
        at_lo, at_hi = np.searchsorted(need, lo), np.searchsorted(need, hi)

        def column(xv):
            vals = [fn(xv, gy[j]) for j in need.tolist()]
            return (np.array([v[0] for v in vals], dtype=float),
                    np.array([self._parts(v[1]) for v in vals], dtype=float))

        c0 = column(xl)
        c1 = column(xh) if wx else c0
        f00 = (c0[0][at_lo], c0[1][at_lo])
        f10 = (c1[0][at_lo], c1[1][at_lo]) if wx else f00
        f01 = (c0[0][at_hi], c0[1][at_hi])
        f11 = (c1[0][at_hi], c1[1][at_hi]) if wx else f01
        a, b = 1 - wx, 1 - wy
        bc, wc = b[:, None], wy[:, None]
        t = f00[0] * a * b + f10[0] * wx * b + f01[0] * a * wy + f11[0] * wx * wy
        e = f00[1] * a * bc + f10[1] * wx * bc + f01[1] * a * wc + f11[1] * wx * wc
        return t, e

    def _pipeline_many(self, R: int, kv: np.ndarray, lay: ParallelLayout):
        """:meth:`_pipeline_step` of a decode run (:meth:`stage_times` with no prefill)."""
        m = max(1, min(lay.pp, R))
        stages = self._stages(lay.pp)
        ts, es = [], []
        for s, groups in enumerate(stages):
            t, e = self.dense(R / m, groups=groups, tp=lay.tp)
            at, ae = self._attention_decode_many(R / m, kv, groups, lay.tp)
            t, e = t + at, self._vec(e) + ae
            if s == len(stages) - 1:
                ht, he = self.head(R / m, tp=lay.tp)
                t, e = t + ht, e + self._vec(he)
            ts.append(t)
            es.append(e)
        hop = self.transfer_seconds(R / m)
        back = (self.arch.link.latency or 0.0) if self.arch.link is not None else 0.0
        busiest = ts[0]
        for t in ts[1:]:
            busiest = np.where(t > busiest, t, busiest)
        busiest = np.where(hop > busiest, hop, busiest)
        one_pass = _pysum(ts, True) + (lay.pp - 1) * hop + back
        period = np.where(one_pass > m * busiest, one_pass, m * busiest)
        chip_static = self._static_w(lay) / lay.chips
        items = []
        for t, e in zip(ts, es):
            idle = period - m * t
            items.append(self._plus_plain(m * e, chip_static * np.where(idle > 0.0, idle, 0.0)))
        if self._ENERGY_OBJECTS:
            energy = self._plus_plain(items[0], 0.0)
            for item in items[1:]:
                energy = energy + item
        else:
            energy = _pysum(items, True)
        extra = self.arch.step_overhead
        return period + extra, self._plus_plain(lay.tp * energy, extra * self._static_w(lay))

    def describe(self) -> dict:
        """The settings, for reports."""
        full, sliding = self.kv_bytes_per_token()
        split = "+".join(str(len(r)) for r in stage_layers(self.spec.layers, self.parallel.pp))
        return {"model": self.model, "arch": self.arch.name, "chips": self.chips,
                "parallel": str(self.parallel), "parallel_why": self.parallel_why,
                "pipeline_layers": split,
                "precision": self.precision, "weights_dtype": self._precision.weights,
                "activations_dtype": self._precision.activations,
                "kv_dtype": self._precision.kv,
                "weight_bytes_per_chip": self.weight_bytes_per_chip,
                "kv_bytes_per_token_per_chip": full, "kv_capacity_tokens": self.kv_capacity_tokens,
                "kv_block_tokens": self.kv_block_tokens, "static_power_w": self.static_power_w,
                "tdp_w": self.tdp_w}


__all__ = ["DecodeRun", "PRECISIONS", "ParallelLayout", "PartRuns", "PendingLayout", "Precision",
           "StepCost", "StepCostModel", "StepResult", "resolve_precision", "stage_layers"]
