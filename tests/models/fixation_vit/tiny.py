"""Tiny configs shared by the fixation_vit tests (32 px frames, 4x4 token grid, width 32)."""

from lrpe_hf.models.fixation_vit import FixationViTConfig

TINY = dict(
    image_size=32, patch_size=8, patch_stride=8, patch_padding=0, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=64, num_frames=4, num_time_embeddings=4, classifier_hidden_size=16,
    num_labels=3,
)


def tiny_config(**overrides) -> FixationViTConfig:
    return FixationViTConfig(**{**TINY, **overrides})
