"""Models exported by ``torch.onnx.export`` lower to the IR with the MACs their architectures have.

Needs the optional ``torch`` extra (torch, torchvision, transformers and onnxscript, which the
dynamo exporter uses); without it every test here is skipped. Each model is exported once per
module into a temporary folder, with random weights (``weights=None``: nothing is downloaded),
and the MAC figures it is checked against are computed by hand from the published layer lists,
not from the model objects:

- ResNet-18: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, table 1
  (https://arxiv.org/abs/1512.03385), as built by torchvision's ``resnet18``, whose page gives
  GFLOPS 1.81, a count of multiply-adds
  (https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet18.html).
- ViT-B/16: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, table 1
  (https://arxiv.org/abs/2010.11929): 12 layers, width 768, MLP 3072, 12 heads, patch 16;
  torchvision's page gives GFLOPS 17.56 for ``vit_b_16``
  (https://pytorch.org/vision/stable/models/generated/torchvision.models.vit_b_16.html).
- A tiny Llama built by transformers from a config given here; its MACs follow from the config.

The dynamo exporter is used because the TorchScript one (``dynamo=False``) fails on both
transformer models with torch 2.14.1 (``aten::_native_multi_head_attention`` for ViT's
eval-mode attention fast path, ``aten::diff`` for transformers' causal mask).
"""
from __future__ import annotations

import shutil
import warnings
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxscript")  # the dynamo exporter translates through it

from npusim.errors import UnboundDimError  # noqa: E402
from npusim.frontend import load_onnx  # noqa: E402

pytestmark = pytest.mark.torch


# -- hand-computed figures ----------------------------------------------------------------
def _conv(cin: int, cout: int, k: int, out_hw: int) -> int:
    """MACs of a square, ungrouped convolution: one k*k*cin dot product per output value."""
    return out_hw * out_hw * cout * cin * k * k


def resnet18_layer_macs() -> list[int]:
    """MACs of every conv and fc layer of ResNet-18 on one 224x224 image (He et al., table 1).

    Batch norms are per-channel affine maps (no MACs; the exporter folds them into the convs);
    the 3x3 max pool and global average pool are reductions, not contractions.
    """
    macs = [_conv(3, 64, 7, 112)]  # conv1, stride 2, then a stride-2 max pool to 56x56
    for cin, cout, hw in ((64, 64, 56), (64, 128, 28), (128, 256, 14), (256, 512, 7)):
        macs += [_conv(cin, cout, 3, hw), _conv(cout, cout, 3, hw)]  # first block
        if cin != cout:
            macs.append(_conv(cin, cout, 1, hw))  # strided 1x1 projection shortcut
        macs += [_conv(cout, cout, 3, hw), _conv(cout, cout, 3, hw)]  # second block
    macs.append(512 * 1000)  # fc
    return macs


def vit_b16_layer_macs() -> list[int]:
    """MACs of every contraction of ViT-B/16 on one 224x224 image (Dosovitskiy et al., table 1)."""
    width, mlp, heads, layers, patch = 768, 3072, 12, 12, 16
    patches = (224 // patch) ** 2  # 196
    seq = patches + 1  # plus the class token
    head_dim = width // heads
    macs = [patches * width * 3 * patch * patch]  # patch embedding: a 16x16 stride-16 conv
    for _ in range(layers):
        macs += [
            seq * width * 3 * width,  # fused q, k, v projection
            heads * seq * seq * head_dim,  # Q K^T
            heads * seq * seq * head_dim,  # softmax(.) V
            seq * width * width,  # output projection
            seq * width * mlp,  # MLP up
            seq * mlp * width,  # MLP down
        ]
    macs.append(width * 1000)  # classifier head on the class token only
    return macs


TINY_LLAMA = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128, vocab_size=256,
                  max_position_embeddings=128, use_cache=False)


def llama_layer_macs(cfg: dict, batch: int, seq: int) -> list[int]:
    """MACs of every contraction of a Llama prefill without cache over ``batch x seq`` tokens.

    Attention is full (the causal mask is applied to a full ``seq x seq`` score matrix); grouped
    KV heads are repeated, not recomputed, so K and V projections are ``kv_heads * head_dim``
    wide. RoPE's angle table (an outer product with a contraction length of 1) and the
    embedding lookup are not contractions.
    """
    h, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = h // heads
    tokens = batch * seq
    macs = []
    for _ in range(cfg["num_hidden_layers"]):
        macs += [
            tokens * h * heads * head_dim,  # q_proj
            tokens * h * kv_heads * head_dim,  # k_proj
            tokens * h * kv_heads * head_dim,  # v_proj
            batch * heads * seq * seq * head_dim,  # Q K^T
            batch * heads * seq * seq * head_dim,  # softmax(.) V
            tokens * heads * head_dim * h,  # o_proj
            tokens * h * inter,  # gate_proj
            tokens * h * inter,  # up_proj
            tokens * inter * h,  # down_proj
        ]
    macs.append(tokens * h * vocab)  # lm_head on every position
    return macs


def test_hand_figures_match_the_published_totals():
    # 1.814 and 17.56 GMAC are torchvision's published figures; the tiny Llama's is by hand:
    # per layer 8*(64*64 + 2*64*32 + 64*64 + 3*64*128) + 2*4*8*8*16 = 303,104; two layers plus
    # the 8*64*256 = 131,072 lm_head.
    assert sum(resnet18_layer_macs()) == 1_814_073_344
    assert len(resnet18_layer_macs()) == 21
    assert sum(vit_b16_layer_macs()) == 17_563_828_224
    assert len(vit_b16_layer_macs()) == 74
    assert sum(llama_layer_macs(TINY_LLAMA, 1, 8)) == 2 * 303_104 + 131_072 == 737_280


# -- exports (once per module) ------------------------------------------------------------
def _export(model, args, path, **kwargs):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        torch.onnx.export(model, args, str(path), dynamo=True, verbose=False, **kwargs)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Lazily export each model at most once per module; yields ``get(key) -> path``.

    The folder is removed afterwards: ViT-B/16's external weights alone are 346 MB, and pytest
    keeps the temporary folders of its last three runs.
    """
    folder = tmp_path_factory.mktemp("torch_onnx")
    paths: dict[str, object] = {}

    def get(key: str):
        if key not in paths:
            paths[key] = _EXPORTERS[key](folder)
        return paths[key]

    yield get
    shutil.rmtree(folder, ignore_errors=True)


def _resnet18(folder):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    return _export(model, (torch.randn(1, 3, 224, 224),), folder / "resnet18.onnx")


def _vit_b16(folder):
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    return _export(model, (torch.randn(1, 3, 224, 224),), folder / "vit_b_16.onnx")


def _llama_model():
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA)).eval()


def _llama_static(folder):
    ids = torch.randint(0, TINY_LLAMA["vocab_size"], (1, 8))
    return _export(_llama_model(), (ids,), folder / "llama_tiny.onnx",
                   input_names=["input_ids"], output_names=["logits"])


def _llama_dynamic(folder):
    # torch.export specialises an example extent of 1, so the example batch is 2.
    ids = torch.randint(0, TINY_LLAMA["vocab_size"], (2, 8))
    shapes = ({0: torch.export.Dim("batch", max=64), 1: torch.export.Dim("seq", max=128)},)
    return _export(_llama_model(), (ids,), folder / "llama_tiny_dyn.onnx",
                   input_names=["input_ids"], output_names=["logits"], dynamic_shapes=shapes)


_EXPORTERS = {"resnet18": _resnet18, "vit_b_16": _vit_b16,
              "llama": _llama_static, "llama_dyn": _llama_dynamic}


def _contraction_macs(graph) -> list[int]:
    return sorted(op.macs for op in graph.ops() if op.kind == "contraction")


# -- the checks ---------------------------------------------------------------------------
def test_resnet18_lowers_to_its_layer_macs(exported):
    graph = load_onnx(exported("resnet18"))
    assert _contraction_macs(graph) == sorted(resnet18_layer_macs())
    assert graph.macs == 1_814_073_344
    assert Counter(op.op_type for op in graph.ops() if op.kind == "contraction") == \
        {"Conv": 20, "Gemm": 1}


def test_resnet18_loads_without_its_external_data(exported, tmp_path):
    # The exporter writes weights to "<name>.onnx.data"; npusim must need only the shapes.
    src = exported("resnet18")
    alone = tmp_path / src.name
    shutil.copyfile(src, alone)
    data = src.name + ".data"
    assert (src.parent / data).exists() and not (tmp_path / data).exists()
    assert load_onnx(alone).macs == 1_814_073_344


def test_vit_b16_lowers_to_its_layer_macs(exported):
    graph = load_onnx(exported("vit_b_16"))
    assert _contraction_macs(graph) == sorted(vit_b16_layer_macs())
    assert graph.macs == 17_563_828_224


def test_tiny_llama_lowers_to_its_config_macs(exported):
    graph = load_onnx(exported("llama"))
    assert _contraction_macs(graph) == sorted(llama_layer_macs(TINY_LLAMA, 1, 8))
    assert graph.macs == 737_280


@pytest.mark.parametrize("batch, seq", [(1, 8), (2, 16), (3, 5)])
def test_tiny_llama_with_dynamic_axes_binds_batch_and_seq(exported, batch, seq):
    graph = load_onnx(exported("llama_dyn"), {"batch": batch, "seq": seq})
    assert _contraction_macs(graph) == sorted(llama_layer_macs(TINY_LLAMA, batch, seq))


def test_tiny_llama_with_dynamic_axes_names_its_unbound_dims(exported):
    with pytest.raises(UnboundDimError, match=r"(?s)batch.*seq|seq.*batch"):
        load_onnx(exported("llama_dyn"), {})
