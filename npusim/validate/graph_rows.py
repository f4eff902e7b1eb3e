"""Measured rows of whole-model inference (``sim_mode`` ``graph``): MLPerf-style rows.

A row's ``sim_model`` names a graph: an in-repo builder of :mod:`npusim.graphs.mlperf`
(``resnet50``, ``bert-large``) or an ``.onnx`` file (a path relative to the data file, as
``sim_arch`` paths are). ``sim_users`` is the compiled batch (default 1): a builder builds at
it, an ONNX file is run at it as ``npusim run --batch`` runs it (:mod:`npusim.frontend.rebatch`);
``sim_input_len`` is BERT's sequence length (MLPerf's 384 when empty) and is refused for the
other graphs; ``sim_precision`` (empty: the file's own dtypes) goes through the precision pass
that ``npusim run --precision`` applies, resolved for the arch. The graph is simulated once on
one chip by :func:`npusim.simulate` (tile engine, with its capacity check), and the metrics are

- ``latency_s``: the time of one inference of the whole batch on the chip, the quantity
  MLPerf SingleStream's *mean* latency measures at batch 1 (a row measured as a p90 is read
  from its mean, which the row's ``sim_note`` states);
- ``samples_s``: ``batch / latency_s``, MLPerf Offline's samples per second with batches run
  back to back on the device;
- ``avg_power_w``: the card power of ``sim_chips`` chips, each running batches back to back
  (MLPerf Offline's data parallelism: one copy of the graph per accelerator), i.e.
  ``sim_chips`` x the run's energy / latency; ``avg_power_w_per_chip`` is one chip's. A
  measured GPU cap goes in ``sim_set`` (``power.cap=350 W``). MLPerf's own power is the
  whole server at the wall: such a row is ``sim_boundary`` system with its server in
  ``sim_host``, and :mod:`npusim.validate.core` adds the host (busy throughout) to the
  ``sim_chips`` cards of one chip's ``avg_power_w_per_chip``.
- MLPerf Server (a power row with ``sim_rate``): queries arrive at ``sim_rate`` samples per
  second over the whole system, so each of the ``sim_chips`` copies runs batches only
  ``u = (sim_rate / sim_chips) x latency / batch`` of the time and waits at its loaded floor
  (the energy table's ``floor_w``) the rest: card power ``u x energy / latency + (1 - u) x
  floor``. The batch is the row's ``sim_users`` (the Server harness batches what has arrived
  within its latency bound; above a few dozen samples a batch's dynamic energy per sample
  barely changes, and that is all the duty cycle keeps of it). A rate the simulated chip
  cannot sustain (``u > 1``) runs it busy throughout and says so in the load.

What npusim reads from the way the measurement ran: a system that keeps more than one batch
in flight (Rebellions' Offline harness ran two asynchronous runner threads) overlaps the host's
work (loading the next batch, PCIe transfers, reading results) with the device's, so its
throughput is bound by the device alone, which is what ``samples_s`` computes; npusim has no
timing model of the host, so the host's share of a single-stream latency (the input's PCIe transfer and the
runtime's launch of the compiled graph beyond the arch's per-kernel ``launch_overhead``) is
not in ``latency_s`` either: it is one of the fixed costs calibration has to account for.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import NpusimError

GRAPH_METRICS = ("latency_s", "samples_s", "avg_power_w", "avg_power_w_per_chip")
MULTI_CHIP = ("avg_power_w",)      # metrics a graph row may state on several chips
POWER_METRICS = ("avg_power_w", "avg_power_w_per_chip")


def builders() -> tuple[str, ...]:
    """The in-repo graph builders a row may name (:data:`npusim.graphs.mlperf.NETWORKS`)."""
    from ..graphs.mlperf import NETWORKS
    return NETWORKS


def seq_range(model: str) -> tuple[int, int] | None:
    """The sequence lengths a builder takes (None: the graph has no sequence axis): BERT's
    1 to its 512 learned positions (:data:`npusim.graphs.mlperf.BERT_LARGE`)."""
    from ..graphs.mlperf import BERT_LARGE
    return (1, BERT_LARGE["positions"]) if model == "bert-large" else None


@dataclass(frozen=True)
class GraphSpec:
    """What a graph row runs: the builder name or resolved ``.onnx`` path, batch, sequence
    length (BERT only) and precision name (empty: the file's dtypes)."""

    source: str
    batch: int
    seq: int | None
    precision: str

    @property
    def is_file(self) -> bool:
        return self.source.lower().endswith(".onnx")


def check(row: Mapping[str, str], where: str, batch: int | None, seq: int | None,
          chips: int | None, max_batch: int) -> None:
    """Check a graph row's columns (``batch``, ``seq``, ``chips`` already parsed as positive
    integers or None by the caller).

    Raises
    ------
    NpusimError
        Naming the row and column: an unknown model (naming the builders), a batch past
        ``max_batch``, a sequence length on a graph without one or out of range, more than
        one chip (except for ``avg_power_w``: one copy per chip), an unknown precision, or a
        column the mode does not use.
    """
    from ..passes.quantize import PRECISIONS
    model = (row.get("sim_model") or "").strip()
    if model not in builders() and not model.lower().endswith(".onnx"):
        raise NpusimError(f"{where}, column sim_model: {model!r} is not a graph of sim_mode "
                          f"graph; name a builder ({', '.join(builders())}) or an .onnx file "
                          f"(relative to the data file)")
    if batch is not None and batch > max_batch:
        raise NpusimError(f"{where}, column sim_users: batch {batch:,} is more than "
                          f"{max_batch:,}; give the compiled batch of the measurement")
    span = seq_range(model)
    if seq is not None and span is None:
        raise NpusimError(f"{where}, column sim_input_len: {model} has no sequence length "
                          f"to set; leave the column empty")
    if seq is not None and not span[0] <= seq <= span[1]:
        raise NpusimError(f"{where}, column sim_input_len: {seq:,} is past {model}'s "
                          f"{span[1]} positions; give {span[0]} to {span[1]} tokens")
    metric = (row.get("sim_metric") or "").strip()
    if chips is not None and chips != 1 and metric not in MULTI_CHIP:
        raise NpusimError(f"{where}, column sim_chips: a graph row runs on one chip (only "
                          f"{', '.join(MULTI_CHIP)} states several, one copy per chip); give 1 "
                          f"(or leave it empty)")
    prec = (row.get("sim_precision") or "").strip()
    if prec and prec not in PRECISIONS:
        raise NpusimError(f"{where}, column sim_precision: {prec!r} is not one of "
                          f"{', '.join(PRECISIONS)} (empty: the graph's own dtypes)")
    if (row.get("sim_rate") or "").strip() and metric not in POWER_METRICS:
        raise NpusimError(f"{where}, column sim_rate: a graph row's rate (MLPerf Server's "
                          f"samples per second) only sets the duty cycle of "
                          f"{', '.join(POWER_METRICS)}; leave it empty for {metric}")
    for col in ("sim_output_len",):
        if (row.get(col) or "").strip():
            raise NpusimError(f"{where}, column {col}: not used by sim_mode graph; leave it "
                              f"empty")


def graph_spec(row: Mapping[str, str], base: Path, batch: int | None,
               seq: int | None) -> GraphSpec:
    """The row's graph, with an ``.onnx`` path resolved against the data file's folder."""
    model = (row.get("sim_model") or "").strip()
    if model.lower().endswith(".onnx"):
        p = Path(model)
        model = str(p if p.is_absolute() else (base / p).resolve())
    elif seq is None and seq_range(model) is not None:
        from ..graphs.mlperf import BERT_SEQ
        seq = BERT_SEQ
    return GraphSpec(model, batch or 1, seq, (row.get("sim_precision") or "").strip())


def load(spec: GraphSpec, precision):
    """The IR graph of ``spec`` at ``precision`` (a resolved
    :class:`~npusim.passes.quantize.Precision`, or None for the file's dtypes), through
    :func:`npusim.load_model` as ``npusim run`` loads an ONNX graph."""
    from ..frontend.llm import load_model
    if spec.is_file:
        return load_model(spec.source, batch=spec.batch, dtype=precision)
    from ..graphs.mlperf import build
    kw = {} if spec.seq is None else {"seq": spec.seq}
    return load_model(build(spec.source, spec.batch, **kw), dtype=precision)


def predict(graph, arch, spec: GraphSpec, metric: str, where: str,
            chips: int = 1, rate: float | None = None) -> tuple[float, str]:
    """The row's metric from one simulation of ``graph`` on ``arch``, and the load.

    ``rate`` (samples per second per chip, MLPerf Server) makes a power metric the duty
    cycle of :func:`server_power` instead of batches back to back."""
    from ..api import simulate
    if metric not in GRAPH_METRICS:
        raise NpusimError(f"{where}, column sim_metric: {metric!r} is not a metric of sim_mode "
                          f"graph; use one of {', '.join(GRAPH_METRICS)}")
    result = simulate(graph, arch)
    latency = result.latency_s
    load = f"batch {spec.batch}" + (f", seq {spec.seq}" if spec.seq else "")
    if metric == "latency_s":
        return latency, f"{load}, one inference"
    if metric == "samples_s":
        return spec.batch / latency, f"{load}, back to back"
    n = chips if metric in MULTI_CHIP else 1
    if rate is not None:
        from ..energy import load_energy_table
        table = load_energy_table(arch)
        if table is None:
            raise NpusimError(f"{where}: arch {arch.name} has no energy table, so the power "
                              f"of a chip waiting between Server batches is unknown")
        watts, busy = server_power(result.energy_j, latency, spec.batch, rate,
                                   float(table.floor_w))
        over = " (the rate is above the simulated throughput: busy throughout)" \
            if busy >= 1 else ""
        return n * watts, (f"{load}, Server {rate:,.6g} samples/s per chip, busy "
                           f"{min(busy, 1):.0%}{over} x {n} chip(s)")
    return power(result.energy_j, latency, n), f"{load}, back to back x {n} chip(s)"


def server_power(energy_j: float, latency_s: float, batch: int, rate: float,
                 floor_w: float) -> tuple[float, float]:
    """One chip's power serving ``rate`` samples/s with batches of ``batch`` that take
    ``latency_s`` and ``energy_j`` each, waiting at ``floor_w`` between them; and its busy
    share ``u = rate x latency / batch`` (unclipped; above 1 the chip is busy throughout).

    >>> server_power(3.0, 0.01, 100, 5000.0, 100.0)   # busy half the time: (300 + 100) / 2
    (200.0, 0.5)
    """
    if latency_s <= 0 or batch < 1 or not rate > 0:
        raise NpusimError("a Server row needs a positive rate, batch and latency")
    busy = rate * latency_s / batch
    u = min(busy, 1.0)
    return u * energy_j / latency_s + (1 - u) * floor_w, busy


def power(energy_j: float, latency_s: float, chips: int) -> float:
    """Card power of ``chips`` chips each running one inference after another: every chip
    repeats the run, so its power is the run's energy over its latency.

    >>> power(3.0, 0.01, 8)
    2400.0
    """
    if latency_s <= 0:
        raise NpusimError("the graph ran in no time; its power is undefined")
    return chips * energy_j / latency_s


__all__ = ["GRAPH_METRICS", "GraphSpec", "builders", "check", "graph_spec", "load", "power",
           "predict", "server_power",
           "seq_range"]
