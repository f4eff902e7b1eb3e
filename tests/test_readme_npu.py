"""The README's "NPU rows" section: its gpt-oss-120b TPOT figures are what npusim gives today,
and the fitted fields it names are the ones the shipped calibration holds."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import npusim
from npusim.arch import load_arch

ROOT = Path(__file__).resolve().parents[1]
SECTION = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("### NPU rows", 1)[1]
SECTION = SECTION.split("\n## ", 1)[0]


def _tpot_ms(parallel):
    r = npusim.kperf("rngd", "gpt-oss-120b", chips=2, precisions=["mxfp4"], users=[1],
                     input_lens=[1024], output_lens=[1024], parallel=parallel)
    (rec,) = r.records
    return rec["tpot_mean_s"] * 1e3, rec["parallel"]


@pytest.mark.parametrize("parallel, phrase, layout", [
    ("tp=2", r"gives a TPOT of ([\d.]+) ms", "tp=2,pp=1"),
    (None, r"and predicts ([\d.]+) ms", "tp=1,pp=2"),
])
def test_gpt_oss_tpot_figures_are_todays(parallel, phrase, layout):
    stated = float(re.search(phrase, SECTION).group(1))
    tpot, chosen = _tpot_ms(parallel)
    assert chosen == layout
    if parallel is None:                     # the layout npusim chose is the one named
        assert f"`{layout}`" in SECTION
    assert round(tpot, 2) == stated


def test_named_fits_are_the_shipped_calibration():
    atom = load_arch("atom").calibrated()
    rngd = load_arch("rngd").calibrated()
    fitted = {k: v for k, v in atom.items() if v["kind"] == "fitted"}
    assert set(fitted) == {"cores.engine.efficiency.int8", "launch_overhead"}
    assert list(fitted["cores.engine.efficiency.int8"]["rows"]) == ["R2"]
    assert list(fitted["launch_overhead"]["rows"]) == ["R1"]
    assert f"{fitted['cores.engine.efficiency.int8']['value']:.3f} of peak" in SECTION
    us = load_arch("atom").launch_overhead * 1e6
    assert f"{us:.2f} us per kernel" in SECTION
    (name, entry), = [(k, v) for k, v in rngd.items() if v["kind"] == "fitted"]
    assert name == "link.latency" and list(entry["rows"]) == ["K7"]
    assert f"{load_arch('rngd').link.latency * 1e6:.1f} us" in SECTION
    # ATOM-Max runs ATOM's die: it takes ATOM's fitted values as stated assumptions
    amax = load_arch("atom-max").calibrated()
    assert all(v["kind"] == "assumed" for v in amax.values())
    assert amax["launch_overhead"]["value"] == fitted["launch_overhead"]["value"]
    assert (amax["cores.engine.efficiency.int8"]["value"]
            == fitted["cores.engine.efficiency.int8"]["value"])
