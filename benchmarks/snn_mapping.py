"""Greedy vs traffic-aware mapping of spiking networks (npusim.engine.snn_map).

For each network, both mappers on the same device and activity: cores holding neurons (the
greedy mapper also skips cores to start each layer on a new tile) and tiles used, spike
messages and mesh hops per timestep (one message per spike and distinct destination core,
SANA-FE's convention), energy and latency of the run (the device preset's costs, SANA-FE's
two-stage pipeline, the preset's static power and barrier), and the mapper's wall time.

Networks:

* ``dense256`` and ``conv16`` -- the two networks of ``benchmarks/vs_sanafe.py`` (256-256-10;
  1x16x16 input, 3x3 conv to 8 channels, dense to 10) at 256 neurons per core as there, on
  ``loihi``, driven by the spike rasters of that script's LIF reference (input rate 0.2, 16
  steps; no SANA-FE needed).
* ``cifar`` -- a bigger CNN, 3x32x32 input, 3x3 conv to 16 channels, 3x3 stride-2 conv to 16,
  dense 128, dense 10, on ``loihi`` at its 1,024 neurons per core; rates are an assumption
  (input 0.2, every other layer 0.05 spikes per neuron per step), 16 steps.
* ``mlp`` -- 784-1000-500-10 on ``loihi``, same assumed rates (dense layers: every partition
  sends the same messages, so only the placement differs).
* ``tn-conv`` -- 2x64x64 input, three 3x3 convs to 8 channels (stride 1, 2, 2) on
  ``truenorth`` (256 neurons and axons per core, 64 x 64 cores), same assumed rates; its all-in
  26 pJ synop prices neither messages nor hops, so energy and latency (1 ms tick) do not move.
* ``--large`` adds ``vgg-layer``: 64x32x32 input, 3x3 conv to 64 channels (33 M synapses) on
  32 ``loihi`` chips (minutes).

Usage::

    python benchmarks/snn_mapping.py            # all networks
    python benchmarks/snn_mapping.py --quick    # the vs_sanafe dense net only
    python benchmarks/snn_mapping.py --large    # all, and one VGG-sized conv layer
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from pathlib import Path

from npusim.arch.snn_device import load_snn_device
from npusim.engine import snn as es
from npusim.engine import snn_map as sm

TIMESTEPS = 16
RATE_IN, RATE = 0.2, 0.05          # assumption: the rates of the bigger networks (see docstring)


def _vs_sanafe():
    """``benchmarks/vs_sanafe.py`` as a module (its networks and LIF reference)."""
    path = Path(__file__).resolve().parent / "vs_sanafe.py"
    spec = importlib.util.spec_from_file_location("benchmarks_vs_sanafe", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                    # dataclasses look their module up here
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    return mod


def cases(quick: bool, large: bool = False) -> list[dict]:
    """Each case: ``name``, ``net``, ``device``, ``activity``, ``updated`` (or None),
    ``cap`` (neurons per core or None)."""
    vs = _vs_sanafe()
    loihi = load_snn_device("loihi")
    out = []
    for name, spec in (("dense256", vs.dense_net()), ("conv16", vs.conv_net()))[:1 if quick
                                                                                else 2]:
        spikes, updated = vs.lif_reference(spec, vs.input_trains(spec, 0.2, TIMESTEPS))
        out.append({"name": name, "net": vs.npusim_network(spec), "device": loihi,
                    "activity": spikes, "updated": updated, "cap": spec.neurons_per_core})
    if quick:
        return out
    cifar = es.Network("cifar", (
        es.Layer("in", "input", (3, 32, 32)),
        es.Layer("c1", "conv2d", (16, 30, 30), kernel=(3, 3)),
        es.Layer("c2", "conv2d", (16, 14, 14), kernel=(3, 3), stride=2),
        es.Layer("fc", "dense", (128,)), es.Layer("out", "dense", (10,))))
    mlp = es.Network("mlp", (es.Layer("in", "input", (784,)), es.Layer("h1", "dense", (1000,)),
                             es.Layer("h2", "dense", (500,)), es.Layer("out", "dense", (10,))))
    tn = es.Network("tn-conv", (
        es.Layer("in", "input", (2, 64, 64)),
        es.Layer("c1", "conv2d", (8, 62, 62), kernel=(3, 3)),
        es.Layer("c2", "conv2d", (8, 30, 30), kernel=(3, 3), stride=2),
        es.Layer("c3", "conv2d", (8, 14, 14), kernel=(3, 3), stride=2)))
    nets = [(cifar, loihi), (mlp, loihi), (tn, load_snn_device("truenorth"))]
    if large:
        vgg = es.Network("vgg-layer", (es.Layer("in", "input", (64, 32, 32)),
                                       es.Layer("c1", "conv2d", (64, 30, 30), kernel=(3, 3))))
        chips = dataclasses.replace(loihi.structure, chips=32)
        nets.append((vgg, dataclasses.replace(loihi, structure=chips)))
    for net, dev in nets:
        act = {lay.name: RATE_IN if lay.kind == "input" else RATE for lay in net.layers}
        out.append({"name": net.name, "net": net, "device": dev, "activity": act,
                    "updated": None, "cap": None})
    return out


def measure(case: dict, mapper: str) -> dict:
    """Map ``case`` with ``mapper`` (timed), then its traffic and run figures."""
    net, dev, act = case["net"], case["device"], case["activity"]
    fn = sm.mapper(mapper)
    t0 = time.perf_counter()
    try:
        m = fn(net, dev, act, max_neurons_per_core=case["cap"])
    except Exception as exc:                        # a mapper that cannot map: say why
        return {"mapper": mapper, "error": str(exc), "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    tr = sm.traffic(net, m, act)
    r = es.run(net, dev, act, TIMESTEPS, mapping=m, stages="sanafe", updated=case["updated"])
    return {"mapper": mapper, "cores": sum(lm.n_cores for lm in m.layers), "tiles": m.tiles, "chips": m.chips,
            "messages": tr.messages, "hops": tr.hops, "in_tile": tr.in_tile,
            "energy_j": r.energy_j, "latency_s": r.latency_s, "wall_s": wall,
            "bound_by": [lm.bound_by for lm in m.layers]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the vs_sanafe dense net only")
    ap.add_argument("--large", action="store_true", help="also a VGG-sized conv layer")
    args = ap.parse_args(argv)
    print(f"device presets as shipped (loihi: SANA-FE-calibrated costs, 104 mW/chip static, "
          f"299 ns barrier; truenorth: all-in synop, 1 ms tick), two-stage pipeline, "
          f"T={TIMESTEPS}; messages, hops per timestep; energy per inference")
    hdr = (f"{'net':<9} {'mapper':<8} {'cores':>5} {'tiles':>5} {'msgs/step':>10} "
           f"{'hops/step':>10} {'E uJ':>9} {'lat us':>8} {'map ms':>8}  bound by (per layer)")
    print(hdr)
    print("-" * len(hdr))
    for case in cases(args.quick, args.large):
        rows = [measure(case, name) for name in ("greedy", "traffic")]
        for row in rows:
            if "error" in row:
                print(f"{case['name']:<9} {row['mapper']:<8} cannot map: {row['error']}")
                continue
            print(f"{case['name']:<9} {row['mapper']:<8} {row['cores']:>5} {row['tiles']:>5} "
                  f"{row['messages']:>10.1f} {row['hops']:>10.1f} {row['energy_j'] * 1e6:>9.3f} "
                  f"{row['latency_s'] * 1e6:>8.2f} {row['wall_s'] * 1e3:>8.1f}  "
                  f"{', '.join(row['bound_by'])}")
        g, t = rows
        if "error" not in g and "error" not in t:
            print(f"{'':<9} {'ratio':<8} {'':>5} {'':>5} "
                  f"{t['messages'] / g['messages'] if g['messages'] else 1:>10.3f} "
                  f"{t['hops'] / g['hops'] if g['hops'] else 1:>10.3f} "
                  f"{t['energy_j'] / g['energy_j']:>9.3f} {t['latency_s'] / g['latency_s']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
