"""Import a NIR file (the Neuromorphic Intermediate Representation, neuromorphs/NIR) as an SNN graph.

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

The ``nir`` package (an optional extra, ``pip install nir``) is imported only when a file is
read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..errors import ModelError, UnsupportedOpError
from ..ir import Graph, Neuron
from .context import show

#: Mean spikes per neuron per timestep assumed for a layer without a given rate. An
#: assumption of the order converted SNNs report (snn.md sec. 2.1: a spike rate of 0.1366 in
#: Front. Neurosci. 2023 17:1091097); every layer it fills is named in ``graph.warnings``.
DEFAULT_RATE = 0.1

#: NIR neuron node -> (npusim neuron model, graded, the NIR parameters kept in ``params``).
#: ``graded`` marks the non-spiking integrators (LI, I, CubaLI): they hand their state to the
#: next projection every timestep, so their rate is 1 unless a rate is given. Threshold is a
#: stateless Heaviside; it costs as an IF update (assumption: compare and reset, one add more
#: than it does).
NEURONS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "IF": ("if", False, ("r", "v_threshold", "v_reset")),
    "LIF": ("lif", False, ("tau", "r", "v_leak", "v_threshold", "v_reset")),
    "CubaLIF": ("cubalif", False,
                ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")),
    "LI": ("lif", True, ("tau", "r", "v_leak")),
    "I": ("if", True, ("r",)),
    "CubaLI": ("cubalif", True, ("tau_syn", "tau_mem", "r", "v_leak", "w_in")),
    "Threshold": ("if", False, ("threshold",)),
}
PROJECTIONS = ("Affine", "Linear", "Conv1d", "Conv2d")
POOLS = ("SumPool2d", "AvgPool2d")
SUPPORTED = ("Input", "Output", *PROJECTIONS, *POOLS, "Flatten", "Scale", *NEURONS)

_WHY_CHAIN = ("npusim imports a feed-forward chain of layers (no branches, residual "
              "connections or recurrence)")


@dataclass(frozen=True)
class Step:
    """One NIR node of the chain with the shapes it reads and writes (no batch axis)."""

    name: str
    type: str
    node: dict
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


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
    label, version, root = _read(src)
    nodes, edges = _parts(root, label)
    chain = _chain(nodes, edges, label)
    steps = _shapes(chain, nodes, label)
    out_name = _check_layering(steps, label)
    rate_of, filled = _rates(steps, out_name, rates, default_rate, label)
    from .onnx_loader import load_onnx
    stem = Path(str(src)).stem if isinstance(src, (str, Path)) else "nir"
    graph = load_onnx(_to_onnx(steps, out_name, steps_t, rate_of, stem), name=stem)
    graph = _exact(graph, rate_of, {s.name: _params(s) for s in steps if s.type in NEURONS})
    graph.meta.update({"source": label, "format": "nir", "nir_version": version,
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


# -- reading ------------------------------------------------------------------------------
def _nir():
    try:
        import h5py
        import nir
    except ImportError:
        raise ModelError("reading NIR needs the optional nir package (and h5py): "
                         "pip install 'npusim[snn]' or pip install nir") from None
    return nir, h5py


def _read(src) -> tuple[str, str | None, dict]:
    """The file's label, NIR version and top node as the nested dict ``nir`` writes."""
    nir, h5py = _nir()
    if isinstance(src, nir.NIRGraph):
        return "NIR graph <in memory>", None, src.to_dict()
    path = Path(src)
    label = show(str(path))
    if not path.is_file():
        raise ModelError(f"{label}: no such NIR file; check the path")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ModelError(f"{label} is not a NIR file: it is not HDF5 ({_first(e)}); export the "
                         f"network with nir.write") from None
    with f:
        node = f.get("node")
        if not isinstance(node, h5py.Group):
            raise ModelError(f"{label} is an HDF5 file but not a NIR file: it has no 'node' "
                             f"group; export the network with nir.write")
        version = f.get("version")
        version = _text(version[()]) if isinstance(version, h5py.Dataset) else None
        try:
            root = nir.serialization.hdf2dict(node)
        except Exception as e:  # h5py raises several types on damaged datasets
            raise ModelError(f"{label}: the NIR file cannot be read ({_first(e)}); re-export "
                             f"it with nir.write") from None
    return label, version, root


def _first(e: BaseException) -> str:
    text = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _text(v.item())
    return str(v)


def _parts(root: dict, label: str) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """Nodes (name -> node dict) and edges of the top graph; unknown node types refused."""
    if not isinstance(root, dict) or _text(root.get("type", "")) != "NIRGraph":
        raise ModelError(f"{label} is not a NIR graph: its top node has type "
                         f"{_text(root.get('type', 'none')) if isinstance(root, dict) else '?'!r}"
                         f", not NIRGraph; export the network with nir.write")
    nodes = root.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        raise ModelError(f"{label}: the NIR graph has no nodes; export the network with "
                         f"nir.write")
    for name, node in nodes.items():
        kind = _text(node.get("type", "")) if isinstance(node, dict) else ""
        if kind == "NIRGraph":
            raise UnsupportedOpError(
                f"{label}: node {show(name)!r} is a nested NIRGraph (a subgraph, e.g. a "
                f"recurrent layer); {_WHY_CHAIN}: flatten it into the top graph")
        if kind not in SUPPORTED:
            raise UnsupportedOpError(
                f"{label}: node {show(name)!r} has NIR type {show(kind or 'none')!r}, which "
                f"npusim cannot import; supported types: {', '.join(SUPPORTED)}")
    raw = root.get("edges", [])
    arr = np.asarray(raw, dtype=object)
    if arr.size == 0:
        pairs: list[tuple[str, str]] = []
    elif arr.ndim != 2 or arr.shape[1] != 2:
        raise ModelError(f"{label}: the NIR graph's edges have shape {arr.shape}, not "
                         f"(edges, 2); re-export it with nir.write")
    else:
        pairs = [(_text(a), _text(b)) for a, b in arr]
    for a, b in pairs:
        for end in (a, b):
            if end not in nodes:
                raise ModelError(f"{label}: edge ({show(a)!r}, {show(b)!r}) names node "
                                 f"{show(end)!r}, which the graph does not have; re-export it")
    return nodes, pairs


def _names(names) -> str:
    return ", ".join(repr(show(n)) for n in names)


def _kind(nodes: dict, name: str) -> str:
    return _text(nodes[name]["type"])


def _chain(nodes: dict[str, dict], edges: list[tuple[str, str]], label: str) -> list[str]:
    """Node names from the input to the output; anything but one path is refused."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in dict.fromkeys(edges):
        succ[a].append(b)
        pred[b].append(a)

    def who(n: str) -> str:
        return f"node {show(n)!r} ({_kind(nodes, n)})"
    for n in nodes:  # merges first: they name where a residual or a loop closes
        if len(pred[n]) > 1:
            raise ModelError(f"{label}: {who(n)} adds up {len(pred[n])} inputs "
                             f"({_names(pred[n])}); {_WHY_CHAIN}")
    for n in nodes:
        if len(succ[n]) > 1:
            raise ModelError(f"{label}: {who(n)} feeds {len(succ[n])} nodes "
                             f"({_names(succ[n])}); {_WHY_CHAIN}")
        if _kind(nodes, n) == "Input" and pred[n] or _kind(nodes, n) == "Output" and succ[n]:
            raise ModelError(f"{label}: {who(n)} has an edge "
                             f"{'into' if pred[n] else 'out of'} it; re-export the graph")
    roots = [n for n in nodes if not pred[n]]
    if not roots:
        raise ModelError(f"{label}: every node of the NIR graph has an input, so it is "
                         f"recurrent (a cycle); {_WHY_CHAIN}")
    if len(roots) > 1:
        raise ModelError(f"{label}: the NIR graph has {len(roots)} inputs "
                         f"({_names(roots)}); {_WHY_CHAIN}")
    order, n = [roots[0]], roots[0]
    while succ[n]:
        n = succ[n][0]
        order.append(n)
    if len(order) != len(nodes):
        rest = [m for m in nodes if m not in set(order)]
        raise ModelError(f"{label}: node(s) {_names(rest[:5])} are not on the "
                         f"path from input {show(roots[0])!r} (a recurrent loop or a "
                         f"disconnected part); {_WHY_CHAIN}")
    return order


# -- shapes -------------------------------------------------------------------------------
def _field(step: str, kind: str, node: dict, key: str, label: str) -> np.ndarray:
    if key not in node:
        raise ModelError(f"{label}: node {show(step)!r} ({kind}) has no {key!r}; it is not a "
                         f"valid NIR {kind}, re-export it")
    try:
        return np.asarray(node[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{label}: node {show(step)!r} ({kind}): {key!r} is not numeric "
                         f"({node[key]!r:.60}); re-export it") from None


def _ints(step: str, kind: str, node: dict, key: str, n: int, label: str, *, low: int,
          default: int | None = None) -> tuple[int, ...]:
    """``node[key]`` as ``n`` integers >= ``low`` (a scalar is repeated)."""
    if key not in node and default is not None:
        return (default,) * n
    v = _field(step, kind, node, key, label).reshape(-1)
    if v.size == 1:
        v = np.repeat(v, n)
    if v.size != n or not np.all(np.isfinite(v)) or np.any(v != np.round(v)) or np.any(v < low):
        raise ModelError(f"{label}: node {show(step)!r} ({kind}): {key!r} = "
                         f"{node[key]!r:.60} must be {n} integer(s) >= {low}; fix the file")
    return tuple(int(x) for x in v)


def _shape_of(v, step: str, kind: str, what: str, label: str) -> tuple[int, ...]:
    a = np.asarray(v).reshape(-1)
    try:
        shape = tuple(int(x) for x in a)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(s < 1 for s in shape) or not np.array_equal(a.astype(float), shape):
        raise ModelError(f"{label}: node {show(step)!r} ({kind}) has {what} {v!r:.60}, not a "
                         f"shape of positive integers; fix the file")
    return shape


def _disagree(step: str, kind: str, what: str, got, want, label: str) -> ModelError:
    return ModelError(f"{label}: node {show(step)!r} ({kind}) {what} {tuple(got)} but its input "
                      f"has shape {tuple(want)}; the shapes disagree, fix the file")


def _input_shape(name: str, node: dict, kind: str, label: str) -> tuple[int, ...]:
    """The shape a root node reads: an Input's shape, else what its own fields declare."""
    if kind == "Input":
        return _shape_of(node.get("shape"), name, kind, "shape", label)
    if kind in ("Affine", "Linear"):
        w = _field(name, kind, node, "weight", label)
        if w.ndim == 2:
            return (w.shape[1],)
    if kind in NEURONS or kind == "Scale":
        key = "scale" if kind == "Scale" else NEURONS[kind][2][0]
        shape = _field(name, kind, node, key, label).shape
        if shape:
            return shape
    if kind in ("Conv1d", "Conv2d") and node.get("input_shape") is not None:
        w = _field(name, kind, node, "weight", label)
        groups = _ints(name, kind, node, "groups", 1, label, low=1, default=1)[0]
        nsp = 1 if kind == "Conv1d" else 2
        return (w.shape[1] * groups,
                *_shape_of(node["input_shape"], name, kind, "input_shape", label)[:nsp])
    if kind == "Flatten" and node.get("input_type") is not None:
        return _shape_of(node["input_type"], name, kind, "input_type", label)
    raise ModelError(f"{label}: the graph starts at node {show(name)!r} ({kind}), which is not "
                     f"an Input node and does not declare the shape it reads; add a nir.Input")


def _shapes(chain: list[str], nodes: dict[str, dict], label: str) -> list[Step]:
    """Every node of the chain with its input and output shapes, checked against the
    shapes its fields declare."""
    first = chain[0]
    shape = _input_shape(first, nodes[first], _kind(nodes, first), label)
    steps = []
    for name in chain:
        node, kind = nodes[name], _kind(nodes, name)
        out = _out_shape(name, kind, node, shape, label)
        if math.prod(out) > 2 ** 40:  # the frontend's bound on one tensor (context.MAX_DIM)
            raise ModelError(f"{label}: node {show(name)!r} ({kind}) gives shape {out}, more "
                             f"than 2**40 elements; fix the file")
        steps.append(Step(name, kind, node, shape, out))
        shape = out
    return steps


def _out_shape(name: str, kind: str, node: dict, x: tuple[int, ...],
               label: str) -> tuple[int, ...]:
    if kind == "Input":
        return x
    if kind == "Output":
        if node.get("shape") is not None:
            declared = _shape_of(node["shape"], name, kind, "shape", label)
            if declared != x:
                raise _disagree(name, kind, "declares shape", declared, x, label)
        return x
    if kind in ("Affine", "Linear"):
        w = _field(name, kind, node, "weight", label)
        if w.ndim != 2:
            raise ModelError(f"{label}: node {show(name)!r} ({kind}) has a weight of shape "
                             f"{w.shape}; npusim imports 2-D weights [out, in] only")
        if x[-1] != w.shape[1]:
            raise _disagree(name, kind, "has a weight [out, in] of shape", w.shape, x, label)
        if kind == "Affine":
            b = _field(name, kind, node, "bias", label)
            if b.size not in (1, w.shape[0]):
                raise ModelError(f"{label}: node {show(name)!r} (Affine) has a bias of shape "
                                 f"{b.shape} for {w.shape[0]} outputs; the shapes disagree, "
                                 f"fix the file")
        return (*x[:-1], w.shape[0])
    if kind in ("Conv1d", "Conv2d"):
        return _conv_out(name, kind, node, x, label)
    if kind in POOLS:
        if len(x) != 3:
            raise _disagree(name, kind, "pools [C, H, W], got", x, x, label)
        k = _ints(name, kind, node, "kernel_size", 2, label, low=1)
        s = _ints(name, kind, node, "stride", 2, label, low=1, default=1)
        p = _ints(name, kind, node, "padding", 2, label, low=0, default=0)
        out = tuple((x[i + 1] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(2))
        if min(out) < 1:
            raise _disagree(name, kind, f"(kernel {k}, padding {p}) gives output", out, x, label)
        return (x[0], *out)
    if kind == "Flatten":
        return _flatten_out(name, node, x, label)
    key_shapes = [(k, _field(name, kind, node, k, label).shape)
                  for k in (("scale",) if kind == "Scale" else NEURONS[kind][2]) if k in node]
    if kind == "Scale" and not key_shapes:
        _field(name, kind, node, "scale", label)
    for key, shp in key_shapes:
        try:
            ok = np.broadcast_shapes(shp, x) == x
        except ValueError:
            ok = False
        if not ok:
            raise _disagree(name, kind, f"has {key!r} of shape", shp, x, label)
    return x


def _conv_out(name: str, kind: str, node: dict, x: tuple[int, ...],
              label: str) -> tuple[int, ...]:
    nsp = 1 if kind == "Conv1d" else 2
    w = _field(name, kind, node, "weight", label)
    if w.ndim != nsp + 2 or len(x) != nsp + 1:
        raise ModelError(f"{label}: node {show(name)!r} ({kind}) has a weight of shape {w.shape} "
                         f"for an input of shape {x}; {kind} takes [C, {'L' if nsp == 1 else 'H, W'}]"
                         f" and a weight [C_out, C_in/groups, {'k' if nsp == 1 else 'kH, kW'}]")
    g = _ints(name, kind, node, "groups", 1, label, low=1, default=1)[0]
    if x[0] != w.shape[1] * g or w.shape[0] % g:
        raise _disagree(name, kind, f"(groups={g}) has a weight of shape", w.shape, x, label)
    s = _ints(name, kind, node, "stride", nsp, label, low=1, default=1)
    d = _ints(name, kind, node, "dilation", nsp, label, low=1, default=1)
    k = w.shape[2:]
    pads = _conv_pads(name, kind, node, nsp, k, s, d, label)
    out = tuple((x[i + 1] + pads[i] + pads[i + nsp] - d[i] * (k[i] - 1) - 1) // s[i] + 1
                for i in range(nsp))
    if min(out) < 1:
        raise _disagree(name, kind, f"(kernel {tuple(k)}, padding {pads[:nsp]}) gives output",
                        out, x, label)
    declared = node.get("input_shape")
    if declared is not None and np.asarray(declared).size:
        spatial = _shape_of(declared, name, kind, "input_shape", label)
        if spatial != x[1:]:
            raise _disagree(name, kind, "declares input_shape", spatial, x, label)
    return (w.shape[0], *out)


def _conv_pads(name: str, kind: str, node: dict, nsp: int, k, s, d, label: str) -> list[int]:
    """ONNX ``pads`` (begins, then ends) for NIR's int / tuple / 'same' / 'valid' padding."""
    p = node.get("padding", 0)
    text = _text(p) if isinstance(p, (str, bytes)) else None
    if text == "valid":
        return [0] * 2 * nsp
    if text == "same":
        if any(v != 1 for v in s):
            raise ModelError(f"{label}: node {show(name)!r} ({kind}) has padding 'same' with "
                             f"stride {s}; 'same' needs stride 1 (as in PyTorch)")
        total = [d[i] * (k[i] - 1) for i in range(nsp)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    if text is not None:
        raise ModelError(f"{label}: node {show(name)!r} ({kind}) has padding {text!r}; NIR "
                         f"allows an integer, one per axis, 'same' or 'valid'")
    begin = list(_ints(name, kind, node, "padding", nsp, label, low=0))
    return begin + begin


def _flatten_out(name: str, node: dict, x: tuple[int, ...], label: str) -> tuple[int, ...]:
    declared = node.get("input_type")
    if declared is not None and np.asarray(declared).size:
        shape = _shape_of(declared, name, "Flatten", "input_type", label)
        if shape != x:
            raise _disagree(name, "Flatten", "declares input_type", shape, x, label)
    start = _int_scalar(name, node, "start_dim", 1, label)
    end = _int_scalar(name, node, "end_dim", -1, label)
    r = len(x)
    a, b = start + r if start < 0 else start, end + r if end < 0 else end
    if not 0 <= a <= b < r:
        raise ModelError(f"{label}: node {show(name)!r} (Flatten) flattens dims {start}..{end} of "
                         f"an input of shape {x} (NIR shapes have no batch axis); fix the file")
    return (*x[:a], math.prod(x[a:b + 1]), *x[b + 1:])


def _int_scalar(name: str, node: dict, key: str, default: int, label: str) -> int:
    v = np.asarray(node.get(key, default)).reshape(-1)
    if v.size != 1 or not np.issubdtype(v.dtype, np.number) or v[0] != int(v[0]):
        raise ModelError(f"{label}: node {show(name)!r} (Flatten): {key!r} = "
                         f"{node.get(key)!r:.60} is not one integer; fix the file")
    return int(v[0])


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


def _encode_name(steps: list[Step]) -> str:
    return f"{steps[0].name}:encode"


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
    x = first.name if first.type == "Input" else f"{first.name}:input"
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
        nsp = 1 if kind == "Conv1d" else 2
        w = np.asarray(node["weight"], dtype=np.float32)
        k = w.shape[2:]
        s = _ints(name, kind, node, "stride", nsp, "", low=1, default=1)
        d = _ints(name, kind, node, "dilation", nsp, "", low=1, default=1)
        ins = [x, m.init(f"{name}:weight", w)]
        if "bias" in node:
            b = np.asarray(node["bias"], dtype=np.float32).reshape(-1)
            ins.append(m.init(f"{name}:bias", np.resize(b, w.shape[0])))
        m.nodes.append(helper.make_node(
            "Conv", ins, [y], name=name, kernel_shape=list(k), strides=list(s),
            dilations=list(d), pads=_conv_pads(name, kind, node, nsp, k, s, d, ""),
            group=_ints(name, kind, node, "groups", 1, "", low=1, default=1)[0]))
    elif kind in POOLS:
        m.nodes.append(helper.make_node(
            "AveragePool", [x], [y], name=name,
            kernel_shape=list(_ints(name, kind, node, "kernel_size", 2, "", low=1)),
            strides=list(_ints(name, kind, node, "stride", 2, "", low=1, default=1)),
            pads=list(_ints(name, kind, node, "padding", 2, "", low=0, default=0)) * 2))
    elif kind == "Flatten":
        shape = m.init(f"{name}:shape", [1, *st.out_shape], np.int64)
        m.nodes.append(helper.make_node("Reshape", [x, shape], [y], name=name))
    elif kind == "Scale":
        scale = m.init(f"{name}:scale", node["scale"])  # broadcasts as in numpy
        m.nodes.append(helper.make_node("Mul", [x, scale], [y], name=name))
    else:
        model, graded, _ = NEURONS[kind]
        m.neuron(name, x, y, model, graded=graded, params=_params(st), source_type=kind)
