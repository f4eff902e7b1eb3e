"""Import a NIR file (Neuromorphic Intermediate Representation, neuromorphs/NIR) as an SNN graph.

NIR is the interchange format of snnTorch, Norse, Sinabs, Rockpool, Lava-DL, Spyx and the
SpiNNaker2 toolchain (snn.md sec. 4: "the closest thing to ONNX for SNNs"). :func:`load_nir`
reads one as the SNN graph every spiking part of npusim shares (the contract of issue 11): an
ordinary IR :class:`~npusim.ir.Graph` with ``meta["snn"] = True`` and ``meta["timesteps"]``,
an ``encode`` :class:`~npusim.ir.Neuron` after the input, a Neuron op for every layer of
spiking neurons and the synaptic projections between them as contractions.

It goes through ONNX on purpose ("one IR, one path"): the NIR chain is written as an in-memory
ONNX model (Affine/Linear as ``Gemm`` or ``MatMul`` + ``Add``, Conv1d/Conv2d as ``Conv``,
SumPool2d/AvgPool2d as ``AveragePool``, Flatten as ``Reshape``, Scale as ``Mul``, neurons as
``ai.npusim`` ``Neuron`` nodes) and lowered by :func:`~npusim.frontend.load_onnx`, so a NIR
network and a converted ONNX network reach the engines as the same ops. NIR shapes have no
batch axis; the graph gets a batch of 1. Op names are the NIR node names.

Reading and checking the file is :mod:`npusim.frontend.nir_read`'s part; this module places
the encoder and the output layer, checks that projections and neuron layers alternate, sets
the spike rates and writes the ONNX model.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError
from ..ir import Graph, Neuron
from .context import show
from .nir_read import NEURONS, POOLS, PROJECTIONS, Step, read_chain

#: Mean spikes per neuron per timestep assumed for a layer without a given rate. An
#: assumption of the order converted SNNs report (snn.md sec. 2.1: a spike rate of 0.1366 in
#: Front. Neurosci. 2023 17:1091097); every layer it fills is named in ``graph.warnings``.
DEFAULT_RATE = 0.1


def load_nir(src: str | Path | Any, timesteps: int, *, rates: Mapping[str, float] | None = None,
             default_rate: float | None = DEFAULT_RATE) -> Graph:
    """Load a NIR file (or an in-memory ``nir.NIRGraph``) as an SNN graph.

    Parameters
    ----------
    src : str, Path or nir.NIRGraph
        The NIR file (HDF5, as ``nir.write`` makes it) or a graph object.
    timesteps : int
        Timesteps the network runs per inference (>= 1).
    rates : mapping of str to float, optional
        Mean spikes per neuron per timestep, in [0, 1], by layer: a NIR neuron node's name, the
        name of an appended output layer (``"<projection>:out"``), and ``"input"`` (or the Input
        node's name, or ``"<input>:encode"``) for the input spikes.
    default_rate : float or None
        Rate of every spiking layer without one in ``rates`` (named in ``graph.warnings``);
        None leaves those rates unknown (``Neuron.rate is None``). The non-spiking integrators
        (LI, I, CubaLI) pass a value every step: rate 1 unless given.

    Returns
    -------
    Graph
        The SNN graph (see the module docstring). A chain ending in a projection gets an IF
        Neuron appended, named ``"<projection name>:out"``. Neuron ``params`` hold each NIR
        parameter's value, or its mean over the layer's neurons when they differ (non-finite
        values are left out).

    Raises
    ------
    ModelError
        The file is missing, not a NIR file, holds a nested graph, is not a feed-forward chain,
        has shapes that disagree, puts two projections or two neuron layers in a row, or an
        argument is out of range; the message names the file and node.
    UnsupportedOpError
        A node of a NIR type npusim does not import (the message lists those it does).
    """
    steps_t = _check_timesteps(timesteps)
    chain = read_chain(src)
    label, steps = chain.label, list(chain.steps)
    out_name = _check_layering(steps, label)
    rate_of, filled = _rates(steps, out_name, rates, default_rate, label)
    from .onnx_loader import load_onnx
    stem = Path(str(src)).stem if isinstance(src, (str, Path)) else "nir"
    model = _to_onnx(steps, out_name, steps_t, rate_of, stem)
    try:
        graph = load_onnx(model, name=stem)
    except ModelError as e:  # say the NIR file, not the in-memory ONNX model, is at fault
        inner = f"model {stem!r}"
        text = str(e)
        raise type(e)(label + text[len(inner):] if text.startswith(inner) else
                      f"{label}: {text}") from None
    graph = _exact(graph, rate_of, {s.name: _params(s) for s in steps if s.type in NEURONS})
    graph.meta.update({"source": label, "format": "nir", "nir_version": chain.version,
                       "timesteps": steps_t, "snn": True})
    if filled:
        graph.warnings.append(
            f"spike rate not given for {', '.join(map(show, filled))}: assumed "
            f"{default_rate} spikes per neuron per timestep (an assumption; pass rates)")
    return graph


def _check_timesteps(timesteps) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) \
            or timesteps < 1:
        raise ModelError(f"timesteps {timesteps!r} must be an integer >= 1 (the steps the "
                         f"network runs per inference)")
    return int(timesteps)


# -- layers -------------------------------------------------------------------------------
def _check_layering(steps: list[Step], label: str) -> str | None:
    """Check the chain alternates projections and neuron layers (the encoder counts as the
    first neuron layer); return the name of the ``:out`` layer to append, or None."""
    last_neuron: Step | None = None
    pending: Step | None = None
    for st in steps:
        if st.type in PROJECTIONS:
            if pending is not None:
                raise ModelError(
                    f"{label}: projections {show(pending.name)!r} ({pending.type}) and "
                    f"{show(st.name)!r} ({st.type}) follow each other with no neuron layer "
                    f"between; npusim's spiking model needs neurons after every projection "
                    f"(fold the two into one)")
            pending = st
        elif st.type in NEURONS:
            if pending is None:
                before = (f"neuron layer {show(last_neuron.name)!r} ({last_neuron.type})"
                          if last_neuron else "the input's spike encoder")
                raise ModelError(
                    f"{label}: node {show(st.name)!r} ({st.type}) follows {before} with no "
                    f"projection (Affine, Linear, Conv) between; npusim's spiking model puts "
                    f"synapses between every two neuron layers")
            last_neuron, pending = st, None
    if pending is None and last_neuron is None:
        raise ModelError(f"{label}: the NIR graph has no synaptic projection (Affine, Linear, "
                         f"Conv1d, Conv2d); there is nothing to simulate")
    return f"{pending.name}:out" if pending is not None else None


def _rates(steps: list[Step], out_name: str | None, rates: Mapping[str, float] | None,
           default: float | None, label: str) -> tuple[dict[str, float | None], list[str]]:
    """Rate of every neuron layer by op name (the encoder under ``"<input>:encode"``), and
    the layers ``default`` filled."""
    enc = _encode_name(steps)
    if default is not None and not _is_rate(default):
        raise ModelError(f"default_rate {default!r} is not a spike rate in [0, 1] (mean spikes "
                         f"per neuron per timestep)")
    layers = ([(enc, False)] + [(s.name, NEURONS[s.type][1]) for s in steps if s.type in NEURONS]
              + ([(out_name, False)] if out_name else []))
    aliases = {"input": enc} | {n: n for n, _ in layers}
    if steps[0].type == "Input":
        aliases[steps[0].name] = enc
    kinds = {s.name: s.type for s in steps}
    if rates is not None and not isinstance(rates, Mapping):
        raise ModelError(f"rates must map layer names to spike rates ({{'lif1': 0.05}}), not "
                         f"{type(rates).__name__}")
    given: dict[str, float] = {}
    for key, value in (rates or {}).items():
        if key not in aliases:
            what = (f"names a {kinds[key]} node, not a neuron layer" if key in kinds
                    else "names no layer of the graph")
            raise ModelError(f"{label}: rates key {show(str(key))!r} {what}; give rates for "
                             f"{', '.join(map(show, ['input', *(n for n, _ in layers[1:])]))}")
        if not _is_rate(value):
            raise ModelError(f"{label}: rates[{show(key)!r}] = {value!r:.40} is not a spike rate "
                             f"in [0, 1] (mean spikes per neuron per timestep)")
        given[aliases[key]] = float(value)
    out: dict[str, float | None] = {}
    filled = []
    for name, graded in layers:
        if name in given:
            out[name] = given[name]
        elif graded:
            out[name] = 1.0
        else:
            out[name] = default
            if default is not None:
                filled.append(name)
    return out, filled


def _is_rate(v) -> bool:
    return (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            and 0.0 <= float(v) <= 1.0)


def _input_name(steps: list[Step]) -> str:
    """The graph input tensor: the Input node's name (or the first node's, for a graph
    without one, with ``:input``)."""
    first = steps[0]
    return first.name if first.type == "Input" else f"{first.name}:input"


def _encode_name(steps: list[Step]) -> str:
    return f"{_input_name(steps)}:encode"  # the contract's "<input tensor name>:encode"


def _params(step: Step) -> tuple[list[str], list[float]]:
    """Each NIR parameter's value, or its mean when the neurons differ; non-finite ones out."""
    names, values = [], []
    for key in NEURONS[step.type][2]:
        if key not in step.node:
            continue
        v = np.asarray(step.node[key], dtype=np.float64).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size:
            names.append(key)
            values.append(float(v[0]) if np.all(v == v[0]) else float(v.mean()))
    return names, values


def _exact(graph: Graph, rate_of: dict[str, float | None],
           params_of: dict[str, tuple[list[str], list[float]]]) -> Graph:
    """The graph with every Neuron's rate and parameters as given, not as the ONNX float32
    attributes carried them (0.1 would come back as 0.10000000149)."""
    out = Graph(graph.name, dict(graph.meta))
    out.inputs, out.outputs = list(graph.inputs), list(graph.outputs)
    out.warnings = list(graph.warnings)
    out.aliases.update(graph.aliases)
    for op in graph.ops():
        if isinstance(op, Neuron) and op.name in rate_of:
            names, values = params_of.get(op.name, ([], []))
            op = replace(op, rate=rate_of[op.name], params=tuple(zip(names, values)))
        out.add(op)
    for name, t in graph.tensors.items():
        if name not in out.tensors:
            out.add_tensor(t)
    return out


# -- writing ONNX -------------------------------------------------------------------------
class _Onnx:
    """The in-memory ONNX model under construction: nodes, initializers, value infos."""

    def __init__(self, timesteps: int, rate_of: dict[str, float | None]) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.infos: list = []
        self.timesteps = timesteps
        self.rate_of = rate_of

    def info(self, name: str, shape: tuple[int, ...]) -> None:
        self.infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, *shape]))

    def init(self, name: str, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def neuron(self, name: str, x: str, y: str, model: str, *, graded: bool = False,
               params: tuple[list[str], list[float]] = ([], []), source_type: str) -> None:
        rate = self.rate_of.get(name)
        attrs: dict[str, Any] = dict(model=model, timesteps=self.timesteps, graded=int(graded),
                                     source_type=source_type)
        if rate is not None:
            attrs["rate"] = float(rate)
        if params[0]:
            attrs.update(param_names=params[0], param_values=params[1])
        self.nodes.append(helper.make_node("Neuron", [x], [y], name=name, domain="ai.npusim",
                                           **attrs))


def _to_onnx(steps: list[Step], out_name: str | None, timesteps: int,
             rate_of: dict[str, float | None], graph_name: str):
    m = _Onnx(timesteps, rate_of)
    first = steps[0]
    x = _input_name(steps)
    graph_in = helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, *first.in_shape])
    spikes = f"{x}:spikes"
    m.neuron(_encode_name(steps), x, spikes, "encode", source_type="Input")
    m.info(spikes, first.in_shape)
    x = spikes
    for st in steps:
        if st.type in ("Input", "Output"):
            continue
        y = st.name
        _emit(m, st, x, y)
        m.info(y, st.out_shape)
        x = y
    if out_name is not None:
        m.neuron(out_name, x, out_name, "if", source_type="Neuron")
        m.info(out_name, steps[-1].out_shape)
        x = out_name
    graph = helper.make_graph(m.nodes, graph_name, [graph_in],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)],
                              m.inits, value_info=[i for i in m.infos if i.name != x])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("ai.npusim", 1)],
                             producer_name="npusim.nir_import")


def _emit(m: _Onnx, st: Step, x: str, y: str) -> None:
    """The ONNX node(s) of one NIR node, reading tensor ``x`` and writing ``y``."""
    node, name, kind = st.node, st.name, st.type
    if kind in ("Affine", "Linear"):
        w = np.asarray(node["weight"], dtype=np.float32)
        bias = np.asarray(node["bias"], dtype=np.float32) if kind == "Affine" else None
        if bias is not None and bias.size == 1:
            bias = np.full(w.shape[0], bias.reshape(-1)[0], np.float32)
        if len(st.in_shape) == 1:  # [1, in] x [out, in]^T: a Gemm, as torch exports Linear
            ins = [x, m.init(f"{name}:weight", w)] + ([m.init(f"{name}:bias", bias)]
                                                      if bias is not None else [])
            m.nodes.append(helper.make_node("Gemm", ins, [y], name=name, transB=1))
            return
        wt = m.init(f"{name}:weight", w.T)
        if bias is None:
            m.nodes.append(helper.make_node("MatMul", [x, wt], [y], name=name))
            return
        m.nodes.append(helper.make_node("MatMul", [x, wt], [f"{y}:matmul"], name=name))
        m.info(f"{y}:matmul", st.out_shape)
        m.nodes.append(helper.make_node("Add", [f"{y}:matmul", m.init(f"{name}:bias", bias)],
                                        [y], name=f"{name}:bias"))
    elif kind in ("Conv1d", "Conv2d"):
        w = np.asarray(node["weight"], dtype=np.float32)
        ins = [x, m.init(f"{name}:weight", w)]
        if "bias" in node:
            b = np.asarray(node["bias"], dtype=np.float32).reshape(-1)
            ins.append(m.init(f"{name}:bias", np.resize(b, w.shape[0])))
        m.nodes.append(helper.make_node("Conv", ins, [y], name=name, **st.attrs))
    elif kind in POOLS:  # a sum pool costs as an average pool: the weights differ, not the work
        m.nodes.append(helper.make_node("AveragePool", [x], [y], name=name, **st.attrs))
    elif kind == "Flatten":
        shape = m.init(f"{name}:shape", [1, *st.out_shape], np.int64)
        m.nodes.append(helper.make_node("Reshape", [x, shape], [y], name=name))
    elif kind == "Scale":
        scale = m.init(f"{name}:scale", node["scale"])  # broadcasts as in numpy
        m.nodes.append(helper.make_node("Mul", [x, scale], [y], name=name))
    else:
        model, graded, _ = NEURONS[kind]
        m.neuron(name, x, y, model, graded=graded, params=_params(st), source_type=kind)
