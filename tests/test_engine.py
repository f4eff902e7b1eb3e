"""The tile-level engine: the tiling kernel against its twin, hand cases, and the properties
every op must keep (never below its roofline bound; more bandwidth, SRAM or cores never slower;
energy the sum of its parts)."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import npusim
from npusim.engine.mapping import gemm_view, search
from npusim.engine.simulate import simulate_graph
from npusim.ir import BF16, FP8_E4M3, Axis, Contraction, Graph, Operand, Role, Tensor
from npusim.kernels import engine as ek
from npusim.kernels import tiling as tk


# ----------------------------------------------------------------------- kernel vs twin
TWIN_WALK = 200_000
"""Most tile steps a kernel-vs-twin case may have (about half a second of walking)."""
_TINY = dict(tb=1, tm=1, tn=1, tkk=1, where=(0, 1, 2), cores=9, units=4, sram=1e9, core_bpc=16.0,
             acc=0.0, sbw=7.0)


# 1-wide tiles on every axis (the walk's worst case, at the size the cap allows), each engine
@example(B=3, M=40, N=40, K=40, order=0, engine=ek.OS, **_TINY)
@example(B=2, M=50, N=40, K=50, order=4, engine=tk.THROUGHPUT, **_TINY)
@example(B=3, M=41, N=37, K=43, order=5, engine=ek.SLICE, **_TINY)
@example(B=1, M=300, N=1, K=300, order=3, engine=ek.WS, **_TINY)
@settings(max_examples=120, deadline=None)
@given(B=st.integers(1, 3), M=st.integers(1, 300), N=st.integers(1, 300), K=st.integers(1, 300),
       tb=st.integers(1, 3), tm=st.integers(1, 128), tn=st.integers(1, 128),
       tkk=st.integers(1, 128), order=st.integers(0, 5),
       where=st.tuples(*[st.sampled_from([tk.IN_DRAM, tk.IN_SHARED, tk.ON_CHIP])] * 3),
       engine=st.sampled_from([ek.OS, ek.WS, ek.IS, ek.SLICE, tk.THROUGHPUT]),
       cores=st.integers(1, 9), units=st.integers(1, 4), sram=st.sampled_from([1e4, 1e6, 1e9]),
       core_bpc=st.sampled_from([0.0, 16.0, 256.0]), acc=st.sampled_from([0.0, 1e3, 1e6]), sbw=st.sampled_from([0.0, 7.0, 128.0]))
def test_tiling_kernel_matches_twin(B, M, N, K, tb, tm, tn, tkk, order, where, engine, cores,
                                    units, sram, core_bpc, acc, sbw):
    tb, tm, tn, tkk = min(tb, B), min(tm, M), min(tn, N), min(tkk, K)
    # The twin walks every tile step (a few us each): one draw of 1-wide tiles over 300^3 is
    # minutes of walking for the same branches a 40^3 walk takes (see the examples above).
    assume(-(-B // tb) * -(-M // tm) * -(-N // tn) * -(-K // tkk) <= TWIN_WALK)
    a_tile, b_tile, c_tile = 2.0 * tb * tm * tkk, 2.0 * tkk * tn, 2.0 * tb * tm * tn
    rows, cols = (8, 32) if engine == ek.SLICE else (16, 8)
    args = (tb, tm, tn, tkk, order, a_tile, b_tile, c_tile, 2 * c_tile, B, M, N, K,
            2.0 * B * M * K, 2.0 * K * N, 2.0 * B * M * N, *where, engine, rows, cols, units,
            5, 0, 256, 32, cores, sram, 64.0, 128.0, 96.0, 500.0, core_bpc, acc, sbw)
    out = np.zeros(tk.N_OUT)
    tk.score_one(*args, out)
    ref = tk.score_ref(*args)
    assert out == pytest.approx(np.array(ref), rel=1e-12, abs=1e-9)


def test_loop_order_reuse_by_hand():
    # 4x4 tile grid over M and N, K in one step; A tiles 100 B, B tiles 10 B.
    # order m,n,k: A reloads only when m moves (4 loads), B every step (16 loads).
    out = np.zeros(tk.N_OUT)
    common = (400.0, 40.0, 16.0 * 4, tk.IN_DRAM, tk.IN_DRAM, tk.IN_DRAM, tk.THROUGHPUT,
              1, 1, 1, 0, 0, 1, 0, 1, 1e9, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    tk.score_one(1, 10, 10, 10, 0, 100.0, 10.0, 4.0, 16.0, 1, 40, 40, 10, *common, out)
    assert out[2] == 4 * 100 + 16 * 10 + 16 * 4          # A + B + C bytes from/to DRAM
    tk.score_one(1, 10, 10, 10, 2, 100.0, 10.0, 4.0, 16.0, 1, 40, 40, 10, *common, out)
    assert out[2] == 16 * 100 + 4 * 10 + 16 * 4          # order n,m,k: the other way round
    # K outermost: each C tile is visited 4 times; 3 revisits read and rewrite fp32 partials
    tk.score_one(1, 10, 10, 10, 4, 100.0, 10.0, 4.0, 16.0, 1, 40, 40, 40, *common, out)
    # order k,m,n: A loads Tk*Tm = 16, B loads 64, C 64 visits to 16 tiles
    assert out[2] == 16 * 100 + 64 * 10 + 16 * 4 + (64 - 16) * 16 * 2


def test_sram_fit_is_a_value_with_a_reason():
    out = np.zeros(tk.N_OUT)
    tk.score_one(1, 64, 64, 64, 0, 8192.0, 8192.0, 8192.0, 16384.0, 1, 64, 64, 64,
                 8192.0, 8192.0, 8192.0, 0, 0, 0, ek.OS, 16, 16, 1, 0, 0, 256, 0, 1,
                 1000.0, 64.0, 0.0, 64.0, 0.0, 0.0, 0.0, 0.0, out)
    assert out[8] == tk.NO_FIT


# ----------------------------------------------------------------------- the GEMM view
def conv_op():
    x = Tensor("x", (1, 8, 10, 10), BF16)
    w = Tensor("w", (16, 8, 3, 3), BF16, Role.WEIGHT)
    y = Tensor("y", (1, 16, 8, 8), BF16)
    return Contraction(
        name="conv", dims=(("n", 1), ("m", 16), ("c", 8), ("p", 8), ("q", 8), ("r", 3), ("s", 3)),
        operands=(Operand(x, (Axis.of("n"), Axis.of("c"), Axis.affine({"p": 1, "r": 1}),
                              Axis.affine({"q": 1, "s": 1}))),
                  Operand(w, (Axis.of("m"), Axis.of("c"), Axis.of("r"), Axis.of("s")))),
        output=Operand(y, (Axis.of("n"), Axis.of("m"), Axis.of("p"), Axis.of("q"))), dtype=BF16)


def test_gemm_view_of_conv_and_batched_matmul():
    v = gemm_view(conv_op())
    assert (v.B, v.M, v.N, v.K) == (1, 64, 16, 72)
    assert [d for d, _ in v.m_dims] == ["n", "p", "q"] and [d for d, _ in v.k_dims] == ["c", "r", "s"]
    att = Contraction.einsum("bhqd,bhkd->bhqk", {"b": 2, "h": 4, "q": 8, "k": 16, "d": 64},
                             ["q", "k"], "s", BF16, name="qk")
    v = gemm_view(att)
    assert (v.B, v.M, v.N, v.K) == (8, 8, 16, 64)


# ----------------------------------------------------------------------- op properties
def single(op):
    g = Graph("one")
    g.inputs.extend(t.name for t in op.inputs if t.role == Role.ACTIVATION)
    g.outputs.append(op.outputs[0].name)
    g.add(op)
    return g


def matmul(m, k, n, dt=BF16):
    return Contraction.einsum("mk,kn->mn", {"m": m, "k": k, "n": n}, ["x", "w"], "y", dt,
                              name="mm", roles=[Role.ACTIVATION, Role.WEIGHT])


ARCHS = ["rngd", "h100", "a100", "atom", "edu", "systolic-128"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(ARCHS), m=st.integers(1, 4096), k=st.integers(1, 4096),
       n=st.integers(1, 4096), scale=st.sampled_from([1.5, 2.0, 4.0]),
       field=st.sampled_from(["dram.bandwidth", "cores.sram", "cores.count"]))
# a power-capped op whose search once ranked tiles on cycles alone (more SRAM: +2.6e-6 slower)
@example(arch="a100", m=81, k=1173, n=194, scale=1.5, field="cores.sram")
@example(arch="a100", m=3718, k=95, n=2779, scale=1.5, field="cores.count")
@example(arch="a100", m=1, k=646, n=1185, scale=1.5, field="cores.sram")
def test_never_below_roofline_and_more_resources_never_slower(arch, m, k, n, scale, field):
    base = npusim.load_arch(arch)
    value = {"dram.bandwidth": lambda a: f"{a.dram.bandwidth * scale} B/s",
             "cores.sram": lambda a: f"{a.cores.sram * scale} B",
             "cores.count": lambda a: str(int(a.cores.count * scale))}[field](base)
    more = npusim.load_arch(arch, {field: value})
    g = single(matmul(m, k, n))
    r = simulate_graph(g, base)
    r2 = simulate_graph(g, more)
    (op,) = r.ops
    assert op.latency_s >= op.bound_s * (1 - 1e-9)
    assert r.latency_s >= r.bound_latency_s * (1 - 1e-9)
    assert r2.ops[0].latency_s <= op.latency_s * (1 + 1e-9), (field, value)
    assert op.utilization <= 1.0 + 1e-9


@settings(max_examples=20, deadline=None)
@given(arch=st.sampled_from(["rngd", "h100", "edu"]), m=st.integers(1, 512),
       k=st.integers(1, 2048), n=st.integers(1, 2048))
def test_energy_is_the_sum_of_its_parts(arch, m, k, n):
    r = simulate_graph(single(matmul(m, k, n)), npusim.load_arch(arch))
    (op,) = r.ops
    if not op.energy_j:
        pytest.skip(f"no energy table for {arch}")
    assert op.energy_total_j == pytest.approx(sum(op.energy_j.values()))
    assert r.energy_j == pytest.approx(sum(r.energy_by_component().values()))
    assert all(v >= 0 for v in op.energy_j.values())
    assert op.energy_j["static"] > 0 and op.energy_j["mac"] > 0


def test_search_is_memoised_and_records_the_mapping():
    arch = npusim.load_arch("rngd")
    op = matmul(8, 4096, 4096)
    m1 = search(op, arch, BF16, (tk.ON_CHIP, tk.IN_DRAM, tk.ON_CHIP), arch.dram.bandwidth)
    m2 = search(matmul(8, 4096, 4096), arch, BF16, (tk.ON_CHIP, tk.IN_DRAM, tk.ON_CHIP),
                arch.dram.bandwidth)
    assert m1 is m2
    assert m1.ok and m1.dram_bytes >= 4096 * 4096 * 2
    assert set(m1.tile) == {"m", "k", "n"} and m1.order in tk.ORDER_NAMES


def test_fp8_runs_twice_as_fast_as_bf16_when_compute_bound():
    arch = npusim.load_arch("rngd")
    bf = simulate_graph(single(matmul(4096, 4096, 4096)), arch).ops[0]
    f8 = simulate_graph(single(matmul(4096, 4096, 4096, FP8_E4M3)), arch).ops[0]
    assert bf.bound == "compute"
    assert 1.6 < bf.latency_s / f8.latency_s <= 2.05


def test_decode_step_is_weight_streaming_bound():
    arch = npusim.load_arch("rngd")
    g = npusim.load_model("llama-3.1-8b", phase="decode", batch=1, kv_len=128)
    r = simulate_graph(g, arch)
    weights = g.bytes_by_role()["weight"]
    embed = 128256 * 4096 * 2          # the embedding gather reads 1 row, not the table
    assert r.latency_s >= (weights - embed) / arch.dram.bandwidth
    assert r.latency_s >= r.bound_latency_s
    assert r.latency_s < 1.5 * r.bound_latency_s
    assert math.isclose(r.latency_s, sum(o.latency_s for o in r.ops))
