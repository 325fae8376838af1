"""Rolling a recurrent state back: crop-then-continue equals a fresh forward over the kept prefix for every LRPE
encoding and algorithm (windows crossing chunk boundaries, left padding) and for MixFormer's decoder; prompt-lookup,
assisted and speculative decoding give the tokens (greedy) or the distribution (sampling) of plain decoding."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

import lrpe_hf  # noqa: F401
from lrpe_hf.models.cache_layers import RollbackLinearAttentionLayer, adopt_rollback_layers
from lrpe_hf.models.lrpe import PRESETS, LrpeConfig, LrpeForCausalLM
from lrpe_hf.models.mixformer import build_generation_cache
from test_generation_modes import mixformer_seq2seq

VOCAB = 40


def lrpe_lm(preset="lrpe-unitary-householder", seed=0, layers=2, scale=3.0, vocab=VOCAB, **overrides):
    torch.manual_seed(seed)
    # Untied head: a tied one at this scale mostly repeats the last token, and drafts would never be rejected.
    cfg = LrpeConfig.from_preset(preset, size="tiny", vocab_size=vocab, num_hidden_layers=layers, pad_token_id=0,
                                 eos_token_id=None, tie_word_embeddings=False, **overrides)
    model = LrpeForCausalLM(cfg).eval()
    with torch.no_grad():  # a sharper distribution: greedy paths are not decided by float noise
        model.model.embed_tokens.weight.mul_(scale)
    return model


def noisy_copy(model, std, seed=1):
    """An assistant that agrees with the model often but not always: drafts are partly accepted."""
    torch.manual_seed(seed)
    other = type(model)(model.config).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * std)
    return other


def mixformer(seed=0):
    torch.manual_seed(seed)  # the same architecture as the generation-mode tests, other weights per seed
    return mixformer_seq2seq(seed)


def tokens(b, n, seed):
    return torch.randint(3, VOCAB, (b, n), generator=torch.Generator().manual_seed(seed))


class CropSpy:
    """Counts the crops that really removed tokens, so a test knows rollback was exercised."""

    def __init__(self, monkeypatch):
        self.removed = []
        original = RollbackLinearAttentionLayer.crop

        def crop(layer, tokens_to_remove):
            self.removed.append(-tokens_to_remove)
            return original(layer, tokens_to_remove)

        monkeypatch.setattr(RollbackLinearAttentionLayer, "crop", crop)

    @property
    def rollbacks(self):
        return sum(1 for r in self.removed if r > 0)


# ---------------------------------------------------------------------------------------------- crop exactness
CASES = [(p, a) for p in PRESETS for a in ("chunked", "parallel", "recurrent")]


@pytest.mark.parametrize("preset,algorithm", CASES, ids=[f"{p}-{a}" for p, a in CASES])
def test_crop_then_continue_equals_a_fresh_forward(preset, algorithm):
    model = lrpe_lm(preset, attention_algorithm=algorithm, chunk_size=4, scale=1.0)
    b, prefill, draft, removed, more = 2, 6, 7, 4, 5  # the draft window crosses chunk boundaries (chunk 4)
    ids = tokens(b, prefill + draft + more, seed=1)
    mask = torch.ones_like(ids)
    ids[1, :2], mask[1, :2] = 0, 0  # left padding on the second row
    kept = prefill + draft - removed
    with torch.no_grad():
        cache = adopt_rollback_layers(DynamicCache(config=model.config))
        cache.activate_past_recording()
        model(ids[:, :prefill], attention_mask=mask[:, :prefill], cache=cache, use_cache=True)
        cache.crop(0)  # the verified point after prefill
        model(ids[:, prefill:prefill + draft], attention_mask=mask[:, :prefill + draft], cache=cache,
              use_cache=True)
        cache.crop(-removed)
        assert cache.get_seq_length() == kept
        # continue after the kept prefix with other tokens than the rejected ones
        cont = torch.cat([ids[:, :kept], ids[:, -more:]], dim=1)
        cont_mask = torch.cat([mask[:, :kept], mask[:, -more:]], dim=1)
        got = model(cont[:, kept:], attention_mask=cont_mask, cache=cache, use_cache=True).logits
        want = model(cont, attention_mask=cont_mask, use_cache=False).logits[:, kept:]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_crop_reaches_back_over_several_forwards_and_within_max_window(monkeypatch):
    """The assistant's rounds: several one-token forwards between crops; a small max_window folds older tokens."""
    model = lrpe_lm("lrpe-d", scale=1.0)
    ids = tokens(1, 14, seed=2)
    monkeypatch.setattr(RollbackLinearAttentionLayer, "max_window", 5)
    with torch.no_grad():
        cache = adopt_rollback_layers(DynamicCache(config=model.config))
        cache.activate_past_recording()
        model(ids[:, :4], cache=cache, use_cache=True)
        for t in range(4, 10):  # six one-token steps, the window holds the last five
            model(ids[:, t:t + 1], cache=cache, use_cache=True)
        with pytest.raises(ValueError, match="only the 5 tokens since the last crop"):
            cache.crop(-6)
        cache.crop(-3)
        got = model(ids[:, 7:], cache=cache, use_cache=True).logits
        want = model(ids, use_cache=False).logits[:, 7:]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_crop_without_recording_is_refused():
    model = lrpe_lm(scale=1.0)
    with torch.no_grad():
        out = model(tokens(1, 5, seed=3), use_cache=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    assert not cache.is_croppable
    with pytest.raises(RuntimeError, match="activate_past_recording"):
        cache.crop(-1)


def test_mixformer_decoder_crop_then_continue():
    model = mixformer()
    src = tokens(2, 7, seed=4)
    dec = torch.cat([torch.ones(2, 1, dtype=torch.long), tokens(2, 12, seed=5)], dim=1)
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=src)
        cache = build_generation_cache(model.config)
        cache.activate_past_recording()
        kw = dict(encoder_outputs=enc, use_cache=True, cache=cache)
        model(decoder_input_ids=dec[:, :4], **kw)
        cache.crop(0)
        model(decoder_input_ids=dec[:, 4:10], **kw)  # six drafted tokens, three rejected
        cache.crop(-3)
        assert cache.get_seq_length() == 7
        got = model(decoder_input_ids=dec[:, 10:], **kw).logits
        fresh = torch.cat([dec[:, :7], dec[:, 10:]], dim=1)
        want = model(encoder_outputs=enc, decoder_input_ids=fresh, use_cache=False).logits[:, 7:]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------- strategies
def _prompt(n=16, seed=6):
    # A repetitive prompt gives prompt lookup something to propose; the model does not always follow it.
    base = tokens(1, 5, seed=seed)
    return base.repeat(1, n // 5 + 1)[:, :n]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_prompt_lookup_gives_the_greedy_tokens(preset, monkeypatch):
    model = lrpe_lm(preset, chunk_size=4)
    ids = _prompt()
    with torch.no_grad():
        plain = model.generate(ids, max_new_tokens=20, do_sample=False)
        spy = CropSpy(monkeypatch)
        lookup = model.generate(ids, max_new_tokens=20, do_sample=False, prompt_lookup_num_tokens=3)
    assert torch.equal(plain, lookup)
    if model.config.attention_type == "linear":
        assert spy.removed, "no crop reached the rollback layers"


def test_prompt_lookup_rolls_back_rejected_drafts(monkeypatch):
    """A model that does not copy its prompt rejects most drafts: the rollback path carries the result."""
    model = lrpe_lm("lrpe-unitary-householder-learned", seed=3)
    ids = _prompt(seed=9)
    with torch.no_grad():
        plain = model.generate(ids, max_new_tokens=24, do_sample=False)
        spy = CropSpy(monkeypatch)
        lookup = model.generate(ids, max_new_tokens=24, do_sample=False, prompt_lookup_num_tokens=4)
    assert torch.equal(plain, lookup)
    assert spy.rollbacks > 0


@pytest.mark.parametrize("preset", ["lrpe-unitary-householder", "lrpe-d", "softmax"])
def test_assisted_decoding_gives_the_greedy_tokens(preset, monkeypatch):
    model = lrpe_lm(preset, seed=0)
    assistant = noisy_copy(model, std=0.03)
    ids = tokens(1, 9, seed=7)
    with torch.no_grad():
        plain = model.generate(ids, max_new_tokens=24, do_sample=False)
        spy = CropSpy(monkeypatch)
        # drafts of five tokens every round (the default schedule shrinks them to one after misses)
        assisted = model.generate(ids, max_new_tokens=24, do_sample=False, assistant_model=assistant,
                                  num_assistant_tokens=5, num_assistant_tokens_schedule="constant")
    assert torch.equal(plain, assisted)
    if preset != "softmax":
        assert spy.rollbacks > 0
        # partly accepted drafts: some crops remove fewer tokens than a whole draft
        assert any(0 < r < max(spy.removed) for r in spy.removed)


def test_mixformer_prompt_lookup_and_assisted_decoding(monkeypatch):
    model, assistant = mixformer(0), mixformer(1)
    src = tokens(1, 9, seed=8)
    kw = dict(input_ids=src, max_new_tokens=16, do_sample=False)
    with torch.no_grad():
        plain = model.generate(**kw)
        spy = CropSpy(monkeypatch)
        lookup = model.generate(**kw, prompt_lookup_num_tokens=3)
        assisted = model.generate(**kw, assistant_model=assistant)
    assert torch.equal(plain, lookup) and torch.equal(plain, assisted)
    assert spy.rollbacks > 0


def test_early_exit_stays_refused_clearly():
    model = lrpe_lm()
    with pytest.raises(ValueError, match="assistant_early_exit"):
        model.generate(tokens(1, 4, seed=1), assistant_early_exit=1, max_new_tokens=3)


# ---------------------------------------------------------------------------------------------- sampling
SMALL_VOCAB = 6


def _exact_two_token_distribution(model, prompt):
    """P(t1, t2 | prompt) from the model's logits (no sampling): the target speculative sampling must reproduce."""
    v = model.config.vocab_size
    with torch.no_grad():
        p1 = model(prompt).logits[0, -1].softmax(-1)
        second = torch.cat([prompt.expand(v, -1), torch.arange(v)[:, None]], dim=1)
        p2 = model(second).logits[:, -1].softmax(-1)
    return p1[:, None] * p2  # (v, v)


def _chi_square_pvalue(counts, probs, min_expected=5.0):
    """Pearson's goodness of fit; cells expected fewer than ``min_expected`` times are pooled into one."""
    from scipy.stats import chisquare

    expected = probs.double() * counts.sum()
    big = expected >= min_expected
    obs, exp = counts.double()[big], expected[big]
    if (~big).any():
        obs = torch.cat([obs, counts.double()[~big].sum()[None]])
        exp = torch.cat([exp, expected[~big].sum()[None]])
    assert len(obs) >= 10, "too few cells for the test to mean anything"
    return float(chisquare(obs.numpy(), exp.numpy() * (obs.sum() / exp.sum()).item()).pvalue)


def sharp_small_lm(seed, layers):
    model = lrpe_lm("lrpe-unitary-householder", seed=seed, layers=layers, vocab=SMALL_VOCAB, scale=1.0)
    with torch.no_grad():
        model.lm_head.weight.mul_(4.0)  # peaked, different distributions for the two models
    return model


def test_speculative_sampling_keeps_the_models_distribution():
    """Two sampled tokens, 2,000 runs over a 6-token vocabulary (36 joint outcomes): the counts fit the main model's
    exact distribution (p > 1e-3) and reject the assistant's, which the drafts come from -- so the test has the power
    to see a sampler that returned drafts unverified."""
    model, assistant = sharp_small_lm(0, 2), sharp_small_lm(1, 1)
    prompt = torch.tensor([[1, 4, 2, 5, 3]])
    target = _exact_two_token_distribution(model, prompt)
    draft = _exact_two_token_distribution(assistant, prompt)
    counts = torch.zeros(SMALL_VOCAB, SMALL_VOCAB)
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(2000):
            out = model.generate(prompt, max_new_tokens=2, do_sample=True, assistant_model=assistant,
                                 num_assistant_tokens=2, num_assistant_tokens_schedule="constant")
            counts[out[0, -2], out[0, -1]] += 1
    assert _chi_square_pvalue(counts.flatten(), target.flatten()) > 1e-3
    assert _chi_square_pvalue(counts.flatten(), draft.flatten()) < 1e-6
