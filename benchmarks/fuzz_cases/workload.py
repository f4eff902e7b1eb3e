"""Fuzz cases for workload inputs: LLM step sizes, precisions, list options, model names.

Every case is certainly invalid and must end with exit status 2 and one ``npusim: error:``
line, refused before anything is built: sizes past their limits or the model's context window,
precisions that do not exist, LLM step options on an ONNX file, empty or junk list options of
``kperf``, chip counts below one, misspelt model names.
"""
from __future__ import annotations

import pathlib
import random

import onnx
from onnx import TensorProto, helper

MODEL = "tiny-llama"          # context window 512 (max_position_embeddings in its config)
ARCH = "edu"
HUGE = ["9223372036854775808", "9223372036854775807", "2147483648", "2147483647",
        "18446744073709551616", "100000000000000000000000", "65537", "16777217"]
NONPOSITIVE = ["0", "-1", "-5", "-9223372036854775808"]
JUNK = ["", " ", ",", "abc", "1.5", "1e3", "0x10", "5,,abc", "nan", "inf", "-5", "0", "1,0",
        "2,-3", "١٢x", "16;32"]
BAD_PRECISIONS = ["", " ", "fp4", "FP8", "int3", "fp8_e4m3", "mxfp", "float16", "e4m3"]
DIM_HUGE = ["9223372036854775808", "2147483648", "16777217", "100000000000000000000000"]
BAD_MODELS = ["tiny-lama", "llama-3.1-8", "llama3", "LLAMA-3.1-8B", "gpt-oss", "", "..",
              "tiny-llama ", "exaone-4-32b"]


def _onnx(workdir: pathlib.Path) -> str:
    """A one-MatMul model with a symbolic batch dim."""
    path = workdir / "workload_mm.onnx"
    if not path.exists():
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
        w = helper.make_tensor("w", TensorProto.FLOAT, [8, 4], [0.0] * 32)
        node = helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")
        onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y], [w]),
                                    opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def _size(rng: random.Random, workdir: pathlib.Path):
    cmd = rng.choice(["run", "inspect"])
    kind = rng.randrange(6)
    if kind == 0:
        flag = rng.choice(["--batch", "--seq"])
        return "size/huge", [cmd, MODEL, flag, rng.choice(HUGE), "--arch", ARCH]
    if kind == 1:
        return "size/huge", [cmd, MODEL, "--phase", "decode", "--kv-len", rng.choice(HUGE),
                             "--arch", ARCH]
    if kind == 2:
        flag = rng.choice(["--batch", "--seq"])
        return "size/nonpositive", [cmd, MODEL, flag, rng.choice(NONPOSITIVE), "--arch", ARCH]
    if kind == 3:  # past the context window, alone or as a sum
        seq = rng.randint(1, 600)
        kv = rng.randint(max(0, 513 - seq), 5000)
        return "size/context", [cmd, MODEL, "--seq", str(seq), "--kv-len", str(kv),
                                "--arch", ARCH]
    if kind == 4:
        return "size/context", [cmd, MODEL, "--phase", "decode", "--kv-len",
                                str(rng.randint(512, 100_000)), "--arch", ARCH]
    return "size/dim", [cmd, _onnx(workdir), "--dim", f"batch={rng.choice(DIM_HUGE)}",
                        "--arch", ARCH]


def _precision(rng: random.Random, workdir: pathlib.Path):
    model = rng.choice([MODEL, _onnx(workdir) + " --dim batch=2"]).split()
    return "precision/unknown", ["run", *model, "--dtype", rng.choice(BAD_PRECISIONS),
                                 "--arch", ARCH]


def _onnx_options(rng: random.Random, workdir: pathlib.Path):
    opt = rng.choice([["--batch", "4"], ["--seq", "8"], ["--kv-len", "8"],
                      ["--phase", "decode"], ["--phase", "prefill"], ["--batch", "1"]])
    return "onnx/llm-option", [rng.choice(["run", "inspect"]), _onnx(workdir), "--dim",
                               "batch=2", *opt, "--arch", ARCH][:None if rng.random() < 0.5
                                                                 else -2]


def _kperf(rng: random.Random, workdir: pathlib.Path):
    out = str(workdir / "kperf-out")
    given = {"--input-lens": "16", "--output-lens": "4", "--users": "1"}
    kind = rng.randrange(5)
    if kind == 0:
        label, flag, value = "kperf/list-junk", rng.choice(list(given)), rng.choice(JUNK)
    elif kind == 1:
        label, flag = "kperf/list-empty", rng.choice(["--precision", "--vs"])
        value = rng.choice(["", ",", " , "])
    elif kind == 2:
        label, flag, value = "kperf/precision", "--precision", rng.choice(BAD_PRECISIONS[2:])
    elif kind == 3:
        label, flag = "kperf/chips", "--chips"
        value = rng.choice(NONPOSITIVE + ["1.5", "x", "", "autox", "per-precisio", "2 chips"])
    else:
        label, flag, value = "kperf/size", rng.choice(list(given)), rng.choice(HUGE)
    given[flag] = value   # replaces a valid value: list options extend, they do not override
    argv = ["kperf", "--arch", ARCH, "--model", MODEL, "--out", out, "--no-progress"]
    for k, v in given.items():
        argv += [k, v]
    return label, argv


def _name(rng: random.Random, workdir: pathlib.Path):
    if rng.random() < 0.5:
        return "model/unknown", ["run", rng.choice(BAD_MODELS) or "nomodel", "--arch", ARCH]
    return "model/unknown", ["kperf", "--arch", ARCH, "--model", rng.choice(BAD_MODELS),
                             "--out", str(workdir / "kperf-out"), "--no-progress"]


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed workload inputs."""
    makers = [_size, _size, _precision, _onnx_options, _kperf, _kperf, _name]
    for _ in range(n):
        label, argv = rng.choice(makers)(rng, workdir)
        yield label, argv, True
