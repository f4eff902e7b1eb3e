"""What a user expects of any command line: --version, help on a bare call, one-line usage
errors, and write errors that name the option that chose the path."""
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

import npusim


def one_line_error(code, err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return code == 2 and len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err


def test_version_is_the_package_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"npusim {npusim.__version__}"


def test_installed_metadata_has_the_same_version():
    from importlib.metadata import version
    assert version("npusim") == npusim.__version__


def test_bare_npusim_prints_help_and_lists_every_command(cli):
    code, out, err = cli()
    assert code == 0 and err == ""
    for command in ("run", "kperf", "validate", "inspect", "archs", "models"):
        assert command in out


@pytest.mark.parametrize("argv", [
    ["bogus"], ["run"], ["run", "m.onnx", "--batch", "x"], ["run", "m.onnx", "--frobnicate"],
    ["kperf"], ["run", "m.onnx", "--engine", "fast"], ["validate", "--rows"],
])
def test_usage_errors_are_one_line_exit_2(cli, argv):
    code, _, err = cli(*argv)
    assert one_line_error(code, err), err
    assert "--help" in err


def test_console_script_usage_error_is_one_line():
    run = subprocess.run([sys.executable, "-m", "npusim.cli", "run", "--batch", "x", "m"],
                         capture_output=True, text=True)
    assert one_line_error(run.returncode, run.stderr), run.stderr


@pytest.fixture
def relu(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    (tmp_path / "afile").write_text("not a folder")
    return path


@pytest.mark.parametrize("flag", ["--json", "--csv", "--trace", "--plot"])
def test_run_write_error_names_its_flag(cli, relu, flag):
    blocked = relu.parent / "afile" / "x"   # a path under a regular file cannot be written
    code, _, err = cli("run", relu, "--arch", "edu", flag, blocked)
    assert one_line_error(code, err), err
    assert f"error: {flag}: " in err and str(blocked) in err


def test_inspect_json_write_error_names_its_flag(cli, relu):
    code, _, err = cli("inspect", relu, "--json", relu.parent / "afile" / "x.json")
    assert one_line_error(code, err) and "error: --json: " in err, err


def test_kperf_write_error_names_out(cli, tmp_path):
    (tmp_path / "afile").write_text("")
    code, _, err = cli("kperf", "--arch", "edu", "--model", "tiny-llama", "--users", "1",
                       "--input-lens", "8", "--output-lens", "8", "--no-progress",
                       "--out", tmp_path / "afile" / "k")
    assert one_line_error(code, err) and "error: --out: " in err, err


@pytest.mark.parametrize("dtype", ["bf16", "fp8", "int4"])
def test_run_utilisation_is_against_the_executed_dtype_peak(dtype):
    """A run's MAC utilisation is at most 1 at any precision (it once divided fp8 work by the
    bf16 peak and printed 122%), and equals the latency-weighted mean of its op records."""
    r = npusim.simulate("llama-3.1-8b", "h200", phase="prefill", batch=1, seq=2048, dtype=dtype)
    assert 0 < r.utilization <= 1
    weighted = sum(o.utilization * o.latency_s for o in r.ops) / r.latency_s
    assert r.utilization == pytest.approx(weighted)
    for o in r.ops:
        assert 0 <= o.utilization <= 1 + 1e-9, o


def test_precision_is_dtypes_other_name_on_onnx_files(cli, tmp_path):
    """`npusim run model.onnx --precision int8` (issue 12's spelling) is `--dtype int8`: the
    same precision pass, the same records."""
    import json

    from onnx import TensorProto, helper
    import onnx
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 64])
    w = helper.make_tensor("w", TensorProto.FLOAT, [256, 64], [0.0] * (256 * 64))
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "mm",
                          [x], [y], [w])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    out = {}
    for flag in ("--precision", "--dtype"):
        js = tmp_path / f"{flag[2:]}.json"
        code, _, err = cli("run", str(path), "--arch", "atom", flag, "int8", "--json", str(js))
        assert code == 0, err
        out[flag] = json.loads(js.read_text())
    ops = [o["exec_dtype"] for o in out["--precision"]["ops"]]
    assert ops == ["int8"]
    assert out["--precision"]["totals"] == out["--dtype"]["totals"]


def test_arch_path_of_a_home_that_does_not_exist_is_a_clean_error(capsys):
    """``~nouser/...`` cannot be expanded (no such user): it is then a missing file."""
    from npusim.cli import main
    code = main(["run", "tiny-llama", "--arch", "~npusim_no_such_user/a.yaml"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such arch file" in err
