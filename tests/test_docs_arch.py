"""The arch docs cannot rot: the reference is the schema's own output, and the how-to's YAML,
commands and error example run as written."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from npusim.arch.reference import REGENERATE, reference
from npusim.arch.schema import S, iter_fields

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_committed_reference_equals_the_generated_one():
    committed = (DOCS / "arch-reference.md").read_text(encoding="utf-8")
    assert committed == reference(), (
        f"docs/arch-reference.md is stale; regenerate it from the repository root with: "
        f"{REGENERATE}")


def test_reference_lists_every_field_with_its_range():
    text = reference()
    for dotted, spec in iter_fields():
        assert f"| `{dotted}` |" in text, dotted
        if not isinstance(spec, S) and spec.lo is not None:
            assert f"| {spec.range_text()} |" in text, dotted
    for name in ("tRCD", "tREFI", "queue_depth", "pin_rate", "dram.activation", "static"):
        assert name in text


def _how_to() -> str:
    return (DOCS / "new-arch.md").read_text(encoding="utf-8")


def _write_example(folder: Path) -> list[str]:
    """Write every ```yaml block of the how-to to the file its first line names."""
    names = []
    for block in re.findall(r"```yaml\n(.*?)```", _how_to(), re.S):
        first = block.splitlines()[0]
        assert first.startswith("# file: "), first
        name = first[len("# file: "):].strip()
        (folder / name).write_text(block, encoding="utf-8")
        names.append(name)
    return names


def test_how_to_example_loads_and_simulates_with_its_energy_table(cli, tmp_path):
    assert _write_example(tmp_path) == ["tinychip.yaml", "tinychip.energy.yaml"]
    out = tmp_path / "r.json"
    code, _, err = cli("run", "tiny-llama", "--arch", str(tmp_path / "tinychip.yaml"),
                       "--json", str(out))
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["arch"] == "tinychip"
    totals = result["totals"]
    # the sidecar table was found: energy is reported, and the TDP cap holds
    assert totals["energy_j"] > 0
    assert 0 < totals["avg_power_w"] <= 2.0 * (1 + 1e-9)
    assert totals["energy_by_component_j"]["static"] > 0


def test_how_to_commands_and_error_example_run_as_written(cli, tmp_path, monkeypatch):
    _write_example(tmp_path)
    monkeypatch.chdir(tmp_path)
    text = _how_to()
    sh = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    commands = [shlex.split(line.split("#")[0]) for line in sh.splitlines() if line.strip()]
    assert len(commands) == 4
    for argv in commands:
        assert argv[0] == "npusim"
        code, _, err = cli(*argv[1:])
        assert code == 0, (argv, err)
    # the documented one-line error, with its basis elided as (...)
    shown = re.search(r"```text\n(.*?)\n```", text, re.S).group(1)
    before, after = shown.split("(...)")
    argv = shlex.split(re.search(r"example from `npusim (.*?)`", text).group(1))
    code, _, err = cli(*argv)
    line = err.strip()
    assert code == 2 and len(line.splitlines()) == 1
    assert line.startswith(before) and line.endswith(after), line
