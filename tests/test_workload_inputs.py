"""Workload inputs: precisions, LLM step options, sizes and list options, at every front door.

Each class of bad input gets a regression test and a hypothesis fuzz test; the precision pass is
checked by hand on tiny-llama (config: hidden 64, 2 layers, 4 heads of 16, 2 KV heads,
intermediate 128, vocabulary 256, untied head, context 512) and on a one-MatMul ONNX file.
"""
from __future__ import annotations

import inspect
import re

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import npusim
from npusim.errors import CapacityError, ModelError, NpusimError
from npusim.frontend import llm
from npusim.passes.quantize import PRECISIONS, resolve_precision
from npusim.workloads import kperf as kp
from npusim.workloads.serving import Scenario

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# tiny-llama by hand: per layer q 64x64, k and v 64x32, o 64x64, gate/up/down 64x128
MATRIX = 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128) + 64 * 256  # + LM head = 90,112
OTHER = 256 * 64 + (2 * 2 + 1) * 64      # embedding and norms: kept in bf16 = 16,704


def clean(code: int, err: str) -> bool:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return (code == 2 and len(lines) == 1 and ": error: " in lines[0]
            and "Traceback" not in err)


def matmul_onnx(path, batch="batch"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 32])
    w = helper.make_tensor("w", TensorProto.FLOAT, [64, 32], [0.0] * (64 * 32))
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y], [w]),
                                opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


# --- precision: the same names and the same pass as kperf -----------------------------------

def test_weight_bytes_by_precision_by_hand():
    assert MATRIX == 90_112 and OTHER == 16_704
    w = {p: npusim.load_model("tiny-llama", phase="decode", kv_len=8, dtype=p)
         .bytes_by_role()["weight"] for p in ("bf16", "fp8", "int8", "int4", "mxfp4", "fp32")}
    assert w["bf16"] == 2 * (MATRIX + OTHER)
    assert w["fp8"] == w["int8"] == MATRIX + 2 * OTHER          # matrices halve, the rest stays
    assert w["int4"] == pytest.approx(MATRIX * 4.125 / 8 + 2 * OTHER)   # fp16 scale per 128
    assert w["mxfp4"] == pytest.approx(MATRIX * 4.25 / 8 + 2 * OTHER)   # e8m0 scale per 32
    assert w["fp32"] == 4 * (MATRIX + OTHER)


def test_default_llm_precision_is_bf16_and_named_in_the_graph():
    g = npusim.load_model("tiny-llama")
    assert g.meta["dtype"] == "bf16" and g.name.endswith(" bf16")
    assert g.bytes_by_role()["weight"] == 2 * (MATRIX + OTHER)


@pytest.mark.parametrize("name", sorted(PRECISIONS))
def test_load_model_takes_every_kperf_precision_through_its_pass(name):
    p = PRECISIONS[name]
    g = npusim.load_model("tiny-llama", phase="decode", kv_len=4, dtype=name)
    assert g.meta["dtype"] == name
    assert g.meta["precision"] == {"weights": p.weights, "activations": p.activations,
                                   "kv": p.kv}


def test_onnx_dtype_acts_through_the_same_pass(tmp_path):
    path = matmul_onnx(tmp_path / "mm.onnx")
    own = npusim.load_model(path, dims={"batch": 4})
    assert own.bytes_by_role()["weight"] == 64 * 32 * 4          # fp32 as in the file
    bf16 = npusim.load_model(path, dims={"batch": 4}, dtype="bf16")
    fp8 = npusim.load_model(path, dims={"batch": 4}, dtype="fp8")
    assert bf16.bytes_by_role()["weight"] == 64 * 32 * 2
    assert fp8.bytes_by_role()["weight"] == 64 * 32               # fp8 halves bf16
    assert fp8.bytes_by_role()["activation"] == (4 * 64 + 4 * 32)  # fp8 activations too


def test_cli_dtype_on_onnx_changes_the_dram_bytes(cli, tmp_path):
    import json
    path = matmul_onnx(tmp_path / "mm.onnx")
    got = {}
    for dt in ("bf16", "fp8"):
        out = tmp_path / f"{dt}.json"
        code, _, err = cli("run", path, "--arch", "edu", "--dim", "batch=4", "--dtype", dt,
                           "--engine", "roofline", "--json", out)
        assert code == 0, err
        got[dt] = json.loads(out.read_text())["totals"]["dram_bytes"]
    assert got["fp8"] == pytest.approx(got["bf16"] / 2)


def test_simulate_resolves_the_precision_for_the_arch():
    # edu has no fp8 MACs: mxfp4 computes in bf16 there, as kperf's cost model does
    r = npusim.simulate("tiny-llama", "edu", phase="decode", kv_len=8, dtype="mxfp4")
    assert r.meta["precision"]["activations"] == "bf16"
    assert resolve_precision("mxfp4", npusim.load_arch("edu")).activations == "bf16"
    assert resolve_precision("mxfp4", npusim.load_arch("rngd")).activations == "fp8_e4m3"


def test_readme_fp8_example_runs(cli):
    code, out, err = cli("run", "llama-3.3-70b", "--phase", "prefill", "--batch", "1", "--seq",
                         "2048", "--arch", "h200", "--dtype", "fp8", "--engine", "roofline")
    assert code == 0, err
    assert "fp8" in out


@pytest.mark.parametrize("bad", ["fp4", "FP8", "", "bf16 ", "int3"])
def test_unknown_precision_lists_the_valid_ones(cli, bad):
    with pytest.raises(NpusimError, match="is not one of bf16, fp16, fp32, fp8, int8, int4, "
                                          "mxfp4"):
        npusim.load_model("tiny-llama", dtype=bad)
    code, _, err = cli("run", "tiny-llama", "--arch", "edu", "--dtype", bad)
    assert clean(code, err) and "mxfp4" in err


def test_unknown_precision_suggests_the_closest():
    with pytest.raises(NpusimError, match="did you mean 'fp8'"):
        npusim.simulate("tiny-llama", "edu", dtype="fp9")


def test_capacity_advice_names_options_that_exist(cli):
    with pytest.raises(CapacityError) as e:
        npusim.simulate("llama-3.1-8b", "edu", phase="decode", kv_len=16)
    msg = str(e.value)
    flags = set(re.findall(r"--[a-z][a-z-]*", msg))
    run_flags = {s for a in npusim.cli.parser()._subparsers._group_actions[0]
                 .choices["run"]._actions for s in a.option_strings}
    assert flags and flags <= run_flags, flags - run_flags
    kwargs = set(re.findall(r"(?<![\w.])([a-z_]+)=", msg))
    params = (set(inspect.signature(npusim.simulate).parameters)
              | set(inspect.signature(npusim.load_model).parameters))
    assert kwargs and kwargs <= params, kwargs - params
    code, _, err = cli("run", "llama-3.1-8b", "--arch", "edu", "--phase", "decode")
    assert clean(code, err) and "--dtype fp8" in err


def test_simulate_refuses_model_options_for_a_built_graph():
    g = npusim.load_model("tiny-llama")
    with pytest.raises(NpusimError, match="batch apply when the model is given by name"):
        npusim.simulate(g, "edu", batch=4)


# --- LLM step options on an ONNX file: refused, pointing at --dim --------------------------
# (--batch is taken: it runs the file at that batch, tests/test_rebatch.py)

@pytest.mark.parametrize("args", [["--seq", "8"], ["--kv-len", "8"],
                                  ["--phase", "decode"], ["--phase", "prefill"]])
def test_llm_options_on_onnx_are_refused(cli, tmp_path, args):
    path = matmul_onnx(tmp_path / "mm.onnx")
    for cmd in ("run", "inspect"):
        code, _, err = cli(cmd, path, "--dim", "batch=4", *args)
        assert clean(code, err), err
        assert args[0] in err and "--dim NAME=VALUE" in err and "symbolic dims are: batch" in err


def test_llm_options_on_onnx_are_refused_in_python(tmp_path):
    path = matmul_onnx(tmp_path / "mm.onnx")
    with pytest.raises(ModelError, match=r"seq \(--seq\) applies to built-in LLMs only"):
        npusim.load_model(path, dims={"batch": 4}, seq=4)
    with pytest.raises(ModelError, match="no symbolic input dims"):
        npusim.load_model(matmul_onnx(tmp_path / "static.onnx", batch=2), kv_len=2)


def test_seq_on_a_decode_step_is_refused():
    with pytest.raises(ModelError, match=r"seq \(--seq\) 4 applies to the prefill phase"):
        npusim.load_model("tiny-llama", phase="decode", seq=4)


# --- workload sizes: one check, before anything is built ---------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--phase", "decode", "--kv-len", "9223372036854775808"], "kv_len (--kv-len) 9223372036854775808"),
    (["--seq", "2147483648"], "seq (--seq) 2147483648"),
    (["--batch", "9223372036854775808"], "batch (--batch) 9223372036854775808"),
    (["--batch", "65537"], "past the limit of 65,536"),
    (["--batch", "0"], "batch (--batch) 0 must be at least 1"),
    (["--batch", "-3"], "must be at least 1"),
    (["--seq", "0"], "seq (--seq) 0 must be at least 1"),
    (["--phase", "decode", "--kv-len", "0"], "kv_len (--kv-len) must be at least 1"),
    (["--seq", "513"], "past the limit of 512 (tiny-llama's context window"),
    (["--seq", "500", "--kv-len", "13"], "= 513 tokens is past tiny-llama's context window"),
    (["--phase", "decode", "--kv-len", "512"], "512 + 1 = 513 tokens"),
    (["--dim", "batch=16777217"], "past the limit"),
])
def test_sizes_out_of_range_are_refused(cli, args, needle):
    code, _, err = cli("inspect", "tiny-llama", *args)
    assert clean(code, err), err
    assert needle in err


def test_context_window_is_reachable_exactly():
    assert npusim.load_model("tiny-llama", seq=512).meta["seq"] == 512
    assert npusim.load_model("tiny-llama", phase="decode", kv_len=511).meta["kv_len"] == 511
    assert npusim.load_model("tiny-llama", seq=256, kv_len=256).meta["kv_len"] == 256


@pytest.mark.parametrize("value", [1.5, 2.0, True, "4", [4]])
def test_sizes_must_be_whole_numbers_in_python(value):
    with pytest.raises(ModelError, match=r"batch \(--batch\).*not a whole number"):
        npusim.load_model("tiny-llama", batch=value)


@pytest.mark.parametrize("kw,needle", [
    (dict(users=2 ** 31), "users (--users) 2147483648 is past the limit of 16,384"),
    (dict(input_lens=(2 ** 31,)), "input_len (--input-lens) 2147483648"),
    (dict(output_lens=(400,), input_lens=(200,)), "200 + 400 = 600 tokens is past tiny-llama"),
    (dict(chips=0), "chips (--chips) 0 must be at least 1"),
    (dict(chips=-1), "chips (--chips) -1 must be at least 1"),
    (dict(chips=2 ** 40), "chips (--chips) 1099511627776 is past the limit"),
    (dict(chips=1.5), "not a whole number"),
    (dict(precisions=("fp7",)), "precision 'fp7' is not one of"),
])
def test_kperf_matrix_is_checked_before_any_cost_model(monkeypatch, kw, needle):
    def boom(*a, **k):
        raise AssertionError("a cost model was built before the matrix was checked")
    monkeypatch.setattr(kp, "_cost_model", boom)
    base = dict(input_lens=(16,), output_lens=(4,), users=(1,))
    with pytest.raises(NpusimError) as e:
        kp.kperf("edu", "tiny-llama", **{**base, **kw})
    assert needle in str(e.value)


def test_serving_refuses_sizes_and_requests_past_the_context():
    with pytest.raises(ModelError, match=r"users \(--users\) 2147483648"):
        Scenario(16, 4, users=2 ** 31)
    with pytest.raises(ModelError, match="num_requests"):
        Scenario(16, 4, users=1, num_requests=2 ** 40)
    with pytest.raises(NpusimError, match="warmup"):
        Scenario(16, 4, users=1, warmup=2 ** 40)
    from npusim.workloads.serving import simulate_serving
    from npusim.workloads.stepcost import StepCostModel
    cost = StepCostModel("tiny-llama", "edu")
    with pytest.raises(ModelError, match="500 \\+ 100 = 600 tokens is past tiny-llama"):
        simulate_serving(cost, Scenario(500, 100, users=1))


# --- list options: empty or junk is an error, never the defaults ------------------------------

@pytest.mark.parametrize("flag", ["--users", "--precision", "--input-lens", "--output-lens",
                                  "--vs"])
@pytest.mark.parametrize("value", ["", ",", " , "])
def test_empty_list_options_are_errors(cli, tmp_path, flag, value):
    code, _, err = cli("kperf", "--arch", "edu", "--model", "tiny-llama", "--out", tmp_path,
                       "--no-progress", flag, value)
    assert clean(code, err), err
    assert flag in err and "empty" in err


@pytest.mark.parametrize("flag", ["--users", "--input-lens", "--output-lens"])
@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "1e3", "2,x"])
def test_junk_in_count_lists_is_an_error(cli, tmp_path, flag, value):
    code, _, err = cli("kperf", "--arch", "edu", "--model", "tiny-llama", "--out", tmp_path,
                       "--no-progress", "--input-lens", "16", "--output-lens", "4", "--users",
                       "1", flag, value)
    assert clean(code, err), err
    assert flag in err


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5"])
def test_kperf_chips_must_be_a_positive_integer(cli, tmp_path, value):
    code, _, err = cli("kperf", "--arch", "edu", "--model", "tiny-llama", "--out", tmp_path,
                       "--chips", value, "--input-lens", "16", "--output-lens", "4")
    assert clean(code, err), err
    assert "--chips" in err


# --- names: did you mean -------------------------------------------------------------------

def test_unknown_model_suggests_the_closest(cli, tmp_path):
    code, _, err = cli("run", "tiny-lama", "--arch", "edu")
    assert clean(code, err) and "did you mean 'tiny-llama'" in err
    code, _, err = cli("kperf", "--arch", "edu", "--model", "llama-3.1-8", "--out", tmp_path)
    assert clean(code, err) and "did you mean 'llama-3.1-8b'" in err
    with pytest.raises(ModelError, match="did you mean 'llama-3.3-70b'"):
        npusim.simulate("llama-3.3-7b", "h200")


# --- fuzz ------------------------------------------------------------------------------------

def _expect(name: str, value: int, context: int) -> bool:
    """The oracle: whether ``check_sizes`` must accept ``value`` for ``name`` alone."""
    lo = 0 if name == "kv_len" else 1
    hi = {"batch": llm.MAX_BATCH, "users": llm.MAX_USERS, "chips": llm.MAX_CHIPS,
          "num_requests": llm.MAX_REQUESTS}.get(name, context)
    return lo <= value <= hi


huge = st.one_of(st.integers(-10, 600), st.integers(-2 ** 70, 2 ** 70),
                 st.sampled_from([2 ** 31, 2 ** 31 - 1, 2 ** 63, 2 ** 63 - 1, -2 ** 63, 512,
                                  513, 65_536, 65_537, 16_384, 16_385, 1024, 1025]))


@FUZZ
@given(name=st.sampled_from(["batch", "seq", "kv_len", "users", "input_len", "output_len",
                             "chips", "num_requests"]), value=huge)
def test_fuzz_each_size_is_accepted_exactly_within_its_limit(name, value):
    spec = llm.model_spec("tiny-llama")
    if _expect(name, value, 512):
        assert llm.check_sizes(spec, **{name: value}) == {name: value}
    else:
        with pytest.raises(ModelError) as e:
            llm.check_sizes(spec, **{name: value})
        msg = str(e.value)
        assert "\n" not in msg and str(value) in msg and name in msg


@FUZZ
@given(seq=huge, kv=huge, batch=huge)
def test_fuzz_cli_sizes_never_crash(cli, seq, kv, batch):
    argv = ["inspect", "tiny-llama", "--seq", str(seq), "--kv-len", str(kv), "--batch",
            str(batch)]
    ok = 1 <= seq and 0 <= kv and seq + kv <= 512 and 1 <= batch <= llm.MAX_BATCH
    if ok and batch > 64:
        return  # valid but slow to print; the oracle above covers acceptance
    code, out, err = cli(*argv)
    assert (code == 0) == ok, err
    if not ok:
        assert clean(code, err), err


list_text = st.lists(st.one_of(st.sampled_from(["", " ", "0", "-5", "1.5", "abc", "1e3", "16",
                                                "4", "x1", "2147483648", "٣"]),
                               st.text(alphabet="0123456789,-. ax", max_size=6)),
                     min_size=1, max_size=3)


@FUZZ
@given(users=list_text, inputs=list_text)
def test_fuzz_list_options_are_parsed_or_refused(monkeypatch, users, inputs):
    from npusim.cli import _listed
    monkeypatch.setattr(kp, "_cost_model", lambda *a: (_ for _ in ()).throw(
        AssertionError("matrix accepted")))

    def parse(values):
        out = []
        for v in values:
            for x in v.split(","):
                if x.strip():
                    out.append(x.strip())
        return out

    def oracle(items, hi):
        try:
            vals = [int(x) for x in items]
        except ValueError:
            return None
        return vals if vals and all(1 <= v <= hi for v in vals) else None

    u, i = oracle(parse(users), llm.MAX_USERS), oracle(parse(inputs), 508)
    try:
        m = kp._matrix("tiny-llama", ["bf16"], _listed("--input-lens", inputs),
                       [4], _listed("--users", users), None)
    except NpusimError as e:
        assert "\n" not in str(e)
        assert u is None or i is None
        return
    assert list(m["users"]) == list(dict.fromkeys(u))
    assert list(m["input_lens"]) == list(dict.fromkeys(i))
