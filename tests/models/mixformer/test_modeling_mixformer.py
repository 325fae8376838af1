"""MixFormer: config validation, image classifier, seq2seq generation with per-layer caches, Trainer, LoRA."""

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSeq2SeqLM,
    Trainer,
    TrainingArguments,
)

import lrpe_hf  # noqa: F401  (registers the model types)
from transformers import EncoderDecoderCache

from lrpe_hf.models.mixformer import (
    MixFormerConfig,
    MixFormerForConditionalGeneration,
    MixFormerImageModel,
    MixFormerModel,
    MixFormerSeq2SeqModel,
)
from lrpe_hf.models.modeling_common import CACHE_NAME

MIXED = ["cosformer", "softmax", "softmax_relative", "lrpe"]


def image_config(**kw):
    base = dict(hidden_size=32, num_hidden_layers=4, head_dim=8, image_size=16, patch_size=4, num_labels=5,
                **MixFormerConfig.variant_kwargs(MIXED), layer_ffn_dim=[64, 48, 32, 64], layer_num_heads=[4, 2, 3, 4])
    base.update(kw)
    return AutoConfig.for_model("mixformer", **base)


def seq2seq_config(**kw):
    base = dict(is_encoder_decoder=True, vocab_size=40, hidden_size=32, num_hidden_layers=2, head_dim=8,
                **MixFormerConfig.variant_kwargs(["cosformer", "lrpe"]), layer_ffn_dim=[64, 48], layer_num_heads=[4, 2],
                decoder_layers=4,
                **MixFormerConfig.variant_kwargs(["softmax", "cosformer", "softmax_relative", "lrpe"], decoder=True),
                decoder_layer_ffn_dim=[32, 48, 32, 64], decoder_layer_num_heads=[2, 4, 4, 2],
                pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, max_position_embeddings=48)
    base.update(kw)
    return AutoConfig.for_model("mixformer", **base)


def random_seq2seq(seed=0, **kw):
    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_config(seq2seq_config(**kw)).eval()
    with torch.no_grad():  # larger weights than the init: a random model that does not repeat one token
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model


def source_batch():
    torch.manual_seed(1)
    ids = torch.randint(3, 40, (2, 7))
    mask = torch.ones_like(ids)
    ids[1, 5:], mask[1, 5:] = 0, 0  # sample 1 is right-padded
    return ids, mask


# --------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_hidden_layers=3, layer_attention_type=["softmax"] * 2),
         "layer_attention_type has 2 entries but num_hidden_layers=3"),
        (dict(num_hidden_layers=1, layer_attention_type=["linear"], layer_position_encoding=["relative_key"]),
         r"layer_position_encoding\[0\]='relative_key' is not defined for linear attention"),
        (dict(num_hidden_layers=1, layer_position_encoding=["spiral"]), r"layer_position_encoding\[0\]='spiral'"),
        (dict(num_hidden_layers=2, layer_attention=["softmax", "flash"]),
         r"layer_attention\[1\]='flash' is not an attention variant"),
        (dict(num_hidden_layers=1, layer_attention=["lrpe"], layer_attention_type=["linear"]), "not both"),
        (dict(num_hidden_layers=2, layer_ffn_dim=[64]), "layer_ffn_dim has 1 entries"),
        (dict(num_hidden_layers=2, layer_num_heads=[2, 2, 2]), "layer_num_heads has 3 entries"),
        (dict(num_hidden_layers=2, layer_attention_type=["softmax", "flash"]), r"layer_attention_type\[1\]='flash'"),
        (dict(num_hidden_layers=2, layer_ffn_dim=[64, 0]), r"layer_ffn_dim\[1\] must be a positive int"),
        (dict(num_hidden_layers=1, layer_num_heads=[2.5]), r"layer_num_heads\[0\]"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(pooling="max"), "pooling='max'"),
        (dict(pooling="cls", use_cls_token=False), "use_cls_token"),
        (dict(image_size=30, patch_size=16), "multiple of patch_size"),
        (dict(lrpe_core="spiral"), "lrpe_core='spiral'"),
        (dict(is_encoder_decoder=True, num_hidden_layers=2, decoder_layers=3, decoder_layer_attention_type=["softmax"]),
         "decoder_layer_attention_type has 1 entries but decoder_layers=3"),
        (dict(activation="tanh"), "activation='tanh'"),
    ],
)
def test_config_rejects_bad_layer_lists_and_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixFormerConfig(**kwargs)


def test_config_of_lrpe_hf_0_2_loads_as_the_same_layers(tmp_path):
    """config.json files written before the one vocabulary named each layer's variant in ``layer_attention`` and the
    LRPE feature map ``lrpe_feature_map``; they load as the same (attention type, encoding) pairs and re-save in the
    new fields only."""
    import json

    old = {"model_type": "mixformer", "hidden_size": 32, "num_hidden_layers": 4, "head_dim": 8, "image_size": 16,
           "patch_size": 4, "layer_attention": MIXED, "layer_ffn_dim": [64, 48, 32, 64],
           "layer_num_heads": [4, 2, 3, 4], "decoder_layer_attention": None, "lrpe_feature_map": "1+elu"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = AutoConfig.from_pretrained(tmp_path)
    assert cfg.layer_variants() == MIXED and cfg.feature_map is None
    cfg.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert "layer_attention" not in saved and "lrpe_feature_map" not in saved
    assert saved["layer_position_encoding"] == ["cosformer", "nope", "relative_key", "lrpe"]
    with pytest.raises(ValueError, match="lrpe_feature_map='relu' applied to the LRPE layers only"):
        MixFormerConfig.from_dict({**old, "lrpe_feature_map": "relu"})


def test_config_round_trip_and_defaults(tmp_path):
    cfg = image_config()
    cfg.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path)
    assert again.layer_variants() == MIXED and again.layer_num_heads == [4, 2, 3, 4]
    assert again.layer_attention_type == ["linear", "softmax", "softmax", "linear"]
    assert again.layer_position_encoding == ["cosformer", "nope", "relative_key", "lrpe"]
    assert again.max_position_embeddings == 17  # 4x4 patches + CLS (cosFormer's fixed M)
    s2s = MixFormerConfig(is_encoder_decoder=True, num_hidden_layers=2,
                          **MixFormerConfig.variant_kwargs(["lrpe", "softmax"]))
    assert s2s.layer_variants(decoder=True) == ["lrpe", "softmax"] and s2s.decoder_layers == 2
    assert s2s.use_cache is True


# --------------------------------------------------------------------------------------------------- image side
def test_image_classifier_forward_save_load_and_auto_model(tmp_path):
    model = AutoModelForImageClassification.from_config(image_config()).eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(pixel_values=x, labels=torch.tensor([1, 4]))
    assert out.logits.shape == (2, 5) and torch.isfinite(out.loss)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, torch.tensor([1, 4])))
    model.save_pretrained(tmp_path)
    again = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(again(pixel_values=x).logits, out.logits)
    backbone = AutoModel.from_pretrained(tmp_path).eval()
    hidden = backbone(pixel_values=x, output_hidden_states=True)
    assert hidden.last_hidden_state.shape == (2, 17, 32) and len(hidden.hidden_states) == 5
    # mean over the patch tokens only (CLS excluded), after the final LayerNorm
    assert torch.allclose(hidden.pooler_output, hidden.last_hidden_state[:, 1:].mean(1))
    assert isinstance(model(pixel_values=x, return_dict=False), tuple)


def test_released_causal_cosformer_quirk_is_opt_in():
    """cosformer_causal=True reproduces the released ViT: the CLS token then never sees the patches."""
    x1, x2 = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    for causal in (True, False):
        torch.manual_seed(0)
        model = AutoModel.from_config(image_config(**MixFormerConfig.variant_kwargs(["cosformer"] * 4), cosformer_causal=causal)).eval()
        c1 = model(pixel_values=x1).last_hidden_state[:, 0]
        c2 = model(pixel_values=x2).last_hidden_state[:, 0]
        assert torch.allclose(c1, c2, atol=1e-6) == causal


def test_tokens_are_scaled_by_sqrt_d_before_positions():
    torch.manual_seed(0)
    model = AutoModel.from_config(image_config()).eval()
    emb = model.embeddings
    x = torch.randn(1, 3, 16, 16)
    patches, _ = emb.patch_embeddings(x)
    tokens = torch.cat((emb.cls_token, patches), 1) * 32**0.5 + emb.position_embeddings
    assert torch.allclose(emb(x)[0], tokens, atol=1e-6)


def test_image_bad_inputs():
    model = AutoModelForImageClassification.from_config(image_config()).eval()
    with pytest.raises(ValueError, match="channels"):
        model(pixel_values=torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="positions"):
        model(pixel_values=torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="pixel_values"):
        model()
    with pytest.raises(ValueError, match="is_encoder_decoder=True"):
        MixFormerForConditionalGeneration(image_config())


class _TensorDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _train(model, dataset, steps, tmp_path, lr=3e-3):
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=lr, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1000,
                             disable_tqdm=True, seed=0)
    Trainer(model=model, args=args, train_dataset=dataset).train()


def test_trainer_lowers_image_loss(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(16, 3, 16, 16)
    y = torch.randint(0, 5, (16,))
    data = _TensorDataset([{"pixel_values": x[i], "labels": y[i]} for i in range(16)])
    model = AutoModelForImageClassification.from_config(image_config())
    with torch.no_grad():
        before = model.eval()(pixel_values=x, labels=y).loss.item()
    _train(model, data, 20, tmp_path)
    with torch.no_grad():
        after = model.eval()(pixel_values=x, labels=y).loss.item()
    assert after < 0.7 * before, (before, after)


def test_lora_on_image_classifier(tmp_path, lora_train_save_reload):
    lora, x, out = lora_train_save_reload(lambda: AutoModelForImageClassification.from_config(image_config()),
                                          ["q_proj", "v_proj"], 5, tmp_path)
    merged = lora.merge_and_unload().eval()
    assert torch.allclose(merged(pixel_values=x).logits, out, atol=1e-5)


# --------------------------------------------------------------------------------------------------- seq2seq side
def test_seq2seq_loss_does_not_shift_labels():
    model = random_seq2seq()
    ids, mask = source_batch()
    labels = torch.randint(3, 40, (2, 6))
    labels[1, 4:] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    ref = F.cross_entropy(out.logits.reshape(-1, 40), labels.reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, ref)
    # decoder inputs built from the labels are [start, y_0, ..., y_{n-2}] (pad for -100)
    dec = torch.cat((torch.ones(2, 1, dtype=torch.long), labels[:, :-1].masked_fill(labels[:, :-1] == -100, 0)), 1)
    explicit = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
    assert torch.allclose(explicit, out.logits, atol=1e-6)


def test_prefix_then_cached_steps_equal_full_decoder_forward():
    model = random_seq2seq()
    ids, mask = source_batch()
    dec = torch.randint(3, 40, (2, 9))
    dec[:, 0] = 1
    full = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False).logits
    out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec[:, :4], use_cache=True)
    cache, logits = getattr(out, CACHE_NAME), [out.logits]
    assert isinstance(cache, EncoderDecoderCache) and cache.get_seq_length() == 4
    self_layers = cache.self_attention_cache.layers  # Transformers' own layers: a state for linear, K/V for softmax
    assert hasattr(self_layers[1], "recurrent_states") and self_layers[0].keys.shape[2] == 4
    assert cache.cross_attention_cache.layers[0].keys.shape[2] == ids.shape[1]  # encoder K/V, computed once
    for t in range(4, 9):
        out = model(encoder_outputs=(out.encoder_last_hidden_state,), attention_mask=mask,
                    decoder_input_ids=dec[:, t : t + 1], cache=cache)
        logits.append(out.logits)
    assert torch.allclose(torch.cat(logits, 1), full, atol=1e-5)


@pytest.mark.parametrize("gen_kwargs", [dict(), dict(num_beams=3), dict(num_beams=3, num_return_sequences=2)])
def test_generate_cached_equals_uncached(gen_kwargs):
    model = random_seq2seq()
    ids, mask = source_batch()
    kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False, no_repeat_ngram_size=1,
              **gen_kwargs)
    cached = model.generate(use_cache=True, **kw)
    uncached = model.generate(use_cache=False, **kw)
    assert torch.equal(cached, uncached)
    assert len(set(cached[0, 1:].tolist())) > 3  # a real sequence, not one repeated token


def test_encoder_padding_does_not_change_generation():
    model = random_seq2seq()
    ids, mask = source_batch()
    batched = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, no_repeat_ngram_size=1,
                             num_beams=2)
    alone = model.generate(input_ids=ids[1:, :5], max_new_tokens=8, no_repeat_ngram_size=1, num_beams=2)
    assert torch.equal(batched[1:, : alone.shape[1]], alone)


def test_seq2seq_save_load_generate_identical_and_tied_embeddings(tmp_path):
    model = random_seq2seq()
    ids, mask = source_batch()
    before = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=2)
    model.save_pretrained(tmp_path)
    again = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert again.lm_head.weight.data_ptr() == again.mixformer.shared.weight.data_ptr()
    shared = again.mixformer.shared.weight
    assert again.mixformer.encoder.embed_tokens.weight is shared and again.mixformer.decoder.embed_tokens.weight is shared
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:  # one embedding, stored once
        assert not any("embed_tokens" in k or "lm_head" in k for k in f.keys())
    assert torch.equal(again.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=2), before)


def test_untied_head_still_shares_one_token_table_between_encoder_and_decoder(tmp_path):
    """tie_word_embeddings=False unties the LM head only: the encoder and decoder read one table, as they always did
    (checkpoints of such configs hold mixformer.shared.weight and lm_head.weight, nothing else)."""
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(seq2seq_config(tie_word_embeddings=False)).eval()
    shared = model.mixformer.shared.weight
    assert model.mixformer.encoder.embed_tokens.weight is shared and model.mixformer.decoder.embed_tokens.weight is shared
    assert model.lm_head.weight is not shared
    model.save_pretrained(tmp_path)
    again, info = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids, mask = source_batch()
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(input_ids=ids, attention_mask=mask, decoder_input_ids=ids).logits,
                                   model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids).logits)


def test_automodel_builds_the_backbone_the_config_asks_for():
    image = AutoModel.from_config(image_config())
    text = AutoModel.from_config(seq2seq_config())
    assert isinstance(image, MixFormerImageModel) and isinstance(image, MixFormerModel)
    assert isinstance(text, MixFormerSeq2SeqModel) and isinstance(text, MixFormerModel)
    assert (image.main_input_name, text.main_input_name) == ("pixel_values", "input_ids")
    assert "MixFormerDecoderLayer" not in image._no_split_modules
    with pytest.raises(ValueError, match="is_encoder_decoder=True"):
        MixFormerSeq2SeqModel(image_config())


def test_untied_output_projection_round_trips(tmp_path):
    model = random_seq2seq(tie_word_embeddings=False)
    assert model.lm_head.weight.data_ptr() != model.mixformer.shared.weight.data_ptr()
    ids, mask = source_batch()
    model.save_pretrained(tmp_path)
    again = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    dec = torch.ones(2, 3, dtype=torch.long)
    assert torch.equal(again(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits,
                       model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits)


def test_sampling_and_prompt_lookup_decoding():
    model = random_seq2seq()
    ids, mask = source_batch()
    torch.manual_seed(0)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=True,
                         num_return_sequences=3)
    assert out.shape[0] == 6
    kw = dict(input_ids=ids[:1], attention_mask=mask[:1], max_new_tokens=5, do_sample=False)
    assert torch.equal(model.generate(**kw), model.generate(**kw, prompt_lookup_num_tokens=2))


def test_trainer_lowers_seq2seq_loss(tmp_path):
    torch.manual_seed(0)
    src = torch.randint(3, 40, (16, 6))
    data = _TensorDataset([{"input_ids": src[i], "attention_mask": torch.ones(6, dtype=torch.long),
                            "labels": src[i].flip(0)} for i in range(16)])
    model = AutoModelForSeq2SeqLM.from_config(seq2seq_config())
    batch = dict(input_ids=src, labels=src.flip(1))
    with torch.no_grad():
        before = model.eval()(**batch).loss.item()
    _train(model, data, 25, tmp_path, lr=5e-3)
    with torch.no_grad():
        after = model.eval()(**batch).loss.item()
    assert after < 0.8 * before, (before, after)


def test_seq2seq_bad_inputs():
    model = random_seq2seq()
    ids, mask = source_batch()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=torch.randint(3, 40, (1, 60)), decoder_input_ids=torch.ones(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="not pixel_values"):
        model.mixformer(pixel_values=torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="EncoderDecoderCache"):
        model(input_ids=ids, decoder_input_ids=ids[:, :1], cache=object())


def test_standard_head_count_field_sets_every_layer():
    """AutoConfig.for_model("mixformer", num_attention_heads=4, ...) used to raise AttributeError (no setter)."""
    from transformers import AutoConfig

    cfg = AutoConfig.for_model("mixformer", num_attention_heads=4, hidden_size=32, head_dim=8, num_hidden_layers=2,
                               is_encoder_decoder=True, decoder_layers=3, vocab_size=20, pad_token_id=0)
    assert cfg.layer_num_heads == [4, 4] and cfg.decoder_layer_num_heads == [4, 4, 4] and cfg.num_attention_heads == 4
    with pytest.raises(ValueError, match="layer_num_heads"):
        MixFormerConfig(num_attention_heads=4, layer_num_heads=[2, 2], num_hidden_layers=2)
    with pytest.raises(ValueError, match="layer_num_heads"):
        cfg.num_attention_heads = 8
    with pytest.raises(ValueError, match="layer_attention_type"):
        cfg.uses_linear_attention = True
    reloaded = MixFormerConfig.from_dict(cfg.to_dict())
    assert reloaded.layer_num_heads == [4, 4]


def test_out_of_vocabulary_ids_and_labels_are_named():
    model = random_seq2seq()
    ids, mask = source_batch()
    bad = ids.clone()
    bad[0, 0] = 40  # vocab_size is 40
    with pytest.raises(ValueError, match="input_ids must lie in"):
        model(input_ids=bad, attention_mask=mask, decoder_input_ids=ids[:, :2])
    with pytest.raises(ValueError, match="labels must lie in"):
        model(input_ids=ids, attention_mask=mask, labels=bad)
    labels = ids.clone()
    labels[:, -2:] = -100  # ignored positions are fine
    assert torch.isfinite(model(input_ids=ids, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("algorithm,chunk", [("chunked", 3), ("parallel", 64), ("recurrent", 64)])
def test_linear_layers_take_chunk_size_and_algorithm_with_the_same_outputs(algorithm, chunk):
    """The causal linear layers (the decoder's cosFormer and LRPE, a causal cosFormer in the encoder) run any
    algorithm and chunk length of ops.linear_attention; chunks of 3 put boundaries inside the 9-token inputs."""
    ids = torch.randint(3, 40, (2, 9), generator=torch.Generator().manual_seed(1))
    logits = {}
    for key, kw in (("reference", {}), ("other", dict(chunk_size=chunk, attention_algorithm=algorithm))):
        model = random_seq2seq(seed=0, cosformer_causal=True, **kw)
        layer = model.mixformer.decoder.layers[1].self_attn
        assert (layer.chunk_size, layer.algorithm) == ((chunk, algorithm) if kw else (64, "chunked"))
        with torch.no_grad():
            logits[key] = model(input_ids=ids, decoder_input_ids=ids).logits
    torch.testing.assert_close(logits["other"], logits["reference"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="MixFormerConfig.attention_algorithm='fast'"):
        seq2seq_config(attention_algorithm="fast")
