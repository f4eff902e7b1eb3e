"""Malformed spiking runs for ``npusim run``: rates files (values out of [0, 1], unknown
layers, broken YAML/JSON, wrong types), bad ``--timesteps``/``--rate``, calibration arrays that
are not numeric ``.npy`` files, device files with a field of the wrong unit, options that belong
to the other kind of target. Read by ``benchmarks/fuzz.py``.

Every case is certainly invalid (``must_fail``); the model is a 784-32-10 MLP, so each run is
fast.
"""
from __future__ import annotations

import pathlib
import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RATE_FILES = [
    "relu1: 1.5\n", "relu1: -0.1\n", "relu1: nan\n", "relu1: .inf\n", "relu1: high\n",
    "relu9: 0.1\n", "[0.1, 0.2]\n", "relu1: [0.1]\n", "relu1: 0.1\nrelu1: 0.2\n",
    "input: 2\n", "relu1: {a: 1}\n", ": 0.1\n", "relu1: 0.1: 0.2\n", "\t- x\n",
]
JSON_FILES = ['{"relu1": 1.5}', '{"relu1": 0.1', '{"relu1": 0.1, "relu1": 0.2}', '[]',
              '{"relu1": "0.1"}', '{"relu1": NaN}']
DEVICE_EDITS = [("synaptic_memory: 64 KiB", "synaptic_memory: 64 ns"),
                ("neurons_per_core: 256", "neurons_per_core: -1"),
                ("energy: 10 pJ, time: 2 ns", "energy: 10 ns, time: 2 pJ"),
                ("scope: per-term", "scope: sometimes"),
                ("power: 10 mW", "power: 10 mJ"),
                ("cores_per_tile: 4", "cores_per_tile: four")]
BAD_OPTIONS = [["--timesteps", "0"], ["--timesteps", "-3"], ["--rate", "1.01"],
               ["--rate", "-0.5"], ["--rate", "nan"], ["--cost-set", "nonesuch"],
               ["--set", "clock=1GHz"], ["--batch", "4"], ["--phase", "decode"]]


def _mlp(path: pathlib.Path) -> pathlib.Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(784, 32)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(32, 10)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="fc1"),
             helper.make_node("Relu", ["a"], ["h"], name="relu1"),
             helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2")]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 784])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` malformed spiking runs."""
    model = str(_mlp(workdir / "snn-mlp.onnx"))
    base = ["run", model, "--arch", "snn-edu", "--timesteps", "4"]
    from importlib import resources
    device = resources.files("npusim.archs").joinpath("snn/snn-edu.yaml").read_text()
    made = 0
    while made < n:
        kind = rng.choice(("rates", "json", "device", "option", "npy", "hybrid"))
        f = workdir / f"snn-case-{made}"
        if kind == "rates":
            path = f.with_suffix(".yaml")
            path.write_text(rng.choice(RATE_FILES))
            yield "snn/rates-file", [*base, "--rates", str(path)], True
        elif kind == "json":
            path = f.with_suffix(".json")
            path.write_text(rng.choice(JSON_FILES))
            yield "snn/rates-json", [*base, "--rates", str(path)], True
        elif kind == "device":
            old, new = rng.choice(DEVICE_EDITS)
            path = f.with_suffix(".yaml")
            path.write_text(device.replace(old, new, 1))
            yield ("snn/device-field", ["run", model, "--arch", str(path), "--timesteps", "4"],
                   True)
        elif kind == "option":
            yield "snn/option", [*base, *rng.choice(BAD_OPTIONS)], True
        elif kind == "npy":
            path = f.with_suffix(".npy")
            choice = rng.randrange(3)
            if choice == 0:
                np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            elif choice == 1:
                path.write_bytes(b"\x93NUMPY garbage")
            else:
                np.save(path, np.array(["text"]))
            yield "snn/calibrate-npy", [*base, "--calibrate", str(path)], True
        else:
            yield ("snn/hybrid-option", ["run", model, "--arch", "edu+snn-edu", "--timesteps",
                                         "4", *rng.choice((["--mapper", "traffic"],
                                                           ["--cost-set", "x"],
                                                           ["--trace", str(f)]))], True)
        made += 1
