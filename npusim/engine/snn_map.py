"""Traffic-aware mapping of a spiking network onto a spiking-core device.

:func:`~npusim.engine.snn.map_network` is greedy: consecutive neurons (channel-major for a
conv map) fill consecutive cores, each layer on a new tile. Two things it leaves on the table,
in the event model of ``/work/shared/reference/snn.md`` sec. 2.2 (SANA-FE's conventions, as
:func:`~npusim.engine.snn.count_events` counts them):

* **Messages.** A spike of neuron ``n`` is one message (``SPIKE_OUT`` on its core, ``AXON_IN``
  on the receiver) per *distinct core* holding one of its targets. Summed over the cores of
  the next layer, that is each core's distinct inputs weighted by their rates: a partition
  whose cores read few distinct inputs sends few messages. On Loihi's SANA-FE costs a message
  (76.8 pJ out + the receiver's 16 ns) outweighs a hop (3-4.2 pJ) twentyfold, so the
  partition matters more than the placement. A conv layer cut channel-major puts a few rows of
  one channel on a core, and every input pixel then messages one core per channel; cut in
  spatial blocks holding several channels, a pixel reaches only the one to four blocks that
  cover it, and each block also reads fewer distinct inputs (fan-in).
* **Hops.** The flows between cores (expected messages per step from core ``a`` to core ``b``)
  cost ``|dx| + |dy|`` hops on the mesh (XY routing, :func:`~npusim.kernels.snn.route_xy`);
  0 within a tile. Placing the cores is a quadratic assignment problem; a compact region of
  tiles, cores laid in layer order along a snake, then pairwise swaps that lower the
  hop-weighted traffic, is what this module does.

:func:`map_traffic` chooses, layer by layer, among candidate partitions (the greedy one; the
longest runs of consecutive neurons within every limit; the same over pixels with all their
channels, order (y, x, c); spatial blocks of ``bc`` channels x ``bh`` x ``bw`` pixels, the
widest block within every limit for each ``bc``, ``bh``) the one with the fewest rate-weighted incoming messages, ties broken by the fewest
flows to the next layer, then the fewest cores. Every candidate is checked exactly, core by
core, against the device's per-core limits:

* neurons <= ``neurons_per_core`` (or a smaller cap),
* synaptic memory: the core's synapses x ``weight_bits`` <= ``synaptic_memory`` (the exact sum;
  the greedy mapper's ``per-neuron maximum x neurons`` is a bound on it),
* fan-in: distinct input neurons <= ``fan_in`` axon slots,
* fan-out: distinct destination cores of a core <= ``fan_out``.

One layer per core, cores numbered layer after layer (so a :class:`~npusim.engine.snn.LayerMap`
is still a run of cores and ``run``'s per-layer costs work unchanged); only their mesh
positions move. Each layer's ``bound_by`` names the limit closest to binding on its fullest
core (highest use / limit; ``layer`` when the layer sits on one core).

Guarantee: for the activity the mapper was given (default: every neuron at the same rate),
the mapping never sends more messages nor makes more hops than the greedy mapper on the same
network: the greedy partition is a candidate of every layer, and when the chosen mapping does
not send strictly fewer messages with no more hops, the greedy partition at the greedy
placement, refined by the same swaps (each taken only when it lowers the hops), is the
fallback (the better of the two by messages, then hops).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..arch.snn_device import SnnDevice
from ..errors import CapacityError, NpusimError
from .snn import (CoreMap, LayerMap, Network, check_rate, connectivity, map_network,
                  run_starts)

LIMITS = ("neurons_per_core", "synaptic_memory", "fan_in")
"""The per-core limits a layer's cores are filled against (fan-out is checked between layers)."""

_CANDIDATE_BLOCKS = 6
"""Block shapes per layer evaluated exactly (of those ranked by an upper bound on messages);
an effort knob, not a device fact."""


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class _Proj:
    """The synapses into one layer, sorted by destination: ``ends[k]:ends[k+1]`` are the
    synapses of destination neuron ``k``."""

    src: np.ndarray
    dst: np.ndarray
    fan_in: np.ndarray
    ends: np.ndarray


@dataclass(frozen=True)
class _Limits:
    cap: int
    mem_bits: int
    wbits: int
    fan_in: int | None
    fan_out: int | None


@dataclass(frozen=True)
class _Part:
    """A partition of one layer: ``label[k]`` = core (0-based within the layer) of neuron k."""

    label: np.ndarray
    n: int
    how: str


@dataclass(frozen=True)
class Traffic:
    """Mapping-dependent traffic per timestep, for one activity: ``messages`` (spike messages,
    one per spike and distinct destination core), ``hops`` (east-west + north-south mesh hops),
    ``in_tile`` (messages delivered inside their tile), ``flows`` (distinct (source core,
    destination core) pairs), all summed over layers; ``by_layer``: layer -> (messages, hops)
    of the synapses into it."""

    messages: float
    hops: float
    in_tile: float
    flows: int
    by_layer: dict

    def as_dict(self) -> dict:
        return {"messages": self.messages, "hops": self.hops, "in_tile": self.in_tile,
                "flows": self.flows, "by_layer": dict(self.by_layer)}


# ----------------------------------------------------------------------------- public
def map_traffic(net: Network, device: SnnDevice, activity: Mapping | None = None, *,
                max_neurons_per_core: int | None = None, weight_bits: int | None = None,
                sweeps: int = 8) -> CoreMap:
    """Map ``net`` onto ``device`` with few messages and few hops (see the module docstring).

    ``activity``: layer -> rate in [0, 1] or (T, n) bool raster, as for
    :func:`~npusim.engine.snn.run` (layers left out count as rate 1; default every neuron
    alike): it weights the traffic being minimised. ``max_neurons_per_core`` caps the device's
    ``neurons_per_core``; ``weight_bits`` (default the device's, else 1) sizes a synapse;
    ``sweeps`` bounds the passes of placement swaps (each pass tries to move every core).

    >>> from npusim.arch.snn_device import load_snn_device
    >>> from npusim.engine.snn import Layer
    >>> net = Network("c", (Layer("in", "input", (1, 16, 16)),
    ...                     Layer("conv", "conv2d", (8, 14, 14), kernel=(3, 3))))
    >>> dev = load_snn_device("snn-edu")
    >>> m = map_traffic(net, dev)
    >>> traffic(net, m).messages < traffic(net, map_network(net, dev)).messages
    True
    """
    lim = _limits(device, max_neurons_per_core, weight_bits)
    where = f"SNN mapping of {net.name!r} on {device.name} ({device.source})"
    projs = [None] + [_proj(net, i) for i in range(1, len(net.layers))]
    w = _weights(net, activity)
    try:
        greedy = map_network(net, device, max_neurons_per_core, weight_bits)
    except CapacityError:
        greedy = None
    slots = _slots(device)
    own = None
    try:
        parts = _partition(net, projs, w, lim, greedy, where)
        n = sum(p.n for p in parts)
        if n > len(slots):
            raise CapacityError(f"{where}: needs {n} cores but the device has {len(slots)} "
                                f"({device.structure.chips} chip(s) x "
                                f"{device.structure.usable}); use a smaller network or more "
                                f"chips")
        region = _region(slots, n, device)
        at = _swap(_flow_matrix(net, projs, w, parts), slots, region, region[:n], sweeps)
        own = _core_map(net, parts, slots, at, projs, lim, device)
    except CapacityError:
        if greedy is None:
            raise
    if greedy is None:
        return own
    syn = [None] + [(p.src, p.dst) for p in projs[1:]]
    base = _traffic(net, greedy, w, syn)
    mine = _traffic(net, own, w, syn) if own is not None else None
    if mine is not None and mine.messages < base.messages * (1 - 1e-12) and (
            mine.hops <= base.hops * (1 + 1e-12) + 1e-12):
        return own                          # fewer messages, no more hops: greedy cannot win
    # the greedy partition at its own placement, refined by the same swaps: never worse than
    # greedy, so always eligible
    gparts = [_Part(greedy.core_of[lay.name] - lm.first_core, lm.n_cores, "greedy")
              for lay, lm in zip(net.layers, greedy.layers)]
    gslot = np.concatenate([lm.first_core + np.arange(lm.n_cores) for lm in greedy.layers])
    gregion = np.union1d(_region(slots, gslot.size, device, cover=gslot), gslot)
    at = _swap(_flow_matrix(net, projs, w, gparts), slots, gregion, gslot, sweeps)
    refined = _core_map(net, gparts, slots, at, projs, lim, device)
    if mine is None or mine.hops > base.hops * (1 + 1e-12) + 1e-12:
        return refined
    theirs = _traffic(net, refined, w, syn)
    return own if (round(mine.messages, 9), round(mine.hops, 9)) <= (
        round(theirs.messages, 9), round(theirs.hops, 9)) else refined


def traffic(net: Network, mapping: CoreMap, activity: Mapping | None = None) -> Traffic:
    """Messages, hops, in-tile deliveries and flows per timestep of ``mapping`` under
    ``activity`` (mean spikes per neuron per step; default 1 for every neuron), as
    :func:`~npusim.engine.snn.count_events` counts them (summed over steps it gives the same
    totals for a rate; for a raster the mean)."""
    return _traffic(net, mapping, _weights(net, activity),
                    [None] + [connectivity(net, i) for i in range(1, len(net.layers))])


def _traffic(net: Network, mapping: CoreMap, w: dict, syn: list) -> Traffic:
    """:func:`traffic` with the weights and each layer's ``(src, dst)`` synapses given."""
    n = mapping.n_cores
    total = {"messages": 0.0, "hops": 0.0, "in_tile": 0.0}
    flows = 0
    by_layer = {}
    for i in range(1, len(net.layers)):
        lay, prev = net.layers[i], net.layers[i - 1]
        src, dst = syn[i]
        cores, pcores = mapping.core_of[lay.name], mapping.core_of[prev.name]
        pair = _unique(src * n + cores[dst], prev.size * n)
        psrc, pdst = np.divmod(pair, n)
        ws = w[prev.name][psrc]
        a, b = pcores[psrc], pdst
        dist = (np.abs(mapping.core_x[a] - mapping.core_x[b])
                + np.abs(mapping.core_y[a] - mapping.core_y[b]))
        same = mapping.core_tile[a] == mapping.core_tile[b]
        msgs, hops = float(ws.sum()), float((ws * np.where(same, 0, dist)).sum())
        total["messages"] += msgs
        total["hops"] += hops
        total["in_tile"] += float(ws[same].sum())
        flows += _unique(a * n + b, n * n).size
        by_layer[lay.name] = (msgs, hops)
    return Traffic(total["messages"], total["hops"], total["in_tile"], flows, by_layer)


def core_loads(net: Network, mapping: CoreMap, weight_bits: int) -> dict[str, np.ndarray]:
    """Per core of ``mapping``: ``neurons``, ``synapse_bits`` (synapses x ``weight_bits``),
    ``fan_in`` (distinct input neurons) and ``fan_out`` (distinct destination cores); what the
    device's per-core limits bound."""
    n = mapping.n_cores
    out = {k: np.zeros(n, dtype=np.int64) for k in ("neurons", "synapse_bits", "fan_in",
                                                       "fan_out")}
    for i, lay in enumerate(net.layers):
        cores = mapping.core_of[lay.name]
        out["neurons"] += np.bincount(cores, minlength=n)
        if not i:
            continue
        prev = net.layers[i - 1]
        src, dst = connectivity(net, i)
        out["synapse_bits"] += np.bincount(cores[dst], minlength=n) * int(weight_bits)
        pair = _unique(src * n + cores[dst])
        out["fan_in"] += np.bincount(pair % n, minlength=n)
        edge = _unique(mapping.core_of[prev.name][pair // n] * n + pair % n)
        out["fan_out"] += np.bincount(edge // n, minlength=n)
    return out


MAPPERS: dict[str, Callable[..., CoreMap]] = {}
"""Mapper name -> function ``(net, device, activity=None, *, max_neurons_per_core=None,
weight_bits=None) -> CoreMap``."""


def register_mapper(name: str, fn: Callable[..., CoreMap]) -> None:
    """Add a mapper under ``name``; a name already taken is an error."""
    if name in MAPPERS:
        raise NpusimError(f"SNN mapper {name!r} is already registered")
    MAPPERS[name] = fn


def mapper(name: str) -> Callable[..., CoreMap]:
    """The mapper registered under ``name`` (``greedy`` or ``traffic``)."""
    if name not in MAPPERS:
        raise NpusimError(f"unknown SNN mapper {name!r}; known: {', '.join(sorted(MAPPERS))}")
    return MAPPERS[name]


def _greedy(net: Network, device: SnnDevice, activity: Mapping | None = None, *,
            max_neurons_per_core: int | None = None, weight_bits: int | None = None) -> CoreMap:
    """:func:`~npusim.engine.snn.map_network` in the mappers' calling convention."""
    return map_network(net, device, max_neurons_per_core, weight_bits)


register_mapper("greedy", _greedy)
register_mapper("traffic", map_traffic)


def _unique(keys: np.ndarray, space: int | None = None) -> np.ndarray:
    """Sorted distinct values of non-negative integer ``keys`` (below ``space`` when given): a
    mark array when the key space is small (linear time), else a sort."""
    keys = np.asarray(keys, dtype=np.int64)
    if space is None:
        space = int(keys.max()) + 1 if keys.size else 0
    if space <= max(1 << 24, 8 * keys.size):
        mark = np.zeros(space, dtype=bool)
        mark[keys] = True
        return np.flatnonzero(mark)
    return np.unique(keys)


# ----------------------------------------------------------------------------- inputs
def _limits(device: SnnDevice, max_neurons_per_core: int | None,
            weight_bits: int | None) -> _Limits:
    s = device.structure
    cap = s.neurons_per_core if max_neurons_per_core is None else min(
        s.neurons_per_core, int(max_neurons_per_core))
    return _Limits(cap=int(cap), mem_bits=int(s.synaptic_memory * 8),
                   wbits=int(weight_bits or s.weight_bits or 1), fan_in=s.fan_in,
                   fan_out=s.fan_out)


def _proj(net: Network, i: int) -> _Proj:
    src, dst = connectivity(net, i)
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    size = net.layers[i].size
    fan_in = np.bincount(dst, minlength=size)
    ends = np.concatenate(([0], np.cumsum(fan_in)))
    return _Proj(src, dst, fan_in, ends)


def _weights(net: Network, activity: Mapping | None) -> dict[str, np.ndarray]:
    """Layer -> mean spikes per step of each neuron (1 where the activity does not say)."""
    out = {}
    for lay in net.layers:
        v = None if activity is None else activity.get(lay.name)
        if v is None:
            out[lay.name] = np.ones(lay.size)
        elif np.ndim(v) == 0:
            out[lay.name] = np.full(lay.size, check_rate(v, net, lay, "mapping"))
        else:
            a = np.asarray(v, dtype=np.float64)
            if a.ndim != 2 or a.shape[1] != lay.size:
                raise NpusimError(f"SNN mapping of {net.name!r}: layer {lay.name!r}: a raster "
                                  f"is a (T, {lay.size}) array; got shape {a.shape}")
            out[lay.name] = a.mean(axis=0)
    return out


# ----------------------------------------------------------------------------- partition
def _partition(net: Network, projs: list, w: dict, lim: _Limits, greedy: CoreMap | None,
               where: str) -> list[_Part]:
    """One partition per layer, chosen from the last layer back to the input (a layer's
    outgoing flows depend on the next layer's partition)."""
    chosen: list[_Part | None] = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, -1, -1):
        lay = net.layers[i]
        here = f"{where}: layer {lay.name!r}"
        cands = _candidates(net, i, projs[i], lim, greedy, here)
        scored = []
        for part in cands:
            ok, msgs = _check(part, projs[i], w[net.layers[i - 1].name] if i else None, lim)
            if not ok:
                continue
            nxt = chosen[i + 1] if i + 1 < len(net.layers) else None
            fl, fan_out = _out_flows(part, nxt, projs[i + 1] if nxt else None)
            if lim.fan_out is not None and fan_out > lim.fan_out:
                continue
            scored.append((round(msgs, 9), fl, part.n, len(scored), part))
        if not scored:
            raise CapacityError(f"{here}: no partition keeps every core within its limits "
                                f"(neurons {lim.cap}, synaptic memory {lim.mem_bits} bits, "
                                f"fan_in {lim.fan_in}, fan_out {lim.fan_out}); use a smaller "
                                f"layer or a larger device")
        chosen[i] = min(scored)[-1]
    return chosen


def _candidates(net: Network, i: int, proj: _Proj | None, lim: _Limits,
                greedy: CoreMap | None, where: str) -> list[_Part]:
    """Candidate partitions of layer ``i``: greedy's, the longest runs in index order and in
    (y, x, c) order, and the best spatial blocks."""
    lay = net.layers[i]
    if proj is not None and int(proj.fan_in.max(initial=0)) * lim.wbits > lim.mem_bits:
        raise CapacityError(f"{where}: one neuron's {int(proj.fan_in.max())} synapses x "
                            f"{lim.wbits} bits exceed a core's synaptic memory ({lim.mem_bits} "
                            f"bits); use fewer inputs per neuron or narrower weights")
    if proj is not None and lim.fan_in is not None:
        worst = _distinct(proj, np.argmax(proj.fan_in)[None])
        if worst > lim.fan_in:
            raise CapacityError(f"{where}: one neuron has {worst} distinct inputs, more than "
                                f"the {lim.fan_in} axon slots (fan_in) of a core; no mapping "
                                f"fits")
    out = []
    if greedy is not None:
        lm = greedy.layers[i]
        out.append(_Part(greedy.core_of[lay.name] - lm.first_core, lm.n_cores, "greedy"))
    order = np.arange(lay.size)
    out.append(_chunks(order, _max_chunk(order, proj, lim), "chunks"))
    if len(lay.shape) == 3:
        c, h, wd = lay.shape
        yxc = np.arange(lay.size).reshape(c, h, wd).transpose(1, 2, 0).ravel()
        out.append(_chunks(yxc, _max_chunk(yxc, proj, lim), "rows"))
        out.extend(_blocks(lay.shape, proj, lim))
    return out


def _chunks(order: np.ndarray, k: int, how: str) -> _Part:
    """``order`` cut into runs of ``k`` (the last shorter)."""
    size = order.size
    label = np.empty(size, dtype=np.int64)
    label[order] = np.arange(size) // k
    return _Part(label, -(-size // k), how)


def _max_chunk(order: np.ndarray, proj: _Proj | None, lim: _Limits) -> int:
    """The largest run length of ``order`` within every limit for every run (binary search;
    distinct inputs and synapses grow with the run)."""
    size = order.size
    hi = min(lim.cap, size)
    if proj is None:
        return hi
    rank = np.empty(size, dtype=np.int64)
    rank[order] = np.arange(size)
    by = np.argsort(rank[proj.dst], kind="stable")
    r = rank[proj.dst][by]
    seen_before = run_starts(proj.src[by], r)

    def fits(k: int) -> bool:
        run = r // k
        if np.bincount(run, minlength=1).max() * lim.wbits > lim.mem_bits:
            return False
        first = (seen_before < 0) | (run[np.maximum(seen_before, 0)] != run)
        return lim.fan_in is None or np.bincount(run, first, 1).max() <= lim.fan_in

    if fits(hi):
        return hi
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _blocks(shape: tuple, proj: _Proj | None, lim: _Limits) -> list[_Part]:
    """Spatial blocks ``bc x bh x bw``: for each channel count ``bc`` (a divisor of the
    channels) and height ``bh``, the widest ``bw`` whose central block is within every limit;
    the :data:`_CANDIDATE_BLOCKS` with the fewest (blocks x central fan-in) are returned."""
    c, h, wd = shape
    found = []
    for bc in [d for d in range(1, c + 1) if c % d == 0 and d <= lim.cap]:
        for bh in _heights(h):
            top = min(wd, lim.cap // (bc * bh))
            if top < 1:
                break
            if not _block_fits(shape, bc, bh, 1, proj, lim):
                continue
            lo, hi = 1, top
            if _block_fits(shape, bc, bh, hi, proj, lim):
                lo = hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _block_fits(shape, bc, bh, mid, proj, lim) else (lo, mid)
            bw = lo
            n = -(-c // bc) * -(-h // bh) * -(-wd // bw)
            fin = _distinct(proj, _central(shape, bc, bh, bw)) if proj is not None else 1
            found.append((n * fin, n, (bc, bh, bw)))
    out = []
    for _, _, (bc, bh, bw) in sorted(set(found))[:_CANDIDATE_BLOCKS]:
        ci, yi, xi = np.meshgrid(np.arange(c) // bc, np.arange(h) // bh, np.arange(wd) // bw,
                                 indexing="ij")
        nb = (-(-h // bh), -(-wd // bw))
        label = ((ci * nb[0] + yi) * nb[1] + xi).ravel()
        out.append(_Part(label, int(label.max()) + 1, f"blocks {bc}x{bh}x{bw}"))
    return out


def _heights(h: int) -> list[int]:
    """Block heights tried: every height up to 32, beyond that divisors and powers of two."""
    if h <= 32:
        return list(range(1, h + 1))
    return sorted({d for d in range(1, h + 1) if h % d == 0} | {2 ** k for k in range(
        h.bit_length()) if 2 ** k <= h})


def _central(shape: tuple, bc: int, bh: int, bw: int) -> np.ndarray:
    """Neuron indices of a block away from the edges (where padding would trim inputs)."""
    c, h, wd = shape
    y0, x0 = (h - bh) // 2, (wd - bw) // 2
    ci, yi, xi = np.meshgrid(np.arange(bc), y0 + np.arange(bh), x0 + np.arange(bw),
                             indexing="ij")
    return ((ci * h + yi) * wd + xi).ravel()


def _block_fits(shape, bc, bh, bw, proj, lim) -> bool:
    idx = _central(shape, bc, bh, bw)
    if idx.size > lim.cap:
        return False
    if proj is None:
        return True
    if int(proj.fan_in[idx].sum()) * lim.wbits > lim.mem_bits:
        return False
    return lim.fan_in is None or _distinct(proj, idx) <= lim.fan_in


def _distinct(proj: _Proj, idx: np.ndarray) -> int:
    """Distinct input neurons of the destination neurons ``idx``."""
    starts, lens = proj.ends[idx], proj.fan_in[idx]
    pos = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    pos += np.arange(pos.size)
    return int(_unique(proj.src[pos]).size)


def _check(part: _Part, proj: _Proj | None, w_src, lim: _Limits) -> tuple[bool, float]:
    """Whether every core of ``part`` is within the per-core limits, and the rate-weighted
    messages into the layer (0 for the input layer)."""
    if np.bincount(part.label, minlength=part.n).max() > lim.cap:
        return False, 0.0
    if proj is None:
        return True, 0.0
    syn = np.bincount(part.label, proj.fan_in, part.n) * lim.wbits
    if syn.max() > lim.mem_bits:
        return False, 0.0
    pair = _unique(proj.src * part.n + part.label[proj.dst])
    if lim.fan_in is not None and np.bincount(pair % part.n, minlength=part.n).max() > lim.fan_in:
        return False, 0.0
    return True, (float(w_src[pair // part.n].sum()) if w_src is not None else 0.0)


def _out_flows(part: _Part, nxt: _Part | None, proj: _Proj | None) -> tuple[int, int]:
    """Flows (distinct (core, next-layer core) pairs) of ``part``'s cores and the largest
    fan-out among them."""
    if nxt is None:
        return 0, 0
    pair = _unique(part.label[proj.src] * nxt.n + nxt.label[proj.dst])
    return pair.size, int(np.bincount(pair // nxt.n, minlength=part.n).max())


# ----------------------------------------------------------------------------- placement
def _slots(device: SnnDevice) -> np.ndarray:
    """Every usable core of the device: rows ``(chip, local core, tile, x, y)``, in the
    greedy mapper's numbering (tile ``k`` of a chip at ``x = k // tiles_y``, ``y = k %
    tiles_y``; chips side by side along x)."""
    s = device.structure
    chip, local = np.divmod(np.arange(s.usable * s.chips), s.usable)
    tile = local // s.cores_per_tile
    return np.stack([chip, local, chip * s.tiles + tile, chip * s.tiles_x + tile // s.tiles_y,
                     tile % s.tiles_y], axis=1).astype(np.int64)


def _region(slots: np.ndarray, n: int, device: SnnDevice,
            cover: np.ndarray | None = None) -> np.ndarray:
    """Slots of the most nearly square rectangle of tiles from the mesh origin that holds
    ``n`` cores (and the slots ``cover``), in snake order (down one column, up the next)."""
    x, y = slots[:, 3], slots[:, 4]
    gx, gy = int(x.max()) + 1, int(y.max()) + 1
    need_x = int(x[cover].max()) + 1 if cover is not None and cover.size else 1
    need_y = int(y[cover].max()) + 1 if cover is not None and cover.size else 1
    best = None
    for h in range(need_y, gy + 1):
        for wdt in range(need_x, gx + 1):
            inside = (x < wdt) & (y < h)
            if inside.sum() >= n:
                key = (max(wdt, h), wdt * h, wdt)
                if best is None or key < best[0]:
                    best = (key, inside)
                break
    inside = best[1]
    idx = np.flatnonzero(inside)
    snake = np.where(x[idx] % 2 == 0, y[idx], -y[idx])
    return idx[np.lexsort((slots[idx, 1], snake, x[idx]))]


def _flow_matrix(net: Network, projs: list, w: dict, parts: list[_Part]) -> sparse.csr_matrix:
    """``F[a, b]``: expected messages per step from core ``a`` to core ``b`` (cores numbered
    layer after layer), sparse."""
    first = np.concatenate(([0], np.cumsum([p.n for p in parts])))
    n = int(first[-1])
    rows, cols, vals = [], [], []
    for i in range(1, len(net.layers)):
        part, prev, proj = parts[i], parts[i - 1], projs[i]
        pair = _unique(proj.src * part.n + part.label[proj.dst])
        psrc, pdst = np.divmod(pair, part.n)
        rows.append(first[i - 1] + prev.label[psrc])
        cols.append(first[i] + pdst)
        vals.append(w[net.layers[i - 1].name][psrc])
    if not rows:
        return sparse.csr_matrix((n, n))
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                     np.concatenate(cols))), shape=(n, n))


_NEAR = 24
"""Slots tried per core and pass: those nearest the weighted median of its partners (where
the core alone would cost least); an effort knob, not a device fact."""


def _swap(F: sparse.csr_matrix, slots: np.ndarray, region: np.ndarray, start: np.ndarray,
          sweeps: int) -> np.ndarray:
    """Local search on the quadratic assignment: move each core to the slot (of ``region``)
    that lowers the hop-weighted traffic most, swapping with the core there, among the
    :data:`_NEAR` slots nearest the weighted median of its partners' positions (the best spot
    for it alone under the L1 metric); passes until none helps or ``sweeps`` ran out. Returns
    the slot (row of ``slots``) of each core."""
    W = (F + F.T).tocsr()
    W.sum_duplicates()
    ptr, nbr, wt = W.indptr, W.indices, W.data
    n = F.shape[0]
    at = np.asarray(start, dtype=np.int64).copy()           # slot row of each core
    reg = np.asarray(region, dtype=np.int64)
    where = np.full(len(slots), -1, dtype=np.int64)
    where[reg] = np.arange(reg.size)                        # slot row -> region index
    occ = np.full(reg.size, -1, dtype=np.int64)              # core in each region slot
    occ[where[at]] = np.arange(n)
    rx, ry = slots[reg, 3].astype(np.float64), slots[reg, 4].astype(np.float64)
    px, py = slots[at, 3].astype(np.float64), slots[at, 4].astype(np.float64)
    k = min(_NEAR, reg.size)

    def cost_at(cores: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Hop-weighted traffic of each core of ``cores`` were it at (x, y), others fixed."""
        lens = ptr[cores + 1] - ptr[cores]
        pos = np.repeat(ptr[cores] - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        pos += np.arange(pos.size)
        seg = np.repeat(np.arange(cores.size), lens)
        c = nbr[pos]
        d = np.abs(x[seg] - px[c]) + np.abs(y[seg] - py[c])
        return np.bincount(seg, wt[pos] * d, cores.size)

    for _ in range(max(0, int(sweeps))):
        moved = False
        for a in range(n):
            lo, hi = ptr[a], ptr[a + 1]
            if lo == hi:
                continue
            ra = where[at[a]]
            mx, my = _wmedian(px[nbr[lo:hi]], wt[lo:hi]), _wmedian(py[nbr[lo:hi]], wt[lo:hi])
            near = np.argpartition(np.abs(rx - mx) + np.abs(ry - my), k - 1)[:k]
            near = near[near != ra]
            if not near.size:
                continue
            aa = np.full(near.size, a)
            here = cost_at(np.array([a]), rx[[ra]], ry[[ra]])[0]
            delta = cost_at(aa, rx[near], ry[near]) - here
            b = occ[near]
            full = b >= 0
            if full.any():
                bb, rn = b[full], near[full]
                w_ab = np.zeros(n)
                w_ab[nbr[lo:hi]] = wt[lo:hi]
                d_ab = np.abs(rx[rn] - rx[ra]) + np.abs(ry[rn] - ry[ra])
                delta[full] += (cost_at(bb, np.full(bb.size, rx[ra]), np.full(bb.size, ry[ra]))
                                - cost_at(bb, rx[rn], ry[rn]) + 2 * w_ab[bb] * d_ab)
            j = int(np.argmin(delta))
            if not delta[j] < -1e-9 * max(1.0, here):
                continue
            r, bj = near[j], int(b[j])
            occ[ra], occ[r] = bj, a
            at[a], px[a], py[a] = reg[r], rx[r], ry[r]
            if bj >= 0:
                at[bj], px[bj], py[bj] = reg[ra], rx[ra], ry[ra]
            moved = True
        if not moved:
            break
    return at


def _wmedian(v: np.ndarray, w: np.ndarray) -> float:
    """A weighted median of ``v`` (minimises sum w |x - v|)."""
    o = np.argsort(v, kind="stable")
    c = np.cumsum(w[o])
    return float(v[o][np.searchsorted(c, 0.5 * c[-1])])


def _core_map(net: Network, parts: list[_Part], slots: np.ndarray, at: np.ndarray,
              projs: list, lim: _Limits, device: SnnDevice) -> CoreMap:
    """The :class:`~npusim.engine.snn.CoreMap` of a partition and its placement."""
    s = device.structure
    first = np.concatenate(([0], np.cumsum([p.n for p in parts]))).astype(np.int64)
    row = slots[at]
    maps = []
    core_of = {}
    for i, (lay, part) in enumerate(zip(net.layers, parts)):
        core_of[lay.name] = first[i] + part.label
        per = np.bincount(part.label, minlength=part.n)
        maps.append(LayerMap(lay.name, int(first[i]), part.n, int(per.max()),
                             _bound(part, projs[i], lim)))
    chip = row[:, 0]
    return CoreMap(layers=tuple(maps), core_of=core_of, n_cores=int(first[-1]),
                   core_x=row[:, 3].copy(), core_y=row[:, 4].copy(), core_tile=row[:, 2].copy(),
                   core_chip=chip.copy(), chips=int(chip.max()) + 1 if chip.size else 1)


def _bound(part: _Part, proj: _Proj | None, lim: _Limits) -> str:
    """The limit closest to binding on the layer's cores (highest use / limit), or ``layer``
    when the whole layer sits on one core."""
    if part.n == 1:
        return "layer"
    use = {"neurons_per_core": np.bincount(part.label).max() / lim.cap}
    if proj is not None:
        syn = np.bincount(part.label, proj.fan_in, part.n).max() * lim.wbits
        use["synaptic_memory"] = syn / lim.mem_bits
        if lim.fan_in is not None:
            pair = _unique(proj.src * part.n + part.label[proj.dst])
            use["fan_in"] = np.bincount(pair % part.n, minlength=part.n).max() / lim.fan_in
    return max(use, key=use.get)


__all__ = ["LIMITS", "MAPPERS", "Traffic", "core_loads", "map_traffic", "mapper",
           "register_mapper", "traffic"]
