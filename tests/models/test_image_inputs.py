"""Image and video inputs the processors and models used to get silently wrong (or refuse unclearly)."""

import numpy as np
import pytest
import torch
from PIL import Image

import lrpe_hf
from lrpe_hf.models.fixation_vit import FixationViTImageProcessor
from lrpe_hf.models.lrpe_vit.image_processing_lrpe_vit import LrpeVitImageProcessor


def small_vit_processor():
    return LrpeVitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK"])
def test_vit_processor_converts_any_pil_mode_to_rgb(mode):
    rgb = Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype("uint8"))
    image = rgb.convert(mode)
    out = small_vit_processor()(image, return_tensors="pt")["pixel_values"]
    expected = small_vit_processor()(image.convert("RGB"), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 32, 32) and torch.equal(out, expected)


def test_vit_processor_takes_gray_arrays_and_refuses_prescaled_floats():
    gray = (np.random.default_rng(1).random((40, 50)) * 255).astype("uint8")
    out = small_vit_processor()(gray, return_tensors="pt")["pixel_values"]
    assert torch.equal(out, small_vit_processor()(np.repeat(gray[..., None], 3, -1), return_tensors="pt")["pixel_values"])
    floats = gray[..., None].repeat(3, -1).astype("float32") / 255
    with pytest.raises(ValueError, match="do_rescale=False"):
        small_vit_processor()(floats, return_tensors="pt")
    ok = small_vit_processor()(floats, do_rescale=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ok, out, atol=1e-5, rtol=1e-5)  # same result as the uint8 image


def test_fixation_processor_takes_gray_videos_and_refuses_prescaled_floats():
    p = FixationViTImageProcessor(num_frames=4, size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    gray = (np.random.default_rng(2).random((6, 40, 50)) * 255).astype("uint8")
    out = p(gray, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 4, 3, 32, 32)
    assert torch.equal(out, p(np.repeat(gray[..., None], 3, -1), return_tensors="pt")["pixel_values"])
    with pytest.raises(ValueError, match="do_rescale=False"):
        p(gray[..., None].repeat(3, -1).astype("float32") / 255, return_tensors="pt")


@pytest.mark.parametrize("kind", ["lrpe_vit", "mixformer"])
def test_image_models_refuse_integer_pixels(kind):
    if kind == "lrpe_vit":
        model = lrpe_hf.LrpeVitForImageClassification(lrpe_hf.LrpeVitConfig(
            image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, num_labels=3))
    else:
        model = lrpe_hf.MixFormerForImageClassification(lrpe_hf.MixFormerConfig(
            hidden_size=32, num_hidden_layers=1, head_dim=8, image_size=16, patch_size=4, num_labels=3))
    with pytest.raises(ValueError, match="floating point"):
        model(pixel_values=torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8))
    assert model(pixel_values=torch.rand(1, 3, 16, 16)).logits.shape == (1, 3)


@pytest.mark.parametrize("kind", ["lrpe_vit", "mixformer"])
def test_enable_input_require_grads_with_gradient_checkpointing(kind):
    """What PEFT does with gradient checkpointing: hook the input embedding so checkpointed blocks get an input that
    requires grad. It crashed (the patch embedding returned a tuple) before."""
    if kind == "lrpe_vit":
        model = lrpe_hf.LrpeVitForImageClassification(lrpe_hf.LrpeVitConfig(
            image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, num_labels=3))
    else:
        model = lrpe_hf.MixFormerForImageClassification(lrpe_hf.MixFormerConfig(
            hidden_size=32, num_hidden_layers=2, head_dim=8, image_size=16, patch_size=4, num_labels=3))
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.enable_input_require_grads()
    for p in model.parameters():
        p.requires_grad_(False)
    head = model.classifier.weight
    head.requires_grad_(True)
    first_block = next(p for n, p in model.named_parameters() if ".0." in n and n.endswith("weight"))
    first_block.requires_grad_(True)  # a frozen base with one trainable weight inside a checkpointed block
    model(pixel_values=torch.rand(2, 3, 16, 16), labels=torch.tensor([0, 1])).loss.backward()
    assert head.grad is not None and first_block.grad is not None and first_block.grad.abs().sum() > 0


def test_fixation_processor_refuses_zero_views():
    """num_temporal_clips=0 silently ran one clip before."""
    p = FixationViTImageProcessor(num_frames=2, size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    video = (np.random.default_rng(3).random((4, 20, 20, 3)) * 255).astype("uint8")
    for option in ("num_temporal_clips", "num_spatial_crops"):
        with pytest.raises(ValueError, match="must be positive"):
            p(video, return_tensors="pt", **{option: 0})
