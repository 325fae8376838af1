import numpy as np
import PIL.Image
import pytest
import torch

import lrpe_hf
from lrpe_hf import DgfnConfig, DgfnForImageSmoothing, DgfnImageProcessor, SmoothingPipeline


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DgfnForImageSmoothing(DgfnConfig.from_preset("tiny")).eval()


def test_processor_rescales_converts_and_never_resizes():
    proc = DgfnImageProcessor()
    rgb8 = np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    out = proc(PIL.Image.fromarray(rgb8), return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 13, 17) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255)
    gray16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    out = proc(gray16, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 2, 2)
    torch.testing.assert_close(out[0, 1], torch.from_numpy(gray16.astype(np.float32) / 65535))
    pil16 = PIL.Image.fromarray(gray16)  # mode I;16
    torch.testing.assert_close(proc(pil16, return_tensors="pt")["pixel_values"], out)
    rgba = PIL.Image.fromarray(np.dstack([rgb8, np.full((13, 17), 7, np.uint8)]))
    assert proc(rgba, return_tensors="pt")["pixel_values"].shape == (1, 3, 13, 17)
    chw = torch.rand(3, 9, 11)
    torch.testing.assert_close(proc(chw, return_tensors="pt")["pixel_values"][0], chw)
    gray_pil = PIL.Image.fromarray(rgb8[..., 0])
    assert proc([gray_pil, gray_pil], return_tensors="pt")["pixel_values"].shape == (2, 3, 13, 17)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.full((8, 8, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((8, 8, 5), np.uint8), "channels"),
        (np.zeros((8, 8), np.int64), "dtype"),
    ],
)
def test_processor_rejects_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        DgfnImageProcessor()(image, return_tensors="pt")


def test_processor_refuses_mixed_sizes_in_one_tensor_and_resizing():
    proc = DgfnImageProcessor()
    with pytest.raises(ValueError, match="different sizes"):
        proc([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)], return_tensors="pt")
    assert len(proc([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)])["pixel_values"]) == 2
    with pytest.raises(ValueError, match="never resizes"):
        proc(np.zeros((8, 8, 3), np.uint8), do_resize=True, size={"height": 4, "width": 4})


def test_processor_plus_model_user_flow(model, tmp_path):
    model.save_pretrained(tmp_path)
    DgfnImageProcessor().save_pretrained(tmp_path)
    from transformers import AutoImageProcessor, AutoModelForImageToImage

    m = AutoModelForImageToImage.from_pretrained(tmp_path)
    proc = AutoImageProcessor.from_pretrained(tmp_path)
    images = [PIL.Image.fromarray(np.random.default_rng(1).integers(0, 256, (23, 31, 3), dtype=np.uint8))] * 2
    out = m(**proc(images, return_tensors="pt"))
    assert out.reconstruction.shape == (2, 3, 23, 31)
    assert out.texture_map.shape == out.structure_map.shape == (2, 1, 23, 31)


def test_smoothing_pipeline_inputs_and_outputs(model, tmp_path):
    pipe = SmoothingPipeline(model)
    rgb = PIL.Image.fromarray(np.random.default_rng(2).integers(0, 256, (19, 27, 3), dtype=np.uint8))
    out = pipe(rgb)
    assert isinstance(out, PIL.Image.Image) and out.size == (27, 19) and out.mode == "RGB"
    gray = rgb.convert("L")
    assert pipe(gray).mode == "L"
    gray16 = (np.random.default_rng(3).random((10, 12)) * 65535).astype(np.uint16)
    res = pipe(gray16, return_maps=True)
    assert res["image"].mode.startswith("I;16") and res["image"].size == (12, 10)
    assert res["texture_map"].mode == "L" and res["structure_map"].size == (12, 10)
    path = tmp_path / "x.png"
    rgb.save(path)
    outs = pipe([str(path), np.asarray(rgb)])
    assert [o.size for o in outs] == [(27, 19), (27, 19)]
    np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))
    assert lrpe_hf.SmoothingPipeline is SmoothingPipeline


def _randomise_batchnorm(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for t, lo, hi in ((module.running_mean, -0.5, 0.5), (module.running_var, 0.5, 2.0),
                                  (module.weight, 0.5, 1.5), (module.bias, -0.2, 0.2)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


def test_fold_batchnorm_gives_the_same_outputs_and_leaves_the_model_alone(tmp_path):
    from lrpe_hf.models.dgfn import fold_batchnorm

    torch.manual_seed(0)
    config = DgfnConfig.from_preset("tiny", spn_batchnorm=True, filter_output_batchnorm=True,
                                    tpn_output_batchnorm=True, output_kernel_size=3, predict_residual=True)
    model = DgfnForImageSmoothing(config)
    _randomise_batchnorm(model)
    model.train()
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert norms == 4 + 1 + 5 + 3 + 1  # TPN branches + its output BN, SPN stages, filter hidden convs + output BN
    folded = fold_batchnorm(model)
    assert model.training and not folded.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == norms  # untouched
    model.eval()
    x = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        expected, got = model(pixel_values=x), folded(pixel_values=x)
    for name in ("reconstruction", "texture_map", "structure_map"):
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="inference-only copy"):
        folded.save_pretrained(tmp_path / "folded")
    assert not (tmp_path / "folded").exists()
    folded.train()
    with pytest.raises(ValueError, match="inference-only copy"):
        folded(pixel_values=x)


def test_pipeline_runs_a_folded_copy_and_follows_later_weight_changes():
    torch.manual_seed(0)
    model = DgfnForImageSmoothing(DgfnConfig.from_preset("tiny", predict_residual=True, output_kernel_size=3))
    _randomise_batchnorm(model)
    model.train()
    pipe = SmoothingPipeline(model)
    image = np.random.default_rng(4).random((20, 24, 3)).astype(np.float32)
    first = pipe.smooth(image).image
    # the user's model keeps its mode and memory layout
    assert model.training
    assert model.filter_network.out_conv.weight.is_contiguous()
    with torch.no_grad():
        model.eval()
        expected = model(pixel_values=torch.from_numpy(image).permute(2, 0, 1)[None]).reconstruction
        model.train()
    np.testing.assert_allclose(first, expected[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-5)
    with torch.no_grad():  # an in-place change, as an optimizer step makes: the pipeline sees it
        model.filter_network.out_conv.bias.add_(0.05)
    second = pipe.smooth(image).image
    assert np.abs(second - first).max() > 0.01
