"""Sweeps end to end: one point's metrics, the local and Dask executors, resuming after a kill.

The store's own crash safety (a writer killed mid-commit) is tests/test_dse_store.py's; here the
whole driver and its workers are killed, and the store must still end with every point once.
"""
from __future__ import annotations

import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from npusim.dse.evaluate import Evaluator, violations
from npusim.dse.run import chunk_tasks, run_sweep
from npusim.dse.spec import load_spec, parse_spec
from npusim.dse.store import load
from npusim.errors import NpusimError

ROOT = Path(__file__).resolve().parents[1]

# a tiny LLM on the teaching chip: fast enough for many points, real engine underneath
TINY = {
    "name": "tiny",
    "base": "edu",
    "fields": {"cores.sram": ["128 KiB", "256 KiB", "512 KiB"],
               "dram.bandwidth": ["12.8 GB/s", "25.6 GB/s"]},
    "workloads": [{"name": "dec", "llm": "tiny-llama", "phase": "decode", "batch": 2,
                   "kv_len": 16, "precision": "int8"}],
    "objectives": [{"tokens_per_s": "max"}, {"energy_per_token_j": "min"}],
    "strategy": {"kind": "grid"},
}


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def spec_of(tmp_path, **changes):
    return load_spec(write_spec(tmp_path, {**TINY, **changes}))


def clean_error(code, err):
    return code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err \
        and "Traceback" not in err


# ----------------------------------------------------------------------------- one point
def test_decode_point_metrics_follow_from_the_run(tmp_path):
    """tokens/s, energy per token, perf/W and perf/mm^2 are the run's totals divided as
    their names say; the same run through the public API gives the same latency."""
    import npusim
    spec = spec_of(tmp_path)
    ev = Evaluator(spec)
    (rec,) = ev.evaluate(0, {"cores.sram": "256 KiB", "dram.bandwidth": "25.6 GB/s"})
    m = rec["metrics"]
    assert rec["error"] is None and rec["feasible"] and rec["violations"] == []
    r = npusim.simulate("tiny-llama", "edu", phase="decode", batch=2, kv_len=16, dtype="int8",
                        overrides={"cores.sram": "256 KiB", "dram.bandwidth": "25.6 GB/s"})
    assert m["latency_s"] == pytest.approx(r.latency_s, rel=1e-12)
    assert m["tpot_s"] == m["latency_s"]
    assert m["tokens_per_s"] == pytest.approx(2 / r.latency_s)
    assert m["energy_per_token_j"] == pytest.approx(r.totals()["energy_j"] / 2)
    assert m["perf_per_w"] == pytest.approx(m["tokens_per_s"] / m["power_w"])
    assert m["perf_per_mm2"] == pytest.approx(m["tokens_per_s"] / m["area_mm2"])
    arch = npusim.load_arch("edu", {"cores.sram": "256 KiB"})
    assert m["sram_bytes"] == arch.cores.count * 256 * 1024 + arch.shared_sram
    assert "ttft_s" not in m and "inferences_per_s" not in m


def test_key_is_the_design_not_its_spelling(tmp_path):
    """The same design written two ways is one key; another design or workload is another."""
    ev = Evaluator(spec_of(tmp_path))
    a = ev.evaluate(0, {"cores.sram": "256 KiB", "dram.bandwidth": "25.6 GB/s"})[0]["key"]
    b = ev.evaluate(1, {"cores.sram": "262144 B", "dram.bandwidth": "25600 MB/s"})[0]["key"]
    c = ev.evaluate(2, {"cores.sram": "512 KiB", "dram.bandwidth": "25.6 GB/s"})[0]["key"]
    assert a == b != c


def test_a_point_the_arch_refuses_is_stored_with_its_error(tmp_path):
    ev = Evaluator(spec_of(tmp_path))
    (rec,) = ev.evaluate(0, {"cores.sram": "256 KiB", "dram.bandwidth": "25.6 GB/s",
                             "power.idle": "50 W"})
    assert rec["error"] and "idle" in rec["error"] and "\n" not in rec["error"]
    assert rec["metrics"] == {} and rec["feasible"] is False and len(rec["key"]) == 64


def test_constraints_mark_and_name_what_breaks():
    class C:  # a constraint as the spec gives it
        def __init__(self, metric, op, limit, text):
            self.metric, self.op, self.limit, self.text = metric, op, limit, text
    cs = [C("power_w", "<=", 150.0, "150 W"), C("area_mm2", "<=", 100.0, "100 mm^2"),
          C("tokens_per_s", ">=", 10.0, "10 tok/s")]
    ok = {"power_w": 150.0, "area_mm2": 99.0, "tokens_per_s": 10.0}
    assert violations(ok, cs) == []
    bad = violations({"power_w": 151.0, "area_mm2": math.nan, "tokens_per_s": 9.0}, cs)
    assert len(bad) == 3 and bad[0].startswith("power_w 151 > 150 W")
    assert "unknown" in bad[1] and "<" in bad[2]
    over = violations({"dram_need_bytes": 2e9, "dram_bytes": 1e9}, [])
    assert len(over) == 1 and "do not fit" in over[0]


def test_chunks_cover_every_task_once():
    for n in (0, 1, 7, 64, 1001):
        tasks = list(range(n))
        for w in (1, 2, 8):
            chunks = chunk_tasks(tasks, w)
            assert [t for c in chunks for t in c] == tasks
            assert all(1 <= len(c) <= 8 for c in chunks)


# ----------------------------------------------------------------------------- local runs
def test_grid_runs_then_resumes_without_rerunning(tmp_path):
    spec = spec_of(tmp_path)
    s1 = run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    assert (s1.points, s1.evaluated, s1.records, s1.failed) == (6, 6, 6, 0)
    rows = load(tmp_path / "out")
    assert len(rows) == 6 and len({r["key"] for r in rows}) == 6
    assert sorted(r["point"] for r in rows) == list(range(6))
    s2 = run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    assert (s2.stored_before, s2.evaluated, s2.records) == (6, 0, 0)
    assert len(load(tmp_path / "out")) == 6


def test_a_spec_with_another_field_shows_stored_points_as_its_own(tmp_path):
    """Points an earlier, narrower spec stored are this spec's points when found again: its
    numbering and every one of its fields, in the run's rows and in the store."""
    import npusim
    narrow = {**TINY, "fields": {"cores.sram": ["128 KiB", "256 KiB"]}}
    s1 = run_sweep(spec_of(tmp_path, **narrow), tmp_path / "out", workers=1, progress=False)
    assert (s1.points, s1.evaluated) == (2, 2)
    # edu's own DRAM bandwidth is one of the two values: those two designs are stored already
    base_bw = npusim.load_arch("edu").dram.bandwidth
    wide = {**TINY, "fields": {"cores.sram": ["128 KiB", "256 KiB"],
                               "dram.bandwidth": [f"{base_bw} B/s", f"{2 * base_bw} B/s"]}}
    s2 = run_sweep(spec_of(tmp_path, **wide), tmp_path / "out", workers=1, progress=False)
    assert (s2.points, s2.stored_before, s2.evaluated) == (4, 2, 2)
    rows = load(tmp_path / "out")
    assert sorted(r["point"] for r in rows) == [0, 1, 2, 3]
    assert all(r["dram.bandwidth"] in (base_bw, 2 * base_bw) for r in rows)
    assert {(r["cores.sram"], r["dram.bandwidth"]) for r in rows} == {
        (s, b) for s in (128 * 1024, 256 * 1024) for b in (base_bw, 2 * base_bw)}
    s3 = run_sweep(spec_of(tmp_path, **wide), tmp_path / "out", workers=1, progress=False)
    assert (s3.stored_before, s3.evaluated) == (4, 0)
    assert load(tmp_path / "out") == rows


def test_two_local_processes_give_what_one_gives(tmp_path):
    spec = spec_of(tmp_path)
    run_sweep(spec, tmp_path / "a", workers=1, progress=False)
    run_sweep(spec, tmp_path / "b", workers=2, progress=False)
    one = {r["key"]: r for r in load(tmp_path / "a")}
    two = {r["key"]: r for r in load(tmp_path / "b")}
    assert one.keys() == two.keys()
    for k, r in one.items():
        assert r["tokens_per_s"] == two[k]["tokens_per_s"]
        assert r["energy_per_token_j"] == two[k]["energy_per_token_j"]


def test_failing_points_are_stored_and_counted(tmp_path):
    """Each value is valid on the base alone (the spec checks that), but one combination is
    not: an idle power above the TDP. That point is stored with the arch's error."""
    spec = spec_of(tmp_path, fields={"power.tdp": ["5 W", "20 W"], "power.idle": ["0.5 W", "8 W"]})
    s = run_sweep(spec, tmp_path / "o", workers=1, progress=False)
    assert (s.evaluated, s.records, s.failed) == (4, 4, 1)
    rows = load(tmp_path / "o")
    (bad,) = [r for r in rows if r["error"] is not None]
    assert bad["power.tdp"] == 5.0 and bad["power.idle"] == 8.0 and "idle" in bad["error"]


def test_infeasible_points_are_kept_and_marked(tmp_path):
    spec = spec_of(tmp_path, constraints={"tokens_per_s": {"min": 1e30}})
    s = run_sweep(spec, tmp_path / "o", workers=1, progress=False)
    rows = load(tmp_path / "o")
    assert s.infeasible == 6 and len(rows) == 6 and not any(r["feasible"] for r in rows)


def test_sensitivity_phase_adds_one_at_a_time_neighbours(tmp_path):
    spec = spec_of(tmp_path, fields={"cores.sram": {"low": "128 KiB", "high": "1 MiB",
                                                    "scale": "log"},
                                     "dram.bandwidth": ["12.8 GB/s", "25.6 GB/s"]},
                   strategy={"kind": "random", "samples": 5, "seed": 3}, sensitivity=True)
    s = run_sweep(spec, tmp_path / "o", workers=1, progress=False)
    assert s.phases.get("sensitivity", 0) >= 1
    rows = load(tmp_path / "o")
    assert {r["phase"] for r in rows} == {"sample", "sensitivity"}


def test_cli_sweep_writes_store_and_summary(tmp_path, cli):
    p = write_spec(tmp_path, TINY)
    code, out, err = cli("sweep", str(p), "--out", str(tmp_path / "o"), "--workers", "1",
                         "--no-report")
    assert code == 0, err
    assert "6 design points" in out and (tmp_path / "o" / "sweep.sqlite").exists()
    code, out, err = cli("sweep", "export", str(tmp_path / "o"), "--format", "csv")
    assert code == 0 and (tmp_path / "o" / "sweep.csv").exists()


@pytest.mark.parametrize("argv", [
    ["sweep", "nope.yaml"],
    ["sweep", "report"],
    ["sweep", "a.yaml", "b.yaml"],
    ["sweep", "SPEC", "--workers", "0"],
    ["sweep", "SPEC", "--scheduler", "127.0.0.1:1"],
    ["sweep", "SPEC", "--scheduler", "tcp://127.0.0.1:1"],
    ["sweep", "SPEC", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
])
def test_cli_bad_sweep_input_is_one_clear_line(tmp_path, cli, argv):
    if "--scheduler" in argv:
        pytest.importorskip("distributed")
    p = write_spec(tmp_path, TINY)
    argv = [str(p) if a == "SPEC" else a for a in argv]
    code, out, err = cli(*argv, "--out", str(tmp_path / "o"), "--no-progress")
    assert clean_error(code, err), err


# ----------------------------------------------------------------------------- killed runs
def _slow_spec(tmp_path: Path, n: int = 12) -> Path:
    """A sweep slow enough to be killed in the middle (a few tenths of a second a point): a
    decode step and a small serving scenario of Qwen3 4B on the teaching chip."""
    sizes = [f"{64 * (i + 2)} KiB" for i in range(n)]
    return write_spec(tmp_path, {
        "name": "slow", "base": "edu",
        "fields": {"cores.sram": sizes},
        "workloads": [{"name": "dec", "llm": "qwen3-4b", "phase": "decode", "batch": 4,
                       "kv_len": 256, "precision": "int8"},
                      {"name": "serve", "kperf": {"model": "qwen3-4b", "input_len": 128,
                                                  "output_len": 64, "users": 4,
                                                  "precision": "int8"}}],
        "objectives": [{"tpot_s": "min"}],
        "strategy": {"kind": "grid"}})


def _count(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.Error:
        return 0


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wait_for(pred, timeout, what):
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > timeout:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _exactly_once(out: Path, n: int, workloads=("dec", "serve")):
    rows = load(out)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == n * len(workloads), (len(keys), len(set(keys)), n)
    for w in workloads:
        assert sorted(r["point"] for r in rows if r["workload"] == w) == list(range(n))
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]]
    with sqlite3.connect(out / "sweep.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_stores_every_point_once(tmp_path):
    spec = _slow_spec(tmp_path)
    out = tmp_path / "o"
    argv = [sys.executable, "-m", "npusim.cli", "sweep", str(spec), "--out", str(out),
            "--workers", "2", "--no-progress", "--no-report"]
    kills = 0
    for at in (1, 4):  # kill once early, once later
        p = subprocess.Popen(argv, env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            _wait_for(lambda: _count(out / "sweep.sqlite") >= at or p.poll() is not None,
                      240, f"{at} stored points")
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)  # the driver and its workers, no warning
                kills += 1
            p.wait()
    assert kills >= 1, "the sweep finished before it could be killed; make it slower"
    assert _count(out / "sweep.sqlite") < 24
    done = subprocess.run(argv, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    _exactly_once(out, 12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dask_cluster_with_a_worker_killed_mid_sweep(tmp_path):
    """A real scheduler and two worker processes on loopback; one worker is SIGKILLed once
    points are coming back; the sweep finishes on the other with every point once."""
    pytest.importorskip("distributed")
    spec = _slow_spec(tmp_path)
    out = tmp_path / "o"
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = []

    def start(*argv):
        p = subprocess.Popen([sys.executable, "-m", *argv], env=_env(), cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        procs.append(p)
        return p
    try:
        start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
              address.rsplit(":", 1)[1], "--no-dashboard")
        workers = [start("distributed.cli.dask_worker", address, "--nthreads", "1",
                         "--nworkers", "1", "--no-nanny", "--no-dashboard")
                   for _ in range(2)]
        from distributed import Client
        _wait_for(lambda: _workers(Client, address) >= 2, 120, "two Dask workers")
        driver = subprocess.Popen(
            [sys.executable, "-m", "npusim.cli", "sweep", str(spec), "--out", str(out),
             "--scheduler", address, "--no-progress", "--no-report"],
            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        procs.append(driver)
        _wait_for(lambda: _count(out / "sweep.sqlite") >= 2 or driver.poll() is not None,
                  300, "points back from the cluster")
        assert driver.poll() is None, "the sweep finished before a worker could be killed"
        os.killpg(workers[0].pid, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=600)
        assert driver.returncode == 0, stderr
        assert "Dask cluster" in stdout
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    _exactly_once(out, 12)


def _workers(Client, address) -> int:
    try:
        with Client(address, timeout=2, set_as_default=False) as c:
            return len(c.scheduler_info(n_workers=-1)["workers"])
    except Exception:  # noqa: BLE001 - not up yet
        return 0


def _spawned_workers(parent: int) -> list[int]:
    """The worker processes a ProcessPoolExecutor started under ``parent`` (Linux /proc):
    its children other than multiprocessing's resource tracker."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) == parent and "resource_tracker" not in cmd:
            out.append(int(d.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_local_worker_killed_mid_sweep_is_replaced(tmp_path):
    """SIGKILL one of the two local worker processes while points come back: the pool is
    started again, the chunks in flight run again, every point is stored once, none failed."""
    import threading
    spec = load_spec(_slow_spec(tmp_path))
    out = tmp_path / "o"
    done = {}
    t = threading.Thread(target=lambda: done.setdefault(
        "s", run_sweep(spec, out, workers=2, progress=False)))
    t.start()
    _wait_for(lambda: _count(out / "sweep.sqlite") >= 2 or not t.is_alive(), 300,
              "points back from the workers")
    assert t.is_alive(), "the sweep finished before a worker could be killed"
    victims = _spawned_workers(os.getpid())
    assert victims, "no worker process found"
    os.kill(victims[0], signal.SIGKILL)
    t.join(600)
    assert not t.is_alive()
    s = done["s"]
    assert s.failed == 0 and s.evaluated == 12
    _exactly_once(out, 12)


def test_nsga2_is_reproducible_and_resumes_the_same_search(tmp_path):
    """The same seed asks the same points whatever the worker count; a second run finds
    every point stored and asks nothing new (its generations are told the stored results)."""
    pytest.importorskip("optuna")
    spec = spec_of(tmp_path, fields={"cores.sram": {"low": "64 KiB", "high": "1 MiB",
                                                    "scale": "log"},
                                     "dram.bandwidth": ["12.8 GB/s", "25.6 GB/s", "51.2 GB/s"]},
                   strategy={"kind": "nsga2", "population": 4, "generations": 3, "seed": 7})
    s1 = run_sweep(spec, tmp_path / "a", workers=1, progress=False)
    s2 = run_sweep(spec, tmp_path / "b", workers=2, progress=False)

    def asked(out):
        return sorted((r["point"], r["cores.sram"], r["dram.bandwidth"]) for r in load(out))
    assert asked(tmp_path / "a") == asked(tmp_path / "b")
    assert s1.evaluated == s2.evaluated > 4
    again = run_sweep(spec, tmp_path / "a", workers=1, progress=False)
    assert again.evaluated == 0 and again.stored_before == s1.evaluated
    other = run_sweep(spec_of(tmp_path, fields=spec_fields(spec),
                              strategy={"kind": "nsga2", "population": 4, "generations": 3,
                                        "seed": 8}), tmp_path / "c", workers=1, progress=False)
    assert asked(tmp_path / "c") != asked(tmp_path / "a") and other.evaluated > 0


def spec_fields(spec) -> dict:
    """A spec's fields back in YAML form (values or ranges)."""
    out = {}
    for f in spec.fields:
        out[f.path] = list(f.values) if f.values else {"low": f.low, "high": f.high,
                                                       "scale": f.scale}
    return out


@pytest.mark.parametrize("changes, key", [
    ({"objectives": [{"ttft_s": "min"}]}, "objectives[0]: ttft_s"),
    ({"objectives": [{"cost": "min"}]}, "objectives[0]: cost"),
    ({"constraints": {"inferences_per_s": {"min": 1}}}, "constraints.inferences_per_s"),
])
def test_a_metric_the_workload_cannot_give_is_refused_before_running(tmp_path, changes, key):
    spec = spec_of(tmp_path, **changes)
    with pytest.raises(NpusimError) as e:
        run_sweep(spec, tmp_path / "o", workers=1, progress=False)
    assert key in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "o" / "sweep.sqlite").exists()
