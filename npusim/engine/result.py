"""The result tree: a run holds per-op records; every total is a sum over the records."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class OpRecord:
    """What one op costs on one arch.

    Attributes
    ----------
    name, kind, source, op_type : str
        The op and where it came from (``source`` is the ONNX node or builder layer).
    dtype, exec_dtype : str
        The op's compute dtype and the dtype the arch really runs it in.
    macs : int
        Multiply-accumulates (contractions only).
    vector_ops : float
        Element operations on the vector unit.
    bytes : float
        Bytes of every distinct operand, each counted once.
    dram_bytes : float
        Bytes that must cross the DRAM interface whatever the schedule (see ``roofline``).
    compute_s, memory_s : float
        Ideal compute time at peak for the dtype, ideal DRAM time at peak bandwidth.
    bound_s : float
        ``max(compute_s, memory_s)``: no schedule of this op alone can be faster.
    latency_s : float
        The latency the engine assigns the op.
    bound : str
        What limits the op: ``"compute"`` or ``"memory"``.
    """

    name: str
    kind: str
    source: str
    op_type: str
    dtype: str
    exec_dtype: str
    macs: int
    vector_ops: float
    bytes: float
    dram_bytes: float
    compute_s: float
    memory_s: float
    bound_s: float
    latency_s: float
    bound: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """A model run on an arch: per-op records in schedule order and totals derived from them."""

    model: str
    arch: str
    engine: str
    ops: tuple[OpRecord, ...]
    meta: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.ops)

    @property
    def latency_s(self) -> float:
        return sum(r.latency_s for r in self.ops)

    @property
    def compute_s(self) -> float:
        return sum(r.compute_s for r in self.ops)

    @property
    def memory_s(self) -> float:
        return sum(r.memory_s for r in self.ops)

    @property
    def bound_latency_s(self) -> float:
        """Whole-run roofline: all compute at peak or all DRAM traffic at peak, whichever is
        longer. With perfect overlap between ops nothing is faster, so no engine may beat it."""
        return max(self.compute_s, self.memory_s)

    @property
    def dram_bytes(self) -> float:
        return sum(r.dram_bytes for r in self.ops)

    def totals(self) -> dict:
        return {
            "macs": self.macs,
            "latency_s": self.latency_s,
            "bound_latency_s": self.bound_latency_s,
            "compute_s": self.compute_s,
            "memory_s": self.memory_s,
            "dram_bytes": self.dram_bytes,
            "ops": len(self.ops),
        }

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "arch": self.arch,
            "engine": self.engine,
            "totals": self.totals(),
            "meta": self.meta,
            "warnings": list(self.warnings),
            "ops": [r.to_dict() for r in self.ops],
        }
