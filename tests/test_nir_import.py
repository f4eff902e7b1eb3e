"""NIR import (npusim/frontend/nir_import.py): NIR graphs built in code, written with
``nir.write`` and read back as SNN graphs; hand-counted MACs, neurons and rates; one clean
error per class of bad file. Skipped without the optional ``nir`` package."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

nir = pytest.importorskip("nir")

from npusim.errors import ModelError, UnsupportedOpError  # noqa: E402
from npusim.frontend.nir_import import DEFAULT_RATE, load_nir  # noqa: E402
from npusim.ir import Neuron  # noqa: E402


def write(tmp_path, nodes, edges, name="net.nir"):
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


def chain(tmp_path, *named, name="net.nir"):
    """A chain of (name, node) pairs, Input first and Output last."""
    nodes = dict(named)
    names = [n for n, _ in named]
    return write(tmp_path, nodes, list(zip(names, names[1:])), name)


def lif(n, tau=0.02, thr=1.0):
    shape = n if isinstance(n, tuple) else (n,)
    return nir.LIF(tau=np.full(shape, tau), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, thr))


def iaf(shape):
    return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape))


def affine(n_out, n_in):
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


def neurons(g):
    return [op for op in g.ops() if isinstance(op, Neuron)]


def one_line(e):
    return "\n" not in str(e.value)


# -- what comes out -----------------------------------------------------------------------
def test_mlp_is_an_snn_graph_by_the_contract(tmp_path):
    path = chain(tmp_path, ("input", nir.Input(input_type=np.array([4]))),
                 ("fc1", affine(8, 4)), ("lif1", lif(8)),
                 ("fc2", nir.Linear(weight=np.ones((3, 8)))),
                 ("readout", nir.LI(tau=np.full(3, 0.05), r=np.ones(3), v_leak=np.zeros(3))),
                 ("output", nir.Output(output_type=np.array([3]))))
    g = load_nir(path, 8, rates={"input": 0.25, "lif1": 0.05})
    assert g.meta["snn"] is True and g.meta["timesteps"] == 8 and g.meta["format"] == "nir"
    assert g.meta["nir_version"] == nir.version
    assert g.inputs == ["input"] and g.outputs == ["readout"]
    assert [(o.name, o.model, o.rate, o.timesteps, o.graded, o.op_type) for o in neurons(g)] == [
        ("input:encode", "encode", 0.25, 8, False, "Input"),
        ("lif1", "lif", 0.05, 8, False, "LIF"),
        ("readout", "lif", 1.0, 8, True, "LI")]
    assert g.macs == 4 * 8 + 8 * 3
    # the encoder reads the graph input; each Neuron reads the current of the op before it
    enc, l1, ro = neurons(g)
    assert enc.inputs[0].name == "input" and enc.outputs[0].shape == (1, 4)
    assert g.producer[l1.inputs[0].name] == "fc1/bias"  # Gemm: matmul, then the bias add
    assert dict(l1.params) == {"tau": 0.02, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0,
                               "v_reset": 0.0}
    assert l1.neurons == 8 and l1.spikes == pytest.approx(8 * 8 * 0.05)
    assert g.warnings == []  # every spiking layer had a rate; LI passes a value every step


def test_cnn_with_padding_stride_pooling_and_flatten(tmp_path):
    path = chain(tmp_path, ("in", nir.Input(input_type=np.array([2, 9, 9]))),
                 ("conv", nir.Conv2d(input_shape=(9, 9), weight=np.ones((4, 2, 3, 3)), stride=2,
                                     padding=1, dilation=1, groups=1, bias=np.zeros(4))),
                 ("if1", iaf((4, 5, 5))),
                 ("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                        padding=np.array([0, 0]))),
                 ("flat", nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=0)),
                 ("fc", affine(10, 16)),
                 ("cuba", nir.CubaLIF(tau_syn=np.ones(10), tau_mem=np.full(10, 2.0),
                                      r=np.ones(10), v_leak=np.zeros(10),
                                      v_threshold=np.ones(10))),
                 ("out", nir.Output(output_type=np.array([10]))))
    g = load_nir(path, 4)
    conv = g.op("conv")
    # out = floor((9 + 2*1 - 3) / 2) + 1 = 5; MACs = 4 out ch x 2 in ch x 5x5 x 3x3
    assert conv.outputs[0].shape == (1, 4, 5, 5) and conv.macs == 4 * 2 * 25 * 9
    assert str(conv.operands[0].axes[2]) == "2*p+r-1"  # padding 1, stride 2
    pool = g.op("pool")
    assert pool.kind == "reduction" and pool.func == "average_pool"
    assert pool.outputs[0].shape == (1, 4, 2, 2)
    assert g.aliases["flat"] == "pool"  # flatten is a free view
    assert g.macs == 4 * 2 * 25 * 9 + 16 * 10
    assert [(n.name, n.model, n.neurons) for n in neurons(g)] == [
        ("in:encode", "encode", 2 * 81), ("if1", "if", 100), ("cuba", "cubalif", 10)]
    # no rates: the default fills every spiking layer and says so, naming them
    assert all(n.rate == DEFAULT_RATE for n in neurons(g))
    assert len(g.warnings) == 1 and all(k in g.warnings[0] for k in ("in:encode", "if1", "cuba"))


def test_grouped_conv1d_same_padding_and_scale(tmp_path):
    path = chain(tmp_path, ("in", nir.Input(input_type=np.array([4, 16]))),
                 ("conv", nir.Conv1d(input_shape=16, weight=np.ones((6, 2, 5)), stride=1,
                                     padding="same", dilation=2, groups=2, bias=np.zeros(6))),
                 ("gain", nir.Scale(scale=np.full((6, 16), 0.5))),
                 ("lif", lif((6, 16))))
    g = load_nir(path, 2, default_rate=0.2)
    conv = g.op("conv")
    # 'same': total pad = dilation*(k-1) = 8, 4 before; groups 2 of 2 in, 3 out channels
    assert conv.outputs[0].shape == (1, 6, 16) and conv.extents["g"] == 2
    assert conv.macs == 2 * 3 * 2 * 16 * 5 and str(conv.operands[0].axes[2]) == "p+2*r-4"
    assert g.op("gain").func == "mul"
    assert g.producer[g.op("lif").inputs[0].name] == "gain"


def test_chain_ending_in_a_projection_gets_an_out_layer(tmp_path):
    path = chain(tmp_path, ("x", nir.Input(input_type=np.array([5]))), ("fc1", affine(7, 5)),
                 ("n1", lif(7)), ("fc2", affine(2, 7)),
                 ("y", nir.Output(output_type=np.array([2]))))
    g = load_nir(path, 3, rates={"x:encode": 0.5, "fc2:out": 0.25}, default_rate=None)
    assert [(n.name, n.model, n.rate) for n in neurons(g)] == [
        ("x:encode", "encode", 0.5), ("n1", "lif", None), ("fc2:out", "if", 0.25)]
    assert g.outputs == ["fc2:out"] and g.warnings == []


def test_heterogeneous_parameters_are_averaged_exactly(tmp_path):
    node = nir.LIF(tau=np.array([0.01, 0.03]), r=np.ones(2), v_leak=np.zeros(2),
                   v_threshold=np.array([1.0, np.inf]))
    path = chain(tmp_path, ("in", nir.Input(input_type=np.array([3]))), ("fc", affine(2, 3)),
                 ("lif", node))
    params = dict(load_nir(path, 1, default_rate=0.1).op("lif").params)
    assert params["tau"] == pytest.approx(0.02) and "v_threshold" in params
    assert params["v_threshold"] == 1.0  # the infinite one is left out
    assert load_nir(path, 1, rates={"lif": 0.1}).op("lif").rate == 0.1  # exact, not float32


def test_graph_without_an_input_node_reads_its_first_node_shape():
    g = nir.NIRGraph(nodes={"fc": affine(3, 5), "l": iaf(3)}, edges=[("fc", "l")],
                     type_check=False)
    out = load_nir(g, 2, rates={"input": 0.3})
    assert out.inputs == ["fc:input"] and out.tensors["fc:input"].shape == (1, 5)
    assert [(n.name, n.rate) for n in neurons(out)] == [("fc:input:encode", 0.3), ("l", 0.1)]
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    with pytest.raises(ModelError, match="starts at node 'p' .* add a nir.Input"):
        load_nir(nir.NIRGraph(nodes={"p": pool, "l": iaf(3)}, edges=[("p", "l")],
                              type_check=False), 2)


def test_in_memory_graph_and_threshold_and_integrator(tmp_path):
    g = nir.NIRGraph.from_list(affine(4, 3), nir.Threshold(threshold=np.ones(4)),
                               nir.Linear(weight=np.ones((2, 4))), nir.I(r=np.ones(2)))
    out = load_nir(g, 5)
    assert [(n.name, n.model, n.graded, n.rate) for n in neurons(out)] == [
        ("input:encode", "encode", False, DEFAULT_RATE),
        ("threshold", "if", False, DEFAULT_RATE), ("i", "if", True, 1.0)]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 12), min_size=2, max_size=5), T=st.integers(1, 16),
       rate=st.floats(0, 1))
def test_random_mlps_count_synapses_and_neurons(tmp_path, widths, T, rate):
    named = [("in", nir.Input(input_type=np.array([widths[0]])))]
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        named += [(f"fc{i}", affine(b, a)), (f"lif{i}", lif(b))]
    g = load_nir(chain(tmp_path, *named, name="h.nir"), T, default_rate=rate)
    assert g.macs == sum(a * b for a, b in zip(widths, widths[1:]))
    ns = neurons(g)
    assert [n.neurons for n in ns] == widths and all(n.timesteps == T for n in ns)
    assert sum(n.spikes for n in ns) == pytest.approx(sum(widths) * T * rate)


# -- what is refused ----------------------------------------------------------------------
def refused(path, *needles, T=4, cls=ModelError, **kw):
    with pytest.raises(cls) as e:
        load_nir(path, T, **kw)
    assert one_line(e), str(e.value)
    for needle in needles:
        assert needle in str(e.value), str(e.value)
    return str(e.value)


def test_unknown_node_type_names_node_type_and_what_is_supported(tmp_path):
    path = chain(tmp_path, ("in", nir.Input(input_type=np.array([3]))), ("fc", affine(3, 3)),
                 ("wait", nir.Delay(delay=np.ones(3))), ("lif", lif(3)))
    msg = refused(path, "'wait'", "'Delay'", "CubaLIF", "Conv2d", cls=UnsupportedOpError)
    assert "supported types" in msg


def test_nested_graph_is_refused(tmp_path):
    inner = nir.NIRGraph.from_list(affine(3, 3), lif(3))
    path = write(tmp_path, {"in": nir.Input(input_type=np.array([3])), "sub": inner},
                 [("in", "sub")])
    refused(path, "'sub'", "nested NIRGraph", cls=UnsupportedOpError)


def test_files_that_are_not_nir(tmp_path):
    refused(tmp_path / "missing.nir", "no such NIR file")
    text = tmp_path / "notes.nir"
    text.write_text("hello\n")
    refused(text, "is not a NIR file", "not HDF5")
    import h5py
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    refused(other, "not a NIR file", "'node'")
    trunc = tmp_path / "trunc.nir"
    good = chain(tmp_path, ("in", nir.Input(input_type=np.array([3]))), ("fc", affine(3, 3)),
                 ("lif", lif(3)))
    trunc.write_bytes(good.read_bytes()[:300])
    refused(trunc, "trunc.nir")


@pytest.mark.parametrize("case, needles", [
    ("affine_in", ("'fc'", "(8, 4)", "(5,)", "disagree")),
    ("lif_size", ("'lif'", "'tau'", "(6,)", "disagree")),
    ("conv_decl", ("'conv'", "input_shape", "disagree")),
    ("conv_channels", ("'conv'", "groups=1", "disagree")),
    ("output_decl", ("'out'", "declares shape", "disagree")),
    ("flatten_decl", ("'flat'", "input_type", "disagree")),
])
def test_shapes_that_disagree_name_the_node(tmp_path, case, needles):
    inp = ("in", nir.Input(input_type=np.array([5])))
    img = ("in", nir.Input(input_type=np.array([2, 6, 6])))
    conv = nir.Conv2d(input_shape=(6, 6), weight=np.ones((3, 2, 3, 3)), stride=1, padding=0,
                      dilation=1, groups=1, bias=np.zeros(3))
    cases = {
        "affine_in": [inp, ("fc", affine(8, 4)), ("lif", lif(8))],
        "lif_size": [inp, ("fc", affine(8, 5)), ("lif", lif(6))],
        "conv_decl": [img, ("conv", nir.Conv2d(input_shape=(7, 7), weight=np.ones((3, 2, 3, 3)),
                                               stride=1, padding=0, dilation=1, groups=1,
                                               bias=np.zeros(3))), ("if", iaf((3, 5, 5)))],
        "conv_channels": [img, ("conv", nir.Conv2d(input_shape=(6, 6),
                                                   weight=np.ones((3, 4, 3, 3)), stride=1,
                                                   padding=0, dilation=1, groups=1,
                                                   bias=np.zeros(3))), ("if", iaf((3, 4, 4)))],
        "output_decl": [inp, ("fc", affine(8, 5)), ("lif", lif(8)),
                        ("out", nir.Output(output_type=np.array([9])))],
        "flatten_decl": [img, ("conv", conv), ("if", iaf((3, 4, 4))),
                         ("flat", nir.Flatten(input_type={"input": np.array([3, 5, 5])},
                                              start_dim=0)),
                         ("fc", affine(4, 48)), ("lif", lif(4))],
    }
    refused(chain(tmp_path, *cases[case]), *needles)


def test_graphs_that_are_not_chains(tmp_path):
    inp = nir.Input(input_type=np.array([3]))
    # a branch: one layer feeds two
    branch = {"in": inp, "fc": affine(3, 3), "a": lif(3), "b": lif(3)}
    refused(write(tmp_path, branch, [("in", "fc"), ("fc", "a"), ("fc", "b")], "b.nir"),
            "'fc'", "feeds 2 nodes", "feed-forward chain")
    # a residual: two paths meet
    res = {"in": inp, "fc1": affine(3, 3), "l1": lif(3), "fc2": affine(3, 3), "l2": lif(3)}
    refused(write(tmp_path, res, [("in", "fc1"), ("fc1", "l1"), ("l1", "fc2"), ("in", "l2"),
                                  ("fc2", "l2")], "r.nir"), "'l2'", "adds up 2 inputs")
    # recurrence: a loop back from the neurons to their own projection
    rec = {"in": inp, "fc": affine(3, 3), "l": lif(3), "w": affine(3, 3)}
    refused(write(tmp_path, rec, [("in", "fc"), ("fc", "l"), ("l", "w"), ("w", "fc")], "c.nir"),
            "'fc'", "adds up 2 inputs")
    loop = {"fc": affine(3, 3), "l": lif(3)}
    refused(write(tmp_path, loop, [("fc", "l"), ("l", "fc")], "l.nir"), "recurrent")
    two = {"in": inp, "in2": nir.Input(input_type=np.array([3])), "fc": affine(3, 3),
           "l": lif(3)}
    refused(write(tmp_path, two, [("in", "fc"), ("fc", "l")], "t.nir"), "2 inputs", "'in2'")


def test_layers_that_do_not_alternate(tmp_path):
    inp = ("in", nir.Input(input_type=np.array([3])))
    refused(chain(tmp_path, inp, ("fc1", affine(3, 3)), ("fc2", affine(3, 3)), ("l", lif(3))),
            "'fc1'", "'fc2'", "no neuron layer between")
    refused(chain(tmp_path, inp, ("fc", affine(3, 3)), ("a", lif(3)), ("b", lif(3))),
            "'b'", "'a'", "no projection")
    refused(chain(tmp_path, inp, ("l", lif(3)), ("fc", affine(3, 3)), ("m", lif(3))),
            "'l'", "spike encoder")


def test_bad_arguments(tmp_path):
    path = chain(tmp_path, ("in", nir.Input(input_type=np.array([3]))), ("fc", affine(3, 3)),
                 ("l", lif(3)))
    for T in (0, -1, 2.5, True, "8"):
        refused(path, "timesteps", T=T)
    refused(path, "'fc'", "Affine node, not a neuron layer", rates={"fc": 0.1})
    refused(path, "'nope'", "no layer", "input, l", rates={"nope": 0.1})
    refused(path, "rates['l']", "[0, 1]", rates={"l": 1.5})
    refused(path, "default_rate", default_rate=-0.1)
    refused(path, "rates must map", rates=[0.1])
    refused(42, "not int")
    assert load_nir(path, 2, rates={"in": 0.3}).op("in:encode").rate == 0.3


def test_missing_nir_package_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nir", None)
    refused(tmp_path / "x.nir", "optional nir package", "pip install")


def test_shapes_follow_pytorch_formulas():
    """The conv/pool output sizes used here agree with nir's own helper."""
    from nir.ir.utils import calculate_conv_output

    from npusim.frontend.nir_read import _conv_out
    for hw, k, s, p, d in [(9, 3, 2, 1, 1), (16, 5, 3, 0, 2), (7, 7, 1, 3, 1)]:
        node = {"weight": np.ones((2, 1, k, k)), "stride": s, "padding": p, "dilation": d,
                "groups": 1}
        want = calculate_conv_output((hw, hw), p, d, k, s)
        assert _conv_out("c", "Conv2d", node, (1, hw, hw), "f")[0][1:] == tuple(want)
        assert tuple(want)[0] == math.floor((hw + 2 * p - d * (k - 1) - 1) / s) + 1


# -- fuzz: arbitrary files at the boundary ------------------------------------------------
def _h5(group, d):
    """Write a nested dict as nir.write lays it out (groups, datasets, strings)."""
    import h5py
    for k, v in d.items():
        if isinstance(v, dict):
            _h5(group.create_group(k), v)
        elif isinstance(v, str):
            group.create_dataset(k, data=v, dtype=h5py.string_dtype())
        else:
            group.create_dataset(k, data=v)


_TYPES = ["Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
          "Flatten", "Scale", "IF", "LIF", "CubaLIF", "LI", "I", "CubaLI", "Threshold",
          "Delay", "NIRGraph", "Bogus"]
_FIELDS = ["shape", "weight", "bias", "stride", "padding", "dilation", "groups", "kernel_size",
           "input_shape", "input_type", "start_dim", "end_dim", "scale", "tau", "r", "v_leak",
           "v_threshold", "v_reset", "tau_syn", "tau_mem", "w_in", "threshold"]
_values = st.one_of(
    st.integers(-3, 9),
    st.sampled_from(["same", "valid", "full", ""]),
    st.lists(st.integers(-1, 6), min_size=0, max_size=4).map(lambda v: np.array(v, np.int64)),
    st.lists(st.integers(1, 4), min_size=1, max_size=4).map(lambda s: np.ones(s)),
    st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def nir_like(draw):
    n = draw(st.integers(1, 6))
    names = [f"n{i}" for i in range(n)]
    nodes = {}
    for name in names:
        node = {"type": draw(st.sampled_from(_TYPES))}
        for f in draw(st.lists(st.sampled_from(_FIELDS), max_size=5, unique=True)):
            node[f] = draw(_values)
        nodes[name] = node
    edges = list(zip(names, names[1:]))
    if draw(st.booleans()):
        edges += draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)),
                               max_size=2))
    return nodes, edges


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nir_like())
def test_fuzz_arbitrary_nir_files_load_or_fail_cleanly(tmp_path, graph):
    import h5py
    nodes, edges = graph
    path = tmp_path / "fuzz.nir"
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data="1.0.8", dtype=h5py.string_dtype())
        top = f.create_group("node")
        _h5(top, {"type": "NIRGraph", "nodes": nodes})
        top.create_dataset("edges", data=np.array(edges, dtype=object).reshape(-1, 2),
                           dtype=h5py.string_dtype())
    try:
        g = load_nir(path, 3)
    except ModelError as e:
        assert "\n" not in str(e) and str(path) in str(e) or "timesteps" in str(e), str(e)
    else:
        assert g.meta["snn"] and neurons(g)[0].model == "encode"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=16))
def test_fuzz_corrupted_bytes_fail_cleanly(tmp_path, at, raw):
    path = chain(tmp_path, ("in", nir.Input(input_type=np.array([3]))), ("fc", affine(3, 3)),
                 ("l", lif(3)), name="c.nir")
    data = bytearray(path.read_bytes())
    at %= len(data)
    data[at:at + len(raw)] = raw
    path.write_bytes(bytes(data))
    try:
        load_nir(path, 2)
    except ModelError as e:
        assert "\n" not in str(e), str(e)
