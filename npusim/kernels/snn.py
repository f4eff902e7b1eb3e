"""Event-driven cost of spiking cores, timestep by timestep: spike routing and the step.

The model is the hardware-event model of ``snn.md`` sec. 2.2 (Loihi / SANA-FE style):

* **Events, counted per core and timestep.** A core's work in one timestep is a vector of
  event counts, one per term: ``SYNOP`` (synaptic operations: one incoming spike times its
  fan-out in this core), ``UPDATE_ACTIVE`` and ``UPDATE_IDLE`` (neuron updates of neurons with
  and without input; every mapped neuron pays one or the other every step, the idle floor),
  ``SPIKE_OUT`` (spikes the core sends), ``IN_TILE`` (spike deliveries that stay in the
  sender's tile), ``HOP_EW`` and ``HOP_NS`` (router hops east-west and north-south),
  ``NEURON_FIRE`` (neurons that fire),
  ``LEARN`` (STDP updates) and ``AXON_IN`` (messages a core receives, one per spiking neuron
  and destination core: SANA-FE's axon-in unit, 0 pJ but 16 ns each on Loihi).
  Counts are float64: the engine may pass expected (mean) counts, e.g. rate x fan-out.
* **Energy.** ``E_c(t) = sum_k counts[t, c, k] * e_cost[k]``; the kernel returns it summed over
  cores and steps, per term. **Static power is not in the kernel**: the engine adds
  ``P_static * sum(step_time)`` (it knows the chip count and the operating point).
* **Time.** A core's events are split into pipeline stages (``stage[k]``, an int per term,
  0 .. S-1): within a stage the events are done one after another, and the stages overlap, so
  ``busy_c(t) = max_s sum_{k: stage[k] = s} counts[t, c, k] * t_cost[k]``. All terms in stage 0
  is the plain serial sum; SANA-FE's ``simple`` timing model (its pipeline split at the soma
  buffer) is a front stage {``AXON_IN``, ``SYNOP``} and a back stage with the rest (the stage
  assignments are engine constants, :mod:`npusim.engine.snn`). The step ends when the
  slowest core has finished and the barrier has
  synchronised every core: ``t_step(t) = max_c busy_c(t) + barrier``; a throttled chip
  (TrueNorth's 1 kHz tick, Loihi run at 1 ms per step) waits for its tick:
  ``t_step(t) = max(max_c busy_c(t) + barrier, tick)`` (``tick = 0``: unthrottled). The
  barrier is one number per step that the engine computes from the tiles and chips in use
  (Loihi 1: 113-465 ns for 1-32 tiles, Davies 2018 Table 2; 14.3-16.2 us across 256-768
  chips, Frady 2020; both in ``snn.md`` table 1b).
* **All-in constants.** Some devices publish one energy for everything (TrueNorth's 26 pJ per
  synaptic event, Merolla 2014; Hala Point's 6.8 pJ/synop, derived in ``snn.md`` table 1b).
  The terms such a constant already covers have no cost of their own: the engine passes NaN
  (or a negative number) for them. A term whose energy or time is absent so must have a zero
  count in every step and core, else the kernel raises ``ValueError`` naming the term: hops or
  updates are never priced on top of an all-in constant (``snn.md`` sec. 5 item 1). Its entry
  of ``energy_by_term`` is NaN (absent, not a silent 0): sum the result with ``np.nansum``.
* **Routing.** :func:`route_xy` turns flows (source core, destination core, spikes per step)
  into the routing counts of the source cores: dimension-ordered XY routing on a 2-D mesh of
  tiles, first along x (east-west) then along y (north-south), so a flow makes ``|dx|``
  east-west and ``|dy|`` north-south hops; a flow between two cores of one tile makes no hop
  and one in-tile delivery per spike. Tile coordinates are global: the engine lays the chips
  out side by side in one mesh, so crossing a chip boundary is just more hops. For the
  multi-chip terms (inter-chip barrier, link energy) it also counts chip-to-chip hops, the
  Manhattan distance between the chips in the chip mesh. **The routing of a spike is charged
  to the core that sends it** (its hops' energy, and their time to its busy time), so the
  sender of heavy traffic shows up as the critical core; the synaptic operations it causes
  are the destination's. SANA-FE attributes differently: its 2024 ``sim.cpp``
  (``sim_estimate_network_costs``) tallies a message's hops on the destination tile, prices
  them at that tile's hop energies, and adds their latency to the message's network delay in
  its message scheduler rather than to a core's work. Totals over the chip are the same
  (with uniform hop costs); the split by core, and how hop time meets the critical path,
  differ: ours is the simpler, serial bound.

Not modelled: learning (STDP) events, congestion and link bandwidth (a hop costs the same
however busy its link), axon delays, and overlap of a core's work with the barrier.

Both kernels are ``@njit(cache=True)`` on plain arrays; their twins :func:`route_xy_ref` and
:func:`step_ref` are written with Python objects, the slow, obvious way (the route walked hop by
hop), and the tests demand exact agreement. Inputs are checked (``ValueError`` naming the
argument and the fix).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Indices of the terms: the last axis of ``counts`` and the entries of ``e_cost``/``t_cost``.
SYNOP = 0
"""Synaptic operations (a spike arriving at a core, times its fan-out there)."""
UPDATE_ACTIVE = 1
"""Neuron updates of neurons that received input this step."""
UPDATE_IDLE = 2
"""Neuron updates of neurons with no input this step (the idle floor)."""
SPIKE_OUT = 3
"""Spikes the core sends (its axon-out events)."""
IN_TILE = 4
"""Spike deliveries within the sender's tile (no router hop)."""
HOP_EW = 5
"""Router hops east-west (along x)."""
HOP_NS = 6
"""Router hops north-south (along y)."""
NEURON_FIRE = 7
"""Neurons that fire this step (the soma's spike generation, apart from the axon-out message:
SANA-FE's Loihi calibration prices the two separately)."""
LEARN = 8
"""Synaptic learning updates (STDP)."""
AXON_IN = 9
"""Messages the core receives (axon-in events: one per spiking neuron and destination core)."""
N_TERMS = 10
TERM_NAMES = ("SYNOP", "UPDATE_ACTIVE", "UPDATE_IDLE", "SPIKE_OUT", "IN_TILE", "HOP_EW",
              "HOP_NS", "NEURON_FIRE", "LEARN", "AXON_IN")
"""Names of the terms, by index (they appear in error messages)."""


# ----------------------------------------------------------------------------- routing
@njit(cache=True)
def _check_route(src, dst, count, core_x, core_y, core_tile, core_chip, chip_x, chip_y):
    n_cores = core_x.shape[0]
    n_chips = chip_x.shape[0]
    if src.shape[0] != dst.shape[0] or src.shape[0] != count.shape[0]:
        raise ValueError("SNN route_xy: src, dst and count must have one entry per flow")
    if (core_y.shape[0] != n_cores or core_tile.shape[0] != n_cores
            or core_chip.shape[0] != n_cores):
        raise ValueError("SNN route_xy: core_x, core_y, core_tile and core_chip must have "
                         "one entry per core")
    if chip_y.shape[0] != n_chips:
        raise ValueError("SNN route_xy: chip_x and chip_y must have one entry per chip")
    for i in range(src.shape[0]):
        if src[i] < 0 or src[i] >= n_cores or dst[i] < 0 or dst[i] >= n_cores:
            raise ValueError("SNN route_xy: flow " + str(i) + " has a src or dst that is not "
                             "a core id (0 to " + str(n_cores - 1) + ")")
        if not (np.isfinite(count[i]) and count[i] >= 0.0):
            raise ValueError("SNN route_xy: count of flow " + str(i)
                             + " must be finite and >= 0 (spikes per timestep)")
    for c in range(n_cores):
        if core_chip[c] < 0 or core_chip[c] >= n_chips:
            raise ValueError("SNN route_xy: core_chip of core " + str(c)
                             + " is not a chip id (an index into chip_x, chip_y)")


@njit(cache=True)
def route_xy(src, dst, count, core_x, core_y, core_tile, core_chip, chip_x, chip_y):
    """Route spike flows over a 2-D mesh (XY order); the counts of each source core.

    Parameters
    ----------
    src, dst : ndarray of int64, shape (flows,)
        Sending and receiving core of each flow.
    count : ndarray of float64, shape (flows,)
        Spikes per timestep of each flow (a spike sent to ``k`` cores is ``k`` flows).
    core_x, core_y : ndarray of int64, shape (cores,)
        Global mesh coordinates of each core's tile (chips laid out side by side).
    core_tile : ndarray of int64, shape (cores,)
        Tile of each core; tile ids are global (unique across chips).
    core_chip : ndarray of int64, shape (cores,)
        Chip of each core, an index into ``chip_x`` and ``chip_y``.
    chip_x, chip_y : ndarray of int64, shape (chips,)
        Position of each chip in the mesh of chips.

    Returns
    -------
    hops_ew, hops_ns, in_tile, chip_hops : ndarray of float64, shape (cores,)
        Per **source** core (the sender pays for its spikes' routing): east-west hops ``count * |dx|``, north-south hops
        ``count * |dy|``, in-tile deliveries ``count`` (flows that stay in the tile) and
        chip-to-chip hops ``count * (|dcx| + |dcy|)``, summed over the flows it sends. A flow
        within one tile makes no hop. Chip hops are on top of (not instead of) the mesh hops:
        they are the share of them that crosses chip boundaries, for the multi-chip terms.

    Examples
    --------
    Four cores, one per tile of a 2 x 2 mesh on one chip. Core 0 at (0, 0) sends 2 spikes per
    step to core 3 at (1, 1): 2 x 1 east-west and 2 x 1 north-south hops, charged to core 0.

    >>> xy = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    >>> one = np.zeros(4, dtype=np.int64)
    >>> ew, ns, tile, chip = route_xy(np.array([0]), np.array([3]), np.array([2.0]),
    ...                               xy[0], xy[1], np.arange(4), one, np.zeros(1, np.int64),
    ...                               np.zeros(1, np.int64))
    >>> ew.tolist(), ns.tolist(), tile.tolist(), chip.tolist()
    ([2.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0])
    """
    _check_route(src, dst, count, core_x, core_y, core_tile, core_chip, chip_x, chip_y)
    n_cores = core_x.shape[0]
    hops_ew = np.zeros(n_cores)
    hops_ns = np.zeros(n_cores)
    in_tile = np.zeros(n_cores)
    chip_hops = np.zeros(n_cores)
    for i in range(src.shape[0]):
        a = src[i]
        b = dst[i]
        n = count[i]
        if core_tile[a] == core_tile[b]:
            in_tile[a] += n
            continue
        hops_ew[a] += n * float(abs(core_x[b] - core_x[a]))
        hops_ns[a] += n * float(abs(core_y[b] - core_y[a]))
        ca = core_chip[a]
        cb = core_chip[b]
        chip_hops[a] += n * float(abs(chip_x[cb] - chip_x[ca]) + abs(chip_y[cb] - chip_y[ca]))
    return hops_ew, hops_ns, in_tile, chip_hops


# ----------------------------------------------------------------------------- the step
@njit(cache=True)
def _check_step(counts, e_cost, t_cost, stage, barrier, tick):
    if counts.ndim != 3 or counts.shape[2] != N_TERMS:
        raise ValueError("SNN step: counts must be [timesteps, cores, N_TERMS] (N_TERMS = 10)")
    if e_cost.shape[0] != N_TERMS or t_cost.shape[0] != N_TERMS:
        raise ValueError("SNN step: e_cost and t_cost must have N_TERMS = 10 entries")
    if stage.shape[0] != N_TERMS:
        raise ValueError("SNN step: stage must have N_TERMS = 10 entries (a pipeline stage "
                         "per term; all 0: serial)")
    for k in range(N_TERMS):
        if stage[k] < 0 or stage[k] >= N_TERMS:
            raise ValueError("SNN step: stage of term " + TERM_NAMES[k] + " must be 0 .. "
                             "N_TERMS - 1 (a pipeline stage index)")
    if not (np.isfinite(barrier) and barrier >= 0.0):
        raise ValueError("SNN step: barrier must be finite and >= 0 seconds")
    if not (np.isfinite(tick) and tick >= 0.0):
        raise ValueError("SNN step: tick must be finite and >= 0 seconds (0: unthrottled)")
    for k in range(N_TERMS):
        if e_cost[k] == np.inf or t_cost[k] == np.inf:
            raise ValueError("SNN step: the cost of term " + TERM_NAMES[k] + " is infinite; "
                             "give a finite cost, or NaN if an all-in constant covers it")
    for t in range(counts.shape[0]):
        for c in range(counts.shape[1]):
            for k in range(N_TERMS):
                n = counts[t, c, k]
                if not (np.isfinite(n) and n >= 0.0):
                    raise ValueError("SNN step: counts of term " + TERM_NAMES[k] + " must be "
                                     "finite and >= 0 (step " + str(t) + ", core "
                                     + str(c) + ")")
                if n > 0.0 and not (e_cost[k] >= 0.0 and t_cost[k] >= 0.0):
                    raise ValueError("SNN step: term " + TERM_NAMES[k] + " has events (step "
                                     + str(t) + ", core " + str(c) + ") but no cost of its "
                                     "own in e_cost or t_cost (an all-in constant covers "
                                     "it): never price it on top; count it as 0 or give "
                                     "it a per-term cost")


@njit(cache=True)
def step(counts, e_cost, t_cost, stage, barrier, tick):
    """Energy and time of spiking cores over one or more timesteps.

    Parameters
    ----------
    counts : ndarray of float64, shape (T, cores, N_TERMS)
        Events per timestep, core and term (``SYNOP`` ... ``HOP_NS``), finite and >= 0.
    e_cost : ndarray of float64, shape (N_TERMS,)
        Joules per event. NaN or negative: the term has no energy of its own (an all-in
        constant covers it); its counts must then all be 0.
    t_cost : ndarray of float64, shape (N_TERMS,)
        Seconds per event; NaN or negative as for ``e_cost``.
    stage : ndarray of int64, shape (N_TERMS,)
        Pipeline stage of each term (0 .. N_TERMS - 1): a core's busy time is the max over
        stages of its per-stage sums of counts x t_cost (all 0: one serial sum).
    barrier : float
        Seconds of the barrier that ends every timestep (from the tiles and chips in use).
    tick : float
        Seconds per timestep of a throttled chip, or 0 for unthrottled.

    Returns
    -------
    energy_by_term : ndarray of float64, shape (N_TERMS,)
        Joules per term, summed over steps and cores; NaN for a term whose energy or time
        is absent (NaN or negative) in ``e_cost`` or ``t_cost``. Static power is not included (the engine adds ``P_static * sum(step_time)``).
    core_busy : ndarray of float64, shape (T, cores)
        Seconds each core works in each step: its slowest pipeline stage.
    step_time : ndarray of float64, shape (T,)
        ``max(max over cores of core_busy + barrier, tick)``.
    critical_core : ndarray of int64, shape (T,)
        The busiest core of each step (the lowest index on ties; -1 with no cores).

    Raises
    ------
    ValueError
        A term without a cost of its own has a non-zero count (named in the message), or an
        input is malformed.

    Examples
    --------
    A full Loihi 1 chip at rest: 128 cores x 1,024 idle neuron updates of 52 pJ, 5.3 ns each
    (Davies 2018 Table 2), 32 tiles' barrier 465 ns: 6.8 uJ and 5.9 us per step.

    >>> counts = np.zeros((1, 128, N_TERMS)); counts[:, :, UPDATE_IDLE] = 1024
    >>> e = np.zeros(N_TERMS); e[UPDATE_IDLE] = 52e-12
    >>> t = np.zeros(N_TERMS); t[UPDATE_IDLE] = 5.3e-9
    >>> serial = np.zeros(N_TERMS, dtype=np.int64)
    >>> energy, busy, t_step, critical = step(counts, e, t, serial, 465e-9, 0.0)
    >>> round(float(energy.sum()) * 1e6, 4), round(float(t_step[0]) * 1e6, 4), critical.tolist()
    (6.8157, 5.8922, [0])
    """
    _check_step(counts, e_cost, t_cost, stage, barrier, tick)
    n_steps = counts.shape[0]
    n_cores = counts.shape[1]
    priced = np.empty(N_TERMS, dtype=np.bool_)
    for k in range(N_TERMS):
        priced[k] = e_cost[k] >= 0.0 and t_cost[k] >= 0.0
    energy = np.zeros(N_TERMS)
    busy = np.zeros((n_steps, n_cores))
    step_time = np.empty(n_steps)
    critical = np.full(n_steps, -1, dtype=np.int64)
    stage_sum = np.zeros(N_TERMS)
    for t in range(n_steps):
        worst = 0.0
        for c in range(n_cores):
            stage_sum[:] = 0.0
            for k in range(N_TERMS):
                if priced[k]:
                    n = counts[t, c, k]
                    energy[k] += n * e_cost[k]
                    stage_sum[stage[k]] += n * t_cost[k]
            b = 0.0
            for s in range(N_TERMS):
                b = max(b, stage_sum[s])
            busy[t, c] = b
            if critical[t] < 0 or b > worst:
                worst = b
                critical[t] = c
        step_time[t] = max(worst + barrier, tick)
    for k in range(N_TERMS):
        if not priced[k]:
            energy[k] = np.nan
    return energy, busy, step_time, critical


# ----------------------------------------------------------------------------- the twins
class _Core:
    """A core: where its tile sits in the mesh, which tile and which chip."""

    def __init__(self, x: int, y: int, tile: int, chip: int) -> None:
        self.x, self.y, self.tile, self.chip = x, y, tile, chip


def _walk_xy(x0: int, y0: int, x1: int, y1: int) -> tuple[int, int]:
    """Walk a route hop by hop, x first, then y; the east-west and north-south hops."""
    ew = ns = 0
    while x0 != x1:
        x0 += 1 if x1 > x0 else -1
        ew += 1
    while y0 != y1:
        y0 += 1 if y1 > y0 else -1
        ns += 1
    return ew, ns


def route_xy_ref(src, dst, count, core_x, core_y, core_tile, core_chip, chip_x, chip_y):
    """Pure-Python twin of :func:`route_xy`: same arguments, same results."""
    getattr(_check_route, "py_func", _check_route)(
        *(np.asarray(a) for a in (src, dst, count, core_x, core_y, core_tile, core_chip,
                                  chip_x, chip_y)))
    cores = [_Core(int(x), int(y), int(tile), int(chip))
             for x, y, tile, chip in zip(core_x, core_y, core_tile, core_chip)]
    chips = [(int(x), int(y)) for x, y in zip(chip_x, chip_y)]
    sent = {name: [0.0] * len(cores) for name in ("ew", "ns", "in_tile", "chip")}
    for a, b, spikes in zip(src, dst, count):
        sender, receiver, spikes = cores[int(a)], cores[int(b)], float(spikes)
        if sender.tile == receiver.tile:
            sent["in_tile"][int(a)] += spikes
            continue
        ew, ns = _walk_xy(sender.x, sender.y, receiver.x, receiver.y)
        dcx, dcy = _walk_xy(*chips[sender.chip], *chips[receiver.chip])
        sent["ew"][int(a)] += spikes * ew
        sent["ns"][int(a)] += spikes * ns
        sent["chip"][int(a)] += spikes * (dcx + dcy)
    return tuple(np.array(sent[name], dtype=np.float64)
                 for name in ("ew", "ns", "in_tile", "chip"))


class _Term:
    """One kind of event and what it costs; ``None`` when an all-in constant covers it."""

    def __init__(self, name: str, joules: float, seconds: float) -> None:
        self.name = name
        covered = not (joules >= 0.0 and seconds >= 0.0)      # NaN or negative
        self.joules = None if covered else joules
        self.seconds = None if covered else seconds


def step_ref(counts, e_cost, t_cost, stage, barrier, tick):
    """Pure-Python twin of :func:`step`: same arguments, same results."""
    counts, e_cost, t_cost = (np.asarray(a, dtype=np.float64) for a in (counts, e_cost, t_cost))
    stage = np.asarray(stage, dtype=np.int64)
    getattr(_check_step, "py_func", _check_step)(counts, e_cost, t_cost, stage, float(barrier),
                                                  float(tick))
    terms = [_Term(TERM_NAMES[k], float(e_cost[k]), float(t_cost[k])) for k in range(N_TERMS)]
    energy = [0.0] * N_TERMS
    busy_rows, step_time, critical = [], [], []
    for events_now in counts:                          # one timestep
        busy_now = []
        for events in events_now:                      # one core: each stage's events in turn
            seconds = {}                               # stage -> its serial time
            for k, term in enumerate(terms):
                if term.joules is None:
                    continue
                energy[k] += float(events[k]) * term.joules
                s = int(stage[k])
                seconds[s] = seconds.get(s, 0.0) + float(events[k]) * term.seconds
            busy_now.append(max(seconds.values(), default=0.0))   # the stages overlap
        slowest = max(busy_now, default=0.0)
        busy_rows.append(busy_now)
        step_time.append(max(slowest + float(barrier), float(tick)))
        critical.append(busy_now.index(slowest) if busy_now else -1)
    for k, term in enumerate(terms):
        if term.joules is None:
            energy[k] = float("nan")
    return (np.array(energy, dtype=np.float64),
            np.array(busy_rows, dtype=np.float64).reshape(counts.shape[0], counts.shape[1]),
            np.array(step_time, dtype=np.float64), np.array(critical, dtype=np.int64))
