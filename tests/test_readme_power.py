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
