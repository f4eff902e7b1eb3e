"""npusim's PIM decode attention beside the AttAcc simulator's, on the same shapes.

AttAcc (Park et al., ASPLOS 2024, https://github.com/scale-snu/attacc_simulator, MIT, checked at
c600051) times attention on HBM3-PIM with a patched Ramulator 2 (C++). Building that Ramulator
needs CMake to download argparse, spdlog and yaml-cpp, which an offline machine cannot do, so
this script does not run it. AttAcc's Python model, however, does not need it for the shapes
it has already simulated: ``src/ramulator_wrapper.py`` (class ``Ramulator``, method ``output``)
reads the committed log ``ramulator.out`` of Ramulator runs and turns a row into seconds
(``cycle x tCK``, tCK = 0.769 ns). This script calls that wrapper from an external checkout
(``--attacc``, default ``/tmp/attacc``; nothing of AttAcc is copied here) for bank-level
("BA") rows of the log, with and without AttAcc's power constraint, and runs the same decode
attention through npusim on an arch composed to match one AttAcc HBM3-PIM stack.

What one log row times (read from AttAcc's sources; file names relative to its checkout):

* One HBM3 stack: 16 channels, each 2 pseudo-channels x 2 ranks x 4 bank groups x 4 banks =
  64 banks, rows of 32 columns x 32 B = 1 KiB (``pim_ramulator_src/HBM3-PIM.cpp`` org preset
  ``HBM3_8Gb_2R``, the preset ``make_yaml_file`` in ``src/ramulator_wrapper.py`` asks for with
  ``channel: 16``; ``pim_ramulator_src/trace_gen/gen_trace_attacc_bank.py`` n_channel, n_pch,
  n_rank, n_bg, n_bank, n_col, prefetch_size).
* 5.2 Gb/s pins, tCK = 1 / (5200 / 4) MHz = 0.769 ns (``HBM3-PIM.cpp`` ``tCK_ps``; the
  wrapper's ``self.tCK``). The all-bank MAC command MACAB goes to every bank of a channel at
  most once per nCCDAB = 6 tCK with the power constraint (preset ``HBM3_5.2Gbps``) and 4 tCK
  without (``HBM3_5.2Gbps_NPC``); one all-bank ACT (ACTAB) opens a row in all 64 banks, bound by
  nRC only (no tRRD/tFAW), PREA closes them (``HBM3-PIM.cpp`` "PIM-MAC-All-Bank" timings).
  All-bank refresh is on (``RefreshManager: AllBankHBM3``).
* Each bank's unit reads 32 B (16 fp16) per MACAB (trace ``n_mac = 32 / dbyte``). QK^T runs in
  "adder tree mode": the 16 (pCH, rank, BG) groups split the keys, the 4 banks of a group split
  dhead, one fp16 score per key leaves for the buffer die's softmax buffer (MVSB, one per 16
  keys). PV runs in "mac mode": the 16 groups split the keys again, the banks' 16 lanes hold 16
  output elements each. Softmax (SFM) runs on the buffer die and its result returns to the
  banks' GEMV buffers (MVGB); the query arrives by WRGB. All of these commands are in the
  trace, so a row's cycles are the **whole decode attention** (QK^T, softmax, PV) of
  ``nhead`` heads on one stack, one head per channel at a time, two heads pipelined
  (``gen_trace_attacc_bank.py`` ``run_attention``). ``nhead`` counts attention heads times
  batch per stack: ``Ramulator.output`` looks up ``ceil(layer.numOp / num_hbm)`` and
  ``src/model.py`` sets ``numOp = num_heads / tp x batch`` for the 'score' layer.
* AttAcc's system model uses that time as the 'score' layer's; 'context' costs 0 on PIM and
  the pipelined schedule zeroes 'softmax' (``src/devices.py`` ``PIM.get_time_and_energy``,
  ``src/system.py`` ``_pipeline``).

What the overrides cannot match (npusim's model, not a fitted constant, makes the gap):

* Broadcast and read-out: npusim's kernel runs them on the channel's bus between column
  commands; AttAcc issues WRGB/MVGB/MVSB beside MACABs on a separate data path ("These can be
  executed simultaneously with MACAB", ``HBM3-PIM.cpp``) and pipelines two heads per channel.
  The table's ``hidden`` ratio takes them out of npusim's time.
* Layout: AttAcc gives each head one channel and reserves max_L = 4096 keys per head
  (``run_attention`` partition_size), so at short L every head opens fresh rows; npusim deals
  all heads' rows evenly over all units, packed. npusim has fewer row switches at L = 128.
* DRAM array timings: the arch's ``dram.type`` picks a shipped preset (``hbm3``: tRCD = tRP =
  14 ns, tRAS 34, tRC 48, tRFC 450 ns); AttAcc's HBM3_5.2Gbps has 19, 19, 45, 63 tCK (14.6,
  14.6, 34.6, 48.4 ns) and tRFC 350 ns (8 Gb die). No override reaches them; substituting
  AttAcc's values in the device's timing moves npusim's PIM time by at most 2.5 %.
* Refresh: npusim times each op from t = 0 with the first refresh due at tREFI / 2, so an op
  shorter than 1.95 us sees none; Ramulator refreshes on its own schedule across the run.
* AttAcc's own analytic model (``src/config.py`` BW_SCALE) scales the internal bandwidth 9x
  with the power constraint; its Ramulator's nCCDAB = 6 tCK gives 16 x 4 / 6 = 10.7x, which is
  what npusim reproduces (16x without the constraint, as BW_SCALE says).

Sources: pim.md [T6] (this checkout: README, src/config.py, pim_ramulator_src/HBM3-PIM.cpp) and
[L1] (the AttAcc paper); sec. 3 items 2, 3 and 6 and the power-cap note.

AttAcc has **no PIM GEMV**: its PIM device times only the attention ('score') from the log;
an FC layer on PIM reaches ``assert 0, "PIM does not support this layer."``
(``src/devices.py``), and the log holds attention rows only. So no GEMV row is printed.

Run::

    pip install pandas                                   # AttAcc's wrapper needs it
    git clone https://github.com/scale-snu/attacc_simulator /tmp/attacc
    python benchmarks/vs_attacc.py [--attacc /tmp/attacc] [--quick]

Without the checkout (or pandas) the npusim column is still printed and the AttAcc column says
why it is missing.
"""
from __future__ import annotations

import argparse
import importlib
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from npusim import load_arch
from npusim.engine.pim import gemv_cost, pim_device
from npusim.engine.simulate import simulate_graph
from npusim.ir import Contraction, Graph, Reduction, Role, Tensor, dtype

DEFAULT_ATTACC = Path("/tmp/attacc")

TCK = 0.769e-9
"""s: AttAcc's HBM3 command clock at 5.2 Gb/s (``src/ramulator_wrapper.py`` ``self.tCK``;
``HBM3-PIM.cpp``: ``tCK_ps = 1E6 / (rate / 4)`` = 769 ps)."""

NCCDAB = {True: 6, False: 4}
"""tCK between all-bank MACs with / without the power constraint (``HBM3-PIM.cpp`` timing
presets ``HBM3_5.2Gbps`` / ``HBM3_5.2Gbps_NPC``, column ``nCCDAB``)."""

CHANNELS = 16
"""Legacy channels per stack (``make_yaml_file``: ``channel: 16``)."""

DHEAD = 128
DBYTE = 2

SHAPES = (  # (L, nhead): rows of ramulator.out (BA, dhead 128, fp16) for both constraints
    (128, 243), (256, 243), (512, 243), (1024, 243), (2048, 243), (4096, 188))
QUICK_SHAPES = ((128, 243), (2048, 243))


def attacc_overrides(power_constraint: bool) -> dict:
    """Arch overrides that make ``h100+hbm2-pim`` one AttAcc_bank HBM3-PIM stack.

    The host (H100) only runs what npusim does not put on PIM (the softmax); its DRAM becomes
    one stack, and the pim section of the shipped ``hbm2-pim`` arch is overridden field by
    field. ``AttAcc`` below means its checkout at c600051.
    """
    n = NCCDAB[power_constraint]
    return {
        # One HBM3 stack: 1024 DQ x 5.2 Gb/s / 8 = 665.6 GB/s (HBM3-PIM.cpp rate 5200; org
        # DQ 32 per pseudo-channel x 2 pCH x 16 channels). AttAcc's config.py quotes 670.4 GB/s
        # per stack (H100's 3352 GB/s / 5) for its roofline parts, not for Ramulator.
        "dram.bandwidth": "665.6 GB/s",
        # 16 legacy 64-bit channels (make_yaml_file channel: 16): npusim's hbm3 preset is per
        # 64-bit channel, so 41.6 GB/s per channel scales its 1.5 GHz nCK timings to
        # 1.3 GHz = 1 / 0.769 ns, AttAcc's tCK.
        "dram.channels": CHANNELS,
        "dram.capacity": "16 GiB",           # config.py MEM_CAPACITY_PER_HBM
        # 64 banks per channel = 2 pCH x 2 ranks x 4 BG x 4 banks (HBM3_8Gb_2R; trace n_pch,
        # n_rank, n_bg, n_bank). npusim has no pseudo-channel or rank level: the 16
        # (pCH, rank, BG) groups become its bank groups.
        "dram.bank_groups": 16,
        "dram.banks_per_group": 4,
        "dram.row_size": "1 KiB",            # 32 columns x 32 B (HBM3_8Gb_2R Co 1<<5)
        # npusim's burst is a 64-bit channel's: both pseudo-channels' 32 B (trace
        # prefetch_size) in nBL = 2 tCK. A unit's 64-B burst is two AttAcc MACABs.
        "dram.burst": "64 B",
        "pim.device": "attacc-bank-hbm3",
        "pim.banks_per_unit": 1,             # AttAcc_bank: a GEMV unit per bank (README)
        # AttAcc's unit multiplies 16 fp16 per MACAB and, for QK^T, sums them in an adder tree
        # ("GEMV unit = adder tree mode", trace score_mac): one partial sum per row leaves the
        # bank. npusim reads out one partial sum per MAC lane, so the unit is written as one
        # lane at 16 MACs per nCCDAB: the same MACs per second, one fp16 per row read out.
        "pim.macs_per_cycle": {"fp16": 1},
        "pim.clock": f"{16 / (n * TCK)} Hz",
        # Two MACABs per 64-B burst: 2 x nCCDAB x tCK (12 tCK = 9.23 ns with the power
        # constraint, 8 tCK = 6.15 ns without).
        "pim.column_interval": f"{2 * n * TCK} s",
        # assumption: AttAcc's code gives no GEMV-buffer size; a channel's buffers hold two
        # heads' inputs at the trace's default max_L (2 x 4096 x 2 B, head 0 and head 1
        # pipelined in run_attention).
        "pim.input_buffer": "16 KiB",
        "pim.accumulators": 16,              # an MVSB moves a bank's outputs every 16 keys
        "pim.accumulator_bytes": "2 B",      # one fp16 score per key (trace: dbyte 2)
        "pim.vectors_per_pass": 1,           # one query per head (GPT-3-like MHA, gqa 1)
        "pim.all_bank_act": True,            # ACTAB: all 64 banks, nRC only (HBM3-PIM.cpp)
        "pim.mode_switch": "0 s",            # no mode-switch command in HBM3-PIM.cpp
        "pim.dual_row_buffer": False,
        "pim.ops": ["gemv", "attention", "elementwise"],
        "launch_overhead": "0 s",            # one Ramulator command stream, no launches
    }


def attacc_arch(power_constraint: bool):
    """``h100+hbm2-pim`` with :func:`attacc_overrides`."""
    return load_arch("h100+hbm2-pim", attacc_overrides(power_constraint))


def attention_graph(heads: int, length: int, dhead: int = DHEAD, dt: str = "fp16") -> Graph:
    """Decode attention of ``heads`` independent heads (heads x batch, MHA) against a KV cache
    of ``length`` tokens: QK^T, softmax, PV, as npusim's LLM builder writes them.

    >>> g = attention_graph(2, 8, 4)
    >>> [op.name for op in g.ops()], g.macs
    (['qk', 'softmax', 'pv'], 128)
    """
    d = dtype(dt)
    g = Graph(f"attention h={heads} L={length} d={dhead} {dt}")
    g.inputs += ["q", "k_cache", "v_cache"]
    g.outputs.append("ctx")
    ext = {"h": heads, "m": 1, "l": length, "d": dhead}
    g.add(Contraction.einsum("hmd,hld->hml", ext, ["q", "k_cache"], "scores", d, name="qk",
                             roles=[Role.ACTIVATION, Role.KV_CACHE]))
    scores = Tensor("scores", (heads, 1, length), d, Role.ACTIVATION)
    probs = Tensor("probs", (heads, 1, length), d, Role.ACTIVATION)
    # 5 vector ops per element: max, subtract, exp, sum, divide (npusim's ONNX Softmax lowering)
    g.add(Reduction(name="softmax", source="softmax", op_type="Softmax", inputs=(scores,),
                    outputs=(probs,), func="softmax", ops_per_element=5.0))
    g.add(Contraction.einsum("hml,hld->hmd", ext, [probs, "v_cache"], "ctx", d, name="pv",
                             roles=[Role.ACTIVATION, Role.KV_CACHE]))
    return g


@dataclass(frozen=True)
class NpusimTime:
    total: float        # s, the three ops
    pim: float          # s, the ops npusim placed on PIM
    host: float         # s, the ops on the host (the softmax)
    placement: str      # e.g. "qk:pim softmax:npu pv:pim"
    stream: float       # s, column commands of the PIM ops (kernel stats, busiest channel)
    overhead: dict      # s by part: row switches, refresh, broadcast, read-out


def npusim_attention(arch, heads: int, length: int) -> NpusimTime:
    """Run :func:`attention_graph` with every eligible op on PIM; split the PIM kernel's time
    into its parts with :func:`~npusim.engine.pim.gemv_cost` on the same shapes (QK^T: ``L``
    rows of ``dhead``; PV: ``dhead`` rows of ``L``; one matrix per head), checked against the
    records' kernel time."""
    r = simulate_graph(attention_graph(heads, length), arch, pim="all")
    pim = sum(o.latency_s for o in r.ops if o.device == "pim")
    host = sum(o.latency_s for o in r.ops if o.device != "pim")
    dev = pim_device(arch)
    parts = {"row": 0.0, "refresh": 0.0, "broadcast": 0.0, "readout": 0.0, "host add": 0.0}
    stream = 0.0
    shapes = {"qk": (length, DHEAD), "pv": (DHEAD, length)}
    for o in r.ops:
        if o.device != "pim":
            continue
        rows, k = shapes[o.name]
        c = gemv_cost(dev, rows, k, "fp16", "fp16", 1, heads, kind="attention")
        if not math.isclose(c.kernel_s, o.mapping["pim_kernel_s"], rel_tol=1e-9):
            raise RuntimeError(f"{o.name}: gemv_cost {c.kernel_s} s differs from the record's "
                               f"kernel time {o.mapping['pim_kernel_s']} s: the engine maps "
                               f"attention differently from this script's assumption")
        stream += c.stats["stream_s"]
        for key in ("row", "refresh", "broadcast", "readout"):
            parts[key] += c.stats[f"{key}_s"]
        # the host adds the partial sums the units read out (pim_kernel_s excludes it)
        parts["host add"] += o.mapping.get("host_reduce_s", 0.0)
    return NpusimTime(total=r.latency_s, pim=pim, host=host,
                      placement=" ".join(f"{o.name}:{o.device}" for o in r.ops),
                      stream=stream, overhead=parts)


# ---------------------------------------------------------------------------- AttAcc side
class AttAccLog:
    """AttAcc's own ``Ramulator.output`` on its committed ``ramulator.out``, from a checkout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.error = ""
        self._ram = None
        wrapper = self.root / "src" / "ramulator_wrapper.py"
        log = self.root / "ramulator.out"
        if not wrapper.is_file() or not log.is_file():
            self.error = (f"no AttAcc checkout at {self.root} (need src/ramulator_wrapper.py "
                          f"and ramulator.out): git clone "
                          f"https://github.com/scale-snu/attacc_simulator {self.root}")
            return
        try:
            importlib.import_module("pandas")
        except ImportError:
            self.error = "AttAcc's wrapper needs pandas: pip install pandas"
            return
        sys.path.insert(0, str(self.root))
        try:
            self._wrapper = importlib.import_module("src.ramulator_wrapper")
            self._model = importlib.import_module("src.model")
            self._type = importlib.import_module("src.type")
        finally:
            sys.path.remove(str(self.root))
        self._log = str(log)

    @property
    def ok(self) -> bool:
        return not self.error

    def row(self, length: int, nhead: int, power_constraint: bool):
        """The log row (a pandas Series) or None."""
        df = self._ramulator(nhead).df
        hit = df[(df["L"] == length) & (df["nhead"] == nhead) & (df["dhead"] == DHEAD)
                 & (df["dbyte"] == DBYTE) & (df["pim_type"] == "BA")
                 & (df["power_constraint"] == power_constraint)]
        return None if hit.empty else hit.iloc[0]

    def seconds(self, length: int, nhead: int, power_constraint: bool) -> float:
        """AttAcc's attention time on one stack, through its own wrapper (one stack:
        ``num_hbm=1``, so ``nhead`` heads per stack); only for rows in the log (a missing row
        would make the wrapper try to run Ramulator)."""
        t = self._type
        layer = self._model.Layer("gen", "score", t.LayerType.MATMUL, False,
                                  t.DataType.W16A16, 1, length, DHEAD, nhead)
        secs, _traffic = self._ramulator(nhead).output(t.PIMType.BA, layer, power_constraint)
        return float(secs)

    def _ramulator(self, nhead: int):
        if self._ram is None:
            # ramulator_dir points nowhere: the wrapper never runs the (unbuilt) Ramulator.
            self._ram = self._wrapper.Ramulator({"num_heads": nhead, "dhead": DHEAD},
                                                str(self.root / "no-ramulator-build"),
                                                self._log, num_hbm=1)
        return self._ram


# ---------------------------------------------------------------------------- main
def _us(x: float) -> str:
    return f"{x * 1e6:9.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attacc", type=Path, default=DEFAULT_ATTACC,
                    help="AttAcc simulator checkout (default /tmp/attacc)")
    ap.add_argument("--quick", action="store_true", help="two shapes, power constraint on")
    a = ap.parse_args(argv)
    shapes = QUICK_SHAPES if a.quick else SHAPES
    constraints = (True,) if a.quick else (True, False)
    log = AttAccLog(a.attacc)
    if not log.ok:
        print(f"AttAcc: {log.error}; printing npusim only")
    print("AttAcc_bank (one HBM3-PIM stack, Ramulator log) vs npusim (h100+hbm2-pim with "
          "AttAcc overrides), decode attention, dhead 128, fp16")
    print("heads = attention heads x batch per stack; AttAcc MAC-bound = its MACAB count / 16 "
          "channels x nCCDAB x tCK; npusim PIM = QK^T + PV on the units, host = softmax; "
          "stream .. rdout: the PIM time's parts (us)")
    head = (f"{'PC':>3} {'L':>5} {'heads':>5} | {'AttAcc us':>9} {'MAC-bnd':>9} | "
            f"{'npusim us':>9} {'PIM':>9} {'host':>9} {'stream':>9} {'rows':>8} {'refr':>8} "
            f"{'bcast':>8} {'rdout':>8} | {'ratio':>6} {'PIM/Att':>7} {'hidden':>7}")
    print(head)
    print("-" * len(head))
    ratios = {True: [], False: []}
    pim_ratios = {True: [], False: []}
    hidden_ratios = {True: [], False: []}
    for pc in constraints:
        arch = attacc_arch(pc)
        for length, nhead in shapes:
            n = npusim_attention(arch, nhead, length)
            att = mac_bound = math.nan
            if log.ok:
                row = log.row(length, nhead, pc)
                if row is not None:
                    att = log.seconds(length, nhead, pc)
                    mac_bound = int(row["mac"]) / CHANNELS * NCCDAB[pc] * TCK
            o = n.overhead
            ratio = n.total / att if att == att else math.nan
            pratio = n.pim / att if att == att else math.nan
            bus = o["broadcast"] + o["readout"]
            hratio = (n.pim - bus) / att if att == att else math.nan
            if ratio == ratio:
                ratios[pc].append(ratio)
                pim_ratios[pc].append(pratio)
                hidden_ratios[pc].append(hratio)
            print(f"{'on' if pc else 'off':>3} {length:5d} {nhead:5d} | "
                  f"{_us(att)} {_us(mac_bound)} | {_us(n.total)} {_us(n.pim)} {_us(n.host)} "
                  f"{_us(n.stream)} {o['row'] * 1e6:8.2f} {o['refresh'] * 1e6:8.2f} "
                  f"{o['broadcast'] * 1e6:8.2f} {o['readout'] * 1e6:8.2f} | "
                  f"{ratio:6.3f} {pratio:7.3f} {hratio:7.3f}")
    print()
    dev = pim_device(attacc_arch(constraints[0]))
    print(f"npusim device: {dev.units} units, internal {dev.internal_bandwidth / 1e12:.2f} TB/s "
          f"= {dev.ratio:.1f}x external {dev.external_bandwidth / 1e9:.1f} GB/s "
          f"(power constraint {'on' if constraints[0] else 'off'})")
    for pc in constraints:
        rs, ps, hs = ratios[pc], pim_ratios[pc], hidden_ratios[pc]
        if rs:
            print(f"power constraint {'on ' if pc else 'off'}: npusim/AttAcc median "
                  f"{statistics.median(rs):.3f} (range {min(rs):.3f}-{max(rs):.3f}); "
                  f"PIM ops only {statistics.median(ps):.3f} ({min(ps):.3f}-{max(ps):.3f}); "
                  f"bus hidden {statistics.median(hs):.3f} ({min(hs):.3f}-{max(hs):.3f})")
    print("hidden = npusim's PIM time less its broadcast and read-out, which its kernel runs "
          "between column commands; AttAcc issues WRGB/MVGB/MVSB beside MACABs on a separate "
          "data path (HBM3-PIM.cpp 'Data Movement' timings) and pipelines two heads")
    print("GEMV: none; AttAcc's PIM times attention only (src/devices.py PIM: FC layers "
          "assert 'PIM does not support this layer'; ramulator.out holds attention rows only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
