"""docs/sweeps.md says what the code does: its example spec loads, its metric table is METRICS."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from npusim.dse.spec import METRICS, load_spec

DOC = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"


def test_the_example_spec_loads(tmp_path):
    from npusim.graphs.tiny import matmul_onnx
    text = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    matmul_onnx(tmp_path / "model.onnx")
    (tmp_path / "spec.yaml").write_text(text)
    spec = load_spec(tmp_path / "spec.yaml")
    assert [w.kind for w in spec.workloads] == ["llm", "graph", "onnx", "kperf"]
    assert spec.strategy.kind == "lhs" and spec.strategy.samples == 64
    assert [o.metric for o in spec.objectives] == ["tokens_per_s", "energy_per_token_j",
                                                    "area_mm2"]
    assert yaml.safe_load(text)["fields"]["cores.sram"] == ["16 MiB", "32 MiB", "64 MiB"]


def test_metric_table_is_the_code_s():
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| (min|max) \| ([^|]+) \|$",
                      DOC.read_text(encoding="utf-8"), re.M)
    assert {name: (unit.strip(), goal, text.strip()) for name, unit, goal, text in rows} == \
        METRICS
