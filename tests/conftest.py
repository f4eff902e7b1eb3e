"""Shared helpers for tests of the command line's promise: bad input is one line, exit 2."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from npusim.cli import main


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# The tests that take from ten seconds to a few minutes on CI's 2 cores (a fresh venv, the whole
# validation, the kernels' tests uncompiled, a plain install, the README's serving and benchmark
# lines), longest first, as node-id prefixes. With xdist they start first, dealt one per worker
# in turn, so no worker is left running one of them while the other idles at the end of the
# run (measured: a 726 s schedule became 524 s). Every test still runs, once; only the order.
LONG_TESTS = (
    "tests/test_readme.py::test_committed_report_is_what_validate_gives_today",
    "tests/test_readme.py::test_fresh_install_runs_the_main_job",
    "tests/test_validate_input.py::test_validate_after_a_non_editable_install",
    "tests/test_nojit.py::test_kernel_tests_pass_without_jit",
    "tests/test_readme.py::test_readme_command_runs[npusim kperf",
    "tests/test_onnx_malformed.py::test_every_onnx_test_model_loads_or_fails_cleanly",
    "tests/test_readme.py::test_readme_command_runs[python benchmarks/",
    "tests/test_readme_snn.py::test_breakeven_table",
    "tests/test_outputs_repeatable.py::test_outputs_are_byte_identical_run_to_run",
    "tests/test_validate_input.py::test_fuzz_validate_cli_exit_code",
    "tests/test_readme.py::test_readme_command_runs[npusim sweep",
    "tests/test_readme.py::test_readme_command_runs[(dask scheduler",
    "tests/test_dse_run.py::test_dask_cluster",
    "tests/test_dse_run.py::test_sigkill",
)


def _long_first(names: list[str]) -> list[int]:
    """Indices of the :data:`LONG_TESTS` among ``names``, in that list's order."""
    return [i for prefix in LONG_TESTS for i, n in enumerate(names) if n.startswith(prefix)]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist load`` with :data:`LONG_TESTS` sent ahead of everything else."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScheduling

    class LongFirst(LoadScheduling):
        """xdist's load scheduling, except that its first call deals the long tests to the
        workers round-robin before the usual chunks (which then leave them out)."""

        first: frozenset = frozenset()

        def schedule(self):
            if (self.collection is None and self.collection_is_completed and self.nodes
                    and self._check_nodes_have_same_collection()):
                names = next(iter(self.node2collection.values()))
                order = list(dict.fromkeys(_long_first(names)))
                for k, index in enumerate(order):
                    node = self.nodes[k % len(self.nodes)]
                    self.node2pending[node].append(index)
                    node.send_runtest_some([index])
                self.first = frozenset(order)
            super().schedule()
            self.first = frozenset()     # a crashed worker's tests are requeued as usual

        def _send_tests(self, node, num):
            if self.first:
                self.pending[:] = [i for i in self.pending if i not in self.first]
            super()._send_tests(node, num)

    return LongFirst(config, log)


def load_script(name: str):
    """``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package).

    It is registered under its name while it runs: dataclasses look their module up there.
    """
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    return mod


@pytest.fixture(scope="session")
def benchmark_script():
    """:func:`load_script`, for tests of the benchmark scripts."""
    return load_script


def is_clean_error(code: int, err: str) -> bool:
    """Exit status 2 and exactly one non-empty stderr line of the form ``npusim...: error: ...``."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return (code == 2 and len(lines) == 1 and lines[0].startswith("npusim")
            and ": error: " in lines[0] and "Traceback" not in err)


@pytest.fixture
def cli(capsys):
    """Run ``npusim ARGV...`` in-process; return ``(exit code, stdout, stderr)``.

    argparse's own exits (``SystemExit``) are turned into exit codes like the console script's.
    """
    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err
    return run


@dataclass(frozen=True)
class _Step:
    seconds: float
    energy_j: float


@dataclass
class _LinearCost:
    """A system whose step takes 1 ms plus 10 us per token, at 100 W: serving figures
    that can be worked out by hand."""

    model: str
    arch: object
    chips: int
    precision: str
    kv_capacity_tokens: int = 1 << 20
    kv_block_tokens: int = 16
    static_power_w: float = 10.0
    tdp_w: float = 100.0

    def step(self, prefill, decode):
        s = 1e-3 + 1e-5 * (sum(c for c, _ in prefill) + len(decode))
        return _Step(s, 100.0 * s)


@pytest.fixture
def linear_cost(monkeypatch):
    """Make ``npusim.kperf`` serve with :class:`_LinearCost` (the real serving simulation on a
    hand-checkable step cost); call it with ``kv_capacity_tokens=`` to shrink the KV cache."""
    from npusim.workloads import kperf as kp

    def install(kv_capacity_tokens: int = 1 << 20) -> None:
        monkeypatch.setattr(kp, "_cost_model", lambda m, a, c, p, **kw: _LinearCost(
            m, a, c or 1, p, kv_capacity_tokens=kv_capacity_tokens))
        monkeypatch.setattr(kp, "_spec", lambda model: None)  # a fake model has no config
    return install


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_table(header_start: str) -> list[list[str]]:
    """Cells of the README table whose header row starts with ``header_start``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    assert rows, f"no rows under {header_start!r}"
    return rows


@pytest.fixture(scope="session")
def readme_table():
    """The README's table under a header (the README tables' tests recompute every cell)."""
    return _readme_table


@pytest.fixture(scope="session")
def net_432():
    """A 4-3-2 dense spiking network and two steps of rasters (hand-counted in the tests)."""
    import numpy as np

    from npusim.engine import snn as es
    net = es.Network("432", (es.Layer("in", "input", (4,)), es.Layer("hidden", "dense", (3,)),
                              es.Layer("out", "dense", (2,))))
    rasters = {"in": np.array([[1, 0, 0, 1], [0, 0, 0, 0]], dtype=bool),
               "hidden": np.array([[0, 0, 0], [1, 0, 0]], dtype=bool),
               "out": np.zeros((2, 2), dtype=bool)}
    return net, rasters


@pytest.fixture(scope="session")
def ort_run():
    """Run an ONNX model in onnxruntime on the CPU: ``ort_run(model, feed) -> {output: array}``
    (the test skips without onnxruntime)."""
    ort = pytest.importorskip("onnxruntime")

    def run(model, feed):
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    return run
