"""Tiny configurations and example inputs for every registered architecture, shared by the hub tests.

Tests iterate over ``lrpe_hf.MODEL_TYPES``; a model type registered without an entry here fails those tests with a
message asking for one (so a new architecture is never silently left out).
"""

from __future__ import annotations

import importlib

import torch

import lrpe_hf

# model_type -> keyword arguments of its config class giving a model small enough for CPU tests;
# (model_type, Auto class) entries override them for heads needing another configuration.
TINY_CONFIGS: dict = {
    "lrpe": dict(preset="lrpe-unitary-householder", size="tiny", vocab_size=64, pad_token_id=0, num_labels=3),
    "lrpe_vit": dict(image_size=16, patch_size=4, hidden_size=32, num_attention_heads=2, num_hidden_layers=2,
                     num_labels=3),
    "mixformer": dict(hidden_size=32, num_hidden_layers=2, head_dim=8, image_size=16, patch_size=4, num_labels=3,
                      layer_attention=["cosformer", "lrpe"], layer_ffn_dim=[64, 32], layer_num_heads=[4, 2]),
    ("mixformer", "AutoModelForSeq2SeqLM"): dict(
        is_encoder_decoder=True, vocab_size=40, hidden_size=32, num_hidden_layers=2, head_dim=8,
        layer_attention=["cosformer", "lrpe"], layer_ffn_dim=[64, 48], layer_num_heads=[4, 2], decoder_layers=2,
        decoder_layer_attention=["softmax", "cosformer"], decoder_layer_ffn_dim=[32, 48],
        decoder_layer_num_heads=[2, 4], pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        max_position_embeddings=48),
    "fixation_vit": dict(image_size=32, patch_size=8, patch_stride=8, patch_padding=0, hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_frames=4,
                         num_time_embeddings=4, classifier_hidden_size=16, num_labels=3),
    "dgfn": dict(tpn_channels=(4, 4, 4), spn_width_multiplier=0.125, filter_channels=(8, 8, 8), use_batchnorm=False),
}


def registration(model_type: str):
    return importlib.import_module(f"lrpe_hf.models.{lrpe_hf.MODEL_TYPES[model_type]}")


def tiny_config(model_type: str, auto_name: str | None = None):
    kwargs = TINY_CONFIGS.get((model_type, auto_name), TINY_CONFIGS.get(model_type))
    if kwargs is None:
        raise AssertionError(
            f"model_type {model_type!r} is registered but tests/hub/tiny_models.py has no tiny config for it; add one"
        )
    config_class = registration(model_type).CONFIG_CLASS
    kwargs = dict(kwargs)
    preset = kwargs.pop("preset", None)
    return config_class.from_preset(preset, **kwargs) if preset else config_class(**kwargs)


def example_inputs(model_class, config, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic inputs for ``model_class``'s ``main_input_name``."""
    generator = torch.Generator().manual_seed(seed)
    name = getattr(model_class, "main_input_name", "input_ids")
    if name == "input_ids":
        ids = torch.randint(0, config.vocab_size, (batch_size, 8), generator=generator)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if getattr(model_class, "_is_seq2seq", False) or "Seq2Seq" in model_class.__name__ or "ConditionalGeneration" in model_class.__name__:
            inputs["decoder_input_ids"] = ids[:, :5]
        return inputs
    if name == "pixel_values":
        channels = getattr(config, "num_channels", 3)
        size = getattr(config, "image_size", 32)
        size = size if isinstance(size, int) else size[0]
        shape = (batch_size, channels, size, size)
        if getattr(config, "num_frames", None):
            shape = (batch_size, config.num_frames, channels, size, size)
        return {"pixel_values": torch.rand(shape, generator=generator)}
    raise AssertionError(f"{model_class.__name__}: no example inputs for main_input_name {name!r}")


def output_tensors(output) -> list[torch.Tensor]:
    """Every tensor of a model output, flattened in order (None entries skipped)."""
    items = output.to_tuple() if hasattr(output, "to_tuple") else output
    tensors = []
    for item in items if isinstance(items, (tuple, list)) else (items,):
        if isinstance(item, torch.Tensor):
            tensors.append(item)
        elif isinstance(item, (tuple, list)):
            tensors.extend(output_tensors(item))
    return tensors


def model_cases() -> list[tuple[str, str]]:
    """(model_type, Auto class name) for every registration, including heads sharing a class."""
    return [(mt, auto) for mt in sorted(lrpe_hf.MODEL_TYPES) for auto in registration(mt).AUTO_MODEL_CLASSES]
