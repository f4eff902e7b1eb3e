"""Ops of npusim's own ONNX domain ``ai.npusim``: the collectives written by the LLM builder's
tensor-parallel graphs (``npusim/graphs/builder.py``, ``tp=N``), and the spiking ``Neuron``
layer written by the NIR importer (:func:`lower_neuron`).

``AllReduce(x) -> y`` (same shape) and ``AllGather(x) -> y`` (``x`` concatenated over the
``group`` chips along ``axis``, default -1), each with an integer attribute ``group``, the
number of chips. onnx's shape inference does not know these ops, so the output shape is
computed here (and checked against any shape the model states). The payload is one chip's
input: what a ring or tree algorithm's cost is usually written in terms of.
"""
from __future__ import annotations

from ..ir import NEURON_MODELS, Collective, Neuron
from .context import Node, show
from .registry import register

NPUSIM = "ai.npusim"


def _group(n: Node) -> int:
    return n.attr("group", "int", low=1)


def _collective(n: Node, func: str, out_shape: tuple[int, ...]):
    if n.n_in != 1 or n.n_out != 1:
        raise n.fail(f"{n.op_type} takes one input and gives one output, got {n.n_in} inputs "
                     f"and {n.n_out} outputs")
    x = n.inp(0)
    y = n.out(0, out_shape, x.dtype)
    return [Collective(name=n.name(), source=n.source, op_type=n.op_type, inputs=(x,),
                       outputs=(y,), func=func, group=_group(n), payload_bytes=x.nbytes)]


@register("AllReduce", domain=NPUSIM)
def lower_all_reduce(n: Node):
    """Sum of the chips' inputs, on every chip: output shape = input shape."""
    return _collective(n, "all_reduce", n.shape(0))


@register("AllGather", domain=NPUSIM)
def lower_all_gather(n: Node):
    """The chips' inputs concatenated along ``axis``: that axis grows ``group`` times."""
    shape = list(n.shape(0))
    axis = n.attr("axis", "int", -1)
    if not -len(shape) <= axis < len(shape):
        raise n.fail(f"axis {axis} is out of range for an input of rank {len(shape)}")
    shape[axis] *= _group(n)
    return _collective(n, "all_gather", tuple(shape))


@register("Neuron", domain=NPUSIM)
def lower_neuron(n: Node):
    """A layer of spiking neurons (:class:`~npusim.ir.Neuron`): input the synaptic current,
    output the spikes, same shape. Attributes: ``model`` (one of
    :data:`~npusim.ir.NEURON_MODELS`), ``timesteps`` (>= 1), optional ``rate`` (mean spikes
    per neuron per timestep, in [0, 1]), ``graded`` (0 or 1), ``param_names`` and
    ``param_values`` (the model's parameters, one value each) and ``source_type`` (the layer
    type it came from, e.g. a NIR ``"LIF"``; default ``"Neuron"``). The NIR importer
    (:mod:`npusim.frontend.nir_import`) writes these nodes; a user may too. ONNX float
    attributes are 32-bit: a rate such as 0.1 comes back as 0.10000000149.

    >>> from onnx import TensorProto as T, helper as h
    >>> from npusim.frontend import load_onnx
    >>> node = h.make_node("Neuron", ["x"], ["s"], domain="ai.npusim", name="lif1", model="lif",
    ...                    timesteps=8, rate=0.5)
    >>> g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 256])],
    ...                  [h.make_tensor_value_info("s", T.FLOAT, None)])
    >>> m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.npusim", 1)])
    >>> op = load_onnx(m).op("lif1")
    >>> op.kind, op.model, op.spikes
    ('neuron', 'lif', 1024.0)
    """
    if n.n_in != 1 or n.n_out != 1:
        raise n.fail(f"Neuron takes one input (the current) and gives one output (the spikes), "
                     f"got {n.n_in} inputs and {n.n_out} outputs")
    x = n.inp(0)
    y = n.out(0, x.shape, x.dtype)
    model = n.attr("model", "string")
    if model not in NEURON_MODELS:
        raise n.fail(f"attribute 'model' is {show(model)!r}; it must be one of "
                     f"{', '.join(NEURON_MODELS)}")
    rate = n.attr("rate", "float", None)
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise n.fail(f"attribute 'rate' = {rate} is outside [0, 1] (mean spikes per neuron "
                     f"per timestep)")
    names = n.attr("param_names", "strings", [])
    values = n.attr("param_values", "floats", None, length=len(names))
    if values is None and names:
        raise n.fail(f"attribute 'param_names' lists {len(names)} parameters but "
                     f"'param_values' is missing; give one value per name")
    graded = n.attr("graded", "int", 0, low=0)
    if graded > 1:
        raise n.fail(f"attribute 'graded' = {graded} must be 0 or 1")
    return [Neuron(name=n.name(), source=n.source,
                   op_type=n.attr("source_type", "string", "Neuron") or "Neuron",
                   inputs=(x,), outputs=(y,), model=model,
                   timesteps=n.attr("timesteps", "int", low=1), rate=rate,
                   params=tuple(zip(names, values or [])), graded=bool(graded))]
