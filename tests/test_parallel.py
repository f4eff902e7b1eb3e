"""Parallel layouts of the serving cost model: tensor x pipeline parallelism, the automatic
choice on PCIe-linked cards, the ``--parallel`` option and the link sensitivity helper."""
from __future__ import annotations

import functools
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from npusim.arch import load_arch
from npusim.errors import ModelError, NpusimError
from npusim.workloads.sensitivity import link_sensitivity
from npusim.workloads.stepcost import ParallelLayout, StepCostModel, stage_layers

MODEL = "tiny-llama"   # 2 layers, 4 heads, 2 KV heads, hidden 64


def clean_error(code, err) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


@functools.lru_cache(maxsize=None)
def pcie_edu():
    """The edu arch with its link called PCIe, so pipeline layouts are candidates."""
    return load_arch("edu", {"link.kind": "pcie_gen5_x16_p2p"})


@functools.lru_cache(maxsize=None)
def model(arch: str = "edu", **kw) -> StepCostModel:
    a = pcie_edu() if arch == "pcie" else arch
    return StepCostModel(MODEL, a, **kw)


def with_link(arch, **fields):
    return replace(arch, link=replace(arch.link, **fields))


# -- the layout and its split ---------------------------------------------------------------
@pytest.mark.parametrize("text, tp, pp", [("tp=4,pp=2", 4, 2), ("pp=2", 1, 2), ("tp=8", 8, 1),
                                          (" pp = 3 , tp = 2 ", 2, 3)])
def test_parse(text, tp, pp):
    assert ParallelLayout.parse(text) == ParallelLayout(tp, pp)
    assert ParallelLayout(tp, pp).chips == tp * pp
    assert ParallelLayout.parse(str(ParallelLayout(tp, pp))) == ParallelLayout(tp, pp)


@pytest.mark.parametrize("text", ["", "foo", "tp=4,pp", "tp=0", "tp=-1", "tp=2.5", "dp=2",
                                  "tp=2,tp=2", "tp=x", "tp=2;pp=2"])
def test_parse_refuses(text):
    with pytest.raises(ModelError, match="tp=N,pp=M"):
        ParallelLayout.parse(text)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="tp=,0123456789x -.", max_size=14))
def test_fuzz_parse_is_a_layout_or_a_clean_error(text):
    try:
        lay = ParallelLayout.parse(text)
    except ModelError as e:
        assert "\n" not in str(e)
    else:
        assert lay.tp >= 1 and lay.pp >= 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(1, 64))
def test_stage_split_is_contiguous_and_even(layers, pp):
    if pp > layers:
        return
    stages = stage_layers(layers, pp)
    assert [i for r in stages for i in r] == list(range(layers))
    sizes = [len(r) for r in stages]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


# -- exact equalities with the tensor-parallel model ---------------------------------------
def _by_hand(m: StepCostModel, tp: int, batch: int, kv: int) -> float:
    """A decode step on grid points, summed from the engine's own part graphs."""
    from npusim.engine.simulate import simulate_graph
    t = 0.0
    for layer, count in m.layer_groups:
        for part, phase, b, seq, k in (("dense", "prefill", 1, batch, None),
                                       ("attention", "decode", batch, None, kv)):
            g = m._graph(part, phase, b, seq, k, layer, tp=tp)
            t += count * simulate_graph(g, m.arch).latency_s
    g = m._graph("head", "prefill", batch, batch, None, None, tp=tp)
    return t + simulate_graph(g, m.arch).latency_s + m.arch.step_overhead


@pytest.mark.parametrize("tp", [1, 2])
def test_tensor_parallel_layout_is_todays_model(tp):
    old = model(chips=tp)
    new = model(parallel=f"tp={tp},pp=1")
    assert old.parallel == new.parallel == ParallelLayout(tp, 1)
    for prefill, decode in (([(16, 0)], []), ([], [32, 32]), ([(7, 9)], [40, 3, 100])):
        assert old.step(prefill, decode) == new.step(prefill, decode)
    assert old.kv_capacity_tokens == new.kv_capacity_tokens
    assert old.weight_bytes_per_chip == new.weight_bytes_per_chip
    # batch 2 at 32 cached tokens lies on the cost grids: no interpolation
    assert new.step([], [32, 32]).seconds == pytest.approx(_by_hand(new, tp, 2, 32), rel=1e-12)


def test_transfer_by_hand():
    m = model("pcie", parallel="tp=1,pp=2")
    link = m.arch.link
    # 10 tokens x hidden 64 x 2 bytes (bf16 activations) over the link, plus one hop
    assert m.transfer_seconds(10) == pytest.approx(link.latency + 10 * 64 * 2 / link.bandwidth)


def test_one_user_pays_every_stage_and_the_transfers():
    m = model("pcie", parallel="tp=1,pp=2")
    decode = [100]
    mb, stages = m.stage_times([], decode)
    assert mb == 1 and len(stages) == 2
    total = sum(t for t, _ in stages)
    step = m.step([], decode).seconds
    assert step >= total + m.transfer_seconds(1)
    # exactly: both stages, one transfer, the sampled token's way back, the step overhead
    expect = total + m.transfer_seconds(1) + m.arch.link.latency + m.arch.step_overhead
    assert step == pytest.approx(expect, rel=1e-12)


def test_full_load_is_bounded_by_the_slowest_stage():
    m = model("pcie", parallel="tp=1,pp=2")
    decode = [64] * 32
    mb, stages = m.stage_times([], decode)
    assert mb == 2
    step = m.step([], decode).seconds - m.arch.step_overhead
    assert step >= mb * max(t for t, _ in stages)
    assert step >= sum(t for t, _ in stages) + m.transfer_seconds(16)


def test_pipeline_holds_a_stage_per_chip():
    one, pp = model("pcie", chips=1), model("pcie", parallel="tp=1,pp=2")
    assert pp.describe()["pipeline_layers"] == "1+1"
    assert one.weight_bytes_per_chip / 2 <= pp.weight_bytes_per_chip < one.weight_bytes_per_chip
    full1, _ = one.kv_bytes_per_token()
    full2, _ = pp.kv_bytes_per_token()
    assert full2 == full1 / 2
    assert pp.kv_capacity_tokens > one.kv_capacity_tokens


@functools.lru_cache(maxsize=None)
def at_bandwidth(lay: str, factor: float) -> StepCostModel:
    base = pcie_edu()
    return StepCostModel(MODEL, with_link(base, bandwidth=base.link.bandwidth * factor),
                         parallel=lay)


@settings(max_examples=5, deadline=None)
@given(lay=st.sampled_from(["tp=2,pp=1", "tp=1,pp=2", "tp=2,pp=2"]),
       factor=st.sampled_from([2.0, 8.0]), users=st.sampled_from([1, 3, 24]))
def test_more_bandwidth_never_slows_a_step(lay, factor, users):
    slow, fast = at_bandwidth(lay, 1.0), at_bandwidth(lay, factor)
    for prefill, decode in (([(64, 0)], []), ([], [100] * users)):
        assert fast.step(prefill, decode).seconds <= slow.step(prefill, decode).seconds
    # no layout puts less than an even share of the weights on its fullest chip
    single = model("pcie", chips=1).weight_bytes_per_chip
    assert slow.weight_bytes_per_chip * slow.chips >= single * (1 - 1e-12)


def test_energy_is_every_chips():
    m = model("pcie", parallel="tp=2,pp=2")
    r = m.step([], [50, 50, 50])
    # at least every chip's static power over the step
    assert r.energy_j >= m.static_power_w * r.seconds * (1 - 1e-12)
    assert m.static_power_w == pytest.approx(4 * model("pcie", chips=1).static_power_w)


# -- the automatic choice --------------------------------------------------------------------
def test_auto_picks_the_fastest_layout_that_fits():
    m = model("pcie", chips=2)
    scores = {str(lay): m._score(lay) for lay in m._candidates(2)}
    assert set(scores) == {"tp=2,pp=1", "tp=1,pp=2"}
    assert scores[str(m.parallel)] == min(scores.values())
    assert "fastest that fits" in m.parallel_why and "tp=1,pp=2" in m.parallel_why
    assert m.describe()["parallel"] == str(m.parallel)


@pytest.mark.parametrize("latency, want", [(1e-3, "tp=1,pp=2"), (0.0, "tp=2,pp=1")])
def test_auto_follows_the_link(latency, want):
    # a slow hop costs tensor parallelism 4 per layer per step (2 all-reduces of 2 hops on 2
    # chips) and the pipeline 2 per step (one transfer, the tokens back): the pipeline wins;
    # a free hop leaves each chip half of every layer's work: tensor parallelism wins
    m = StepCostModel(MODEL, with_link(pcie_edu(), latency=latency), chips=2)
    assert str(m.parallel) == want


def test_nvlink_keeps_tensor_parallelism():
    m = StepCostModel(MODEL, "h100", chips=2)
    assert m.parallel == ParallelLayout(2, 1)
    assert "nvlink4" in m.parallel_why
    assert model("edu", chips=2).parallel == ParallelLayout(2, 1)  # a generic link: TP too


def test_auto_takes_one_chip_when_it_fits():
    m = model("pcie")
    assert m.parallel == ParallelLayout(1, 1) and m.parallel_why == "one chip"


@pytest.mark.parametrize("kw, match", [
    (dict(chips=4, parallel="tp=3,pp=2"), "tp x pp = 6 chips, but --chips is 4"),
    (dict(parallel="tp=3"), "attention heads"),
    (dict(parallel="tp=1,pp=3"), "too few for pp=3"),
    (dict(parallel="pp=2,tp=4,"), "tp=N,pp=M"),
])
def test_layout_errors(kw, match):
    with pytest.raises(NpusimError, match=match):
        StepCostModel(MODEL, "edu", **kw)


def test_kv_heads_rule():
    # tiny-gptj: 4 heads, 4 KV heads; tiny-llama: 2 KV heads, so tp=4 replicates them
    assert model(parallel="tp=4").parallel.tp == 4


# -- records and the command line ------------------------------------------------------------
def test_serving_records_say_the_layout():
    from npusim.workloads.serving import Scenario, simulate_serving
    m = model("pcie", parallel="tp=1,pp=2")
    s = simulate_serving(m, Scenario(32, 8, users=2)).summary
    assert s["parallel"] == "tp=1,pp=2" and s["chips"] == 2


@pytest.mark.parametrize("argv, match", [
    (["kperf", "--arch", "edu", "--model", MODEL, "--chips", "4", "--parallel", "tp=3,pp=2",
      "--input-lens", "32", "--output-lens", "8", "--users", "1"], "--chips is 4"),
    (["kperf", "--arch", "edu", "--model", MODEL, "--parallel", "foo", "--input-lens", "32",
      "--output-lens", "8", "--users", "1"], "tp=N,pp=M"),
    (["run", MODEL, "--arch", "edu", "--parallel", "foo"], "tp=N,pp=M"),
    (["run", MODEL, "--arch", "edu", "--parallel", "tp=1,pp=9"], "too few for pp=9"),
])
def test_cli_errors(cli, tmp_path, argv, match):
    code, out, err = cli(*argv, *(["--out", str(tmp_path)] if argv[0] == "kperf" else []))
    assert clean_error(code, err) and match in err


def test_cli_kperf_and_run_say_the_layout(cli, tmp_path):
    code, out, err = cli("kperf", "--arch", "edu", "--model", MODEL, "--parallel", "tp=1,pp=2",
                         "--input-lens", "32", "--output-lens", "8", "--users", "1",
                         "--precision", "bf16", "--out", str(tmp_path), "--summary-only")
    assert code == 0, err
    import csv
    rows = list(csv.DictReader((tmp_path / "kperf.csv").open()))
    assert rows and all(r["parallel"] == "tp=1,pp=2" for r in rows)
    code, out, err = cli("run", MODEL, "--arch", "edu", "--parallel", "tp=2,pp=1", "--top", "1",
                         "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    assert "parallel tp=2,pp=1" in out
    import json
    meta = json.loads((tmp_path / "r.json").read_text())["meta"]
    assert meta["parallel"] == "tp=2,pp=1" and meta["system_chips"] == 2


# -- link sensitivity ------------------------------------------------------------------------
def test_link_sensitivity_moves_the_right_way():
    r = link_sensitivity(MODEL, pcie_edu(), chips=2, users=2, rechoose=False)
    by = {(c["field"], c["factor"]): c["step_s"] for c in r["cases"]}
    assert by[("latency", 0.5)] <= r["step_s"] <= by[("latency", 2.0)]
    assert by[("bandwidth", 2.0)] <= r["step_s"] <= by[("bandwidth", 0.5)]
    assert r["swing"] == max(abs(c["change"]) for c in r["cases"])
    r = link_sensitivity(MODEL, pcie_edu(), chips=2, factors=(4.0,), fields=("latency",))
    assert r["cases"][0]["auto_parallel"] in ("tp=2,pp=1", "tp=1,pp=2")


def test_link_sensitivity_refuses_a_chip_without_link():
    with pytest.raises(NpusimError, match="no chip-to-chip link"):
        link_sensitivity(MODEL, replace(load_arch("edu"), link=None), chips=1)


def test_the_kv_a_run_needs_decides_the_fit():
    one = model("pcie")
    need = one.kv_capacity_tokens + 1
    m = StepCostModel(MODEL, pcie_edu(), kv_tokens=need)
    assert m.chips == 2 and m.kv_capacity_tokens >= need
