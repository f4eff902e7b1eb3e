"""LLM serving simulation: iteration-level continuous batching in the manner of vLLM's V1 engine.

The simulation is a loop of engine steps (iterations). Each step the scheduler picks, for every
running request, how many new tokens it computes, then admits waiting requests into the leftover
token budget; a cost model (:class:`npusim.workloads.stepcost.StepCost`) gives the step's time and
energy for that exact batch; time advances by the step's seconds. Requests come from a closed loop
of users or an open-loop Poisson stream. The result holds one record per request and a summary
with the serving metrics (TTFT, TPOT, end-to-end latency, throughputs, power, KV utilisation).

The scheduler follows vLLM V1's ``Scheduler.schedule`` (vllm/v1/core/sched/scheduler.py,
https://github.com/vllm-project/vllm), reduced to what changes time:

* Every request holds ``computed`` tokens in the KV cache and knows ``input_len + generated``
  tokens; each step it may compute up to the difference. A decode is the case where the
  difference is one (the last sampled token). A request samples a new token in the step that
  brings ``computed`` up to what it knows: the first output token comes from the step that
  finishes the prefill, then one token per decode step.
* Running requests are served first, in admission order, each taking
  ``min(remaining tokens, token budget left)``; waiting requests are then admitted first come,
  first served, with chunked prefill (V1 always chunks) into the budget that is left, up to
  ``max_num_seqs`` running requests. Because a prefill that is cut short keeps the whole rest of
  the budget, partial prefills sit at the tail of the running list, so this is "decodes first,
  then prefill chunks in arrival order".
* KV cache is paged: a request scheduled for ``n`` new tokens holds
  ``ceil((computed + n) / block)`` blocks. A waiting request whose first chunk does not fit the
  free blocks waits, and so does everyone behind it (FCFS). A running request that cannot grow
  preempts the newest running request (V1's ``self.running.pop()``), repeatedly, possibly itself;
  a preempted request frees all its blocks, returns to the head of the queue, and later
  recomputes its prompt and the tokens it has generated (preemption by recompute). Its output so
  far is kept, so its TTFT does not change. In a step with a preemption no waiting request is
  admitted (as in V1).
* ``ServingConfig.policy="no_evict"`` is TensorRT-LLM's default capacity policy,
  ``GUARANTEED_NO_EVICT`` (TensorRT-LLM docs, "Useful Runtime Options: Capacity Scheduler
  Policy", https://nvidia.github.io/TensorRT-LLM/performance/performance-tuning-guide/useful-runtime-flags.html):
  a request is admitted only when the blocks for its whole life, ``ceil((input + output) /
  block)``, are free, and holds them until it finishes, so nothing is ever preempted.
  :meth:`ServingConfig.trtllm_bench` gives the limits ``trtllm-bench throughput`` picks.

Steady state: the first ``warmup`` requests (by arrival) are not measured, and load is kept on
(users keep sending, arrivals keep coming) until the measured requests have finished, so they
never see the ramp-up or the drain. Latencies are statistics over the measured requests.
Throughput, power and utilisation are taken over the measured window, from the ``warmup``-th
completion to the ``(warmup + num_requests)``-th (from the first arrival when ``warmup`` is 0):
a window bounded by completions holds whole requests' worth of work even when a closed loop runs
in synchronised rounds, where a window bounded by arrivals would cut rounds in half. A step that
straddles a window edge counts pro rata.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CapacityError, NpusimError

if TYPE_CHECKING:
    from .stepcost import StepCost
    from .stack import ServingStack

__all__ = ["ServingConfig", "Scenario", "RequestRecord", "StepLog", "ServingResult",
           "simulate_serving"]

# vLLM V1 defaults for `vllm serve` (UsageContext.OPENAI_API_SERVER), from
# EngineArgs.get_batch_defaults in vllm/engine/arg_utils.py
# (https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py): 2048 batched tokens
# and 256 sequences on every device except GPUs with >= 70 GiB that are not A100, which get 8192
# and 1024. Chunked prefill is always on in V1 (`_set_default_args_v1`: "V1 always uses chunked
# prefills").
_VLLM_SERVE_SMALL = (2048, 256)
_VLLM_SERVE_LARGE = (8192, 1024)
_VLLM_LARGE_DEVICE_BYTES = 70 * 2**30
POLICIES = ("vllm", "no_evict")


@dataclass(frozen=True)
class ServingConfig:
    """Scheduler limits of the serving engine.

    Attributes
    ----------
    max_num_seqs : int
        Most requests running (holding KV cache and scheduled) at once. Default 256, vLLM V1's
        ``vllm serve`` default (see :meth:`vllm_serve_defaults` for the larger-GPU values).
    max_num_batched_tokens : int
        Token budget of one step: decode tokens plus prefill-chunk tokens. Default 2048, vLLM
        V1's ``vllm serve`` default.

    policy : str
        ``"vllm"`` (admit on the first chunk's blocks, preempt by recompute when the cache is
        full) or ``"no_evict"`` (TensorRT-LLM's default ``GUARANTEED_NO_EVICT``: reserve a
        request's whole input + output at admission, never preempt).
    host : str, optional
        The server around the chips, for power at the wall (``system_power_w``): None (the
        default: card power only, ``system_power_w`` NaN), ``"auto"`` (the arch's usual host,
        :func:`npusim.arch.host.default_host`), ``"none"``, a host preset name
        (``npusim/archs/hosts``) or a host YAML path. Not a scheduler limit, but carried here
        because it travels with the serving setup through :func:`npusim.kperf`.
    stack : str, optional
        The serving engine's host time that the chips wait for each step
        (:mod:`npusim.workloads.stack`): None or ``"none"`` (the default: host work overlapped
        with the chips, as in today's engines), a stack preset name (``npusim/archs/stacks``,
        e.g. ``"vllm-0.5"``), a stack YAML path or a
        :class:`~npusim.workloads.stack.ServingStack`.

    Notes
    -----
    Chunked prefill is always on, as in vLLM V1 (under ``no_evict`` too: an assumption, the
    TensorRT-LLM PyTorch backend may schedule a context whole). The KV block size (paging granularity) comes
    from the cost model (``StepCost.kv_block_tokens``) because it belongs to the system.
    """

    max_num_seqs: int = _VLLM_SERVE_SMALL[1]
    max_num_batched_tokens: int = _VLLM_SERVE_SMALL[0]
    policy: str = "vllm"
    host: str | None = None
    stack: "str | ServingStack | None" = None

    def __post_init__(self):
        from .stack import ServingStack
        if self.stack is not None and not isinstance(self.stack, ServingStack):
            if not isinstance(self.stack, (str, Path)):
                raise NpusimError(f"ServingConfig.stack must be a serving-stack preset name, a "
                                  f"stack YAML path, 'none' or None, got {self.stack!r}.")
            object.__setattr__(self, "stack", str(self.stack))
        if self.host is not None:
            if not isinstance(self.host, (str, Path)):
                raise NpusimError(f"ServingConfig.host must be a host preset name, a host YAML "
                                  f"path, 'auto' or None, got {self.host!r}.")
            object.__setattr__(self, "host", str(self.host))
        for name in ("max_num_seqs", "max_num_batched_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise NpusimError(f"ServingConfig.{name} must be a positive integer, got "
                                  f"{value!r}; pass e.g. {name}=256.")
        if self.policy not in POLICIES:
            raise NpusimError(f"ServingConfig.policy must be one of {', '.join(POLICIES)}, got "
                              f"{self.policy!r}.")

    @classmethod
    def trtllm_bench(cls, kv_capacity_tokens: float, input_len: int, output_len: int,
                     pipeline_stages: int = 1) -> "ServingConfig":
        """The limits ``trtllm-bench throughput`` picks for a dataset of fixed lengths.

        trtllm-bench sizes ``max_batch_size`` and ``max_num_tokens`` from the number of requests
        whose whole KV footprint fits the cache, ``R = capacity / (input + output)``, capped at
        4096, rounded up "slightly optimistically" (to 32 below 256 with a floor of 64, to 128
        below 1024, else to 256); the token budget is ``R (1 + input / output)`` capped at 32768,
        rounded up (to 256 with a floor of 2048 below 4096, to 512 below 8192, else to 1024).
        Requests run under ``GUARANTEED_NO_EVICT``. Source: ``calc_engine_setting`` and
        ``finetune_setting`` in tensorrt_llm/bench/build/tuning.py
        (https://github.com/NVIDIA/TensorRT-LLM), re-implemented from their description.

        Examples
        --------
        >>> c = ServingConfig.trtllm_bench(500_000, 128, 2048)
        >>> c.max_num_seqs, c.max_num_batched_tokens, c.policy
        (256, 2048, 'no_evict')
        """
        if kv_capacity_tokens <= 0 or input_len < 1 or output_len < 1 or pipeline_stages < 1:
            raise NpusimError("ServingConfig.trtllm_bench needs a positive KV capacity, lengths "
                              "and pipeline stages")
        raw_bs = min(kv_capacity_tokens / (input_len + output_len), 4096) / pipeline_stages
        raw_tok = min(raw_bs * (1 + input_len / output_len), 32768)
        bs = _round_up_by_range(raw_bs, 64, ((256, 32), (1024, 128), (math.inf, 256)))
        tok = _round_up_by_range(raw_tok, 2048, ((4096, 256), (8192, 512), (math.inf, 1024)))
        return cls(max_num_seqs=int(bs), max_num_batched_tokens=int(tok), policy="no_evict")

    @classmethod
    def vllm_serve_defaults(cls, device_memory_bytes: float,
                            device_name: str = "") -> "ServingConfig":
        """The limits ``vllm serve`` picks by default for one device of this memory and name.

        Parameters
        ----------
        device_memory_bytes : float
            Memory of one device (vLLM looks at the first device, not the system).
        device_name : str
            Device name; vLLM keeps the small defaults for any A100.

        Returns
        -------
        ServingConfig
            2048 tokens / 256 sequences, or 8192 / 1024 on devices with at least 70 GiB that
            are not A100 (vLLM ``EngineArgs.get_batch_defaults``).

        Examples
        --------
        >>> ServingConfig.vllm_serve_defaults(80e9, "h100").max_num_seqs
        1024
        >>> ServingConfig.vllm_serve_defaults(80e9, "a100").max_num_batched_tokens
        2048
        """
        large = (device_memory_bytes >= _VLLM_LARGE_DEVICE_BYTES
                 and "a100" not in device_name.lower())
        tokens, seqs = _VLLM_SERVE_LARGE if large else _VLLM_SERVE_SMALL
        return cls(max_num_seqs=seqs, max_num_batched_tokens=tokens)


@dataclass(frozen=True)
class Scenario:
    """One serving scenario: fixed lengths and a load, closed or open loop.

    Attributes
    ----------
    input_len, output_len : int
        Prompt tokens and generated tokens of every request (uniform, as in K-Perf-style
        fixed ISL/OSL sweeps).
    users : int or None
        Closed loop: this many users, each sending its next request the moment the previous
        one completes (zero think time); all start at time 0.
    rate : float or None
        Open loop: Poisson arrivals at this many requests per second (exponential gaps drawn
        from ``numpy.random.default_rng(seed)``). Give exactly one of ``users`` and ``rate``.
    num_requests : int or None
        Requests measured. Default: ``max(4 * users, 16)`` closed loop, 64 open loop.
    warmup : int or None
        Requests (the first by arrival) simulated but left out of the statistics. Default:
        ``users`` closed loop (the first round, which arrives all at once at time 0), and
        ``max(4, num_requests // 4)`` open loop (an assumption: a quarter of the measured count).
    seed : int
        Seed of the open-loop arrival stream; the closed loop has no randomness.
    """

    input_len: int
    output_len: int
    users: int | None = None
    rate: float | None = None
    num_requests: int | None = None
    warmup: int | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("input_len", "output_len"):
            _check_int(name, getattr(self, name), minimum=1)
        if (self.users is None) == (self.rate is None):
            raise NpusimError("Scenario needs exactly one of users (closed loop) and rate "
                              f"(open loop, requests/s); got users={self.users!r}, "
                              f"rate={self.rate!r}.")
        if self.users is not None:
            _check_int("users", self.users, minimum=1)
        if self.rate is not None and not (isinstance(self.rate, (int, float))
                                          and math.isfinite(self.rate) and self.rate > 0):
            raise NpusimError(f"Scenario.rate must be a positive number of requests per "
                              f"second, got {self.rate!r}.")
        if self.num_requests is not None:
            _check_int("num_requests", self.num_requests, minimum=1)
        if self.warmup is not None:
            _check_int("warmup", self.warmup, minimum=0)
        from ..frontend.llm import MAX_REQUESTS, check_sizes
        # sizes past sane limits are refused before the simulation allocates per-request state
        check_sizes(users=self.users, input_len=self.input_len, output_len=self.output_len,
                    num_requests=self.num_requests)
        if self.warmup is not None and self.warmup > MAX_REQUESTS:
            raise NpusimError(f"Scenario.warmup {self.warmup} is past the limit of "
                              f"{MAX_REQUESTS:,} requests (an assumption, far past any "
                              f"published workload)")

    @property
    def measured_requests(self) -> int:
        """Number of requests whose statistics are reported."""
        if self.num_requests is not None:
            return self.num_requests
        return max(4 * self.users, 16) if self.users is not None else 64

    @property
    def warmup_requests(self) -> int:
        """Number of leading requests left out of the statistics."""
        if self.warmup is not None:
            return self.warmup
        return self.users if self.users is not None else max(4, self.measured_requests // 4)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise NpusimError(f"Scenario.{name} must be an integer >= {minimum}, got {value!r}.")


@dataclass(frozen=True)
class RequestRecord:
    """Timeline of one completed request (seconds from the start of the simulation).

    ``tpot_s`` is the mean time between output tokens after the first,
    ``(finish_s - first_token_s) / (output_len - 1)``; NaN when ``output_len`` is 1.
    ``user`` is -1 in an open loop. ``measured`` is False for warm-up and cool-down requests.
    """

    index: int
    user: int
    arrival_s: float
    first_token_s: float
    finish_s: float
    ttft_s: float
    tpot_s: float
    e2e_s: float
    input_len: int
    output_len: int
    preemptions: int
    measured: bool


@dataclass(frozen=True)
class StepLog:
    """Per-step arrays of the whole run (for plots and checks), and the idle gaps.

    ``kv_blocks`` is the number of blocks in use during the step (after its allocations);
    ``batch`` the requests scheduled in it; ``running`` the requests holding KV cache.
    ``idle`` has one row ``(start_s, end_s)`` per gap with nothing to run (open loop), charged
    at static power.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    energy_j: np.ndarray
    prefill_tokens: np.ndarray
    output_tokens: np.ndarray
    batch: np.ndarray
    running: np.ndarray
    kv_blocks: np.ndarray
    kv_blocks_total: int
    idle: np.ndarray


@dataclass(frozen=True)
class ServingResult:
    """Outcome of :func:`simulate_serving`.

    Attributes
    ----------
    summary : dict
        Scenario metrics, units in the key names (see :func:`simulate_serving`).
    requests : tuple of RequestRecord
        Every completed request in arrival order, warm-up and cool-down ones flagged
        ``measured=False``.
    steps : StepLog
        The step-by-step timeline.
    """

    scenario: Scenario
    config: ServingConfig
    summary: dict
    requests: tuple
    steps: StepLog = field(repr=False)


def simulate_serving(cost: "StepCost", scenario: Scenario,
                     config: ServingConfig | None = None, *,
                     fast: bool = True, compiled: bool = True) -> ServingResult:
    """Simulate serving ``scenario`` on a system whose iterations cost what ``cost`` says.

    Parameters
    ----------
    cost : StepCost
        The system: ``kv_capacity_tokens``, ``kv_block_tokens``, ``chips``,
        ``static_power_w``, ``tdp_w`` and ``step(prefill, decode) -> StepResult`` where
        ``prefill`` lists ``(new tokens, tokens already cached)`` per prefill chunk and
        ``decode`` the KV length before the step of each decoding request.
    scenario : Scenario
    config : ServingConfig, optional
        Scheduler limits; vLLM V1 ``vllm serve`` defaults when omitted.
    fast : bool
        Run stretches of pure-decode steps (no admission, no finish, no preemption possible)
        without re-running the scheduler. The result is identical to ``fast=False``; the
        switch exists so that tests can prove it.
    compiled : bool
        With ``fast``, run a closed loop on one of npusim's own cost models as one compiled
        loop, scheduler and step costs together (:mod:`npusim.kernels.serving_loop`), about
        twenty times faster. The result is identical to the Python paths' (``compiled=False``),
        which remain the reference the tests hold it to.

    Returns
    -------
    ServingResult
        ``summary`` holds: ``ttft_{mean,p50,p99}_s``, ``tpot_{mean,p50,p99}_s``,
        ``e2e_{mean,p50,p99}_s`` over measured requests (percentiles linearly interpolated);
        ``prefill_tok_s`` (prompt tokens computed for the first time in the window per
        second; recomputation after preemption is not counted), ``decode_tok_s``
        (output tokens of the whole system per second, first tokens included),
        ``decode_tok_s_per_user`` (mean of 1/TPOT), ``prefill_tok_s_per_user``
        (input length over mean TTFT: the prefill speed one user sees, queueing included;
        at one user it is the "ISL/TTFT" proposal of the K-Perf working notes), ``requests_per_s``,
        ``avg_power_w`` (all the system's chips), ``card_power_w`` (one chip),
        ``system_power_w`` (the server at the wall, the host's parts and supply losses
        included; NaN unless ``config.host`` names one), ``host_power_w`` (wall minus the
        run's cards), ``energy_j``,
        ``energy_per_token_j``, ``tokens_per_j``,
        ``kv_util_mean`` (time-weighted) and ``kv_util_peak`` of the KV blocks,
        ``steps`` and ``batch_size_mean`` (requests per step) in the window,
        ``running_peak``, ``preemptions``, ``window_s``, ``requests_measured``, and the
        scenario and system figures (``input_len``, ``output_len``, ``users``, ``rate_rps``,
        ``chips``, ``tdp_w``, ``static_power_w``, ``kv_capacity_tokens``, ``kv_block_tokens``,
        ``max_num_seqs``, ``max_num_batched_tokens``, ``policy``).

    Raises
    ------
    CapacityError
        If one request of these lengths cannot fit the KV cache even alone.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Cost:
    ...     seconds: float
    ...     energy_j: float
    >>> class Fixed:  # every step takes 10 ms and 1 J
    ...     kv_capacity_tokens, kv_block_tokens, chips = 4096, 16, 1
    ...     static_power_w, tdp_w = 20.0, None
    ...     def step(self, prefill, decode):
    ...         return Cost(0.01, 1.0)
    >>> r = simulate_serving(Fixed(), Scenario(input_len=3000, output_len=11, users=1))
    >>> round(r.summary["ttft_p50_s"], 6), round(r.summary["tpot_p50_s"], 6)
    (0.02, 0.01)
    """
    config = ServingConfig() if config is None else config
    from ..frontend.llm import check_sizes
    # a request past the model's context window is refused, as vLLM refuses it
    check_sizes(getattr(cost, "spec", None), input_len=scenario.input_len,
                output_len=scenario.output_len)
    block = int(cost.kv_block_tokens)
    if block < 1:
        raise NpusimError(f"the cost model's kv_block_tokens must be >= 1, got "
                          f"{cost.kv_block_tokens!r}.")
    total_blocks = int(cost.kv_capacity_tokens) // block
    peak_tokens = scenario.input_len + scenario.output_len - 1
    if config.policy == "no_evict":  # reserves the whole life at admission
        peak_tokens += 1
    need = -(-peak_tokens // block)
    if need > total_blocks:
        raise CapacityError(
            f"one request of input {scenario.input_len} + output {scenario.output_len} tokens "
            f"holds up to {peak_tokens} tokens of KV cache ({need} blocks of {block}), but the "
            f"system has room for {int(cost.kv_capacity_tokens)} tokens ({total_blocks} blocks) "
            f"after the weights. Use shorter lengths, more chips, a smaller KV-cache precision "
            f"or a larger DRAM.")
    host = _host(config, cost)
    from .stack import load_stack
    sim = _Simulation(cost, scenario, config, block, total_blocks, load_stack(config.stack))
    from . import serving_compiled
    if fast and compiled and serving_compiled.eligible(cost, sim):
        serving_compiled.run(sim)
    else:
        sim.run(fast)
    return sim.result(host)


def load_kernels() -> None:
    """Compile (or load from Numba's cache) the scheduler's kernels now: a caller about to fork
    workers does it once, before, rather than in every worker."""
    from ..kernels import serving as kern
    empty = np.empty(0, dtype=np.int64)
    kern.plan(empty, empty, empty, 1, 1, 1, 0)
    kern.advance(empty, empty, empty, empty, 1, 1, 0, 1)
    from . import serving_compiled
    serving_compiled.load()


def _host(config: ServingConfig, cost):
    """The host the config names, resolved for the cost model's arch (None: card power only),
    loaded before the simulation so a bad host file fails first."""
    if config.host is None:
        return None
    from ..arch.host import resolve_host
    arch = getattr(cost, "arch", None)
    return resolve_host(config.host, getattr(arch, "name", ""))


def _idle_card_w(cost) -> float:
    """What an accelerator the run leaves idle draws: the arch's idle chip, else the cost
    model's static power per chip (what it charges a chip with nothing to do)."""
    arch = getattr(cost, "arch", None)
    if arch is not None:
        from ..arch.host import card_idle_w
        return card_idle_w(arch)
    return float(cost.static_power_w) / cost.chips


def _ceil_div(a, b):
    return -(-a // b)


def _round_up_by_range(x: float, floor: int, ladder) -> int:
    """``x`` rounded up to the step of the first ``(below, step)`` range it falls in, at
    least ``floor`` (trtllm-bench's "slightly optimistic" rounding of its limits)."""
    for below, step in ladder:
        if x < below:
            return max(floor, step * math.ceil(x / step))
    raise ValueError(x)


class _Simulation:
    """State of one run. Running requests live in parallel numpy arrays in admission order, so
    a step costs a fixed number of vector operations whatever the batch size."""

    def __init__(self, cost, scenario: Scenario, config: ServingConfig, block: int,
                 total_blocks: int, stack=None):
        self.cost = cost
        # the stack's host time after each step, the chips waiting at their static power
        self.stack = stack
        self.chips = int(cost.chips)
        self.static_w = float(cost.static_power_w)
        self.scenario = scenario
        self.config = config
        self.inp = scenario.input_len
        self.out = scenario.output_len
        self.block = block
        self.total_blocks = total_blocks
        self.budget = config.max_num_batched_tokens
        self.max_seqs = config.max_num_seqs
        # blocks a running request holds at least: its whole life's under no_evict
        self.floor = (_ceil_div(self.inp + self.out, block)
                      if config.policy == "no_evict" else 0)
        self.warmup = scenario.warmup_requests
        self.measured_end = self.warmup + scenario.measured_requests
        self.measured_done = 0
        self.completions: list[float] = []
        self.t = 0.0
        # Per request, indexed by arrival order.
        self.arrival: list[float] = []
        self.user: list[int] = []
        self.first: list[float] = []
        self.finish: list[float] = []
        self.preempts: list[int] = []
        self.saved_gen: list[int] = []
        self.saved_pdone: list[int] = []
        self.waiting: deque[int] = deque()
        # Running requests: id, tokens in the cache, tokens generated, blocks held, and the
        # prompt prefix ever computed (to count recomputed prompt tokens only once).
        empty = np.empty(0, dtype=np.int64)
        self.rid = self.comp = self.gen = self.blk = self.pdone = empty
        self.free = total_blocks
        self.log = {k: [] for k in ("start", "end", "energy", "prefill", "output", "batch",
                                    "running", "blocks")}
        self.idle: list[tuple[float, float]] = []
        # whether every running request decodes next (None: not known, look)
        self.all_decode = None
        self.open_loop = scenario.rate is not None
        if self.open_loop:
            self.rng = np.random.default_rng(scenario.seed)
            self.mean_gap = 1.0 / scenario.rate
            self.next_arrival = float(self.rng.exponential(self.mean_gap))
        else:
            self.next_arrival = math.inf
            for u in range(scenario.users):
                self.issue(u, 0.0)

    def held(self, comp: np.ndarray) -> np.ndarray:
        """Blocks held by running requests with ``comp`` tokens in the cache."""
        blocks = _ceil_div(comp, self.block)
        return np.maximum(blocks, self.floor) if self.floor else blocks

    def issue(self, user: int, at: float) -> None:
        self.arrival.append(at)
        self.user.append(user)
        self.first.append(math.nan)
        self.finish.append(math.nan)
        self.preempts.append(0)
        self.saved_gen.append(0)
        self.saved_pdone.append(0)
        self.waiting.append(len(self.arrival) - 1)

    def admit_arrivals(self) -> None:
        while self.next_arrival <= self.t:
            self.issue(-1, self.next_arrival)
            self.next_arrival += float(self.rng.exponential(self.mean_gap))

    def run(self, fast: bool) -> None:
        # a cost model that can cost a run of decode steps at once (StepCostModel.decode_run)
        # is asked for each stretch; any other is called step by step
        self.decode_run = getattr(self.cost, "decode_run", None) if fast else None
        measured = self.measured_end - self.warmup
        while self.measured_done < measured or len(self.completions) < self.measured_end:
            if self.open_loop:
                self.admit_arrivals()
                if len(self.rid) == 0 and not self.waiting:
                    self.idle.append((self.t, self.next_arrival))
                    self.t = self.next_arrival
                    continue
            if fast and self.decode_stretch():
                continue
            self.step()

    # -- one scheduler iteration -------------------------------------------------------------

    def step(self) -> None:
        from ..kernels import serving as kern
        inp, block, floor = self.inp, self.block, self.floor
        n, need, need_total, n_total = kern.plan(self.comp, self.gen, self.blk, inp,
                                                 self.budget, block, floor)
        preempted = need_total > self.free
        if preempted:
            n = self.preempt(n, need)
        elif (self.budget - n_total > 0 and self.waiting
              and len(self.rid) < self.max_seqs):
            n = self.admit_waiting(n, self.budget - n_total, self.free - need_total)
        comp = self.comp
        comp2, gen2, pdone2, blk2, flags, counts = kern.advance(
            comp, self.gen, self.pdone, n, inp, block, floor, self.out)
        useful, sampled, scheduled, blocks, decoding, ready = counts.tolist()
        if not scheduled:
            self.all_decode = None
            return  # everyone was preempted; the queue is admitted next iteration
        is_dec = (flags & kern.DECODE) != 0
        is_pre = (flags & kern.PREFILL) != 0
        prefill = list(zip(n[is_pre].tolist(), comp[is_pre].tolist()))
        res = self.cost.step(prefill, comp[is_dec].tolist())
        gap = self.host_gap(scheduled)
        t_end = self.t + _seconds(res, prefill, decoding) + gap
        self.comp, self.gen, self.pdone, self.blk = comp2, gen2, pdone2, blk2
        self.free = self.total_blocks - blocks
        # False: some running request has more than one token to compute, so the next
        # iteration is no decode stretch (retiring some requests does not change that)
        self.all_decode = None if ready == len(comp2) else False
        self._record(self.t, t_end, float(res.energy_j) + gap * self.static_w, useful,
                     sampled, scheduled, len(self.rid), blocks)
        first = (flags & kern.FIRST) != 0
        if first.any():
            for r in self.rid[first].tolist():
                self.first[r] = t_end
        self.t = t_end
        done = (flags & kern.DONE) != 0
        if done.any():
            self.retire(done, t_end)

    def preempt(self, n: np.ndarray, need: np.ndarray) -> np.ndarray:
        """Serve running requests in order; when one cannot grow, evict the newest until it
        can (or it is itself evicted). Returns ``n`` for the requests still running."""
        need_l, blk_l = need.tolist(), self.blk.tolist()
        free, end, i = self.free, len(need_l), 0
        while i < end:
            while free < need_l[i]:
                end -= 1
                free += blk_l[end]
                if end == i:
                    break
            if end == i:
                break
            free -= need_l[i]
            i += 1
        victims = self.rid[end:].tolist()
        for j in range(len(victims) - 1, -1, -1):
            r = victims[j]
            self.saved_gen[r] = int(self.gen[end + j])
            self.saved_pdone[r] = int(self.pdone[end + j])
            self.preempts[r] += 1
            self.waiting.appendleft(r)
        self.rid, self.comp, self.gen, self.blk, self.pdone = (
            a[:end] for a in (self.rid, self.comp, self.gen, self.blk, self.pdone))
        self.free = self.total_blocks - int(self.blk.sum())
        return n[:end]

    def admit_waiting(self, n: np.ndarray, left: int, free_after: int) -> np.ndarray:
        """Admit queued requests first come, first served into the leftover budget."""
        ids, ns, gens, pdones = [], [], [], []
        room = self.max_seqs - len(self.rid)
        while self.waiting and left > 0 and len(ids) < room:
            r = self.waiting[0]
            first_chunk = min(self.inp + self.saved_gen[r], left)
            blocks = max(_ceil_div(first_chunk, self.block), self.floor)
            if blocks > free_after:
                break
            self.waiting.popleft()
            ids.append(r)
            ns.append(first_chunk)
            gens.append(self.saved_gen[r])
            pdones.append(self.saved_pdone[r])
            left -= first_chunk
            free_after -= blocks
        if not ids:
            return n
        zeros = np.zeros(len(ids), dtype=np.int64)
        self.rid = np.concatenate((self.rid, np.array(ids, dtype=np.int64)))
        self.comp = np.concatenate((self.comp, zeros))
        self.gen = np.concatenate((self.gen, np.array(gens, dtype=np.int64)))
        self.blk = np.concatenate((self.blk, np.zeros(len(ids), dtype=np.int64)))
        self.pdone = np.concatenate((self.pdone, np.array(pdones, dtype=np.int64)))
        return np.concatenate((n, np.array(ns, dtype=np.int64)))

    def retire(self, done: np.ndarray, t_end: float) -> None:
        for r in self.rid[done].tolist():
            self.finish[r] = t_end
            self.completions.append(t_end)
            if self.warmup <= r < self.measured_end:
                self.measured_done += 1
            if not self.open_loop:
                self.issue(self.user[r], t_end)
        keep = ~done
        self.rid, self.comp, self.gen, self.blk, self.pdone = (
            a[keep] for a in (self.rid, self.comp, self.gen, self.blk, self.pdone))
        self.free = self.total_blocks - int(self.blk.sum())

    # -- fast path -----------------------------------------------------------------------------

    def host_gap(self, sequences: int) -> float:
        """Seconds the stack's host works after a step of ``sequences``, the chips waiting
        (0 without a stack: host work overlapped, :mod:`npusim.workloads.stack`)."""
        return 0.0 if self.stack is None else self.stack.gap_s(sequences, self.chips)

    def decode_stretch(self) -> bool:
        """Run consecutive steps in which the same requests all decode, if the scheduler would
        do nothing else: no admission, no finish, no block shortage. Returns False (nothing
        run) when the next step needs the full scheduler."""
        R = len(self.rid)
        if self.all_decode is False or R == 0 or R > self.budget or int(self.gen.min()) < 1:
            return False
        comp = self.comp
        if not (self.inp + self.gen - comp == 1).all():
            return False
        block = self.block
        first_cross = (-comp) % block   # step (from 0) at which each request opens a new block
        if self.floor:
            # under no_evict a request's blocks were all reserved at admission: none opens
            first_cross = np.full_like(comp, np.iinfo(np.int64).max // 4)
        left = self.budget - R
        can_admit = left > 0 and R < self.max_seqs
        if can_admit and self.waiting:
            head = self.waiting[0]
            blocks = max(_ceil_div(min(self.inp + self.saved_gen[head], left), block),
                         self.floor)
            if blocks <= self.free - int((first_cross == 0).sum()):
                return False
            # The head stays blocked: free blocks only shrink while everyone decodes.
            can_admit = False
        until_arrival = can_admit and self.open_loop
        k = self.out - int(self.gen.max()) - 1
        crossings_before_k = int(np.maximum(_ceil_div(k - first_cross, block), 0).sum())
        if crossings_before_k > self.free:
            # The (free+1)-th block request, in step order, is the first that cannot be met.
            order = np.sort(first_cross)
            rounds, pos = divmod(self.free, R)
            k = min(k, int(order[pos]) + rounds * block)
        if k < 2:
            return False
        gap = self.host_gap(R)
        run = self.decode_run(comp, k) if self.decode_run is not None else None
        if run is None:
            t, done = self._decode_loop(comp, k, gap, until_arrival)
        else:
            t, done = self._decode_vector(run, k, gap, until_arrival, R)
        log = self.log
        starts = first_cross[first_cross < done]
        events = (starts[:, None] + block * np.arange(_ceil_div(done, block) + 1)).ravel()
        per_step = np.bincount(events[events < done], minlength=done)
        used0 = self.total_blocks - self.free
        log["blocks"].extend((used0 + np.cumsum(per_step)).tolist())
        log["prefill"].extend([0] * done)
        for key in ("output", "batch", "running"):
            log[key].extend([R] * done)
        self.t = t
        self.comp = comp + done
        self.gen = self.gen + done
        self.blk = self.held(self.comp)
        self.free = self.total_blocks - int(self.blk.sum())
        return True

    def _decode_loop(self, comp: np.ndarray, k: int, gap: float,
                     until_arrival: bool) -> tuple[float, int]:
        """Up to ``k`` decode steps one cost-model call each; returns the time after them and
        how many ran (the first whose end reaches the next arrival is the last)."""
        t, step, log = self.t, self.cost.step, self.log
        R = len(comp)
        done = 0
        for j in range(k):
            res = step([], (comp + j).tolist())
            t_end = t + _seconds(res, (), R) + gap
            log["start"].append(t)
            log["end"].append(t_end)
            log["energy"].append(float(res.energy_j) + gap * self.static_w)
            t = t_end
            done = j + 1
            if until_arrival and t >= self.next_arrival:
                break
        return t, done

    def _decode_vector(self, run, k: int, gap: float, until_arrival: bool,
                       R: int) -> tuple[float, int]:
        """:meth:`_decode_loop` from a cost model's :class:`~.stepcost.DecodeRun`: the same
        times, summed in the same order (``t + seconds + gap`` step after step)."""
        seconds = np.asarray(run.seconds, dtype=float)
        # t_end[j] = (t_end[j-1] + seconds[j]) + gap: one running sum over the interleaved
        # terms t, s0, gap, s1, gap, ... adds them in exactly that order
        terms = np.empty(2 * k + 1)
        terms[0] = self.t
        terms[1::2] = seconds
        terms[2::2] = gap
        ends = np.add.accumulate(terms)[2::2]
        done = k
        if until_arrival:
            reached = np.flatnonzero(ends >= self.next_arrival)
            if reached.size:
                done = int(reached[0]) + 1
        bad = ~(seconds[:done] >= 0) | np.isinf(seconds[:done])
        if bad.any():
            raise _bad_step(float(seconds[:done][bad][0]), 0, R)
        run.keep(done)
        ends = ends[:done]
        log = self.log
        log["start"].append(self.t)
        log["start"].extend(ends[:-1].tolist())
        log["end"].extend(ends.tolist())
        log["energy"].extend((np.asarray(run.energy_j[:done], dtype=float)
                              + gap * self.static_w).tolist())
        return float(ends[-1]), done

    # -- bookkeeping ---------------------------------------------------------------------------

    def _record(self, start, end, energy, prefill, output, batch, running, blocks) -> None:
        log = self.log
        log["start"].append(start)
        log["end"].append(end)
        log["energy"].append(energy)
        log["prefill"].append(prefill)
        log["output"].append(output)
        log["batch"].append(batch)
        log["running"].append(running)
        log["blocks"].append(blocks)

    def result(self, host=None) -> ServingResult:
        log = {k: np.asarray(v, dtype=float if k in ("start", "end", "energy") else np.int64)
               for k, v in self.log.items()}
        steps = StepLog(start_s=log["start"], end_s=log["end"], energy_j=log["energy"],
                        prefill_tokens=log["prefill"], output_tokens=log["output"],
                        batch=log["batch"], running=log["running"], kv_blocks=log["blocks"],
                        kv_blocks_total=self.total_blocks,
                        idle=np.asarray(self.idle, dtype=float).reshape(-1, 2))
        requests = tuple(self._request(r) for r in range(len(self.arrival))
                         if not math.isnan(self.finish[r]))
        w = self.warmup
        window = (self.completions[w - 1] if w else self.arrival[0],
                  self.completions[self.measured_end - 1])
        summary = _summarize(requests, steps, window, self.cost, self.scenario, self.config,
                             host)
        return ServingResult(self.scenario, self.config, summary, requests, steps)

    def _request(self, r: int) -> RequestRecord:
        arrival, first, finish = self.arrival[r], self.first[r], self.finish[r]
        tpot = (finish - first) / (self.out - 1) if self.out > 1 else math.nan
        return RequestRecord(index=r, user=self.user[r], arrival_s=arrival,
                             first_token_s=first, finish_s=finish, ttft_s=first - arrival,
                             tpot_s=tpot, e2e_s=finish - arrival, input_len=self.inp,
                             output_len=self.out, preemptions=self.preempts[r],
                             measured=self.warmup <= r < self.measured_end)


def _seconds(res, prefill, decodes) -> float:
    seconds = float(res.seconds)
    if not seconds >= 0 or math.isinf(seconds):
        raise _bad_step(res.seconds, len(prefill), decodes)
    return seconds


def _bad_step(seconds, chunks: int, decodes) -> NpusimError:
    return NpusimError(f"the cost model returned {seconds!r} s for a step of {chunks} prefill "
                       f"chunks and {int(decodes)} decodes; a step must take a finite, "
                       f"non-negative time.")


def _stats(values: np.ndarray, name: str) -> dict:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {f"{name}_mean_s": math.nan, f"{name}_p50_s": math.nan,
                f"{name}_p99_s": math.nan}
    return {f"{name}_mean_s": float(values.mean()),
            f"{name}_p50_s": float(np.percentile(values, 50)),
            f"{name}_p99_s": float(np.percentile(values, 99))}


def _per_s(amount: float, window: float) -> float:
    return amount / window if window > 0 else math.nan


def _system(host, card_w: float, cost, busy: float) -> dict:
    """``host_power_w`` and ``system_power_w`` of the summary (NaN without a host)."""
    from ..arch.host import system_keys
    idle = _idle_card_w(cost) if host is not None else math.nan
    keys = system_keys(host, card_w, int(cost.chips), idle, busy)
    return {k: keys[k] for k in ("host_power_w", "system_power_w")}


def _summarize(requests, steps: StepLog, bounds: tuple[float, float], cost,
               scenario: Scenario, config: ServingConfig, host=None) -> dict:
    measured = [q for q in requests if q.measured]
    t0, t1 = bounds
    window = t1 - t0
    start, end = steps.start_s, steps.end_s
    dur = end - start
    overlap = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0.0, None)
    inside = np.where(dur > 0, overlap > 0, (start >= t0) & (start <= t1))
    frac = np.where(dur > 0, overlap / np.where(dur > 0, dur, 1.0), inside.astype(float))
    idle = steps.idle
    idle_s = float(np.clip(np.minimum(idle[:, 1], t1) - np.maximum(idle[:, 0], t0), 0.0,
                           None).sum())
    energy = float((steps.energy_j * frac).sum()) + float(cost.static_power_w) * idle_s
    prefill_tokens = float((steps.prefill_tokens * frac).sum())
    output_tokens = float((steps.output_tokens * frac).sum())
    tpot = np.array([q.tpot_s for q in measured])
    per_user = 1.0 / tpot[np.isfinite(tpot) & (tpot > 0)]
    total = steps.kv_blocks_total
    ttft = _stats(np.array([q.ttft_s for q in measured]), "ttft")
    summary = {
        "input_len": scenario.input_len,
        "output_len": scenario.output_len,
        "users": scenario.users,
        "rate_rps": scenario.rate,
        "chips": cost.chips,
        "requests_measured": len(measured),
        **ttft,
        **_stats(tpot, "tpot"),
        **_stats(np.array([q.e2e_s for q in measured]), "e2e"),
        "prefill_tok_s": _per_s(prefill_tokens, window),
        "decode_tok_s": _per_s(output_tokens, window),
        "decode_tok_s_per_user": float(per_user.mean()) if per_user.size else math.nan,
        "prefill_tok_s_per_user": _per_s(scenario.input_len, ttft["ttft_mean_s"]),
        "requests_per_s": _per_s(scenario.measured_requests, window),
        "avg_power_w": _per_s(energy, window),
        # one card (chip) alone, the boundary of a board-power meter (nvidia-smi, ML.ENERGY);
        # avg_power_w is everything the run counts (all its cards)
        "card_power_w": _per_s(energy, window) / cost.chips,
        # the whole server at the wall (MLPerf's boundary), host busy while any step runs
        **_system(host, _per_s(energy, window) / cost.chips, cost,
                  1.0 - idle_s / window if window > 0 else 0.0),
        "energy_j": energy,
        "energy_per_token_j": energy / output_tokens if output_tokens else math.nan,
        "tokens_per_j": output_tokens / energy if energy > 0 else math.nan,
        "kv_util_mean": (float((steps.kv_blocks * overlap).sum()) / (total * window)
                              if window > 0 and total else math.nan),
        "kv_util_peak": (float(steps.kv_blocks[inside].max()) / total
                              if inside.any() and total else math.nan),
        "steps": int(inside.sum()),
        "batch_size_mean": float(steps.batch[inside].mean()) if inside.any() else math.nan,
        "running_peak": int(steps.running[inside].max()) if inside.any() else 0,
        "preemptions": sum(q.preemptions for q in measured),
        "window_s": window,
        "tdp_w": cost.tdp_w,
        "static_power_w": float(cost.static_power_w),
        "kv_capacity_tokens": int(cost.kv_capacity_tokens),
        "kv_block_tokens": int(cost.kv_block_tokens),
        "max_num_seqs": config.max_num_seqs,
        "max_num_batched_tokens": config.max_num_batched_tokens,
        "policy": config.policy,
        # the multi-chip layout (tp x pp) the cost model runs, for every record
        "parallel": str(getattr(cost, "parallel", f"tp={cost.chips},pp=1")),
    }
    return summary
