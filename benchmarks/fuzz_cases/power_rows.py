"""Malformed power rows for ``npusim validate --data``: idle rows (``sim_mode`` ``idle``) with
workload columns, power metrics on the wrong mode, bad ``sim_boundary`` values, a ``system``
boundary marked simulable, bad chips and values. Read by ``benchmarks/fuzz.py``.

Every case is certainly invalid (``must_fail``): the row check refuses it before anything is
simulated, so each runs in well under a second.
"""
from __future__ import annotations

import pathlib
import random

from npusim.validate.core import blank_row, write_rows

GOOD = {"id": "D1", "sim_arch": "edu", "sim_chips": "1", "sim_mode": "idle",
        "sim_metric": "idle_power_w", "sim_value": "1", "simulable": "yes",
        "sim_boundary": "card"}
# column -> values that are wrong for the GOOD row (each a different mistake)
BAD_CELLS = {
    "sim_boundary": ["system", "System", "wall", "chip", "card;system", "1"],
    "sim_metric": ["avg_power_w", "energy_per_token_j", "idle_w", "", "ttft_s",
                   "snn_power_w"],
    "sim_model": ["tiny-llama", "resnet50", "stream"],
    "sim_users": ["4", "0", "x"],
    "sim_input_len": ["128", "-1"],
    "sim_precision": ["bf16", "fp4"],
    "sim_rate": ["1.5"],
    "sim_chips": ["0", "1.5", "-2", "1e9"],
    "sim_value": ["", "-1", "nan", "inf", "0"],
    "sim_mode": ["Idle", "power", ""],
}


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)`` for about ``n`` malformed power rows."""
    for i in range(n):
        col = rng.choice(sorted(BAD_CELLS))
        bad = blank_row(**dict(GOOD, **{col: rng.choice(BAD_CELLS[col])}))
        data = write_rows(workdir / f"power{i}.csv", [bad])
        yield (f"validate-power/{col}", ["validate", "--data", str(data), "--no-microchecks",
                                          "--no-progress", "--out", str(workdir / "out")], True)
