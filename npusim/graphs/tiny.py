"""The smallest ONNX graph worth simulating: one MatMul (and optionally a Relu), for examples,
tests and fuzz corpora that need a real file without a model's cost.

>>> import tempfile, pathlib, onnx
>>> p = matmul_onnx(pathlib.Path(tempfile.mkdtemp()) / "mm.onnx")
>>> [n.op_type for n in onnx.load(p).graph.node]
['MatMul']
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["matmul_onnx"]


def matmul_onnx(path: str | Path, *, relu: bool = False) -> Path:
    """Write ``x [1, 16] -> MatMul w [16, 8]`` (128 MACs a sample, batch fixed at 1; zero
    weights), followed by a Relu when ``relu``, as ONNX opset 17 at ``path``; return the path."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper
    out = "h" if relu else "y"
    nodes = [helper.make_node("MatMul", ["x", "w"], [out], name="mm")]
    if relu:
        nodes.append(helper.make_node("Relu", ["h"], ["y"], name="relu"))
    g = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", T.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", T.FLOAT, [1, 8])],
        [helper.make_tensor("w", T.FLOAT, [16, 8], [0.0] * 128)])
    path = Path(path)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path
