"""A plain, non-editable install finds the shipped archs, LLM configs and SNN networks by name."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_finds_archs_and_graphs(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path)
    if build.returncode != 0:
        pytest.fail(f"pip install . failed:\n{build.stderr[-2000:]}")
    assert not (target / "npusim" / "__editable__").exists()
    probe = (
        "import npusim, pathlib;"
        "assert 'site' in pathlib.Path(npusim.__file__).parts, npusim.__file__;"
        "names = [n for n, _ in npusim.list_archs()];"
        "assert {'rngd', 'h100', 'edu'} <= set(names), names;"
        "assert npusim.load_arch('rngd').name == 'rngd';"
        "assert 'llama-3.1-8b' in npusim.builtin_models();"
        "g = npusim.load_model('tiny-llama', phase='decode', batch=1, kv_len=4);"
        "assert g.macs > 0;"
        "from npusim.validate.snn_rows import network_names;"
        "assert {'blouw-kws', 'truenorth-sweep', 'renner-mnist'} <= set(network_names());"
        "print('ok')"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin",
                                            "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
