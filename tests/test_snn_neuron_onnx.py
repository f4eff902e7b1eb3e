"""The ``ai.npusim`` ``Neuron`` ONNX node (npusim/frontend/lower_npusim.py): a layer of spiking
neurons as an ONNX op, which the NIR importer writes; runs without the optional nir package."""
from __future__ import annotations

import importlib.util
import pathlib
import random

import pytest
from onnx import TensorProto as T
from onnx import helper as h

from npusim.errors import ModelError
from npusim.frontend import load_onnx


def model(**attrs):
    node = h.make_node("Neuron", ["x"], ["y"], domain="ai.npusim", name="n", **attrs)
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 6])],
                     [h.make_tensor_value_info("y", T.FLOAT, None)])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.npusim", 1)])


def is_clean_error(code, err):
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def test_neuron_node_lowers_to_a_neuron_op():
    op = load_onnx(model(model="lif", timesteps=4, rate=0.5, param_names=["tau"],
                         param_values=[2.0], source_type="LIF")).op("n")
    assert (op.kind, op.model, op.timesteps, op.rate, op.params, op.op_type) == (
        "neuron", "lif", 4, 0.5, (("tau", 2.0),), "LIF")
    assert op.vector_ops == 6 * 4 * 3  # 6 neurons x 4 steps x 3 ops per LIF update
    assert op.outputs[0].shape == (1, 6) and op.spikes == 6 * 4 * 0.5
    plain = load_onnx(model(model="if", timesteps=1)).op("n")
    assert plain.rate is None and plain.params == () and plain.op_type == "Neuron"


@pytest.mark.parametrize("attrs, needle", [
    ({"timesteps": 4}, "'model'"),
    ({"model": "izh", "timesteps": 4}, "one of encode"),
    ({"model": "if"}, "'timesteps'"),
    ({"model": "if", "timesteps": 0}, "'timesteps'"),
    ({"model": "if", "timesteps": 2, "rate": 2.0}, "outside [0, 1]"),
    ({"model": "if", "timesteps": 2, "graded": 2}, "'graded'"),
    ({"model": "if", "timesteps": 2, "param_names": ["a"]}, "'param_values'"),
    ({"model": "if", "timesteps": 2, "param_names": ["a"], "param_values": [1.0, 2.0]},
     "'param_values'"),
])
def test_bad_neuron_attributes_name_the_node(attrs, needle):
    with pytest.raises(ModelError) as e:
        load_onnx(model(**attrs))
    msg = str(e.value)
    assert "\n" not in msg and "'n'" in msg and needle in msg, msg


def test_fuzz_corpus_cases_end_cleanly(cli, tmp_path):
    """benchmarks/fuzz_cases/snn_neuron.py through the CLI: each case is one clean error."""
    src = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cases" / \
        "snn_neuron.py"
    spec = importlib.util.spec_from_file_location("fuzz_cases_snn_neuron", src)
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    labels = set()
    for label, argv, must_fail in corpus.cases(tmp_path, random.Random(0), 24):
        code, _, err = cli(*argv)
        assert must_fail and is_clean_error(code, err), (label, argv, err)
        labels.add(label)
    assert labels == {"snn/neuron-attr", "snn/neuron-arity"}
