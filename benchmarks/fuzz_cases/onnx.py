"""Malformed ONNX models, for the fuzzing benchmark: protos onnx.checker would reject, and
corrupt bytes.

Classes (labels):

``onnx/attr-type``
    Conv, ConvTranspose, Transpose, MaxPool, Gemm, Resize, com.microsoft GroupQueryAttention
    and MatMulNBits, ai.npusim AllGather with one attribute of random declared type and
    random content (strings, UNDEFINED, a single int for a list, floats for ints, two value
    fields); must fail when the type disagrees with the op's schema or the content with the
    declared type.
``onnx/non-utf8``
    A node name, op type, domain, tensor name, symbolic dim or graph name replaced by bytes
    that are not UTF-8.
``onnx/recursive-function``
    Model-local functions whose call graph has a cycle (self call or a longer loop), or that
    nest so deeply that inlining would explode.
``onnx/dims``
    Graph input, output, value_info or initializer sizes that are negative, past 2**40, or
    2**63-1; and op sizes past the MAC bound.
``onnx/structure``
    A chain of nodes with a graph output nothing produces, a cycle, a tensor produced twice,
    a graph input listed twice, a node that overwrites an input, or nodes out of order.
``onnx/bytes``
    A small valid model truncated, with bits flipped or with a span overwritten; may load
    (a cut at a field boundary is still a model), so not must-fail.

Every model is tiny: a case runs in well under a second.
"""
from __future__ import annotations

import pathlib
import random

import numpy as np
import onnx
from onnx import AttributeProto as A
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

_MS = (("", 17), ("com.microsoft", 1))


def _vi(name, shape, elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, inits=(), functions=(), opsets=(("", 17),), name="g"):
    g = h.make_graph(nodes, name, inputs, [_vi(o, None) if isinstance(o, str) else o
                                           for o in outputs], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid(d, v) for d, v in opsets],
                        functions=list(functions))


def _zeros(name, shape, dt=np.float32):
    return nh.from_array(np.zeros(shape, dt), name)


def _argv(path: pathlib.Path, rng: random.Random) -> list[str]:
    if rng.random() < 0.5:
        return ["inspect", str(path), "--dim", "batch=2"]
    return ["run", str(path), "--arch", "edu", "--dim", "batch=2"]


def _save(workdir: pathlib.Path, tag: str, k: int, data: bytes | onnx.ModelProto):
    path = workdir / f"onnx-{tag}-{k}.onnx"
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
    return path


# -- attributes -------------------------------------------------------------------------------
def _attr_ops():
    """op -> (node, inputs, initializers, opsets, {attribute: the type its schema or, for a
    custom domain, npusim's lowering requires})."""
    x4 = _vi("x", ["batch", 4, 8, 8])
    return {
        "Conv": (h.make_node("Conv", ["x", "w"], ["y"], name="conv"), [x4],
                 [_zeros("w", (4, 4, 3, 3))], (("", 17),),
                 {"pads": A.INTS, "strides": A.INTS, "dilations": A.INTS, "group": A.INT,
                  "auto_pad": A.STRING, "kernel_shape": A.INTS}),
        "ConvTranspose": (h.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv"), [x4],
                          [_zeros("w", (4, 2, 3, 3))], (("", 17),),
                          {"pads": A.INTS, "strides": A.INTS, "output_padding": A.INTS,
                           "group": A.INT}),
        "Transpose": (h.make_node("Transpose", ["x"], ["y"], name="tr"), [x4], [], (("", 17),),
                      {"perm": A.INTS}),
        "MaxPool": (h.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2]),
                    [x4], [], (("", 17),),
                    {"kernel_shape": A.INTS, "strides": A.INTS, "pads": A.INTS}),
        "Gemm": (h.make_node("Gemm", ["a", "b"], ["y"], name="gemm"),
                 [_vi("a", ["batch", 4]), _vi("b", [4, 5])], [], (("", 17),),
                 {"transA": A.INT, "transB": A.INT, "alpha": A.FLOAT}),
        "Resize": (h.make_node("Resize", ["x", "", "sc"], ["y"], name="resize"), [x4],
                   [nh.from_array(np.array([1, 1, 2, 2], np.float32), "sc")], (("", 17),),
                   {"mode": A.STRING}),
        "GroupQueryAttention": (
            h.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "sl", "tot"], ["y"],
                        domain="com.microsoft", name="gqa", num_heads=4, kv_num_heads=2),
            [_vi("q", ["batch", 2, 64]), _vi("k", ["batch", 2, 32]), _vi("v", ["batch", 2, 32]),
             _vi("sl", ["batch"], T.INT32), _vi("tot", [], T.INT32)], [], _MS,
            {"num_heads": A.INT, "kv_num_heads": A.INT, "local_window_size": A.INT}),
        "MatMulNBits": (
            h.make_node("MatMulNBits", ["a", "B"], ["y"], domain="com.microsoft", name="q4",
                        K=64, N=32, bits=4, block_size=32),
            [_vi("a", ["batch", 64], T.FLOAT16)], [_zeros("B", (32, 2, 16), np.uint8)], _MS,
            {"K": A.INT, "N": A.INT, "bits": A.INT, "block_size": A.INT}),
        "AllGather": (h.make_node("AllGather", ["x"], ["y"], domain="ai.npusim", name="ag",
                                  group=2), [x4], [], (("", 17), ("ai.npusim", 1)),
                      {"group": A.INT, "axis": A.INT}),
    }


_FIELD_OF = {A.FLOAT: "f", A.INT: "i", A.STRING: "s", A.FLOATS: "floats", A.INTS: "ints",
             A.STRINGS: "strings"}


def _random_value(field: str, rng: random.Random):
    big = rng.choice([0, 1, -1, 3, 2 ** 31, 2 ** 63 - 1, -2 ** 63])
    return {"f": rng.choice([0.0, 1.5, -1.0, float("nan"), float("inf"), 1e308]),
            "i": big, "s": rng.choice([b"", b"NOTSET", b"SAME_UPPER", b"\xff\xfe", b"linear"]),
            "floats": [rng.choice([0.0, 1.0, 2.5]) for _ in range(rng.randrange(5))],
            "ints": [rng.choice([0, 1, 2, -1, 2 ** 40]) for _ in range(rng.randrange(6))],
            "strings": [rng.choice([b"a", b"\xff"]) for _ in range(rng.randrange(4))]}[field]


def _attr_case(rng: random.Random):
    ops = _attr_ops()
    op = rng.choice(sorted(ops))
    node, inputs, inits, opsets, attrs = ops[op]
    name = rng.choice(sorted(attrs))
    kind = rng.choice([A.UNDEFINED, A.FLOAT, A.INT, A.STRING, A.FLOATS, A.INTS, A.STRINGS])
    a = onnx.AttributeProto(name=name, type=kind)
    fields = rng.sample(sorted(_FIELD_OF.values()), rng.choice([0, 1, 1, 1, 2]))
    if kind in _FIELD_OF and rng.random() < 0.5:
        fields = [_FIELD_OF[kind]] + [f for f in fields if f != _FIELD_OF[kind]][:1]
    for f in fields:
        v = _random_value(f, rng)
        getattr(a, f).extend(v) if isinstance(v, list) else setattr(a, f, v)
    n = onnx.NodeProto()
    n.CopyFrom(node)
    kept = [b for b in n.attribute if b.name != name]
    del n.attribute[:]
    n.attribute.extend(kept + [a])
    held = [f for f in _FIELD_OF.values()
            if (a.HasField(f) if f in ("f", "i", "s") else len(getattr(a, f)))]
    content_bad = kind == A.UNDEFINED or any(f != _FIELD_OF.get(kind) for f in held)
    schema_bad = kind != attrs[name]
    return _model([n], inputs, ["y"], inits, opsets=opsets), content_bad or schema_bad


def _fixed_attr_cases():
    """The issue's examples: Conv pads as strings or undefined, strides as one int,
    Transpose perm as floats, an INTS attribute also holding a float."""
    node, inputs, inits, opsets, _ = _attr_ops()["Conv"]
    out = []
    for a in (onnx.AttributeProto(name="pads", type=A.STRINGS, strings=[b"1", b"1", b"1", b"1"]),
              onnx.AttributeProto(name="pads", type=A.UNDEFINED),
              onnx.AttributeProto(name="strides", type=A.INT, i=2),
              onnx.AttributeProto(name="pads", type=A.INTS, ints=[1, 1, 1, 1], f=2.0)):
        n = onnx.NodeProto()
        n.CopyFrom(node)
        n.attribute.append(a)
        out.append(_model([n], inputs, ["y"], inits, opsets=opsets))
    tr = h.make_node("Transpose", ["x"], ["y"], name="tr")
    tr.attribute.append(onnx.AttributeProto(name="perm", type=A.FLOATS, floats=[0, 2, 1, 3]))
    out.append(_model([tr], [_vi("x", ["batch", 4, 8, 8])], ["y"]))
    return out


# -- names ------------------------------------------------------------------------------------
_MARKERS = ("RELUNODE", "Relu", "XINPUT", "YOUTPUT", "BATCHDIM", "GRAPHNAM", "MYDOMAIN")


def _utf8_case(rng: random.Random) -> bytes:
    m = _model([h.make_node("Relu", ["XINPUT"], ["YOUTPUT"], name="RELUNODE"),
                h.make_node("Foo", ["YOUTPUT"], ["z"], domain="MYDOMAIN", name="custom")],
               [_vi("XINPUT", ["BATCHDIM", 4])], ["z"], name="GRAPHNAM",
               opsets=(("", 17), ("MYDOMAIN", 1)))
    marker = rng.choice(_MARKERS).encode()
    bad = bytes(rng.choice([0xff, 0xfe, 0xc0, 0x80]) for _ in range(len(marker)))
    return m.SerializeToString().replace(marker, bad)


# -- functions --------------------------------------------------------------------------------
def _fn(name, calls):
    nodes, cur = [h.make_node("Relu", ["a"], ["t0"])], "t0"
    for k, callee in enumerate(calls):
        nodes.append(h.make_node(callee, [cur], [f"t{k + 1}"], domain="local"))
        cur = f"t{k + 1}"
    nodes.append(h.make_node("Identity", [cur], ["b"]))
    return h.make_function("local", name, ["a"], ["b"], nodes,
                           [h.make_opsetid("", 17), h.make_opsetid("local", 1)])


def _function_case(rng: random.Random):
    k = rng.randint(1, 4)
    if rng.random() < 0.2:  # no cycle, but 2**depth nodes once inlined
        depth = rng.randint(25, 60)
        funcs = [_fn(f"F{i}", [f"F{i + 1}"] * 2) for i in range(depth)] + [_fn(f"F{depth}", [])]
    else:
        calls = {i: [f"F{rng.randrange(k)}" for _ in range(rng.randint(0, 2))] for i in range(k)}
        loop = rng.randrange(k)
        calls[loop].append(f"F{rng.randrange(loop + 1)}")  # a call back to itself or earlier
        for i in range(k - 1):
            calls[i].append(f"F{i + 1}")  # F0 reaches every function
        funcs = [_fn(f"F{i}", calls[i]) for i in range(k)]
    return _model([h.make_node("F0", ["x"], ["y"], domain="local", name="call")],
                  [_vi("x", ["batch", 3])], ["y"], functions=funcs,
                  opsets=(("", 17), ("local", 1)))


# -- sizes ------------------------------------------------------------------------------------
_BAD_SIZES = (-1, -3, -2 ** 63, 2 ** 40 + 1, 2 ** 62, 2 ** 63 - 1)


def _dims_case(rng: random.Random):
    bad = rng.choice(_BAD_SIZES)
    where = rng.choice(["input", "output", "value_info", "initializer", "constant", "macs"])
    x = _vi("x", ["batch", 4])
    nodes = [h.make_node("MatMul", ["x", "w"], ["t"], name="mm"),
             h.make_node("Relu", ["t"], ["y"], name="relu")]
    w = _zeros("w", (4, 3))
    outputs: list = ["y"]
    extra_vi = []
    if where == "input":
        x = _vi("x", ["batch", bad])
    elif where == "output":
        outputs = [_vi("y", ["batch", bad])]
    elif where == "value_info":
        extra_vi = [_vi("t", ["batch", bad])]
    elif where == "initializer":
        w = T(name="w", data_type=T.FLOAT, dims=[4, bad], data_location=T.EXTERNAL)
        w.external_data.add(key="location", value="w.bin")
    elif where == "constant":
        nodes.insert(0, h.make_node("Constant", [], ["w"], name="k",
                                    value=T(name="c", data_type=T.FLOAT, dims=[4, bad])))
        w = None
    else:  # every tensor within bounds, the product past 2**60 MACs
        n = 2 ** 25
        x = _vi("x", ["batch", n, n])
        w = T(name="w", data_type=T.FLOAT, dims=[n, n], data_location=T.EXTERNAL)
        w.external_data.add(key="location", value="w.bin")
    m = _model(nodes, [x], outputs, [w] if w is not None else [])
    m.graph.value_info.extend(extra_vi)
    return m


# -- structure --------------------------------------------------------------------------------
def _chain(k: int):
    nodes = [h.make_node("Relu", ["x"], ["t1"], name="n1")]
    for i in range(2, k + 1):
        prev2 = f"t{i - 2}" if i > 2 else "x"
        nodes.append(h.make_node("Add", [f"t{i - 1}", prev2], [f"t{i}"], name=f"n{i}"))
    return nodes


def _structure_case(rng: random.Random):
    k = rng.randint(2, 8)
    nodes = _chain(k)
    inputs = [_vi("x", ["batch", 3])]
    outputs: list = [f"t{k}"]
    kind = rng.choice(["unproduced", "cycle", "dup-output", "dup-input", "overwrite",
                       "out-of-order"])
    if kind == "unproduced":
        outputs.append(rng.choice(["ghost", "t0", f"t{k + 1}"]))
    elif kind == "cycle":
        i = rng.randrange(k)
        j = rng.randrange(i, k)
        n = nodes[i]
        n.input[0] = nodes[j].output[0]  # node i reads a later (or its own) output
    elif kind == "dup-output":
        i, j = rng.sample(range(k), 2) if k > 1 else (0, 0)
        nodes[j].output[0] = nodes[i].output[0]
    elif kind == "dup-input":
        inputs.append(_vi("x", ["batch", 3]))
    elif kind == "overwrite":
        nodes[rng.randrange(k)].output[0] = "x"
    else:
        order = list(range(k))
        while order == sorted(order):
            rng.shuffle(order)
        nodes = [nodes[i] for i in order]
    return _model(nodes, inputs, outputs)


# -- bytes ------------------------------------------------------------------------------------
def _valid_bytes() -> bytes:
    conv = h.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    return _model([conv, h.make_node("Relu", ["c"], ["y"], name="relu")],
                  [_vi("x", ["batch", 3, 8, 8])], ["y"], [_zeros("w", (4, 3, 3, 3))]
                  ).SerializeToString()


def _bytes_case(rng: random.Random) -> bytes:
    data = bytearray(_valid_bytes())
    how = rng.choice(["truncate", "flip", "overwrite"])
    if how == "truncate":
        return bytes(data[:rng.randrange(len(data))])
    if how == "flip":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    at = rng.randrange(len(data))
    span = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
    return bytes(data[:at] + span + data[at + len(span):])


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield ``(label, argv, must_fail)`` for about ``n`` malformed ONNX inputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    k = 0
    for m in _fixed_attr_cases():
        k += 1
        yield "onnx/attr-type", _argv(_save(workdir, "attr", k, m), rng), True
    makers = [
        ("onnx/attr-type", "attr", _attr_case),
        ("onnx/non-utf8", "utf8", lambda r: (_utf8_case(r), True)),
        ("onnx/recursive-function", "func", lambda r: (_function_case(r), True)),
        ("onnx/dims", "dims", lambda r: (_dims_case(r), True)),
        ("onnx/structure", "graph", lambda r: (_structure_case(r), True)),
        ("onnx/bytes", "bytes", lambda r: (_bytes_case(r), False)),
    ]
    while k < n:
        label, tag, make = makers[k % len(makers)]
        k += 1
        data, must_fail = make(rng)
        yield label, _argv(_save(workdir, tag, k, data), rng), must_fail
