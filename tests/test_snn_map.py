"""npusim/engine/snn_map.py: the traffic-aware SNN mapper.

Hand cases on the teaching device ``snn-edu`` (2 x 2 tiles of 4 cores, 256 neurons and 64 KiB
per core, fan-in and fan-out 1,024; tile k at x = k // 2, y = k % 2), a property test on random
networks and devices (every per-core limit held, counted here from the synapses, independently
of the mapper; never more messages or hops than the greedy mapper), and agreement of the
mapper's traffic figures with the engine's event counts.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.arch.snn_device import load_snn_device
from npusim.engine import snn as es
from npusim.engine import snn_map as sm
from npusim.errors import CapacityError, NpusimError
from npusim.kernels import snn as ks


@pytest.fixture(scope="module")
def edu():
    return load_snn_device("snn-edu")


def device(base, **structure):
    return dataclasses.replace(base, structure=dataclasses.replace(base.structure, **structure))


def conv_2x3x3():
    """1 x 4 x 4 input, 2x2 kernel, stride 1, two channels: 2 x 3 x 3 = 18 outputs."""
    return es.Network("c", (es.Layer("in", "input", (1, 4, 4)),
                            es.Layer("conv", "conv2d", (2, 3, 3), kernel=(2, 2))))


# ------------------------------------------------------------------------------ hand cases
def test_hand_conv_rows_with_all_channels_send_fewer_messages(edu):
    # 9 neurons per core: greedy cuts channel-major, one channel per core; every input pixel
    # feeds both channels, so each spike is 2 messages: 16 x 2 = 32 per step at rate 1.
    # Rows with all channels (order y, x, c; two runs of 9): core 0 holds output rows 0 and
    # (y1: x0 both channels, x1 channel 0) and reads input rows 0-1 (8) + row 2 cols 0-2 (3)
    # = 11 inputs; core 1 holds the rest and reads row 1 cols 1-3 (3) + rows 2-3 (8) = 11:
    # 22 messages. Spatial blocks do worse: 2x1x3 -> 3 x 8 = 24, 2x2x2 -> 9+6+6+4 = 25.
    # The 16 inputs take cores 0-1 (9 + 7; every input cut gives 4 flows, the first
    # candidate, greedy's, stays); the conv takes cores 2-3, all four in tile 0: no hops.
    net = conv_2x3x3()
    g = es.map_network(net, edu, max_neurons_per_core=9)
    m = sm.map_traffic(net, edu, max_neurons_per_core=9)
    assert sm.traffic(net, g).messages == 32
    assert sm.traffic(net, m).messages == 22
    assert m.core_of["conv"].reshape(2, 3, 3)[:, 0].tolist() == [[2, 2, 2], [2, 2, 2]]
    assert m.core_of["conv"].reshape(2, 3, 3)[:, 2].tolist() == [[3, 3, 3], [3, 3, 3]]
    loads = sm.core_loads(net, m, 8)
    assert loads["fan_in"].tolist() == [0, 0, 11, 11]
    assert loads["neurons"].tolist() == [9, 7, 9, 9]
    assert loads["synapse_bits"].tolist() == [0, 0, 9 * 4 * 8, 9 * 4 * 8]
    assert [(lm.first_core, lm.n_cores, lm.per_core, lm.bound_by) for lm in m.layers] == \
        [(0, 2, 9, "neurons_per_core"), (2, 2, 9, "neurons_per_core")]
    t = sm.traffic(net, m)
    assert (t.hops, t.in_tile, m.tiles) == (0, 22, 1)
    # the engine counts the same messages: one SPIKE_OUT per message
    c = es.count_events(net, m, {"in": 1.0, "conv": 0.0}, timesteps=1)
    assert c[0, :, ks.SPIKE_OUT].sum() == 22
    assert c[0, :, ks.AXON_IN].tolist() == [0, 0, 11, 11]


def test_hand_dense_chain_packs_one_tile(edu):
    # 4 -> 3 -> 2, one core per layer. Greedy puts each layer on a new tile: tiles (0,0),
    # (0,1), (1,0); at rate 1, 4 messages of 1 hop, then 3 messages of 2 hops = 10 hops.
    # The traffic mapper packs the three cores into tile 0: no hops, 7 in-tile deliveries.
    net = es.Network("432", (es.Layer("in", "input", (4,)), es.Layer("h", "dense", (3,)),
                             es.Layer("out", "dense", (2,))))
    g, m = es.map_network(net, edu), sm.map_traffic(net, edu)
    tg, tm = sm.traffic(net, g), sm.traffic(net, m)
    assert (tg.messages, tg.hops, tg.in_tile, g.tiles) == (7, 10, 0, 3)
    assert (tm.messages, tm.hops, tm.in_tile, m.tiles) == (7, 0, 7, 1)
    assert m.n_cores == 3 and set(m.core_tile.tolist()) == {0}


def test_placement_puts_the_busiest_flow_in_one_tile():
    # a 1 x 4 mesh of single-core tiles: in (4 neurons) -> a (4) -> b (1), every core one layer.
    # Flows at rate 1: in -> a 4 messages, a -> b 4. A chain along the line gives 4 + 4 = 8
    # hops (any order with the middle core in the middle); that is the optimum.
    base = load_snn_device("snn-edu")
    dev = device(base, tiles_x=1, tiles_y=4, cores_per_tile=1)
    net = es.Network("line", (es.Layer("in", "input", (4,)), es.Layer("a", "dense", (4,)),
                              es.Layer("b", "dense", (1,))))
    m = sm.map_traffic(net, dev)
    assert sm.traffic(net, m).hops == 8
    assert abs(int(m.core_y[1]) - int(m.core_y[0])) == 1 == abs(int(m.core_y[2])
                                                                - int(m.core_y[1]))


def test_run_accepts_the_mapping_and_per_layer_costs(edu):
    net = conv_2x3x3()
    m = sm.map_traffic(net, edu, max_neurons_per_core=9)
    rates = {"in": 0.5, "conv": 0.1}
    r = es.run(net, edu, rates, timesteps=4, mapping=m,
               layer_costs={"conv": {"synop": (1e-12, 1e-9)}})
    assert r.mapping is m and r.counts.shape == (4, 4, ks.N_TERMS)
    g = es.run(net, edu, rates, timesteps=4, max_neurons_per_core=9)
    # synops do not depend on the mapping; messages do (22 vs 32 per step at rate 1)
    assert r.counts[:, :, ks.SYNOP].sum() == pytest.approx(g.counts[:, :, ks.SYNOP].sum())
    assert r.counts[:, :, ks.SPIKE_OUT].sum() == pytest.approx(4 * 0.5 * 22)
    assert g.counts[:, :, ks.SPIKE_OUT].sum() == pytest.approx(4 * 0.5 * 32)


def test_registry_and_bad_input(edu):
    assert sm.mapper("greedy")(conv_2x3x3(), edu).layers[1].n_cores == 1
    assert sm.mapper("traffic") is sm.map_traffic
    with pytest.raises(NpusimError, match="unknown SNN mapper 'best'.*greedy, traffic"):
        sm.mapper("best")
    with pytest.raises(NpusimError, match="already registered"):
        sm.register_mapper("greedy", sm.map_traffic)
    with pytest.raises(NpusimError, match="layer 'conv' has rate 2"):
        sm.map_traffic(conv_2x3x3(), edu, {"conv": 2})
    fat = es.Network("fat", (es.Layer("in", "input", (2000,)), es.Layer("h", "dense", (10,))))
    with pytest.raises(CapacityError, match="layer 'h'.*2000 distinct inputs.*1024"):
        sm.map_traffic(fat, edu)
    wide = es.Network("w", (es.Layer("in", "input", (8,)), es.Layer("h", "dense", (4097,))))
    with pytest.raises(CapacityError, match="'w'.*needs 18 cores.*has 16"):
        sm.map_traffic(wide, edu)


def test_vs_sanafe_networks_on_loihi(benchmark_script):
    vs = benchmark_script("vs_sanafe")
    dev = load_snn_device("loihi")
    for spec in (vs.dense_net(), vs.conv_net()):
        net = vs.npusim_network(spec)
        g = es.map_network(net, dev, max_neurons_per_core=spec.neurons_per_core)
        m = sm.map_traffic(net, dev, max_neurons_per_core=spec.neurons_per_core)
        tg, tm = sm.traffic(net, g), sm.traffic(net, m)
        assert tm.messages <= tg.messages and tm.hops < tg.hops


def test_benchmark_quick_case(benchmark_script):
    bench = benchmark_script("snn_mapping")
    case, = bench.cases(quick=True)
    g, t = (bench.measure(case, name) for name in ("greedy", "traffic"))
    # 256-256-10 at 256 neurons per core: one core per layer either way; greedy spreads them
    # over three tiles, the traffic mapper keeps them in one (no hops, same messages)
    assert (g["cores"], g["tiles"], t["cores"], t["tiles"]) == (3, 3, 3, 1)
    assert t["messages"] == pytest.approx(g["messages"]) and t["hops"] == 0 < g["hops"]
    assert t["energy_j"] < g["energy_j"]


# ------------------------------------------------------------------------------ properties
def brute_loads(net, m, wbits):
    """Per-core neurons, synapse bits, distinct inputs and distinct destination cores, one
    synapse at a time (no vectorisation shared with the mapper)."""
    n = m.n_cores
    neurons, bits = [0] * n, [0] * n
    inputs = [set() for _ in range(n)]
    dests = [set() for _ in range(n)]
    for i, lay in enumerate(net.layers):
        for core in m.core_of[lay.name].tolist():
            neurons[core] += 1
        if not i:
            continue
        prev = net.layers[i - 1]
        src, dst = es.connectivity(net, i)
        for s, d in zip(src.tolist(), dst.tolist()):
            core = int(m.core_of[lay.name][d])
            bits[core] += wbits
            inputs[core].add((prev.name, s))
            dests[int(m.core_of[prev.name][s])].add(core)
    return neurons, bits, [len(x) for x in inputs], [len(x) for x in dests]


@st.composite
def nets(draw):
    c = draw(st.integers(1, 3))
    h = draw(st.integers(3, 9))
    w = draw(st.integers(3, 9))
    layers = [es.Layer("in", "input", (c, h, w))]
    for k in range(draw(st.integers(1, 3))):
        prev = layers[-1]
        if len(prev.shape) == 3 and prev.shape[1] >= 2 and prev.shape[2] >= 2 and draw(
                st.booleans()):
            kh = draw(st.integers(1, min(3, prev.shape[1])))
            kw = draw(st.integers(1, min(3, prev.shape[2])))
            s = draw(st.integers(1, 2))
            oc = draw(st.integers(1, 4))
            shape = (oc, (prev.shape[1] - kh) // s + 1, (prev.shape[2] - kw) // s + 1)
            layers.append(es.Layer(f"c{k}", "conv2d", shape, kernel=(kh, kw), stride=s))
        else:
            layers.append(es.Layer(f"d{k}", "dense", (draw(st.integers(1, 40)),)))
    return es.Network("rand", tuple(layers))


@settings(max_examples=40, deadline=None)
@given(net=nets(), cap=st.integers(4, 64), mem=st.integers(64, 4096),
       fan_in=st.integers(8, 300), fan_out=st.integers(2, 64), rate=st.floats(0.0, 1.0),
       cpt=st.integers(1, 4), chips=st.integers(1, 2))
def test_limits_hold_and_never_worse_than_greedy(net, cap, mem, fan_in, fan_out, rate, cpt,
                                                 chips):
    dev = device(load_snn_device("snn-edu"), tiles_x=3, tiles_y=3, cores_per_tile=cpt,
                 neurons_per_core=cap, synaptic_memory=mem, fan_in=fan_in, fan_out=fan_out,
                 chips=chips)
    act = {lay.name: rate for lay in net.layers}
    try:
        g = es.map_network(net, dev)
    except CapacityError:
        g = None
    try:
        m = sm.map_traffic(net, dev, act)
    except CapacityError:
        assert g is None                   # whatever greedy maps, the traffic mapper maps
        return
    neurons, bits, inputs, dests = brute_loads(net, m, dev.structure.weight_bits)
    assert max(neurons) <= cap and max(bits) <= mem * 8
    assert max(inputs) <= fan_in and max(dests) <= fan_out
    assert sm.core_loads(net, m, 8)["fan_out"].tolist() == dests
    # every neuron on a core of its own layer's run; every core on its own slot of the mesh
    for lay, lm in zip(net.layers, m.layers):
        cores = m.core_of[lay.name]
        assert cores.min() == lm.first_core and cores.max() == lm.first_core + lm.n_cores - 1
        assert np.bincount(cores - lm.first_core).min() >= 1
        assert lm.per_core == np.bincount(cores).max()
        assert lm.bound_by in (*sm.LIMITS, "layer")
    assert np.bincount(m.core_tile).max() <= cpt
    assert len({(int(x), int(y)) for x, y in zip(m.core_x, m.core_y)}) == m.tiles
    assert 0 <= m.core_x.min() and m.core_x.max() < 3 * chips and m.core_y.max() < 3
    assert np.array_equal(m.core_chip, m.core_x // 3) and m.chips == m.core_chip.max() + 1
    if g is not None:
        tg, tm = sm.traffic(net, g, act), sm.traffic(net, m, act)
        assert tm.messages <= tg.messages + 1e-9 and tm.hops <= tg.hops + 1e-9


@settings(max_examples=15, deadline=None)
@given(net=nets(), rate=st.floats(0.05, 1.0), seed=st.integers(0, 2 ** 16))
def test_traffic_agrees_with_the_engine_counts(net, rate, seed):
    dev = device(load_snn_device("snn-edu"), tiles_x=4, tiles_y=4, neurons_per_core=16)
    rng = np.random.default_rng(seed)
    T = 3
    act = {lay.name: rng.random((T, lay.size)) < rate for lay in net.layers}
    try:
        m = sm.map_traffic(net, dev, act)
    except CapacityError:
        return
    c = es.count_events(net, m, act)
    t = sm.traffic(net, m, act)
    try:                                   # the guarantee holds for rasters too
        tg = sm.traffic(net, es.map_network(net, dev), act)
        assert t.messages <= tg.messages + 1e-9 and t.hops <= tg.hops + 1e-9
    except CapacityError:
        pass
    assert c[:, :, ks.SPIKE_OUT].sum() == pytest.approx(T * t.messages, abs=1e-9)
    assert (c[:, :, ks.HOP_EW] + c[:, :, ks.HOP_NS]).sum() == pytest.approx(T * t.hops,
                                                                            abs=1e-9)
    assert c[:, :, ks.IN_TILE].sum() == pytest.approx(T * t.in_tile, abs=1e-9)
