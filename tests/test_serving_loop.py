"""The compiled serving loop (npusim.kernels.serving_loop) gives the Python paths' numbers to
the bit (issue 14 item 5).

Its pure-Python twin is the serving simulation itself: ``simulate_serving(..., compiled=False)``
with the full scheduler step by step (``fast=False``) and with the vectorised decode stretches
(``fast=True``). Every request record, every column of the step log, every summary figure and
the power band's per-step parts must be equal, over closed loops with and without preemption,
the no-evict policy, a serving stack's host gap, tensor and pipeline parallelism, the plain and
the band cost model, and random scheduler limits.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.errors import NpusimError
from npusim.kernels import serving_loop as K
from npusim.workloads import kperf as kp
from npusim.workloads import serving_compiled
from npusim.workloads import stepcost as sc
from npusim.workloads.powerband import BandCostModel, band_parts
from npusim.workloads.serving import Scenario, ServingConfig, StepLog, simulate_serving
from npusim.workloads.stepcost import StepCostModel

MODEL = "tiny-llama"
# every per-step array of the log
STEP_LOG = tuple(f.name for f in dataclasses.fields(StepLog) if f.name != "kv_blocks_total")


@pytest.fixture(scope="module")
def models():
    """Plain and band cost models: one chip, a two-stage pipeline, and tp=2 over two."""
    out = {}
    for kind in (StepCostModel, BandCostModel):
        out[kind.__name__, "tp=1,pp=1"] = kind(MODEL, "rngd")
        out[kind.__name__, "tp=1,pp=2"] = kind(MODEL, "rngd", parallel="tp=1,pp=2")
        out[kind.__name__, "tp=2,pp=1"] = kind(MODEL, "rngd", parallel="tp=2,pp=1")
    return out


def _runs(model, scenario, config, capacity=None,
          paths=("compiled", "stepwise", "slow", "vector")):
    """The result and band log of each path ("stepwise": the compiled loop planning every
    step, without its decode stretches)."""
    saved = model.kv_capacity_tokens
    if capacity is not None:
        model.kv_capacity_tokens = capacity
    try:
        out = {}
        for path in paths:
            band = model.start_log() if isinstance(model, BandCostModel) else None
            serving_compiled.STRETCHES = path != "stepwise"
            r = simulate_serving(model, scenario, config, fast=path != "slow",
                                 compiled=path in ("compiled", "stepwise"))
            out[path] = r, band
        return out
    finally:
        model.kv_capacity_tokens = saved
        serving_compiled.STRETCHES = True


def _assert_same(a, b):
    assert a.requests == b.requests
    for name in STEP_LOG:
        x, y = getattr(a.steps, name), getattr(b.steps, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.summary.keys() == b.summary.keys()
    for key, v in a.summary.items():
        w = b.summary[key]
        assert type(v) is type(w), key
        assert v == w or (v != v and w != w), key


def _check(results):
    fast, band = results["compiled"]
    for path, (other, other_band) in results.items():
        _assert_same(fast, other)
        if band is not None:
            np.testing.assert_array_equal(band_parts(band), band_parts(other_band))
            if path not in ("compiled", "stepwise"):   # the Python paths log a tuple a step
                assert band_parts(other_band).tolist() == [list(p) for p in other_band]
    assert band is None or len(band_parts(band)) == len(fast.steps.start_s)
    return fast


def test_band_parts_reads_rows_and_blocks_in_order():
    rows = [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)]
    block = np.array([[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]])
    assert band_parts([]).shape == (0, 3)
    assert band_parts(rows).tolist() == [list(r) for r in rows]
    assert band_parts([block]) is not None and band_parts([block]).tolist() == block.tolist()
    mixed = band_parts([rows[0], block, rows[1]])
    assert mixed.tolist() == [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0], [10.0, 11.0, 12.0],
                              [4.0, 5.0, 6.0]]


SCENARIOS = [
    (dict(input_len=60, output_len=150, users=12), None),
    (dict(input_len=90, output_len=120, users=9), ServingConfig(max_num_seqs=5,
                                                                max_num_batched_tokens=64)),
    (dict(input_len=100, output_len=200, users=12), ServingConfig(policy="no_evict")),
    (dict(input_len=64, output_len=180, users=10), ServingConfig(stack="vllm-0.5")),
    (dict(input_len=300, output_len=40, users=20, num_requests=50, warmup=3), None),
    (dict(input_len=1, output_len=1, users=3), None),
]


@pytest.mark.parametrize("kind", ["StepCostModel", "BandCostModel"])
@pytest.mark.parametrize("layout", ["tp=1,pp=1", "tp=1,pp=2", "tp=2,pp=1"])
@pytest.mark.parametrize("scenario, config", SCENARIOS)
@pytest.mark.parametrize("capacity", [None, 16 * 40])
def test_compiled_loop_equals_the_python_paths(models, kind, layout, scenario, config,
                                                capacity):
    model = models[kind, layout]
    fast = _check(_runs(model, Scenario(**scenario), config, capacity))
    if capacity is not None and (config is None or config.policy == "vllm") \
            and scenario["input_len"] > 1:
        assert fast.summary["preemptions"] > 0     # the small cache exercised preemption


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inp=st.integers(1, 390), out=st.integers(1, 120), users=st.integers(1, 24),
       seqs=st.integers(1, 16), budget=st.integers(1, 600), blocks=st.integers(0, 60),
       policy=st.sampled_from(["vllm", "no_evict"]), layout=st.sampled_from(
           ["tp=1,pp=1", "tp=1,pp=2"]), band=st.booleans())
def test_compiled_loop_equals_the_full_scheduler_on_random_limits(models, inp, out, users,
                                                                   seqs, budget, blocks,
                                                                   policy, layout, band):
    model = models["BandCostModel" if band else "StepCostModel", layout]
    config = ServingConfig(max_num_seqs=seqs, max_num_batched_tokens=budget, policy=policy)
    need = -(-(inp + out) // model.kv_block_tokens)
    capacity = (need + blocks) * model.kv_block_tokens     # from one request's worth up
    try:
        results = _runs(model, Scenario(inp, out, users=users), config, capacity,
                        paths=("compiled", "stepwise", "slow"))
    except NpusimError as e:      # a budget too small to make progress is refused alike
        with pytest.raises(NpusimError, match=re.escape(str(e)[:40])):
            _runs(model, Scenario(inp, out, users=users), config, capacity, paths=("slow",))
        return
    _check(results)


def test_growing_every_array_changes_nothing(models, monkeypatch):
    """The output arrays start at one row and double as the run fills them."""
    model = models["BandCostModel", "tp=1,pp=2"]
    scenario = Scenario(120, 90, users=14)
    want = _runs(model, scenario, None, 16 * 30, paths=("slow",))
    monkeypatch.setattr(serving_compiled, "_LOG_ROWS", 1)
    original = serving_compiled._State.__init__

    def tiny(self, sim):
        original(self, sim)
        self.req_f, self.req_i = self.req_f[:len(sim.arrival)], self.req_i[:len(sim.arrival)]
        self.wait = self.wait[:len(sim.arrival)]
        self.compl = self.compl[:1]

    monkeypatch.setattr(serving_compiled._State, "__init__", tiny)
    got = _runs(model, scenario, None, 16 * 30, paths=("compiled",))
    _check({**got, **want})
    assert got["compiled"][0].summary["preemptions"] > 0


def test_tables_fill_lazily_and_are_kept(models):
    """A fresh cost model's tables start empty; a run fills only the points it needs, and a
    second run of the same scenario needs no new point."""
    model = StepCostModel(MODEL, "rngd")
    scenario = Scenario(200, 30, users=4)
    simulate_serving(model, scenario)
    tables = model._cache[("loop-tables", 1)]
    known = [int(a.sum()) for a in tables.arrays[0::3]]
    assert 0 < sum(known) < sum(a.size for a in tables.arrays[0::3])
    assert all(known)                  # dense, head, decode and prefill points were all read
    simulate_serving(model, scenario)
    assert [int(a.sum()) for a in tables.arrays[0::3]] == known


def test_who_takes_the_compiled_loop(models):
    model = models["StepCostModel", "tp=1,pp=1"]

    class Sub(StepCostModel):
        pass

    closed = type("S", (), {"open_loop": False})()
    opened = type("S", (), {"open_loop": True})()
    assert serving_compiled.eligible(model, closed)
    assert serving_compiled.eligible(models["BandCostModel", "tp=1,pp=1"], closed)
    assert not serving_compiled.eligible(model, opened)
    assert not serving_compiled.eligible(Sub.__new__(Sub), closed)
    # the open loop runs on the Python path, with the same figures either way
    r = _runs(model, Scenario(70, 50, rate=20.0, num_requests=20), None)
    _check(r)


def test_a_step_of_negative_time_is_refused_alike(models):
    model = StepCostModel(MODEL, "rngd")
    model.arch = dataclasses.replace(model.arch, step_overhead=-1.0)
    messages = []
    for compiled in (True, False):
        with pytest.raises(NpusimError, match="finite, non-negative time") as e:
            simulate_serving(model, Scenario(20, 5, users=2), compiled=compiled)
        messages.append(str(e.value))
    assert messages[0] == messages[1]


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.integers(-5, 300000), st.floats(-10.0, 3e5, allow_nan=False)),
       st.sampled_from(["TOKENS", "KV", "BATCH", "CHUNK"]))
def test_bracket_is_stepcost_bracket(x, name):
    grid = getattr(sc, name)
    lo, hi, w = K._bracket(np.asarray(grid, dtype=np.int64), x)
    assert (grid[lo], grid[hi], w) == sc._bracket(grid, x)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=9))
def test_compensated_sum_step_is_neumaier(values):
    """The kernel's sum on Python >= 3.12 (where sum() of floats compensates) is _pysum's."""
    total, c = 0.0 + values[0], 0.0
    for v in values[1:]:
        total, c = K._sum_into(total, c, v)
    if c != 0.0 and np.isfinite(c):
        total = total + c
    old = sc._SUM_COMPENSATED
    try:
        sc._SUM_COMPENSATED = True
        assert total == sc._pysum([np.array([v]) for v in values], True)[0]
    finally:
        sc._SUM_COMPENSATED = old


SMALL = dict(input_lens=(32, 64), output_lens=(24, 90), users=(1, 3, 8))


def test_kperf_on_the_compiled_loop_equals_the_python_loop(monkeypatch):
    from npusim.workloads import serving
    fast = kp.kperf("rngd", MODEL, precisions=("bf16", "int4"), vs=("h100",), jobs=1, **SMALL)

    def python(cost, scenario, config):
        return serving.simulate_serving(cost, scenario, config, compiled=False)

    monkeypatch.setattr(kp, "_serving_api", lambda: (Scenario, ServingConfig, python))
    slow = kp.kperf("rngd", MODEL, precisions=("bf16", "int4"), vs=("h100",), jobs=1, **SMALL)
    assert len(fast.records) == len(slow.records) == 2 * 2 * 12
    for a, b in zip(fast.records, slow.records):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key
    assert fast.runs == slow.runs
