"""ANN -> SNN conversion (npusim.passes.spiking): the SNN-graph contract, rate sources, errors.

Models are small ONNX MLPs and CNNs built with onnx.helper and random weights; the
onnxruntime calibration tests skip cleanly without onnxruntime.
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from npusim.errors import ModelError, NpusimError
from npusim.frontend.onnx_loader import load_onnx
from npusim.ir import Contraction, Neuron, synops
from npusim.passes.spiking import (DEFAULT_RATE, CalibrationError, RateSet, RatesError,
                                   SnnConversionError, calibrate_rates, load_rates,
                                   normalised_rate, to_snn)


# -- model builders -----------------------------------------------------------------------
def _init(name, shape, rng, scale=1.0):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def mlp(widths=(16, 8, 4), softmax=False, seed=0, gemm=True, relu_last=False):
    """x[batch, w0] -> (Gemm + Relu) x (n-1) layers; the last layer without Relu."""
    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], [], "x"
    for i, (k, m) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        last = i == len(widths) - 1
        inits.append(_init(f"w{i}", (k, m), rng, 1 / np.sqrt(k)))
        if gemm:
            inits.append(_init(f"b{i}", (m,), rng, 0.1))
            nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"h{i}"],
                                          name=f"fc{i}"))
        else:
            nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [f"h{i}"], name=f"fc{i}"))
        cur = f"h{i}"
        if not last or relu_last:
            nodes.append(helper.make_node("Relu", [cur], [f"a{i}"], name=f"relu{i}"))
            cur = f"a{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [cur], ["p"], name="softmax"))
        cur = "p"
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", T.FLOAT,
                                                                       ["batch", widths[0]])],
                          [helper.make_tensor_value_info(cur, T.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def cnn(pool="AveragePool", seed=0, batch=1):
    """x[1,1,6,6] -> Conv 2x3x3 pad 1 -> BN -> Relu -> pool 2x2 -> Flatten -> Gemm 18->3."""
    rng = np.random.default_rng(seed)
    inits = [_init("cw", (2, 1, 3, 3), rng, 0.5), _init("cb", (2,), rng, 0.1),
             numpy_helper.from_array(np.array([1.0, 0.5], np.float32), "s"),
             numpy_helper.from_array(np.array([0.1, 0.0], np.float32), "bb"),
             numpy_helper.from_array(np.array([0.0, 0.1], np.float32), "mu"),
             numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "var"),
             _init("fw", (18, 3), rng, 0.3), _init("fb", (3,), rng, 0.1)]
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["n"],
                              name="bn1"),
             helper.make_node("Relu", ["n"], ["r"], name="relu1"),
             helper.make_node(pool, ["r"], ["pl"], name="pool1", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["pl"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", T.FLOAT,
                                                                       [batch, 1, 6, 6])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [batch, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def neurons(g):
    return [op for op in g.ops() if isinstance(op, Neuron)]


def one_line(e: BaseException) -> bool:
    return "\n" not in str(e) and "Traceback" not in str(e) and len(str(e)) > 20


# -- the contract -------------------------------------------------------------------------
def test_mlp_follows_the_contract():
    ann = load_onnx(mlp(), {"batch": 1})
    snn = to_snn(ann, 8)
    assert snn.meta["timesteps"] == 8 and snn.meta["snn"] is True
    ns = neurons(snn)
    assert [n.name for n in ns] == ["x:encode", "relu1", "fc2/matmul:out"]
    assert [n.model for n in ns] == ["encode", "if", "if"]
    enc = ns[0]
    assert [t.name for t in enc.inputs] == ["x"] and enc.outputs[0].shape == (1, 16)
    first = next(op for op in snn.ops() if isinstance(op, Contraction))
    assert first.operands[0].tensor.name == "x:encode"          # reads the input spikes
    assert snn.nx.has_edge("x:encode", first.name)
    relu_ann = ann.op("relu1")
    relu = snn.op("relu1")
    assert (relu.source, relu.op_type) == (relu_ann.source, "Relu")
    assert relu.inputs == relu_ann.inputs and relu.outputs == relu_ann.outputs
    out = ns[-1]
    assert out.inputs[0].name == "h2" and snn.outputs == ["fc2/matmul:out"]
    assert out.source == "fc2"
    assert snn.macs == ann.macs                                  # projections untouched
    assert [n.neurons for n in ns] == [16, 8, 4]
    assert all(n.rate == DEFAULT_RATE and n.timesteps == 8 for n in ns)
    assert len(snn.warnings) == 1
    w = snn.warnings[0]
    assert all(f"'{n.name}'" in w for n in ns) and "assumption" in w
    assert snn.meta["rate_sources"]["relu1"].startswith("default")
    assert "snn" not in ann.meta and not neurons(ann)            # the input graph is unchanged


def test_synops_by_hand():
    """fc1: 16x8 synapses fed by the encoder at 0.2 for 5 steps: 128 * 5 * 0.2 = 128 synops;
    fc2: 8x4 synapses fed by relu1 at 0.05: 32 * 5 * 0.05 = 8."""
    snn = to_snn(load_onnx(mlp(gemm=False), {"batch": 1}), 5,
                 rates={"input": 0.2, "relu1": 0.05, "fc2": 0.3})
    rate = {n.outputs[0].name: n.rate for n in neurons(snn)}
    got = {c.name: synops(c, rate[c.operands[0].tensor.name], 5)
           for c in snn.ops() if isinstance(c, Contraction)}
    assert got == {"fc1": pytest.approx(128.0), "fc2": pytest.approx(8.0)}
    assert snn.op("fc2:out").rate == 0.3 and snn.warnings == []
    assert snn.op("x:encode").spikes == pytest.approx(16 * 5 * 0.2)


def test_cnn_view_bn_and_pool():
    ann = load_onnx(cnn())
    snn = to_snn(ann, 4, model="lif")
    ns = neurons(snn)
    assert [n.name for n in ns] == ["x:encode", "relu1", "fc/matmul:out"]
    assert ns[1].model == "lif" and ns[1].neurons == 2 * 6 * 6
    pool = snn.op("pool1")
    assert pool.func == "average_pool" and pool.inputs[0].name == "r"
    assert snn.aliases["f"] == "pl"          # Flatten stays a free view
    assert snn.macs == ann.macs
    conv = snn.op("conv1")
    assert conv.operands[0].tensor.name == "x:encode"


def test_input_read_through_a_view_gets_encoded():
    """A Flatten first: the input tensor exists only as a view; the encoder reads the view."""
    rng = np.random.default_rng(1)
    g = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
         helper.make_node("MatMul", ["f", "w"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("y", T.FLOAT, [1, 3])], [_init("w", (8, 3), rng)])
    snn = to_snn(load_onnx(helper.make_model(g)), 2)
    enc = snn.op("x:encode")
    assert enc.inputs[0].name == "f" and enc.neurons == 8
    assert snn.op("fc").operands[0].tensor.name == "x:encode"
    assert snn.nx.has_edge("x:encode", "fc")


def test_trailing_softmax_dropped_with_a_warning():
    snn = to_snn(load_onnx(mlp(softmax=True), {"batch": 1}), 4)
    assert "softmax" not in snn.nx and snn.outputs == ["fc2/matmul:out"]
    assert any("'softmax'" in w and "dropped" in w for w in snn.warnings)


def test_network_ending_in_relu_gets_no_extra_layer():
    snn = to_snn(load_onnx(mlp(relu_last=True), {"batch": 1}), 4)
    assert [n.name for n in neurons(snn)] == ["x:encode", "relu1", "relu2"]
    assert snn.outputs == ["a2"]


def test_max_pool_refused_unless_accepted():
    ann = load_onnx(cnn(pool="MaxPool"))
    with pytest.raises(SnnConversionError, match="max_pool='average'") as e:
        to_snn(ann, 4)
    assert "'pool1'" in str(e.value) and one_line(e.value)
    snn = to_snn(ann, 4, max_pool="average")
    assert snn.op("pool1").func == "average_pool"
    assert any("'pool1'" in w and "average pooling" in w for w in snn.warnings)


# -- rates --------------------------------------------------------------------------------
def test_rates_file_yaml_and_json(tmp_path):
    y = tmp_path / "r.yaml"
    y.write_text("input: 0.2\nrelu1: 0.05   # by layer name\nfc2: 0.01    # by ONNX node\n")
    j = tmp_path / "r.json"
    j.write_text(json.dumps({"x:encode": 0.2, "fc1": 0.05, "fc2/matmul:out": 0.01}))
    ann = load_onnx(mlp(), {"batch": 1})
    for path in (y, j):
        snn = to_snn(ann, 8, rates=path)
        assert [n.rate for n in neurons(snn)] == [0.2, 0.05, 0.01]
        assert snn.warnings == [] and snn.meta["rate_sources"]["relu1"] == str(path)


def test_partial_rates_default_warns_naming_only_the_rest():
    snn = to_snn(load_onnx(mlp(), {"batch": 1}), 8, rates={"relu1": 0.3}, default_rate=0.02)
    assert [n.rate for n in neurons(snn)] == [0.02, 0.3, 0.02]
    (w,) = snn.warnings
    assert "'x:encode'" in w and "'fc2/matmul:out'" in w and "'relu1'" not in w
    with pytest.raises(RatesError, match="no rate for layer"):
        to_snn(load_onnx(mlp(), {"batch": 1}), 8, rates={"relu1": 0.3}, default_rate=None)


@pytest.mark.parametrize("text, match", [
    ("relu1: 1.5\n", r"'relu1'.*1\.5.*outside \[0, 1\]"),
    ("relu1: -0.1\n", r"outside \[0, 1\]"),
    ("relu1: .nan\n", r"outside \[0, 1\]"),
    ("relu1: fast\n", "not a number"),
    ("relu1: true\n", "not a number"),
    ("relu9: 0.1\n", r"no layer named 'relu9'.*did you mean 'relu1'.*known layers: 'input', "
                     r"'relu1', 'fc2/matmul:out'"),
    ("relu1: [0.1\n", "malformed YAML"),
    ("- 0.1\n", "holds a list"),
    ("", "holds nothing"),
    ("relu1: 0.1\nrelu1: 0.2\n", "duplicate key 'relu1'"),
    ("input: 0.1\nx:encode: 0.2\n", "given twice"),
    ("1: 0.1\n", "not a layer name"),
])
def test_bad_rates_file(tmp_path, text, match):
    p = tmp_path / "rates.yaml"
    p.write_text(text)
    with pytest.raises(RatesError, match=match) as e:
        to_snn(load_onnx(mlp(), {"batch": 1}), 8, rates=p)
    assert str(p) in str(e.value) and one_line(e.value)


@pytest.mark.parametrize("text, match", [('{"relu1": 0.1, "relu1": 0.2}', "duplicate key"),
                                         ('{"relu1": 0.1', "malformed JSON"),
                                         ('{"relu1": NaN}', "outside"),
                                         ('[1]', "holds a list")])
def test_bad_rates_json(tmp_path, text, match):
    p = tmp_path / "rates.json"
    p.write_text(text)
    with pytest.raises(RatesError, match=match) as e:
        load_rates(p)
    assert str(p) in str(e.value) and one_line(e.value)


def test_missing_rates_file(tmp_path):
    with pytest.raises(RatesError, match="no such file") as e:
        load_rates(tmp_path / "nope.yaml")
    assert one_line(e.value)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3),
                      st.booleans(), st.text(max_size=4), st.none()),
       key=st.sampled_from(["input", "relu1", "fc1", "fc2", "relu1 ", "Relu1"]))
def test_fuzz_rate_values(rate, key):
    """Any value under any key: accepted exactly when it is a number in [0, 1] naming a known
    layer, else one clean RatesError line."""
    ann = load_onnx(mlp(), {"batch": 1})
    ok = (key in ("input", "relu1", "fc1", "fc2") and not isinstance(rate, (bool, str))
          and rate is not None and 0 <= rate <= 1)
    if ok:
        snn = to_snn(ann, 2, rates={key: rate})
        assert float(rate) in [n.rate for n in neurons(snn)]
    else:
        with pytest.raises(RatesError) as e:
            to_snn(ann, 2, rates={key: rate})
        assert one_line(e.value)


# -- graphs to_snn refuses ----------------------------------------------------------------
def _graph(nodes, inits, inputs=(("x", [1, 4]),), outputs=(("y", None),)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, T.FLOAT, s)
                                       for n, s in inputs],
                          [helper.make_tensor_value_info(n, T.FLOAT, s) for n, s in outputs],
                          inits)
    return load_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


R = np.random.default_rng(0)


def test_residual_add_refused_naming_the_node():
    g = _graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
                helper.make_node("Relu", ["h"], ["a"], name="relu1"),
                helper.make_node("MatMul", ["a", "w2"], ["b"], name="fc2"),
                helper.make_node("Add", ["b", "a"], ["y"], name="skip")],
               [_init("w", (4, 4), R), _init("w2", (4, 4), R)])
    with pytest.raises(SnnConversionError, match=r"node 'skip' \(Add\) joins 2 activations") as e:
        to_snn(g, 4)
    assert one_line(e.value)


def test_branch_refused():
    g = _graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
                helper.make_node("Relu", ["h"], ["y"], name="relu1"),
                helper.make_node("MatMul", ["h", "w2"], ["z"], name="side")],
               [_init("w", (4, 4), R), _init("w2", (4, 4), R)],
               outputs=(("y", None), ("z", None)))
    with pytest.raises(SnnConversionError, match="2 outputs"):
        to_snn(g, 4)
    g = _graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
                helper.make_node("Relu", ["h"], ["a"], name="relu1"),
                helper.make_node("MatMul", ["h", "w2"], ["z"], name="side"),
                helper.make_node("MatMul", ["a", "w3"], ["y"], name="fc2")],
               [_init("w", (4, 4), R), _init("w2", (4, 4), R), _init("w3", (4, 4), R)])
    with pytest.raises(SnnConversionError, match=r"'relu1', 'side'.*a branch") as e:
        to_snn(g, 4)
    assert one_line(e.value)


def test_concat_refused():
    g = _graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
                helper.make_node("Relu", ["h"], ["a"], name="relu1"),
                helper.make_node("Concat", ["a", "h"], ["y"], name="cat", axis=1)],
               [_init("w", (4, 4), R)])
    with pytest.raises(SnnConversionError, match=r"'cat' \(Concat\) joins"):
        to_snn(g, 4)


@pytest.mark.parametrize("nodes, match", [
    ([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
      helper.make_node("Sigmoid", ["h"], ["y"], name="sig")], r"'sig' \(Sigmoid\) computes"),
    ([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
      helper.make_node("MatMul", ["h", "w"], ["y"], name="fc2")], "two synaptic projections"),
    ([helper.make_node("Relu", ["x"], ["h"], name="r0"),
      helper.make_node("MatMul", ["h", "w"], ["y"], name="fc1")], "no synaptic projection"),
    ([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
      helper.make_node("Softmax", ["h"], ["s"], name="sm"),
      helper.make_node("MatMul", ["s", "w"], ["y"], name="fc2")], "only at the end"),
    ([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
      helper.make_node("LayerNormalization", ["h", "g"], ["y"], name="ln")], "no spiking"),
    ([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
      helper.make_node("Relu", ["h"], ["a"], name="relu1"),
      helper.make_node("Pad", ["a", "pads"], ["p"], name="pad"),
      helper.make_node("MatMul", ["p", "w6"], ["y"], name="fc2")], r"'pad' \(Pad\) moves data"),
])
def test_ops_without_spiking_counterpart(nodes, match):
    pads = numpy_helper.from_array(np.array([0, 1, 0, 1], np.int64), "pads")
    g = _graph(nodes, [_init("w", (4, 4), R), _init("g", (4,), R), _init("w6", (6, 4), R), pads])
    with pytest.raises(SnnConversionError, match=match) as e:
        to_snn(g, 4)
    assert one_line(e.value)


def test_two_inputs_and_bad_arguments():
    g = _graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc1")], [],
               inputs=(("x", [1, 4]), ("w", [4, 4])))
    with pytest.raises(SnnConversionError, match="2 inputs.*initializers"):
        to_snn(g, 4)
    ann = load_onnx(mlp(), {"batch": 1})
    for kwargs, err, match in [({"timesteps": 0}, SnnConversionError, "timesteps"),
                               ({"timesteps": 2.5}, SnnConversionError, "timesteps"),
                               ({"timesteps": 2, "model": "encode"}, SnnConversionError, "model"),
                               ({"timesteps": 2, "default_rate": 2.0}, RatesError, "default"),
                               ({"timesteps": 2, "max_pool": "min"}, SnnConversionError,
                                "max_pool"),
                               ({"timesteps": 2, "rates": 3}, RatesError, "rates must be")]:
        with pytest.raises(err, match=match):
            to_snn(ann, **kwargs)
    snn = to_snn(ann, 2)
    with pytest.raises(SnnConversionError, match="already"):
        to_snn(snn, 2)


@settings(max_examples=15, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=2, max_size=5), t=st.integers(1, 16),
       gemm=st.booleans(), softmax=st.booleans())
def test_random_chains_keep_the_contract(widths, t, gemm, softmax):
    """Any MLP chain: one encoder, one Neuron per Relu plus the output layer, MACs unchanged,
    every contraction reads the output of a Neuron."""
    ann = load_onnx(mlp(tuple(widths), softmax=softmax, gemm=gemm), {"batch": 1})
    snn = to_snn(ann, t)
    ns = neurons(snn)
    assert len(ns) == len(widths) and snn.macs == ann.macs
    assert ns[0].model == "encode" and all(n.timesteps == t for n in ns)
    spikes = {n.outputs[0].name for n in ns}
    assert all(c.operands[0].tensor.name in spikes for c in snn.ops()
               if isinstance(c, Contraction))
    assert snn.outputs == [ns[-1].outputs[0].name]


# -- calibration --------------------------------------------------------------------------
def test_normalised_rate_by_hand():
    # non-zero values 1, 2, 4: max 4 -> rates 0, 1/4, 1/2, 1 -> mean 0.4375
    assert normalised_rate(np.array([0.0, 1.0, 2.0, 4.0]), 100) == (0.4375, 4.0)
    # the 50th percentile of 1, 2, 4 is 2: rates 0, 0.5, 1, 1 (clipped) -> 0.625
    assert normalised_rate(np.array([0.0, 1.0, 2.0, 4.0]), 50) == (0.625, 2.0)
    assert normalised_rate(np.zeros(5)) == (0.0, 0.0)


def _save(model, path):
    onnx.save(model, str(path))
    return path


def test_calibration_matches_a_numpy_forward_pass(tmp_path):
    pytest.importorskip("onnxruntime")
    model = mlp((6, 5, 3), seed=3)
    path = _save(model, tmp_path / "m.onnx")
    x = np.random.default_rng(7).random((32, 6)).astype(np.float32)
    got = calibrate_rates(path, x, percentile=99.0)
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    h1 = x @ w["w1"] + w["b1"]
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w["w2"] + w["b2"]

    def rate(a):
        lam = np.percentile(a[a > 0], 99.0)
        return np.clip(a / lam, 0, 1).mean(), lam

    want = {"x:encode": rate(np.abs(x)), "relu1": rate(a1),
            "fc2/matmul:out": rate(np.maximum(h2, 0))}
    assert set(got.rates) == set(want)
    for k, (r, lam) in want.items():
        assert got.rates[k] == pytest.approx(r, rel=1e-5)
        assert got.scales[k] == pytest.approx(lam, rel=1e-5)
    assert got.notes == () and "32 samples" in got.source
    snn = to_snn(load_onnx(path, {"batch": 1}), 8, rates=got)
    assert [n.rate for n in neurons(snn)] == [got.rates[k] for k in want]
    assert snn.warnings == [] and "calibration" in snn.meta["rate_sources"]["relu1"]


def test_calibration_hand_case(tmp_path):
    """x -> MatMul(I) -> Relu -> MatMul(I): with x = [[1, -2], [3, 0]], relu1 = [[1, 0], [3, 0]]
    (p100: lam 3, rates 1/3, 0, 1, 0 -> 1/3), input |x| (lam 3: 1/3, 2/3, 1, 0 -> 0.5),
    output = relu1 again (1/3)."""
    pytest.importorskip("onnxruntime")
    eye = numpy_helper.from_array(np.eye(2, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
                           helper.make_node("Relu", ["h"], ["a"], name="relu1"),
                           helper.make_node("MatMul", ["a", "w"], ["y"], name="fc2")], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, ["n", 2])],
                          [helper.make_tensor_value_info("y", T.FLOAT, ["n", 2])], [eye])
    path = _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                 tmp_path / "eye.onnx")
    got = calibrate_rates(path, np.array([[1.0, -2.0], [3.0, 0.0]]), percentile=100)
    assert got.rates == pytest.approx({"x:encode": 0.5, "relu1": 1 / 3, "fc2:out": 1 / 3})


def test_calibration_cnn_fixed_batch_and_random_inputs(tmp_path):
    pytest.importorskip("onnxruntime")
    path = _save(cnn(batch=1), tmp_path / "cnn.onnx")
    x = np.random.default_rng(0).random((4, 1, 6, 6))
    got = calibrate_rates(path, x)          # fixed batch 1: run sample by sample
    assert set(got.rates) == {"x:encode", "relu1", "fc/matmul:out"}
    assert all(0 < r <= 1 for r in got.rates.values())
    rnd = calibrate_rates(path, samples=4, seed=0)   # the same draw as x
    assert rnd.rates == pytest.approx(got.rates)
    assert rnd.notes and "random" in rnd.notes[0]
    snn = to_snn(load_onnx(path), 4, rates=rnd)
    assert rnd.notes[0] in snn.warnings
    with pytest.raises(CalibrationError, match=r"shape \(2, 1, 5, 5\)") as e:
        calibrate_rates(path, np.zeros((2, 1, 5, 5)))
    assert one_line(e.value)
    with pytest.raises(CalibrationError, match="NaN"):
        calibrate_rates(path, np.full((1, 1, 6, 6), np.nan))
    with pytest.raises(CalibrationError, match="percentile"):
        calibrate_rates(path, x, percentile=0)


def test_calibration_refuses_a_model_without_weights(tmp_path):
    pytest.importorskip("onnxruntime")
    model = mlp()
    empty = onnx.TensorProto()
    empty.name, empty.data_type = "w1", T.FLOAT
    empty.dims.extend([16, 8])
    inits = [t for t in model.graph.initializer if t.name != "w1"] + [empty]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    path = _save(model, tmp_path / "noweights.onnx")
    load_onnx(path, {"batch": 1})               # the cost model does not need weight data
    with pytest.raises(CalibrationError, match=r"initializer 'w1' \(shape \(16, 8\)\) carries "
                                               r"no data") as e:
        calibrate_rates(path, np.zeros((2, 16)))
    assert str(path) in str(e.value) and one_line(e.value)
    assert isinstance(e.value, ModelError) and isinstance(e.value, NpusimError)


def test_calibration_refuses_missing_external_data(tmp_path):
    pytest.importorskip("onnxruntime")
    model = mlp()
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.bin", size_threshold=0)
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(CalibrationError, match="external file 'ext.bin'") as e:
        calibrate_rates(tmp_path / "ext.onnx", np.zeros((2, 16)))
    assert one_line(e.value)


def test_rateset_boundary():
    with pytest.raises(RatesError, match="mapping"):
        RateSet([0.1], "r")
    assert RateSet({"relu1": np.float32(0.25)}).rates == {"relu1": 0.25}


# -- real networks: onnx's backend test models (weights stripped, structure intact) ---------
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def _light(name):
    path = os.path.join(LIGHT, f"light_{name}.onnx")
    if not os.path.isfile(path):
        pytest.skip(f"onnx's backend test model {name} is not installed")
    return load_onnx(path)


def test_vgg19_converts_with_pools_as_average():
    ann = _light("vgg19")
    with pytest.raises(SnnConversionError, match=r"'n4' \(MaxPool\)"):
        to_snn(ann, 4)
    snn = to_snn(ann, 4, max_pool="average")
    relus = [op for op in ann.ops() if op.op_type == "Relu"]
    ns = neurons(snn)
    assert len(ns) == len(relus) + 2 == 20 and snn.macs == ann.macs
    assert sum(getattr(op, "func", "") == "average_pool" for op in snn.ops()) == 5
    assert not any(op.op_type == "Softmax" for op in snn.ops())


@pytest.mark.parametrize("name, match", [("resnet50", r"'n14' \(Sum\) joins 2 activations"),
                                         ("squeezenet", r"\(Concat\) joins"),
                                         ("bvlc_alexnet", r"'n2' \(LRN\)")])
def test_networks_that_are_not_spiking_chains(name, match):
    with pytest.raises(SnnConversionError, match=match) as e:
        to_snn(_light(name), 4, max_pool="average")
    assert one_line(e.value)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(
    st.text(max_size=60),
    st.lists(st.tuples(st.sampled_from(["input", "relu1", "fc2", "x", "?", "- a"]),
                       st.sampled_from(["0.1", "1", "2", "-1", ".inf", "[", "{a: 1}", "''",
                                        "0x10", "1e-3", "null"])),
             max_size=4).map(lambda kv: "".join(f"{k}: {v}\n" for k, v in kv))),
    suffix=st.sampled_from([".yaml", ".json"]))
def test_fuzz_rates_files(tmp_path, text, suffix):
    """Any text as a rates file: a conversion with rates in [0, 1], or one clean error line."""
    p = tmp_path / f"r{suffix}"
    p.write_text(text, encoding="utf-8")
    try:
        snn = to_snn(load_onnx(mlp(), {"batch": 1}), 2, rates=p)
    except NpusimError as e:
        assert one_line(e)
    else:
        assert all(0.0 <= n.rate <= 1.0 for n in neurons(snn))


def _preprocessed_model():
    """x[n, 1, 2] -> Flatten -> Sub(c) -> MatMul(I) -> Relu -> MatMul(I)."""
    eye = numpy_helper.from_array(np.eye(2, dtype=np.float32), "w")
    c = numpy_helper.from_array(np.array([1.0, 0.0], np.float32), "c")
    g = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
                           helper.make_node("Sub", ["f", "c"], ["z"], name="norm"),
                           helper.make_node("MatMul", ["z", "w"], ["h"], name="fc1"),
                           helper.make_node("Relu", ["h"], ["a"], name="relu1"),
                           helper.make_node("MatMul", ["a", "w"], ["y"], name="fc2")], "g",
                          [helper.make_tensor_value_info("x", T.FLOAT, ["n", 1, 2])],
                          [helper.make_tensor_value_info("y", T.FLOAT, ["n", 2])], [eye, c])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_encoder_reads_the_preprocessed_input():
    snn = to_snn(load_onnx(_preprocessed_model(), {"n": 1}), 4)
    enc = snn.op("x:encode")
    assert enc.inputs[0].name == "z" and enc.source == "x"
    assert snn.nx.has_edge("norm", "x:encode") and snn.nx.has_edge("x:encode", "fc1")
    assert snn.op("fc1").operands[0].tensor.name == "x:encode"
    assert [op.name for op in snn.ops()][:3] == ["norm", "x:encode", "fc1"]


def test_calibration_of_the_preprocessed_input(tmp_path):
    """x = [[1, -2]], [[3, 0]] minus c = [1, 0]: z = [0, -2], [2, 0]; |z| at p100: lam 2, rates
    0, 1, 1, 0 -> 1/2 (|x| itself would give lam 3); relu1 = [0, 0], [2, 0]: 1/4; the output (identity) 1/4 too."""
    pytest.importorskip("onnxruntime")
    path = _save(_preprocessed_model(), tmp_path / "pre.onnx")
    got = calibrate_rates(path, np.array([[[1.0, -2.0]], [[3.0, 0.0]]]), percentile=100)
    assert got.rates == pytest.approx({"x:encode": 0.5, "relu1": 0.25, "fc2:out": 0.25})
    assert got.scales["x:encode"] == pytest.approx(2.0)
    # x = [[4, 0]]: z = [3, 0], lam 3 (|x| itself: lam 4)
    one = calibrate_rates(path, np.array([[[4.0, 0.0]]]), percentile=100)
    assert one.scales["x:encode"] == pytest.approx(3.0)
