"""The serving-step cost model against hand-computed expectations (issue 4's list)."""
import pytest

import npusim
from npusim.errors import CapacityError, NpusimError
from npusim.graphs.builder import count_parameters
from npusim.workloads.serving import Scenario, simulate_serving
from npusim.workloads.stepcost import CHUNK, KV, StepCostModel


@pytest.fixture(scope="module")
def llama8b():
    return StepCostModel("llama-3.1-8b", "rngd")


def test_decode_at_batch_1_is_at_least_weights_over_bandwidth(llama8b):
    arch = llama8b.arch
    embed = 128256 * 4096 * 2          # the embedding gather reads rows, not the table
    floor = (llama8b.weight_bytes_per_chip - embed) / arch.dram.bandwidth
    step = llama8b.step([], [128])
    assert step.seconds >= floor
    assert step.seconds < 1.6 * floor   # and a decode step is weight streaming, not much more
    assert step.energy_j > 0


def test_parts_add_up_to_the_whole_decode_graph(llama8b):
    # the step model costs parts; the whole graph, timed by the engine, is its cross-check
    whole = npusim.simulate("llama-3.1-8b", llama8b.arch, phase="decode", batch=8, kv_len=1024)
    step = llama8b.step([], [1024] * 8)
    assert step.seconds == pytest.approx(whole.latency_s, rel=0.15)


def test_prefill_grows_with_input_and_decode_with_kv(llama8b):
    p = [llama8b.step([(n, 0)], []).seconds for n in (128, 512, 2048, 8192)]
    assert p == sorted(p) and p[-1] > 20 * p[0]
    d = [llama8b.step([], [k] * 32).seconds for k in (128, 2048, 32768)]
    assert d == sorted(d) and d[-1] > d[0]


def test_ttft_grows_with_input_and_throughput_saturates(llama8b):
    ttft = [simulate_serving(llama8b, Scenario(input_len=n, output_len=16, users=1))
            .summary["ttft_mean_s"] for n in (256, 1024, 4096)]
    assert ttft == sorted(ttft) and ttft[2] > 3 * ttft[0]
    runs = {u: simulate_serving(llama8b, Scenario(input_len=2048, output_len=2048, users=u))
            .summary for u in (1, 25, 100, 200)}
    tput = [runs[u]["decode_tok_s"] for u in (1, 25, 100, 200)]
    assert tput[1] > 10 * tput[0]                      # grows with users ...
    assert tput[3] < 1.1 * tput[2]                     # ... then flattens (KV cache full)
    assert runs[200]["ttft_mean_s"] > 2 * runs[25]["ttft_mean_s"]   # while TTFT queues


def test_tensor_parallel_halves_weight_traffic_and_adds_collectives():
    one = StepCostModel("llama-3.1-8b", "h100", chips=1)
    two = StepCostModel("llama-3.1-8b", "h100", chips=2)
    assert two.weight_bytes_per_chip == pytest.approx(one.weight_bytes_per_chip / 2, rel=0.02)
    g = two._graph("dense", "prefill", 1, 8, None, 0, 2)
    colls = [op for op in g.ops() if op.kind == "collective"]
    assert len(colls) == 2 and all(op.group == 2 for op in colls)
    r = npusim.simulate(g, two.arch, check_capacity=False)
    link = sum(x.latency_s for x in r.ops if x.kind == "collective")
    # ring all-reduce of 8 tokens x 4096 x bf16 twice: 2 x 2(g-1)/g x 64 KiB over 450 GB/s
    assert link >= 2 * 65536 / 450e9


def test_sliding_windows_cap_kv_bytes():
    m = StepCostModel("exaone-4.0-32b", "rngd", precision="fp8")
    full, sliding = m.kv_bytes_per_token()
    assert full == 16 * 2 * 8 * 128 * 2 and sliding == 48 * 2 * 8 * 128 * 2
    g = m._graph("attention", "decode", 1, None, 100000, 0, m.chips)   # layer 0 is sliding
    past = [t for t in g.tensors.values() if t.name.startswith("past_key_values")]
    assert past and all(t.shape[2] == 4096 for t in past)


def test_mxfp4_weights_cost_4_25_bits_per_value():
    m = StepCostModel("gpt-oss-120b", "rngd", precision="mxfp4", chips=2)
    total = count_parameters("gpt-oss-120b")
    # experts (mxfp4) are nearly all of the weights: per chip ~ total x 4.25 / 8 / 2
    assert m.weight_bytes_per_chip == pytest.approx(total * 4.25 / 8 / 2, rel=0.12)
    assert m.weight_bytes_per_chip > total * 4.25 / 8 / 2


def test_fits_on_the_fewest_chips_or_says_it_cannot():
    assert StepCostModel("llama-3.1-8b", "rngd").chips == 1
    assert StepCostModel("llama-3.3-70b", "rngd", precision="bf16").chips == 4
    with pytest.raises(CapacityError, match="llama-3.1-405b"):
        StepCostModel("llama-3.1-405b", "edu")
    # tensor parallelism alone (NVLink) cannot share 32 heads over 3 chips; PCIe-linked cards
    # may pipeline instead (tests/test_parallel.py)
    with pytest.raises(NpusimError, match="heads"):
        StepCostModel("llama-3.1-8b", "h100", chips=3)


def test_causal_prefill_attention_counts_half_the_chunk_by_hand():
    # Give the attention graph a cost linear in the keys it sees, beta x chunk x keys (keys =
    # cached + chunk): a causal kernel sees cached + chunk / 2 keys on average, and the step
    # cost must come out as exactly that (grid points, so no interpolation error).
    m = StepCostModel("tiny-llama", "rngd")
    beta = 1e-9
    m._run = lambda part, phase, batch, seq, kv, layer, tp=None: (beta * seq * (kv + seq),
                                                                    2 * beta)
    layers = sum(count for _, count in m.layer_groups)
    t, e = m.attention_prefill(64, 64)
    assert t == pytest.approx(layers * beta * 64 * (64 + 32))
    assert e == pytest.approx(layers * 2 * beta)      # flat in the keys: unchanged
    t0, _ = m.attention_prefill(64, 0)
    assert t0 == pytest.approx(layers * beta * 64 * 32)
    # a single new token sees its whole cache
    assert m.attention_prefill(1, 64)[0] == pytest.approx(layers * beta * 65)


def test_causal_prefill_is_between_half_and_all_of_the_rectangle():
    m = StepCostModel("llama-3.1-8b", "h100", precision="fp8")
    for chunk, cached in ((512, 0), (2048, 0), (2048, 8192)):
        causal, _ = m.attention_prefill(chunk, cached)
        rect = sum(count * m._interp2(
            CHUNK, chunk, KV, cached,
            lambda c, k, L=layer: m._run("attention", "prefill", 1, c, k, L))[0]
            for layer, count in m.layer_groups)
        assert 0.5 * rect <= causal < rect
