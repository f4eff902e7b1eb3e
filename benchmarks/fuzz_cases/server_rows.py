"""Malformed MLPerf Server power rows (a graph row's ``sim_rate``) in ``npusim validate
--data``. Read by ``benchmarks/fuzz.py``. Every case is certainly invalid: the row check
refuses it before anything is simulated."""
from __future__ import annotations

import pathlib
import random

from npusim.validate.core import blank_row, write_rows

RATES = ["0", "-5", "fast", "nan", "inf", "1e12", "1e400", " ", "1,000"]


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` bad Server rows."""
    for i in range(n):
        row = blank_row(id="F1", sim_arch="edu", sim_chips="2", sim_mode="graph",
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
        path = write_rows(workdir / f"server{i}.csv", [row])
        yield (f"server-row/{kind}", ["validate", "--data", str(path), "--no-microchecks",
                                      "--no-progress", "--out", str(workdir / f"o{i}")], True)
