"""The K-Perf report written side by side is the report written one file after the other, and
start-up stays light.

- Forked writers give the same files as the serial path: CSV and PNG bytes, xlsx cell values.
- :func:`~npusim.figures.save_figure`'s single draw gives the bytes of matplotlib's savefig,
  for the K-Perf figures' fixed layout and for constrained layout.
- The figure set is complete: every PNG :func:`figures` names, system power only with a host.
- A writer's error reaches the caller as it was raised; a forked copy that dies leaves its file
  to the parent; fork is not used with other threads running.
- A CSV never holds a CR, whatever the texts it carries.
- ``npusim --help`` imports none of the heavy packages.

Timings are in benchmarks/report_speed.py; no test here asserts a wall-clock time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from npusim.errors import OutputError
from npusim.files import write_csv
from npusim.report import parallel
from npusim.report.parallel import can_fork, processes_for, run_writers
from npusim.workloads import kperf as kp

FORK = can_fork()
needs_fork = pytest.mark.skipif(not FORK, reason="fork is missing or unsafe here")


def _result(system_power: bool = False) -> kp.KperfResult:
    """A small matrix with closed-form numbers: two archs, two pairs, three user counts."""
    records = []
    for a, arch in enumerate(("rngd", "h100")):
        for i, o in ((128, 128), (2048, 128)):
            for u in (1, 10, 100):
                speed = 100.0 * (a + 1)
                r = dict(arch=arch, model="m", chips=1, precision="bf16", input_len=i,
                         output_len=o, users=u, status="ok",
                         ttft_mean_s=i / (1000 * speed) * (1 + u / 10),
                         ttft_p99_s=1.5 * i / (1000 * speed) * (1 + u / 10),
                         decode_tok_s=speed * u, decode_tok_s_per_chip=speed * u,
                         avg_power_w=100.0 + 10 * u, card_power_w=100.0 + 10 * u,
                         card_power_w_low=90.0 + 10 * u, card_power_w_high=110.0 + 10 * u,
                         energy_per_token_j=(100.0 + 10 * u) / (speed * u),
                         tokens_per_j=speed * u / (100.0 + 10 * u), kv_headroom=4.0,
                         preemptions=3 if u == 100 else 0)
                if system_power:
                    r["system_power_w"] = 300.0 + 10 * u
                records.append(r)
    runs = [dict(arch=a, precision="bf16", chips=1, status="ok", tdp_w=t)
            for a, t in (("rngd", 150.0), ("h100", 700.0))]
    return kp.KperfResult(model="m", records=records, runs=runs,
                          archs={"rngd": {"power": {"tdp": 150.0}}, "h100": {}},
                          matrix=dict(precisions=("bf16",), users=(1, 10, 100)))


def _cells(path: Path) -> dict[str, list[tuple]]:
    import openpyxl
    wb = openpyxl.load_workbook(path)
    return {ws.title: [tuple(c.value for c in row) for row in ws.iter_rows()]
            for ws in wb.worksheets}


# ------------------------------------------------------------------ same files either way

@needs_fork
@pytest.mark.parametrize("system_power", [False, True])
def test_forked_writers_give_the_serial_files(tmp_path, system_power):
    pytest.importorskip("matplotlib")
    pytest.importorskip("openpyxl")
    from npusim.report.kperf import write_kperf
    result = _result(system_power)
    assert processes_for(9, 2) == 2            # the forked path really runs below
    serial = write_kperf(result, tmp_path / "serial", processes=1)
    forked = write_kperf(result, tmp_path / "forked", processes=2)
    assert [p.name for p in serial] == [p.name for p in forked]
    for a, b in zip(serial, forked):
        if a.suffix == ".xlsx":          # the workbook's own timestamp differs; cells do not
            assert _cells(a) == _cells(b), a.name
        else:
            assert a.read_bytes() == b.read_bytes(), a.name


def test_the_figure_set_is_complete(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("openpyxl")
    from npusim.report import kperf as rk
    from npusim.report import kperf_power as kpp
    for system_power, extra in ((False, []), (True, [kpp.PNG_SYSTEM_POWER])):
        result = _result(system_power)
        names = [n for n, _ in rk.figures(result)]
        assert names == [rk.PNG_DECODE, rk.PNG_PER_CHIP, rk.PNG_TTFT, rk.PNG_POWER,
                         rk.PNG_EFFICIENCY, kpp.PNG_CARD_POWER, *extra,
                         kpp.PNG_ENERGY_PER_TOKEN]
        out = tmp_path / str(system_power)
        paths = rk.write_kperf(result, out)
        assert [p.name for p in paths] == [rk.XLSX, rk.CSV, *names]
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
        for p in paths[2:]:
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        (out / "power").mkdir()
        assert [p.name for p in kpp.plot_power(result, out / "power")] == names[5:]


@pytest.mark.parametrize("layout", ["fixed", "constrained"])
def test_save_figure_draws_the_pixels_savefig_draws(tmp_path, layout):
    """save_figure lays a constrained-layout PNG out and draws it once; matplotlib's savefig
    draws it twice. A fixed layout (the K-Perf figures' own) has no engine: one draw either
    way. The files agree byte for byte, and the figure keeps its layout engine."""
    pytest.importorskip("matplotlib")
    from npusim.figures import save_figure
    from npusim.report import kperf as rk
    result = _result(system_power=True)
    for name, make in rk.figures(result):
        ours, theirs = make(result, layout=layout), make(result, layout=layout)
        engine = ours.get_layout_engine()
        assert (engine is None) == (layout == "fixed")
        save_figure(ours, tmp_path / f"ours_{name}")
        theirs.savefig(tmp_path / f"theirs_{name}")
        assert (tmp_path / f"ours_{name}").read_bytes() == \
            (tmp_path / f"theirs_{name}").read_bytes(), name
        assert ours.get_layout_engine() is engine


@pytest.mark.parametrize("rc", [{"savefig.bbox": "tight"}, {"figure.autolayout": True}])
def test_save_figure_under_rc_settings_is_savefig(tmp_path, rc):
    """rc settings that change how savefig lays out take matplotlib's own path."""
    mpl = pytest.importorskip("matplotlib")
    from npusim.figures import save_figure
    from npusim.report import kperf as rk
    result = _result()
    with mpl.rc_context(rc):
        save_figure(rk.ttft_figure(result, layout="constrained"), tmp_path / "ours.png")
        rk.ttft_figure(result, layout="constrained").savefig(tmp_path / "theirs.png")
    assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "theirs.png").read_bytes()


# ------------------------------------------------------------------ the runner itself

def _write(path: Path, text: str = "x") -> Path:
    path.write_text(text)
    return path


def _fails(message: str):
    raise OutputError(message)


@pytest.mark.parametrize("processes", [1, 2])
def test_paths_come_back_in_the_writers_order(tmp_path, processes):
    writers = [lambda i=i: _write(tmp_path / f"{i}.txt", str(i)) for i in range(7)]
    paths = run_writers(writers, processes)
    assert [p.name for p in paths] == [f"{i}.txt" for i in range(7)]
    assert [p.read_text() for p in paths] == [str(i) for i in range(7)]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_writers_error_is_raised_as_it_was(tmp_path, processes):
    writers = [lambda: _write(tmp_path / "a"), lambda: _fails("cannot write b: full"),
               lambda: _write(tmp_path / "c"), lambda: _fails("cannot write d: full")]
    with pytest.raises(OutputError, match="^cannot write b: full$"):
        run_writers(writers, processes)
    assert (tmp_path / "a").exists()


def _split(in_parent, in_child):
    """Writers that run ``in_child`` in a forked copy and ``in_parent`` here, the parent's
    waiting until a child has taken one: so a child surely runs at least one writer."""
    import multiprocessing as mp
    parent, taken = os.getpid(), mp.get_context("fork").Event()

    def writer(i):
        if os.getpid() != parent:
            taken.set()
            return in_child(i)
        assert taken.wait(120), "no forked process took a writer"
        return in_parent(i)
    return writer


@needs_fork
def test_an_error_in_a_forked_writer_arrives_as_raised(tmp_path):
    def fail(i):
        raise OutputError(f"cannot write {i}: full")

    w = _split(lambda i: _write(tmp_path / f"{i}"), fail)
    with pytest.raises(OutputError, match=r"^cannot write \d: full$"):
        run_writers([lambda i=i: w(i) for i in range(6)], 2)


@needs_fork
def test_an_unpicklable_error_in_a_forked_writer_still_arrives(tmp_path):
    class Local(Exception):              # a local class cannot be pickled
        pass

    def fail(i):
        raise Local(f"only in the child {i}")

    w = _split(lambda i: _write(tmp_path / f"{i}"), fail)
    with pytest.raises(RuntimeError, match=r"(?s)forked process.*Local: only in the child"):
        run_writers([lambda i=i: w(i) for i in range(6)], 2)


@needs_fork
def test_a_dead_child_leaves_its_files_to_the_parent(tmp_path):
    def die(i):
        os._exit(3)                      # the forked copy dies mid-report

    w = _split(lambda i: _write(tmp_path / f"{i}", str(i)), die)
    paths = run_writers([lambda i=i: w(i) for i in range(6)], 2)
    assert [p.read_text() for p in paths] == [str(i) for i in range(6)]


@needs_fork
def test_a_failed_fork_leaves_the_files_to_this_process(tmp_path, monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    paths = run_writers([lambda i=i: _write(tmp_path / f"{i}", str(i)) for i in range(4)], 2)
    assert [p.read_text() for p in paths] == ["0", "1", "2", "3"]


def test_no_fork_with_another_thread_running():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not can_fork()
        assert processes_for(8, 4) == 1
    finally:
        stop.set()
        t.join()


def _forks_in_a_daemon(send) -> None:
    send.send((can_fork(), [p.name for p in run_writers([lambda: Path("a"),
                                                         lambda: Path("b")], 2)]))


@needs_fork
def test_a_daemonic_worker_writes_serially():
    """A pool's worker (daemonic) may not have children: it writes the files itself."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_forks_in_a_daemon, args=(send,), daemon=True)
    worker.start()
    send.close()                         # EOF here if the worker dies before answering
    assert recv.poll(120), "the worker did not answer"
    assert recv.recv() == (False, ["a", "b"])
    worker.join()
    assert worker.exitcode == 0


@pytest.mark.parametrize("running, free", [(1, 2), (2, 1), (3, 1), (9, 1), (0, 2)])
def test_busy_cores_are_left_alone(monkeypatch, running, free):
    """On 2 cores, the writers fork only while no other process is runnable now (the moment's
    count: a high 1-minute average left by work that has ended does not count)."""
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    monkeypatch.setattr(parallel, "runnable_now", lambda: running)
    monkeypatch.setattr(os, "getloadavg", lambda: (4.0, 4.0, 4.0))
    assert parallel.idle_cores() == free
    assert processes_for(8) == (free if can_fork() else 1)
    assert processes_for(8, 2) == (2 if can_fork() else 1)   # asked for: as asked


def test_runnable_now_reads_this_machine():
    n = parallel.runnable_now()
    assert n is None or n >= 1      # this process, at least, is running as it reads


@pytest.mark.parametrize("load, free", [(0.0, 2), (1.0, 2), (1.4, 2), (1.6, 1), (4.0, 1)])
def test_busy_cores_by_load_average_without_proc(monkeypatch, load, free):
    """Without /proc/loadavg, the 1-minute load average beyond this process decides."""
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    monkeypatch.setattr(parallel, "runnable_now", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert parallel.idle_cores() == free
    assert processes_for(8) == (free if can_fork() else 1)
    assert processes_for(8, 2) == (2 if can_fork() else 1)   # asked for: as asked


def test_processes_never_exceed_the_jobs_or_go_below_one():
    assert processes_for(1) == 1
    assert processes_for(1, 4) == 1
    assert processes_for(5, 0) == 1
    assert 1 <= processes_for(8) <= parallel.MAX_PROCESSES


# ------------------------------------------------------------------ line endings, start-up

def test_csv_holds_no_carriage_return(tmp_path):
    rows = [{"a": "one\r\ntwo", "b": "three\rfour", "c": 1.5},
            {"a": "\r=1+1", "b": None, "c": "plain"}]
    data = write_csv(tmp_path / "x.csv", ["a", "b", "c"], rows).read_bytes()
    assert b"\r" not in data
    assert data == b'a,b,c\n"one\ntwo","three\nfour",1.5\n"\'\n=1+1",,plain\n'


def test_kperf_csv_holds_no_carriage_return(tmp_path):
    from npusim.report.kperf import write_csv as kperf_csv
    result = _result()
    result.records[0]["status"] = "unsupported: a message\r\nfrom a tool\r"
    assert b"\r" not in kperf_csv(result, tmp_path / "k.csv").read_bytes()


HEAVY = ("networkx", "matplotlib", "numba", "onnx", "openpyxl", "scipy", "pint", "numpy")


def test_help_imports_no_heavy_package():
    probe = ("import sys\n"
             "from npusim.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"


def test_a_shape_error_is_still_one_line(cli, monkeypatch):
    """``main`` imports the IR's ShapeError only when an error reaches it: still one line."""
    from npusim import cli as cli_module
    from npusim.ir import ShapeError

    def raise_shape(args):
        raise ShapeError("operand x: shape (2, 3) does not match (3, 2)")

    monkeypatch.setattr(cli_module, "cmd_models", raise_shape)
    code, out, err = cli("models")
    assert code == 2
    assert err == "npusim: error: operand x: shape (2, 3) does not match (3, 2)\n"


def test_other_value_errors_are_not_swallowed(cli, monkeypatch):
    from npusim import cli as cli_module

    def raise_value(args):
        raise ValueError("a bug")

    monkeypatch.setattr(cli_module, "cmd_models", raise_value)
    with pytest.raises(ValueError, match="a bug"):
        cli("models")
