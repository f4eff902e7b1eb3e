"""Malformed host files (``--host FILE`` of ``npusim run`` and ``npusim kperf``) and system
rows naming a bad ``sim_host`` in ``npusim validate --data``. Read by ``benchmarks/fuzz.py``.

Every case is certainly invalid (``must_fail``): the host is loaded before anything is
simulated, so each runs in well under a second.
"""
from __future__ import annotations

import copy
import csv
import io
import pathlib
import random

import yaml

GOOD = {"description": "fuzz server", "slots": 8,
        "cpu": {"count": 2, "tdp": "300 W", "idle_fraction": 0.25, "active_fraction": 0.5},
        "components": {"memory": {"count": 16, "idle": "3 W", "active": "6 W"}},
        "fans": {"idle_share": 0.05, "active_share": 0.1},
        "psu": {"capacity": "6 kW", "efficiency": [[0.1, 0.9], [0.5, 0.96], [1.0, 0.91]]}}
# (path into the tree, wrong values): each a different mistake
BAD = {
    ("slots",): [0, -1, 1.5, "8", 10 ** 40, None, 65],
    ("description",): ["", 7, ["a"]],
    ("cpu", "tdp"): ["300", 300, "3 GHz", "2 kW", "-1 W", "nan W", "1e400 W"],
    ("cpu", "idle_fraction"): [-0.1, 1.5, "half", None],
    ("cpu", "active_fraction"): [0.1, 2],
    ("cpu", "load"): [-0.5, 1.5, "busy", True, "nan"],
    ("components", "memory", "load"): [2, -1, "half", [0.1]],
    ("cpu", "cores"): [56],
    ("components", "memory", "count"): [-1, 1.5, "16", 10 ** 6],
    ("components", "memory", "idle"): ["3", "3 J", "-3 W", "9 kW"],
    ("components", "memory", "active"): ["1 W"],
    ("components", "Memory DIMMs"): [{"count": 1, "idle": "1 W", "active": "1 W"}],
    ("components", "cpu"): [{"count": 1, "idle": "1 W", "active": "1 W"}],
    ("fans", "idle_share"): [-1, 0.9, "low"],
    ("fans", "rpm"): [3000],
    ("psu", "capacity"): ["6", "6 kWh", "50 W", "1 GW"],
    ("psu", "efficiency"): ["titanium", [], [[0.5, 0.9], [0.2, 0.8]], [[0.5, 1.5]],
                            [[0, 0.9]], [[0.5]], [[0.5, 0.3]]],
    ("psu",): [None, "6 kW"],
    ("default_for",): ["h100", [1]],
    ("generic",): ["yes", 1],
    ("extra",): [1],
}
RAW = ["slots: [1,\n", "a: 1\na: 2\n", "- just\n- a list\n", "", "\x00\x01"]


def _mutated(path, value):
    tree = copy.deepcopy(GOOD)
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return tree


def _validate_csv(host: str) -> str:
    cols = ["id", "sim_arch", "sim_chips", "sim_model", "sim_precision", "sim_mode",
            "sim_users", "sim_rate", "sim_input_len", "sim_output_len", "sim_metric",
            "sim_value", "simulable", "reason", "sim_note", "sim_set", "sim_boundary",
            "sim_host"]
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerow({"id": "X1", "sim_arch": "edu", "sim_chips": "1", "sim_mode": "idle",
                "sim_metric": "idle_power_w", "sim_value": "100", "simulable": "yes",
                "sim_boundary": "system", "sim_host": host})
    return f.getvalue()


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)`` for about ``n`` malformed hosts."""
    for i in range(n):
        p = workdir / f"host{i}.yaml"
        kind = rng.random()
        if kind < 0.15:
            p.write_text(rng.choice(RAW), encoding="utf-8")
            label = "host/raw"
        else:
            path = rng.choice(sorted(BAD))
            p.write_text(yaml.safe_dump(_mutated(path, rng.choice(BAD[path]))),
                         encoding="utf-8")
            label = "host/" + ".".join(path)
        which = rng.random()
        if which < 0.4:
            yield (label + "/kperf", ["kperf", "--arch", "edu", "--model", "tiny-llama",
                                      "--host", str(p), "--out", str(workdir / "k")], True)
        elif which < 0.8:
            yield (label + "/run", ["run", "tiny-llama", "--arch", "edu", "--phase", "decode",
                                    "--host", str(p)], True)
        else:
            data = workdir / f"rows{i}.csv"
            data.write_text(_validate_csv(rng.choice([p.name, "no-such-host", ""])),
                            encoding="utf-8")
            yield (label + "/validate", ["validate", "--data", str(data), "--no-microchecks",
                                         "--no-progress", "--out", str(workdir / "v")], True)
