"""Build standard ONNX graphs of decoder-only LLMs from Hugging Face-style configs.

One prefill step or one decode step of Llama 2 / 3.x, EXAONE 3.5 / 4.0, gpt-oss, Qwen3 and GPT-J
shaped models: embedding, RMSNorm or LayerNorm, GQA attention with RoPE and a KV cache,
sliding-window layers, SwiGLU, a GELU MLP or a top-k mixture of experts, final norm and LM head.
Only default-domain ops (opset 23) are used, so onnxruntime runs the tiny configs and any ONNX
tool can read the big ones.

Features chosen by ``model_type`` (the Hugging Face modelling code of each family decides them,
not config keys):

- ``exaone4``: per-head RMSNorm on q and k (``self_attn.q_norm`` / ``k_norm``, weight
  ``[head_dim]``), norms after attention and MLP instead of before, no RoPE on global layers
  when the model has sliding ones.
- ``qwen3``: the same per-head q/k RMSNorm, applied after the projections and before RoPE,
  with ordinary pre-norm layers (``Qwen3Attention``).
- ``gpt_oss``: attention sinks, biases on every projection, clamped SwiGLU.
- ``gptj``: a parallel block, ``h + attn(LN(h)) + mlp(LN(h))``, with one LayerNorm (weight and
  bias) per layer; RoPE on the first ``rotary_dim`` dims of each head only, rotating adjacent
  pairs (2i, 2i+1) ("rotate every two") while the rest pass through; no q/k/v/out biases; an
  MLP ``fc_in -> GELU (tanh form, "gelu_new") -> fc_out`` with biases; a final LayerNorm; an
  untied LM head with a bias. GPT-J's own keys (``n_embd``, ``n_layer``, ``n_head``,
  ``n_inner`` = null meaning 4 x ``n_embd``, ``n_positions``) are read as their Hugging Face
  equivalents. Its parameters keep this module's names (``model.layers.{i}.self_attn.o_proj``
  for ``transformer.h.{i}.attn.out_proj``, ``input_layernorm`` for ``ln_1``,
  ``mlp.fc_in`` / ``mlp.fc_out``, ``model.norm`` for ``ln_f``).

Every other config key keeps its Hugging Face meaning (``attention_bias``, ``mlp_bias``,
``tie_word_embeddings``, ``sliding_window`` / ``layer_types``, ``rotary_dim``).

A serving simulation costs a step from parts rather than whole graphs (``part=``): one decoder
layer without its attention core for the step's T tokens ("dense"), one layer's attention core
for a batch of sequences over their caches ("attention"), and the LM head with the embedding
("head"). ``tp=N`` gives the graph of one of N chips under tensor parallelism, with the
collectives as ``AllReduce`` / ``AllGather`` nodes of the custom domain ``ai.npusim``; those
graphs are for analysis, not for onnxruntime.

Weights are graph initializers. Small models get random data; big models get initializers that
carry only dims and data type and point at an external file that is never written nor read, so
Llama 3.1 405B builds in well under a second. Every initializer is a model parameter; constants
(shape vectors, RoPE frequencies, mask values) are ``Constant`` nodes.

This module imports only onnx, numpy, the standard library and
:mod:`npusim.graphs.llm_spec` (configs, :class:`Spec`, parameter counts).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

# What a model is (configs, Spec, parameter arithmetic) lives in llm_spec; re-exported here,
# where callers have always found it.
from npusim.graphs.llm_spec import (Spec, count_parameters, list_models, load_config,  # noqa: F401
                                    param_shapes, resolve, spec_parameters)

OPSET = 23
IR_VERSION = 10
MATERIALIZE_BELOW = 50_000_000
EXTERNAL_LOCATION = "npusim-weights-not-materialized.bin"
PHASES = ("prefill", "decode")
PARTS = ("all", "dense", "attention", "head")
#: Custom domain of the collectives in tensor-parallel graphs (lowered by npusim's frontend).
NPUSIM_DOMAIN = "ai.npusim"
NPUSIM_OPSET = 1

_DTYPES = {
    "fp32": (TensorProto.FLOAT, np.float32),
    "fp16": (TensorProto.FLOAT16, np.float16),
    "bf16": (TensorProto.BFLOAT16, None),
}
_DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16",
                  "bfloat16": "bf16"}

# -- graph construction ------------------------------------------------------------------
def _inv_freq(s: Spec) -> np.ndarray:
    """RoPE inverse frequencies, with Llama 3 long-context scaling when the config asks."""
    hd = s.rope_dim
    inv = 1.0 / (s.rope_theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    sc = s.rope_scaling or {}
    if sc.get("rope_type") == "llama3":
        # Llama 3.1 frequency scaling (arXiv:2407.21783 and its reference code's published
        # formula): long wavelengths are divided by `factor`, short ones kept, smooth between.
        factor, lo, hi = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
        old = sc["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        mid = (wavelen <= old / lo) & (wavelen >= old / hi)
        inv = np.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled)
    # YaRN (gpt-oss) also rescales frequencies and logits; it changes values, never shapes or
    # op counts, so plain RoPE stands in for it here.
    return inv.astype(np.float32)


def _bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounding to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)

@dataclass(frozen=True)
class _Shard:
    """Per-chip sizes of one chip's graph under tensor parallelism over ``tp`` chips."""

    tp: int
    heads: int
    kv_heads: int
    inter: int
    vocab: int

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


def _shard(s: Spec, tp: int) -> _Shard:
    """Megatron-style split (arXiv:1909.08053, section 3): heads, KV heads, FFN intermediate
    and vocabulary divided over the chips.

    KV heads fewer than ``tp`` are replicated, one per chip, as vLLM and TensorRT-LLM do for
    GQA models on many GPUs. An intermediate or vocabulary size that ``tp`` does not divide is
    padded up to a multiple (assumption: zero-padded shards; Megatron pads its vocabulary the
    same way), so a chip holds ``ceil(size / tp)``.
    """
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tp must be a positive integer (chips), got {tp!r}.")
    if s.heads % tp:
        raise ValueError(f"model {s.name!r}: tensor parallelism over tp={tp} chips needs tp to "
                         f"divide the {s.heads} attention heads; use a divisor of {s.heads}.")
    if s.kv_heads % tp and tp % s.kv_heads:
        raise ValueError(f"model {s.name!r}: tp={tp} neither divides the {s.kv_heads} KV heads "
                         f"nor is a multiple of them, so KV heads cannot be split or replicated "
                         f"evenly; use a divisor or a multiple of {s.kv_heads}.")
    return _Shard(tp=tp, heads=s.heads // tp, kv_heads=max(1, s.kv_heads // tp),
                  inter=-(-s.inter // tp), vocab=-(-s.vocab // tp))


def expected_experts(experts: int, top_k: int, tokens: int) -> int:
    """Expected number of distinct experts that ``tokens`` tokens route to, rounded up.

    ``u = ceil(E * (1 - (1 - k/E) ** T))``: the standard balls-into-bins (occupancy)
    expectation when every token picks ``k`` of ``E`` experts uniformly at random, an expert
    being missed by one token with probability ``1 - k/E`` and by all ``T`` tokens with
    ``(1 - k/E) ** T``. Uniform, independent routing is an assumption: trained routers are
    skewed, which lowers the true count.

    Parameters
    ----------
    experts : int
        Experts per layer, ``E``.
    top_k : int
        Experts per token, ``k`` (1..E).
    tokens : int
        Tokens in the batch, ``T`` (>= 0).

    Returns
    -------
    int
        Between ``min(k, E)`` (one token) and ``E``; never more than ``T * k``.

    Examples
    --------
    >>> expected_experts(128, 4, 1), expected_experts(128, 4, 2), expected_experts(128, 4, 4096)
    (4, 8, 128)
    """
    if not (0 < top_k <= experts) or tokens < 0:
        raise ValueError(f"expected_experts needs 0 < top_k <= experts and tokens >= 0, got "
                         f"experts={experts}, top_k={top_k}, tokens={tokens}.")
    if tokens == 0:
        return 0
    missed = experts * (1.0 - top_k / experts) ** tokens
    if missed < 0.5:
        return experts
    # Exactly: E - floor(E * ((E-k)/E)^T) = E - (E-k)^T // E^(T-1); T is small here.
    return experts - (experts - top_k) ** tokens // experts ** (tokens - 1)


class _Builder:
    """Accumulates nodes, initializers, constants and collective shapes for one graph."""

    def __init__(self, s: Spec, dtype: str, materialize: bool, shard: _Shard) -> None:
        self.s = s
        self.sh = shard
        self.onnx_type, self.np_type = _DTYPES[dtype]
        self.dtype = dtype
        self.materialize = materialize
        self.rng = np.random.default_rng(0)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.params: set[str] = set()
        self.infos: list[onnx.ValueInfoProto] = []
        self.consts: dict[tuple, str] = {}

    # tensors -----------------------------------------------------------------------
    def _encode(self, name: str, a: np.ndarray) -> TensorProto:
        if self.dtype == "bf16":
            t = TensorProto(name=name, data_type=TensorProto.BFLOAT16, dims=a.shape)
            t.raw_data = _bf16_bits(a).tobytes()
            return t
        return onnx.numpy_helper.from_array(a.astype(self.np_type), name)

    def param(self, name: str, shape: tuple[int, ...], kind: str = "weight") -> str:
        if name in self.params:
            return name
        self.params.add(name)
        if not self.materialize:
            t = TensorProto(name=name, data_type=self.onnx_type, dims=shape)
            t.data_location = TensorProto.EXTERNAL
            t.external_data.add(key="location", value=EXTERNAL_LOCATION)
            self.inits.append(t)
            return name
        if kind == "norm":
            a = 1.0 + 0.05 * self.rng.standard_normal(shape)
        elif kind == "sink":
            a = 0.5 * self.rng.standard_normal(shape)
        else:
            fan_in = shape[-2] if len(shape) >= 2 else 1
            scale = 1.0 / math.sqrt(fan_in) if kind == "weight" else 0.02
            a = scale * self.rng.standard_normal(shape)
        self.inits.append(self._encode(name, a.astype(np.float32)))
        return name

    def const(self, value, dtype: str = "int64") -> str:
        """A deduplicated Constant node; ``dtype="act"`` means the activation dtype."""
        arr = np.asarray(value, dtype=np.float32 if dtype == "act" else dtype)
        key = (dtype, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = f"const.{len(self.consts)}"
            t = self._encode(name, arr) if dtype == "act" else onnx.numpy_helper.from_array(arr, name)
            self.nodes.append(helper.make_node("Constant", [], [name], name=name, value=t))
            self.consts[key] = name
        return self.consts[key]

    def op(self, op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> Any:
        outs = [name] if n_out == 1 else [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def collective(self, op_type: str, x: str, name: str, shape: tuple[int, ...],
                   **attrs) -> str:
        """A collective over the ``tp`` chips; onnx cannot infer a custom op's output, so its
        type and shape are written into the graph's value_info."""
        y = self.op(op_type, [x], name, domain=NPUSIM_DOMAIN, group=self.sh.tp, **attrs)
        self.infos.append(helper.make_tensor_value_info(y, self.onnx_type, list(shape)))
        return y

    def all_reduce(self, x: str, name: str, shape: tuple[int, ...]) -> str:
        return x if self.sh.tp == 1 else self.collective("AllReduce", x, name, shape)

    # blocks ------------------------------------------------------------------------
    def rmsnorm(self, x: str, weight: str, name: str) -> str:
        return self.op("RMSNormalization", [x, weight], name, epsilon=self.s.eps, axis=-1)

    def norm(self, x: str, prefix: str) -> str:
        """The model's norm over ``hidden``: RMSNorm with ``{prefix}.weight``, or LayerNorm
        with ``{prefix}.weight`` and ``{prefix}.bias`` (GPT-J)."""
        s = self.s
        w = self.param(f"{prefix}.weight", (s.hidden,), "norm")
        if s.norm == "rms":
            return self.rmsnorm(x, w, prefix)
        b = self.param(f"{prefix}.bias", (s.hidden,), "bias")
        return self.op("LayerNormalization", [x, w, b], prefix, epsilon=s.eps, axis=-1)

    def linear(self, x: str, prefix: str, shape: tuple[int, int], bias: bool) -> str:
        """A linear layer; under tensor parallelism ``shape`` is the column-parallel shard."""
        y = self.op("MatMul", [x, self.param(f"{prefix}.weight", shape)], prefix)
        if bias:
            y = self.op("Add", [y, self.param(f"{prefix}.bias", (shape[1],), "bias")],
                        f"{prefix}.bias_add")
        return y

    def row_linear(self, x: str, prefix: str, shape: tuple[int, int], bias: bool,
                   out_shape: tuple[int, ...]) -> str:
        """A row-parallel linear: each chip multiplies its slice of the input features, the
        partial sums are all-reduced, and the (replicated) bias is added once after."""
        y = self.op("MatMul", [x, self.param(f"{prefix}.weight", shape)], prefix)
        y = self.all_reduce(y, f"{prefix}.all_reduce", out_shape)
        if bias:
            y = self.op("Add", [y, self.param(f"{prefix}.bias", (shape[1],), "bias")],
                        f"{prefix}.bias_add")
        return y

    def reshape(self, x: str, shape, name: str) -> str:
        return self.op("Reshape", [x, self.const(list(shape))], name)

    def rope(self, x: str, cos: str, sin: str, name: str, lead: tuple[int, ...]) -> str:
        """RoPE on ``x [*lead, head_dim]``: whole heads by halves (Llama), or the first
        ``rotary_dim`` dims by adjacent pairs with the rest passed through (GPT-J)."""
        if self.s.rotary_dim is not None or self.s.rope_interleaved:
            return self.partial_rope(x, cos, sin, name, lead)
        half = self.s.head_dim // 2
        x1 = self.op("Slice", [x, self.const([0]), self.const([half]), self.const([-1])],
                     f"{name}.x1")
        x2 = self.op("Slice", [x, self.const([half]), self.const([2 * half]), self.const([-1])],
                     f"{name}.x2")
        rot = self.op("Concat", [self.op("Neg", [x2], f"{name}.neg"), x1], f"{name}.rotate_half",
                      axis=-1)
        return self.op("Add", [self.op("Mul", [x, cos], f"{name}.cos_mul"),
                               self.op("Mul", [rot, sin], f"{name}.sin_mul")], name)

    def partial_rope(self, x: str, cos: str, sin: str, name: str,
                     lead: tuple[int, ...]) -> str:
        """RoPE on the first ``rope_dim`` dims of each head; with ``rope_interleaved`` the
        rotation pairs dims (2i, 2i+1) (GPT-J's rotate-every-two) rather than (i, i + d/2)."""
        s = self.s
        rd, hd = s.rope_dim, s.head_dim
        rot = x
        if rd < hd:
            rot = self.op("Slice", [x, self.const([0]), self.const([rd]), self.const([-1])],
                          f"{name}.rot_part")
            keep = self.op("Slice", [x, self.const([rd]), self.const([hd]), self.const([-1])],
                           f"{name}.pass_part")
        if s.rope_interleaved:
            pairs = self.reshape(rot, (*lead, rd // 2, 2), f"{name}.pairs")
            even = self.op("Slice", [pairs, self.const([0]), self.const([1]), self.const([-1])],
                           f"{name}.even")
            odd = self.op("Slice", [pairs, self.const([1]), self.const([2]), self.const([-1])],
                          f"{name}.odd")
            turned = self.op("Concat", [self.op("Neg", [odd], f"{name}.neg"), even],
                             f"{name}.rotate_pairs", axis=-1)
            turned = self.reshape(turned, (*lead, rd), f"{name}.rotate_every_two")
        else:
            half = rd // 2
            x1 = self.op("Slice", [rot, self.const([0]), self.const([half]), self.const([-1])],
                         f"{name}.x1")
            x2 = self.op("Slice", [rot, self.const([half]), self.const([rd]),
                                   self.const([-1])], f"{name}.x2")
            turned = self.op("Concat", [self.op("Neg", [x2], f"{name}.neg"), x1],
                             f"{name}.rotate_half", axis=-1)
        out_name = name if rd == hd else f"{name}.rotated"
        y = self.op("Add", [self.op("Mul", [rot, cos], f"{name}.cos_mul"),
                            self.op("Mul", [turned, sin], f"{name}.sin_mul")], out_name)
        if rd < hd:
            y = self.op("Concat", [y, keep], name, axis=-1)
        return y

    def rope_tables(self, start: int, length: int) -> tuple[str, str]:
        """cos/sin [length, rope_dim] for absolute positions start..start+length-1."""
        pos = self.op("Range", [self.const(float(start), "float32"),
                                self.const(float(start + length), "float32"),
                                self.const(1.0, "float32")], "rope.positions")
        inv = _inv_freq(self.s)
        # one angle per rotated dim: pairs (2i, 2i+1) share a frequency when interleaved,
        # dims i and i + d/2 otherwise
        per_dim = np.repeat(inv, 2) if self.s.rope_interleaved else np.concatenate([inv, inv])
        freqs = self.op("Mul", [self.op("Unsqueeze", [pos, self.const([1])], "rope.pos_col"),
                                self.const(per_dim[None, :], "float32")],
                        "rope.angles")
        cos, sin = self.op("Cos", [freqs], "rope.cos"), self.op("Sin", [freqs], "rope.sin")
        if self.onnx_type != TensorProto.FLOAT:
            cos = self.op("Cast", [cos], "rope.cos_cast", to=self.onnx_type)
            sin = self.op("Cast", [sin], "rope.sin_cast", to=self.onnx_type)
        return cos, sin

    def mask(self, q_start: int, seq: int, k_start: int, k_len: int, window: int | None,
             name: str) -> str:
        """Boolean [seq, k_len]: key position <= query position, and within the window."""
        qpos = self.op("Range", [self.const(q_start), self.const(q_start + seq), self.const(1)],
                       f"{name}.q_positions")
        kpos = self.op("Range", [self.const(k_start), self.const(k_start + k_len),
                                 self.const(1)], f"{name}.k_positions")
        # Reshape, not Unsqueeze: onnx's data propagation reads an unsqueezed small int64
        # tensor as a 1-D shape and then fails to broadcast [seq, 1] - [1, k_len].
        dist = self.op("Sub", [self.reshape(qpos, (seq, 1), f"{name}.q_col"),
                               self.reshape(kpos, (1, k_len), f"{name}.k_row")],
                       f"{name}.distance")
        ok = self.op("GreaterOrEqual", [dist, self.const(0)], f"{name}.causal")
        if window is not None:
            ok = self.op("And", [ok, self.op("Less", [dist, self.const(window)],
                                             f"{name}.in_window")], f"{name}.allowed")
        return ok

    def qkv(self, x: str, i: int, batch: int, seq: int, cos: str | None,
            sin: str | None) -> tuple[str, str, str]:
        """Projections, QK-norm and RoPE: q [b, kv, g, s, d], k and v [b, kv, s, d]."""
        s, sh, p = self.s, self.sh, f"model.layers.{i}.self_attn"
        kvh, g, hd = sh.kv_heads, sh.group, s.head_dim
        q = self.linear(x, f"{p}.q_proj", (s.hidden, sh.heads * hd), s.attention_bias)
        k = self.linear(x, f"{p}.k_proj", (s.hidden, kvh * hd), s.attention_bias)
        v = self.linear(x, f"{p}.v_proj", (s.hidden, kvh * hd), s.attention_bias)
        q = self.reshape(q, (batch, seq, kvh, g, hd), f"{p}.q_split_heads")
        k = self.reshape(k, (batch, seq, kvh, hd), f"{p}.k_split_heads")
        v = self.reshape(v, (batch, seq, kvh, hd), f"{p}.v_split_heads")
        if s.qk_norm:
            q = self.rmsnorm(q, self.param(f"{p}.q_norm.weight", (hd,), "norm"), f"{p}.q_norm")
            k = self.rmsnorm(k, self.param(f"{p}.k_norm.weight", (hd,), "norm"), f"{p}.k_norm")
        # q as [b, kv_heads, group, s, d]: each KV head serves its group by broadcasting,
        # so no KV copy is made (what grouped-query kernels do).
        q = self.op("Transpose", [q], f"{p}.q_heads_first", perm=[0, 2, 3, 1, 4])
        k = self.op("Transpose", [k], f"{p}.k_heads_first", perm=[0, 2, 1, 3])
        v = self.op("Transpose", [v], f"{p}.v_heads_first", perm=[0, 2, 1, 3])
        if s.uses_rope(i):
            q = self.rope(q, cos, sin, f"{p}.q_rope", (batch, kvh, g, seq))
            k = self.rope(k, cos, sin, f"{p}.k_rope", (batch, kvh, seq))
        return q, k, v

    def core(self, q: str, k: str, v: str, i: int, batch: int, seq: int, past: int,
             allowed: str | None) -> tuple[str, tuple[str, str]]:
        """The attention core: cache append, QK^T, mask, softmax (+ sinks), PV.

        Returns the context ``[b, kv, g, s, d]`` and the present key and value.
        """
        s, sh, p = self.s, self.sh, f"model.layers.{i}.self_attn"
        kvh, g, hd = sh.kv_heads, sh.group, s.head_dim
        if past:
            k = self.op("Concat", [f"past_key_values.{i}.key", k], f"{p}.k_cache_append", axis=2)
            v = self.op("Concat", [f"past_key_values.{i}.value", v], f"{p}.v_cache_append",
                        axis=2)
        total = past + seq
        keep = min(total, s.window) if s.is_sliding(i) else total
        present_k, present_v = k, v
        if keep < total:
            # The cache of a sliding layer holds only the last `window` tokens.
            sl = [self.const([total - keep]), self.const([total]), self.const([2])]
            present_k = self.op("Slice", [k, *sl], f"{p}.k_cache_window")
            present_v = self.op("Slice", [v, *sl], f"{p}.v_cache_window")
        q = self.op("Mul", [q, self.const(1.0 / math.sqrt(hd), "act")], f"{p}.q_scale")
        kt = self.op("Transpose", [self.op("Unsqueeze", [k, self.const([2])], f"{p}.k_group_axis")],
                     f"{p}.k_transpose", perm=[0, 1, 2, 4, 3])
        scores = self.op("MatMul", [q, kt], f"{p}.qk_matmul")          # [b, kv, g, s, T]
        if allowed is not None:
            neg = -3.0e4 if self.dtype == "fp16" else -1.0e30
            scores = self.op("Where", [allowed, scores, self.const(neg, "act")],
                             f"{p}.causal_mask")
        if s.sinks:
            sink = self.reshape(self.param(f"{p}.sinks", (sh.heads,), "sink"), (1, kvh, g, 1, 1),
                                f"{p}.sinks_reshape")
            sink = self.op("Expand", [sink, self.const([batch, kvh, g, seq, 1])],
                           f"{p}.sinks_expand")
            scores = self.op("Concat", [scores, sink], f"{p}.sinks_concat", axis=-1)
        probs = self.op("Softmax", [scores], f"{p}.softmax", axis=-1)
        if s.sinks:
            probs = self.op("Slice", [probs, self.const([0]), self.const([total]),
                                      self.const([-1])], f"{p}.sinks_drop")
        vv = self.op("Unsqueeze", [v, self.const([2])], f"{p}.v_group_axis")
        ctx = self.op("MatMul", [probs, vv], f"{p}.pv_matmul")          # [b, kv, g, s, d]
        return ctx, (present_k, present_v)

    def out_proj(self, ctx: str, i: int, batch: int, seq: int) -> str:
        """Context [b, kv, g, s, d] back to tokens first, then o_proj (row-parallel)."""
        s, sh, p = self.s, self.sh, f"model.layers.{i}.self_attn"
        ctx = self.op("Transpose", [ctx], f"{p}.ctx_tokens_first", perm=[0, 3, 1, 2, 4])
        ctx = self.reshape(ctx, (batch, seq, sh.heads * s.head_dim), f"{p}.ctx_merge_heads")
        return self.row_linear(ctx, f"{p}.o_proj", (sh.heads * s.head_dim, s.hidden),
                               s.attention_bias, (batch, seq, s.hidden))

    def decoder_layer(self, h: str, i: int, batch: int, seq: int, cos: str | None,
                      sin: str | None, core: Callable, ffn: Callable) -> tuple[str, Any]:
        """One decoder layer around ``core(q, k, v) -> (ctx, extra)`` and ``ffn(x) -> y``."""
        s, p = self.s, f"model.layers.{i}"
        if s.parallel_residual:
            # GPT-J: one norm feeds both branches; h + (attention + MLP).
            x = self.norm(h, f"{p}.input_layernorm")
            ctx, extra = core(*self.qkv(x, i, batch, seq, cos, sin))
            both = self.op("Add", [self.out_proj(ctx, i, batch, seq), ffn(x)],
                           f"{p}.attn_plus_mlp")
            return self.op("Add", [h, both], f"{p}.parallel_residual"), extra
        if s.post_norm:
            ctx, extra = core(*self.qkv(h, i, batch, seq, cos, sin))
            attn = self.rmsnorm(self.out_proj(ctx, i, batch, seq),
                                self.param(f"{p}.post_attention_layernorm.weight", (s.hidden,),
                                           "norm"), f"{p}.post_attention_layernorm")
        else:
            x = self.norm(h, f"{p}.input_layernorm")
            ctx, extra = core(*self.qkv(x, i, batch, seq, cos, sin))
            attn = self.out_proj(ctx, i, batch, seq)
        h = self.op("Add", [h, attn], f"{p}.attn_residual")
        norm_name = f"{p}.post_feedforward_layernorm" if s.post_norm \
            else f"{p}.post_attention_layernorm"
        norm_w = self.param(f"{norm_name}.weight", (s.hidden,), "norm")
        x = h if s.post_norm else self.rmsnorm(h, norm_w, norm_name)
        mlp = ffn(x)
        if s.post_norm:
            mlp = self.rmsnorm(mlp, norm_w, norm_name)
        return self.op("Add", [h, mlp], f"{p}.mlp_residual"), extra

    def swiglu(self, gate: str, up: str, name: str) -> str:
        s = self.s
        if s.swiglu_limit is None:
            act = self.op("Mul", [gate, self.op("Sigmoid", [gate], f"{name}.sigmoid")],
                          f"{name}.silu")
            return self.op("Mul", [act, up], f"{name}.gate_mul")
        # gpt-oss: clamped gate and up, sigmoid(alpha * gate), and (up + 1).
        lim = s.swiglu_limit
        gate = self.op("Clip", [gate, "", self.const(lim, "act")], f"{name}.gate_clamp")
        up = self.op("Clip", [up, self.const(-lim, "act"), self.const(lim, "act")],
                     f"{name}.up_clamp")
        sig = self.op("Sigmoid", [self.op("Mul", [gate, self.const(s.swiglu_alpha, "act")],
                                          f"{name}.alpha_mul")], f"{name}.sigmoid")
        glu = self.op("Mul", [gate, sig], f"{name}.glu")
        return self.op("Mul", [self.op("Add", [up, self.const(1.0, "act")], f"{name}.up_plus_one"),
                               glu], f"{name}.gate_mul")

    def dense_mlp(self, x: str, i: int, lead: tuple[int, int]) -> str:
        s, f, p = self.s, self.sh.inter, f"model.layers.{i}.mlp"
        if s.mlp_act == "gelu":
            # GPT-J: fc_in, GELU in its tanh form (Hugging Face "gelu_new"), fc_out.
            y = self.linear(x, f"{p}.fc_in", (s.hidden, f), s.mlp_bias)
            y = self.op("Gelu", [y], f"{p}.act", approximate="tanh")
            return self.row_linear(y, f"{p}.fc_out", (f, s.hidden), s.mlp_bias,
                                   (*lead, s.hidden))
        gate = self.linear(x, f"{p}.gate_proj", (s.hidden, f), s.mlp_bias)
        up = self.linear(x, f"{p}.up_proj", (s.hidden, f), s.mlp_bias)
        return self.row_linear(self.swiglu(gate, up, f"{p}.act"), f"{p}.down_proj",
                               (f, s.hidden), s.mlp_bias, (*lead, s.hidden))

    def moe(self, x: str, i: int, batch: int, seq: int) -> str:
        """Top-k routing; each chip holds every expert's slice of the intermediate (tensor-
        parallel experts), so the combined output is all-reduced."""
        s, p = self.s, f"model.layers.{i}.mlp"
        n, d, f, e, k = batch * seq, s.hidden, self.sh.inter, s.experts, s.top_k
        tokens = self.reshape(x, (n, d), f"{p}.flatten_tokens")
        logits = self.linear(tokens, f"{p}.router", (d, e), True)                 # [n, e]
        if self.dtype == "bf16":
            # TopK gains bfloat16 only in opset 24; route in fp32, as many kernels do anyway.
            logits = self.op("Cast", [logits], f"{p}.router_to_fp32", to=TensorProto.FLOAT)
        top_vals, top_idx = self.op("TopK", [logits, self.const([k])], f"{p}.topk", n_out=2,
                                    axis=-1, largest=1, sorted=1)
        weights = self.op("Softmax", [top_vals], f"{p}.routing_softmax", axis=-1)  # [n, k]
        if self.dtype == "bf16":
            weights = self.op("Cast", [weights], f"{p}.routing_to_bf16", to=self.onnx_type)
        xt = self.reshape(tokens, (n, 1, 1, d), f"{p}.tokens_for_experts")

        def expert(proj: str, inp: str, shape: tuple[int, int, int]) -> str:
            # Only the k chosen experts' weights take part: [e, a, b] gathered by [n, k].
            w = self.op("Gather", [self.param(f"{p}.experts.{proj}.weight", shape), top_idx],
                        f"{p}.experts.{proj}.gather", axis=0)                     # [n, k, a, b]
            y = self.op("MatMul", [inp, w], f"{p}.experts.{proj}")               # [n, k, 1, b]
            if s.mlp_bias:
                b = self.op("Gather", [self.param(f"{p}.experts.{proj}.bias", (e, shape[2]),
                                                  "bias"), top_idx],
                            f"{p}.experts.{proj}.bias_gather", axis=0)            # [n, k, b]
                b = self.op("Unsqueeze", [b, self.const([2])], f"{p}.experts.{proj}.bias_axis")
                y = self.op("Add", [y, b], f"{p}.experts.{proj}.bias_add")
            return y

        gate = expert("gate_proj", xt, (e, d, f))
        up = expert("up_proj", xt, (e, d, f))
        act = self.swiglu(gate, up, f"{p}.experts.act")
        down = expert("down_proj", act, (e, f, d))                                 # [n, k, 1, d]
        down = self.reshape(down, (n, k, d), f"{p}.experts.squeeze")
        w = self.op("Unsqueeze", [weights, self.const([2])], f"{p}.routing_weights_axis")
        mixed = self.op("ReduceSum", [self.op("Mul", [down, w], f"{p}.experts.weigh"),
                                      self.const([1])], f"{p}.experts.combine", keepdims=0)
        mixed = self.all_reduce(mixed, f"{p}.all_reduce", (n, d))
        return self.reshape(mixed, (batch, seq, d), f"{p}.unflatten_tokens")

    def moe_expected(self, x: str, i: int, n: int) -> str:
        """An MoE layer for ``n`` tokens costed by the expected number of distinct experts.

        No TopK: the ``n * k`` token-expert pairs are spread evenly over
        ``u = expected_experts(E, k, n)`` experts, whose weights are gathered from the resident
        ``[E, ...]`` tensors by a constant index list. ``n * k`` is split into ``r`` experts
        with ``q + 1`` rows and ``u - r`` with ``q`` (``q, r = divmod(n * k, u)``), one batched
        MatMul per group, so weight traffic is ``u`` experts and MACs are exactly ``n * k``
        per-expert products, as with real routing.
        """
        s, p = self.s, f"model.layers.{i}.mlp"
        d, f, e, k = s.hidden, self.sh.inter, s.experts, s.top_k
        u = expected_experts(e, k, n)
        pairs = n * k
        q, r = divmod(pairs, u)
        tokens = self.reshape(x, (n, d), f"{p}.flatten_tokens")
        logits = self.linear(tokens, f"{p}.router", (d, e), True)                 # [n, e]
        # With no routing there are no top-k values; k router logits stand in for them (the
        # same softmax over [n, k] the routed graph does).
        top = self.op("Slice", [logits, self.const([0]), self.const([k]), self.const([-1])],
                      f"{p}.routing_stand_in")
        weights = self.op("Softmax", [top], f"{p}.routing_softmax", axis=-1)       # [n, k]
        pair_x = self.op("Expand", [self.op("Unsqueeze", [tokens, self.const([1])],
                                            f"{p}.tokens_axis"), self.const([n, k, d])],
                         f"{p}.tokens_to_pairs")                                   # [n, k, d]
        pair_x = self.reshape(pair_x, (pairs, d), f"{p}.pairs")
        groups = [(cnt, rows, first) for cnt, rows, first in ((r, q + 1, 0), (u - r, q, r))
                  if cnt]
        if len(groups) == 2:
            parts = self.op("Split", [pair_x, self.const([r * (q + 1), (u - r) * q])],
                            f"{p}.experts.split", n_out=2, axis=0)
        else:
            parts = [pair_x]
        outs = []
        for j, ((cnt, rows, first), part) in enumerate(zip(groups, parts)):
            g = f"{p}.experts" if len(groups) == 1 else f"{p}.experts.g{j}"
            idx = self.const(list(range(first, first + cnt)))

            def expert(proj: str, inp: str, shape: tuple[int, int, int]) -> str:
                w = self.op("Gather", [self.param(f"{p}.experts.{proj}.weight", shape), idx],
                            f"{g}.{proj}.gather", axis=0)                     # [cnt, a, b]
                y = self.op("MatMul", [inp, w], f"{g}.{proj}")               # [cnt, rows, b]
                if s.mlp_bias:
                    b = self.op("Gather", [self.param(f"{p}.experts.{proj}.bias",
                                                      (e, shape[2]), "bias"), idx],
                                f"{g}.{proj}.bias_gather", axis=0)
                    b = self.op("Unsqueeze", [b, self.const([1])], f"{g}.{proj}.bias_axis")
                    y = self.op("Add", [y, b], f"{g}.{proj}.bias_add")
                return y

            xg = self.reshape(part, (cnt, rows, d), f"{g}.dispatch")
            act = self.swiglu(expert("gate_proj", xg, (e, d, f)),
                              expert("up_proj", xg, (e, d, f)), f"{g}.act")
            outs.append(self.reshape(expert("down_proj", act, (e, f, d)), (cnt * rows, d),
                                     f"{g}.collect"))
        ys = outs[0] if len(outs) == 1 else self.op("Concat", outs, f"{p}.experts.concat",
                                                      axis=0)
        ys = self.reshape(ys, (n, k, d), f"{p}.experts.by_token")
        w = self.op("Unsqueeze", [weights, self.const([2])], f"{p}.routing_weights_axis")
        mixed = self.op("ReduceSum", [self.op("Mul", [ys, w], f"{p}.experts.weigh"),
                                      self.const([1])], f"{p}.experts.combine", keepdims=0)
        mixed = self.all_reduce(mixed, f"{p}.all_reduce", (n, d))
        return self.reshape(mixed, (1, n, d), f"{p}.unflatten_tokens")

    def embed(self, ids: str, lead: tuple[int, int]) -> str:
        """Embedding lookup; under tensor parallelism the table is split by vocabulary rows
        (each chip looks up the ids in its range) and the rows are all-reduced."""
        s = self.s
        h = self.op("Gather", [self.param("model.embed_tokens.weight",
                                          (self.sh.vocab, s.hidden)), ids],
                    "model.embed_tokens", axis=0)
        return self.all_reduce(h, "model.embed_tokens.all_reduce", (*lead, s.hidden))

    def lm_head(self, x: str, lead: tuple[int, int]) -> str:
        """LM head (vocabulary-parallel, then an all-gather of the logits) into ``logits``."""
        s, vc = self.s, self.sh.vocab
        if s.tie:
            flat = self.reshape(x, (lead[0] * lead[1], s.hidden), "lm_head.flatten")
            y = self.op("Gemm", [flat, "model.embed_tokens.weight"], "lm_head", transB=1)
            y = self.reshape(y, (*lead, vc), "lm_head.unflatten")
        else:
            y = self.op("MatMul", [x, self.param("lm_head.weight", (s.hidden, vc))], "lm_head")
        if s.lm_head_bias:
            # each chip adds its slice of the vocabulary's bias before the gather
            y = self.op("Add", [y, self.param("lm_head.bias", (vc,), "bias")], "lm_head.bias_add")
        if self.sh.tp > 1:
            y = self.collective("AllGather", y, "lm_head.all_gather", (*lead, vc * self.sh.tp),
                                axis=-1)
            if vc * self.sh.tp != s.vocab:
                y = self.op("Slice", [y, self.const([0]), self.const([s.vocab]),
                                      self.const([-1])], "lm_head.unpad")
        return self.op("Identity", [y], "logits")


def _layer_past(s: Spec, i: int, kv_len: int) -> int:
    return min(kv_len, s.window) if s.is_sliding(i) else kv_len


def _check_int(label: str, value: Any, least: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < least):
        word = "positive" if least else "non-negative"
        raise ValueError(f"{label} must be a {word} integer, got {value!r}.")


def _check_args(s: Spec, part: str, phase: str, batch: int, seq: int | None,
                kv_len: int | None, dtype: str, layer: int | None) -> tuple[int, int, int | None]:
    """Validate the arguments; return (new tokens per sequence, cached tokens, layer)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}.")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}.")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported by the LLM builder; use one of "
                         f"{sorted(_DTYPES)} (quantised formats are applied later, on the IR).")
    for label, value in (("batch", batch), ("seq", seq), ("kv_len", kv_len)):
        _check_int(label, value, 0 if label == "kv_len" else 1)
    if part in ("all", "head"):
        if layer is not None:
            raise ValueError(f"layer={layer!r} applies to part='dense' or 'attention' only; "
                             f"leave it unset for part={part!r}.")
    else:
        layer = 0 if layer is None else layer
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < s.layers:
            raise ValueError(f"layer must be an integer in 0..{s.layers - 1} for "
                             f"{s.name!r}, got {layer!r}.")
    if part == "dense":
        if seq is None:
            raise ValueError("part='dense' needs seq = T, the number of tokens in the step "
                             "(all sequences' new tokens together).")
        if batch != 1:
            raise ValueError(f"part='dense' takes all T tokens as one row: pass batch=1 and "
                             f"seq=T, got batch={batch}.")
        return seq, 0, layer
    if part == "head":
        return (batch if seq is None else seq), 0, None
    if phase == "prefill":
        if seq is None:
            raise ValueError("prefill needs seq (the number of prompt tokens).")
        return seq, kv_len or 0, layer
    if seq not in (None, 1):
        raise ValueError(f"decode processes one token per sequence: seq must be 1 or unset, "
                         f"got {seq}.")
    if not kv_len:
        raise ValueError("decode needs kv_len >= 1 (tokens already in the KV cache).")
    return 1, kv_len, layer


def _vi(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _graph_all(b: _Builder, batch: int, seq: int, past: int) -> tuple[list, list]:
    """The whole model for one step: embedding, every layer, last-token LM head."""
    s, sh, act = b.s, b.sh, b.onnx_type
    inputs = [_vi("input_ids", TensorProto.INT64, [batch, seq])]
    outputs = [_vi("logits", act, [batch, 1, s.vocab])]
    h = b.embed("input_ids", (batch, seq))
    cos, sin = b.rope_tables(past, seq)
    full_len = past + seq
    masks = {"full": b.mask(past, seq, 0, full_len, None, "mask.full")}
    if any(s.is_sliding(i) for i in range(s.layers)):
        lp = _layer_past(s, next(i for i in range(s.layers) if s.is_sliding(i)), past)
        masks["sliding"] = b.mask(past, seq, past - lp, lp + seq, s.window, "mask.sliding")
    for i in range(s.layers):
        lp = _layer_past(s, i, past)
        if lp:
            for kind in ("key", "value"):
                inputs.append(_vi(f"past_key_values.{i}.{kind}", act,
                                  [batch, sh.kv_heads, lp, s.head_dim]))
        mask = masks["sliding" if s.is_sliding(i) else "full"]

        def core(q, k, v, i=i, lp=lp, mask=mask):
            return b.core(q, k, v, i, batch, seq, lp, mask)

        def ffn(x, i=i):
            return b.moe(x, i, batch, seq) if s.experts else b.dense_mlp(x, i, (batch, seq))

        h, (pk, pv) = b.decoder_layer(h, i, batch, seq, cos, sin, core, ffn)
        keep = min(lp + seq, s.window) if s.is_sliding(i) else lp + seq
        for kind, src in (("key", pk), ("value", pv)):
            b.op("Identity", [src], f"present.{i}.{kind}")
            outputs.append(_vi(f"present.{i}.{kind}", act, [batch, sh.kv_heads, keep, s.head_dim]))
    last = b.op("Slice", [h, b.const([-1]), b.const([2**62]), b.const([1])], "model.last_token")
    last = b.norm(last, "model.norm")
    b.lm_head(last, (batch, 1))
    return inputs, outputs


def _graph_dense(b: _Builder, layer: int, tokens: int) -> tuple[list, list]:
    """One layer for ``tokens`` tokens with its attention core replaced by a pass-through."""
    s, sh, act, i = b.s, b.sh, b.onnx_type, layer
    inputs = [_vi("hidden_states", act, [1, tokens, s.hidden])]
    outputs = [_vi("hidden_out", act, [1, tokens, s.hidden])]
    # Positions do not change any cost, so the tokens take positions 0..T-1.
    cos, sin = b.rope_tables(0, tokens) if s.uses_rope(i) else (None, None)

    def core(q, k, v):
        # The attention core (costed by part="attention") is replaced by passing q through:
        # q is already laid out [1, kv, g, T, d] like the core's real output, so o_proj reads
        # the same shape it would after attention; k and v leave as outputs for the core.
        return q, (k, v)

    def ffn(x):
        return b.moe_expected(x, i, tokens) if s.experts else b.dense_mlp(x, i, (1, tokens))

    h, (k, v) = b.decoder_layer("hidden_states", i, 1, tokens, cos, sin, core, ffn)
    b.op("Identity", [h], "hidden_out")
    for name, src in (("k_new", k), ("v_new", v)):
        b.op("Identity", [src], name)
        outputs.append(_vi(name, act, [1, sh.kv_heads, tokens, s.head_dim]))
    return inputs, outputs


def _graph_attention(b: _Builder, layer: int, batch: int, q_len: int,
                     kv_len: int) -> tuple[list, list]:
    """The attention core of one layer: ``q_len`` new tokens per sequence over a cache."""
    s, sh, act, i = b.s, b.sh, b.onnx_type, layer
    hd, kvh = s.head_dim, sh.kv_heads
    past = _layer_past(s, i, kv_len)
    inputs = [_vi("q", act, [batch, sh.heads, q_len, hd]),
              _vi("k_new", act, [batch, kvh, q_len, hd]),
              _vi("v_new", act, [batch, kvh, q_len, hd])]
    if past:
        inputs += [_vi(f"past_key_values.{i}.{kind}", act, [batch, kvh, past, hd])
                   for kind in ("key", "value")]
    sliding = s.is_sliding(i)
    mask = None
    # One new token may see all its cache, except on a sliding layer whose cache is full
    # (the oldest slot is out of the window): only then, or for several new tokens, mask.
    if q_len > 1 or (sliding and past + q_len > s.window):
        mask = b.mask(kv_len, q_len, kv_len - past, past + q_len, s.window if sliding else None,
                      "mask")
    q = b.reshape("q", (batch, kvh, sh.group, q_len, hd), f"model.layers.{i}.self_attn.q_groups")
    ctx, (pk, pv) = b.core(q, "k_new", "v_new", i, batch, q_len, past, mask)
    b.reshape(ctx, (batch, sh.heads, q_len, hd), "attn_output")
    keep = min(past + q_len, s.window) if sliding else past + q_len
    outputs = [_vi("attn_output", act, [batch, sh.heads, q_len, hd])]
    for kind, src in (("key", pk), ("value", pv)):
        b.op("Identity", [src], f"present.{i}.{kind}")
        outputs.append(_vi(f"present.{i}.{kind}", act, [batch, kvh, keep, hd]))
    return inputs, outputs


def _graph_head(b: _Builder, rows: int, tokens: int) -> tuple[list, list]:
    """Final norm and LM head for ``rows`` rows, and the embedding of ``tokens`` tokens."""
    s, act = b.s, b.onnx_type
    inputs = [_vi("hidden_states", act, [1, rows, s.hidden]),
              _vi("input_ids", TensorProto.INT64, [1, tokens])]
    outputs = [_vi("logits", act, [1, rows, s.vocab]),
               _vi("inputs_embeds", act, [1, tokens, s.hidden])]
    b.op("Identity", [b.embed("input_ids", (1, tokens))], "inputs_embeds")
    x = b.norm("hidden_states", "model.norm")
    b.lm_head(x, (1, rows))
    return inputs, outputs


def build_llm(model: str | dict, phase: str, batch: int, seq: int | None = None,
              kv_len: int | None = None, *, dtype: str = "bf16",
              materialize: bool | None = None, part: str = "all", layer: int | None = None,
              tp: int = 1) -> onnx.ModelProto:
    """Build one step of a decoder-only LLM, or one part of it, as ONNX (opset 23).

    Parameters
    ----------
    model : str or dict
        A config name from :func:`list_models` or a Hugging Face-style config dict.
    phase : {"prefill", "decode"}
        Prefill reads ``input_ids [batch, seq]`` and writes ``present.{i}.key/value``
        ``[batch, kv_heads, min(kv_len + seq, window), head_dim]``; with ``kv_len`` > 0 it
        is a chunk of prefill on top of a cache. Decode reads ``input_ids [batch, 1]``. Both
        read ``past_key_values.{i}.key/value [batch, kv_heads, L_i, head_dim]`` when
        ``kv_len`` > 0, with ``L_i = min(kv_len, window)`` on sliding layers.
    batch : int
        Sequences per step (rows of the LM head for ``part="head"``; 1 for ``"dense"``).
    seq : int, optional
        New tokens per sequence (prefill); 1 or unset for decode. For ``part="dense"`` the
        number of tokens T of the whole step; for ``part="head"`` the tokens embedded
        (default ``batch``).
    kv_len : int, optional
        Tokens already cached (needed for decode).
    dtype : {"bf16", "fp16", "fp32"}
        Type of weights, activations and KV cache.
    materialize : bool, optional
        Write random weights (fixed seed). ``None`` means: only when the model has fewer than
        50 M parameters; otherwise initializers carry only dims and point at an external file
        that is never written, so the model cannot be run, only analysed.
    part : {"all", "dense", "attention", "head"}
        ``"all"``: the whole step. ``"dense"``: decoder layer ``layer`` for T tokens without
        its attention core (input ``hidden_states [1, T, hidden]``, outputs ``hidden_out``,
        ``k_new``, ``v_new``); an MoE layer is costed by :func:`expected_experts`, not routed.
        ``"attention"``: the core of layer ``layer`` (inputs ``q [batch, heads, seq, d]``,
        ``k_new``/``v_new [batch, kv_heads, seq, d]`` and the past KV; outputs
        ``attn_output [batch, heads, seq, d]`` and the present KV). ``"head"``: final norm
        and LM head on ``hidden_states [1, batch, hidden]`` (output ``logits``), and the
        embedding of ``input_ids [1, seq]`` (output ``inputs_embeds``).
    layer : int, optional
        Layer index for ``"dense"`` and ``"attention"`` (default 0); it decides sliding or
        global attention, RoPE and QK-norm.
    tp : int
        Tensor parallelism: the graph is that of one of ``tp`` chips (Megatron-style:
        column-parallel q/k/v, gate and up; row-parallel o_proj and down followed by an
        ``ai.npusim`` ``AllReduce``; vocabulary-parallel embedding (all-reduced) and LM head
        (``AllGather`` of the logits); every expert's intermediate split). ``tp`` must divide
        the attention heads; KV heads fewer than ``tp`` are replicated, one per chip.

    Returns
    -------
    onnx.ModelProto
        ``metadata_props`` records the model, phase, part, sizes and per-chip heads.

    Raises
    ------
    ValueError
        Bad arguments, or a ``tp`` that does not divide the heads; the message says which.

    Examples
    --------
    >>> m = build_llm("tiny-llama", "decode", batch=2, kv_len=5, dtype="fp32")
    >>> [d.dim_value for d in m.graph.input[1].type.tensor_type.shape.dim]
    [2, 2, 5, 16]
    >>> a = build_llm("tiny-llama", "decode", batch=3, kv_len=7, part="attention", tp=2)
    >>> [d.dim_value for d in a.graph.input[0].type.tensor_type.shape.dim]
    [3, 2, 1, 16]
    """
    s = resolve(model)
    seq_len, past, layer = _check_args(s, part, phase, batch, seq, kv_len, dtype, layer)
    shard = _shard(s, tp)
    n_params = spec_parameters(s)
    if materialize is None:
        materialize = n_params < MATERIALIZE_BELOW
    b = _Builder(s, dtype, materialize, shard)
    if part == "all":
        inputs, outputs = _graph_all(b, batch, seq_len, past)
    elif part == "dense":
        inputs, outputs = _graph_dense(b, layer, seq_len)
    elif part == "attention":
        inputs, outputs = _graph_attention(b, layer, batch, seq_len, past)
    else:
        inputs, outputs = _graph_head(b, batch, seq_len)

    title = f"{s.name} {phase}" if part == "all" else f"{s.name} {part}"
    if layer is not None:
        title += f" layer {layer}"
    if tp > 1:
        title += f" (1 of {tp} chips)"
    graph = helper.make_graph(b.nodes, title, inputs, outputs, b.inits, value_info=b.infos)
    opsets = [helper.make_opsetid("", OPSET)]
    if tp > 1:
        opsets.append(helper.make_opsetid(NPUSIM_DOMAIN, NPUSIM_OPSET))
    m = helper.make_model(graph, opset_imports=opsets, producer_name="npusim.graphs.builder")
    m.ir_version = IR_VERSION
    meta = {"model": s.name, "model_type": s.model_type, "phase": phase, "part": part,
            "layer": layer, "batch": batch, "seq": seq_len, "kv_len": past, "dtype": dtype,
            "materialized": materialize, "parameters": n_params, "tp": tp,
            "heads_per_chip": shard.heads, "kv_heads_per_chip": shard.kv_heads,
            "sliding_window": s.window, "layer_types": list(s.layer_types),
            "experts": s.experts, "top_k": s.top_k}
    if part == "dense" and s.experts:
        meta["expected_experts"] = expected_experts(s.experts, s.top_k, seq_len)
    helper.set_model_props(m, {f"npusim.{k}": json.dumps(v) for k, v in meta.items()})
    return m


def check(model: onnx.ModelProto) -> None:
    """Run ``onnx.checker`` (full check, with shape inference) on a built model.

    ``onnx.checker`` insists on opening the external file of every non-materialized
    initializer, which by design does not exist; so those initializers are checked as graph
    inputs of the same type and shape, on a copy. Materialized models are checked as they are.

    Parameters
    ----------
    model : onnx.ModelProto
        A model from :func:`build_llm`.

    Raises
    ------
    onnx.checker.ValidationError, onnx.shape_inference.InferenceError
        If the graph is not valid ONNX.
    """
    external = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if not external:
        onnx.checker.check_model(model, full_check=True)
        return
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [t for t in copy.graph.initializer if t.data_location != TensorProto.EXTERNAL]
    del copy.graph.initializer[:]
    copy.graph.initializer.extend(kept)
    copy.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                            for t in external)
    onnx.checker.check_model(copy, full_check=True)
