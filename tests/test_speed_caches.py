"""The engine's speed-ups change no figure: shared op classes, totals without records, and the
caches a sweep process keeps between design points.

- ``simulate_graph(share=False)`` costs every op by itself (the reference twin); with classes
  shared the whole result tree is the same, bit for bit, over LLM decode and prefill steps, a
  CNN, a tensor-parallel step, residual fusion, PIM units, and with fusion or the power cap off.
- ``records=False`` gives every total of the full result, bit for bit.
- Caches never return a stale value: each result in a warm process, in any order, equals the
  result computed with every cache emptied; archs that differ in a swept field give different
  figures where they must; a graph that grows after a run is costed as it is now; parsed YAML
  handed out is the caller's own.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from npusim import load_arch, load_model
from npusim.engine.simulate import simulate_graph


def _light(name: str) -> str:
    import onnx
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    path = light / f"light_{name}.onnx"
    if not path.exists():
        pytest.skip(f"onnx's light {name} model is not installed")
    return str(path)


def _tp_decode():
    from npusim.frontend.onnx_loader import load_onnx
    from npusim.graphs.builder import build_llm
    return load_onnx(build_llm("tiny-llama", "decode", 2, kv_len=16, tp=2), name="tp2")


GRAPHS = {
    "llama-decode": lambda: load_model("tiny-llama", phase="decode", batch=2, kv_len=16),
    "llama-prefill": lambda: load_model("tiny-llama", phase="prefill", batch=2, seq=32),
    "moe-decode": lambda: load_model("tiny-moe", phase="decode", batch=4, kv_len=64),
    "squeezenet": lambda: load_model(_light("squeezenet")),
    "tp2-decode": _tp_decode,
}
# rngd: residual fusion; h100: epilogue fusion, a link, shared SRAM (L2); edu: a one-core
# chip with no network; rngd+hbm2-pim and lpddr6-pim: PIM units placed by cost
ARCHS = ["rngd", "h100", "edu", "rngd+hbm2-pim", "lpddr6-pim"]
OPTIONS = [{}, {"fuse": False}, {"power_cap": False}, {"pim": "all"}]


@pytest.fixture(scope="module")
def graphs():
    return {k: make() for k, make in GRAPHS.items()}


def same(a, b, path="") -> None:
    """``a`` and ``b`` equal to the last bit (NaN equal to NaN), with the place they differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} vs {b!r}"


def run(graph, arch, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_graph(graph, arch, **kw)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", list(GRAPHS))
def test_shared_classes_give_every_record_of_the_unshared_run(graphs, name, arch):
    from npusim.errors import NpusimError
    g = graphs[name]
    a = load_arch(arch)
    for kw in OPTIONS:
        try:
            alone = run(g, a, share=False, **kw)
        except NpusimError as e:       # a tensor-parallel step on a chip without a link
            for records in (True, False):
                with pytest.raises(type(e)) as got:
                    run(g, a, records=records, **kw)
                assert str(got.value) == str(e)
            continue
        shared = run(g, a, **kw)
        same(alone.to_dict(), shared.to_dict(), f"{name} on {arch} {kw}")
        totals = run(g, a, records=False, **kw)
        same(alone.totals(), totals.totals(), f"{name} on {arch} {kw} totals")
        assert totals.energy_by_component() == alone.energy_by_component()
        assert totals.utilization == alone.utilization


def test_a_decode_step_of_the_swept_model_shares_and_matches():
    g = load_model("llama-3.1-8b", phase="decode", batch=32, kv_len=1024)
    a = load_arch("rngd", {"cores.sram": "12 MiB", "cores.count": "6"})
    alone = run(g, a, share=False)
    same(alone.to_dict(), run(g, a).to_dict())
    same(alone.totals(), run(g, a, records=False).totals())
    from npusim.engine.graph_facts import graph_facts
    facts = graph_facts(g, True, True, False)
    assert len(facts.first) < len(facts.ops) / 10       # 32 layers, a few dozen classes


def test_classes_tell_apart_ops_that_cost_differently():
    from npusim.engine.graph_facts import graph_facts
    from npusim.ir import BF16, Contraction, Graph, Role
    g = Graph("two")
    for i, role in enumerate((Role.WEIGHT, Role.ACTIVATION)):
        g.add(Contraction.einsum("mk,kn->mn", {"m": 8, "k": 64, "n": 64}, [f"x{i}", f"w{i}"],
                                 f"y{i}", BF16, name=f"mm{i}", roles=[Role.ACTIVATION, role]))
    g.add(Contraction.einsum("mk,kn->mn", {"m": 8, "k": 64, "n": 64}, ["x2", "w2"], "y2", BF16,
                             name="mm2", roles=[Role.ACTIVATION, Role.WEIGHT]))
    g.inputs.extend(["x0", "x1", "x2"])
    facts = graph_facts(g, True, False, False)
    # mm0 and mm2 differ in their names alone; mm1's B is an activation, not a weight
    assert facts.classes[0] == facts.classes[2] != facts.classes[1]


# -------------------------------------------------------------------------------- caches
@contextmanager
def cold():
    """Every memo a sweep process keeps, emptied (within and after the block)."""
    from npusim.arch import loader
    from npusim.engine import dram, graph_facts, mapping

    def clear():
        mapping._CACHE.clear()
        mapping._CANDIDATES.clear()
        graph_facts._FACTS.clear()
        loader._parse_once.cache_clear()
        loader._override_scalar.cache_clear()
        dram._table_key.cache_clear()
    clear()
    try:
        yield
    finally:
        clear()


SRAM = ["8 MiB", "16 MiB", "48 MiB"]
COUNT = ["4", "8"]
BANDWIDTH = ["1 TB/s", "1.5 TB/s"]


def _point(sram, count, bw):
    return {"cores.sram": sram, "cores.count": count, "dram.bandwidth": bw}


@pytest.fixture(scope="module")
def decode_cold():
    """The tiny decode step's totals on every point of a small RNGD grid, each computed with
    every cache empty."""
    out = {}
    for s in SRAM:
        for c in COUNT:
            for b in BANDWIDTH:
                with cold():
                    g = load_model("tiny-llama", phase="decode", batch=8, kv_len=256)
                    out[(s, c, b)] = run(g, load_arch("rngd", _point(s, c, b))).totals()
    return out


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.tuples(st.sampled_from(SRAM), st.sampled_from(COUNT),
                                st.sampled_from(BANDWIDTH)), min_size=2, max_size=8),
       records=st.booleans())
def test_warm_caches_give_what_cold_ones_give(decode_cold, order, records):
    g = load_model("tiny-llama", phase="decode", batch=8, kv_len=256)
    for p in order:
        got = run(g, load_arch("rngd", _point(*p)), records=records).totals()
        same(decode_cold[p], got, f"{p}")


def test_each_swept_field_moves_the_figures_it_must(decode_cold):
    base = decode_cold[("16 MiB", "4", "1 TB/s")]
    faster_dram = decode_cold[("16 MiB", "4", "1.5 TB/s")]
    more_cores = decode_cold[("16 MiB", "8", "1 TB/s")]
    assert faster_dram["latency_s"] < base["latency_s"]
    assert more_cores["latency_s"] != base["latency_s"]
    assert more_cores["area_mm2"] > base["area_mm2"]
    # more SRAM per core: a larger chip, and a different tiling somewhere
    bigger = decode_cold[("48 MiB", "4", "1 TB/s")]
    assert bigger["area_mm2"] > base["area_mm2"]
    assert len({repr(v) for v in decode_cold.values()}) == len(decode_cold)


def test_sram_changes_the_mapping_search_result():
    from npusim.engine.mapping import search
    from npusim.engine.op_cost import contraction_cost, placement
    from npusim.ir import BF16, Contraction, Graph, Role
    from npusim.kernels import tiling as tk
    g = Graph("mm")
    op = g.add(Contraction.einsum("mk,kn->mn", {"m": 4096, "k": 4096, "n": 4096}, ["x", "w"],
                                  "y", BF16, name="mm", roles=[Role.ACTIVATION, Role.WEIGHT]))
    where = (tk.IN_DRAM, tk.IN_DRAM, tk.IN_DRAM)
    small, big = (load_arch("rngd", {"cores.sram": s}) for s in ("1 MiB", "64 MiB"))
    a = search(op, small, small.execution_dtype(op.dtype), where, 1e12)
    b = search(op, big, big.execution_dtype(op.dtype), where, 1e12)
    with cold():
        a2 = search(op, small, small.execution_dtype(op.dtype), where, 1e12)
    assert a == a2 and a.tile != b.tile
    assert contraction_cost(op, small, placement(g, small, frozenset()), 1e12).latency > 0


def test_a_graph_that_grows_is_costed_as_it_is_now():
    from npusim.ir import BF16, Contraction, Elementwise, Graph, Role, Tensor

    def build(extra: bool) -> Graph:
        g = Graph("grow")
        g.add(Contraction.einsum("mk,kn->mn", {"m": 64, "k": 256, "n": 256}, ["x", "w"], "y",
                                 BF16, name="mm", roles=[Role.ACTIVATION, Role.WEIGHT]))
        g.inputs.append("x")
        if extra:
            grow(g)
        return g

    def grow(g: Graph) -> None:
        y = g.tensors["y"]
        g.add(Elementwise(name="act", func="gelu", ops_per_element=8.0, inputs=(y,),
                          outputs=(Tensor("z", y.shape, BF16),)))
        g.outputs.append("z")

    arch = load_arch("edu")
    g = build(False)
    before = run(g, arch).to_dict()
    grow(g)
    after = run(g, arch).to_dict()
    assert len(after["ops"]) == 2 and after != before
    with cold():
        same(run(build(True), arch).to_dict(), after)


def test_a_view_pointed_elsewhere_is_costed_as_it_is_now():
    from npusim.ir import BF16, Contraction, Graph, Role, Tensor
    g = Graph("view")
    g.add(Contraction.einsum("mk,kn->mn", {"m": 512, "k": 512, "n": 512}, ["x", "w"], "y",
                             BF16, name="mm", roles=[Role.ACTIVATION, Role.WEIGHT]))
    g.add_tensor(Tensor("big", (512, 512), BF16, Role.KV_CACHE))
    g.alias("v", "y")
    g.add(Contraction.einsum("mk,kn->mn", {"m": 512, "k": 512, "n": 512},
                             [Tensor("v", (512, 512), BF16), "w2"], "z", BF16, name="mm2",
                             roles=[Role.ACTIVATION, Role.WEIGHT]))
    g.inputs.append("x")
    g.outputs.append("z")
    arch = load_arch("edu")
    before = run(g, arch).to_dict()
    g.alias("v", "big")                 # the view now reads the KV cache, in DRAM
    after = run(g, arch).to_dict()
    with cold():
        same(run(g, arch).to_dict(), after)
    assert after["ops"][1]["dram_bytes"] > before["ops"][1]["dram_bytes"]


def test_parsed_yaml_is_the_callers_own():
    from npusim.arch.loader import parse_yaml
    text = "a: &x {k: 1, l: [1, 2]}\nb: *x\nc: 3\n"
    first = parse_yaml(text, "t")
    first["a"]["k"] = 99
    first["a"]["l"].append(3)
    first["c"] = 4
    again = parse_yaml(text, "t")
    assert again == {"a": {"k": 1, "l": [1, 2]}, "b": {"k": 1, "l": [1, 2]}, "c": 3}
    assert again["a"] is again["b"]                    # an alias stays one node, as parsed
    assert again.lines == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(Exception, match="duplicate key"):
        parse_yaml("a: 1\na: 2\n", "dup")
    with pytest.raises(Exception, match="duplicate key"):  # an error is raised every time
        parse_yaml("a: 1\na: 2\n", "dup")


def test_override_values_are_parsed_the_same_each_time():
    from npusim.arch.loader import _parse_override_value
    assert _parse_override_value("16") == 16 and _parse_override_value("16") == 16
    assert _parse_override_value("3 TB/s") == "3 TB/s"
    assert _parse_override_value("null") is None
    s1, s2 = _parse_override_value("!!set {a: null}"), _parse_override_value("!!set {a: null}")
    assert s1 == s2 and s1 is not s2                   # a mutable value is never shared
    a = load_arch("rngd", {"cores.count": "6"})
    b = load_arch("rngd", {"cores.count": "6"})
    assert a == b and a.cores.count == 6


def test_a_sweep_point_gives_the_full_results_figures():
    from npusim.dse.evaluate import Evaluator
    from npusim.dse.spec import parse_spec
    spec = parse_spec({
        "name": "t", "base": "rngd",
        "fields": {"cores.sram": ["8 MiB", "32 MiB"], "dram.bandwidth": ["1 TB/s", "2 TB/s"]},
        "workloads": [{"name": "d", "llm": "tiny-llama", "phase": "decode", "batch": 4,
                       "kv_len": 64, "precision": "bf16"}],
        "objectives": [{"tokens_per_s": "max"}], "strategy": {"kind": "grid"}}, "t.yaml")
    ev = Evaluator(spec)
    point = {"cores.sram": "32 MiB", "dram.bandwidth": "2 TB/s"}
    m = ev.evaluate(0, point)[0]["metrics"]
    import npusim
    arch = ev.resolve(point)
    full = npusim.simulate(ev.graph(arch, spec.workloads[0]), arch, check_capacity=False)
    assert m["latency_s"] == full.latency_s and m["energy_j"] == full.energy_j
    assert m["utilisation"] == full.utilization
    assert ev.evaluate(1, point)[0]["metrics"] == m


# ---------------------------------------------------------------- random graphs, random archs
LAYER = st.fixed_dictionaries({
    "n": st.sampled_from([16, 64, 256]),
    "dtype": st.sampled_from(["bf16", "fp8_e4m3", "int8"]),
    "weight": st.sampled_from(["weight", "activation", "kv_cache"]),
    "epilogue": st.sampled_from([None, "gelu", "square", "residual"]),
    "glue": st.sampled_from([None, "softmax", "transpose", "gather", "all_reduce"]),
    "output": st.booleans(),
})


def _random_graph(layers, m):
    """A chain of matmul layers, each with its own names, shapes, dtypes and glue drawn by
    hypothesis: layers that repeat are the classes the engine shares."""
    from npusim.ir import (Collective, Contraction, Elementwise, Graph, Movement, Reduction,
                           Role, Tensor, dtype)
    g = Graph("random")
    x = Tensor("x0", (m, 64), dtype("bf16"))
    g.inputs.append("x0")
    first = x
    for i, lay in enumerate(layers):
        dt = dtype(lay["dtype"])
        k = x.shape[1]
        role = Role(lay["weight"])
        mm = g.add(Contraction.einsum(
            "mk,kn->mn", {"m": m, "k": k, "n": lay["n"]}, [x, f"w{i}"], f"y{i}", dt,
            name=f"mm{i}", roles=[Role.ACTIVATION, role], out_dtype=dtype("bf16")))
        y = mm.output.tensor
        if lay["epilogue"] == "gelu":
            y = g.add(Elementwise(name=f"act{i}", func="gelu", ops_per_element=8.0, inputs=(y,),
                                  outputs=(Tensor(f"a{i}", y.shape, y.dtype),))).outputs[0]
        elif lay["epilogue"] == "square":       # one tensor read twice by one op
            y = g.add(Elementwise(name=f"sq{i}", func="mul", inputs=(y, y),
                                  outputs=(Tensor(f"s{i}", y.shape, y.dtype),))).outputs[0]
        elif lay["epilogue"] == "residual" and first.shape == y.shape:
            y = g.add(Elementwise(name=f"res{i}", func="add", inputs=(y, first),
                                  outputs=(Tensor(f"r{i}", y.shape, y.dtype),))).outputs[0]
        if lay["glue"] == "softmax":
            y = g.add(Reduction(name=f"sm{i}", func="softmax", ops_per_element=5.0, inputs=(y,),
                                outputs=(Tensor(f"p{i}", y.shape, y.dtype),))).outputs[0]
        elif lay["glue"] == "transpose":
            y = g.add(Movement(name=f"tr{i}", func="transpose", perm=(0, 1), inputs=(y,),
                               outputs=(Tensor(f"t{i}", y.shape, y.dtype),))).outputs[0]
        elif lay["glue"] == "gather":
            table = Tensor(f"emb{i}", (1000, y.shape[1]), y.dtype, Role.WEIGHT)
            out = Tensor(f"e{i}", y.shape, y.dtype)
            y = g.add(Movement(name=f"ga{i}", func="gather", inputs=(table, y), outputs=(out,),
                               moved_bytes=out.nbytes)).outputs[0]
        elif lay["glue"] == "all_reduce":
            y = g.add(Collective(name=f"ar{i}", func="all_reduce", group=2,
                                 payload_bytes=y.nbytes, inputs=(y,),
                                 outputs=(Tensor(f"c{i}", y.shape, y.dtype),))).outputs[0]
        if lay["output"]:
            g.outputs.append(y.name)
        x = y
    if x.name not in g.outputs:
        g.outputs.append(x.name)
    return g


@settings(max_examples=40, deadline=None)
@given(pattern=st.lists(LAYER, min_size=1, max_size=3), repeat=st.integers(1, 4),
       m=st.sampled_from([1, 8, 128]), arch=st.sampled_from(["rngd", "h100", "edu"]),
       sram=st.sampled_from([None, "64 KiB", "4 MiB"]), kw=st.sampled_from(OPTIONS[:3]))
def test_random_graphs_share_exactly(pattern, repeat, m, arch, sram, kw):
    from npusim.errors import NpusimError
    g = _random_graph(pattern * repeat, m)
    field = "cores.sram" if arch != "h100" else "shared_sram"
    a = load_arch(arch, {field: sram} if sram else None)
    try:
        alone = run(g, a, share=False, **kw)
    except NpusimError as e:           # no link for the all-reduce, or a tile that cannot fit
        event("refused")
        with pytest.raises(type(e)) as got:
            run(g, a, **kw)
        assert str(got.value) == str(e)
        return
    from npusim.engine.graph_facts import graph_facts
    facts = graph_facts(g, kw.get("fuse", True), a.fusion == "residual", False)
    event("shared" if len(facts.first) < len(facts.ops) else "no class shared")
    same(alone.to_dict(), run(g, a, **kw).to_dict())
    same(alone.totals(), run(g, a, records=False, **kw).totals())
