"""ResNet-50 v1.5 and BERT-Large (npusim.graphs.mlperf): sizes checked by hand, lowering, CLI.

Published figures the hand counts meet:

* torchvision model docs, https://pytorch.org/vision/stable/models.html: ResNet-50
  (IMAGENET1K_V1) 25,557,032 parameters, 4.09 "GFLOPS" (multiply-accumulates) at 224x224;
  the same network's ONNX file in onnx's backend test data (``light_resnet50``, BatchNorm as
  nodes) lowers to 4,089,184,256 MACs and 25,610,152 initializer values (tests/
  test_light_models.py).
* BERT-Large (Devlin et al., NAACL 2019, section 3; Google's bert_config.json for the uncased
  model): 24 layers, hidden 1024, 16 heads, FFN 4096, vocabulary 30,522, 512 positions, 2
  token types. Hugging Face's ``BertModel`` of that config has 335,141,888 parameters, its
  pooler 1,049,600 of them; the SQuAD model has no pooler and a 1024 x 2 span head.
* /work/shared/reference/atom.md section 2.1 estimates BERT-Large at seq 384 as about 2.46e11
  operations (1.23e11 MACs) per sample, and ResNet-50 as about 4.1 GMACs per image.
"""
from __future__ import annotations

import importlib.util
import math
import pathlib
import random
from collections import Counter

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim import load_model
from npusim.frontend import load_onnx
from npusim.graphs import mlperf

# -- hand arithmetic (independent of the module's layer list) ------------------------------
# ResNet-50 v1.5: stem 7x7/2 conv to 64 at 112x112; stages (blocks, width, output side).
STAGES = ((3, 64, 56), (4, 128, 28), (6, 256, 14), (3, 512, 7))


def _hand_resnet() -> tuple[int, int, int]:
    """(conv weight values, BatchNorm channels, conv MACs) at 224x224, batch 1."""
    weights, channels, macs = 3 * 64 * 49, 64, 112 * 112 * 64 * 3 * 49
    cin, side_in = 64, 56
    for blocks, w, side in STAGES:
        for b in range(blocks):
            # conv1 (1x1) runs at the input side; v1.5 strides the 3x3, so conv2 and conv3
            # run at the output side; the projection shortcut (first block) is 1x1/stride.
            in_side = side_in if b == 0 else side
            weights += cin * w + 9 * w * w + w * 4 * w
            channels += w + w + 4 * w
            macs += in_side ** 2 * cin * w + side ** 2 * (9 * w * w + w * 4 * w)
            if b == 0:
                weights += cin * 4 * w
                channels += 4 * w
                macs += side ** 2 * cin * 4 * w
            cin = 4 * w
        side_in = side
    return weights, channels, macs


CONV_W, BN_CH, CONV_MACS = _hand_resnet()
FC = 2048 * 1000 + 1000

# BERT-Large at seq 384.
D, F, L, S, H = 1024, 4096, 24, 384, 16
EMBED = 30522 * D + 512 * D + 2 * D + 2 * D
LAYER = 4 * (D * D + D) + 2 * D + (D * F + F) + (F * D + D) + 2 * D
QA = D * 2 + 2
POOLER = D * D + D
LINEAR_MACS = L * S * (4 * D * D + 2 * D * F)
ATTN_MACS = L * 2 * H * S * S * (D // H)
QA_MACS = S * D * 2


@pytest.fixture(scope="module")
def resnet():
    return load_onnx(mlperf.build("resnet50"))


@pytest.fixture(scope="module")
def bert():
    return load_onnx(mlperf.build("bert-large"))


def _macs_by(graph, key) -> Counter:
    out: Counter = Counter()
    for op in graph.ops():
        if op.macs:
            out[key(op)] += op.macs
    return out


def _clean_error(code: int, err: str) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


# -- ResNet-50 v1.5 -----------------------------------------------------------------------
def test_resnet_hand_counts_meet_published_figures():
    assert BN_CH == 26_560
    assert CONV_W + 2 * BN_CH + FC == 25_557_032                # torchvision, trainable
    assert CONV_MACS + 2048 * 1000 == 4_089_184_256             # torchvision 4.09 G


def test_resnet_parameters():
    assert mlperf.count_parameters("resnet50") == CONV_W + 2 * BN_CH + FC
    assert mlperf.count_parameters("resnet50", trainable=False) == CONV_W + 4 * BN_CH + FC
    # folded: one conv bias per BatchNorm channel in place of its four vectors
    assert mlperf.count_parameters("resnet50", batchnorm="folded") == CONV_W + BN_CH + FC
    assert mlperf.count_parameters("resnet50", classes=1001) == 25_557_032 + 2049


def test_resnet_lowered_macs_per_layer_type(resnet):
    assert resnet.macs == 4_089_184_256
    assert resnet.parameters == CONV_W + BN_CH + FC == 25_530_472
    assert _macs_by(resnet, lambda op: op.op_type) == {"Conv": CONV_MACS, "Gemm": 2048 * 1000}
    assert not resnet.warnings
    census = resnet.census()
    assert census["Conv"]["count"] == 53 and census["Add"]["count"] == 16
    assert census["GlobalAveragePool"]["count"] == 1 and census["MaxPool"]["count"] == 1


def test_resnet_stride_on_the_3x3_conv(resnet):
    by_source = _macs_by(resnet, lambda op: op.source)
    # v1.5: layer2.0's 1x1 conv1 runs at 56x56, its 3x3 conv2 at 28x28 (stride 2 there)
    assert by_source["layer2.0.conv1"] == 56 * 56 * 256 * 128
    assert by_source["layer2.0.conv2"] == 28 * 28 * 128 * 128 * 9
    assert by_source["layer2.0.downsample.0"] == 28 * 28 * 256 * 512
    assert by_source["conv1"] == 112 * 112 * 64 * 3 * 49


def test_resnet_separate_batchnorm_matches_onnx_light_resnet50():
    g = load_onnx(mlperf.build("resnet50", batchnorm="separate"))
    assert (g.macs, g.parameters) == (4_089_184_256, 25_610_152)
    assert g.census()["BatchNormalization"]["count"] == 53


def test_symbolic_batch_scales_work():
    m = mlperf.build("resnet50", batch="batch")
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 224, 224]
    assert load_onnx(m, {"batch": 8}).macs == 8 * 4_089_184_256
    assert load_onnx(mlperf.build("resnet50", batch=8)).macs == 8 * 4_089_184_256


# -- BERT-Large ---------------------------------------------------------------------------
def test_bert_hand_counts():
    assert LAYER == 12_596_224 and EMBED == 31_782_912
    assert EMBED + L * LAYER + POOLER == 335_141_888            # Hugging Face BertModel
    assert mlperf.count_parameters("bert-large") == EMBED + L * LAYER + QA == 334_094_338
    # atom.md's estimate: ~2.46e11 operations = 2 x MACs
    assert abs(2 * (LINEAR_MACS + ATTN_MACS + QA_MACS) / 2.46e11 - 1) < 0.01


def test_bert_lowered_macs_per_layer_type(bert):
    def kind(op):
        if op.source.endswith(("qk_matmul", "pv_matmul")):
            return "attention"
        return "qa_head" if op.source.startswith("qa_outputs") else "linear"
    assert _macs_by(bert, kind) == {"linear": LINEAR_MACS, "attention": ATTN_MACS,
                                    "qa_head": QA_MACS}
    assert bert.macs == 123_212_660_736
    assert not bert.warnings
    census = bert.census()
    assert census["LayerNormalization"]["count"] == 2 * L + 1
    assert census["Gelu"]["count"] == L and census["Softmax"]["count"] == L


def test_bert_lowered_parameters(bert):
    # The frontend keeps only the position rows the graph reads (Slice of the table):
    # rows 384..511 of the 512-row table are not loaded.
    assert bert.parameters == EMBED + L * LAYER + QA - (512 - S) * D


def test_bert_inputs_outputs_and_seq():
    m = mlperf.build("bert-large", batch="batch", seq=128)
    assert [i.name for i in m.graph.input] == ["input_ids", "input_mask", "segment_ids"]
    assert [o.name for o in m.graph.output] == ["start_logits", "end_logits"]
    g = load_onnx(m, {"batch": 2})
    attn = 24 * 2 * 16 * 128 * 128 * 64
    assert g.macs == 2 * (24 * 128 * (4 * D * D + 2 * D * F) + attn + 128 * D * 2)


# -- files, checker, npusim ---------------------------------------------------------------
@pytest.mark.parametrize("name,batchnorm", [("resnet50", "folded"), ("resnet50", "separate"),
                                            ("bert-large", "folded")])
def test_checker_and_shape_only_weights(name, batchnorm):
    m = mlperf.build(name, batch="batch", batchnorm=batchnorm)
    mlperf.check(m)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data
               for t in m.graph.initializer)
    assert sum(math.prod(t.dims) for t in m.graph.initializer) == mlperf.count_parameters(
        name, batchnorm=batchnorm, trainable=False)
    assert m.ByteSize() < 1_000_000


def test_load_model_from_files(tmp_path):
    r = mlperf.write("resnet50", tmp_path / "resnet50.onnx")
    b = mlperf.write("bert-large", tmp_path / "bert.onnx", batch="batch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert.onnx", "resnet50.onnx"]
    assert load_model(r).macs == 4_089_184_256
    assert load_model(b, dims={"batch": 1}).macs == 123_212_660_736


def test_npusim_run_resnet50_on_atom(tmp_path, cli):
    path = mlperf.write("resnet50", tmp_path / "resnet50.onnx")
    code, out, err = cli("run", path, "--arch", "atom")
    assert code == 0, err
    assert "ResNet-50 v1.5 on atom" in out and "4.09 GMAC" in out


def test_int8_precision_pass_on_resnet50(tmp_path):
    """An fp32 graph through the precision pass: weights one byte each (biases may stay
    wider), MACs unchanged."""
    path = mlperf.write("resnet50", tmp_path / "resnet50.onnx")
    g = load_model(path, dtype="int8")
    assert g.macs == 4_089_184_256
    weight_bytes = g.bytes_by_role()["weight"]
    assert CONV_W + 2048 * 1000 <= weight_bytes <= CONV_W + 2048 * 1000 + 4 * (BN_CH + 1000)


def test_unbound_batch_is_a_clean_error(tmp_path, cli):
    path = mlperf.write("bert-large", tmp_path / "bert.onnx", batch="batch")
    code, _, err = cli("run", path, "--arch", "atom")
    assert _clean_error(code, err) and "--dim batch=" in err


def test_module_main(tmp_path, capsys):
    assert mlperf.main(["resnet50", str(tmp_path / "r.onnx")]) == 0
    assert mlperf.main(["bert-large", str(tmp_path / "b.onnx"), "--batch", "4"]) == 0
    dims = onnx.load(str(tmp_path / "b.onnx"), load_external_data=False).graph.input[0]
    assert [d.dim_value for d in dims.type.tensor_type.shape.dim] == [4, 384]
    assert mlperf.main(["resnet50", str(tmp_path / "s.onnx"), "--batch", "batch",
                        "--batchnorm", "separate"]) == 0
    m = onnx.load(str(tmp_path / "s.onnx"), load_external_data=False)
    assert sum(n.op_type == "BatchNormalization" for n in m.graph.node) == 53
    capsys.readouterr()
    for bad in (["gpt", str(tmp_path / "x.onnx")],
                ["resnet50", str(tmp_path / "x.onnx"), "--batch", "0"],
                ["resnet50", str(tmp_path / "x.onnx"), "--batch", "-2"],
                ["resnet50"]):
        with pytest.raises(SystemExit) as e:
            mlperf.main(bad)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "error:" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


# -- bad arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,word", [
    ({"name": "resnet"}, "choose one of"), ({"batch": 0}, "batch"), ({"batch": True}, "batch"),
    ({"batch": "2x"}, "batch"), ({"batchnorm": "fused"}, "batchnorm"),
    ({"seq": 513}, "seq"), ({"classes": 0}, "classes"), ({"image": 8}, "image")])
def test_bad_arguments_are_named(kwargs, word):
    args = {"name": "resnet50", **kwargs}
    with pytest.raises(ValueError, match=word):
        mlperf.build(args.pop("name"), **args)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(mlperf.NETWORKS),
       batch=st.one_of(st.integers(-3, 5), st.text(max_size=4), st.none(), st.floats(0, 4)),
       seq=st.one_of(st.integers(-2, 600), st.booleans()),
       image=st.integers(0, 300))
def test_fuzz_arguments_build_or_name_the_fault(name, batch, seq, image):
    """Any argument mix either builds a valid-looking graph or raises one ValueError."""
    try:
        m = mlperf.build(name, batch, seq=seq, image=image)
    except ValueError as e:
        assert "\n" not in str(e)
        return
    assert m.graph.input and m.graph.output


def test_fuzz_corpus_cases_end_cleanly(cli, tmp_path):
    """benchmarks/fuzz_cases/mlperf.py through the CLI: each case is one clean error."""
    src = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cases" / "mlperf.py"
    spec = importlib.util.spec_from_file_location("fuzz_cases_mlperf", src)
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    labels = set()
    for label, argv, must_fail in corpus.cases(tmp_path, random.Random(0), 14):
        code, _, err = cli(*argv)
        assert must_fail and _clean_error(code, err), (label, argv, err)
        labels.add(label)
    assert len(labels) == 7
