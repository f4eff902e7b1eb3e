"""Residual (multi-input) epilogue fusion, the arch's ``fusion: residual``: a hand-computed
case on a tiny arch (bytes per level and launches, fused against standalone), chains, the
cases that must not fuse, the field's default reproducing the single-input rule, bad values,
and the properties every fused run keeps (never slower than without it, never faster than
its roofline bound, energy the sum of its parts)."""
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npusim
from npusim.engine.simulate import _fusable, simulate_graph
from npusim.errors import ArchError
from npusim.ir import BF16, Contraction, Elementwise, Graph, Role, Tensor

LAUNCH = 1e-3     # a launch far longer than any op here, so latency // LAUNCH counts launches


def tiny(fusion: str = "residual", **more):
    """edu with an ideal DRAM (efficiency 1, so DRAM times are bytes / 25.6 GB/s exactly)
    and a 1 ms launch."""
    sets = {"dram.type": "generic", "launch_overhead": f"{LAUNCH} s", "fusion": fusion,
            **more}
    return npusim.load_arch("edu", sets)


def mm(name, x, out, m=64, k=64, n=64):
    return Contraction.einsum("mk,kn->mn", {"m": m, "k": k, "n": n}, [x, f"{name}.w"], out,
                              BF16, name=name, roles=[Role.ACTIVATION, Role.WEIGHT])


def ew(name, inputs, out, func="add"):
    shape = inputs[0].shape
    return Elementwise(name=name, func=func, op_type=func.capitalize(), inputs=tuple(inputs),
                       outputs=(Tensor(out, shape, BF16),))


def residual_graph(skip_from: str = "input", relu: bool = False) -> Graph:
    """``z = mm(x) + s`` (then ``relu``), ``s`` a graph input or an earlier matmul's output;
    every tensor 64 x 64 bf16 = 8192 B."""
    g = Graph("res")
    g.inputs.append("x")
    if skip_from == "input":
        g.inputs.append("s")
        s = Tensor("s", (64, 64), BF16)
    else:
        s = g.add(mm("pre", "x", "s")).outputs[0]
    y = g.add(mm("main", "x" if skip_from == "input" else "s2", "y")).outputs[0] \
        if skip_from == "input" else None
    if y is None:
        g.inputs.append("s2")
        y = g.add(mm("main", "s2", "y")).outputs[0]
    z = g.add(ew("add", (y, s), "z")).outputs[0]
    if relu:
        z = g.add(ew("relu", (z,), "r", "relu")).outputs[0]
    g.outputs.append(z.name)
    return g


def by_name(r):
    return {o.name: o for o in r.ops}


def launches(r) -> int:
    return int(r.latency_s // LAUNCH)


# ----------------------------------------------------------------------- by hand
def test_residual_add_from_dram_by_hand():
    """The skip input is a graph input (DRAM): fused, the add reads it (8192 B) and writes z
    (8192 B) at DRAM from inside the matmul's kernel: same bytes, one launch instead of two,
    and exactly the add's DRAM time added to the matmul's DRAM stream."""
    g = residual_graph("input")
    alone = simulate_graph(g, tiny("epilogue"))
    fused = simulate_graph(g, tiny("residual"))
    a, f = by_name(alone), by_name(fused)
    assert launches(alone) == 2 and launches(fused) == 1
    assert a["add"].dram_bytes == f["add"].dram_bytes == 2 * 8192
    assert a["add"].bytes_by_level["sram"] == 8192         # y, read back from the SRAM
    assert f["add"].bytes_by_level["sram"] == 0.0          # y never left the engine
    assert f["main"].dram_bytes == a["main"].dram_bytes
    assert fused.dram_bytes == alone.dram_bytes
    assert f["add"].latency_s == 0.0 and f["add"].mapping["fused_into"] == "main"
    body = a["main"].latency_s - LAUNCH
    own_dram = a["main"].dram_bytes / 25.6e9
    assert f["main"].latency_s == pytest.approx(LAUNCH + max(body, own_dram + 2 * 8192 / 25.6e9),
                                                rel=1e-12)
    assert fused.latency_s < alone.latency_s
    # the add's roofline is folded into the matmul's record
    assert f["add"].bound_s == 0.0
    assert f["main"].memory_s == pytest.approx(a["main"].memory_s + a["add"].memory_s)
    assert fused.bound_latency_s <= fused.latency_s


def test_residual_add_on_chip_by_hand():
    """The skip input is an earlier matmul's output, on chip: the epilogue reads its 8192 B
    from the SRAM, writes z (a graph output, 8192 B) to DRAM; the add's vector work (4096
    adds at 4 x 16 per ns) overlaps the matmul."""
    g = residual_graph("matmul")
    alone = simulate_graph(g, tiny("epilogue"))
    fused = simulate_graph(g, tiny("residual"))
    a, f = by_name(alone), by_name(fused)
    assert launches(alone) == 3 and launches(fused) == 2
    assert f["add"].bytes_by_level["sram"] == 8192 and f["add"].dram_bytes == 8192
    assert a["add"].bytes_by_level["sram"] == 2 * 8192 and a["add"].dram_bytes == 8192
    assert _fusable(g, True)[0] == {"add": "main"}
    assert _fusable(g, False)[0] == {}
    assert fused.latency_s < alone.latency_s
    assert math.isclose(fused.energy_j, sum(fused.energy_by_component().values()))


def test_chain_add_then_relu_fuses_into_one_kernel():
    g = residual_graph("input", relu=True)
    host, main = _fusable(g, True)
    assert host == {"add": "main", "relu": "main"} and main == {"add": "y", "relu": "z"}
    f = by_name(simulate_graph(g, tiny("residual")))
    assert launches(simulate_graph(g, tiny("residual"))) == 1
    assert f["add"].dram_bytes == 8192                     # s read; z stays on chip
    assert f["relu"].dram_bytes == 8192                    # r written (a graph output)
    assert f["relu"].bytes_by_level["sram"] == 0.0
    # without the field: the add runs alone and the relu rides in its glue kernel
    alone = simulate_graph(g, tiny("epilogue"))
    assert launches(alone) == 2 and "fused_into" not in by_name(alone)["relu"].mapping


def test_projection_shortcut_fuses_into_the_later_contraction():
    """ResNet's first block: add(conv3(..), downsample(x)): into whichever runs last."""
    g = Graph("block")
    g.inputs.append("x")
    a = g.add(mm("conv3", "x", "a")).outputs[0]
    b = g.add(mm("down", "x", "b")).outputs[0]
    g.add(ew("add", (a, b), "z"))
    g.outputs.append("z")
    assert _fusable(g, True)[0] == {"add": "down"}


# ----------------------------------------------------------------------- must not fuse
def test_not_fused_when_the_other_input_comes_after_the_contraction():
    g = Graph("late")
    g.inputs.extend(["x", "u"])
    y = g.add(mm("main", "x", "y")).outputs[0]
    s = g.add(ew("act", (Tensor("u", (64, 64), BF16),), "s", "relu")).outputs[0]
    g.add(ew("add", (y, s), "z"))
    g.outputs.append("z")
    assert _fusable(g, True)[0] == {}
    r = by_name(simulate_graph(g, tiny("residual")))
    assert r["add"].latency_s > 0 and "fused_into" not in r["add"].mapping


def test_not_fused_when_the_contraction_output_has_two_readers():
    g = Graph("two")
    g.inputs.extend(["x", "s"])
    y = g.add(mm("main", "x", "y")).outputs[0]
    g.add(ew("add", (y, Tensor("s", (64, 64), BF16)), "z"))
    g.add(ew("other", (y,), "o", "relu"))
    g.outputs.extend(["z", "o"])
    assert _fusable(g, True)[0] == {}


def test_add_of_a_tensor_to_itself_is_not_fused():
    g = Graph("self")
    g.inputs.append("x")
    y = g.add(mm("main", "x", "y")).outputs[0]
    g.add(ew("add", (y, y), "z"))
    g.outputs.append("z")
    assert _fusable(g, True)[0] == {}


# ----------------------------------------------------------------------- the field
def test_default_is_epilogue_and_gpus_keep_it():
    for name in ("h100", "h200", "a100", "edu", "systolic-128"):
        assert npusim.load_arch(name).fusion == "epilogue"
    assert npusim.load_arch("rngd", {"fusion": "null"}).fusion == "epilogue"
    for name in ("rngd", "atom", "atom-max", "rebel-quad"):
        assert npusim.load_arch(name).fusion == "residual"


def test_field_off_is_the_single_input_rule_exactly():
    """Without the field the engine fuses exactly what it fused before it existed (an op with
    one activation input), and an explicit ``epilogue`` changes nothing."""
    g = residual_graph("input", relu=True)
    g2 = Graph("chain")
    g2.inputs.append("x")
    y = g2.add(mm("main", "x", "y")).outputs[0]
    b = g2.add(ew("bias", (y, Tensor("main.b", (64,), BF16, Role.WEIGHT)), "yb")).outputs[0]
    g2.add(ew("act", (b,), "z", "relu"))
    g2.outputs.append("z")
    assert _fusable(g2, False)[0] == {"bias": "main", "act": "main"}
    assert _fusable(g, False)[0] == {}
    for graph in (g, g2):
        base = simulate_graph(graph, npusim.load_arch("h100"))
        same = simulate_graph(graph, npusim.load_arch("h100", {"fusion": "epilogue"}))
        assert base.to_dict()["ops"] == same.to_dict()["ops"]


@pytest.mark.parametrize("value", ["resid", "none", "3", "true", "[residual]", "''"])
def test_bad_fusion_value_is_one_clear_error(value, cli):
    with pytest.raises(ArchError, match="fusion"):
        npusim.load_arch("edu", {"fusion": value})
    code, out, err = cli("run", "tiny-llama", "--phase", "decode", "--kv-len", "16",
                         "--arch", "edu", "--set", f"fusion={value}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
    assert "Traceback" not in err and "fusion" in err


def test_bad_fusion_value_in_a_file_names_file_and_field(tmp_path):
    from importlib.resources import files
    text = files("npusim.archs").joinpath("edu.yaml").read_text(encoding="utf-8")
    path = tmp_path / "mine.yaml"
    path.write_text(text + "fusion: 7\n", encoding="utf-8")
    with pytest.raises(ArchError, match=r"mine\.yaml: fusion.*not one of epilogue, residual"):
        npusim.load_arch(str(path))


# ----------------------------------------------------------------------- properties
ARCHS = {name: (npusim.load_arch(name, {"fusion": "epilogue"}),
                npusim.load_arch(name, {"fusion": "residual"}))
         for name in ("edu", "atom", "rngd", "h100")}


def random_graph(m, k, n, skip, relu, chain_bias):
    g = Graph("rand")
    g.inputs.append("x")
    if skip == "input":
        g.inputs.append("s")
        s = Tensor("s", (m, n), BF16)
    elif skip == "matmul":
        s = g.add(Contraction.einsum("mk,kn->mn", {"m": m, "k": k, "n": n}, ["x", "pw"], "s",
                                     BF16, name="pre",
                                     roles=[Role.ACTIVATION, Role.WEIGHT])).outputs[0]
    else:                      # produced after the contraction: must stay unfused
        s = None
    y = g.add(Contraction.einsum("mk,kn->mn", {"m": m, "k": k, "n": n}, ["x", "w"], "y", BF16,
                                 name="main", roles=[Role.ACTIVATION, Role.WEIGHT])).outputs[0]
    if chain_bias:
        y = g.add(ew("bias", (y, Tensor("b", (n,), BF16, Role.WEIGHT)), "yb")).outputs[0]
    if s is None:
        s = g.add(ew("late", (Tensor("x2", (m, n), BF16),), "s", "relu")).outputs[0]
        g.inputs.append("x2")
    z = g.add(ew("add", (y, s), "z")).outputs[0]
    if relu:
        z = g.add(ew("relu", (z,), "r", "relu")).outputs[0]
    g.outputs.append(z.name)
    return g


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(sorted(ARCHS)), m=st.integers(1, 1024), k=st.integers(1, 1024),
       n=st.integers(1, 1024), skip=st.sampled_from(["input", "matmul", "late"]),
       relu=st.booleans(), chain_bias=st.booleans())
def test_fusion_never_slower_nor_below_its_roofline(arch, m, k, n, skip, relu, chain_bias):
    g = random_graph(m, k, n, skip, relu, chain_bias)
    off, on = ARCHS[arch]
    alone = simulate_graph(g, off)
    fused = simulate_graph(g, on)
    none = simulate_graph(g, on, fuse=False)
    assert fused.latency_s <= none.latency_s * (1 + 1e-9)
    if not chain_bias:     # the single-input rule does not charge a fused bias's read
        assert fused.latency_s <= alone.latency_s * (1 + 1e-9)
    assert fused.latency_s >= fused.bound_latency_s * (1 - 1e-9)
    for op in fused.ops:
        if "prefetched_s" not in op.mapping:   # prefetch moves DRAM time to the op before
            assert op.latency_s >= op.bound_s * (1 - 1e-9), op.name
        if op.energy_j:
            assert op.energy_total_j == pytest.approx(sum(op.energy_j.values()))
            assert all(v >= 0 for v in op.energy_j.values())
    assert fused.energy_j == pytest.approx(sum(fused.energy_by_component().values()))
    if skip == "late":
        assert "fused_into" not in by_name(fused)["add"].mapping


def test_single_input_epilogues_fold_their_bound_into_the_host(tmp_path):
    """Regression: with single-input epilogue fusion the run's roofline summed the fused ops'
    vector time, which overlaps the contraction's MACs, so BERT-Large at int8 on rngd ran
    0.867 ms against a 0.928 ms "bound". The epilogues' bounds now fold into their host's
    record (compute: the larger of MACs and vector work; memory: the sum), as under residual
    fusion, and the run never beats its bound."""
    import npusim
    from npusim.graphs import mlperf
    path = mlperf.write("bert-large", tmp_path / "bert.onnx", seq=384)
    r = npusim.simulate(str(path), npusim.load_arch("rngd", {"fusion": "epilogue"}),
                        dtype="int8")
    assert r.latency_s >= r.bound_latency_s
    fused = [o for o in r.ops if o.bound == "fused" or o.mapping.get("fused_into")]
    assert fused and all(o.bound_s == 0.0 for o in fused)
