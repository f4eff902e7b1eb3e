"""From an SNN graph (the IR with explicit spikes) to the spiking engine's chain of layers.

An *SNN graph* is an ordinary IR :class:`~npusim.ir.Graph` in which spikes are explicit
(``graph.meta["snn"]``; every spiking activation a :class:`~npusim.ir.Neuron`, the input
spikes made by one ``encode`` Neuron). :func:`to_network` reads it as the engine's
:class:`~npusim.engine.snn.Network`: one layer per Neuron, named as the Neuron, connected by the
synaptic projection between it and the Neuron before it.

What counts as a projection is read off the IR's contractions, not off op types:

* **dense**: every output neuron reads every input neuron, i.e. the contraction's MACs are
  (input neurons) x (output neurons) and no dimension of more than one element is shared by
  the spikes and the output (a MatMul or Gemm at batch 1, a 1x1 conv over a 1x1 map);
* **conv2d** (and 1-D convs as a height-1 conv2d): the Conv lowering's projection ``n, [g*C/G
  +] c, p*stride + r*dilation - pad`` of the spikes, with one stride and one symmetric padding
  for both spatial axes, dilation 1, any groups; checked by its MAC count;
* **average pooling** (:class:`~npusim.ir.Pool`): a grouped conv with one group per channel and
  fixed weights. A pool that reads spikes (``Neuron -> AveragePool -> Conv -> Neuron``) becomes
  a layer of its own, named as the pool op, as ANN-to-SNN conversion builds it (Rueckauer et
  al. 2017: a spiking pool layer with weights 1/window); its rate is taken to be the rate of
  the layer it pools (assumption: with weights 1/window and threshold 1 an IF neuron's output
  count is the window's mean input count). A pool that reads the current (``Conv ->
  AveragePool -> Neuron``) folds into the conv: the pair is one conv of kernel ``(kp - 1) *
  stride + k`` and stride ``stride * sp`` (exact when the pool has no padding and the conv's
  stride is at most its kernel, so the merged window has no gaps). Max pooling is no sum of
  spikes and is refused, unless the caller takes it as average pooling (``max_pool="average"``).

Glue between a projection and its Neuron is skipped: a bias add, a scale, BatchNorm's
elementwise op, casts and (de)quantisation, reshapes and flattens (free views in the IR), and
transposes in front of a dense projection (all-to-all, so the order of neurons does not
matter). Ops after the last Neuron are its readout and not part of the network.

Everything a chain of layers cannot express is one :class:`~npusim.errors.ModelError` naming
the ONNX node: a branch or residual add, a concat, two projections with no Neuron between them,
an unconverted Relu, asymmetric padding, a batch of more than one sample.
"""
from __future__ import annotations

import math
from dataclasses import replace

import networkx as nx

from ..errors import ModelError
from ..ir import Contraction, Graph, Neuron, Op, Operand, Pool, Role
from .snn import Layer, Network, conv_out

GLUE = frozenset({"add", "sub", "mul", "div", "batchnorm", "cast", "quantize", "dequantize"})
"""Elementwise functions that may sit between a projection and its Neuron: they shift or scale
the current (bias, BatchNorm, a scale) or change its number format, not who feeds whom."""

AVERAGE_POOLS = frozenset({"average_pool", "global_average_pool"})
MAX_POOLS = frozenset({"max_pool", "global_max_pool"})
MAX_POOL_CHOICES = ("refuse", "average")


def to_network(graph: Graph, *, max_pool: str = "refuse") -> tuple[Network, dict[str, float]]:
    """The chain of layers of SNN graph ``graph`` and the spike rate of each layer.

    ``max_pool``: ``"refuse"`` (a max pooling is an error) or ``"average"`` (take it as an
    average pooling of the same window). Returns ``(network, rates)``: rates are mean spikes
    per neuron per timestep of the layers whose rate is known (the Neurons' ``rate``; a pool
    layer inherits the rate of the layer it pools), ready for :func:`npusim.engine.snn.run`.

    >>> import numpy as np, onnx
    >>> from onnx import helper as h, TensorProto as P, numpy_helper as nh
    >>> from npusim.frontend.onnx_loader import load_onnx
    >>> from npusim.ir import Graph, Neuron
    >>> w = nh.from_array(np.zeros((8, 4), np.float32), "w")
    >>> m = h.make_model(h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
    ...     "mlp", [h.make_tensor_value_info("x", P.FLOAT, [1, 8])],
    ...     [h.make_tensor_value_info("y", P.FLOAT, [1, 4])], [w]))
    >>> g0 = load_onnx(m)
    >>> x, y = g0.tensors["x"], g0.tensors["y"]
    >>> s = Graph("mlp", {"snn": True, "timesteps": 4})
    >>> _ = s.add(Neuron(name="x:encode", model="encode", timesteps=4, rate=0.5,
    ...                  inputs=(x,), outputs=(replace(x, name="x:spikes"),)))
    >>> fc = g0.op("fc")
    >>> _ = s.add(replace(fc, operands=(replace(fc.operands[0],
    ...     tensor=replace(x, name="x:spikes")), fc.operands[1]), inputs=()))
    >>> _ = s.add(Neuron(name="fc:out", timesteps=4, rate=0.1, inputs=(y,),
    ...                  outputs=(replace(y, name="y:spikes"),)))
    >>> net, rates = to_network(s)
    >>> [(lay.name, lay.kind, lay.shape) for lay in net.layers], rates
    ([('x:encode', 'input', (8,)), ('fc:out', 'dense', (4,))], {'x:encode': 0.5, 'fc:out': 0.1})
    """
    where = f"SNN graph {graph.name!r}"
    if max_pool not in MAX_POOL_CHOICES:
        raise ModelError(f"{where}: max_pool={max_pool!r}; choose one of "
                         f"{', '.join(MAX_POOL_CHOICES)}")
    if not graph.meta.get("snn"):
        raise ModelError(f"{where} is not an SNN graph (graph.meta['snn'] is not set); convert "
                         f"it first (npusim.passes.spiking.to_snn(graph, timesteps))")
    enc = _encoder(graph, where)
    layers = [Layer(enc.name, "input", _neuron_shape(enc.outputs[0], enc, where))]
    rates = {enc.name: float(enc.rate)} if enc.rate is not None else {}
    visited = {enc.name} | set(_ancestors(graph, enc))
    cur = enc
    while True:
        stages, nxt = _segment(graph, cur, where)
        visited |= {op.name for op, _ in stages}
        if nxt is None:
            _check_readout(stages, cur, where)
            break
        visited.add(nxt.name)
        _segment_layers(stages, nxt, layers, rates, max_pool, where)
        cur = nxt
    stray = [graph.op(n) for n in graph.nx.nodes if n not in visited]
    if stray:
        raise ModelError(f"{where}: {_node(stray[0])} is not on the single path from the input "
                         f"encoder to the last Neuron (a second input or a side branch); a chain "
                         f"of layers cannot express it")
    return Network(graph.name, tuple(layers)), rates


# ----------------------------------------------------------------------------- walking the chain
def _node(op: Op) -> str:
    """How messages name an op: its ONNX node, its type, and the IR op if it differs."""
    kind = op.op_type or op.kind
    extra = f", op {op.name!r}" if op.name != op.source and op.source else ""
    return f"node {op.source or op.name!r} ({kind}{extra})"


def _ancestors(graph: Graph, op: Op) -> list[str]:
    """Ops upstream of the encoder (input preprocessing), not part of the network."""
    return list(nx.ancestors(graph.nx, op.name))


def _encoder(graph: Graph, where: str) -> Neuron:
    """The one ``encode`` Neuron, and it must come before every other Neuron."""
    neurons = [op for op in graph.ops() if op.kind == "neuron"]
    enc = [op for op in neurons if op.model == "encode"]
    if not enc:
        raise ModelError(f"{where} has no encode Neuron (the input spike encoder); an SNN graph "
                         f"starts with Neuron(model='encode') on its input (to_snn adds it)")
    if len(enc) > 1:
        raise ModelError(f"{where} has {len(enc)} encode Neurons ({enc[0].name!r}, "
                         f"{enc[1].name!r}, ...); a chain of layers has one input")
    if neurons[0] is not enc[0]:
        raise ModelError(f"{where}: {_node(neurons[0])} is a Neuron before the input encoder "
                         f"{enc[0].name!r}; the encoder must be the first Neuron")
    return enc[0]


def _segment(graph: Graph, start: Op, where: str) -> tuple[list[tuple[Op, str]], Neuron | None]:
    """The ops after ``start`` up to the next Neuron (``None`` at the end of the graph), each
    with the name of the tensor it reads from the chain; refuses branches and merges."""
    stages: list[tuple[Op, str]] = []
    op = start
    while True:
        succ = list(graph.nx.successors(op.name))
        if not succ:
            return stages, None
        if len(succ) > 1:
            names = ", ".join(repr(graph.op(s).source or s) for s in succ)
            raise ModelError(f"{where}: {_node(op)} feeds {len(succ)} ops ({names}): a branch "
                             f"or residual connection, which a chain of layers cannot express")
        nxt = graph.op(succ[0])
        preds = list(graph.nx.predecessors(nxt.name))
        if len(preds) > 1:
            names = ", ".join(repr(graph.op(p).source or p) for p in preds)
            raise ModelError(f"{where}: {_node(nxt)} merges {len(preds)} computed inputs "
                             f"({names}): a residual add or concat, which a chain of layers "
                             f"cannot express")
        tensors = graph.nx.edges[op.name, nxt.name]["tensors"]
        if nxt.kind == "neuron":
            if nxt.model == "encode":
                raise ModelError(f"{where}: {_node(nxt)} is a second input encoder inside the "
                                 f"chain; only the graph input is encoded")
            return stages, nxt
        stages.append((nxt, tensors[0]))
        op = nxt


def _check_readout(stages: list[tuple[Op, str]], last: Op, where: str) -> None:
    """Ops after the last Neuron read its spikes out (softmax, argmax, a flatten); a
    projection there has no Neuron and is no layer of the chain."""
    for op, _ in stages:
        if op.kind == "contraction":
            raise ModelError(f"{where}: {_node(op)} comes after the last Neuron {last.name!r} "
                             f"and has no Neuron of its own; give it one (to_snn appends "
                             f"'{op.name}:out')")


# ----------------------------------------------------------------------------- one segment
def _segment_layers(stages: list[tuple[Op, str]], neuron: Neuron, layers: list[Layer],
                    rates: dict[str, float], max_pool: str, where: str) -> None:
    """Append the layers between the last layer and ``neuron``: relay pool layers for pools
    that read spikes, then the Neuron's own layer."""
    kept: list[tuple[str, Op, str]] = []           # (role, op, chain tensor name)
    for op, tname in stages:
        role = _role(op, tname, max_pool, where)
        if role != "glue":
            kept.append((role, op, tname))
    projs = [i for i, (role, _, _) in enumerate(kept) if role == "proj"]
    if len(projs) > 1:
        raise ModelError(f"{where}: {_node(kept[projs[0]][1])} and {_node(kept[projs[1]][1])} "
                         f"are two projections with no Neuron between them (a linear layer "
                         f"without a spiking activation); add a Neuron or merge them")
    if not any(role in ("proj", "pool") for role, _, _ in kept):
        raise ModelError(f"{where}: {_node(neuron)} reads the spikes of {layers[-1].name!r} "
                         f"with no projection (contraction or pooling) between them")
    transposes = [op for role, op, _ in kept if role == "transpose"]
    head = kept[:projs[0]] if projs else kept[:-1]
    tail = kept[projs[0]:] if projs else kept[-1:]
    if transposes:
        dense = projs and _is_dense(kept[projs[0]][1], kept[projs[0]][2])
        if not dense or any(role == "pool" for role, _, _ in kept):
            raise ModelError(f"{where}: {_node(transposes[0])} reorders neurons in front of a "
                             f"conv or pooling layer, which a chain of layers cannot express "
                             f"(only a dense projection is indifferent to the order)")
    for role, op, tname in head:
        if role == "pool":
            prev = layers[-1]
            _view(layers, _input_tensor(op, tname), op, where)
            layers.append(_pool_layer(op, tname, op.name, where))
            if prev.name in rates:
                rates[op.name] = rates[prev.name]
    role, op, tname = tail[0]
    _view(layers, _input_tensor(op, tname), op, where)
    if role == "pool":
        lay = _pool_layer(op, tname, neuron.name, where)
    elif _is_dense(op, tname):
        lay = Layer(neuron.name, "dense", _neuron_shape(neuron.outputs[0], neuron, where))
        out = _batch_free(op.output.tensor, op, where)
        if math.prod(out) != lay.size:
            raise ModelError(f"{where}: {_node(neuron)} has {lay.size} neurons but the "
                             f"projection {op.name!r} before it has {math.prod(out)} outputs")
    else:
        lay = _conv_layer(op, tname, neuron.name, where)
        for prole, pool, _ in tail[1:]:
            if prole == "pool":
                lay = _fold_pool(lay, pool, where)
    if lay.kind != "dense" and math.prod(lay.shape) != neuron.neurons:
        raise ModelError(f"{where}: {_node(neuron)} has {neuron.neurons} neurons but the "
                         f"projection before it makes {math.prod(lay.shape)} ({lay.shape})")
    if lay.kind == "dense" and any(role == "pool" for role, _, _ in tail[1:]):
        pool = next(p for r, p, _ in tail[1:] if r == "pool")
        raise ModelError(f"{where}: {_node(pool)} pools the output of a dense projection; a "
                         f"chain of layers pools spatial maps only")
    layers.append(lay)
    if neuron.rate is not None:
        rates[neuron.name] = float(neuron.rate)


def _role(op: Op, tname: str, max_pool: str, where: str) -> str:
    """What an op between two Neurons is: ``proj``, ``pool``, ``glue`` or ``transpose``."""
    _only_chain_activation(op, tname, where)
    if isinstance(op, Contraction):
        return "proj"
    if isinstance(op, Pool):
        if op.func in AVERAGE_POOLS or (op.func in MAX_POOLS and max_pool == "average"):
            return "pool"
        if op.func in MAX_POOLS:
            raise ModelError(f"{where}: {_node(op)} is a max pooling, which no sum of weighted "
                             f"spikes computes; take it as average pooling of the same window "
                             f"(to_network(graph, max_pool='average')) or use AveragePool")
        raise ModelError(f"{where}: {_node(op)} is a {op.func}; only average pooling is a "
                         f"synaptic projection")
    if op.kind == "reduction":
        raise ModelError(f"{where}: {_node(op)} ({op.func}) is a reduction that is no window "
                         f"pooling; a chain of spiking layers cannot express it")
    if op.kind == "elementwise":
        if op.func in GLUE:
            return "glue"
        if op.func == "relu":
            raise ModelError(f"{where}: {_node(op)} is a Relu left in the graph; an SNN graph "
                             f"replaces each Relu by a Neuron (to_snn)")
        raise ModelError(f"{where}: {_node(op)} ({op.func}) sits between a projection and a "
                         f"Neuron; only bias, scale, BatchNorm, cast and (de)quantize ops may")
    if op.kind == "movement" and op.func == "transpose":
        return "transpose"
    raise ModelError(f"{where}: {_node(op)} ({op.kind} {getattr(op, 'func', '')}) cannot be "
                     f"expressed by a chain of spiking layers (only projections, pooling, "
                     f"bias/BatchNorm glue and reshapes may sit between Neurons)")


def _only_chain_activation(op: Op, tname: str, where: str) -> None:
    """Besides the chain's tensor, an op may read only weights and constants: a second
    activation (a graph input, or both operands of a product computed at run time) is no
    synaptic projection."""
    others = [t for t in op.inputs if t.name != tname and t.role == Role.ACTIVATION]
    if others:
        raise ModelError(f"{where}: {_node(op)} reads a second run-time tensor {others[0].name!r} "
                         f"besides the spikes or current {tname!r}; a synaptic projection "
                         f"multiplies spikes by stored weights only")


# ----------------------------------------------------------------------------- shapes
def _batch_free(t, op: Op, where: str) -> tuple[int, ...]:
    """A tensor's shape without its batch axis, which must hold one sample."""
    if t.rank <= 1:
        return tuple(t.shape) or (1,)
    if t.shape[0] != 1:
        raise ModelError(f"{where}: {_node(op)}: tensor {t.name!r} has batch {t.shape[0]} "
                         f"(shape {t.shape}); a spiking network runs one sample: bind the "
                         f"batch dim to 1")
    return tuple(t.shape[1:])


def _neuron_shape(t, op: Op, where: str) -> tuple[int, ...]:
    """Layer shape of a Neuron's tensor: ``(n,)``, ``(c, h, w)``, or ``(c, 1, l)`` for 1-D."""
    s = _batch_free(t, op, where)
    if len(s) == 3:
        return s
    if len(s) == 2:
        return (s[0], 1, s[1])
    return (math.prod(s),)


def _map_shape(t, op: Op, where: str) -> tuple[int, int, int]:
    """``(c, h, w)`` of a conv's or pool's input or output; 1-D maps get height 1."""
    s = _batch_free(t, op, where)
    if len(s) == 2:
        return (s[0], 1, s[1])
    if len(s) != 3:
        raise ModelError(f"{where}: {_node(op)} works on tensor {t.name!r} of shape {t.shape}; "
                         f"a chain of layers has 1-D and 2-D maps only")
    return s


def _input_tensor(op: Op, tname: str):
    return next(t for t in op.inputs if t.name == tname)


def _view(layers: list[Layer], t, op: Op, where: str) -> None:
    """Let the last layer take the shape its reader sees (a reshape is a free view). A dense
    or input layer's shape is free; a conv layer's is fixed by its window."""
    prev = layers[-1]
    if op.kind == "contraction" and _is_dense(op, t.name):
        return
    want = _map_shape(t, op, where)
    if want == prev.shape:
        return
    if math.prod(want) != prev.size or prev.kind == "conv2d":
        raise ModelError(f"{where}: {_node(op)} reads {t.name!r} as {want}, but layer "
                         f"{prev.name!r} is {prev.shape}; a chain of layers can reshape only "
                         f"the input or a dense layer")
    layers[-1] = replace(prev, shape=want)


# ----------------------------------------------------------------------------- projections
def _activation(op: Contraction, tname: str) -> Operand:
    return next(o for o in op.operands if o.tensor.name == tname)


def _is_dense(op: Op, tname: str) -> bool:
    """All-to-all: MACs = inputs x outputs, and no dim of more than one element is shared
    between the spikes and the output (else it is a per-position or per-channel product)."""
    if not isinstance(op, Contraction):
        return False
    act = _activation(op, tname)
    ext = op.extents
    shared = act.dims & op.output.dims
    return (all(ext[d] == 1 for d in shared)
            and op.macs == act.tensor.numel * op.output.tensor.numel)


def _conv_layer(op: Contraction, tname: str, name: str, where: str) -> Layer:
    """A conv2d layer from a Conv lowering's contraction (see the module docstring)."""
    act, out = _activation(op, tname), op.output
    ext = op.extents

    def refuse(why: str) -> ModelError:
        return ModelError(f"{where}: {_node(op)} is neither a dense projection nor a 1-D/2-D "
                          f"convolution a spiking layer can hold: {why}")

    if act.tensor.rank != out.tensor.rank or act.tensor.rank not in (3, 4):
        raise refuse(f"spikes {act.tensor.shape}, output {out.tensor.shape}")
    for ax in (act.axes[0], out.axes[0]):
        if len(ax.terms) > 1 or any(ext[d] != 1 for d in ax.dims):
            raise refuse("its first axis is not a batch of one sample")
    och, ich = dict(out.axes[1].terms), dict(act.axes[1].terms)
    shared = [d for d in och if d in ich]          # the group dim reads and writes channels
    inner_o, inner_i = [d for d in och if d not in shared], [d for d in ich if d not in shared]
    if (out.axes[1].offset or act.axes[1].offset or len(shared) > 1 or len(inner_o) > 1
            or len(inner_i) > 1 or any(och[d] != 1 for d in inner_o)
            or any(ich[d] != 1 for d in inner_i)):
        raise refuse(f"channel axes {act.axes[1]} (in) and {out.axes[1]} (out)")
    groups = ext[shared[0]] if shared else 1
    if shared and (och[shared[0]] != math.prod(ext[d] for d in inner_o)
                   or ich[shared[0]] != math.prod(ext[d] for d in inner_i)):
        raise refuse(f"channel axes {act.axes[1]} (in) and {out.axes[1]} (out) are no groups")
    kernel, strides, pads = [], [], []
    for a_ax, o_ax in zip(act.axes[2:], out.axes[2:]):
        if len(o_ax.terms) != 1 or o_ax.terms[0][1] != 1 or o_ax.offset:
            raise refuse(f"output spatial axis {o_ax}")
        p = o_ax.terms[0][0]
        terms = dict(a_ax.terms)
        if p not in terms or len(terms) > 2:
            raise refuse(f"input spatial axis {a_ax} does not follow output axis {o_ax} (a "
                         f"transpose folded into its input?)")
        taps = [d for d in terms if d != p]
        if taps and terms[taps[0]] != 1:
            raise ModelError(f"{where}: {_node(op)} has dilation {terms[taps[0]]}; a spiking "
                             f"conv layer has dilation 1")
        kernel.append(ext[taps[0]] if taps else 1)
        strides.append(terms[p])
        pads.append(-a_ax.offset)
    cin, ins = act.tensor.shape[1], act.tensor.shape[2:]
    cout, outs = out.tensor.shape[1], out.tensor.shape[2:]
    if op.macs != cout * math.prod(outs) * (cin // groups) * math.prod(kernel):
        raise refuse(f"{op.macs} MACs are not those of a conv ({dict(op.dims)})")
    if len(ins) == 1:                               # 1-D: a height-1 conv2d
        if pads[0]:
            raise ModelError(f"{where}: {_node(op)} is a padded 1-D conv; a spiking conv layer "
                             f"pads both axes alike, so a 1-D conv must be unpadded")
        kernel, strides, pads = [1, *kernel], strides * 2, pads * 2
        ins, outs = (1, *ins), (1, *outs)
    return _window_layer(op, name, (cin, *ins), (cout, *outs), kernel, strides, pads, groups,
                         where)


def _pool_layer(op: Pool, tname: str, name: str, where: str) -> Layer:
    """An average pooling as a conv2d with one group per channel."""
    x = _map_shape(_input_tensor(op, tname), op, where)
    y = _map_shape(op.outputs[0], op, where)
    window, strides, pads = list(op.window), list(op.strides), list(op.pads)
    if len(window) == 1:
        if pads[0]:
            raise ModelError(f"{where}: {_node(op)} is a padded 1-D pooling; a spiking layer "
                             f"pads both axes alike, so a 1-D pooling must be unpadded")
        window, strides, pads = [1, *window], strides * 2, pads * 2
    if len(window) != 2 or any(d != 1 for d in op.dilations):
        raise ModelError(f"{where}: {_node(op)} pools a {len(op.window)}-D window with "
                         f"dilations {op.dilations}; a chain of layers pools 1-D and 2-D "
                         f"windows of dilation 1")
    if x[0] != y[0]:
        raise ModelError(f"{where}: {_node(op)} maps {x[0]} channels to {y[0]}")
    return _window_layer(op, name, x, y, window, strides, pads, x[0], where)


def _window_layer(op: Op, name: str, x: tuple, y: tuple, kernel: list, strides: list,
                  pads: list, groups: int, where: str) -> Layer:
    """A conv2d layer, refusing what its one stride and one symmetric padding cannot hold."""
    if x[1] == 1 and kernel[0] == 1 and y[1] == 1:  # a height-1 map: its stride is free
        strides[0] = strides[1]
    if strides[0] != strides[1] or pads[0] != pads[1]:
        raise ModelError(f"{where}: {_node(op)} has strides {strides} and paddings {pads}; a "
                         f"spiking conv layer has one stride and one padding for both axes")
    s, p = strides[0], pads[0]
    if p < 0:
        raise ModelError(f"{where}: {_node(op)} has padding {p} (a crop); a spiking conv layer "
                         f"pads by 0 or more")
    made = tuple(conv_out(x[i + 1], kernel[i], s, p) for i in range(2))
    if made != tuple(y[1:]):
        raise ModelError(f"{where}: {_node(op)} makes a {y[1]}x{y[2]} map from {x[1]}x{x[2]} "
                         f"with kernel {kernel}, stride {s}, padding {p} before; symmetric "
                         f"padding would give {made[0]}x{made[1]} (asymmetric padding or "
                         f"ceil_mode), which a spiking conv layer cannot hold")
    return Layer(name, "conv2d", tuple(y), kernel=(kernel[0], kernel[1]), stride=s, padding=p,
                 groups=groups)


def _fold_pool(lay: Layer, pool: Pool, where: str) -> Layer:
    """A conv followed by an average pooling of its output (before the Neuron): one conv of
    kernel ``(kp - 1) * s + k``, stride ``s * sp``, when that window has no gaps (``s <= k``)
    and the pool has no padding, so the merged synapses are exactly the paths through both."""
    window = list(pool.window) if len(pool.window) == 2 else [1, *pool.window]
    strides = list(pool.strides) if len(pool.strides) == 2 else [lay.stride, *pool.strides]
    if any(pool.pads) or any(d != 1 for d in pool.dilations) or len(window) != 2:
        raise ModelError(f"{where}: {_node(pool)} pools the current of conv layer "
                         f"{lay.name!r} with padding {pool.pads} or dilations {pool.dilations}; "
                         f"only an unpadded pooling folds into the conv")
    if lay.stride > min(lay.kernel) and max(window) > 1:
        raise ModelError(f"{where}: {_node(pool)} pools the current of conv layer "
                         f"{lay.name!r}, whose stride {lay.stride} exceeds its kernel "
                         f"{lay.kernel}: the merged window has gaps; put a Neuron before "
                         f"the pooling")
    if window[0] == 1 and lay.shape[1] == 1:
        strides[0] = strides[1]
    if strides[0] != strides[1]:
        raise ModelError(f"{where}: {_node(pool)} has strides {pool.strides}; a spiking "
                         f"conv layer has one stride for both axes")
    oh, ow = (conv_out(lay.shape[i + 1], window[i], strides[i], 0) for i in range(2))
    got = _map_shape(pool.outputs[0], pool, where)
    if (lay.shape[0], oh, ow) != got:
        raise ModelError(f"{where}: {_node(pool)} makes {got} from conv layer {lay.name!r}'s "
                         f"{lay.shape}; unpadded windows would give {(lay.shape[0], oh, ow)} "
                         f"(ceil_mode), which does not fold into the conv")
    kernel = tuple((window[i] - 1) * lay.stride + lay.kernel[i] for i in range(2))
    return replace(lay, shape=(lay.shape[0], oh, ow), kernel=kernel,
                   stride=lay.stride * strides[0])


__all__ = ["AVERAGE_POOLS", "GLUE", "MAX_POOLS", "to_network"]
