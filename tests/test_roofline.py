"""The roofline bound: hand-computed cases and properties over random ops and arch variants."""
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.engine.roofline import roofline
from npusim.ir import BF16, FP8_E4M3, MXFP4, Contraction, Elementwise, Graph, Movement, Role, Tensor


def toy_arch(macs_per_s=1e12, vec=1e11, bw=1e11, sram=0.0, fallback=None):
    """A duck-typed arch with round numbers, so bounds can be computed by hand."""
    fallback = fallback or {}
    rates = {"bf16": macs_per_s, "fp8_e4m3": 2 * macs_per_s}

    def execution_dtype(dt):
        return FP8_E4M3 if dt.name in fallback else dt

    return SimpleNamespace(
        name="toy", sram_total=sram, peak_vector_ops_per_s=vec, clock=1e9,
        power=SimpleNamespace(tdp=100.0, idle=None),
        dram=SimpleNamespace(bandwidth=bw, capacity=1e12),
        link=SimpleNamespace(bandwidth=1e10),
        execution_dtype=execution_dtype,
        peak_macs_per_s=lambda dt: rates[getattr(dt, "name", dt)])


def matmul_graph(m, k, n, wdt=BF16):
    g = Graph("mm")
    w = Tensor("w", (k, n), wdt, Role.WEIGHT)
    g.inputs.append("x")
    g.outputs.append("y")
    g.add(Contraction.einsum("mk,kn->mn", {"m": m, "k": k, "n": n}, ["x", w], "y", BF16,
                             name="mm", roles=[Role.ACTIVATION, Role.WEIGHT]))
    return g


def test_matmul_by_hand():
    # 1024 x 4096 x 4096 bf16: 17.18 GMAC at 1e12 MAC/s = 17.18 ms of compute;
    # DRAM: x 8 MiB + w 32 MiB + y 8 MiB = 50,331,648 B at 1e11 B/s = 0.503 ms.
    r = roofline(matmul_graph(1024, 4096, 4096), toy_arch())
    (op,) = r.ops
    assert op.macs == 1024 * 4096 * 4096
    assert op.compute_s == pytest.approx(1024 * 4096 * 4096 / 1e12)
    assert op.dram_bytes == 2 * (1024 * 4096 + 4096 * 4096 + 1024 * 4096)
    assert op.memory_s == pytest.approx(op.dram_bytes / 1e11)
    assert op.bound == "compute" and op.latency_s == op.compute_s
    # a GEMV at m=1 is memory bound: 2*(4096 + 4096^2 + 4096) bytes / 1e11
    (gemv,) = roofline(matmul_graph(1, 4096, 4096), toy_arch()).ops
    assert gemv.bound == "memory"
    assert gemv.latency_s == pytest.approx(2 * (4096 + 4096 ** 2 + 4096) / 1e11)


def test_mxfp4_weights_cost_4_25_bits_and_run_in_fallback_dtype():
    r = roofline(matmul_graph(1, 4096, 4096, wdt=MXFP4), toy_arch(fallback={"bf16"}))
    (op,) = r.ops
    assert op.dram_bytes == pytest.approx(2 * 4096 + 4096 * 4096 * 4.25 / 8 + 2 * 4096)
    assert op.exec_dtype == "fp8_e4m3"
    assert op.compute_s == pytest.approx(4096 * 4096 / 2e12)


def test_intermediate_stays_on_chip_when_it_fits():
    g = matmul_graph(256, 256, 256)
    h = g.tensors["y"]
    g.outputs[:] = ["z"]
    g.add(Elementwise(name="gelu", func="gelu", ops_per_element=8, inputs=(h,),
                      outputs=(Tensor("z", h.shape, BF16),)))
    big = roofline(g, toy_arch(sram=1e9))
    none = roofline(g, toy_arch(sram=0.0))
    assert big.ops[0].dram_bytes == 2 * 2 * 256 * 256           # x and w only
    assert none.ops[0].dram_bytes == 3 * 2 * 256 * 256          # and y spilled
    assert big.ops[1].dram_bytes == 2 * 256 * 256               # z, a graph output
    assert none.ops[1].dram_bytes == 2 * 2 * 256 * 256          # y read back, z written
    assert big.ops[1].compute_s == pytest.approx(8 * 256 * 256 / 1e11)


def test_shared_weight_is_read_once_and_gather_pays_rows_only():
    emb = Tensor("emb", (1000, 64), BF16, Role.WEIGHT)
    ids = Tensor("ids", (4,), BF16)
    g = Graph("tied")
    g.inputs.append("ids")
    rows = Tensor("rows", (4, 64), BF16)
    g.add(Movement(name="gather", func="gather", inputs=(emb, ids), outputs=(rows,),
                   moved_bytes=rows.nbytes))
    g.add(Contraction.einsum("td,vd->tv", {"t": 4, "d": 64, "v": 1000}, [rows, emb], "logits",
                             BF16, name="head"))
    g.outputs.append("logits")
    r = roofline(g, toy_arch(sram=1e9))
    assert r.ops[0].dram_bytes == rows.nbytes                # what the gather says it moves
    assert r.ops[1].dram_bytes == emb.nbytes + 2 * 4 * 1000  # whole table once, logits out


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 2048), k=st.integers(1, 2048), n=st.integers(1, 2048),
       bw=st.floats(1e9, 1e13), scale=st.floats(1.0, 8.0), sram=st.floats(0, 1e9))
def test_properties(m, k, n, bw, scale, sram):
    g = matmul_graph(m, k, n)
    r = roofline(g, toy_arch(bw=bw, sram=sram))
    faster = roofline(g, toy_arch(bw=bw * scale, sram=sram))
    more_sram = roofline(g, toy_arch(bw=bw, sram=sram * scale + 1))
    for rec in r.ops:
        assert rec.latency_s >= rec.bound_s == max(rec.compute_s, rec.memory_s)
    assert r.latency_s >= r.bound_latency_s
    assert faster.latency_s <= r.latency_s            # more bandwidth never slows an op
    assert more_sram.latency_s <= r.latency_s         # more SRAM never slows an op
    assert r.latency_s == pytest.approx(sum(x.latency_s for x in r.ops))


# -- fused attention: scores and probabilities never reach DRAM ----------------------------------

def _attention_onnx(middle: str = "Softmax", scores_out: bool = False):
    """Q K^T -> ``middle`` -> P V over 4 heads x 2048 tokens x 64, fp16: every input and the
    output are 4 x 2048 x 64 x 2 B = 1 MiB; the scores are 4 x 2048 x 2048 x 2 B = 32 MiB."""
    import onnx
    from onnx import TensorProto, helper
    h, s, d = 4, 2048, 64
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["scores"], name="qk"),
             helper.make_node(middle, ["scores"], ["probs"], name="mid",
                              **({"axis": -1} if middle == "Softmax" else {})),
             helper.make_node("MatMul", ["probs", "v"], ["ctx"], name="pv")]
    f16 = TensorProto.FLOAT16
    inputs = [helper.make_tensor_value_info("q", f16, [1, h, s, d]),
              helper.make_tensor_value_info("kt", f16, [1, h, d, s]),
              helper.make_tensor_value_info("v", f16, [1, h, s, d])]
    outputs = [helper.make_tensor_value_info("ctx", f16, [1, h, s, d])]
    if scores_out:
        outputs.append(helper.make_tensor_value_info("scores", f16, [1, h, s, s]))
    model = helper.make_model(helper.make_graph(nodes, "attn", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    from npusim.frontend.onnx_loader import load_onnx
    return load_onnx(model, name="attn")


def test_attention_scores_are_streamed_by_hand():
    from npusim import load_arch
    from npusim.engine.roofline import _dram_bytes, streamed_tensors
    from npusim.engine.simulate import simulate_graph
    g = _attention_onnx()
    assert streamed_tensors(g) == {"scores", "probs"}
    mib = float(1 << 20)
    # q + kt read by qk, v read and ctx written by pv: 4 MiB, no score traffic at all
    assert _dram_bytes(g, 0.0) == {"qk": 2 * mib, "mid": 0.0, "pv": 2 * mib}
    # edu has 1 MiB of SRAM: 32 MiB of scores could never stay on chip, yet none is spilled
    # (its tiny tiles re-read q and kt, which is the engine's business, not a spill)
    r = simulate_graph(g, load_arch("edu"))
    assert r.latency_s >= r.bound_latency_s
    ops = {o.name: o for o in r.ops}
    assert ops["mid"].dram_bytes == 0.0
    assert ops["qk"].mapping["placement"]["C"] == ops["pv"].mapping["placement"]["A"] == "chip"
    r = simulate_graph(g, load_arch("rngd"))
    assert r.latency_s >= r.bound_latency_s
    assert sum(o.dram_bytes for o in r.ops) <= 1.5 * 4 * mib


def test_without_softmax_or_with_a_second_reader_scores_go_to_dram():
    from npusim.engine.roofline import _dram_bytes, streamed_tensors
    mib = float(1 << 20)
    relu = _attention_onnx("Relu")       # not attention: the 32 MiB go out and come back
    assert streamed_tensors(relu) == frozenset()
    assert _dram_bytes(relu, 0.0) == {"qk": 34 * mib, "mid": 64 * mib, "pv": 34 * mib}
    out = _attention_onnx(scores_out=True)   # the scores are a graph output: written to DRAM
    assert streamed_tensors(out) == frozenset()
    assert _dram_bytes(out, 0.0)["qk"] == 34 * mib
