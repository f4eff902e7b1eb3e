"""The fast serving paths give the slow paths' numbers to the bit (issue 14 item 5).

* ``StepCostModel.decode_run`` (a stretch of decode steps costed as arrays) equals one
  ``step`` call per step, for the plain and the power-band cost model, tensor- and
  pipeline-parallel;
* ``simulate_serving`` with its fast paths (stretches, costed by ``decode_run``) equals the
  full scheduler step by step (``fast=False``) and the stretch loop of a cost model without
  ``decode_run``: closed and open loop, vLLM and no-evict policies, a serving stack's host gap,
  preemption, the power band's per-step log;
* ``kperf`` on worker processes equals ``kperf`` in one process, row for row.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.errors import NpusimError
from npusim.workloads import kperf as kp
from npusim.workloads import stepcost as sc
from npusim.workloads.powerband import BandCostModel
from npusim.workloads.serving import Scenario, ServingConfig, StepLog, simulate_serving
from npusim.workloads.stepcost import KV, StepCostModel

MODEL = "tiny-llama"
# every per-step array of the log
STEP_LOG = tuple(f.name for f in dataclasses.fields(StepLog) if f.name != "kv_blocks_total")


@pytest.fixture(scope="module")
def models():
    """Plain and band cost models, one chip and a two-stage pipeline (tp=1, pp=2)."""
    out = {}
    for kind in (StepCostModel, BandCostModel):
        out[kind.__name__, 1] = kind(MODEL, "rngd")
        out[kind.__name__, 2] = kind(MODEL, "rngd", parallel="tp=1,pp=2")
    return out


def _by_step(model, decode, k):
    """What the step loop gets: seconds, joules and band parts of each step."""
    log = model.start_log() if isinstance(model, BandCostModel) else None
    secs, joules = [], []
    for j in range(k):
        r = model.step([], [d + j for d in decode])
        secs.append(r.seconds)
        joules.append(r.energy_j)
    return secs, joules, log


@pytest.mark.parametrize("kind", ["StepCostModel", "BandCostModel"])
@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("decode, k", [
    ([1], 40),                       # from the bottom of the KV grid, across its first points
    ([16, 32, 64], 70),              # starting on grid points
    ([5, 200, 333, 17, 90], 130),    # a mixed batch across several grid cells
    (list(range(1, 40)), 3),         # a wide batch between BATCH grid points
])
def test_decode_run_equals_the_step_loop(models, kind, stages, decode, k):
    model = models[kind, stages]
    secs, joules, log = _by_step(model, decode, k)
    run = model.decode_run(decode, k)
    assert run.seconds.tolist() == secs
    assert run.energy_j.tolist() == joules
    if log is not None:
        kept = []
        model._band_log = kept
        run = model.decode_run(decode, k)
        run.keep(k - 1)
        assert kept == log[:k - 1]


def test_decode_run_declines_what_it_cannot_reproduce(models):
    model = models["StepCostModel", 1]
    assert model.decode_run([0, 5], 3) is None      # a KV length below 1 is raised to 1

    class Doubled(StepCostModel):
        def dense(self, tokens, **kw):
            t, e = super().dense(tokens, **kw)
            return 2 * t, 2 * e

    assert Doubled(MODEL, "rngd").decode_run([8], 4) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10.0, 3e5, allow_nan=False), min_size=1, max_size=30),
       st.lists(st.sampled_from(KV), max_size=5))
def test_bracket_many_is_bracket_element_by_element(xs, on_grid):
    x = np.array(xs + [float(g) for g in on_grid])
    lo, hi, w = sc._bracket_many(KV, x)
    for i, v in enumerate(x.tolist()):
        assert (KV[lo[i]], KV[hi[i]], float(w[i])) == sc._bracket(KV, v)


def _neumaier(values):
    """Python >= 3.12's sum() of floats, written out (the reference for the emulation)."""
    total, c = 0.0 + values[0], 0.0
    for x in values[1:]:
        t = total + x
        c += (total - t) + x if abs(total) >= abs(x) else (x - t) + total
        total = t
    return total + c if c and math.isfinite(c) else total


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=9))
def test_pysum_adds_as_the_interpreter_and_as_neumaier(values):
    cols = [np.array([v]) for v in values]
    assert sc._pysum(cols, True)[0] == sum(values)
    old = sc._SUM_COMPENSATED
    try:
        sc._SUM_COMPENSATED = True
        assert sc._pysum(cols, True)[0] == _neumaier(values)
        sc._SUM_COMPENSATED = False
        seq = 0.0
        for v in values:
            seq = seq + v
        assert sc._pysum(cols, True)[0] == seq
    finally:
        sc._SUM_COMPENSATED = old


class _NoRun:
    """A cost model seen through the StepCost protocol only (no decode_run): the stretch
    loop."""

    def __init__(self, model):
        self._m = model
        for name in ("kv_capacity_tokens", "kv_block_tokens", "chips", "static_power_w",
                     "tdp_w", "spec", "arch", "parallel"):
            setattr(self, name, getattr(model, name))

    def step(self, prefill, decode):
        return self._m.step(prefill, decode)


SCENARIOS = [
    (dict(input_len=60, output_len=150, users=12), None),
    (dict(input_len=90, output_len=120, users=9), ServingConfig(max_num_seqs=5,
                                                                max_num_batched_tokens=64)),
    (dict(input_len=70, output_len=100, rate=25.0, num_requests=30), None),   # open loop
    (dict(input_len=100, output_len=200, users=12), ServingConfig(policy="no_evict")),
    (dict(input_len=64, output_len=180, users=10), ServingConfig(stack="vllm-0.5")),
]


@pytest.mark.parametrize("kind", ["StepCostModel", "BandCostModel"])
@pytest.mark.parametrize("stages", [1, 2])
@pytest.mark.parametrize("scenario, config", SCENARIOS)
@pytest.mark.parametrize("capacity", [None, 16 * 40])
def test_vectorised_stretches_equal_the_full_scheduler(models, kind, stages, scenario, config,
                                                        capacity):
    model = models[kind, stages]
    saved = model.kv_capacity_tokens
    if capacity is not None:          # a cache this small preempts (vllm) or queues (no_evict)
        model.kv_capacity_tokens = capacity
    try:
        results = {}
        for path in ("vector", "loop", "slow"):
            band = model.start_log() if kind == "BandCostModel" else None
            cost = _NoRun(model) if path == "loop" else model
            # the Python paths (the compiled loop is held to them in test_serving_loop.py)
            r = simulate_serving(cost, Scenario(**scenario), config, fast=path != "slow",
                                 compiled=False)
            results[path] = r, band
    finally:
        model.kv_capacity_tokens = saved
    fast, band = results["vector"]
    if capacity is not None and (config is None or config.policy == "vllm"):
        assert fast.summary["preemptions"] > 0 or scenario.get("rate")
    for path in ("loop", "slow"):
        other, other_band = results[path]
        assert fast.requests == other.requests
        for name in STEP_LOG:
            np.testing.assert_array_equal(getattr(fast.steps, name), getattr(other.steps, name))
        assert fast.summary.keys() == other.summary.keys()
        for key, v in fast.summary.items():
            w = other.summary[key]
            assert v == w or (v != v and w != w), key
        assert band == other_band
    assert band is None or len(band) == len(fast.steps.start_s)


SMALL = dict(input_lens=(32, 64), output_lens=(24, 90), users=(1, 3, 8))


@pytest.mark.parametrize("vs, precisions", [((), ("bf16", "int4")), (("h100",), ("bf16", "int4")),
                                             ((), ("bf16",))])   # one cost model: split by input
def test_kperf_on_workers_equals_one_process(vs, precisions):
    one = kp.kperf("rngd", MODEL, precisions=precisions, vs=vs, jobs=1, **SMALL)
    two = kp.kperf("rngd", MODEL, precisions=precisions, vs=vs, jobs=2, **SMALL)
    assert [r["status"] for r in one.records] == [r["status"] for r in two.records]
    assert len(one.records) == len(two.records) == (1 + len(vs)) * len(precisions) * 12
    for a, b in zip(one.records, two.records):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key
    assert one.runs == two.runs


def test_kperf_jobs_knob(monkeypatch):
    monkeypatch.delenv(kp.JOBS_ENV, raising=False)
    assert kp._jobs(None) == 1
    assert kp._jobs(3) == 3 and kp._jobs("2") == 2
    assert kp._jobs("auto") >= 1
    monkeypatch.setenv(kp.JOBS_ENV, "2")
    assert kp._jobs(None) == 2
    for bad in (0, "x", -1, True, 1.5):
        with pytest.raises(NpusimError, match="jobs"):
            kp._jobs(bad)


def test_kperf_worker_error_reaches_the_caller(monkeypatch):
    """An error a row cannot hold stops the run on workers as in one process."""
    def broken(cost, scenario, config):
        if scenario.users == 3:
            raise NpusimError("broken on purpose")
        return simulate_serving(cost, scenario, config)

    monkeypatch.setattr(kp, "_serving_api", lambda: (Scenario, ServingConfig, broken))
    for jobs in (1, 2):
        with pytest.raises(NpusimError, match="broken on purpose"):
            kp.kperf("rngd", MODEL, jobs=jobs, **SMALL)


# ------------------------------------------------------------------ the scheduler's kernels

_ints = st.integers(0, 60)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_ints, st.integers(0, 12), st.integers(0, 8), st.integers(0, 80),
                          _ints), max_size=12),
       st.integers(1, 50), st.integers(1, 120), st.integers(1, 16), st.integers(0, 6),
       st.integers(1, 14))
def test_scheduler_kernels_equal_their_twins(rows, inp, budget, block, floor, out):
    from npusim.kernels import serving as k
    a = lambda i: np.array([r[i] for r in rows], dtype=np.int64)  # noqa: E731
    comp, gen, blk, pdone, n = a(0), a(1), a(2), a(3), a(4)
    got = k.plan(comp, gen, blk, inp, budget, block, floor)
    ref = k.plan_ref(comp, gen, blk, inp, budget, block, floor)
    assert [got[0].tolist(), got[1].tolist(), int(got[2]), int(got[3])] == list(ref)
    got = k.advance(comp, gen, pdone, n, inp, block, floor, out)
    ref = k.advance_ref(comp, gen, pdone, n, inp, block, floor, out)
    assert [x.tolist() for x in got] == list(ref)


def test_scheduler_kernel_by_hand():
    """Two running requests, a budget of 8: the decode takes 1 token, the prefill 7 of its 10;
    the decode samples its second (last) token, the prefill nothing yet."""
    from npusim.kernels import serving as k
    a = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    n, need, need_total, n_total = k.plan(a(10, 0), a(1, 0), a(1, 0), 10, 8, 16, 0)
    assert n.tolist() == [1, 7] and need.tolist() == [0, 1] and (need_total, n_total) == (1, 8)
    comp, gen, pdone, blk, flags, counts = k.advance(a(10, 0), a(1, 0), a(10, 0), n, 10, 16, 0, 2)
    assert flags.tolist() == [k.DECODE + k.SAMPLED + k.DONE, k.PREFILL]
    assert counts.tolist() == [7, 1, 2, 2, 1, 1]


def test_kernel_twins_agree_without_jit():
    """The kernels' tests pass with Numba switched off (plain Python, the same answers)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    here = Path(__file__).resolve()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-o", "addopts=", str(here), "-k",
                        "scheduler_kernels_equal or scheduler_kernel_by_hand"],
                       env=env, capture_output=True, text=True, cwd=here.parents[1])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout
