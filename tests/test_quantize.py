"""Precision pass: storage bytes follow the chosen dtypes, compute follows the activations."""
import pytest

import npusim
from npusim.engine.simulate import simulate_graph
from npusim.ir import Contraction, Movement, Role, dtype
from npusim.passes import quantize


@pytest.fixture(scope="module")
def decode():
    return npusim.load_model("llama-3.1-8b", phase="decode", batch=1, kv_len=128)


def test_weight_bytes_by_dtype(decode):
    emb = 128256 * 4096                       # the embedding table is left in bf16
    norms = (2 * 32 + 1) * 4096
    matrix = decode.parameters - emb - norms
    for w, bits in [("fp8", 8), ("int8", 8), ("int4_g128", 4 + 16 / 128), ("mxfp4", 4.25)]:
        q = quantize(decode, weights=w)
        assert q.parameters == decode.parameters
        want = matrix * bits / 8 + (emb + norms) * 2
        assert q.bytes_by_role()["weight"] == pytest.approx(want)


def test_mxfp4_costs_4_25_bits_per_value():
    assert dtype("mxfp4").bits == 4.25
    assert dtype("int4_g128").bits == 4.125 and dtype("int4_g128").kind == "int4"


def test_compute_follows_activations_and_kv_follows_kv(decode):
    q = quantize(decode, weights="int4_g128", activations="bf16", kv="fp8")
    mms = [op for op in q.ops() if isinstance(op, Contraction)]
    assert {op.dtype.name for op in mms} == {"bf16"}
    kv = [t for t in q.tensors.values() if t.role == Role.KV_CACHE]
    assert kv and all(t.dtype.name == "fp8_e4m3" for t in kv)
    assert q.bytes_by_role()["kv_cache"] == pytest.approx(decode.bytes_by_role()["kv_cache"] / 2)


def test_moe_experts_are_quantised_through_the_gather():
    g = npusim.load_model("tiny-moe", phase="decode", batch=2, kv_len=8)
    q = quantize(g, weights="mxfp4", activations="fp8")
    gathers = [op for op in q.ops() if isinstance(op, Movement) and op.inputs
               and op.inputs[0].role == Role.WEIGHT and op.inputs[0].rank == 3]
    assert gathers and all(op.outputs[0].dtype.name == "mxfp4" for op in gathers)


def test_rngd_runs_mxfp4_as_fp8_and_h100_as_bf16(decode):
    q = quantize(decode, weights="mxfp4", activations="fp8")
    r = simulate_graph(q, npusim.load_arch("rngd"))
    assert {o.exec_dtype for o in r.ops if o.kind == "contraction"} == {"fp8_e4m3"}
    q16 = quantize(decode, weights="mxfp4", activations="bf16")
    h = simulate_graph(q16, npusim.load_arch("h100"))
    assert {o.exec_dtype for o in h.ops if o.kind == "contraction"} == {"bf16"}


def test_narrower_weights_make_decode_faster(decode):
    arch = npusim.load_arch("rngd")
    t = {w: simulate_graph(quantize(decode, weights=w), arch).latency_s
         for w in ("bf16", "fp8", "int4_g128")}
    assert t["bf16"] > t["fp8"] > t["int4_g128"]
