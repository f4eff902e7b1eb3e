"""The K-Perf runner and report, on a fake cost model and a fake serving simulation.

The fakes make every figure a closed form, so the expectations are computed by hand:

=======  ==========  ============  ======  ==================================================
arch     speed       power         chips   notes
=======  ==========  ============  ======  ==================================================
rngd     100 tok/s   150 W         1       int4 is unsupported (ArchError from the cost model)
h100     250 tok/s   700 W         1
=======  ==========  ============  ======  ==================================================

A scenario of ``users`` users decodes ``speed x min(users, 50)`` tokens/s (saturating at 50
users), at ``power x (0.5 + 0.5 min(users, 50) / 50)`` W; TTFT is
``input_len / (1000 speed) x (1 + users / 100)`` s. So rngd's peak decode is 5,000 tok/s and
h100's 12,500 (ratio 2.5); tokens per joule peak at 50 users: rngd 5000/150, h100 12500/700
(perf/W ratio 0.5357...).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field

import pytest

from npusim.errors import ArchError, CapacityError, NpusimError
from npusim.workloads import kperf as kp
from npusim.workloads.deployments import ChipChoice

SPEED = {"rngd": 100.0, "h100": 250.0}
POWER = {"rngd": 150.0, "h100": 700.0}
MATRIX = dict(input_lens=(128, 2048), output_lens=(128, 512), users=(1, 10, 50, 100))


@dataclass(frozen=True)
class FakeScenario:
    input_len: int
    output_len: int
    users: int | None = None
    rate: float | None = None
    requests: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class FakeConfig:
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256


@dataclass
class FakeCost:
    model: str
    arch: object
    chips: int
    precision: str
    kv_capacity_tokens: int = 100_000
    kv_block_tokens: int = 16
    static_power_w: float = 50.0
    tdp_w: float = 0.0
    steps: list = field(default_factory=list)


@dataclass(frozen=True)
class FakeServing:
    summary: dict


def fake_serve(cost, sc, config):
    name = cost.arch.name
    busy = min(sc.users, 50)
    decode = SPEED[name] * busy
    power = POWER[name] * (0.5 + 0.5 * busy / 50)
    ttft = sc.input_len / (1000 * SPEED[name]) * (1 + sc.users / 100)
    return FakeServing({
        "ttft_mean_s": ttft, "ttft_p50_s": ttft, "ttft_p99_s": 1.5 * ttft,
        "tpot_mean_s": busy / decode, "tpot_p99_s": 1.2 * busy / decode,
        "e2e_mean_s": ttft + sc.output_len * busy / decode,
        "prefill_tok_s": sc.input_len / ttft, "decode_tok_s": decode,
        "decode_tok_s_per_user": decode / sc.users, "avg_power_w": power,
        "energy_per_token_j": power / decode, "tokens_per_j": decode / power,
        "kv_util_mean": 0.25, "kv_util_peak": 0.5, "queue_wait_mean_s": 0.0,
    })


def _install_fakes(monkeypatch) -> list:
    """Fake cost model and serving API; returns the list of cost models built."""
    built = []

    def cost_model(model, arch, chips, precision, **kw):
        if precision == "int4" and arch.name == "rngd":
            raise ArchError("arch rngd: int4 weights need a dequantising path this arch "
                            "lacks; choose bf16 or fp8")
        if model == "too-big":
            raise CapacityError("too-big does not fit 1 x rngd; use --chips 2")
        c = FakeCost(model, arch, chips or 1, precision, tdp_w=POWER[arch.name])
        built.append(c)
        return c

    monkeypatch.setattr(kp, "_cost_model", cost_model)
    # the default chip count has its own tests (test_kperf_chips.py); here every system is 1
    monkeypatch.setattr(kp, "_choose_chips",
                        lambda model, arch, matrix, costs: ChipChoice(1, "given",
                                                                      "one chip (fake)"))
    monkeypatch.setattr(kp, "_spec", lambda model: None)  # fake models have no config
    monkeypatch.setattr(kp, "_serving_api", lambda: (FakeScenario, FakeConfig, fake_serve))
    return built


@pytest.fixture
def fakes(monkeypatch):
    return _install_fakes(monkeypatch)


def _two_arch():
    return kp.kperf("rngd", "llama-3.1-8b", precisions=("bf16", "int4"), vs=("h100",), **MATRIX)


@pytest.fixture
def two_arch(fakes):
    return _two_arch()


def test_matrix_rows_in_order_and_one_cost_model_per_arch_precision(two_arch, fakes):
    r = two_arch
    assert len(r.records) == 2 * 2 * 2 * 2 * 4          # archs x precisions x in x out x users
    assert [(c.arch.name, c.precision) for c in fakes] == [
        ("rngd", "bf16"), ("h100", "bf16"), ("h100", "int4")]
    first = r.records[0]
    assert {k: first[k] for k in kp.BASE_FIELDS} == dict(
        arch="rngd", model="llama-3.1-8b", chips=1, precision="bf16", input_len=128,
        output_len=128, users=1)
    assert [(x["input_len"], x["output_len"], x["users"]) for x in r.records[:16]] == [
        (i, o, u) for i in (128, 2048) for o in (128, 512) for u in (1, 10, 50, 100)]
    assert first["status"] == "ok"
    assert first["decode_tok_s"] == 100.0
    assert first["ttft_mean_s"] == pytest.approx(128 / 1e5 * 1.01, rel=1e-12)
    assert r.columns()[:8] == [*kp.BASE_FIELDS, "status"]


def test_unsupported_precision_keeps_its_rows_with_a_status(two_arch):
    bad = [x for x in two_arch.records if x["arch"] == "rngd" and x["precision"] == "int4"]
    assert len(bad) == 16
    assert all(x["status"].startswith("unsupported: arch rngd: int4") for x in bad)
    assert all("decode_tok_s" not in x for x in bad)
    ok = [x for x in two_arch.records if x["arch"] == "h100" and x["precision"] == "int4"]
    assert all(x["status"] == "ok" for x in ok)


def test_summary_peaks_and_vs_ratios_by_hand(two_arch):
    s = {(x["arch"], x["precision"]): x for x in two_arch.summary()}
    rngd, h100 = s["rngd", "bf16"], s["h100", "bf16"]
    assert rngd["peak_decode_tok_s"] == 5000.0
    assert rngd["peak_at"] == "128/128/50"              # first of the ties at saturation
    assert h100["peak_decode_tok_s"] == 12500.0
    assert h100["decode_ratio"] == 2.5
    assert h100["perf_per_w_ratio"] == pytest.approx((12500 / 700) / (5000 / 150), rel=1e-12)
    assert rngd["decode_ratio"] == 1.0
    assert rngd["best_ttft_s"] == pytest.approx(128 / 1e5 * 1.01, rel=1e-12)
    assert rngd["best_ttft_at"] == "128/128/1"
    assert s["rngd", "int4"]["status"].startswith("unsupported")
    assert s["rngd", "int4"]["peak_decode_tok_s"] is None
    assert s["h100", "int4"]["decode_ratio"] is None    # no rngd int4 row to compare with


def test_bad_matrix_values_are_errors_naming_the_option(fakes):
    with pytest.raises(NpusimError, match=r"users \(--users\).*at least 1"):
        kp.kperf("rngd", "m", users=(0,))
    with pytest.raises(NpusimError, match=r"input_lens \(--input-lens\).*'x'"):
        kp.kperf("rngd", "m", input_lens=("x",))
    with pytest.raises(NpusimError, match="already in the comparison"):
        kp.kperf("rngd", "m", vs=("rngd",), **MATRIX)


def test_nothing_runnable_on_the_main_arch_raises_the_reason(fakes):
    with pytest.raises(CapacityError, match="no scenario of rngd could run.*use --chips 2"):
        kp.kperf("rngd", "too-big", **MATRIX)
    with pytest.raises(ArchError, match="int4"):
        kp.kperf("rngd", "m", precisions=("int4",), **MATRIX)


def test_overrides_reach_the_arch_and_mark_its_label(fakes):
    r = kp.kperf("rngd", "m", overrides={"dram.bandwidth": "3 TB/s"}, vs=("rngd",),
                 input_lens=(128,), output_lens=(128,), users=(1,))
    assert list(r.archs) == ["rngd*", "rngd"]
    assert r.archs["rngd*"]["dram"]["bandwidth"] == 3e12


def test_progress_bar_runs_to_completion(fakes, capsys):
    r = kp.kperf("rngd", "m", input_lens=(128,), output_lens=(128,), users=(1, 2), progress=True)
    assert len(r.records) == 2
    err = capsys.readouterr().err
    assert "K-Perf" in err and "2/2" in err


def test_to_pandas_or_a_clear_error(two_arch):
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(NpusimError, match="pip install pandas"):
            two_arch.to_pandas()
        return
    df = two_arch.to_pandas()
    assert list(df.columns) == two_arch.columns() and len(df) == len(two_arch.records)


# --- report -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One report written for the module's tests: drawing the graphs is the slow part."""
    pytest.importorskip("openpyxl")
    pytest.importorskip("matplotlib")
    with pytest.MonkeyPatch.context() as mp:
        _install_fakes(mp)
        result = _two_arch()
    out = tmp_path_factory.mktemp("kperf") / "out"
    return result, result.write(out), out


def test_write_returns_the_files(written):
    _, paths, out = written
    from npusim.report import kperf as rk
    from npusim.report import kperf_power as kpp
    assert [p.name for p in paths] == [rk.XLSX, rk.CSV, rk.PNG_DECODE, rk.PNG_PER_CHIP,
                                       rk.PNG_TTFT, rk.PNG_POWER, rk.PNG_EFFICIENCY,
                                       kpp.PNG_CARD_POWER, kpp.PNG_ENERGY_PER_TOKEN]
    assert all(p.parent == out for p in paths)


def test_pngs_exist_and_are_images(written):
    _, paths, _ = written
    for p in paths[2:]:
        head = p.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        assert width >= 600 and height >= 400 and p.stat().st_size > 20_000


def _sheet_rows(ws):
    rows = list(ws.iter_rows(values_only=True))
    return list(rows[0]), [dict(zip(rows[0], r)) for r in rows[1:]]


def test_xlsx_sheets_and_columns(written):
    import openpyxl
    result, paths, _ = written
    wb = openpyxl.load_workbook(paths[0])
    assert wb.sheetnames == ["summary", "llama-3.1-8b bf16", "llama-3.1-8b int4", "settings"]
    head, rows = _sheet_rows(wb["llama-3.1-8b bf16"])
    for col in ("arch", "chips", "input (tok)", "output (tok)", "users", "TTFT mean (ms)",
                "TTFT p50 (ms)", "TTFT p99 (ms)", "TPOT mean (ms)", "E2E mean (s)",
                "prefill (tok/s)", "decode (tok/s)", "decode per user (tok/s)",
                "avg power (W)", "energy per token (J)", "tokens/J", "KV util peak (%)",
                "queue wait mean (s)", "status"):
        assert col in head, col
    assert head[-1] == "status"
    assert len(rows) == 32                              # 2 archs x 2 in x 2 out x 4 users
    first = rows[0]
    assert (first["arch"], first["users"], first["decode (tok/s)"]) == ("rngd", 1, 100.0)
    assert first["TTFT mean (ms)"] == pytest.approx(1.28 * 1.01, rel=1e-12)
    assert first["KV util peak (%)"] == 50.0
    _, bad = _sheet_rows(wb["llama-3.1-8b int4"])
    assert bad[0]["arch"] == "rngd" and bad[0]["status"].startswith("unsupported")
    assert bad[0]["decode (tok/s)"] is None


def test_xlsx_summary_ratios_follow_the_numbers_shown(written):
    import openpyxl
    _, paths, _ = written
    head, rows = _sheet_rows(openpyxl.load_workbook(paths[0])["summary"])
    assert head[:7] == ["model", "arch", "precision", "chips", "system", "status",
                        "peak decode (tok/s)"]
    # the ratios name the reference system, chips included
    assert "decode vs 1 x rngd (x)" in head and "perf/W vs 1 x rngd (x)" in head
    by = {(r["arch"], r["precision"]): r for r in rows}
    rngd, h100 = by["rngd", "bf16"], by["h100", "bf16"]
    assert h100["decode vs 1 x rngd (x)"] == pytest.approx(
        h100["peak decode (tok/s)"] / rngd["peak decode (tok/s)"], rel=1e-12)
    assert h100["decode vs 1 x rngd (x)"] == 2.5
    assert h100["perf/W vs 1 x rngd (x)"] == pytest.approx(
        h100["max tokens/J"] / rngd["max tokens/J"], rel=1e-12)
    assert rngd["best TTFT mean (ms)"] == pytest.approx(1.28 * 1.01, rel=1e-12)
    assert by["h100", "int4"]["decode vs 1 x rngd (x)"] is None


def test_xlsx_settings_sheet_has_arch_config_and_version(written):
    import openpyxl
    import npusim
    result, paths, _ = written
    ws = openpyxl.load_workbook(paths[0])["settings"]
    cells = {r[0]: r[1:] for r in ws.iter_rows(values_only=True) if r[0] is not None}
    assert cells["npusim version"][0] == npusim.__version__
    assert cells["created (UTC)"][0] == result.created
    assert cells["users"][0] == "1, 10, 50, 100"
    assert cells["serving.max_num_seqs"][0] == 256
    assert cells["dram.bandwidth"][:3] == ("B/s", 1.5e12, 3.35e12)   # unit, rngd, h100
    assert cells["power.tdp"][:3] == ("W", 150, 700)
    assert "arch field" in cells and "KV capacity (tok)" in cells["arch"]


def test_csv_round_trip(written):
    result, paths, _ = written
    with paths[1].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == result.columns()
    assert len(rows) == len(result.records)
    for got, want in zip(rows, result.records):
        for k in result.columns():
            v = want.get(k)
            if v is None:
                assert got[k] == ""
            elif isinstance(v, float) and math.isnan(v):      # e.g. no power band: NaN
                assert math.isnan(float(got[k]))
            elif isinstance(v, str):
                assert got[k] == v
            else:
                assert float(got[k]) == v and type(v)(float(got[k])) == v


def test_csv_and_xlsx_never_carry_formulas(fakes, tmp_path):
    pytest.importorskip("openpyxl")
    import openpyxl
    from npusim.report.kperf import write_csv, write_xlsx
    r = kp.kperf("rngd", "=HYPERLINK(1)", input_lens=(128,), output_lens=(128,), users=(1,))
    write_csv(r, tmp_path / "kperf.csv")
    write_xlsx(r, tmp_path / "kperf.xlsx")
    assert "'=HYPERLINK(1)" in (tmp_path / "kperf.csv").read_text()
    ws = openpyxl.load_workbook(tmp_path / "kperf.xlsx")["summary"]
    cell = ws.cell(2, 1)
    assert cell.value == "=HYPERLINK(1)" and cell.data_type == "s"


def test_sheet_names_are_legal_and_unique():
    from npusim.report.kperf import _sheet_name
    taken = {"summary"}
    a = _sheet_name("org/a-very-long-model-name-32b-instruct fp8", taken)
    b = _sheet_name("org/a-very-long-model-name-32b-instruct fp8:x", taken)
    assert len(a) <= 31 and len(b) <= 31 and "/" not in a and a != b
    assert _sheet_name("Summary", taken) == "Summary (2)"


def test_missing_reports_extra_names_it(two_arch, tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_openpyxl(name, *a, **k):
        if name.startswith("openpyxl"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_openpyxl)
    with pytest.raises(NpusimError, match=r"pip install 'npusim\[reports\]'"):
        two_arch.write(tmp_path)


# --- with the real serving simulation --------------------------------------------------------

def test_real_serving_records_by_hand(linear_cost):
    linear_cost()
    r = kp.kperf("rngd", "m", input_lens=(128,), output_lens=(16,), users=(1, 4))
    one = r.records[0]
    assert one["status"] == "ok" and one["users"] == 1
    # Alone: the prompt in one step (1 ms + 128 x 10 us), then 15 one-token steps of 1.01 ms.
    assert one["ttft_mean_s"] == pytest.approx(2.28e-3, rel=1e-9)
    assert one["tpot_mean_s"] == pytest.approx(1.01e-3, rel=1e-9)
    assert one["decode_tok_s"] == pytest.approx(16 / (2.28e-3 + 15 * 1.01e-3), rel=1e-9)
    assert one["avg_power_w"] == pytest.approx(100.0, rel=1e-9)
    assert one["tokens_per_j"] == pytest.approx(one["decode_tok_s"] / 100.0, rel=1e-9)
    four = r.records[1]
    assert four["decode_tok_s"] > 3 * one["decode_tok_s"]      # batching amortises the 1 ms
    assert r.summary()[0]["peak_at"] == "128/16/4"


def test_terminal_summary_gives_ratios_and_reasons(two_arch):
    from rich.console import Console
    from npusim.report.kperf import print_kperf
    con = Console(width=200, record=True)
    print_kperf(two_arch, con=con, scenarios=False)
    text = con.export_text()
    h100 = next(line for line in text.splitlines() if "│ h100 │ bf16" in line)
    assert "12,500" in h100 and "2.5" in h100 and "0.536" in h100
    assert "rngd int4: unsupported: arch rngd: int4 weights need" in text
