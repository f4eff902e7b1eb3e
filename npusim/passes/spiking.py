"""ANN -> SNN conversion: the spiking graph of a feed-forward network, and its spike rates.

:func:`to_snn` turns an ordinary IR graph (what :func:`npusim.load_model` returns for an ONNX
file) into an *SNN graph*: spikes become explicit :class:`~npusim.ir.Neuron` ops, as rate-based
ANN-to-SNN conversion does (Diehl et al. 2015, IJCNN; Rueckauer et al. 2017, Front. Neurosci.
11:682): every ReLU becomes a layer of integrate-and-fire neurons whose mean spike rate stands
for its activation, the input is rate-encoded, and the last layer gets spiking neurons too.

* ``graph.meta["timesteps"] = T`` and ``graph.meta["snn"] = True``;
* ``Neuron(model="encode", name="<input>:encode")`` reads the graph input (or the view of it the
  first op reads) and writes the input spikes; every reader of the input reads them instead;
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

Spike rates (mean spikes per neuron per timestep, in [0, 1]) come from, in order:

1. ``rates``: a :class:`RateSet`, a mapping, or a YAML/JSON file (:func:`load_rates`) of
   ``{layer or ONNX node name: rate}``, ``input:`` naming the encoder;
2. :func:`calibrate_rates`: the ReLU activations of a calibration batch run through onnxruntime,
   with data-based normalisation (the rate of a neuron is its activation over a high percentile
   of its layer's activations, clipped to [0, 1]);
3. ``default_rate`` (:data:`DEFAULT_RATE`, an assumption) for every layer left, with one line in
   ``graph.warnings`` naming them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ArchError, ModelError, NpusimError
from ..ir import (NEURON_MODELS, Collective, Contraction, Elementwise, Graph, Movement, Neuron,
                  Op, Operand, Reduction, Role, Tensor)

#: Assumption: 0.1 spikes per neuron per timestep when no rate is measured or given. It is
#: the order of the 0.1366 mean spike rate one converted SNN reports (Front. Neurosci. 2023
#: 17:1091097, Table 3, quoted in shared/reference/snn.md sec. 2.1), and above the ~6 % at
#: which an SNN stops paying off against an ANN (snn.md sec. 2.5), so a default-rate estimate
#: does not flatter the SNN. It is not a measurement of any network: calibrate or give rates.
DEFAULT_RATE = 0.1

#: Data-based normalisation scales each layer by the p-th percentile of its non-zero
#: activations instead of their maximum ("robust normalisation", Rueckauer et al. 2017, Front.
#: Neurosci. 11:682, sec. 2.3; the SNN toolbox takes the percentile over non-zero activations,
#: snntoolbox/conversion/utils.py ``normalize_parameters``). The paper explores p from 99.0 up
#: to 99.9999; 99.9 is our choice within that range (assumption).
DEFAULT_PERCENTILE = 99.9

#: Assumption: inputs=None calibrates on this many uniform random samples in [0, 1).
DEFAULT_SAMPLES = 16

#: Neuron models a converted layer may use (the encoder is added by the conversion itself).
SPIKING_MODELS = tuple(m for m in NEURON_MODELS if m != "encode")

#: The threshold of a converted IF neuron: data-based normalisation scales the weights so that
#: a threshold of 1 maps the layer's normalising activation to one spike per step (Diehl 2015).
THRESHOLD = 1.0

_ACTIVATIONS = frozenset({"relu", "clip"})
_LINEAR = frozenset({"add", "sub", "mul", "div", "neg", "batchnorm", "cast"})
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


class CalibrationError(ModelError):
    """A model or calibration batch :func:`calibrate_rates` cannot run (no weight data, wrong
    input shape, an onnxruntime failure)."""


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
@dataclass
class _Layer:
    """One spiking layer of the plan: its Neuron's name, the names that address it in a rates
    file, the tensor whose activation gives its rate, and the op it replaces or follows."""

    name: str
    keys: list[str]
    tensor: str
    source: str
    op_type: str
    replaces: str | None = None   # the Relu/Clip op it replaces
    after: str | None = None      # the op whose output it reads (appended layers)


@dataclass
class _Plan:
    label: str
    chain: list[Op]
    encode_reads: str             # the tensor the encoder reads (the input, or its view)
    layers: list[_Layer]
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
    first = chain[0]
    encode_reads = x if x in graph.tensors else next(
        t.name for t in first.inputs if graph.aliases.get(t.name, t.name) == x)
    layers = [_Layer(f"{x}:encode", [_INPUT_KEY, f"{x}:encode", x], x, x, "encode")]
    contraction: Op | None = None        # the projection of the open segment
    projected = False                    # a projection (contraction or avg pool) since a layer
    keys: list[str] = []
    tail: list[Op] = []
    pools: list[str] = []
    last: Op | None = None               # the last op kept before the tail
    for op in chain:
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
            layers.append(_Layer(op.name, list(dict.fromkeys(names)), op.outputs[0].name,
                                 op.source, op.op_type, replaces=op.name))
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
        layers.append(_Layer(f"{base}:out", list(dict.fromkeys([f"{base}:out"] + keys)),
                             current, src.source, src.op_type, after=last.name))
    return _Plan(label, chain, encode_reads, layers, tail, pools, current)


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
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}#{k}"
    return out


def _rebuild(graph: Graph, plan: _Plan, timesteps: int, model: str,
             rates: Mapping[str, float]) -> Graph:
    """A new graph: the encoder first, Relus replaced, the output layer appended, the tail
    dropped; every reader of the input reads the input spikes."""
    out = Graph(graph.name, dict(graph.meta))
    out.warnings = list(graph.warnings)
    taken = set(graph.tensors) | set(graph.nx.nodes)
    params = (("threshold", THRESHOLD),)
    enc_layer, *rest = plan.layers
    src = graph.tensors[plan.encode_reads]
    enc_name = _unique(enc_layer.name, taken)
    spikes = Tensor(enc_name, src.shape, src.dtype, Role.ACTIVATION)
    x = graph.inputs[0]
    for view, root in graph.aliases.items():
        out.aliases[view] = enc_name if root == x and plan.encode_reads == x else root
    out.add(Neuron(name=enc_name, source=x, op_type="encode", model="encode",
                   timesteps=timesteps, rate=rates[enc_layer.name], inputs=(src,),
                   outputs=(spikes,), params=params))

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
    for name, t in graph.tensors.items():
        if name not in out.tensors and name not in {t.name for op in plan.dropped
                                                    for t in op.outputs}:
            out.add_tensor(t)
    for op in plan.dropped:
        out.warnings.append(f"{_node(op)} dropped: a spiking network reads its class from the "
                            f"output layer's spike counts")
    for name in plan.pools:
        op = graph.op(name)
        out.warnings.append(f"{_node(op)}: max pooling costed as average pooling "
                            f"(max_pool='average'), a projection with fixed weights")
    return out


# -- calibration --------------------------------------------------------------------------
def calibrate_rates(onnx_path: str | Path, inputs: np.ndarray | None = None, *,
                    percentile: float = DEFAULT_PERCENTILE, samples: int = DEFAULT_SAMPLES,
                    seed: int = 0, dims: Mapping[str, int] | None = None,
                    max_pool: str = "error") -> RateSet:
    """Spike rates of the layers :func:`to_snn` makes, measured on a calibration batch.

    The model runs through onnxruntime; for each spiking layer the activations ``a`` of the
    batch (a Relu's output, the output layer's current rectified at 0) are normalised by the
    ``percentile``-th percentile ``lam`` of their non-zero values (data-based normalisation,
    Diehl et al. 2015; Rueckauer et al. 2017), and the rate is the mean of ``clip(a / lam, 0,
    1)``: after normalisation a neuron fires ``a / lam`` spikes per step, at most one. The
    input rate is that of ``|x|`` (a signed input spikes in proportion to its magnitude,
    assumption).

    Parameters
    ----------
    onnx_path : str or Path
        The ONNX model, with its trained weights (inline or in external-data files).
    inputs : numpy array, optional
        A calibration batch shaped like the model input (any batch size when the batch axis is
        symbolic; a multiple of a fixed batch). None draws :data:`DEFAULT_SAMPLES` uniform
        samples in [0, 1) with ``seed``, and says so in the notes (rates of synthetic data).
    percentile : float
        In (0, 100]; :data:`DEFAULT_PERCENTILE` by default (100 is the maximum, Diehl 2015).

    Returns
    -------
    RateSet
        Rates by layer name (as :func:`to_snn` names the layers), the normalising activation
        of each layer in ``scales``.

    Raises
    ------
    CalibrationError
        The initializers carry no data (a weight-free export), an external-data file is
        missing, the batch does not fit the model input, or onnxruntime fails.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise CalibrationError("calibrate_rates needs onnxruntime (pip install onnxruntime); "
                               "or give rates in a file") from None
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) \
            or not 0.0 < float(percentile) <= 100.0:
        raise CalibrationError(f"percentile must be in (0, 100], got {percentile!r}")
    from ..frontend.onnx_loader import load_onnx
    path = Path(onnx_path)
    label = str(path)
    proto = _read_proto(path, label)
    plan = _plan(load_onnx(path, _bind(proto, inputs, dims)), max_pool)
    _load_weights(proto, path, label)
    x_name = plan.layers[0].tensor
    x, note = _batch(proto, x_name, inputs, samples, seed, dims, label)
    wanted = [lay.tensor for lay in plan.layers[1:]]
    values = _run(ort, proto, x_name, x, wanted, label)
    rates, scales = {}, {}
    enc = plan.layers[0]
    rates[enc.name], scales[enc.name] = _normalised_rate(np.abs(x), percentile)
    for lay, a in zip(plan.layers[1:], values):
        rates[lay.name], scales[lay.name] = _normalised_rate(np.maximum(a, 0.0), percentile)
    src = (f"calibration of {label} on {len(x)} sample{'s' if len(x) != 1 else ''} "
           f"(p{percentile:g} normalisation)")
    return RateSet(rates, src, (note,) if note else (), scales)


def normalised_rate(a: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """Mean spike rate of non-negative activations ``a`` after data-based normalisation, and
    the normalising activation ``lam`` (the percentile of the non-zero values; 0 if none).

    >>> normalised_rate(np.array([0.0, 1.0, 2.0, 4.0]), 100)
    (0.4375, 4.0)
    """
    return _normalised_rate(a, percentile)


def _normalised_rate(a: np.ndarray, percentile: float) -> tuple[float, float]:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    nz = a[a > 0]
    if nz.size == 0:
        return 0.0, 0.0
    lam = float(np.percentile(nz, percentile))
    return float(np.clip(a / lam, 0.0, 1.0).mean()), lam


def _read_proto(path: Path, label: str):
    """The model without its external data (that is read once the model is known good)."""
    import onnx
    if not path.is_file():
        raise CalibrationError(f"{label}: no such ONNX file; check the path")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several unrelated types
        raise CalibrationError(f"{label}: not a valid ONNX model ({type(e).__name__}); give "
                               f"an ONNX file") from None


def _bind(proto, inputs, dims: Mapping[str, int] | None) -> dict[str, int]:
    """Values for the input's symbolic dims: those given, the batch axis 1 (the structure does
    not depend on it), the other axes from the calibration batch's shape."""
    out = dict(dims or {})
    inits = {t.name for t in proto.graph.initializer}
    shape = np.shape(inputs) if inputs is not None else None
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        axes = vi.type.tensor_type.shape.dim
        for i, d in enumerate(axes):
            if d.HasField("dim_param") and d.dim_param not in out:
                if i == 0:
                    out[d.dim_param] = 1
                elif shape is not None and len(shape) == len(axes) and int(shape[i]) >= 1:
                    out[d.dim_param] = int(shape[i])
    return out


def _load_weights(proto, path: Path, label: str) -> None:
    """Read the external weight data into ``proto``; refuse it if an initializer carries no
    data (a weight-free export) or its data file is missing."""
    import onnx
    from onnx import TensorProto
    base = path.parent
    for t in proto.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            where = {e.key: e.value for e in t.external_data}.get("location", "")
            target = (base / where).resolve()
            if not where or not target.is_file() or base.resolve() not in target.parents:
                raise CalibrationError(
                    f"{label}: initializer {t.name!r} keeps its data in external file "
                    f"{where!r}, which is not beside the model; put the data file next to it "
                    f"or give rates in a file")
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, str(base))
    except Exception as e:  # noqa: BLE001 - truncated or unreadable external data
        raise CalibrationError(f"{label}: cannot read the external weight data ("
                               f"{' '.join(str(e).split())[:120]}); check the data files") from None
    empty = [t for t in proto.graph.initializer if math.prod(t.dims) > 0 and not _has_data(t)]
    if empty:
        t = empty[0]
        raise CalibrationError(
            f"{label}: initializer {t.name!r} (shape {tuple(t.dims)}) carries no data"
            f"{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}: a model exported "
            f"without weights cannot be calibrated; export it with its trained weights, or "
            f"give rates in a file, or use the default rate")


def _has_data(t) -> bool:
    if t.raw_data:
        return True
    return any(len(getattr(t, f)) for f in ("float_data", "int32_data", "int64_data",
                                            "double_data", "uint64_data", "string_data"))


def _batch(proto, name: str, inputs, samples: int, seed: int, dims, label: str):
    """The calibration batch as the model's input dtype, checked against its shape."""
    from onnx import helper
    vi = next((v for v in proto.graph.input if v.name == name), None)
    if vi is None:
        raise CalibrationError(f"{label}: input {name!r} is not a graph input of the model")
    dims = dict(dims or {})
    want = [d.dim_value if d.HasField("dim_value") else dims.get(d.dim_param)
            for d in vi.type.tensor_type.shape.dim]
    elem = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
    note = ""
    if inputs is None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise CalibrationError(f"samples must be a whole number >= 1, got {samples!r}")
        if any(d is None or d < 1 for d in want[1:]):
            raise CalibrationError(f"{label}: input {name!r} has unbound dims {want}; give "
                                   f"calibration inputs or bind the dims")
        x = np.random.default_rng(seed).random((samples, *want[1:]))
        note = (f"rates calibrated on {samples} uniform random inputs in [0, 1) (no data "
                f"given): they describe synthetic data, not a data set (assumption)")
    else:
        try:
            x = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError):
            raise CalibrationError(f"calibration inputs are not numeric ({type(inputs).__name__}"
                                   f"); give a numpy array shaped like input {name!r}") from None
        if not np.all(np.isfinite(x)):
            raise CalibrationError("calibration inputs hold NaN or infinite values; give "
                                   "finite numbers")
    if x.ndim != len(want) or x.shape[0] < 1 or any(
            w is not None and w > 0 and w != s for w, s in zip(want[1:], x.shape[1:])):
        shown = tuple(w if w else "batch" for w in want)
        raise CalibrationError(f"{label}: calibration inputs have shape {x.shape} but input "
                               f"{name!r} is {shown}; give a batch of samples shaped like it")
    if want and want[0] and x.shape[0] % want[0]:
        raise CalibrationError(f"{label}: {x.shape[0]} calibration samples do not divide into "
                               f"the model's fixed batch of {want[0]}; give a multiple of it")
    return x.astype(elem), note


def _run(ort, proto, x_name: str, x: np.ndarray, wanted: list[str], label: str) -> list:
    """The values of ``wanted`` tensors over the batch (in chunks of a fixed batch size)."""
    import onnx
    from onnx import helper
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    known = {v.name: v for v in (*model.graph.value_info, *model.graph.output,
                                 *model.graph.input)}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        known.update({v.name: v for v in inferred.graph.value_info})
    except Exception:  # noqa: BLE001 - load_onnx inferred shapes already; types only
        pass
    outputs = {v.name for v in model.graph.output}
    for name in dict.fromkeys(wanted):
        if name in outputs:
            continue
        if name not in known:
            raise CalibrationError(f"{label}: tensor {name!r} is not a value of the ONNX model; "
                                   f"calibration cannot read it")
        elem = known[name].type.tensor_type.elem_type
        model.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        vi = next(v for v in model.graph.input if v.name == x_name)
        d0 = vi.type.tensor_type.shape.dim[0] if vi.type.tensor_type.shape.dim else None
        step = d0.dim_value if d0 is not None and d0.HasField("dim_value") else len(x)
        chunks = [sess.run(wanted, {x_name: x[i:i + step]}) for i in range(0, len(x), step)]
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CalibrationError(f"{label}: onnxruntime could not run the model "
                               f"({' '.join(str(e).split())[:200]}); check the model and the "
                               f"calibration inputs") from None
    return [np.concatenate([np.asarray(c[i]) for c in chunks]) for i in range(len(wanted))]
