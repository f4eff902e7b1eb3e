"""The README's power claims (issue 13): on the H100 the card power rises with load, card and
system power are reported apart, and system power (the host at the wall) exceeds the cards'."""
from __future__ import annotations

import math

import pytest

from npusim.workloads import kperf as kp
from npusim.workloads.serving import ServingConfig


@pytest.mark.slow
def test_h100_card_power_rises_with_users_and_system_power_is_apart():
    r = kp.kperf("h100", "llama-3.1-8b", input_lens=(2048,), output_lens=(2048,), users=(1, 250),
                 config=ServingConfig(host="auto"))       # the CLI's default
    rows = sorted(r.records, key=lambda x: x["users"])
    one, many = rows[0], rows[-1]
    tdp = 700.0                                   # archs/h100.yaml power.tdp
    # the meters' shape: well below the TDP at one user, rising towards it under load
    assert one["card_power_w"] < 0.5 * tdp < many["card_power_w"] <= tdp
    assert many["card_power_w"] > 1.5 * one["card_power_w"]
    for x in rows:
        chips = x["chips"]
        assert math.isclose(x["avg_power_w"], chips * x["card_power_w"], rel_tol=1e-9)
        assert x["system_power_w"] > chips * x["card_power_w"] + x["host_power_w"] * 0.5
        assert math.isnan(x["card_power_w_low"])          # fitted GPU: no band


def test_readme_rngd_band():
    """The README's RNGD band sentence: central, low and high card power, recomputed."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    m = re.search(r"128/128, 100 users: a central (\d+) W per card, (\d+)-(\d+) W", text)
    assert m, "the README's RNGD band sentence changed shape"
    r = kp.kperf("rngd", "llama-3.1-8b", input_lens=(128,), output_lens=(128,), users=(100,),
                 precisions=("bf16",))
    x = r.records[0]
    got = [round(x["card_power_w"]), round(x["card_power_w_low"]), round(x["card_power_w_high"])]
    assert got == [int(g) for g in m.groups()]
    assert x["card_power_w_high"] == 150.0            # held at the TDP (archs/rngd.yaml)


def test_readme_power_figures_are_the_reports():
    """The README's "Split by source" figures are the committed REPORT.md's held-out MAPEs by
    source, rounded as printed; its series count is the trend table's."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    report = (root / "validation" / "REPORT.md").read_text(encoding="utf-8")
    by_source = {}
    for line in report.split("## Held-out MAPE by source", 1)[1].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[4].endswith("%"):
            by_source[tuple(cells[:3])] = float(cells[4].rstrip("%"))
    start = readme.index("Split by source (REPORT.md", readme.index("### Power rows"))
    text = " ".join(readme[start:readme.index("The NPUs publish no power", start)].split())
    claims = {("h100", "avg_power_w", "Y"): "at 10.5% on the current serving stack",
              ("h100", "avg_power_w", "V"): "and 13.3% on vLLM 0.5.4",
              ("h100", "energy_per_token_j", "Y"): "at 20.6% on the Y rows",
              ("h100", "energy_per_token_j", "V"): "and 7.2% on the V rows",
              ("h200", "avg_power_w", "W"): "at 2.6% (H200",
              ("a100", "avg_power_w", "W"): "7.0% (A100",
              ("h100", "avg_power_w", "W"): "and 4.9% (H100",
              ("a100", "avg_power_w", "V"): "A100 card power** (23.2%",
              ("h100", "decode_tok_s", "Y"): "Y37-Y54, 29.5%"}
    for key, phrase in claims.items():
        assert phrase in text, phrase
        stated = float(re.search(r"(\d+\.\d)%", phrase).group(1))
        assert stated == round(by_source[key], 1), (key, stated, by_source[key])
    throughput = " ".join(readme[readme.index("Split by source (REPORT.md"):].split())
    for key, phrase in {("h100", "decode_tok_s", "A"): "grid is at 11.9% on the H100",
                        ("h200", "decode_tok_s", "A"): "7.3% on the H200",
                        ("h100", "decode_tok_s", "N"): "Llama 3 runs at 4.9%"}.items():
        assert phrase in throughput, phrase
        assert float(re.search(r"(\d+\.\d)%", phrase).group(1)) == round(by_source[key], 1)
    trend = report.split("### Power against batch", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in trend.splitlines() if ln.startswith("| ") and "→" in ln
            and not ln.startswith("| series |")]
    agree = sum(": agrees |" in ln for ln in rows)
    assert f"as measured on {agree} of the {len(rows)} series" in text
