"""The IR by hand: dtypes, tensors, contraction projections, graph totals."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npusim.ir import (BF16, FP32, INT4, MXFP4, Axis, Contraction, Elementwise, Graph, Movement,
                       Operand, Role, ShapeError, Tensor, dtype)


def test_dtype_bits():
    assert dtype("fp32").bytes == 4
    assert dtype("bf16").bytes == 2
    assert dtype("fp8_e4m3").bytes == dtype("fp8_e5m2").bytes == dtype("int8").bytes == 1
    assert INT4.bytes == 0.5
    # MXFP4: 32 E2M1 values share one E8M0 scale -> 4 + 8/32 bits.
    assert MXFP4.bits == 4.25
    assert Tensor("w", (4096, 4096), MXFP4).nbytes == 4096 * 4096 * 4.25 / 8
    with pytest.raises(ValueError, match="unknown dtype 'fp7'"):
        dtype("fp7")


def conv(n, c, h, w, m, r, s, stride, dil, pad, groups):
    """A grouped, strided, dilated convolution as a contraction, built by hand."""
    p = (h + 2 * pad - dil * (r - 1) - 1) // stride + 1
    q = (w + 2 * pad - dil * (s - 1) - 1) // stride + 1
    cg, mg = c // groups, m // groups
    x = Tensor("x", (n, c, h, w), FP32)
    wt = Tensor("w", (m, cg, r, s), FP32, Role.WEIGHT)
    y = Tensor("y", (n, m, p, q), FP32)
    return Contraction(
        name="conv", op_type="Conv",
        dims=(("n", n), ("g", groups), ("m", mg), ("c", cg), ("p", p), ("q", q), ("r", r), ("s", s)),
        operands=(
            Operand(x, (Axis.of("n"), Axis.affine({"g": cg, "c": 1}),
                        Axis.affine({"p": stride, "r": dil}, -pad),
                        Axis.affine({"q": stride, "s": dil}, -pad))),
            Operand(wt, (Axis.affine({"g": mg, "m": 1}), Axis.of("c"), Axis.of("r"), Axis.of("s")))),
        output=Operand(y, (Axis.of("n"), Axis.affine({"g": mg, "m": 1}), Axis.of("p"), Axis.of("q"))),
        dtype=FP32)


def test_conv_contraction_by_hand():
    # 1x8x9x9 input, 4 filters of 3x3 in 2 groups, stride 2, dilation 2, pad 1:
    # P = (9 + 2 - 2*2 - 1)//2 + 1 = 4; MACs = 1*4*4*4 outputs * (8/2)*3*3 = 64 * 36 = 2304.
    c = conv(1, 8, 9, 9, 4, 3, 3, stride=2, dil=2, pad=1, groups=2)
    assert c.extents["p"] == c.extents["q"] == 4
    assert c.macs == 2304
    assert c.reduced_dims == {"c", "r", "s"}
    assert str(c.operands[0].axes[2]) == "2*p+2*r-1"
    # the input row reached runs from -1 (padding) to 2*3 + 2*2 - 1 = 9 (padding again)
    assert c.operands[0].axes[2].extent(c.extents) == (-1, 9)
    assert c.bytes == 4 * (8 * 81 + 4 * 4 * 9 + 4 * 16)


def test_depthwise_is_groups_equal_channels():
    c = conv(2, 16, 8, 8, 16, 3, 3, stride=1, dil=1, pad=1, groups=16)
    assert c.macs == 2 * 16 * 8 * 8 * 9


def test_shape_mismatch_is_named():
    with pytest.raises(ShapeError, match=r"mm: axis 0 of 'w' has size 5 .* k runs to 4"):
        Contraction(name="mm", dims=(("m", 2), ("n", 3), ("k", 4)),
                    operands=(Operand(Tensor("x", (2, 4), BF16), (Axis.of("m"), Axis.of("k"))),
                              Operand(Tensor("w", (5, 3), BF16), (Axis.of("k"), Axis.of("n")))),
                    output=Operand(Tensor("y", (2, 3), BF16), (Axis.of("m"), Axis.of("n"))),
                    dtype=BF16)


@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 64), st.integers(1, 4))
def test_einsum_macs_are_product_of_extents(m, n, k, b):
    c = Contraction.einsum("bmk,kn->bmn", {"b": b, "m": m, "n": n, "k": k}, ["x", "w"], "y",
                           BF16, name="bmm")
    assert c.macs == b * m * n * k
    assert c.reduced_dims == {"k"}
    assert c.bytes == 2 * (b * m * k + k * n + b * m * n)


def test_graph_edges_params_and_order():
    g = Graph("two")
    mm = Contraction.einsum("mk,kn->mn", {"m": 2, "k": 3, "n": 4}, ["x", "w"], "h", BF16,
                            name="mm", roles=[Role.ACTIVATION, Role.WEIGHT])
    act = Elementwise(name="relu", func="relu", inputs=(mm.outputs[0],),
                      outputs=(Tensor("y", (2, 4), BF16),))
    g.add(mm)
    g.add(act)
    g.add(Movement(name="t", func="transpose", inputs=(act.outputs[0],),
                   outputs=(Tensor("yt", (4, 2), BF16),)))
    assert [o.name for o in g.ops()] == ["mm", "relu", "t"]
    assert g.parameters == 12
    assert g.macs == 24
    assert g.bytes_by_role()["weight"] == 24
    assert g.nx.edges["mm", "relu"]["tensors"] == ["h"]
    assert g.census()["Einsum"] == {"count": 1, "macs": 24}
    with pytest.raises(ValueError, match="duplicate op name"):
        g.add(mm)


def test_movement_bytes_default_and_explicit():
    t = Tensor("emb", (1000, 64), BF16, Role.WEIGHT)
    ids = Tensor("ids", (8,), dtype("int64"))
    out = Tensor("rows", (8, 64), BF16)
    g = Movement(name="gather", func="gather", inputs=(t, ids), outputs=(out,),
                 moved_bytes=8 * 64 * 2)
    assert g.bytes == 1024
    assert Movement(name="all", func="copy", inputs=(t,), outputs=(out,)).bytes == \
        t.nbytes + out.nbytes
    assert math.isclose(Elementwise(name="e", func="gelu", ops_per_element=8, inputs=(out,),
                                    outputs=(out,)).vector_ops, 8 * 512)
