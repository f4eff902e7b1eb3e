"""npusim/engine/snn_graph.py (SNN graph -> chain of layers) and the conv2d padding and groups
of npusim/engine/snn.py.

SNN graphs are built by hand as the contract says: ``load_onnx`` of a small ONNX model, then
every Relu replaced by a Neuron with the same name and tensors, an encode Neuron after the
input and a Neuron appended to the last layer (:func:`spiking`). Synapse counts are counted by
hand in the comments.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from npusim.arch.snn_device import load_snn_device
from npusim.engine import snn as es
from npusim.engine.snn_graph import to_network
from npusim.errors import ModelError, NpusimError
from npusim.frontend.onnx_loader import load_onnx
from npusim.ir import Contraction, Graph, Neuron
from npusim.kernels import snn as ks

T = 4


# ----------------------------------------------------------------------------- building graphs
def onnx_model(nodes, x_shape, y_shape, weights, name="m"):
    """An ONNX model: input ``x``, output ``y``, random float weights ``{name: shape}``."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in weights.items()]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _renamed(op, ren: dict):
    """``op`` reading the renamed tensors ``ren`` (old name -> new tensor)."""
    if not any(t.name in ren for t in op.inputs):
        return op
    ins = tuple(ren.get(t.name, t) for t in op.inputs)
    if isinstance(op, Contraction):
        ops = tuple(replace(o, tensor=ren.get(o.tensor.name, o.tensor)) for o in op.operands)
        return replace(op, operands=ops, inputs=ins)
    return replace(op, inputs=ins)


def spiking(g: Graph, rate=0.2, input_rate=0.5, append_out=True) -> Graph:
    """The SNN graph of ``g`` by the contract: encode Neuron, Relus -> Neurons, ':out'."""
    s = Graph(g.name, {**g.meta, "snn": True, "timesteps": T})
    x = g.tensors[g.inputs[0]]
    xs = replace(x, name=f"{x.name}:spikes")
    s.add(Neuron(name=f"{x.name}:encode", source=x.name, model="encode", timesteps=T,
                 rate=input_rate, inputs=(x,), outputs=(xs,)))
    ren = {x.name: xs}
    for view, root in g.aliases.items():
        s.alias(view, xs.name if root == x.name else root)
    last = None
    for op in g.ops():
        op = _renamed(op, ren)
        if op.kind == "elementwise" and op.func == "relu":
            op = Neuron(name=op.name, source=op.source, op_type=op.op_type, model="if",
                        timesteps=T, rate=rate, inputs=op.inputs, outputs=op.outputs)
        if op.kind == "contraction":
            last = op
        s.add(op)
    if append_out:
        y = g.tensors[g.outputs[0]]
        s.add(Neuron(name=f"{last.name}:out", source=last.source, model="if", timesteps=T,
                     rate=rate, inputs=(y,), outputs=(replace(y, name=f"{y.name}:spikes"),)))
    s.inputs, s.outputs = list(g.inputs), list(g.outputs)
    return s


def snn(nodes, x_shape, y_shape, weights, **kw) -> Graph:
    return spiking(load_onnx(onnx_model(nodes, x_shape, y_shape, weights)), **kw)


def synapses(net: es.Network) -> list[int]:
    return [len(es.connectivity(net, i)[0]) for i in range(1, len(net.layers))]


def conv(name, x, w, y, **attrs):
    return helper.make_node("Conv", [x, w], [y], name=name, **attrs)


def shape_const(name, values):
    return helper.make_node("Constant", [], [name], name=name,
                            value=numpy_helper.from_array(np.array(values, np.int64)))


def relu(name, x, y):
    return helper.make_node("Relu", [x], [y], name=name)


# ----------------------------------------------------------------------------- hand cases
def test_mlp_dense_layers_named_by_neurons_with_their_rates():
    # 8 -> Gemm 16 + Relu -> Gemm 4: synapses 8 x 16 = 128 and 16 x 4 = 64, = the MACs
    g = snn([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             relu("relu1", "h", "a"),
             helper.make_node("Gemm", ["a", "w2"], ["y"], name="fc2", transB=1)],
            [1, 8], [1, 4], {"w1": (16, 8), "b1": (16,), "w2": (4, 16)}, rate=0.25)
    net, rates = to_network(g)
    assert [(lay.name, lay.kind, lay.shape) for lay in net.layers] == [
        ("x:encode", "input", (8,)), ("relu1", "dense", (16,)), ("fc2:out", "dense", (4,))]
    assert rates == {"x:encode": 0.5, "relu1": 0.25, "fc2:out": 0.25}
    assert synapses(net) == [128, 64]
    assert sum(synapses(net)) == sum(op.macs for op in g.ops() if op.kind == "contraction")


def test_padded_strided_conv_synapses_counted_by_hand():
    # 2 x 5 x 5 input, 3 x 3 kernel, stride 2, pads 1 -> 3 x 3 x 3. Output rows 0, 1, 2 read
    # input rows {-1, 0, 1}, {1, 2, 3}, {3, 4, 5}: 2 + 3 + 2 = 7 valid row taps, 7 col taps
    # likewise, so 7 x 7 = 49 synapses per (output, input) channel pair: 3 x 2 x 49 = 294
    # (the contraction's 3 x 2 x 9 x 9 = 486 MACs count the padding taps too).
    g = snn([conv("c1", "x", "w", "y", strides=[2, 2], pads=[1, 1, 1, 1])],
            [1, 2, 5, 5], [1, 3, 3, 3], {"w": (3, 2, 3, 3)})
    net, _ = to_network(g)
    lay = net.layers[1]
    assert (lay.name, lay.shape, lay.kernel, lay.stride, lay.padding, lay.groups) == \
        ("c1:out", (3, 3, 3), (3, 3), 2, 1, 1)
    assert synapses(net) == [294]
    assert g.op("c1").macs == 486
    src, dst = es.connectivity(net, 1)
    # output (0, 0, 0) reads channels 0 and 1, rows/cols 0..1: 2 x 4 = 8 inputs
    assert sorted(src[dst == 0].tolist()) == [0, 1, 5, 6, 25, 26, 30, 31]


def test_depthwise_conv_is_grouped():
    # 4 channels, group 4, 3 x 3, pad 1 on 4 x 4: row taps 2 + 3 + 3 + 2 = 10, so 100
    # synapses per channel, 400 in all (MACs 4 x 16 x 9 = 576)
    g = snn([conv("dw", "x", "w", "h", group=4, pads=[1, 1, 1, 1]), relu("r", "h", "a"),
             conv("pw", "a", "w2", "y")],
            [1, 4, 4, 4], [1, 2, 4, 4], {"w": (4, 1, 3, 3), "w2": (2, 4, 1, 1)})
    net, _ = to_network(g)
    assert [(lay.name, lay.groups, lay.padding) for lay in net.layers[1:]] == \
        [("r", 4, 1), ("pw:out", 1, 0)]
    assert synapses(net) == [400, 2 * 4 * 16]
    src, dst = es.connectivity(net, 1)
    assert set((src // 16 == dst // 16).tolist()) == {True}     # channel c reads channel c


def test_pooled_net_has_a_pool_layer_with_the_rate_it_pools():
    # 1 x 6 x 6 -> conv 2 x 3 x 3 pad 1 (row taps 2+3+3+3+3+2 = 16: 256 per channel pair,
    # 512) -> Neuron -> avg pool 2x2/2 (18 outputs x 4 = 72) -> flatten -> Gemm 5 (18 x 5 = 90)
    g = snn([conv("c", "x", "w", "h", pads=[1, 1, 1, 1]), relu("r", "h", "a"),
             helper.make_node("AveragePool", ["a"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], name="fc", transB=1)],
            [1, 1, 6, 6], [1, 5], {"w": (2, 1, 3, 3), "w2": (5, 18)}, rate=0.3)
    net, rates = to_network(g)
    assert [(lay.name, lay.kind, lay.shape) for lay in net.layers] == [
        ("x:encode", "input", (1, 6, 6)), ("r", "conv2d", (2, 6, 6)),
        ("pool", "conv2d", (2, 3, 3)), ("fc:out", "dense", (5,))]
    assert (net.layers[2].groups, net.layers[2].kernel, net.layers[2].stride) == (2, (2, 2), 2)
    assert synapses(net) == [512, 72, 90]
    assert rates["pool"] == rates["r"] == 0.3


def test_global_average_pool_then_dense():
    g = snn([conv("c", "x", "w", "h"), relu("r", "h", "a"),
             helper.make_node("GlobalAveragePool", ["a"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], name="fc", transB=1)],
            [1, 1, 5, 5], [1, 3], {"w": (4, 1, 3, 3), "w2": (3, 4)})
    net, _ = to_network(g)
    assert [(lay.name, lay.shape, lay.kernel) for lay in net.layers[2:]] == [
        ("gap", (4, 1, 1), (3, 3)), ("fc:out", (3,), (1, 1))]
    assert synapses(net) == [4 * 9 * 9, 4 * 9, 4 * 3]


def test_conv_then_pool_on_the_current_folds_into_one_conv():
    # conv 3x3 on 1 x 6 x 6 -> 4 x 4, avg pool 2x2/2 -> 2 x 2, then the Neuron: one conv of
    # kernel (2 - 1) * 1 + 3 = 4, stride 2: 4 outputs x 16 inputs = 64 synapses
    g = snn([conv("c", "x", "w", "h"),
             helper.make_node("AveragePool", ["h"], ["y"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2])],
            [1, 1, 6, 6], [1, 1, 2, 2], {"w": (1, 1, 3, 3)})
    net, _ = to_network(g)
    lay = net.layers[1]
    assert (lay.name, lay.shape, lay.kernel, lay.stride) == ("c:out", (1, 2, 2), (4, 4), 2)
    assert synapses(net) == [64]


def _paths(conv_net: es.Network) -> set:
    """(input, output) pairs joined by some path through layers 1..n of ``conv_net``."""
    pairs = {(s, d) for s, d in zip(*es.connectivity(conv_net, 1))}
    for i in range(2, len(conv_net.layers)):
        nxt = {}
        for s, d in zip(*es.connectivity(conv_net, i)):
            nxt.setdefault(int(s), set()).add(int(d))
        pairs = {(a, c) for a, b in pairs for c in nxt.get(b, ())}
    return {(int(a), int(b)) for a, b in pairs}


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1), kp=st.integers(1, 3),
       h=st.integers(5, 9), groups=st.sampled_from([1, 2]))
def test_folded_pool_has_exactly_the_paths_of_conv_then_pool(k, s, p, kp, h, groups):
    if s > k or p >= k:
        return
    c = 2
    x = (c, h, h)
    oh = es.conv_out(h, k, s, p)
    if oh < kp:
        return
    conv_l = es.Layer("c", "conv2d", (c, oh, oh), kernel=(k, k), stride=s, padding=p,
                      groups=groups)
    pool = es.pool_layer("p", conv_l.shape, (kp, kp))
    two = es.Network("two", (es.Layer("in", "input", x), conv_l, pool))
    ops = onnx_model([conv("c", "x", "w", "h", strides=[s, s], pads=[p] * 4, group=groups),
                      helper.make_node("AveragePool", ["h"], ["y"], name="pool",
                                       kernel_shape=[kp, kp], strides=[kp, kp])],
                     [1, *x], [1, *pool.shape], {"w": (c, c // groups, k, k)})
    net, _ = to_network(spiking(load_onnx(ops)))
    src, dst = es.connectivity(net, 1)
    assert {(int(a), int(b)) for a, b in zip(src, dst)} == _paths(two)


def test_glue_reshapes_and_1d_convs():
    # BatchNorm between a conv and its Neuron is glue; a dense layer reshaped into a map feeds
    # a conv (16 -> 1 x 4 x 4, 3 x 3 conv: 4 x 9 = 36 synapses); a 1-D conv is a height-1 conv2d
    g = snn([helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
             helper.make_node("BatchNormalization", ["h", "s", "b", "m", "v"], ["hb"],
                              name="bn"),
             relu("r", "hb", "a"), shape_const("shp", [1, 1, 4, 4]),
             helper.make_node("Reshape", ["a", "shp"], ["a4"], name="rs"),
             conv("c", "a4", "w", "y")], [1, 4], [1, 1, 2, 2],
            {"w1": (16, 4), "s": (16,), "b": (16,), "m": (16,), "v": (16,), "w": (1, 1, 3, 3)})
    net, _ = to_network(g)
    assert [(lay.name, lay.kind, lay.shape) for lay in net.layers] == [
        ("x:encode", "input", (4,)), ("r", "dense", (1, 4, 4)), ("c:out", "conv2d", (1, 2, 2))]
    assert synapses(net) == [64, 36]
    # 2 x 9 -> conv 4 x 3 -> 4 x 7 (4 x 7 x 2 x 3 = 168) -> conv 3 x 3 stride 2 -> 3 x 3 (108)
    g = snn([conv("c", "x", "w", "h"), relu("r", "h", "a"),
             conv("c2", "a", "w2", "y", strides=[2])],
            [1, 2, 9], [1, 3, 3], {"w": (4, 2, 3), "w2": (3, 4, 3)})
    net, _ = to_network(g)
    assert [(lay.shape, lay.kernel, lay.stride) for lay in net.layers] == [
        ((2, 1, 9), (1, 1), 1), ((4, 1, 7), (1, 3), 1), ((3, 1, 3), (1, 3), 2)]
    assert synapses(net) == [168, 108]


def test_max_pool_is_refused_unless_taken_as_average():
    nodes = [conv("c", "x", "w", "h"), relu("r", "h", "a"),
             helper.make_node("MaxPool", ["a"], ["y"], name="mp", kernel_shape=[2, 2],
                              strides=[2, 2])]
    g = snn(nodes, [1, 1, 5, 5], [1, 1, 1, 1], {"w": (1, 1, 3, 3)})
    with pytest.raises(ModelError, match=r"'mp'.*max_pool='average'"):
        to_network(g)
    net, _ = to_network(g, max_pool="average")
    assert [lay.name for lay in net.layers] == ["x:encode", "r", "c:out"]


# ----------------------------------------------------------------------------- what a chain cannot hold
def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_residual_add_is_refused_naming_the_node():
    g = snn([conv("c1", "x", "w", "h", pads=[1, 1, 1, 1]), relu("r1", "h", "a"),
             conv("c2", "a", "w2", "h2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["h2", "a"], ["y"], name="skip")],
            [1, 2, 4, 4], [1, 2, 4, 4], {"w": (2, 2, 3, 3), "w2": (2, 2, 3, 3)})
    with pytest.raises(ModelError) as e:
        to_network(g)
    assert "'r1'" in _one_line(e) and "branch" in _one_line(e)


def test_asymmetric_padding_is_refused_naming_the_node():
    g = snn([conv("c", "x", "w", "y", pads=[1, 1, 0, 0])], [1, 1, 4, 4], [1, 1, 3, 3],
            {"w": (1, 1, 3, 3)})
    with pytest.raises(ModelError, match="'c'.*asymmetric"):
        to_network(g)


@pytest.mark.parametrize("nodes, x, y, w, match", [
    ([conv("c", "x", "w", "y", dilations=[2, 2])], [1, 1, 6, 6], [1, 1, 2, 2],
     {"w": (1, 1, 3, 3)}, "'c'.*dilation"),
    ([conv("c", "x", "w", "y", strides=[1, 2])], [1, 1, 5, 5], [1, 1, 3, 2],
     {"w": (1, 1, 3, 3)}, "'c'.*one stride"),
    ([helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
      helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2", transB=1)], [1, 4], [1, 2],
     {"w1": (3, 4), "w2": (2, 3)}, "'fc1'.*'fc2'.*no Neuron"),
    ([helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
      helper.make_node("Sigmoid", ["h"], ["y"], name="sig")], [1, 4], [1, 3],
     {"w1": (3, 4)}, "'sig'"),
    ([helper.make_node("Gemm", ["x", "w1"], ["y"], name="fc1", transB=1)], [2, 4], [2, 3],
     {"w1": (3, 4)}, "batch 2"),
    ([conv("c", "x", "w", "h"), relu("r", "h", "a"),
      helper.make_node("AveragePool", ["a"], ["y"], name="ap", kernel_shape=[2, 2],
                       strides=[2, 2], ceil_mode=1)], [1, 1, 5, 5], [1, 1, 3, 3],
     {"w": (1, 1, 1, 1)}, "'ap'.*ceil_mode"),
    ([conv("c", "x", "w", "h", strides=[2, 2]),
      helper.make_node("AveragePool", ["h"], ["y"], name="ap", kernel_shape=[2, 2],
                       strides=[2, 2])], [1, 1, 8, 8], [1, 1, 2, 2], {"w": (1, 1, 1, 1)},
     "'ap'.*gaps"),
    ([conv("c0", "x", "w0", "h"), relu("r", "h", "a"), shape_const("shp", [1, 1, 4, 4]),
      helper.make_node("Reshape", ["a", "shp"], ["a4"], name="rs"), conv("c", "a4", "w", "y")],
     [1, 4, 2, 2], [1, 1, 2, 2], {"w0": (4, 4, 1, 1), "w": (1, 1, 3, 3)},
     "'c'.*reshape only the input or a dense"),
    ([conv("c", "x", "w", "h"), relu("r", "h", "a"),
      helper.make_node("Transpose", ["a"], ["at"], name="tp", perm=[0, 1, 3, 2]),
      conv("c2", "at", "w2", "y")], [1, 1, 5, 5], [1, 1, 2, 2],
     {"w": (2, 1, 3, 3), "w2": (1, 2, 2, 2)}, "'c2'.*transpose"),
    ([conv("c", "x", "w", "h"), relu("r", "h", "y")], [1, 1, 4, 4], [1, 1, 2, 2],
     {"w": (1, 1, 3, 3)}, "'c:out'.*no projection"),
    ([conv("c", "x", "w", "y", pads=[1, 1])], [1, 2, 9], [1, 4, 9], {"w": (4, 2, 3)},
     "'c'.*padded 1-D"),
])
def test_what_a_chain_cannot_express_is_one_clear_error(nodes, x, y, w, match):
    g = snn(nodes, x, y, w)
    with pytest.raises(ModelError, match=match) as e:
        to_network(g)
    _one_line(e)


def test_graph_not_converted_is_refused():
    plain = load_onnx(onnx_model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1,
                                                   name="fc")], [1, 4], [1, 2], {"w": (2, 4)}))
    with pytest.raises(ModelError, match="not an SNN graph"):
        to_network(plain)
    plain.meta["snn"] = True
    with pytest.raises(ModelError, match="encode"):
        to_network(plain)


def test_contraction_after_the_last_neuron_is_refused():
    g = snn([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")], [1, 4], [1, 2],
            {"w": (2, 4)}, append_out=False)
    with pytest.raises(ModelError, match="'fc'.*no Neuron"):
        to_network(g)


# ----------------------------------------------------------------------------- engine layers
def _reference(ic, h, w, oc, k, s, p, groups):
    """Synapses of a padded, grouped conv by the definition, one loop per index."""
    oh, ow = es.conv_out(h, k, s, p), es.conv_out(w, k, s, p)
    out = set()
    for co, oy, ox, c, ky, kx in itertools.product(range(oc), range(oh), range(ow),
                                                   range(ic // groups), range(k), range(k)):
        ci = co // (oc // groups) * (ic // groups) + c
        iy, ix = oy * s + ky - p, ox * s + kx - p
        if 0 <= iy < h and 0 <= ix < w:
            out.add(((ci * h + iy) * w + ix, (co * oh + oy) * ow + ox))
    return out


@settings(max_examples=30, deadline=None)
@given(g=st.integers(1, 3), cin=st.integers(1, 2), cout=st.integers(1, 2), k=st.integers(1, 3),
       s=st.integers(1, 3), p=st.integers(0, 2), h=st.integers(3, 6), w=st.integers(3, 6))
def test_connectivity_matches_the_definition(g, cin, cout, k, s, p, h, w):
    if p >= k:
        return
    ic, oc = g * cin, g * cout
    net = es.Network("n", (es.Layer("in", "input", (ic, h, w)),
                           es.Layer("c", "conv2d", (oc, es.conv_out(h, k, s, p),
                                                    es.conv_out(w, k, s, p)),
                                    kernel=(k, k), stride=s, padding=p, groups=g)))
    src, dst = es.connectivity(net, 1)
    assert np.all(np.diff(dst) >= 0)
    assert set(zip(src.tolist(), dst.tolist())) == _reference(ic, h, w, oc, k, s, p, g)
    assert len(src) == len(set(zip(src.tolist(), dst.tolist())))
    if p == 0:          # unpadded: every MAC of the conv is a synapse
        assert len(src) == oc * net.layers[1].shape[1] * net.layers[1].shape[2] * cin * k * k


@pytest.mark.parametrize("layer, match", [
    (es.Layer("c", "conv2d", (3, 4, 4), kernel=(3, 3), padding=1, groups=2), "groups 2"),
    (es.Layer("c", "conv2d", (2, 4, 4), kernel=(3, 3)), "padding 0 over"),
    (es.Layer("c", "conv2d", (2, 6, 6), kernel=(3, 3), padding=3), "wholly in the padding"),
    (es.Layer("c", "conv2d", (2, 4, 4), kernel=(3, 3), stride=0, padding=1), "stride"),
    (es.Layer("d", "dense", (5,), padding=1), "only conv2d"),
])
def test_bad_conv_layers_are_refused_naming_them(layer, match):
    with pytest.raises(NpusimError, match=match):
        es.Network("n", (es.Layer("in", "input", (2, 4, 4)), layer))


def test_padded_network_runs_and_maps():
    g = snn([conv("c", "x", "w", "h", pads=[1, 1, 1, 1], strides=[2, 2]), relu("r", "h", "a"),
             helper.make_node("AveragePool", ["a"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], name="fc", transB=1)],
            [1, 2, 8, 8], [1, 3], {"w": (4, 2, 3, 3), "w2": (3, 16)})
    net, rates = to_network(g)
    res = es.run(net, load_snn_device("snn-edu"), rates, timesteps=T)
    syn = sum(synapses(net))
    # every synapse carries rate x T spikes in expectation; the destination counts them
    assert res.counts[:, :, ks.SYNOP].sum() == pytest.approx(
        sum(len(es.connectivity(net, i)[0]) * rates[net.layers[i - 1].name] * T
            for i in range(1, len(net.layers))))
    assert syn > 0 and res.energy_j > 0


# ----------------------------------------------------------------------------- fuzz: random chains
def _taps_in_range(op, tname) -> int:
    """Products of a contraction whose spike index lies inside the spike tensor: a conv's
    MACs minus the taps that fall in the padding (a projection's synapses, by the IR)."""
    act = next(o for o in op.operands if o.tensor.name == tname)
    names = [d for d, _ in op.dims]
    grids = np.meshgrid(*[np.arange(e) for _, e in op.dims], indexing="ij")
    env = dict(zip(names, grids))
    ok = np.ones(grids[0].shape, dtype=bool)
    for ax, size in zip(act.axes, act.tensor.shape):
        idx = sum(c * env[d] for d, c in ax.terms) + ax.offset
        ok &= (idx >= 0) & (idx < size)
    return int(ok.sum())


def _pool_taps(op) -> int:
    """Window taps of a pooling that land inside its input, over all its outputs."""
    (_, c, h, w), (_, _, oh, ow) = op.inputs[0].shape, op.outputs[0].shape
    count = 0
    for axis, (size, out) in enumerate(((h, oh), (w, ow))):
        taps = sum(1 for o in range(out) for r in range(op.window[axis])
                   if 0 <= o * op.strides[axis] + r - op.pads[axis] < size)
        count = taps if axis == 0 else count * taps
    return c * count


@st.composite
def chains(draw):
    c, h = draw(st.integers(1, 3)), draw(st.integers(4, 8))
    x_shape = [1, c, h, h]
    nodes, weights, x = [], {}, "x"
    for b in range(draw(st.integers(1, 2))):
        g = draw(st.sampled_from([1, c]))
        co = g * draw(st.integers(1, 2))
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        p = draw(st.integers(0, k - 1))
        e = draw(st.sampled_from([0, 0, 0, 1]))
        pads = [p, p, p + e, p + e]
        oh = (h + pads[0] + pads[2] - k) // s + 1
        if oh < 1:
            break
        weights[f"w{b}"] = (co, c // g, k, k)
        nodes += [conv(f"c{b}", x, f"w{b}", f"h{b}", strides=[s, s], pads=pads, group=g),
                  relu(f"r{b}", f"h{b}", f"a{b}")]
        x, c, h = f"a{b}", co, oh
        if h >= 2 and draw(st.booleans()):
            kp = 2
            sp = draw(st.integers(1, 2))
            pp = draw(st.integers(0, 1))
            ceil = draw(st.sampled_from([0, 0, 1]))
            nodes.append(helper.make_node("AveragePool", [x], [f"p{b}"], name=f"pool{b}",
                                          kernel_shape=[kp, kp], strides=[sp, sp],
                                          pads=[pp] * 4, ceil_mode=ceil))
            h = ((h + 2 * pp - kp + (sp - 1) * ceil) // sp) + 1
            x = f"p{b}"
    nodes += [helper.make_node("Flatten", [x], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "wf"], ["y"], name="fc", transB=1)]
    weights["wf"] = (3, c * h * h)
    return nodes, weights, x_shape


@settings(max_examples=25, deadline=None)
@given(chains())
def test_random_chains_map_or_fail_cleanly(chain):
    # Random conv / pooling chains (asymmetric padding and ceil_mode now and then): either one
    # clean error, or each projection's synapses are the taps its IR op reads inside its input
    nodes, weights, x_shape = chain
    g = snn(nodes, x_shape, [1, 3], weights)
    try:
        net, rates = to_network(g)
    except ModelError as e:
        assert "\n" not in str(e) and str(e).startswith("SNN graph 'm': node ")
        return
    expect = []
    for op in g.ops():
        if op.kind in ("contraction", "reduction"):
            (pred,) = g.nx.predecessors(op.name)
            tname = g.nx.edges[pred, op.name]["tensors"][0]
            expect.append(_pool_taps(op) if op.kind == "reduction"
                          else _taps_in_range(op, tname))
    assert synapses(net) == expect
    assert set(rates) == {lay.name for lay in net.layers}
