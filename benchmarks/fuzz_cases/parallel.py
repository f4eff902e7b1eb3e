"""Malformed multi-chip layouts: ``--parallel`` strings, products that miss ``--chips``,
tensor parallelism that does not share the heads, more pipeline stages than layers."""
from __future__ import annotations

import pathlib
import random

_MODEL = "tiny-llama"   # 2 layers, 4 heads, 2 KV heads
_JUNK = ["", "foo", "tp", "tp=", "=2", "tp=2,", ",pp=2", "tp=0", "pp=0", "tp=-2", "tp=2.0",
         "tp=1e3", "tp=2,tp=2", "dp=2", "tp=2;pp=2", "tp=x", "TP=2", "tp==2", "\u2603", "tp=\x00",
         "tp=" + "9" * 40, "pp=2,tp=2,ep=2"]


def _kperf(parallel: str, extra: list[str]) -> list[str]:
    return ["kperf", "--arch", "edu", "--model", _MODEL, "--parallel", parallel,
            "--input-lens", "16", "--output-lens", "4", "--users", "1", *extra]


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)`` for about ``n`` bad layouts."""
    out = ["--out", str(workdir / "kperf")]
    for _ in range(n):
        kind = rng.randrange(5)
        if kind == 0:
            bad = rng.choice(_JUNK)
            cmd = (["run", _MODEL, "--arch", "edu", "--parallel", bad] if rng.random() < 0.5
                   else _kperf(bad, out))
            yield "parallel/syntax", cmd, True
        elif kind == 1:
            tp, pp = rng.randint(1, 4), rng.randint(1, 2)
            chips = rng.choice([c for c in (1, 2, 3, 4, 8, 16) if c != tp * pp])
            yield "parallel/product", _kperf(f"tp={tp},pp={pp}", ["--chips", str(chips), *out]), True
        elif kind == 2:
            tp = rng.choice([3, 5, 6, 7, 8, 12])   # none divides 4 heads
            yield "parallel/heads", ["run", _MODEL, "--arch", "edu", "--parallel", f"tp={tp}"], True
        elif kind == 3:
            pp = rng.randint(3, 64)                # tiny-llama has 2 layers
            yield "parallel/stages", _kperf(f"pp={pp}", out), True
        else:
            # an LLM layout on an ONNX file or a spiking run is refused
            onnx = workdir / "m.onnx"
            if not onnx.exists():
                onnx.write_bytes(b"not an onnx file")
            yield "parallel/not-llm", ["run", str(onnx), "--arch", "edu", "--parallel", "tp=2"], True
