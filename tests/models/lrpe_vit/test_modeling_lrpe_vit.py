"""LRPE ViT: presets, 2-D LRPE modes, save/load, image processor, Trainer on real digits, LoRA, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)

import lrpe_hf  # noqa: F401
from lrpe_hf import LrpeVitConfig, LrpeVitImageProcessor
from lrpe_hf.layers.attention import LinearAttention, SoftmaxAttention

TINY = dict(image_size=16, patch_size=4, hidden_size=32, num_attention_heads=2, num_hidden_layers=2, num_labels=10)


def tiny(**kw):
    return LrpeVitConfig(**{**TINY, **kw})


def test_default_config_and_presets_are_the_papers_vit_small():
    cfg = AutoConfig.for_model("lrpe_vit", num_labels=10)
    assert (cfg.patch_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (16, 384, 12, 6)
    expected = {
        "vit-small-lrpe-rotation": ("rotation", True),
        "vit-small-lrpe-permutation": ("permutation", False),
        "vit-small-lrpe-unitary": ("unitary", False),
        "vit-small-lrpe-unitary-learned": ("unitary", True),
    }
    assert set(LrpeVitConfig.PRESETS) == set(expected)
    for name, (core, learned) in expected.items():
        p = LrpeVitConfig.from_preset(name)
        assert (p.lrpe_core, p.lrpe_p, p.lrpe_theta_learned) == (core, "householder", learned)
        assert (p.pooling, p.feature_map, p.qkv_bias, p.head_dim, p.lrpe_2d_mode) == ("mean", "1+elu", False, 64, "shared")
    assert LrpeVitConfig.from_preset("linear_vit_small_l_un").lrpe_core == "unitary"
    assert LrpeVitConfig.from_preset("vit-small-lrpe-unitary", num_labels=3).num_labels == 3
    with pytest.raises(ValueError, match="unknown LrpeVit preset"):
        LrpeVitConfig.from_preset("vit-huge")


@pytest.mark.parametrize("preset", sorted(LrpeVitConfig.PRESETS))
@pytest.mark.parametrize("mode", ["shared", "separable"])
def test_presets_run_and_round_trip(preset, mode, tmp_path):
    if mode == "separable" and "permutation" in preset:
        with pytest.raises(ValueError, match="separable"):
            LrpeVitConfig.from_preset(preset, **TINY, lrpe_2d_mode=mode)
        return
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(LrpeVitConfig.from_preset(preset, **TINY, lrpe_2d_mode=mode))
    model.eval()
    attention = model.lrpe_vit.layers[0].attention
    assert isinstance(attention, LinearAttention) and attention.position_encoding.name == "lrpe"
    x = torch.randn(2, 3, 16, 16)
    logits = model(pixel_values=x).logits
    model.save_pretrained(tmp_path)
    again = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(again(pixel_values=x).logits, logits)  # Householder v / permutation / theta restored


def test_random_parts_are_seeded_and_differ_per_layer():
    a = AutoModel.from_config(tiny(lrpe_core="permutation"))
    b = AutoModel.from_config(tiny(lrpe_core="permutation"))
    e0, e1 = a.layers[0].attention.position_encoding, a.layers[1].attention.position_encoding
    assert torch.equal(e0.permutation, b.layers[0].attention.position_encoding.permutation)
    assert torch.equal(e0.householder_v, b.layers[0].attention.position_encoding.householder_v)
    assert not torch.equal(e0.householder_v, e1.householder_v)
    assert not e0.householder_v.requires_grad


def test_fixed_householder_stays_frozen_after_reload(tmp_path):
    model = AutoModel.from_config(tiny())
    model.save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path)
    trainable = [n for n, p in again.named_parameters() if p.requires_grad and "householder" in n]
    assert trainable == []
    assert torch.equal(again.layers[1].attention.position_encoding.householder_v, model.layers[1].attention.position_encoding.householder_v)
    learned = AutoModel.from_config(tiny(lrpe_householder_learned=True))
    assert learned.layers[0].attention.position_encoding.householder_v.requires_grad


def test_mean_pooling_without_cls_and_cls_pooling():
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny()).eval()
    out = model(pixel_values=torch.randn(2, 3, 16, 16))
    assert out.last_hidden_state.shape == (2, 16, 32)  # no CLS token
    assert torch.allclose(out.pooler_output, out.last_hidden_state.mean(1))
    cls = AutoModel.from_config(tiny(pooling="cls")).eval()
    out = cls(pixel_values=torch.randn(2, 3, 16, 16))
    assert out.last_hidden_state.shape == (2, 17, 32) and torch.equal(out.pooler_output, out.last_hidden_state[:, 0])


def test_without_ape_any_multiple_of_the_patch_size_works():
    model = AutoModelForImageClassification.from_config(tiny(use_absolute_position_embeddings=False)).eval()
    assert model(pixel_values=torch.randn(1, 3, 24, 20)).logits.shape == (1, 10)


def test_softmax_baseline_of_the_same_size():
    lrpe = AutoModel.from_config(tiny(qkv_bias=True))
    soft = AutoModel.from_config(tiny(attention_type="softmax", qkv_bias=True))
    assert isinstance(soft.layers[0].attention, SoftmaxAttention)
    n_lrpe = sum(p.numel() for p in lrpe.parameters() if p.requires_grad)
    n_soft = sum(p.numel() for p in soft.parameters())
    assert n_lrpe - n_soft == 2 * 2 * 32  # only the per-layer LayerNorm over the heads differs
    assert soft(pixel_values=torch.randn(1, 3, 16, 16)).pooler_output.shape == (1, 32)


def test_image_processor_resize_crop_normalise_and_saved_with_the_model(tmp_path):
    proc = LrpeVitImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 16, "width": 16})
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    pv = proc(images=[img, img], return_tensors="pt").pixel_values
    assert pv.shape == (2, 3, 16, 16)
    # reference: bicubic shorter side -> 20 (20 x 26), centre crop 16, /255, ImageNet mean/std
    ref = np.asarray(img.resize((26, 20), Image.BICUBIC), dtype=np.float32)[2:18, 5:21] / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(pv[0].permute(1, 2, 0).numpy(), ref, atol=2e-2)
    model = AutoModelForImageClassification.from_config(tiny())
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    again = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(again, LrpeVitImageProcessor)
    assert torch.equal(again(images=[img], return_tensors="pt").pixel_values, pv[:1])
    assert model.eval()(pixel_values=pv).logits.shape == (2, 10)
    classify = pipeline("image-classification", model=str(tmp_path))
    scores = classify(img, top_k=3)
    probs = model(pixel_values=pv[:1]).logits.softmax(-1)[0]
    assert len(scores) == 3 and scores[0]["label"] == model.config.id2label[int(probs.argmax())]
    assert abs(scores[0]["score"] - probs.max().item()) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(LrpeVitConfig.PRESETS))
def test_full_size_presets_forward(preset):
    model = AutoModelForImageClassification.from_config(LrpeVitConfig.from_preset(preset, num_labels=1000)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 21e6 < n_params < 23e6  # ViT-small size (DeiT-S: 22.1M with qkv bias)
    with torch.no_grad():
        assert model(pixel_values=torch.randn(1, 3, 224, 224)).logits.shape == (1, 1000)


def _digits(n):
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = torch.tensor(digits.images[:n], dtype=torch.float32)[:, None] / 16.0
    x = x.repeat_interleave(2, -1).repeat_interleave(2, -2)  # 8x8 -> 16x16
    return (x - 0.5) / 0.5, torch.tensor(digits.target[:n])


class _Items(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def test_trainer_lowers_loss_on_real_digits(tmp_path):
    x, y = _digits(64)
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(tiny(num_channels=1, drop_path_rate=0.0))
    with torch.no_grad():
        before = model.eval()(pixel_values=x, labels=y).loss.item()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=60, per_device_train_batch_size=16,
                             learning_rate=5e-3, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True,
                             logging_steps=1000, seed=0)
    Trainer(model=model, args=args, train_dataset=_Items(x, y)).train()
    with torch.no_grad():
        after = model.eval()(pixel_values=x, labels=y).loss.item()
    assert after < 0.85 * before, (before, after)  # a ViT on 16 tokens learns digits slowly; 60 steps


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(tiny(drop_path_rate=0.0)).train()
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([1, 2])
    model(pixel_values=x, labels=y).loss.backward()
    ref = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model(pixel_values=x, labels=y).loss.backward()
    got = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ref, got))


def test_lora(tmp_path, lora_train_save_reload):
    lora, x, out = lora_train_save_reload(lambda: AutoModelForImageClassification.from_config(tiny()),
                                          ["q_proj", "k_proj", "v_proj"], 10, tmp_path)
    assert torch.allclose(lora.merge_and_unload().eval()(pixel_values=x).logits, out, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lrpe_2d_mode="diagonal"), "lrpe_2d_mode='diagonal'"),
        (dict(lrpe_core="permutation", lrpe_2d_mode="separable"), "separable"),
        (dict(lrpe_core="permutation", lrpe_theta_learned=True), "lrpe_theta_learned"),
        (dict(pooling="max"), "pooling='max'"),
        (dict(attention_type="flash"), "attention_type='flash'"),
        (dict(hidden_size=30, num_attention_heads=4), "divisible"),
        (dict(image_size=18), "multiple of patch_size"),
        (dict(feature_map="tanh"), "feature_map='tanh'"),
    ],
)
def test_config_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_bad_pixel_values():
    model = AutoModelForImageClassification.from_config(tiny()).eval()
    with pytest.raises(ValueError, match="image_size=16"):
        model(pixel_values=torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="channels"):
        model(pixel_values=torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(pixel_values=torch.randn(1, 3, 18, 16))
    with pytest.raises(ValueError, match="pixel_values"):
        model()


@pytest.mark.parametrize("legacy, pair, feature_map", [("lrpe", ("linear", "lrpe"), "1+elu"),
                                                      ("cosformer", ("linear", "cosformer"), "relu"),
                                                      ("softmax_relative", ("softmax", "relative_key"), "1+elu"),
                                                      ("softmax", ("softmax", "nope"), "1+elu")])
def test_attention_type_of_lrpe_hf_0_2_loads_as_the_same_pair(legacy, pair, feature_map):
    """config.json of lrpe_hf <= 0.2 named the variant in attention_type (and carried feature_map '1+elu' even for
    cosFormer, which always ran on ReLU); it loads as the same attention type, encoding and feature map."""
    old = LrpeVitConfig(**TINY).to_dict()
    old.update(attention_type=legacy, feature_map="1+elu")
    del old["position_encoding"]
    cfg = LrpeVitConfig.from_dict(old)
    assert (cfg.attention_type, cfg.position_encoding) == pair
    if pair[0] == "linear":
        assert cfg.feature_map == feature_map
    if legacy != "softmax":  # a variant name with a different encoding beside it is a contradiction
        with pytest.raises(ValueError, match=f"attention_type='{legacy}' means position_encoding"):
            LrpeVitConfig.from_dict({**old, "position_encoding": "nope" if pair[1] != "nope" else "rope"})
