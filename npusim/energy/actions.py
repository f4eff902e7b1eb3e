"""Action counts: what an op did, before anyone says what it costs.

Kernels and the engine count actions; :mod:`npusim.energy` turns counts into joules with a
per-arch energy table (kept apart from the arch, as Accelergy keeps its ERT apart from the
architecture). Energy never hides inside a timing formula.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Actions:
    """Counts of the energy-bearing actions of one op (or a sum of ops).

    Attributes
    ----------
    macs : dict
        Multiply-accumulates by the dtype the engine ran them in (``{"bf16": 1.2e9}``).
    vector_ops : float
        fp32-equivalent element operations on vector units.
    sram_read_bytes, sram_write_bytes : float
        Core-local SRAM (RNGD's slice DM, a GPU SM's shared memory / L1).
    shared_read_bytes, shared_write_bytes : float
        Chip-shared SRAM (a GPU's L2); 0 on chips without one.
    dram_read_bytes, dram_write_bytes : float
        Bytes across the DRAM interface.
    dram_activations : float
        Row activations (each with its precharge).
    noc_bytes : float
        Bytes carried by the on-chip network between cores.
    link_bytes : float
        Bytes sent over chip-to-chip links.
    """

    macs: dict = field(default_factory=dict)
    vector_ops: float = 0.0
    sram_read_bytes: float = 0.0
    sram_write_bytes: float = 0.0
    shared_read_bytes: float = 0.0
    shared_write_bytes: float = 0.0
    dram_read_bytes: float = 0.0
    dram_write_bytes: float = 0.0
    dram_activations: float = 0.0
    noc_bytes: float = 0.0
    link_bytes: float = 0.0

    def __add__(self, other: "Actions") -> "Actions":
        macs = dict(self.macs)
        for k, v in other.macs.items():
            macs[k] = macs.get(k, 0.0) + v
        kw = {f.name: getattr(self, f.name) + getattr(other, f.name)
              for f in fields(self) if f.name != "macs"}
        return Actions(macs=macs, **kw)

    def scaled(self, factor: float) -> "Actions":
        return Actions(macs={k: v * factor for k, v in self.macs.items()},
                       **{f.name: getattr(self, f.name) * factor
                          for f in fields(self) if f.name != "macs"})
