"""MoE experts are read where they lie: a Gather of whole expert matrices from a weight stack
copies nothing, and the MatMul that uses them reads only the routed experts' bytes."""
from __future__ import annotations

import pytest

from npusim import load_arch, load_model
from npusim.engine.simulate import simulate_graph
from npusim.ir import Contraction, Movement, Role

# tiny-moe: hidden 64, intermediate 32, 4 experts, top-2, bf16
D, F, E, K = 64, 32, 4, 2


@pytest.fixture(scope="module")
def graph():
    return load_model("tiny-moe", phase="decode", batch=1, kv_len=16)


def test_expert_gathers_move_only_their_indices(graph):
    gathers = [op for op in graph.ops() if isinstance(op, Movement)
               and op.func == "gather_weights"]
    assert len(gathers) == 4 * 3            # 4 layers x gate, up, down
    for op in gathers:
        idx = op.inputs[1]
        assert op.moved_bytes == idx.nbytes == 1 * K * 8     # int64 indices of 1 token
        assert op.outputs[0].role == Role.WEIGHT


def test_the_expert_matmul_reads_the_routed_experts_as_weights(graph):
    r = simulate_graph(graph, load_arch("edu"))
    recs = {o.name: o for o in r.ops}
    gate = graph.op("model.layers.0.mlp.experts.gate_proj")
    assert isinstance(gate, Contraction)
    w = [o.tensor for o in gate.operands if o.tensor.role == Role.WEIGHT]
    assert len(w) == 1 and w[0].nbytes == K * D * F * 2        # 2 of the 4 experts, bf16
    # the gather itself costs only its 16 index bytes; the matmul at least the experts' bytes
    assert recs["model.layers.0.mlp.experts.gate_proj.gather"].dram_bytes == pytest.approx(16)
    assert recs["model.layers.0.mlp.experts.gate_proj"].dram_bytes >= K * D * F * 2


def test_parameters_count_every_expert_once(graph):
    stacks = [t for t in graph.tensors.values()
              if t.role == Role.WEIGHT and ".experts." in t.name and t.name.endswith("weight")]
    full = {t.name: t for t in stacks if t.shape[0] == E}
    assert len(full) == 4 * 3
    # views of the stacks (the routed experts) are not parameters of their own: the graph
    # counts exactly the config's parameters, every expert once
    from npusim.graphs.builder import count_parameters
    assert graph.parameters == count_parameters("tiny-moe")
    assert all(graph.aliases.get(t.name) in full for t in stacks if t.shape[0] != E)
