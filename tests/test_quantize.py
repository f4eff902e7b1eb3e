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


def test_mxfp4_runs_w4a16_where_the_arch_dequantises_it_to_bf16():
    """Hopper has fp8 but no FP4 MMA and dequantises MXFP4 to bf16: the stacks run W4A16
    (bf16 activations); RNGD decodes MXFP4 to fp8 and keeps fp8 activations; an arch without
    fp8 runs bf16 as before."""
    from npusim.passes.quantize import resolve_precision
    got = {a: resolve_precision("mxfp4", npusim.load_arch(a)).activations
           for a in ("h100", "h200", "rngd", "a100", "atom")}
    assert got == {"h100": "bf16", "h200": "bf16", "rngd": "fp8_e4m3", "a100": "bf16",
                   "atom": "bf16"}
    # the weights stay mxfp4 everywhere: only the compute dtype follows the arch
    assert resolve_precision("mxfp4", npusim.load_arch("h100")).weights == "mxfp4"


def test_experts_only_quantises_the_stacked_expert_matrices_alone():
    g = npusim.load_model("tiny-moe", phase="prefill", batch=1, seq=64)
    full = quantize(g, weights="mxfp4")
    experts = quantize(g, weights="mxfp4", experts_only=True)
    weights = lambda q: {n: t.dtype.name for n, t in q.tensors.items()   # noqa: E731
                         if t.role == Role.WEIGHT and t.rank >= 2}
    w_full, w_exp = weights(full), weights(experts)
    # the matrices the full recipe quantises that carry an expert axis
    stacked = {n for n, d in w_full.items() if d == "mxfp4" and g.tensors[n].rank >= 3}
    assert stacked                                        # tiny-moe has expert matrices
    for n, d in w_exp.items():
        # an expert matrix is mxfp4 in both; any other matrix keeps its checkpoint bf16
        assert d == ("mxfp4" if n in stacked else g.tensors[n].dtype.name), n
    assert any(w_full[n] == "mxfp4" and w_exp[n] != "mxfp4" for n in w_full)
    # bytes: the difference is exactly the non-expert matrices at 16 bits instead of 4.25
    moved = sum(g.tensors[n].numel for n in w_full if w_full[n] == "mxfp4" and n not in stacked)
    diff = experts.bytes_by_role()["weight"] - full.bytes_by_role()["weight"]
    assert diff == pytest.approx(moved * (2 - 4.25 / 8))


def test_gpt_oss_checkpoint_is_mxfp4_on_its_experts_only():
    from npusim.frontend.llm import mx_experts_only
    from npusim.passes.quantize import resolve_precision
    mx = resolve_precision("mxfp4", npusim.load_arch("h100"))            # W4A16
    assert mx_experts_only("gpt-oss-120b", mx) and mx_experts_only("gpt-oss-20b", mx)
    assert not mx_experts_only("gpt-oss-120b", resolve_precision("bf16"))
    assert not mx_experts_only("tiny-moe", mx) and not mx_experts_only("llama-3.1-8b", mx)
    # RNGD runs MXFP4 with fp8 activations: the vendor build's other dtypes are unpublished
    assert not mx_experts_only("gpt-oss-120b", resolve_precision("mxfp4", npusim.load_arch("rngd")))
