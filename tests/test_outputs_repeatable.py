"""Outputs are byte-identical run to run, and loading never opens anything but the model file
itself (checked with an audit hook on ``open``). The onnx package's own test models are swept
in tests/test_onnx_malformed.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper


def _model(path: Path, weight_location: str | None = None) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    w = numpy_helper.from_array(np.zeros((16, 8), np.float32), "w")
    if weight_location is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for k, v in {"location": weight_location, "offset": "0", "length": "512"}.items():
            w.external_data.add(key=k, value=v)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
                           helper.make_node("Relu", ["h"], ["y"], name="act")],
                          "g", [x], [y], [w])
    path.write_bytes(helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_outputs_are_byte_identical_run_to_run(tmp_path):
    """Two fresh processes, same inputs: the JSON, CSV and trace agree byte for byte."""
    model = _model(tmp_path / "m.onnx")
    outs = []
    for run in ("a", "b"):
        d = tmp_path / run
        d.mkdir()
        cmd = [sys.executable, "-m", "npusim.cli", "run", str(model), "--arch", "edu",
               "--dim", "batch=4", "--json", str(d / "r.json"), "--csv", str(d / "r.csv"),
               "--trace", str(d / "r.trace.json")]
        p = subprocess.run(cmd, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        outs.append([(d / f).read_bytes() for f in ("r.json", "r.csv", "r.trace.json")])
    assert outs[0] == outs[1]


@pytest.mark.parametrize("location", ["../../../etc/passwd", "/dev/zero", "fifo", "w.bin"])
def test_loading_opens_nothing_but_the_model(tmp_path, location):
    """External data is never opened: not outside the folder, not a device, not a FIFO, not
    even a real weight file beside the model."""
    import os
    if location == "fifo":
        os.mkfifo(tmp_path / "fifo")
    if location == "w.bin":
        (tmp_path / "w.bin").write_bytes(b"\0" * 512)
    model = _model(tmp_path / "m.onnx", weight_location=location)
    probe = (
        "import json, sys\n"
        "opened = []\n"
        "def hook(event, args):\n"
        "    if event == 'open' and record: opened.append(str(args[0]))\n"
        "record = False\n"
        "sys.addaudithook(hook)\n"
        "from npusim.frontend.onnx_loader import load_onnx\n"
        "record = True\n"
        f"g = load_onnx({str(model)!r}, {{'batch': 2}})\n"
        "record = False\n"
        "print(json.dumps([p for p in opened if not p.endswith(('.py', '.pyc', '.so'))]))\n"
        "print(g.macs)\n")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    opened_line, macs = p.stdout.strip().splitlines()[-2:]
    opened = json.loads(opened_line)
    assert int(macs) == 2 * 16 * 8
    assert all(Path(o).name == "m.onnx" for o in opened if "m.onnx" in o or location in o), opened
    assert not [o for o in opened if location.split("/")[-1] in o], opened
