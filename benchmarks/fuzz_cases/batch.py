"""Fuzz cases for ``--batch N`` on ONNX graphs and for ``sim_mode graph`` rows of a measured
data file.

Classes (labels):

``batch/reshape-fixed``
    A graph exported at a fixed batch B whose Reshape target is a constant with a positive
    leading entry, run at another batch: must fail (the reshape fixes the batch).
``batch/leading-differ``
    Two graph inputs whose leading axes differ (sizes, or a size and a name).
``batch/scalar-input``, ``batch/shapeless-input``
    A graph input without a leading axis.
``batch/old-batch-constant``
    An Add of a ``[B, ...]`` constant (B > 1) run at another batch above 1: shape inference
    fails (at batch 1 the constant broadcasts, which is what the graph says).
``batch/dim-conflict``
    A symbolic batch given two different values by ``--batch`` and ``--dim``.
``batch/bad-value``
    ``--batch`` zero, negative, past the limit, or not an integer.
``batch/valid``
    A small conv net at a fixed or symbolic batch run at a random batch: must succeed.
``batch/graph-row``
    A measured-data file with one ``sim_mode graph`` row broken in one column.

Every case runs tiny models on the ``edu`` arch (``inspect`` for most), well under a second.
"""
from __future__ import annotations

import csv
import pathlib
import random

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

ARCH = "edu"
OPSET = [helper.make_opsetid("", 17)]
BAD_BATCH = ["0", "-1", "-65536", "65537", "9223372036854775808", "x", "1.5", "", "1e3"]


def _save(workdir: pathlib.Path, model: onnx.ModelProto, label: str, i: int) -> str:
    path = workdir / f"batch_{label}_{i}.onnx"
    onnx.save(model, path)
    return str(path)


def _mlp(lead, width: int, nodes=(), inits=(), inputs=(), x: str = "x") -> onnx.ModelProto:
    """x [lead, width] (after ``nodes``, read as ``x``) -> MatMul [width, 3]."""
    w = helper.make_tensor("w", T.FLOAT, [width, 3], [0.0] * (width * 3))
    g = helper.make_graph(
        [*nodes, helper.make_node("MatMul", [x, "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [lead, width]), *inputs],
        [helper.make_tensor_value_info("y", T.FLOAT, None)], [w, *inits])
    return helper.make_model(g, opset_imports=OPSET)


def _conv(lead, channels: int, size: int) -> onnx.ModelProto:
    w = helper.make_tensor("w", T.FLOAT, [4, channels, 3, 3], [0.0] * (4 * channels * 9))
    fc = helper.make_tensor("fc", T.FLOAT, [4 * size * size, 2], [0.0] * (8 * size * size))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info(
        "x", T.FLOAT, [lead, channels, size, size])],
        [helper.make_tensor_value_info("y", T.FLOAT, None)], [w, fc])
    return helper.make_model(g, opset_imports=OPSET)


def _other(rng: random.Random, old: int) -> int:
    return rng.choice([b for b in range(1, 9) if b != old])


def _graph_row_file(workdir: pathlib.Path, rng: random.Random, i: int) -> str:
    from npusim.validate.core import default_data
    with open(default_data(), newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    row = {h: "" for h in header}
    row.update(id="G1", sim_arch=ARCH, sim_chips="1", sim_model="resnet50",
               sim_precision="int8", sim_mode="graph", sim_users="1", sim_metric="latency_s",
               sim_value="1e-3", simulable="yes")
    col, value = rng.choice([
        ("sim_model", rng.choice(["resnet18", "bert", "gpt2", "model.onnxx", "RESNET50"])),
        ("sim_users", rng.choice(["0", "-2", "1.5", "65537", "1e9", "x"])),
        ("sim_input_len", rng.choice(["384", "1"])),          # resnet50 has no sequence
        ("sim_chips", rng.choice(["2", "8"])),
        ("sim_precision", rng.choice(["int3", "fp4", "INT8"])),
        ("sim_output_len", "128"), ("sim_rate", "3"),
        ("sim_metric", rng.choice(["ttft_s", "tpot_s", "latency", "samples"])),
        ("sim_value", rng.choice(["0", "-1", "nan", "inf", ""])),
    ])
    row[col] = value
    if col == "sim_input_len":
        row["sim_model"] = "resnet50"
    path = workdir / f"batch_rows_{i}.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerow(row)
    return str(path)


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n uses of ``--batch`` and graph rows."""
    for i in range(n):
        kind = i % 9
        old = rng.randint(1, 4)
        new = _other(rng, old)
        if kind == 0:
            width = rng.randint(1, 8)
            shape = rng.choice([[old, -1], [old, width], [old, 1, -1]])  # valid at batch old
            reshape = helper.make_node("Reshape", ["x", "s"], ["xr"], name="fixed_reshape")
            s = numpy_helper.from_array(np.array(shape, dtype=np.int64), "s")
            m = _mlp(old, width, [reshape], [s], x="xr")
            yield ("batch/reshape-fixed",
                   ["inspect", _save(workdir, m, "reshape", i), "--batch", str(new)], True)
        elif kind == 1:
            other = rng.choice([_other(rng, old), "n"])
            z = helper.make_tensor_value_info("z", T.FLOAT, [other, 2])
            yield ("batch/leading-differ",
                   ["inspect", _save(workdir, _mlp(old, 4, inputs=[z]), "differ", i),
                    "--batch", str(new)], True)
        elif kind == 2:
            z = helper.make_tensor_value_info("z", T.FLOAT, [])
            yield ("batch/scalar-input",
                   ["inspect", _save(workdir, _mlp(old, 4, inputs=[z]), "scalar", i),
                    "--batch", str(new)], True)
        elif kind == 3:
            z = helper.make_tensor_value_info("z", T.FLOAT, None)
            yield ("batch/shapeless-input",
                   ["run", _save(workdir, _mlp(old, 4, inputs=[z]), "shapeless", i),
                    "--arch", ARCH, "--batch", str(new)], True)
        elif kind == 4:
            old = rng.randint(2, 5)
            b = numpy_helper.from_array(np.zeros((old, 3), dtype=np.float32), "b")
            add = helper.make_node("Add", ["y", "b"], ["out"], name="old_batch_bias")
            m = _mlp(old, 4, inits=[b])
            m.graph.node.append(add)
            m.graph.output[0].name = "out"
            yield ("batch/old-batch-constant",
                   ["inspect", _save(workdir, m, "bias", i),   # batch 1 would broadcast
                    "--batch", str(rng.choice([b for b in range(2, 9) if b != old]))], True)
        elif kind == 5:
            path = _save(workdir, _mlp("batch", 4), "sym", i)
            yield ("batch/dim-conflict",
                   ["inspect", path, "--batch", str(old), "--dim", f"batch={new}"], True)
        elif kind == 6:
            path = _save(workdir, _mlp(old, 4), "value", i)
            yield ("batch/bad-value", ["run", path, "--arch", ARCH, "--batch",
                                       rng.choice(BAD_BATCH)], True)
        elif kind == 7:
            lead = rng.choice([old, "batch", "N"])
            m = _conv(lead, rng.randint(1, 3), rng.randint(1, 5))
            yield ("batch/valid", ["run", _save(workdir, m, "valid", i), "--arch", ARCH,
                                   "--batch", str(rng.randint(1, 64))], False)
        else:
            yield ("batch/graph-row",
                   ["validate", "--data", _graph_row_file(workdir, rng, i), "--no-microchecks",
                    "--no-progress", "--out", str(workdir / f"batch_out_{i}")], True)
