"""``npusim validate --fit`` with several fields on one arch: the joint fit (coordinate descent)
on a synthetic two-parameter case with a fake predictor, its provenance in the calibration file,
and the power model's fields reaching the energy table through a calibration file."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim import load_arch
from npusim.energy import load_energy_table
from npusim.errors import NpusimError
import importlib

fit_mod = importlib.import_module("npusim.validate.fit")   # the package re-exports a function fit
from npusim.validate.core import REQUIRED
from npusim.validate.fit import bounds_for, coordinate_descent, fit, format_value

ROOT = Path(__file__).resolve().parents[1]
EDU = ROOT / "npusim" / "archs" / "edu.yaml"
COLUMNS = ["id", *[c for c in REQUIRED if c != "id"]]

# A fake power model: watts = floor + a x (overhead - 1) + b x (delivery in pJ/bit), linear
# in both fields as the real one is below the cap. Row P1 is DRAM-heavy (decode at a small
# batch: delivery moves it most), P2 compute-heavy (a large batch: overhead moves it most).
COEF = {"P1": (2.0, 10.0, 130.0), "P2": (40.0, 6.0, 130.0)}
TRUE = {"energy.dynamic_overhead": 7.0, "energy.operand_delivery": 20e-12}


def _watts(row_id: str, overhead: float, delivery: float) -> float:
    a, b, floor = COEF[row_id]
    return floor + a * (overhead - 1.0) + b * delivery * 1e12


def _value(text) -> float:
    """A fitted value as the fit passes it (a plain number, or 'x J/bit')."""
    return float(str(text).split()[0])


class FakeSimulator:
    """Stands in for npusim.validate.core.Simulator: the arch is real (a user copy of edu),
    the prediction is :func:`_watts` of the fields being tried."""

    def __init__(self, base, archs=None):
        self.base = Path(base)

    def spec(self, row):
        return str(self.base / row["sim_arch"])

    def arch(self, row, overrides=()):
        return load_arch(self.spec(row))

    def predict(self, row, fitv=None):
        fitv = dict(fitv or {})
        cal = load_energy_table(self.arch(row))
        o = _value(fitv["energy.dynamic_overhead"]) if "energy.dynamic_overhead" in fitv \
            else (cal.dynamic_overhead or 1.0)
        d = _value(fitv["energy.operand_delivery"]) if "energy.operand_delivery" in fitv \
            else (cal.operand_delivery or 0.0)
        return _watts(row["id"], o, d), "fake"


def _rows(tmp_path: Path) -> Path:
    shutil.copy(EDU, tmp_path / "edu-copy.yaml")
    path = tmp_path / "power.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for rid in COEF:
            row = {c: "" for c in COLUMNS}
            row.update(id=rid, sim_arch="edu-copy.yaml", sim_chips="1", simulable="yes",
                       sim_model="tiny-llama", sim_precision="bf16", sim_mode="offline",
                       sim_users="4", sim_input_len="16", sim_output_len="4",
                       sim_metric="avg_power_w",
                       sim_value=repr(_watts(rid, *TRUE.values())))
            w.writerow(row)
    return path


def test_joint_fit_recovers_both_fields_and_writes_their_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(fit_mod, "Simulator", FakeSimulator)
    data = _rows(tmp_path)
    out = fit(data, ["energy.dynamic_overhead=P1,P2", "energy.operand_delivery=P1,P2"])
    o, d = out["energy.dynamic_overhead"], out["energy.operand_delivery"]
    # 4 significant digits in the file: 7.0 and 20 pJ/bit
    assert _value(o["value"]) == pytest.approx(7.0, rel=1e-3)
    assert o["value"] == 7.0 or abs(o["value"] - 7.0) < 1e-2
    assert d["value"].endswith(" pJ/bit") and _value(d["value"]) == pytest.approx(20.0, rel=1e-3)
    assert o["error_after"] < 1e-3 < o["error_before"]
    assert "coordinate descent over energy.dynamic_overhead, energy.operand_delivery" \
        in o["method"]
    cal = yaml.safe_load((tmp_path / "edu-copy.calibration.yaml").read_text())
    for field in TRUE:                       # both entries kept, each with its rows and metric
        entry = cal["fitted"][field]
        assert entry["rows"] == ["P1", "P2"] and entry["metric"] == "avg_power_w"
        assert "coordinate descent" in entry["method"]
    # the calibration applies: the arch copy now carries both fitted parts
    table = load_energy_table(load_arch(tmp_path / "edu-copy.yaml"))
    assert table.dynamic_overhead == pytest.approx(7.0, rel=1e-3)
    assert table.operand_delivery == pytest.approx(20e-12, rel=1e-3)


def test_one_field_after_the_other_would_not_find_them(tmp_path, monkeypatch):
    # why the fit is joint: fitting overhead alone on both rows (delivery still 0) lands far
    # from 7, and delivery fitted after it cannot undo that
    monkeypatch.setattr(fit_mod, "Simulator", FakeSimulator)
    data = _rows(tmp_path)
    alone = fit(data, ["energy.dynamic_overhead=P1,P2"], write=False)
    assert abs(alone["energy.dynamic_overhead"]["value"] - 7.0) > 1.0


def test_a_field_twice_on_one_arch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(fit_mod, "Simulator", FakeSimulator)
    data = _rows(tmp_path)
    with pytest.raises(NpusimError, match="fitted twice"):
        fit(data, ["energy.dynamic_overhead=P1", "energy.dynamic_overhead=P2"], write=False)


def test_coordinate_descent_by_hand():
    # two lines crossing at (2, 1): the squared residuals of both, each coordinate in turn
    def loss(i, v):
        return (v[0] + v[1] - 3.0) ** 2 + (v[0] - 2.0 * v[1]) ** 2
    values, rounds = coordinate_descent(loss, [0.0, 0.0], [(0.0, 10.0), (0.0, 10.0)])
    assert values == pytest.approx([2.0, 1.0], abs=1e-4) and 1 < rounds < 20


@settings(max_examples=25, deadline=None)
@given(x=st.floats(1.0, 50.0), y=st.floats(0.0, 80.0), rho=st.floats(0.0, 0.95))
def test_coordinate_descent_finds_any_point_of_a_correlated_quadratic(x, y, rho):
    # a positive-definite quadratic with correlation rho has one minimum; plain coordinate
    # descent would shrink the error by ~rho^2 a round (0.9 a round at rho 0.95), the pattern
    # step after each round lands on it, so a handful of rounds suffice
    def loss(i, v):
        dx, dy = v[0] - x, v[1] - y
        return dx * dx + 2.0 * rho * dx * dy + dy * dy
    values, rounds = coordinate_descent(loss, [1.0, 0.0], [(1.0, 100.0), (0.0, 100.0)])
    slack = 1e-3 * max(x, y, 1.0)
    assert values[0] == pytest.approx(x, abs=slack) and values[1] == pytest.approx(y, abs=slack)
    assert rounds <= 6


def test_power_fields_have_their_own_ranges_and_units():
    arch = load_arch("h100")
    assert bounds_for("energy.dynamic_overhead", arch) == (1.0, 100.0)
    assert bounds_for("energy.operand_delivery", arch) == (0.0, 1e-10)
    assert format_value("energy.operand_delivery", 2e-11) == "2e-11 J/bit"
    table = load_energy_table(load_arch("edu", [
        f"energy.operand_delivery={format_value('energy.operand_delivery', 2e-11)}"]))
    assert math.isclose(table.operand_delivery, 2e-11)


def test_calibrated_energy_fields_apply_to_the_table(tmp_path):
    # the shape --fit-into-package writes; energy.* entries reach the energy table, fitted
    # and assumed alike, and a --set wins over them
    shutil.copy(EDU, tmp_path / "e.yaml")
    (tmp_path / "e.calibration.yaml").write_text(
        "arch: edu\nfitted:\n  energy.operand_delivery:\n    value: 12.5 pJ/bit\n"
        "    rows: [P1, P2]\n    metric: avg_power_w\n    date: 2026-12-03\n"
        "    method: coordinate descent\nassumed:\n  energy.dynamic_overhead:\n"
        "    value: 6.5\n    from: h100 energy.dynamic_overhead\n    why: test\n",
        encoding="utf-8")
    t = load_energy_table(load_arch(tmp_path / "e.yaml"))
    assert t.operand_delivery == pytest.approx(12.5e-12) and t.dynamic_overhead == 6.5
    t2 = load_energy_table(load_arch(tmp_path / "e.yaml", ["energy.dynamic_overhead=2"]))
    assert t2.dynamic_overhead == 2.0
