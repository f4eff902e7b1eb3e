"""ANN -> SNN conversion: the spiking graph of a feed-forward network, and its spike rates.

:func:`to_snn` turns an ordinary IR graph (what :func:`npusim.load_model` returns for an ONNX
file) into an *SNN graph*: spikes become explicit :class:`~npusim.ir.Neuron` ops, as rate-based
ANN-to-SNN conversion does (Diehl et al. 2015, IJCNN; Rueckauer et al. 2017, Front. Neurosci.
11:682): every ReLU becomes a layer of integrate-and-fire neurons whose mean spike rate stands
for its activation, the input is rate-encoded, and the last layer gets spiking neurons too.

* ``graph.meta["timesteps"] = T`` and ``graph.meta["snn"] = True``;
* ``Neuron(model="encode", name="<input>:encode")`` reads the graph input (or the view of it the
  first op reads, or the result of linear preprocessing such as ``(x - mean) / std`` before the
  first projection) and writes the input spikes, which every later reader reads instead;
* each ``Relu`` (or ``Clip``, a clipped ReLU) becomes a Neuron with the same name, source,
  input and output tensors, so records still match the ONNX node names;
* the last layer, which has no ReLU, gets ``Neuron(name="<contraction name>:out")`` reading
  its current; a trailing Softmax/LogSoftmax/Hardmax/ArgMax is dropped (the class is read off
  the output spike counts) with a warning.

Each appended Neuron writes a tensor of its own name. Only a chain converts: one input, one
output, every op reading one activation; a residual add, a concat or a branch is refused
naming the ONNX node. Between two spiking layers stands at most one contraction (dense or
conv), with linear glue around it (bias add, BatchNorm, scaling, reshapes) and average pooling
(a projection with fixed weights). Max pooling is refused unless ``max_pool="average"``.

Spike rates (mean spikes per neuron per timestep, in [0, 1]) are given as ``rates``, one of:

* a YAML/JSON file (:func:`load_rates`) or a mapping ``{layer or ONNX node name: rate}``,
  ``input:`` naming the encoder;
* :func:`calibrate_rates`: the ReLU activations of a calibration batch run through onnxruntime,
  with data-based normalisation (the rate of a neuron is its activation over a high percentile
  of its layer's activations, clipped to [0, 1]);

and every layer they leave out gets ``default_rate`` (:data:`DEFAULT_RATE`, an assumption), with
one line in ``graph.warnings`` naming those layers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ArchError, ModelError, NpusimError
from ..ir import (NEURON_MODELS, Collective, Contraction, Elementwise, Graph, Movement, Neuron,
                  Op, Operand, Reduction, Role, Tensor)

#: Assumption: 0.1 spikes per neuron per timestep when no rate is measured or given. It is
#: the order of the 0.1366 mean spike rate one converted SNN reports (Front. Neurosci. 2023
#: 17:1091097, the footnote of its Table 3, quoted in snn.md sec. 2.1), and above the ~6 % at
#: which an SNN stops paying off against an ANN (snn.md sec. 2.5), so a default-rate estimate
#: does not flatter the SNN. It is not a measurement of any network: calibrate or give rates.
DEFAULT_RATE = 0.1

#: Neuron models a converted layer may use (the encoder is added by the conversion itself).
SPIKING_MODELS = tuple(m for m in NEURON_MODELS if m != "encode")

#: The threshold of a converted IF neuron: data-based normalisation scales the weights so that
#: a threshold of 1 maps the layer's normalising activation to one spike per step (Diehl 2015).
THRESHOLD = 1.0

_ACTIVATIONS = frozenset({"relu", "clip"})
#: Elementwise ops that shift, scale or re-format a current (bias, BatchNorm, a scale, QDQ);
#: the same set engine/snn_graph.py accepts between a projection and its Neuron.
_LINEAR = frozenset({"add", "sub", "mul", "div", "batchnorm", "cast", "quantize", "dequantize"})
_AVG_POOLS = frozenset({"average_pool", "global_average_pool"})
_MAX_POOLS = {"max_pool": "average_pool", "global_max_pool": "global_average_pool"}
_TAILS = frozenset({"softmax", "logsoftmax", "hardmax", "argmax"})
_INPUT_KEY = "input"
_MAX_LISTED = 30


class SnnConversionError(ModelError):
    """A graph :func:`to_snn` cannot convert (not a chain, an activation with no spiking
    counterpart, max pooling not accepted) or arguments it refuses."""


class RatesError(NpusimError):
    """A rates file or mapping that is malformed, names unknown layers or gives a rate outside
    [0, 1]."""


# -- rates --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RateSet:
    """Spike rates by layer or ONNX node name, with where they came from.

    ``source`` names the origin in messages and in ``graph.meta["rate_sources"]`` (a file
    path, "calibration of m.onnx ..."); ``notes`` go to ``graph.warnings`` on conversion;
    ``scales`` holds the normalising activation of each layer when calibrated.

    Every rate is checked here, the one boundary for files, mappings and calibration:

    >>> RateSet({"relu1": 0.05}, "my rates").rates["relu1"]
    0.05
    >>> RateSet({"relu1": 1.5}, "rates.yaml")
    Traceback (most recent call last):
    ...
    npusim.passes.spiking.RatesError: rates.yaml: the rate of layer 'relu1' is 1.5, outside [0, 1] (mean spikes per neuron per timestep); fix it
    """

    rates: Mapping[str, float]
    source: str = "rates"
    notes: tuple[str, ...] = ()
    scales: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.rates, Mapping):
            raise RatesError(f"{self.source}: rates must be a mapping of layer name to rate, "
                             f"got {type(self.rates).__name__}")
        checked = {}
        for key, value in self.rates.items():
            if not isinstance(key, str) or not key:
                raise RatesError(f"{self.source}: key {key!r} is not a layer name; name each "
                                 f"layer (or ONNX node) by its name, or 'input'")
            checked[key] = _check_rate(key, value, self.source)
        object.__setattr__(self, "rates", checked)
        object.__setattr__(self, "notes", tuple(self.notes))


def _check_rate(key: str, value: Any, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise RatesError(f"{source}: the rate of layer {key!r} is {value!r:.60}, not a number; "
                         f"give mean spikes per neuron per timestep in [0, 1]")
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise RatesError(f"{source}: the rate of layer {key!r} is {value!r}, outside [0, 1] "
                         f"(mean spikes per neuron per timestep); fix it")
    return v


def load_rates(path: str | Path) -> RateSet:
    """Read a rates file: a YAML or JSON mapping ``{layer or ONNX node name: rate}``.

    ``input:`` names the input encoder. A ``.json`` file is read as strict JSON, anything else
    as YAML; duplicate keys are refused in both.

    Raises
    ------
    RatesError
        Missing or unreadable file, malformed text, a top level that is not a mapping, a key
        that is not a name, a rate that is not a number in [0, 1].
    """
    from ..files import read_text
    path = Path(path)
    label = str(path)
    try:
        text = read_text(path, "rates file")
    except NpusimError as e:
        raise RatesError(str(e)) from None
    if path.suffix.lower() == ".json":
        tree = _parse_json(text, label)
    else:
        from ..arch.loader import parse_yaml
        try:
            tree = parse_yaml(text, label)
        except ArchError as e:
            raise RatesError(str(e).replace("an arch description", "a rates file")) from None
    if not isinstance(tree, Mapping):
        got = "nothing" if tree is None else f"a {type(tree).__name__}"
        raise RatesError(f"{label}: a rates file holds a mapping of layer name to rate (e.g. "
                         f"'relu1: 0.05'), but this one holds {got}; fix its top level")
    return RateSet(dict(tree), label)


def _parse_json(text: str, label: str) -> Any:
    def pairs(items: list) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                raise RatesError(f"{label}: duplicate key {k!r}; keep only one")
            out[k] = v
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs,
                          parse_constant=lambda c: float("nan"))
    except json.JSONDecodeError as e:
        raise RatesError(f"{label}: malformed JSON at line {e.lineno}, column {e.colno}: "
                         f"{e.msg}; fix the syntax there") from None
    except RecursionError:
        raise RatesError(f"{label}: the JSON nests too deep for a rates file; fix its "
                         f"structure") from None


def _as_rateset(rates: Any) -> RateSet | None:
    if rates is None or isinstance(rates, RateSet):
        return rates
    if isinstance(rates, (str, Path)):
        return load_rates(rates)
    if isinstance(rates, Mapping):
        return RateSet(dict(rates), "rates argument")
    raise RatesError(f"rates must be a file path, a mapping of layer name to rate or a RateSet, "
                     f"got {type(rates).__name__}")


# -- the plan: what the chain is and which ops become spiking layers ------------------------
@dataclass(frozen=True)
class SpikingLayer:
    """One spiking layer :func:`to_snn` makes.

    ``name`` is its Neuron's name; ``keys`` the names that address it in a rates file (its
    name, ``"input"`` for the encoder, the ONNX nodes of its projection and activation);
    ``tensor`` the ANN tensor whose activation gives its rate (the input, a Relu's output, the
    last layer's current); ``replaces`` the Relu/Clip op it replaces, or ``after`` the op whose
    output it reads when it is added (the encoder has neither).
    """

    name: str
    keys: tuple[str, ...]
    tensor: str
    source: str
    op_type: str
    replaces: str | None = None
    after: str | None = None


@dataclass
class _Plan:
    label: str
    chain: list[Op]
    encode_reads: str             # the tensor the encoder reads (the input, a view of it, or
    encode_after: str | None      # the output of input preprocessing, and the op making it)
    layers: list[SpikingLayer]
    dropped: list[Op]
    pools: list[str]              # max pools accepted as average pools
    current: str                  # the tensor the output layer reads (or the last spikes)


def _label(graph: Graph) -> str:
    return str(graph.meta.get("source") or f"graph {graph.name!r}")


def _names(ops: Iterable[Op]) -> str:
    return ", ".join(repr(op.source or op.name) for op in ops)


def _node(op: Op) -> str:
    return f"node {op.source or op.name!r} ({op.op_type or op.kind})"


def _chain(graph: Graph, label: str) -> tuple[list[Op], dict[str, str]]:
    """The ops on the single path from the graph input to its output, and for each of them the
    root of the one activation it reads. Ops that only prepare weights (a dequantise of a
    weight) are off the path and kept as they are."""
    if len(graph.inputs) != 1:
        raise SnnConversionError(
            f"{label}: the graph has {len(graph.inputs)} inputs "
            f"({', '.join(map(repr, graph.inputs)) or 'none'}); to_snn converts a feed-forward "
            f"chain with one input (weights must be initializers, not inputs)")
    if len(graph.outputs) != 1:
        raise SnnConversionError(
            f"{label}: the graph has {len(graph.outputs)} outputs "
            f"({', '.join(map(repr, graph.outputs)) or 'none'}); to_snn converts a feed-forward "
            f"chain with one output")

    def root(name: str) -> str:
        return graph.aliases.get(name, name)

    weightish: set[str] = set()
    reads: dict[str, str] = {}
    readers: dict[str, list[Op]] = {}
    for op in graph.ops():
        if isinstance(op, Neuron):
            raise SnnConversionError(f"{label}: {_node(op)} is already a spiking layer; the "
                                     f"graph is an SNN graph, do not convert it again")
        acts = list(dict.fromkeys(root(t.name) for t in op.inputs
                                  if t.role != Role.WEIGHT and t.role != Role.CONSTANT
                                  and root(t.name) not in weightish))
        if not acts:
            weightish.update(root(t.name) for t in op.outputs)
            continue
        if len(acts) > 1:
            raise SnnConversionError(
                f"{label}: {_node(op)} joins {len(acts)} activations "
                f"({', '.join(map(repr, acts))}); to_snn converts a feed-forward chain only "
                f"(no residual adds, concats or branches)")
        reads[op.name] = acts[0]
        readers.setdefault(acts[0], []).append(op)
    for tensor, rs in readers.items():
        if len(rs) > 1:
            raise SnnConversionError(
                f"{label}: tensor {tensor!r} feeds {len(rs)} nodes ({_names(rs)}), a branch; "
                f"to_snn converts a feed-forward chain only")
    out_root = root(graph.outputs[0])
    chain: list[Op] = []
    cur = root(graph.inputs[0])
    while cur in readers:
        op = readers[cur][0]
        chain.append(op)
        outs = [root(t.name) for t in op.outputs]
        used = [o for o in outs if o in readers or o == out_root]
        if len(used) > 1:
            raise SnnConversionError(
                f"{label}: {_node(op)} has {len(used)} outputs that are read "
                f"({', '.join(map(repr, used))}), a branch; to_snn converts a feed-forward "
                f"chain only")
        cur = used[0] if used else None
    off = [op for op in graph.ops() if op.name in reads and op not in chain]
    if off:
        raise SnnConversionError(
            f"{label}: {_node(off[0])} is not on the path from input {graph.inputs[0]!r} to "
            f"output {graph.outputs[0]!r} (a side branch); to_snn converts a feed-forward "
            f"chain only")
    if not chain:
        raise SnnConversionError(f"{label}: no op reads the input {graph.inputs[0]!r}; there "
                                 f"is no network to convert")
    if cur != out_root:
        raise SnnConversionError(
            f"{label}: the path from input {graph.inputs[0]!r} ends at {_node(chain[-1])}, "
            f"not at the output {graph.outputs[0]!r}; to_snn converts a feed-forward chain only")
    return chain, reads


def _plan(graph: Graph, max_pool: str = "error") -> _Plan:
    """Walk the chain once: check every op has a spiking counterpart or is linear glue, and
    say which ops become spiking layers and which names address each."""
    label = _label(graph)
    if max_pool not in ("error", "average"):
        raise SnnConversionError(f"max_pool must be 'error' or 'average', got {max_pool!r}")
    chain, reads = _chain(graph, label)
    x = graph.inputs[0]
    pre = _preprocessing(chain)
    if pre:
        encode_after, encode_reads = pre[-1].name, pre[-1].outputs[0].name
    else:
        encode_after = None
        encode_reads = x if x in graph.tensors else next(
            t.name for t in chain[0].inputs if graph.aliases.get(t.name, t.name) == x)
    layers = [SpikingLayer(f"{x}:encode", (_INPUT_KEY, f"{x}:encode", x), encode_reads, x,
                           "encode")]
    contraction: Op | None = None        # the projection of the open segment
    projected = False                    # a projection (contraction or avg pool) since a layer
    keys: list[str] = []
    tail: list[Op] = []
    pools: list[str] = []
    last: Op | None = None               # the last op kept before the tail
    for op in chain[len(pre):]:
        if tail and not isinstance(op, Movement) and not _is_tail(op):
            raise SnnConversionError(
                f"{label}: {_node(op)} follows {_node(tail[0])}; to_snn drops a Softmax only "
                f"at the end of the network")
        if _is_tail(op):
            tail.append(op)
            continue
        if tail:
            tail.append(op)
            continue
        last = op
        if isinstance(op, Contraction):
            if contraction is not None:
                raise SnnConversionError(
                    f"{label}: {_node(contraction)} and {_node(op)} are two synaptic "
                    f"projections with no Relu between; spiking layers need an activation "
                    f"between projections: fuse the two linear layers or add a Relu")
            contraction, projected = op, True
            keys += [op.source, op.name]
        elif isinstance(op, Elementwise) and op.func in _ACTIVATIONS:
            if not projected:
                raise SnnConversionError(
                    f"{label}: {_node(op)} follows spiking layer {layers[-1].name!r} with no "
                    f"synaptic projection (Conv, Gemm, MatMul or average pooling) between; "
                    f"remove the extra activation")
            names = [op.name, op.source] + keys
            layers.append(SpikingLayer(op.name, tuple(dict.fromkeys(names)),
                                       op.outputs[0].name, op.source, op.op_type,
                                       replaces=op.name))
            contraction, projected, keys = None, False, []
        elif isinstance(op, Elementwise):
            if op.func not in _LINEAR:
                raise SnnConversionError(
                    f"{label}: {_node(op)} computes {op.func!r}, which rate-coded spiking "
                    f"neurons cannot express; to_snn converts Relu (and Clip) activations with "
                    f"linear ops (bias, BatchNorm, scaling) around the projections")
            if contraction is not None:
                keys.append(op.source)
        elif isinstance(op, Reduction):
            if op.func in _MAX_POOLS:
                if max_pool != "average":
                    raise SnnConversionError(
                        f"{label}: {_node(op)} is max pooling, which rate-coded spiking "
                        f"neurons cannot compute; pass max_pool='average' to cost it as "
                        f"average pooling (a projection with fixed weights) or replace it by "
                        f"AveragePool in the model")
                pools.append(op.name)
            elif op.func not in _AVG_POOLS:
                raise SnnConversionError(
                    f"{label}: {_node(op)} computes {op.func!r}, which has no spiking "
                    f"counterpart; to_snn converts Conv/Gemm/MatMul projections, average "
                    f"pooling and Relu activations")
            projected = True
            if contraction is None:
                keys.append(op.source)
        elif isinstance(op, Movement):
            if op.func.startswith("unsupported:"):
                raise SnnConversionError(
                    f"{label}: {_node(op)} has no lowering (loaded with on_unsupported="
                    f"'memory'); to_snn cannot tell what it computes")
            if op.func != "transpose":
                raise SnnConversionError(
                    f"{label}: {_node(op)} moves data ({op.func}) in a way a chain of spiking "
                    f"layers cannot express; only reshapes, flattens and transposes may sit "
                    f"between layers (fold a Pad into the Conv's pads)")
        elif isinstance(op, Collective):
            raise SnnConversionError(f"{label}: {_node(op)} is a collective; to_snn converts "
                                     f"a single-chip feed-forward chain only")
        else:
            raise SnnConversionError(f"{label}: {_node(op)} ({op.kind}) has no spiking "
                                     f"counterpart")
    if len(layers) == 1 and not projected:
        raise SnnConversionError(f"{label}: the network has no synaptic projection (Conv, "
                                 f"Gemm, MatMul); there is nothing to convert")
    assert last is not None  # the chain is not empty and a tail cannot start it
    current = last.outputs[0].name
    if projected:
        base = contraction.name if contraction is not None else last.name
        src = contraction if contraction is not None else last
        layers.append(SpikingLayer(f"{base}:out", tuple(dict.fromkeys([f"{base}:out"] + keys)),
                                   current, src.source, src.op_type, after=last.name))
    return _Plan(label, chain, encode_reads, encode_after, layers, tail, pools, current)


def _preprocessing(chain: list[Op]) -> list[Op]:
    """The linear ops on the input before anything else (a normalisation ``(x - mean) /
    std``): the encoder rate-codes their result, as a converted network encodes the
    normalised input."""
    n = 0
    for op in chain:
        if not (isinstance(op, Elementwise) and op.func in _LINEAR
                or isinstance(op, Movement) and op.func == "transpose"):
            break
        n += 1
    return chain[:n]


def spiking_layers(graph: Graph, max_pool: str = "error") -> list[SpikingLayer]:
    """The spiking layers :func:`to_snn` would make of ``graph``, in order (the encoder
    first), or the error it would raise: what a rates file may name.

    >>> import npusim, numpy as np
    >>> from onnx import helper, numpy_helper, TensorProto as T
    >>> from npusim.frontend.onnx_loader import load_onnx
    >>> g = helper.make_graph(
    ...     [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc1"),
    ...      helper.make_node("Relu", ["h"], ["y"], name="relu1")], "g",
    ...     [helper.make_tensor_value_info("x", T.FLOAT, [1, 4])],
    ...     [helper.make_tensor_value_info("y", T.FLOAT, [1, 2])],
    ...     [numpy_helper.from_array(np.ones((4, 2), np.float32), "w"),
    ...      numpy_helper.from_array(np.ones(2, np.float32), "b")])
    >>> [(lay.name, lay.keys) for lay in spiking_layers(load_onnx(helper.make_model(g)))]
    [('x:encode', ('input', 'x:encode', 'x')), ('relu1', ('relu1', 'fc1', 'fc1/matmul'))]
    """
    return list(_plan(graph, max_pool).layers)


def _is_tail(op: Op) -> bool:
    return isinstance(op, Reduction) and op.func in _TAILS


# -- conversion ---------------------------------------------------------------------------
def to_snn(graph: Graph, timesteps: int, *, rates: Any = None,
           default_rate: float | None = DEFAULT_RATE, model: str = "if",
           max_pool: str = "error") -> Graph:
    """The SNN graph of a feed-forward ANN graph (see the module docstring for the contract).

    Parameters
    ----------
    graph : Graph
        A feed-forward chain, as :func:`npusim.load_model` returns for an ONNX CNN or MLP.
    timesteps : int
        Steps the network runs per inference (``graph.meta["timesteps"]``).
    rates : RateSet, mapping, path or None
        Spike rates by layer name (the Neuron names: the Relu node names, ``"<input>:encode"``
        or ``"input"``, ``"<contraction>:out"``) or by ONNX node name (a Conv/Gemm/MatMul node
        names the layer it feeds); a path is read with :func:`load_rates`.
    default_rate : float or None
        The rate of every layer ``rates`` does not name (:data:`DEFAULT_RATE`, an assumption),
        with one warning naming those layers; None makes a missing rate an error.
    model : str
        The neuron model of the converted layers, one of :data:`SPIKING_MODELS`.
    max_pool : {"error", "average"}
        Refuse max pooling, or cost it as average pooling (with a warning).

    Returns
    -------
    Graph
        A new graph; ``meta["rates"]`` and ``meta["rate_sources"]`` give each layer's rate and
        where it came from.

    Examples
    --------
    >>> import numpy as np
    >>> from onnx import helper, numpy_helper, TensorProto as T
    >>> from npusim.frontend.onnx_loader import load_onnx
    >>> w = lambda n, k, m: numpy_helper.from_array(np.ones((k, m), np.float32), n)
    >>> g = helper.make_graph(
    ...     [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
    ...      helper.make_node("Relu", ["h"], ["a"], name="relu1"),
    ...      helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2")], "mlp",
    ...     [helper.make_tensor_value_info("x", T.FLOAT, [1, 4])],
    ...     [helper.make_tensor_value_info("y", T.FLOAT, [1, 2])], [w("w1", 4, 3), w("w2", 3, 2)])
    >>> snn = to_snn(load_onnx(helper.make_model(g)), 8, rates={"input": 0.2, "relu1": 0.05})
    >>> [(op.name, op.model, op.rate) for op in snn.ops() if op.kind == "neuron"]
    [('x:encode', 'encode', 0.2), ('relu1', 'if', 0.05), ('fc2:out', 'if', 0.1)]
    >>> snn.warnings
    ["spike rate 0.1 (npusim's default, an assumption) used for layer 'fc2:out', which the rates do not name; give measured rates (a rates file or calibrate_rates)"]
    """
    if not isinstance(graph, Graph):
        raise SnnConversionError(f"to_snn converts an npusim Graph (npusim.load_model of an "
                                 f"ONNX file), got {type(graph).__name__}")
    if graph.meta.get("snn"):
        raise SnnConversionError(f"{_label(graph)}: the graph is already an SNN graph; do not "
                                 f"convert it again")
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) \
            or timesteps < 1:
        raise SnnConversionError(f"timesteps must be a whole number >= 1, got {timesteps!r}")
    if model not in SPIKING_MODELS:
        raise SnnConversionError(f"neuron model {model!r} is not one of "
                                 f"{', '.join(SPIKING_MODELS)}")
    if default_rate is not None and (
            isinstance(default_rate, bool) or not isinstance(default_rate, (int, float))
            or not 0.0 <= float(default_rate) <= 1.0):
        raise RatesError(f"default_rate {default_rate!r} is not a rate in [0, 1] (mean spikes "
                         f"per neuron per timestep), nor None")
    rateset = _as_rateset(rates)
    plan = _plan(graph, max_pool)
    given = _resolve(plan, rateset)
    chosen: dict[str, float] = {}
    sources: dict[str, str] = {}
    missing = [lay.name for lay in plan.layers if lay.name not in given]
    if missing and default_rate is None:
        raise RatesError(f"{rateset.source if rateset else 'rates'}: no rate for layer(s) "
                         f"{_listed(missing)}; give them or allow default_rate")
    for lay in plan.layers:
        if lay.name in given:
            chosen[lay.name] = given[lay.name]
            sources[lay.name] = rateset.source
        else:
            chosen[lay.name] = float(default_rate)
            sources[lay.name] = f"default {default_rate} (assumption)"
    out = _rebuild(graph, plan, int(timesteps), model, chosen)
    out.meta.update({"timesteps": int(timesteps), "snn": True, "snn_model": model,
                     "rates": chosen, "rate_sources": sources})
    if rateset is not None:
        out.warnings.extend(rateset.notes)
    if missing:
        default_text = ("npusim's default, an assumption" if default_rate == DEFAULT_RATE
                        else "the default_rate given")
        out.warnings.append(
            f"spike rate {default_rate} ({default_text}) used for layer"
            f"{'s' if len(missing) > 1 else ''} {_listed(missing)}, which the rates do not "
            f"name; give measured rates (a rates file or calibrate_rates)")
    return out


def _listed(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:_MAX_LISTED]))
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _resolve(plan: _Plan, rateset: RateSet | None) -> dict[str, float]:
    """Layer name -> rate for the layers ``rateset`` names (by layer or ONNX node name)."""
    if rateset is None:
        return {}
    by_key: dict[str, list[str]] = {}
    for lay in plan.layers:
        for k in lay.keys:
            if lay.name not in by_key.setdefault(k, []):
                by_key[k].append(lay.name)
    out: dict[str, float] = {}
    named_as: dict[str, str] = {}
    for key, rate in rateset.rates.items():
        hits = by_key.get(key)
        if not hits:
            from ..arch.schema import did_you_mean
            known = [_INPUT_KEY] + [lay.name for lay in plan.layers[1:]]
            raise RatesError(
                f"{rateset.source}: no layer named {key!r} in {plan.label}"
                f"{did_you_mean(key, list(by_key))}; known layers: {_listed(known)} (or the "
                f"ONNX node names of their Conv, Gemm and MatMul nodes)")
        if len(hits) > 1:
            raise RatesError(f"{rateset.source}: name {key!r} addresses layers "
                             f"{_listed(hits)}; name each by its layer name instead")
        layer = hits[0]
        if layer in out:
            raise RatesError(f"{rateset.source}: layer {layer!r} is given twice (as "
                             f"{named_as[layer]!r} and {key!r}); keep one")
        out[layer], named_as[layer] = rate, key
    return out


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name#2``, ``name#3``... if an op or tensor has it already (then taken)."""
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}#{k}"
    taken.add(out)
    return out


def _rebuild(graph: Graph, plan: _Plan, timesteps: int, model: str,
             rates: Mapping[str, float]) -> Graph:
    """A new graph: the encoder first (after input preprocessing), Relus replaced, the output
    layer appended, the tail dropped; every reader of what the encoder reads reads its spikes
    instead (views of it become views of the spikes)."""
    out = Graph(graph.name, dict(graph.meta))
    out.warnings = list(graph.warnings)
    taken = set(graph.tensors) | set(graph.nx.nodes)
    params = (("threshold", THRESHOLD),)
    enc_layer, *rest = plan.layers
    src = graph.tensors[plan.encode_reads]
    enc_name = _unique(enc_layer.name, taken)
    spikes = Tensor(enc_name, src.shape, src.dtype, Role.ACTIVATION)
    for view, root in graph.aliases.items():
        out.aliases[view] = enc_name if root == plan.encode_reads else root
    encoder = Neuron(name=enc_name, source=enc_layer.source, op_type="encode", model="encode",
                     timesteps=timesteps, rate=rates[enc_layer.name], inputs=(src,),
                     outputs=(spikes,), params=params)
    if plan.encode_after is None:
        out.add(encoder)

    def conv(t: Tensor) -> Tensor:
        return spikes if t.name == plan.encode_reads else t

    replaced = {lay.replaces: lay for lay in rest if lay.replaces}
    appended = {lay.after: lay for lay in rest if lay.after}
    dropped = {op.name for op in plan.dropped}
    for op in graph.ops():
        if op.name in dropped:
            continue
        if isinstance(op, Contraction):
            op = replace(op, inputs=tuple(conv(t) for t in op.inputs),
                         operands=tuple(Operand(conv(o.tensor), o.axes) for o in op.operands),
                         output=op.output)
        else:
            op = replace(op, inputs=tuple(conv(t) for t in op.inputs))
        lay = replaced.get(op.name)
        if lay is not None:
            op = Neuron(name=op.name, source=op.source, op_type=op.op_type, model=model,
                        timesteps=timesteps, rate=rates[lay.name], inputs=op.inputs,
                        outputs=op.outputs, params=params)
        elif op.name in plan.pools:
            op = replace(op, func=_MAX_POOLS[op.func])
        out.add(op)
        if op.name == plan.encode_after:
            out.add(encoder)
        lay = appended.get(op.name)
        if lay is not None:
            cur = graph.tensors[plan.current]
            name = _unique(lay.name, taken)
            out.add(Neuron(name=name, source=lay.source, op_type=lay.op_type, model=model,
                           timesteps=timesteps, rate=rates[lay.name], inputs=(cur,),
                           outputs=(Tensor(name, cur.shape, cur.dtype, Role.ACTIVATION),),
                           params=params))
            out.outputs = [name]
    if not out.outputs:
        out.outputs = [plan.current] if plan.dropped else list(graph.outputs)
    out.inputs = list(graph.inputs)
    gone = {t.name for op in plan.dropped for t in op.outputs}
    for name, t in graph.tensors.items():
        if name not in out.tensors and name not in gone:
            out.add_tensor(t)
    for op in plan.dropped:
        out.warnings.append(f"{_node(op)} dropped: a spiking network reads its class from the "
                            f"output layer's spike counts")
    for name in plan.pools:
        op = graph.op(name)
        out.warnings.append(f"{_node(op)}: max pooling costed as average pooling "
                            f"(max_pool='average'), a projection with fixed weights")
    return out


# Calibration lives in its own module (it runs onnxruntime) and reads the layers above through
# spiking_layers when called; it is re-exported here, beside the other rate sources.
from .spike_calibration import (DEFAULT_PERCENTILE, DEFAULT_SAMPLES,  # noqa: E402
                                CalibrationError, calibrate_rates, normalised_rate)
