"""Models by name: an ``.onnx`` path, or a built-in LLM config lowered through the same ONNX path.

Also the one check of a workload's sizes (:func:`check_sizes`): :func:`load_model`,
:func:`npusim.simulate`, the K-Perf matrix and the serving simulation all call it before they
build or allocate anything, so a size out of range is refused in the same words everywhere.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ModelError
from ..ir import Graph

PHASES = ("prefill", "decode")

# Upper limits of workload sizes, none of them physical: each is far past any published
# workload and small enough that nothing overflows and a run stays seconds-to-minutes
# (checked: llama-3.1-405b prefill at batch 65,536 x 131,072 tokens, 8e21 MACs, runs on both
# engines in seconds). All are assumptions.
# - batch: 256x vLLM's default max_num_seqs (256) and 32x TensorRT-LLM's default
#   max_batch_size (2048).
MAX_BATCH = 1 << 16
# - users: 4x the largest concurrency in npusim's measured data (4,000 users, row I5); the
#   serving simulation's time grows linearly with users (about 1 ms per user at 128/128 tokens).
MAX_USERS = 1 << 14
# - chips: past the largest scale-up domains shipped (NVL72, 576-GPU NVLink domains); tensor
#   parallelism needs chips <= attention heads anyway.
MAX_CHIPS = 1 << 10
# - tokens of one sequence when a config states no context window: a million tokens, the
#   longest context windows of public LLMs in 2025.
MAX_TOKENS = 1 << 20
# - one axis of an ONNX model bound with --dim: 16x that million tokens.
MAX_DIM = 1 << 24
# - measured requests of a serving scenario: 64x MAX_USERS' default of four rounds.
MAX_REQUESTS = 1 << 22

# Python name -> CLI flag, for messages that read right from both.
FLAGS = {"batch": "--batch", "seq": "--seq", "kv_len": "--kv-len", "users": "--users",
         "input_len": "--input-lens", "output_len": "--output-lens", "chips": "--chips",
         "num_requests": None, "phase": "--phase", "dtype": "--dtype"}


def builtin_models() -> list[str]:
    """Names of the built-in LLM configs (``npusim/graphs/configs/*.json``)."""
    from npusim.graphs.builder import list_models
    return list_models()


def model_spec(name: str, *, onnx: bool = False):
    """The :class:`~npusim.graphs.builder.Spec` of built-in LLM ``name`` (its ``name`` field
    set to ``name``); ``onnx`` says that an ONNX path would have been accepted too (for the
    message).

    Raises
    ------
    ModelError
        If no built-in LLM has that name; the message suggests the closest and lists them all.
    """
    from npusim.graphs.builder import resolve
    names = builtin_models()
    if not isinstance(name, str) or name not in names:
        from ..arch.schema import did_you_mean
        what = "neither an ONNX file nor a built-in LLM" if onnx else "not a built-in LLM"
        hint = "a path ending in .onnx, or one of those names" if onnx else "one of those names"
        shown = str(name) if len(str(name)) <= 100 else str(name)[:100] + "..."
        raise ModelError(
            f"model {shown!r} is {what}{did_you_mean(shown, names)}; built-in: "
            f"{', '.join(names)}. Pass {hint}")
    try:
        # named as the user calls it (the config's own label is descriptive), for messages
        return dataclasses.replace(resolve(name), name=name)
    except ValueError as e:
        raise ModelError(f"cannot read built-in LLM {name}: {e}") from None


def mx_experts_only(name: str, precision) -> bool:
    """Whether built-in LLM ``name`` at ``precision`` (as an arch runs it) has MXFP4 weights on
    its MoE experts only, every other matrix in the checkpoint's bf16
    (:func:`npusim.passes.quantize.apply_precision`).

    True when the checkpoint ships them so (the config's ``_npusim.mxfp4_weights`` is
    ``experts``: gpt-oss) and the precision runs W4A16 (16-bit activations: a GPU without FP4
    MMA, whose serving stacks load the checkpoint as published and dequantise the experts in
    the kernel). Where MXFP4 runs with fp8 activations (RNGD's fetch adapter) the vendor's
    build sets the other weights' dtypes, which are not published: they stay at the
    precision's weight dtype there, as before.
    """
    if getattr(precision, "weights", None) != "mxfp4" or \
            getattr(precision, "activations", None) not in ("bf16", "fp16"):
        return False
    from npusim.graphs.llm_spec import load_config
    try:
        extra = load_config(name).get("_npusim") or {}
    except ValueError:
        return False
    return extra.get("mxfp4_weights") == "experts"


def load_part(model: str, phase: str, batch: int, *, seq: int | None = None,
              kv_len: int | None = None, dtype: str = "bf16", part: str = "all",
              layer: int | None = None, tp: int = 1, name: str | None = None,
              precision=None, experts_only: bool = False) -> Graph:
    """The IR graph of one step (or part of one) of a built-in LLM: what
    :func:`npusim.graphs.builder.build_llm` builds with these arguments, loaded by
    :func:`~npusim.frontend.onnx_loader.load_onnx` as a model npusim built itself
    (``trusted``), named ``name``, in the builder's ``dtype``; then, if ``precision`` (a
    :class:`~npusim.passes.quantize.Precision`) is given,
    :func:`~npusim.passes.quantize.apply_precision` with it and ``experts_only``.

    Memoised in the process on the model's resolved config and every argument: the cost
    models of a K-Perf run (one per arch and precision) ask for the same parts at the same
    sizes, and those of two archs at one precision for the same graphs. A graph is shared
    between callers, so none may change it (:func:`~npusim.passes.quantize.apply_precision`
    returns a new graph).

    Examples
    --------
    >>> g = load_part("tiny-llama", "decode", 2, kv_len=5, part="attention")
    >>> g is load_part("tiny-llama", "decode", 2, kv_len=5, part="attention")
    True
    """
    from npusim.graphs.builder import resolve
    key = (repr(resolve(model)), model, phase, batch, seq, kv_len, dtype, part, layer, tp, name)
    if precision is None:
        return _load_part(*key)
    return _precise_part(key, precision, bool(experts_only))


@lru_cache(maxsize=2048)
def _precise_part(key: tuple, precision, experts_only: bool) -> Graph:
    """:func:`load_part` with a precision, memoised."""
    from ..passes.quantize import apply_precision
    return apply_precision(_load_part(*key), precision, experts_only=experts_only)


@lru_cache(maxsize=1024)
def _load_part(spec: str, model: str, phase: str, batch: int, seq: int | None,
               kv_len: int | None, dtype: str, part: str, layer: int | None, tp: int,
               name: str | None) -> Graph:
    """:func:`load_part`, memoised (``spec``, the resolved config's repr, keys a config that
    changed)."""
    from npusim.graphs.builder import build_llm
    from .onnx_loader import load_onnx
    proto = build_llm(model, phase, batch, seq=seq, kv_len=kv_len, dtype=dtype, part=part,
                      layer=layer, tp=tp)
    return load_onnx(proto, name=name, trusted=True)


def _label(name: str) -> str:
    flag = FLAGS.get(name)
    return f"{name} ({flag})" if flag else name


def _whole(name: str, value, minimum: int, cap: int, why: str) -> int:
    """``value`` as an int in ``minimum..cap``, else a ModelError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ModelError(f"{_label(name)}: {value!r} is not a whole number; give an integer "
                         f"from {minimum} to {cap:,}")
    if value < minimum:
        raise ModelError(f"{_label(name)} {value} must be at least {minimum}")
    if value > cap:
        raise ModelError(f"{_label(name)} {value} is past the limit of {cap:,} ({why})")
    return int(value)


def _caps(spec) -> dict[str, tuple[int, int, str]]:
    """Option -> (minimum, maximum, reason of the maximum)."""
    ctx = getattr(spec, "context", None)
    if ctx:
        tokens = (ctx, f"{spec.name}'s context window: max_position_embeddings in its config")
    else:
        tokens = (MAX_TOKENS, "assumption: a million tokens, the longest public context "
                              "windows; the model's config states none")
    assumed = "an assumption, far past any published workload"
    return {"batch": (1, MAX_BATCH, assumed), "users": (1, MAX_USERS, assumed),
            "chips": (1, MAX_CHIPS, assumed), "num_requests": (1, MAX_REQUESTS, assumed),
            "seq": (1, *tokens), "kv_len": (0, *tokens), "input_len": (1, *tokens),
            "output_len": (1, *tokens)}


def check_sizes(spec=None, *, decode: bool = False, **sizes) -> dict[str, int]:
    """Check a workload's sizes before anything is built; return them as ints.

    Parameters
    ----------
    spec : Spec, optional
        The built-in LLM (:func:`model_spec`); its context window bounds the token counts.
    decode : bool
        A decode step: one new token on top of ``kv_len`` cached ones.
    **sizes
        Any of ``batch``, ``seq``, ``kv_len``, ``users``, ``input_len``, ``output_len``,
        ``chips``, ``num_requests``; None means not given.

    Raises
    ------
    ModelError
        A size that is not a whole number, below its minimum or above its limit, or tokens of
        one sequence past the model's context window (``seq + kv_len``, a decode step's
        ``kv_len + 1``, a request's ``input_len + output_len``, as vLLM refuses a prompt plus
        ``max_tokens`` past ``max_model_len``). The message names the option, the value, the
        limit and why.

    Examples
    --------
    >>> check_sizes(model_spec("tiny-llama"), batch=2, seq=16)
    {'batch': 2, 'seq': 16}
    >>> check_sizes(model_spec("tiny-llama"), seq=500, kv_len=100)
    Traceback (most recent call last):
    ...
    npusim.errors.ModelError: kv_len (--kv-len) + seq (--seq) = 100 + 500 = 600 tokens is past tiny-llama's context window of 512 tokens (max_position_embeddings in its config); keep the sum at most 512
    """
    caps = _caps(spec)
    out: dict[str, int] = {}
    for name, value in sizes.items():
        if name not in caps:
            raise TypeError(f"check_sizes() got an unexpected size {name!r}")
        if value is not None:
            out[name] = _whole(name, value, *caps[name])
    spans = [("kv_len", "seq"), ("input_len", "output_len")]
    for parts in spans:
        given = [(p, out[p]) for p in parts if p in out]
        if decode and parts[0] == "kv_len" and "kv_len" in out:
            given = [("kv_len", out["kv_len"]), ("the decoded token", 1)]
        if len(given) < 2:
            continue
        total = sum(v for _, v in given)
        limit = caps[parts[0]][1]
        if total > limit:
            what = (f"{spec.name}'s context window of {limit:,} tokens (max_position_embeddings "
                    f"in its config)" if getattr(spec, "context", None) else
                    f"the limit of {limit:,} tokens ({caps[parts[0]][2]})")
            raise ModelError(
                f"{' + '.join(_label(p) for p, _ in given)} = "
                f"{' + '.join(str(v) for _, v in given)} = {total} tokens is past {what}; "
                f"keep the sum at most {limit}")
    return out


def is_onnx_path(model) -> bool:
    """Whether ``model`` names an ONNX file (by suffix or because the path exists)."""
    text = str(model)
    try:
        return text.lower().endswith(".onnx") or Path(text).exists()
    except OSError:  # a name too long to be a path is not a file
        return False


def _symbolic_dims(path: str) -> list[str]:
    """Symbolic dims of an ONNX file's graph inputs, best effort (for messages only)."""
    import onnx
    p = Path(path)
    if not p.is_file():
        return []
    try:
        m = onnx.load(str(p), load_external_data=False)
    except Exception:  # any unreadable file: load_onnx reports it properly
        return []
    inits = {t.name for t in m.graph.initializer}
    names: list[str] = []
    for vi in m.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param not in names:
                names.append(d.dim_param)
    return names


def _refuse_llm_options(path: str, given: list[str]) -> None:
    """LLM step options on an ONNX file: refused, pointing at ``--dim``."""
    names = _symbolic_dims(path)
    have = (f"its symbolic dims are: {', '.join(names)}" if names
            else "it has no symbolic input dims")
    raise ModelError(
        f"{path}: {', '.join(_label(g) for g in given)} "
        f"{'applies' if len(given) == 1 else 'apply'} to built-in LLMs only; for an ONNX file "
        f"bind its dimensions with --dim NAME=VALUE (dims={{NAME: VALUE}} in Python); {have}")


def load_model(model: "str | Path | onnx.ModelProto", *,
               dims: Mapping[str, int] | None = None, phase: str | None = None,
               batch: int | None = None, seq: int | None = None, kv_len: int | None = None,
               dtype=None, on_unsupported: str = "error") -> Graph:
    """Load ``model`` into an IR graph.

    ``model`` is a path to an ONNX file or an in-memory ``onnx.ModelProto`` (symbolic dims
    bound by ``dims``, run at ``batch`` if given: see :mod:`npusim.frontend.rebatch`) or the
    name of a built-in LLM (``npusim models``), built for ``phase`` (default prefill) at
    ``batch`` (default 1) with ``seq`` prompt tokens (prefill, default 128) or ``kv_len``
    cached tokens (decode, default 128), then lowered by the same ONNX frontend as a file
    would be.

    ``dtype`` is a precision (:data:`npusim.passes.quantize.PRECISIONS`: bf16, fp16, fp32,
    fp8, int8, int4, mxfp4, as ``npusim kperf --precision``), applied by the same precision
    pass as K-Perf's; an LLM defaults to bf16, an ONNX file keeps its own dtypes unless given.
    ``phase``, ``seq`` and ``kv_len`` describe an LLM step: on an ONNX file they are refused
    (bind its dims with ``dims``).
    """
    from ..passes.quantize import apply_precision, checkpoint_dtype, resolve_precision
    from .onnx_loader import load_onnx

    from onnx import ModelProto
    text = model.graph.name if isinstance(model, ModelProto) else str(model)
    precision = resolve_precision(dtype) if dtype is not None else None
    if isinstance(model, ModelProto) or is_onnx_path(text):
        given = [n for n, v in (("phase", phase), ("seq", seq), ("kv_len", kv_len))
                 if v is not None]
        if given:
            _refuse_llm_options(text, given)
        if batch is not None:
            batch = check_sizes(batch=batch)["batch"]
        try:
            graph = load_onnx(model if isinstance(model, ModelProto) else text, dims,
                              on_unsupported=on_unsupported, batch=batch)
        except OSError as e:  # a path the OS refuses outright (too long, ...)
            raise ModelError(f"{text[:200]}: cannot read this ONNX path: "
                             f"{e.strerror or e}; check the path") from None
        return graph if precision is None else apply_precision(graph, precision)
    spec = model_spec(text, onnx=True)
    phase = "prefill" if phase is None else phase
    if phase not in PHASES:
        raise ModelError(f"phase (--phase) must be one of {', '.join(PHASES)}, got {phase!r}")
    batch = 1 if batch is None else batch
    precision = precision or resolve_precision("bf16")
    if phase == "prefill":
        seq = 128 if seq is None else seq
    else:
        if seq is not None:
            raise ModelError(f"seq (--seq) {seq!r} applies to the prefill phase; a decode "
                             f"step reads one new token per sequence over kv_len (--kv-len) "
                             f"cached ones")
        kv_len = 128 if kv_len is None else kv_len
    sizes = check_sizes(spec, decode=phase == "decode", batch=batch, seq=seq, kv_len=kv_len)
    if phase == "decode" and sizes["kv_len"] < 1:
        raise ModelError("kv_len (--kv-len) must be at least 1 for a decode step (tokens "
                         "already in the KV cache)")
    batch, seq, kv_len = sizes["batch"], sizes.get("seq"), sizes.get("kv_len")
    shape = f"seq={seq}" if phase == "prefill" else f"kv_len={kv_len}"
    label = f"{text} {phase} batch={batch} {shape} {precision.name}"
    from npusim.graphs.builder import build_llm
    try:
        proto = build_llm(text, phase, batch, seq=seq, kv_len=kv_len,
                          dtype=checkpoint_dtype(precision))
    except ValueError as e:
        raise ModelError(f"cannot build {text}: {e}") from None
    graph = apply_precision(load_onnx(proto, dims, on_unsupported=on_unsupported, name=label),
                            precision, experts_only=mx_experts_only(text, precision))
    graph.meta.update({"llm": text, "phase": phase, "batch": batch, "seq": seq,
                       "kv_len": kv_len, "dtype": precision.name})
    return graph


__all__ = ["MAX_BATCH", "MAX_CHIPS", "MAX_DIM", "MAX_REQUESTS", "MAX_TOKENS", "MAX_USERS", "PHASES",
           "builtin_models", "check_sizes", "is_onnx_path", "load_model",
           "model_spec"]
