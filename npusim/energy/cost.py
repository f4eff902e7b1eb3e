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
# The on-chip components a table's `dynamic_overhead` multiplies (DRAM and links are device
# figures, already whole); the excess is reported as its own component, OVERHEAD.
ON_CHIP = ("mac", "vector", "sram", "shared", "noc")
OVERHEAD = "overhead"
# On-chip transport of DRAM traffic (a table's `operand_delivery`), its own component.
DELIVERY = "delivery"


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
        ``{"mac", "vector", "sram", "shared", "dram", "noc", "link"}`` -> joules, and
        ``"overhead"`` (``(dynamic_overhead - 1)`` times the on-chip ones) when the table
        gives a ``dynamic_overhead``, ``"delivery"`` (DRAM bits times ``operand_delivery``)
        when it gives that. Static energy is separate (:func:`static_energy`): it
        depends on time, not on actions.

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
    out = {
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
    if table.dynamic_overhead is not None:
        # what a core pays beyond its arithmetic and arrays, in proportion to them
        out[OVERHEAD] = (table.dynamic_overhead - 1.0) * sum(out[k] for k in ON_CHIP)
    if table.operand_delivery is not None:
        out[DELIVERY] = 8.0 * (actions.dram_read_bytes + actions.dram_write_bytes) \
            * table.operand_delivery
    return out


def static_energy(table: EnergyTable, seconds: float) -> float:
    """Joules of the power the chip burns while on (its loaded floor where the table gives
    one, else the flat ``static``) over ``seconds``.

    >>> from npusim.energy import read_energy_table
    >>> from npusim.energy.table import _shipped_energy_dir
    >>> static_energy(read_energy_table(_shipped_energy_dir() / "edu.yaml"), 2.0)
    2.0
    """
    if seconds < 0:
        raise ValueError(f"static_energy: seconds must be >= 0, got {seconds!r}")
    return table.floor_w * seconds


def dvfs_scale(chip_w: float, budget_w: float, exponent: float = 0.0,
               min_voltage: float = 0.1, io_w: float = 0.0) -> tuple[float, float]:
    """Clock and energy factors ``(f/f0, E/E0)`` of work that would draw ``chip_w`` of on-chip
    dynamic power (and ``io_w`` in DRAM and links) at full clock, run at the highest clock
    that draws at most ``budget_w``.

    Dynamic power is energy per op times ops per second. Over a DVFS range the core supply
    is lowered with the clock (V/V0 = f/f0), and switching energy per op scales as
    (V/V0)^``exponent`` (2 for CV^2), so on-chip power scales as (f/f0)^(exponent + 1);
    below ``min_voltage`` the voltage stays there and only the clock drops. DRAM and link
    energy per bit does not depend on the core's voltage: their power only falls with the
    rate (f/f0). ``exponent`` 0 is a chip that stretches its work at constant energy.

    Parameters
    ----------
    chip_w, budget_w : float
        On-chip dynamic power at full clock, and the most all dynamic power may draw (the
        cap less the floor); ``budget_w`` > 0.
    exponent : float
        The energy table's ``dvfs_exponent`` (0 when absent).
    min_voltage : float
        The table's ``dvfs_min_voltage``, V/V0 in (0, 1].
    io_w : float
        DRAM and link dynamic power at full clock.

    Returns
    -------
    (float, float)
        ``(1.0, 1.0)`` when the work fits the budget; else the clock factor (< 1), by which
        its time divides, and the factor (<= 1) on its on-chip dynamic energy.

    Examples
    --------
    >>> dvfs_scale(100.0, 200.0)
    (1.0, 1.0)
    >>> dvfs_scale(400.0, 200.0)            # constant energy: twice the time
    (0.5, 1.0)
    >>> s, e = dvfs_scale(800.0, 100.0, 2.0)     # (f/f0)^3 = 1/8
    >>> round(s, 9), round(e, 9)
    (0.5, 0.25)
    >>> s, e = dvfs_scale(800.0, 100.0, 2.0, 0.8)   # at the floor: 800 x 0.64 x s = 100
    >>> round(s, 6), round(e, 6)
    (0.195312, 0.64)
    >>> s, e = dvfs_scale(300.0, 100.0, 2.0, io_w=100.0)   # (300 s^2 + 100) s = 100
    >>> round((300.0 * e + 100.0) * s, 9)
    100.0
    """
    total = chip_w + io_w
    if total <= budget_w:
        return 1.0, 1.0
    if exponent == 0.0:
        return budget_w / total, 1.0

    def energy(s: float) -> float:
        return max(s, min_voltage) ** exponent

    if io_w == 0.0:
        ratio = budget_w / chip_w
        s = ratio ** (1.0 / (exponent + 1.0))
        if s >= min_voltage:
            return s, energy(s)
        return ratio / energy(min_voltage), energy(min_voltage)
    # power (chip_w g(s) + io_w) s rises with s: bisect for the clock that meets the budget
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if (chip_w * energy(mid) + io_w) * mid <= budget_w:
            lo = mid
        else:
            hi = mid
    return lo, energy(lo)
