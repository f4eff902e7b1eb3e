"""The kernels' tests pass with Numba switched off (NUMBA_DISABLE_JIT=1): the jitted code is
plain Python that numba compiles, so it must also run, and agree with its twin, uncompiled."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.mark.slow
def test_kernel_tests_pass_without_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    files = ["test_kernel_engine.py", "test_kernel_dram.py", "test_kernel_pim.py",
             "test_kernel_snn.py", "test_engine.py", "test_roofline.py"]
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-o", "addopts=", *[str(TESTS / f) for f in files]],
                       env=env, capture_output=True, text=True, cwd=TESTS.parent)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout


@pytest.mark.slow
def test_serving_loop_runs_without_jit():
    """The compiled serving loop, run as plain Python, still equals the Python scheduler (a
    selection of tests/test_serving_loop.py: the uncompiled loop is slow)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    select = ("(test_compiled_loop_equals_the_python_paths and None-scenario1) or growing or "
              "negative or bracket or compensated or band_parts")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-o", "addopts=", str(TESTS / "test_serving_loop.py"), "-k", select],
                       env=env, capture_output=True, text=True, cwd=TESTS.parent)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "\n11 passed" in p.stdout
