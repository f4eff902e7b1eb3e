"""Speed of npusim itself: prints figures, asserts nothing.

    python benchmarks/speed.py            # all figures
    python benchmarks/speed.py --quick    # skip the cold-start subprocesses

Figures: mapping-search candidates scored per second (the Numba kernel, warm), ResNet-50 at
224x224 on rngd (lowering + engine, warm), a Llama 3.1 8B decode step at batch 8 and
kv_len 2048 on rngd (warm), and the cold start of a fresh process with an empty Numba cache
(compilation included) against the same process with the cache filled. The peer comparison
(SCALE-Sim on the same layers) is benchmarks/vs_scalesim.py.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def candidates_per_second() -> tuple[int, float]:
    from npusim.kernels import engine as ek
    from npusim.kernels import tiling as tk
    rng = np.random.default_rng(0)
    n = 1_000_000
    M, N, K = 4096, 4096, 4096
    tm = rng.choice([16, 32, 64, 128, 256, 512], n).astype(np.int64)
    tn = rng.choice([16, 32, 64, 128, 256, 512], n).astype(np.int64)
    tkk = rng.choice([16, 32, 64, 128, 256], n).astype(np.int64)
    tb = np.ones(n, dtype=np.int64)
    order = rng.integers(0, 6, n).astype(np.int64)
    a = 2.0 * tm * tkk
    b = 2.0 * tkk * tn
    c = 2.0 * tm * tn
    out = np.empty((n, tk.N_OUT))

    def run():
        tk.score_many(tb, tm, tn, tkk, order, a, b, c, 2 * c, 1, M, N, K, 2.0 * M * K,
                      2.0 * K * N, 2.0 * M * N, tk.IN_DRAM, tk.IN_DRAM, tk.IN_DRAM, ek.SLICE,
                      8, 32, 64, 5, 0, 16384, 0, 8, 32 * 2 ** 20, 1536.0, 0.0, 2048.0, 500.0,
                      256.0, 0.0, 8192.0, out)
    run()
    return n, best_of(run, 3)


def resnet50_rngd() -> tuple[float, float]:
    import onnx
    import npusim
    from npusim.engine.simulate import simulate_graph
    path = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    arch = npusim.load_arch("rngd")

    def run():
        return simulate_graph(npusim.load_model(str(path)), arch)
    r = run()
    return best_of(run, 5), r.latency_s


def llama_decode_rngd() -> tuple[float, float]:
    import npusim
    from npusim.engine.simulate import simulate_graph
    arch = npusim.load_arch("rngd")

    def run():
        g = npusim.load_model("llama-3.1-8b", phase="decode", batch=8, kv_len=2048)
        return simulate_graph(g, arch)
    r = run()
    return best_of(run, 5), r.latency_s


COLD = ("import time; t=time.perf_counter(); import npusim; "
        "from npusim.engine.simulate import simulate_graph; "
        "simulate_graph(npusim.load_model('tiny-llama', phase='decode', kv_len=16), "
        "npusim.load_arch('rngd')); print(time.perf_counter()-t)")


def cold_start() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = float(subprocess.run([sys.executable, "-c", COLD], env=env, check=True,
                                    capture_output=True, text=True).stdout)
        warm = float(subprocess.run([sys.executable, "-c", COLD], env=env, check=True,
                                    capture_output=True, text=True).stdout)
    return cold, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the cold-start subprocesses")
    args = ap.parse_args()
    n, t = candidates_per_second()
    print(f"mapping search kernel : {n / t / 1e6:8.2f} M candidates/s  ({n:,} in {t * 1e3:.1f} ms;"
          f" target > 1 M/s)")
    t, lat = resnet50_rngd()
    print(f"ResNet-50 on rngd     : {t:8.3f} s warm (load + lower + engine; target < 1 s);"
          f" simulated latency {lat * 1e3:.3f} ms")
    t, lat = llama_decode_rngd()
    print(f"Llama 3.1 8B decode   : {t:8.3f} s warm (batch 8, kv_len 2048, rngd; target < 0.2 s);"
          f" simulated step {lat * 1e3:.3f} ms")
    if not args.quick:
        cold, warm = cold_start()
        print(f"cold start            : {cold:8.2f} s with an empty Numba cache (compilation "
              f"included), {warm:.2f} s with it filled: {cold / warm:.1f}x")


if __name__ == "__main__":
    main()
