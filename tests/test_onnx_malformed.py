"""ONNX protos that onnx.checker would reject: each class is one clear ModelError, never a
crash, a hang or a silently costed graph.

Classes: attributes whose declared type disagrees with their content or with the op's schema,
names that are not UTF-8, recursive model-local functions, sizes out of range, graph outputs
nothing produces, cycles, duplicate producers or graph inputs, nodes out of order, corrupt
serialized bytes. Each has hand-built regression tests and a hypothesis fuzz test; the last
test loads every model of the onnx package's test data and generated node tests.
"""
from __future__ import annotations

import os
import warnings

import networkx as nx
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import AttributeProto as A
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from npusim.errors import ModelError, NpusimError
from npusim.frontend import load_onnx

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def vi(name, shape, elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), functions=(), opsets=(("", 17),), name="g"):
    g = h.make_graph(nodes, name, inputs, [vi(o, None) if isinstance(o, str) else o
                                           for o in outputs], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid(d, v) for d, v in opsets],
                        functions=list(functions))


def zeros(name, shape):
    return nh.from_array(np.zeros(shape, np.float32), name)


def is_clean_error(code: int, err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return (code == 2 and len(lines) == 1 and ": error: " in lines[0]
            and "Traceback" not in err)


def load_or_clean(src, dims=None) -> str | None:
    """Load ``src``; None if it loads, else the (one-line) message of its ModelError. Any
    other exception fails the test."""
    try:
        load_onnx(src, dims)
    except NpusimError as e:
        msg = str(e)
        assert "\n" not in msg and msg.strip(), msg
        return msg
    return None


def refused(src, *parts, dims=None) -> str:
    with pytest.raises(ModelError) as e:
        load_onnx(src, dims)
    msg = str(e.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg, (p, msg)
    return msg


def attr(name, kind, **fields):
    a = onnx.AttributeProto(name=name, type=kind)
    for k, v in fields.items():
        if isinstance(v, list):
            getattr(a, k).extend(v)
        else:
            setattr(a, k, v)
    return a


def conv_model(*attrs, x=(1, 3, 8, 8), w=(4, 3, 3, 3)):
    node = h.make_node("Conv", ["x", "w"], ["y"], name="c1", group=1)
    node.attribute.extend(attrs)
    return model([node], [vi("x", list(x))], ["y"], [zeros("w", w)])


# -- attributes -----------------------------------------------------------------------------
@pytest.mark.parametrize("a, parts", [
    (attr("pads", A.STRINGS, strings=[b"a", b"b", b"c", b"d"]), ["is strings", "takes ints"]),
    (attr("pads", A.UNDEFINED), ["UNDEFINED"]),
    (attr("strides", A.INT, i=2), ["'strides' is int", "takes ints"]),
    (attr("pads", A.INTS, ints=[1, 1, 1, 1], f=3.0), ["declared ints but holds field(s) f"]),
    (attr("stride", A.INTS, ints=[2, 2]), ["'stride' is not one of Conv's", "strides"]),
    (attr("group", A.INT, i=1), ["'group' is given twice"]),
])
def test_conv_attribute_of_wrong_type(a, parts):
    msg = refused(conv_model(a), "model 'g'", "'c1'", "Conv", f"'{a.name}'", *parts)
    assert "fix" in msg


def test_conv_strides_out_of_range_named():
    # a zero stride is refused (by onnx's shape inference or the lowering's typed reader)
    refused(conv_model(attr("strides", A.INTS, ints=[0, 1])), "'c1'", "Conv")


def test_transpose_perm_as_floats():
    node = h.make_node("Transpose", ["x"], ["y"], name="t")
    node.attribute.append(attr("perm", A.FLOATS, floats=[0.0, 2.0, 1.0]))
    refused(model([node], [vi("x", [1, 2, 3])], ["y"]), "'t'", "Transpose", "'perm'", "floats",
            "ints")


def test_transpose_perm_not_a_permutation():
    # not caught by onnx's schema (the type is right): by the lowering's typed reader
    node = h.make_node("Transpose", ["x"], ["y"], name="t", perm=[0, 0, 1])
    refused(model([node], [vi("x", [1, 2, 3])], ["y"]), "'t'")


def test_required_attribute_missing():
    node = h.make_node("Einsum", ["a", "b"], ["y"], name="e")
    refused(model([node], [vi("a", [2, 3]), vi("b", [3, 4])], ["y"], opsets=(("", 17),)),
            "'e'", "Einsum", "'equation'", "missing")


def test_custom_domain_attributes_are_typed_by_the_lowering():
    # com.microsoft has no onnx schema: the lowering's typed reader names node and attribute
    def gqa(**attrs):
        node = h.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "sl", "tot"], ["o"],
                           domain="com.microsoft", name="attn", **attrs)
        return model([node], [vi("q", [1, 2, 64]), vi("k", [1, 2, 32]), vi("v", [1, 2, 32]),
                              vi("sl", [1], T.INT32), vi("tot", [], T.INT32)], ["o"],
                     opsets=(("", 17), ("com.microsoft", 1)))
    assert load_or_clean(gqa(num_heads=4, kv_num_heads=2)) is None
    refused(gqa(num_heads=4.0, kv_num_heads=2), "'attn'", "'num_heads'", "float", "expected int")
    refused(gqa(kv_num_heads=2), "'attn'", "'num_heads'", "required but missing")
    refused(gqa(num_heads=4, kv_num_heads=0), "'attn'", "'kv_num_heads'", ">= 1")


def test_collective_group_typed():
    def ar(**attrs):
        node = h.make_node("AllReduce", ["x"], ["y"], domain="ai.npusim", name="ar", **attrs)
        return model([node], [vi("x", [2, 4])], ["y"], opsets=(("", 17), ("ai.npusim", 1)))
    assert load_or_clean(ar(group=2)) is None
    refused(ar(group="2"), "'ar'", "'group'", "string", "expected int")
    refused(ar(), "'ar'", "'group'", "required")


def test_input_and_output_counts_follow_the_schema():
    refused(model([h.make_node("QuantizeLinear", [], ["y"], name="q")], [], ["y"]),
            "'q'", "has 0 inputs", "takes 2 to 3")
    refused(model([h.make_node("Add", ["x", ""], ["y"], name="add")], [vi("x", [2])], ["y"]),
            "'add'", "required input 1", "empty")
    refused(model([h.make_node("Relu", ["x"], ["y", "z"], name="r")], [vi("x", [2])], ["y"]),
            "'r'", "has 2 outputs")


def test_custom_domain_input_ranks_are_checked():
    node = h.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "sl", "tot"], ["o"],
                       domain="com.microsoft", name="attn", num_heads=4, kv_num_heads=2)
    m = model([node], [vi("q", [2, 64]), vi("k", [1, 2, 32]), vi("v", [1, 2, 32]),
                       vi("sl", [1], T.INT32), vi("tot", [], T.INT32)], ["o"],
              opsets=(("", 17), ("com.microsoft", 1)))
    refused(m, "'attn'", "input 0 ('q')", "rank 2", "takes rank 3")


def test_initializer_data_that_does_not_fill_its_dims():
    # found by test_fuzz_serialized_bytes: one flipped bit turned the weight's dims
    # (4, 3, 3, 3) into (4, 3, 19, 3) while it still held 108 values
    m = onnx.load_from_string(VALID)
    m.graph.initializer[0].dims[2] = 19
    refused(m, "initializer 'w'", "does not match its dims", "corrupt")


# -- text -----------------------------------------------------------------------------------
def _with_bytes(m: onnx.ModelProto, marker: str, raw: bytes, tmp_path) -> str:
    data = m.SerializeToString()
    assert data.count(marker.encode()) >= 1 and len(raw) == len(marker)
    path = tmp_path / "names.onnx"
    path.write_bytes(data.replace(marker.encode(), raw))
    return str(path)


def _relu_model(node_name="RELUNODE", op="Relu", x="XINPUT", y="YOUTPUT", dim="BATCHDIM",
                gname="GRAPHNAM"):
    return model([h.make_node(op, [x], [y], name=node_name)], [vi(x, [dim, 4])], [y],
                 name=gname)


@pytest.mark.parametrize("marker, what", [
    ("RELUNODE", "node #0 name"), ("Relu", "node #0 op type"), ("XINPUT", "graph input #0"),
    ("YOUTPUT", "graph output #0"), ("BATCHDIM", "symbolic dim"), ("GRAPHNAM", "graph name")])
def test_names_not_utf8(tmp_path, marker, what):
    path = _with_bytes(_relu_model(), marker, b"\xff" * len(marker), tmp_path)
    refused(path, "names.onnx", what, "not UTF-8", dims={"BATCHDIM": 1})


def test_control_characters_in_names_stay_on_one_line():
    m = model([h.make_node("F\noo", ["x"], ["y"], name="a\nb")], [vi("x", ["ba\ntch", 2])],
              ["y"])
    refused(m, "'ba\\ntch'", dims={"b": 1})
    refused(m, "'ba\\ntch'")
    refused(m, "'F\\noo'", dims={"ba\ntch": 1})


# -- functions ------------------------------------------------------------------------------
def _fn(name, calls, domain="local"):
    """Function ``name``: a -> Relu -> each call in turn -> b."""
    nodes, cur = [h.make_node("Relu", ["a"], ["t0"])], "t0"
    for k, callee in enumerate(calls):
        nodes.append(h.make_node(callee, [cur], [f"t{k + 1}"], domain=domain))
        cur = f"t{k + 1}"
    nodes.append(h.make_node("Identity", [cur], ["b"]))
    return h.make_function(domain, name, ["a"], ["b"], nodes,
                           [h.make_opsetid("", 17), h.make_opsetid(domain, 1)])


def _fn_model(funcs, entry="F"):
    return model([h.make_node(entry, ["x"], ["y"], domain="local", name="call")],
                 [vi("x", [2, 3])], ["y"], functions=funcs, opsets=(("", 17), ("local", 1)))


def test_function_recursion_refused():
    refused(_fn_model([_fn("F", ["F"])]), "'local::F' calls itself", "recursive")
    refused(_fn_model([_fn("F", ["G"]), _fn("G", ["F"])]), "recursive", "local::G")


def test_function_nesting_that_explodes_is_refused():
    # F0 calls F1 twice, F1 calls F2 twice, ...: 2**40 nodes once inlined
    funcs = [_fn(f"F{i}", [f"F{i + 1}"] * 2) for i in range(40)] + [_fn("F40", [])]
    refused(_fn_model(funcs, "F0"), "expand to", "nodes")


def test_function_defined_twice_refused():
    refused(_fn_model([_fn("F", []), _fn("F", [])]), "'local::F' is defined twice")


def test_plain_functions_still_inline():
    g = load_onnx(_fn_model([_fn("F", ["G", "G"]), _fn("G", [])]))
    assert [op.op_type for op in g.ops()].count("Relu") == 3


# -- sizes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [-3, -1, 2 ** 40 + 1, 2 ** 63 - 1])
def test_input_dim_out_of_range(size):
    refused(model([h.make_node("Relu", ["x"], ["y"])], [vi("x", [size, 2])], ["y"]),
            "graph input 'x'", str(size), "axis 0")


def test_initializer_dims_out_of_range():
    w = T(name="w", data_type=T.FLOAT, dims=[4, 2 ** 62])
    refused(model([h.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", [2, 4])], ["y"], [w]),
            "initializer 'w'", "corrupt")


def test_constant_attribute_tensor_dims_out_of_range():
    t = T(name="c", data_type=T.FLOAT, dims=[-1, 3])
    node = h.make_node("Constant", [], ["c"], name="k", value=t)
    refused(model([node, h.make_node("Relu", ["c"], ["y"])], [], ["y"]), "'k'", "'value'")


def test_dim_binding_out_of_range():
    m = model([h.make_node("Relu", ["x"], ["y"])], [vi("x", ["batch", 2])], ["y"])
    refused(m, "--dim batch", "2**40", dims={"batch": 2 ** 41})
    assert load_or_clean(m, {"batch": 2 ** 40}) is None  # the bound itself is a legal size


def test_long_1d_tensors_load_in_bounded_memory():
    # onnx's data propagation would hold one protobuf dim per element of a 1-D tensor
    m = model([h.make_node("Add", ["x", "x"], ["y"], name="add")], [vi("x", [2 ** 31])], ["y"])
    assert load_or_clean(m) is None


def test_op_past_the_mac_bound():
    # every tensor is within 2**50 elements, but the product is 2**75 MACs
    n = 2 ** 25
    w = T(name="w", data_type=T.FLOAT, dims=[n, n], data_location=T.EXTERNAL)
    w.external_data.add(key="location", value="w.bin")
    refused(model([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", [n, n])],
                  ["y"], [w]), "'mm'", "MACs", "2**60")


def test_computed_shape_past_the_bound():
    # Expand to [2**30, 2**30]: shapes computed from constants are checked too
    shape = nh.from_array(np.array([2 ** 30, 2 ** 30], np.int64), "s")
    m = model([h.make_node("Expand", ["x", "s"], ["y"], name="ex")], [vi("x", [1, 1])], ["y"],
              [shape])
    refused(m, "'y'", "2**50")


# -- graph structure ------------------------------------------------------------------------
def _relu(i, o, name=None):
    return h.make_node("Relu", [i], [o], name=name or f"r_{o}")


def test_graph_output_not_produced():
    refused(model([_relu("x", "y")], [vi("x", [2])], ["y", "z"]), "graph output 'z'",
            "produced by no node")


def test_cycle():
    m = model([h.make_node("Add", ["x", "b"], ["a"], name="add"), _relu("a", "b", "relu")],
              [vi("x", [2])], ["b"])
    refused(m, "cycle", "'add' (Add)", "'relu' (Relu)", "acyclic")


def test_self_loop():
    refused(model([h.make_node("Add", ["x", "a"], ["a"], name="add")], [vi("x", [2])], ["a"]),
            "cycle", "'add'")


def test_duplicate_node_outputs():
    m = model([_relu("x", "y", "one"), h.make_node("Sigmoid", ["x"], ["y"], name="two")],
              [vi("x", [2])], ["y"])
    refused(m, "'y' is produced twice", "'one'", "'two'", "SSA")


def test_node_overwrites_graph_input_or_initializer():
    refused(model([_relu("x", "x", "n")], [vi("x", [2])], ["x"]), "'n'", "also a graph input")
    refused(model([_relu("x", "w", "n")], [vi("x", [2])], ["w"], [zeros("w", [2])]),
            "also a initializer")


def test_duplicate_graph_inputs_and_initializers():
    refused(model([_relu("x", "y")], [vi("x", [2]), vi("x", [3])], ["y"]),
            "graph input 'x' is listed twice")
    refused(model([_relu("w", "y")], [], ["y"], [zeros("w", [2]), zeros("w", [3])]),
            "initializer 'w' is given twice")


def test_nodes_out_of_order():
    m = model([_relu("a", "y", "second"), _relu("x", "a", "first")], [vi("x", [2])], ["y"])
    refused(m, "'second'", "reads 'a' before", "'first'", "topological order")


def test_undefined_input():
    refused(model([_relu("ghost", "y", "n")], [vi("x", [2])], ["y"]), "'n'", "'ghost'",
            "no node, initializer or graph input")


# -- the command line -----------------------------------------------------------------------
@pytest.mark.parametrize("m", [
    conv_model(attr("pads", A.STRINGS, strings=[b"a"])),
    model([_relu("a", "y"), _relu("x", "a")], [vi("x", [2])], ["y"]),
    model([_relu("x", "y")], [vi("x", [2 ** 63 - 1])], ["y"]),
    _fn_model([_fn("F", ["F"])]),
])
def test_cli_one_line_naming_the_file(cli, tmp_path, m):
    path = tmp_path / "bad.onnx"
    path.write_bytes(m.SerializeToString())
    code, out, err = cli("run", path, "--arch", "edu")
    assert is_clean_error(code, err) and "bad.onnx" in err


# -- fuzz -----------------------------------------------------------------------------------
#: Ops whose attributes are read by a lowering, with a valid node and its inputs; the fuzz
#: replaces one attribute with arbitrary content.
def _cases():
    x4 = vi("x", [1, 4, 8, 8])
    ms = (("", 17), ("com.microsoft", 1))
    return {
        "Conv": ([h.make_node("Conv", ["x", "w"], ["y"], name="n")], [x4],
                 [zeros("w", [4, 4, 3, 3])],
                 ["pads", "strides", "dilations", "group", "auto_pad", "kernel_shape"],
                 (("", 17),)),
        "ConvTranspose": ([h.make_node("ConvTranspose", ["x", "w"], ["y"], name="n")], [x4],
                          [zeros("w", [4, 2, 3, 3])], ["pads", "strides", "output_padding",
                                                       "output_shape", "group"], (("", 17),)),
        "Transpose": ([h.make_node("Transpose", ["x"], ["y"], name="n")], [x4], [], ["perm"],
                      (("", 17),)),
        "MaxPool": ([h.make_node("MaxPool", ["x"], ["y"], name="n", kernel_shape=[2, 2])], [x4],
                    [], ["kernel_shape", "strides", "pads"], (("", 17),)),
        "Gemm": ([h.make_node("Gemm", ["a", "b"], ["y"], name="n")],
                 [vi("a", [3, 4]), vi("b", [4, 5])], [], ["transA", "transB", "alpha"],
                 (("", 17),)),
        "Resize": ([h.make_node("Resize", ["x", "", "sc"], ["y"], name="n")], [x4],
                   [nh.from_array(np.array([1, 1, 2, 2], np.float32), "sc")], ["mode"],
                   (("", 17),)),
        "LRN": ([h.make_node("LRN", ["x"], ["y"], name="n", size=3)], [x4], [], ["size"],
                (("", 17),)),
        "GQA": ([h.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "sl", "tot"], ["y"],
                             domain="com.microsoft", name="n", num_heads=4, kv_num_heads=2)],
                [vi("q", [1, 2, 64]), vi("k", [1, 2, 32]), vi("v", [1, 2, 32]),
                 vi("sl", [1], T.INT32), vi("tot", [], T.INT32)], [],
                ["num_heads", "kv_num_heads", "local_window_size", "do_rotary"], ms),
        "MatMulNBits": ([h.make_node("MatMulNBits", ["a", "B"], ["y"], domain="com.microsoft",
                                     name="n", K=64, N=32, bits=4, block_size=32)],
                        [vi("a", [2, 64], T.FLOAT16)],
                        [nh.from_array(np.zeros((32, 2, 16), np.uint8), "B")],
                        ["K", "N", "bits", "block_size"], ms),
        "AllGather": ([h.make_node("AllGather", ["x"], ["y"], domain="ai.npusim", name="n",
                                   group=2)], [x4], [], ["group", "axis"],
                      (("", 17), ("ai.npusim", 1))),
    }


CASES = _cases()
_FIELDS = {"f": st.floats(allow_nan=True), "i": st.integers(-2 ** 63, 2 ** 63 - 1),
           "s": st.binary(max_size=8),
           "floats": st.lists(st.floats(allow_nan=True), max_size=5),
           "ints": st.lists(st.integers(-2 ** 63, 2 ** 63 - 1) | st.integers(-3, 9), max_size=5),
           "strings": st.lists(st.binary(max_size=6), max_size=4)}
_TYPES = [A.UNDEFINED, A.FLOAT, A.INT, A.STRING, A.FLOATS, A.INTS, A.STRINGS, A.TENSOR]


@st.composite
def fuzzed_attribute(draw):
    case = draw(st.sampled_from(sorted(CASES)))
    nodes, inputs, inits, names, opsets = CASES[case]
    a = onnx.AttributeProto(name=draw(st.sampled_from(names)), type=draw(st.sampled_from(_TYPES)))
    for field in draw(st.lists(st.sampled_from(sorted(_FIELDS)), max_size=2, unique=True)):
        v = draw(_FIELDS[field])
        if isinstance(v, list):
            getattr(a, field).extend(v)
        else:
            setattr(a, field, v)
    node = onnx.NodeProto()
    node.CopyFrom(nodes[0])
    kept = [b for b in node.attribute if b.name != a.name]
    del node.attribute[:]
    node.attribute.extend(kept + [a])
    return model([node], inputs, ["y"], inits, opsets=opsets)


@FUZZ
@given(fuzzed_attribute())
def test_fuzz_attribute_types(m):
    load_or_clean(m)


@FUZZ
@given(st.sampled_from(["RELUNODE", "Relu", "XINPUT", "YOUTPUT", "BATCHDIM", "GRAPHNAM"]),
       st.binary(min_size=8, max_size=8))
def test_fuzz_name_bytes(tmp_path, marker, raw):
    path = _with_bytes(_relu_model(), marker, raw[:len(marker)], tmp_path)
    msg = load_or_clean(path, {"BATCHDIM": 1})
    try:
        raw[:len(marker)].decode("utf-8")
    except UnicodeDecodeError:
        assert msg is not None and "not UTF-8" in msg


_SIZES = st.integers(-2 ** 63, 2 ** 63 - 1) | st.integers(-2, 6) | st.sampled_from(
    [2 ** 40, 2 ** 40 + 1, 2 ** 50, 2 ** 62, 2 ** 63 - 1])


@FUZZ
@given(st.lists(_SIZES, min_size=1, max_size=3), st.lists(_SIZES, min_size=2, max_size=2))
def test_fuzz_dims(x_dims, w_dims):
    w = T(name="w", data_type=T.FLOAT, dims=w_dims, data_location=T.EXTERNAL)
    w.external_data.add(key="location", value="w.bin")
    m = model([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [vi("x", x_dims)], ["y"],
              [w])
    msg = load_or_clean(m)
    if any(not 0 <= d <= 2 ** 40 for d in x_dims + w_dims):
        assert msg is not None


def _chain(k: int) -> list[onnx.NodeProto]:
    """x -> t1 -> ... -> tk, with a second input to every Add from two steps back."""
    nodes, names = [], ["x"]
    for i in range(1, k + 1):
        if i >= 2:
            nodes.append(h.make_node("Add", [names[-1], names[-2]], [f"t{i}"], name=f"n{i}"))
        else:
            nodes.append(h.make_node("Relu", [names[-1]], [f"t{i}"], name=f"n{i}"))
        names.append(f"t{i}")
    return nodes


@st.composite
def mutated_graph(draw):
    k = draw(st.integers(2, 6))
    nodes = _chain(k)
    names = ["x"] + [f"t{i}" for i in range(1, k + 1)]
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["shuffle", "duplicate", "rewire", "rename_out", "drop"]))
        if how == "shuffle":
            nodes = draw(st.permutations(nodes))
        elif how == "duplicate":
            nodes.insert(draw(st.integers(0, len(nodes))), draw(st.sampled_from(nodes)))
        elif how == "rewire" and nodes:
            i = draw(st.integers(0, len(nodes) - 1))
            n = onnx.NodeProto()
            n.CopyFrom(nodes[i])
            n.input[0] = draw(st.sampled_from(names + ["ghost"]))
            nodes[i] = n
        elif how == "rename_out" and nodes:
            i = draw(st.integers(0, len(nodes) - 1))
            n = onnx.NodeProto()
            n.CopyFrom(nodes[i])
            n.output[0] = draw(st.sampled_from(names))
            nodes[i] = n
        elif how == "drop" and len(nodes) > 1:
            nodes.pop(draw(st.integers(0, len(nodes) - 1)))
    inputs = [vi("x", [2, 3])] * draw(st.integers(1, 2))
    outputs = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    return model(list(nodes), inputs, [vi(o, [2, 3]) for o in outputs])


@FUZZ
@given(mutated_graph())
def test_fuzz_graph_structure(m):
    """Loaded implies onnx.checker accepts the graph; checker's refusal implies our clean error
    (the graph's outputs carry shapes, so the checker judges the structure only)."""
    msg = load_or_clean(m)
    try:
        onnx.checker.check_model(m)
        checker_ok = True
    except onnx.checker.ValidationError:
        checker_ok = False
    if msg is None:
        assert checker_ok
    if not checker_ok:
        assert msg is not None


@FUZZ
@given(st.integers(1, 4).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), max_size=6))))
def test_fuzz_function_call_graphs(spec):
    """A model loads exactly when its function call graph is acyclic."""
    k, edges = spec
    calls = nx.DiGraph()
    calls.add_nodes_from(range(k))
    calls.add_edges_from(edges)
    funcs = [_fn(f"F{i}", [f"F{j}" for _, j in sorted(calls.out_edges(i))]) for i in range(k)]
    msg = load_or_clean(_fn_model(funcs, "F0"))
    if nx.is_directed_acyclic_graph(calls):
        assert msg is None
    else:
        assert msg is not None and "recursive" in msg


def _small_valid_bytes() -> bytes:
    m = conv_model(attr("pads", A.INTS, ints=[1, 1, 1, 1]))
    m.graph.node.append(h.make_node("Relu", ["y"], ["z"], name="r"))
    m.graph.output[0].name = "z"
    return m.SerializeToString()


VALID = _small_valid_bytes()


@FUZZ
@given(st.one_of(
    st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n]),
    st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)).map(
        lambda p: VALID[:p[0]] + bytes([VALID[p[0]] ^ (1 << p[1])]) + VALID[p[0] + 1:]),
    st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=1, max_size=4)).map(
        lambda p: VALID[:p[0]] + p[1] + VALID[p[0] + len(p[1]):])))
def test_fuzz_serialized_bytes(tmp_path, data):
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(data)
    load_or_clean(path)


# -- what already holds ---------------------------------------------------------------------
def _onnx_test_models():
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test")
    for folder, _, files in sorted(os.walk(os.path.join(root, "data"))):
        for f in sorted(files):
            if f.endswith(".onnx"):
                yield os.path.join(folder, f), None
    from onnx.backend.test.case.model import collect_testcases as model_cases
    from onnx.backend.test.case.node import collect_testcases as node_cases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators' own numpy warnings
        cases = [*node_cases(), *model_cases()]
    for case in cases:
        if case.model is not None:
            yield case.name, case.model


def _registered_ops():
    from npusim.frontend import supported_ops
    return supported_ops()


@st.composite
def arbitrary_node(draw):
    """Any op npusim lowers, with arbitrary input count, ranks, sizes and element types,
    0 to 3 outputs, and a few attributes of the kinds lowerings read."""
    dom, op = draw(st.sampled_from(_registered_ops()))
    names, inputs = [], []
    for i in range(draw(st.integers(0, 9))):
        if draw(st.booleans()) and i:
            names.append("")
            continue
        shape = draw(st.lists(st.sampled_from([1, 2, 3, 4, 8, 64]), max_size=5))
        elem = draw(st.sampled_from([T.FLOAT, T.FLOAT16, T.INT32, T.INT64, T.UINT8]))
        inputs.append(vi(f"i{i}", shape, elem))
        names.append(f"i{i}")
    n_out = draw(st.integers(0, 3))
    attrs = draw(st.dictionaries(
        st.sampled_from(["num_heads", "kv_num_heads", "K", "N", "bits", "block_size", "group",
                         "axis", "perm", "kernel_shape", "size", "qkv_hidden_sizes"]),
        st.integers(-2, 64) | st.lists(st.integers(-1, 4), min_size=1, max_size=4), max_size=3))
    node = h.make_node(op, names, [f"o{j}" for j in range(n_out)], domain=dom, name="n",
                       **attrs)
    outputs = [f"o{j}" for j in range(n_out)] or [next((x for x in names if x), "i0")]
    return model([node], inputs, outputs,
                 opsets=(("", 21), ("com.microsoft", 1), ("ai.npusim", 1)))


@FUZZ
@given(arbitrary_node())
def test_fuzz_lowering_inputs(m):
    """Wrong input counts, ranks and missing outputs reach lowerings only as clean errors
    (custom-domain ops have no onnx schema or shape inference in front of them)."""
    load_or_clean(m)


def test_custom_domain_missing_inputs_and_outputs():
    def gelu(ins, outs):
        node = h.make_node("BiasGelu", ins, outs, domain="com.microsoft", name="g")
        return model([node], [vi("x", [2, 4]), vi("b", [4])], outs or ["x"],
                     opsets=(("", 17), ("com.microsoft", 1)))
    assert load_or_clean(gelu(["x", "b"], ["y"])) is None
    refused(gelu([], ["y"]), "'g'", "input 0 is required but missing")
    refused(gelu(["x", "b"], []), "'g'", "output 0 is required but missing")


def _symbolic_dims(m: onnx.ModelProto) -> dict[str, int]:
    return {d.dim_param: 2 for v in m.graph.input for d in
            (v.type.tensor_type.shape.dim if v.type.HasField("tensor_type") else [])
            if d.dim_param}


def test_every_onnx_test_model_loads_or_fails_cleanly():
    """The onnx package's test data and generated node/model tests: each loads or gives one
    clean ModelError (a hang would show as this test never finishing)."""
    seen, crashed = 0, []
    for name, m in _onnx_test_models():
        seen += 1
        proto = m if m is not None else onnx.load(name, load_external_data=False)
        try:
            load_or_clean(m if m is not None else name, _symbolic_dims(proto))
        except (Exception, AssertionError) as e:  # collected, reported together
            crashed.append(f"{name}: {type(e).__name__}: {str(e)[:120]}")
    assert seen > 1500 and not crashed, crashed[:20]


def test_fuzz_corpus_cases_end_cleanly(cli, tmp_path):
    """The fuzzing benchmark's ONNX corpus (benchmarks/fuzz_cases/onnx.py), through the CLI:
    every case ends with exit 0 or one clean error line, and a must-fail case never exits 0."""
    import importlib.util
    import pathlib
    import random

    src = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cases" / "onnx.py"
    spec = importlib.util.spec_from_file_location("fuzz_cases_onnx", src)
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    labels = set()
    for label, argv, must_fail in corpus.cases(tmp_path, random.Random(0), 120):
        code, out, err = cli(*argv)
        assert is_clean_error(code, err) or (code == 0 and not must_fail), (label, argv, err)
        labels.add(label)
    assert len(labels) == 6
