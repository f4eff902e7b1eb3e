"""Malformed ``ai.npusim`` ``Neuron`` nodes (a layer of spiking neurons; the NIR importer writes
them), for the fuzzing benchmark.

Classes (labels):

``snn/neuron-attr``
    One Neuron node with a required attribute missing (``model``, ``timesteps``), a model
    npusim does not know, timesteps below 1, a rate outside [0, 1], ``graded`` not 0 or 1,
    ``param_names`` without ``param_values`` or of another length, or one attribute of the
    wrong declared type; every case must fail.
``snn/neuron-arity``
    A Neuron node with zero or two inputs or outputs; must fail.

Every model is a single node on a [1, 8] input: a case runs in well under a second.
"""
from __future__ import annotations

import pathlib
import random

import onnx
from onnx import TensorProto as T
from onnx import helper as h

_GOOD = {"model": "lif", "timesteps": 4}


def _model(attrs: dict, ins=("x",), outs=("y",)) -> onnx.ModelProto:
    node = h.make_node("Neuron", list(ins), list(outs), domain="ai.npusim", name="n", **attrs)
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 8])],
                     [h.make_tensor_value_info(o or "x", T.FLOAT, None) for o in outs or ["x"]])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.npusim", 1)])


def _bad_attrs(rng: random.Random) -> dict:
    """Attributes of a Neuron node, with one thing certainly wrong."""
    attrs = dict(_GOOD, rate=0.1)
    pick = rng.randrange(8)
    if pick == 0:
        del attrs[rng.choice(["model", "timesteps"])]
    elif pick == 1:
        attrs["model"] = rng.choice(["izhikevich", "", "LIF", "relu"])
    elif pick == 2:
        attrs["timesteps"] = rng.choice([0, -1, -2 ** 40])
    elif pick == 3:
        attrs["rate"] = rng.choice([1.5, -0.1, 1e9, float("nan"), float("inf")])
    elif pick == 4:
        attrs["graded"] = rng.choice([2, -1, 7])
    elif pick == 5:
        attrs["param_names"] = ["tau", "v_threshold"][:rng.randint(1, 2)]
        if rng.random() < 0.5:
            attrs["param_values"] = [1.0] * (len(attrs["param_names"]) + 1)
    elif pick == 6:
        attrs[rng.choice(["timesteps", "graded"])] = rng.choice([2.5, "four", [1, 2]])
    else:
        attrs[rng.choice(["model", "source_type"])] = rng.choice([3, 1.0, [1, 2]])
    return attrs


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)`` for about ``n`` malformed Neuron nodes."""
    workdir.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        if k % 4 == 3:
            ins, outs = rng.choice([((), ("y",)), (("x", "x"), ("y",)), (("x",), ()),
                                    (("x",), ("y", "z"))])
            label, m = "snn/neuron-arity", _model(_GOOD, ins, outs)
        else:
            label, m = "snn/neuron-attr", _model(_bad_attrs(rng))
        path = workdir / f"neuron-{k}.onnx"
        path.write_bytes(m.SerializeToString())
        yield label, ["run", str(path), "--arch", "edu"], True
