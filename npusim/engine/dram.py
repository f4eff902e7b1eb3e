"""Each arch's DRAM effective-bandwidth table, built once by the bank-level timing kernel.

The arch's ``dram.type`` picks a timing preset (``npusim/archs/dram/<type>.yaml``); the arch's channel
count and bandwidth scale it (peak = the arch's ``dram.bandwidth``; interface timings written
in nCK scale with the per-channel bandwidth, array timings in ns do not); the arch's bank
groups, banks, row size and burst replace the preset's where the arch gives them.

The kernel (:func:`npusim.kernels.dram.simulate`) is run on representative read patterns:

``seq``
    One contiguous read of ``total`` bytes, 256 B to 64 MiB on a log grid.
``strided``
    Tile rows of ``contiguous`` bytes about four rows apart, the stride a whole number of
    interleave units coprime with the channel count (assumption: a layout or address hash
    that does not camp on a few channels; a power-of-two stride without hashing can be much
    worse).
``random``
    Chunks of ``contiguous`` bytes at random aligned addresses (fixed seed).

Only a representative slice is simulated and the rest follows by symmetry: a sequential read
puts the same stream on every channel, so one channel carrying the busiest channel's share is
simulated; strided and random reads run on ``min(channels, 4)`` channels with the same bytes
per channel. At most ``max_bursts`` bursts per simulated channel are timed and longer
transfers are extrapolated at that rate. The first refresh falls at tREFI / 2, so a transfer
of any length sees its expected share of refreshes to within half of one.

Efficiency = achieved bytes per second / the arch's peak. Tables are cached as JSON in the
user's cache folder (``$NPUSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/npusim``, else
``~/.cache/npusim``), keyed by a SHA-256 of the preset, the arch's DRAM fields, the grid and
:data:`KERNEL_VERSION`; nothing is ever written into the repository or the working directory.

A ``dram.type`` with no preset gets :data:`FALLBACK_EFFICIENCY` for every pattern, and the
table carries a warning saying so (also issued through :mod:`warnings`). ``generic`` (a DRAM
with no real part behind it, e.g. the SCALE-Sim array) is ideal: efficiency 1.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from ..arch.dram_timing import DramTiming, has_preset, load_dram_timing
from ..arch.model import Arch
from ..arch.schema import lookup
from ..errors import ArchError
from ..kernels import dram as kd

KERNEL_VERSION = "dram-kernel-1"
"""Changes whenever the kernel's or the patterns' semantics change (it is part of cache keys)."""

FALLBACK_EFFICIENCY = 0.86
"""Efficiency for a DRAM type with no timing preset: the mean of the two STREAM-like HBM
fractions measured on GPUs (H100 Triad 2.97 of 3.35 TB/s = 0.887, A100 1.70 of 2.039 TB/s =
0.834; rows N4 and N9 of /work/shared/reference/measured-public.csv, source
https://github.com/Azure/AI-benchmarking-guide)."""

PATTERNS = ("seq", "strided", "random")


class DramFallbackWarning(UserWarning):
    """An arch's DRAM type has no timing preset; a constant efficiency is used."""


@dataclass(frozen=True)
class Grid:
    """What the table samples, and how much of each pattern is simulated."""

    seq_sizes: tuple[int, ...] = tuple(2 ** k for k in range(8, 27))      # 256 B .. 64 MiB
    contiguous: tuple[int, ...] = (64, 256, 1024, 4096, 16384)
    totals: tuple[int, ...] = tuple(4 ** k for k in range(6, 14))          # 4 KiB .. 64 MiB
    max_bursts: int = 16384
    sim_channels: int = 4
    seed: int = 0


DEFAULT_GRID = Grid()


@dataclass(frozen=True)
class DramSetup:
    """The arch's DRAM resolved against its preset: everything the kernel needs, SI units."""

    type: str
    channels: int
    bank_groups: int
    banks_per_group: int
    burst: int
    row_size: int
    interleave: int
    queue_depth: int
    channel_bandwidth: float
    timing: tuple[float, ...]

    @property
    def bandwidth(self) -> float:
        return self.channels * self.channel_bandwidth

    def timing_array(self) -> np.ndarray:
        return np.array(self.timing, dtype=np.float64)

    def without_refresh(self) -> "DramSetup":
        t = list(self.timing)
        t[kd.T_REFI] = 0.0
        return replace(self, timing=tuple(t))


@dataclass(frozen=True)
class DramTable:
    """Read efficiency (achieved / peak bandwidth) by access pattern and size.

    Build it with :func:`dram_table`. ``constant`` is set (and the grids empty) when the
    arch's DRAM type has no preset.
    """

    dram_type: str
    key: str
    seq_sizes: tuple[float, ...] = ()
    seq: tuple[float, ...] = ()
    contiguous: tuple[float, ...] = ()
    totals: tuple[float, ...] = ()
    strided: tuple[tuple[float, ...], ...] = ()
    random: tuple[tuple[float, ...], ...] = ()
    constant: float | None = None
    warnings: tuple[str, ...] = ()
    setup: dict = field(default_factory=dict, compare=False)

    def efficiency(self, pattern: str, contiguous_bytes: float, total_bytes: float) -> float:
        """Fraction of peak bandwidth a read of this pattern achieves.

        Parameters
        ----------
        pattern : str
            ``"seq"``, ``"strided"`` or ``"random"``.
        contiguous_bytes : float
            Bytes of each contiguous piece (ignored for ``"seq"``); a piece as large as the
            whole transfer is a sequential read.
        total_bytes : float
            Bytes of the whole transfer.

        Returns
        -------
        float
            In (0, 1]; interpolated linearly in log2 of the sizes, clamped at the grid's ends.
        """
        if pattern not in PATTERNS:
            raise ValueError(f"unknown DRAM access pattern {pattern!r}; use one of "
                             f"{', '.join(PATTERNS)}")
        if self.constant is not None:
            return self.constant
        total = max(float(total_bytes), 1.0)
        g = self._grids
        if pattern == "seq" or contiguous_bytes >= total:
            return _interp_on(total, g["seq_sizes"], g["seq"])
        by_row = [_interp_on(total, g["totals"], row) for row in g[pattern]]
        return _interp_on(max(float(contiguous_bytes), 1.0), g["contiguous"],
                          np.asarray(by_row, dtype=float))

    @cached_property
    def _grids(self) -> dict:
        """The grids as :func:`_interp` reads them (log2 of the sizes, the efficiencies as
        arrays), worked out once per table: an engine run looks one up per op class."""
        def arr(v):
            return np.asarray(v, dtype=float)
        return {"seq_sizes": np.log2(arr(self.seq_sizes)), "seq": arr(self.seq),
                "totals": np.log2(arr(self.totals)), "contiguous": np.log2(arr(self.contiguous)),
                "strided": [arr(r) for r in self.strided], "random": [arr(r) for r in self.random]}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kernel_version"] = KERNEL_VERSION
        return d

    @staticmethod
    def from_dict(d: dict) -> "DramTable":
        def tup(x):
            return tuple(tup(v) for v in x) if isinstance(x, list) else x
        fields_ = {k: tup(v) for k, v in d.items() if k != "kernel_version"}
        fields_["setup"] = d.get("setup", {})
        return DramTable(**fields_)


def _interp(x: float, xs, ys) -> float:
    return _interp_on(x, np.log2(np.asarray(xs, dtype=float)), np.asarray(ys, dtype=float))


def _interp_on(x: float, log_xs: np.ndarray, ys: np.ndarray) -> float:
    """:func:`_interp` on grids already in the form it computes (``DramTable._grids``)."""
    return float(np.interp(math.log2(x), log_xs, ys))


# ------------------------------------------------------------------------ resolving
def _count(value, fallback):
    return int(value) if value is not None else int(fallback)


def dram_setup(arch: Arch, preset: DramTiming | None = None) -> DramSetup:
    """Resolve the arch's DRAM against its timing preset (``preset`` overrides the lookup).

    Raises
    ------
    ArchError
        If the arch's DRAM geometry cannot hold whole bursts.
    """
    d = arch.dram
    p = preset if preset is not None else load_dram_timing(d.type)
    # Unset, the channel count is the bandwidth over the preset's channel bandwidth, at most
    # the schema's bound (beyond it, each channel runs faster than the preset's).
    most = int(lookup(("dram", "channels")).bounds()[1])
    channels = d.channels if d.channels is not None else \
        min(most, max(1, round(d.bandwidth / p.channel_bandwidth)))
    ch_bw = d.bandwidth / channels
    burst = _count(d.burst, p.burst)
    row = _count(d.row_size, p.row_size)
    where = arch.source or f"the arch file of {arch.name}"
    if row < burst or row % burst:
        raise ArchError(f"{where}: dram.row_size: {row} B is not a whole number of "
                        f"{burst}-B bursts; fix dram.row_size or dram.burst")
    interleave = max(burst, int(p.interleave) // burst * burst)
    t = p.timings_at(p.channel_bandwidth / ch_bw)
    t["tBURST"] = burst / ch_bw
    t["tREF0"] = t["tREFI"] / 2.0
    if not t["tRFC"] < t["tREFI"]:
        raise ArchError(
            f"{where}: dram.bandwidth: {d.bandwidth:.4g} B/s over {channels} channels runs each "
            f"channel so slowly that the {p.name} preset's refresh (tRFC, in clock cycles, "
            f"{t['tRFC']:.3g} s) outlasts its interval (tREFI {t['tREFI']:.3g} s); raise "
            f"dram.bandwidth or lower dram.channels")
    return DramSetup(
        type=p.name, channels=int(channels),
        bank_groups=_count(d.bank_groups, p.bank_groups),
        banks_per_group=_count(d.banks_per_group, p.banks_per_group), burst=burst,
        row_size=row, interleave=interleave, queue_depth=p.queue_depth,
        channel_bandwidth=ch_bw, timing=tuple(float(t[n]) for n in kd.TIMING_NAMES))


# ------------------------------------------------------------------------ patterns
def _run(setup: DramSetup, channels: int, addr: np.ndarray, size: np.ndarray) -> np.ndarray:
    fields, sizes = kd.address_map(channels, setup.bank_groups, setup.banks_per_group,
                                   setup.burst, setup.row_size, setup.interleave)
    geometry = np.array([channels, setup.bank_groups, setup.banks_per_group, setup.burst],
                        dtype=np.int64)
    writes = np.zeros(addr.shape[0], dtype=np.bool_)
    stats, _ = kd.simulate(addr.astype(np.int64), size.astype(np.int64), writes, geometry,
                           fields, sizes, setup.timing_array(), int(setup.queue_depth))
    return stats


def _coprime(k: int, n: int) -> int:
    """The smallest integer >= k with no common factor with n."""
    while math.gcd(k, n) != 1:
        k += 1
    return k


def pattern_efficiency(setup: DramSetup, pattern: str, contiguous: int, total: int,
                       grid: Grid = DEFAULT_GRID) -> float:
    """Simulate one pattern point on a representative slice; return achieved / peak.

    See the module docstring for the slice and the extrapolation.
    """
    c_all = setup.channels
    if pattern == "seq" or contiguous >= total:
        per_channel = math.ceil(math.ceil(total / setup.interleave) / c_all) * setup.interleave
        share = min(total, per_channel)
        timed = min(share, grid.max_bursts * setup.burst)
        stats = _run(setup, 1, np.array([0]), np.array([timed]))
        seconds = stats[kd.S_TIME] * share / timed
        return float(min(1.0, total / (seconds * setup.bandwidth)))
    # A small transfer is timed whole, on every channel. A larger one runs on c_sim channels
    # carrying the same bytes per channel, with pieces larger than one interleave unit shrunk
    # by c_sim / channels so that each channel still sees the same run of bytes per piece.
    g = setup.interleave
    if total <= grid.max_bursts * setup.burst:
        c_sim, piece = c_all, contiguous
    else:
        c_sim = min(c_all, grid.sim_channels)
        piece = contiguous if contiguous <= g else \
            max(g, round(contiguous * c_sim / c_all / g) * g)
    share = total * c_sim / c_all
    pieces = max(1, math.ceil(share / piece))
    bursts_each = math.ceil(piece / setup.burst)
    timed_pieces = max(1, min(pieces, grid.max_bursts * c_sim // bursts_each))
    if pattern == "strided":
        # Rows about four rows apart, the stride k interleave units coprime with the channel
        # count, so successive rows visit every channel (the non-camping layout the table
        # assumes). A row of p units then advances each channel's own addresses by k / p
        # units per visit, whatever the channel count; the slice keeps that ratio.
        p = math.ceil(contiguous / g)
        k = _coprime(4 * p + 1, c_all)
        if c_sim < c_all:
            p_sim = math.ceil(piece / g)
            k = max(p_sim, round(k * p_sim / p))
            k = k if k == p_sim else _coprime(k, c_sim)
        addr = np.arange(timed_pieces, dtype=np.int64) * (k * g)
    elif pattern == "random":
        rng = np.random.default_rng(grid.seed)
        addr = rng.integers(0, 2 ** 36 // piece, timed_pieces, dtype=np.int64) * piece
    else:
        raise ValueError(f"unknown DRAM access pattern {pattern!r}")
    stats = _run(setup, c_sim, addr, np.full(timed_pieces, piece, dtype=np.int64))
    seconds = stats[kd.S_TIME] * pieces / timed_pieces
    return float(min(1.0, pieces * piece / (seconds * c_sim * setup.channel_bandwidth)))


def build_table(setup: DramSetup, key: str, grid: Grid = DEFAULT_GRID) -> DramTable:
    """Run every pattern point of ``grid`` through the kernel (no caching)."""
    seq = tuple(pattern_efficiency(setup, "seq", s, s, grid) for s in grid.seq_sizes)
    strided, rand = [], []
    for c in grid.contiguous:
        strided.append(tuple(pattern_efficiency(setup, "strided", c, t, grid)
                             for t in grid.totals))
        rand.append(tuple(pattern_efficiency(setup, "random", c, t, grid)
                          for t in grid.totals))
    # Monotone envelope in the piece size: pieces of 4R contiguous bytes may be read as the
    # R-byte pattern reads them, so a larger piece is never worse than a smaller one.
    strided = np.maximum.accumulate(np.array(strided), axis=0)
    rand = np.maximum.accumulate(np.array(rand), axis=0)
    return DramTable(dram_type=setup.type, key=key,
                     seq_sizes=tuple(float(s) for s in grid.seq_sizes), seq=seq,
                     contiguous=tuple(float(c) for c in grid.contiguous),
                     totals=tuple(float(t) for t in grid.totals),
                     strided=tuple(tuple(float(x) for x in row) for row in strided),
                     random=tuple(tuple(float(x) for x in row) for row in rand),
                     setup=asdict(setup))


# ------------------------------------------------------------------------ caching
def cache_dir() -> Path:
    """The user's npusim cache folder (not created here)."""
    env = os.environ.get("NPUSIM_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "npusim").resolve()


def table_key(arch: Arch, setup: DramSetup, preset: DramTiming, grid: Grid) -> str:
    """SHA-256 over the preset, the arch's DRAM fields, the resolved setup, grid and kernel."""
    try:
        return _table_key(preset, arch.dram, setup, grid)
    except TypeError:      # a field that cannot be hashed: worked out afresh
        return _table_key.__wrapped__(preset, arch.dram, setup, grid)


@lru_cache(maxsize=256)
def _table_key(preset: DramTiming, dram, setup: DramSetup, grid: Grid) -> str:
    """:func:`table_key`, memoised on exactly what it hashes (a sweep asks for the same DRAM
    many times)."""
    content = {"kernel": KERNEL_VERSION, "preset": preset.to_dict(),
               "arch_dram": asdict(dram), "setup": asdict(setup), "grid": asdict(grid)}
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_cached(path: Path, key: str) -> DramTable | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("key") != key or d.get("kernel_version") != KERNEL_VERSION:
            return None
        return DramTable.from_dict(d)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_cached(path: Path, table: DramTable) -> None:
    # A cache that cannot be written only costs a rebuild next time.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table.to_dict()), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


@lru_cache(maxsize=64)
def _load_or_build(key: str, setup: DramSetup, grid: Grid, folder: str | None) -> DramTable:
    path = Path(folder) / "dram" / f"{key}.json" if folder else None
    if path is not None:
        table = _read_cached(path, key)
        if table is not None:
            return table
    table = build_table(setup, key, grid)
    if path is not None:
        _write_cached(path, table)
    return table


def dram_table(arch: Arch, *, grid: Grid | None = None, cache: bool = True,
               preset: DramTiming | None = None) -> DramTable:
    """The arch's DRAM efficiency table: from memory, else the disk cache, else the kernel.

    Parameters
    ----------
    arch : Arch
    grid : Grid, optional
        Pattern points and simulation bounds (default :data:`DEFAULT_GRID`).
    cache : bool
        Read and write the disk cache (the in-process memo is always used).
    preset : DramTiming, optional
        Use this preset instead of the one named by ``arch.dram.type``.

    Returns
    -------
    DramTable

    Examples
    --------
    >>> from npusim.arch import load_arch
    >>> t = dram_table(load_arch("systolic-128"))
    >>> t.efficiency("random", 64, 1e6)
    1.0
    """
    grid = grid or DEFAULT_GRID
    dtype = arch.dram.type
    if preset is None and dtype == "generic":
        return DramTable(dram_type=dtype, key="generic", constant=1.0)
    if preset is None and not has_preset(dtype):
        msg = (f"arch {arch.name}: dram.type {dtype} has no timing preset in npusim/archs/dram/; DRAM "
               f"efficiency is the constant {FALLBACK_EFFICIENCY} for every access pattern "
               f"(mean measured STREAM fraction on H100/A100). Add npusim/archs/dram/{dtype}.yaml "
               f"to model it")
        warnings.warn(msg, DramFallbackWarning, stacklevel=2)
        return DramTable(dram_type=dtype, key=f"fallback-{dtype}",
                         constant=FALLBACK_EFFICIENCY, warnings=(msg,))
    p = preset if preset is not None else load_dram_timing(dtype)
    setup, key = _setup_and_key(arch, p, grid)
    return _load_or_build(key, setup, grid, str(cache_dir()) if cache else None)


def _setup_and_key(arch: Arch, preset: DramTiming, grid: Grid) -> tuple[DramSetup, str]:
    """:func:`dram_setup` and :func:`table_key`, memoised on what they read: the preset, the
    arch's DRAM fields and the grid (the arch's name and file appear only in the messages of
    a setup that fails, which raises on every call; a serving run asks once per graph)."""
    try:
        memo = (preset, arch.dram, grid)
        hit = _SETUPS.get(memo)
    except TypeError:       # a field that cannot be hashed: worked out afresh
        memo, hit = None, None
    if hit is None:
        setup = dram_setup(arch, preset)
        hit = (setup, table_key(arch, setup, preset, grid))
        if memo is not None:
            if len(_SETUPS) > 256:
                _SETUPS.clear()
            _SETUPS[memo] = hit
    return hit


# Memo of _setup_and_key within a process (bounded).
_SETUPS: dict = {}


def effective_bandwidth(arch: Arch, pattern: str = "seq", contiguous_bytes: float | None = None,
                        total_bytes: float = 64 * 2 ** 20, *, grid: Grid | None = None) -> float:
    """Bytes per second a read of this pattern achieves on the arch's DRAM.

    >>> from npusim.arch import load_arch
    >>> effective_bandwidth(load_arch("systolic-128"), "seq", None, 1e6) / 1e9
    10.0
    """
    table = dram_table(arch, grid=grid)
    contiguous = total_bytes if contiguous_bytes is None else contiguous_bytes
    return arch.dram.bandwidth * table.efficiency(pattern, contiguous, total_bytes)


__all__ = ["DEFAULT_GRID", "DramFallbackWarning", "DramSetup", "DramTable", "FALLBACK_EFFICIENCY",
           "Grid", "KERNEL_VERSION", "PATTERNS", "build_table", "cache_dir", "dram_setup",
           "dram_table", "effective_bandwidth", "pattern_efficiency", "table_key"]
