"""npusim/report/snn.py and snn_plots.py: per-layer records of a spiking run, their exporters
and figures.

Hand case: the 4 -> 3 -> 2 network of ``tests/test_snn_engine.py`` on ``snn-edu`` (every cost an
assumption: synop 10 pJ / 2 ns, update active 50 pJ / 10 ns, idle 20 pJ / 5 ns, fire 50 pJ /
20 ns, message out 50 pJ / 10 ns, hop 5 pJ / 5 ns, axon in 0 pJ / 5 ns; barrier 100 ns + 10 ns
per tile; 10 mW static), layers on cores 0, 4 and 8. The engine test derives its counts; here
they are split by core:

* core 0 (in): t0 2 messages (100 pJ, 20 ns) + 2 N-S hops (10 pJ, 10 ns): 110 pJ, busy 30 ns.
* core 4 (hidden): t0 6 synops (60 pJ, 12 ns), 2 axon-ins (0 pJ, 10 ns), 3 idle (60 pJ,
  15 ns): 120 pJ, 37 ns; t1 3 active (150 pJ, 30 ns), 1 fire (50 pJ, 20 ns), 1 message
  (50 pJ, 10 ns), 1 E-W + 1 N-S hop (10 pJ, 10 ns): 260 pJ, 70 ns. Total 380 pJ, busy 107 ns.
* core 8 (out): t0 2 idle (40 pJ, 10 ns); t1 2 synops (20 pJ, 4 ns), 1 axon-in (5 ns), 2 idle
  (40 pJ, 10 ns): 100 pJ, busy 10 + 19 = 29 ns.
* static 10 mW x 367 ns = 3,670 pJ, a third per layer (one core each).
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from rich.console import Console

from npusim.arch.snn_device import load_snn_device
from npusim.engine import snn as es
from npusim.errors import NpusimError, OutputError
from npusim.report import snn as rs
from npusim.report import snn_plots as sp

PJ, NS = 1e-12, 1e-9


@pytest.fixture(scope="module")
def edu():
    return load_snn_device("snn-edu")


@pytest.fixture(scope="module")
def loihi():
    return load_snn_device("loihi")


def conv_net():
    return es.Network("cnn", (es.Layer("img", "input", (1, 6, 6)),
                              es.Layer("conv", "conv2d", (2, 4, 4), kernel=(3, 3)),
                              es.Layer("fc", "dense", (5,))))


@pytest.fixture(scope="module")
def hand(edu, net_432):
    act = net_432[1]
    r = es.run(net_432[0], edu, act)
    return r, rs.snn_report(net_432[0], r, edu, activity=act)


def clean_error(exc: BaseException) -> bool:
    msg = str(exc)
    return "\n" not in msg and "Traceback" not in msg and len(msg) > 20


# ----------------------------------------------------------------------------- records
def test_hand_records(hand):
    _, rep = hand
    got = {r.name: r for r in rep.layers}
    assert [(r.first_core, r.n_cores, r.per_core, r.bound_by) for r in rep.layers] == \
        [(0, 1, 4, "layer"), (4, 1, 3, "layer"), (8, 1, 2, "layer")]
    assert [r.synapses for r in rep.layers] == [0, 12, 6]
    assert [got[n].dynamic_j for n in ("in", "hidden", "out")] == \
        pytest.approx([110 * PJ, 380 * PJ, 100 * PJ], rel=1e-12)
    for r in rep.layers:
        assert r.static_j == pytest.approx(3670 * PJ / 3, rel=1e-12)
        assert r.energy_j == pytest.approx(r.dynamic_j + r.static_j, rel=1e-12)
    assert [r.synops for r in rep.layers] == [0, 6, 2]
    assert [r.spikes for r in rep.layers] == [2, 1, 0]
    assert got["hidden"].energy_by_term_j["SYNOP"] == pytest.approx(60 * PJ, rel=1e-12)
    assert got["in"].energy_by_term_j["HOP_NS"] == pytest.approx(10 * PJ, rel=1e-12)
    assert got["hidden"].energy_by_term_j["HOP_EW"] == pytest.approx(5 * PJ, rel=1e-12)
    assert [r.busy_s for r in rep.layers] == pytest.approx([30 * NS, 107 * NS, 29 * NS],
                                                          rel=1e-12)
    assert [r.critical_steps for r in rep.layers] == [0, 2, 0]
    assert got["hidden"].share == pytest.approx((380 + 3670 / 3) / (590 + 3670), rel=1e-12)
    assert "LEARN" not in got["hidden"].energy_by_term_j      # absent on snn-edu, not 0


def test_hand_totals(hand):
    r, rep = hand
    t = rep.totals()
    assert t["energy_j"] == pytest.approx(4260 * PJ, rel=1e-12)
    assert (t["synops"], t["spikes"], t["timesteps"], t["neurons"], t["cores"]) == (8, 3, 2, 9, 3)
    assert t["latency_s"] == pytest.approx(367 * NS, rel=1e-12)
    assert t["energy_by_term_j"]["STATIC"] == pytest.approx(3670 * PJ, rel=1e-12)
    assert t["energy_per_synop_j"] == pytest.approx(4260 * PJ / 8, rel=1e-12)
    assert t["critical_steps"] == 2


def test_spikes_without_activity_come_from_the_counts(edu, hand, net_432):
    # hidden and out: their NEURON_FIRE events; in: hidden's 6 synops / fan-out 3 = 2
    r, rep = hand
    plain = rs.snn_report(net_432[0], r, edu)
    assert [x.spikes for x in plain.layers] == [x.spikes for x in rep.layers] == [2, 1, 0]
    assert not any("spikes" in n for n in plain.notes)


def test_conv_input_spikes_need_the_activity(loihi):
    # a 3x3 conv's inputs have fan-outs 2 .. 18 (edge vs centre): no exact division
    act = {"img": 0.25, "conv": 0.1, "fc": 0.05}
    r = es.run(conv_net(), loihi, act, timesteps=4)
    plain = rs.snn_report(conv_net(), r, loihi)
    assert plain.layers[0].spikes is None and plain.totals()["spikes"] is None
    assert any("'img'" in n and "activity=" in n for n in plain.notes)
    full = rs.snn_report(conv_net(), r, loihi, activity=act)
    assert [x.spikes for x in full.layers] == pytest.approx([0.25 * 36 * 4, 0.1 * 32 * 4,
                                                             0.05 * 5 * 4])
    # the counts' own firings agree with the rates for the layers that fire
    assert [x.spikes for x in plain.layers[1:]] == pytest.approx(
        [x.spikes for x in full.layers[1:]], rel=1e-12)
    assert full.layers[1].synapses == 2 * 16 * 9 and full.layers[2].synapses == 32 * 5


def test_all_in_device_spikes_from_synops(net_432):
    # TrueNorth counts only synops (26 pJ all-in): dense fan-outs recover in and hidden, the
    # last layer sends nothing, so its spikes are unknown without the activity
    tn = load_snn_device("truenorth")
    r = es.run(net_432[0], tn, net_432[1])
    rep = rs.snn_report(net_432[0], r, tn)
    assert [x.spikes for x in rep.layers] == [2, 1, None]
    assert rep.totals()["energy_j"] == pytest.approx(r.energy_j, rel=1e-12)
    assert rep.provenance["cost_set"]["all_in"] is True
    # 1 ms tick: each step's slack after the slowest core is a tick wait in the trace
    ev = rs.snn_trace_events(rep)
    assert sum(e["name"] == "tick wait" for e in ev) == 2


def _net(draw_sizes, conv):
    if conv:
        return conv_net()
    layers = [es.Layer("L0", "input", (draw_sizes[0],))]
    layers += [es.Layer(f"L{i}", "dense", (n,)) for i, n in enumerate(draw_sizes[1:], 1)]
    return es.Network("h", tuple(layers))


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=2, max_size=4),
       rates=st.lists(st.floats(0, 1), min_size=4, max_size=4),
       timesteps=st.integers(1, 4), device=st.sampled_from(["snn-edu", "loihi"]),
       conv=st.booleans())
def test_totals_are_sums_of_records(sizes, rates, timesteps, device, conv):
    dev = load_snn_device(device)
    net = _net(sizes, conv)
    act = {lay.name: rates[i] for i, lay in enumerate(net.layers)}
    r = es.run(net, dev, act, timesteps)
    rep = rs.snn_report(net, r, dev, activity=act)
    t = rep.totals()
    recs = rep.layers
    for key in ("energy_j", "dynamic_j", "static_j", "synops", "spikes", "neurons",
                "synapses", "core_busy_s", "critical_steps"):
        assert t[key] == pytest.approx(math.fsum(getattr(x, key) for x in recs), rel=1e-12,
                                       abs=1e-30)
    # ... and the records add up to the run itself
    assert t["energy_j"] == pytest.approx(r.energy_j, rel=1e-9)
    assert t["static_j"] == pytest.approx(r.static_j, rel=1e-12, abs=1e-30)
    assert t["synops"] == pytest.approx(r.counts[:, :, 0].sum(), rel=1e-12)
    assert t["cores"] == len({c for lay in net.layers for c in r.mapping.core_of[lay.name]}) \
        == sum(x.n_cores for x in recs) == round(math.fsum(x.core_share for x in recs))
    for term, v in r.energy_by_term_j.items():
        if math.isnan(v):
            assert term not in t["energy_by_term_j"]
        else:
            assert t["energy_by_term_j"][term] == pytest.approx(v, rel=1e-9, abs=1e-30)
            assert t["energy_by_term_j"][term] == pytest.approx(
                math.fsum(x.energy_by_term_j[term] for x in recs), rel=1e-12, abs=1e-30)
    if r.energy_j > 0:
        assert math.fsum(x.share for x in recs) == pytest.approx(1.0, rel=1e-9)
    assert t["spikes"] == pytest.approx(
        math.fsum(rates[i] * lay.size * timesteps for i, lay in enumerate(net.layers)))
    assert t["critical_steps"] <= timesteps


def test_report_refuses_costs_other_than_the_runs(edu, net_432):
    act = {"in": 0.5, "hidden": 0.2, "out": 0.1}
    over = {"synop": (99e-12, 2e-9)}
    r = es.run(net_432[0], edu, act, 3, costs=over)
    with pytest.raises(NpusimError, match="SYNOP energy priced per core.*costs") as e:
        rs.snn_report(net_432[0], r, edu)
    assert clean_error(e.value)
    rep = rs.snn_report(net_432[0], r, edu, costs=over)
    assert rep.totals()["energy_j"] == pytest.approx(r.energy_j, rel=1e-12)
    assert rep.provenance["overrides"]["costs"]["synop"]["energy_j"] == 99e-12
    # a per-layer override prices only that layer's cores
    lc = {"out": {"synop": (1e-12, 2e-9)}}
    r2 = es.run(net_432[0], edu, act, 3, layer_costs=lc)
    rep2 = rs.snn_report(net_432[0], r2, edu, layer_costs=lc)
    assert rep2.layers[2].energy_by_term_j["SYNOP"] == pytest.approx(
        1e-12 * rep2.layers[2].synops, rel=1e-12)
    with pytest.raises(NpusimError, match="layer_costs names layers \\['nope'\\]"):
        rs.snn_report(net_432[0], r2, edu, layer_costs={"nope": {}})


def test_report_refuses_another_networks_result_or_bad_activity(edu, hand, net_432):
    r, _ = hand
    other = es.Network("o", (es.Layer("in", "input", (4,)), es.Layer("x", "dense", (3,))))
    with pytest.raises(NpusimError, match="no layer \\['x'\\]") as e:
        rs.snn_report(other, r, edu)
    assert clean_error(e.value)
    with pytest.raises(NpusimError, match="no entry for layer 'out'"):
        rs.snn_report(net_432[0], r, edu, activity={"in": 0.1, "hidden": 0.1})
    with pytest.raises(NpusimError, match="layer 'hidden': a raster of shape \\(3, 3\\)"):
        rs.snn_report(net_432[0], r, edu, activity={**net_432[1],
                                                   "hidden": np.zeros((3, 3), bool)})


def test_provenance_cites_the_cost_set(loihi):
    p = rs.provenance(loihi, "table2")
    assert p["cost_set"]["name"] == "table2" and p["cost_set"]["voltage_v"] == pytest.approx(0.75)
    syn = p["events"]["synop"]
    assert (syn["energy_j"], syn["basis"], syn["source"]) == (pytest.approx(23.6e-12),
                                                              "simulated", "D18")
    assert syn["reference"].startswith("Davies et al. 2018")
    assert p["static"]["source"] == "F20" and p["file"].endswith("loihi.yaml")


# ----------------------------------------------------------------------------- exporters
def test_json(hand, tmp_path):
    _, rep = hand
    d = json.loads(rs.write_snn_json(rep, tmp_path / "snn.json").read_text())
    assert set(d) >= {"totals", "layers", "device", "steps", "notes"}
    t = d["totals"]
    for key in ("synops", "spikes", "timesteps", "energy_j", "latency_s", "static_j",
                "energy_by_term_j"):
        assert key in t
    assert t["synops"] == sum(x["synops"] for x in d["layers"]) == 8
    assert t["energy_by_term_j"]["STATIC"] == pytest.approx(3670 * PJ)
    assert [x["bound_by"] for x in d["layers"]] == ["layer"] * 3
    assert [x["n_cores"] for x in d["layers"]] == [1, 1, 1]
    assert d["device"]["name"] == "snn-edu" and d["device"]["cost_set"]["name"] == "default"
    assert d["steps"]["critical_layer"] == ["hidden", "hidden"]


def test_json_unknown_spikes_are_null(loihi, tmp_path):
    r = es.run(conv_net(), loihi, {"img": 0.2, "conv": 0.1, "fc": 0.0}, timesteps=2)
    rep = rs.snn_report(conv_net(), r, loihi)
    d = json.loads(rs.write_snn_json(rep, tmp_path / "s.json").read_text())
    assert d["layers"][0]["spikes"] is None and d["totals"]["spikes"] is None
    rows = list(csv.DictReader(rs.write_snn_csv(rep, tmp_path / "s.csv").open()))
    assert rows[0]["spikes"] == "" and rows[0]["shape"] == "1x6x6"


def test_csv_one_row_per_layer(edu, tmp_path):
    net = es.Network("n", (es.Layer("=in", "input", (4,)), es.Layer("h", "dense", (3,))))
    act = {"=in": 0.5, "h": 0.25}
    r = es.run(net, edu, act, 2)
    rep = rs.snn_report(net, r, edu, activity=act)
    rows = list(csv.DictReader(rs.write_snn_csv(rep, tmp_path / "l.csv").open()))
    assert [x["name"] for x in rows] == ["'=in", "h"]          # spreadsheet-safe
    assert float(rows[1]["synops"]) == 0.5 * 4 * 3 * 2
    assert float(rows[0]["spikes"]) == 4.0 and float(rows[1]["spikes"]) == 1.5
    total = sum(float(x["energy_j"]) for x in rows)
    assert total == pytest.approx(r.energy_j, rel=1e-12)
    assert sum(float(x["energy_STATIC_j"]) for x in rows) == pytest.approx(r.static_j)
    assert "energy_LEARN_j" not in rows[0]


def _overlaps(slices):
    slices = sorted(slices)
    return any(b[0] < a[1] - 1e-9 for a, b in zip(slices, slices[1:]))


def test_trace_tracks_and_slices(loihi, tmp_path):
    act = {"img": 0.3, "conv": 0.2, "fc": 0.1}
    r = es.run(conv_net(), loihi, act, timesteps=3, max_neurons_per_core=10)
    rep = rs.snn_report(conv_net(), r, loihi, activity=act)
    d = json.loads(rs.write_snn_trace(rep, tmp_path / "t.json").read_text())
    ev = d["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    used = sorted({c for lay in conv_net().layers for c in r.mapping.core_of[lay.name]})
    assert sorted(v for v in names.values() if v.startswith("core")) == \
        sorted(f"core {c} ({rep.core_layer[c]})" for c in used)
    xs = [e for e in ev if e["ph"] == "X"]
    by_tid: dict[int, list] = {}
    for e in xs:
        by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    assert not any(_overlaps(v) for v in by_tid.values())
    steps = sorted(e for e in by_tid[[t for t, n in names.items() if n == "timestep"][0]])
    assert len(steps) == 3 and steps[0][0] == 0
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(steps, steps[1:]))
    assert steps[-1][1] == pytest.approx(r.latency_s * 1e6)
    assert sum(e["name"] == "barrier" for e in xs) == 3
    for tid, name in names.items():
        if name.startswith("core"):
            c = int(name.split()[1])
            assert sum(b - a for a, b in by_tid.get(tid, [])) == pytest.approx(
                r.core_busy_s[:, c].sum() * 1e6, abs=1e-5)
    crit = [e for e in xs if e["cat"] == "core" and e["args"]["critical"]]
    assert len(crit) == 3 and d["otherData"]["energy_j"] == pytest.approx(r.energy_j)


def test_unwritable_paths_are_one_clean_error(hand, tmp_path):
    _, rep = hand
    missing = tmp_path / "no" / "such"
    for write, name in ((rs.write_snn_json, "x.json"), (rs.write_snn_csv, "x.csv"),
                        (rs.write_snn_trace, "x.trace.json")):
        with pytest.raises(OutputError, match="cannot write") as e:
            write(rep, missing / name)
        assert clean_error(e.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as e:
        sp.plot_snn(rep, blocker / "plots")
    assert clean_error(e.value)


def test_print_snn(hand):
    _, rep = hand
    con = Console(record=True, width=160)
    rs.print_snn(rep, con)
    text = con.export_text()
    assert "432" in text and "snn-edu" in text and "synops 8" in text
    assert "hidden" in text and "neurons_per_core" not in text and "layer" in text
    narrow = Console(record=True, width=60)
    rs.print_snn(rep, narrow)
    assert "not shown at 60 columns" in narrow.export_text()


# ----------------------------------------------------------------------------- plots
def curve(**over):
    d = {"rate": [0.0, 0.02, 0.05, 0.1], "snn_energy_j": [1e-6, 2e-6, 3.5e-6, 6e-6],
         "ann_energy_j": [3e-6] * 4, "timesteps": 5,
         "spikes_per_synapse": [0.0, 0.1, 0.25, 0.5], "crossover_rate": 0.045,
         "crossover_spikes_per_synapse": 0.225}
    d.update(over)
    return d


def test_plots_write_images(hand, tmp_path):
    pytest.importorskip("matplotlib")
    _, rep = hand
    paths = sp.plot_snn(rep, tmp_path / "p")
    paths.append(sp.plot_breakeven(curve(), tmp_path / "be.png"))
    paths.append(sp.plot_breakeven(curve(crossover_rate=None, crossover_spikes_per_synapse=None,
                                         ann_energy_j=9e-6), tmp_path / "none.svg"))
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = sp.energy_figure(rep)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(lab.startswith("STATIC") and "(86.2%)" in lab for lab in labels)  # 3670/4260
    # spikes per synapse = 5 x rate: a top axis in spikes per synapse; not proportional: none
    assert len(sp.breakeven_figure(curve()).axes[0].child_axes) == 1
    skew = curve(spikes_per_synapse=[0.0, 0.1, 0.3, 0.5])
    assert len(sp.breakeven_figure(skew).axes[0].child_axes) == 0


def test_breakeven_curve_errors_name_the_key(tmp_path):
    with pytest.raises(NpusimError, match="missing keys \\['timesteps'\\]"):
        sp.breakeven_series({k: v for k, v in curve().items() if k != "timesteps"})
    with pytest.raises(NpusimError, match="'snn_energy_j' has shape \\(3,\\)"):
        sp.breakeven_series(curve(snn_energy_j=[1, 2, 3]))
    with pytest.raises(NpusimError, match="'rate' has values above 1"):
        sp.breakeven_series(curve(rate=[0, 0.5, 1.5, 2]))
    with pytest.raises(NpusimError, match="'ann_energy_j' holds negative"):
        sp.breakeven_series(curve(ann_energy_j=float("nan")))
    with pytest.raises(NpusimError, match="'crossover_rate' is 'x'"):
        sp.breakeven_series(curve(crossover_rate="x"))
    with pytest.raises(OutputError) as e:
        sp.plot_breakeven(curve(), tmp_path / "no" / "be.png")
    assert clean_error(e.value)


_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                    st.text(max_size=3), st.lists(st.floats(-1, 2), max_size=5),
                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@settings(max_examples=60, deadline=None)
@given(drop=st.sets(st.sampled_from(sp.BREAKEVEN_KEYS), max_size=2),
       changes=st.dictionaries(st.sampled_from(sp.BREAKEVEN_KEYS), _values, max_size=3))
def test_fuzz_breakeven_curve_is_accepted_or_refused_cleanly(drop, changes):
    d = {k: v for k, v in curve(**changes).items() if k not in drop}
    try:
        out = sp.breakeven_series(d)
    except NpusimError as e:
        assert clean_error(e)
    else:
        n = out["rate"].size
        assert all(out[k].shape == (n,) and (out[k] >= 0).all() for k in sp.BREAKEVEN_SERIES)


def test_a_core_shared_by_two_layers_splits_by_neurons(edu, net_432):
    # in (4) and hidden (3) on core 0, out (2) on core 1 (same tile: in-tile deliveries).
    # hidden's LayerMap holds no core range of its own, so the run prices core 0 once.
    m0 = es.map_network(net_432[0], edu)
    lm = (es.LayerMap("in", 0, 1, 4, "layer"), es.LayerMap("hidden", 1, 0, 3, "layer"),
          es.LayerMap("out", 1, 1, 2, "layer"))
    core_of = {"in": np.zeros(4, np.int64), "hidden": np.zeros(3, np.int64),
               "out": np.ones(2, np.int64)}
    m = es.CoreMap(layers=lm, core_of=core_of, n_cores=2, core_x=m0.core_x[:2],
                   core_y=m0.core_y[:2], core_tile=m0.core_tile[:2],
                   core_chip=m0.core_chip[:2], chips=1)
    act = {"in": 0.5, "hidden": 0.25, "out": 0.1}
    r = es.run(net_432[0], edu, act, 3, mapping=m)
    rep = rs.snn_report(net_432[0], r, edu, activity=act)
    e0 = rep.layers[0].dynamic_j + rep.layers[1].dynamic_j
    assert rep.layers[0].dynamic_j == pytest.approx(e0 * 4 / 7, rel=1e-12)
    assert rep.layers[0].static_j == pytest.approx(r.static_j * 4 / 7 / 2, rel=1e-12)
    assert rep.totals()["energy_j"] == pytest.approx(r.energy_j, rel=1e-12)
    assert [x.n_cores for x in rep.layers] == [1, 1, 1] and rep.totals()["cores"] == 2
    assert [x.core_share for x in rep.layers] == pytest.approx([4 / 7, 3 / 7, 1])
    assert any("several layers" in n for n in rep.notes)


def test_results_doc_lists_every_spiking_json_and_csv_field(tmp_path):
    """docs/results.md's spiking section names every field of a real run's JSON and CSV."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    section = doc[doc.index("## Spiking-core runs"):]
    ticked = set(re.findall(r"`([^`\n]+)`", section))
    net = es.Network("n", (es.Layer("in", "input", (4,)), es.Layer("h", "dense", (3,))))
    dev = load_snn_device("snn-edu")
    result = es.run(net, dev, {"in": 0.5, "h": 0.25}, 4)
    rep = rs.snn_report(net, result, dev, activity={"in": 0.5, "h": 0.25})
    data = rep.to_dict()
    assert set(data) <= ticked
    assert set(data["totals"]) <= ticked
    assert set(data["layers"][0]) <= ticked
    assert set(data["device"]) <= ticked and set(data["steps"]) <= ticked
    cols = [c for c in rs.csv_columns(rep) if not (c.startswith("energy_") and c.endswith("_j")
                                                and c[7:-2].isupper())]
    assert set(cols) <= ticked
