"""Padding-free packed batches: a packed row gives, document by document, the logits of each document run alone
(every encoding, every algorithm, chunk sizes that do and do not align with the boundaries), the loss is the
token-weighted mean of the separate losses and so are the gradients; boundaries from position_ids restarts,
cu_seq_lens or seq_idx must agree; what cannot honour them refuses."""

from __future__ import annotations

import pytest
import torch
from transformers import DataCollatorWithFlattening

import lrpe_hf  # noqa: F401
from lrpe_hf.models.lrpe import (
    PRESETS,
    LrpeConfig,
    LrpeForCausalLM,
    LrpeForMaskedLM,
    LrpeForSequenceClassification,
)
from lrpe_hf.ops import linear_attention

VOCAB = 64
LENGTHS = (5, 9, 1, 7)  # boundaries at 5, 14, 15: inside chunks of 4 and 8, one on a chunk edge of 5


def documents(lengths=LENGTHS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, VOCAB, (n,), generator=g) for n in lengths]


def config(preset, causal=True, **overrides):
    kw = dict(size="tiny", vocab_size=VOCAB, hidden_dropout_prob=0.0, attention_dropout=0.0, **overrides)
    if not causal:
        kw.update(is_causal=False, absolute_position_embedding="sinusoidal")
    return LrpeConfig.from_preset(preset, **kw)


def flatten(docs, **collator):
    batch = DataCollatorWithFlattening(**collator)([{"input_ids": d.tolist()} for d in docs])
    return {k: v for k, v in batch.items() if k != "labels"}, batch["labels"]


CASES = [(p, a, c) for p in PRESETS for a, c in (("chunked", 4), ("chunked", 5), ("chunked", 64), ("parallel", 64),
                                                  ("recurrent", 64))]


def _separately(model, docs):
    """Each document run alone, its logits concatenated in packing order."""
    return torch.cat([model(d[None]).logits[0] for d in docs])


@pytest.mark.parametrize("preset,algorithm,chunk", CASES, ids=[f"{p}-{a}{c}" for p, a, c in CASES])
def test_causal_lm_packed_row_equals_documents_alone(preset, algorithm, chunk):
    torch.manual_seed(0)
    model = LrpeForCausalLM(config(preset, attention_algorithm=algorithm, chunk_size=chunk)).eval()
    docs = documents()
    inputs, _ = flatten(docs)
    with torch.no_grad():
        packed = model(**inputs).logits[0]
        alone = _separately(model, docs)
    torch.testing.assert_close(packed, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk", [4, 5, 64])
@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("head", ["mlm", "classifier-mean", "classifier-first"])
def test_bidirectional_models_see_only_their_own_document(preset, head, chunk):
    torch.manual_seed(0)
    if head == "mlm":
        model = LrpeForMaskedLM(config(preset, causal=False, chunk_size=chunk)).eval()
    else:  # one pooled vector, and one label, per packed document
        model = LrpeForSequenceClassification(config(preset, causal=False, chunk_size=chunk, num_labels=3,
                                                     classifier_pooling=head.split("-")[1])).eval()
    docs = documents()
    inputs, _ = flatten(docs)
    with torch.no_grad():
        packed = model(**inputs).logits
        alone = torch.cat([model(d[None]).logits for d in docs], dim=1 if head == "mlm" else 0)
    if head == "mlm":
        packed, alone = packed[0], alone[0]
    torch.testing.assert_close(packed, alone, rtol=1e-4, atol=1e-5)


GRAD_CASES = [(p, "chunked", 4) for p in PRESETS] + [("lrpe-d", a, c) for a, c in (("chunked", 5), ("parallel", 64),
                                                                                   ("recurrent", 64))]


@pytest.mark.parametrize("preset,algorithm,chunk", GRAD_CASES, ids=[f"{p}-{a}{c}" for p, a, c in GRAD_CASES])
def test_loss_and_gradients_are_the_token_weighted_mean_of_the_separate_ones(preset, algorithm, chunk):
    torch.manual_seed(0)
    model = LrpeForCausalLM(config(preset, attention_algorithm=algorithm, chunk_size=chunk))
    docs = documents(seed=1)
    inputs, labels = flatten(docs)
    packed_loss = model(**inputs, labels=labels).loss
    packed_loss.backward()
    packed_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    weights = [len(d) - 1 for d in docs]  # predicted tokens per document
    total = sum(weights)
    separate = sum(model(d[None], labels=d[None]).loss * (w / total) for d, w in zip(docs, weights) if w)
    separate.backward()
    torch.testing.assert_close(packed_loss, separate, rtol=1e-5, atol=1e-6)
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(packed_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_plain_labels_do_not_teach_one_document_to_predict_the_next():
    """labels = input_ids of the packed row (no -100 separators): the loss is still per document."""
    torch.manual_seed(0)
    model = LrpeForCausalLM(config("lrpe-unitary-householder")).eval()
    docs = documents(seed=2)
    inputs, collated = flatten(docs)
    with torch.no_grad():
        plain = model(**inputs, labels=inputs["input_ids"]).loss
        separated = model(**inputs, labels=collated).loss
    torch.testing.assert_close(plain, separated)


@pytest.mark.parametrize("source", ["position_ids", "cu_seq_lens", "seq_idx", "all"])
def test_every_boundary_source_gives_the_same_logits(source):
    torch.manual_seed(0)
    model = LrpeForCausalLM(config("lrpe-d", chunk_size=4)).eval()
    docs = documents()
    full, _ = flatten(docs, return_flash_attn_kwargs=True, return_seq_idx=True)
    keep = {"position_ids": ["position_ids"], "cu_seq_lens": ["cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                                                               "max_length_k"],
            "seq_idx": ["seq_idx"], "all": list(full)}[source]
    inputs = {"input_ids": full["input_ids"], **{k: full[k] for k in keep if k in full}}
    with torch.no_grad():
        got = model(**inputs).logits[0]
        alone = _separately(model, docs)
    torch.testing.assert_close(got, alone, rtol=1e-4, atol=1e-5)


def test_single_document_row_and_empty_documents():
    torch.manual_seed(0)
    model = LrpeForCausalLM(config("lrpe-unitary-householder", chunk_size=4)).eval()
    doc = documents(lengths=(11,))[0]
    with torch.no_grad():
        alone = model(doc[None]).logits
        # one long document marked as packed
        one = model(doc[None], cu_seq_lens_q=torch.tensor([0, 11]), cu_seq_lens_k=torch.tensor([0, 11])).logits
        torch.testing.assert_close(one, alone)
        # zero-length documents in cu_seq_lens (0, 4, 4, 11) change nothing but the boundary at 4
        empty = model(doc[None], cu_seq_lens_q=torch.tensor([0, 4, 4, 11])).logits[0]
        want = torch.cat([model(doc[None, :4]).logits[0], model(doc[None, 4:]).logits[0]])
    torch.testing.assert_close(empty, want, rtol=1e-4, atol=1e-5)


def test_classifier_needs_one_label_per_document():
    model = LrpeForSequenceClassification(config("lrpe-unitary-householder", causal=False, num_labels=2))
    inputs, _ = flatten(documents())
    loss = model(**inputs, labels=torch.tensor([0, 1, 1, 0])).loss
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="4 \\(non-empty\\) documents needs one label each"):
        model(**inputs, labels=torch.tensor([0]))


def test_two_packed_rows():
    torch.manual_seed(0)
    model = LrpeForCausalLM(config("permuteformer", chunk_size=4)).eval()
    docs = documents(lengths=(5, 7, 8, 4))  # rows of 12 tokens: [5, 7] and [8, 4]
    ids = torch.stack([torch.cat(docs[:2]), torch.cat(docs[2:])])
    seq_idx = torch.tensor([[0] * 5 + [1] * 7, [0] * 8 + [1] * 4])
    with torch.no_grad():
        got = model(ids, seq_idx=seq_idx).logits
        want = torch.stack([torch.cat([model(d[None]).logits[0] for d in pair]) for pair in (docs[:2], docs[2:])])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_contradictions_and_unsupported_combinations_are_refused():
    model = LrpeForCausalLM(config("lrpe-unitary-householder")).eval()
    full, _ = flatten(documents(), return_flash_attn_kwargs=True, return_seq_idx=True)
    ids, pos = full["input_ids"], full["position_ids"]
    with pytest.raises(ValueError, match="position_ids do not restart"):
        model(ids, position_ids=torch.arange(ids.shape[1])[None], cu_seq_lens_q=full["cu_seq_lens_q"])
    with pytest.raises(ValueError, match="cu_seq_lens_q and cu_seq_lens_k differ"):
        model(ids, cu_seq_lens_q=full["cu_seq_lens_q"], cu_seq_lens_k=torch.tensor([0, 22]))
    with pytest.raises(ValueError, match="seq_idx and cu_seq_lens mark different"):
        model(ids, cu_seq_lens_q=full["cu_seq_lens_q"], seq_idx=torch.zeros_like(ids))
    with pytest.raises(ValueError, match="max_length_q=3 disagrees"):
        model(ids, cu_seq_lens_q=full["cu_seq_lens_q"], max_length_q=3)
    with pytest.raises(ValueError, match="end at the number of tokens"):
        model(ids, cu_seq_lens_q=torch.tensor([0, 5, 30]))
    with pytest.raises(ValueError, match="non-decreasing"):
        model(ids, seq_idx=torch.arange(ids.shape[1]).flip(0)[None])
    with pytest.raises(ValueError, match="no padding"):
        mask = torch.ones_like(ids)
        mask[0, 3] = 0
        model(ids, attention_mask=mask, seq_idx=full["seq_idx"])
    with pytest.raises(ValueError, match="returns no cache"):
        model(ids, position_ids=pos, use_cache=True)
    # a left-padded ordinary batch with its position ids is not mistaken for a packed one
    padded = torch.tensor([[0, 0, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    positions = torch.tensor([[0, 0, 0, 1, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, attention_mask=mask, position_ids=positions).logits[:, 2:],
                                   model(padded[:, 2:]).logits, rtol=1e-4, atol=1e-5)


def test_ops_refuse_what_packing_cannot_honour():
    q = torch.rand(1, 2, 6, 4)
    seq = torch.tensor([[0, 0, 0, 1, 1, 1]])
    with pytest.raises(ValueError, match="causal attention only"):
        linear_attention(q, q, q, causal=False, seq_idx=seq)
    with pytest.raises(ValueError, match="initial_state or return_state"):
        linear_attention(q, q, q, causal=True, seq_idx=seq, return_state=True)
    with pytest.raises(ValueError, match="integer tensor"):
        linear_attention(q, q, q, causal=True, seq_idx=seq.float())


def test_mixformer_seq2seq_refuses_packed_batches():
    from lrpe_hf.models.mixformer import MixFormerConfig, MixFormerForConditionalGeneration

    model = MixFormerForConditionalGeneration(MixFormerConfig(
        is_encoder_decoder=True, vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, head_dim=8,
        layer_attention=["lrpe"], layer_ffn_dim=[32], layer_num_heads=[2], decoder_layers=1,
        decoder_layer_attention=["cosformer"], decoder_layer_ffn_dim=[32], decoder_layer_num_heads=[2],
        pad_token_id=0, bos_token_id=1, decoder_start_token_id=1,
    ))
    inputs, labels = flatten(documents())
    with pytest.raises(ValueError, match="does not take packed"):
        model(**inputs, labels=labels)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and flash-linear-attention")
def test_fla_kernel_gets_the_boundaries_on_gpu():
    from lrpe_hf.ops.fla_backend import fla_available

    q = torch.rand(1, 2, 40, 16, device="cuda")
    if not fla_available(q):
        pytest.skip("flash-linear-attention is not installed")
    k, v = torch.rand_like(q), torch.rand_like(q)
    seq = torch.tensor([[0] * 13 + [1] * 20 + [2] * 7], device="cuda")
    lam = torch.tensor([[0.9, 0.99]], device="cuda")
    want = linear_attention(q, k, v, causal=True, decay=lam, seq_idx=seq, backend="torch")
    got = linear_attention(q, k, v, causal=True, decay=lam, seq_idx=seq, backend="fla")
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


def _grads(model):
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


def _assert_same_grads(got, want):
    assert got.keys() == want.keys() and got
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("preset", ["lrpe-unitary-householder", "lrpe-d", "permuteformer", "cosformer", "softmax"])
def test_masked_lm_loss_and_gradients_are_the_token_weighted_mean(preset):
    torch.manual_seed(0)
    model = LrpeForMaskedLM(config(preset, causal=False, chunk_size=4))
    docs = documents(seed=3)
    g = torch.Generator().manual_seed(4)
    labels = [torch.where(torch.rand(len(d), generator=g) < 0.5, d, torch.full_like(d, -100)) for d in docs]
    labels[0][0] = docs[0][0]  # every document but the one-token one predicts something
    inputs, _ = flatten(docs)
    model(**inputs, labels=torch.cat(labels)[None]).loss.backward()
    packed = _grads(model)
    counts = [int((lab != -100).sum()) for lab in labels]
    separate = sum(model(d[None], labels=lab[None]).loss * (c / sum(counts))
                   for d, lab, c in zip(docs, labels, counts) if c)
    separate.backward()
    _assert_same_grads(packed, _grads(model))


@pytest.mark.parametrize("pooling", ["mean", "first"])
@pytest.mark.parametrize("preset", ["lrpe-rotation-householder-learned", "lrpe-d", "rope", "softmax"])
def test_classifier_loss_and_gradients_are_the_mean_over_documents(preset, pooling):
    torch.manual_seed(0)
    model = LrpeForSequenceClassification(config(preset, causal=False, chunk_size=4, num_labels=3,
                                                 classifier_pooling=pooling))
    docs = documents(seed=5)
    labels = torch.tensor([2, 0, 1, 1])
    inputs, _ = flatten(docs)
    packed_loss = model(**inputs, labels=labels).loss
    packed_loss.backward()
    packed = _grads(model)
    separate = sum(model(d[None], labels=lab[None]).loss for d, lab in zip(docs, labels)) / len(docs)
    separate.backward()
    torch.testing.assert_close(packed_loss, separate, rtol=1e-5, atol=1e-6)
    _assert_same_grads(packed, _grads(model))


def test_gradient_checkpointing_and_inputs_embeds_keep_the_documents_apart():
    torch.manual_seed(0)
    model = LrpeForCausalLM(config("lrpe-unitary-householder-learned", chunk_size=4)).train()  # dropout is 0
    docs = documents(seed=6)
    inputs, labels = flatten(docs)
    model(**inputs, labels=labels).loss.backward()
    plain = _grads(model)
    model.gradient_checkpointing_enable()
    model(**inputs, labels=labels).loss.backward()
    _assert_same_grads(_grads(model), plain)
    model.gradient_checkpointing_disable()
    model.eval()
    with torch.no_grad():
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        got = model(inputs_embeds=embeds, position_ids=inputs["position_ids"]).logits[0]
        alone = _separately(model, docs)
    torch.testing.assert_close(got, alone, rtol=1e-4, atol=1e-5)


def test_one_example_from_the_collator_and_empty_examples_at_the_ends():
    torch.manual_seed(0)
    model = LrpeForCausalLM(config("lrpe-d", chunk_size=4)).eval()
    doc = documents(lengths=(10,))[0]
    with torch.no_grad():
        alone = model(doc[None]).logits
        inputs, _ = flatten([doc], return_flash_attn_kwargs=True, return_seq_idx=True)
        torch.testing.assert_close(model(**inputs).logits, alone)
        # empty documents first, last and in the middle: the boundaries are those of the non-empty ones
        got = model(doc[None], cu_seq_lens_q=torch.tensor([0, 0, 3, 3, 3, 10, 10]),
                    seq_idx=torch.tensor([[1] * 3 + [4] * 7])).logits[0]
        want = torch.cat([model(doc[None, :3]).logits[0], model(doc[None, 3:]).logits[0]])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_more_disagreements_are_refused_by_name():
    from transformers import DynamicCache

    model = LrpeForCausalLM(config("rope")).eval()
    full, _ = flatten(documents(), return_flash_attn_kwargs=True, return_seq_idx=True)
    ids, pos, seq_idx = full["input_ids"], full["position_ids"], full["seq_idx"]
    shifted = seq_idx.clone()
    shifted[0, 5] = 0  # the second document starts one token later than the positions say
    with pytest.raises(ValueError, match="position_ids do not restart"):
        model(ids, position_ids=pos, seq_idx=shifted)
    with pytest.raises(ValueError, match="only together with cu_seq_lens"):
        model(ids, max_length_q=9)
    with pytest.raises(ValueError, match="across two rows"):
        model(torch.cat([ids[:, :11], ids[:, 11:]]), cu_seq_lens_q=torch.tensor([0, 5, 14, 22]))
    with pytest.raises(ValueError, match="seq_idx must be an integer tensor of shape"):
        model(ids, seq_idx=seq_idx[:, :-1])
    with pytest.raises(ValueError, match="cannot continue or fill a cache"):
        model(ids, seq_idx=seq_idx, cache=DynamicCache(config=model.config))
    with pytest.raises(TypeError, match="'cu_seqlens'"):  # fla's name is not one of the collator's: not swallowed
        model(ids, cu_seqlens=full["cu_seq_lens_q"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and flash-linear-attention")
@pytest.mark.parametrize("preset", ["lrpe-unitary-householder", "lrpe-d"])
def test_fla_backend_packed_model_equals_the_torch_backend_on_gpu(preset):
    from lrpe_hf.ops.fla_backend import fla_available

    if not fla_available(torch.zeros(1, device="cuda")):
        pytest.skip("flash-linear-attention is not installed")
    torch.manual_seed(0)
    docs = documents(lengths=(70, 3, 100, 40))
    inputs, labels = flatten(docs)
    inputs = {k: v.cuda() for k, v in inputs.items()}
    logits = {}
    for backend in ("torch", "fla"):
        torch.manual_seed(0)
        model = LrpeForCausalLM(config(preset, linear_attention_backend=backend)).cuda().eval()
        with torch.no_grad():
            logits[backend] = model(**inputs).logits
    torch.testing.assert_close(logits["fla"], logits["torch"], rtol=2e-3, atol=2e-3)
