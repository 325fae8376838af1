"""Checks shared by the image classifiers' tests (lrpe_vit, mixformer)."""

import pytest
import torch


def _lora_train_save_reload(make_model, target_modules, num_labels, tmp_path):
    """LoRA on ``target_modules`` with the classifier saved: only adapters and the classifier train, four steps
    lower the loss, and the saved adapter on fresh base weights (same seed) gives the same logits. Returns the
    trained PEFT model, its inputs and its logits for further checks."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    lora = peft.get_peft_model(make_model(), peft.LoraConfig(r=4, target_modules=target_modules,
                                                             modules_to_save=["classifier"]))
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, num_labels, (8,))
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = lora(pixel_values=x, labels=y).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # The adapters took part: LoRA's B starts at zero and moves only if the wrapped layers were called (a layer that
    # read the base weight directly would leave every adapter untouched and this whole check vacuous).
    lora_b = [p for n, p in lora.named_parameters() if "lora_B" in n]
    assert lora_b and all(bool(p.detach().abs().sum() > 0) for p in lora_b)
    out = lora.eval()(pixel_values=x).logits
    lora.save_pretrained(tmp_path)
    torch.manual_seed(0)  # the same base weights again
    reloaded = peft.PeftModel.from_pretrained(make_model(), tmp_path)
    assert torch.allclose(reloaded.eval()(pixel_values=x).logits, out, atol=1e-6)
    return lora, x, out


@pytest.fixture
def lora_train_save_reload():
    return _lora_train_save_reload
