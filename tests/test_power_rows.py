"""Power rows of the measured data (issue 13 item 3): ``avg_power_w`` / ``avg_power_w_per_chip``
on serving and graph rows, ``idle`` rows (``idle_power_w``, ``loaded_idle_power_w``), and the
``sim_boundary`` column (card or system). Small hand-computed cases; no full validate run."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.arch import load_arch
from npusim.errors import NpusimError
from npusim.graphs.tiny import matmul_onnx
from npusim.validate import core, graph_rows
from npusim.validate.core import (Simulator, blank_row, check_row, default_data, idle_power,
                                  read_rows, row_boundary, write_rows)


def row(**kw) -> dict:
    """An edu idle row of one chip, on the card boundary, with ``kw`` changed."""
    return blank_row(**{**dict(id="T1", sim_arch="edu", sim_chips="1", sim_mode="idle",
                               sim_metric="idle_power_w", sim_value="1", simulable="yes",
                               sim_boundary="card"), **kw})


def clean_error(code, err) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


# ----------------------------------------------------------------------------- idle rows

def test_idle_reads_power_idle_times_chips():
    # edu: power.idle 1 W (archs/edu.yaml), so 3 chips idle at exactly 3 W
    assert idle_power(load_arch("edu"), 3, "idle_power_w") == (3.0, "power.idle x 3")


def test_idle_without_power_idle_is_the_static_power():
    # a100: power.idle null (no A100 SXM reading); energy/a100.yaml static 120 W (an assumption)
    watts, what = idle_power(load_arch("a100"), 1, "idle_power_w")
    assert watts == 120.0 and "static power" in what


def test_one_idle_figure_and_the_loaded_floor():
    # h100: power.idle 71 W (PW sec. 5) for idle rows; loaded rows read the table's
    # loaded_floor 131 W, what every second of a run is charged
    h100 = load_arch("h100")
    assert idle_power(h100, 4, "idle_power_w") == (284.0, "power.idle x 4")
    assert idle_power(h100, 1, "loaded_idle_power_w") == (131.0, "loaded_floor x 1")
    # without a loaded_floor the floor is the flat static power
    assert idle_power(load_arch("edu"), 2, "loaded_idle_power_w")[0] == 2.0


def test_idle_row_predicts_and_errs(tmp_path):
    sim = Simulator(tmp_path)
    r = core.simulate_row(sim, row(sim_chips="2", sim_value="4"))
    assert r.predicted == 2.0 and r.error == pytest.approx(-0.5)


def test_idle_override_of_power_idle_is_used(tmp_path):
    sim = Simulator(tmp_path)
    value, _ = sim.predict(row(sim_set="power.idle=2.5 W"))
    assert value == 2.5


# ----------------------------------------------------------------------------- graph rows

def test_graph_power_is_energy_over_latency_times_chips(tmp_path):
    matmul_onnx(tmp_path / "tiny.onnx")
    base = dict(sim_model="tiny.onnx", sim_mode="graph", sim_precision="int8",
                sim_users="4")
    sim = Simulator(tmp_path)
    one, _ = sim.predict(row(sim_metric="avg_power_w_per_chip", sim_chips="1", **base))
    eight, load = sim.predict(row(sim_metric="avg_power_w", sim_chips="8", **base))
    arch = load_arch("edu")
    spec = sim.graph_spec(row(**base))
    res = npusim.simulate(sim.graph(spec, arch), arch)
    assert one == pytest.approx(res.energy_j / res.latency_s, rel=1e-12)
    assert eight == pytest.approx(8 * one, rel=1e-12)
    assert "x 8 chip" in load


def test_power_helper_by_hand():
    assert graph_rows.power(3.0, 0.01, 8) == pytest.approx(2400.0)
    with pytest.raises(NpusimError):
        graph_rows.power(1.0, 0.0, 1)


# ----------------------------------------------------------------------------- serving rows

def test_serving_power_is_energy_per_token_times_tokens_per_s(tmp_path):
    base = dict(sim_model="tiny-llama", sim_mode="batch", sim_users="4",
                sim_precision="bf16", sim_input_len="32", sim_output_len="8", sim_chips="2",
                sim_note="parallel tp=2")
    sim = Simulator(tmp_path)
    p, _ = sim.predict(row(sim_metric="avg_power_w", **base))
    per, _ = sim.predict(row(sim_metric="avg_power_w_per_chip", **base))
    ept, _ = sim.predict(row(sim_metric="energy_per_token_j", **base))
    tps, _ = sim.predict(row(sim_metric="decode_tok_s", **base))
    assert per == pytest.approx(p / 2, rel=1e-12)
    # both from the same window: W = J/token x token/s
    assert p == pytest.approx(ept * tps, rel=1e-9)
    # a chip never draws less than its static power while serving
    assert per >= load_arch("edu").power.idle


# ----------------------------------------------------------------------------- check_row

@pytest.mark.parametrize("change, needle", [
    (dict(sim_boundary="system"), "sim_host: empty on a system-boundary row"),
    (dict(sim_boundary="system", sim_host="no-such-host"), "not a host preset"),
    (dict(sim_host="dgx-h100"), "on a card-boundary row"),
    (dict(sim_boundary="system", sim_host="dgx-h100", sim_mode="graph",
          sim_metric="avg_power_w_per_chip", sim_model="resnet50"), "on a system-boundary row"),
    (dict(sim_boundary="wall"), "sim_boundary"),
    (dict(sim_boundary="card", sim_mode="batch", sim_metric="ttft_s", sim_model="tiny-llama",
          sim_precision="bf16", sim_users="1", sim_input_len="8", sim_output_len="8"),
     "not a power or energy metric"),
    (dict(sim_model="tiny-llama"), "not used by sim_mode idle"),
    (dict(sim_users="4"), "not used by sim_mode idle"),
    (dict(sim_metric="avg_power_w"), "not a metric of sim_mode idle"),
    (dict(sim_mode="batch", sim_metric="idle_power_w"), "not a metric of sim_mode batch"),
    (dict(sim_mode="graph", sim_metric="latency_s", sim_model="resnet50", sim_chips="8",
          sim_boundary=""), "runs on one chip"),
])
def test_bad_power_rows_are_refused(change, needle):
    with pytest.raises(NpusimError, match=needle) as e:
        check_row(row(**change), "f.csv, line 2 (row T1)")
    assert "\n" not in str(e.value) and "f.csv" in str(e.value)


def test_graph_power_row_may_state_many_chips():
    check_row(row(sim_mode="graph", sim_metric="avg_power_w", sim_model="resnet50",
                  sim_chips="8"), "f.csv")


def test_boundary_empty_means_card():
    assert row_boundary(row(sim_boundary="")) == "card"
    assert row_boundary(row(sim_boundary=" Card ")) == "card"


def test_system_row_in_a_file_is_one_clean_error(cli, tmp_path):
    path = write_rows(tmp_path / "m.csv", [row(sim_boundary="system")])
    code, _, err = cli("validate", "--data", str(path), "--out", str(tmp_path / "o"),
                       "--no-microchecks", "--no-progress")
    assert clean_error(code, err) and "sim_host" in err and "line 2" in err


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boundary=st.text(max_size=12),
       metric=st.sampled_from(["idle_power_w", "loaded_idle_power_w", "ttft_s", "bogus", ""]))
def test_fuzz_boundary_and_metric(boundary, metric):
    """Any sim_boundary text on an idle row: accepted only as card/empty with an idle metric,
    otherwise one single-line NpusimError naming a column."""
    r = row(sim_boundary=boundary, sim_metric=metric)
    ok = boundary.strip().lower() in ("", "card") and metric in core.IDLE_METRICS
    try:
        check_row(r, "f.csv")
    except NpusimError as e:
        assert not ok
        assert "\n" not in str(e) and "column" in str(e)
    else:
        assert ok


# ----------------------------------------------------------------------------- shipped data

def test_shipped_power_rows_are_consistent():
    rows = read_rows(default_data())
    power = [r for r in rows if r["sim_metric"] in core.POWER_METRICS
             and r.get("sim_boundary")]
    assert len(power) >= 100
    for r in power:
        if r["sim_boundary"] == "system":    # a server named, simulable or with a reason
            assert r["sim_host"] and (r["simulable"] == "yes" or r["reason"]), r["id"]
    for letter in "WX":      # MLPerf power is the whole server at the wall
        group = [r for r in rows if core.source_of(r["id"]) == letter]
        assert group and all(r["sim_boundary"] == "system" for r in group)
    # every simulable idle row names a shipped arch and reads no workload
    idle = [r for r in rows if r["sim_mode"] == "idle" and r["simulable"] == "yes"]
    assert idle and all(not r["sim_model"] for r in idle)
    assert all(math.isfinite(float(r["sim_value"])) for r in idle)
