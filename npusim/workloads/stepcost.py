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

Tensor parallelism over ``chips`` uses the builder's Megatron sharding: the part graphs are one
chip's, with their all-reduces timed on the arch's chip-to-chip link; energy is one chip's times
the chip count. The smallest chip count whose weights fit (leaving KV room for at least
:data:`MIN_KV_TOKENS` tokens) is chosen when ``chips`` is not given.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from ..arch import load_arch
from ..errors import CapacityError, NpusimError
from ..ir import dtype
# The precisions and what each name means live with the precision pass, shared by every entry
# point; re-exported here, where the serving cost model uses them.
from ..passes.quantize import (PRECISIONS, Precision, apply_precision, checkpoint_dtype,
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


class StepCostModel:
    """Serving-step costs of a built-in LLM on an arch (the StepCost protocol).

    Parameters
    ----------
    model : str
        A built-in LLM (``npusim models``).
    arch : str, Path or Arch
    chips : int, optional
        Tensor-parallel chip count; the smallest that fits when omitted.
    precision : str or Precision
        One of :data:`PRECISIONS` or a custom :class:`Precision`.
    overrides : arch field overrides (``{"dram.bandwidth": "3 TB/s"}``)
    graphs : bool
        The serving stack replays each step's kernels from captured graphs (CUDA graphs: vLLM
        V1's default, TensorRT-LLM's PyTorch backend, torch.compile's reduce-overhead mode),
        so every kernel costs the arch's ``graph_launch_overhead`` (where it has one) instead
        of a standalone ``launch_overhead``. False for stacks that launch kernel by kernel.

    Examples
    --------
    >>> m = StepCostModel("tiny-llama", "rngd")
    >>> m.step([(16, 0)], []).seconds > 0
    True
    """

    def __init__(self, model: str, arch, *, chips: int | None = None,
                 precision: str | Precision = "bf16",
                 overrides: Mapping[str, str] | Sequence[str] | None = None,
                 graphs: bool = True) -> None:
        arch = load_arch(arch, overrides) if isinstance(arch, (str, Path)) else arch
        # a serving stack that captures graphs replays each step's kernels from them
        self.arch = arch.for_serving() if graphs else arch
        self.graphs = graphs
        self.model = model
        from ..frontend.llm import check_sizes, model_spec
        self.spec = model_spec(model)
        check_sizes(self.spec, chips=chips)
        self._precision = resolve_precision(precision, self.arch)
        self.precision = self._precision.name
        self._cache: dict = {}
        self.layer_groups = self._layer_groups()
        self.kv_block_tokens = KV_BLOCK_TOKENS
        self.chips = chips if chips is not None else self._smallest_fit()
        self._check_tp(self.chips)
        self.arch.require_link(self.chips, f" (tensor parallelism of {model})")
        self.weight_bytes_per_chip = self._weight_bytes(self.chips)
        self.kv_capacity_tokens = self._kv_capacity(self.chips)
        if self.kv_capacity_tokens < 1:
            raise CapacityError(
                f"{model} at {self.precision} on {self.chips} x {self.arch.name}: the weights "
                f"({self.weight_bytes_per_chip / 1e9:.1f} GB per chip) leave no room for the KV "
                f"cache in {self.arch.dram.capacity / 1e9:.1f} GB; use more chips (--chips) or "
                f"a narrower precision")
        from ..energy import load_energy_table
        table = load_energy_table(self.arch)
        self.static_power_w = (table.static if table is not None else 0.0) * self.chips
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
        if n < 1 or self.spec.heads % n:
            raise NpusimError(f"--chips {n}: {self.model} has {self.spec.heads} attention "
                              f"heads, which {n} chips cannot share evenly; use a divisor")

    def _graph(self, part: str, phase: str, batch: int, seq: int | None, kv_len: int | None,
               layer: int | None, tp: int):
        key = ("graph", part, phase, batch, seq, kv_len, layer, tp)
        g = self._cache.get(key)
        if g is None:
            from npusim.graphs.builder import build_llm
            from ..frontend.onnx_loader import load_onnx
            p = self._precision
            proto = build_llm(self.model, phase, batch, seq=seq, kv_len=kv_len,
                              dtype=checkpoint_dtype(p), part=part, layer=layer, tp=tp)
            g = apply_precision(load_onnx(proto, name=f"{self.model} {part}"), p)
            self._cache[key] = g
        return g

    def _run(self, *args) -> tuple[float, float]:
        key = ("run",) + args
        hit = self._cache.get(key)
        if hit is None:
            from ..engine.simulate import simulate_graph
            r = simulate_graph(self._graph(*args, tp=self.chips), self.arch)
            hit = (r.latency_s, r.energy_j)
            self._cache[key] = hit
        return hit

    # -- capacity --------------------------------------------------------------------
    def _weight_bytes(self, tp: int) -> float:
        # every expert of an MoE layer is resident: a dense part over enough tokens to touch
        # them all holds them all (its step cost uses only the experts a step's tokens reach)
        tokens = 1 if not self.spec.experts else 1 << 20
        total = 0.0
        for layer, count in self.layer_groups:
            g = self._graph("dense", "prefill", 1, tokens, None, layer, tp)
            total += count * g.bytes_by_role()["weight"]
        total += self._graph("head", "prefill", 1, 1, None, None, tp).bytes_by_role()["weight"]
        return total

    def kv_bytes_per_token(self, tp: int | None = None) -> tuple[float, float]:
        """KV bytes per token per chip: (full-attention layers, sliding-window layers)."""
        s = self.spec
        tp = tp or self.chips
        per_layer = 2 * max(1, s.kv_heads // tp) * s.head_dim * dtype(self._precision.kv).bytes
        full = sum(per_layer for i in range(s.layers) if not s.is_sliding(i))
        sliding = sum(per_layer for i in range(s.layers) if s.is_sliding(i))
        return full, sliding

    def _kv_capacity(self, tp: int) -> int:
        usable = self.arch.dram.capacity * MEMORY_UTILIZATION - self._weight_bytes(tp)
        full, sliding = self.kv_bytes_per_token(tp)
        # a sliding layer keeps at most a window per sequence: per token of a sequence of
        # CAPACITY_CONTEXT tokens it holds window / CAPACITY_CONTEXT of a token
        share = min(1.0, (self.spec.window or 0) / CAPACITY_CONTEXT)
        per_token = full + sliding * share
        return int(usable // per_token) if usable > 0 and per_token > 0 else 0

    def _smallest_fit(self) -> int:
        tried = []
        for n in CHIP_COUNTS:
            if self.spec.heads % n:
                continue
            cap = self._kv_capacity(n)
            tried.append((n, self._weight_bytes(n)))
            if cap >= MIN_KV_TOKENS:
                return n
        n, w = tried[-1]
        raise CapacityError(
            f"{self.model} at {self.precision} does not fit {self.arch.name}: even {n} chips "
            f"hold {w / 1e9:.1f} GB of weights each against {self.arch.dram.capacity / 1e9:.1f} "
            f"GB of DRAM with {MIN_KV_TOKENS} KV tokens to spare; use a narrower precision or a "
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

    def dense(self, tokens: int) -> tuple[float, float]:
        """All layers' dense work (projections, norms, FFN) for ``tokens`` new tokens."""
        t = e = 0.0
        for layer, count in self.layer_groups:
            dt, de = self._interp1(TOKENS, tokens,
                                   lambda n, L=layer: self._run("dense", "prefill", 1, n, None, L))
            t += count * dt
            e += count * de
        return t, e

    def attention_decode(self, batch: int, kv: float) -> tuple[float, float]:
        """All layers' attention for ``batch`` decoding sequences at mean KV length ``kv``."""
        t = e = 0.0
        for layer, count in self.layer_groups:
            dt, de = self._interp2(
                BATCH, batch, KV, kv,
                lambda b, k, L=layer: self._run("attention", "decode", b, None, max(k, 1), L))
            t += count * dt
            e += count * de
        return t, e

    def attention_prefill(self, chunk: int, cached: int) -> tuple[float, float]:
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
        t = e = 0.0
        for layer, count in self.layer_groups:
            def rect(k, L=layer):
                return self._interp2(
                    CHUNK, chunk, KV, k,
                    lambda c, kk: self._run("attention", "prefill", 1, c, kk, L))
            t0, e0 = rect(cached)
            if chunk > 1:
                t1, e1 = rect(cached + chunk)
                t0 = max(1.5 * t0 - 0.5 * t1, 0.5 * t0)
                e0 = max(1.5 * e0 - 0.5 * e1, 0.5 * e0)
            t += count * t0
            e += count * e0
        return t, e

    def head(self, rows: int) -> tuple[float, float]:
        """Final norm, LM head and embedding for ``rows`` sequences emitting logits."""
        return self._interp1(TOKENS, rows,
                             lambda n: self._run("head", "prefill", n, n, None, None))

    def step(self, prefill: Sequence[tuple[int, int]], decode: Sequence[int]) -> StepResult:
        """Cost of one step: ``prefill`` chunks as (new tokens, already cached tokens), and one
        token for each decoding sequence at the given KV lengths."""
        tokens = sum(c for c, _ in prefill) + len(decode)
        if tokens == 0:
            return StepResult(0.0, 0.0)
        t, e = self.dense(tokens)
        decode = [max(1, k) for k in decode]  # a decoding sequence has at least its prompt cached
        for c, p in prefill:
            at, ae = self.attention_prefill(c, p)
            t, e = t + at, e + ae
        if decode:
            at, ae = self.attention_decode(len(decode), sum(decode) / len(decode))
            t, e = t + at, e + ae
        ht, he = self.head(len(prefill) + len(decode))
        # the serving stack's fixed cost per iteration (scheduler, sampling), at static power
        extra = self.arch.step_overhead
        return StepResult(t + ht + extra,
                          (e + he) * self.chips + extra * self.static_power_w)

    def describe(self) -> dict:
        """The settings, for reports."""
        full, sliding = self.kv_bytes_per_token()
        return {"model": self.model, "arch": self.arch.name, "chips": self.chips,
                "precision": self.precision, "weights_dtype": self._precision.weights,
                "activations_dtype": self._precision.activations,
                "kv_dtype": self._precision.kv,
                "weight_bytes_per_chip": self.weight_bytes_per_chip,
                "kv_bytes_per_token_per_chip": full, "kv_capacity_tokens": self.kv_capacity_tokens,
                "kv_block_tokens": self.kv_block_tokens, "static_power_w": self.static_power_w,
                "tdp_w": self.tdp_w}


__all__ = ["PRECISIONS", "Precision", "StepCost", "StepCostModel", "StepResult",
           "resolve_precision"]
