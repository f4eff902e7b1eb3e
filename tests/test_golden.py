"""Golden table: whole models on every shipped arch, against recorded figures.

Any change to the engine, the archs or the frontend that moves a figure fails here, so the
change has to be looked at and the table re-baselined on purpose:

    python tests/test_golden.py --write     # re-baseline tests/data/golden.csv

The table is data (``tests/data/golden.csv``), one parametrised test reads it; tests never
write it.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.csv"
LIGHT = "light_{}.onnx"
ARCHS = ["rngd", "atom", "h100", "h200", "a100", "systolic-128", "edu"]
MODELS = [
    ("resnet50", {}),
    ("squeezenet", {}),
    ("tiny-llama", {"phase": "prefill", "batch": 2, "seq": 32}),
    ("tiny-moe", {"phase": "decode", "batch": 4, "kv_len": 64}),
    ("llama-3.1-8b", {"phase": "decode", "batch": 8, "kv_len": 2048}),
]
FIELDS = ["model", "arch", "macs", "latency_s", "bound_latency_s", "dram_bytes", "energy_j"]


def _model_path(name: str) -> str:
    import onnx
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / LIGHT.format(name)
    return str(light) if light.exists() else name


def run_case(model: str, kw: dict, arch: str) -> dict:
    import npusim
    r = npusim.simulate(_model_path(model), arch, check_capacity=False, **kw)
    t = r.totals()
    label = model + "".join(f" {k}={v}" for k, v in kw.items())
    return {"model": label, "arch": arch, "macs": t["macs"], "latency_s": t["latency_s"],
            "bound_latency_s": t["bound_latency_s"], "dram_bytes": t["dram_bytes"],
            "energy_j": t["energy_j"]}


def cases():
    return [(m, kw, a) for m, kw in MODELS for a in ARCHS]


def _recorded() -> dict:
    if not GOLDEN.exists():
        return {}
    with open(GOLDEN, newline="") as f:
        return {(r["model"], r["arch"]): r for r in csv.DictReader(f)}


@pytest.mark.slow
@pytest.mark.parametrize("model,kw,arch", cases(),
                         ids=[f"{m}-{a}" for m, _, a in cases()])
def test_golden(model, kw, arch):
    got = run_case(model, kw, arch)
    want = _recorded().get((got["model"], arch))
    assert want is not None, f"no golden row for {got['model']} on {arch}: re-baseline"
    assert int(want["macs"]) == got["macs"]
    for key in ("latency_s", "bound_latency_s", "dram_bytes", "energy_j"):
        assert got[key] == pytest.approx(float(want[key]), rel=1e-6), key
    assert got["latency_s"] >= got["bound_latency_s"]


def write() -> None:
    rows = [run_case(m, kw, a) for m, kw, a in cases()]
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    with open(GOLDEN, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    print(f"wrote {len(rows)} rows to {os.path.relpath(GOLDEN)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_golden.py --write")
    write()
