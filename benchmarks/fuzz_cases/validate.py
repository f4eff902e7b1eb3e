"""Malformed measured data for ``npusim validate --data`` and measured K-Perf sheets for
``npusim validate --kperf``: other encodings, BOMs, NULs, huge cells, FIFOs and folders,
missing or bad columns, corrupt or bomb-like workbooks. Read by ``benchmarks/fuzz.py``.

Every case is certainly invalid (``must_fail``): the reader refuses it before anything is
simulated, so each runs in well under a second.
"""
from __future__ import annotations

import csv
import io
import os
import pathlib
import random
import zipfile

COLUMNS = ("id", "sim_arch", "sim_chips", "sim_model", "sim_precision", "sim_mode", "sim_users",
           "sim_rate", "sim_input_len", "sim_output_len", "sim_metric", "sim_value", "simulable",
           "reason", "sim_note")
GOOD = {"id": "G1", "sim_arch": "edu", "sim_chips": "1", "sim_model": "gemm:64,64,64",
        "sim_precision": "bf16", "sim_mode": "microbench", "sim_metric": "gemm_tflops",
        "sim_value": "0.01", "simulable": "yes"}
# column -> values that are wrong for the GOOD row (each a different mistake)
BAD_CELLS = {
    "sim_mode": ["bogus", "", "Microbench", "offline;"],
    "sim_metric": ["ttft_s", "", "tflops", "decode_tok_s"],
    "sim_value": ["", "abc", "-1", "0", "nan", "inf", "1e999", "1,5"],
    "sim_chips": ["0", "-2", "1.5", "x", "1e12"],
    "sim_model": ["gemm:1,2", "gemm:0,1,1", "gemm:1,1,99999999999", "stream", "llama", ""],
    "sim_precision": ["fp9", "", "BF16 ", "int3"],
    "sim_arch": [""],
    "simulable": ["perhaps", "1", "true"],
    "sim_users": ["1.5", "0", "abc", "1e30"],
}
SHEET = "input (tok),output (tok),users,TTFT mean (ms),decode (tok/s)\n32,16,1,5.5,100\n"
ENCODINGS = ("latin-1", "utf-16", "utf-16-le", "utf-32", "cp1252")


def _csv(rows, columns=COLUMNS) -> str:
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return f.getvalue()


def _data(argv_path) -> list[str]:
    return ["validate", "--data", str(argv_path), "--no-microchecks", "--no-progress", "--out",
            str(argv_path.parent / "out")]


def _sheet(argv_path) -> list[str]:
    return ["validate", "--kperf", str(argv_path), "--arch", "edu", "--model", "tiny-llama",
            "--no-progress", "--out", str(argv_path.parent / "out")]


def _measured(d: pathlib.Path, rng: random.Random, i: int):
    kind = rng.choice(["encoding", "nul", "huge", "bad-cell", "missing-column", "binary",
                       "extra-cells", "dup-id", "semicolon", "empty"])
    p = d / f"m{i}.csv"
    good = dict(GOOD, sim_note="café")
    text = _csv([good])
    if kind == "encoding":
        p.write_bytes(text.encode(rng.choice(ENCODINGS)))
        if p.read_bytes().decode("latin-1") == text:   # latin-1/cp1252 of pure ASCII is UTF-8
            p.write_bytes(text.replace("café", "caf\xe9").encode("latin-1"))
    elif kind == "nul":
        raw = text.encode()
        at = rng.randrange(len(raw))
        p.write_bytes(raw[:at] + b"\x00" + raw[at:])
    elif kind == "huge":
        p.write_text(_csv([dict(good, sim_note="x" * rng.choice([140_000, 10 * 2**20]))]))
    elif kind == "bad-cell":
        col = rng.choice(sorted(BAD_CELLS))
        p.write_text(_csv([dict(good, **{col: rng.choice(BAD_CELLS[col])})]))
        kind = f"bad-cell/{col}"
    elif kind == "missing-column":
        drop = set(rng.sample(COLUMNS, rng.randint(1, 4)))
        p.write_text(_csv([good], [c for c in COLUMNS if c not in drop]))
    elif kind == "binary":
        p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(16, 4096))) + b"\x00")
    elif kind == "extra-cells":
        p.write_text(text.rstrip("\n") + ",surplus,more\n")
    elif kind == "dup-id":
        p.write_text(_csv([good, good]))
    elif kind == "semicolon":
        p.write_text(text.replace(",", ";"))
    else:
        p.write_bytes(rng.choice([b"", b"\xef\xbb\xbf", b"\n\n"]))
    return f"validate-data/{kind}", _data(p)


def _kperf(d: pathlib.Path, rng: random.Random, i: int):
    kind = rng.choice(["encoding", "huge", "not-zip", "zip-not-xlsx", "zip-bomb",
                       "missing-column", "bad-number", "no-metric", "wrong-sheet", "suffix"])
    p = d / f"s{i}.csv"
    extra: list[str] = []
    if kind == "encoding":
        p.write_bytes(SHEET.replace("users", "usérs").encode(rng.choice(ENCODINGS[:3])))
    elif kind == "huge":
        p.write_text(SHEET + "64,16,1,5," + "9" * 140_000 + "\n")
    elif kind == "not-zip":
        p = d / f"s{i}.xlsx"
        p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 2048))))
    elif kind == "zip-not-xlsx":
        p = d / f"s{i}.xlsx"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("[Content_Types].xml", rng.choice(["<x/>", "not xml", ""]))
            z.writestr("xl/workbook.xml", "<workbook")
        p.write_bytes(buf.getvalue())
    elif kind == "zip-bomb":
        p = d / f"s{i}.xlsx"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("xl/worksheets/sheet1.xml", b"\x00" * (65 * 2**20 + rng.randrange(2**20)))
        p.write_bytes(buf.getvalue())
    elif kind == "missing-column":
        head = ["input (tok)", "output (tok)", "users", "TTFT mean (ms)"]
        head.remove(rng.choice(head[:3]))
        p.write_text(",".join(head) + "\n" + ",".join("1" for _ in head) + "\n")
    elif kind == "bad-number":
        p.write_text(SHEET + f"64,16,{rng.choice(['0', '1.5', 'two', '-1'])},5,100\n")
    elif kind == "no-metric":
        p.write_text("input (tok),output (tok),users\n32,16,1\n")
    elif kind == "wrong-sheet":
        p.write_text(SHEET)
        extra = ["--sheet", "nope"]       # a CSV has no sheets
    else:
        p = d / f"s{i}.ods"
        p.write_text(SHEET)
    return f"validate-kperf/{kind}", _sheet(p) + extra


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed inputs of this class.
    label: short class name e.g. "onnx/attr-type"; argv: npusim argv list (no leading 'npusim');
    must_fail: True if the input is certainly invalid (so exit 0 would be a bug)."""
    workdir = pathlib.Path(workdir)
    special = []
    if hasattr(os, "mkfifo"):
        fifo = workdir / "fifo.csv"
        if not fifo.exists():
            os.mkfifo(fifo)
        special += [("validate-data/fifo", _data(fifo)), ("validate-kperf/fifo", _sheet(fifo))]
    special += [("validate-data/folder", _data(workdir))]
    for i in range(n):
        d = workdir / f"validate{i}"
        d.mkdir(parents=True, exist_ok=True)
        if i < len(special):
            label, argv = special[i]
        elif i % 2:
            label, argv = _measured(d, rng, i)
        else:
            label, argv = _kperf(d, rng, i)
        yield label, argv, True
