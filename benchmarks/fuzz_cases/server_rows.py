"""Malformed MLPerf Server power rows (a graph row's ``sim_rate``) in ``npusim validate
--data``. Read by ``benchmarks/fuzz.py``. Every case is certainly invalid: the row check
refuses it before anything is simulated."""
from __future__ import annotations

import csv
import pathlib
import random

from npusim.validate.core import default_data

RATES = ["0", "-5", "fast", "nan", "inf", "1e12", "1e400", " ", "1,000"]


def _header() -> list[str]:
    with open(default_data(), newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` bad Server rows."""
    head = _header()
    for i in range(n):
        row = {h: "" for h in head}
        row.update(id="F1", sim_arch="edu", sim_chips="2", sim_mode="graph",
                   sim_model="resnet50", sim_precision="int8", sim_users="4",
                   sim_metric="avg_power_w", sim_value="1", simulable="yes")
        kind = rng.choice(["rate", "metric"])
        if kind == "rate":
            row["sim_rate"] = rng.choice(RATES)
            if not row["sim_rate"].strip():
                row["sim_rate"] = "0"
        else:
            row.update(sim_rate="100", sim_chips="1",
                       sim_metric=rng.choice(["latency_s", "samples_s"]))
        path = workdir / f"server{i}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=head)
            w.writeheader()
            w.writerow(row)
        yield (f"server-row/{kind}", ["validate", "--data", str(path), "--no-microchecks",
                                      "--no-progress", "--out", str(workdir / f"o{i}")], True)
