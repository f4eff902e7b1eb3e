"""What makes a serving run's part points cheap changes no figure.

A serving run costs hundreds of part graphs (:meth:`npusim.workloads.stepcost.StepCostModel.
_run`); each shortcut on that path is held here to the slow way it replaces:

- the mapping search's candidate grid, worked out per grid axis and spread
  (:func:`npusim.engine.mapping._build_candidates`), against the flat grid;
- the loader's ``trusted`` mode for the builder's own models, against the checked load;
- the memoised energy table and DRAM setup, against a fresh read, and a changed arch or
  table file never meeting a stale entry;
- the memoised parameter count and the config lookup without a folder listing.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from npusim import load_arch
from npusim.engine import dram as dram_mod
from npusim.engine import mapping
from npusim.engine.simulate import simulate_graph
from npusim.frontend import load_onnx
from npusim.graphs import llm_spec, mlperf
from npusim.graphs.builder import build_llm
from npusim.ir import Contraction
from npusim.passes.quantize import apply_precision, resolve_precision


def _parts():
    """Part graphs as a serving run builds them: every part, both phases, a few sizes."""
    out = []
    for model, tp in (("llama-3.1-8b", 1), ("llama-3.3-70b", 4), ("exaone-4.0-32b", 2),
                      ("gpt-oss-120b", 2), ("tiny-llama", 1)):
        for part, phase, batch, seq, kv_len, layer in (
                ("dense", "prefill", 1, 1, None, 0), ("dense", "prefill", 1, 300, None, 0),
                ("dense", "prefill", 1, 37, None, 1),
                ("attention", "decode", 8, None, 1000, 0),
                ("attention", "decode", 3, None, 5000, 1),
                ("attention", "prefill", 1, 128, 0, 0),
                ("attention", "prefill", 2, 64, 512, 1),
                ("head", "prefill", 16, 1, None, None), ("head", "prefill", 1, 200, None, None)):
            out.append((model, part, phase, batch, seq, kv_len, layer, tp))
    return out


PARTS = _parts()


def _proto(model, part, phase, batch, seq, kv_len, layer, tp):
    return build_llm(model, phase, batch, seq=seq, kv_len=kv_len, part=part, layer=layer, tp=tp)


def _same_graph(a, b) -> None:
    assert a.name == b.name and a.meta == b.meta and a.warnings == b.warnings
    assert a.inputs == b.inputs and a.outputs == b.outputs and a.aliases == b.aliases
    assert a.tensors == b.tensors and a.producer == b.producer
    assert [op for op in a.ops()] == [op for op in b.ops()]
    assert list(a.nx.nodes) == list(b.nx.nodes)
    assert [(u, v, d) for u, v, d in a.nx.edges(data=True)] == \
        [(u, v, d) for u, v, d in b.nx.edges(data=True)]


@pytest.mark.parametrize("args", PARTS, ids=lambda a: "-".join(map(str, a)))
def test_trusted_load_gives_the_checked_graph(args):
    proto = _proto(*args)
    _same_graph(load_onnx(proto, name="p", trusted=True), load_onnx(proto, name="p"))


def test_trusted_is_only_a_flag_for_npusims_own_models():
    # the checks still run on every load that does not ask otherwise: a malformed model is
    # refused by the default load and only a trusted load skips the check that refuses it
    from onnx import TensorProto, helper
    from npusim.errors import ModelError
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    twice = helper.make_node("Relu", ["x"], ["y"], name="r2")
    g = helper.make_graph([node, twice], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(g)
    with pytest.raises(ModelError, match="produced twice"):
        load_onnx(model)


def _contractions():
    ops = []
    for args in PARTS[::3]:
        g = load_onnx(_proto(*args), trusted=True)
        for p in ("bf16", "fp8", "mxfp4", "int4"):
            ops += [op for op in apply_precision(g, resolve_precision(p)).ops()
                    if isinstance(op, Contraction)]
    g = load_onnx(mlperf.build("resnet50"))      # convolutions: affine axes with halos
    ops += [op for op in g.ops() if isinstance(op, Contraction)][:12]
    return ops


@pytest.fixture(scope="module")
def contractions():
    return _contractions()


@pytest.mark.parametrize("arch", ["rngd", "h100", "systolic-128", "edu", "atom"])
def test_candidates_per_axis_equal_the_flat_grid(arch, contractions):
    a = load_arch(arch)
    for op in contractions:
        for dt in {str(op.compute_dtype), "bf16"}:
            if dt not in a.cores.engine.macs_per_cycle:
                continue
            eng = mapping.engine_params(a, a.execution_dtype(dt))
            fast = mapping._build_candidates(op, eng)
            flat = mapping._build_candidates_flat(op, eng)
            assert fast.view == flat.view
            for k in flat.cand:
                assert fast.cand[k].dtype == flat.cand[k].dtype
                assert np.array_equal(fast.cand[k], flat.cand[k])
            for f in ("tb", "tm", "tn", "tkk", "a_tile", "b_tile", "c_tile", "c_acc"):
                x, y = getattr(fast, f), getattr(flat, f)
                assert x.dtype == y.dtype and x.shape == y.shape, f
                assert np.array_equal(x, y), f
            assert (fast.a_total, fast.b_total) == (flat.a_total, flat.b_total)
            n = len(flat.tb)
            for i in sorted({0, n - 1, n // 2, n // 3, 7 % n}):
                for d, _ in op.dims:
                    assert fast.tile(d, i) == int(flat.tiles[d][i])


def test_search_with_flat_candidates_is_the_same(monkeypatch, contractions):
    a = load_arch("rngd")
    ops = contractions[::5]
    fast = [mapping._run_search(op, a, a.execution_dtype("bf16"), (0, 0, 2), 1e12, None)
            for op in ops]
    monkeypatch.setattr(mapping, "_build_candidates", mapping._build_candidates_flat)
    mapping._CANDIDATES.clear()
    flat = [mapping._run_search(op, a, a.execution_dtype("bf16"), (0, 0, 2), 1e12, None)
            for op in ops]
    mapping._CANDIDATES.clear()
    assert fast == flat


# -- energy table and DRAM setup ------------------------------------------------------------
def test_energy_table_memo_equals_a_fresh_read():
    from npusim.energy import load_energy_table
    from npusim.energy import table as t
    for name in ("rngd", "h100", "edu"):
        a = load_arch(name)
        hit = load_energy_table(a)
        assert hit is load_energy_table(a)          # memoised
        fresh = t._table_of.__wrapped__(*_table_text(a), a)
        assert hit == fresh


def _table_text(a):
    from npusim.energy import table as t
    shipped = t._shipped_energy_dir() / f"{a.host_name}.yaml"
    return shipped.read_text(encoding="utf-8"), f"energy/{a.host_name}.yaml"


def test_energy_table_memo_follows_the_arch():
    from npusim.energy import load_energy_table
    a = load_arch("rngd")
    b = load_arch("rngd", ["energy.static=20W"])
    c = load_arch("rngd", ["power.tdp=100W"])
    ta, tb = load_energy_table(a), load_energy_table(b)
    assert ta.static != tb.static and tb.static == 20.0
    assert load_energy_table(a) is ta and load_energy_table(b) is tb
    assert load_energy_table(c) == load_energy_table(load_arch("rngd", ["power.tdp=100W"]))
    # an arch whose check fails raises on every call, never served from the memo
    from npusim.errors import ArchError
    bad = dataclasses.replace(a, power=dataclasses.replace(a.power, tdp=1.0))
    for _ in range(2):
        with pytest.raises(ArchError, match="tdp"):
            load_energy_table(bad)


def test_energy_table_memo_reads_an_edited_file(tmp_path):
    from npusim.energy import load_energy_table
    text, _ = _table_text(load_arch("rngd"))
    path = tmp_path / "table.yaml"
    path.write_text(text, encoding="utf-8")
    a = load_arch("rngd")
    first = load_energy_table(a, path)
    assert first == load_energy_table(a, path)
    lines = [ln for ln in text.splitlines() if ln.startswith("static:")]
    assert lines, "the shipped table states its static power on a line of its own"
    path.write_text(text.replace(lines[0], "static: 21 W"), encoding="utf-8")
    assert load_energy_table(a, path).static == 21.0 != first.static


def test_dram_setup_memo_follows_the_arch():
    a = load_arch("rngd")
    b = load_arch("rngd", ["dram.bandwidth=0.5TB/s"])
    ta, tb = dram_mod.dram_table(a), dram_mod.dram_table(b)
    p = dram_mod.load_dram_timing(a.dram.type)
    assert dram_mod._setup_and_key(a, p, dram_mod.DEFAULT_GRID) == \
        (dram_mod.dram_setup(a, p), dram_mod.table_key(a, dram_mod.dram_setup(a, p), p,
                                                       dram_mod.DEFAULT_GRID))
    assert ta.key != tb.key
    assert dram_mod.dram_table(a) is ta and dram_mod.dram_table(b) is tb


def test_simulate_graph_with_memos_equals_without(monkeypatch):
    from npusim.energy import table as t
    g = apply_precision(load_onnx(_proto(*PARTS[1]), trusted=True), resolve_precision("fp8"))
    a = load_arch("rngd").for_serving()
    hot = simulate_graph(g, a).to_dict()
    monkeypatch.setattr(t, "_table_of", t._table_of.__wrapped__)
    monkeypatch.setattr(dram_mod, "_SETUPS", {})
    mapping._CACHE.clear()
    mapping._CANDIDATES.clear()
    cold = simulate_graph(g, a).to_dict()
    assert hot == cold


# -- parameter count and config lookup -------------------------------------------------------
@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.1-405b", "exaone-4.0-32b",
                                   "gpt-oss-120b", "tiny-llama"])
def test_parameter_memo_equals_the_arithmetic(model):
    s = llm_spec.resolve(model)
    plain = sum(np.prod(shape, dtype=object) for _, shape in llm_spec.param_shapes(s))
    assert llm_spec.spec_parameters(s) == plain == llm_spec.count_parameters(model)
    other = dataclasses.replace(s, layers=s.layers + 1)
    assert llm_spec.spec_parameters(other) > llm_spec.spec_parameters(s)


def test_config_lookup_without_listing_is_the_listing():
    for name in llm_spec.list_models():
        assert llm_spec.load_config(name) == llm_spec.load_config(name)
    for bad in ("nope", "../configs/llama-3.1-8b", "configs/llama-3.1-8b", "", "llama-3.1-8b.json",
                "a\x00b"):
        with pytest.raises(ValueError, match="unknown LLM config"):
            llm_spec.load_config(bad)


def test_part_points_equal_the_unmemoised_path():
    """A cost model's part answers equal simulate_graph's full result on a checked load."""
    from npusim.frontend.llm import mx_experts_only
    from npusim.passes.quantize import checkpoint_dtype
    from npusim.workloads.stepcost import StepCostModel
    m = StepCostModel("llama-3.1-8b", "rngd", precision="fp8")
    p = m._precision
    for part, phase, batch, seq, kv_len, layer in itertools.islice(
            ((a[1], a[2], a[3], a[4], a[5], a[6]) for a in PARTS if a[0] == "llama-3.1-8b"), 9):
        got = m._run(part, phase, batch, seq, kv_len, layer, tp=1)
        proto = build_llm("llama-3.1-8b", phase, batch, seq=seq, kv_len=kv_len, part=part,
                          layer=layer, tp=1, dtype=checkpoint_dtype(p))
        g = apply_precision(load_onnx(proto, name=f"llama-3.1-8b {part}"), p,
                            experts_only=mx_experts_only("llama-3.1-8b", p))
        r = simulate_graph(g, m.arch)
        assert got == (r.latency_s, r.energy_j)


def test_resolve_memo_follows_the_config_text():
    import json
    text = llm_spec._config_text("llama-3.1-8b")
    s = llm_spec.resolve("llama-3.1-8b")
    assert s is llm_spec.resolve("llama-3.1-8b")
    assert s == llm_spec._resolve("llama-3.1-8b", json.loads(text))
    raw = json.loads(text)
    raw["num_hidden_layers"] = 3
    other = llm_spec._resolve_text("llama-3.1-8b", json.dumps(raw))
    assert other.layers == 3 and s.layers == 32
    # a bad config raises on every call
    raw["num_hidden_layers"] = 0
    for _ in range(2):
        with pytest.raises(ValueError, match="num_hidden_layers"):
            llm_spec._resolve_text("llama-3.1-8b", json.dumps(raw))


# -- part graphs shared between cost models ------------------------------------------------
@pytest.mark.parametrize("args", PARTS[::4], ids=lambda a: "-".join(map(str, a)))
def test_load_part_is_the_checked_load_of_the_built_model(args):
    from npusim.frontend.llm import load_part
    model, part, phase, batch, seq, kv_len, layer, tp = args
    got = load_part(model, phase, batch, seq=seq, kv_len=kv_len, part=part, layer=layer, tp=tp,
                    name="n")
    assert got is load_part(model, phase, batch, seq=seq, kv_len=kv_len, part=part,
                            layer=layer, tp=tp, name="n")
    _same_graph(got, load_onnx(_proto(*args), name="n"))
    # precision gives a new graph: the shared one is never changed
    before = [op for op in got.ops()]
    q = apply_precision(got, resolve_precision("fp8"))
    assert q is not got and [op for op in got.ops()] == before


def test_load_part_follows_the_config(monkeypatch):
    import json
    from npusim.frontend.llm import load_part
    a = load_part("tiny-llama", "prefill", 1, seq=8, part="dense", layer=0)
    raw = json.loads(llm_spec._config_text("tiny-llama"))
    raw["intermediate_size"] = 2 * raw["intermediate_size"]
    monkeypatch.setattr(llm_spec, "_config_text", lambda name: json.dumps(raw))
    b = load_part("tiny-llama", "prefill", 1, seq=8, part="dense", layer=0)
    assert b is not a and b.parameters > a.parameters


def test_candidates_memo_shared_by_operands_of_the_same_size():
    a = load_arch("rngd")
    g = load_onnx(_proto(*PARTS[1]), trusted=True)
    fp8, int8, bf16 = ([op for op in apply_precision(g, resolve_precision(p)).ops()
                        if isinstance(op, Contraction)] for p in ("fp8", "int8", "bf16"))
    mapping._CANDIDATES.clear()
    for x, y, z in zip(fp8, int8, bf16):
        ex = mapping.engine_params(a, a.execution_dtype(str(x.compute_dtype)))
        ey = mapping.engine_params(a, a.execution_dtype(str(y.compute_dtype)))
        kx = mapping._candidates_of(x, mapping._candidate_signature(x), ex)
        ky = mapping._candidates_of(y, mapping._candidate_signature(y), ey)
        flat = mapping._build_candidates_flat(y, ey)
        for f in ("tb", "tm", "tn", "tkk", "a_tile", "b_tile", "c_tile", "c_acc"):
            assert np.array_equal(getattr(ky, f), getattr(flat, f))
        assert (ky.a_total, ky.b_total) == (flat.a_total, flat.b_total)
        if ex == ey:
            assert kx is ky            # same sizes, same engine: built once
        ez = mapping.engine_params(a, a.execution_dtype(str(z.compute_dtype)))
        kz = mapping._candidates_of(z, mapping._candidate_signature(z), ez)
        assert kz is not kx            # 16-bit operands: other tiles
    mapping._CANDIDATES.clear()


@pytest.mark.parametrize("arch", ["rngd", "h100", "atom", "edu"])
def test_dram_efficiency_on_prepared_grids_equals_the_plain_interpolation(arch):
    import random
    t = dram_mod.dram_table(load_arch(arch))
    rng = random.Random(7)
    for _ in range(500):
        pattern = rng.choice(dram_mod.PATTERNS)
        total, chunk = 2 ** rng.uniform(-2, 40), 2 ** rng.uniform(-2, 40)
        if rng.random() < 0.1:
            chunk = total
        whole = max(total, 1.0)
        if pattern == "seq" or chunk >= whole:
            plain = dram_mod._interp(whole, t.seq_sizes, t.seq)
        else:
            grid = t.strided if pattern == "strided" else t.random
            plain = dram_mod._interp(max(chunk, 1.0), t.contiguous,
                                     [dram_mod._interp(whole, t.totals, row) for row in grid])
        assert t.efficiency(pattern, chunk, total) == plain
