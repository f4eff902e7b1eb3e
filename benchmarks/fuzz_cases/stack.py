"""Malformed serving-stack files and names (``npusim kperf --stack``). Read by
``benchmarks/fuzz.py``.

Every case is certainly invalid (``must_fail``): the stack is loaded before anything is
simulated, so each runs in well under a second.
"""
from __future__ import annotations

import pathlib
import random

import yaml

GOOD = {"description": "fuzz engine", "step": "0 s", "per_sequence": "0.4 ms",
        "multi_chip": "10 ms", "fitted_rows": ["V1"]}
# key -> wrong values, each a different mistake
BAD = {
    "step": ["1", 1, "1 W", "-1 ms", "11 s", "nan s", "1e400 s", None, [1]],
    "per_sequence": ["0.4", "0.4 GHz", "-0.4 ms", "20 s"],
    "multi_chip": ["10", "10 J", "1 h"],
    "description": ["", 7, ["a"], None, "x" * 500],
    "fitted_rows": ["V1", [1], [""], ["V"] * 9],
    "per_token": ["1 ms"],
}
NAMES = ["nosuch", "vllm-0.4", "VLLM-0.5", "", "  ", "../etc/passwd", "vllm-0.5.yml.x"]


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` malformed stacks."""
    base = ["kperf", "--arch", "edu", "--model", "llama-3.1-8b", "--no-progress",
            "--out", str(workdir / "kperf")]
    for i in range(n):
        if rng.random() < 0.2:
            name = rng.choice(NAMES)
            yield "stack/name", base + ["--stack", name], True
            continue
        tree = dict(GOOD)
        key = rng.choice(sorted(BAD))
        tree[key] = rng.choice(BAD[key])
        if rng.random() < 0.1:
            tree = rng.choice([[1, 2], "text", 5])
        path = workdir / f"stack{i}.yaml"
        path.write_text(yaml.safe_dump(tree))
        yield f"stack/{key}", base + ["--stack", str(path)], True
