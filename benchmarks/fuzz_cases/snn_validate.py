"""Malformed spiking-chip rows (``sim_mode`` ``snn``) for ``npusim validate --data``: unknown
networks and devices, bad ``sim_set`` settings, chips, metrics. Read by ``benchmarks/fuzz.py``.

Every case is certainly invalid (``must_fail``): the row check refuses it before anything is
simulated, so each runs in well under a second.
"""
from __future__ import annotations

import pathlib
import random

from npusim.validate.core import blank_row, write_rows

GOOD = {"id": "S1", "sim_arch": "truenorth", "sim_chips": "1", "sim_model": "truenorth-sweep",
        "sim_mode": "snn", "sim_metric": "snn_power_w", "sim_value": "0.07", "simulable": "yes",
        "sim_set": "firing_rate=20 Hz"}
# column -> values that are wrong for the GOOD row (each a different mistake)
BAD_CELLS = {
    "sim_model": ["", "nope", "blouw_kws", "../truenorth-sweep", "truenorth-sweep.yaml"],
    "sim_arch": ["h100", "edu", "Loihi", "snn/loihi.yaml"],
    "sim_chips": ["2", "0", "1.5"],
    "sim_metric": ["gemm_tflops", "snn_energy", "", "decode_tok_s"],
    "sim_set": ["speed=3", "firing_rate=fast", "firing_rate=0 Hz", "firing_rate=-5 Hz",
                "firing_rate=1e9 Hz", "firing_rate=20", "=3", "firing_rate 20 Hz",
                "rate=0.1"],
    "sim_value": ["", "-1", "nan"],
}


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)`` for about ``n`` malformed SNN rows."""
    for i in range(n):
        col = rng.choice(sorted(BAD_CELLS))
        bad = blank_row(**dict(GOOD, **{col: rng.choice(BAD_CELLS[col])}))
        data = write_rows(workdir / f"snn{i}.csv", [bad])
        yield (f"validate-snn/{col}", ["validate", "--data", str(data), "--no-microchecks",
                                        "--no-progress", "--out", str(workdir / "out")], True)
