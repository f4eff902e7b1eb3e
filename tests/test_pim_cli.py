"""PIM on the command line: ``npusim pim``, ``npusim run --pim``, ``npusim kperf`` on an NPU+PIM
system."""
from __future__ import annotations

import csv
import json

import pytest

from npusim import load_arch
from npusim.engine.pim import crossover_batch, pim_device


def clean_error(code: int, err: str) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def test_pim_command_prints_the_device_figures(cli, tmp_path):
    code, out, err = cli("pim", "--arch", "lpddr6-pim", "--json", tmp_path / "p.json")
    assert code == 0, err
    d = pim_device(load_arch("lpddr6-pim"))
    assert "units 128 (8 channels x 16, one per bank)" in out
    assert "unit clock 267 MHz" in out
    assert "fp16 1.09 TFLOPS" in out                     # 128 x 16 x 2 x 266.7 MHz
    assert "internal bandwidth 1.09 TB/s" in out and "external 114 GB/s" in out
    assert f"ratio {d.ratio:.2f}x" in out and "ratio 9.60x" in out
    data = json.loads((tmp_path / "p.json").read_text())
    s = data["archs"][0]
    cross = crossover_batch(load_arch("lpddr6-pim"), 4096, 4096, "fp16")
    assert s["crossover_batch"] == cross
    assert f"NPU overtakes PIM at batch {cross}" in out
    assert f"efficiency {100 * s['gemv']['efficiency']:.1f}%" in out
    assert 0 < s["gemv"]["efficiency"] <= 1


def test_pim_command_takes_a_composition_and_a_shape(cli):
    code, out, err = cli("pim", "--arch", "edu+hbm2-pim", "--gemv", "512x1024")
    assert code == 0, err
    assert "edu+hbm2-pim: hbm2-pim units" in out and "GEMV 512x1024 fp16" in out
    assert "units 8 (1 channels x 8, one per 2 banks)" in out


@pytest.mark.parametrize("argv", [
    ("pim", "--arch", "rngd"),                       # no units
    ("pim", "--arch", "lpddr6-pim", "--gemv", "0x4"),
    ("pim", "--arch", "lpddr6-pim", "--gemv", "wide"),
    ("pim", "--arch", "lpddr6-pim", "--set", "pim.clock=0 Hz"),
    ("run", "tiny-llama", "--arch", "edu+hbm2-pim", "--pim", "maybe"),
])
def test_bad_pim_input_is_one_clean_line(cli, argv):
    code, out, err = cli(*argv)
    assert clean_error(code, err), err


def test_run_all_on_pim_writes_device_everywhere(cli, tmp_path):
    code, out, err = cli("run", "tiny-llama", "--phase", "decode", "--kv-len", "32",
                         "--dtype", "fp16", "--arch", "edu+lpddr6-pim", "--pim", "all",
                         "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv",
                         "--trace", tmp_path / "r.trace.json")
    assert code == 0, err
    assert "by device: npu" in out and "pim" in out
    assert "device" in out.split("top ")[1]            # the table's device column
    assert "ops ran on the lpddr6-pim units" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert all(op["device"] in ("npu", "pim") for op in data["ops"])
    assert data["totals"]["by_device"]["pim"]["ops"] > 0
    with open(tmp_path / "r.csv", newline="") as f:
        assert {r["device"] for r in csv.DictReader(f)} == {"npu", "pim"}
    trace = json.loads((tmp_path / "r.trace.json").read_text())
    assert "pim" in {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}


def test_run_off_has_no_device_column(cli):
    code, out, err = cli("run", "tiny-llama", "--phase", "decode", "--kv-len", "32",
                         "--dtype", "fp16", "--arch", "edu+lpddr6-pim", "--pim", "off")
    assert code == 0, err
    assert "by device" not in out and "ops ran on" not in out


def test_the_issue_decode_command_runs(cli):
    code, out, err = cli("run", "llama-3.1-8b", "--phase", "decode", "--batch", "1",
                         "--kv-len", "1024", "--arch", "lpddr6-pim", "--dtype", "int4",
                         "--top", "3")
    assert code == 0, err
    assert "lm_head" in out and "by device: npu" in out


def test_kperf_compares_an_npu_pim_system_with_its_host(cli, tmp_path):
    code, out, err = cli("kperf", "--arch", "edu+lpddr6-pim", "--vs", "edu", "--model",
                         "tiny-llama", "--precision", "fp16", "--input-lens", "64",
                         "--output-lens", "16", "--users", "1", "--out", tmp_path / "kp",
                         "--no-progress")
    assert code == 0, err
    with open(tmp_path / "kp" / "kperf.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    archs = {r["arch"] for r in rows}
    assert archs == {"edu+lpddr6-pim", "edu"}
    for r in rows:
        assert r["status"] == "ok"
        for key in ("ttft_mean_s", "tpot_mean_s", "decode_tok_s", "tokens_per_j"):
            assert float(r[key]) > 0
