"""The command line: the documented commands work, and bad input is one message, exit 2."""
import json
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from npusim.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_matmul(path, k_w=64):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])
    w = helper.make_tensor("w", TensorProto.FLOAT, [k_w, 32], [0.0] * (k_w * 32))
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_archs_lists_every_shipped_arch(capsys):
    code, out, _ = run(capsys, "archs")
    assert code == 0
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"rngd", "atom", "h100", "h200", "a100", "systolic-128", "edu"} <= names


def test_run_onnx_with_bound_dim_and_json(capsys, tmp_path):
    model = write_matmul(tmp_path / "mm.onnx")
    out_json = tmp_path / "r.json"
    code, out, err = run(capsys, "run", str(model), "--arch", "edu", "--dim", "batch=8",
                         "--json", str(out_json))
    assert code == 0, err
    data = json.loads(out_json.read_text())
    assert data["arch"] == "edu"
    assert data["totals"]["macs"] == 8 * 64 * 32
    (op,) = [o for o in data["ops"] if o["kind"] == "contraction"]
    assert {"name", "kind", "source", "macs", "bytes", "latency_s", "bound"} <= set(op)
    assert op["source"] == "proj" and op["macs"] == 8 * 64 * 32
    assert data["totals"]["latency_s"] >= data["totals"]["bound_latency_s"] > 0
    assert "proj" in out


def test_set_override_changes_the_memory_time(capsys, tmp_path):
    model = write_matmul(tmp_path / "mm.onnx")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    # the roofline keeps the bytes and changes the time; the tile engine may remap the op
    assert run(capsys, "run", str(model), "--arch", "edu", "--dim", "batch=1", "--json", str(a),
               "--engine", "roofline")[0] == 0
    assert run(capsys, "run", str(model), "--arch", "edu", "--dim", "batch=1", "--json", str(b),
               "--set", "dram.bandwidth=1GB/s", "--engine", "roofline")[0] == 0
    ta, tb = (json.loads(p.read_text())["totals"] for p in (a, b))
    assert tb["memory_s"] > ta["memory_s"]
    assert tb["dram_bytes"] == ta["dram_bytes"]


@pytest.mark.parametrize("case,needle", [
    ("unbound", "batch"),
    ("garbage", "not a valid ONNX model"),
    ("truncated", "not a valid ONNX model"),
    ("missing", "no-such.onnx"),
    ("shapes", "proj"),
    ("badunit", "dram.bandwidth"),
    ("badfield", "dram.bandwidht"),
    ("badarch", "no-such-arch"),
    ("badllm", "llama-9"),
])
def test_bad_input_is_one_message_exit_2(capsys, tmp_path, case, needle):
    good = write_matmul(tmp_path / "mm.onnx")
    args = ["run", str(good), "--arch", "edu", "--dim", "batch=2"]
    if case == "unbound":
        args = ["run", str(good), "--arch", "edu"]
    elif case == "garbage":
        (tmp_path / "g.onnx").write_bytes(b"this is not protobuf\xff\xfe" * 10)
        args[1] = str(tmp_path / "g.onnx")
    elif case == "truncated":
        data = good.read_bytes()
        (tmp_path / "t.onnx").write_bytes(data[: len(data) // 3])
        args[1] = str(tmp_path / "t.onnx")
    elif case == "missing":
        args[1] = str(tmp_path / "no-such.onnx")
    elif case == "shapes":
        args[1] = str(write_matmul(tmp_path / "bad.onnx", k_w=48))
    elif case == "badunit":
        args += ["--set", "dram.bandwidth=3GHz"]
    elif case == "badfield":
        args += ["--set", "dram.bandwidht=3TB/s"]
    elif case == "badarch":
        args[3] = "no-such-arch"
    elif case == "badllm":
        args = ["run", "llama-9", "--arch", "edu"]
    code, out, err = run(capsys, *args)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and err.count("\n") <= 3


def test_model_too_big_is_a_capacity_error(capsys):
    code, _, err = run(capsys, "run", "llama-3.1-405b", "--arch", "rngd", "--phase", "decode",
                       "--batch", "1", "--kv-len", "128")
    assert code == 2 and "GB" in err and "rngd" in err


def test_console_script_entry_point_exit_status(tmp_path):
    (tmp_path / "g.onnx").write_bytes(b"\x00garbage")
    p = subprocess.run([sys.executable, "-m", "npusim.cli", "run", str(tmp_path / "g.onnx")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "g.onnx" in p.stderr


def test_inspect_json(capsys, tmp_path):
    model = write_matmul(tmp_path / "mm.onnx")
    js = tmp_path / "i.json"
    code, out, err = run(capsys, "inspect", str(model), "--dim", "batch=4", "--json", str(js))
    assert code == 0, err
    info = json.loads(js.read_text())
    assert info["macs"] == 4 * 64 * 32
    assert info["parameters"] == 64 * 32
    assert info["bytes_by_role"]["weight"] == 64 * 32 * 4


def test_llm_by_name_decode(capsys, tmp_path):
    js = tmp_path / "d.json"
    code, out, err = run(capsys, "run", "llama-3.1-8b", "--phase", "decode", "--batch", "8",
                         "--kv-len", "2048", "--arch", "rngd", "--json", str(js))
    assert code == 0, err
    data = json.loads(js.read_text())
    # batch 8 decode: MACs ~ 8 x (params - embedding) + attention over 2048 cached tokens
    params = data["meta"]["parameters"]
    assert 8 * 0.9 * params < data["totals"]["macs"] < 8 * 1.1 * params
    # bf16 weights must stream once per step: at least 16 GB / 1.5 TB/s of memory time
    assert data["totals"]["memory_s"] >= 2 * 7.0e9 / 1.536e12


def test_kperf_command_writes_the_report(capsys, tmp_path):
    pytest.importorskip("openpyxl")
    pytest.importorskip("matplotlib")
    out = tmp_path / "kp"
    code, stdout, err = run(capsys, "kperf", "--arch", "rngd", "--model", "tiny-llama",
                            "--input-lens", "64", "--output-lens", "16", "--users", "1,4",
                            "--vs", "edu", "--out", str(out), "--no-progress")
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert {"kperf.xlsx", "kperf.csv"} <= names and any(n.endswith(".png") for n in names)
    import csv
    rows = list(csv.DictReader(open(out / "kperf.csv")))
    assert {(r["arch"], r["users"]) for r in rows} == {("rngd", "1"), ("rngd", "4"),
                                                      ("edu", "1"), ("edu", "4")}
    assert all(float(r["ttft_mean_s"]) > 0 for r in rows)


@pytest.mark.parametrize("args,needle", [
    (["--users", "0"], "users"),
    (["--model", "llama-9"], "llama-9"),
    (["--precision", "fp7"], "fp7"),
])
def test_kperf_bad_input_exit_2(capsys, tmp_path, args, needle):
    base = ["kperf", "--arch", "rngd", "--model", "tiny-llama", "--out", str(tmp_path),
            "--no-progress", "--input-lens", "16", "--output-lens", "4", "--users", "1"]
    for i in range(0, len(args), 2):
        j = base.index(args[i]) if args[i] in base else None
        if j is None:
            base += args[i:i + 2]
        else:
            base[j + 1] = args[i + 1]
    code, _, err = run(capsys, *base)
    assert code == 2 and needle in err and "Traceback" not in err
