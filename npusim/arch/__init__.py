"""Architecture descriptions: YAML files with units, validated into frozen dataclasses.

>>> from npusim.arch import load_arch
>>> load_arch("h100").peak_macs_per_s("bf16") * 2 / 1e12  # doctest: +ELLIPSIS
989.4...
"""
from .loader import list_archs, list_snn_archs, load_arch
from .model import Arch, Cores, Dma, Dram, Engine, FrozenMap, Link, Noc, Power, Vector

__all__ = ["load_arch", "list_archs", "list_snn_archs", "Arch", "Cores", "Dma", "Dram", "Engine", "FrozenMap",
           "Link", "Noc", "Power", "Vector"]
