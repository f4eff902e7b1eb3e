"""ANN vs SNN break-even: energy per inference against the mean spike rate, and hybrids.

For each network and each (NPU, spiking cores) pair, ``npusim.engine.hybrid.break_even``
prices the all-NPU placement (one ANN pass, flat in the rate) and the all-spiking one at one
spike rate shared by every layer, and finds where they cross: the rate, and the spikes per
synapse per inference there (``T x rate``). Memory, NoC, converters (input encoder, output
counters), idle neuron updates and static power are all in. Pairs:

* ``edu`` vs ``snn-edu``: the two teaching presets (every number an assumption);
* ``edu`` vs ``edu-snn``: spiking cores on edu's own silicon, every event priced by edu's
  energy table (``same_silicon_device``: Davidson & Furber's "identical silicon");
* ``rngd`` vs ``loihi``: a real NPU (energies scaled from Horowitz to N5) and Loihi 1
  (SANA-FE's silicon-calibrated costs), two chips joined by RNGD's PCIe link;
* ``rngd`` vs ``rngd-snn``: spiking cores on RNGD's silicon.

Each pair is run with the NPU's weights in DRAM (read every inference, the engine's default)
and resident in SRAM (as a spiking core keeps its synapses), with and without static power.
Set the thresholds beside ``snn.md`` sec. 2.5 (Dampfhoffer 2023: 0.15-1.38 spikes per synapse
per inference; Yan et al.: below 5.7 % rate at T = 5); nothing here is tuned to them.

Networks (shapes are assumptions, MNIST-sized; no weights needed, costs depend on shapes and
rates only): ``mlp`` 784-256-256-10, ``cnn`` 1x16x16 -> conv 4 3x3 -> conv 8 3x3 stride 2 ->
dense 10.

Usage::

    python benchmarks/snn_breakeven.py            # every pair, both nets, T = 5, T sweep
    python benchmarks/snn_breakeven.py --quick    # one small net, the three headline pairs
"""
from __future__ import annotations

import argparse
import sys

from npusim.arch import load_arch
from npusim.arch.snn_device import load_snn_device
from npusim.energy import load_energy_table
from npusim.engine import breakeven as bk
from npusim.engine import hybrid as hy
from npusim.engine import snn as es

T_MAIN = 5                      # Yan et al.'s T (snn.md sec. 2.5)
T_SWEEP = (1, 2, 4, 5, 8, 16)
SHOWN = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
SNN_MD = ("snn.md sec. 2.5: ~1 spike/synapse/inference (Dampfhoffer 2023: 0.15-1.38 vs "
          "Eyeriss-class ANNs); Yan et al.: rate < 5.7 % at T = 5 (< 6.4 % for T in 5..10)")


def mlp() -> es.Network:
    return es.Network("mlp784-256-256-10", (
        es.Layer("in", "input", (784,)), es.Layer("h1", "dense", (256,)),
        es.Layer("h2", "dense", (256,)), es.Layer("out", "dense", (10,))))


def cnn() -> es.Network:
    return es.Network("cnn16-c4-c8s2-10", (
        es.Layer("in", "input", (1, 16, 16)),
        es.Layer("c1", "conv2d", (4, 14, 14), kernel=(3, 3)),
        es.Layer("c2", "conv2d", (8, 6, 6), kernel=(3, 3), stride=2),
        es.Layer("out", "dense", (10,))))


def tiny() -> es.Network:
    return es.Network("mlp64-32-10", (es.Layer("in", "input", (64,)),
                                      es.Layer("h", "dense", (32,)),
                                      es.Layer("out", "dense", (10,))))


def pairs(quick: bool) -> list[tuple[str, object, object, str]]:
    """(label, arch, device, interface) of each pair."""
    edu, rngd = load_arch("edu"), load_arch("rngd")
    out = [("edu|snn-edu", edu, load_snn_device("snn-edu"), "noc"),
           ("edu|same-silicon", edu, bk.same_silicon_device(edu), "noc"),
           ("rngd|loihi", rngd, load_snn_device("loihi"), "link")]
    if not quick:
        out.append(("rngd|same-silicon", rngd, bk.same_silicon_device(rngd), "noc"))
    return out


NO_CROSSING = {"snn_cheaper": "SNN always less", "ann_cheaper": "ANN always less"}


def fmt_rate(x: float | None) -> str:
    return "   none" if x is None else f"{x * 100:6.2f}%"


def fmt_sps(x: float | None) -> str:
    return "  none" if x is None else f"{x:6.3f}"


def breakdown(p: hy.Placement) -> str:
    """Where the energy of a placement goes, as shares (for the ANN and the SNN at a rate)."""
    out: dict[str, float] = {}
    for part in p.parts:
        if part.kind == "npu":
            for k, v in part.detail["by_component_j"].items():
                out[k] = out.get(k, 0.0) + v
        elif part.kind == "snn":
            out["static"] = out.get("static", 0.0) + part.detail["static_j"]
            out["events"] = out.get("events", 0.0) + part.energy_j - part.detail["static_j"]
        else:
            out["convert"] = out.get("convert", 0.0) + part.energy_j
    total = sum(out.values()) or 1.0
    return " ".join(f"{k} {v / total:.0%}" for k, v in sorted(out.items(), key=lambda kv: -kv[1])
                    if v / total >= 0.01)


def crossover_table(nets, prs, rates) -> list[dict]:
    print(f"\nCrossovers at T = {T_MAIN} ({SNN_MD})")
    hdr = (f"{'network':<19} {'pair':<18} {'weights':<7} {'static':<6} {'ANN uJ':>9} "
           f"{'SNN@0 uJ':>9} {'SNN@1 uJ':>9} {'regime':<12} {'x rate':>7} {'spk/syn':>7}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for net in nets:
        for label, arch, dev, iface in prs:
            for weights in hy.NPU_WEIGHTS:
                for static in (True, False):
                    system = hy.System(arch, dev, npu_weights=weights, interface=iface,
                                       static=static)
                    be = bk.break_even(system, net, T_MAIN, rates)
                    rows.append({"net": net.name, "pair": label, "weights": weights,
                                 "static": static, **be.as_dict()})
                    print(f"{net.name:<19} {label:<18} {weights:<7} {str(static):<6} "
                          f"{be.ann_energy_j * 1e6:>9.3f} {be.snn_energy_j[0] * 1e6:>9.3f} "
                          f"{be.snn_energy_j[-1] * 1e6:>9.3f} {be.regime:<12} "
                          f"{fmt_rate(be.crossover_rate):>7} "
                          f"{fmt_sps(be.crossover_spikes_per_synapse):>7}")
    print("regime: snn_cheaper / ann_cheaper = that side costs less at every rate in [0, 1]")
    for label, arch, dev, _ in prs:
        if label.endswith("same-silicon"):
            t = load_energy_table(arch)
            mac, add = t.mac["int8"], t.mac["int8"] * bk.ADD_SHARE["int8"]
            print(f"op-count model (snn.md sec. 2.1) on {arch.name}'s table: E_MAC / E_AC = "
                  f"{mac * 1e12:.4g} / {add * 1e12:.4g} pJ = {mac / add:.2f} spikes per synapse "
                  f"(memory, NoC, updates, static all priced at zero)")
    return rows


def curves(net, prs) -> None:
    print(f"\nCurves, {net.name}, T = {T_MAIN}, NPU weights in SRAM, static power in "
          f"(energy per inference, uJ; spikes per synapse = T x rate)")
    print(f"{'rate':>6} {'spk/syn':>7} " + " ".join(f"{lab:>18}" for lab, *_ in prs))
    bes = [bk.break_even(hy.System(a, d, npu_weights="sram", interface=i), net, T_MAIN, SHOWN)
           for _, a, d, i in prs]
    print(f"{'ANN':>6} {'':>7} " + " ".join(f"{b.ann_energy_j * 1e6:>18.4f}" for b in bes))
    for k, r in enumerate(SHOWN):
        print(f"{r:>6.2f} {T_MAIN * r:>7.2f} "
              + " ".join(f"{b.snn_energy_j[k] * 1e6:>18.4f}" for b in bes))
    print("where the energy goes (ANN; SNN at rate 0.05):")
    for (lab, a, d, i), b in zip(prs, bes):
        system = hy.System(a, d, npu_weights="sram", interface=i)
        zero = {lay.name: 0.0 for lay in net.layers}
        ann = hy.evaluate(system, net, zero, T_MAIN, "npu")
        snn = bk.snn_energy(system, net, 0.05, T_MAIN)
        print(f"  {lab:<18} ANN: {breakdown(ann)}")
        print(f"  {'':<18} SNN: {breakdown(snn)}")


def t_sweep(net, prs, rates) -> None:
    print(f"\nCrossover against T, {net.name}, NPU weights in SRAM "
          f"(rate / spikes per synapse per inference)")
    print(f"{'pair':<18} {'static':<6} " + " ".join(f"{'T=' + str(t):>16}" for t in T_SWEEP))
    print("-" * (26 + 17 * len(T_SWEEP)))
    for label, arch, dev, iface in prs:
        for static in (True, False):
            system = hy.System(arch, dev, npu_weights="sram", interface=iface, static=static)
            cells = []
            for t in T_SWEEP:
                be = bk.break_even(system, net, t, rates)
                if be.crossover_rate is None:
                    cells.append(NO_CROSSING[be.regime])
                else:
                    cells.append(f"{fmt_rate(be.crossover_rate).strip():>8}/"
                                 f"{fmt_sps(be.crossover_spikes_per_synapse).strip():<7}")
            print(f"{label:<18} {str(static):<6} " + " ".join(f"{c:>16}" for c in cells))


def placements(net, prs) -> None:
    print(f"\nHybrid placement, {net.name}, T = {T_MAIN}: a busy input (rate 0.5) and quiet "
          f"hidden layers (0.02); NPU weights in SRAM")
    rates = {lay.name: (0.5 if i == 0 else 0.02) for i, lay in enumerate(net.layers)}
    print(f"{'pair':<18} {'objective':<9} {'sides':<24} {'E uJ':>9} {'lat us':>9} "
          f"{'all-NPU uJ/us':>17} {'all-SNN uJ/us':>17}")
    for label, arch, dev, iface in prs:
        system = hy.System(arch, dev, npu_weights="sram", interface=iface)
        ends = []
        for side in hy.SIDES:
            p = hy.evaluate(system, net, rates, T_MAIN, side)
            ends.append(f"{p.energy_j * 1e6:.3f}/{p.latency_s * 1e6:.2f}")
        for obj in hy.OBJECTIVES:
            p = hy.place(system, net, rates, T_MAIN, obj)
            print(f"{label:<18} {obj:<9} {','.join(p.sides):<24} {p.energy_j * 1e6:>9.3f} "
                  f"{p.latency_s * 1e6:>9.2f} {ends[0]:>17} {ends[1]:>17}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small net, three pairs, no sweep")
    args = ap.parse_args(argv)
    prs = pairs(args.quick)
    nets = [tiny()] if args.quick else [mlp(), cnn()]
    rates = bk.DEFAULT_RATES
    crossover_table(nets, prs, rates)
    curves(nets[0], prs)
    placements(nets[0], prs)
    if not args.quick:
        t_sweep(nets[0], prs, rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
