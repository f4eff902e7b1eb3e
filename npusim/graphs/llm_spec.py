"""What a decoder-only LLM is: its Hugging Face-style config resolved into a :class:`Spec`, and its
parameters by arithmetic.

The committed configs live in ``npusim/graphs/configs/*.json`` (each with an ``_npusim``
provenance block). :mod:`npusim.graphs.builder` turns a :class:`Spec` into ONNX graphs; this
module knows nothing of graphs, so a model's size, features and parameter count can be read
without building one. The per-family features a :class:`Spec` carries are described in
:mod:`npusim.graphs.builder`.

This module imports only onnx (for counting a built model's initializers) and the standard
library.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import onnx

# Hugging Face key spellings that differ between model families (EXAONE 3.5 uses its own).
_KEY_ALIASES = {"num_layers": "num_hidden_layers", "layer_norm_epsilon": "rms_norm_eps",
                "n_routed_experts": "num_local_experts", "num_experts": "num_local_experts",
                "experts_per_token": "num_experts_per_tok",
                # GPT-J (and GPT-2 family) spellings
                "n_embd": "hidden_size", "n_layer": "num_hidden_layers",
                "n_head": "num_attention_heads", "n_inner": "intermediate_size",
                "n_positions": "max_position_embeddings"}


# -- configs ------------------------------------------------------------------------------
@cache
def _configs_dir():
    """The folder of committed configs (where the package is does not change in a process)."""
    try:
        return resources.files(__package__ or "npusim.graphs").joinpath("configs")
    except ModuleNotFoundError:
        # Imported straight from a checkout (e.g. doctests run on graphs/), not as a package.
        return Path(__file__).resolve().parent / "configs"


def list_models() -> list[str]:
    """Names of the committed configs, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`load_config` and :func:`build_llm`.

    Examples
    --------
    >>> "llama-3.1-8b" in list_models()
    True
    """
    return sorted(p.name[:-5] for p in _configs_dir().iterdir() if p.name.endswith(".json"))


def load_config(name: str) -> dict:
    """Load a committed Hugging Face-style config by name.

    Parameters
    ----------
    name : str
        One of :func:`list_models`, e.g. ``"llama-3.1-8b"``.

    Returns
    -------
    dict
        The config, with its ``_npusim`` provenance block.

    Raises
    ------
    ValueError
        If no config has that name; the message lists the known names.
    """
    return json.loads(_config_text(name))


def _config_text(name: str) -> str:
    """The text of the committed config ``name`` (:func:`load_config`)."""
    path = _configs_dir().joinpath(f"{name}.json") \
        if isinstance(name, str) and _PLAIN_NAME.fullmatch(name) else None
    # a plain name whose file is there is one of list_models() (the folder is listed only
    # for a name that is not: a serving run loads its model's config for every graph)
    if path is None or not path.is_file():
        known = list_models()
        if name not in known:
            raise ValueError(f"unknown LLM config {name!r}; known configs: {', '.join(known)}. "
                             "Pass one of these names, or a Hugging Face config dict.")
        path = _configs_dir().joinpath(f"{name}.json")
    return path.read_text(encoding="utf-8")


# a config name that names a file in the configs folder itself (no folder part)
_PLAIN_NAME = re.compile(r"[^/\\\x00]+")


@dataclass(frozen=True)
class Spec:
    """The architecture facts the builder needs, resolved from a config dict."""

    name: str
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    inter: int
    vocab: int
    eps: float
    rope_theta: float
    rope_scaling: dict | None
    tie: bool
    experts: int
    top_k: int
    window: int | None
    layer_types: tuple[str, ...]
    attention_bias: bool
    mlp_bias: bool
    sinks: bool
    qk_norm: bool
    post_norm: bool
    rope_on_full: bool
    swiglu_limit: float | None
    swiglu_alpha: float
    # the context window (``max_position_embeddings``): positions the model was built for
    context: int | None = None
    # "rms" (RMSNorm, weight only) or "layer" (LayerNorm with weight and bias, GPT-J)
    norm: str = "rms"
    # "swiglu" (gate, up, down) or "gelu" (fc_in, tanh-approximated GELU, fc_out; GPT-J)
    mlp_act: str = "swiglu"
    # attention and MLP read the same normed input and both add into the residual (GPT-J)
    parallel_residual: bool = False
    # RoPE on the first ``rotary_dim`` dims of each head only; None means the whole head
    rotary_dim: int | None = None
    # RoPE pairs adjacent dims (2i, 2i+1) ("rotate every two", GPT-J) instead of halves
    rope_interleaved: bool = False
    # the LM head adds a bias over the vocabulary (GPT-J)
    lm_head_bias: bool = False

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    def is_sliding(self, layer: int) -> bool:
        return self.window is not None and self.layer_types[layer] == "sliding_attention"

    def uses_rope(self, layer: int) -> bool:
        return self.rope_on_full or self.is_sliding(layer)

    @property
    def rope_dim(self) -> int:
        """Dims of each head that RoPE rotates (all of them unless the config is partial)."""
        return self.head_dim if self.rotary_dim is None else self.rotary_dim


def _require(cfg: dict, key: str, where: str) -> Any:
    if key not in cfg or cfg[key] is None:
        raise ValueError(f"LLM config {where}: required key {key!r} is missing; add it "
                         "(Hugging Face spelling, e.g. hidden_size, num_hidden_layers).")
    return cfg[key]


def _positive_int(cfg: dict, key: str, where: str) -> int:
    value = _require(cfg, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"LLM config {where}: {key!r} must be a positive integer, got {value!r}.")
    return value


def _layer_types(cfg: dict, layers: int, window: int | None, where: str) -> tuple[str, ...]:
    types = cfg.get("layer_types")
    pattern = cfg.get("sliding_window_pattern")
    if types is None and isinstance(pattern, str) and pattern:
        types = ["sliding_attention" if pattern[i % len(pattern)].upper() == "L"
                 else "full_attention" for i in range(layers)]
    if types is None:
        types = ["sliding_attention" if window else "full_attention"] * layers \
            if cfg.get("model_type") in ("mistral",) else ["full_attention"] * layers
    types = tuple(types)
    if len(types) != layers:
        raise ValueError(f"LLM config {where}: layer_types has {len(types)} entries but "
                         f"num_hidden_layers is {layers}; give one entry per layer.")
    bad = sorted({t for t in types if t not in ("sliding_attention", "full_attention")})
    if bad:
        raise ValueError(f"LLM config {where}: unknown layer_types {bad}; use "
                         "'sliding_attention' or 'full_attention'.")
    if window is None and "sliding_attention" in types:
        raise ValueError(f"LLM config {where}: layer_types has sliding_attention layers but no "
                         "sliding_window; set sliding_window to the window length in tokens.")
    return types


def resolve(model: str | dict) -> Spec:
    """Resolve a config name or dict into a :class:`Spec`.

    Parameters
    ----------
    model : str or dict
        A name from :func:`list_models` or a Hugging Face-style config dict.

    Returns
    -------
    Spec
        Sizes and per-family features (sinks, QK-norm, post-norm, sliding layers, MoE).
    """
    if isinstance(model, str):
        return _resolve_text(model, _config_text(model))
    return _resolve(model, model)


@lru_cache(maxsize=64)
def _resolve_text(name: str, text: str) -> Spec:
    """:func:`resolve` of a committed config by name, memoised on its text (the file is read
    on every call; a serving run resolves its model for every graph it builds)."""
    return _resolve(name, json.loads(text))


def _resolve(model: str | dict, raw: Any) -> Spec:
    """:func:`resolve` of ``model`` (a name or a dict), whose config is ``raw``."""
    if not isinstance(raw, dict):
        raise ValueError(f"model must be a config name or a dict, got {type(raw).__name__}.")
    cfg = {_KEY_ALIASES.get(k, k): v for k, v in raw.items()}
    extra = cfg.get("_npusim") or {}
    where = repr(model) if isinstance(model, str) else repr(extra.get("name", "<dict>"))
    hidden = _positive_int(cfg, "hidden_size", where)
    layers = _positive_int(cfg, "num_hidden_layers", where)
    heads = _positive_int(cfg, "num_attention_heads", where)
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    if heads % kv_heads:
        raise ValueError(f"LLM config {where}: num_attention_heads ({heads}) is not a multiple "
                         f"of num_key_value_heads ({kv_heads}); GQA needs whole groups.")
    if head_dim % 2:
        raise ValueError(f"LLM config {where}: head_dim {head_dim} is odd; RoPE needs it even.")
    model_type = str(cfg.get("model_type", "llama"))
    window = cfg.get("sliding_window")
    if window is not None and (not isinstance(window, int) or window <= 0):
        raise ValueError(f"LLM config {where}: sliding_window must be a positive integer or "
                         f"null, got {window!r}.")
    experts = int(cfg.get("num_local_experts") or 0)
    top_k = int(cfg.get("num_experts_per_tok") or 0)
    if experts and not 0 < top_k <= experts:
        raise ValueError(f"LLM config {where}: num_experts_per_tok must be in 1..{experts}, "
                         f"got {top_k}.")
    gpt_oss = model_type == "gpt_oss"
    exaone4 = model_type == "exaone4"
    gptj = model_type == "gptj"
    if gptj and cfg.get("intermediate_size") is None:
        # GPT-J's config leaves n_inner null, meaning 4 x n_embd (Hugging Face GPTJConfig).
        cfg["intermediate_size"] = 4 * hidden
    rotary_dim = cfg.get("rotary_dim")
    if rotary_dim is not None and (isinstance(rotary_dim, bool) or not isinstance(rotary_dim, int)
                                   or rotary_dim <= 0 or rotary_dim % 2
                                   or rotary_dim > head_dim):
        raise ValueError(f"LLM config {where}: rotary_dim must be an even integer in "
                         f"2..{head_dim} (head_dim), got {rotary_dim!r}.")
    if rotary_dim == head_dim:
        rotary_dim = None
    return Spec(
        name=str(extra.get("name", model if isinstance(model, str) else model_type)),
        model_type=model_type, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, inter=_positive_int(cfg, "intermediate_size", where),
        vocab=_positive_int(cfg, "vocab_size", where), eps=float(cfg.get("rms_norm_eps", 1e-5)),
        rope_theta=float(cfg.get("rope_theta", 10000.0)), rope_scaling=cfg.get("rope_scaling"),
        tie=bool(cfg.get("tie_word_embeddings", False)), experts=experts, top_k=top_k,
        window=window, layer_types=_layer_types(cfg, layers, window, where),
        attention_bias=bool(cfg.get("attention_bias", gpt_oss)),
        mlp_bias=bool(cfg.get("mlp_bias", gpt_oss or gptj)),
        sinks=bool(extra.get("attention_sinks", gpt_oss)),
        # Qwen3 normalises q and k per head (q_norm/k_norm) like EXAONE 4.0, but pre-norms.
        qk_norm=exaone4 or model_type == "qwen3", post_norm=exaone4,
        # EXAONE 4.0 leaves RoPE out of its global layers only when it has local layers.
        rope_on_full=not (exaone4 and window is not None),
        swiglu_limit=cfg.get("swiglu_limit"),
        swiglu_alpha=float(extra.get("swiglu_alpha", 1.702)),
        context=(_positive_int(cfg, "max_position_embeddings", where)
                 if cfg.get("max_position_embeddings") is not None else None),
        norm="layer" if gptj else "rms", mlp_act="gelu" if gptj else "swiglu",
        parallel_residual=gptj, rotary_dim=rotary_dim, rope_interleaved=gptj,
        lm_head_bias=gptj,
    )


# -- parameter arithmetic ----------------------------------------------------------------
def param_shapes(s: Spec) -> list[tuple[str, tuple[int, ...]]]:
    """Every parameter's name and shape, in graph order; the single source of truth."""
    d, hd, q, kv = s.hidden, s.head_dim, s.heads * s.head_dim, s.kv_heads * s.head_dim
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (s.vocab, d))]
    norm_bias = s.norm == "layer"
    for i in range(s.layers):
        p = f"model.layers.{i}"
        out.append((f"{p}.input_layernorm.weight" if not s.post_norm
                    else f"{p}.post_attention_layernorm.weight", (d,)))
        if norm_bias:
            out.append((f"{p}.input_layernorm.bias", (d,)))
        for proj, width in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            out.append((f"{p}.self_attn.{proj}.weight", (d, width)))
            if s.attention_bias:
                out.append((f"{p}.self_attn.{proj}.bias", (width,)))
        if s.qk_norm:
            out += [(f"{p}.self_attn.q_norm.weight", (hd,)), (f"{p}.self_attn.k_norm.weight", (hd,))]
        if s.sinks:
            out.append((f"{p}.self_attn.sinks", (s.heads,)))
        out.append((f"{p}.self_attn.o_proj.weight", (q, d)))
        if s.attention_bias:
            out.append((f"{p}.self_attn.o_proj.bias", (d,)))
        if not s.parallel_residual:
            out.append((f"{p}.post_attention_layernorm.weight" if not s.post_norm
                        else f"{p}.post_feedforward_layernorm.weight", (d,)))
        if s.mlp_act == "gelu":
            for proj, shape, bias in (("fc_in", (d, s.inter), (s.inter,)),
                                      ("fc_out", (s.inter, d), (d,))):
                out.append((f"{p}.mlp.{proj}.weight", shape))
                if s.mlp_bias:
                    out.append((f"{p}.mlp.{proj}.bias", bias))
        elif s.experts:
            e, f = s.experts, s.inter
            out += [(f"{p}.mlp.router.weight", (d, e)), (f"{p}.mlp.router.bias", (e,))]
            for proj, shape, bias in (("gate_proj", (e, d, f), (e, f)),
                                      ("up_proj", (e, d, f), (e, f)),
                                      ("down_proj", (e, f, d), (e, d))):
                out.append((f"{p}.mlp.experts.{proj}.weight", shape))
                if s.mlp_bias:
                    out.append((f"{p}.mlp.experts.{proj}.bias", bias))
        else:
            for proj, shape, bias in (("gate_proj", (d, s.inter), (s.inter,)),
                                      ("up_proj", (d, s.inter), (s.inter,)),
                                      ("down_proj", (s.inter, d), (d,))):
                out.append((f"{p}.mlp.{proj}.weight", shape))
                if s.mlp_bias:
                    out.append((f"{p}.mlp.{proj}.bias", bias))
    out.append(("model.norm.weight", (d,)))
    if norm_bias:
        out.append(("model.norm.bias", (d,)))
    if not s.tie:
        out.append(("lm_head.weight", (d, s.vocab)))
    if s.lm_head_bias:
        out.append(("lm_head.bias", (s.vocab,)))
    return out


def count_parameters(model_or_config: str | dict | onnx.ModelProto) -> int:
    """Total parameter count of a config (by arithmetic) or of a built model (by initializers).

    Parameters
    ----------
    model_or_config : str, dict or onnx.ModelProto
        A config name, a config dict, or a model from :func:`build_llm`.

    Returns
    -------
    int
        Number of parameters; for MoE models all experts count, not only the active ones.

    Examples
    --------
    >>> count_parameters("llama-3.1-8b")
    8030261248
    """
    if isinstance(model_or_config, onnx.ModelProto):
        return sum(math.prod(t.dims) for t in model_or_config.graph.initializer)
    return spec_parameters(resolve(model_or_config))


def spec_parameters(s: Spec) -> int:
    """Total parameter count of a resolved :class:`Spec` (what :func:`count_parameters` gives
    its config), memoised on the spec's every field (a serving run builds hundreds of graphs
    of one model, each recording its parameter count).

    Examples
    --------
    >>> spec_parameters(resolve("llama-3.1-8b"))
    8030261248
    """
    key = repr(s)
    n = _PARAMETERS.get(key)
    if n is None:
        n = sum(math.prod(shape) for _, shape in param_shapes(s))
        if len(_PARAMETERS) > 256:
            _PARAMETERS.clear()
        _PARAMETERS[key] = n
    return n


# Memo of spec_parameters within a process (bounded), keyed by the spec's repr.
_PARAMETERS: dict[str, int] = {}
