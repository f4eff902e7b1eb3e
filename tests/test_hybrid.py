"""npusim/engine/hybrid.py: DNN/SNN placement, converters, same-silicon cores, break-even.

Hand numbers use the teaching chip ``edu`` (energy table ``archs/energy/edu.yaml``: vector op
2.3 pJ, SRAM 2.5 pJ/B read and write, int8 MAC 0.23 pJ, NoC 0.5 pJ/bit, static 1 W; 4 cores,
16 vector lanes and 64 B/cycle of SRAM each at 1 GHz, NoC 64 GB/s).
"""
from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.arch import load_arch
from npusim.arch.snn_device import load_snn_device
from npusim.engine import breakeven as bk
from npusim.engine import hybrid as hy
from npusim.engine import snn as es
from npusim.engine.simulate import simulate_graph
from npusim.errors import CapacityError, NpusimError

PJ, NS = 1e-12, 1e-9


@pytest.fixture(scope="module")
def edu():
    return load_arch("edu")


@pytest.fixture(scope="module")
def silicon(edu):
    return bk.same_silicon_device(edu)


@pytest.fixture(scope="module")
def snn_edu():
    return load_snn_device("snn-edu")


def mlp(*sizes, name="mlp"):
    layers = [es.Layer("in", "input", (sizes[0],))]
    layers += [es.Layer(f"l{i}", "dense", (n,)) for i, n in enumerate(sizes[1:], 1)]
    return es.Network(name, tuple(layers))


def rates_of(net, *values):
    return {lay.name: float(v) for lay, v in zip(net.layers, values)}


# ----------------------------------------------------------------------------- hand cases
def test_converters_by_hand(edu, silicon):
    # one layer of n = 10 neurons, T = 4, rate 0.25, int8 values (1 B)
    net = mlp(10, 3)
    system = hy.System(edu, silicon)
    r = rates_of(net, 0.25, 0.0)

    def conv(src, dst):
        return hy.boundary(system, net, r, 4, 0, src, dst)

    enc, cnt, val, spk = conv("ann", "snn"), conv("snn", "ann"), conv("ann", "ann"), conv("snn",
                                                                                        "snn")
    # encoder: 10 x 4 compares x 2.3 pJ + 10 B x 8 x 0.5 pJ/bit = 92 + 40 pJ
    assert enc.energy_j == pytest.approx(132 * PJ)
    # (40 ops / 64e9 ops/s) + (10 B / 64e9 B/s)
    assert enc.latency_s == pytest.approx(50 / 64e9)
    # counter: 10 x 4 x 0.25 = 10 increments x 2.3 pJ + the 10 counts crossing (40 pJ)
    assert cnt.energy_j == pytest.approx(63 * PJ)
    assert val.energy_j == pytest.approx(40 * PJ)
    # 10 spikes x 32-bit messages = 320 bits x 0.5 pJ
    assert spk.energy_j == pytest.approx(160 * PJ)
    # over the chip-to-chip link instead (edu table: 5 pJ/bit): 10 B x 8 x 5 pJ
    link = hy.System(edu, silicon, interface="link")
    assert hy.boundary(link, net, r, 4, 0, "ann", "ann").energy_j == pytest.approx(400 * PJ)


def test_same_silicon_events_by_hand(silicon):
    ev = silicon.costs.events
    # synop: 1 B x 2.5 pJ/B + the add share of the int8 MAC (0.23 x 0.03 / 0.23 = 0.03 pJ)
    assert ev["synop"].energy == pytest.approx(2.53 * PJ)
    # 16 lanes bind before 64 B/cycle: 1/16 ns
    assert ev["synop"].time == pytest.approx(NS / 16)
    # state 2 B read + written (2 x 5 pJ) + IF's 2 ops at 0.03 pJ
    assert ev["update_active"].energy == pytest.approx(10.06 * PJ)
    assert ev["update_active"].time == pytest.approx(2 * NS / 16)
    assert ev["update_idle"].energy == pytest.approx(5 * PJ)
    assert ev["spike_out"].energy == pytest.approx(32 * 0.5 * PJ)
    assert ev["hop_ew"].energy == 0.0 and ev["neuron_fire"].energy == 0.0
    assert silicon.costs.static.power == pytest.approx(1.0)
    s = silicon.structure
    assert (s.tiles_x, s.tiles_y, s.cores_per_tile) == (4, 1, 1)
    assert s.neurons_per_core == 256 * 1024 // 8 // 2
    assert s.synaptic_memory == pytest.approx(256 * 1024 * 7 / 8)
    assert all(e.basis in ("derived", "assumption") for e in ev.values())


def test_snn_segment_by_hand(edu, silicon):
    # in (2) -> out (1), both inputs spike in the one step, the output never does.
    # Input core 0 (tile x = 0), output core 1 (x = 1): 2 messages, 2 E-W hops, 2 synops,
    # 2 axon-ins, 1 idle update (nothing integrated yet in step 0).
    net = mlp(2, 1)
    r = rates_of(net, 1.0, 0.0)
    dyn = hy.snn_segment(hy.System(edu, silicon, static=False), net, r, 1, 1, 2)
    assert dyn.energy_j == pytest.approx((2 * 16 + 2 * 2.53 + 5) * PJ)
    # serial busy: core 0 2 x (1 ns message + 1 ns hop) = 4 ns; core 1 2 x 1/16 + 2 x 1
    # + 2/64 ns = 2.156 ns; + 100 ns barrier
    assert dyn.latency_s == pytest.approx(104 * NS)
    full = hy.snn_segment(hy.System(edu, silicon), net, r, 1, 1, 2)
    assert full.energy_j == pytest.approx(dyn.energy_j + 1.0 * 104 * NS)
    assert full.detail["layers"]["in:in"]["energy_j"] == pytest.approx(2 * 16 * PJ)
    assert full.detail["layers"]["l1"]["energy_j"] == pytest.approx((2 * 2.53 + 5) * PJ)
    assert (full.detail["synops"], full.detail["synapses"]) == (2.0, 2)


def test_npu_graph_macs_match_synapses_where_exact():
    # no padding: every MAC of the conv is a synapse of the spiking layer
    net = es.Network("c", (es.Layer("in", "input", (2, 5, 5)),
                           es.Layer("c", "conv2d", (4, 3, 3), kernel=(3, 3)),
                           es.Layer("fc", "dense", (10,))))
    macs = [op.macs for op in hy.npu_graph(net, 1, 3).ops() if op.kind == "contraction"]
    assert macs == [4 * 2 * 9 * 9, 36 * 10]
    assert sum(macs) == hy.synapses(net)


def test_npu_graph_grouped_padded_strided_conv():
    # in (4, 6, 6), 2 groups, 6 outputs of 3 x 3 (stride 2, pad 1: (6 + 2 - 3) // 2 + 1 = 3):
    # 6 x (4 / 2) x 3 x 3 taps x 3 x 3 positions = 972 MACs (border taps included)
    lay = SimpleNamespace(name="c", kind="conv2d", shape=(6, 3, 3), kernel=(3, 3), stride=2,
                          padding=1, groups=2)
    net = SimpleNamespace(name="g", layers=(SimpleNamespace(name="in", kind="input",
                                                            shape=(4, 6, 6)), lay))
    (c,) = [op for op in hy.npu_graph(net, 1, 2).ops()]
    assert c.macs == 972 and c.extents["g"] == 2


def test_npu_segment_is_the_engine_run(edu, silicon):
    net = mlp(64, 32, 10)
    part = hy.npu_segment(hy.System(edu, silicon), net, 1, 3)
    r = simulate_graph(hy.npu_graph(net, 1, 3), edu)
    assert part.energy_j == pytest.approx(r.energy_j) and part.latency_s == r.latency_s
    assert sum(d["energy_j"] for d in part.detail["layers"].values()) == \
        pytest.approx(part.energy_j)
    # weights resident in SRAM: no DRAM bytes at all (input and output cross the interface)
    sram = hy.npu_segment(hy.System(edu, silicon, npu_weights="sram"), net, 1, 3)
    assert sram.detail["by_component_j"]["dram"] == 0.0
    assert sram.energy_j < part.energy_j


def test_placement_mixes_when_the_input_is_busy(edu, silicon):
    # a busy input (every pixel spikes every step) makes layer 1 dear as synops; the quiet
    # layers after it are cheap spiking: the optimum is NPU first, spiking after, strictly
    # below both one-sided placements
    net = mlp(784, 256, 256, 10)
    r = rates_of(net, 1.0, 0.02, 0.02, 0.02)
    system = hy.System(edu, silicon, npu_weights="sram")
    best = hy.place(system, net, r, 5)
    assert best.sides == ("npu", "snn", "snn")
    kinds = [p.kind for p in best.parts]
    assert kinds == ["convert", "npu", "convert", "snn", "convert"]
    assert [p.detail["what"] for p in best.parts if p.kind == "convert"] == \
        ["values", "encoder", "counter"]
    for side in ("npu", "snn"):
        assert best.energy_j < hy.evaluate(system, net, r, 5, side).energy_j


# ----------------------------------------------------------------------------- properties
small_nets = st.lists(st.integers(1, 24), min_size=2, max_size=4)
rate = st.floats(0.0, 1.0)


@settings(max_examples=16, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=small_nets, r1=rate, r2=rate, T=st.integers(1, 6),
       which=st.sampled_from(("silicon", "snn-edu", "loihi", "truenorth")))
def test_snn_energy_non_decreasing_in_rate(edu, silicon, snn_edu, sizes, r1, r2, T, which):
    net = mlp(*sizes)
    dev = {"silicon": silicon, "snn-edu": snn_edu}.get(which) or load_snn_device(which)
    system = hy.System(edu, dev)
    lo, hi = sorted((r1, r2))
    e_lo = bk.snn_energy(system, net, lo, T).energy_j
    e_hi = bk.snn_energy(system, net, hi, T).energy_j
    assert e_lo <= e_hi * (1 + 1e-12)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=small_nets, data=st.data(), T=st.integers(1, 5),
       objective=st.sampled_from(hy.OBJECTIVES), weights=st.sampled_from(hy.NPU_WEIGHTS))
def test_dp_is_the_best_of_every_placement(edu, silicon, sizes, data, T, objective, weights):
    net = mlp(*sizes)
    r = {lay.name: data.draw(rate) for lay in net.layers}
    system = hy.System(edu, silicon, npu_weights=weights)
    best = hy.place(system, net, r, T, objective)
    L = len(net.layers) - 1

    def key(p):
        return p.energy_j if objective == "energy" else p.latency_s

    every = [hy.evaluate(system, net, r, T, s) for s in itertools.product(hy.SIDES, repeat=L)]
    assert key(best) == pytest.approx(min(key(p) for p in every), rel=1e-12)
    for side in hy.SIDES:
        assert key(best) <= key(hy.evaluate(system, net, r, T, side)) * (1 + 1e-12)
    # energy and latency are the sums of the parts; a spiking part's energy is its layers'
    # dynamic energy plus its static energy
    assert best.energy_j == pytest.approx(sum(p.energy_j for p in best.parts), rel=1e-12)
    assert best.latency_s == pytest.approx(sum(p.latency_s for p in best.parts), rel=1e-12)
    for p in best.parts:
        if p.kind == "snn":
            dyn = sum(d["energy_j"] for d in p.detail["layers"].values())
            assert p.energy_j == pytest.approx(dyn + p.detail["static_j"], rel=1e-9)
        if p.kind == "npu":
            assert p.energy_j == pytest.approx(sum(p.detail["by_component_j"].values()))
    assert sum(best.energy_by_kind().values()) == pytest.approx(best.energy_j)
    assert json.loads(json.dumps(best.as_dict()))["energy_j"] == pytest.approx(best.energy_j)


# ----------------------------------------------------------------------------- break-even
def test_break_even_curve(edu, silicon):
    net = mlp(64, 32, 10)
    system = hy.System(edu, silicon, npu_weights="sram")
    be = bk.break_even(system, net, 5, rates=(0.0, 0.25, 0.5, 0.75, 1.0))
    d = json.loads(json.dumps(be.as_dict()))
    for key in ("rate", "snn_energy_j", "ann_energy_j", "timesteps", "spikes_per_synapse",
                "crossover_rate", "crossover_spikes_per_synapse"):
        assert key in d
    assert len(d["ann_energy_j"]) == len(d["rate"]) == len(d["snn_energy_j"])
    # one shared rate: every synapse sees T r spikes
    assert d["spikes_per_synapse"] == pytest.approx([5 * r for r in d["rate"]])
    assert list(d["snn_energy_j"]) == sorted(d["snn_energy_j"])
    ann = d["ann_energy_j"][0]
    if be.regime == "crossover":
        x = be.crossover_rate
        assert bk.snn_energy(system, net, x, 5).energy_j == pytest.approx(ann, rel=1e-3)
        assert be.crossover_spikes_per_synapse == pytest.approx(5 * x)
    else:
        assert be.crossover_rate is None and be.crossover_spikes_per_synapse is None
    # the ANN side is the all-NPU placement
    assert ann == pytest.approx(hy.evaluate(system, net, rates_of(net, 0, 0, 0), 5,
                                            "npu").energy_j)


def test_break_even_regimes(edu, silicon, snn_edu):
    net = mlp(16, 8)
    # dynamic only, SRAM weights: an add of 0.03 pJ per synop against a 0.23 pJ MAC, but
    # the idle floor and messages: some crossover or none, always consistent
    for system in (hy.System(edu, silicon, static=False, npu_weights="sram"),
                   hy.System(edu, snn_edu)):
        be = bk.break_even(system, net, 4, rates=(0.0, 0.5, 1.0))
        assert be.regime in ("crossover", "snn_cheaper", "ann_cheaper")
        e = be.snn_energy_j
        if be.regime == "ann_cheaper":
            assert e[0] >= be.ann_energy_j
        if be.regime == "snn_cheaper":
            assert e[-1] <= be.ann_energy_j


# ----------------------------------------------------------------------------- bad input
def one_line(exc) -> bool:
    return "\n" not in str(exc)


@pytest.mark.parametrize("kwargs", [{"npu_weights": "hbm"}, {"interface": "pcie"},
                                    {"input_domain": "spikes"}, {"dtype": "int7"},
                                    {"snn_options": {"mapping": None}}])
def test_bad_system(edu, silicon, kwargs):
    with pytest.raises(NpusimError) as e:
        hy.System(edu, silicon, **kwargs)
    assert one_line(e.value)


def test_bad_placement_requests(edu, silicon):
    net = mlp(4, 3)
    system = hy.System(edu, silicon)
    good = rates_of(net, 0.1, 0.1)
    cases = [lambda: hy.place(system, net, good, 4, "power"),
             lambda: hy.place(system, net, {"in": 0.1}, 4),
             lambda: hy.place(system, net, rates_of(net, 0.1, 1.5), 4),
             lambda: hy.place(system, net, good, 0),
             lambda: hy.evaluate(system, net, good, 4, ("npu", "snn")),
             lambda: hy.evaluate(system, net, good, 4, "gpu"),
             lambda: bk.break_even(system, net, 4, rates=(0.5, 2.0)),
             lambda: hy.place(system, es.Network("x", (es.Layer("in", "input", (3,)),)), {}, 4)]
    for case in cases:
        with pytest.raises(NpusimError) as e:
            case()
        assert one_line(e.value)


def test_too_big_for_the_cores_stays_on_the_npu(edu, snn_edu):
    # snn-edu holds 16 x 256 neurons: 5,000 do not fit, so only the NPU placement remains
    net = mlp(5000, 10)
    system = hy.System(edu, snn_edu)
    r = rates_of(net, 0.1, 0.1)
    with pytest.raises(CapacityError):
        hy.evaluate(system, net, r, 2, "snn")
    assert hy.place(system, net, r, 2).sides == ("npu",)


# ----------------------------------------------------------------------------- the benchmark
def test_benchmark_prints_a_consistent_crossover_row(benchmark_script, capsys):
    b = benchmark_script("snn_breakeven")
    label, arch, dev, iface = b.pairs(True)[1]          # edu | same-silicon
    rows = b.crossover_table([b.tiny()], [(label, arch, dev, iface)], (0.0, 0.5, 1.0))
    out = capsys.readouterr().out
    assert len(rows) == 4 and "Crossovers at T = 5" in out
    for row in rows:
        line = [ln for ln in out.splitlines()
                if ln.startswith("mlp64-32-10") and f" {row['weights']} " in ln
                and f" {row['static']} " in ln]
        assert len(line) == 1 and row["regime"] in line[0]
        if row["crossover_rate"] is not None:
            assert f"{row['crossover_rate'] * 100:6.2f}%" in line[0]


def test_break_even_names_reachable_from_hybrid(edu):
    # the CLI and API reach the break-even half through engine.hybrid
    assert hy.break_even is bk.break_even and hy.same_silicon_device is bk.same_silicon_device
    assert hy.BreakEven is bk.BreakEven
    with pytest.raises(AttributeError):
        hy.no_such_name
