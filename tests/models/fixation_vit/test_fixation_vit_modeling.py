import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

import lrpe_hf  # noqa: F401 - registers the Auto classes
from lrpe_hf.layers.fixation import FixationAttention
from lrpe_hf.models.fixation_vit import FixationViTConfig, FixationViTForVideoClassification, FixationViTModel
from lrpe_hf.models.fixation_vit.convert import convert_state_dict, load_converted
from tests.hf_common import restore_device_constructors
from tiny import tiny_config


def _video(batch=2, frames=4, size=32, channels=3, seed=0):
    return torch.randn(batch, frames, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_official_defaults_parameter_counts_and_eps():
    config = AutoConfig.for_model("fixation_vit", num_labels=174)
    assert config.grid_size == 17 and config.num_time_embeddings == 8 and config.tile_time_embeddings
    model = AutoModelForVideoClassification.from_config(config)
    assert isinstance(model, FixationViTForVideoClassification)
    assert sum(p.numel() for p in model.parameters()) == 51_919_278  # measured on the official modules
    assert sum(p.numel() for p in model.fixation_vit.parameters()) == 51_390_464
    # LayerNorm eps mix-ups are invisible in the fixtures: check them directly
    assert model.fixation_vit.embeddings.layernorm.eps == 1e-5
    assert model.classifier.layernorm.eps == 1e-5
    assert model.fixation_vit.layernorm.eps == 1e-6
    layer = model.fixation_vit.layer[0]
    assert {layer.temporal_layernorm.eps, layer.spatial_layernorm.eps, layer.mlp_layernorm.eps} == {1e-6}
    assert layer.spatial_attention.feature_map_offset == pytest.approx(64**-0.5)


def test_fixation_parameter_delta_and_shifts_are_parameter_free():
    base = FixationViTModel(tiny_config())
    no_gate = FixationViTModel(tiny_config(use_feature_fixation=False))
    d, depth = 16, 2
    delta = sum(p.numel() for p in base.parameters()) - sum(p.numel() for p in no_gate.parameters())
    assert delta == 2 * depth * (3 * d * d + d)
    separate = FixationViTModel(tiny_config(share_fixation_gate=False))
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in base.parameters()) == delta
    no_shift = FixationViTModel(tiny_config(temporal_shift=False, spatial_shift=False))
    assert set(no_shift.state_dict()) == set(base.state_dict())
    no_shift.load_state_dict(base.state_dict())  # one checkpoint loads under either setting


def test_output_shapes_and_frame_major_hidden_state():
    config = tiny_config()
    model = FixationViTForVideoClassification(config).eval()
    out = model(pixel_values=_video(), labels=torch.tensor([0, 2]), output_hidden_states=True)
    assert out.logits.shape == (2, 3) and out.loss.ndim == 0
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    base = model.fixation_vit(pixel_values=_video())
    assert base.last_hidden_state.shape == (2, 4 * 16, 32)
    assert base.pooler_output.shape == (2, 32)
    # frame-major: the tokens of frame t are rows [t * N, (t + 1) * N) of the flattened (B * T, N, D) tokens
    with torch.no_grad():
        tokens, h, w = model.fixation_vit.embeddings(_video())
        for layer in model.fixation_vit.layer:
            tokens = layer(tokens, batch_size=2, height=h, width=w)[0]
        tokens = model.fixation_vit.layernorm(tokens)
    assert (h, w) == (4, 4)
    torch.testing.assert_close(base.last_hidden_state, tokens.reshape(2, 4 * 16, 32))
    assert model(pixel_values=_video(), return_dict=False)[0].shape == (2, 3)


def test_multilabel_and_regression_losses():
    model = FixationViTForVideoClassification(tiny_config(problem_type="multi_label_classification"))
    out = model(pixel_values=_video(), labels=torch.tensor([[1.0, 0, 1], [0, 0, 1]]))
    assert out.loss.ndim == 0


def test_linear_attention_equals_explicit_row_normalised_form_without_gate_or_shift():
    torch.manual_seed(0)
    attn = FixationAttention(32, 2, use_fixation=False).eval()
    x = torch.randn(3, 7, 32)
    out, probs = attn(x, output_attentions=True)
    q, k, v = attn.qkv(x).chunk(3, -1)
    heads = lambda t: t.view(3, 7, 2, 16).transpose(1, 2)  # noqa: E731
    phi = lambda t: torch.relu(t) + 16**-0.5  # noqa: E731
    scores = phi(heads(q)) @ phi(heads(k)).transpose(-1, -2)
    assert scores.min() >= 1.0 - 1e-6  # every pair gets at least weight 1 without fixation
    ref = (scores / scores.sum(-1, keepdim=True)) @ heads(v)
    ref = attn.out_proj(ref.transpose(1, 2).reshape(3, 7, 32))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 2, 7), atol=1e-5, rtol=0)


def test_gate_output_in_unit_interval_and_fixation_changes_output():
    torch.manual_seed(0)
    attn = FixationAttention(32, 2).eval()
    gate_in = torch.randn(5, 2, 7, 48) * 3
    r = attn.fixation_gate(gate_in)
    assert r.shape == (5, 2, 7, 16) and r.min() > 0 and r.max() < 1
    plain = FixationAttention(32, 2, use_fixation=False).eval()
    plain.load_state_dict(attn.state_dict(), strict=False)
    x = torch.randn(2, 7, 32)
    assert (attn(x)[0] - plain(x)[0]).abs().max() > 1e-4  # the gate re-weights q and k


@pytest.mark.parametrize("overrides", [
    dict(attention_type="softmax"), dict(share_fixation_gate=False), dict(fixation_inputs="qk"),
    dict(temporal_shift_segment=2, temporal_shift_div=8), dict(use_mlp_dwconv=False), dict(drop_path_rate=0.1),
])
def test_ablation_switches_run_and_train(overrides):
    model = FixationViTForVideoClassification(tiny_config(**overrides))
    out = model(pixel_values=_video(), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_softmax_attention_probs_rows_sum_to_one():
    model = FixationViTModel(tiny_config(attention_type="softmax")).eval()
    out = model(pixel_values=_video(), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (8, 2, 16, 16)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(8, 2, 16))


def test_time_embedding_tiling():
    model = FixationViTModel(tiny_config(num_time_embeddings=2, num_frames=4)).eval()
    with torch.no_grad():
        model.embeddings.time_embeddings.normal_()
    frame = _video(batch=1, frames=1)
    clip = frame.expand(1, 4, 3, 32, 32)  # the same frame four times
    tokens, _, _ = model.embeddings(clip)
    torch.testing.assert_close(tokens[0], tokens[2])  # frames t and t + 2 share a slot
    torch.testing.assert_close(tokens[1], tokens[3])
    assert not torch.allclose(tokens[0], tokens[1])


def test_save_load_round_trip_is_exact(tmp_path):
    model = FixationViTForVideoClassification(tiny_config()).eval()
    with torch.no_grad():
        model.fixation_vit.embeddings.time_embeddings.normal_()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    video = _video()
    assert torch.equal(model(pixel_values=video).logits, loaded(pixel_values=video).logits)
    backbone = AutoModel.from_pretrained(tmp_path)
    assert isinstance(backbone, FixationViTModel)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = FixationViTForVideoClassification(tiny_config(token_dropout=0.0, classifier_dropout=0.0))
    video, labels = _video(), torch.tensor([0, 1])
    model.train()
    model(pixel_values=video, labels=labels).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert model.fixation_vit.layer[0].gradient_checkpointing
    model(pixel_values=video, labels=labels).loss.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], atol=1e-6, rtol=1e-5)


def test_peft_lora_on_attention_and_mlp_with_classifier_saved(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model = FixationViTForVideoClassification(tiny_config())
    base_weights = {k: v.clone() for k, v in model.state_dict().items()}
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=r".*fixation_vit\..*\.(qkv|out_proj|fc1|fc2)",
                      modules_to_save=["classifier"])
    peft_model = get_peft_model(model, lora)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n and "temporal_attention.qkv" in n for n in trainable)
    assert any("lora_A" in n and "mlp.fc2" in n for n in trainable)
    assert any("classifier" in n and "modules_to_save" in n for n in trainable)
    assert not any("patch_embeddings" in n or "lora_A" in n and "classifier" in n for n in trainable)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    video, labels = _video(), torch.tensor([0, 1])
    peft_model.eval()
    before = peft_model(pixel_values=video).logits
    peft_model.train()
    for _ in range(2):
        peft_model(pixel_values=video, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    peft_model.eval()
    expected = peft_model(pixel_values=video).logits
    assert (expected - before).abs().max() > 1e-4
    peft_model.save_pretrained(tmp_path / "adapter")
    fresh = FixationViTForVideoClassification(tiny_config())
    fresh.load_state_dict(base_weights)
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    torch.testing.assert_close(reloaded(pixel_values=video).logits, expected, atol=1e-6, rtol=1e-6)
    merged = reloaded.merge_and_unload().eval()
    torch.testing.assert_close(merged(pixel_values=video).logits, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ bad input
def test_wrong_rank_and_channels_are_refused():
    model = FixationViTForVideoClassification(tiny_config())
    with pytest.raises(ValueError, match=r"\(batch, frames, channels, height, width\)"):
        model(pixel_values=torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="multiview_logits"):
        model(pixel_values=torch.zeros(1, 2, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="1 channels"):
        model(pixel_values=torch.zeros(1, 4, 1, 32, 32))


def test_frames_beyond_temporal_table_refused_unless_tiling():
    with pytest.raises(ValueError, match="num_frames"):
        tiny_config(num_frames=8, num_time_embeddings=4, tile_time_embeddings=False)
    model = FixationViTModel(tiny_config(tile_time_embeddings=False))
    with pytest.raises(ValueError, match="8 frames but the temporal embedding has 4 slots"):
        model(pixel_values=_video(frames=8))
    FixationViTModel(tiny_config())(pixel_values=_video(frames=8))  # tiling (default) covers it


def test_image_size_too_small_for_spatial_shift():
    with pytest.raises(ValueError, match="image_size=8 .*1x1 token grid"):
        tiny_config(image_size=8)
    tiny_config(image_size=8, spatial_shift=False)
    model = FixationViTModel(tiny_config())
    with pytest.raises(ValueError, match="1x1 token grid"):
        model(pixel_values=_video(size=8))


@pytest.mark.parametrize("field,value,match", [
    ("attention_type", "flash", "attention_type"), ("fixation_inputs", "v", "fixation_inputs"),
    ("hidden_size", 33, "num_attention_heads"), ("temporal_shift_segment", 3, "temporal_shift_segment"),
    ("spatial_shift_size", 2, "spatial_shift_size"), ("token_dropout", 1.5, "token_dropout"),
    ("hidden_act", "nope", "hidden_act"),
])
def test_config_validation_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**{field: value})


def test_bad_checkpoint_keys_are_listed():
    model = FixationViTForVideoClassification(tiny_config())
    good = {"base_model.temp_embed": torch.zeros(1, 4, 1, 32)}
    with pytest.raises(ValueError, match=r"base_model\.blocks\.0\.attn\.foo\.weight"):
        convert_state_dict({**good, "base_model.blocks.0.attn.foo.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing=.*layer.0.temporal_attention.qkv.weight"):
        load_converted(model, convert_state_dict({"state_dict": good}))
    with pytest.raises(ValueError, match="not a tensor"):
        convert_state_dict({"epoch": 3, "base_model.norm.weight": torch.zeros(32)})


# ------------------------------------------------------------------ found by Transformers' common tests
def test_builds_on_the_meta_device_with_linear_stochastic_depth():
    restore_device_constructors()  # else an earlier from_pretrained in this process can hide the failure
    with torch.device("meta"):  # from_pretrained builds here; a tensor read in __init__ raised
        meta = FixationViTForVideoClassification(tiny_config(num_hidden_layers=3, drop_path_rate=0.2))
    assert meta.fixation_vit.layernorm.weight.is_meta
    assert [layer.drop_path.drop_prob for layer in meta.fixation_vit.layer] == pytest.approx([0.0, 0.1, 0.2])


@pytest.mark.parametrize("attention_type", ["linear", "softmax"])
def test_hidden_states_and_attention_maps_are_on_the_gradient_path(attention_type):
    torch.manual_seed(0)
    model = FixationViTForVideoClassification(tiny_config(attention_type=attention_type)).eval()
    video = _video()
    out = model(pixel_values=video, output_hidden_states=True, output_attentions=True)
    for t in (*out.hidden_states, *out.attentions):
        t.retain_grad()
    out.logits.sum().backward()
    # gradient-based attribution needs the tensors the model computes with, not copies made on the side
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in out.hidden_states)
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in out.attentions)
    with torch.no_grad():  # computing the output through the maps changes it by rounding only
        torch.testing.assert_close(out.logits, model(pixel_values=video).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.hidden_states[-1], model(pixel_values=video, output_hidden_states=True)
                                   .hidden_states[-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_enable_input_require_grads_with_a_frozen_backbone_and_checkpointing(use_reentrant):
    # what PEFT does for adapters with gradient checkpointing: the embedding output must be a tensor it can mark
    model = FixationViTForVideoClassification(tiny_config()).train()
    model.requires_grad_(False)
    trained = model.fixation_vit.layer[0].spatial_attention.qkv.weight
    trained.requires_grad_(True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    model.enable_input_require_grads()
    model(pixel_values=_video(), labels=torch.tensor([0, 1])).loss.backward()
    assert trained.grad is not None and trained.grad.abs().sum() > 0


def test_unknown_keyword_arguments_are_refused_by_name():
    video = _video()
    backbone = FixationViTModel(tiny_config())
    with pytest.raises(TypeError, match="'past_key_values'"):
        backbone(pixel_values=video, past_key_values=None)
    model = FixationViTForVideoClassification(tiny_config())
    with pytest.raises(TypeError, match="'label'"):  # a typo of labels would silently give no loss
        model(pixel_values=video, label=torch.tensor([0, 1]))
    # what the Trainer passes is accepted and used by the loss
    out = model(pixel_values=video, labels=torch.tensor([0, 1]), num_items_in_batch=torch.tensor(2))
    assert out.loss.ndim == 0


def test_empty_batch_is_refused_naming_pixel_values():
    model = FixationViTForVideoClassification(tiny_config())
    with pytest.raises(ValueError, match="pixel_values is empty"):
        model(pixel_values=torch.zeros(0, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="pixel_values is empty"):
        model(pixel_values=torch.zeros(2, 0, 3, 32, 32))
