"""The K-Perf default chip count, and the chips, per-chip throughput and KV headroom shown
beside the system figures.

The chooser is tested on fake cost models whose KV capacities are given by hand, and on
tiny-llama with the rngd preset shrunk to 1 MB of DRAM, where the KV figures are computed by
hand from StepCostModel's accounting: capacity = floor((0.9 x 1,000,000 B - weights per chip) /
KV bytes per token per chip), with KV bytes per token = 2 layers x 2 (K, V) x max(1, 2 KV heads /
chips) x 16 head dims x 2 B = 256 B on one chip and 128 B on two or four.
"""
from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from npusim.errors import ArchError, CapacityError, NpusimError
from npusim.workloads import kperf as kp
from npusim.workloads.deployments import (CHIP_COUNTS, DEPLOYMENTS, SERVER_CHIPS, Deployment,
                                          choose_chips, covers, deployment, kv_demand_tokens)

TINY = "tiny-llama"
SMALL = ["dram.capacity=1 MB"]           # the schema's smallest DRAM
MEMORY_UTILIZATION = 0.9                  # stepcost: vLLM's default share of device memory


def clean_error(code, err) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def fake(capacity):
    """A cost model whose KV capacity is ``capacity(chips, precision)``; 0 means the weights
    do not fit (CapacityError), None that the arch cannot form that many chips (ArchError)."""
    def cost_model(model, arch, chips, precision):
        held = capacity(chips, precision)
        if held is None:
            raise ArchError(f"{arch.name}: no link for {chips} chips")
        if held <= 0:
            raise CapacityError(f"{model} does not fit {chips} x {arch.name}")
        return SimpleNamespace(kv_capacity_tokens=held, chips=chips)
    return cost_model


def arch(name="x", overrides=()):
    return SimpleNamespace(name=name, overrides=overrides)


PER_CHIP = {"bf16": 1_000, "fp8": 2_000}   # KV tokens per chip, by hand


def linear(n, p):
    return PER_CHIP[p] * n


# --- the chooser on hand-made capacities ----------------------------------------------------

def test_kv_rule_takes_the_fewest_chips_that_hold_the_largest_users():
    # 10 users x 1,000 tokens = 10,000 KV tokens: bf16 holds 1,000 per chip, so 16 would be
    # needed; fp8 holds 2,000 per chip: 8 (5 is not a power of two)
    c = choose_chips("m", arch(), ["fp8"], users=10, tokens=1000, cost_model=fake(linear))
    assert (c.chips, c.rule) == (8, "kv")
    c = choose_chips("m", arch(), ["fp8"], users=4, tokens=1000, cost_model=fake(linear))
    assert (c.chips, c.rule) == (2, "kv")             # 4,000 tokens: 2 x 2,000
    assert c.reason == "KV for 4 users x 1000 tokens (4,000 tokens): 2 chips hold 4,000"


def test_one_count_for_every_precision_the_widest_binds():
    # 3,000 tokens: fp8 alone fits 2 chips (4,000), bf16 needs 4 (4,000); together 4
    alone = choose_chips("m", arch(), ["fp8"], users=3, tokens=1000, cost_model=fake(linear))
    both = choose_chips("m", arch(), ["fp8", "bf16"], users=3, tokens=1000,
                        cost_model=fake(linear))
    assert (alone.chips, both.chips) == (2, 4)


def test_heads_that_a_count_cannot_share_are_skipped():
    # 6 heads: only 1 and 2 divide them, so 3,000 tokens of bf16 end on the server rule at 2
    c = choose_chips("m", arch(), ["bf16"], users=3, tokens=1000, cost_model=fake(linear),
                     heads=6)
    assert (c.chips, c.rule) == (2, "server")


def test_short_of_the_demand_one_server_is_taken_and_says_how_short():
    # 100 users x 1,000 tokens = 100,000; 8 chips of bf16 hold 8,000 (8%)
    c = choose_chips("m", arch(), ["bf16"], users=100, tokens=1000, cost_model=fake(linear))
    assert (c.chips, c.rule) == (SERVER_CHIPS, "server")
    assert "8 chips hold 8,000 (8%)" in c.reason and "100,000 tokens" in c.reason


def test_weights_beyond_one_server_take_the_fewest_that_hold_them():
    # the weights fit from 32 chips on (each holds 500 tokens beyond them)
    cap = fake(lambda n, p: 500 * n if n >= 32 else 0)
    c = choose_chips("m", arch(), ["bf16"], users=100, tokens=1000, cost_model=cap)
    assert (c.chips, c.rule) == (32, "weights")
    assert "32 chips hold them and 16,000 KV tokens" in c.reason


@pytest.mark.parametrize("max_chips", [8, CHIP_COUNTS[-1]])
def test_a_clear_error_when_even_the_cap_cannot_hold_the_weights(max_chips):
    with pytest.raises(CapacityError, match=f"even {max_chips} chips cannot hold") as e:
        choose_chips("m", arch(), ["bf16"], users=1, tokens=100,
                     cost_model=fake(lambda n, p: 0), max_chips=max_chips)
    assert "\n" not in str(e.value)


def test_no_link_stops_at_one_chip():
    cap = fake(lambda n, p: 5_000 if n == 1 else None)
    c = choose_chips("m", arch(), ["bf16"], users=10, tokens=1000, cost_model=cap)
    assert c.chips == 1 and "1 chip holds 5,000" in c.reason


def test_a_precision_the_arch_cannot_run_is_left_out():
    cost = fake(linear)

    def cost_model(model, a, n, p):
        if p == "int4":
            raise ArchError("x: int4 weights need a dequantising path")
        return cost(model, a, n, p)
    c = choose_chips("m", arch(), ["int4", "fp8"], users=4, tokens=1000, cost_model=cost_model)
    assert c.chips == 2
    none = choose_chips("m", arch(), ["int4"], users=4, tokens=1000, cost_model=cost_model)
    assert none.chips is None


# --- the documented deployments -------------------------------------------------------------

TABLE = (Deployment("x", "m", 4, "bf16", "test table T1"),)


def test_the_documented_deployment_wins_over_the_kv_rule():
    # the KV rule would give 2 chips; the deployment says 4
    c = choose_chips("m", arch(), ["bf16", "fp8"], users=2, tokens=1000,
                     cost_model=fake(linear), table=TABLE)
    assert (c.chips, c.rule) == (4, "deployment") and "T1" in c.reason


@pytest.mark.parametrize("why, kwargs", [
    ("a wider precision than the deployment's", dict(precisions=["fp32"])),
    ("a modified arch", dict(arch=arch(overrides=("dram.capacity=1 TB",)))),
    ("weights that do not fit its chips", dict(capacity=lambda n, p: 0 if n < 8 else 9_999)),
    ("chips that hold no whole request", dict(capacity=lambda n, p: 999 if n == 4 else 5_000)),
])
def test_the_documented_deployment_is_not_used_for(why, kwargs):
    capacity = kwargs.get("capacity", lambda n, p: 1_000 * n)
    c = choose_chips("m", kwargs.get("arch", arch()), kwargs.get("precisions", ["bf16"]),
                     users=2, tokens=1000, cost_model=fake(capacity), table=TABLE)
    assert c.rule != "deployment", why


def test_the_shipped_table_is_well_formed():
    from importlib.resources import files
    from npusim.frontend.llm import builtin_models, model_spec
    archs = {p.name.removesuffix(".yaml") for p in files("npusim.archs").iterdir()}
    seen = set()
    for d in DEPLOYMENTS:
        assert (d.arch, d.model) not in seen
        seen.add((d.arch, d.model))
        assert d.model in builtin_models(), d
        assert d.arch in archs, d
        assert d.chips in CHIP_COUNTS and model_spec(d.model).heads % d.chips == 0, d
        assert covers(d, d.precision) and d.source.strip(), d
    assert deployment("rngd", "llama-3.3-70b").chips == 4          # rngd.md S16
    assert deployment("rngd", "llama-3.1-8b").chips == 1           # rngd.md S16


def test_kv_demand_is_users_times_input_plus_output():
    assert kv_demand_tokens(250, 2048, 2048) == 250 * 4096


# --- the chooser on a real cost model, figures by hand ---------------------------------------

@pytest.fixture(scope="module")
def small_rngd():
    from npusim.arch import load_arch
    return load_arch("rngd", SMALL)


def hand_capacity(weight_bytes: float, chips: int) -> int:
    kv_per_token = 2 * 2 * max(1, 2 // chips) * 16 * 2
    return int((MEMORY_UTILIZATION * 1e6 - weight_bytes) // kv_per_token)


@pytest.fixture(scope="module")
def tiny_models(small_rngd):
    from npusim.workloads.stepcost import StepCostModel
    return {(p, n): StepCostModel(TINY, small_rngd, chips=n, precision=p)
            for p in ("bf16", "fp8") for n in (1, 2)}


def test_stepcost_kv_figures_match_the_hand_computation(tiny_models):
    for (p, n), m in tiny_models.items():
        assert m.kv_bytes_per_token() == (2 * 2 * max(1, 2 // n) * 16 * 2, 0)
        assert m.kv_capacity_tokens == hand_capacity(m.weight_bytes_per_chip, n)


def test_real_cost_model_one_count_for_both_precisions(tiny_models, small_rngd):
    bf16_1 = hand_capacity(tiny_models["bf16", 1].weight_bytes_per_chip, 1)
    fp8_1 = hand_capacity(tiny_models["fp8", 1].weight_bytes_per_chip, 1)
    assert bf16_1 < 6 * 500 <= fp8_1          # 2,681 < 3,000 <= 3,033
    choice = kp.default_chips(TINY, small_rngd, ["fp8"], [6], [490], [10])
    assert choice.chips == 1
    choice = kp.default_chips(TINY, small_rngd, ["bf16", "fp8"], [1, 6], [490], [10])
    assert choice.chips == 2 and choice.rule == "kv"
    assert choice.reason == (f"KV for 6 users x 500 tokens (3,000 tokens): 2 chips hold "
                             f"{hand_capacity(tiny_models['bf16', 2].weight_bytes_per_chip, 2):,}")


# --- kperf: one count across precisions, --chips, the records and the sheet ------------------

MATRIX = dict(input_lens=(490,), output_lens=(10,), users=(6,))


@pytest.fixture(scope="module")
def auto_run():
    return kp.kperf("rngd", TINY, precisions=("bf16", "fp8"), overrides=SMALL, **MATRIX)


def test_kperf_default_gives_every_precision_the_same_chips(auto_run):
    assert [(r["precision"], r["chips"], r["chips_rule"]) for r in auto_run.runs] == [
        ("bf16", 2, "kv"), ("fp8", 2, "kv")]
    assert {r["chips"] for r in auto_run.records} == {2}
    assert auto_run.runs[0]["chips_reason"].startswith("KV for 6 users x 500 tokens")


def test_per_precision_keeps_the_old_rule(small_rngd):
    from npusim.workloads.stepcost import StepCostModel
    r = kp.kperf("rngd", TINY, chips="per-precision", precisions=("fp8",), overrides=SMALL,
                 input_lens=(16,), output_lens=(8,), users=(1,))
    assert r.runs[0]["chips"] == StepCostModel(TINY, small_rngd, precision="fp8").chips
    assert r.runs[0]["chips_rule"] == "per-precision"


def test_chips_given_override_the_choice():
    r = kp.kperf("rngd", TINY, chips=4, precisions=("bf16", "fp8"), overrides=SMALL,
                 input_lens=(16,), output_lens=(8,), users=(1,))
    assert [(x["chips"], x["chips_rule"], x["chips_reason"]) for x in r.runs] == [
        (4, "given", "--chips 4")] * 2


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.text(max_size=12), st.integers(-5, 5), st.booleans(), st.floats()))
def test_chips_argument_is_a_count_a_rule_or_one_clear_error(value):
    try:
        out = kp._chips_arg(value)
    except NpusimError as e:
        assert "\n" not in str(e) and "--chips" in str(e)
        return
    # a count's range is checked with the matrix (check_sizes), before any cost model
    assert out in kp.CHIP_RULES or (isinstance(out, int) and not isinstance(out, bool))


def test_records_carry_per_chip_throughput_and_kv_headroom(auto_run):
    for r in auto_run.records:
        assert r["decode_tok_s_per_chip"] == pytest.approx(r["decode_tok_s"] / r["chips"])
        assert r["kv_demand_tokens"] == r["users"] * (r["input_len"] + r["output_len"])
        assert r["kv_headroom"] == pytest.approx(r["kv_capacity_tokens"] / r["kv_demand_tokens"])
    s = auto_run.summary()[0]
    assert s["system"] == "2 x rngd*" and s["chips_reason"] == auto_run.runs[0]["chips_reason"]
    assert s["kv_headroom_min"] == pytest.approx(s["kv_capacity_tokens"] / 3000)


@pytest.fixture(scope="module")
def written(auto_run, tmp_path_factory):
    from npusim.report.kperf import write_csv, write_xlsx
    out = tmp_path_factory.mktemp("kperf-chips")
    return [write_xlsx(auto_run, out / "k.xlsx"), write_csv(auto_run, out / "k.csv")], out


def test_csv_has_the_new_columns_with_consistent_numbers(written):
    paths, _ = written
    with open(paths[1], newline="") as f:
        rows = list(csv.DictReader(f))
    for col in ("chips", "decode_tok_s_per_chip", "kv_capacity_tokens", "kv_demand_tokens",
                "kv_headroom"):
        assert col in rows[0], col
    for r in rows:
        assert float(r["decode_tok_s_per_chip"]) == pytest.approx(
            float(r["decode_tok_s"]) / int(r["chips"]), rel=1e-12)
        assert float(r["kv_headroom"]) == pytest.approx(
            int(r["kv_capacity_tokens"]) / int(r["kv_demand_tokens"]), rel=1e-12)


def test_xlsx_has_the_new_columns_and_names_the_systems(written):
    import openpyxl
    paths, _ = written
    wb = openpyxl.load_workbook(paths[0])
    rows = list(wb[f"{TINY} bf16"].iter_rows(values_only=True))
    head = list(rows[0])
    for col in ("chips", "decode per chip (tok/s)", "KV capacity (tok)", "KV demand (tok)",
                "KV headroom (x)"):
        assert col in head, col
    for row in rows[1:]:
        r = dict(zip(head, row))
        assert r["decode per chip (tok/s)"] == pytest.approx(r["decode (tok/s)"] / r["chips"])
        assert r["KV headroom (x)"] == pytest.approx(r["KV capacity (tok)"] / r["KV demand (tok)"])
    summary = list(wb["summary"].iter_rows(values_only=True))
    s = dict(zip(summary[0], summary[1]))
    assert s["system"] == "2 x rngd*" and s["chips chosen because"].startswith("KV for 6 users")


def test_graph_labels_name_the_system_and_its_headroom(auto_run):
    from npusim.report.kperf import series
    labels = [s["label"] for s in series(auto_run)]
    # "*": an arch with overrides
    assert labels[0].startswith("2 x rngd* bf16, KV ") and labels[0].endswith("x of 6 x 500 tok")


def test_a_measured_per_gpu_column_is_a_per_chip_metric():
    from npusim.validate.kperf_sheet import parse_header
    for header in ("decode per GPU (tok/s)", "decode per chip (tok/s)",
                   "decode_tok_s_per_chip"):
        assert parse_header(header) == ("decode_tok_s_per_chip", 1.0), header


def test_ratios_name_the_reference_system():
    from npusim.report.kperf import reference_system
    rows = [{"arch": "h100", "chips": 8}, {"arch": "h100", "chips": 8}, {"arch": "rngd",
                                                                          "chips": 4}]
    assert reference_system(rows, "h100") == "8 x h100"


# --- the CLI --------------------------------------------------------------------------------

def test_cli_prints_the_chips_and_why_and_draws_per_chip(cli, tmp_path):
    from npusim.report.kperf import PNG_PER_CHIP
    code, out, err = cli("kperf", "--arch", "rngd", "--model", TINY, "--chips", "2",
                         "--input-lens", "16", "--output-lens", "8", "--users", "1",
                         "--summary-only", "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0, err
    assert "chips: 2 x rngd (--chips 2)" in out
    assert (tmp_path / "o" / PNG_PER_CHIP).stat().st_size > 10_000


@pytest.mark.parametrize("chips", ["two", "0", "-1", "auto-ish", "1.5", ""])
def test_cli_bad_chips_is_one_clear_error(cli, tmp_path, chips):
    code, _, err = cli("kperf", "--model", TINY, "--chips", chips, "--input-lens", "16",
                       "--output-lens", "8", "--users", "1", "--out", str(tmp_path))
    assert clean_error(code, err) and "--chips" in err


def test_cli_model_too_big_for_any_count_is_one_clear_error(cli, tmp_path):
    code, _, err = cli("kperf", "--arch", "rngd", "--model", "llama-3.1-8b", "--set", SMALL[0],
                       "--input-lens", "16", "--output-lens", "8", "--users", "1",
                       "--out", str(tmp_path), "--no-progress")
    assert clean_error(code, err) and "cannot hold its weights" in err
