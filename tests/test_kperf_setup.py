"""K-Perf's set-up: shared part runs, layouts costed only when the choice needs them, and cost
models built by the workers that run their scenarios, each giving what the plain path gives."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.arch import load_arch
from npusim.errors import ArchError, CapacityError
from npusim.workloads import deployments as dp
from npusim.workloads import kperf as kp
from npusim.workloads import stepcost as sc
from npusim.workloads.powerband import BandCostModel
from npusim.workloads.stepcost import PartRuns, PendingLayout, StepCostModel

TINY = "tiny-llama"
# steps a serving run asks for: prefill chunks, decodes, both
STEPS = [([(16, 0)], []), ([], [40, 70, 9]), ([(37, 100)], [300] * 5), ([(500, 0)], [])]


def _same_model(a, b) -> None:
    assert a.describe() == b.describe()
    for prefill, decode in STEPS:
        assert a.step(prefill, decode) == b.step(prefill, decode)


# --- PartRuns -------------------------------------------------------------------------------

def test_shared_part_runs_give_what_cold_models_give():
    parts = PartRuns()
    # filled by other chip counts first, in an order no cold model sees
    warm = {n: StepCostModel(TINY, "rngd", chips=n, parts=parts) for n in (4, 1, 2)}
    assert len(parts) == 1
    for n, model in warm.items():
        _same_model(model, StepCostModel(TINY, "rngd", chips=n))


def test_part_runs_keep_kinds_archs_and_precisions_apart():
    parts = PartRuns()
    rngd = load_arch("rngd")
    a = StepCostModel(TINY, rngd, chips=1, parts=parts)
    b = BandCostModel(TINY, rngd, chips=1, parts=parts)
    c = StepCostModel(TINY, rngd, chips=1, precision="fp8", parts=parts)
    d = StepCostModel(TINY, load_arch("rngd", ["dram.bandwidth=1 TB/s"]), chips=1, parts=parts)
    e = StepCostModel(TINY, load_arch("rngd"), chips=2, parts=parts)   # an equal arch: shares
    assert len(parts) == 4
    assert len({id(m._cache) for m in (a, b, c, d)}) == 4 and e._cache is a._cache


# --- PendingLayout ----------------------------------------------------------------------------

@pytest.mark.parametrize("chips", [2, 4])
def test_pending_layout_builds_the_constructors_model(chips):
    pending = BandCostModel.pending(TINY, "rngd", chips=chips, parts=PartRuns())
    assert isinstance(pending, PendingLayout) and not pending.built
    assert len(pending.fitting) == 2 and pending.chips == chips
    built = pending.build()
    assert pending.built and pending.build() is built
    lo, hi = pending.kv_capacity_range
    assert lo <= built.kv_capacity_tokens <= hi
    assert built.parallel_why.startswith("fastest that fits")
    _same_model(built, BandCostModel(TINY, "rngd", chips=chips))


def test_pending_is_the_built_model_when_no_layout_needs_costing():
    one = StepCostModel.pending(TINY, "rngd", chips=1)
    assert isinstance(one, StepCostModel)
    _same_model(one, StepCostModel(TINY, "rngd", chips=1))
    with pytest.raises(ArchError) as pending_error:      # raised before any layout is costed
        StepCostModel.pending(TINY, "systolic-128", chips=2)
    with pytest.raises(ArchError) as error:
        StepCostModel(TINY, "systolic-128", chips=2)
    assert str(pending_error.value) == str(error.value)


def test_costs_memo_hands_the_rows_the_choices_models():
    costs = kp._Costs(TINY, load_arch("rngd"))
    pending = costs.pending(2, "bf16")
    assert costs(2, "bf16") is pending.build() and costs.pending(2, "bf16") is pending
    big = kp._Costs("llama-3.3-70b", load_arch("rngd"))      # 141 GB of weights on 48 GB
    with pytest.raises(CapacityError) as first:
        big(1, "bf16")
    assert big.or_reason(1, "bf16") == (None, kp._reason(first.value))
    assert big.unbuilt_or_reason(1, "bf16") == (None, kp._reason(first.value))


def test_layouts_chosen_on_workers_settle_as_built_here():
    costs = kp._Costs(TINY, load_arch("rngd"), jobs=2)
    pendings = [costs.pending(n, p) for n in (2, 4) for p in ("bf16", "fp8")]
    costs.cost_many(pendings)
    assert all(p.built for p in pendings)
    for (n, p), pending in zip([(n, p) for n in (2, 4) for p in ("bf16", "fp8")], pendings):
        _same_model(pending.build(), BandCostModel(TINY, "rngd", chips=n, precision=p))
    with pytest.raises(ValueError):
        StepCostModel.pending(TINY, "rngd", chips=2).settle(sc.ParallelLayout(4, 1), "no")


# --- choosing the chips by ranges -------------------------------------------------------------

class _Pending:
    """A fake PendingLayout: a range, and the exact capacity (or a failure) when costed."""

    def __init__(self, lo, exact, hi, fails, costed, why=""):
        self.kv_capacity_range, self._exact, self._fails = (lo, hi), exact, fails
        self._costed, self._why = costed, why

    @property
    def kv_capacity_tokens(self):
        self._costed.append(self)
        if self._fails:             # what building the model raises, wherever it is built
            raise CapacityError(self._why)
        return self._exact


# per (chips, precision): an exact capacity, a range with the capacity inside (rarely failing
# when costed), a capacity error or an arch error
_entry = st.one_of(
    st.tuples(st.just("exact"), st.integers(0, 30_000)),
    st.tuples(st.just("pending"), st.integers(0, 15_000), st.integers(0, 15_000),
              st.integers(0, 15_000), st.sampled_from([False] * 7 + [True])),
    st.tuples(st.just("capacity")), st.tuples(st.just("arch")))


def _fakes(table):
    """(cost model a plain choice sees, cost model a lazy choice sees, the costed list)."""
    costed = []

    def entry(n, p):
        return table[(n, p)]

    def plain(model, arch, n, p):
        e = entry(n, p)
        if e[0] == "capacity" or (e[0] == "pending" and e[4]):
            raise CapacityError(f"{n} {p} does not fit")
        if e[0] == "arch":
            raise ArchError(f"{n} {p} unsupported")
        return SimpleNamespace(kv_capacity_tokens=e[1] if e[0] == "exact" else sorted(e[1:4])[1])

    def lazy(model, arch, n, p):
        e = entry(n, p)
        if e[0] != "pending":
            return plain(model, arch, n, p)
        lo, mid, hi = sorted(e[1:4])
        return _Pending(lo, mid, hi, e[4], costed, f"{n} {p} does not fit")

    return plain, lazy, costed


def _outcome(fn):
    try:
        return fn()
    except CapacityError as e:
        return str(e)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_lazy_choice_equals_the_plain_choice(data):
    precisions = data.draw(st.lists(st.sampled_from(["bf16", "fp8", "int4"]), min_size=1,
                                    max_size=3, unique=True))
    table = {(n, p): data.draw(_entry) for n in dp.CHIP_COUNTS for p in precisions}
    plain, lazy, costed = _fakes(table)
    arch = SimpleNamespace(name=data.draw(st.sampled_from(["x", "rngd"])), overrides=())
    kw = dict(users=data.draw(st.integers(1, 8)), tokens=data.draw(st.integers(1, 3000)))
    model = "llama-3.3-70b"                 # documented on rngd at 4 chips
    want = _outcome(lambda: dp.choose_chips(model, arch, precisions, cost_model=plain, **kw))
    got = _outcome(lambda: dp.choose_chips(model, arch, precisions, cost_model=lazy, **kw))
    assert got == want


def test_ranges_that_settle_the_choice_cost_nothing():
    costed = []
    # every pending range lies below the demand at 1-8 chips and above it at 16
    cap = {1: 100, 2: 200, 4: 400, 8: 800, 16: 50_000, 32: 90_000, 64: 99_000}

    def lazy(model, arch, n, p):
        if n == 1:
            return SimpleNamespace(kv_capacity_tokens=cap[1])
        return _Pending(cap[n], cap[n] + 1, cap[n] + 2, False, costed)

    arch = SimpleNamespace(name="x", overrides=())
    choice = dp.choose_chips("m", arch, ["bf16", "fp8"], users=10, tokens=1000,
                             cost_model=lazy)
    assert (choice.chips, choice.rule) == (16, "weights")
    # the in-server counts were settled by their ranges; only 16 chips' figure was costed
    assert {id(p) for p in costed} and all(p.kv_capacity_range[0] == cap[16] for p in costed)


# --- kperf: cost models built on the workers ------------------------------------------------

MATRIX = dict(input_lens=(16,), output_lens=(8, 24), users=(1, 3))


def _same_result(one, two) -> None:
    assert one.runs == two.runs
    assert len(one.records) == len(two.records)
    for a, b in zip(one.records, two.records):
        assert list(a) == list(b)
        for key in a:
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key


def test_kperf_worker_built_cost_models_equal_one_process(monkeypatch):
    made = []

    class Spy(kp._Deferred):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(kp, "_Deferred", Spy)
    one = kp.kperf("rngd", TINY, chips=2, precisions=("bf16", "fp8"), vs=("h100",), jobs=1,
                   **MATRIX)
    assert not made
    two = kp.kperf("rngd", TINY, chips=2, precisions=("bf16", "fp8"), vs=("h100",), jobs=2,
                   **MATRIX)
    assert [(d.label, d.precision) for d in made] == [("rngd", "bf16"), ("rngd", "fp8")]
    assert one.runs[0]["parallel_why"].startswith("fastest that fits")
    _same_result(one, two)


def _fp8_layouts_fail(monkeypatch):
    """Choosing among layouts fails for fp8 (a capacity error), as a worker may meet it."""
    fastest = sc.StepCostModel._fastest

    def failing(self, fitting):
        if self.precision == "fp8":
            raise CapacityError("no layout of the test fits")
        return fastest(self, fitting)

    monkeypatch.setattr(sc.StepCostModel, "_fastest", failing)


def test_kperf_a_worker_build_that_fails_is_a_row_status_as_in_one_process(monkeypatch):
    _fp8_layouts_fail(monkeypatch)
    one = kp.kperf("rngd", TINY, chips=2, precisions=("bf16", "fp8"), jobs=1, **MATRIX)
    two = kp.kperf("rngd", TINY, chips=2, precisions=("bf16", "fp8"), jobs=2, **MATRIX)
    assert one.runs[1]["status"] == "does not fit: no layout of the test fits"
    assert {r["status"] for r in one.records if r["precision"] == "fp8"} == {
        "does not fit: no layout of the test fits"}
    _same_result(one, two)


def test_a_layout_that_fails_on_a_worker_fails_here_as_it_would(monkeypatch):
    _fp8_layouts_fail(monkeypatch)
    costs = kp._Costs(TINY, load_arch("rngd"), jobs=2)
    bf16, fp8 = costs.pending(2, "bf16"), costs.pending(2, "fp8")
    costs.cost_many([bf16, fp8])
    assert bf16.built and not fp8.built
    with pytest.raises(CapacityError, match="no layout of the test fits"):
        fp8.build()


@pytest.mark.parametrize("users, lens", [((6,), (490, 10)), ((1,), (16, 8))])
def test_default_chips_on_workers_equal_one_process(users, lens):
    arch = load_arch("rngd", ["dram.capacity=1 MB"])
    args = (TINY, arch, ["bf16", "fp8"], users, [lens[0]], [lens[1]])
    two = kp.default_chips(*args, costs=kp._Costs(TINY, arch, jobs=2))
    assert two == kp.default_chips(*args)
