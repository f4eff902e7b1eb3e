"""npusim/engine/snn.py: mapping, event counts and pricing of spiking networks.

Hand cases on the teaching device ``snn-edu`` (every cost an assumption: synop 10 pJ / 2 ns,
update active 50 pJ / 10 ns, idle 20 pJ / 5 ns, fire 50 pJ / 20 ns, message out 50 pJ / 10 ns,
hop 5 pJ / 5 ns, axon in 0 pJ / 5 ns; barrier 100 ns + 10 ns per tile; 10 mW static; 2 x 2
tiles of 4 cores, tile k at x = k // 2, y = k % 2), and the counts of
``benchmarks/vs_sanafe.py`` (SANA-FE's conventions, re-derived there from the spike rasters; no
SANA-FE run needed).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from npusim.arch.snn_device import load_snn_device
from npusim.engine import snn as es
from npusim.errors import CapacityError, NpusimError
from npusim.kernels import snn as ks

PJ, NS = 1e-12, 1e-9


@pytest.fixture(scope="module")
def edu():
    return load_snn_device("snn-edu")


def test_mapping_starts_each_layer_on_a_new_tile_and_names_the_bound(edu, net_432):
    m = es.map_network(net_432[0], edu)
    assert [(lm.first_core, lm.n_cores, lm.bound_by) for lm in m.layers] == \
        [(0, 1, "layer"), (4, 1, "layer"), (8, 1, "layer")]
    # cores 0, 4, 8 are in tiles 0, 1, 2 at (0, 0), (0, 1), (1, 0)
    assert (m.core_x[[0, 4, 8]].tolist(), m.core_y[[0, 4, 8]].tolist()) == ([0, 0, 1], [0, 1, 0])
    assert m.tiles == 3
    # 300 -> 600: 256 inputs per core (neurons_per_core); hidden: 64 KiB = 524,288 bits /
    # (300 synapses x 8 bits) = 218 neurons per core (synaptic memory), 3 cores from core 4
    big = es.Network("b", (es.Layer("in", "input", (300,)), es.Layer("h", "dense", (600,))))
    m = es.map_network(big, edu)
    assert [(lm.per_core, lm.bound_by) for lm in m.layers] == \
        [(256, "neurons_per_core"), (218, "synaptic_memory")]
    assert m.core_of["h"][[0, 217, 218, 599]].tolist() == [4, 4, 5, 6]


def test_conv_mapping_bound_by_fan_in():
    # A 1 x 40 x 40 input, 3x3 conv to 1 x 38 x 38 (1,444 outputs) on a device whose cores have
    # 120 axon slots: k consecutive outputs (k <= 38, one row) read 3 x (k + 2) inputs; a chunk
    # that spans two rows reads more. 120 slots: 3 (k + 2) <= 120 -> k = 38 (one row, 120).
    dev = load_snn_device("snn-edu")
    import dataclasses
    dev = dataclasses.replace(dev, structure=dataclasses.replace(dev.structure, fan_in=120,
                                                                 tiles_x=8, tiles_y=8))
    net = es.Network("c", (es.Layer("in", "input", (1, 40, 40)),
                           es.Layer("c", "conv2d", (1, 38, 38), kernel=(3, 3))))
    m = es.map_network(net, dev)
    assert m.layers[1].bound_by == "fan_in" and m.layers[1].per_core == 38


def test_hand_rasters_432(edu, net_432):
    # t0: inputs 0 and 3 spike: 2 messages from core 0 (one destination core each), 2 N-S hops
    #   (tile (0,0) -> (0,1)); hidden core 4: 2 x 3 = 6 synops, 2 axon-ins, 3 idle (nothing to
    #   integrate yet); out core 8: 2 idle.
    # t1: hidden integrates: 3 active, neuron 0 fires: 1 fire, 1 message, 1 E-W + 1 N-S hop
    #   ((0,1) -> (1,0)); out core 8: 2 synops, 1 axon-in, 2 idle (hidden was silent at t0).
    r = es.run(net_432[0], edu, net_432[1])
    c = r.counts
    assert c[0, 0, [ks.SPIKE_OUT, ks.HOP_NS]].tolist() == [2, 2]
    assert c[0, 4, [ks.SYNOP, ks.AXON_IN, ks.UPDATE_IDLE, ks.UPDATE_ACTIVE]].tolist() == [6, 2, 3, 0]
    assert c[1, 4, [ks.UPDATE_ACTIVE, ks.NEURON_FIRE, ks.SPIKE_OUT, ks.HOP_EW, ks.HOP_NS]].tolist() \
        == [3, 1, 1, 1, 1]
    assert c[1, 8, [ks.SYNOP, ks.AXON_IN, ks.UPDATE_IDLE]].tolist() == [2, 1, 2]
    # energy t0: 2 x 50 + 2 x 5 + 6 x 10 + 5 x 20 = 270 pJ
    #        t1: 3 x 50 + 50 + 50 + 2 x 5 + 2 x 10 + 2 x 20 = 320 pJ
    # serial time t0: core 4 6 x 2 + 2 x 5 + 3 x 5 = 37 ns; t1: core 4 30 + 20 + 10 + 10 = 70 ns
    # barrier 100 + 3 tiles x 10 = 130 ns: steps 167 + 200 = 367 ns; static 10 mW x 367 ns =
    # 3,670 pJ (a small network on an idle chip: static dominates)
    assert r.step_time_s == pytest.approx(np.array([167, 200]) * NS, rel=1e-12)
    assert r.critical_core.tolist() == [4, 4] and r.barrier_s == pytest.approx(130 * NS)
    assert r.static_j == pytest.approx(10e-3 * 367 * NS, rel=1e-12)
    assert r.energy_j == pytest.approx(590 * PJ + 3670 * PJ, rel=1e-12)
    assert r.energy_by_term_j["SYNOP"] == pytest.approx(80 * PJ, rel=1e-12)
    # SANA-FE's pipeline: t0 core 4 front 2 x 5 + 6 x 2 = 22 ns > back 15 ns;
    # t1 core 4 back 30 + 20 + 10 = 60 ns (router 10 ns apart): 152 + 190 ns; energy unchanged
    p = es.run(net_432[0], edu, net_432[1], stages="sanafe", static_power=0.0)
    assert p.step_time_s == pytest.approx(np.array([152, 190]) * NS, rel=1e-12)
    assert p.energy_j == pytest.approx(590 * PJ, rel=1e-12)


def test_hand_rates_432(edu, net_432):
    # Input rate 0.5, others 0, T = 2: per step 4 x 0.5 x 3 = 6 synops, 2 messages, 2 N-S hops;
    # hidden updates: U(0) = 0; U(1) = 1 - 0.5^4 = 0.9375 of 3 neurons.
    r = es.run(net_432[0], edu, {"in": 0.5, "hidden": 0.0, "out": 0.0}, timesteps=2)
    c = r.counts
    assert c[:, 4, ks.SYNOP].tolist() == [6, 6] and c[:, 0, ks.SPIKE_OUT].tolist() == [2, 2]
    assert c[:, 4, ks.UPDATE_ACTIVE] == pytest.approx([0, 3 * 0.9375])
    assert c[:, 4, ks.UPDATE_IDLE] == pytest.approx([3, 3 * 0.0625])
    # the same rates as a 0/1 mean: rasters whose mean is the rate give the same linear counts
    rast = es.run(net_432[0], edu, {"in": np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool),
                                   "hidden": np.zeros((2, 3), bool),
                                   "out": np.zeros((2, 2), bool)})
    assert rast.counts[:, :, ks.SYNOP].sum() == c[:, :, ks.SYNOP].sum()


def test_energy_is_the_sum_of_its_parts(edu, net_432):
    r = es.run(net_432[0], edu, {"in": 0.3, "hidden": 0.2, "out": 0.1}, timesteps=5)
    assert r.energy_j == pytest.approx(math.fsum(v for v in r.energy_by_term_j.values()
                                                 if not math.isnan(v)), rel=1e-12)
    assert r.latency_s == pytest.approx(r.step_time_s.sum(), rel=1e-12)
    assert np.isnan(r.energy_by_term_j["LEARN"])          # absent on snn-edu, not 0


def test_no_input_spikes_cost_only_the_idle_floor_and_the_barrier(edu, net_432):
    # 5 LIF neurons idle every step (5 x 20 pJ); the busiest core (3 idle, 15 ns) + 130 ns
    r = es.run(net_432[0], edu, {"in": 0.0, "hidden": 0.0, "out": 0.0}, timesteps=4,
               static_power=0.0)
    assert r.energy_j == pytest.approx(4 * 5 * 20 * PJ, rel=1e-12)
    assert r.step_time_s == pytest.approx(np.full(4, 145 * NS), rel=1e-12)


def test_rate_outside_0_1_is_refused_naming_the_layer(edu, net_432):
    with pytest.raises(NpusimError, match=r"layer 'hidden' has rate 1.2.*\[0, 1\]"):
        es.run(net_432[0], edu, {"in": 0.1, "hidden": 1.2, "out": 0.0}, timesteps=2)
    with pytest.raises(NpusimError, match="missing \\['out'\\]"):
        es.run(net_432[0], edu, {"in": 0.1, "hidden": 0.2}, timesteps=2)


def test_too_large_layer_is_refused_naming_it(edu):
    # 4,097 neurons need 17 cores of 256; snn-edu has 16
    big = es.Network("big", (es.Layer("in", "input", (8,)), es.Layer("wide", "dense", (4097,))))
    with pytest.raises(CapacityError, match="layer 'wide' needs cores 4 .. 20.*has 16"):
        es.map_network(big, edu)
    # 2,000 inputs per neuron: more than the 1,024 axon slots of any core
    fat = es.Network("fat", (es.Layer("in", "input", (2000,)), es.Layer("h", "dense", (10,))))
    with pytest.raises(CapacityError, match="layer 'h'.*2000 distinct inputs.*1024"):
        es.map_network(fat, edu)


def test_all_in_device_counts_only_synops(net_432):
    # TrueNorth: 26 pJ per synaptic event, all-in (Merolla 2014); nothing priced on top
    tn = load_snn_device("truenorth")
    r = es.run(net_432[0], tn, net_432[1])
    assert r.energy_j == pytest.approx(8 * 26 * PJ, rel=1e-12)
    assert r.counts[:, :, ks.SYNOP].sum() == 8 and r.counts.sum() == 8


# ------------------------------------------------------------ SANA-FE's conventions


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_counts_equal_the_benchmarks_recount(net, benchmark_script):
    vs = benchmark_script("vs_sanafe")
    spec = vs.dense_net() if net == "dense" else vs.conv_net()
    model = vs.npusim_network(spec)
    dev = load_snn_device("loihi")
    m = es.map_network(model, dev, max_neurons_per_core=spec.neurons_per_core)
    for lay in spec.layers:                               # the same neurons on the same cores
        assert np.array_equal(m.core_of[lay.name], lay.cores)
    spikes, updated = vs.lif_reference(spec, vs.input_trains(spec, 0.2, 16))
    ref = vs.expected_counts(spec, spikes, updated)
    n = ref["access"].shape[1]
    c = es.count_events(model, m, spikes, updated=updated)[:, :n]
    want = {ks.SYNOP: ref["synops"] + ref["synops_conv"], ks.SPIKE_OUT: ref["msg_out"],
            ks.AXON_IN: ref["msg_in"], ks.HOP_EW: ref["hops_ew"], ks.HOP_NS: ref["hops_ns"],
            ks.UPDATE_ACTIVE: ref["update"], ks.NEURON_FIRE: ref["spike_out"]}
    for k, v in want.items():
        assert np.array_equal(c[:, :, k], v), ks.TERM_NAMES[k]
    assert np.array_equal(c[:, :, ks.UPDATE_ACTIVE] + c[:, :, ks.UPDATE_IDLE], ref["access"])
    # without the update masks, the closed form from the rasters alone: within 0.1 %
    u = es.count_events(model, m, spikes)[:, :n, ks.UPDATE_ACTIVE].sum()
    assert u == pytest.approx(ref["update"].sum(), rel=1e-3)
