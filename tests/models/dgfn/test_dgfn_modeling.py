import math

import pytest
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageToImage

import lrpe_hf  # noqa: F401  (registers the Auto classes)
from lrpe_hf import DgfnConfig, DgfnForImageSmoothing, DgfnImageProcessor
from lrpe_hf.models.dgfn import class_balanced_bce_with_logits


def tiny(**overrides):
    return DgfnConfig.from_preset("tiny", **overrides)


def make_model(**overrides):
    torch.manual_seed(0)
    return DgfnForImageSmoothing(tiny(**overrides))


def batch(b=2, h=21, w=34, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.rand(b, 3, h, w, generator=g),
        "labels": torch.rand(b, 3, h, w, generator=g),
        "texture_labels": torch.rand(b, 1, h, w, generator=g),
        "structure_labels": (torch.rand(b, 1, h, w, generator=g) > 0.85).float(),
    }


@pytest.mark.parametrize(
    "field, value",
    [
        ("tpn_resample", "bicubic"),
        ("filter_kernels", (7, 5, 4, 5)),
        ("filter_channels", (8, 0)),
        ("filter_kernels", (3, 3, 3)),  # one more kernel than filter_channels is needed
        ("filter_dilations", (1, 2)),
        ("filter_dilations", (1, 0, 1, 1)),
        ("filter_ssim_weight", -0.1),
        ("spn_stage_depths", (1, 1, 1)),
        ("loss_weight_tpn", -1.0),
        ("spn_width_multiplier", 0.0),
        ("tpn_scales", (1, 0)),
        ("padding_mode", "wrap"),
        ("output_kernel_size", 4),
        ("output_kernel_size", 1),
        ("output_kernel_dilation", 0),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DgfnConfig(**{field: value})


def test_presets_and_spec_parameter_counts():
    with pytest.raises(ValueError, match="preset"):
        DgfnConfig.from_preset("huge")
    model = DgfnForImageSmoothing(DgfnConfig())  # the reference layout
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.structure_network) == 14_716_171  # HED on VGG16
    # conv biases are dropped before BatchNorm: reference counts (7,969 / 73,027) minus those redundant biases
    assert count(model.texture_network) == 7_969 - 4 * (16 + 8 + 4)
    assert count(model.filter_network) == 73_027 - (64 + 32 + 16)
    with torch.no_grad():  # the full layout runs on an odd size too
        out = model.eval()(pixel_values=torch.rand(1, 3, 19, 21))
    assert out.reconstruction.shape == (1, 3, 19, 21) and 0 <= out.reconstruction.min() <= out.reconstruction.max() <= 1


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 16), (21, 34), (37, 3)])
def test_any_size_keeps_shape_and_ranges(size):
    model = make_model().eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = model(pixel_values=x)
    assert out.reconstruction.shape == x.shape
    assert out.texture_map.shape == out.structure_map.shape == (2, 1, *size)
    assert len(out.structure_side_outputs) == 5
    for t in (out.reconstruction, out.texture_map, out.structure_map, *out.structure_side_outputs):
        assert t.min() >= 0 and t.max() <= 1


def test_padding_is_cropped_not_leaked():
    """A pixel far outside the receptive field of the crop must not change; outputs depend on the image only."""
    model = make_model().eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        a = model(pixel_values=x).reconstruction
        b = model(pixel_values=x.clone()).reconstruction
    torch.testing.assert_close(a, b)


def test_residual_output_adds_to_the_image():
    model = make_model(predict_residual=True).eval()
    torch.nn.init.zeros_(model.filter_network.out_conv.weight)
    torch.nn.init.zeros_(model.filter_network.out_conv.bias)
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).reconstruction, x)


def test_dilated_deeper_filter_widens_the_receptive_field_at_equal_parameters():
    plain = dict(filter_channels=(6, 6, 6, 6), filter_kernels=(3, 3, 3, 3, 3))
    dilated = dict(plain, filter_dilations=(1, 2, 4, 2, 1))
    nets = {}
    for name, over in (("plain", plain), ("dilated", dilated)):
        model = make_model(**over).eval()
        nets[name] = model.filter_network
        with torch.no_grad():  # any size, including smaller than the dilated kernels, keeps its shape
            for size in ((1, 1), (5, 7), (33, 18)):
                assert model(pixel_values=torch.rand(1, 3, *size)).reconstruction.shape == (1, 3, *size)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(nets["plain"]) == count(nets["dilated"])
    nets["dilated"].load_state_dict(nets["plain"].state_dict())  # same weights: only the dilation differs
    # receptive radius: plain 5 * 1 = 5 px, dilated (1 + 2 + 4 + 2 + 1) = 10 px. A change 8 px away from the
    # centre pixel reaches it only through the dilated network.
    g = torch.Generator().manual_seed(0)
    image, tex, edge = torch.rand(1, 3, 33, 33, generator=g), torch.rand(1, 1, 33, 33, generator=g), torch.zeros(1, 1, 33, 33)
    moved = image.clone()
    moved[..., 16, 24] += 0.5
    with torch.no_grad():
        for name, reaches in (("plain", False), ("dilated", True)):
            net = nets[name]
            delta = (net(moved, tex, edge) - net(image, tex, edge))[..., 16, 16].abs().max()
            assert (delta > 0) == reaches, name


def test_kernel_predicting_output_smooths_a_flat_region_and_loads_into_a_plain_checkpoint(tmp_path):
    plain = make_model(predict_residual=True).eval()
    plain.save_pretrained(tmp_path / "plain")
    model = DgfnForImageSmoothing.from_pretrained(tmp_path / "plain", output_kernel_size=3).eval()
    assert model.config.output_kernel_size == 3 and plain.config.output_kernel_size == 0
    # only the new kernel-logit conv is new; it starts with 90 % of the weight on the centre tap
    torch.testing.assert_close(model.filter_network.out_conv.weight, plain.filter_network.out_conv.weight)
    x = torch.full((1, 3, 20, 20), 0.5)
    x[..., ::2, :] += 0.1  # a flat region with a stripe texture
    with torch.no_grad():
        before = plain(pixel_values=x).reconstruction
        after = model(pixel_values=x).reconstruction
        for size in ((1, 1), (5, 7), (33, 18)):  # any size keeps its shape
            assert model(pixel_values=torch.rand(1, 3, *size)).reconstruction.shape == (1, 3, *size)
    assert after.shape == x.shape
    # averaging over the neighbourhood lowers the stripes' amplitude: 0.9 centre + 0.1 spread over 8 taps
    assert after[..., 2:-2, 2:-2].std() < 0.95 * before[..., 2:-2, 2:-2].std()
    model.save_pretrained(tmp_path / "kernel")
    reloaded = DgfnForImageSmoothing.from_pretrained(tmp_path / "kernel").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=x).reconstruction, after)
    # the loss trains the kernel logits
    model.train()
    out = model(**batch())
    out.loss.backward()
    assert model.filter_network.kernel_conv.weight.grad.abs().sum() > 0


def test_ssim_term_of_the_filter_loss():
    from lrpe_hf.ops.image_quality import ssim

    model = make_model(filter_ssim_weight=0.25).train()
    inputs = batch()
    out = model(**inputs)
    mse = torch.nn.functional.mse_loss(out.reconstruction, inputs["labels"])
    torch.testing.assert_close(out.filter_loss, mse + 0.25 * (1 - ssim(out.reconstruction, inputs["labels"])))
    small = batch(h=5, w=9)
    with pytest.raises(ValueError, match="filter_ssim_weight=0.25 needs labelled images of at least 7x7"):
        model(**small)
    with torch.no_grad():  # without labels the size limit does not apply
        assert model.eval()(pixel_values=small["pixel_values"]).reconstruction.shape == (2, 3, 5, 9)


def test_class_balanced_bce_balances_and_stays_finite():
    target = (torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    logits = torch.zeros_like(target)  # bce = log 2 everywhere -> loss = mean_b 2 n+ n- / n^2 * log 2
    n = target[0].numel()
    pos = target.flatten(1).sum(1)
    expected = (2 * pos * (n - pos) / n**2 * math.log(2)).mean()
    torch.testing.assert_close(class_balanced_bce_with_logits(logits, target), expected)
    # all-negative target: finite (0), no NaN
    zero = class_balanced_bce_with_logits(torch.randn(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    assert torch.isfinite(zero) and zero == 0


def test_loss_is_the_weighted_sum_and_skips_absent_labels():
    model = make_model().train()
    inputs = batch()
    out = model(**inputs)
    cfg = model.config
    expected = cfg.loss_weight_filter * out.filter_loss + cfg.loss_weight_tpn * out.texture_loss + cfg.loss_weight_spn * out.structure_loss
    torch.testing.assert_close(out.loss, expected)
    # structure loss = 5 balanced sides + balanced fused map
    out2 = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"])
    assert out2.texture_loss is None and out2.structure_loss is None
    torch.testing.assert_close(out2.loss, cfg.loss_weight_filter * out2.filter_loss)
    out3 = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"], structure_labels=inputs["structure_labels"])
    assert out3.texture_loss is None
    torch.testing.assert_close(out3.loss, cfg.loss_weight_filter * out3.filter_loss + cfg.loss_weight_spn * out3.structure_loss)
    assert model(pixel_values=inputs["pixel_values"]).loss is None


def test_ground_truth_guidance_gives_tpn_and_spn_no_gradient():
    model = make_model().train()
    inputs = batch()
    out = model(**inputs, guidance="ground_truth")
    torch.testing.assert_close(out.texture_map, inputs["texture_labels"])
    torch.testing.assert_close(out.structure_map, inputs["structure_labels"])
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("texture_network", "structure_network")):
            assert p.grad is None, name
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.filter_network.parameters() if p.ndim > 1)
    with pytest.raises(ValueError, match="ground_truth"):
        model(pixel_values=inputs["pixel_values"], guidance="ground_truth")


def test_training_stages_freeze_and_restrict_the_loss():
    model = make_model().train()
    inputs = batch()
    model.set_training_stage("tpn")
    out = model(**inputs)
    assert out.reconstruction is None and out.structure_map is None
    torch.testing.assert_close(out.loss, model.config.loss_weight_tpn * out.texture_loss)
    assert all(not p.requires_grad for p in model.structure_network.parameters())
    model.set_training_stage("filter")  # defaults to ground-truth guidance
    out = model(**inputs)
    torch.testing.assert_close(out.structure_map, inputs["structure_labels"])
    assert out.texture_loss is None and out.structure_loss is None
    # the filter stage can also be trained on predicted (frozen) guidance: only the filter gets gradients
    model.zero_grad()
    out = model(**inputs, guidance="predicted")
    assert out.texture_loss is None and out.structure_loss is None and out.structure_side_outputs is not None
    out.loss.backward()
    assert all(p.grad is None for p in model.texture_network.parameters())
    assert all(p.grad is None for p in model.structure_network.parameters())
    with pytest.raises(ValueError, match="stage"):
        model.set_training_stage("everything")


@pytest.mark.parametrize(
    "pixels, match",
    [
        (torch.rand(1, 1, 8, 8), "channels"),
        (torch.rand(1, 4, 8, 8), "channels"),
        (torch.rand(3, 8, 8), r"\(batch, channels, height, width\)"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        (torch.full((1, 3, 8, 8), float("inf")), "NaN or infinite"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "floating point"),
        (torch.rand(1, 3, 8, 8) * 255, r"\[0, 1\].*rescale"),  # 0-255 floats gave a plausible, wrong result
        (torch.randn(1, 3, 8, 8) * 2, r"\[0, 1\].*normalise"),  # mean/std-normalised
    ],
)
def test_bad_pixel_values_raise_clear_errors(pixels, match):
    with pytest.raises(ValueError, match=match):
        make_model()(pixel_values=pixels)


def test_save_load_round_trip_is_exact_and_auto_classes_resolve(tmp_path):
    model = make_model().eval()
    # make BatchNorm statistics non-trivial so they must round-trip too
    model.train()
    model(pixel_values=torch.rand(2, 3, 16, 16))
    model.eval()
    model.save_pretrained(tmp_path)
    DgfnImageProcessor().save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert type(AutoConfig.from_pretrained(tmp_path)) is DgfnConfig
    loaded = AutoModelForImageToImage.from_pretrained(tmp_path).eval()
    assert type(loaded) is DgfnForImageSmoothing
    assert type(AutoModel.from_pretrained(tmp_path)) is DgfnForImageSmoothing
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is DgfnImageProcessor
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        assert torch.equal(a, b), k
    # non-persistent normalisation buffers are rebuilt, not left as garbage from meta-device loading
    torch.testing.assert_close(loaded.structure_network.input_mean, model.structure_network.input_mean)
    x = torch.rand(2, 3, 13, 29)
    with torch.no_grad():
        a, b = model(pixel_values=x), loaded(pixel_values=x)
    for name in ("reconstruction", "texture_map", "structure_map"):
        assert torch.equal(a[name], b[name]), name


def test_return_dict_false_gives_a_tuple():
    model = make_model().eval()
    out = model(pixel_values=torch.rand(1, 3, 16, 16), return_dict=False)
    assert isinstance(out, tuple) and out[0].shape == (1, 3, 16, 16)


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = batch(h=32, w=32)
    grads = []
    for checkpointing in (False, True):
        model = make_model().train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert all(stage.gradient_checkpointing for stage in model.structure_network.stages)
        model.zero_grad()
        model(**inputs).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_peft_lora_on_the_convolutions(tmp_path):
    peft = pytest.importorskip("peft")
    model = make_model(output_kernel_size=3, predict_residual=True)  # the small preset's kind of output
    # BatchNorm running statistics change while training and are not LoRA weights: save the norms with the adapter
    lora = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["conv", "out_conv", "kernel_conv"], lora_dropout=0.0,
                           modules_to_save=["norm"])
    peft_model = peft.get_peft_model(model, lora)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("filter_network.out_conv.lora_A" in n for n in trainable)
    assert any("filter_network.kernel_conv.lora_B" in n for n in trainable)
    assert any("structure_network.stages.0.convs.0.conv.lora_A" in n for n in trainable)
    inputs = batch(h=16, w=16)
    opt = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    first = None
    for _ in range(5):
        loss = peft_model(**inputs).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert peft_model(**inputs).loss.item() < first
    peft_model.eval()
    x = inputs["pixel_values"]
    with torch.no_grad():
        expected = peft_model(pixel_values=x).reconstruction
    peft_model.save_pretrained(tmp_path / "adapter")
    base = make_model(output_kernel_size=3, predict_residual=True)
    reloaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=x).reconstruction, expected)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(pixel_values=x).reconstruction, expected, atol=1e-5, rtol=1e-5)


def test_residual_filter_starts_as_the_identity():
    x = torch.rand(1, 3, 16, 24)
    model = DgfnForImageSmoothing(DgfnConfig.from_preset("small", output_kernel_size=0)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).reconstruction, x)
    # with the preset's kernel output it starts as a normalised 5x5 filter with 90 % on the centre tap: a flat image
    # passes unchanged, a textured one keeps its mean
    model = DgfnForImageSmoothing(DgfnConfig.from_preset("small")).eval()
    flat = torch.full((1, 3, 16, 24), 0.3)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=flat).reconstruction, flat)
        out = model(pixel_values=x).reconstruction
    assert 0 < (out - x).abs().max() < 0.1
    torch.testing.assert_close(out[..., 2:-2, 2:-2].mean(), x[..., 2:-2, 2:-2].mean(), atol=0.01, rtol=0)


def test_pixel_values_a_hair_outside_the_unit_range_are_accepted():
    x = torch.rand(1, 3, 8, 8)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = 1.005, -0.005  # interpolation overshoot
    make_model().eval()(pixel_values=x)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_gives_every_parameter_its_gradient(use_reentrant):
    # with use_reentrant=True the SPN stages, whose input (the image) needs no gradient, came out detached: 10 of
    # 47 parameters silently got none
    inputs = batch(h=16, w=16)
    model = make_model().train()
    model(**inputs).loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    model(**inputs).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], msg=name)


def test_output_flags_and_unknown_keyword_arguments_are_refused():
    model, x = make_model().eval(), torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="cannot return attentions"):
        model(pixel_values=x, output_attentions=True)
    with pytest.raises(ValueError, match="cannot return hidden_states"):
        model(pixel_values=x, output_hidden_states=True)
    model.config.output_hidden_states = True  # the config flag is not ignored either
    with pytest.raises(ValueError, match="cannot return hidden_states.*config"):
        model(pixel_values=x)
    model(pixel_values=x, output_hidden_states=False, output_attentions=False)  # explicit False overrides it
    model.config.output_hidden_states = False
    with pytest.raises(TypeError, match="'texture_label'"):  # a typo would silently drop the texture loss
        model(pixel_values=x, texture_label=torch.rand(1, 1, 16, 16))


def test_trainer_scales_the_loss_for_gradient_accumulation(tmp_path):
    # the losses are means that ignore num_items_in_batch: the Trainer must not pass it (it then skips its own
    # division by the accumulation steps, making accumulated gradients that many times too large)
    from transformers import Trainer, TrainingArguments

    trainer = Trainer(model=make_model(), args=TrainingArguments(output_dir=str(tmp_path), report_to=[]))
    assert trainer.model_accepts_loss_kwargs is False
    with pytest.raises(TypeError, match="num_items_in_batch"):
        make_model()(**batch(h=8, w=8), num_items_in_batch=8)
