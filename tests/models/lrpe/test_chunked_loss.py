"""LrpeConfig(loss_chunk_size=n): the causal-LM loss and every parameter's gradient equal Transformers' two-step
loss (all logits, then cross-entropy) while training, with packed rows, ignored labels and the Trainer's
num_items_in_batch; evaluation still returns logits; the Trainer trains with it."""

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

import lrpe_hf  # noqa: F401
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM

VOCAB = 64


def pair(**kw):
    """The same weights with the two losses."""
    torch.manual_seed(0)
    plain = LrpeForCausalLM(LrpeConfig.from_preset("lrpe-unitary-householder-learned", size="tiny", vocab_size=VOCAB,
                                                   pad_token_id=0, hidden_dropout_prob=0.0, **kw))
    chunked = LrpeForCausalLM(LrpeConfig(**{**plain.config.to_dict(), "loss_chunk_size": 7}))
    chunked.load_state_dict(plain.state_dict())
    return plain.train(), chunked.train()


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("extra", [{}, {"num_items_in_batch": 19}, {"packed": True}])
def test_loss_and_gradients_equal_the_two_step_loss(extra):
    plain, chunked = pair()
    ids = torch.randint(1, VOCAB, (2, 13), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :4] = -100
    kwargs = {}
    if extra.get("num_items_in_batch"):
        kwargs["num_items_in_batch"] = extra["num_items_in_batch"]
    if extra.get("packed"):
        ids, labels = ids.reshape(1, -1), labels.reshape(1, -1)
        kwargs["position_ids"] = torch.cat([torch.arange(13), torch.arange(13)])[None]
    outs = []
    for model in (plain, chunked):
        out = model(input_ids=ids, labels=labels, **kwargs)
        out.loss.backward()
        outs.append(out)
    assert outs[0].logits is not None and outs[1].logits is None
    torch.testing.assert_close(outs[1].loss, outs[0].loss, rtol=1e-6, atol=1e-6)
    a, b = _grads(plain), _grads(chunked)
    assert a.keys() == b.keys() and "model.embed_tokens.weight" in a  # the tied head's gradient arrives there
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_evaluation_and_generation_keep_their_logits():
    plain, chunked = pair()
    ids = torch.randint(1, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))
    chunked.eval()
    with torch.no_grad():
        out = chunked(input_ids=ids, labels=ids)
        ref = plain.eval()(input_ids=ids, labels=ids)
    torch.testing.assert_close(out.logits, ref.logits)
    torch.testing.assert_close(out.loss, ref.loss)
    assert torch.equal(chunked.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0),
                       plain.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0))


def test_trainer_steps_with_the_chunked_loss_lower_it(tmp_path):
    torch.manual_seed(0)
    model = LrpeForCausalLM(LrpeConfig.from_preset("lrpe-unitary-householder-learned", size="tiny", vocab_size=VOCAB,
                                                   pad_token_id=0, loss_chunk_size=16))
    start = torch.randint(1, VOCAB - 16, (8, 1), generator=torch.Generator().manual_seed(0))
    x = start + torch.arange(16)
    ds = Dataset.from_dict({"input_ids": x.tolist(), "labels": x.tolist()})
    with torch.no_grad():
        before = model.eval()(x, labels=x).loss.item()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3, learning_rate=1e-2,
                             use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True)
    Trainer(model=model.train(), args=args, train_dataset=ds).train()
    with torch.no_grad():
        assert model.eval()(x, labels=x).loss.item() < before


def test_bad_loss_chunk_size_is_refused():
    with pytest.raises(ValueError, match="loss_chunk_size must be a non-negative int"):
        LrpeConfig.from_preset("lrpe-d", size="tiny", loss_chunk_size=-1)
