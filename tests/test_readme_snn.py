"""The README's neuromorphic figures are what npusim computes today: each table is recomputed
here and compared cell by cell (3 significant digits, as written)."""
from __future__ import annotations

from pathlib import Path

import pytest

import npusim
from npusim.arch import load_arch
from npusim.arch.snn_device import load_snn_device
from npusim.engine import hybrid as eh
from npusim.engine.snn_graph import to_network
from npusim.graphs import vision

README = Path(__file__).resolve().parents[1] / "README.md"
pytestmark = pytest.mark.xdist_group("readme-snn")
T, RATE = 8, 0.05




def g3(x: float) -> str:
    return f"{x:.3g}"


def _k(x: float) -> str:
    return f"{g3(x / 1e3)} k" if x >= 1e3 else g3(x)


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    return vision.write("lenet", tmp_path_factory.mktemp("snn") / "lenet.onnx")


def test_lenet_on_loihi_table(lenet, readme_table):
    rows = readme_table("| run | cores (tiles) |")
    assert [r[0] for r in rows] == ["loihi, greedy mapper", "loihi, traffic mapper"]
    hops = {}
    for (label, cores, synops, energy, latency), mapper in zip(rows, ("greedy", "traffic")):
        r = npusim.simulate_snn(lenet, "loihi", timesteps=T, default_rate=RATE, mapper=mapper)
        t = r.totals()
        assert cores == f"{t['cores']} ({t['tiles']})", label
        assert synops == _k(t["synops"]), label
        assert energy == f"{g3(t['energy_j'] * 1e6)} uJ ({g3(t['dynamic_j'] * 1e6)} uJ)", label
        assert latency == f"{g3(t['latency_s'] * 1e6)} us", label
        by = r.result.energy_by_term_j
        hops[mapper] = by["HOP_EW"] + by["HOP_NS"]
    # the prose: "cuts hops about 6x (from 46 nJ to 8 nJ of NoC energy)"
    text = README.read_text(encoding="utf-8")
    assert f"from {hops['greedy'] * 1e9:.0f} nJ" in text
    assert f"to {hops['traffic'] * 1e9:.0f} nJ of NoC energy" in text
    assert f"about {hops['greedy'] / hops['traffic']:.0f}x" in text


def test_hybrid_table(lenet, readme_table):
    rows = readme_table("| system, T = 8, rate 0.05 |")
    got = {}
    for place in ("npu", "snn", "auto"):
        got[place] = npusim.simulate_hybrid(lenet, "edu", "loihi", timesteps=T,
                                            default_rate=RATE, place=place)
    for (system, placement, energy, latency), place in zip(rows, ("npu", "snn", "auto")):
        p = got[place]
        assert energy == f"{g3(p.energy_j * 1e6)} uJ", system
        assert latency == f"{g3(p.latency_s * 1e6)} us", system
    auto = got["auto"]
    sides = dict(zip(auto.layers, auto.sides))
    # "convolutions on edu, dense layers on loihi"
    assert {sides[n] for n in ("relu1", "pool1", "relu2", "pool2")} == {"npu"}
    assert {sides[n] for n in ("relu_fc1", "relu_fc2", "fc3:out")} == {"snn"}
    assert auto.energy_j <= min(got["npu"].energy_j, got["snn"].energy_j)


def test_breakeven_table(lenet, readme_table):
    rows = readme_table("| ANN on | SNN on | break-even rate |")
    graph = npusim.load_snn_graph(lenet, 5, default_rate=0.0)
    net, _ = to_network(graph)
    for npu, snn, rate, sps in rows:
        arch = load_arch(npu)
        dev = (eh.same_silicon_device(arch) if snn.startswith("same silicon")
               else load_snn_device(snn))
        c = eh.break_even(eh.System(arch, dev), net, 5)
        assert c.crossover_rate is not None, (npu, snn)
        assert rate == g3(c.crossover_rate), (npu, snn)
        assert sps == g3(c.crossover_spikes_per_synapse), (npu, snn)


def test_validation_prose_is_the_report():
    """The README's validation figures are the committed report's rows (which
    test_readme checks against a fresh ``npusim validate``)."""
    report = (README.parent / "validation" / "REPORT.md").read_text(encoding="utf-8")
    text = " ".join(README.read_text(encoding="utf-8").split())
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 12 and cells[0] in ("KWS1", "TN2", "MN1"):
            rows[cells[0]] = (float(cells[-4]), float(cells[-3]), cells[-2])
    assert set(rows) == {"KWS1", "TN2", "MN1"}
    assert f"within {abs(float(rows['TN2'][2].rstrip('%'))):.2f}% (TN2)" in text
    kws = rows["KWS1"]
    assert f"gets {kws[1] * 1e6:.1f} uJ ({kws[2]}, KWS1)" in text
    assert f"comes out at {rows['MN1'][2]} with" in text
