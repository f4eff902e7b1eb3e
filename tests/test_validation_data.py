"""The measured data npusim validates against (npusim/validate/data/measured.csv) and the Llama 2 configs
its rows need: original columns kept verbatim, simulation columns well-formed and consistent."""
from __future__ import annotations

import csv
import math
import re
from functools import lru_cache
from pathlib import Path

import pytest

import npusim
from npusim.graphs.builder import count_parameters, load_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "npusim" / "validate" / "data" / "measured.csv"
README = ROOT / "validation" / "README.md"
# The research table the file was built from; present beside the repository in a development
# checkout, absent from a source distribution.
REFERENCE = ROOT.parent / "shared" / "reference" / "measured-public.csv"

ORIGINAL = ["id", "hardware", "count", "software", "model", "precision", "batch_or_concurrency",
            "input_len", "output_len", "metric", "value", "unit", "source", "date", "notes"]
ADDED = ["sim_arch", "sim_chips", "sim_model", "sim_precision", "sim_mode", "sim_users",
         "sim_rate", "sim_input_len", "sim_output_len", "sim_metric", "sim_value", "simulable",
         "reason", "sim_note", "sim_scheduler", "sim_graphs", "sim_set", "sim_boundary",
         "sim_host"]
PRECISIONS = {"bf16", "fp16", "fp8", "int8", "int4", "mxfp4"}
MODES = {"offline", "server", "latency", "batch", "microbench", "snn"}
# (source unit, npusim metric) -> factor from the source value to the metric's unit
CONVERSION = {
    ("tok/s", "decode_tok_s"): 1.0,
    ("tok/s/GPU", "decode_tok_s_per_chip"): 1.0,
    ("tok/s", "prefill_tok_s"): 1.0,
    ("ms", "ttft_s"): 1e-3,
    ("ms", "tpot_s"): 1e-3,
    ("ms/token", "tpot_s"): 1e-3,
    ("ms", "e2e_s"): 1e-3,
    ("J/token", "energy_per_token_j"): 1.0,
    ("TFLOPS", "gemm_tflops"): 1.0,
    ("TB/s", "dram_tbps"): 1.0,
    ("GB/s", "allreduce_busbw_gbs"): 1.0,
    ("TFLOPS", "pim_peak_tflops"): 1.0,
    ("GB/s", "pim_internal_gbs"): 1.0,
    ("x", "pim_bw_ratio"): 1.0,
    ("x", "pim_gemv_speedup"): 1.0,
    ("mJ", "snn_dynamic_energy_j"): 1e-3,
    ("mW", "snn_power_w"): 1e-3,
    ("ms", "latency_s"): 1e-3,
    ("samples/s", "samples_s"): 1.0,
    ("W", "avg_power_w"): 1.0,
    ("W", "avg_power_w_per_chip"): 1.0,
    ("W", "idle_power_w"): 1.0,
    ("W", "loaded_idle_power_w"): 1.0,
}
METRICS = {metric for _, metric in CONVERSION}
GEMM = re.compile(r"gemm:([1-9]\d*),([1-9]\d*),([1-9]\d*)")
ALLREDUCE = re.compile(r"allreduce:([1-9]\d*)")
PIM_GEMV = re.compile(r"pim-gemv:([1-9]\d*),([1-9]\d*)")
LLM_MODES = {"offline", "server", "latency", "batch"}


@lru_cache(maxsize=None)
def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _rows() -> list[dict[str, str]]:
    return _read(DATA)[1]


def _simulable() -> list[dict[str, str]]:
    return [r for r in _rows() if r["simulable"] == "yes"]


def _positive_int(text: str) -> int:
    assert re.fullmatch(r"[1-9]\d*", text), f"not a positive integer: {text!r}"
    return int(text)


# -- shape of the file --------------------------------------------------------------------
def test_header_is_original_columns_then_added_ones():
    header, rows = _read(DATA)
    assert header == ORIGINAL + ADDED
    assert rows, "measured.csv has no rows"


def test_every_row_has_every_column():
    for r in _rows():
        assert None not in r, f"row {r.get('id')}: more fields than the header"
        missing = [c for c in ORIGINAL + ADDED if r[c] is None]
        assert not missing, f"row {r['id']}: missing {missing}"


def test_ids_are_unique():
    ids = [r["id"] for r in _rows()]
    assert len(ids) == len(set(ids))


def test_original_values_untouched():
    """The reference table's rows come first, unchanged and in order; rows npusim added after
    them (from the same public sources) say so and cite their source file."""
    if not REFERENCE.exists():
        pytest.skip(f"reference table not found at {REFERENCE}")
    header, src = _read(REFERENCE)
    assert header == ORIGINAL
    rows = _rows()
    assert [r["id"] for r in rows[:len(src)]] == [s["id"] for s in src], \
        "reference rows lost or reordered"
    for r, s in zip(rows, src):
        changed = [c for c in ORIGINAL if r[c] != s[c]]
        assert not changed, f"row {r['id']}: original columns changed: {changed}"
    for r in rows[len(src):]:
        assert "added by npusim" in r["notes"], f"row {r['id']}: an added row must say so"
        # power.md cites some public nvidia-smi snapshots by file-index id only
        assert r["source"].startswith("https://") or r["source"].startswith("file-index id"), \
            f"row {r['id']}: no source"


# -- the simulation columns --------------------------------------------------------------
def test_simulable_is_yes_or_no_and_no_rows_say_why():
    for r in _rows():
        assert r["simulable"] in ("yes", "no"), f"row {r['id']}: simulable={r['simulable']!r}"
        if r["simulable"] == "no":
            assert r["reason"].strip(), f"row {r['id']} is not simulable but gives no reason"


def test_named_archs_are_shipped():
    from npusim.arch.snn_device import snn_devices
    shipped = {name for name, _ in npusim.list_archs()}
    for r in _rows():
        if r["sim_arch"] or r["simulable"] == "yes":
            # an snn row runs on a spiking-core device preset (npusim/archs/snn/)
            known = set(snn_devices()) if r["sim_mode"] == "snn" else shipped
            assert r["sim_arch"] in known, f"row {r['id']}: unknown arch {r['sim_arch']!r}"


def test_simulable_rows_name_a_model_or_microbenchmark():
    from npusim.validate.snn_rows import SNN_METRICS, network_names
    models = set(npusim.builtin_models())
    for r in _simulable():
        m = r["sim_model"]
        if r["sim_mode"] == "snn":
            assert m in network_names(), f"row {r['id']}: {m!r} is not a shipped SNN network"
            assert r["sim_metric"] in SNN_METRICS, r["id"]
        elif r["sim_mode"] == "graph":
            from npusim.graphs.mlperf import NETWORKS
            from npusim.validate.graph_rows import GRAPH_METRICS
            assert m in NETWORKS, f"row {r['id']}: {m!r} is not an in-repo graph builder"
            assert r["sim_metric"] in GRAPH_METRICS, r["id"]
        elif r["sim_mode"] == "idle":
            from npusim.validate.core import IDLE_METRICS
            assert m == "" and r["sim_metric"] in IDLE_METRICS, r["id"]
        elif GEMM.fullmatch(m):
            assert (r["sim_mode"], r["sim_metric"]) == ("microbench", "gemm_tflops"), r["id"]
            assert r["sim_precision"] in PRECISIONS, r["id"]
        elif ALLREDUCE.fullmatch(m):
            assert (r["sim_mode"], r["sim_metric"]) == ("microbench", "allreduce_busbw_gbs"), \
                r["id"]
            assert _positive_int(r["sim_chips"]) >= 2, r["id"]
        elif m == "stream":
            assert (r["sim_mode"], r["sim_metric"]) == ("microbench", "dram_tbps"), r["id"]
        elif m == "pim":
            assert r["sim_mode"] == "microbench", r["id"]
            assert r["sim_metric"] in ("pim_peak_tflops", "pim_internal_gbs", "pim_bw_ratio")
        elif PIM_GEMV.fullmatch(m):
            assert (r["sim_mode"], r["sim_metric"]) == ("microbench", "pim_gemv_speedup")
        else:
            assert m in models, f"row {r['id']}: {m!r} is not a built-in model"
            assert r["sim_mode"] in LLM_MODES, r["id"]
            assert r["sim_precision"] in PRECISIONS, f"row {r['id']}: {r['sim_precision']!r}"


def test_simulable_rows_have_complete_conditions():
    for r in _simulable():
        assert _positive_int(r["sim_chips"]) >= 1
        assert r["sim_metric"] in METRICS, f"row {r['id']}: metric {r['sim_metric']!r}"
        if r["sim_mode"] in LLM_MODES:
            _positive_int(r["sim_input_len"])
            _positive_int(r["sim_output_len"])
        if r["sim_mode"] in ("batch", "latency"):
            users = _positive_int(r["sim_users"])
            assert r["sim_mode"] != "latency" or users == 1, f"row {r['id']}: latency with {users}"
        if r["sim_mode"] == "server":
            assert float(r["sim_rate"]) > 0, r["id"]


def test_gemm_shapes_match_the_source_row():
    for r in _simulable():
        match = GEMM.fullmatch(r["sim_model"])
        if not match:
            continue
        cube = re.fullmatch(r"GEMM m=n=k=(\d+)", r["model"])
        dims = re.fullmatch(r"GEMM m=(\d+) n=(\d+) k=(\d+)", r["model"])
        assert cube or dims, f"row {r['id']}: GEMM shape not read from {r['model']!r}"
        expected = (cube.group(1),) * 3 if cube else dims.groups()
        assert match.groups() == expected, r["id"]


def test_allreduce_sizes_double_from_1k():
    sizes = {}
    for r in _simulable():
        match = ALLREDUCE.fullmatch(r["sim_model"])
        if match:
            sizes.setdefault(r["sim_arch"], []).append(int(match.group(1)))
    assert set(sizes) == {"h100", "a100"}
    for arch, got in sizes.items():
        assert got == [1024 * 2 ** i for i in range(24)], arch


def test_sim_value_is_the_converted_source_value():
    checked = 0
    for r in _rows():
        if not r["sim_value"]:
            assert r["simulable"] == "no", f"row {r['id']} is simulable but has no sim_value"
            continue
        key = (r["unit"], r["sim_metric"])
        assert key in CONVERSION, f"row {r['id']}: no conversion from {key[0]} to {key[1]}"
        expected = float(r["value"]) * CONVERSION[key]
        if r["metric"] == "p90 latency":
            # an MLPerf SingleStream row: its value is the p90, npusim's latency_s is read
            # from the mean the notes state (npusim/validate/graph_rows.py)
            mean = re.fullmatch(r"mean (\d+(?:\.\d+)?) ms(?:;.*)?", r["notes"])
            assert mean, f"row {r['id']}: a p90 row's notes must state its mean"
            expected = float(mean.group(1)) * CONVERSION[key]
        value = float(r["sim_value"])
        assert value > 0
        assert math.isclose(value, expected, rel_tol=1e-9), f"row {r['id']}: {value} != {expected}"
        checked += 1
    assert checked >= len(_simulable())


def test_hand_checked_rows():
    rows = {r["id"]: r for r in _rows()}
    # B9: 7 ms first-token latency on one H100 at batch 1, 128 prompt tokens.
    b9 = rows["B9"]
    assert (b9["sim_arch"], b9["sim_chips"], b9["sim_model"], b9["sim_mode"]) == \
        ("h100", "1", "llama-2-7b", "latency")
    assert (b9["sim_metric"], float(b9["sim_value"])) == ("ttft_s", 0.007)
    # B3: a TP2 row reported per GPU stays per chip.
    assert (rows["B3"]["sim_chips"], rows["B3"]["sim_metric"]) == ("2", "decode_tok_s_per_chip")
    # N4: STREAM Triad on H100, 2.97 TB/s.
    assert (rows["N4"]["sim_model"], float(rows["N4"]["sim_value"])) == ("stream", 2.97)
    # L40S has no arch file.
    assert (rows["B4"]["simulable"], rows["B4"]["reason"]) == ("no", "no arch file for L40S")


# -- the README's counts -----------------------------------------------------------------
def test_readme_states_the_current_counts():
    text = README.read_text(encoding="utf-8")
    total, simulable = len(_rows()), len(_simulable())
    assert f"{total} rows" in text
    assert f"{simulable} simulable" in text


# -- the Llama 2 configs -----------------------------------------------------------------
def _llama_count(d: int, layers: int, heads: int, kv: int, inter: int, vocab: int) -> int:
    head_dim = d // heads
    attn = d * heads * head_dim * 2 + d * kv * head_dim * 2  # q, o and k, v projections
    per_layer = attn + 3 * d * inter + 2 * d  # gate, up, down and the two RMSNorm scales
    return layers * per_layer + 2 * vocab * d + d  # untied embedding and head, final norm


@pytest.mark.parametrize("name, shape, kv_heads, exact", [
    ("llama-2-7b", (4096, 32, 32, 32, 11008, 32000), 32, 6_738_415_616),
    ("llama-2-70b", (8192, 80, 64, 8, 28672, 32000), 8, 68_976_648_192),
])
def test_llama2_config_sizes(name, shape, kv_heads, exact):
    cfg = load_config(name)
    assert cfg["num_key_value_heads"] == kv_heads
    assert (cfg["vocab_size"], cfg["rope_theta"], cfg["max_position_embeddings"]) == \
        (32000, 10000.0, 4096)
    assert _llama_count(*shape) == exact
    assert count_parameters(name) == exact


@pytest.mark.parametrize("name, published", [("llama-2-7b", 6.74e9), ("llama-2-70b", 68.98e9)])
def test_llama2_counts_match_published_sizes(name, published):
    meta = load_config(name)["_npusim"]
    assert meta["source"].startswith("https://huggingface.co/meta-llama/")
    assert meta["published_params"] == published
    assert abs(count_parameters(name) / published - 1) < 0.01


def test_scheduler_column_names_a_known_scheduler_and_matches_the_software():
    from npusim.validate.core import SCHEDULERS
    from npusim.workloads.stack import stack_names
    for r in _rows():
        sched = r["sim_scheduler"]
        assert sched == "" or sched in SCHEDULERS + tuple(stack_names()), f"row {r['id']}: {sched!r}"
        if sched in stack_names():
            # an older engine's stack preset runs only the rows measured on that engine
            m = re.fullmatch(r"vllm-(\d+\.\d+)", sched)
            assert m and f"vLLM {m.group(1)}." in r["software"], (r["id"], r["software"])
        elif r["software"].startswith("vLLM 0.5."):
            assert False, f"row {r['id']} ran on vLLM 0.5 but not its stack preset"
        if sched == "trtllm-bench":
            # only TensorRT-LLM measurements run under its scheduler
            assert re.search(r"TRT-LLM|TensorRT-LLM", r["software"]), r["id"]
            assert r["simulable"] == "yes" and r["sim_mode"] == "offline", r["id"]
