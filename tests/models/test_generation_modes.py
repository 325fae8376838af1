"""What Transformers' GenerationTesterMixin covers for a stateful decoder (it is not in the sdist), for the LRPE LM
(every encoding and the softmax reference) and the MixFormer seq2seq model: cached == uncached token for token in
every decoding mode, dict outputs with scores and hidden states, streaming, stop strings, a save/load round trip,
and assisted decoding (batch 1; Transformers refuses larger batches clearly)."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    TextIteratorStreamer,
)

import lrpe_hf  # noqa: F401
from lrpe_hf.models.lrpe import PRESETS, LrpeConfig, LrpeForCausalLM

VOCAB = 48

MODES = {
    "greedy": dict(do_sample=False),
    "sample": dict(do_sample=True, top_k=10),
    "beam": dict(do_sample=False, num_beams=3),
    "beam_sample": dict(do_sample=True, num_beams=2, top_k=10),
    "greedy_n": dict(do_sample=False, num_beams=3, num_return_sequences=2),
    "sample_n": dict(do_sample=True, top_p=0.9, num_return_sequences=3),
}


def lrpe_lm(name="lrpe-unitary-householder"):
    torch.manual_seed(0)
    cfg = LrpeConfig.from_preset(name, size="tiny", vocab_size=VOCAB, pad_token_id=0, eos_token_id=None)
    model = LrpeForCausalLM(cfg).eval()
    with torch.no_grad():  # a sharper distribution: greedy and beam paths are not decided by float noise
        model.model.embed_tokens.weight.mul_(20)
    return model


def mixformer_seq2seq(seed=0):
    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_config(lrpe_hf.MixFormerConfig(
        is_encoder_decoder=True, vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, head_dim=8,
        layer_attention=["cosformer", "lrpe"], layer_ffn_dim=[64, 48], layer_num_heads=[4, 2], decoder_layers=3,
        decoder_layer_attention=["softmax", "cosformer", "lrpe"], decoder_layer_ffn_dim=[32, 48, 32],
        decoder_layer_num_heads=[2, 4, 2], pad_token_id=0, bos_token_id=1, eos_token_id=None,
        decoder_start_token_id=1, max_position_embeddings=48,
    )).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model


def inputs(b=2, n=6, padded=True):
    ids = torch.randint(3, VOCAB, (b, n), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    if padded:  # left padding on the second row
        ids[1, :2], mask[1, :2] = 0, 0
    return ids, mask


def generate_twice(model, ids, mask, **kw):
    out = []
    for use_cache in (True, False):
        torch.manual_seed(11)
        out.append(model.generate(input_ids=ids, attention_mask=mask, use_cache=use_cache, max_new_tokens=6,
                                  pad_token_id=0, **kw))
    return out


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(PRESETS))
def test_lrpe_every_mode_cached_equals_uncached(name, mode):
    cached, uncached = generate_twice(lrpe_lm(name), *inputs(), **MODES[mode])
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("mode", list(MODES))
def test_mixformer_every_mode_cached_equals_uncached(mode):
    cached, uncached = generate_twice(mixformer_seq2seq(), *inputs(), **MODES[mode])
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("make", [lrpe_lm, mixformer_seq2seq], ids=["lrpe", "mixformer"])
def test_dict_output_with_scores_and_hidden_states_matches_uncached(make):
    model = make()
    ids, mask = inputs()
    kw = dict(return_dict_in_generate=True, output_scores=True, output_logits=True, output_hidden_states=True)
    cached, uncached = generate_twice(model, ids, mask, **kw)
    assert torch.equal(cached.sequences, uncached.sequences) and len(cached.scores) == 6
    for a, b in zip(cached.scores, uncached.scores):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    hidden = cached.decoder_hidden_states if model.config.is_encoder_decoder else cached.hidden_states
    assert len(hidden) == 6 and len(hidden[0]) == model.config.get_text_config(decoder=True).num_hidden_layers + 1 \
        or len(hidden) == 6  # per step, one tensor per layer (+ embeddings)
    last_step = hidden[-1][-1]
    assert last_step.shape[:2] == (2, 1)  # the cached step feeds one token


def test_inputs_embeds_generation_equals_ids():
    model = lrpe_lm()
    ids, mask = inputs(padded=False)
    from_ids = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    from_embeds = model.generate(inputs_embeds=model.get_input_embeddings()(ids), max_new_tokens=5, do_sample=False,
                                 pad_token_id=0)
    assert torch.equal(from_embeds, from_ids[:, ids.shape[1]:])


@pytest.fixture(scope="module")
def lm_and_tokenizer():
    """A byte-level BPE tokenizer (the package's own trainer) and an LM over its vocabulary."""
    from lrpe_hf.data.tokenizer import train_byte_level_bpe

    texts = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i, 'x')\n"] * 20
    tok = train_byte_level_bpe(texts, vocab_size=300, min_frequency=2, show_progress=False)
    torch.manual_seed(0)
    cfg = LrpeConfig.from_preset("lrpe-unitary-householder", size="tiny", vocab_size=len(tok),
                                 pad_token_id=tok.pad_token_id, eos_token_id=None)
    model = LrpeForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)
    return model, tok


def test_text_iterator_streamer_yields_the_generated_text(lm_and_tokenizer):
    model, tok = lm_and_tokenizer
    enc = tok(["def add("], return_tensors="pt")
    n = enc["input_ids"].shape[1]
    expected = model.generate(**enc, max_new_tokens=8, do_sample=False)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    thread = threading.Thread(target=model.generate, kwargs=dict(**enc, max_new_tokens=8, do_sample=False,
                                                                 streamer=streamer))
    thread.start()
    streamed = "".join(streamer)
    thread.join(timeout=60)
    assert streamed == tok.decode(expected[0, n:], skip_special_tokens=True) and streamed


def test_stop_strings_end_generation_at_the_string(lm_and_tokenizer):
    model, tok = lm_and_tokenizer
    enc = tok(["for i in"], return_tensors="pt")
    n = enc["input_ids"].shape[1]
    full = model.generate(**enc, max_new_tokens=10, do_sample=False)
    pieces = [tok.decode(t) for t in full[0, n:]]
    k = next(i for i, p in enumerate(pieces) if i >= 2 and p.strip())  # a non-blank piece, a few tokens in
    out = model.generate(**enc, max_new_tokens=10, do_sample=False, stop_strings=[pieces[k]], tokenizer=tok)
    first = next(i for i, p in enumerate(pieces) if pieces[k] in "".join(pieces[: i + 1]))
    assert out.shape[1] == n + first + 1 and torch.equal(out[0], full[0, : out.shape[1]])


@pytest.mark.parametrize("make", [lrpe_lm, mixformer_seq2seq], ids=["lrpe", "mixformer"])
def test_generation_survives_a_save_load_round_trip(make, tmp_path):
    model = make()
    ids, mask = inputs()
    model.save_pretrained(tmp_path)
    auto = AutoModelForSeq2SeqLM if model.config.is_encoder_decoder else AutoModelForCausalLM
    again = auto.from_pretrained(tmp_path).eval()
    kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=2, pad_token_id=0)
    assert torch.equal(model.generate(**kw), again.generate(**kw))


@pytest.mark.parametrize("make", [lrpe_lm, mixformer_seq2seq], ids=["lrpe", "mixformer"])
def test_assisted_decoding_runs_and_batches_are_refused_clearly(make):
    """Assisted decoding works (its exactness is tested in test_rollback_decoding.py); Transformers itself refuses
    it for more than one row, with a message that says so."""
    model = make()
    ids, mask = inputs()
    kw = dict(max_new_tokens=5, pad_token_id=0, do_sample=False)
    plain = model.generate(input_ids=ids[:1], attention_mask=mask[:1], **kw)
    assisted = model.generate(input_ids=ids[:1], attention_mask=mask[:1], assistant_model=make(), **kw)
    assert torch.equal(plain, assisted)
    with pytest.raises(ValueError, match="batch"):
        model.generate(input_ids=ids, attention_mask=mask, assistant_model=make(), **kw)
