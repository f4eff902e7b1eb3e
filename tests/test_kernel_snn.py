"""Spiking-core kernels: routing and the timestep, by hand from snn.md sec. 2.2, against their
twins, and properties.

Costs are Loihi 1's, Davies 2018 Table 2 (pre-silicon SDF/SPICE at 0.75 V, ``snn.md`` table 1b):
synaptic op 23.6 pJ / 3.5 ns, neuron update active 81 pJ / 8.4 ns and inactive 52 pJ / 5.3 ns,
spike within a tile 1.7 pJ / 2.1 ns, hop east-west 3.0 pJ / 4.1 ns, north-south 4.0 pJ /
6.5 ns, barrier 113-465 ns for 1-32 tiles. Every test also runs with NUMBA_DISABLE_JIT=1, so the
cases stay small.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.kernels import snn as ks

PJ, NS = 1e-12, 1e-9

# Davies 2018 Table 2 (Loihi 1). SPIKE_OUT carries the "within tile" 1.7 pJ / 2.1 ns: the worked
# example of snn.md sec. 2.2 charges it once per spike sent (N_spike x E_in_tile), whether or
# not the spike then leaves the tile. IN_TILE, priced the same, is what route_xy counts for
# deliveries that stay in the tile.
# Table 2 gives no separate firing cost (priced 0 here: these cases count no firing) and
# 120 pJ / 6.1 ns per STDP update.
# Table 2 has no axon-in cost either (priced 0: only the two-stage case counts it).
LOIHI_E = np.array([23.6, 81.0, 52.0, 1.7, 1.7, 3.0, 4.0, 0.0, 120.0, 0.0]) * PJ
LOIHI_T = np.array([3.5, 8.4, 5.3, 2.1, 2.1, 4.1, 6.5, 0.0, 6.1, 0.0]) * NS
assert ks.TERM_NAMES.index("SPIKE_OUT") == ks.SPIKE_OUT and ks.N_TERMS == 10
assert ks.TERM_NAMES.index("LEARN") == ks.LEARN
assert ks.TERM_NAMES.index("AXON_IN") == ks.AXON_IN
SERIAL = np.zeros(ks.N_TERMS, dtype=np.int64)            # every term in one stage


def both_route(*args):
    """route_xy's four arrays, checked equal to the twin's."""
    args = [np.asarray(a, dtype=np.float64 if i == 2 else np.int64) for i, a in enumerate(args)]
    got = ks.route_xy(*args)
    for a, b in zip(got, ks.route_xy_ref(*args)):
        np.testing.assert_array_equal(a, b)
    return got


def both_step(counts, e, t, barrier=0.0, tick=0.0, stage=SERIAL):
    """step's four results, checked equal to the twin's (NaN where a term is absent)."""
    got = ks.step(counts, e, t, stage, barrier, tick)
    for a, b in zip(got, ks.step_ref(counts, e, t, stage, barrier, tick)):
        np.testing.assert_array_equal(a, b)
    return got


def mesh(width, height, cores_per_tile=1, chips=((0, 0),)):
    """Core arrays of chips laid side by side, each ``width x height`` tiles, x-major.

    Chip ``(cx, cy)`` occupies global tile coordinates ``cx * width ...``, ``cy * height ...``.
    """
    xs, ys, tiles, chip_of = [], [], [], []
    tile = 0
    for k, (cx, cy) in enumerate(chips):
        for y in range(height):
            for x in range(width):
                for _ in range(cores_per_tile):
                    xs.append(cx * width + x)
                    ys.append(cy * height + y)
                    tiles.append(tile)
                    chip_of.append(k)
                tile += 1
    cx = [c[0] for c in chips]
    cy = [c[1] for c in chips]
    return xs, ys, tiles, chip_of, cx, cy


# ---------------------------------------------------------------- hand-computed (snn.md 2.2)
@pytest.mark.parametrize("direction, hop_pj, total_pj", [("ew", 3.0, 6052.3),
                                                         ("ns", 4.0, 6055.3)])
def test_one_spike_fan_out_256_three_hops(direction, hop_pj, total_pj):
    # A 4 x 4 mesh, one core per tile. Core 0 at (0, 0) sends one spike to a core 3 tiles
    # away: (3, 0) east (core 3) or (0, 3) south (core 12). route_xy: 3 hops, charged to core 0.
    # Counts of the step: core 0 SPIKE_OUT 1 (priced 1.7 pJ, the worked example's per-spike
    # "within tile" term) + its 3 hops; the destination 256 SYNOP (fan-out 256 there).
    # 256 x 23.6 + 1.7 + 3 x 3.0 = 6041.6 + 1.7 + 9.0 = 6052.3 pJ;
    # with north-south hops 6041.6 + 1.7 + 3 x 4.0 = 6055.3 pJ. Both ~6.05 nJ.
    dst = 3 if direction == "ew" else 12
    ew, ns, in_tile, chip = both_route([0], [dst], [1.0], *mesh(4, 4))
    assert (ew[0], ns[0]) == ((3.0, 0.0) if direction == "ew" else (0.0, 3.0))
    assert in_tile.sum() == 0 and chip.sum() == 0 and ew[1:].sum() == ns[1:].sum() == 0
    counts = np.zeros((1, 16, ks.N_TERMS))
    counts[0, :, ks.HOP_EW], counts[0, :, ks.HOP_NS] = ew, ns
    counts[0, :, ks.IN_TILE] = in_tile
    counts[0, 0, ks.SPIKE_OUT] = 1
    counts[0, dst, ks.SYNOP] = 256
    energy, busy, t_step, critical = both_step(counts, LOIHI_E, LOIHI_T)
    assert energy.sum() == pytest.approx(total_pj * PJ, rel=1e-12)
    assert round(energy.sum() / 1e-9, 2) in (6.05, 6.06)
    routing = energy[[ks.SPIKE_OUT, ks.IN_TILE, ks.HOP_EW, ks.HOP_NS]].sum() / energy.sum()
    # (1.7 + 9) / 6052.3 = 0.177 %; (1.7 + 12) / 6055.3 = 0.226 %: "routing ~0.2 %".
    assert routing == pytest.approx((1.7 + 3 * hop_pj) / total_pj, rel=1e-9)
    assert round(routing * 100, 1) == 0.2
    # Time: the destination's 256 x 3.5 = 896 ns beats the sender's 2.1 + 3 x 4.1 = 14.4 ns
    # (or 2.1 + 3 x 6.5 = 21.6 ns north-south).
    assert busy[0, 0] == pytest.approx((2.1 + 3 * (4.1 if direction == "ew" else 6.5)) * NS)
    assert critical.tolist() == [dst] and t_step[0] == pytest.approx(896 * NS, rel=1e-12)


def loihi_chip(per_core_active=0, per_core_idle=1024, steps=1):
    counts = np.zeros((steps, 128, ks.N_TERMS))
    counts[:, :, ks.UPDATE_ACTIVE] = per_core_active
    counts[:, :, ks.UPDATE_IDLE] = per_core_idle
    return counts


def test_idle_floor_of_a_full_loihi_chip():
    # 128 cores x 1,024 neurons = 131,072 idle updates x 52 pJ = 6.815744 uJ per step; all
    # active at 81 pJ: 10.616832 uJ. Time: 1,024 x 5.3 ns = 5.4272 us per core (every core
    # ties: the critical core is core 0) + the 32-tile barrier 465 ns = 5.8922 us; active
    # 1,024 x 8.4 = 8.6016 us + 0.465 = 9.0666 us. Three steps are three times the energy.
    energy, busy, t_step, critical = both_step(loihi_chip(steps=3), LOIHI_E, LOIHI_T, 465 * NS)
    assert energy[ks.UPDATE_IDLE] == pytest.approx(3 * 131_072 * 52 * PJ, rel=1e-12)
    assert energy.sum() / 3 == pytest.approx(6.815744e-6, rel=1e-12)
    assert np.allclose(busy, 1024 * 5.3 * NS, rtol=1e-12, atol=0)
    assert np.allclose(t_step, 5.8922e-6, rtol=1e-12, atol=0) and critical.tolist() == [0] * 3
    energy, busy, t_step, _ = both_step(loihi_chip(1024, 0), LOIHI_E, LOIHI_T, 465 * NS)
    assert energy.sum() == pytest.approx(10.616832e-6, rel=1e-12)
    assert t_step[0] == pytest.approx(9.0666e-6, rel=1e-12)


def test_step_time_is_the_slowest_core_plus_barrier_or_the_tick():
    # Three cores, two steps. Step 0: core 0 10 synops (35 ns), core 1 2 active updates +
    # 1 spike out (16.8 + 2.1 = 18.9 ns), core 2 5 EW + 2 NS hops (20.5 + 13 = 33.5 ns):
    # core 0 is critical, 35 + 113 (1 tile) = 148 ns. Step 1: cores 1 and 2 make 4 NS hops
    # each (26 ns), core 0 nothing: a tie, the lowest index (1) is critical; 26 + 113 = 139 ns.
    # Throttled to 1 us (Loihi's 1 ms, scaled): both steps take the tick.
    counts = np.zeros((2, 3, ks.N_TERMS))
    counts[0, 0, ks.SYNOP] = 10
    counts[0, 1, ks.UPDATE_ACTIVE], counts[0, 1, ks.SPIKE_OUT] = 2, 1
    counts[0, 2, ks.HOP_EW], counts[0, 2, ks.HOP_NS] = 5, 2
    counts[1, 1, ks.HOP_NS] = counts[1, 2, ks.HOP_NS] = 4
    energy, busy, t_step, critical = both_step(counts, LOIHI_E, LOIHI_T, 113 * NS)
    assert busy[0] == pytest.approx(np.array([35, 18.9, 33.5]) * NS, rel=1e-12)
    assert busy[1] == pytest.approx(np.array([0, 26, 26]) * NS, rel=1e-12)
    assert critical.tolist() == [0, 1]
    assert t_step == pytest.approx(np.array([148, 139]) * NS, rel=1e-12)
    # 10 x 23.6 + 2 x 81 + 1.7 + 5 x 3 + 2 x 4 + 8 x 4 = 236 + 162 + 1.7 + 15 + 8 + 32 pJ
    assert energy.sum() == pytest.approx(454.7 * PJ, rel=1e-12)
    _, _, t_tick, _ = both_step(counts, LOIHI_E, LOIHI_T, 113 * NS, 1000 * NS)
    assert t_tick.tolist() == [1000 * NS, 1000 * NS]
    # A tick shorter than the work does not shorten the step.
    _, _, t_short, _ = both_step(counts, LOIHI_E, LOIHI_T, 113 * NS, 140 * NS)
    assert t_short == pytest.approx(np.array([148, 140]) * NS, rel=1e-12)


def test_two_stage_pipeline_takes_the_slower_stage():
    # SANA-FE's 'simple' timing on its Loihi costs (sanafe 2.2.9 loihi.yaml): front stage
    # {AXON_IN 16 ns, SYNOP 3.8 ns}, back stage {UPDATE_IDLE 6.0 ns (access), UPDATE_ACTIVE
    # 9.7 ns (access + update 3.7), NEURON_FIRE 30 ns, SPIKE_OUT 5.1 ns}; hops in a router
    # stage of their own. Two cores, one step:
    # core 0: 2 messages in, 6 synops (front 2 x 16 + 6 x 3.8 = 54.8 ns) and 3 idle neurons
    #   (back 18 ns): 54.8 ns; serially it would be 72.8 ns.
    # core 1: 1 message in, 1 synop (front 19.8 ns); 3 active neurons, 1 fires, sends 2
    #   messages (back 29.1 + 30 + 10.2 = 69.3 ns), 2 E-W hops (router 8.2 ns): 69.3 ns.
    # Step: 69.3 ns + 600 ns barrier. Energy does not depend on the stages.
    e = np.zeros(ks.N_TERMS)
    t = np.zeros(ks.N_TERMS)
    t[[ks.AXON_IN, ks.SYNOP, ks.UPDATE_IDLE, ks.UPDATE_ACTIVE, ks.NEURON_FIRE, ks.SPIKE_OUT,
       ks.HOP_EW]] = np.array([16, 3.8, 6.0, 9.7, 30, 5.1, 4.1]) * NS
    e[ks.SYNOP], e[ks.UPDATE_IDLE], e[ks.SPIKE_OUT] = 35.5 * PJ, 51.2 * PJ, 111 * PJ
    stage = np.ones(ks.N_TERMS, dtype=np.int64)
    stage[[ks.AXON_IN, ks.SYNOP]] = 0
    stage[[ks.IN_TILE, ks.HOP_EW, ks.HOP_NS]] = 2
    counts = np.zeros((1, 2, ks.N_TERMS))
    counts[0, 0, [ks.AXON_IN, ks.SYNOP, ks.UPDATE_IDLE]] = 2, 6, 3
    counts[0, 1, [ks.AXON_IN, ks.SYNOP, ks.UPDATE_ACTIVE, ks.NEURON_FIRE, ks.SPIKE_OUT,
                  ks.HOP_EW]] = 1, 1, 3, 1, 2, 2
    energy, busy, t_step, critical = both_step(counts, e, t, 600 * NS, stage=stage)
    assert busy[0] == pytest.approx(np.array([54.8, 69.3]) * NS, rel=1e-12)
    assert critical.tolist() == [1] and t_step[0] == pytest.approx(669.3 * NS, rel=1e-12)
    _, serial, _, _ = both_step(counts, e, t, 600 * NS)
    assert serial[0] == pytest.approx(np.array([72.8, 97.3]) * NS, rel=1e-12)
    e_serial = both_step(counts, e, t, 600 * NS)[0]
    np.testing.assert_array_equal(energy, e_serial)
    assert energy.sum() == pytest.approx((7 * 35.5 + 3 * 51.2 + 2 * 111) * PJ, rel=1e-12)


def test_route_xy_on_a_2x2_mesh_by_hand():
    # Tiles (0,0) (1,0) (0,1) (1,1), two cores each: cores 0,1 | 2,3 | 4,5 | 6,7.
    # Flows: 0->7 2 spikes: |dx| 1, |dy| 1 -> core 0 EW 2, NS 2.
    #        6->1 0.5:      dx -1, dy -1   -> core 6 EW 0.5, NS 0.5 (distance, not direction).
    #        2->4 3:        (1,0)->(0,1)   -> core 2 EW 3, NS 3.
    #        2->3 4:        same tile       -> core 2 in-tile 4, no hop.
    #        0->0 1:        itself          -> core 0 in-tile 1.
    #        0->2 1:        one hop east    -> core 0 EW 2 + 1 = 3.
    xs, ys, tiles, chip, cx, cy = mesh(2, 2, cores_per_tile=2)
    assert (xs, ys) == ([0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1])
    ew, ns, in_tile, chips = both_route([0, 6, 2, 2, 0, 0], [7, 1, 4, 3, 0, 2],
                                        [2, 0.5, 3, 4, 1, 1], xs, ys, tiles, chip, cx, cy)
    assert ew.tolist() == [3, 0, 3, 0, 0, 0, 0.5, 0]
    assert ns.tolist() == [2, 0, 3, 0, 0, 0, 0.5, 0]
    assert in_tile.tolist() == [1, 0, 4, 0, 0, 0, 0, 0]
    assert chips.tolist() == [0] * 8


def test_route_xy_across_chips():
    # Three 2 x 2 chips: chip 0 at (0,0), chip 1 at (1,0) (global x 2-3), chip 2 at (1,1)
    # (global x 2-3, y 2-3). One core per tile: chip 0 cores 0-3, chip 1 4-7, chip 2 8-11.
    # Core 0 (0,0) -> core 7 (3,1): EW 3, NS 1, chip hops 1 (x2 spikes: 6, 2, 2).
    # Core 1 (1,0) -> core 8 (2,2): EW 1, NS 2, chip hops |1-0| + |1-0| = 2.
    # Core 5 (3,0) -> core 4 (2,0): EW 1, same chip: chip hops 0.
    # Core 9 (3,2) -> core 9 itself: in-tile 1.
    xs, ys, tiles, chip, cx, cy = mesh(2, 2, chips=((0, 0), (1, 0), (1, 1)))
    assert (xs[7], ys[7], xs[8], ys[8]) == (3, 1, 2, 2)
    ew, ns, in_tile, chips = both_route([0, 1, 5, 9], [7, 8, 4, 9], [2, 1, 1, 1],
                                        xs, ys, tiles, chip, cx, cy)
    assert ew.tolist() == [6, 1, 0, 0, 0, 1] + [0] * 6
    assert ns.tolist() == [2, 2] + [0] * 10
    assert chips.tolist() == [2, 2] + [0] * 10
    assert in_tile.tolist() == [0] * 9 + [1, 0, 0]


# ---------------------------------------------------------------- all-in constants
@pytest.mark.parametrize("term", ["HOP_EW", "UPDATE_IDLE", "IN_TILE"])
def test_no_term_priced_on_top_of_an_all_in_constant(term):
    # TrueNorth: 26 pJ per synaptic event, all-in (Merolla 2014); the other terms have no
    # energy of their own (NaN). Synops alone are priced; a hop or an update is refused.
    e = np.full(ks.N_TERMS, np.nan)
    e[ks.SYNOP] = 26 * PJ
    t = np.zeros(ks.N_TERMS)
    counts = np.zeros((2, 4, ks.N_TERMS))
    counts[:, :, ks.SYNOP] = 128
    energy, _, t_step, _ = both_step(counts, e, t, 0.0, 1e-3)
    assert energy[ks.SYNOP] == pytest.approx(2 * 4 * 128 * 26 * PJ, rel=1e-12)
    assert np.isnan(np.delete(energy, ks.SYNOP)).all()          # absent, not 0
    assert np.nansum(energy) == energy[ks.SYNOP] and t_step.tolist() == [1e-3, 1e-3]
    counts[1, 2, ks.TERM_NAMES.index(term)] = 1
    for fn in (ks.step, ks.step_ref):
        with pytest.raises(ValueError, match=f"term {term} has events .*all-in"):
            fn(counts, e, t, SERIAL, 0.0, 1e-3)
    # A negative cost means the same; so does a missing time.
    e2, t2 = LOIHI_E.copy(), LOIHI_T.copy()
    e2[ks.HOP_NS] = -1.0
    t2[ks.SYNOP] = np.nan
    c2 = np.zeros((1, 1, ks.N_TERMS))
    c2[0, 0, ks.HOP_NS] = 2
    with pytest.raises(ValueError, match="term HOP_NS"):
        ks.step(c2, e2, LOIHI_T, SERIAL, 0.0, 0.0)
    c2[0, 0, ks.HOP_NS], c2[0, 0, ks.SYNOP] = 0, 1
    with pytest.raises(ValueError, match="term SYNOP"):
        ks.step_ref(c2, LOIHI_E, t2, SERIAL, 0.0, 0.0)


@pytest.mark.parametrize("fn", [ks.step, ks.step_ref])
@pytest.mark.parametrize("bad", ["negative count", "nan count", "shape", "barrier", "tick",
                                 "inf cost", "stage", "stage length"])
def test_step_refuses_nonsense(fn, bad):
    counts, e, t, barrier, tick = np.zeros((1, 2, ks.N_TERMS)), LOIHI_E.copy(), LOIHI_T, 0.0, 0.0
    stage = SERIAL.copy()
    if bad == "stage":
        stage[ks.HOP_NS] = -1
    elif bad == "stage length":
        stage = np.zeros(3, dtype=np.int64)
    if bad == "negative count":
        counts[0, 1, ks.SYNOP] = -1
    elif bad == "nan count":
        counts[0, 0, ks.HOP_EW] = np.nan
    elif bad == "shape":
        counts = np.zeros((1, 2, 6))
    elif bad == "barrier":
        barrier = -1e-9
    elif bad == "tick":
        tick = np.nan
    elif bad == "inf cost":
        e[ks.SPIKE_OUT] = np.inf
    with pytest.raises(ValueError, match="SNN step"):
        fn(counts, e, t, stage, barrier, tick)


@pytest.mark.parametrize("fn", [ks.route_xy, ks.route_xy_ref])
@pytest.mark.parametrize("bad", ["dst", "src", "count", "chip", "lengths"])
def test_route_refuses_nonsense(fn, bad):
    xs, ys, tiles, chip, cx, cy = (np.array(a, dtype=np.int64) for a in mesh(2, 1))
    src, dst, count = np.array([0]), np.array([1]), np.array([1.0])
    if bad == "dst":
        dst = np.array([2])
    elif bad == "src":
        src = np.array([-1])
    elif bad == "count":
        count = np.array([-0.5])
    elif bad == "chip":
        chip = np.array([0, 1])
    else:
        count = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="SNN route_xy"):
        fn(src, dst, count, xs, ys, tiles, chip, cx, cy)


# ---------------------------------------------------------------- random cases
@st.composite
def routes(draw):
    w, h = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    per_tile = draw(st.integers(1, 3))
    chips = draw(st.sampled_from([((0, 0),), ((0, 0), (1, 0)), ((0, 0), (0, 1), (1, 1))]))
    arrays = mesh(w, h, per_tile, chips)
    n_cores = len(arrays[0])
    n = draw(st.integers(0, 12))
    src = draw(st.lists(st.integers(0, n_cores - 1), min_size=n, max_size=n))
    dst = draw(st.lists(st.integers(0, n_cores - 1), min_size=n, max_size=n))
    count = draw(st.lists(st.integers(0, 40).map(lambda k: k * 0.25), min_size=n, max_size=n))
    return (src, dst, count) + arrays


@settings(max_examples=40, deadline=None)
@given(routes())
def test_route_kernel_agrees_with_twin_and_conserves_spikes(case):
    ew, ns, in_tile, chips = both_route(*case)
    src, dst, count, xs, ys, tiles, chip, cx, cy = case
    # Every spike either stays in its tile or makes at least one hop; a chip hop is a mesh hop.
    staying = sum(c for a, b, c in zip(src, dst, count) if tiles[a] == tiles[b])
    assert in_tile.sum() == pytest.approx(staying)
    assert (chips <= ew + ns).all()
    manhattan = sum(c * (abs(xs[a] - xs[b]) + abs(ys[a] - ys[b]))
                    for a, b, c in zip(src, dst, count))
    assert (ew + ns).sum() == pytest.approx(manhattan)


PRICED = st.lists(st.integers(0, 100), min_size=ks.N_TERMS, max_size=ks.N_TERMS)


@st.composite
def steps(draw, zero_terms=()):
    n_t, n_c = draw(st.integers(0, 4)), draw(st.integers(0, 5))
    flat = draw(st.lists(st.integers(0, 300).map(lambda k: k * 0.5),
                         min_size=n_t * n_c * ks.N_TERMS, max_size=n_t * n_c * ks.N_TERMS))
    counts = np.array(flat, dtype=np.float64).reshape(n_t, n_c, ks.N_TERMS)
    counts[:, :, list(zero_terms)] = 0.0
    e = np.array(draw(PRICED), dtype=np.float64) * 0.5 * PJ
    t = np.array(draw(PRICED), dtype=np.float64) * 0.25 * NS
    barrier = draw(st.integers(0, 500)) * NS
    tick = draw(st.sampled_from([0.0, 100 * NS, 1e-6]))
    return counts, e, t, barrier, tick


STAGES = st.lists(st.integers(0, 2), min_size=ks.N_TERMS, max_size=ks.N_TERMS).map(
    lambda v: np.array(v, dtype=np.int64))


@settings(max_examples=40, deadline=None)
@given(steps(), st.sets(st.integers(0, ks.N_TERMS - 1)), st.sampled_from(["e", "t", "-e"]),
       STAGES)
def test_step_kernel_agrees_with_twin(case, absent, how, stage):
    counts, e, t, barrier, tick = case
    both_step(counts, e, t, barrier, tick, stage)
    # busy is the slowest stage, never more than the serial sum, never less than any stage
    busy = ks.step(counts, e, t, stage, barrier, tick)[1]
    per_stage = np.stack([counts[:, :, stage == s] @ t[stage == s] for s in range(3)])
    np.testing.assert_allclose(busy, per_stage.max(axis=0), rtol=1e-12, atol=0)
    # The same with some terms covered by an all-in constant (and their counts zero): their
    # energy (NaN or negative) or their time (NaN) absent.
    e, t = e.copy(), t.copy()
    if how == "e":
        e[list(absent)] = np.nan
    elif how == "-e":
        e[list(absent)] = -1.0
    else:
        t[list(absent)] = np.nan
    counts = counts.copy()
    counts[:, :, list(absent)] = 0.0
    energy = both_step(counts, e, t, barrier, tick, stage)[0]
    assert np.isnan(energy[list(absent)]).all()


@settings(max_examples=40, deadline=None)
@given(steps())
def test_energy_and_time_are_counts_times_costs(case):
    # Independently, with numpy: energy per term = sum over steps and cores of counts x cost;
    # busy = counts . t_cost; step time = max(max busy + barrier, tick); critical = argmax.
    counts, e, t, barrier, tick = case
    energy, busy, t_step, critical = ks.step(counts, e, t, SERIAL, barrier, tick)
    np.testing.assert_allclose(energy, np.einsum("tck,k->k", counts, e), rtol=1e-12, atol=0)
    expect_busy = counts @ t
    np.testing.assert_allclose(busy, expect_busy, rtol=1e-12, atol=0)
    if counts.shape[1]:
        np.testing.assert_allclose(t_step, np.maximum(expect_busy.max(axis=1) + barrier, tick),
                                   rtol=1e-12, atol=0)
        assert (busy[np.arange(len(critical)), critical] == busy.max(axis=1)).all()
        assert (critical == np.argmax(busy, axis=1)).all()
    else:
        assert (t_step == max(barrier, tick)).all() and (critical == -1).all()


SPIKING = [ks.SYNOP, ks.SPIKE_OUT, ks.IN_TILE, ks.HOP_EW, ks.HOP_NS, ks.NEURON_FIRE, ks.LEARN,
           ks.AXON_IN]


@settings(max_examples=40, deadline=None)
@given(steps(zero_terms=SPIKING))
def test_no_spikes_costs_the_updates_and_the_barrier(case):
    counts, e, t, barrier, tick = case
    energy, busy, t_step, _ = ks.step(counts, e, t, SERIAL, barrier, 0.0)
    assert (energy[SPIKING] == 0).all()
    updates = counts[:, :, ks.UPDATE_ACTIVE] * e[ks.UPDATE_ACTIVE] \
        + counts[:, :, ks.UPDATE_IDLE] * e[ks.UPDATE_IDLE]
    assert energy.sum() == pytest.approx(updates.sum(), rel=1e-12, abs=0)
    idle_busy = counts[:, :, ks.UPDATE_ACTIVE] * t[ks.UPDATE_ACTIVE] \
        + counts[:, :, ks.UPDATE_IDLE] * t[ks.UPDATE_IDLE]
    np.testing.assert_allclose(busy, idle_busy, rtol=1e-12, atol=0)
    if counts.shape[1]:
        np.testing.assert_allclose(t_step, idle_busy.max(axis=1) + barrier, rtol=1e-12, atol=0)


@settings(max_examples=40, deadline=None)
@given(steps(), st.integers(0, ks.N_TERMS - 1), st.integers(1, 50), st.data())
def test_more_events_never_cheaper_or_faster(case, term, extra, data):
    counts, e, t, barrier, tick = case
    if counts.size == 0:
        return
    more = counts.copy()
    at = (data.draw(st.integers(0, counts.shape[0] - 1)),
          data.draw(st.integers(0, counts.shape[1] - 1)))
    more[at + (term,)] += extra * 0.5
    e0, b0, s0, _ = ks.step(counts, e, t, SERIAL, barrier, tick)
    e1, b1, s1, _ = ks.step(more, e, t, SERIAL, barrier, tick)
    assert (e1 >= e0).all() and e1.sum() >= e0.sum()
    assert (b1 >= b0).all() and (s1 >= s0).all()


def test_every_device_event_kind_is_a_kernel_term():
    """The device presets price exactly the events the kernel counts, by the same names."""
    from npusim.arch.snn_device import EVENT_KINDS
    assert sorted(k.upper() for k in EVENT_KINDS) == sorted(ks.TERM_NAMES)
