"""Small vision networks as ONNX files, for the spiking-core examples, courses and tests.

``lenet`` is LeNet-5 (LeCun et al., Proc. IEEE 1998) in its common modern form: a 1x28x28
input, a 5x5 convolution to 6 maps (padding 2), ReLU, 2x2 average pooling, a 5x5 convolution to
16 maps, ReLU, 2x2 average pooling, then fully connected layers 400-120-84-10 with ReLUs.
``mlp`` is a 784-256-256-10 perceptron with ReLUs. Both are feed-forward chains, so
:func:`npusim.passes.spiking.to_snn` converts them to rate-coded spiking networks.

Weights are seeded random draws (He initialisation), never trained: the files have the shapes
and the data that onnxruntime needs to run them (so ``--calibrate`` works), not the accuracy of
a trained network; spike rates measured on them describe random weights.

Run as ``python -m npusim.graphs.vision NAME PATH`` to write one.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
NETWORKS = ("lenet", "mlp")


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, name: str):
    return numpy_helper.from_array(
        (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name)


def build(name: str, seed: int = 0) -> onnx.ModelProto:
    """The ONNX model of ``name`` (one of :data:`NETWORKS`), batch 1.

    >>> m = build("lenet")
    >>> [n.op_type for n in m.graph.node][:3]
    ['Conv', 'Relu', 'AveragePool']
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    if name == "lenet":
        x_shape = [1, 1, 28, 28]
        inits += [_he(rng, (6, 1, 5, 5), 25, "conv1.w"), _he(rng, (16, 6, 5, 5), 150, "conv2.w")]
        nodes += [helper.make_node("Conv", ["x", "conv1.w"], ["c1"], name="conv1",
                                   pads=[2, 2, 2, 2]),
                  helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
                  helper.make_node("AveragePool", ["r1"], ["p1"], name="pool1",
                                   kernel_shape=[2, 2], strides=[2, 2]),
                  helper.make_node("Conv", ["p1", "conv2.w"], ["c2"], name="conv2"),
                  helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
                  helper.make_node("AveragePool", ["r2"], ["p2"], name="pool2",
                                   kernel_shape=[2, 2], strides=[2, 2]),
                  helper.make_node("Flatten", ["p2"], ["h0"], name="flatten")]
        widths = [400, 120, 84, 10]
    elif name == "mlp":
        x_shape = [1, 784]
        nodes.append(helper.make_node("Identity", ["x"], ["h0"], name="input"))
        widths = [784, 256, 256, 10]
    else:
        raise ValueError(f"no vision network {name!r}; choose one of {', '.join(NETWORKS)}")
    for i, (k, n) in enumerate(zip(widths, widths[1:]), start=1):
        inits.append(_he(rng, (k, n), k, f"fc{i}.w"))
        last = i == len(widths) - 1
        nodes.append(helper.make_node("MatMul", [f"h{i - 1}", f"fc{i}.w"],
                                      ["y" if last else f"a{i}"], name=f"fc{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i}"], name=f"relu_fc{i}"))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, x_shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def write(name: str, path: str | Path, seed: int = 0) -> Path:
    """Write network ``name`` to ``path`` (an ``.onnx`` file) and return the path."""
    path = Path(path)
    onnx.save(build(name, seed), path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in NETWORKS:
        print(f"usage: python -m npusim.graphs.vision {{{','.join(NETWORKS)}}} PATH.onnx",
              file=sys.stderr)
        return 2
    print(f"wrote {write(args[0], args[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
