"""The architecture as frozen dataclasses: plain floats in SI units (Hz, bytes, bytes/s, s, W)
or counts. Built only by :func:`npusim.arch.load_arch`, which validates everything first.

``None`` in a field means "not published"; a model that needs the value must say so rather
than guess.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from ..errors import ArchError
from ..ir import DType, dtype as _dtype


class FrozenMap(Mapping):
    """A read-only, hashable, picklable mapping (frozen dataclasses hold these, not dicts).

    >>> m = FrozenMap({"bf16": 256.0})
    >>> m["bf16"], len(m), m == {"bf16": 256.0}
    (256.0, 1, True)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping | None = None) -> None:
        object.__setattr__(self, "_items", dict(items or {}))

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __getstate__(self) -> dict:
        return self._items

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "_items", dict(state))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


@dataclass(frozen=True)
class Engine:
    """The contraction engine of one core.

    ``units`` identical engine units per core (RNGD: 64 slices per PE; a GPU SM: 4 tensor
    cores); ``rows`` x ``cols`` is the spatial shape of one unit in 16-bit MAC positions
    (``None`` when unpublished); ``macs_per_cycle`` maps a dtype name to MACs per cycle for
    the whole core; ``efficiency`` the sustained fraction of that rate per dtype (measured or
    fitted on named rows, see the arch file), 1 where absent.
    """

    kind: str
    units: int
    rows: int | None
    cols: int | None
    dataflow: str | None
    macs_per_cycle: FrozenMap
    efficiency: FrozenMap = field(default_factory=FrozenMap)

    def sustained(self, dtype_name: str) -> float:
        """Fraction of the peak MAC rate sustained for ``dtype_name`` (1 when not given)."""
        return float(self.efficiency.get(dtype_name, 1.0))


@dataclass(frozen=True)
class Vector:
    """The vector unit of one core: fp32 element operations per cycle."""

    ops_per_cycle: float


@dataclass(frozen=True)
class Cores:
    """``count`` identical cores; ``sram`` bytes and ``sram_bandwidth`` bytes/cycle each;
    ``accumulator`` bytes of partial-sum storage outside the SRAM (``None``: sums live in SRAM)."""

    count: int
    engine: Engine
    vector: Vector
    sram: float
    sram_bandwidth: float | None
    accumulator: float | None = None


@dataclass(frozen=True)
class Dram:
    """Off-chip memory. Geometry fields are ``None`` where unpublished; timings come later."""

    type: str
    capacity: float
    bandwidth: float
    channels: int | None
    bank_groups: int | None
    banks_per_group: int | None
    row_size: float | None
    burst: float | None


@dataclass(frozen=True)
class Noc:
    """On-chip network: aggregate bandwidth in bytes/s (``None`` if unpublished)."""

    bandwidth: float | None


@dataclass(frozen=True)
class Dma:
    """Tensor DMA: engines, bytes per cycle each, fixed startup cycles per command."""

    engines: int | None
    bytes_per_cycle: float | None
    startup_cycles: float | None


@dataclass(frozen=True)
class Link:
    """Chip-to-chip link: ``bandwidth`` bytes/s per direction per chip, ``latency`` seconds per
    hop of a collective. With ``bulk_latency`` set, collectives pick the faster of two
    protocols, as NCCL does: a low-latency one (``latency`` per hop, half the bandwidth) and a
    bulk one (``bulk_latency`` per hop, the full bandwidth); see
    :func:`npusim.engine.roofline.collective_seconds`."""

    kind: str
    bandwidth: float
    latency: float | None
    bulk_latency: float | None = None


@dataclass(frozen=True)
class Power:
    """Board power: thermal design power, idle power and a configured power cap, watts
    (``None`` if unpublished, or no cap)."""

    tdp: float | None
    idle: float | None
    cap: float | None = None

    @property
    def limit(self) -> float | None:
        """The power the chip is held to: the lower of the TDP and a configured cap (an
        MLPerf MaxQ run's ``nvidia-smi -pl``), ``None`` when there is neither.

        >>> Power(tdp=700.0, idle=None, cap=350.0).limit, Power(700.0, None).limit
        (350.0, 700.0)
        """
        given = [w for w in (self.tdp, self.cap) if w is not None]
        return min(given) if given else None


@dataclass(frozen=True)
class PimEnergy:
    """What the PIM units' own actions cost: ``mac`` joules per MAC by dtype; ``column``
    joules per byte a unit reads from (or writes to) its bank's open row (the array and the
    bank-local wires, no external I/O); ``unit_static`` watts of all the units while powered.
    Row activations and external-bus bits cost what the arch's energy table says for its DRAM.
    """

    mac: FrozenMap
    column: float
    unit_static: float = 0.0


@dataclass(frozen=True)
class Pim:
    """Processing units inside the DRAM (processing-in-memory), run in all-bank mode.

    One unit per ``banks_per_unit`` banks of every channel consumes one column burst of its
    open row per column command (at most one per ``column_interval``, the DRAM's tCCD_L when
    ``None``) and multiplies it with input held in the channel's ``input_buffer``, which the
    host fills by broadcast; ``accumulators`` output rows per unit are summed at once and
    their partial sums (``accumulator_bytes`` each) read out for the host to finish.
    See :mod:`npusim.kernels.pim` for the timing and ``npusim/archs/*-pim.yaml`` for presets.
    """

    device: str
    enabled: bool
    banks_per_unit: int
    clock: float
    macs_per_cycle: FrozenMap
    column_interval: float | None
    input_buffer: float
    accumulators: int
    accumulator_bytes: float
    vectors_per_pass: int
    all_bank_act: bool
    mode_switch: float
    ops: tuple[str, ...]
    dual_row_buffer: bool
    energy: PimEnergy

    def peak_macs_per_unit_s(self, dtype_name: str) -> float:
        """MACs per second of one unit for a native dtype (0 if the units lack it)."""
        return float(self.macs_per_cycle.get(dtype_name, 0.0)) * self.clock


@dataclass(frozen=True)
class Arch:
    """A validated chip architecture. Build it with :func:`npusim.arch.load_arch`.

    Examples
    --------
    >>> from npusim.arch import load_arch
    >>> rngd = load_arch("rngd")
    >>> rngd.peak_macs_per_s("bf16") / 1e12
    131.072
    >>> rngd.execution_dtype("mxfp4").name
    'fp8_e4m3'
    """

    name: str
    description: str
    clock: float
    cores: Cores
    shared_sram: float
    dram: Dram
    noc: Noc
    dma: Dma
    link: Link | None
    power: Power
    dtype_fallback: FrozenMap
    launch_overhead: float = 0.0
    step_overhead: float = 0.0
    graph_launch_overhead: float | None = None
    # "epilogue" or "residual" (schema.FUSION_MODES): which elementwise ops are fused into
    # the contraction before them; see npusim.engine.simulate
    fusion: str = "epilogue"
    pim: Pim | None = None
    source: str = field(default="", compare=False)
    overrides: tuple[str, ...] = ()
    # `--set energy.<field>=<value>` overrides of the arch's energy table, field -> value as
    # written (validated where the table is read, npusim.energy.load_energy_table); part of
    # the arch's identity, since they change what every op costs
    energy: FrozenMap = field(default_factory=FrozenMap)
    # (dotted field, provenance) of every value taken from the arch's calibration file
    calibration: tuple = field(default=(), compare=False)

    def for_serving(self) -> "Arch":
        """This arch as a serving stack runs it: every kernel of a step replayed from a
        captured graph (CUDA graphs in vLLM V1, TensorRT-LLM and torch.compile), so each pays
        ``graph_launch_overhead`` instead of a standalone launch. The arch itself when the
        field is unset."""
        if self.graph_launch_overhead is None:
            return self
        return replace(self, launch_overhead=self.graph_launch_overhead)

    def require_link(self, chips: int, why: str = "") -> Link | None:
        """The chip-to-chip link a system of ``chips`` of this arch talks over.

        A system is N chips and the links between them: one chip needs no link, more than
        one cannot be built from an arch without one. This is the one check for that, made
        where a chip count meets the arch, before anything is costed.

        Raises
        ------
        ArchError
            If ``chips`` > 1 and the arch has no link (``link: null``); ``why`` says what
            asked for the chips.

        Examples
        --------
        >>> from npusim.arch import load_arch
        >>> load_arch("systolic-128").require_link(1) is None
        True
        >>> load_arch("systolic-128").require_link(2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        npusim.errors.ArchError: systolic-128.yaml: link: is null (no chip-to-chip link), ...
        """
        if chips > 1 and self.link is None:
            raise ArchError(
                f"{self._where()}: link: is null (no chip-to-chip link), but a system of "
                f"{chips} chips{why} needs one; give the arch a link section (e.g. --set "
                f"link.kind=generic --set link.bandwidth=100GB/s --set link.latency=1us) or "
                f"use one chip")
        return self.link

    @property
    def host_name(self) -> str:
        """The arch's name before any ``+device`` composition (``rngd`` for
        ``rngd+hbm2-pim``): what its energy table and calibration are filed under."""
        return self.name.split("+", 1)[0]

    @property
    def pim_on(self) -> bool:
        """Whether the arch has PIM units and they are enabled."""
        return self.pim is not None and self.pim.enabled

    def calibrated(self) -> dict[str, dict]:
        """``{dotted field: provenance}`` of the calibrated values this arch carries."""
        return {k: dict(v) for k, v in self.calibration}

    @property
    def sram_total(self) -> float:
        """Bytes of on-chip SRAM usable for tensors: every core's SRAM plus the shared SRAM."""
        return self.cores.count * self.cores.sram + self.shared_sram

    @property
    def peak_vector_ops_per_s(self) -> float:
        """fp32 element operations per second, whole chip."""
        return self.cores.count * self.cores.vector.ops_per_cycle * self.clock

    def execution_dtype(self, dt: DType | str) -> DType:
        """The dtype the engine really runs ``dt`` in: itself if native, else its fallback.

        Raises
        ------
        ArchError
            If ``dt`` has neither a MAC rate nor a fallback in this arch.
        """
        d = self._dtype(dt)
        rates = self.cores.engine.macs_per_cycle
        kind = d.kind  # a group-scaled int4_g128 multiplies as int4
        if kind in rates:
            return _dtype(kind)
        if kind in self.dtype_fallback:
            return _dtype(self.dtype_fallback[kind])
        raise ArchError(
            f"arch {self.name} has no MAC rate for dtype {d.name} and no fallback; native "
            f"dtypes are {', '.join(rates)}. Add one to {self._where()} as "
            f"'dtype_fallback: {{{d.name}: <native dtype>}}' or pass "
            f"--set dtype_fallback.{d.name}=<native dtype>")

    def peak_macs_per_s(self, dt: DType | str) -> float:
        """Peak MACs per second of the whole chip for ``dt`` (after any dtype fallback)."""
        ex = self.execution_dtype(dt)
        return self.cores.count * self.cores.engine.macs_per_cycle[ex.name] * self.clock

    def to_dict(self) -> dict:
        """The fully resolved arch as JSON-able data, every quantity in SI units.

        The ``units`` entry names the unit of each dotted field that has one.
        """
        from .schema import si_units  # the schema knows units; imported late to avoid a cycle
        out = _plain(self)
        out["units"] = si_units()
        return out

    def _dtype(self, dt: DType | str) -> DType:
        try:
            return _dtype(dt)
        except ValueError as exc:
            raise ArchError(f"arch {self.name}: {exc}") from None

    def _where(self) -> str:
        return self.source or f"the arch file of {self.name}"


def _plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_plain(v) for v in obj]
    return obj
