"""`npusim run` on spiking cores and hybrids, `npusim breakeven`, `npusim archs`: end to end
through the CLI on a small CNN written here, with the numbers cross-checked against the API
and the clean-error contract for each class of bad input the issue names."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as P
from onnx import helper as h
from onnx import numpy_helper as nh

import npusim


def _clean(code: int, err: str) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def write_cnn(path, seed: int = 0):
    """1x28x28 -> conv3x3(8, pad 1) -> relu -> avgpool2 -> conv3x3(16, pad 1) -> relu -> avgpool2
    -> flatten -> fc(10), with weights (so onnxruntime can calibrate it)."""
    rng = np.random.default_rng(seed)
    inits = [nh.from_array(rng.normal(0, .3, (8, 1, 3, 3)).astype(np.float32), "w1"),
             nh.from_array(rng.normal(0, .1, (16, 8, 3, 3)).astype(np.float32), "w2"),
             nh.from_array(rng.normal(0, .05, (16 * 7 * 7, 10)).astype(np.float32), "w3")]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("AveragePool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
             h.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("AveragePool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2],
                         strides=[2, 2]),
             h.make_node("Flatten", ["p2"], ["f"], name="flat"),
             h.make_node("MatMul", ["f", "w3"], ["y"], name="fc")]
    g = h.make_graph(nodes, "cnn", [h.make_tensor_value_info("x", P.FLOAT, [1, 1, 28, 28])],
                     [h.make_tensor_value_info("y", P.FLOAT, [1, 10])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


@pytest.fixture
def cnn(tmp_path):
    return write_cnn(tmp_path / "cnn.onnx")


def test_archs_lists_the_spiking_devices(cli):
    code, out, _ = cli("archs")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in ("loihi", "loihi2", "truenorth", "snn-edu"):
        assert "[spiking cores]" in rows[name]
    assert "[spiking cores]" not in rows["rngd"]


def test_run_on_loihi_with_outputs(cli, cnn, tmp_path):
    rates = tmp_path / "rates.yaml"
    rates.write_text("input: 0.2\nrelu1: 0.1\nrelu2: 0.05\nfc:out: 0.02\n")
    js, cs, tr = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "t.json"
    code, out, err = cli("run", str(cnn), "--arch", "loihi", "--timesteps", "8", "--rates",
                         str(rates), "--json", str(js), "--csv", str(cs), "--trace", str(tr))
    assert code == 0, err
    data = json.loads(js.read_text())
    t = data["totals"]
    assert t["timesteps"] == 8
    # the same run through the API gives the same totals
    run = npusim.simulate_snn(cnn, "loihi", timesteps=8, rates=rates)
    assert t["energy_j"] == pytest.approx(run.energy_j, rel=1e-12)
    assert t["latency_s"] == pytest.approx(run.latency_s, rel=1e-12)
    # synops by hand: every synapse into a layer fires rate x T times the source's spikes
    net = run.network
    from npusim.engine.snn import connectivity
    expect = sum(connectivity(net, i)[0].size * 8 * run.rates[net.layers[i - 1].name]
                 for i in range(1, len(net.layers)))
    assert t["synops"] == pytest.approx(expect, rel=1e-9)
    layers = {r["name"]: r for r in data["layers"]}
    assert layers["relu1"]["n_cores"] >= 1 and layers["relu1"]["bound_by"]
    assert len(cs.read_text().strip().splitlines()) == len(net.layers) + 1
    trace = json.loads(tr.read_text())
    assert trace["traceEvents"]


def test_default_rate_warns_and_names_layers(cli, cnn):
    code, out, err = cli("run", str(cnn), "--arch", "loihi", "--timesteps", "4")
    assert code == 0, err
    assert "warning" in out and "relu1" in out and "0.1" in out


def test_more_spikes_never_cheaper_through_the_cli(cnn):
    e = [npusim.simulate_snn(cnn, "loihi", timesteps=4, default_rate=r).energy_j
         for r in (0.0, 0.05, 0.2)]
    assert e[0] < e[1] < e[2]


def test_calibration_through_onnxruntime(cnn):
    pytest.importorskip("onnxruntime")
    run = npusim.simulate_snn(cnn, "loihi", timesteps=4, calibrate=True)
    assert all(0.0 <= r <= 1.0 for r in run.rates.values())
    assert any("synthetic" in w or "random" in w for w in run.warnings)


def test_traffic_mapper_not_worse_in_hops(cnn):
    greedy = npusim.simulate_snn(cnn, "loihi", timesteps=4, mapper="greedy")
    traffic = npusim.simulate_snn(cnn, "loihi", timesteps=4, mapper="traffic")
    hops = [r.result.energy_by_term_j["HOP_EW"] + r.result.energy_by_term_j["HOP_NS"]
            for r in (greedy, traffic)]
    assert hops[1] <= hops[0] * (1 + 1e-9)


def test_hybrid_run_prints_and_writes_its_placement(cli, cnn, tmp_path):
    # never worse than one side: tests/test_hybrid.py (the DP against brute force)
    js = tmp_path / "h.json"
    code, out, err = cli("run", str(cnn), "--arch", "edu+loihi", "--timesteps", "8",
                         "--json", str(js))
    assert code == 0, err
    d = json.loads(js.read_text())
    assert d["energy_j"] == pytest.approx(sum(p["energy_j"] for p in d["parts"]), rel=1e-12)
    assert set(d["sides"]) == {"relu1", "pool1", "relu2", "pool2", "fc:out"}
    assert set(d["sides"].values()) <= {"npu", "snn"}
    assert "placement: least energy" in out


def test_breakeven_prints_the_crossover(cli, cnn, tmp_path):
    js = tmp_path / "be.json"
    code, out, err = cli("breakeven", str(cnn), "--arch", "rngd+loihi", "--timesteps", "5",
                         "--json", str(js))
    assert code == 0, err
    c = json.loads(js.read_text())
    assert c["regime"] in ("crossover", "snn_cheaper", "ann_cheaper")
    assert np.all(np.diff(c["snn_energy_j"]) >= 0)
    if c["crossover_rate"] is not None:
        assert "break-even at spike rate" in out


@pytest.mark.parametrize("argv, needle", [
    (["--arch", "loihi"], "timesteps"),                                  # no T
    (["--arch", "loihi", "--timesteps", "0"], "timesteps"),
    (["--arch", "edu", "--timesteps", "4"], "--timesteps"),              # ANN on an NPU
    (["--arch", "edu", "--mapper", "traffic"], "--mapper"),              # SNN option on NPU
    (["--arch", "loihi", "--timesteps", "4", "--set", "clock=1GHz"], "--set"),
    (["--arch", "loihi", "--timesteps", "4", "--batch", "2"], "--batch"),
    (["--arch", "loihi", "--timesteps", "4", "--rate", "1.5"], "[0, 1]"),
    (["--arch", "loihi", "--timesteps", "4", "--cost-set", "nope"], "nope"),
    (["--arch", "edu+same", "--timesteps", "4"], "breakeven"),
])
def test_bad_spiking_options_are_one_clean_error(cli, cnn, argv, needle):
    code, out, err = cli("run", str(cnn), *argv)
    assert _clean(code, err), err
    assert needle in err


def test_bad_rates_file_names_layer_and_file(cli, cnn, tmp_path):
    rates = tmp_path / "rates.yaml"
    rates.write_text("relu1: 1.7\n")
    code, _, err = cli("run", str(cnn), "--arch", "loihi", "--timesteps", "4", "--rates",
                       str(rates))
    assert _clean(code, err) and "relu1" in err and "rates.yaml" in err
    rates.write_text("relu9: 0.1\n")
    code, _, err = cli("run", str(cnn), "--arch", "loihi", "--timesteps", "4", "--rates",
                       str(rates))
    assert _clean(code, err) and "relu9" in err


def test_network_that_fits_no_core_count(cli, cnn, tmp_path):
    # snn-edu: 16 cores of 256 neurons; the first conv layer alone needs 25
    code, _, err = cli("run", str(cnn), "--arch", "snn-edu", "--timesteps", "4")
    assert _clean(code, err) and "relu1" in err and "more chips" in err
    # TrueNorth: 256 axons per core; every fc neuron reads 784 inputs
    code, _, err = cli("run", str(cnn), "--arch", "truenorth", "--timesteps", "4")
    assert _clean(code, err), err
    assert "fc" in err or "layer" in err


def test_device_field_of_the_wrong_unit(cli, cnn, tmp_path):
    from importlib import resources
    text = resources.files("npusim.archs").joinpath("snn/snn-edu.yaml").read_text()
    bad = tmp_path / "dev.yaml"
    bad.write_text(text.replace("synaptic_memory: 64 KiB", "synaptic_memory: 64 ns"))
    code, _, err = cli("run", str(cnn), "--arch", str(bad), "--timesteps", "4")
    assert _clean(code, err), err
    assert "synaptic_memory" in err and "dev.yaml" in err


def test_calibration_inputs_are_never_unpickled(cli, cnn, tmp_path):
    bad = tmp_path / "x.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = cli("run", str(cnn), "--arch", "loihi", "--timesteps", "4",
                       "--calibrate", str(bad))
    assert _clean(code, err) and "x.npy" in err


def write_nir(path, n_in=64, hidden=128, n_out=10):
    nir = pytest.importorskip("nir")
    rng = np.random.default_rng(1)

    def lif(n):
        return nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.ones(n))

    nodes = {"in": nir.Input(input_type=np.array([n_in])),
             "fc1": nir.Affine(weight=rng.normal(size=(hidden, n_in)), bias=np.zeros(hidden)),
             "lif1": lif(hidden),
             "fc2": nir.Affine(weight=rng.normal(size=(n_out, hidden)), bias=np.zeros(n_out)),
             "lif2": lif(n_out),
             "out": nir.Output(output_type=np.array([n_out]))}
    names = list(nodes)
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])),
                                 type_check=False))
    return path


def test_nir_file_runs_on_spiking_cores_and_on_an_npu(cli, tmp_path):
    path = write_nir(tmp_path / "net.nir")
    rates = tmp_path / "r.yaml"
    rates.write_text("input: 0.2\nlif1: 0.1\nlif2: 0.05\n")
    js = tmp_path / "r.json"
    code, out, err = cli("run", str(path), "--arch", "loihi", "--timesteps", "8", "--rates",
                         str(rates), "--json", str(js))
    assert code == 0, err
    t = json.loads(js.read_text())["totals"]
    # dense synops by hand: 64 x 128 x 8 x 0.2 + 128 x 10 x 8 x 0.1
    assert t["synops"] == pytest.approx(64 * 128 * 8 * 0.2 + 128 * 10 * 8 * 0.1)
    assert t["neurons"] == 64 + 128 + 10
    # the same graph on an NPU: its contractions once, its Neurons as T updates per element
    code, out, err = cli("run", str(path), "--arch", "edu", "--timesteps", "8")
    assert code == 0, err and "lif1" in out


def test_unknown_nir_node_is_one_clean_error(cli, tmp_path):
    nir = pytest.importorskip("nir")
    nodes = {"in": nir.Input(input_type=np.array([4])),
             "d": nir.Delay(delay=np.ones(4)),
             "out": nir.Output(output_type=np.array([4]))}
    path = tmp_path / "bad.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=[("in", "d"), ("d", "out")],
                                 type_check=False))
    code, _, err = cli("run", str(path), "--arch", "loihi", "--timesteps", "4")
    assert _clean(code, err), err
    assert "node 'd'" in err and "'Delay'" in err and "supported types" in err


def test_sigma_delta_needs_graded_spikes(cli, cnn):
    # Loihi 1 spikes are binary: sigma-delta neurons are refused, naming the layers
    code, _, err = cli("run", str(cnn), "--arch", "loihi", "--timesteps", "4", "--neuron",
                       "sigma_delta")
    assert _clean(code, err) and "relu1" in err and "graded_spikes" in err
    # Loihi 2 carries a payload: priced by its all-in bound, synops x energy per synop
    run = npusim.simulate_snn(cnn, "loihi2", timesteps=4, neuron="sigma_delta",
                              default_rate=0.05)
    synop = run.device.costs.events["synop"].energy
    assert run.result.energy_by_term_j["SYNOP"] == pytest.approx(
        run.totals()["synops"] * synop, rel=1e-9)
