"""benchmarks/vs_sanafe.py: SANA-FE's side of the npusim-vs-SANA-FE comparison (issue 11 item 6).

Without ``sanafe`` installed the SANA-FE tests skip and the script exits 0 with an install hint.
With it, the tests prove we know what SANA-FE counts: synaptic events = input spikes x fan-out
(hand arithmetic on the trains we generated), a 4-3-2 net priced by hand from loihi.yaml's
costs, and the per-core counts re-derived from the spike rasters re-priced to SANA-FE's energy
and (simple timing model) latency.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest





@pytest.fixture(scope="module")
def vs(benchmark_script):
    pytest.importorskip("sanafe")
    return benchmark_script("vs_sanafe")


def test_without_sanafe_exits_0_with_install_hint(monkeypatch, capsys, benchmark_script):
    mod = benchmark_script("vs_sanafe")
    monkeypatch.setitem(sys.modules, "sanafe", None)      # import sanafe -> ImportError
    assert mod.main(["--quick"]) == 0
    assert "pip install sanafe" in capsys.readouterr().out


def test_rate_outside_0_1_is_refused(benchmark_script):
    mod = benchmark_script("vs_sanafe")
    with pytest.raises(ValueError, match=r"rate 1.5 is outside \[0, 1\]"):
        mod.input_trains(mod.dense_net(8, 4, 2), 1.5, 4)


def test_quick_prints_the_table(vs, capsys):
    assert vs.main(["--quick"]) == 0
    out = capsys.readouterr().out
    row = [ln for ln in out.splitlines() if ln.startswith("dense64-64-10")]
    assert len(row) == 1 and "not yet wired" not in row[0]
    # npusim's energy ratio (column after the '|') is printed and close to 1
    ratio = float(row[0].split("|")[1].split()[1])
    assert abs(ratio - 1) < 0.1


def test_dense_synaptic_events_are_spikes_times_fanout(vs):
    spec = vs.dense_net(64, 64, 10)
    r = vs.sanafe_run(spec, 0.2, 8)
    hidden = r["spec"].spikes["hidden"].sum(axis=1)
    # every input spike reaches all 64 hidden neurons, every hidden spike all 10 outputs
    want = r["trains"].sum(axis=1) * 64 + hidden * 10
    assert np.array_equal(r["trace"]["spikes"], want)
    assert r["counts"]["synops"] == int(want.sum())
    # the input spikes SANA-FE reports are exactly the trains we gave it
    assert np.array_equal(r["spec"].spikes["in"], r["trains"])


def test_hand_priced_4_3_2_net(vs):
    """4 inputs -> 3 hidden (w = 0.1, never fires) -> 2 outputs, T = 3, each layer on its own
    tile (tiles 0, 1, 2; tile 1 is one north-south hop from tile 0)."""
    spec = vs.NetSpec("hand", [
        vs.LayerSpec("in", "input", (4,)),
        vs.LayerSpec("hidden", "dense", (3,), np.full((4, 3), 0.1)),
        vs.LayerSpec("out", "dense", (2,), np.full((3, 2), 0.1)),
    ])
    vs.map_layers(spec)
    trains = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    r = vs.sanafe_run(spec, 0.0, 3, timing_model="simple", trains=trains)
    pj = 1e-12
    # synapse: (2 + 0 + 4) input spikes x fan-out 3 = 18 events x 35.5 pJ
    assert r["counts"]["synops"] == 18
    assert r["energy_by_term_j"]["synapse"] == pytest.approx(18 * 35.5 * pj, rel=1e-9)
    # soma: 5 LIF neurons accessed every step (15 x 51.2 pJ); the hidden three are updated in
    # step 2 (input in step 1) and step 3 (potential 0.2 -> 12/64, not at rest): 6 x 21.6 pJ
    assert r["energy_by_term_j"]["soma"] == pytest.approx((15 * 51.2 + 6 * 21.6) * pj, rel=1e-9)
    # network: one message per input spike (one destination core): 6 x 111 pJ; 1 N-S hop each
    assert r["counts"]["packets"] == 6 and r["counts"]["hops"] == 6
    assert r["energy_by_term_j"]["network"] == pytest.approx(6 * (111 + 4.2) * pj, rel=1e-9)
    assert r["energy_j"] == pytest.approx(2227.8 * pj, rel=1e-9)
    # simple timing: per core max(front, back), max over cores, + 1.0 us sync (3 tiles)
    # step 1: hidden core front = 2 x 16 ns + 6 x 3.8 ns = 54.8 ns
    # step 2: hidden core back = 3 x (6.0 + 3.7) ns = 29.1 ns
    # step 3: hidden core front = 4 x 16 ns + 12 x 3.8 ns = 109.6 ns
    want = np.array([1054.8, 1029.1, 1109.6]) * 1e-9
    assert np.allclose(r["step_latency_s"], want, rtol=1e-9)


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_recounted_events_reprice_to_sanafe(vs, net):
    spec = vs.dense_net(64, 64, 10) if net == "dense" else vs.conv_net(8, 4, 10)
    r = vs.sanafe_run(spec, 0.3, 8, timing_model="simple")
    rc = vs.recount(spec, r)
    assert rc["spikes_match"]
    p = rc["priced"]
    for term in ("soma", "synapse", "network"):
        assert p["energy_by_term_j"][term] == pytest.approx(r["energy_by_term_j"][term],
                                                            rel=1e-9)
    assert np.allclose(p["step_latency_s"], r["step_latency_s"], rtol=1e-9)
    c = rc["counts"]
    assert np.array_equal((c["synops"] + c["synops_conv"]).sum(axis=1), r["trace"]["spikes"])
    assert np.array_equal((c["hops_ew"] + c["hops_ns"]).sum(axis=1), r["trace"]["hops"])


@pytest.mark.parametrize("net", ["dense", "conv"])
@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2, 0.4])
def test_npusim_within_10_percent_of_sanafe(vs, net, rate):
    """The default cases, on the very rasters SANA-FE produced: npusim's engine priced with
    SANA-FE's file costs lands within 10 % of SANA-FE's energy (measured: within 0.1 %; the
    rest is npusim's closed-form update count, which misses the rare potential truncated to
    exactly 0) and, against the simple timing model, of its latency."""
    spec = vs.dense_net() if net == "dense" else vs.conv_net()
    r = vs.sanafe_run(spec, rate, vs.TIMESTEPS, timing_model="simple")
    n = vs.npusim_run(spec, r)
    print(f"{spec.name} rate {rate}: SANA-FE {r['energy_j'] * 1e9:.1f} nJ "
          f"{r['latency_s'] * 1e6:.1f} us, npusim {n['energy_j'] * 1e9:.1f} nJ "
          f"{n['latency_s'] * 1e6:.1f} us")
    assert n["energy_j"] == pytest.approx(r["energy_j"], rel=0.10)
    assert n["energy_j"] == pytest.approx(r["energy_j"], rel=0.005)       # what holds now
    assert n["latency_s"] == pytest.approx(r["latency_s"], rel=0.01)
    c = n["counts"]
    assert c[:, :, 0].sum() == r["counts"]["synops"]                    # SYNOP
    assert c[:, :, 3].sum() == r["counts"]["packets"]                   # SPIKE_OUT: messages
    assert (c[:, :, 5] + c[:, :, 6]).sum() == r["counts"]["hops"]       # HOP_EW + HOP_NS


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_npusim_rates_mode_near_sanafe(vs, net):
    """Rates only (each layer's mean spikes per neuron per step from SANA-FE's rasters, no
    rasters): expected counts land within 1 % of SANA-FE's energy (measured 0.0-0.5 %) and
    5 % of its simple-model latency (measured 0.7-3.4 %: the slowest core of mean counts is
    not the mean of the slowest cores)."""
    from npusim.arch.snn_device import load_snn_device
    from npusim.engine import snn as es

    spec = vs.dense_net() if net == "dense" else vs.conv_net()
    r = vs.sanafe_run(spec, 0.2, vs.TIMESTEPS, timing_model="simple")
    costs, conv = vs.sanafe_costs()
    rates = {k: float(v.mean()) for k, v in r["spec"].spikes.items()}
    n = es.run(vs.npusim_network(spec), load_snn_device("loihi"), rates, vs.TIMESTEPS,
               costs=costs, stages="sanafe", static_power=0.0, barrier=vs.sync_latency,
               layer_costs={lay.name: conv for lay in spec.layers if lay.kind == "conv2d"},
               max_neurons_per_core=spec.neurons_per_core)
    assert n.energy_j == pytest.approx(r["energy_j"], rel=0.01)
    assert n.latency_s == pytest.approx(r["latency_s"], rel=0.05)
