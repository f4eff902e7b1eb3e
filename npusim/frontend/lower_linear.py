"""MatMul, Gemm and Einsum as contractions.

Batch dims broadcast as in numpy: an operand whose batch axis has size 1 where the output's
does not gets a constant (size-1) axis, so it is read once per output batch element.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir import Contraction, DType, Tensor
from .context import Node, operand
from .dtypes_onnx import mac_dtype
from .registry import register


def matmul(n: Node, a: Tensor, b: Tensor, y: Tensor, dt: DType, *, b_transposed: bool = False,
           extra: Sequence[Tensor] = (), suffix: str = "") -> Contraction:
    """``y = a @ b`` with numpy broadcasting of batch dims and 1-D operands.

    Dims are ``b0, b1, ...`` (output batch), ``m``, ``n`` and ``k`` (reduced). With
    ``b_transposed`` the second operand is stored ``[..., N, K]`` (MatMulNBits' layout).
    """
    ash, bsh = a.shape, b.shape
    if not ash or not bsh:
        raise n.fail(f"MatMul operands must have rank >= 1, got shapes {ash} and {bsh}")
    a_vec, b_vec = len(ash) == 1, len(bsh) == 1
    k_a = ash[-1]
    if b_vec:
        k_b, n_ = bsh[0], 1
    else:
        k_b, n_ = (bsh[-1], bsh[-2]) if b_transposed else (bsh[-2], bsh[-1])
    if k_a != k_b:
        raise n.fail(f"inner dimensions differ: {a.name!r} {ash} times {b.name!r} {bsh} "
                     f"(K = {k_a} vs {k_b}); fix the model or the --dim values")
    a_batch = () if a_vec else ash[:-2]
    b_batch = () if b_vec else bsh[:-2]
    try:
        batch = tuple(np.broadcast_shapes(a_batch, b_batch))
    except ValueError:
        raise n.fail(f"batch dimensions of {ash} and {bsh} do not broadcast") from None
    names = [f"b{i}" for i in range(len(batch))]

    def batch_axes(own: tuple[int, ...]) -> list:
        off = len(batch) - len(own)
        return [names[off + j] if s == batch[off + j] else None for j, s in enumerate(own)]

    m = 1 if a_vec else ash[-2]
    dims = list(zip(names, batch))
    a_axes = ["k"] if a_vec else [*batch_axes(a_batch), "m", "k"]
    if b_vec:
        b_axes = ["k"]
    else:
        b_axes = [*batch_axes(b_batch), *(("n", "k") if b_transposed else ("k", "n"))]
    y_axes = list(names) + ([] if a_vec else ["m"]) + ([] if b_vec else ["n"])
    want = tuple(batch) + (() if a_vec else (m,)) + (() if b_vec else (n_,))
    if y.shape != want:
        raise n.fail(f"output {y.name!r} has shape {y.shape} but {ash} x {bsh} gives {want}")
    if not a_vec:
        dims.append(("m", m))
    if not b_vec:
        dims.append(("n", n_))
    dims.append(("k", k_a))
    return n.contraction(dims, [operand(a, *a_axes), operand(b, *b_axes)], operand(y, *y_axes),
                         dt, extra_inputs=extra, suffix=suffix)


@register("MatMul")
def lower_matmul(n: Node):
    a, b = n.inp(0), n.inp(1)
    return [matmul(n, a, b, n.out(0), mac_dtype(a.dtype))]


@register("Gemm")
def lower_gemm(n: Node):
    """``Y = alpha * op(A) @ op(B) + beta * C``: one contraction, then C as an Elementwise add.

    alpha and beta are scalings an engine folds into the accumulation; they add no op.
    """
    a, b, y = n.inp(0), n.inp(1), n.out(0)
    if a.rank != 2 or b.rank != 2:
        raise n.fail(f"Gemm needs 2-D A and B, got {a.shape} and {b.shape}")
    ta, tb = n.attr("transA", "int", 0), n.attr("transB", "int", 0)
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    k2, n_ = (b.shape[1], b.shape[0]) if tb else b.shape
    if k != k2:
        raise n.fail(f"inner dimensions differ: A {a.shape} (transA={ta}) and B {b.shape} "
                     f"(transB={tb}) give K = {k} vs {k2}")
    if y.shape != (m, n_):
        raise n.fail(f"output {y.name!r} has shape {y.shape}, expected {(m, n_)}")
    acc = n.tmp("matmul", (m, n_), y.dtype) if n.has(2) else y
    mm = n.contraction([("m", m), ("n", n_), ("k", k)],
                       [operand(a, *(("k", "m") if ta else ("m", "k"))),
                        operand(b, *(("n", "k") if tb else ("k", "n")))],
                       operand(acc, "m", "n"), mac_dtype(a.dtype),
                       suffix="matmul" if n.has(2) else "")
    if not n.has(2):
        return [mm]
    return [mm, n.elementwise("add", 1, inputs=[acc, n.inp(2)], outputs=[y], suffix="bias")]


def _einsum_axes(term: str, rank: int, ell: list[str]) -> list[str]:
    if "..." not in term:
        return list(term)
    head, tail = term.split("...")
    n_ell = rank - len(head) - len(tail)
    return [*head, *ell[len(ell) - n_ell:], *tail]


@register("Einsum")
def lower_einsum(n: Node):
    """An einsum of two or more inputs is one contraction over its letters (an ellipsis
    becomes dims ``_0, _1, ...``); a one-input einsum is a reduction or a transpose."""
    eq = n.attr("equation", "string").replace(" ", "")
    ins = n.inputs()
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ins):
        raise n.fail(f"equation {eq!r} names {len(terms)} inputs but the node has {len(ins)}")
    n_ell = max((t.rank - len(s.replace("...", "")) for s, t in zip(terms, ins) if "..." in s),
                default=0)
    ell = [f"_{i}" for i in range(n_ell)]
    extents: dict[str, int] = {}
    axes_of = []
    for s, t in zip(terms, ins):
        axes = _einsum_axes(s, t.rank, ell)
        if len(axes) != t.rank:
            raise n.fail(f"term {s!r} of {eq!r} has {len(axes)} letters but input {t.name!r} "
                         f"has rank {t.rank} (shape {t.shape})")
        for d, size in zip(axes, t.shape):
            old = extents.get(d, 1)
            if old != size and 1 not in (old, size):
                raise n.fail(f"letter {d!r} of {eq!r} has sizes {old} and {size}")
            extents[d] = max(old, size)
        axes_of.append(axes)
    if arrow:
        out_axes = _einsum_axes(rhs, len(rhs.replace("...", "")) + n_ell, ell)
    else:
        counts: dict[str, int] = {}
        for axes in axes_of:
            for d in axes:
                counts[d] = counts.get(d, 0) + 1
        out_axes = ell + sorted(d for d, c in counts.items() if c == 1 and d not in ell)
    y = n.out(0, tuple(extents[d] for d in out_axes))
    if len(ins) == 1:
        reduced = set(axes_of[0]) - set(out_axes)
        if reduced:
            return [n.reduction("einsum_sum", 1)]
        return [n.movement("einsum_transpose")]
    order = list(dict.fromkeys([d for axes in axes_of for d in axes] + out_axes))
    operands = [operand(t, *[d if t.shape[i] == extents[d] else None
                             for i, d in enumerate(axes)])
                for t, axes in zip(ins, axes_of)]
    return [n.contraction([(d, extents[d]) for d in order], operands,
                          operand(y, *out_axes), mac_dtype(ins[0].dtype))]
