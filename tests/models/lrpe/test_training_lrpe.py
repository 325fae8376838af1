"""Training integrations: Trainer, PEFT LoRA, gradient checkpointing, autocast, torch.compile."""

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

import lrpe_hf  # noqa: F401
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM, LrpeForSequenceClassification

VOCAB = 64


def tiny(name="lrpe-unitary-householder-learned", **kw):
    torch.manual_seed(0)
    return LrpeConfig.from_preset(name, size="tiny", vocab_size=VOCAB, pad_token_id=0, **kw)


def batch(b=4, n=16, seed=0):
    # A learnable pattern: each row counts up from a random start.
    start = torch.randint(1, VOCAB - n, (b, 1), generator=torch.Generator().manual_seed(seed))
    return start + torch.arange(n)


def test_trainer_two_steps_lower_the_loss(tmp_path):
    model = LrpeForCausalLM(tiny())
    x = batch(8)
    ds = Dataset.from_dict({"input_ids": x.tolist(), "labels": x.tolist()})
    with torch.no_grad():
        before = model(x, labels=x).loss.item()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=2, learning_rate=1e-2,
        use_cpu=True, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=ds).train()
    with torch.no_grad():
        after = model(x, labels=x).loss.item()
    assert after < before


@pytest.mark.parametrize("target_modules", ["all-linear", ["q_proj", "k_proj", "v_proj", "o_proj"]])
def test_lora_trains_only_adapters_and_merges_to_same_logits(target_modules):
    from peft import LoraConfig, get_peft_model

    model = LrpeForCausalLM(tiny())
    frozen = {k: v.detach().clone() for k, v in model.state_dict().items()}
    peft_model = get_peft_model(
        model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=target_modules, init_lora_weights=False)
    )
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    x = batch()
    for _ in range(2):
        peft_model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
    for name, value in peft_model.base_model.model.state_dict().items():
        if "lora_" in name:
            continue
        base_name = name.replace(".base_layer", "")
        assert torch.equal(value, frozen[base_name]), name
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=x).logits
        merged = peft_model.merge_and_unload()
        torch.testing.assert_close(merged(x).logits, adapted, atol=1e-5, rtol=1e-5)
    assert not any("lora_" in n for n, _ in merged.named_parameters())


def test_lora_on_sequence_classification_with_saved_head():
    from peft import LoraConfig, get_peft_model

    model = LrpeForSequenceClassification(tiny(num_labels=2))
    peft_model = get_peft_model(
        model, LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"])
    )
    out = peft_model(input_ids=batch(), labels=torch.tensor([0, 1, 0, 1]))
    out.loss.backward()
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("name", ["lrpe-unitary-householder-learned", "softmax"])
def test_gradient_checkpointing_gives_the_same_gradients(name):
    x = batch()
    grads = []
    for checkpointing in (False, True):
        model = LrpeForCausalLM(tiny(name))
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.model.layers[0].gradient_checkpointing
        model(x, labels=x).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_autocast_and_bf16_weights(dtype):
    model = LrpeForCausalLM(tiny())
    x = batch()
    ref = model(x, labels=x)
    with torch.autocast("cpu", dtype=dtype):
        out = model(x, labels=x)
    assert out.logits.dtype == dtype
    assert torch.isfinite(out.loss) and abs(out.loss.item() - ref.loss.item()) < 0.05
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model_bf16 = LrpeForCausalLM(tiny()).to(torch.bfloat16).eval()
    gen = model_bf16.generate(x[:1, :4], max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert gen.shape == (1, 8)


@pytest.mark.parametrize(
    "name",
    [
        "lrpe-unitary-householder-learned",
        *[
            pytest.param(name, marks=pytest.mark.slow)
            for name in ("lrpe-rotation-householder-learned", "lrpe-permutation-householder", "nope", "rope",
                         "cosformer", "permuteformer", "lrpe-d", "softmax")
        ],
    ],
)
def test_chunked_forward_traces_without_graph_breaks(name):
    """Dynamo traces the whole training forward (chunked path, loss included) as one graph."""
    torch._dynamo.reset()
    model = LrpeForCausalLM(tiny(name))
    x = batch()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    out = compiled(input_ids=x, labels=x, use_cache=False)
    torch.testing.assert_close(out.loss, model(x, labels=x, use_cache=False).loss)


@pytest.mark.slow
def test_inductor_compile_matches_eager_forward_and_backward():
    torch._dynamo.reset()
    model = LrpeForCausalLM(tiny())
    x = batch()
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(input_ids=x, labels=x, use_cache=False)
    ref = model(x, labels=x, use_cache=False)
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-5)
    out.loss.backward()


@pytest.mark.parametrize("head", ["causal", "classification"])
def test_gradient_accumulation_equals_the_big_batch(tmp_path, head):
    x = batch(4, 12)
    if head == "causal":
        make = lambda: LrpeForCausalLM(tiny())  # noqa: E731
        # Different numbers of supervised tokens per micro-batch: the loss must be normalised over the whole batch.
        labels = x.clone()
        labels[0, :6] = -100
        rows = {"input_ids": x.tolist(), "labels": labels.tolist()}
    else:
        make = lambda: LrpeForSequenceClassification(tiny(num_labels=2))  # noqa: E731
        rows = {"input_ids": x.tolist(), "labels": [0, 1, 1, 0]}
    ds = Dataset.from_dict(rows)
    weights = []
    for bs, accumulation in ((4, 1), (2, 2)):
        model = make()
        args = TrainingArguments(
            output_dir=str(tmp_path / f"{bs}"), per_device_train_batch_size=bs, gradient_accumulation_steps=accumulation,
            max_steps=1, learning_rate=1e-2, optim="sgd", use_cpu=True, report_to=[], save_strategy="no",
            disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=ds).train()
        weights.append(model.model.embed_tokens.weight.detach().clone())
    torch.testing.assert_close(weights[1], weights[0], atol=1e-6, rtol=1e-5)
