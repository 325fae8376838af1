"""generate() on Transformers' own DynamicCache (recurrent states / keys and values per layer): cached == uncached
token for token for every decoding mode Transformers' GenerationTesterMixin covers for a stateful decoder."""

import pytest
import torch

import lrpe_hf  # noqa: F401
from transformers import AutoModelForCausalLM, DynamicCache, GenerationConfig
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM
from lrpe_hf.models.modeling_common import CACHE_NAME

VOCAB = 64
PRESETS_TO_TEST = [
    "lrpe-unitary-householder",
    "lrpe-rotation-householder-learned",
    "lrpe-permutation-householder",
    "lrpe-unitary-householder-learned",
    "rope",
    "cosformer",
    "permuteformer",
    "lrpe-d",
    "softmax",
]


def make(name, **kw):
    torch.manual_seed(0)
    cfg = LrpeConfig.from_preset(name, size="tiny", vocab_size=VOCAB, pad_token_id=0, eos_token_id=None, **kw)
    model = LrpeForCausalLM(cfg).eval()
    # Sharpen the output distribution a little so greedy/beam paths are not decided by float noise.
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)
    return model


def prompt(b=2, n=5, seed=0):
    return torch.randint(1, VOCAB, (b, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", PRESETS_TO_TEST)
def test_greedy_and_beam_cached_equal_uncached(name):
    model = make(name)
    x = prompt()
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    cached = model.generate(x, use_cache=True, **kw)
    uncached = model.generate(x, use_cache=False, **kw)
    assert cached.shape == (2, 13)
    assert torch.equal(cached, uncached)
    beam_c = model.generate(x, use_cache=True, num_beams=3, **kw)
    beam_u = model.generate(x, use_cache=False, num_beams=3, **kw)
    assert torch.equal(beam_c, beam_u)
    many = model.generate(x, use_cache=True, num_beams=3, num_return_sequences=2, **kw)
    assert many.shape == (4, 13) and torch.equal(many[::2], beam_c)


@pytest.mark.parametrize("name,kw", [("lrpe-unitary-householder", {}), ("lrpe-permutation-householder", {}),
                                     ("lrpe-d", {}), ("softmax", {}),
                                     ("softmax", {"position_encoding": "relative_key"})])
def test_left_padded_batch_equals_unpadded_rows(name, kw):
    model = make(name, **kw)
    a, b = prompt(1, 7, seed=1), prompt(1, 3, seed=2)
    batch = torch.cat([a, torch.cat([torch.zeros(1, 4, dtype=torch.long), b], 1)])
    mask = (batch != 0).long()
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    out = model.generate(batch, attention_mask=mask, **kw)
    assert torch.equal(out[0, 7:], model.generate(a, **kw)[0, 7:])
    assert torch.equal(out[1, 7:], model.generate(b, **kw)[0, 3:])
    beams = model.generate(batch, attention_mask=mask, num_beams=2, **kw)
    assert torch.equal(beams[1, 7:], model.generate(b, num_beams=2, **kw)[0, 3:])


def test_sampling_with_num_return_sequences():
    model = make("lrpe-unitary-householder-learned")
    x = prompt(2, 4)
    kw = dict(max_new_tokens=6, do_sample=True, top_k=20, num_return_sequences=3, pad_token_id=0)
    torch.manual_seed(1)
    s1 = model.generate(x, **kw)
    torch.manual_seed(1)
    s2 = model.generate(x, **kw)
    torch.manual_seed(1)
    s3 = model.generate(x, use_cache=False, **kw)
    assert s1.shape == (6, 10)
    assert torch.equal(s1, s2) and torch.equal(s1, s3)
    assert torch.equal(s1[:3, :4], x[:1].expand(3, 4)) and torch.equal(s1[3:, :4], x[1:].expand(3, 4))


def test_prompt_lookup_from_a_generation_config_and_early_exit_refused():
    model = make("lrpe-unitary-householder")
    x = prompt(1, 4)
    plain = model.generate(x, max_new_tokens=6, do_sample=False, pad_token_id=0)
    lookup = model.generate(x, generation_config=GenerationConfig(prompt_lookup_num_tokens=2, max_new_tokens=6,
                                                                  pad_token_id=0))
    assert torch.equal(plain, lookup)
    # self-speculative early exit needs an exit head after a layer, which these models do not have
    with pytest.raises(ValueError, match="assistant_early_exit"):
        model.generate(x, generation_config=GenerationConfig(assistant_early_exit=1, max_new_tokens=3))


def test_generate_after_reload_is_identical(tmp_path):
    model = make("lrpe-rotation-householder-learned")
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = prompt()
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(x, **kw), reloaded.generate(x, **kw))


def _states(cache):
    return [layer.recurrent_states[0] for layer in cache.layers]


def test_state_size_does_not_grow_with_context():
    model = make("lrpe-unitary-householder")
    short = getattr(model(prompt(1, 4), use_cache=True), CACHE_NAME)
    long = getattr(model(prompt(1, 300), use_cache=True), CACHE_NAME)
    for s, l in zip(_states(short), _states(long)):
        assert s.shape == l.shape  # (batch, heads, 2 * head_dim, head_dim) for the unitary core
    assert _states(short)[0].shape == (1, 2, 32, 16)
    step = getattr(model(prompt(1, 1), position_ids=torch.tensor([[300]]), cache=long, use_cache=True), CACHE_NAME)
    assert _states(step)[0].shape == _states(short)[0].shape


def test_cache_reorder_and_batch_ops():
    """Beam reordering and batch selection are Transformers' own code acting on the package's states."""
    model = make("lrpe-unitary-householder")
    cache = getattr(model(prompt(3, 4), use_cache=True), CACHE_NAME)
    assert isinstance(cache, DynamicCache)
    s0 = _states(cache)[0].clone()
    cache.reorder_cache(torch.tensor([2, 2, 0]))
    assert torch.equal(_states(cache)[0][0], s0[2]) and torch.equal(_states(cache)[0][2], s0[0])


def test_step_from_explicit_positions_matches_mask_positions():
    """Direct calls: positions come from the attention mask (left padding) or continue from the cache."""
    model = make("lrpe-unitary-householder")
    row = prompt(1, 5)
    padded = torch.cat([torch.zeros(1, 2, dtype=torch.long), row], 1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1]])
    ref = model(row).logits
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, 2:], ref, atol=1e-5, rtol=1e-5)
    pos = torch.arange(5)[None]
    torch.testing.assert_close(
        model(padded[:, 2:], position_ids=pos).logits, ref, atol=1e-6, rtol=1e-6
    )


def test_generate_from_inputs_embeds_and_dict_output():
    model = make("lrpe-unitary-householder")
    x = prompt()
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    from_ids = model.generate(x, **kw)
    from_embeds = model.generate(inputs_embeds=model.get_input_embeddings()(x), **kw)
    assert torch.equal(from_embeds, from_ids[:, 5:])
    out = model.generate(x, return_dict_in_generate=True, output_scores=True, **kw)
    assert len(out.scores) == 5 and isinstance(getattr(out, CACHE_NAME), DynamicCache)


def test_text_generation_pipeline_with_left_padding():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, pipeline

    vocab = {"[PAD]": 0, "[EOS]": 1, **{f"w{i}": i + 2 for i in range(VOCAB - 2)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[PAD]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]", padding_side="left")
    model = make("lrpe-unitary-householder")
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    kw = dict(max_new_tokens=4, do_sample=False)
    single = [pipe(t, **kw)[0]["generated_text"] for t in ("w1 w2 w3 w4", "w5")]
    batched = [r[0]["generated_text"] for r in pipe(["w1 w2 w3 w4", "w5"], batch_size=2, **kw)]
    assert batched == single


def test_softmax_with_relative_keys_from_the_registry_generates_the_same_cached_and_uncached():
    """Any registered encoding that is softmax-compatible serves the LM's softmax reference, here the relative-key
    bias (mixFormer's): the cache carries the keys' positions, so cached decoding equals recomputation."""
    model = make("softmax", position_encoding="relative_key")
    assert model.model.layers[0].self_attn.position_encoding.name == "relative_key"
    x = prompt()
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(x, use_cache=True, **kw), model.generate(x, use_cache=False, **kw))
    # Left padding: the cached keys keep the positions the model gave them (real tokens counted), so one cached step
    # gives the logits of the unpadded row computed from scratch.
    row = prompt(1, 3, seed=2)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), row], 1)
    mask = (padded != 0).long()
    nxt = torch.tensor([[5]])
    with torch.no_grad():
        cache = model(padded, attention_mask=mask, use_cache=True).past_key_values
        step = model(nxt, attention_mask=torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], 1), cache=cache,
                     use_cache=True).logits[0, -1]
        torch.testing.assert_close(step, model(torch.cat([row, nxt], 1)).logits[0, -1], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="not defined for linear attention"):
        LrpeConfig.from_preset("lrpe-unitary-householder", size="tiny", position_encoding="relative_key")
