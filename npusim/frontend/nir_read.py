"""Read a NIR file (the Neuromorphic Intermediate Representation, neuromorphs/NIR) as a checked
chain of layers with their shapes: the half of the NIR import that knows the file format.

:func:`read_chain` opens the HDF5 file ``nir.write`` makes (or takes an in-memory
``nir.NIRGraph``), refuses node types npusim does not import, graphs that are not one
feed-forward path, and fields whose shapes disagree, each with one line naming the file and the
node, and returns the nodes in order as :class:`Step` records (NIR shapes have no batch axis).
:mod:`npusim.frontend.nir_import` builds the SNN graph from them. The ``nir`` package (an
optional extra, it brings h5py) is imported only here and only when a file is read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from .context import MAX_ELEMENTS, show

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
    attrs: dict = field(default_factory=dict)
    """ONNX attributes of a conv or pool (``kernel_shape``, ``strides``, ``pads``...)."""


@dataclass(frozen=True)
class Chain:
    """A NIR graph read as one path: its label for messages, NIR version and steps."""

    label: str
    version: str | None
    steps: tuple[Step, ...]


def read_chain(src: str | Path | Any) -> Chain:
    """Read ``src`` (a NIR file or a ``nir.NIRGraph``) as a checked chain of steps.

    Raises
    ------
    ModelError
        Missing file, not a NIR file, not one feed-forward path, shapes that disagree.
    UnsupportedOpError
        A node of a type npusim does not import, or a nested graph.
    """
    label, version, root = _read(src)
    nodes, edges = _parts(root, label)
    return Chain(label, version, tuple(_shapes(_chain(nodes, edges, label), nodes, label)))


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
    if not isinstance(src, (str, Path)):
        raise ModelError(f"load_nir reads a NIR file path or a nir.NIRGraph, not "
                         f"{type(src).__name__}")
    path = Path(src)
    label = show(str(path))
    if not path.is_file():
        raise ModelError(f"{label}: no such NIR file; check the path")
    if not h5py.is_hdf5(path):
        raise ModelError(f"{label} is not a NIR file: it is not HDF5; export the network with "
                         f"nir.write")
    try:
        with h5py.File(path, "r") as f:
            node = f.get("node")
            if not isinstance(node, h5py.Group):
                raise ModelError(f"{label} is an HDF5 file but not a NIR file: it has no 'node' "
                                 f"group; export the network with nir.write")
            version = f.get("version")
            version = _text(version[()]) if isinstance(version, h5py.Dataset) else None
            return label, version, nir.serialization.hdf2dict(node)
    except ModelError:
        raise
    except Exception as e:  # h5py raises several types on damaged files
        raise ModelError(f"{label}: the NIR file cannot be read ({_first(e)}); re-export it "
                         f"with nir.write (a truncated copy looks like this)") from None


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
                         f"({_plain(node[key])}); re-export it") from None


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
                         f"{_plain(node[key])} must be {n} integer(s) >= {low}; fix the file")
    return tuple(int(x) for x in v)


def _plain(v) -> str:
    """A field's value as messages print it (a list, not numpy's repr), cut to 60 chars."""
    v = np.asarray(v).tolist() if isinstance(v, (np.ndarray, np.generic)) else v
    return repr(v)[:60]


def _shape_of(v, step: str, kind: str, what: str, label: str) -> tuple[int, ...]:
    a = np.asarray(v).reshape(-1)
    try:
        shape = tuple(int(x) for x in a)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(s < 1 for s in shape) or not np.array_equal(a.astype(float), shape):
        raise ModelError(f"{label}: node {show(step)!r} ({kind}) has {what} {_plain(v)}, not a "
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
        out, attrs = _out_shape(name, kind, node, shape, label)
        if min(out) < 1 or math.prod(out) > MAX_ELEMENTS:
            raise ModelError(f"{label}: node {show(name)!r} ({kind}) gives shape {out}, empty "
                             f"or of more than 2**50 elements; fix the file")
        steps.append(Step(name, kind, node, shape, out, attrs))
        shape = out
    return steps


def _out_shape(name: str, kind: str, node: dict, x: tuple[int, ...],
               label: str) -> tuple[tuple[int, ...], dict]:
    """The shape node ``name`` writes when it reads ``x``, and its ONNX attributes."""
    if kind in ("Conv1d", "Conv2d"):
        return _conv_out(name, kind, node, x, label)
    if kind in POOLS:
        return _pool_out(name, kind, node, x, label)
    return _plain_out(name, kind, node, x, label), {}


def _plain_out(name: str, kind: str, node: dict, x: tuple[int, ...],
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


def _pool_out(name: str, kind: str, node: dict, x: tuple[int, ...],
              label: str) -> tuple[tuple[int, ...], dict]:
    if len(x) != 3:
        raise ModelError(f"{label}: node {show(name)!r} ({kind}) pools an input [C, H, W] "
                         f"but its input has shape {x}; the shapes disagree, fix the file")
    k = _ints(name, kind, node, "kernel_size", 2, label, low=1)
    s = _ints(name, kind, node, "stride", 2, label, low=1, default=1)
    p = _ints(name, kind, node, "padding", 2, label, low=0, default=0)
    if any(2 * p[i] > k[i] for i in range(2)):
        raise ModelError(f"{label}: node {show(name)!r} ({kind}) pads {p} around a kernel {k}; "
                         f"padding must be at most half the kernel (as in PyTorch), fix the file")
    out = tuple((x[i + 1] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(2))
    if min(out) < 1:
        raise _disagree(name, kind, f"(kernel {k}, padding {p}) gives output", out, x, label)
    return (x[0], *out), {"kernel_shape": list(k), "strides": list(s), "pads": list(p) * 2}


def _conv_out(name: str, kind: str, node: dict, x: tuple[int, ...],
              label: str) -> tuple[tuple[int, ...], dict]:
    nsp = 1 if kind == "Conv1d" else 2
    w = _field(name, kind, node, "weight", label)
    if w.ndim != nsp + 2 or len(x) != nsp + 1:
        axes, taps = ("L", "k") if nsp == 1 else ("H, W", "kH, kW")
        raise ModelError(f"{label}: node {show(name)!r} ({kind}) has a weight of shape "
                         f"{w.shape} for an input of shape {x}; {kind} takes [C, {axes}] and a "
                         f"weight [C_out, C_in/groups, {taps}]")
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
    return (w.shape[0], *out), {"kernel_shape": list(k), "strides": list(s), "dilations": list(d),
                                "pads": pads, "group": g}


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
                         f"{_plain(node.get(key))} is not one integer; fix the file")
    return int(v[0])
