"""Joules from action counts: counts (:class:`~npusim.energy.actions.Actions`) times the
per-action energies of an :class:`~npusim.energy.table.EnergyTable`, and static power x time.

Every component is linear in the counts, so the energy of a sum of ops is the sum of their
energies, and the total is the sum of the components.
"""
from __future__ import annotations

from ..errors import ArchError
from ..ir import dtype as _dtype
from .actions import Actions
from .table import EnergyTable

COMPONENTS = ("mac", "vector", "sram", "shared", "dram", "noc", "link")


def _mac_energy(macs: dict, table: EnergyTable) -> float:
    total = 0.0
    for name, count in macs.items():
        if count == 0:
            continue
        try:
            key = _dtype(name).name
        except ValueError as exc:
            raise ArchError(f"{table.source}: mac: {exc}") from None
        if key not in table.mac:
            raise ArchError(
                f"{table.source}: mac: no energy for {key} MACs (the table has "
                f"{', '.join(table.mac)}); add '{key}: <energy> pJ' under mac: with its "
                f"source, or run {key} in a dtype the table has")
        total += count * table.mac[key]
    return total


def _optional(count: float, per: float | None, table: EnergyTable, field: str,
              what: str) -> float:
    """``count * per``; ``count`` bytes to a part the table marks absent is an error."""
    # A table field left null means the chip has no such part; traffic to it is a bug in
    # the caller's arch/table pairing, not something to price at zero.
    if count == 0:
        return 0.0
    if per is None:
        raise ArchError(f"{table.source}: {field}: is null (the chip has no {what}) but "
                        f"{count:g} bytes were sent to it; give {field} an energy or do "
                        f"not map traffic there")
    return count * per


def energy_of(actions: Actions, table: EnergyTable) -> dict[str, float]:
    """Joules by component for the actions of an op (or a sum of ops).

    Parameters
    ----------
    actions : Actions
        The counts.
    table : EnergyTable
        Per-action energies of the arch that ran them.

    Returns
    -------
    dict
        ``{"mac", "vector", "sram", "shared", "dram", "noc", "link"}`` -> joules. Static
        energy is separate (:func:`static_energy`): it depends on time, not on actions.

    Raises
    ------
    ArchError
        For MACs in a dtype the table lacks, or traffic to a part the table marks absent.

    Examples
    --------
    >>> from npusim.energy import read_energy_table
    >>> from npusim.energy.table import _shipped_energy_dir
    >>> t = read_energy_table(_shipped_energy_dir() / "edu.yaml")
    >>> e = energy_of(Actions(macs={"bf16": 1e9}), t)
    >>> round(e["mac"], 12)
    0.0015
    """
    shared_bytes = actions.shared_read_bytes + actions.shared_write_bytes
    shared = 0.0
    if shared_bytes:
        if table.shared_read is None or table.shared_write is None:
            _optional(shared_bytes, None, table, "shared", "shared SRAM")
        shared = (actions.shared_read_bytes * table.shared_read
                  + actions.shared_write_bytes * table.shared_write)
    return {
        "mac": _mac_energy(actions.macs, table),
        "vector": actions.vector_ops * table.vector_op,
        "sram": actions.sram_read_bytes * table.sram_read
        + actions.sram_write_bytes * table.sram_write,
        "shared": shared,
        "dram": 8.0 * (actions.dram_read_bytes * table.dram_read
                       + actions.dram_write_bytes * table.dram_write)
        + actions.dram_activations * table.dram_activation,
        "noc": 8.0 * _optional(actions.noc_bytes, table.noc, table, "noc",
                               "on-chip network"),
        "link": 8.0 * _optional(actions.link_bytes, table.link, table, "link",
                                "chip-to-chip link"),
    }


def static_energy(table: EnergyTable, seconds: float) -> float:
    """Joules of static (idle and leakage) power over ``seconds`` of the chip being on.

    >>> from npusim.energy import read_energy_table
    >>> from npusim.energy.table import _shipped_energy_dir
    >>> static_energy(read_energy_table(_shipped_energy_dir() / "edu.yaml"), 2.0)
    2.0
    """
    if seconds < 0:
        raise ValueError(f"static_energy: seconds must be >= 0, got {seconds!r}")
    return table.static * seconds
