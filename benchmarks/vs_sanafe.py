"""SANA-FE's side of the npusim-vs-SANA-FE comparison (issue 11 item 6).

Builds the same small spiking networks npusim will cost -- (a) a 2-layer dense net 256-256-10
and (b) a small conv net (1x16x16 input, 3x3 conv to 8 channels, dense to 10) -- with seeded
numpy weights, drives them with seeded Bernoulli (rate-coded) input spike trains at several
rates for ``T`` timesteps, runs each in SANA-FE (PyPI ``sanafe``) on the Loihi 1 architecture
file the wheel ships (``sanafe/examples/loihi.yaml``, loaded by ``sanafe.load_loihi()``), and
prints per case SANA-FE's energy (total and by term), latency, event counts and wall time.

The npusim columns come from :func:`npusim_run`: npusim's spiking-core engine
(``npusim.engine.snn``) on the very spike rasters SANA-FE produced, priced with SANA-FE's own
file costs (like for like; target: energy within 10 % of SANA-FE's), plus the ratio for the
shipped ``loihi`` preset's costs and the wall-time ratio.

What the later session gets from here:

* :class:`NetSpec` -- layer shapes, numpy weights, the core each neuron is mapped to, and (after
  :func:`sanafe_run`) the per-layer, per-timestep spike counts SANA-FE measured.
* :func:`sanafe_run` -- SANA-FE's totals and per-timestep traces, plus :func:`expected_counts`,
  the per-core, per-timestep event counts rebuilt from the spike trains and the connectivity,
  and :func:`price_counts`, the energy and latency those counts give under loihi.yaml's costs
  (checked against SANA-FE's own figures in ``tests/test_vs_sanafe.py``). npusim must produce
  the same count arrays.

SANA-FE runs in the current interpreter (``pip install sanafe``; 2.2.9 was used). Without it
the script says how to install it and exits 0.

Usage::

    python benchmarks/vs_sanafe.py            # both nets at rates 0.05, 0.1, 0.2, 0.4, T=16
    python benchmarks/vs_sanafe.py --quick    # one small dense case
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field

import numpy as np

RATES = (0.05, 0.1, 0.2, 0.4)
# Empirical (matches SANA-FE 2.2.9 spike for spike): its LIF carries the potential over from
# step to step truncated toward zero to a multiple of 1/64 (v <- trunc64(v*leak_decay) + u).
POTENTIAL_LSB = 1.0 / 64
TIMESTEPS = 16
SEED = 2026

# Per-event costs of SANA-FE's shipped loihi.yaml (sanafe 2.2.9, sanafe/examples/loihi.yaml),
# the ones our networks touch; used only to re-price the counts (price_counts), never as a
# npusim preset. Energies in J, latencies in s.
LOIHI_YAML = {
    "synapse_dense_j": 35.5e-12, "synapse_dense_s": 3.8e-9,   # loihi_dense_synapse
    "synapse_conv_j": 24.0e-12, "synapse_conv_s": 3.1e-9,     # loihi_conv_synapse
    "access_j": 51.2e-12, "access_s": 6.0e-9,                 # loihi_lif energy_access_neuron
    "update_j": 21.6e-12, "update_s": 3.7e-9,                 # loihi_lif energy_update_neuron
    "spike_out_j": 69.3e-12, "spike_out_s": 30.0e-9,          # loihi_lif energy_spike_out
    "message_out_j": 111.0e-12, "message_out_s": 5.1e-9,      # loihi_out (axon out)
    "message_in_j": 0.0, "message_in_s": 16.0e-9,             # loihi_in (axon in)
    "hop_ew_j": 3.0e-12, "hop_ew_s": 4.1e-9,                  # tile east/west hop
    "hop_ns_j": 4.2e-12, "hop_ns_s": 6.5e-9,                  # tile north/south hop
    # sync_model: table, latency_sync keyed by tile count (see sync_latency)
    "sync_table": ((1, 0.6e-6), (2, 1.0e-6), (4, 1.4e-6), (29, 1.8e-6)),
    "cores_per_tile": 4, "mesh_width": 8, "mesh_height": 4,
}


# ------------------------------------------------------------------------------- network spec
@dataclass
class LayerSpec:
    """One layer (one SANA-FE neuron group).

    ``kind`` is ``input``, ``dense`` or ``conv2d``. ``shape`` is ``(n,)`` for input/dense and
    ``(channels, height, width)`` for 2-D maps, flattened channel-major (index = (c*h + y)*w
    + x), which is the order SANA-FE's ``connect_neurons_conv2d`` gives its output neurons.
    ``weights``: dense ``(n_in, n_out)``; conv2d ``(kw, kh, c_in, c_out)`` (SANA-FE's WHCN).
    ``cores``: the core id of each neuron (filled by :func:`map_layers`).
    """

    name: str
    kind: str
    shape: tuple
    weights: np.ndarray | None = None
    stride: int = 1
    cores: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class NetSpec:
    """A feed-forward SNN as both simulators take it.

    ``threshold``/``leak_decay`` are the LIF parameters of every non-input layer (SANA-FE's
    ``leaky_integrate_fire``: v <- v*leak_decay + u, fire when v > threshold, hard reset to 0).
    ``neurons_per_core`` caps the mapping; each layer starts on a fresh tile when
    ``layer_per_tile`` (so spikes between layers cross the NoC). ``spikes`` is filled from
    SANA-FE's spike trace by :func:`sanafe_run`: layer name -> (T, n) bool array.
    """

    name: str
    layers: list[LayerSpec]
    threshold: float = 1.0
    leak_decay: float = 1.0
    neurons_per_core: int = 256
    layer_per_tile: bool = True
    spikes: dict[str, np.ndarray] = field(default_factory=dict)


def dense_net(n_in: int = 256, n_hidden: int = 256, n_out: int = 10, seed: int = SEED) -> NetSpec:
    """2-layer dense net ``n_in - n_hidden - n_out`` with seeded weights.

    Weights are uniform on [-0.5, 1.5) * 4 / fan_in (mean 2 / fan_in; an assumption chosen so
    that the hidden layer fires at a modest rate for input rates 0.05-0.4 at threshold 1).
    """
    rng = np.random.default_rng(seed)
    w1 = (rng.uniform(-0.5, 1.5, (n_in, n_hidden)) * 4.0 / n_in).astype(np.float64)
    w2 = (rng.uniform(-0.5, 1.5, (n_hidden, n_out)) * 4.0 / n_hidden).astype(np.float64)
    return map_layers(NetSpec(f"dense{n_in}-{n_hidden}-{n_out}", [
        LayerSpec("in", "input", (n_in,)),
        LayerSpec("hidden", "dense", (n_hidden,), w1),
        LayerSpec("out", "dense", (n_out,), w2),
    ]))


def conv_net(side: int = 16, channels: int = 8, n_out: int = 10, seed: int = SEED) -> NetSpec:
    """1 x side x side input, 3x3 conv (stride 1, no padding) to ``channels``, dense to n_out."""
    rng = np.random.default_rng(seed + 1)
    wc = (rng.uniform(-0.5, 1.5, (3, 3, 1, channels)) * 4.0 / 9).astype(np.float64)
    o = side - 2
    n_conv = o * o * channels
    wd = (rng.uniform(-0.5, 1.5, (n_conv, n_out)) * 4.0 / n_conv).astype(np.float64)
    return map_layers(NetSpec(f"conv{side}x{side}-3x3x{channels}-{n_out}", [
        LayerSpec("in", "input", (1, side, side)),
        LayerSpec("conv", "conv2d", (channels, o, o), wc),
        LayerSpec("out", "dense", (n_out,), wd),
    ]))


def map_layers(spec: NetSpec) -> NetSpec:
    """Fill each layer's ``cores``: consecutive cores of ``neurons_per_core`` neurons."""
    cpt = LOIHI_YAML["cores_per_tile"]
    next_core = 0
    for layer in spec.layers:
        if spec.layer_per_tile and next_core % cpt:
            next_core += cpt - next_core % cpt
        idx = np.arange(layer.size)
        layer.cores = next_core + idx // spec.neurons_per_core
        next_core = int(layer.cores[-1]) + 1
    return spec


def input_trains(spec: NetSpec, rate: float, timesteps: int, seed: int = SEED) -> np.ndarray:
    """Seeded Bernoulli spike trains for the input layer: (timesteps, n_in) bool."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"vs_sanafe: rate {rate} is outside [0, 1] spikes per timestep")
    rng = np.random.default_rng([seed, int(round(rate * 1e6)), timesteps])
    return rng.random((timesteps, spec.layers[0].size)) < rate


# ------------------------------------------------------------------------- connectivity (ours)
def edges(spec: NetSpec, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) neuron indices of the connection into layer ``i`` (our own reconstruction)."""
    layer, prev = spec.layers[i], spec.layers[i - 1]
    if layer.kind == "dense":
        src, dst = np.meshgrid(np.arange(prev.size), np.arange(layer.size), indexing="ij")
        return src.ravel(), dst.ravel()
    if layer.kind == "conv2d":
        ic, ih, iw = prev.shape
        oc, oh, ow = layer.shape
        kw, kh, _, _ = layer.weights.shape
        s = layer.stride
        src, dst = [], []
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(kh):
                    for kx in range(kw):
                        y, x = oy * s + ky, ox * s + kx
                        for ci in range(ic):
                            for co in range(oc):
                                src.append((ci * ih + y) * iw + x)
                                dst.append((co * oh + oy) * ow + ox)
        return np.asarray(src), np.asarray(dst)
    raise ValueError(f"vs_sanafe: layer {layer.name!r} has kind {layer.kind!r}; "
                     "expected dense or conv2d")


# ------------------------------------------------------------------------------- SANA-FE side
def have_sanafe() -> bool:
    try:
        import sanafe  # noqa: F401
    except ImportError:
        return False
    return True


def _build(sanafe, spec: NetSpec, trains: np.ndarray):
    arch = sanafe.load_loihi()
    cores = arch.cores()
    net = sanafe.Network()
    groups = []
    lif = {"threshold": spec.threshold, "leak_decay": spec.leak_decay}
    for i, layer in enumerate(spec.layers):
        if layer.kind == "input":
            g = net.create_neuron_group(f"{spec.name}.{layer.name}", layer.size, log_spikes=True)
            per_core = {}
            for n in range(layer.size):
                c = int(layer.cores[n])
                slot = per_core.get(c, 0)          # each input neuron needs its own input unit
                per_core[c] = slot + 1
                g.neurons[n].set_attributes(
                    soma_hw_name=f"loihi_inputs[{slot}]",
                    model_attributes={"spikes": [bool(v) for v in trains[:, n]]})
        else:
            syn = "loihi_conv_synapse" if layer.kind == "conv2d" else "loihi_dense_synapse"
            g = net.create_neuron_group(f"{spec.name}.{layer.name}", layer.size,
                                        model_attributes=lif, soma_hw_name="loihi_lif",
                                        default_synapse_hw_name=syn, log_spikes=True)
            prev = groups[-1]
            if layer.kind == "dense":
                prev.connect_neurons_dense(g, {"w": layer.weights.ravel()})
            else:
                kw, kh, cin, cout = layer.weights.shape
                pc, ph, pw = spec.layers[i - 1].shape
                prev.connect_neurons_conv2d(g, {"w": layer.weights.ravel()}, pw, ph, pc,
                                            kw, kh, cout, layer.stride, layer.stride)
        for n in range(layer.size):
            g.neurons[n].map_to_core(cores[int(layer.cores[n])])
        groups.append(g)
    return arch, net


def sanafe_run(spec: NetSpec, rate: float, timesteps: int = TIMESTEPS,
               timing_model: str = "detailed", trains: np.ndarray | None = None) -> dict:
    """Run ``spec`` in SANA-FE on its Loihi arch with Bernoulli(rate) input trains.

    ``trains`` ((timesteps, n_in) bool), when given, replaces the generated trains (hand cases).
    Wall time is measured with one SANA-FE processing thread.

    Returns a dict: ``energy_j`` (total) and ``energy_by_term_j`` (SANA-FE's soma, synapse,
    dendrite, network), ``latency_s`` (simulated time of all steps), ``step_latency_s`` and
    the per-step ``trace`` (SANA-FE's perf trace: fired, updated, spikes = synaptic events, hops,
    energies, sim_time), ``counts`` (totals: ``synops``, ``neurons_fired``, ``neurons_updated``,
    ``packets``, ``hops``), ``layer_spikes`` (layer -> per-step spike counts), ``trains`` (the
    input trains), ``spec`` (a copy of ``spec`` with ``spikes`` filled), ``wall_s`` (simulation
    only) and ``build_s`` (network construction and mapping).
    """
    import sanafe

    if trains is None:
        trains = input_trains(spec, rate, timesteps)
    trains = np.asarray(trains, dtype=bool)
    if trains.shape != (timesteps, spec.layers[0].size):
        raise ValueError(f"vs_sanafe: trains have shape {trains.shape}; expected "
                         f"({timesteps}, {spec.layers[0].size}) (timesteps, input neurons)")
    t0 = time.perf_counter()
    arch, net = _build(sanafe, spec, trains)
    chip = sanafe.SpikingChip(arch)
    chip.load(net)
    t1 = time.perf_counter()
    res = chip.sim(timesteps, timing_model=timing_model, perf_trace=True, spike_trace=True,
                   processing_threads=1)
    t2 = time.perf_counter()

    name_of = {f"{spec.name}.{lay.name}": lay.name for lay in spec.layers}
    spikes = {lay.name: np.zeros((timesteps, lay.size), dtype=bool) for lay in spec.layers}
    for t, fired in enumerate(res["spike_trace"]):
        for addr in fired:
            spikes[name_of[addr.group_name]][t, addr.neuron_offset] = True
    perf = {k: np.asarray(v) for k, v in res["perf_trace"].items()}
    e = res["energy"]
    return {
        "net": spec.name, "rate": rate, "timesteps": timesteps, "timing_model": timing_model,
        "energy_j": float(e["total"]),
        "energy_by_term_j": {k: float(v) for k, v in e.items() if k != "total"},
        "latency_s": float(res["sim_time"]),
        "step_latency_s": perf["sim_time"],
        "trace": perf,
        "counts": {"synops": int(perf["spikes"].sum()), "neurons_fired": int(res["neurons_fired"]),
                   "neurons_updated": int(res["neurons_updated"]),
                   "packets": int(res["packets_sent"]), "hops": int(perf["hops"].sum())},
        "layer_spikes": {k: v.sum(axis=1) for k, v in spikes.items()},
        "trains": trains,
        "spec": dataclasses.replace(spec, spikes=spikes),
        "wall_s": t2 - t1, "build_s": t1 - t0,
    }


def weight_matrix(spec: NetSpec, i: int) -> np.ndarray:
    """Dense (n_prev, n_layer) weight matrix of the connection into layer ``i``.

    For conv2d, SANA-FE reads the flattened kernel as index ((ky*kw + kx)*c_in + ci)*c_out + co
    (the first axis selects the kernel row; checked against its edge list for 3x3 kernels).
    """
    layer, prev = spec.layers[i], spec.layers[i - 1]
    if layer.kind == "dense":
        return np.asarray(layer.weights, dtype=np.float64)
    ic, ih, iw = prev.shape
    oc, oh, ow = layer.shape
    kh, kw = layer.weights.shape[:2]
    s = layer.stride
    m = np.zeros((prev.size, layer.size))
    for co in range(oc):
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(kh):
                    for kx in range(kw):
                        for ci in range(ic):
                            m[(ci * ih + oy * s + ky) * iw + ox * s + kx,
                              (co * oh + oy) * ow + ox] = layer.weights[ky, kx, ci, co]
    return m


def _quantise(v: np.ndarray, mode: str = "trunc") -> np.ndarray:
    """The carried-over potential on SANA-FE's grid (empirical, see POTENTIAL_LSB)."""
    f = np.floor if mode == "floor" else np.trunc
    return f(v / POTENTIAL_LSB) * POTENTIAL_LSB


def lif_reference(spec: NetSpec, trains: np.ndarray) -> tuple[dict, dict]:
    """Textbook re-run of SANA-FE's LIF semantics: spike rasters and 'updated' masks per layer.

    Step t: a layer's soma integrates the current its synapses received in step t-1
    (v <- v*leak_decay + u), fires when v > threshold and resets to 0. A neuron is *updated*
    in step t when it received synaptic input in step t-1 or its potential is not at rest
    (v != 0); otherwise it is only accessed (the idle cost). Returns (spikes, updated): layer
    name -> (T, n) bool arrays.
    """
    T = trains.shape[0]
    spikes = {spec.layers[0].name: trains.astype(bool)}
    updated = {spec.layers[0].name: trains.astype(bool)}
    for i in range(1, len(spec.layers)):
        layer, prev = spec.layers[i], spec.layers[i - 1]
        w = weight_matrix(spec, i)
        src, dst = edges(spec, i)
        conn = np.zeros((prev.size, layer.size), dtype=bool)
        conn[src, dst] = True                    # an edge counts as input even at weight 0
        v = np.zeros(layer.size)
        u = np.zeros(layer.size)
        got = np.zeros(layer.size, dtype=bool)
        s_out = np.zeros((T, layer.size), dtype=bool)
        upd = np.zeros((T, layer.size), dtype=bool)
        for t in range(T):
            upd[t] = got | (v != 0.0)
            v = _quantise(v * spec.leak_decay) + u
            fire = v > spec.threshold
            v[fire] = 0.0
            s_out[t] = fire
            pre = spikes[prev.name][t]
            u = pre.astype(np.float64) @ w
            got = conn[pre].any(axis=0)
        spikes[layer.name] = s_out
        updated[layer.name] = upd
    return spikes, updated


# ---------------------------------------------------------- the counts npusim must reproduce
def tile_xy(core: int) -> tuple[int, int]:
    """Mesh (x, y) of a core's tile: tile = core // 4, x = tile // height, y = tile % height.

    (Empirical: matches SANA-FE's hop counts for loihi.yaml's 8x4 mesh; see the test.)
    """
    tile = core // LOIHI_YAML["cores_per_tile"]
    return tile // LOIHI_YAML["mesh_height"], tile % LOIHI_YAML["mesh_height"]


def expected_counts(spec: NetSpec, spikes: dict[str, np.ndarray],
                    updated: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-timestep, per-core event counts implied by spike rasters, update masks, connectivity.

    ``spikes`` and ``updated``: layer name -> (T, n) bool, e.g. from :func:`lif_reference`
    (whose spikes equal SANA-FE's measured ``NetSpec.spikes``; the test checks that).

    Conventions (SANA-FE 2.2.9, checked against its perf trace by the test):
    a spike of neuron n in step t is one message (packet) per distinct destination core, sent in
    step t; each synapse it reaches is one synaptic event in step t on the destination core;
    the destination neuron's soma integrates it in step t+1 (one-step delay). Every mapped LIF
    neuron is accessed every step (idle or not); it is updated in step t when it received any
    synaptic event in step t-1 or its potential is not at rest (``updated``); it spikes when
    v > threshold. Input neurons cost nothing (their unit's costs are all 0 in loihi.yaml).

    Returns arrays of shape (T, n_cores): ``synops`` (dense synapse unit), ``synops_conv``,
    ``access``, ``update``, ``spike_out``, ``msg_out``, ``msg_in``, ``hops_ew``, ``hops_ns``.
    """
    T = next(iter(spikes.values())).shape[0]
    n_cores = int(max(int(lay.cores.max()) for lay in spec.layers)) + 1
    out = {k: np.zeros((T, n_cores), dtype=np.int64) for k in
           ("synops", "synops_conv", "access", "update", "spike_out", "msg_out", "msg_in",
            "hops_ew", "hops_ns")}
    for i, layer in enumerate(spec.layers):
        if layer.kind == "input":
            continue
        prev = spec.layers[i - 1]
        src, dst = edges(spec, i)
        key = "synops_conv" if layer.kind == "conv2d" else "synops"
        fan = np.zeros((prev.size, n_cores), dtype=np.int64)      # synapses per (src, dst core)
        np.add.at(fan, (src, layer.cores[dst]), 1)
        for t in range(T):
            s = np.flatnonzero(spikes[prev.name][t])
            out[key][t] += fan[s].sum(axis=0)
            for n in s:
                for c in np.flatnonzero(fan[n]):
                    c0 = int(prev.cores[n])
                    out["msg_out"][t, c0] += 1
                    out["msg_in"][t, c] += 1
                    (x0, y0), (x1, y1) = tile_xy(c0), tile_xy(int(c))
                    out["hops_ew"][t, c0] += abs(x1 - x0)
                    out["hops_ns"][t, c0] += abs(y1 - y0)
        np.add.at(out["access"], (slice(None), layer.cores), 1)
        for t in range(T):
            np.add.at(out["update"][t], layer.cores[updated[layer.name][t]], 1)
        for t in range(T):
            np.add.at(out["spike_out"][t], layer.cores[spikes[layer.name][t]], 1)
    return out


def sync_latency(n_tiles: int) -> float:
    """loihi.yaml's ``latency_sync`` table: the entry of the largest key <= n_tiles, where
    n_tiles counts the tiles that hold mapped neurons (empirical: matches SANA-FE for 1, 3 and 4
    tiles -> 0.6, 1.0, 1.4 us; other counts not checked)."""
    best = LOIHI_YAML["sync_table"][0][1]
    for k, v in LOIHI_YAML["sync_table"]:
        if k <= n_tiles:
            best = v
    return best


def price_counts(counts: dict[str, np.ndarray], n_tiles: int) -> dict:
    """Energy by SANA-FE's terms and the 'simple' timing model's latency for ``counts``.

    Per core and step, the pipeline splits at the soma buffer (loihi.yaml ``buffer_position:
    soma``): front = msg_in*t_in + synops*t_syn; back = access*t_acc + update*t_upd +
    spike_out*t_spk + msg_out*t_out; core time = max(front, back); step time = max over cores
    + sync(n_tiles). Hop latency is not on this path in the simple model.
    """
    y = LOIHI_YAML
    syn_j = counts["synops"] * y["synapse_dense_j"] + counts["synops_conv"] * y["synapse_conv_j"]
    soma_j = (counts["access"] * y["access_j"] + counts["update"] * y["update_j"]
              + counts["spike_out"] * y["spike_out_j"])
    net_j = (counts["msg_out"] * y["message_out_j"] + counts["msg_in"] * y["message_in_j"]
             + counts["hops_ew"] * y["hop_ew_j"] + counts["hops_ns"] * y["hop_ns_j"])
    front = (counts["msg_in"] * y["message_in_s"] + counts["synops"] * y["synapse_dense_s"]
             + counts["synops_conv"] * y["synapse_conv_s"])
    back = (counts["access"] * y["access_s"] + counts["update"] * y["update_s"]
            + counts["spike_out"] * y["spike_out_s"] + counts["msg_out"] * y["message_out_s"])
    step = np.maximum(front, back).max(axis=1) + sync_latency(n_tiles)
    return {"energy_j": float(syn_j.sum() + soma_j.sum() + net_j.sum()),
            "energy_by_term_j": {"synapse": float(syn_j.sum()), "soma": float(soma_j.sum()),
                                 "network": float(net_j.sum()), "dendrite": 0.0},
            "step_energy_j": (syn_j + soma_j + net_j).sum(axis=1),
            "step_latency_s": step, "latency_s": float(step.sum())}


# ------------------------------------------------------------------------------- npusim side
def npusim_network(spec: NetSpec):
    """The same network as npusim's plain description (:class:`npusim.engine.snn.Network`)."""
    from npusim.engine import snn as es

    return es.Network(spec.name, tuple(
        es.Layer(lay.name, lay.kind, tuple(lay.shape), stride=lay.stride,
                 kernel=tuple(lay.weights.shape[:2]) if lay.kind == "conv2d" else (1, 1))
        for lay in spec.layers))


def sanafe_costs() -> tuple[dict, dict]:
    """SANA-FE's shipped Loihi costs (:data:`LOIHI_YAML`) as npusim event costs: (all cores,
    conv-layer cores). Access + update are npusim's active update, access alone its idle one."""
    y = LOIHI_YAML
    costs = {
        "synop": (y["synapse_dense_j"], y["synapse_dense_s"]),
        "update_idle": (y["access_j"], y["access_s"]),
        "update_active": (y["access_j"] + y["update_j"], y["access_s"] + y["update_s"]),
        "neuron_fire": (y["spike_out_j"], y["spike_out_s"]),
        "spike_out": (y["message_out_j"], y["message_out_s"]),
        "axon_in": (y["message_in_j"], y["message_in_s"]),
        "hop_ew": (y["hop_ew_j"], y["hop_ew_s"]), "hop_ns": (y["hop_ns_j"], y["hop_ns_s"]),
        "in_tile": (0.0, 0.0),
    }
    return costs, {"synop": (y["synapse_conv_j"], y["synapse_conv_s"])}


def npusim_run(spec: NetSpec, run: dict, preset: bool = False) -> dict:
    """npusim's cost of ``run``'s network on the very spike rasters SANA-FE produced.

    Default: npusim's model (counts from the rasters, updates by its closed form, SANA-FE's
    two-stage pipeline) priced with SANA-FE's own file costs (:func:`sanafe_costs`), its sync
    table as the barrier and no static power: the like-for-like comparison. ``preset``: the
    ``loihi`` device preset as it ships (its costs, its 299 ns barrier), still without static
    power. Wall time covers counting and pricing (the kernels compiled beforehand).
    """
    from npusim.arch.snn_device import load_snn_device
    from npusim.engine import snn as es

    net = npusim_network(spec)
    device = load_snn_device("loihi")
    mapping = es.map_network(net, device, max_neurons_per_core=spec.neurons_per_core)
    if preset:
        kw = {"stages": "sanafe", "static_power": 0.0}
    else:
        costs, conv = sanafe_costs()
        kw = {"costs": costs, "stages": "sanafe", "static_power": 0.0, "barrier": sync_latency,
              "layer_costs": {lay.name: conv for lay in spec.layers if lay.kind == "conv2d"}}
    rasters = run["spec"].spikes
    es.run(net, device, rasters, mapping=mapping, **kw)          # warm (compiled kernels)
    t0 = time.perf_counter()
    r = es.run(net, device, rasters, mapping=mapping, **kw)
    wall = time.perf_counter() - t0
    return {"energy_j": r.energy_j, "energy_by_term_j": r.energy_by_term_j,
            "latency_s": r.latency_s, "step_latency_s": r.step_time_s, "counts": r.counts,
            "wall_s": wall, "result": r}


# ------------------------------------------------------------------------------------ printing
def cases(quick: bool) -> list[tuple[NetSpec, float, int]]:
    if quick:
        return [(dense_net(64, 64, 10), 0.2, 8)]
    out = []
    for build in (dense_net, conv_net):
        for r in RATES:
            out.append((build(), r, TIMESTEPS))
    return out


def recount(spec: NetSpec, run: dict) -> dict:
    """Re-derive ``run``'s counts from its trains (:func:`lif_reference`, :func:`expected_counts`)
    and price them (:func:`price_counts`); ``spikes_match`` says the reference reproduced
    SANA-FE's spike rasters exactly."""
    spikes, updated = lif_reference(spec, run["trains"])
    match = all(np.array_equal(spikes[k], run["spec"].spikes[k]) for k in spikes)
    counts = expected_counts(spec, run["spec"].spikes, updated)
    tiles = len({int(c) // LOIHI_YAML["cores_per_tile"] for lay in spec.layers for c in lay.cores})
    return {"spikes_match": match, "counts": counts, "tiles": tiles,
            "priced": price_counts(counts, tiles)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small dense case")
    ap.add_argument("--timing-model", default="detailed", choices=("simple", "detailed"),
                    help="SANA-FE timing model (default: detailed, SANA-FE's default)")
    args = ap.parse_args(argv)
    if not have_sanafe():
        print("vs_sanafe: SANA-FE is not installed; install it with `pip install sanafe` "
              "(2.2.9 has a cp311 wheel) and run this script again.")
        return 0
    print(f"SANA-FE on its shipped loihi.yaml, timing model {args.timing_model!r}, one "
          "processing thread; energies in nJ, latency in us, wall = sim() only, build = "
          "network construction + mapping; recount = our counts x loihi.yaml costs / SANA-FE - 1")
    print("npusim: the same rasters, SANA-FE's file costs, its sync table, two-stage pipeline, no "
          "static power; E/lat ratio = npusim / SANA-FE; preset = the shipped loihi preset's "
          "energy / SANA-FE; wall = npusim count + price, ratio = SANA-FE wall / npusim wall")
    hdr = (f"{'net':<19} {'rate':>4} {'T':>2} {'E nJ':>8} {'soma':>7} {'syn':>8} {'noc':>6} "
           f"{'lat us':>7} {'spikes in/h/out':>16} {'synops':>7} {'upd/st':>6} {'hops':>6} "
           f"{'wall ms':>7} {'build s':>7} {'recount':>8} | {'np E nJ':>8} {'E ratio':>7} "
           f"{'np lat':>7} {'lat rat':>7} {'preset':>6} {'np ms':>6} {'wall x':>6}")
    print(hdr)
    print("-" * len(hdr))
    for spec, rate, T in cases(args.quick):
        r = sanafe_run(spec, rate, T, args.timing_model)
        rc = recount(spec, r)
        n = npusim_run(spec, r)
        pre = npusim_run(spec, r, preset=True)
        e = r["energy_by_term_j"]
        ls = "/".join(str(int(v.sum())) for v in r["layer_spikes"].values())
        err = rc["priced"]["energy_j"] / r["energy_j"] - 1 if rc["spikes_match"] else float("nan")
        print(f"{spec.name:<19} {rate:>4.2f} {T:>2} {r['energy_j'] * 1e9:>8.1f} "
              f"{e['soma'] * 1e9:>7.1f} {e['synapse'] * 1e9:>8.1f} {e['network'] * 1e9:>6.1f} "
              f"{r['latency_s'] * 1e6:>7.1f} {ls:>16} {r['counts']['synops']:>7} "
              f"{r['counts']['neurons_updated'] / T:>6.0f} {r['counts']['hops']:>6} "
              f"{r['wall_s'] * 1e3:>7.1f} {r['build_s']:>7.2f} {err:>8.1e} "
              f"| {n['energy_j'] * 1e9:>8.1f} {n['energy_j'] / r['energy_j']:>7.4f} "
              f"{n['latency_s'] * 1e6:>7.1f} {n['latency_s'] / r['latency_s']:>7.4f} "
              f"{pre['energy_j'] / r['energy_j']:>6.3f} {n['wall_s'] * 1e3:>6.1f} "
              f"{r['wall_s'] / n['wall_s']:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
