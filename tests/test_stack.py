"""The serving stack's host time (npusim/workloads/stack.py): hand-computed runs, properties,
bad stack files, the validation rows it was fitted on, and the kperf option."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.errors import NpusimError
from npusim.workloads.serving import Scenario, ServingConfig, simulate_serving
from npusim.workloads.stack import ServingStack, load_stack, stack_names


@dataclass(frozen=True)
class _Cost:
    seconds: float
    energy_j: float


class _Fixed:
    """Every step takes 10 ms and 1 J (100 W), on one chip whose static power is 20 W."""

    kv_capacity_tokens, kv_block_tokens, chips = 4096, 16, 1
    static_power_w, tdp_w = 20.0, None

    def step(self, prefill, decode):
        return _Cost(0.01, 1.0)


class _Pair(_Fixed):
    chips = 2


def _stack_file(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _run(cost, stack, users=4):
    return simulate_serving(cost, Scenario(16, 5, users=users),
                            ServingConfig(stack=stack)).summary


def test_hand_computed_host_time(tmp_path):
    # 4 users, prompts of 16 tokens prefilled in one step, then 4 decode steps: every step
    # schedules all 4 sequences, so each takes 10 ms + 4 x 2 ms = 18 ms and 1 J + 8 ms x 20 W
    # = 1.16 J. Per round: 5 steps = 90 ms and 20 output tokens.
    stack = _stack_file(tmp_path, "description: test engine\nper_sequence: 2 ms\n")
    s = _run(_Fixed(), stack)
    assert s["tpot_p50_s"] == pytest.approx(0.018)
    assert s["ttft_p50_s"] == pytest.approx(0.018)
    assert s["decode_tok_s"] == pytest.approx(4 / 0.018)
    assert s["avg_power_w"] == pytest.approx(1.16 / 0.018)
    assert s["energy_per_token_j"] == pytest.approx(1.16 / 4)
    base = _run(_Fixed(), None)
    assert base["tpot_p50_s"] == pytest.approx(0.010)
    assert base["avg_power_w"] == pytest.approx(100.0)


def test_multi_chip_time_only_on_several_chips(tmp_path):
    stack = _stack_file(tmp_path, "description: test\nstep: 1 ms\nmulti_chip: 5 ms\n")
    assert _run(_Fixed(), stack)["tpot_p50_s"] == pytest.approx(0.011)
    assert _run(_Pair(), stack)["tpot_p50_s"] == pytest.approx(0.016)


def test_none_is_no_host_time():
    assert load_stack("none") is None and load_stack(None) is None
    assert _run(_Fixed(), "none") == _run(_Fixed(), None)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.floats(0, 5), seq=st.floats(0, 5), multi=st.floats(0, 5),
       users=st.integers(1, 12), chips=st.sampled_from([_Fixed, _Pair]))
def test_host_time_never_helps(step, seq, multi, users, chips):
    """Host time never raises throughput; power falls toward static power, never below it,
    and energy per token never falls (the chips wait at static power)."""
    stack = ServingStack("t", "t", step * 1e-3, seq * 1e-3, multi * 1e-3)
    cost = chips()
    s, base = _run(cost, stack, users), _run(cost, None, users)
    assert s["decode_tok_s"] <= base["decode_tok_s"] * (1 + 1e-9)
    assert cost.static_power_w * (1 - 1e-9) <= s["avg_power_w"]   # the whole system's
    assert s["avg_power_w"] <= base["avg_power_w"] * (1 + 1e-9)
    assert s["energy_per_token_j"] >= base["energy_per_token_j"] * (1 - 1e-9)


def test_shipped_presets_load():
    assert "vllm-0.5" in stack_names()
    s = load_stack("vllm-0.5")
    assert s.step_s == 0 and 0 < s.per_sequence_s < 1e-3 and 0 < s.multi_chip_s < 0.1
    assert set(s.fitted_rows) == {"V20", "V44"}


@pytest.mark.parametrize("text, needle", [
    ("description: x\nper_sequence: 0.4\n", "per_sequence: 0.4 is a number without a unit"),
    ("description: x\nper_sequence: 5 W\n", "per_sequence"),
    ("description: x\nstep: -1 ms\n", "step"),
    ("description: x\nstep: 20 s\n", "outside 0 s to 10 s"),
    ("description: x\nper_seq: 1 ms\n", "unknown key 'per_seq'"),
    ("per_sequence: 1 ms\n", "description"),
    ("- a\n- b\n", "must be a mapping"),
    ("description: x\nfitted_rows: V1\n", "fitted_rows"),
])
def test_bad_stack_files(tmp_path, text, needle):
    path = _stack_file(tmp_path, text)
    with pytest.raises(NpusimError) as e:
        load_stack(path)
    msg = str(e.value)
    assert needle in msg and "s.yaml" in msg and "\n" not in msg


def test_unknown_preset_lists_presets():
    with pytest.raises(NpusimError, match="vllm-0.5"):
        load_stack("vllm-0.3")


def test_config_rejects_non_text():
    with pytest.raises(NpusimError, match="ServingConfig.stack"):
        ServingConfig(stack=3)


def _clean_error(code, err):
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def test_kperf_bad_stack_is_one_line(cli, tmp_path):
    code, _, err = cli("kperf", "--arch", "edu", "--model", "llama-3.1-8b", "--stack",
                       "nosuch", "--out", tmp_path)
    assert _clean_error(code, err) and "--stack" in err
    bad = _stack_file(tmp_path, "description: x\nstep: 3\n")
    code, _, err = cli("kperf", "--arch", "edu", "--model", "llama-3.1-8b", "--stack", bad,
                       "--out", tmp_path)
    assert _clean_error(code, err) and "step" in err


def test_fitted_rows_reproduce_and_rest_held_out():
    """The preset's two constants reproduce the rows they were fitted on (V20, V44) to 1 %,
    and those rows, only those, are reported as fitted."""
    from npusim.validate import core
    rows = {r["id"]: r for r in core.read_rows(core.default_data())
            if r["id"] in ("V20", "V44", "V43")}
    sim = core.Simulator(core.default_data().parent)
    for rid, row in rows.items():
        res = core.simulate_row(sim, row)
        assert res.error_message == "", res.error_message
        if rid in ("V20", "V44"):
            assert res.fitted and abs(res.error) < 0.01, (rid, res.error)
        else:
            assert not res.fitted and math.isfinite(res.error)


def test_readme_stack_figures():
    """The README's --stack paragraph: its eight figures, recomputed (rounded as printed)."""
    import re
    from pathlib import Path

    from npusim.workloads.kperf import kperf
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    m = re.search(r"at ([\d,]+) → ([\d,]+) tok/s and (\d+) → (\d+) W without it, and\s+"
                  r"([\d,]+) → ([\d,]+) tok/s and (\d+) → (\d+) W with it", text)
    assert m, "the README's --stack paragraph changed shape"
    stated = [int(x.replace(",", "")) for x in m.groups()]
    got = []
    for stack in (None, "vllm-0.5"):
        r = kperf("h100", "llama-3.1-8b", config=ServingConfig(stack=stack),
                  precisions=["bf16"], input_lens=[512], output_lens=[480], users=[64, 512],
                  chips=1)
        recs = sorted(r.records, key=lambda x: x["users"])
        got += [round(recs[0]["decode_tok_s"]), round(recs[1]["decode_tok_s"]),
                round(recs[0]["card_power_w"]), round(recs[1]["card_power_w"])]
    assert got == stated
    # the claim itself: with the stack throughput levels off and card power falls
    assert got[5] / got[4] < 1.25 < got[1] / got[0] and got[7] < got[6]
