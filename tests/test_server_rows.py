"""MLPerf Server power rows (issue 13): a graph row with ``sim_rate`` is a duty cycle between
the batch's power and the loaded floor; an LLM system row in ``server`` mode is an open loop
split over its copies. Hand-computed cases and properties; no full validate run."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npusim
from npusim.arch import load_arch
from npusim.energy import load_energy_table
from npusim.errors import NpusimError
from npusim.validate import graph_rows
from npusim.validate.core import Simulator, blank_row, check_row
from npusim.graphs.tiny import matmul_onnx


def _row(**kw) -> dict:
    cells = dict(id="T1", sim_arch="edu", sim_chips="2", sim_mode="graph", sim_model="tiny.onnx",
                 sim_precision="int8", sim_users="4", sim_metric="avg_power_w", sim_value="1",
                 simulable="yes")
    return blank_row(**{**cells, **kw})


def test_server_power_by_hand():
    # batches of 100 samples take 10 ms and 3 J (300 W); at 5,000 samples/s the chip is busy
    # 5,000 x 0.01 / 100 = 50 % of the time, at its 100 W floor the rest: 200 W
    assert graph_rows.server_power(3.0, 0.01, 100, 5000.0, 100.0) == (200.0, 0.5)
    # twice the throughput asked: busy throughout, the batch's own power
    watts, busy = graph_rows.server_power(3.0, 0.01, 100, 20000.0, 100.0)
    assert watts == pytest.approx(300.0) and busy == pytest.approx(2.0)
    with pytest.raises(NpusimError):
        graph_rows.server_power(3.0, 0.01, 100, 0.0, 100.0)


@settings(max_examples=60, deadline=None)
@given(e=st.floats(1e-3, 1e3), lat=st.floats(1e-5, 1.0), batch=st.integers(1, 4096),
       rate=st.floats(1e-3, 1e7), floor=st.floats(0.0, 500.0))
def test_server_power_lies_between_floor_and_busy(e, lat, batch, rate, floor):
    watts, busy = graph_rows.server_power(e, lat, batch, rate, floor)
    lo, hi = sorted((floor, e / lat))
    assert lo * (1 - 1e-9) <= watts <= hi * (1 + 1e-9)
    more, _ = graph_rows.server_power(e, lat, batch, rate * 1.5, floor)
    # a higher rate moves power toward the busy power, never away from it
    assert abs(more - e / lat) <= abs(watts - e / lat) * (1 + 1e-9) + 1e-12


def test_graph_server_row_is_the_duty_cycle(tmp_path):
    matmul_onnx(tmp_path / "tiny.onnx")
    sim = Simulator(tmp_path)
    arch = load_arch("edu")
    res = npusim.simulate(sim.graph(sim.graph_spec(_row()), arch), arch)
    floor = float(load_energy_table(arch).floor_w)
    # a system rate that keeps each of the 2 chips busy 25 % of the time
    rate = 0.25 * 4 / res.latency_s * 2
    got, load = sim.predict(_row(sim_rate=repr(rate)))
    want = 2 * (0.25 * res.energy_j / res.latency_s + 0.75 * floor)
    assert got == pytest.approx(want, rel=1e-9)
    assert "busy 25%" in load and "x 2 chip" in load
    offline, _ = sim.predict(_row())
    assert floor * 2 <= got < offline


def test_graph_server_rate_above_throughput_is_said(tmp_path):
    matmul_onnx(tmp_path / "tiny.onnx")
    sim = Simulator(tmp_path)
    got, load = sim.predict(_row(sim_rate="1e8"))
    offline, _ = sim.predict(_row())
    assert got == pytest.approx(offline, rel=1e-12)
    assert "busy throughout" in load


@pytest.mark.parametrize("change, needle", [
    (dict(sim_rate="100", sim_metric="latency_s", sim_chips="1"), "only sets the duty cycle"),
    (dict(sim_rate="0"), "not a positive number"),
    (dict(sim_rate="fast"), "not a positive number"),
    (dict(sim_rate="1e12"), "more than"),
])
def test_bad_server_rows(change, needle):
    with pytest.raises(NpusimError, match=needle) as e:
        check_row(_row(**change), "f.csv, line 2 (row T1)")
    assert "\n" not in str(e.value)


def test_llm_system_server_row_splits_the_rate_over_copies(tmp_path):
    """A system row in server mode with 2 copies runs each copy at half the system's rate:
    the same card power as a 1-copy system at half the rate."""
    base = dict(sim_mode="server", sim_model="tiny-llama", sim_precision="bf16",
                sim_input_len="32", sim_output_len="8", sim_users="", sim_boundary="system",
                sim_host="generic-2s", sim_metric="avg_power_w")
    sim = Simulator(tmp_path)
    two, load2 = sim.predict(_row(sim_chips="2", sim_rate="40", sim_note="parallel tp=1",
                                  **base))
    assert "x 2 copies" in load2 and "20 req/s" in load2
    card = _row(sim_chips="1", sim_rate="20", **{**base, "sim_boundary": "",
                                                  "sim_host": ""})
    one, _ = sim.predict(card)
    assert one > 0 and two > 2 * one   # two cards plus the host at the wall
