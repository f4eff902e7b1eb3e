"""``sim_mode graph`` rows of the measured data (npusim/validate/graph_rows.py): whole-model
inference rows (MLPerf R1-R3) simulated, checked, and fitted."""
from __future__ import annotations

import math

import pytest

import npusim
from npusim.errors import NpusimError
from npusim.validate import core
from npusim.validate.core import Simulator, blank_row, check_row, validate, write_rows
from npusim.validate.fit import fit
from npusim.graphs.tiny import matmul_onnx


def row(**kw) -> dict:
    """A graph row of tiny.onnx at batch 4 on edu, int8, with ``kw`` changed."""
    return blank_row(**{**dict(id="G1", sim_arch="edu", sim_chips="1", sim_model="tiny.onnx",
                               sim_precision="int8", sim_mode="graph", sim_users="4",
                               sim_metric="latency_s", sim_value="1e-5", simulable="yes"),
                        **kw})


@pytest.fixture
def data(tmp_path):
    matmul_onnx(tmp_path / "tiny.onnx", relu=True)
    return write_rows(tmp_path / "m.csv", [row(), row(id="G2", sim_metric="samples_s",
                                                 sim_value="2e5")])


def test_latency_and_samples_relate_exactly(data):
    res = validate(data, out=False, microchecks=False, plot=False)
    lat, thr = (r.predicted for r in res.rows)
    assert all(not r.error_message for r in res.rows), [r.error_message for r in res.rows]
    assert thr == 4 / lat
    # one inference of the batch, as `npusim run tiny.onnx --batch 4 --precision int8`
    want = npusim.simulate(str(data.parent / "tiny.onnx"), "edu", batch=4, dtype="int8")
    assert lat == want.latency_s
    assert want.macs == 4 * 16 * 8
    assert res.rows[0].load == "batch 4, one inference"


def test_graph_is_built_once_per_model_batch_precision(data):
    rows = core.read_rows(data)
    sim = Simulator(data.parent)
    for r in rows:
        sim.predict(r)
    sim.predict(rows[0], {"launch_overhead": "2 us"})
    assert len(sim._graphs) == 1


def test_fit_runs_on_graph_rows(data):
    got = fit(data, ["launch_overhead=G1"], write=False)["launch_overhead"]
    assert got["error_after"] <= got["error_before"]
    value = float(got["value"].split()[0]) * 1e-6
    assert 0 <= value <= 1e-4


def test_missing_file_is_the_rows_error(tmp_path):
    data = write_rows(tmp_path / "m.csv", [row(sim_model="gone.onnx")])
    res = validate(data, out=False, microchecks=False, plot=False)
    assert res.rows[0].predicted is None and "gone.onnx" in res.rows[0].error_message


@pytest.mark.parametrize("change,needle", [
    ({"sim_model": "resnet18"}, "name a builder (resnet50, bert-large) or an .onnx file"),
    ({"sim_model": ""}, "name a builder"),
    ({"sim_users": "65537"}, "batch 65,537 is more than 65,536"),
    ({"sim_users": "0"}, "column sim_users: '0' is not a positive integer"),
    ({"sim_users": "2.5"}, "column sim_users"),
    ({"sim_model": "resnet50", "sim_input_len": "384"}, "resnet50 has no sequence length"),
    ({"sim_model": "bert-large", "sim_input_len": "513"}, "past bert-large's 512 positions"),
    ({"sim_chips": "2"}, "a graph row runs on one chip"),
    ({"sim_precision": "int3"}, "'int3' is not one of"),
    ({"sim_output_len": "128"}, "column sim_output_len: not used by sim_mode graph"),
    ({"sim_rate": "2"}, "column sim_rate: a graph row's rate (MLPerf Server's samples per second) only sets"),
    ({"sim_metric": "ttft_s"}, "not a metric of sim_mode graph; use one of latency_s, samples_s"),
])
def test_bad_graph_rows_are_refused(change, needle):
    with pytest.raises(NpusimError) as e:
        check_row(row(**change), "m.csv, line 2 (row G1)")
    msg = str(e.value)
    assert needle in msg and "m.csv, line 2 (row G1)" in msg and "\n" not in msg


def test_bad_graph_row_in_a_file_stops_validate(cli, tmp_path):
    data = write_rows(tmp_path / "m.csv", [row(sim_model="resnet18")])
    code, _, err = cli("validate", "--data", str(data), "--no-microchecks", "--no-progress",
                       "--out", str(tmp_path / "o"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "resnet18" in err


def test_shipped_mlperf_rows_simulate():
    res = validate(rows=["R1", "R2", "R3"], out=False, microchecks=False, plot=False)
    by_id = {r.id: r for r in res.rows}
    for rid in ("R1", "R2", "R3"):
        r = by_id[rid]
        assert not r.error_message, r.error_message
        assert r.predicted is not None and math.isfinite(r.predicted) and r.predicted > 0
        assert r.mode == "graph"
    assert by_id["R2"].metric == "samples_s" and by_id["R2"].load.startswith("batch 8")
    assert by_id["R3"].load.startswith("batch 1, seq 384")
