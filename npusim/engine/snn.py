"""Spiking networks on a spiking-core device: map the layers, count the events, price the steps.

The event-driven model of ``/work/shared/reference/snn.md`` sec. 2.2 (SANA-FE style), for a
feed-forward network given as layers (``input``, ``dense``, ``conv2d``) and its activity:

1. **Network.** :class:`Network` is a plain description: layer shapes and kinds; the
   connectivity (who feeds whom) follows from them (:func:`connectivity`): dense is
   all-to-all, conv2d is a ``kh x kw`` window with a stride and a symmetric zero ``padding``
   (taps that fall in the padding are no synapse) over the input channels of its group
   (``groups`` splits input and output channels alike, as ONNX's Conv does), maps flattened
   channel-major (index ``(c * h + y) * w + x``). Average pooling is a conv2d with one group
   per channel (:func:`pool_layer`): its weights are fixed, its synapses are those of the
   window.
2. **Mapping.** :func:`map_network` is greedy, layer by layer; each layer starts on a new tile
   (so spikes between layers cross the mesh, as ``benchmarks/vs_sanafe.py``'s ``map_layers``
   does) and fills consecutive cores with as many neurons as the tightest per-core limit allows:
   ``neurons_per_core`` (or a smaller cap), synaptic memory (synapses x ``weight_bits``; conv
   synapses are stored one per edge, as SANA-FE does, not shared), and the fan-in (distinct
   input neurons of the core's neurons <= ``fan_in`` axon slots). Each :class:`LayerMap` records
   which limit bound it. Afterwards the fan-out limit (distinct destination cores of a core
   <= ``fan_out``) is checked. A network that needs more cores than the device has, or a layer
   that no core can hold, is a :class:`~npusim.errors.CapacityError` naming the layer.
   Cores lie in tiles of ``cores_per_tile``; tile ``k`` of a chip sits at mesh ``x = k //
   tiles_y``, ``y = k % tiles_y`` (the layout that reproduces SANA-FE's hop counts on Loihi);
   chips lie side by side along x.
3. **Counts** per core and timestep, from the activity ``s[t, n]`` of each layer: a spike
   raster (0/1, exact counts) or a rate ``p`` in [0, 1] (mean spikes per neuron per timestep,
   expected counts). SANA-FE's conventions (``benchmarks/vs_sanafe.py``): a spike of neuron
   ``n`` in step ``t`` is, in that step, one ``SPIKE_OUT`` message on its core and one
   ``AXON_IN`` on each *distinct* destination core (dense: every core of the next layer; conv:
   the cores holding its receptive-field outputs), the messages' ``HOP_EW``/``HOP_NS`` hops (or
   ``IN_TILE`` deliveries) from :func:`~npusim.kernels.snn.route_xy` (charged to the sender),
   and ``SYNOP`` = its fan-out on each destination core; the destination integrates in step
   ``t + 1``. Every non-input neuron is visited every step: ``UPDATE_ACTIVE`` if updated,
   ``UPDATE_IDLE`` if not (SANA-FE's access + update on Loihi); a neuron that fires adds one
   ``NEURON_FIRE``. Input neurons are spike sources (SANA-FE's input units cost nothing): they
   only send messages. All of these are linear in ``s``, so a rate's expected counts are the
   raster formulas with ``s = p``.
   **Updates** (the one non-linear count). A neuron is updated in step ``t`` when it received
   input in ``t - 1`` or its potential is not at rest. With ``a(t)`` the chance that at least
   one of its ``fan_in`` sources spiked in ``t`` and ``f(t)`` its own firing::

       a(t)  = 1 - prod_{sources i} (1 - s_i(t))        (independent sources)
       U(t)  = 1 - (1 - a(t-1)) * (1 - NZ(t-1)),   U(0) = 0
       NZ(t) = max(0, U(t) - f(t))                      (firing resets to rest)

   ``NZ`` is the chance the potential is not at rest after the step. With SANA-FE's
   ``leak_decay = 1`` (no leak) a potential that has moved stays off rest until the neuron
   fires, so after a few steps of input most neurons are updated every step (``U`` -> 1).
   For a raster this is exact except where a potential lands exactly on 0 (sum of inputs
   cancelling, or SANA-FE truncating a carried-over potential below 1/64 to 0); pass
   ``updated`` masks (e.g. from a LIF reference) to count updates exactly.
4. **Pricing.** :func:`~npusim.kernels.snn.step` with the device's cost set, the pipeline
   :data:`STAGES` of the timing model, the barrier of the tiles in use and the tick; energy by
   term + static power x chips x latency; latency = the sum of the step times.

Pipeline stages are an engine constant, not a device field: how a core overlaps its units is
a property of the timing model a simulator adopts (SANA-FE's ``simple`` model splits at the
soma buffer), and the published device numbers (energies, times per event) do not carry it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..arch.snn_device import EVENT_KINDS, CostSet, SnnDevice
from ..errors import CapacityError, NpusimError
from ..kernels import snn as ks

KINDS = ("input", "dense", "conv2d")
TERM_OF_KIND = {kind: ks.TERM_NAMES.index(kind.upper()) for kind in EVENT_KINDS}
"""Device event kind -> kernel term index (the names agree, upper-cased)."""

_FRONT = (ks.AXON_IN, ks.SYNOP)
_ROUTER = (ks.IN_TILE, ks.HOP_EW, ks.HOP_NS)
STAGES = {
    "serial": np.zeros(ks.N_TERMS, dtype=np.int64),
    "sanafe": np.array([0 if k in _FRONT else 2 if k in _ROUTER else 1
                        for k in range(ks.N_TERMS)], dtype=np.int64),
}
"""Pipeline stage of each kernel term, by timing model.

``serial``: every event of a core one after another (snn.md sec. 2.2's ``busy_c``).
``sanafe``: SANA-FE's ``simple`` model (loihi.yaml ``buffer_position: soma``): a front stage
{``AXON_IN``, ``SYNOP``} (messages in, synapse unit) overlaps a back stage {updates,
``NEURON_FIRE``, ``SPIKE_OUT``, ``LEARN``} (soma, axon out); the router's work (``IN_TILE``,
hops) is a third stage of its own, since SANA-FE keeps hop latency off a core's path in that
model (on Loihi it is also too small to be the slowest stage of a busy core)."""


# ----------------------------------------------------------------------------- the network
@dataclass(frozen=True)
class Layer:
    """One layer: ``kind`` input | dense | conv2d; ``shape`` ``(n,)`` or ``(c, h, w)``;
    for conv2d ``kernel`` ``(kh, kw)``, ``stride``, a symmetric zero ``padding`` on every side
    and ``groups`` (input and output channels split into that many groups; each output channel
    sees only its group's input channels)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output extent of a window of ``kernel`` taps moved by ``stride`` over ``size`` inputs
    padded by ``padding`` on both sides (floor, as ONNX's Conv without ``ceil_mode``)."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_layer(name: str, prev_shape: tuple[int, int, int], kernel: tuple[int, int],
               stride: int | None = None, padding: int = 0) -> Layer:
    """An average (or sum) pooling layer over ``prev_shape`` ``(c, h, w)``: a conv2d with one
    group per channel, so each output neuron reads the ``kh x kw`` window of its own channel
    (fixed weights; the engine counts synapses, not weight values). ``stride`` defaults to
    the kernel (non-overlapping windows).

    >>> pool_layer("p", (4, 8, 8), (2, 2))
    Layer(name='p', kind='conv2d', shape=(4, 4, 4), kernel=(2, 2), stride=2, padding=0, groups=4)
    """
    c, h, w = prev_shape
    kh, kw = kernel
    s = kh if stride is None else int(stride)
    return Layer(name, "conv2d", (c, conv_out(h, kh, s, padding), conv_out(w, kw, s, padding)),
                 kernel=(kh, kw), stride=s, padding=padding, groups=c)


@dataclass(frozen=True)
class Network:
    """A feed-forward spiking network: an input layer, then dense / conv2d layers."""

    name: str
    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        names = [lay.name for lay in self.layers]
        if not self.layers or self.layers[0].kind != "input":
            raise NpusimError(f"SNN network {self.name!r}: the first layer must be the input "
                              f"layer (kind 'input'); got {names[:1]}")
        if len(set(names)) != len(names):
            raise NpusimError(f"SNN network {self.name!r}: layer names must be unique: {names}")
        for i, lay in enumerate(self.layers):
            if lay.kind not in KINDS:
                raise NpusimError(f"SNN network {self.name!r}: layer {lay.name!r} has kind "
                                  f"{lay.kind!r}; expected one of {', '.join(KINDS)}")
            if i and lay.kind == "input":
                raise NpusimError(f"SNN network {self.name!r}: layer {lay.name!r}: only the "
                                  f"first layer may be an input layer")
            if not lay.shape or any(int(d) < 1 for d in lay.shape):
                raise NpusimError(f"SNN network {self.name!r}: layer {lay.name!r} has shape "
                                  f"{lay.shape}; every dimension must be >= 1")
            if lay.kind == "conv2d":
                self._check_conv(lay, self.layers[i - 1])
            elif (lay.padding, lay.groups) != (0, 1):
                raise NpusimError(f"SNN network {self.name!r}: {lay.kind} layer {lay.name!r} "
                                  f"has padding {lay.padding}, groups {lay.groups}; only conv2d "
                                  f"layers take padding and groups")

    def _check_conv(self, lay: Layer, prev: Layer) -> None:
        """A conv2d layer's shape must be what its window, stride, padding and groups make of
        its input's (one check here, so :func:`connectivity` can trust the shapes)."""
        where = f"SNN network {self.name!r}: conv2d layer {lay.name!r}"
        if len(lay.shape) != 3 or len(prev.shape) != 3:
            raise NpusimError(f"{where} and its input need (channels, height, width) shapes")
        kh, kw = (int(k) for k in lay.kernel)
        s, p, g = int(lay.stride), int(lay.padding), int(lay.groups)
        if min(kh, kw, s, g) < 1 or p < 0:
            raise NpusimError(f"{where} has kernel {lay.kernel}, stride {lay.stride}, padding "
                              f"{lay.padding}, groups {lay.groups}; kernel, stride and groups "
                              f"must be >= 1 and padding >= 0")
        if prev.shape[0] % g or lay.shape[0] % g:
            raise NpusimError(f"{where}: groups {g} must divide its input channels "
                              f"({prev.shape[0]}) and its output channels ({lay.shape[0]})")
        if kh > prev.shape[1] + 2 * p or kw > prev.shape[2] + 2 * p or p >= min(kh, kw):
            raise NpusimError(f"{where}: a {kh}x{kw} kernel with padding {p} over {prev.shape} "
                              f"leaves no valid window or a window wholly in the padding; "
                              f"use a smaller kernel or padding")
        oh, ow = conv_out(prev.shape[1], kh, s, p), conv_out(prev.shape[2], kw, s, p)
        if (oh, ow) != tuple(lay.shape[1:]):
            raise NpusimError(f"{where} has shape {lay.shape}; a {kh}x{kw} kernel, stride {s}, "
                              f"padding {p} over {prev.shape} gives ({lay.shape[0]}, {oh}, "
                              f"{ow})")


def connectivity(net: Network, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``(src, dst)`` neuron indices of every synapse into layer ``i``, sorted by ``dst``.

    A conv2d tap that falls in the zero padding is no synapse (nothing spikes there).

    >>> net = Network("n", (Layer("in", "input", (1, 3, 3)),
    ...                     Layer("c", "conv2d", (1, 2, 2), kernel=(2, 2))))
    >>> src, dst = connectivity(net, 1)
    >>> src[dst == 3].tolist()                   # output (1, 1) sees inputs 4, 5, 7, 8
    [4, 5, 7, 8]
    >>> pad = Network("p", (Layer("in", "input", (1, 3, 3)),
    ...                     Layer("c", "conv2d", (1, 3, 3), kernel=(3, 3), padding=1)))
    >>> src, dst = connectivity(pad, 1)
    >>> src[dst == 0].tolist(), len(src)         # a corner sees 4 inputs; 4*4 + 4*6 + 9
    ([0, 1, 3, 4], 49)
    """
    lay, prev = net.layers[i], net.layers[i - 1]
    if lay.kind == "dense":
        dst, src = np.divmod(np.arange(prev.size * lay.size, dtype=np.int64), prev.size)
        return src, dst
    ic, ih, iw = prev.shape
    oc, oh, ow = lay.shape
    kh, kw = lay.kernel
    s, p = lay.stride, lay.padding
    cg, mg = ic // lay.groups, oc // lay.groups          # channels per group, in and out
    co, oy, ox, c, ky, kx = np.meshgrid(np.arange(oc), np.arange(oh), np.arange(ow),
                                        np.arange(cg), np.arange(kh), np.arange(kw),
                                        indexing="ij")
    ci = (co // mg) * cg + c
    iy, ix = oy * s + ky - p, ox * s + kx - p
    keep = ((iy >= 0) & (iy < ih) & (ix >= 0) & (ix < iw)).ravel()
    dst = ((co * oh + oy) * ow + ox).ravel()[keep]
    src = ((ci * ih + iy) * iw + ix).ravel()[keep]
    return src.astype(np.int64), dst.astype(np.int64)


# ----------------------------------------------------------------------------- the mapping
@dataclass(frozen=True)
class LayerMap:
    """Where a layer went: cores ``first_core .. first_core + n_cores - 1``, at most
    ``per_core`` neurons each, and the limit that set ``per_core``: ``neurons_per_core``,
    ``synaptic_memory``, ``fan_in`` or ``layer`` (the whole layer fits one core)."""

    name: str
    first_core: int
    n_cores: int
    per_core: int
    bound_by: str


@dataclass(frozen=True)
class CoreMap:
    """Neuron -> core of every layer, and the mesh position of every core used."""

    layers: tuple[LayerMap, ...]
    core_of: Mapping
    n_cores: int
    core_x: np.ndarray
    core_y: np.ndarray
    core_tile: np.ndarray
    core_chip: np.ndarray
    chips: int

    @property
    def tiles(self) -> int:
        """Tiles holding at least one mapped neuron."""
        return len(set(self.core_tile.tolist()))


def map_network(net: Network, device: SnnDevice, max_neurons_per_core: int | None = None,
                weight_bits: int | None = None, layer_per_tile: bool = True) -> CoreMap:
    """Greedy layer-by-layer mapping of ``net`` onto ``device`` (see the module docstring).

    ``max_neurons_per_core`` caps the device's ``neurons_per_core``; ``weight_bits`` (default
    the device's widest, or 1 if unpublished) sizes a synapse.
    :func:`npusim.engine.snn_map.map_traffic` maps with fewer messages and hops.

    >>> from npusim.arch.snn_device import load_snn_device
    >>> net = Network("n", (Layer("in", "input", (300,)), Layer("h", "dense", (600,))))
    >>> m = map_network(net, load_snn_device("snn-edu"))
    >>> [(lm.first_core, lm.n_cores, lm.per_core, lm.bound_by) for lm in m.layers]
    [(0, 2, 256, 'neurons_per_core'), (4, 3, 218, 'synaptic_memory')]
    """
    s = device.structure
    cap = s.neurons_per_core if max_neurons_per_core is None else min(
        s.neurons_per_core, int(max_neurons_per_core))
    wbits = weight_bits or s.weight_bits or 1
    mem_bits = int(s.synaptic_memory * 8)
    per_chip = s.usable
    available = per_chip * s.chips
    core_of: dict[str, np.ndarray] = {}
    maps = []
    next_core = 0
    for i, lay in enumerate(net.layers):
        if layer_per_tile and next_core % s.cores_per_tile:
            next_core += s.cores_per_tile - next_core % s.cores_per_tile
        where = (f"SNN mapping of {net.name!r} on {device.name} ({device.source}): layer "
                 f"{lay.name!r}")
        src = dst = None
        limits = {"neurons_per_core": cap}
        if i:
            src, dst = connectivity(net, i)
            fan_in = np.bincount(dst, minlength=lay.size)
            per_neuron = int(fan_in.max())
            limits["synaptic_memory"] = mem_bits // (per_neuron * wbits)
            if limits["synaptic_memory"] < 1:
                raise CapacityError(f"{where}: one neuron's {per_neuron} synapses x {wbits} "
                                    f"bits exceed a core's synaptic memory ({mem_bits} bits); "
                                    f"use fewer inputs per neuron or narrower weights")
        per_core, bound = _chunk(lay, limits, src, dst, s.fan_in, where)
        n_cores = -(-lay.size // per_core)
        if next_core + n_cores > available:
            raise CapacityError(f"{where} needs cores {next_core} .. {next_core + n_cores - 1} "
                                f"({per_core} neurons per core, bound by {bound}) but the "
                                f"device has {available} ({s.chips} chip(s) x {per_chip}); "
                                f"use a smaller network or more chips")
        core_of[lay.name] = next_core + np.arange(lay.size, dtype=np.int64) // per_core
        maps.append(LayerMap(lay.name, next_core, n_cores, per_core, bound))
        next_core += n_cores
    n = next_core
    cores = np.arange(n, dtype=np.int64)
    chip, local = np.divmod(cores, per_chip)
    tile_local = local // s.cores_per_tile
    m = CoreMap(layers=tuple(maps), core_of=core_of, n_cores=n,
                core_x=chip * s.tiles_x + tile_local // s.tiles_y, core_y=tile_local % s.tiles_y,
                core_tile=chip * s.tiles + tile_local, core_chip=chip,
                chips=int(chip.max()) + 1 if n else 1)
    if s.fan_out is not None:
        for i in range(1, len(net.layers)):
            src, dst = connectivity(net, i)
            prev = net.layers[i - 1]
            pairs = np.unique(core_of[prev.name][src] * n + core_of[net.layers[i].name][dst])
            out = np.bincount(pairs // n, minlength=n).max()
            if out > s.fan_out:
                raise CapacityError(f"SNN mapping of {net.name!r} on {device.name} "
                                    f"({device.source}): layer {prev.name!r} has a core sending "
                                    f"to {out} cores, more than fan_out {s.fan_out}; split "
                                    f"layer {net.layers[i].name!r} over fewer cores")
    return m


def _chunk(lay: Layer, limits: dict, src, dst, fan_in: int | None, where: str) -> tuple[int, str]:
    """Neurons per core: the largest count within every limit (fan-in checked on every chunk of
    that size, binary search: distinct inputs grow with the chunk), and the limit that bound it."""
    k = min(min(limits.values()), lay.size)
    limit = min(limits, key=limits.get) if k < lay.size else "layer"
    if src is None or fan_in is None:
        return k, limit
    seen_before = run_starts(src, dst)

    def distinct(n: int) -> int:
        chunk = dst // n
        first = (seen_before < 0) | (chunk[np.maximum(seen_before, 0)] != chunk)
        return int(np.bincount(chunk, first).max())

    if distinct(1) > fan_in:
        raise CapacityError(f"{where}: one neuron has {distinct(1)} distinct inputs, more "
                            f"than the {fan_in} axon slots (fan_in) of a core; no mapping fits")
    if distinct(k) <= fan_in:
        return k, limit
    lo, hi = 1, k                                  # distinct(lo) fits, distinct(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if distinct(mid) <= fan_in else (lo, mid)
    return lo, "fan_in"


def run_starts(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For synapses sorted by ``dst``: the position of the previous synapse from the same
    source (-1 if none). When the destinations are cut into runs of consecutive indices, a
    synapse brings a new distinct input to its run exactly when that previous synapse lies in
    an earlier run, so every run's distinct inputs follow by one bincount, for any run length.

    >>> run_starts(np.array([5, 6, 5, 5]), np.array([0, 0, 1, 2])).tolist()
    [-1, -1, 0, 2]
    """
    order = np.argsort(src, kind="stable")                 # by source, then position
    prev = np.full(src.size, -1, dtype=np.int64)
    same = src[order[1:]] == src[order[:-1]]
    prev[order[1:][same]] = order[:-1][same]
    return prev


# ----------------------------------------------------------------------------- the counts
def _activity(net: Network, activity: Mapping, timesteps: int | None) -> dict[str, np.ndarray]:
    """Layer -> (T, n) float64: a raster as 0/1, a rate broadcast; validated, naming the layer."""
    missing = [lay.name for lay in net.layers if lay.name not in activity]
    extra = [k for k in activity if k not in {lay.name for lay in net.layers}]
    if missing or extra:
        raise NpusimError(f"SNN activity of {net.name!r}: give a rate or a raster for every "
                          f"layer; missing {missing}, unknown {extra}")
    shapes = {np.shape(v)[0] for v in activity.values() if np.ndim(v) == 2}
    if len(shapes) > 1 or (shapes and timesteps is not None and shapes != {timesteps}):
        raise NpusimError(f"SNN activity of {net.name!r}: rasters have {sorted(shapes)} "
                          f"timesteps, timesteps={timesteps}; make them agree")
    T = shapes.pop() if shapes else timesteps
    if T is None or T < 1:
        raise NpusimError(f"SNN activity of {net.name!r}: give timesteps >= 1 (rates only)")
    out = {}
    for lay in net.layers:
        v = activity[lay.name]
        if np.ndim(v) == 0:
            out[lay.name] = np.full((T, lay.size), check_rate(v, net, lay, "activity"))
        else:
            a = np.asarray(v)
            if a.shape != (T, lay.size) or a.dtype != bool:
                raise NpusimError(f"SNN activity of {net.name!r}: layer {lay.name!r}: a raster "
                                  f"is a ({T}, {lay.size}) bool array; got {a.dtype} {a.shape}")
            out[lay.name] = a.astype(np.float64)
    return out


def check_rate(v, net: Network, lay: Layer, what: str) -> float:
    """A layer's spike rate as a float in [0, 1], or one error naming the network and layer."""
    p = float(v)
    if not 0.0 <= p <= 1.0:
        raise NpusimError(f"SNN {what} of {net.name!r}: layer {lay.name!r} has rate {v}; a "
                          f"rate is mean spikes per neuron per timestep, in [0, 1]")
    return p


def count_events(net: Network, mapping: CoreMap, activity: Mapping,
                 timesteps: int | None = None, updated: Mapping | None = None) -> np.ndarray:
    """Events per timestep, core and kernel term: ``(T, mapping.n_cores, N_TERMS)`` float64.

    ``activity``: layer -> rate in [0, 1] or (T, n) bool raster (every layer, the input
    included); ``updated``: optional layer -> (T, n) bool masks of the neurons updated in each
    step (exact updates; else the closed form of the module docstring).
    """
    s = _activity(net, activity, timesteps)
    T = next(iter(s.values())).shape[0]
    n = mapping.n_cores
    counts = np.zeros((T, n, ks.N_TERMS))
    for i, lay in enumerate(net.layers):
        cores = mapping.core_of[lay.name]
        act = s[lay.name]
        if i:
            prev = net.layers[i - 1]
            pre, pcores = s[prev.name], mapping.core_of[prev.name]
            src, dst = connectivity(net, i)
            pair = np.unique(src * n + cores[dst])              # (source neuron, dest core)
            psrc, pdst = np.divmod(pair, n)
            flow = np.unique(pcores[psrc] * n + pdst, return_inverse=True)
            fsrc, fdst = np.divmod(flow[0], n)
            for t in range(T):
                counts[t, :, ks.SYNOP] += np.bincount(cores[dst], pre[t, src], n)
                counts[t, :, ks.AXON_IN] += np.bincount(pdst, pre[t, psrc], n)
                counts[t, :, ks.SPIKE_OUT] += np.bincount(pcores[psrc], pre[t, psrc], n)
                fc = np.bincount(flow[1], pre[t, psrc], fsrc.size)
                ew, ns, in_tile, _ = ks.route_xy(
                    fsrc, fdst, fc, mapping.core_x, mapping.core_y, mapping.core_tile,
                    mapping.core_chip, np.arange(mapping.chips, dtype=np.int64),
                    np.zeros(mapping.chips, dtype=np.int64))
                counts[t, :, ks.HOP_EW] += ew
                counts[t, :, ks.HOP_NS] += ns
                counts[t, :, ks.IN_TILE] += in_tile
            if updated is not None and lay.name in updated:
                upd = np.asarray(updated[lay.name], dtype=np.float64)
            else:
                upd = _updates(pre, src, dst, act, lay.size)
            for t in range(T):
                counts[t, :, ks.UPDATE_ACTIVE] += np.bincount(cores, upd[t], n)
                counts[t, :, ks.UPDATE_IDLE] += np.bincount(cores, 1.0 - upd[t], n)
                counts[t, :, ks.NEURON_FIRE] += np.bincount(cores, act[t], n)
    return counts


def _updates(pre: np.ndarray, src, dst, fire: np.ndarray, size: int) -> np.ndarray:
    """U(t) of the module docstring: the chance each neuron is updated in each step."""
    T = pre.shape[0]
    upd = np.zeros((T, size))
    a_prev = np.zeros(size)
    nz_prev = np.zeros(size)
    for t in range(T):
        upd[t] = 1.0 - (1.0 - a_prev) * (1.0 - nz_prev)
        nz_prev = np.clip(upd[t] - fire[t], 0.0, 1.0)
        p = pre[t, src]
        certain = np.bincount(dst, p >= 1.0, size) > 0
        log_rest = np.bincount(dst, np.log1p(-np.where(p >= 1.0, 0.0, p)), size)
        a_prev = np.where(certain, 1.0, -np.expm1(log_rest))
    return upd


# ----------------------------------------------------------------------------- pricing
@dataclass
class SnnResult:
    """What a run costs: totals, per term, per step; the counts and the mapping behind them."""

    energy_j: float
    energy_by_term_j: dict
    static_j: float
    latency_s: float
    step_time_s: np.ndarray
    core_busy_s: np.ndarray
    critical_core: np.ndarray
    counts: np.ndarray
    mapping: CoreMap
    barrier_s: float
    notes: list = field(default_factory=list)


def cost_vectors(costs: CostSet, overrides: Mapping | None = None,
                 where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Kernel ``e_cost``, ``t_cost`` from a cost set (absent kinds NaN), with ``overrides``:
    kind -> (joules, seconds). An all-in synop without a time gets time 0 (its tick times it).
    """
    e = np.full(ks.N_TERMS, np.nan)
    t = np.full(ks.N_TERMS, np.nan)
    for kind, ev in costs.events.items():
        k = TERM_OF_KIND[kind]
        e[k] = np.nan if ev.energy is None else ev.energy
        t[k] = (0.0 if ev.scope == "all-in" else np.nan) if ev.time is None else ev.time
    for kind, (j, sec) in (overrides or {}).items():
        if kind not in TERM_OF_KIND:
            raise NpusimError(f"SNN costs{where}: unknown event kind {kind!r}; kinds: "
                              f"{', '.join(EVENT_KINDS)}")
        e[TERM_OF_KIND[kind]], t[TERM_OF_KIND[kind]] = j, sec
    return e, t


def run(net: Network, device: SnnDevice, activity: Mapping, timesteps: int | None = None, *,
        mapping: CoreMap | None = None, cost_set: str | None = None,
        costs: Mapping | None = None, layer_costs: Mapping | None = None,
        stages: str | np.ndarray = "serial",
        barrier: float | Callable[[int], float] | None = None,
        static_power: float | None = None, tick: float | None = None,
        updated: Mapping | None = None, max_neurons_per_core: int | None = None) -> SnnResult:
    """Cost ``net`` on ``device`` for the given activity (rates or rasters per layer).

    ``costs`` overrides event costs (kind -> (J, s)); ``layer_costs`` overrides them for the
    cores of one layer (layer -> {kind: (J, s)}, e.g. a conv synapse priced apart from a dense
    one); ``stages``: a name of :data:`STAGES` or an array; ``barrier``: seconds or a function
    of the tiles in use (default: the cost set's barrier, 0 if it has none); ``static_power``:
    watts per chip (default the cost set's, 0 if none; pass 0 for a SANA-FE-comparable run);
    ``tick``: the least step time (default the device's, else 0).

    Energy = sum of the kernel's per-term energies (NaN terms, absent on the device, skipped)
    + static power x chips x latency; latency = sum of the step times.
    """
    mapping = mapping or map_network(net, device, max_neurons_per_core)
    counts = count_events(net, mapping, activity, timesteps, updated)
    cs = device.cost_set(cost_set)
    where = f" of {device.name} ({device.source})"
    e, t = cost_vectors(cs, costs, where)
    notes = []
    if cs.all_in:
        covered = [k for k in range(ks.N_TERMS) if k != ks.SYNOP]
        counts[:, :, covered] = 0.0
        notes.append("all-in synop: every other term is covered by it and not counted")
    stage = STAGES[stages] if isinstance(stages, str) else np.asarray(stages, dtype=np.int64)
    if barrier is None:
        b = cs.barrier.seconds(mapping.tiles, mapping.chips) if cs.barrier else 0.0
    else:
        b = float(barrier(mapping.tiles) if callable(barrier) else barrier)
    tk = float(tick if tick is not None else (device.structure.tick or 0.0))
    groups: dict[tuple, list[int]] = {}
    for lm in mapping.layers:
        over = tuple(sorted((layer_costs or {}).get(lm.name, {}).items()))
        groups.setdefault(over, []).extend(range(lm.first_core, lm.first_core + lm.n_cores))
    T = counts.shape[0]
    energy = np.zeros(ks.N_TERMS)
    priced = np.zeros(ks.N_TERMS, dtype=bool)
    busy = np.zeros((T, mapping.n_cores))
    for over, cores in groups.items():
        ge, gt = cost_vectors(cs, {**(costs or {}), **dict(over)}, where)
        sub = counts[:, cores, :]
        absent = [ks.TERM_NAMES[k] for k in range(ks.N_TERMS)
                  if not (ge[k] >= 0 and gt[k] >= 0) and sub[:, :, k].any()]
        if absent:
            raise NpusimError(f"SNN run of {net.name!r}: the cost set {cs.name!r}{where} has no "
                              f"per-term cost for {', '.join(absent)}, which this run counts; "
                              f"give it in the device file or as costs={{kind: (J, s)}}")
        ge_run, gb, _, _ = ks.step(sub, ge, gt, stage, 0.0, 0.0)
        energy += np.where(np.isnan(ge_run), 0.0, ge_run)
        priced |= ~np.isnan(ge_run)
        busy[:, cores] = gb
    step_time = np.maximum((busy.max(axis=1) if mapping.n_cores else np.zeros(T)) + b, tk)
    critical = busy.argmax(axis=1) if mapping.n_cores else np.full(T, -1)
    latency = float(step_time.sum())
    p = static_power if static_power is not None else (cs.static.power if cs.static else 0.0)
    static_j = p * mapping.chips * latency
    # a term no group prices is absent (NaN), not 0
    by_term = {name: float(energy[k]) if priced[k] else float("nan")
               for k, name in enumerate(ks.TERM_NAMES)}
    by_term["STATIC"] = static_j
    return SnnResult(energy_j=float(energy.sum()) + static_j, energy_by_term_j=by_term,
                     static_j=static_j, latency_s=latency, step_time_s=step_time,
                     core_busy_s=busy, critical_core=critical, counts=counts, mapping=mapping,
                     barrier_s=b, notes=notes)


__all__ = ["KINDS", "STAGES", "Layer", "LayerMap", "CoreMap", "Network", "SnnResult",
           "check_rate", "connectivity", "conv_out", "cost_vectors", "count_events", "map_network",
           "pool_layer", "run"]
