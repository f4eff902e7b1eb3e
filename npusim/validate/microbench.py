"""Microbenchmarks simulated the way the measurements ran them: one GEMM, one STREAM copy,
one all-reduce across chips.

The GEMM rows (cuBLASLt in the Azure AI-benchmarking-guide) multiply two random matrices, so
both operands are activations read from DRAM, not weights. The bandwidth rows (STREAM-like
Triad and Copy) stream long sequential arrays, so they see the DRAM efficiency table's long
sequential read at a transfer much larger than any on-chip buffer. The all-reduce rows
(nccl-tests ``all_reduce_perf`` in the same guide) time one in-place all-reduce of a buffer of
the given size across the chips; nccl-tests reports the bus bandwidth
``busbw = size / time x 2 (n - 1) / n``, which for a ring equals the per-link bandwidth.
"""
from __future__ import annotations

from ..engine.dram import dram_table
from ..engine.simulate import simulate_graph
from ..errors import ModelError
from ..ir import Collective, Contraction, Graph, Role, Tensor, dtype

# assumption: a STREAM array of 64 MiB per stream is far past every shipped arch's SRAM and
# DRAM row buffers, so the efficiency table's value there is its long-sequential limit
STREAM_BYTES = 64 * 2**20


def gemm_graph(m: int, n: int, k: int, dt: str) -> Graph:
    """One ``(m x k) @ (k x n)`` GEMM with both operands activations in DRAM.

    Parameters
    ----------
    m, n, k : int
        Output rows, output columns and the reduced dimension.
    dt : str
        npusim dtype name of both operands and the output (``"bf16"``, ``"fp8_e4m3"``).

    Returns
    -------
    Graph

    Examples
    --------
    >>> gemm_graph(2, 3, 4, "bf16").macs
    24
    """
    _positive(("m", m), ("n", n), ("k", k), what="GEMM", form="gemm:M,N,K, e.g. "
              "gemm:8192,8192,8192")
    return _matmul(f"gemm {m}x{n}x{k} {dt}", m, n, k, dt, ("a", "b", "c"), "gemm",
                   Role.ACTIVATION)


def _positive(*dims: tuple[str, object], what: str, form: str) -> None:
    for name, v in dims:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ModelError(f"{what} dimension {name}={v!r} must be a positive integer; write "
                             f"the model as {form}")


def _matmul(title: str, m: int, n: int, k: int, dt: str, names: tuple[str, str, str],
            op: str, b_role: Role) -> Graph:
    """One ``(m x k) @ (k x n)`` contraction; the first operand an activation in DRAM."""
    g = Graph(title)
    g.inputs += list(names[:2])
    g.outputs.append(names[2])
    g.add(Contraction.einsum("mk,kn->mn", {"m": m, "k": k, "n": n}, list(names[:2]), names[2],
                             dtype(dt), name=op, roles=[Role.ACTIVATION, b_role]))
    return g


def gemm_tflops(arch, m: int, n: int, k: int, dt: str) -> float:
    """Simulated throughput of one GEMM on ``arch``, TFLOP/s (2·M·N·K over its latency)."""
    return 2 * m * n * k / simulate_graph(gemm_graph(m, n, k, dt), arch).latency_s / 1e12


def stream_tbps(arch) -> float:
    """Sustained DRAM bandwidth a STREAM test sees on ``arch``, TB/s."""
    return arch.dram.bandwidth * dram_table(arch).efficiency("seq", None, STREAM_BYTES) / 1e12


def allreduce_graph(size_bytes: int, chips: int) -> Graph:
    """One all-reduce of a ``size_bytes`` buffer across ``chips`` chips (bytes as int8).

    Examples
    --------
    >>> g = allreduce_graph(1024, 8)
    >>> [(op.func, op.group, op.payload_bytes) for op in g.ops()]
    [('all_reduce', 8, 1024.0)]
    """
    for name, v in (("size", size_bytes), ("chips", chips)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ModelError(f"all-reduce {name}={v!r} must be a positive integer; write the "
                             f"model as allreduce:BYTES with sim_chips the chip count")
    x = Tensor("x", (size_bytes,), dtype("int8"))
    y = Tensor("y", (size_bytes,), dtype("int8"))
    g = Graph(f"all-reduce {size_bytes} B x {chips}")
    g.inputs.append("x")
    g.outputs.append("y")
    g.add(Collective(name="allreduce", source="microbench", op_type="AllReduce", inputs=(x,),
                     outputs=(y,), func="all_reduce", group=chips,
                     payload_bytes=float(x.nbytes)))
    return g


def allreduce_busbw_gbs(arch, size_bytes: int, chips: int) -> float:
    """Simulated nccl-tests bus bandwidth of one all-reduce on ``arch``, GB/s."""
    t = simulate_graph(allreduce_graph(size_bytes, chips), arch).latency_s
    return size_bytes / t * 2 * (chips - 1) / chips / 1e9


def gemv_graph(m: int, k: int, dt: str) -> Graph:
    """One GEMV ``y[1, m] = x[1, k] @ W[k, m]``: W a weight in DRAM, x an input vector.

    >>> g = gemv_graph(4, 8, "fp16")
    >>> g.macs, [o.tensor.role.value for o in next(iter(g.ops())).operands]
    (32, ['activation', 'weight'])
    """
    _positive(("m", m), ("k", k), what="GEMV", form="pim-gemv:M,K, e.g. pim-gemv:4096,4096")
    return _matmul(f"gemv {m}x{k} {dt}", 1, m, k, dt, ("x", "w", "y"), "gemv", Role.WEIGHT)


def pim_figure(arch, metric: str, dt: str, shape: tuple[int, int] | None,
               where: str) -> tuple[float, str]:
    """A PIM device figure of ``arch`` as a measured row states it.

    ``pim_peak_tflops``: the units' peak for ``dt`` (2 FLOP per MAC); ``pim_internal_gbs``:
    the units' column bandwidth (every unit reading one burst per column command);
    ``pim_bw_ratio``: that over the external DRAM bandwidth; ``pim_gemv_speedup``: one GEMV
    of ``shape`` (M outputs, K inputs) on the same memory without its units, over the same
    GEMV run on the units (launch, mode switches, input broadcast, partial-sum read-out and
    the host's additions included).

    The baseline is the weights streamed from the same DRAM at its sequential-read efficiency
    plus one launch: the oracle streaming baseline PIM studies use (pim.md sec. 5, [I12]), and
    what a measured "same system with plain DRAM" is when its GEMV is memory-bound. It does
    not depend on how well the host's engine model runs a batch-1 GEMM (an FPGA or phone host
    may be compute-poor, which is not what the measured ratios compare).
    """
    from ..engine.pim import pim_device
    if not arch.pim_on:
        raise ModelError(f"{where}: arch {arch.name} has no enabled PIM units (pim section); "
                         f"a PIM row needs an arch such as hbm2-pim")
    dev = pim_device(arch)
    if metric == "pim_peak_tflops":
        if dt not in arch.pim.macs_per_cycle:
            raise ModelError(f"{where}: {arch.name}'s PIM units do not run {dt} (they run "
                             f"{', '.join(arch.pim.macs_per_cycle)})")
        return 2 * dev.peak_macs[dt] / 1e12, "units' peak"
    if metric == "pim_internal_gbs":
        return dev.internal_bandwidth / 1e9, "units' column bandwidth"
    if metric == "pim_bw_ratio":
        return dev.internal_bandwidth / arch.dram.bandwidth, "internal / external"
    m, k = shape
    g = gemv_graph(m, k, dt)
    on_pim = simulate_graph(g, arch, pim="all")
    if not any(r.device == "pim" for r in on_pim.ops):
        raise ModelError(f"{where}: the {m}x{k} {dt} GEMV did not run on {arch.name}'s PIM "
                         f"units: {'; '.join(on_pim.warnings) or 'no reason given'}")
    weights = m * k * dtype(dt).bytes
    stream = weights / (arch.dram.bandwidth * dram_table(arch).efficiency("seq", None, weights))
    return (stream + arch.launch_overhead) / on_pim.latency_s, f"one {m}x{k} GEMV"


__all__ = ["STREAM_BYTES", "allreduce_busbw_gbs", "allreduce_graph", "gemm_graph",
           "gemm_tflops", "gemv_graph", "pim_figure", "stream_tbps"]
