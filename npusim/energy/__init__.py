"""Energy: action counts times a per-arch energy table, plus static power times time.

Kernels and the engine count actions (:class:`Actions`); an :class:`EnergyTable`, kept in
its own YAML file beside the arch (``npusim/archs/energy/<arch>.yaml``), says what each costs.

>>> from npusim.arch import load_arch
>>> t = load_energy_table(load_arch("edu"))
>>> e = energy_of(Actions(macs={"bf16": 1e9}, dram_read_bytes=1e6), t)
>>> sorted(e) == sorted(COMPONENTS)
True
"""
from .actions import Actions
from .cost import COMPONENTS, DELIVERY, OVERHEAD, dvfs_scale, energy_of, static_energy
from .table import EnergyTable, build_energy_table, load_energy_table, read_energy_table

__all__ = ["Actions", "EnergyTable", "load_energy_table", "read_energy_table",
           "build_energy_table", "energy_of", "static_energy", "dvfs_scale", "COMPONENTS",
           "OVERHEAD", "DELIVERY"]
