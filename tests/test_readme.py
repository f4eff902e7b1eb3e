"""Every command and snippet in the README runs, as written.

The README's fenced blocks are the claims: the first two (install and run the main job;
install and run the tests) run in a brand-new virtual environment made from a copy of the
checkout (``test_fresh_install_runs_the_main_job``) and in ``.ci/run`` itself; every other
``bash`` line and every ``python`` block runs here, in a scratch folder that holds the two
user files the README names (``model.onnx`` with a symbolic batch, ``resnet.onnx`` with fixed
shapes), built by this test. Benchmarks run from the repository's folder, as the README says.

A ``console`` block is shown, not run: it starts an interactive program that never exits (the
notebook editor of the "Learn" section). ``test_readme_console_blocks_only_open_notebooks``
keeps such blocks to that, so no claim hides in one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text(encoding="utf-8"))
            if kind == lang]


def command_lines() -> list[str]:
    """The README's shell lines after the two install commands, comments left as written."""
    lines = [ln.strip() for body in blocks("bash")[2:] for ln in body.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


# the only commands a README ``console`` block may hold: installing and starting JupyterLab
CONSOLE_COMMANDS = ("pip install jupyterlab", "jupyter lab notebooks/")


def test_readme_console_blocks_only_open_notebooks():
    lines = [ln.strip() for body in blocks("console") for ln in body.splitlines() if ln.strip()]
    assert lines, "the README's Learn section shows how to open the notebooks"
    for ln in lines:
        commands = [c.strip() for c in ln.split("&&")]
        assert all(c in CONSOLE_COMMANDS for c in commands), (
            f"{ln!r}: a console block is not run by the tests; put commands in a bash block")
    assert (ROOT / "notebooks").is_dir()


def _write_model(path: Path) -> None:
    """A two-layer MLP with a symbolic ``batch`` dimension (weights are shapes only)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [256, 512], [0.0] * (256 * 512))
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [512, 64], [0.0] * (512 * 64))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["a"], name="act"),
             helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2")]
    g = helper.make_graph(nodes, "mlp", [x], [y], [w1, w2])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def _write_resnet(path: Path) -> None:
    """One residual block at fixed shapes: conv-relu-conv, add, global pool, classifier."""
    def weight(name, shape):
        n = 1
        for d in shape:
            n *= d
        return helper.make_tensor(name, TensorProto.FLOAT, shape, [0.0] * n)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    inits = [weight("c1", [16, 16, 3, 3]), weight("c2", [16, 16, 3, 3]), weight("fc", [16, 10])]
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "c1"], ["h1"], name="conv1", **conv),
             helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
             helper.make_node("Conv", ["a1", "c2"], ["h2"], name="conv2", **conv),
             helper.make_node("Add", ["h2", "x"], ["s"], name="add"),
             helper.make_node("GlobalAveragePool", ["s"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "resnet-block", [x], [y], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def _write_nir(path: Path) -> None:
    """A two-layer LIF network, 64-128-10, as the README's ``net.nir`` (needs ``nir``)."""
    import numpy as np
    try:
        import nir
    except ImportError:      # the lines that read it skip
        return
    rng = np.random.default_rng(0)

    def lif(n):
        return nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.ones(n))

    nodes = {"in": nir.Input(input_type=np.array([64])),
             "fc1": nir.Affine(weight=rng.normal(size=(128, 64)), bias=np.zeros(128)),
             "lif1": lif(128),
             "fc2": nir.Affine(weight=rng.normal(size=(10, 128)), bias=np.zeros(10)),
             "lif2": lif(10), "out": nir.Output(output_type=np.array([10]))}
    names = list(nodes)
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])),
                                 type_check=False))


@pytest.fixture(scope="session")
def user_folder(tmp_path_factory) -> Path:
    """The user files the README names, the shipped ``sweeps/`` specs (the README's sweep lines
    run from the repository's folder), and ``lenet.onnx`` and ``resnet50.onnx`` as the README's
    ``python -m npusim.graphs...`` lines write them (those lines run in folders of their own, so
    no line reads a file another is writing)."""
    from npusim.graphs import mlperf, vision
    folder = tmp_path_factory.mktemp("readme")
    _write_model(folder / "model.onnx")
    _write_resnet(folder / "resnet.onnx")
    vision.write("lenet", folder / "lenet.onnx")
    mlperf.write("resnet50", folder / "resnet50.onnx")
    _write_nir(folder / "net.nir")
    shutil.copytree(ROOT / "sweeps", folder / "sweeps")  # the README's sweep specs, as shipped
    return folder


def _env() -> dict[str, str]:
    """This interpreter's environment, its scripts folder (the ``npusim`` command) first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    install_run, install_test = (b.strip() for b in blocks("bash")[:2])
    assert "pip install" in install_run and "npusim kperf" in install_run
    assert install_test.endswith("python -m pytest") and "pip install" in install_test
    assert install_test.startswith(". .venv/bin/activate") or "venv .venv" in install_test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1].strip() == install_test, "`.ci/run` must run exactly the README's test command"


@pytest.mark.slow
@pytest.mark.parametrize("line", command_lines())
def test_readme_command_runs(line, user_folder, tmp_path):
    cwd = (ROOT if line.startswith("python benchmarks/") else
           tmp_path if line.startswith("python -m npusim.graphs.") else user_folder)
    if ".nir" in line:
        pytest.importorskip("nir", reason="the snn extra (nir) reads NIR files")
    run = subprocess.run(["bash", "-c", line], cwd=cwd, env=_env(), capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, f"{line}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_readme_python_block_runs(index, user_folder):
    code = blocks("python")[index]
    run = subprocess.run([sys.executable, "-c", code], cwd=user_folder, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{code}\n{run.stderr[-3000:]}"


def _copy_checkout(dest: Path) -> Path:
    """The tracked files of this checkout (what a fresh clone holds), without any venv."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    return dest


@pytest.mark.slow
def test_fresh_install_runs_the_main_job(tmp_path):
    """The README's first command, verbatim, from a copy of the checkout: a brand-new venv
    (stock pip and setuptools, no wheel), a plain non-editable install, then the main job.
    With that install, the README's Python block and ``benchmarks/speed.py`` run from the
    repository's folder (where the checkout's ``npusim/`` shadows the installed one) and
    ``npusim validate`` finds its data."""
    repo = _copy_checkout(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    first = blocks("bash")[0].strip()
    run = subprocess.run(["bash", "-c", first], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, f"{first}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert (repo / "kperf" / "kperf.xlsx").is_file() and (repo / "kperf" / "kperf.csv").is_file()

    python = repo / ".venv" / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import npusim; print(npusim.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "site-packages" in where.stdout, where.stdout + where.stderr

    _write_model(repo / "model.onnx")  # the snippet's user file
    snippet = subprocess.run([str(python), "-c", blocks("python")[0]], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=600)
    assert snippet.returncode == 0, snippet.stderr[-3000:]
    speed = subprocess.run([str(python), "benchmarks/speed.py", "--quick"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=600)
    assert speed.returncode == 0 and "candidates/s" in speed.stdout, speed.stderr[-3000:]

    npusim = repo / ".venv" / "bin" / "npusim"
    validate = subprocess.run([str(npusim), "validate", "--rows", "K1", "--no-microchecks",
                               "--out", str(tmp_path / "val")], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert (tmp_path / "val" / "REPORT.md").is_file()


def _mape_table(text: str, head: str = "| arch | metric |") -> list[str]:
    """The rows of the first markdown table whose header starts with ``head``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(head))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append(ln.strip())
    return rows


def test_readme_mape_table_is_the_committed_reports():
    """The README's validation figures are the committed report's (regenerated with
    ``npusim validate --out validation``), row for row."""
    report = (ROOT / "validation" / "REPORT.md").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    assert _mape_table(readme) == _mape_table(report)
    npu = "| NPU | rows |"          # the NPU rows per NPU (issue 12), reported apart
    assert _mape_table(readme, npu) == _mape_table(report, npu)
    power = "| arch | boundary |"   # the power rows per meter boundary (issue 13)
    assert _mape_table(readme, power) == _mape_table(report, power)


@pytest.mark.slow
def test_committed_report_is_what_validate_gives_today(tmp_path):
    """Every row of the shipped data, simulated now, gives the committed report's MAPE table
    (so the README's figures are today's, not a past commit's)."""
    from npusim.validate import validate
    res = validate(out=tmp_path, microchecks=False, plot=False)   # the table, not the scatter
    fresh = res.report.read_text(encoding="utf-8")
    committed = (ROOT / "validation" / "REPORT.md").read_text(encoding="utf-8")
    for head in ("| NPU | rows |", "| arch | boundary |", "| series |"):   # NPUs, power, trend
        assert _mape_table(fresh, head) == _mape_table(committed, head), head
    assert _mape_table(fresh) == _mape_table(committed), (
        "validation/REPORT.md is stale: regenerate it with `npusim validate --out validation` "
        "and copy its MAPE table into the README")
