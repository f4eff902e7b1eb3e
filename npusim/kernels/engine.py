"""Cycles of a spatial contraction engine for one GEMM tile, with fill and drain.

Two mechanisms, each one kernel parameterised by data rather than one file per dataflow:

* **Systolic array** (``R`` rows x ``C`` columns of MAC cells; dataflow ``OS``, ``WS`` or ``IS``),
  counted the way SCALE-Sim v3 counts stall-free compute cycles, so that npusim agrees with it
  on the same array, dataflow and layer. A dataflow is only a choice of which GEMM dimension
  goes on the rows, which on the columns and which runs in time, plus whether a stationary tile
  must be loaded first (:data:`DATAFLOW_MAP`).
* **RNGD slice** (``SLICE``): FuriosaAI RNGD's per-slice contraction engine. One operand sits
  in the tensor register file (TRF), one row per lane; the other streams in 64-byte packets
  broadcast to all lanes; each lane's adder tree reduces a packet to one partial sum, the time
  reducer accumulates partial sums over time, and the lane folder emits finished outputs.

GEMM naming throughout: ``out[M, N] = sum_K a[M, K] * b[K, N]``; for a convolution lowered the
SCALE-Sim way (:func:`conv_as_gemm`), ``M`` = output pixels, ``N`` = filters and
``K`` = filter height x filter width x channels.

Every kernel is ``@njit(cache=True)`` on plain integers / int64 arrays, and has a pure-Python
twin (``*_ref``) written the slow, obvious way; the tests demand they agree. Inputs are assumed
validated by the caller (the engine raises npusim's own errors); a kernel only refuses an empty
array (``rows < 1`` or ``cols < 1``) with ``ValueError``. A GEMM with a zero dimension costs 0.
The jitted kernels take every argument explicitly: Numba's dispatcher takes a slow path (about
100x, measured) when a Python caller leaves an argument to its default.
"""
from __future__ import annotations

import numpy as np
from numba import njit

OS = 0
"""Output-stationary systolic array: M on rows, N on columns, K in time."""
WS = 1
"""Weight-stationary systolic array: K on rows, N on columns, M in time."""
IS = 2
"""Input-stationary systolic array: K on rows, M on columns, N in time."""
SLICE = 3
"""RNGD slice: N on lanes (TRF), K on packets (adder tree + time reducer), M in time."""

DATAFLOW_NAMES = ("os", "ws", "is", "slice")

# Per systolic dataflow: which of (M, N, K) = (0, 1, 2) maps onto the array's rows, onto its
# columns and onto time, and whether a stationary tile is loaded before streaming. This is
# SCALE-Sim's mapping (its compute modules set Sr, Sc, T from the operand matrices: OS
# Sr = M, Sc = N, T = K; WS Sr = K, Sc = N, T = M; IS Sr = K, Sc = M, T = N).
DATAFLOW_MAP = np.array([
    # row dim, col dim, time dim, stationary load
    [0, 1, 2, 0],  # OS: outputs stay put; both operands stream, nothing to preload
    [2, 1, 0, 1],  # WS: a K x N weight tile is loaded, then M input rows stream
    [2, 0, 1, 1],  # IS: a K x M input tile is loaded, then N weight columns stream
], dtype=np.int64)
DATAFLOW_MAP.setflags(write=False)

# RNGD slice constants; rngd.md section 1.2 (source S2c, the furiosa-opt vISA book,
# "Contraction Engine" pages: https://developer.furiosa.ai/furiosa-opt/book/).
SLICE_LANES = 8
"""Lanes per slice: "8 lanes per slice ("one row of the CE MAC array" per lane)" (rngd.md 1.2,
S2c)."""
SLICE_PACKET_BYTES = 64
"""Streamed packet per lane per cycle: "Packet <= 64 B on RNGD" (rngd.md 1.2, S2c)."""
SLICE_FOLD_OUT = 8
"""Lane-folder output bus: "8 elements (32-bit) per cycle" (rngd.md 1.2, S2c)."""
SLICE_ACCUMULATE = 1
"""Cycles for the time reducer to add a partial sum into its accumulator cell: assumption
(rngd.md gives its throughput, "~1 packet/cycle in", not its latency)."""

# Operand width in bits -> (elements per 64-B packet, adder-tree depth in cycles); rngd.md 1.2:
# "32 bf16, 64 fp8/i8, 128 i4 products per lane" and "Per-lane adder tree, depth 5 (bf16) /
# 6 (i8,f8) / 7 (i4) cycles latency, fully pipelined" (S2c).
_SLICE_BY_BITS = {16: (32, 5), 8: (64, 6), 4: (128, 7)}


def slice_packet(bits: int) -> tuple[int, int]:
    """Elements per 64-byte packet and adder-tree depth of an RNGD lane for an operand width.

    Parameters
    ----------
    bits : int
        Width of the streamed operand's elements: 16 (bf16), 8 (fp8, int8) or 4 (int4).

    Returns
    -------
    tuple of int
        ``(elements per packet, adder-tree depth in cycles)``.

    Examples
    --------
    >>> slice_packet(16)
    (32, 5)
    >>> slice_packet(4)
    (128, 7)
    """
    if bits not in _SLICE_BY_BITS:
        raise ValueError(
            f"RNGD's contraction engine takes 16-, 8- or 4-bit operands, not {bits}-bit")
    return _SLICE_BY_BITS[bits]


def conv_as_gemm(ifmap_h: int, ifmap_w: int, filt_h: int, filt_w: int, channels: int,
                 filters: int, stride_h: int = 1, stride_w: int | None = None,
                 ceil_mode: bool = False) -> tuple[int, int, int]:
    """GEMM shape ``(M, N, K)`` of an unpadded convolution lowered by im2col.

    The mapping SCALE-Sim uses: ``M`` = output pixels (one image), ``N`` = filters,
    ``K`` = ``filt_h * filt_w * channels``. Padding is the caller's: pass the padded input size.

    Parameters
    ----------
    ifmap_h, ifmap_w : int
        Input height and width (already padded).
    filt_h, filt_w : int
        Filter height and width.
    channels, filters : int
        Input channels and number of filters (output channels).
    stride_h, stride_w : int
        Strides; ``stride_w`` defaults to ``stride_h``.
    ceil_mode : bool
        Round the output size up, ``ceil((H - R + s) / s)``, as SCALE-Sim v3 does
        (``topology_utils.topo_calc_hyperparams``); the default rounds down like ONNX and
        PyTorch. The two differ only when the stride does not divide ``H - R``.

    Returns
    -------
    tuple of int
        ``(M, N, K)``.

    Examples
    --------
    >>> conv_as_gemm(229, 229, 7, 7, 3, 64, 2)  # ResNet-50 conv1 on a 224 + 2*3 - 1 input
    (12544, 64, 147)
    >>> conv_as_gemm(6, 6, 3, 3, 1, 1, 2), conv_as_gemm(6, 6, 3, 3, 1, 1, 2, ceil_mode=True)
    ((4, 1, 9), (9, 1, 9))
    """
    stride_w = stride_h if stride_w is None else stride_w
    if ceil_mode:
        out_h = -(-(ifmap_h - filt_h + stride_h) // stride_h)
        out_w = -(-(ifmap_w - filt_w + stride_w) // stride_w)
    else:
        out_h = (ifmap_h - filt_h) // stride_h + 1
        out_w = (ifmap_w - filt_w) // stride_w + 1
    return max(out_h, 0) * max(out_w, 0), filters, filt_h * filt_w * channels


# ------------------------------------------------------------------------------- systolic
@njit(cache=True)
def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def _pick(which, m, n, k):
    # A runtime index into (m, n, k); a tuple would need all three of one integer type.
    if which == 0:
        return m
    if which == 1:
        return n
    return k


@njit(cache=True)
def systolic_tile(dataflow, rows, cols, m, n, k):
    """Folds of a GEMM on a systolic array and the fill / steady / drain cycles of each fold.

    Parameters
    ----------
    dataflow : int
        :data:`OS`, :data:`WS` or :data:`IS`.
    rows, cols : int
        Array shape ``R x C``.
    m, n, k : int
        GEMM shape.

    Returns
    -------
    tuple of int
        ``(folds, fill, steady, drain)``; the GEMM takes ``folds * (fill + steady + drain)``
        cycles. Per fold (SCALE-Sim v3's demand matrices, ``compute/systolic_compute_*.py``):

        * fill = ``load + R - 1``: a stationary tile (WS, IS) is loaded one array row per cycle
          (``load = R``; OS has none), then operands enter skewed by one cycle per row, so the
          last row starts ``R - 1`` cycles after the first;
        * steady = ``T``, the time dimension: one operand vector enters per cycle;
        * drain = ``C - 1``: the skew across the columns, i.e. the last column finishes
          ``C - 1`` cycles after the first.

        A partial fold at an edge costs a full fold: SCALE-Sim pads it with idle requests.
    """
    if rows < 1 or cols < 1:
        raise ValueError("a systolic array needs at least one row and one column")
    if m <= 0 or n <= 0 or k <= 0:
        return 0, 0, 0, 0
    mp = DATAFLOW_MAP[dataflow]
    folds = _cdiv(_pick(mp[0], m, n, k), rows) * _cdiv(_pick(mp[1], m, n, k), cols)
    fill = mp[3] * rows + rows - 1
    return folds, fill, _pick(mp[2], m, n, k), cols - 1


@njit(cache=True)
def systolic_cycles(dataflow, rows, cols, m, n, k):
    """Stall-free cycles of a GEMM on an ``R x C`` systolic array (see :func:`systolic_tile`).

    SCALE-Sim v3 reports this number minus one (the index of the last busy cycle).

    Examples
    --------
    >>> int(systolic_cycles(OS, 128, 128, 1024, 1024, 1024))  # SCALE-Sim v3: 81,791
    81792
    >>> int(systolic_cycles(WS, 128, 128, 1024, 1024, 1024))  # SCALE-Sim v3: 89,983
    89984
    """
    folds, fill, steady, drain = systolic_tile(dataflow, rows, cols, m, n, k)
    return folds * (fill + steady + drain)


def systolic_cycles_ref(dataflow: int, rows: int, cols: int, m: int, n: int, k: int) -> int:
    """Pure-Python twin of :func:`systolic_cycles`, cell by cell.

    In every fold the operands reach cell ``(i, j)`` one cycle per hop after they enter, so its
    ``T`` multiply-accumulates run from cycle ``load + i + j`` to ``load + i + j + T - 1``; the
    fold ends the cycle after the last cell's last MAC. Folds run back to back.
    """
    if rows < 1 or cols < 1:
        raise ValueError("a systolic array needs at least one row and one column")
    if min(m, n, k) <= 0:
        return 0
    if dataflow == OS:
        on_rows, on_cols, in_time, load = m, n, k, 0
    elif dataflow == WS:
        on_rows, on_cols, in_time, load = k, n, m, rows
    elif dataflow == IS:
        on_rows, on_cols, in_time, load = k, m, n, rows
    else:
        raise ValueError(f"unknown systolic dataflow {dataflow}")
    total = 0
    for _row_fold in range(0, on_rows, rows):
        for _col_fold in range(0, on_cols, cols):
            last_mac = 0
            for i in range(rows):  # the whole array: idle cells still pass the skew along
                for j in range(cols):
                    last_mac = max(last_mac, load + i + j + in_time - 1)
            total += last_mac + 1
    return total


# ---------------------------------------------------------------------------------- slice
@njit(cache=True)
def slice_tile(lanes, packet, depth, m, n, k, pipeline, packet_cycles):
    """Fill / steady / drain cycles of one GEMM tile on one RNGD slice.

    Mapping (rngd.md 1.4, S2c: "batched matmul with K in Packet, N in Lane, M or batch in
    Time"): the ``K x N`` operand sits in the TRF, ``N`` across the lanes (``ceil(N / lanes)``
    lane folds, TRF reloads overlapped by the sub context's double-buffered half banks, rngd.md
    1.2/1.3); each row of the ``M x K`` operand streams as ``ceil(K / packet)`` packets.

    Parameters
    ----------
    lanes : int
        Lanes per slice (:data:`SLICE_LANES`).
    packet : int
        Elements per packet (:func:`slice_packet`: 32 bf16, 64 fp8/int8, 128 int4).
    depth : int
        Adder-tree depth in cycles (:func:`slice_packet`: 5 / 6 / 7).
    m, n, k : int
        GEMM tile shape.
    pipeline : int
        Cycles from issue to the multipliers (fetch, switch, collect); not published
        (rngd.md section 4, Q6), so 0 unless the arch says otherwise.
    packet_cycles : int
        Cycles per packet: 1 at the time reducer's "~1 packet/cycle"; 2 when the packet is
        built from two 32-B fetches ("PackSize=2 takes 2 cycles per Packet", rngd.md 1.2 and
        open question Q2).

    Returns
    -------
    tuple of int
        ``(fill, steady, drain)``, summing to the tile's cycles:

        * fill = ``pipeline + depth + SLICE_ACCUMULATE``: the first packet's way through the
          fetch pipeline, the per-lane adder tree ("depth 5 (bf16) / 6 (i8,f8) / 7 (i4) cycles
          latency, fully pipelined", rngd.md 1.2) and the time reducer's accumulate;
        * steady = ``max(P * packet_cycles, kp * packet_cycles + (rows_out - 1) * e)`` with
          ``P = lane_folds * M * kp`` packets (``kp = ceil(K / packet)``, one packet per lane
          per cycle, rngd.md 1.2), ``rows_out = lane_folds * M`` output rows and ``e`` the
          lane-folder cycles per output row: the time reducer ("~N cycles for an N-step
          reduction", rngd.md 3) unless the lane folder is the slower stage;
        * drain = ``e = ceil(min(N, lanes) / SLICE_FOLD_OUT)``: the lane folder emits the last
          row ("output bus 8 elements (32-bit) per cycle", rngd.md 1.2).
    """
    if lanes < 1 or packet < 1:
        raise ValueError("a slice needs at least one lane and one element per packet")
    if m <= 0 or n <= 0 or k <= 0:
        return 0, 0, 0
    kp = _cdiv(k, packet)
    rows_out = _cdiv(n, lanes) * m
    emit = _cdiv(min(n, lanes), SLICE_FOLD_OUT)
    fill = pipeline + depth + SLICE_ACCUMULATE
    steady = max(rows_out * kp * packet_cycles, kp * packet_cycles + (rows_out - 1) * emit)
    return fill, steady, emit


@njit(cache=True)
def slice_cycles(lanes, packet, depth, m, n, k, pipeline, packet_cycles):
    """Cycles of one GEMM tile on one RNGD slice (see :func:`slice_tile`).

    Examples
    --------
    >>> int(slice_cycles(8, 32, 5, 1, 8, 32, 0, 1))  # bf16: 5 tree + 1 acc + 1 packet + 1 out
    8
    """
    fill, steady, drain = slice_tile(lanes, packet, depth, m, n, k, pipeline, packet_cycles)
    return fill + steady + drain


def slice_cycles_ref(lanes: int, packet: int, depth: int, m: int, n: int, k: int,
                     pipeline: int = 0, packet_cycles: int = 1) -> int:
    """Pure-Python twin of :func:`slice_cycles`, packet by packet.

    Packets issue back to back, ``packet_cycles`` apart, after ``pipeline`` cycles. The last
    packet of an output row, once through the adder tree (``depth``) and the time reducer
    (``SLICE_ACCUMULATE``), makes the row ready; the lane folder emits ready rows in order,
    ``SLICE_FOLD_OUT`` elements per cycle.
    """
    if lanes < 1 or packet < 1:
        raise ValueError("a slice needs at least one lane and one element per packet")
    if min(m, n, k) <= 0:
        return 0
    packets_per_row = -(-k // packet)
    lanes_used = min(n, lanes)
    emit_cycles = -(-lanes_used // SLICE_FOLD_OUT)
    clock = pipeline
    folder_free = 0
    for _lane_fold in range(0, n, lanes):
        for _row in range(m):
            for _p in range(packets_per_row):
                clock += packet_cycles  # this packet has fully arrived at the multipliers
            ready = clock + depth + SLICE_ACCUMULATE
            folder_free = max(folder_free, ready) + emit_cycles
    return folder_free


# ----------------------------------------------------------------------------- dispatchers
@njit(cache=True)
def gemm_cycles(dataflow, rows, cols, m, n, k, depth, pipeline, packet_cycles):
    """Cycles of a GEMM tile on a contraction engine of any dataflow.

    Parameters
    ----------
    dataflow : int
        :data:`OS`, :data:`WS`, :data:`IS` (systolic ``rows x cols``) or :data:`SLICE`
        (``rows`` = lanes, ``cols`` = elements per packet).
    rows, cols, m, n, k : int
        Engine shape and GEMM shape.
    depth, pipeline, packet_cycles : int
        Slice only, see :func:`slice_tile`; pass ``0, 0, 1`` for a systolic array.

    Returns
    -------
    int
        Cycles.
    """
    if dataflow == SLICE:
        return slice_cycles(rows, cols, depth, m, n, k, pipeline, packet_cycles)
    if dataflow < 0 or dataflow > IS:
        raise ValueError("unknown dataflow code")
    return systolic_cycles(dataflow, rows, cols, m, n, k)


@njit(cache=True)
def gemm_cycles_many(dataflow, rows, cols, m, n, k, depth, pipeline, packet_cycles, out):
    """:func:`gemm_cycles` over int64 arrays of tiles, written into the preallocated ``out``.

    ``dataflow`` to ``depth`` are int64 arrays with one entry per tile (``depth`` is ignored
    for systolic tiles); ``pipeline`` and ``packet_cycles`` are scalars. Returns ``out``.
    """
    for i in range(out.shape[0]):
        out[i] = gemm_cycles(dataflow[i], rows[i], cols[i], m[i], n[i], k[i], depth[i],
                             pipeline, packet_cycles)
    return out


def gemm_cycles_ref(dataflow: int, rows: int, cols: int, m: int, n: int, k: int,
                    depth: int = 0, pipeline: int = 0, packet_cycles: int = 1) -> int:
    """Pure-Python twin of :func:`gemm_cycles`."""
    if dataflow == SLICE:
        return slice_cycles_ref(rows, cols, depth, m, n, k, pipeline, packet_cycles)
    return systolic_cycles_ref(dataflow, rows, cols, m, n, k)


def ideal_cycles(macs_per_cycle: int, m: int, n: int, k: int) -> float:
    """Cycles at full utilisation, ``M * N * K / macs_per_cycle``: the bound no engine beats.

    Examples
    --------
    >>> ideal_cycles(128 * 128, 1024, 1024, 1024)
    65536.0
    """
    return m * n * k / macs_per_cycle
