"""The CLI's "wrote PATH" lines name every file a command wrote, and only files that exist:
``npusim kperf --out DIR`` (the sheets and every PNG, the power graphs among them) and
``npusim validate --out DIR`` (the report, the scatter, the power- and energy-per-token-against-batch
plots)."""
from __future__ import annotations

from pathlib import Path

import pytest


def _listed(out: str) -> list[Path]:
    return [Path(ln.removeprefix("wrote ").strip()) for ln in out.splitlines()
            if ln.startswith("wrote ")]


def _check(out: str, folder: Path) -> list[str]:
    """Each listed file exists, lies in ``folder``, and every file in ``folder`` is listed once;
    the names, sorted."""
    listed = _listed(out)
    assert len(listed) == len(set(listed)), listed
    assert all(p.is_file() and p.parent == folder for p in listed), listed
    assert sorted(p.name for p in listed) == sorted(p.name for p in folder.iterdir())
    return sorted(p.name for p in listed)


@pytest.mark.parametrize("host", ["auto", "none"])
def test_kperf_lists_every_file_it_wrote(cli, tmp_path, host):
    """With a host (h100's DGX: system power drawn too) and without one."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("openpyxl")
    out_dir = tmp_path / "k"
    code, out, err = cli("kperf", "--arch", "h100", "--model", "tiny-llama", "--users", "1", "4",
                         "--input-lens", "32", "--output-lens", "8", "--host", host,
                         "--summary-only", "--no-progress", "--out", str(out_dir))
    assert code == 0, err
    names = _check(out, out_dir)
    assert "energy_per_token_vs_users.png" in names and "card_power_vs_users.png" in names
    assert ("system_power_vs_users.png" in names) == (host == "auto")
    assert {"kperf.xlsx", "kperf.csv"} <= set(names)


def test_validate_lists_the_power_plot(cli, tmp_path):
    """Two ML.ENERGY power rows: REPORT.md, the scatter and power_vs_batch.png, all listed."""
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "v"
    code, out, err = cli("validate", "--rows", "Y11", "Y13", "--no-microchecks",
                         "--no-progress", "--out", str(out_dir))
    assert code == 0, err
    assert _check(out, out_dir) == ["REPORT.md", "power_vs_batch.png",
                                    "predicted_vs_measured.png"]


def test_validate_without_power_rows_lists_no_power_plot(cli, tmp_path):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "v"
    code, out, err = cli("validate", "--rows", "K1", "--no-microchecks", "--no-progress",
                         "--out", str(out_dir))
    assert code == 0, err
    assert _check(out, out_dir) == ["REPORT.md", "predicted_vs_measured.png"]


def test_validate_lists_the_energy_plot(cli, tmp_path):
    """Energy-per-token rows at two batches: energy_per_token_vs_batch.png, listed, and REPORT.md
    shows it."""
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "v"
    code, out, err = cli("validate", "--rows", "Y12", "Y14", "--no-microchecks",
                         "--no-progress", "--out", str(out_dir))
    assert code == 0, err
    assert _check(out, out_dir) == ["REPORT.md", "energy_per_token_vs_batch.png",
                                    "predicted_vs_measured.png"]
    assert "(energy_per_token_vs_batch.png)" in (out_dir / "REPORT.md").read_text()
