"""``npusim`` command line: a thin layer over the Python API.

Every error caused by the user's input prints one paragraph and exits with status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from .errors import NpusimError, OutputError

EXIT_USAGE = 2


def _dims(pairs: list[str]) -> dict[str, int]:
    from .frontend.llm import MAX_DIM
    out: dict[str, int] = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name.strip():
            raise NpusimError(f"--dim {p!r}: expected NAME=VALUE, e.g. --dim batch=8")
        try:
            v = int(value)
        except ValueError:
            raise NpusimError(f"--dim {p!r}: {value!r} is not an integer") from None
        if v < 1:
            raise NpusimError(f"--dim {p!r}: a dimension must be >= 1")
        if v > MAX_DIM:
            raise NpusimError(f"--dim {p!r}: {v} is past the limit of {MAX_DIM:,} (an "
                              f"assumption: no axis of a simulated workload is that long)")
        out[name.strip()] = v
    return out


def _model_args(p: argparse.ArgumentParser) -> None:
    # The LLM step options default to None, so that "not given" is known: an ONNX file
    # refuses them (its dims are bound with --dim) except --batch, which runs it at that
    # batch; a built-in LLM fills in the defaults.
    p.add_argument("model", help="an .onnx file, or a built-in LLM name (see `npusim models`)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                   help="bind a symbolic ONNX dimension (repeatable)")
    p.add_argument("--phase", choices=("prefill", "decode"), default=None,
                   help="LLM step to build (built-in LLMs only; default prefill)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size: of a built-in LLM (default 1), or of an ONNX file whose "
                        "inputs share a leading batch axis, fixed or symbolic (default: the "
                        "file's)")
    p.add_argument("--seq", type=int, default=None, help="LLM prompt tokens (prefill); default 128")
    p.add_argument("--kv-len", type=int, default=None, help="LLM cached tokens (decode); default 128")
    p.add_argument("--dtype", "--precision", dest="dtype", default=None, metavar="PRECISION",
                   help="precision, as kperf's --precision: bf16, fp16, fp32, fp8, int8, int4, "
                        "mxfp4 (default: bf16 for an LLM, the file's own dtypes for ONNX)")
    p.add_argument("--on-unsupported", choices=("error", "memory"), default="error",
                   help="an op with no lowering is an error (default) or costed as memory traffic")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")


def _model_kw(args) -> dict:
    """The model options of ``run``/``inspect`` as load_model's keyword arguments."""
    return dict(dims=_dims(args.dim), phase=args.phase, batch=args.batch, seq=args.seq,
                kv_len=args.kv_len, dtype=args.dtype, on_unsupported=args.on_unsupported)


def _load(args):
    from .frontend.llm import load_model
    return load_model(args.model, **_model_kw(args))


@contextlib.contextmanager
def _output(flag: str):
    """Name the option that chose the path in any write error raised inside."""
    try:
        yield
    except OutputError as e:
        raise OutputError(f"{flag}: {e}") from None


def _write_json(path: Path | None, data: dict) -> None:
    if path is None:
        return
    from .files import write_text
    with _output("--json"):
        write_text(path, json.dumps(data, indent=1) + "\n", "JSON")


SNN_ONLY = ("rates", "rate", "calibrate", "neuron", "max_pool", "mapper", "cost_set", "place",
            "objective")
"""Options of ``run`` that only a spiking-core or hybrid target takes (their defaults: None)."""


def _target(arch: str) -> tuple[str, str, str | None]:
    """``(kind, npu, device)``: ``snn`` (a spiking-core device alone), ``hybrid`` (``NPU+DEVICE``)
    or ``npu`` (an arch, a PIM composition)."""
    from .arch.snn_device import is_snn_device
    head, sep, tail = str(arch).rpartition("+")
    if sep and (is_snn_device(tail) or tail == "same"):
        return "hybrid", head, tail
    if is_snn_device(arch):
        return "snn", "", arch
    return "npu", arch, None


def _snn_kw(args) -> dict:
    """The spiking options of ``run`` as load_snn_graph's keyword arguments."""
    import numpy as np
    calibrate = args.calibrate
    if calibrate == "random":
        calibrate = True
    elif calibrate is not None:
        from .files import read_npy
        calibrate = read_npy(calibrate, "--calibrate")
    return dict(rates=args.rates, default_rate=args.rate, calibrate=calibrate,
                neuron=args.neuron or "if", max_pool=args.max_pool or "error",
                dims=_dims(args.dim))


def _refuse_llm_options(args, what: str) -> None:
    given = [f"--{k.replace('_', '-')}" for k in ("phase", "batch", "seq", "kv_len", "dtype",
                                                  "parallel")
             if getattr(args, k, None) is not None]
    if given:
        raise NpusimError(f"{', '.join(given)}: not taken by a spiking run on {what}; an SNN "
                          f"is sized by its file (bind symbolic dims with --dim) and --timesteps")


def cmd_run(args) -> int:
    kind, npu, device = _target(args.arch)
    if device == "same":
        raise NpusimError(f"--arch {args.arch}: 'same' (spiking cores from the NPU's own energy "
                          f"table) is for npusim breakeven; run on a device from npusim archs")
    if kind == "snn":
        return _run_snn(args, device)
    if kind == "hybrid":
        return _run_hybrid(args, npu, device)
    given = [f"--{k.replace('_', '-')}" for k in SNN_ONLY if getattr(args, k) is not None]
    if given:
        raise NpusimError(f"{', '.join(given)}: only for a spiking-core --arch (e.g. --arch "
                          f"loihi) or a hybrid (e.g. --arch edu+snn-edu); {args.arch} is an NPU")
    from .api import is_spiking, load_snn_graph, simulate
    from .report.terminal import print_run
    from .arch import load_arch
    _check_host(args.host)
    arch = load_arch(args.arch, args.set)
    if is_spiking(args.model):
        # a NIR network on an NPU: the same graph, its Neurons as T state updates per element
        _refuse_llm_options(args, args.arch)
        graph = load_snn_graph(args.model, args.timesteps, dims=_dims(args.dim))
        result = simulate(graph, arch, engine=args.engine,
                          check_capacity=not args.ignore_capacity, pim=args.pim)
    else:
        if args.timesteps is not None:
            raise NpusimError(f"--timesteps: {args.arch} is an NPU and {args.model} an ANN; "
                              f"give a spiking-core --arch (e.g. loihi) to run it as an SNN")
        result = simulate(args.model, arch, engine=args.engine,
                          check_capacity=not args.ignore_capacity, pim=args.pim,
                          parallel=args.parallel, **_model_kw(args))
    result = _with_system(result, arch, args.host)
    print_run(result, top=args.top)
    _print_layout(result.meta)
    _print_system(result.meta.get("host"), args.host, arch.name)
    _export(result, arch, args)
    return 0


def _with_system(result, arch, spec: str):
    """The run with its system power in ``meta["host"]`` (the totals' ``host_power_w`` and
    ``system_power_w``): its chips (one, or the --parallel layout's) busy the whole run, in the
    servers of the host."""
    import dataclasses
    from .arch.host import card_idle_w, resolve_host
    host = resolve_host(spec, arch.name)
    if host is None:
        return result
    meta = result.meta
    chips, card = 1, result.avg_power_w
    if meta.get("system_chips") and meta.get("system_step_s"):   # --parallel: the whole step
        chips = int(meta["system_chips"])
        card = meta["system_step_j"] / meta["system_step_s"] / chips
    p = host.system(card, chips, card_idle_w(arch), 1.0)
    system = {"host": host.name, "chips": chips, "card_power_w": card,
              "host_power_w": p.host_w, "system_power_w": p.system_w,
              "psu_efficiency": p.efficiency, "servers": p.servers}
    return dataclasses.replace(result, meta={**meta, "host": system})


def _print_system(system: dict | None, spec: str, arch_name: str) -> None:
    for line in _host_lines(spec, [arch_name]):
        if system is None:
            print(line)
            continue
        print(f"  system power {system['system_power_w']:,.1f} W at the wall: card "
              f"{system['card_power_w']:,.1f} W x {system['chips']}, host and idle slots "
              f"{system['host_power_w']:,.1f} W")
        print(f"  {line}")


def _print_layout(meta: dict) -> None:
    """The multi-chip layout of an LLM run, and its step on the whole system when given."""
    if "parallel" not in meta:
        return
    line = f"  parallel {meta['parallel']}: {meta['parallel_why']}"
    if "system_step_s" in meta:
        line += (f"; step on {meta['system_chips']} chips {meta['system_step_s'] * 1e3:.4g} ms, "
                 f"{meta['system_step_j']:.4g} J (serving cost model)")
    print(line)


def _snn_checks(args, what: str) -> None:
    _refuse_llm_options(args, what)
    if args.set:
        raise NpusimError(f"--set: {what} is a spiking-core device; --set applies to NPU arch "
                          f"fields. Copy the device's YAML (npusim/archs/snn/), edit it and pass "
                          f"its path to --arch")
    if args.engine != "tile" or args.pim != "auto" or args.ignore_capacity:
        raise NpusimError(f"--engine, --pim and --ignore-capacity are NPU options; {what} "
                          f"is a spiking-core device")


def _run_snn(args, device: str) -> int:
    from .api import simulate_snn
    from .report import snn as rs
    _snn_checks(args, device)
    if args.place is not None or args.objective is not None:
        raise NpusimError(f"--place/--objective: a hybrid option; give --arch NPU+{device}")
    run = simulate_snn(args.model, device, timesteps=args.timesteps,
                       mapper=args.mapper or "greedy", cost_set=args.cost_set, **_snn_kw(args))
    rs.print_snn(run.report)
    from .report.terminal import console
    for w in run.warnings:
        console().print(f"[yellow]warning:[/yellow] {w}")
    if args.json:
        with _output("--json"):
            rs.write_snn_json(run.report, args.json)
    if args.csv:
        with _output("--csv"):
            rs.write_snn_csv(run.report, args.csv)
    if args.trace:
        with _output("--trace"):
            rs.write_snn_trace(run.report, args.trace)
    if args.plot:
        from .report.snn_plots import plot_snn
        with _output("--plot"):
            for path in plot_snn(run.report, args.plot):
                print(f"wrote {path}")
    return 0


def _run_hybrid(args, npu: str, device: str) -> int:
    from .api import simulate_hybrid
    from .report.terminal import print_hybrid
    _snn_checks(args, f"{npu}+{device}")
    if args.mapper not in (None, "greedy") or args.cost_set is not None:
        raise NpusimError("--mapper and --cost-set: spiking-core runs only (not hybrids)")
    placement = simulate_hybrid(args.model, npu, device, timesteps=args.timesteps,
                                place=args.place or "auto",
                                objective=args.objective or "energy", **_snn_kw(args))
    print_hybrid(placement)
    _write_json(args.json, placement.as_dict())
    if args.csv or args.trace or args.plot:
        raise NpusimError("--csv, --trace and --plot: not for hybrids yet; use --json")
    return 0


def _export(result, arch, args) -> None:
    from .report import export, plots, trace
    if args.json:
        with _output("--json"):
            export.write_json(result, args.json, arch=arch)
    if args.csv:
        with _output("--csv"):
            export.write_csv(result, args.csv)
    if args.trace:
        with _output("--trace"):
            trace.write_trace(result, args.trace)
    if args.plot:
        with _output("--plot"):
            for path in plots.plot_all(result, args.plot):
                print(f"wrote {path}")


def _gemv_shape(text: str) -> tuple[int, int]:
    rows, sep, k = text.lower().partition("x")
    try:
        shape = int(rows), int(k)
    except ValueError:
        shape = None
    if not sep or shape is None or min(shape) < 1 or max(shape) > 1 << 20:
        raise NpusimError(f"--gemv {text!r}: expected ROWSxK with each from 1 to 1048576, "
                          f"e.g. --gemv 4096x4096")
    return shape


def cmd_pim(args) -> int:
    from .arch import load_arch
    from .engine.pim import pim_summary, shipped_pim_archs
    from .report.terminal import print_pim
    rows, k = _gemv_shape(args.gemv)
    names = _listed("--arch", args.arch, None) or shipped_pim_archs()
    summaries = []
    for name in names:
        arch = load_arch(name, args.set)
        if arch.pim is None:
            raise NpusimError(f"--arch {name}: has no pim section (no PIM units); give an arch "
                              f"with one ({', '.join(shipped_pim_archs())}) or compose one, "
                              f"e.g. {name}+hbm2-pim")
        summaries.append(pim_summary(arch, rows, k))
    print_pim(summaries)
    _write_json(args.json, {"gemv": [rows, k], "archs": summaries})
    return 0


def cmd_breakeven(args) -> int:
    from .api import load_snn_graph
    from .arch import load_arch
    from .arch.snn_device import load_snn_device
    from .engine import hybrid as eh
    from .engine.snn_graph import to_network
    from .report.terminal import print_breakeven
    kind, npu, device = _target(args.arch)
    if kind != "hybrid":
        raise NpusimError(f"--arch {args.arch}: give an NPU and a spiking-core device as "
                          f"NPU+DEVICE, e.g. edu+snn-edu or rngd+loihi ('same' as the device: "
                          f"spiking cores made from the NPU's own energy table)")
    arch = load_arch(npu)
    if device == "same":
        dev = eh.same_silicon_device(arch)
    else:
        dev = load_snn_device(device)
    graph = load_snn_graph(args.model, args.timesteps, default_rate=0.0, dims=_dims(args.dim),
                           max_pool=args.max_pool or "error")
    net, _ = to_network(graph, max_pool=args.max_pool or "error")
    curve = eh.break_even(eh.System(arch, dev), net, int(graph.meta["timesteps"]))
    data = curve.as_dict()
    print_breakeven(data)
    _write_json(args.json, data)
    if args.plot:
        from .report.snn_plots import plot_breakeven
        from .files import make_folder
        with _output("--plot"):
            folder = make_folder(args.plot, "the plot folder")
            print(f"wrote {plot_breakeven(data, folder / 'breakeven.png')}")
    return 0


def cmd_inspect(args) -> int:
    from .report.terminal import inspect_dict, print_inspect
    info = inspect_dict(_load(args))
    print_inspect(info)
    _write_json(args.json, info)
    return 0


def cmd_archs(args) -> int:
    from .arch import list_archs, list_snn_archs
    from .report.terminal import print_archs
    rows = [(name, f"{desc}; {_area_text(name)}") for name, desc in list_archs()]
    print_archs(rows, snn=list_snn_archs())
    return 0


def _area_text(name: str) -> str:
    """The arch's modelled die area (npusim.energy.area), or why it has none."""
    import math
    from .arch import load_arch
    from .energy.area import chip_area
    try:
        a = chip_area(load_arch(name))
    except NpusimError as e:
        return f"area unknown: {str(e)[:60]}"
    if math.isnan(a.total_mm2):
        return "area unknown: no area table for its node"
    return f"area {a.total_mm2:,.0f} mm^2 modelled, {a.node}"


def cmd_models(args) -> int:
    from .frontend.llm import builtin_models
    for name in builtin_models():
        print(name)
    return 0


def _split(values: list[str]) -> list[str]:
    """Values given space- or comma-separated (``--users 1 5 25`` or ``--users 1,5,25``)."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def _listed(flag: str, values: list[str] | None, default=None):
    """A list option's values: ``default`` when the flag is absent; given but empty (``''``)
    is an error, never a silent default."""
    if values is None:
        return default
    out = _split(values)
    if not out:
        raise NpusimError(f"{flag} {' '.join(map(repr, values))}: the list is empty; give at "
                          f"least one value, or leave {flag} out for the default")
    return out


HOST_HELP = ("the server around the chips, for system power at the wall (system_power_w): "
             "a host preset (npusim/archs/hosts: dgx-h100, h200-maxq, dgx-a100, xe9680-h100, "
             "xe8545-a100, gx2570m6-a100, generic-2s), a host YAML path, none (card power "
             "only) or auto (default: the arch's usual host, e.g. dgx-h100 for h100; none for "
             "an arch without one)")


STACK_HELP = ("the serving engine's host time that the chips wait for after every step: none "
              "(default: host work overlapped with the chips, as in today's engines), a stack "
              "preset (npusim/archs/stacks: vllm-0.5) or a stack YAML path")


def _check_stack(spec: str) -> None:
    """Load ``--stack`` before the run, so a bad file fails first and names the option."""
    from .workloads.stack import load_stack
    with _flag("--stack"):
        load_stack(spec)


def _check_host(spec: str) -> None:
    """Load a named host before any simulation, so a bad --host fails first and alone."""
    from .arch.host import AUTO, NONE, load_host
    if spec.strip().lower() not in (AUTO, NONE):
        with _flag("--host"):
            load_host(spec)


@contextlib.contextmanager
def _flag(flag: str):
    """Name the option whose value an error came from."""
    try:
        yield
    except NpusimError as e:
        raise type(e)(f"{flag}: {e}") from None


def _host_lines(spec: str, archs) -> list[str]:
    """What system power means in this run: each arch's host (nothing for an arch without a
    usual host under the default --host auto: its system power is NaN, its card power stands)."""
    from .arch.host import AUTO, NONE, resolve_host
    out = []
    for name in archs:
        host = resolve_host(spec, name)
        if host is None:        # said only when asked: most NPU runs have no usual host
            if spec.strip().lower() == NONE:
                out.append(f"{name}: system power not modelled (--host none)")
            continue
        how = ("the arch's usual host; --host none leaves it out"
               if spec.strip().lower() == AUTO else "--host")
        kind = ", generic: every value assumed" if host.generic else ""
        out.append(f"{name}: system power at the wall with host {host.name} ({how}{kind}): "
                   f"{host.description}")
    return out


def cmd_kperf(args) -> int:
    from .report.kperf import print_kperf
    from .workloads import kperf as kp
    from .workloads.serving import ServingConfig
    _check_host(args.host)
    _check_stack(args.stack)
    result = kp.kperf(
        args.arch, args.model, chips=args.chips, parallel=args.parallel,
        config=ServingConfig(host=args.host, stack=args.stack),
        precisions=_listed("--precision", args.precision, kp.DEFAULT_PRECISIONS),
        input_lens=_listed("--input-lens", args.input_lens, kp.DEFAULT_INPUT_LENS),
        output_lens=_listed("--output-lens", args.output_lens, kp.DEFAULT_OUTPUT_LENS),
        users=_listed("--users", args.users, kp.DEFAULT_USERS),
        vs=_listed("--vs", args.vs, ()), overrides=args.set,
        progress=not args.no_progress and sys.stderr.isatty(),
        jobs=args.jobs if args.jobs is not None else os.environ.get(kp.JOBS_ENV) or "auto")
    print_kperf(result, scenarios=not args.summary_only)
    for line in _host_lines(args.host, [a.get("name", k) for k, a in result.archs.items()]):
        print(line)
    with _output("--out"):
        paths = result.write(args.out)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _kperf_parser(sub) -> None:
    kp = sub.add_parser("kperf", help="K-Perf matrix: TTFT, TPOT, prefill/decode tok/s, power "
                                      "over lengths, users and precisions; xlsx, csv, PNGs")
    kp.add_argument("--arch", default="rngd", help="shipped arch name or YAML path (default rngd)")
    kp.add_argument("--model", required=True, help="built-in LLM name (see `npusim models`)")
    kp.add_argument("--chips", default=None, metavar="N|auto|per-precision",
                    help="chips per system. auto (default): one count per arch for every "
                         "precision, the vendor's documented deployment of the model, else "
                         "the fewest (up to one 8-chip server) whose KV cache holds the "
                         "largest users x (input + output) tokens; the output says why. "
                         "per-precision: each precision the fewest that hold its weights "
                         "and 4096 KV tokens. N: N chips everywhere")
    kp.add_argument("--parallel", default=None, metavar="tp=N,pp=M",
                    help="multi-chip layout, tensor x pipeline parallel; sets the chips to "
                         "N x M unless --chips is given (default: on PCIe-linked cards the "
                         "fastest that fits, else tensor parallelism)")
    kp.add_argument("--precision", nargs="+", action="extend", default=None, metavar="P",
                    help="precisions, e.g. bf16,fp8 (default bf16)")
    kp.add_argument("--input-lens", nargs="+", action="extend", default=None, metavar="N",
                    help="input lengths in tokens (default 128,2048)")
    kp.add_argument("--output-lens", nargs="+", action="extend", default=None, metavar="N",
                    help="output lengths in tokens (default 128,2048)")
    kp.add_argument("--users", nargs="+", action="extend", default=None, metavar="N",
                    help="concurrent users (default 1,5,25,50,100,150,200,250)")
    kp.add_argument("--vs", nargs="+", action="extend", default=None, metavar="ARCH",
                    help="archs to compare side by side, with ratios to --arch")
    kp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a field of --arch, e.g. --set dram.bandwidth=3TB/s")
    kp.add_argument("--host", default="auto", metavar="NAME|FILE|auto|none", help=HOST_HELP)
    kp.add_argument("--stack", default="none", metavar="NAME|FILE|none", help=STACK_HELP)
    kp.add_argument("--out", type=Path, default=Path("kperf"), metavar="DIR",
                    help="folder for kperf.xlsx, kperf.csv and the PNGs (default ./kperf)")
    kp.add_argument("--summary-only", action="store_true",
                    help="print the summary table only (the files hold every scenario)")
    kp.add_argument("--no-progress", action="store_true", help="no progress bar")
    kp.add_argument("--jobs", default=None, metavar="N|auto",
                    help="worker processes for the scenarios (default $NPUSIM_JOBS, else "
                         "auto: one per core available); the results do not depend on it")
    kp.set_defaults(func=cmd_kperf)


SWEEP_VERBS = ("report", "export")


def cmd_sweep(args) -> int:
    """``npusim sweep SPEC --out DIR``, ``npusim sweep report DIR``, ``npusim sweep export DIR``."""
    first, rest = args.target[0], args.target[1:]
    if first in SWEEP_VERBS:
        if len(rest) != 1:
            raise NpusimError(f"npusim sweep {first} takes one folder (the --out of a sweep), "
                              f"got {len(rest)}: e.g. npusim sweep {first} sweep-out")
        return _sweep_report(rest[0], args.out) if first == "report" else _sweep_export(rest[0], args)
    if rest:
        raise NpusimError(f"npusim sweep takes one spec file, got {len(args.target)}: "
                          f"{' '.join(args.target)}; e.g. npusim sweep sweeps/rngd-decode.yaml "
                          f"--out DIR (or npusim sweep report DIR)")
    from .dse.run import run_sweep
    from .dse.spec import load_spec
    spec = load_spec(first)  # a bad spec fails before any worker starts
    out = args.out if args.out is not None else Path("sweep-" + _safe_name(spec.name))
    with _output("--out"):
        summary = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler,
                            progress=not args.no_progress and sys.stderr.isatty())
    for line in summary.lines():
        print(line)
    if summary.interrupted:
        return 130
    if not args.no_report:
        _sweep_report(str(out), None, quiet_missing=True)
    return 0


def _safe_name(name: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "sweep"


def _sweep_report(folder: str, out_dir, quiet_missing: bool = False) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        message = ("the sweep's plots need matplotlib: pip install \"npusim[reports]\"; the "
                   "store is complete, so `npusim sweep report DIR` draws them later")
        if quiet_missing:
            print(message)
            return 0
        raise NpusimError(message) from None
    from .report.sweep import write_report
    with _output("--out"):
        paths = write_report(folder, out_dir)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _sweep_export(folder: str, args) -> int:
    from .dse.store import export
    fmt = args.format
    out = args.out if args.out is not None else Path(folder) / f"sweep.{fmt}"
    with _output("--out"):
        path = export(folder, out, fmt=fmt)
    print(f"wrote {path}")
    return 0


def _sweep_parser(sub) -> None:
    sw = sub.add_parser(
        "sweep", help="design-space sweep from a YAML spec into a resumable SQLite store, "
                      "with Pareto, parallel-coordinates and tornado plots; `sweep report DIR` "
                      "redraws them, `sweep export DIR` writes CSV or Parquet",
        description="npusim sweep SPEC.yaml --out DIR | npusim sweep report DIR | "
                    "npusim sweep export DIR --format csv|parquet")
    sw.add_argument("target", nargs="+", metavar="SPEC|report DIR|export DIR",
                    help="a sweep spec (see sweeps/), or `report DIR` / `export DIR`")
    sw.add_argument("--out", type=Path, default=None, metavar="DIR|FILE",
                    help="sweep: folder for sweep.sqlite and the plots (default "
                         "./sweep-<name>); report: folder for the plots (default DIR); "
                         "export: the file (default DIR/sweep.<format>)")
    sw.add_argument("--workers", type=int, default=None, metavar="N",
                    help="local worker processes (default one per core; 1 runs in this "
                         "process)")
    sw.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                    help="run on an existing Dask distributed cluster (its scheduler's "
                         "address) instead of local processes")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
    sw.add_argument("--no-report", action="store_true",
                    help="store only; draw the plots later with `npusim sweep report DIR`")
    sw.add_argument("--format", choices=("csv", "parquet"), default="csv",
                    help="export: the file format (Parquet needs npusim[sweep])")
    sw.set_defaults(func=cmd_sweep)


def cmd_validate(args) -> int:
    with _output("--out"):  # the report, the PNGs and --fit's arch copies all go to --out
        return _validate(args)


def _validate(args) -> int:
    import contextlib
    show = not args.no_progress and sys.stderr.isatty()
    only = ({"--data": args.data, "--rows": args.rows, "--fit": args.fit,
             "--fit-into-package": args.fit_into_package} if args.kperf is not None else
            {"--sheet": args.sheet, "--model": args.model, "--chips": args.chips,
             "--set": args.set, "--arch": args.arch if not args.fit else None})
    unused = [flag for flag, v in only.items() if v not in (None, False, [])]
    if unused:
        one = len(unused) == 1
        flags, them = " and ".join(unused), "it" if one else "them"
        if args.kperf is not None:
            raise NpusimError(f"validate --kperf: {flags} {'does' if one else 'do'} nothing on "
                              f"a K-Perf sheet (only on the measured CSV); drop {them}")
        raise NpusimError(f"validate: {flags} {'goes' if one else 'go'} with --kperf SHEET"
                          f"{' (or --fit)' if unused == ['--arch'] else ''}; add --kperf or drop "
                          f"{them}")
    if args.kperf is not None:
        if not args.arch or not args.model:
            raise NpusimError("validate --kperf needs --arch and --model, e.g. npusim validate "
                              "--kperf sheet.xlsx --arch rngd --model llama-3.1-8b")
        from .validate.kperf_sheet import validate_kperf
        out = args.out or Path("validation-kperf")
        v = validate_kperf(args.kperf, args.arch, args.model, chips=args.chips, out=out,
                           sheet_name=args.sheet, overrides=args.set or None, progress=show)
        for s in v.summary():
            mape = "n/a" if s["mape"] is None else f"{100 * s['mape']:.1f}%"
            print(f"{s['metric']:>24}  cells {s['cells']:3d}  MAPE {mape}")
        print(f"report: {out / 'validation_report.md'}")
        return 0
    from .validate import fit, validate
    from .validate.core import DEFAULT_OUT
    out = args.out if args.out is not None else DEFAULT_OUT
    if args.fit_into_package and not args.fit:
        raise NpusimError("--fit-into-package goes with --fit FIELD=ROW,...; drop it or add "
                          "the fit")
    archs: dict[str, str] = {}
    fitted = fit(args.data, args.fit, arch=args.arch, out=out,
                 into_package=args.fit_into_package) if args.fit else {}
    for field, r in fitted.items():
        use = ("" if r["arch_file"] == r["spec"] else
               f" (a calibrated copy of {r['spec']}: use it with --arch {r['arch_file']}; the "
               f"report below runs {r['spec']} rows on it)")
        print(f"{r['arch']}: {field} = {r['value']} on rows {','.join(r['rows'])} "
              f"(mean |log err| {r['error_before']:.4f} -> {r['error_after']:.4f}); "
              f"wrote {r['path']}{use}")
        if r["arch_file"] != r["spec"]:
            archs[r["spec"]] = r["arch_file"]
    with contextlib.ExitStack() as stack:
        bar: list = []       # started at the first row, so a bad data file prints one line

        def progress(label: str, done: int, total: int) -> None:
            if not bar:
                from rich.console import Console
                from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                                           TextColumn, TimeElapsedColumn)
                p = stack.enter_context(Progress(
                    TextColumn("validate"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.description}"),
                    console=Console(stderr=True)))
                bar.extend((p, p.add_task("", total=total)))
            bar[0].update(bar[1], completed=done, total=total, description=label)
        res = validate(args.data, out=out, rows=_split(args.rows) or None,
                       microchecks=not args.no_microchecks, progress=progress if show else None,
                       archs=archs)
    print(res.summary_markdown)
    for path in res.files:
        print(f"wrote {path}")
    return 0


def _validate_parser(sub) -> None:
    va = sub.add_parser("validate", help="simulate measured rows (or a measured K-Perf sheet); "
                                         "per-row error, MAPE per arch x metric, REPORT.md")
    va.add_argument("--data", type=Path, default=None,
                    help="measured CSV, UTF-8 (default: the shipped "
                         "npusim/validate/data/measured.csv)")
    va.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="folder for REPORT.md, the PNG and --fit's calibrated arch copies, "
                         "created if missing (default ./validation-report; with --kperf "
                         "./validation-kperf); `--out validation` in a checkout regenerates the "
                         "committed validation/REPORT.md")
    va.add_argument("--rows", nargs="+", action="extend", default=[], metavar="ID",
                    help="only these row ids")
    va.add_argument("--fit", action="append", default=[], metavar="FIELD=ROW,ROW",
                    help="fit an arch field on these rows, e.g. "
                         "cores.engine.efficiency.fp8_e4m3=N1; a shipped arch gets a calibrated "
                         "copy in DIR/archs/ (use it with --arch), a YAML arch a "
                         "<stem>.calibration.yaml beside it")
    va.add_argument("--fit-into-package", action="store_true",
                    help="with --fit on a shipped arch: write npusim/archs/calibration/<arch>.yaml "
                         "of this source checkout instead (refused for an installed npusim)")
    va.add_argument("--no-microchecks", action="store_true",
                    help="skip the decode/GEMM microchecks (about 10 s)")
    va.add_argument("--no-progress", action="store_true", help="no progress bar")
    va.add_argument("--kperf", type=Path, metavar="FILE",
                    help="a measured K-Perf sheet (.xlsx or .csv) shaped like `npusim kperf`'s")
    va.add_argument("--sheet", metavar="NAME", help="with --kperf: only this sheet")
    va.add_argument("--arch", default=None,
                    help="with --kperf: the arch; with --fit: simulate the rows on this arch")
    va.add_argument("--model", default=None, help="with --kperf: the built-in LLM")
    va.add_argument("--chips", type=int, default=None, help="with --kperf: chips per system")
    va.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="with --kperf: override a field of --arch")
    va.set_defaults(func=cmd_validate)


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error shape: one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="npusim", description="Cycle-approximate simulation of AI accelerators.")
    from . import __version__
    ap.add_argument("--version", action="version", version=f"npusim {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="simulate a model on an arch")
    _model_args(run)
    run.add_argument("--arch", default="rngd", help="shipped arch name or YAML path (default rngd)")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override an arch field, e.g. --set dram.bandwidth=3TB/s (repeatable)")
    run.add_argument("--host", default="auto", metavar="NAME|FILE|auto|none", help=HOST_HELP)
    run.add_argument("--top", type=int, default=15, help="ops to list (default 15)")
    run.add_argument("--engine", choices=("tile", "roofline"), default="tile",
                     help="tile-level engine (default) or the roofline bound alone")
    run.add_argument("--csv", type=Path, metavar="FILE", help="also write one row per op as CSV")
    run.add_argument("--trace", type=Path, metavar="FILE",
                     help="also write a Chrome/Perfetto trace of the schedule")
    run.add_argument("--plot", type=Path, metavar="DIR",
                     help="also draw the roofline and per-layer breakdown PNGs into DIR")
    run.add_argument("--ignore-capacity", action="store_true",
                     help="time the model even if weights and KV cache exceed DRAM")
    run.add_argument("--pim", choices=("auto", "off", "all"), default="auto",
                     help="on an arch with PIM units: put each eligible op where it is cheaper "
                          "(auto, default), every eligible op on PIM (all), or none (off)")
    run.add_argument("--parallel", default=None, metavar="tp=N,pp=M",
                     help="built-in LLM: also price the step on a multi-chip system of this "
                          "layout (tensor x pipeline parallel), as npusim kperf does")
    sp = run.add_argument_group(
        "spiking cores", "for a spiking-core --arch (marked [spiking cores] by `npusim archs`, "
        "e.g. loihi) or a hybrid NPU+DEVICE (e.g. edu+snn-edu); MODEL an ONNX CNN/MLP "
        "(converted to a rate-coded SNN) or a .nir file")
    sp.add_argument("--timesteps", type=int, default=None, metavar="T",
                    help="timesteps per inference (required for spiking runs)")
    sp.add_argument("--rates", type=Path, default=None, metavar="FILE",
                    help="YAML/JSON of spike rates per layer (mean spikes per neuron per "
                         "timestep, in [0, 1]), by layer or ONNX node name; 'input' for the input")
    sp.add_argument("--rate", type=float, default=None, metavar="R",
                    help="rate of every layer with no other rate (default 0.1, an assumption; "
                         "a warning names those layers)")
    sp.add_argument("--calibrate", nargs="?", const="random", default=None, metavar="INPUTS.npy",
                    help="measure rates by running the ONNX model (with weights) through "
                         "onnxruntime on a batch from INPUTS.npy, or on seeded random inputs")
    sp.add_argument("--neuron", choices=("if", "lif", "cubalif", "sigma_delta"), default=None,
                    help="neuron model of a converted ANN (default if)")
    sp.add_argument("--max-pool", choices=("error", "average"), default=None,
                    help="a max pooling is refused (default) or taken as an average pooling")
    sp.add_argument("--mapper", choices=("greedy", "traffic"), default=None,
                    help="neurons onto cores: layer by layer (greedy, default) or partitioned "
                         "and placed to cut messages and hops (traffic)")
    sp.add_argument("--cost-set", default=None, metavar="NAME",
                    help="one of the device's cost sets (e.g. table2 on loihi)")
    sp.add_argument("--place", choices=("auto", "npu", "snn"), default=None,
                    help="hybrid: each layer where it costs less (auto, default) or all on one side")
    sp.add_argument("--objective", choices=("energy", "latency"), default=None,
                    help="hybrid: what auto placement minimises (default energy)")
    run.set_defaults(func=cmd_run)

    pm = sub.add_parser("pim", help="PIM devices: units, peak, internal vs external "
                                    "bandwidth, GEMV efficiency, NPU crossover batch")
    pm.add_argument("--arch", nargs="+", action="extend", default=None, metavar="ARCH",
                    help="archs with a pim section, names or YAML paths, compositions such as "
                         "rngd+hbm2-pim (default: every shipped arch with one)")
    pm.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a field of every --arch, e.g. --set pim.all_bank_act=true")
    pm.add_argument("--gemv", default="4096x4096", metavar="ROWSxK",
                    help="the GEMV to time and find the crossover for (default 4096x4096)")
    pm.add_argument("--json", type=Path, metavar="FILE", help="also write the table as JSON")
    pm.set_defaults(func=cmd_pim)

    be = sub.add_parser("breakeven", help="ANN on an NPU vs SNN on spiking cores: energy per "
                                          "inference against spike rate, and the crossover")
    be.add_argument("model", help="an ONNX CNN/MLP or a .nir file")
    be.add_argument("--arch", required=True, metavar="NPU+DEVICE",
                    help="an NPU and a spiking-core device, e.g. edu+snn-edu, rngd+loihi, or "
                         "edu+same (spiking cores from the NPU's own energy table)")
    be.add_argument("--timesteps", type=int, required=True, metavar="T",
                    help="timesteps per inference of the SNN")
    be.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE",
                    help="bind a symbolic ONNX dimension (repeatable)")
    be.add_argument("--max-pool", choices=("error", "average"), default=None,
                    help="a max pooling is refused (default) or taken as an average pooling")
    be.add_argument("--json", type=Path, metavar="FILE", help="also write the curve as JSON")
    be.add_argument("--plot", type=Path, metavar="DIR", help="also draw breakeven.png into DIR")
    be.set_defaults(func=cmd_breakeven)

    _kperf_parser(sub)
    _validate_parser(sub)
    _sweep_parser(sub)

    ins = sub.add_parser("inspect", help="op census, MACs, parameters, bytes by role")
    _model_args(ins)
    ins.set_defaults(func=cmd_inspect)

    sub.add_parser("archs", help="list the shipped archs and spiking-core devices").set_defaults(func=cmd_archs)
    sub.add_parser("models", help="list the built-in LLMs").set_defaults(func=cmd_models)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 0
    try:
        return args.func(args)
    except NpusimError as e:
        print(f"npusim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as e:
        print(f"npusim: error: {e.filename}: no such file", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # any other file the user named that the system refused
        where = f"{e.filename}: " if e.filename else ""
        print(f"npusim: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        # the IR's ShapeError (a ValueError, never an OSError), imported only here: the IR
        # pulls in networkx, which `npusim --help` and argument errors never need
        from .ir import ShapeError
        if not isinstance(e, ShapeError):
            raise
        print(f"npusim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
