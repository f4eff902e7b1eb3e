"""Operations of the IR: a tensor contraction, or cheap glue around one.

A :class:`Contraction` is an iteration space of named dimensions with extents, and for every
operand a projection of that space onto the operand's axes. Each axis index is an affine sum
of dimensions plus an offset (``input_row = p*stride + r*dilation - pad``), as in Timeloop's
problem shapes, so convolutions (strided, dilated, grouped, depthwise), matmuls, einsums and
attention all share one form. Dimensions that do not appear in the output are reduced, and the
MAC count is the product of all extents.

The glue ops (:class:`Elementwise`, :class:`Reduction`, :class:`Movement`,
:class:`Collective`) say how much work they are (elements, operations per element, bytes) and
nothing about how any hardware would run them.

Spiking networks use one more op, :class:`Neuron`: a layer of spiking neurons run for
``timesteps`` steps. A contraction whose activation input is a Neuron's output is a *synaptic
projection*: its operand is a spike train, and its synaptic operations are its MACs x
timesteps x the source's spike rate (:func:`synops`). The same graph can so be costed on an NPU
(a Neuron is an elementwise op of ``timesteps`` state updates per element) and on spiking cores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .dtypes import DType
from .tensor import Role, Tensor


class ShapeError(ValueError):
    """Operand shapes that disagree with the op's iteration space."""


@dataclass(frozen=True)
class Axis:
    """One tensor axis as an affine function of iteration dims: ``sum(c * d) + offset``.

    >>> Axis.affine({"p": 2, "r": 1}, offset=-1).extent({"p": 4, "r": 3})
    (-1, 7)
    """

    terms: tuple[tuple[str, int], ...]
    offset: int = 0

    @staticmethod
    def of(dim: str) -> "Axis":
        return Axis(((dim, 1),))

    @staticmethod
    def affine(coeffs: dict[str, int], offset: int = 0) -> "Axis":
        return Axis(tuple((d, int(c)) for d, c in coeffs.items() if c != 0), int(offset))

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.terms)

    def extent(self, extents: dict[str, int]) -> tuple[int, int]:
        """Smallest and largest index the axis reaches over the iteration space."""
        lo = hi = self.offset
        for d, c in self.terms:
            span = c * (extents[d] - 1)
            if span >= 0:
                hi += span
            else:
                lo += span
        return lo, hi

    def __str__(self) -> str:
        parts = [d if c == 1 else f"{c}*{d}" for d, c in self.terms]
        if self.offset:
            parts.append(str(self.offset))
        return "+".join(parts).replace("+-", "-") or "0"


@dataclass(frozen=True)
class Operand:
    """A tensor and the projection of the iteration space onto each of its axes."""

    tensor: Tensor
    axes: tuple[Axis, ...]

    @property
    def dims(self) -> frozenset[str]:
        return frozenset(d for a in self.axes for d in a.dims)


@dataclass(frozen=True, kw_only=True)
class Op:
    """Base of all ops.

    Attributes
    ----------
    name : str
        Unique within its graph.
    source : str
        The ONNX node name (or builder layer) the op came from.
    op_type : str
        The ONNX op type (or builder layer type) it came from, e.g. ``"Conv"``.
    inputs, outputs : tuple of Tensor
    """

    name: str
    source: str = ""
    op_type: str = ""
    inputs: tuple[Tensor, ...] = ()
    outputs: tuple[Tensor, ...] = ()

    kind = "op"

    @property
    def macs(self) -> int:
        return 0

    @property
    def vector_ops(self) -> float:
        """Element operations for a vector unit (0 for contractions and pure movement)."""
        return 0.0

    @property
    def bytes(self) -> float:
        """Bytes of every distinct input and output, each counted once."""
        seen: dict[str, float] = {}
        for t in (*self.inputs, *self.outputs):
            seen[t.name] = t.nbytes
        return float(sum(seen.values()))

    @property
    def compute_dtype(self) -> DType:
        ts = self.outputs or self.inputs
        return ts[0].dtype


@dataclass(frozen=True, kw_only=True)
class Contraction(Op):
    """A tensor contraction: ``out[proj_out(i)] += prod_k in_k[proj_k(i)]`` over the space.

    ``dims`` is the ordered iteration space ``((name, extent), ...)``; ``operands`` projects
    it onto each input and ``output`` onto the result; ``dtype`` is the type the products are
    computed in (the engine's MAC rate is looked up by it).

    >>> from npusim.ir.dtypes import BF16
    >>> c = Contraction.einsum("mk,kn->mn", {"m": 2, "n": 3, "k": 4}, ["a", "b"], "c", BF16,
    ...                        name="mm")
    >>> c.macs, sorted(c.reduced_dims)
    (24, ['k'])
    """

    dims: tuple[tuple[str, int], ...]
    operands: tuple[Operand, ...]
    output: Operand
    dtype: DType

    kind = "contraction"

    def __post_init__(self) -> None:
        ext = self.extents
        if len(ext) != len(self.dims):
            raise ShapeError(f"{self.name}: duplicate dimension names in {self.dims}")
        for d, e in self.dims:
            if e <= 0:
                raise ShapeError(f"{self.name}: dimension {d} has extent {e}; must be >= 1")
        for opd in (*self.operands, self.output):
            t = opd.tensor
            if len(opd.axes) != t.rank:
                raise ShapeError(
                    f"{self.name}: operand {t.name!r} has rank {t.rank} (shape {t.shape}) "
                    f"but the projection gives {len(opd.axes)} axes")
            for i, (ax, size) in enumerate(zip(opd.axes, t.shape)):
                unknown = [d for d in ax.dims if d not in ext]
                if unknown:
                    raise ShapeError(f"{self.name}: operand {t.name!r} uses unknown dims {unknown}")
                lo, hi = ax.extent(ext)
                simple = len(ax.terms) == 1 and ax.terms[0][1] == 1 and ax.offset == 0
                if simple and hi + 1 != size and not (size == 1 and hi == 0):
                    raise ShapeError(
                        f"{self.name}: axis {i} of {t.name!r} has size {size} but dimension "
                        f"{ax.terms[0][0]} runs to {hi + 1}; shapes {t.shape} disagree with "
                        f"the iteration space {dict(self.dims)}")
                if not ax.terms and size != 1:
                    raise ShapeError(f"{self.name}: constant axis {i} of {t.name!r} has size {size}")
                if lo > 0 or hi < 0 or (hi >= size and lo >= size):
                    raise ShapeError(
                        f"{self.name}: axis {i} of {t.name!r} (size {size}) is indexed over "
                        f"[{lo}, {hi}], outside the tensor")
        if not self.inputs:
            object.__setattr__(self, "inputs", tuple(o.tensor for o in self.operands))
        if not self.outputs:
            object.__setattr__(self, "outputs", (self.output.tensor,))

    @property
    def extents(self) -> dict[str, int]:
        return dict(self.dims)

    @property
    def macs(self) -> int:
        return math.prod(e for _, e in self.dims)

    @property
    def reduced_dims(self) -> frozenset[str]:
        return frozenset(d for d, _ in self.dims) - self.output.dims

    @property
    def compute_dtype(self) -> DType:
        return self.dtype

    @staticmethod
    def einsum(spec: str, extents: dict[str, int], inputs: list[str | Tensor],
               output: str | Tensor, dtype: DType, *, name: str, source: str = "",
               op_type: str = "Einsum", roles: list[Role] | None = None,
               out_dtype: DType | None = None) -> "Contraction":
        """Build a contraction from an einsum string such as ``"bmk,kn->bmn"``.

        Inputs and output may be Tensors or names (then their shapes come from ``extents``).
        """
        lhs, rhs = spec.replace(" ", "").split("->")
        in_specs = lhs.split(",")
        if len(in_specs) != len(inputs):
            raise ShapeError(f"{name}: einsum {spec!r} names {len(in_specs)} inputs, got {len(inputs)}")
        roles = roles or [Role.ACTIVATION] * len(inputs)

        def mk(t: str | Tensor, letters: str, role: Role, dt: DType) -> Operand:
            if isinstance(t, str):
                t = Tensor(t, tuple(extents[c] for c in letters), dt, role)
            return Operand(t, tuple(Axis.of(c) for c in letters))

        ops = tuple(mk(t, s, r, dtype) for t, s, r in zip(inputs, in_specs, roles))
        out = mk(output, rhs, Role.ACTIVATION, out_dtype or dtype)
        order = []
        for s in (*in_specs, rhs):
            for c in s:
                if c not in order:
                    order.append(c)
        return Contraction(name=name, source=source or name, op_type=op_type,
                           dims=tuple((c, int(extents[c])) for c in order),
                           operands=ops, output=out, dtype=dtype)


@dataclass(frozen=True, kw_only=True)
class Elementwise(Op):
    """``ops_per_element`` scalar operations for each output element (an Add is 1, a GELU ~8).

    ``func`` names the operation (``"add"``, ``"gelu"``) so an engine may price it.
    """

    func: str
    ops_per_element: float = 1.0

    kind = "elementwise"

    @property
    def elements(self) -> int:
        return self.outputs[0].numel if self.outputs else 0

    @property
    def vector_ops(self) -> float:
        return self.elements * self.ops_per_element


@dataclass(frozen=True, kw_only=True)
class Reduction(Op):
    """A reduction over the input's elements (softmax, norm, pooling, reduce-sum...).

    ``ops_per_element`` counts operations per *input* element read (a softmax: max, subtract,
    exp, sum, divide ~ 5).
    """

    func: str
    ops_per_element: float = 1.0

    kind = "reduction"

    @property
    def elements(self) -> int:
        return max((t.numel for t in self.inputs if t.role == Role.ACTIVATION), default=0)

    @property
    def vector_ops(self) -> float:
        return self.elements * self.ops_per_element


@dataclass(frozen=True, kw_only=True)
class Pool(Reduction):
    """A window pooling (average, max, Lp) over the spatial axes of an ``[N, C, spatial...]``
    input: a Reduction on a vector unit, and the window it reads, which a spiking network
    needs to make it a projection (average pooling is a grouped conv with fixed weights).

    ``window``, ``strides``, ``dilations`` and ``pads`` (padding before each spatial axis; the
    padding after follows from the output shape) per spatial axis. A global pool is a window
    of the whole input.
    """

    window: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Movement(Op):
    """Data moved without arithmetic: transpose, gather, concat, slice, KV-cache append.

    ``moved_bytes`` is what really crosses memory (a gather of 8 rows from a 128k-row
    embedding table reads 8 rows, not the table); by default, inputs read plus outputs written.
    ``perm`` is a transpose's permutation (output axis ``j`` is input axis ``perm[j]``).
    """

    func: str
    moved_bytes: float | None = None
    perm: tuple[int, ...] | None = None

    kind = "movement"

    @property
    def bytes(self) -> float:
        return super().bytes if self.moved_bytes is None else float(self.moved_bytes)

    @property
    def bytes_all(self) -> float:
        """Bytes of every distinct input and output (what a full copy would move)."""
        return Op.bytes.fget(self)


@dataclass(frozen=True, kw_only=True)
class Collective(Op):
    """A collective across ``group`` chips: all-reduce, all-gather, reduce-scatter, all-to-all."""

    func: str
    group: int = 1
    payload_bytes: float = 0.0

    kind = "collective"


NEURON_MODELS = {
    "encode": 1.0,
    "if": 2.0,
    "lif": 3.0,
    "cubalif": 5.0,
    "sigma_delta": 4.0,
}
"""Neuron models and the scalar operations one state update of one neuron takes on a vector
unit. An assumption read off each model's update equations (snn.md sec. 2.1 and the NIR
definitions): ``encode`` (a rate or threshold encoder of the input: compare) 1; ``if``
(``v += i``; compare, reset) 2; ``lif`` (``v = a v + i``: multiply-add, compare, reset) 3;
``cubalif`` (a current decay and a voltage decay: two multiply-adds, compare, reset, one add) 5;
``sigma_delta`` (Loihi 2's change coding: accumulate, subtract the last sent value, compare
against the threshold, store) 4."""


@dataclass(frozen=True, kw_only=True)
class Neuron(Elementwise):
    """A layer of spiking neurons: input its synaptic current, output its spikes.

    ``model`` is one of :data:`NEURON_MODELS`; ``timesteps`` the number of steps the network
    runs per inference; ``rate`` the mean spikes per neuron per timestep of its output, in
    [0, 1] (``None`` if not known yet); ``params`` the model's parameters as ``(name, value)``
    pairs (``threshold``, ``leak``, ``tau_mem``, ...), kept for readers and exports.
    ``graded`` marks Loihi 2's graded spikes (a payload with each spike).

    On a vector unit it is ``timesteps`` state updates of every element.

    >>> from npusim.ir.dtypes import FP16
    >>> from npusim.ir.tensor import Tensor
    >>> n = Neuron(name="l1", model="lif", timesteps=8, rate=0.1,
    ...            inputs=(Tensor("i", (1, 256), FP16),), outputs=(Tensor("s", (1, 256), FP16),))
    >>> n.spikes, n.vector_ops
    (204.8, 6144.0)
    """

    func: str = "spike"
    model: str = "if"
    timesteps: int = 1
    rate: float | None = None
    params: tuple[tuple[str, float], ...] = ()
    graded: bool = False

    kind = "neuron"

    def __post_init__(self) -> None:
        if self.model not in NEURON_MODELS:
            raise ShapeError(f"{self.name}: neuron model {self.model!r} is not one of "
                             f"{', '.join(NEURON_MODELS)}")
        if int(self.timesteps) < 1:
            raise ShapeError(f"{self.name}: timesteps {self.timesteps} must be >= 1")
        if self.rate is not None and not (0.0 <= float(self.rate) <= 1.0):
            raise ShapeError(f"{self.name}: spike rate {self.rate} is outside [0, 1] (mean "
                             f"spikes per neuron per timestep)")
        object.__setattr__(self, "ops_per_element", NEURON_MODELS[self.model] * self.timesteps)

    @property
    def neurons(self) -> int:
        return self.elements

    @property
    def spikes(self) -> float:
        """Expected spikes per inference: neurons x timesteps x rate (0 when rate is unknown)."""
        return self.neurons * self.timesteps * float(self.rate or 0.0)


def synops(op: Contraction, rate: float, timesteps: int) -> float:
    """Synaptic operations of a projection fed spikes at ``rate`` for ``timesteps`` steps.

    Every spike of a source neuron costs one synaptic operation per synapse it drives, so the
    count is the projection's MACs (its synapses, each used once per step in the ANN) x
    timesteps x rate (snn.md sec. 2.1, applied once, not twice).

    >>> from npusim.ir.dtypes import BF16
    >>> c = Contraction.einsum("mk,kn->mn", {"m": 1, "n": 10, "k": 256}, ["s", "w"], "y", BF16,
    ...                        name="fc")
    >>> synops(c, 0.05, 8)
    1024.0
    """
    if not 0.0 <= rate <= 1.0:
        raise ShapeError(f"{op.name}: spike rate {rate} is outside [0, 1]")
    return float(op.macs) * int(timesteps) * float(rate)


OP_KINDS = ("contraction", "elementwise", "reduction", "movement", "collective", "neuron")
