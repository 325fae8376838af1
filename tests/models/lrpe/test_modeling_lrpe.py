"""LrpeModel and heads: shapes, cache equivalence, save/load, padding awareness, classification, bad input."""

import json

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    DynamicCache,
)

import lrpe_hf  # noqa: F401
from lrpe_hf.layers.position_encoding import PositionEncoding
from lrpe_hf.models.lrpe import (
    PRESETS,
    LrpeConfig,
    LrpeForCausalLM,
    LrpeForMaskedLM,
    LrpeForSequenceClassification,
    LrpeModel,
)
from lrpe_hf.models.modeling_common import CACHE_NAME

VOCAB = 64


def tiny(name="lrpe-unitary-householder", **kw):
    kw.setdefault("vocab_size", VOCAB)
    kw.setdefault("pad_token_id", 0)
    return LrpeConfig.from_preset(name, size="tiny", **kw)


def ids(b=2, n=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (b, n), generator=g)


def perturb_(model):
    """Move every parameter (and the learned LRPE parts) away from its initial value, so a reload that silently
    re-initialised something would be caught."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", list(PRESETS))
def test_causal_lm_forward_loss_and_prefix_suffix_cache(name):
    torch.manual_seed(0)
    model = LrpeForCausalLM(tiny(name)).eval()
    x = ids()
    out = model(x, labels=x)
    assert out.logits.shape == (2, 11, VOCAB) and torch.isfinite(out.loss)
    assert getattr(out, CACHE_NAME) is None  # a training step keeps no state
    full = model(x, use_cache=False).logits
    first = model(x[:, :6], use_cache=True)
    cache = getattr(first, CACHE_NAME)
    assert isinstance(cache, DynamicCache) and len(cache.layers) == model.config.num_hidden_layers
    if model.config.attention_type == "softmax":
        assert cache.get_seq_length() == 6
    # positions of the continuation: explicit position_ids, or the attention mask of the whole sequence
    second = model(x[:, 6:9], position_ids=torch.arange(6, 9)[None], cache=cache, use_cache=True)
    third = model(x[:, 9:], attention_mask=torch.ones(2, 11, dtype=torch.long), cache=getattr(second, CACHE_NAME))
    stitched = torch.cat([first.logits, second.logits, third.logits], dim=1)
    torch.testing.assert_close(stitched, full, atol=1e-5, rtol=1e-5)


def test_continuing_a_cache_without_positions_counts_its_tokens():
    model = LrpeForCausalLM(tiny()).eval()
    x = ids()
    cache = getattr(model(x[:, :4], use_cache=True), CACHE_NAME)
    assert cache.get_seq_length() == 4  # the model's cache layers count what they have seen
    torch.testing.assert_close(model(x[:, 4:6], cache=cache).logits, model(x[:, :6]).logits[:, 4:],
                               atol=1e-5, rtol=1e-5)


def test_continuing_a_plain_recurrent_state_without_positions_is_refused():
    """A Transformers LinearAttentionLayer filled elsewhere does not count its tokens: positions must be given."""
    model = LrpeForCausalLM(tiny()).eval()
    cache = DynamicCache(config=model.config)
    h, d = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    for layer in cache.layers:
        layer.update_recurrent_state(torch.zeros(2, h, d, d))
        layer.has_previous_state[0] = True
    with pytest.raises(ValueError, match="position_ids"):
        model(ids()[:, 4:6], cache=cache)


@pytest.mark.parametrize("algorithm", ["parallel", "recurrent"])
@pytest.mark.parametrize("name", ["lrpe-rotation-householder-learned", "lrpe-d", "rope"])
def test_attention_algorithms_agree_in_the_model(name, algorithm):
    torch.manual_seed(0)
    chunked = LrpeForCausalLM(tiny(name, chunk_size=4)).eval()
    other = LrpeForCausalLM(tiny(name, attention_algorithm=algorithm)).eval()
    other.load_state_dict(chunked.state_dict())
    x = ids(n=13)
    torch.testing.assert_close(other(x).logits, chunked(x).logits, atol=1e-5, rtol=1e-5)


def test_learned_parts_get_gradients_and_fixed_parts_do_not():
    model = LrpeForCausalLM(tiny("lrpe-rotation-householder-learned"))
    pe = model.model.layers[0].self_attn.position_encoding
    assert isinstance(pe.theta, torch.nn.Parameter) and pe.householder_v.requires_grad is False
    x = ids()
    model(x, labels=x).loss.backward()
    assert pe.theta.grad is not None and pe.theta.grad.abs().sum() > 0
    fixed = LrpeForCausalLM(tiny("lrpe-unitary-householder")).model.layers[0].self_attn.position_encoding
    assert "theta" not in dict(fixed.named_parameters()) and "theta" in dict(fixed.named_buffers())
    learned_v = LrpeForCausalLM(tiny(lrpe_householder_learned=True)).model.layers[0].self_attn.position_encoding
    assert isinstance(learned_v.householder_v, torch.nn.Parameter)


def test_random_parts_are_reproducible_from_the_seed_and_differ_per_layer():
    a = LrpeForCausalLM(tiny("lrpe-permutation-householder"))
    b = LrpeForCausalLM(tiny("lrpe-permutation-householder"))
    c = LrpeForCausalLM(tiny("lrpe-permutation-householder", lrpe_seed=7))
    pa, pb, pc = (m.model.layers[0].self_attn.position_encoding for m in (a, b, c))
    assert torch.equal(pa.householder_v, pb.householder_v) and torch.equal(pa.permutation, pb.permutation)
    assert not torch.equal(pa.householder_v, pc.householder_v)
    pa1 = a.model.layers[1].self_attn.position_encoding
    assert not torch.equal(pa.householder_v, pa1.householder_v)
    assert sorted(pa.permutation.tolist()) == list(range(pa.head_dim))


@pytest.mark.parametrize(
    "name", ["lrpe-unitary-householder", "lrpe-rotation-householder-learned", "lrpe-permutation-householder",
             "permuteformer", "lrpe-d", "cosformer", "softmax"]
)
def test_save_reload_identical_logits(tmp_path, name):
    torch.manual_seed(0)
    model = LrpeForCausalLM(tiny(name)).eval()
    perturb_(model)
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, LrpeForCausalLM)
    x = ids()
    assert torch.equal(model(x).logits, reloaded(x).logits)
    # Non-persistent buffers (fixed theta, decays) were rebuilt, not left as meta-device garbage.
    for mod_a, mod_b in zip(model.modules(), reloaded.modules()):
        if isinstance(mod_a, PositionEncoding):
            for buf_name, buf in mod_a.named_buffers(recurse=False):
                assert torch.equal(buf, getattr(mod_b, buf_name)), buf_name
            for p_name, p in mod_a.named_parameters(recurse=False):
                assert torch.equal(p, getattr(mod_b, p_name)) and getattr(mod_b, p_name).requires_grad


def test_checkpoint_contents_random_parts_saved_derived_tables_not(tmp_path):
    from safetensors.torch import load_file

    LrpeForCausalLM(tiny("lrpe-permutation-householder")).save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert any(k.endswith("position_encoding.householder_v") for k in keys)
    assert any(k.endswith("position_encoding.permutation") for k in keys)
    LrpeForCausalLM(tiny("lrpe-d")).save_pretrained(tmp_path / "d")
    keys = load_file(tmp_path / "d" / "model.safetensors").keys()
    assert any(k.endswith("position_encoding.theta") for k in keys)  # learned per-head theta
    assert not any(k.endswith("position_encoding.decay") for k in keys)  # derived, rebuilt on load


def test_heads_load_from_a_base_checkpoint(tmp_path):
    cfg = tiny(num_labels=3)
    base = LrpeModel(cfg)
    perturb_(base)
    base.save_pretrained(tmp_path)
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(clf, LrpeForSequenceClassification)
    assert torch.equal(clf.model.embed_tokens.weight, base.embed_tokens.weight)
    assert isinstance(AutoModel.from_pretrained(tmp_path), LrpeModel)
    assert isinstance(AutoModelForMaskedLM.from_config(cfg), LrpeForMaskedLM)


def test_tied_embeddings():
    model = LrpeForCausalLM(tiny())
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    untied = LrpeForCausalLM(tiny(tie_word_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()


def test_return_dict_false_and_hidden_states():
    model = LrpeForCausalLM(tiny()).eval()
    x = ids()
    out = model(x, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    tup = model(x, return_dict=False, use_cache=False)
    assert isinstance(tup, tuple) and torch.equal(tup[0], out.logits)


def test_inputs_embeds_equal_input_ids():
    model = LrpeForCausalLM(tiny()).eval()
    x = ids()
    emb = model.get_input_embeddings()(x)
    torch.testing.assert_close(model(inputs_embeds=emb).logits, model(x).logits)


# -- padding awareness ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lrpe-unitary-householder", "permuteformer", "lrpe-d", "nope", "softmax"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_masked_lm_padded_keys_contribute_nothing(name, side):
    torch.manual_seed(0)
    model = LrpeForMaskedLM(tiny(name, is_causal=False)).eval()
    row = ids(1, 7)
    ref = model(row).logits[0]
    for pad_value in (0, 5):  # what sits in the padded slots must not matter
        pad = torch.full((1, 4), pad_value)
        batch = torch.cat([row, pad], 1) if side == "right" else torch.cat([pad, row], 1)
        mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 4)], 1) if side == "right" else \
            torch.cat([torch.zeros(1, 4), torch.ones(1, 7)], 1)
        out = model(batch, attention_mask=mask.long()).logits[0]
        real = out[:7] if side == "right" else out[4:]
        torch.testing.assert_close(real, ref, atol=1e-5, rtol=1e-5)


def test_masked_lm_is_bidirectional_and_has_loss():
    model = LrpeForMaskedLM(tiny()).eval()
    x = ids(1, 9)
    y = x.clone()
    y[0, -1] = (y[0, -1] % (VOCAB - 1)) + 1
    # Changing the last token changes the first position's logits (causal models would not).
    assert not torch.allclose(model(x).logits[0, 0], model(y).logits[0, 0])
    labels = torch.full_like(x, -100)
    labels[0, 3] = x[0, 3]
    assert torch.isfinite(model(x, labels=labels).loss)


@pytest.mark.parametrize(
    "problem_type,num_labels,labels",
    [
        ("regression", 1, torch.tensor([0.5, -1.0])),
        ("single_label_classification", 3, torch.tensor([0, 2])),
        ("multi_label_classification", 3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    ],
)
def test_sequence_classification_problem_types(problem_type, num_labels, labels):
    model = LrpeForSequenceClassification(tiny(num_labels=num_labels, problem_type=problem_type))
    out = model(ids(), labels=labels)
    assert out.logits.shape == (2, num_labels) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.classifier.weight.grad is not None


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_sequence_classification_ignores_padding(pooling):
    model = LrpeForSequenceClassification(tiny(num_labels=2, classifier_pooling=pooling)).eval()
    row = ids(1, 6)
    ref = model(row).logits
    for batch, mask in (
        (torch.cat([row, torch.zeros(1, 3, dtype=torch.long)], 1), torch.tensor([[1] * 6 + [0] * 3])),
        (torch.cat([torch.zeros(1, 3, dtype=torch.long), row], 1), torch.tensor([[0] * 3 + [1] * 6])),
    ):
        torch.testing.assert_close(model(batch, attention_mask=mask).logits, ref, atol=1e-5, rtol=1e-5)


# -- bad input ------------------------------------------------------------------------------------------------
def test_input_ids_out_of_vocabulary():
    model = LrpeForCausalLM(tiny())
    with pytest.raises(ValueError, match=r"vocab_size=64.*\[1, 64\]"):
        model(torch.tensor([[1, 2, VOCAB]]))
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[1, -1]]))


def test_mismatched_attention_mask():
    model = LrpeForCausalLM(tiny())
    x = ids(2, 5)
    for bad in (torch.ones(2, 4), torch.ones(3, 5), torch.ones(2, 1, 5, 5)):
        with pytest.raises(ValueError, match="attention_mask must have shape"):
            model(x, attention_mask=bad)
    with pytest.raises(ValueError, match="2-D"):
        model(x, attention_mask={"full_attention": torch.ones(2, 1, 5, 5)})
    dict_mask = {"linear_attention": torch.tensor([[0, 1, 1, 1, 1], [1] * 5])}
    torch.testing.assert_close(model(x, attention_mask=dict_mask).logits,
                               model(x, attention_mask=dict_mask["linear_attention"]).logits)
    with pytest.raises(ValueError, match="position_ids"):
        model(x, position_ids=torch.arange(4)[None])
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(ValueError, match="inputs_embeds"):
        model(inputs_embeds=torch.zeros(2, 5, 3))


def test_positions_beyond_permutation_table():
    model = LrpeForCausalLM(tiny("lrpe-permutation-householder", absolute_position_embedding="none")).eval()
    with pytest.raises(ValueError, match="permutation"):
        model(ids(1, 3), position_ids=torch.tensor([[0, 1, 10**7]]))


def test_learned_absolute_positions_beyond_table():
    model = LrpeModel(tiny(absolute_position_embedding="learned", max_position_embeddings=8))
    with pytest.raises(ValueError, match="max_position_embeddings=8"):
        model(ids(1, 9))


def test_bidirectional_model_refuses_a_cache():
    model = LrpeModel(tiny(), causal=False)
    with pytest.raises(ValueError, match="bidirectional"):
        model(ids(), cache=DynamicCache(config=model.config))
    with pytest.raises(ValueError, match="transformers Cache"):
        LrpeModel(tiny())(ids(), cache=object())
    softmax_cache = DynamicCache(config=tiny("softmax"))
    with pytest.raises(ValueError, match="layer_types"):
        LrpeModel(tiny())(ids(), cache=softmax_cache)


def test_unknown_keyword_arguments_are_refused():
    """A renamed state-carrying argument must never vanish into **kwargs again (the Transformers 5.24 rename)."""
    model = LrpeForCausalLM(tiny()).eval()
    with pytest.raises(TypeError, match="'cach_params'"):
        model(ids(), cach_params=None)
    with pytest.raises(TypeError, match="'token_type_ids'"):
        model(ids(), token_type_ids=torch.zeros_like(ids()))
    with pytest.raises(TypeError, match="'foo'"):
        LrpeForSequenceClassification(tiny())(ids(), foo=1)
    with pytest.raises(ValueError, match="output_attentions"):
        model(ids(), output_attentions=True)
    with pytest.raises(ValueError, match="pass the cache once"):
        model(ids(), cache=DynamicCache(config=model.config), past_key_values=DynamicCache(config=model.config))
    # what Transformers passes legitimately still works: the Trainer's loss argument, logits_to_keep, return_dict
    out = model(ids(), labels=ids(), num_items_in_batch=7, return_dict=True)
    assert torch.isfinite(out.loss)
    assert model(ids(), logits_to_keep=1).logits.shape[1] == 1


def test_attention_mask_values_other_than_zero_and_one_are_refused():
    with pytest.raises(ValueError, match="only 1"):
        LrpeModel(tiny())(ids(), attention_mask=torch.full_like(ids(), 2))


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    import transformers.modeling_utils as mu

    model = LrpeForCausalLM(tiny()).eval()
    model.save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    perturb_(model)
    model.config.lrpe_seed = 99  # the config on disk must not change either

    def broken_save(state_dict, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(mu, "safe_save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.tmp")]
    assert json.loads(before["config.json"])["lrpe_seed"] == 0
    monkeypatch.undo()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.config.lrpe_seed == 0


@pytest.mark.parametrize(
    "overrides",
    [
        dict(lrpe_core="unitary", lrpe_p="fft", lrpe_theta_learned=True),
        dict(lrpe_core="rotation", lrpe_p="dct", lrpe_theta_type="b"),
        dict(lrpe_core="rotation", lrpe_p="oddeven", lrpe_theta_type="c"),
        dict(lrpe_core="mixed_rotation", lrpe_p="identity"),
        dict(lrpe_core="none"),
        dict(lrpe_core="unitary", lrpe_p="householder", hidden_size=30, num_attention_heads=2),  # odd head dim 15
        dict(lrpe_core="permutation", lrpe_p="householder", lrpe_householder_learned=True, hidden_size=30,
             num_attention_heads=2),
        dict(position_encoding="rope", attention_type="softmax"),
    ],
)
def test_other_core_p_combinations_cache_and_reload(tmp_path, overrides):
    torch.manual_seed(0)
    model = LrpeForCausalLM(tiny(**overrides)).eval()
    perturb_(model)
    x = ids(2, 9)
    full = model(x).logits
    first = model(x[:, :5], use_cache=True)
    rest = model(x[:, 5:], cache=getattr(first, CACHE_NAME), position_ids=torch.arange(5, 9)[None], use_cache=True)
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    assert torch.equal(AutoModelForCausalLM.from_pretrained(tmp_path).eval()(x).logits, full)


def test_linear_attention_backend_choice():
    x = ids(1, 6)
    auto = LrpeForCausalLM(tiny()).eval()
    torch_only = LrpeForCausalLM(tiny(linear_attention_backend="torch")).eval()
    torch_only.load_state_dict(auto.state_dict())
    assert torch.equal(auto(x).logits, torch_only(x).logits)  # on CPU "auto" is the PyTorch path
    forced = LrpeForCausalLM(tiny(linear_attention_backend="fla")).eval()
    with pytest.raises(ValueError, match="fla"):
        forced(x)
    with pytest.raises(ValueError, match="linear_attention_backend"):
        tiny(linear_attention_backend="triton")


def test_fairseq_initialisation_of_attention_projections():
    model = LrpeModel(tiny(hidden_size=256, num_attention_heads=4))
    attn = model.layers[0].self_attn
    xavier_std = (6 / 512) ** 0.5 / 3**0.5
    assert abs(attn.q_proj.weight.std().item() - xavier_std * 2**-0.5) < 0.002
    assert abs(attn.o_proj.weight.std().item() - xavier_std) < 0.002
    assert abs(model.layers[0].mlp.up_proj.weight.std().item() - 0.02) < 0.002


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["lrpe-unitary-householder", "lrpe-d", "softmax"])
def test_cuda_matches_cpu_and_fla_matches_torch(name):
    """Same code on CUDA; with flash-linear-attention installed, its kernel equals the PyTorch path."""
    from lrpe_hf.ops.fla_backend import fla_available

    model = LrpeForCausalLM(tiny(name)).eval()
    x = ids(2, 40)
    cpu = model(x).logits
    gpu_torch = LrpeForCausalLM(tiny(name, linear_attention_backend="torch")).cuda().eval()
    gpu_torch.load_state_dict(model.state_dict())
    torch.testing.assert_close(gpu_torch(x.cuda()).logits.cpu(), cpu, atol=1e-4, rtol=1e-4)
    gen_kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(gpu_torch.generate(x[:, :5].cuda(), **gen_kw).cpu(), model.generate(x[:, :5], **gen_kw))
    if not fla_available(torch.zeros(1, device="cuda")):
        pytest.skip("flash-linear-attention is not installed")
    fla = LrpeForCausalLM(tiny(name, linear_attention_backend="fla")).cuda().eval()
    fla.load_state_dict(model.state_dict())
    torch.testing.assert_close(fla(x.cuda()).logits.cpu(), cpu, atol=1e-3, rtol=1e-3)


def test_token_embeddings_are_scaled_like_fairseq_language_models():
    """sqrt(d) scaling keeps token embeddings from drowning under the sinusoidal table (amplitude 1)."""
    import math

    from lrpe_hf import LrpeConfig, LrpeModel

    cfg = LrpeConfig.from_preset("lrpe-unitary-householder", size="tiny")
    assert cfg.scale_embedding is True
    assert LrpeConfig.from_preset("lrpe-unitary-householder", size="roberta-base").scale_embedding is False
    assert LrpeConfig(absolute_position_embedding="none").scale_embedding is False
    model = LrpeModel(cfg).eval()
    ids = torch.tensor([[3, 5, 7]])
    emb = model.get_input_embeddings()
    torch.testing.assert_close(emb(ids), emb.weight[ids] * math.sqrt(cfg.hidden_size))
    # inputs_embeds from the embedding module give exactly the input_ids path
    torch.testing.assert_close(model(inputs_embeds=emb(ids)).last_hidden_state, model(input_ids=ids).last_hidden_state)


def test_scaled_token_embeddings_start_at_unit_scale():
    from lrpe_hf import LrpeConfig, LrpeModel

    torch.manual_seed(0)
    cfg = LrpeConfig.from_preset("nope", size="small", vocab_size=2000)
    model = LrpeModel(cfg)
    std = model.get_input_embeddings()(torch.arange(2000)).std().item()
    assert 0.9 < std < 1.1


@pytest.mark.parametrize("first,second", [(None, "20KB"), ("20KB", None), ("20KB", "40KB")])
def test_resaving_into_a_folder_loads_the_new_weights(tmp_path, first, second):
    """Sharded <-> unsharded re-saves: the folder must load the second model, with no stale weights left."""
    m1, m2 = LrpeForCausalLM(tiny()).eval(), LrpeForCausalLM(tiny(lrpe_seed=7)).eval()
    perturb_(m2)
    (tmp_path / "notes.txt").write_text("mine")  # a file the user keeps in the folder
    m1.save_pretrained(tmp_path, **({"max_shard_size": first} if first else {}))
    m2.save_pretrained(tmp_path, **({"max_shard_size": second} if second else {}))
    x = ids()
    assert torch.equal(AutoModelForCausalLM.from_pretrained(tmp_path).eval()(x).logits, m2(x).logits)
    names = {p.name for p in tmp_path.iterdir()}
    if second is None:
        assert not any("-of-" in n or n.endswith(".index.json") for n in names), names
    else:
        assert "model.safetensors" not in names
        index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"].values()) == {n for n in names if "-of-" in n}
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")]


def test_a_failure_at_any_rename_of_the_swap_leaves_the_previous_save(tmp_path, monkeypatch):
    import os

    import lrpe_hf.models.modeling_common as common

    m1, m2 = LrpeForCausalLM(tiny()).eval(), LrpeForCausalLM(tiny(lrpe_seed=7)).eval()
    perturb_(m2)
    m1.save_pretrained(tmp_path, max_shard_size="20KB")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_replace = os.replace
    calls = {"n": 0}

    def count(src, dst):
        calls["n"] += 1
        return real_replace(src, dst)

    monkeypatch.setattr(common.os, "replace", count)
    m2.save_pretrained(tmp_path / "probe")  # how many renames one swap over an existing save takes
    m2.save_pretrained(tmp_path / "probe")
    calls["n"] = 0
    m2.save_pretrained(tmp_path / "probe")
    total = calls["n"]
    assert total > 4
    for k in range(1, total + 1):
        seen = {"n": 0}

        def flaky(src, dst, k=k):
            seen["n"] += 1
            if seen["n"] == k:
                raise OSError(f"rename {k} failed")
            return real_replace(src, dst)

        monkeypatch.setattr(common.os, "replace", flaky)
        with pytest.raises(OSError, match=f"rename {k} failed"):
            m2.save_pretrained(tmp_path)
        monkeypatch.setattr(common.os, "replace", real_replace)
        after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "probe"}
        assert after == before, f"failure at rename {k} changed the folder"
    x = ids()
    assert torch.equal(AutoModelForCausalLM.from_pretrained(tmp_path).eval()(x).logits, m1(x).logits)
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")]


def test_empty_sequence_is_refused_clearly():
    """It was a ZeroDivisionError in the causal LM and a silent NaN in classification."""
    for model in (LrpeForCausalLM(tiny()), LrpeForSequenceClassification(tiny(num_labels=2))):
        with pytest.raises(ValueError, match="empty sequence"):
            model(torch.zeros(1, 0, dtype=torch.long))
