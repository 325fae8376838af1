import json
import random

import pytest
import torch
from transformers import AutoModelForImageClassification, TrainingArguments

import lrpe_hf  # noqa: F401
from lrpe_hf.nas.search_space import PRESETS, Arch, LayerStack
from lrpe_hf.nas.supernet import MixFormerSuperNetwork, arch_to_config, config_to_arch
from lrpe_hf.nas.train import image_collate, train_supernet

KWARGS = dict(image_size=16, patch_size=8, num_labels=5)


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return MixFormerSuperNetwork("small", KWARGS, seed=0).eval()


def _archs(space, n=6):
    rng = random.Random(0)
    archs = [space.sample_arch(rng) for _ in range(n)]
    return archs + [space.largest_arch(t) for t in space.encoder.attention_types] + [space.smallest_arch("cosformer")]


def test_slice_equals_exported_standalone_model(supernet):
    x = torch.randn(3, 3, 16, 16)
    for arch in _archs(supernet.space):
        supernet.set_active_arch(arch)
        with torch.no_grad():
            got = supernet(pixel_values=x).logits
            model = supernet.export(arch)
            want = model(pixel_values=x).logits
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        assert isinstance(model, lrpe_hf.MixFormerForImageClassification)
        assert model.config.layer_variants() == list(arch.encoder.attention_types)
        # Exact parameter count of the slice == the standalone model's count.
        sliced = supernet.sliced_state(arch)
        n_slice = sum(t.numel() for name, t in sliced.items() if name in dict(model.named_parameters()))
        assert supernet.num_parameters(arch) == model.num_parameters() == n_slice


def test_slices_are_prefixes_and_attention_types_do_not_share(supernet):
    space = supernet.space
    a = Arch(48, LayerStack(2, (128, 64), (2, 4), ("softmax", "lrpe")))
    b = Arch(48, LayerStack(2, (128, 64), (2, 4), ("cosformer", "lrpe")))
    ma, mb = supernet.export(a), supernet.export(b)
    qa = ma.mixformer.encoder.layers[0].self_attn.q_proj.weight
    full = supernet.weights["softmax::mixformer.encoder.layers.0.self_attn.q_proj.weight".replace(".", "/")]
    assert qa.shape == (2 * space.head_dim, 48)
    torch.testing.assert_close(qa, full[: 2 * space.head_dim, :48])
    # k and v are sliced block-wise from their own matrices (the clean variant, not a packed [0:3s] slice).
    kfull = supernet.weights["softmax::mixformer.encoder.layers.0.self_attn.k_proj.weight".replace(".", "/")]
    torch.testing.assert_close(ma.mixformer.encoder.layers[0].self_attn.k_proj.weight, kfull[:32, :48])
    assert not torch.equal(qa, mb.mixformer.encoder.layers[0].self_attn.q_proj.weight)  # own weights per type
    # Shared parts (FFN, norms, lrpe layer 1) are the same tensors in both sub-networks.
    torch.testing.assert_close(ma.mixformer.encoder.layers[0].ffn.fc1.weight, mb.mixformer.encoder.layers[0].ffn.fc1.weight)
    torch.testing.assert_close(ma.mixformer.encoder.layers[1].self_attn.q_proj.weight, mb.mixformer.encoder.layers[1].self_attn.q_proj.weight)


def test_gradients_reach_only_the_active_slice():
    sn = MixFormerSuperNetwork("small", KWARGS, seed=0).train()
    arch = Arch(32, LayerStack(2, (64, 64), (2, 2), ("cosformer", "softmax")))
    sn.set_active_arch(arch)
    sn(pixel_values=torch.randn(2, 3, 16, 16), labels=torch.tensor([0, 1])).loss.backward()
    grad = lambda key: sn.weights[key.replace(".", "/")].grad  # noqa: E731
    g = grad("cosformer::mixformer.encoder.layers.0.self_attn.q_proj.weight")
    assert g is not None and g[:32, :32].abs().sum() > 0 and g[32:].abs().sum() == 0 and g[:, 32:].abs().sum() == 0
    assert grad("softmax::mixformer.encoder.layers.0.self_attn.q_proj.weight") is None
    g3 = grad("mixformer.encoder.layers.3.ffn.fc1.weight")  # layer slot 3 is skipped (depth 2)
    assert g3 is None or g3.abs().sum() == 0


def test_export_roundtrip_through_auto_class(supernet, tmp_path):
    arch = supernet.space.sample_arch(11)
    model = supernet.export(arch)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "m").eval()
    x = torch.randn(2, 3, 16, 16)
    supernet.set_active_arch(arch)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, supernet(pixel_values=x).logits, atol=1e-6, rtol=0)
    assert config_to_arch(loaded.config, supernet.space) == arch


def test_gene_config_gene_roundtrip():
    space = PRESETS["small"]
    for step in range(10):
        gene = space.sample_gene(step)
        cfg = arch_to_config(space.gene_to_arch(gene), space, **KWARGS)
        assert space.arch_to_gene(config_to_arch(cfg, space)) == space.canonical_gene(gene)
    bad = arch_to_config(space.largest_arch("softmax"), space, **KWARGS)
    bad.layer_ffn_dim = [100] * bad.num_hidden_layers
    with pytest.raises(ValueError, match="ffn_dim=100 is outside"):
        config_to_arch(bad, space)


def test_save_load_and_refuse_mismatched_checkpoints(supernet, tmp_path):
    supernet.save_pretrained(tmp_path / "sn")
    again = MixFormerSuperNetwork.from_pretrained(tmp_path / "sn", search_space="small")
    arch = supernet.space.sample_arch(5)
    x = torch.randn(2, 3, 16, 16)
    supernet.set_active_arch(arch)
    again.set_active_arch(arch)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(pixel_values=x).logits, supernet(pixel_values=x).logits)
    with pytest.raises(ValueError, match="trained for search space 'small'.*does not match.*'cifar10'"):
        MixFormerSuperNetwork.from_pretrained(tmp_path / "sn", search_space="cifar10")
    # Weights that do not fit the saved space (e.g. another space's checkpoint copied in) are refused.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tmp_path / "sn" / "supernet.safetensors"))
    key = next(iter(tensors))
    tensors[key] = torch.zeros(3)
    save_file(tensors, str(tmp_path / "sn" / "supernet.safetensors"))
    with pytest.raises(ValueError, match="do not match its search space"):
        MixFormerSuperNetwork.from_pretrained(tmp_path / "sn")
    with pytest.raises(FileNotFoundError, match="not a super-network checkpoint"):
        MixFormerSuperNetwork.from_pretrained(tmp_path)


def test_trainer_samples_one_arch_per_optimizer_step(tmp_path):
    sn = MixFormerSuperNetwork("small", KWARGS, seed=0)
    seen = []
    orig = sn.forward

    def spy(*args, **kwargs):
        seen.append(sn.active_arch)
        return orig(*args, **kwargs)

    sn.forward = spy
    data = [{"pixel_values": torch.randn(3, 16, 16), "labels": torch.tensor(i % 5)} for i in range(16)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                             max_steps=4, learning_rate=1e-3, save_strategy="no", report_to=[], use_cpu=True,
                             remove_unused_columns=False, disable_tqdm=True, logging_steps=100)
    before = {k: v.detach().clone() for k, v in sn.weights.items()}
    trainer = train_supernet(sn, data, args, data_collator=image_collate, seed=3)
    assert len(seen) == 8  # 4 steps x 2 micro-batches
    for step in range(4):
        assert seen[2 * step] == seen[2 * step + 1] == sn.space.sample_arch(3 * 1_000_003 + step)
    assert [s for s, _ in trainer.sampling_callback.history] == [0, 1, 2, 3]
    assert any(not torch.equal(before[k], v) for k, v in sn.weights.items())


def test_translation_supernet_slices_equal_exported_seq2seq_models():
    from transformers import AutoModelForSeq2SeqLM

    sn = MixFormerSuperNetwork("small-translation", dict(vocab_size=40, pad_token_id=0, decoder_start_token_id=1,
                                                         bos_token_id=1, eos_token_id=2)).eval()
    # Self-attention carries the gene (typed weights); cross-attention is always softmax and shared.
    assert all(p.endswith("self_attn") for p in sn._typed_paths) and len(sn._typed_paths) == 4
    ids, labels = torch.randint(3, 40, (2, 7)), torch.randint(3, 40, (2, 5))
    for step in range(3):
        arch = sn.space.sample_arch(step)
        sn.set_active_arch(arch)
        model = sn.export(arch)
        with torch.no_grad():
            torch.testing.assert_close(sn(input_ids=ids, labels=labels).logits, model(input_ids=ids, labels=labels).logits,
                                       atol=1e-6, rtol=0)
        assert sn.num_parameters(arch) == model.num_parameters()
        assert model.config.layer_variants(decoder=True) == list(arch.decoder.attention_types)
    assert isinstance(model, AutoModelForSeq2SeqLM._model_mapping[type(model.config)])
    assert model.generate(ids, max_new_tokens=3, num_beams=2).shape[0] == 2


def test_cost_model_counts_and_latency(supernet):
    from lrpe_hf.nas.flops import model_flops
    from lrpe_hf.nas.pipeline import SupernetCostModel
    from lrpe_hf.nas.search import Constraints, EvolutionarySearch

    cost = SupernetCostModel(supernet, warmup=1, runs=5)
    arch = supernet.space.sample_arch(2)
    assert cost.params(arch) == supernet.export(arch).num_parameters()
    assert cost.flops(arch) == model_flops(supernet.sub_config(arch))
    assert cost.latency_ms(arch) > 0
    search = EvolutionarySearch(supernet.space, lambda a: 0.0, cost, Constraints(max_latency_ms=1e-9), progress=False)
    assert search.violation(arch).startswith("latency_ms=")


def test_format_1_checkpoint_with_the_old_attention_names_loads_with_the_same_outputs(supernet, tmp_path):
    """Super-networks saved before the one attention module (format 1) named the attention parameters
    ``out_proj``/``encoding``/``norm``; they load (renamed) with the same outputs. A newer format is refused."""
    from safetensors.torch import load_file, save_file

    supernet.save_pretrained(tmp_path / "sn")
    config_path, weights_path = tmp_path / "sn" / "supernet_config.json", tmp_path / "sn" / "supernet.safetensors"
    old_names = {k.replace("_attn.o_proj.", "_attn.out_proj.").replace("self_attn.position_encoding.",
                                                                        "self_attn.encoding.")
                 .replace("self_attn.attention_norm.", "self_attn.norm."): v
                 for k, v in load_file(str(weights_path)).items()}
    assert any("out_proj" in k for k in old_names) and any("self_attn.norm." in k for k in old_names)
    save_file(old_names, str(weights_path))
    config = json.loads(config_path.read_text())
    config["format_version"] = 1
    config_path.write_text(json.dumps(config))
    old = MixFormerSuperNetwork.from_pretrained(tmp_path / "sn")
    arch = supernet.space.sample_arch(3)
    supernet.set_active_arch(arch)
    old.set_active_arch(arch)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(old.eval()(pixel_values=x).logits, supernet.eval()(pixel_values=x).logits)
    config["format_version"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="format_version 3"):
        MixFormerSuperNetwork.from_pretrained(tmp_path / "sn")
