"""Fuzz cases for the MLPerf graphs (npusim.graphs.mlperf) as a user would mistreat them.

Every case is certainly invalid and must end with exit status 2 and one ``npusim: error:``
line before anything is simulated: the symbolic batch left unbound or bound to nonsense, a
dim name the model does not have, a file cut short, a weight whose shape no longer fits its
conv or matmul, a weight dropped, a node renamed to an op that does not exist, a node's output
renamed so that a later node reads nothing.
"""
from __future__ import annotations

import pathlib
import random

import onnx

from npusim.graphs import mlperf

ARCH = "edu"
BAD_BATCH = ["0", "-1", "", "x", "1.5", "2147483648", "9223372036854775808", "nan", "1e3"]
BAD_NAMES = ["seq", "Batch", "batch_size", "N", "input"]


def _base(workdir: pathlib.Path, name: str) -> tuple[onnx.ModelProto, pathlib.Path]:
    path = workdir / f"mlperf_{name}.onnx"
    if not path.exists():
        mlperf.write(name, path, batch="batch")
    return onnx.load(str(path), load_external_data=False), path


def _save(workdir: pathlib.Path, model: onnx.ModelProto, label: str, i: int) -> str:
    path = workdir / f"mlperf_{label}_{i}.onnx"
    onnx.save(model, path)
    return str(path)


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed uses of the MLPerf graphs."""
    for i in range(n):
        name = rng.choice(mlperf.NETWORKS)
        model, path = _base(workdir, name)
        kind = i % 7
        if kind == 0:
            yield "mlperf/unbound-batch", ["run", str(path), "--arch", ARCH], True
        elif kind == 1:
            yield ("mlperf/bad-batch",
                   ["run", str(path), "--arch", ARCH, "--dim", f"batch={rng.choice(BAD_BATCH)}"],
                   True)
        elif kind == 2:
            yield ("mlperf/unknown-dim", ["run", str(path), "--arch", ARCH, "--dim", "batch=1",
                                          "--dim", f"{rng.choice(BAD_NAMES)}=2"], True)
        elif kind == 3:
            data = path.read_bytes()
            cut = workdir / f"mlperf_cut_{i}.onnx"
            cut.write_bytes(data[:rng.randrange(1, len(data) - 1)])
            yield "mlperf/truncated", ["run", str(cut), "--arch", ARCH, "--dim", "batch=1"], True
        elif kind == 4:
            # A weight's input-channel or input-feature axis made wrong by one or more (not an
            # embedding table: a Gather reads a taller table just as well).
            big = [t for t in model.graph.initializer
                   if len(t.dims) >= 2 and "embeddings" not in t.name]
            t = rng.choice(big)
            axis = 1 if len(t.dims) == 4 else 0
            t.dims[axis] += rng.randrange(1, 5)
            yield ("mlperf/weight-shape",
                   ["run", _save(workdir, model, "shape", i), "--arch", ARCH, "--dim", "batch=1"],
                   True)
        elif kind == 5:
            node = rng.choice([nd for nd in model.graph.node if nd.op_type != "Constant"])
            node.op_type = rng.choice(["Conv2D", "Gelu_", "MatMulX", "LayerNorm", "Relu6"])
            yield ("mlperf/unknown-op",
                   ["run", _save(workdir, model, "op", i), "--arch", ARCH, "--dim", "batch=1"],
                   True)
        else:
            # A non-Constant node's output renamed: its readers read a name nothing produces,
            # or an initializer dropped so a conv or matmul reads nothing.
            if rng.random() < 0.5:
                node = rng.choice([nd for nd in model.graph.node[:-3] if nd.op_type != "Constant"])
                node.output[0] += ".renamed"
            else:
                del model.graph.initializer[rng.randrange(len(model.graph.initializer))]
            yield ("mlperf/dangling",
                   ["run", _save(workdir, model, "dangle", i), "--arch", ARCH, "--dim",
                    "batch=1"], True)
