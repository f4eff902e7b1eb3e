"""Output destinations npusim cannot write, for the fuzzing benchmark.

Classes (labels):

``report/output-path``
    ``run --csv/--json/--trace FILE`` where FILE is a folder, sits under a regular file, is in
    a missing folder, is empty, or holds a NUL byte, a newline or other control characters;
    must fail (when the path certainly cannot be written).
``report/plot-folder``
    ``run --plot DIR`` where DIR is a regular file, sits under one, is ``/dev/null``, or holds
    a NUL byte; must fail.
``report/output-name``
    Random names (letters, dots, slashes, spaces, controls, non-ASCII) under a writable
    folder: either written (exit 0) or one clean error, never a traceback.

Every case runs a two-op ONNX model on the small ``edu`` arch.
"""
from __future__ import annotations

import pathlib
import random

FLAGS = ("--csv", "--json", "--trace")
ALPHABET = list("abc./ _-") + ["\x00", "\n", "\t", "\r", "é", "\u202e", "\x7f"]


def _model(workdir: pathlib.Path) -> pathlib.Path:
    """A MatMul and a Relu: the smallest model that exercises every writer."""
    import onnx
    from onnx import TensorProto, helper
    path = workdir / "report_tiny.onnx"
    if not path.exists():
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 8])
        b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [8, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])
        nodes = [helper.make_node("MatMul", ["a", "b"], ["t"], name="mm"),
                 helper.make_node("Relu", ["t"], ["y"], name="relu")]
        graph = helper.make_graph(nodes, "tiny", [a, b], [y])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                  str(path))
    return path


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` unwritable or odd output destinations."""
    workdir = pathlib.Path(workdir)
    model = str(_model(workdir))
    run = ["run", model, "--arch", "edu"]
    afile = workdir / "report_a_file"
    afile.write_text("x", encoding="utf-8")
    adir = workdir / "report_a_dir"
    adir.mkdir(exist_ok=True)
    bad_files = [str(adir), str(afile / "out.x"), str(workdir / "report_missing" / "out.x"),
                 "", str(workdir / "a\x00b"), str(afile / "a\nb")]
    bad_dirs = [str(afile), str(afile / "sub"), "/dev/null", str(workdir / "p\x00q")]
    made = 0
    while made < n:
        kind = rng.random()
        if kind < 0.4:
            yield ("report/output-path", run + [rng.choice(FLAGS), rng.choice(bad_files)], True)
        elif kind < 0.6:
            yield ("report/plot-folder", run + ["--plot", rng.choice(bad_dirs)], True)
        else:
            name = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 10)))
            out = workdir / "report_names" / f"{made}"
            out.mkdir(parents=True, exist_ok=True)
            yield ("report/output-name", run + [rng.choice(FLAGS), str(out / name)], False)
        made += 1
