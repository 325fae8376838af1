"""Convert state dicts of the official implementation (OpenNLPLab/Linear_VideoTransformer) to this package.

Official checkpoints are SlowFast-style: weights under ``model_state`` (or ``state_dict``, or a plain dict), keys of
the wrapper model prefixed ``base_model.`` (backbone), ``consensus.mlp_head.`` (video head) and ``new_fc.`` (an unused
linear, dropped), possibly behind ``module.`` from distributed training. Every key is mapped explicitly; unknown or
missing keys are refused with the full list.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

# block-relative official name -> block-relative plugin name
_BLOCK_RENAMES = (
    ("temporal_norm1.", "temporal_layernorm."),
    ("temporal_attn.qkv.", "temporal_attention.qkv."),
    ("temporal_attn.proj.", "temporal_attention.out_proj."),
    ("temporal_attn.pgate.", "temporal_attention.fixation_gate."),
    ("temporal_attn.q_gate.", "temporal_attention.fixation_gate_q."),
    ("temporal_attn.k_gate.", "temporal_attention.fixation_gate_k."),
    ("norm1.", "spatial_layernorm."),
    ("attn.qkv.", "spatial_attention.qkv."),
    ("attn.proj.", "spatial_attention.out_proj."),
    ("attn.pgate.", "spatial_attention.fixation_gate."),
    ("attn.q_gate.", "spatial_attention.fixation_gate_q."),
    ("attn.k_gate.", "spatial_attention.fixation_gate_k."),
    ("norm2.", "mlp_layernorm."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.dwconv.dwconv.", "mlp.dwconv."),
    ("mlp.fc2.", "mlp.fc2."),
)
_BACKBONE_RENAMES = (
    ("patch_embed.proj.", "embeddings.patch_embeddings.projection."),
    ("patch_embed.norm.", "embeddings.layernorm."),
    ("norm.", "layernorm."),
)
_HEAD_RENAMES = (("0.", "classifier.layernorm."), ("1.", "classifier.dense."), ("4.", "classifier.out_proj."))
_PARAM_SUFFIXES = ("weight", "bias")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _rename(key: str, table) -> str | None:
    for old, new in table:
        if key.startswith(old):
            rest = key[len(old):]
            if rest in _PARAM_SUFFIXES:
                return new + rest
    return None


def convert_block_key(key: str) -> str | None:
    """Official block key (``temporal_attn.pgate.weight``) -> plugin layer key, or ``None`` if unknown."""
    return _rename(key, _BLOCK_RENAMES)


def convert_block_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One official ``LinearBlock`` state dict -> :class:`FixationViTLayer` state dict (refuses unknown keys)."""
    out, unknown = {}, []
    for key, value in state_dict.items():
        new = convert_block_key(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ValueError(f"unknown keys in the official block state dict: {sorted(unknown)}")
    return out


def convert_backbone_key(key: str) -> str | None:
    """Official backbone key (no ``base_model.`` prefix) -> :class:`FixationViTModel` key, or ``None``."""
    if key == "temp_embed":
        return "embeddings.time_embeddings"
    match = _BLOCK_KEY.match(key)
    if match:
        inner = convert_block_key(match.group(2))
        return None if inner is None else f"layer.{match.group(1)}.{inner}"
    return _rename(key, _BACKBONE_RENAMES)


def unwrap_checkpoint(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The weights of an official checkpoint: under ``model_state`` or ``state_dict`` or the dict itself, with a
    distributed-training ``module.`` prefix removed."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    for nest in ("model_state", "state_dict"):
        if nest in checkpoint and isinstance(checkpoint[nest], dict):
            checkpoint = checkpoint[nest]
            break
    weights = {}
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint entry {key!r} is not a tensor ({type(value).__name__}); not a state dict?")
        weights[key[len("module."):] if key.startswith("module.") else key] = value
    return weights


def convert_state_dict(checkpoint: dict, *, backbone_prefix: str = "fixation_vit.",
                       with_head: bool = True) -> dict[str, torch.Tensor]:
    """Official wrapper-model weights -> :class:`FixationViTForVideoClassification` state dict.

    ``with_head=False`` converts for :class:`FixationViTModel` (pass ``backbone_prefix=""``) and then refuses head keys
    like any other unknown key. ``new_fc.*`` is dropped. Raises ``ValueError`` listing every unknown key.
    """
    weights = unwrap_checkpoint(checkpoint)
    out, unknown = {}, []
    for key, value in weights.items():
        if key.startswith("new_fc."):
            continue
        new = None
        if key.startswith("base_model."):
            inner = convert_backbone_key(key[len("base_model."):])
            if inner is not None:
                new = backbone_prefix + inner
                if inner == "embeddings.time_embeddings":
                    if value.dim() != 4 or value.shape[0] != 1 or value.shape[2] != 1:
                        raise ValueError(f"{key} should have shape (1, F, 1, D), got {tuple(value.shape)}")
                    value = value[0, :, 0, :]
        elif key.startswith("consensus.mlp_head.") and with_head:
            new = _rename(key[len("consensus.mlp_head."):], _HEAD_RENAMES)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ValueError(f"{len(unknown)} key(s) of the official checkpoint have no counterpart: {sorted(unknown)}")
    return out


def join_official_state_dicts(backbone: dict[str, torch.Tensor], head: dict[str, torch.Tensor] | None = None):
    """Backbone and ``VVTHead.mlp_head`` state dicts stored separately -> one wrapper-model state dict."""
    joined = {f"base_model.{k}": v for k, v in backbone.items()}
    if head is not None:
        joined.update({f"consensus.mlp_head.{k}": v for k, v in head.items()})
    return joined


def load_converted(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Strict load with a readable error listing missing / unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items() if k in expected and v.shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            "converted checkpoint does not match the model config: "
            f"missing={missing} unexpected={unexpected} shape_mismatch={mismatched}"
        )
    model.load_state_dict(state_dict, strict=True)


def read_checkpoint(path: str | Path) -> dict:
    """Read an official checkpoint safely: safetensors, or a torch pickle with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - report what went wrong with the file
        raise ValueError(f"cannot read {path} as a weights-only torch checkpoint: {err}") from err


def convert_checkpoint(checkpoint_path, config, output_dir, processor_kwargs: dict | None = None):
    """Read, convert, strictly load and ``save_pretrained`` (config, safetensors, image processor).

    Returns the loaded :class:`FixationViTForVideoClassification`.
    """
    from .image_processing_fixation_vit import FixationViTImageProcessor
    from .modeling_fixation_vit import FixationViTForVideoClassification

    state_dict = convert_state_dict(read_checkpoint(checkpoint_path))
    head_key = "classifier.out_proj.weight"
    if head_key in state_dict and state_dict[head_key].shape[0] != config.num_labels:
        raise ValueError(
            f"the checkpoint's head has {state_dict[head_key].shape[0]} classes but the config has num_labels="
            f"{config.num_labels}"
        )
    model = FixationViTForVideoClassification(config)
    load_converted(model, state_dict)
    model.eval()
    model.save_pretrained(output_dir)
    size = config.image_size
    kwargs = {"num_frames": config.num_frames, "size": {"shortest_edge": size},
              "crop_size": {"height": size, "width": size}}
    kwargs.update(processor_kwargs or {})
    FixationViTImageProcessor(**kwargs).save_pretrained(output_dir)
    return model


def config_from_json(path) -> "FixationViTConfig":  # noqa: F821 - imported lazily
    """A :class:`FixationViTConfig` from a JSON file of its fields (e.g. ``{"num_labels": 174}`` for SSv2)."""
    import json

    from .configuration_fixation_vit import FixationViTConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config JSON not found: {path}")
    try:
        fields = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(fields, dict):
        raise ValueError(f"{path} must hold a JSON object of config fields")
    model_type = fields.pop("model_type", FixationViTConfig.model_type)
    if model_type != FixationViTConfig.model_type:
        raise ValueError(f"{path} describes model_type={model_type!r}, expected 'fixation_vit'")
    return FixationViTConfig(**fields)
