"""Serving simulation on small fake cost models, with hand-computed expectations."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from npusim.errors import CapacityError, NpusimError
from npusim.workloads import Scenario, ServingConfig, simulate_serving


@dataclass(frozen=True)
class Res:
    seconds: float
    energy_j: float


class ConstCost:
    """Every step takes ``t`` seconds and ``e`` joules, whatever is in it; records the calls."""

    def __init__(self, t=0.01, e=1.0, capacity=1 << 20, block=16, static=10.0, record=False):
        self.t, self.e = t, e
        self.kv_capacity_tokens, self.kv_block_tokens = capacity, block
        self.chips, self.static_power_w, self.tdp_w = 1, static, 150.0
        self.calls = [] if record else None

    def step(self, prefill, decode):
        if self.calls is not None:
            self.calls.append((list(prefill), list(decode)))
        return Res(self.t, self.e)


class LinearCost(ConstCost):
    """``a + b x tokens`` seconds (tokens = prefill chunk tokens + decodes), 100 W."""

    def __init__(self, a=0.01, b=1e-5, **kw):
        super().__init__(**kw)
        self.a, self.b = a, b

    def step(self, prefill, decode):
        s = self.a + self.b * (sum(n for n, _ in prefill) + len(decode))
        return Res(s, 100.0 * s)


class ComputeBoundCost(ConstCost):
    """``max(a, c x tokens)``: memory-bound at small batches, compute-bound past ``a / c``."""

    def __init__(self, a=0.01, c=0.001, **kw):
        super().__init__(**kw)
        self.a, self.c = a, c

    def step(self, prefill, decode):
        s = max(self.a, self.c * (sum(n for n, _ in prefill) + len(decode)))
        return Res(s, 100.0 * s)


def run(cost, config=None, **scenario):
    return simulate_serving(cost, Scenario(**scenario), config)


def test_one_user_constant_step_exact():
    # 5000 prompt tokens in a 2048-token budget: 3 prefill steps, the 3rd yields token 1;
    # then 10 decode steps of 10 ms each.
    cost = ConstCost(t=0.01, e=1.0, record=True)
    r = run(cost, input_len=5000, output_len=11, users=1)
    s = r.summary
    assert s["requests_measured"] == 16
    for q in r.requests:
        assert q.ttft_s == pytest.approx(0.03, abs=1e-12)
        assert q.tpot_s == pytest.approx(0.01, abs=1e-12)
        assert q.e2e_s == pytest.approx(0.13, abs=1e-12)
    assert s["ttft_p99_s"] == pytest.approx(0.03) and s["tpot_mean_s"] == pytest.approx(0.01)
    assert s["decode_tok_s"] == pytest.approx(11 / 0.13)
    assert s["prefill_tok_s"] == pytest.approx(5000 / 0.13)
    assert s["decode_tok_s_per_user"] == pytest.approx(100.0)
    assert s["requests_per_s"] == pytest.approx(1 / 0.13)
    assert s["avg_power_w"] == pytest.approx(100.0)
    assert s["energy_per_token_j"] == pytest.approx(13 / 11)
    assert s["tokens_per_j"] == pytest.approx(11 / 13)
    assert s["steps"] == 16 * 13 and s["batch_size_mean"] == pytest.approx(1.0)
    # The first request's steps: three chunks, then decodes from KV length 5000 to 5009.
    assert [c for c in cost.calls[:3]] == [([(2048, 0)], []), ([(2048, 2048)], []),
                                          ([(904, 4096)], [])]
    assert [c[1] for c in cost.calls[3:13]] == [[k] for k in range(5000, 5010)]
    assert all(c[0] == [] for c in cost.calls[3:13])


def test_kv_utilisation_one_user_exact():
    # 100 blocks of 16. Prefill of 32 tokens holds 2 blocks; the 16 decodes (KV 32..47 -> 33..48
    # tokens) hold 3 blocks each.
    r = run(ConstCost(capacity=1600, block=16), input_len=32, output_len=17, users=1)
    assert r.summary["kv_util_peak"] == pytest.approx(0.03)
    assert r.summary["kv_util_mean"] == pytest.approx((2 + 16 * 3) / 17 / 100)


def test_ttft_grows_with_input_length_exactly():
    # One user: TTFT = ceil(input / budget) steps of a plus b per prefill token.
    a, b, budget = 0.01, 1e-5, 2048
    ttfts = []
    for n in (128, 512, 2048, 8192):
        r = run(LinearCost(a=a, b=b), input_len=n, output_len=8, users=1, num_requests=4)
        expect = math.ceil(n / budget) * a + b * n
        assert r.summary["ttft_mean_s"] == pytest.approx(expect, rel=1e-12)
        ttfts.append(r.summary["ttft_mean_s"])
    assert ttfts == sorted(ttfts) and ttfts[0] < ttfts[-1]


def test_throughput_flattens_at_max_num_seqs_while_ttft_queues():
    config = ServingConfig(max_num_seqs=8, max_num_batched_tokens=2048)
    tps, ttft, peak = {}, {}, {}
    for u in (1, 2, 4, 8, 16, 32):
        s = run(LinearCost(a=0.01, b=1e-5), config, input_len=256, output_len=64, users=u).summary
        tps[u], ttft[u], peak[u] = s["decode_tok_s"], s["ttft_mean_s"], s["running_peak"]
    assert tps[1] < tps[2] < tps[4] < tps[8]
    assert tps[4] > 3.5 * tps[1]                      # memory-bound: nearly linear
    assert tps[32] == pytest.approx(tps[16], rel=0.02) == pytest.approx(tps[8], rel=0.05)
    assert ttft[32] > 1.8 * ttft[16] > 1.8 * 1.8 * ttft[8]   # requests wait for a seat
    assert max(peak.values()) == 8


def test_throughput_flattens_when_compute_bound():
    # Steps cost max(10 ms, 1 ms per token): at most 1000 computed tokens/s. A request computes
    # 64 prompt + 63 decode tokens for 64 output tokens, so decode output saturates at
    # 1000 x 64 / 127 tokens/s; past that, more users only lengthen every step (TPOT, e2e).
    ceiling = 1000 * 64 / 127
    tps, tpot, e2e, ttft = {}, {}, {}, {}
    for u in (1, 4, 16, 64, 128):
        s = run(ComputeBoundCost(), input_len=64, output_len=64, users=u).summary
        tps[u], tpot[u], e2e[u], ttft[u] = (s["decode_tok_s"], s["tpot_mean_s"],
                                            s["e2e_mean_s"], s["ttft_p99_s"])
    assert tps[1] == pytest.approx(64 / (0.064 + 63 * 0.01))    # 1 prefill step + 63 floors
    assert tps[1] < tps[4] < tps[16]
    for u in (16, 64, 128):
        assert tps[u] == pytest.approx(ceiling, rel=0.01)
    # Closed loop, Little's law: users = throughput x e2e, so e2e doubles with the users.
    assert e2e[128] == pytest.approx(2 * e2e[64], rel=0.02)
    assert tpot[128] > 2 * tpot[64] > 4 * tpot[16]
    assert ttft[128] > ttft[64] > ttft[16]


def test_kv_capacity_caps_concurrency():
    # A request peaks at 100 + 28 - 1 = 127 tokens = 8 blocks of 16 and enters with 7 blocks;
    # 40 blocks hold 5 such requests, so at most 5 run at once whatever the number of users.
    cost = ConstCost(capacity=40 * 16, block=16)
    s = run(cost, input_len=100, output_len=28, users=16).summary
    assert s["running_peak"] == 5
    assert s["kv_util_peak"] <= 1.0
    roomy = run(ConstCost(capacity=1 << 20), input_len=100, output_len=28, users=16).summary
    assert roomy["running_peak"] == 16
    assert s["ttft_mean_s"] > roomy["ttft_mean_s"]
    assert s["decode_tok_s"] < roomy["decode_tok_s"]


def test_preemption_by_recompute_by_hand():
    # 2 blocks of 4 tokens, 2 users, 4 in / 4 out (peak 7 tokens = 2 blocks each).
    # step 1: A and B prefill (1 block each), both get token 1.
    # step 2: A needs a 2nd block, none free: B (newest) is preempted; A decodes alone.
    # steps 3-4: A decodes, finishes at 4t. step 5: B recomputes 4 + 1 tokens (2 blocks),
    # gets token 2; A's next request waits for blocks. steps 6-7: B decodes, finishes at 7t.
    t = 0.01
    cost = ConstCost(t=t, capacity=8, block=4, record=True)
    r = run(cost, input_len=4, output_len=4, users=2, num_requests=2, warmup=0)
    a, b = r.requests[0], r.requests[1]
    assert (a.ttft_s, a.e2e_s, a.preemptions) == pytest.approx((t, 4 * t, 0))
    assert (b.ttft_s, b.e2e_s, b.tpot_s, b.preemptions) == pytest.approx((t, 7 * t, 2 * t, 1))
    assert cost.calls == [([(4, 0), (4, 0)], []), ([], [4]), ([], [5]), ([], [6]),
                          ([(5, 0)], []), ([], [5]), ([], [6])]
    s = r.summary
    assert s["preemptions"] == 1 and s["steps"] == 7
    # Recomputed prompt tokens are not prefill throughput: 8 prompt tokens in 7 steps.
    assert s["prefill_tok_s"] == pytest.approx(8 / (7 * t))
    assert s["kv_util_peak"] == 1.0


def test_open_loop_low_rate_has_no_queueing_and_energy_adds_up():
    # Requests ~1000 s apart, each served alone in 3 + 10 steps of 10 ms.
    t, e, static = 0.01, 2.0, 30.0
    r = run(ConstCost(t=t, e=e, static=static), input_len=5000, output_len=11, rate=0.001,
            num_requests=20, warmup=0, seed=3)
    s = r.summary
    assert s["ttft_p99_s"] == pytest.approx(3 * t) and s["ttft_p50_s"] == pytest.approx(3 * t)
    assert s["tpot_p99_s"] == pytest.approx(t)
    busy = 20 * 13 * t
    assert s["steps"] == 20 * 13
    assert s["window_s"] > 100 * busy
    assert s["energy_j"] == pytest.approx(20 * 13 * e + static * (s["window_s"] - busy),
                                          rel=1e-9)
    idle = r.steps.idle
    assert s["energy_j"] == pytest.approx(r.steps.energy_j.sum() + static * (
        idle[:, 1] - idle[:, 0])[1:].sum(), rel=1e-9)   # the gap before the 1st arrival is out
    assert s["avg_power_w"] == pytest.approx(s["energy_j"] / s["window_s"])


def test_seed_determinism():
    kw = dict(input_len=300, output_len=40, rate=20.0, num_requests=30)
    one = run(LinearCost(), **kw, seed=7)
    two = run(LinearCost(), **kw, seed=7)
    other = run(LinearCost(), **kw, seed=8)
    assert one.requests == two.requests and one.summary == two.summary
    assert [q.arrival_s for q in one.requests] != [q.arrival_s for q in other.requests]
    arrivals = [q.arrival_s for q in one.requests]
    assert arrivals == sorted(arrivals)


def test_warmup_and_measured_set():
    r = run(ConstCost(), input_len=64, output_len=8, users=4)
    measured = [q.index for q in r.requests if q.measured]
    assert measured == list(range(4, 20))        # default: 4 x users measured after 1 round
    assert r.summary["requests_measured"] == 16
    assert all(q.user in range(4) for q in r.requests)


def test_capacity_error_names_lengths_and_capacity():
    with pytest.raises(CapacityError) as err:
        run(ConstCost(capacity=1000, block=16), input_len=900, output_len=200, users=1)
    msg = str(err.value)
    assert "900" in msg and "200" in msg and "1000" in msg
    # 900 + 101 - 1 = 1000 tokens fit exactly in 62.5 -> 62 blocks? No: 1000 // 16 = 62 blocks
    # = 992 tokens, so 1000 tokens (63 blocks) do not fit either; 892 + 101 - 1 = 992 do.
    with pytest.raises(CapacityError):
        run(ConstCost(capacity=1000, block=16), input_len=900, output_len=101, users=1)
    run(ConstCost(capacity=1000, block=16), input_len=892, output_len=101, users=1,
        num_requests=1)


@pytest.mark.parametrize("bad", [dict(input_len=8, output_len=8),
                                 dict(input_len=8, output_len=8, users=2, rate=1.0),
                                 dict(input_len=0, output_len=8, users=1),
                                 dict(input_len=8, output_len=8, users=0),
                                 dict(input_len=8, output_len=8, rate=-1.0)])
def test_bad_scenarios_raise(bad):
    with pytest.raises(NpusimError):
        Scenario(**bad)


def test_bad_config_and_vllm_defaults():
    with pytest.raises(NpusimError, match="max_num_seqs"):
        ServingConfig(max_num_seqs=0)
    assert ServingConfig() == ServingConfig(max_num_seqs=256, max_num_batched_tokens=2048)
    assert ServingConfig.vllm_serve_defaults(80e9, "NVIDIA H100") == ServingConfig(1024, 8192)
    assert ServingConfig.vllm_serve_defaults(48e9, "rngd") == ServingConfig(256, 2048)


def test_output_len_one_has_no_tpot():
    s = run(ConstCost(), input_len=100, output_len=1, users=2).summary
    assert math.isnan(s["tpot_mean_s"]) and s["ttft_mean_s"] == pytest.approx(0.01)


@pytest.mark.parametrize("cost, config, scenario", [
    (LinearCost(capacity=16 * 64, block=16), None,
     dict(input_len=100, output_len=200, users=12)),                     # heavy preemption
    (LinearCost(), ServingConfig(max_num_seqs=5, max_num_batched_tokens=64),
     dict(input_len=300, output_len=90, users=9)),                       # seats and chunks
    (LinearCost(), ServingConfig(max_num_seqs=64, max_num_batched_tokens=6),
     dict(input_len=20, output_len=40, users=10)),                       # budget < batch
    (LinearCost(capacity=16 * 200), None,
     dict(input_len=500, output_len=120, rate=30.0, num_requests=40)),   # open loop
])
def test_fast_path_is_exact(cost, config, scenario):
    fast = simulate_serving(cost, Scenario(**scenario), config, fast=True)
    slow = simulate_serving(cost, Scenario(**scenario), config, fast=False)
    assert fast.requests == slow.requests
    assert fast.summary.keys() == slow.summary.keys()
    for k, v in fast.summary.items():
        assert v == slow.summary[k] or (v != v and slow.summary[k] != slow.summary[k]), k
    for name in ("start_s", "end_s", "energy_j", "output_tokens", "batch", "kv_blocks"):
        np.testing.assert_array_equal(getattr(fast.steps, name), getattr(slow.steps, name))


def test_preemption_keeps_kv_within_capacity():
    cost = LinearCost(capacity=16 * 64, block=16)
    r = simulate_serving(cost, Scenario(input_len=100, output_len=200, users=12))
    assert r.summary["preemptions"] > 0
    assert r.steps.kv_blocks.max() <= r.steps.kv_blocks_total == 64
    assert all(q.finish_s >= q.first_token_s >= q.arrival_s for q in r.requests)


def test_256_users_2048_output_keeps_the_batch_full():
    # (its wall time is a benchmark figure, benchmarks/serving_speed.py, never asserted here)
    class Cheap(ConstCost):
        def step(self, prefill, decode):
            return Res(0.005 + 1e-6 * len(decode) + 1e-7 * sum(n for n, _ in prefill), 1.0)

    r = simulate_serving(Cheap(), Scenario(input_len=128, output_len=2048, users=256))
    assert r.summary["requests_measured"] == 1024
    assert r.summary["batch_size_mean"] > 250


# -- TensorRT-LLM's GUARANTEED_NO_EVICT policy and trtllm-bench's limits -------------------------

NO_EVICT = ServingConfig(policy="no_evict")


def test_no_evict_by_hand():
    # The preemption case above under no_evict: each request reserves ceil((4 + 4) / 4) = 2
    # blocks, the whole cache, at admission. A runs alone (prefill, then 3 decodes, done at 4t);
    # B waits and is admitted in step 5 (first token at 5t), done at 8t. Nothing is preempted.
    t = 0.01
    cost = ConstCost(t=t, capacity=8, block=4, record=True)
    r = run(cost, NO_EVICT, input_len=4, output_len=4, users=2, num_requests=2, warmup=0)
    a, b = r.requests[0], r.requests[1]
    assert (a.ttft_s, a.e2e_s, a.preemptions) == pytest.approx((t, 4 * t, 0))
    assert (b.ttft_s, b.e2e_s, b.tpot_s, b.preemptions) == pytest.approx((5 * t, 8 * t, t, 0))
    assert cost.calls == [([(4, 0)], []), ([], [4]), ([], [5]), ([], [6])] * 2
    assert r.summary["preemptions"] == 0 and r.summary["running_peak"] == 1


def test_no_evict_reserves_whole_lives_and_never_preempts():
    # 100 + 200 tokens = 19 blocks of 16 reserved per request: 64 blocks run 3 at once, where
    # the vLLM policy admits more and preempts (test_preemption_keeps_kv_within_capacity).
    cost = LinearCost(capacity=16 * 64, block=16)
    r = simulate_serving(cost, Scenario(input_len=100, output_len=200, users=12), NO_EVICT)
    assert r.summary["preemptions"] == 0
    assert r.summary["running_peak"] == 3
    assert r.steps.kv_blocks.max() == 3 * 19 <= r.steps.kv_blocks_total
    vllm = simulate_serving(cost, Scenario(input_len=100, output_len=200, users=12))
    assert vllm.summary["running_peak"] > 3 and vllm.summary["preemptions"] > 0


def test_no_evict_needs_room_for_a_whole_life():
    # 8 + 8 tokens = 4 blocks of 4 reserved; the peak KV (15 tokens) fits 4 blocks under vLLM
    # but a 15-token cache cannot hold the reservation of 16 tokens.
    with pytest.raises(CapacityError):
        run(ConstCost(capacity=15, block=4), NO_EVICT, input_len=8, output_len=8, users=1)
    run(ConstCost(capacity=16, block=4), NO_EVICT, input_len=8, output_len=8, users=1)


@pytest.mark.parametrize("capacity, isl, osl, expected", [
    (500_000, 128, 2048, (256, 2048)),      # 229.8 requests: to 32s, floor 64; tokens floor 2048
    (100_000, 20000, 2000, (64, 2048)),     # 4.5 requests: the floor of 64
    (2_000_000, 1000, 1000, (1024, 2048)),  # 1000 requests: to 128s; 2000 tokens: floor 2048
    (1_000_000, 128, 128, (4096, 8192)),    # 3906 requests: to 256s; 7812.5 tokens: to 512s
    (40_000_000, 128, 128, (4096, 8192)),   # capped at 4096 requests; 8192 tokens: to 1024s
    (40_000_000, 2048, 128, (4096, 32768)),  # 4096 x 17 tokens capped at 32768
])
def test_trtllm_bench_limits_by_hand(capacity, isl, osl, expected):
    c = ServingConfig.trtllm_bench(capacity, isl, osl)
    assert (c.max_num_seqs, c.max_num_batched_tokens) == expected
    assert c.policy == "no_evict"


def test_trtllm_bench_and_policy_reject_bad_input():
    with pytest.raises(NpusimError, match="positive"):
        ServingConfig.trtllm_bench(0, 128, 128)
    with pytest.raises(NpusimError, match="policy"):
        ServingConfig(policy="max_utilization")


@pytest.mark.parametrize("cost, scenario", [
    (LinearCost(capacity=16 * 64, block=16), dict(input_len=100, output_len=200, users=12)),
    (LinearCost(capacity=16 * 200), dict(input_len=500, output_len=120, rate=30.0,
                                         num_requests=40)),
])
def test_fast_path_is_exact_under_no_evict(cost, scenario):
    fast = simulate_serving(cost, Scenario(**scenario), NO_EVICT, fast=True)
    slow = simulate_serving(cost, Scenario(**scenario), NO_EVICT, fast=False)
    assert fast.requests == slow.requests
    for name in ("start_s", "end_s", "energy_j", "output_tokens", "batch", "kv_blocks"):
        np.testing.assert_array_equal(getattr(fast.steps, name), getattr(slow.steps, name))
