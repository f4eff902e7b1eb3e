"""The PIM device, its op costs and the NPU/PIM placement (npusim/engine/pim.py and
simulate_graph's ``pim=``).

Small systems: ``edu+hbm2-pim`` (the teaching chip with HBM2-PIM's units in its one DDR4
channel: 16 banks, 8 units, an energy table) and the shipped ``lpddr6-pim`` phone preset.
Graphs are built by hand in fp16, a dtype both PIM presets' units run.
"""
from __future__ import annotations

import csv
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from npusim import load_arch, load_model
from npusim.engine.pim import (PimPlan, crossover_batch, gemv_cost, npu_gemm_seconds,
                               op_on_pim, pim_device, pim_gemm_seconds, pim_summary)
from npusim.engine.simulate import simulate_graph
from npusim.errors import ArchError, NpusimError
from npusim.ir import FP16, Axis, Contraction, Graph, Operand, Role, Tensor, dtype
from npusim.report.export import csv_columns, write_csv, write_json
from npusim.report.trace import trace_dict

EDU = "edu+hbm2-pim"


def gemm(batch: int, k: int, m: int, dt: str = "fp16") -> Graph:
    g = Graph(f"gemm{batch}")
    g.add(Contraction.einsum("bk,km->bm", {"b": batch, "k": k, "m": m}, ["x", "w"], "y",
                             dtype(dt), name="fc", op_type="MatMul",
                             roles=[Role.ACTIVATION, Role.WEIGHT]))
    return g


def conv() -> Graph:
    """A 3x3 convolution (input row = p + r): not a GEMV whatever its operands."""
    g = Graph("conv")
    x = Tensor("x", (1, 8, 18, 18), FP16)
    w = Tensor("w", (16, 8, 3, 3), FP16, Role.WEIGHT)
    y = Tensor("y", (1, 16, 16, 16), FP16)
    dims = (("n", 1), ("k", 16), ("c", 8), ("p", 16), ("q", 16), ("r", 3), ("s", 3))
    g.add(Contraction(
        name="conv", op_type="Conv", dims=dims, dtype=FP16,
        operands=(Operand(x, (Axis.of("n"), Axis.of("c"), Axis.affine({"p": 1, "r": 1}),
                              Axis.affine({"q": 1, "s": 1}))),
                  Operand(w, (Axis.of("k"), Axis.of("c"), Axis.of("r"), Axis.of("s")))),
        output=Operand(y, (Axis.of("n"), Axis.of("k"), Axis.of("p"), Axis.of("q")))))
    return g


@pytest.fixture(scope="module")
def edu():
    return load_arch(EDU)


# ------------------------------------------------------------------------------- device
def test_device_geometry_and_bandwidths_of_the_lpddr6_preset():
    d = pim_device(load_arch("lpddr6-pim"))
    # 8 sub-channels x 16 banks, one unit per bank; one 32-B column per tCCD_L = 3.75 ns
    assert (d.channels, d.units_per_channel, d.units, d.burst) == (8, 16, 128, 32)
    assert d.command_interval == pytest.approx(3.75e-9, rel=1e-5)
    assert d.internal_bandwidth == pytest.approx(128 * 32 / 3.75e-9, rel=1e-5)
    assert d.ratio == pytest.approx(9.6, rel=1e-3)                   # pim.md sec. 3
    # 16 fp16 MACs per cycle at 266.7 MHz, 128 units
    assert d.peak_macs["fp16"] == pytest.approx(128 * 16 * 266.7e6)
    # lanes: 16 fp16 per 32-B burst / 16 MACs per cycle = one cycle = 3.75 ns: no slower
    assert d.column_interval["fp16"] == pytest.approx(d.command_interval, rel=1e-4)


def test_column_interval_is_the_slower_of_command_and_lanes(edu):
    d = pim_device(edu)
    # DDR4 64-B bursts hold 32 fp16; 16 lanes at 300 MHz need 2 cycles = 6.67 ns > tCCD_L
    assert d.command_interval < 32 / 16 / 300e6
    assert d.column_interval["fp16"] == pytest.approx(32 / 16 / 300e6)
    assert d.interval("fp16", 2.0, vectors=3) == pytest.approx(3 * 32 / 16 / 300e6)


def test_hbm2_pim_internal_is_four_times_external():
    assert pim_device(load_arch("hbm2-pim")).ratio == pytest.approx(4.0, rel=1e-6)  # [P1]


def test_banks_that_are_not_whole_units_are_refused_naming_the_field():
    from dataclasses import replace
    with pytest.raises(ArchError, match="pim.banks_per_unit"):
        pim_device(load_arch("lpddr6-pim", ["pim.banks_per_unit=3"]))
    a = load_arch("lpddr6-pim")           # past the loader: the engine checks it too
    with pytest.raises(ArchError, match="pim.banks_per_unit: 3 does not divide the 16 banks"):
        pim_device(replace(a, pim=replace(a.pim, banks_per_unit=3)))


def test_an_arch_without_units_has_no_device():
    with pytest.raises(ArchError, match="no pim section"):
        pim_device(load_arch("rngd"))


# ------------------------------------------------------------------------------- GEMV
def test_gemv_counts_by_hand():
    a = load_arch("lpddr6-pim")         # 32 B read out per row: 16 fp16 lane partials
    d = pim_device(a)
    c = gemv_cost(d, 4096, 4096, "fp16", "fp16")
    assert c.macs == 4096 * 4096
    assert c.column_bytes == 4096 * 4096 * 2                  # every weight once
    m = c.mapping
    # 4096 rows / 128 units = 32 per unit, in 4 groups of 8 accumulators
    assert m["rows_per_unit"] == 32 and m["passes"] == 1 and m["groups_per_channel"] == 1
    # the 2 KiB input buffer holds 1024 fp16: 2 KiB of weights per row per chunk, 4 chunks
    assert m["chunk_bytes"] == 2048
    # broadcast: 4 groups x 4 chunks x 2 KiB per channel, 8 channels
    assert c.broadcast_bytes == 4 * 4 * 2048 * 8
    # read-out: per group 16 units x 8 rows x 32 B, 4 groups, 8 channels
    assert c.readout_bytes == 4 * 16 * 8 * 32 * 8
    # the host adds 16 lane partials per output: 15 ops each
    assert c.host_vector_ops == 4096 * 15
    assert c.memory_s == pytest.approx(4096 * 4096 * 2 / d.internal_bandwidth)


def test_a_batch_costs_a_pass_per_vector(edu):
    d = pim_device(edu)
    one = gemv_cost(d, 256, 512, "fp16", "fp16", vectors=1)
    three = gemv_cost(d, 256, 512, "fp16", "fp16", vectors=3)
    assert three.mapping["passes"] == 3
    assert three.column_bytes == 3 * one.column_bytes
    assert three.macs == 3 * one.macs
    assert three.latency > 2.5 * one.latency


def test_attention_channels_broadcast_the_vectors_of_the_groups_they_hold(edu):
    d = pim_device(edu)               # one channel of 8 units holds every group
    c = gemv_cost(d, 64, 128, "fp16", "fp16", vectors=4, matrices=8, kind="attention")
    assert c.mapping["groups_per_channel"] == 8
    assert c.macs == 64 * 128 * 4 * 8


def test_a_unit_that_reduces_its_rows_leaves_the_host_nothing_to_add():
    a = load_arch("lpddr6-pim", ["pim.accumulator_bytes=2 B"])   # one fp16 result per row
    # k = 1024 fp16 fills one 2-KiB input buffer: one chunk, so no chunk partials either
    c = gemv_cost(pim_device(a), 4096, 1024, "fp16", "fp16")
    assert c.mapping["loop_order"] == "rows"
    assert c.mapping["partials"] == 1 and c.host_vector_ops == 0
    assert c.readout_bytes == 4 * 16 * 8 * 2 * 8


def test_gemv_refuses_a_dtype_the_units_lack(edu):
    with pytest.raises(ArchError, match="no bf16 MACs"):
        gemv_cost(pim_device(edu), 64, 64, "bf16", "bf16")


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 3000), k=st.integers(1, 3000), vectors=st.integers(1, 6),
       matrices=st.integers(1, 9))
def test_gemv_never_beats_the_pim_roofline(rows, k, vectors, matrices):
    for name in (EDU, "lpddr6-pim"):
        d = pim_device(load_arch(name))
        c = gemv_cost(d, rows, k, "fp16", "fp16", vectors, matrices)
        assert c.latency >= c.bound_s * (1 - 1e-9)
        assert c.column_bytes == pytest.approx(rows * matrices * k * 2 * math.ceil(vectors / 1))


# ------------------------------------------------------------------------------- eligibility
def test_a_convolution_never_goes_to_pim(edu):
    g = conv()
    plan = op_on_pim(next(iter(g.ops())), edu, graph=g)
    assert not plan.ok and "convolution" in plan.reason
    r = simulate_graph(g, edu, pim="all")
    assert [o.device for o in r.ops] == ["npu"]
    assert any("conv" in w and "convolution" in w and "ran on the host NPU" in w
               for w in r.warnings)


def test_fp8_gemv_on_an_fp16_only_device_falls_back_naming_op_and_fallback():
    a = load_arch("rngd+hbm2-pim")             # RNGD runs fp8 natively, the units only fp16
    r = simulate_graph(gemm(1, 512, 512, "fp8_e4m3"), a, pim="all")
    assert r.ops[0].device == "npu"
    w = [x for x in r.warnings if "fc" in x and "fp8_e4m3" in x]
    assert w and "ran on the host NPU" in w[0] and "convert nothing" in w[0]


def test_units_read_the_matrix_as_stored():
    """The units take a weight in the dtype it has in DRAM: bf16 on lpddr6-pim (whose units
    are assumed to run bf16) runs as bf16, though its host computes bf16 as fp16; without
    bf16 units the same GEMV is refused, not converted; int4 weights run at the int4 rate."""
    a = load_arch("lpddr6-pim")
    g = gemm(1, 1024, 1024, "bf16")
    plan = op_on_pim(next(iter(g.ops())), a, graph=g)
    assert plan.ok and plan.cost.dtype == "bf16"
    b = load_arch("lpddr5x-pim")                       # FP16/FP8/INT units ([P12]), no bf16
    plan = op_on_pim(next(iter(g.ops())), b, graph=g)
    assert not plan.ok and "bf16 weights in DRAM" in plan.reason


def test_a_glue_op_is_not_a_pim_candidate(edu):
    from npusim.ir import Reduction
    op = Reduction(name="sm", func="softmax", inputs=(Tensor("a", (4, 4), FP16),),
                   outputs=(Tensor("b", (4, 4), FP16),))
    plan = op_on_pim(op, edu)
    assert isinstance(plan, PimPlan) and not plan.ok


def test_decode_attention_runs_on_pim_against_the_kv_cache():
    a = load_arch("lpddr6-pim")
    g = load_model("tiny-llama", phase="decode", batch=2, kv_len=64, dtype="fp16")
    r = simulate_graph(g, a, pim="all")
    dev = {o.name: o.device for o in r.ops}
    qk = [n for n in dev if n.endswith("qk_matmul")]
    pv = [n for n in dev if n.endswith("pv_matmul")]
    assert qk and pv and all(dev[n] == "pim" for n in qk + pv)
    rec = next(o for o in r.ops if o.name == qk[0])
    assert rec.mapping["kind"] == "attention"


# ------------------------------------------------------------------------------- placement
def test_auto_puts_a_batch_1_gemv_on_pim_and_a_large_batch_on_the_npu(edu):
    assert simulate_graph(gemm(1, 1024, 1024), edu).ops[0].device == "pim"
    assert simulate_graph(gemm(256, 1024, 1024), edu).ops[0].device == "npu"


@pytest.mark.parametrize("arch", [EDU, "lpddr6-pim"])
def test_the_crossover_batch_is_where_the_costs_cross(arch):
    a = load_arch(arch)
    b = crossover_batch(a, 1024, 1024, "fp16")
    assert b is not None and b > 1
    assert npu_gemm_seconds(a, b, 1024, 1024, "fp16") < pim_gemm_seconds(a, b, 1024, 1024,
                                                                          "fp16")
    assert npu_gemm_seconds(a, b - 1, 1024, 1024, "fp16") >= pim_gemm_seconds(a, b - 1, 1024,
                                                                              1024, "fp16")
    # and the placement agrees on both sides
    assert simulate_graph(gemm(b - 1, 1024, 1024), a).ops[0].device == "pim"
    assert simulate_graph(gemm(b, 1024, 1024), a).ops[0].device == "npu"


def _numbers(r):
    return [(o.name, o.device, o.latency_s, o.energy_total_j, o.dram_bytes) for o in r.ops]


def test_off_and_none_are_the_plain_arch():
    g = load_model("tiny-llama", phase="decode", batch=1, kv_len=32, dtype="fp16")
    with_units = load_arch("lpddr6-pim")
    plain = simulate_graph(g, load_arch("lpddr6-pim+none"))
    off = simulate_graph(g, with_units, pim="off")
    assert all(o.device == "npu" for o in plain.ops + off.ops)
    assert _numbers(plain) == _numbers(off)
    assert "by_device" not in plain.totals()
    # and PIM does change the run when allowed
    assert any(o.device == "pim" for o in simulate_graph(g, with_units, pim="all").ops)


def test_an_arch_without_units_is_unchanged_by_the_pim_keyword():
    g = gemm(1, 256, 256, "bf16")
    a = load_arch("edu")
    assert _numbers(simulate_graph(g, a)) == _numbers(simulate_graph(g, a, pim="off"))
    r = simulate_graph(g, a, pim="all")
    assert any("no enabled PIM units" in w for w in r.warnings)


def test_a_bad_pim_mode_is_refused(edu):
    with pytest.raises(NpusimError, match="pim='sometimes'"):
        simulate_graph(gemm(1, 64, 64), edu, pim="sometimes")


def _pim_run():
    a = load_arch("edu+lpddr6-pim")
    g = load_model("tiny-llama", phase="decode", batch=1, kv_len=32, dtype="fp16")
    return simulate_graph(g, a, pim="all")


@pytest.fixture(scope="module")
def pim_run():
    return _pim_run()


def test_pim_records_energy_is_the_sum_of_its_parts(pim_run):
    recs = [o for o in pim_run.ops if o.device == "pim"]
    assert recs
    for o in recs:
        assert set(o.energy_j) == {"pim_mac", "pim_column", "dram", "vector", "static"}
        assert o.energy_total_j == pytest.approx(sum(o.energy_j.values()), rel=1e-12)
        assert all(v >= 0 for v in o.energy_j.values())
    assert pim_run.energy_j == pytest.approx(sum(o.energy_total_j for o in pim_run.ops))


def test_pim_energy_parts_by_hand(edu):
    from npusim.energy import load_energy_table
    r = simulate_graph(gemm(1, 1024, 1024), edu, pim="all")
    o = r.ops[0]
    p, tb = edu.pim, load_energy_table(edu)
    m = o.mapping
    assert o.energy_j["pim_mac"] == pytest.approx(1024 * 1024 * p.energy.mac["fp16"])
    assert o.energy_j["pim_column"] == pytest.approx(1024 * 1024 * 2 * p.energy.column)
    assert o.energy_j["dram"] == pytest.approx(
        m["bank_activations"] * tb.dram_activation
        + 8 * (m["broadcast_bytes"] * tb.dram_write + m["readout_bytes"] * tb.dram_read))
    assert o.energy_j["static"] == pytest.approx((tb.static + p.energy.unit_static)
                                                 * (o.end_s - o.start_s))


def test_every_pim_op_is_no_faster_than_its_roofline_and_switches_are_charged(pim_run):
    recs = [o for o in pim_run.ops if o.device == "pim"]
    for o in recs:
        assert o.latency_s >= o.bound_s
        assert o.spans and o.spans[0].resource == "pim"
    switch = load_arch("edu+lpddr6-pim").pim.mode_switch
    charged = sum(o.mapping.get("mode_switch_s", 0.0) for o in pim_run.ops)
    # one switch per change of device among ops that take time, and one back at the end
    timed = [o.device for o in pim_run.ops if o.latency_s > 0]
    changes = sum(1 for a, b in zip(["npu"] + timed, timed + ["npu"]) if a != b)
    assert charged == pytest.approx(changes * switch)
    assert any("ops ran on the lpddr6-pim units" in w for w in pim_run.warnings)


def test_pim_and_npu_ops_never_overlap_without_a_dual_row_buffer(pim_run):
    timed = [o for o in pim_run.ops if o.latency_s > 0]
    for a, b in zip(timed, timed[1:]):
        assert b.start_s >= a.end_s - 1e-15


def test_a_dual_row_buffer_pays_no_switch_and_overlaps_independent_work():
    a = load_arch("edu+lpddr6-pim", ["pim.dual_row_buffer=true"])
    g = Graph("two")
    g.add(Contraction.einsum("bk,km->bm", {"b": 64, "k": 512, "m": 512}, ["x", "w1"], "y1",
                             FP16, name="big", roles=[Role.ACTIVATION, Role.WEIGHT]))
    g.add(Contraction.einsum("bk,km->bm", {"b": 1, "k": 512, "m": 512}, ["z", "w2"], "y2",
                             FP16, name="small", roles=[Role.ACTIVATION, Role.WEIGHT]))
    r = simulate_graph(g, a, pim="auto")
    big, small = r.ops
    assert (big.device, small.device) == ("npu", "pim")
    assert "mode_switch_s" not in small.mapping
    assert small.start_s == big.start_s                 # beside the NPU op it does not need
    assert small.latency_s == pytest.approx(max(0.0, small.end_s - big.end_s))
    assert r.latency_s < big.latency_s + (small.end_s - small.start_s)


def test_per_device_totals_sum_to_the_run(pim_run):
    t = pim_run.totals()
    by = t["by_device"]
    assert set(by) == {"npu", "pim"}
    assert sum(v["latency_s"] for v in by.values()) == pytest.approx(t["latency_s"])
    assert sum(v["energy_j"] for v in by.values()) == pytest.approx(t["energy_j"])
    assert sum(v["ops"] for v in by.values()) == t["ops"]


# ------------------------------------------------------------------------------- outputs
def test_json_has_device_on_every_op(pim_run, tmp_path):
    data = json.loads(write_json(pim_run, tmp_path / "r.json").read_text())
    assert {op["device"] for op in data["ops"]} == {"npu", "pim"}
    assert all("device" in op for op in data["ops"])
    assert set(data["totals"]["by_device"]) == {"npu", "pim"}


def test_csv_has_a_device_column(pim_run, tmp_path):
    assert "device" in csv_columns(pim_run)
    with open(write_csv(pim_run, tmp_path / "r.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["device"] for r in rows] == [o.device for o in pim_run.ops]
    assert any(float(r["energy_pim_mac_j"]) > 0 for r in rows)


def test_trace_puts_pim_ops_on_a_pim_track(pim_run):
    events = trace_dict(pim_run)["traceEvents"]
    tids = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    pim_slices = [e for e in events if e["ph"] == "X" and e["args"]["device"] == "pim"]
    assert pim_slices and {tids[e["tid"]] for e in pim_slices} == {"pim"}


# ------------------------------------------------------------------------------- summary
def test_summary_figures(edu):
    s = pim_summary(edu, 1024, 1024)
    assert s["units"] == 8 and s["ratio"] == pytest.approx(4.0)
    assert 0 < s["gemv"]["efficiency"] <= 1
    assert s["crossover_batch"] == crossover_batch(edu, 1024, 1024, "fp16")


def test_serving_costs_of_a_host_and_its_pim_system_are_never_shared():
    from npusim.workloads.stepcost import StepCostModel
    plain = StepCostModel("llama-3.1-8b", "lpddr6-pim+none", precision="int4")
    with_pim = StepCostModel("llama-3.1-8b", "lpddr6-pim", precision="int4")
    # the same step, one cost each: PIM's is well below plain LPDDR6's (1.9x when written)
    assert with_pim.step([], [1024]).seconds < 0.7 * plain.step([], [1024]).seconds


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 8), k=st.integers(1, 2048), m=st.integers(1, 2048))
def test_every_pim_op_of_a_run_is_no_faster_than_its_roofline(batch, k, m):
    a = load_arch(EDU)
    r = simulate_graph(gemm(batch, k, m), a, pim="all")
    o = r.ops[0]
    assert o.device == "pim"
    assert o.latency_s >= o.bound_s
    assert o.compute_s == pytest.approx(batch * k * m / pim_device(a).peak_macs["fp16"])
    assert o.memory_s == pytest.approx(k * m * 2 / pim_device(a).internal_bandwidth)


def test_an_epilogue_of_a_pim_contraction_runs_on_the_host_as_its_own_op(edu):
    from npusim.ir import Elementwise
    g = gemm(1, 512, 512)
    y = next(iter(g.ops())).outputs[0]
    g.add(Elementwise(name="bias", func="add", op_type="Add",
                      inputs=(y, Tensor("b", (512,), FP16, Role.WEIGHT)),
                      outputs=(Tensor("z", (1, 512), FP16),)))
    fused = simulate_graph(g, edu, pim="off")
    assert fused.ops[1].mapping.get("fused_into") == "fc" and fused.ops[1].latency_s == 0
    r = simulate_graph(g, edu, pim="all")
    fc, bias = r.ops
    assert fc.device == "pim" and bias.device == "npu"
    assert "fused_into" not in bias.mapping and bias.latency_s > 0


def test_auto_says_why_contractions_could_not_go_to_pim():
    """RNGD runs bf16 natively; HBM2-PIM's units only fp16 ([P1]): nothing can move."""
    g = gemm(1, 1024, 1024, "bf16")
    r = simulate_graph(g, load_arch("rngd+hbm2-pim"))
    assert r.ops[0].device == "npu"
    assert any("0 of 1 ops ran on the hbm2-pim units" in w and "bf16 weights" in w
               for w in r.warnings)


def test_loop_order_broadcasts_each_chunk_once_where_rows_hold_no_accumulators():
    """GDDR6-AiM keeps one result per unit (accumulators 1): streaming rows outermost would
    broadcast the whole input again for every row, so the chunk-outer order wins: the 8 KiB
    input (4096 bf16) crosses each channel's bus once, and every row's partial sum is read
    once per 2-KiB chunk (4 chunks)."""
    from npusim.engine.pim import gemv_cost, pim_device
    dev = pim_device(load_arch("gddr6-aim"))
    c = gemv_cost(dev, 4096, 4096, "bf16", "bf16")
    assert c.mapping["loop_order"] == "chunks"
    assert c.broadcast_bytes == dev.channels * 8192
    assert c.mapping["partials"] == 4                    # one bf16 result per chunk
    assert c.host_vector_ops == 4096 * 3                 # the host adds 4 partials per row
    # HBM2-PIM holds 8 rows per unit at once: every chunk is broadcast once per group
    # either way, so the row-outer order (one read-out per row) stays
    h = gemv_cost(pim_device(load_arch("hbm2-pim")), 4096, 4096, "fp16", "fp16")
    assert h.mapping["loop_order"] == "rows"
