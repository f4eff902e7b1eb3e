"""How many chips a K-Perf system has: what a deployer would run, one count per arch.

A K-Perf comparison is only fair between systems someone would deploy. The fewest chips that
hold the weights (npusim's old default) leave an H100 pair ~9k tokens of KV cache for Llama 3.3
70B in bf16, so its curve stays flat from 5 to 250 users and a ``--vs`` ratio compares a
starved system with a provisioned one. :func:`choose_chips` picks instead, in this order:

1. the vendor's (or a public benchmark's) documented deployment of the model on the arch
   (:data:`DEPLOYMENTS`, each entry with its source), when it covers every precision of the
   run (a deployment sized for 16-bit weights holds 8-bit ones) and, in npusim's own
   accounting, holds the weights and one of the matrix's longest requests;
2. else the fewest chips, powers of two up to one :data:`SERVER_CHIPS`-chip server, whose KV
   cache holds the matrix's largest users x (input + output) tokens at every precision of the
   run (the widest one binds), by :class:`~npusim.workloads.stepcost.StepCostModel`'s KV
   accounting (``kv_capacity_tokens``);
3. else, if one server holds the weights and at least one of the matrix's longest requests
   but not the whole demand, the whole server (the most KV one server offers), saying how
   much of the demand it holds;
4. else the fewest chips beyond one server that hold the weights and one longest request,
   up to ``max_chips``; beyond that a :class:`~npusim.errors.CapacityError`.

One count serves every precision of the run, so bf16 and fp8 curves of an arch are the same
system. The choice comes with the reason a report prints beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import ArchError, CapacityError
from ..ir import dtype
from ..passes.quantize import resolve_precision

# One server: 8 accelerators. DGX H100 holds 8 GPUs (measured.md rows C1-C4, MLPerf v4.1
# "DGX-H100_H100-SXM-80GBx8"); FuriosaAI's NXT RNGD server holds 8 cards (rngd.md 1.1, S17).
SERVER_CHIPS = 8
# Chip counts tried: powers of two (tensor parallelism splits heads evenly), to 64 (the
# largest count StepCostModel's own search tries, stepcost.CHIP_COUNTS).
CHIP_COUNTS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Deployment:
    """A documented deployment of a model on an arch.

    Attributes
    ----------
    arch, model : str
        npusim's arch preset and built-in model names.
    chips : int
        Chips (cards, GPUs, dies as the preset counts them) the deployment uses.
    precision : str
        The precision it was sized for (one of npusim's precisions); it covers a run whose
        precisions store weights and KV cache in no more bytes than this one.
    source : str
        Where it is documented: the reference file and the public source it names.
    """

    arch: str
    model: str
    chips: int
    precision: str
    source: str


# Every entry: the reference file in /work/shared/reference (shipped facts, not code) and the
# public source it names.
DEPLOYMENTS = (
    # Furiosa-LLM pre-compiled builds (rngd.md section 2, S16,
    # https://developer.furiosa.ai/latest/en/furiosa_llm/models/gpt-oss.html and its siblings)
    Deployment("rngd", "llama-3.1-8b", 1, "bf16", "rngd.md S16: Furiosa-LLM build, 1 card"),
    Deployment("rngd", "llama-3.3-70b", 4, "bf16", "rngd.md S16: Furiosa-LLM build, 4 cards"),
    Deployment("rngd", "exaone-4.0-32b", 4, "fp8", "rngd.md S16: Furiosa-LLM FP8 build, 4 cards"),
    Deployment("rngd", "gpt-oss-20b", 1, "mxfp4", "rngd.md S16: Furiosa-LLM MXFP4 build, 1 card"),
    Deployment("rngd", "gpt-oss-120b", 4, "mxfp4",
               "rngd.md S16: Furiosa-LLM MXFP4 build, 4 cards"),
    # NVIDIA's TensorRT-LLM performance overview (measured.md [A], rows A1-A19,
    # https://github.com/NVIDIA/TensorRT-LLM/blob/00f37686aa854010d68bcbd0f4ab000221541ca6/docs/source/performance/perf-overview.md)
    # and NIM benchmarking guide (measured.md [H], 2 x H100 80G, fp8 TP2)
    Deployment("h100", "llama-3.1-8b", 1, "fp8", "measured.md [A] rows A1-A6: TRT-LLM, 1 GPU"),
    Deployment("h100", "llama-3.3-70b", 2, "fp8",
               "measured.md [A] rows A13-A15 and [H]: TRT-LLM and NIM, FP8 TP2"),
    Deployment("h100", "llama-3.1-405b", 8, "fp8",
               "measured.md [A] rows A18-A19: TRT-LLM, FP8 TP8"),
    # TensorRT-LLM v0.6.1 performance.md (measured.md [B], rows B3 and B8)
    Deployment("h100", "llama-2-70b", 2, "fp8", "measured.md [B] row B3: TRT-LLM, FP8 TP2"),
    Deployment("a100", "llama-2-70b", 4, "fp16", "measured.md [B] row B8: TRT-LLM, FP16 TP4"),
    # One ATOM-Max card is 4 ATOM dies, the atom-max preset one die (atom.md section 3,
    # [CONTINUUM] TASK13: Qwen3-4B bf16 on 1 CA25, num_devices=4)
    Deployment("atom-max", "qwen3-4b", 4, "bf16",
               "atom.md [CONTINUUM] TASK13: 1 ATOM-Max card = 4 dies"),
)


@dataclass(frozen=True)
class ChipChoice:
    """The chips of one arch's system in a K-Perf run, and why.

    Attributes
    ----------
    chips : int or None
        None only for ``rule="per-precision"``: each precision's cost model picks its own.
    rule : str
        ``"given"`` (``--chips N``), ``"deployment"`` (:data:`DEPLOYMENTS`), ``"kv"`` (the
        KV demand of the matrix), ``"server"`` (one server, short of that demand),
        ``"weights"`` (more than one server, for the weights) or ``"per-precision"``.
    reason : str
        One line for reports.
    """

    chips: int | None
    rule: str
    reason: str


def kv_demand_tokens(users: int, input_len: int, output_len: int) -> int:
    """KV-cache tokens ``users`` concurrent requests of these lengths hold at their longest.

    Examples
    --------
    >>> kv_demand_tokens(250, 2048, 2048)
    1024000
    """
    return users * (input_len + output_len)


def deployment(arch_name: str, model: str,
               table: Sequence[Deployment] = DEPLOYMENTS) -> Deployment | None:
    """The documented deployment of ``model`` on the arch preset ``arch_name``, if any.

    Examples
    --------
    >>> deployment("rngd", "llama-3.3-70b").chips
    4
    >>> deployment("rngd", "tiny-llama") is None
    True
    """
    return next((d for d in table if d.arch == arch_name and d.model == model), None)


def covers(d: Deployment, precision: str) -> bool:
    """Whether a deployment sized for ``d.precision`` holds ``precision``'s weights and KV.

    Examples
    --------
    >>> d = deployment("rngd", "llama-3.3-70b")          # a 16-bit build
    >>> covers(d, "fp8"), covers(d, "fp32")
    (True, False)
    """
    mine, theirs = resolve_precision(precision), resolve_precision(d.precision)
    return (dtype(mine.weights).bytes <= dtype(theirs.weights).bytes
            and dtype(mine.kv).bytes <= dtype(theirs.kv).bytes)


def choose_chips(model: str, arch, precisions: Sequence[str], *, users: int, tokens: int,
                 cost_model: Callable[[str, Any, int, str], Any], heads: int | None = None,
                 table: Sequence[Deployment] = DEPLOYMENTS,
                 max_chips: int = CHIP_COUNTS[-1],
                 cost_many: Callable[[list], None] | None = None) -> ChipChoice:
    """One chip count for every precision of a K-Perf run of ``model`` on ``arch``.

    Parameters
    ----------
    model : str
        A built-in LLM.
    arch : Arch
        The loaded arch; a documented deployment applies only to an unmodified preset.
    precisions : sequence of str
        The run's precisions; those the arch cannot run (the cost model raises ArchError on
        one chip) are left out.
    users, tokens : int
        The matrix's largest users and largest input + output: the KV demand is their
        product (:func:`kv_demand_tokens`).
    cost_model : callable
        ``cost_model(model, arch, chips, precision)``, an object with ``kv_capacity_tokens``
        (a :class:`~npusim.workloads.stepcost.StepCostModel`); raises CapacityError when the
        weights do not fit and ArchError when the arch cannot form a system of that size. An
        object that also has ``kv_capacity_range`` (a
        :class:`~npusim.workloads.stepcost.PendingLayout`: the least and most its
        ``kv_capacity_tokens`` can be) is asked for ``kv_capacity_tokens`` only when the
        range does not settle the choice, or its chip count is the one chosen.
    heads : int, optional
        The model's attention heads: counts that do not divide them are skipped.
    table : sequence of Deployment
        The documented deployments.
    max_chips : int
        The most chips to try for the weights alone.
    cost_many : callable, optional
        ``cost_many(models)`` costs several of those objects with ``kv_capacity_range`` at
        once (e.g. on worker processes), before their ``kv_capacity_tokens`` are read.

    Returns
    -------
    ChipChoice
        ``chips`` None (rule ``"per-precision"``) when the arch runs none of the precisions:
        each precision's rows then say why.

    Raises
    ------
    CapacityError
        When even ``max_chips`` chips cannot hold the weights and one request of ``tokens``.

    Examples
    --------
    A fake cost model whose KV cache holds 10,000 tokens per chip:

    >>> from types import SimpleNamespace
    >>> kv = lambda model, arch, n, p: SimpleNamespace(kv_capacity_tokens=10_000 * n)
    >>> arch = SimpleNamespace(name="x", overrides=())
    >>> choose_chips("m", arch, ["bf16"], users=10, tokens=3000, cost_model=kv).chips
    4
    """
    counts = [n for n in CHIP_COUNTS if n <= max_chips and (not heads or heads % n == 0)]
    try:
        return _choose(model, arch, precisions, users, tokens, counts, table,
                       _Capacity(model, arch, precisions, cost_model, cost_many=cost_many))
    except _Costly:
        # costing a layout the ranges had put off failed (or nothing fits while some were put
        # off): choose again, every cost model costed where it is built, so that a failure
        # lands where it always has
        return _choose(model, arch, precisions, users, tokens, counts, table,
                       _Capacity(model, arch, precisions, cost_model, lazy=False))


def _choose(model, arch, precisions, users: int, tokens: int, counts: Sequence[int], table,
            capacity: "_Capacity") -> ChipChoice:
    """:func:`choose_chips` with the capacities of ``capacity``."""
    capacity.least(1)                    # leaves out the precisions the arch cannot run
    if not capacity.precisions:
        return ChipChoice(None, "per-precision", "the arch runs none of the precisions")
    documented = _documented(arch, model, capacity.precisions, table, capacity, tokens)
    if documented is not None:
        return documented
    demand = users * tokens
    need = f"KV for {users} users x {tokens} tokens ({demand:,} tokens)"
    in_server = [n for n in counts if n <= SERVER_CHIPS]
    for n in in_server:
        if capacity.none(n):
            break                        # no larger system of this arch can be built
        if capacity.holds(n, demand):
            return ChipChoice(n, "kv", f"{need}: {_hold(n)} {capacity.least(n):,}")
    # a system must hold at least one request of the matrix's longest
    fits = [n for n in in_server if capacity.holds(n, tokens)]
    if fits:
        n = fits[-1]
        held = capacity.least(n)
        return ChipChoice(n, "server", f"{need} is more than one {SERVER_CHIPS}-chip server "
                                       f"holds: {_hold(n)} {held:,} "
                                       f"({100 * held / demand:.0f}%)")
    for n in (c for c in counts if c > SERVER_CHIPS):
        if capacity.none(n):
            break
        if capacity.holds(n, tokens):
            return ChipChoice(n, "weights", f"the weights need more than one "
                                            f"{SERVER_CHIPS}-chip server: {n} chips hold "
                                            f"them and {capacity.least(n):,} KV tokens")
    raise CapacityError(capacity.too_big(counts, tokens))


def _hold(n: int) -> str:
    return "1 chip holds" if n == 1 else f"{n} chips hold"


class _Costly(Exception):
    """Costing a layout that :class:`_Capacity` had put off raised an arch or capacity
    error, or no count fits while some layouts were put off (the choice is then made again
    without putting anything off)."""


class _Capacity:
    """KV capacity in tokens of ``n`` chips, the least over the run's precisions (memoised);
    0 when the weights do not fit, None when the arch cannot form ``n`` chips.

    A cost model may come with its layout still to be chosen by costing several (a
    :class:`~npusim.workloads.stepcost.PendingLayout`, whose ``kv_capacity_range`` bounds its
    capacity). When ``lazy``, such a model is costed only when a comparison (:meth:`holds`)
    or the figure itself (:meth:`least`) needs it; the answers are those of the costed
    models. When a put-off costing raises, :class:`_Costly` says so. ``cost_many(models)``,
    if given, costs several put-off models at once (on worker processes, say) before their
    capacities are read.

    A model left uncosted could change the choice only if costing it failed (its capacity
    would then count as 0, or the count as unbuildable): a count its range rules out is ruled
    out at 0 too; every model of the count chosen is costed (:meth:`least`); when nothing
    fits, :meth:`too_big` has the choice made again with everything costed; and an arch
    error in costing (a dtype the arch cannot run) fails at the count chosen as well.
    """

    def __init__(self, model, arch, precisions, cost_model, lazy: bool = True,
                 cost_many: Callable[[list], None] | None = None) -> None:
        self.model, self.arch, self.cost_model = model, arch, cost_model
        self.precisions = list(precisions)
        self.lazy, self.cost_many = lazy, cost_many
        # per chip count: per precision, the capacity or a model still to be costed
        self._seen: dict[int, list | None] = {}
        self.last_error = ""

    def none(self, n: int) -> bool:
        """Whether no system of ``n`` chips can be built (or no precision runs)."""
        return self._entries(n) is None

    def holds(self, n: int, tokens: int) -> bool:
        """Whether ``n`` chips hold ``tokens`` KV tokens at every precision: ``least(n) >=
        tokens`` (False when :meth:`none`), costing only the models the ranges leave open."""
        entries = self._entries(n)
        if entries is None:
            return False
        ranges = [_range(e) for e in entries]
        if any(hi < tokens for _, hi in ranges):
            return False                 # whichever layout that precision takes
        open_ = [i for i, (lo, _) in enumerate(ranges) if lo < tokens]
        if len(open_) > 1 and self.cost_many is not None:
            self.cost_many([entries[i] for i in open_])
        return all(self._cost(entries, i) >= tokens for i in open_)

    def least(self, n: int) -> int | None:
        """The least KV capacity of ``n`` chips over the precisions (None: :meth:`none`).

        Asked only of the count chosen, whose every model the rows run on: all of them are
        costed (together, by ``cost_many``), so that any that fails fails here, as it would
        have where it was built."""
        entries = self._entries(n)
        if entries is None:
            return None
        put_off = [e for e in entries if not isinstance(e, int)]
        if put_off and self.cost_many is not None:
            self.cost_many(put_off)
        return min(self._cost(entries, i) for i in range(len(entries)))

    def _cost(self, entries: list, i: int) -> int:
        """The capacity of ``entries[i]``, its model costed if it was put off."""
        e = entries[i]
        if not isinstance(e, int):
            try:
                e = entries[i] = int(e.kv_capacity_tokens)
            except (ArchError, CapacityError) as err:
                raise _Costly(str(err)) from err
        return e

    def _entries(self, n: int) -> list | None:
        if n not in self._seen:
            self._seen[n] = self._gather(n)
        return self._seen[n]

    def _gather(self, n: int) -> list | None:
        held: list = []
        for p in list(self.precisions):
            try:
                cost = self.cost_model(self.model, self.arch, n, p)
                if self.lazy and getattr(cost, "kv_capacity_range", None) is not None:
                    held.append(cost)
                else:
                    held.append(int(cost.kv_capacity_tokens))
            except CapacityError as e:
                self.last_error = str(e)
                held.append(0)
            except ArchError as e:
                if n > 1:                # no link: no system of n chips
                    self.last_error = str(e)
                    return None
                self.precisions.remove(p)  # one chip cannot run it: its rows say why
        return held if held else None

    def too_big(self, counts: Sequence[int], tokens: int) -> str:
        """Why no count fits; raises :class:`_Costly` when a model was put off (its costing
        might have failed and given another reason), so that the choice is made again."""
        if any(not isinstance(e, int) for es in self._seen.values() for e in es or ()):
            raise _Costly("a model was put off")
        tried = [n for n in counts if n in self._seen]
        most = tried[-1] if tried else (counts[-1] if counts else 1)
        why = f" ({self.last_error})" if self.last_error else ""
        return (f"K-Perf: {self.model} does not fit {self.arch.name}: even {most} chips cannot "
                f"hold its weights and one request of {tokens} tokens at "
                f"{', '.join(self.precisions)}{why}; use a narrower precision, shorter "
                f"lengths, --chips N, or a larger memory (--set dram.capacity=...)"
                ).replace("\n", " ")


def _documented(arch, model, precisions, table, capacity: _Capacity,
                tokens: int) -> ChipChoice | None:
    """The documented deployment, if the arch is the unmodified preset, it covers every
    precision of the run and, in npusim's accounting, its chips hold the weights and one of
    the matrix's longest requests."""
    if getattr(arch, "overrides", None):
        return None
    d = deployment(arch.name, model, table)
    if d is None or not all(covers(d, p) for p in precisions):
        return None
    if not capacity.holds(d.chips, tokens):
        return None
    return ChipChoice(d.chips, "deployment", f"documented deployment ({d.source}); "
                                             f"KV holds {capacity.least(d.chips):,} tokens")


def _range(entry) -> tuple[int, int]:
    """The least and most KV tokens a :class:`_Capacity` entry can hold."""
    return (entry, entry) if isinstance(entry, int) else entry.kv_capacity_range


__all__ = ["CHIP_COUNTS", "DEPLOYMENTS", "SERVER_CHIPS", "ChipChoice", "Deployment",
           "choose_chips", "covers", "deployment", "kv_demand_tokens"]
