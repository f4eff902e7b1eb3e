"""The MLPerf Inference models of the NPU validation rows, as shape-only ONNX graphs.

``resnet50`` is ResNet-50 v1.5, the variant MLPerf Inference's image-classification benchmark
uses (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1, with the
"v1.5" change that puts a downsampling bottleneck's stride 2 on its 3x3 conv instead of its
first 1x1 conv, as torchvision's ``resnet50`` and NVIDIA's "ResNet50 v1.5" do): a 7x7/2 stem
conv with BatchNorm and ReLU, a 3x3/2 max pool, 3, 4, 6 and 3 bottlenecks of widths 64, 128,
256 and 512 (expansion 4) with residual Adds and 1x1 projection shortcuts on each stage's first
block, a global average pool and a 2048 x ``classes`` Gemm, at 224x224. torchvision's model
docs (https://pytorch.org/vision/stable/models.html) give it 25,557,032 trainable parameters
and 4.09 GMACs ("GFLOPS" there are multiply-accumulates); :func:`count_parameters` and the
tests reproduce both. MLPerf's reference checkpoint, converted from TensorFlow, has 1,001
classes, class 0 being "background" (its harness, mlcommons/inference
vision/classification_and_detection/python/main.py, post-processes ImageNet with
``PostProcessArgMax(offset=-1)``); the default here is torchvision's 1,000, and
``classes=1001`` gives the other (2,049 parameters and 2,048 MACs more, 0.05 %).

BatchNorm comes ``"folded"`` into each conv's weight and a conv bias, as exported inference
models have it (ONNX exporters fold it in eval mode, so one Conv node per conv), or
``"separate"`` as BatchNormalization nodes with scale, bias, mean and variance initializers.

``bert-large`` is BERT-Large for SQuAD as MLPerf's ``bert-99`` runs it (Devlin et al., "BERT",
NAACL 2019, section 3: 24 layers, hidden 1024, 16 heads; FFN 4096; the uncased vocabulary of
30,522 word pieces, 512 positions and 2 token types of Google's released ``bert_config.json``),
at the benchmark's 384-token sequences: inputs ``input_ids``, ``input_mask`` and ``segment_ids``
``[batch, seq]`` (MLPerf's names); word + position + token-type embeddings and LayerNorm
(epsilon 1e-12); per layer q/k/v projections, scaled dot-product attention over the padding
mask, output projection, residual Add and LayerNorm, then a GELU (erf form, one ``Gelu`` node of
opset 20) FFN, residual Add and LayerNorm; and the span head ``qa_outputs`` (1024 x 2) split
into ``start_logits`` and ``end_logits``. There is no pooler: question answering does not use
it, so the count is 334,094,338 parameters (the "335 M" often quoted is ``BertModel`` with its
1,049,600-parameter pooler and no span head).

Every weight is an initializer that carries only dims and data type (fp32, the dtype of the
exported reference models) and points at an external file that is never written nor read, as
:mod:`npusim.graphs.builder` does for big models: the graphs are for analysis, not for
onnxruntime, and build in milliseconds. The batch is an integer or the name of a symbolic
dimension (``batch="batch"``, bound later with ``--dim batch=N``).

Run as ``python -m npusim.graphs.mlperf NAME PATH [--batch N|NAME] [--batchnorm separate]``
to write one.

This module imports only onnx, the standard library and :mod:`npusim.graphs.builder`.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from .builder import EXTERNAL_LOCATION
from .builder import check as _check_external

#: Opset 20 is the first with a ``Gelu`` op; every other op used here is older.
OPSET = 20
IR_VERSION = 10
NETWORKS = ("resnet50", "bert-large")
BATCHNORM = ("folded", "separate")

# ResNet-50 v1.5 stages: (bottlenecks, width); output channels are 4 x width (He et al.,
# Table 1). Stages 2-4 halve the resolution in their first block.
RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
EXPANSION = 4

# BERT-Large (Devlin et al. 2019, section 3) and Google's released bert_config.json for the
# uncased model that MLPerf's bert-99 fine-tunes on SQuAD v1.1.
BERT_LARGE = {"layers": 24, "hidden": 1024, "heads": 16, "ffn": 4096, "vocab": 30522,
              "positions": 512, "token_types": 2, "eps": 1e-12}
#: MLPerf bert-99's sequence length (max_seq_length 384 of its SQuAD pre-processing).
BERT_SEQ = 384
#: Added to masked (padding) attention scores, as BERT's reference code does.
MASK_VALUE = -10000.0


class _Graph:
    """Nodes, shape-only initializers and deduplicated constants of one graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.consts: dict[tuple, str] = {}

    def param(self, name: str, shape: tuple[int, ...]) -> str:
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape)
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=EXTERNAL_LOCATION)
        self.inits.append(t)
        return name

    def const(self, values: list, elem: int = TensorProto.INT64) -> str:
        key = (elem, tuple(values))
        if key not in self.consts:
            name = f"const.{len(self.consts)}"
            dims = [] if len(values) == 1 and elem == TensorProto.FLOAT else [len(values)]
            self.nodes.append(helper.make_node(
                "Constant", [], [name], name=name,
                value=helper.make_tensor(name, elem, dims, values)))
            self.consts[key] = name
        return self.consts[key]

    def scalar(self, value: float) -> str:
        return self.const([float(value)], TensorProto.FLOAT)

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name


# -- ResNet-50 v1.5 ---------------------------------------------------------------------------
def _resnet_convs() -> list[tuple[str, int, int, int, int]]:
    """Every conv as (name, in channels, out channels, kernel, stride), in graph order."""
    convs = [("conv1", 3, 64, 7, 2)]
    cin = 64
    for s, (blocks, width) in enumerate(RESNET50_STAGES, start=1):
        for b in range(blocks):
            stride = 2 if b == 0 and s > 1 else 1
            p, cout = f"layer{s}.{b}", width * EXPANSION
            convs += [(f"{p}.conv1", cin, width, 1, 1),
                      (f"{p}.conv2", width, width, 3, stride),   # v1.5: the stride is here
                      (f"{p}.conv3", width, cout, 1, 1)]
            if b == 0:
                convs.append((f"{p}.downsample.0", cin, cout, 1, stride))
            cin = cout
    return convs


def _bn_name(conv: str) -> str:
    """torchvision's BatchNorm name beside a conv (``layer1.0.conv2`` -> ``layer1.0.bn2``)."""
    if conv.endswith(".downsample.0"):
        return conv[:-1] + "1"
    head, _, tail = conv.rpartition(".")
    return f"{head}.bn{tail[4:]}" if head else f"bn{tail[4:]}"


def _resnet_params(classes: int, batchnorm: str) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []
    for name, cin, cout, k, _ in _resnet_convs():
        out.append((f"{name}.weight", (cout, cin, k, k)))
        if batchnorm == "folded":
            out.append((f"{name}.bias", (cout,)))
        else:
            bn = _bn_name(name)
            out += [(f"{bn}.{field}", (cout,))
                    for field in ("weight", "bias", "running_mean", "running_var")]
    return out + [("fc.weight", (classes, 512 * EXPANSION)), ("fc.bias", (classes,))]


def _resnet_graph(g: _Graph, batch, classes: int, batchnorm: str, image: int):
    def conv(x: str, name: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        w = g.param(f"{name}.weight", (cout, cin, k, k))
        pads = [k // 2] * 4
        if batchnorm == "folded":
            y = g.op("Conv", [x, w, g.param(f"{name}.bias", (cout,))], name,
                     kernel_shape=[k, k], strides=[stride, stride], pads=pads)
        else:
            y = g.op("Conv", [x, w], name, kernel_shape=[k, k], strides=[stride, stride],
                     pads=pads)
            bn = _bn_name(name)
            y = g.op("BatchNormalization",
                     [y, *(g.param(f"{bn}.{f}", (cout,))
                           for f in ("weight", "bias", "running_mean", "running_var"))],
                     bn, epsilon=1e-5)
        return g.op("Relu", [y], f"{name}.relu") if relu else y

    convs = iter(_resnet_convs())
    x = conv("input", *next(convs), relu=True)
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for s, (blocks, _) in enumerate(RESNET50_STAGES, start=1):
        for b in range(blocks):
            p = f"layer{s}.{b}"
            y = conv(x, *next(convs), relu=True)
            y = conv(y, *next(convs), relu=True)
            y = conv(y, *next(convs), relu=False)
            shortcut = conv(x, *next(convs), relu=False) if b == 0 else x
            x = g.op("Relu", [g.op("Add", [y, shortcut], f"{p}.residual")], f"{p}.relu")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "avgpool")], "flatten", axis=1)
    g.op("Gemm", [x, g.param("fc.weight", (classes, 2048)), g.param("fc.bias", (classes,))],
         "logits", transB=1)
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                            [batch, 3, image, image])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])]
    return inputs, outputs


# -- BERT-Large ---------------------------------------------------------------------------
def _bert_params(c: dict) -> list[tuple[str, tuple[int, ...]]]:
    d, f = c["hidden"], c["ffn"]
    e = "bert.embeddings"
    out = [(f"{e}.word_embeddings.weight", (c["vocab"], d)),
           (f"{e}.position_embeddings.weight", (c["positions"], d)),
           (f"{e}.token_type_embeddings.weight", (c["token_types"], d)),
           (f"{e}.LayerNorm.weight", (d,)), (f"{e}.LayerNorm.bias", (d,))]
    for i in range(c["layers"]):
        p = f"bert.encoder.layer.{i}"
        for lin, k, n in (("attention.self.query", d, d), ("attention.self.key", d, d),
                          ("attention.self.value", d, d), ("attention.output.dense", d, d)):
            out += [(f"{p}.{lin}.weight", (k, n)), (f"{p}.{lin}.bias", (n,))]
        out += [(f"{p}.attention.output.LayerNorm.weight", (d,)),
                (f"{p}.attention.output.LayerNorm.bias", (d,)),
                (f"{p}.intermediate.dense.weight", (d, f)), (f"{p}.intermediate.dense.bias", (f,)),
                (f"{p}.output.dense.weight", (f, d)), (f"{p}.output.dense.bias", (d,)),
                (f"{p}.output.LayerNorm.weight", (d,)), (f"{p}.output.LayerNorm.bias", (d,))]
    return out + [("qa_outputs.weight", (d, 2)), ("qa_outputs.bias", (2,))]


def _bert_graph(g: _Graph, batch, seq: int, c: dict):
    d, heads, eps = c["hidden"], c["heads"], c["eps"]
    hd = d // heads

    def linear(x: str, name: str, k: int, n: int) -> str:
        y = g.op("MatMul", [x, g.param(f"{name}.weight", (k, n))], name)
        return g.op("Add", [y, g.param(f"{name}.bias", (n,))], f"{name}.bias_add")

    def layernorm(x: str, name: str) -> str:
        return g.op("LayerNormalization", [x, g.param(f"{name}.weight", (d,)),
                                           g.param(f"{name}.bias", (d,))], name,
                    axis=-1, epsilon=eps)

    e = "bert.embeddings"
    words = g.op("Gather", [g.param(f"{e}.word_embeddings.weight", (c["vocab"], d)),
                            "input_ids"], f"{e}.word_embeddings", axis=0)
    # Positions 0..seq-1 are the first seq rows of the table; they broadcast over the batch.
    pos = g.op("Slice", [g.param(f"{e}.position_embeddings.weight", (c["positions"], d)),
                         g.const([0]), g.const([seq]), g.const([0])], f"{e}.position_embeddings")
    types = g.op("Gather", [g.param(f"{e}.token_type_embeddings.weight",
                                    (c["token_types"], d)), "segment_ids"],
                 f"{e}.token_type_embeddings", axis=0)
    h = g.op("Add", [g.op("Add", [words, pos], f"{e}.add_positions"), types], f"{e}.add_types")
    h = layernorm(h, f"{e}.LayerNorm")
    # Padding mask [batch, 1, 1, seq]: 0 where input_mask is 1, MASK_VALUE where it is 0.
    keep = g.op("Cast", ["input_mask"], "mask.to_float", to=TensorProto.FLOAT)
    bias = g.op("Mul", [g.op("Sub", [g.scalar(1.0), keep], "mask.invert"),
                        g.scalar(MASK_VALUE)], "mask.scale")
    bias = g.op("Unsqueeze", [bias, g.const([1, 2])], "mask.broadcast")
    for i in range(c["layers"]):
        p = f"bert.encoder.layer.{i}"
        a = f"{p}.attention.self"

        def heads_of(x: str, name: str, perm: list[int]) -> str:
            # Reshape with 0 copies the batch and sequence dims, so a symbolic batch works.
            x = g.op("Reshape", [x, g.const([0, 0, heads, hd])], f"{name}.split_heads")
            return g.op("Transpose", [x], f"{name}.heads_first", perm=perm)

        q = heads_of(linear(h, f"{a}.query", d, d), f"{a}.query", [0, 2, 1, 3])  # [b,h,s,d]
        k = heads_of(linear(h, f"{a}.key", d, d), f"{a}.key", [0, 2, 3, 1])      # [b,h,d,s]
        v = heads_of(linear(h, f"{a}.value", d, d), f"{a}.value", [0, 2, 1, 3])  # [b,h,s,d]
        scores = g.op("MatMul", [q, k], f"{a}.qk_matmul")                         # [b,h,s,s]
        scores = g.op("Mul", [scores, g.scalar(1.0 / math.sqrt(hd))], f"{a}.scale")
        scores = g.op("Add", [scores, bias], f"{a}.mask")
        probs = g.op("Softmax", [scores], f"{a}.softmax", axis=-1)
        ctx = g.op("MatMul", [probs, v], f"{a}.pv_matmul")                         # [b,h,s,d]
        ctx = g.op("Transpose", [ctx], f"{a}.tokens_first", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, g.const([0, 0, d])], f"{a}.merge_heads")
        attn = linear(ctx, f"{p}.attention.output.dense", d, d)
        h = layernorm(g.op("Add", [attn, h], f"{p}.attention.residual"),
                      f"{p}.attention.output.LayerNorm")
        mid = g.op("Gelu", [linear(h, f"{p}.intermediate.dense", d, c["ffn"])],
                   f"{p}.intermediate.gelu")
        out = linear(mid, f"{p}.output.dense", c["ffn"], d)
        h = layernorm(g.op("Add", [out, h], f"{p}.output.residual"), f"{p}.output.LayerNorm")
    span = linear(h, "qa_outputs", d, 2)                                            # [b,s,2]
    starts, ends = f"{span}.start", f"{span}.end"
    g.nodes.append(helper.make_node("Split", [span, g.const([1, 1])], [starts, ends],
                                    name="qa_outputs.split", axis=-1))
    g.op("Squeeze", [starts, g.const([-1])], "start_logits")
    g.op("Squeeze", [ends, g.const([-1])], "end_logits")
    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, [batch, seq])
           for n in ("input_ids", "input_mask", "segment_ids")]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, seq])
            for n in ("start_logits", "end_logits")]
    return ids, outs


# -- public API ---------------------------------------------------------------------------
def _check_batch(batch) -> None:
    if isinstance(batch, str):
        if not batch.isidentifier():
            raise ValueError(f"batch must be a positive integer or a dimension name (an "
                             f"identifier such as 'batch'), got {batch!r}.")
    elif isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer or a dimension name, got {batch!r}.")


def _check_args(name: str, batchnorm: str, classes: int, seq: int, image: int) -> None:
    if name not in NETWORKS:
        raise ValueError(f"no MLPerf network {name!r}; choose one of {', '.join(NETWORKS)}.")
    if batchnorm not in BATCHNORM:
        raise ValueError(f"batchnorm must be one of {BATCHNORM}, got {batchnorm!r}.")
    for label, value, least, most in (("classes", classes, 1, 100_000),
                                      ("seq", seq, 1, BERT_LARGE["positions"]),
                                      ("image", image, 32, 4096)):
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
            raise ValueError(f"{label} must be an integer in {least}..{most}, got {value!r}.")


def _param_shapes(name: str, classes: int, batchnorm: str) -> list[tuple[str, tuple[int, ...]]]:
    return _resnet_params(classes, batchnorm) if name == "resnet50" else _bert_params(BERT_LARGE)


def count_parameters(name: str, *, classes: int = 1000, batchnorm: str = "separate",
                     trainable: bool = True) -> int:
    """Parameters of network ``name``, by arithmetic on its layer list.

    Parameters
    ----------
    name : {"resnet50", "bert-large"}
    classes : int
        ResNet-50's classifier width.
    batchnorm : {"separate", "folded"}
        ResNet-50's BatchNorm form; ``"folded"`` holds a conv bias in place of the four
        BatchNorm vectors.
    trainable : bool
        Count trained values only, as torchvision does: BatchNorm's running mean and variance
        are statistics, not parameters. ``False`` counts every initializer of the graph.

    Examples
    --------
    >>> count_parameters("resnet50")
    25557032
    >>> count_parameters("bert-large")
    334094338
    """
    _check_args(name, batchnorm, classes, BERT_SEQ, 224)
    return sum(math.prod(shape) for pname, shape in _param_shapes(name, classes, batchnorm)
               if not (trainable and pname.endswith(("running_mean", "running_var"))))


def build(name: str, batch: int | str = 1, *, batchnorm: str = "folded", classes: int = 1000,
          seq: int = BERT_SEQ, image: int = 224) -> onnx.ModelProto:
    """The ONNX model of ``name`` (one of :data:`NETWORKS`) with shape-only weights.

    Parameters
    ----------
    name : {"resnet50", "bert-large"}
    batch : int or str
        Batch size, or the name of a symbolic batch dimension (``"batch"``).
    batchnorm : {"folded", "separate"}
        ResNet-50 only: BatchNorm folded into the convs (as exported) or as its own nodes.
    classes : int
        ResNet-50 only: classifier width (1000; MLPerf's TensorFlow checkpoint has 1001).
    seq : int
        BERT-Large only: tokens per sequence (384 for MLPerf bert-99; at most 512).
    image : int
        ResNet-50 only: input height and width (224).

    Returns
    -------
    onnx.ModelProto
        Opset 20; ``metadata_props`` record the network and its sizes.

    Examples
    --------
    >>> m = build("resnet50", batch="batch")
    >>> [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    ['batch', 3, 224, 224]
    >>> sum(n.op_type == "Add" for n in m.graph.node)
    16
    """
    _check_args(name, batchnorm, classes, seq, image)
    _check_batch(batch)
    g = _Graph()
    if name == "resnet50":
        inputs, outputs = _resnet_graph(g, batch, classes, batchnorm, image)
        title, sizes = "ResNet-50 v1.5", {"image": image, "classes": classes,
                                           "batchnorm": batchnorm}
    else:
        inputs, outputs = _bert_graph(g, batch, seq, BERT_LARGE)
        title, sizes = "BERT-Large SQuAD", {"seq": seq}
    graph = helper.make_graph(g.nodes, title, inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="npusim.graphs.mlperf")
    model.ir_version = IR_VERSION
    meta = {"model": name, "batch": batch, "parameters": count_parameters(
        name, classes=classes, batchnorm=batchnorm), **sizes}
    helper.set_model_props(model, {f"npusim.{k}": str(v) for k, v in meta.items()})
    return model


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with full shape inference, the shape-only weights taken as inputs."""
    _check_external(model)


def write(name: str, path: str | Path, batch: int | str = 1, **kwargs) -> Path:
    """Write network ``name`` to ``path`` (an ``.onnx`` file; no weights file) and return it."""
    path = Path(path)
    onnx.save(build(name, batch, **kwargs), path)
    return path


def _batch_arg(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def main(argv: list[str] | None = None) -> int:
    """``python -m npusim.graphs.mlperf NAME PATH``; exit 2 with one line on bad arguments."""
    ap = argparse.ArgumentParser(prog="python -m npusim.graphs.mlperf",
                                 description="Write an MLPerf model as a shape-only ONNX file.")
    ap.add_argument("name", choices=NETWORKS)
    ap.add_argument("path", help="the .onnx file to write (no weights file is written)")
    ap.add_argument("--batch", type=_batch_arg, default=1,
                    help="batch size, or a name for a symbolic batch dim (default 1)")
    ap.add_argument("--batchnorm", choices=BATCHNORM, default="folded",
                    help="ResNet-50: BatchNorm folded into the convs or as nodes")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = write(args.name, args.path, args.batch, batchnorm=args.batchnorm)
    except ValueError as e:
        ap.error(str(e))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
