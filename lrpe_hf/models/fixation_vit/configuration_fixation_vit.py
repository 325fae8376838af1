# Copyright 2026 The lrpe_hf authors. Licensed under the Apache License, Version 2.0.
"""Configuration of the feature-fixation linear video transformer (``model_type="fixation_vit"``)."""

from __future__ import annotations

from transformers import PretrainedConfig

from ...layers.fixation import ATTENTION_TYPES, FIXATION_INPUTS


def _grid_side(image_size: int, patch_size: int, stride: int, padding: int) -> int:
    return (image_size + 2 * padding - patch_size) // stride + 1


class FixationViTConfig(PretrainedConfig):
    r"""Configuration of :class:`FixationViTModel` / :class:`FixationViTForVideoClassification`.

    Defaults reproduce the official Something-Something v2 model (``lvit_v2_base``, 16 frames, 224 px): 12 divided
    space-time blocks of width 512 with 8 heads, ReLU(x) + d^-1/2 linear attention, a shared fixation gate fed
    [phi(q), phi(k~), v~], a temporal shift (fold D/4) inside the spatial attention and an eight-neighbour spatial shift
    inside the temporal attention. Every ablation switch of the paper is a field.

    Args:
        image_size: input height and width of a frame.
        num_channels: input channels.
        num_frames: frames per clip the processor samples (and the default temporal-shift segment).
        patch_size, patch_stride, patch_padding: the overlapping patch-embedding convolution (16/14/8 -> 17x17 grid
            at 224 px).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act: backbone shape.
        qkv_bias: bias of the fused qkv projection.
        layer_norm_eps: eps of the block and final LayerNorms (1e-6).
        patch_layer_norm_eps: eps of the patch-embedding LayerNorm (1e-5).
        classifier_layer_norm_eps: eps of the classification head's LayerNorm (1e-5).
        use_mlp_dwconv: 3x3 depth-wise convolution inside the MLP (PVTv2 style).
        num_time_embeddings: slots of the learned temporal embedding (8 in the official code, tiled over 16 frames;
            set it to ``num_frames`` for the clean variant).
        tile_time_embeddings: frame ``t`` uses slot ``t % num_time_embeddings``; if False, clips longer than the
            table are refused.
        feature_map_offset: offset of phi(x) = ReLU(x) + offset; ``None`` means ``head_dim ** -0.5``.
        linear_attention_eps: eps added (not clamped) to the linear-attention denominator.
        use_feature_fixation: the fixation gate on/off.
        share_fixation_gate: one gate re-weights q and k (True) or separate q and k gates (False, K400 config).
        fixation_inputs: what the gate sees: ``"qkv"`` ([phi(q), phi(k~), v~], final), ``"qk"``, ``"q"`` or ``"k"``
            (earlier variants).
        temporal_shift: XViT temporal channel shift of K and V inside the spatial attention.
        temporal_shift_div: fold = hidden_size // temporal_shift_div channels move forward, as many backward.
        temporal_shift_segment: frames per shift segment; ``None`` means all frames of the clip (K400 config: 8).
        spatial_shift: eight-neighbour channel shift of K and V inside the temporal attention.
        spatial_shift_size: neighbour distance (only 1 is implemented).
        attention_type: ``"linear"`` or ``"softmax"`` (same backbone, quadratic softmax attention; the gate then
            acts on raw q and k).
        attention_probs_dropout_prob: dropout on the re-weighted q and k (linear) or on the probabilities (softmax).
        hidden_dropout_prob: dropout after the patch embedding and inside the MLP.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        token_dropout: dropout applied to every token before pooling (official 0.5).
        classifier_hidden_size: width of the head's hidden layer (768).
        classifier_dropout: dropout inside the head (0.5).
        initializer_range: std of the truncated-normal Linear initialisation.
    """

    model_type = "fixation_vit"

    def __init__(
        self,
        image_size: int = 224,
        num_channels: int = 3,
        num_frames: int = 16,
        patch_size: int = 16,
        patch_stride: int = 14,
        patch_padding: int = 8,
        hidden_size: int = 512,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 8,
        intermediate_size: int = 2048,
        hidden_act: str = "gelu",
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        patch_layer_norm_eps: float = 1e-5,
        classifier_layer_norm_eps: float = 1e-5,
        use_mlp_dwconv: bool = True,
        num_time_embeddings: int = 8,
        tile_time_embeddings: bool = True,
        feature_map_offset: float | None = None,
        linear_attention_eps: float = 1e-6,
        use_feature_fixation: bool = True,
        share_fixation_gate: bool = True,
        fixation_inputs: str = "qkv",
        temporal_shift: bool = True,
        temporal_shift_div: int = 4,
        temporal_shift_segment: int | None = None,
        spatial_shift: bool = True,
        spatial_shift_size: int = 1,
        attention_type: str = "linear",
        attention_probs_dropout_prob: float = 0.0,
        hidden_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        token_dropout: float = 0.5,
        classifier_hidden_size: int = 768,
        classifier_dropout: float = 0.5,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        self.image_size = image_size
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.patch_padding = patch_padding
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.qkv_bias = qkv_bias
        self.layer_norm_eps = layer_norm_eps
        self.patch_layer_norm_eps = patch_layer_norm_eps
        self.classifier_layer_norm_eps = classifier_layer_norm_eps
        self.use_mlp_dwconv = use_mlp_dwconv
        self.num_time_embeddings = num_time_embeddings
        self.tile_time_embeddings = tile_time_embeddings
        self.feature_map_offset = feature_map_offset
        self.linear_attention_eps = linear_attention_eps
        self.use_feature_fixation = use_feature_fixation
        self.share_fixation_gate = share_fixation_gate
        self.fixation_inputs = fixation_inputs
        self.temporal_shift = temporal_shift
        self.temporal_shift_div = temporal_shift_div
        self.temporal_shift_segment = temporal_shift_segment
        self.spatial_shift = spatial_shift
        self.spatial_shift_size = spatial_shift_size
        self.attention_type = attention_type
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.hidden_dropout_prob = hidden_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.token_dropout = token_dropout
        self.classifier_hidden_size = classifier_hidden_size
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        super().__init__(**kwargs)
        self._validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def grid_size(self) -> int:
        """Tokens per side of a frame's patch grid (17 at 224 px with the default patch setup)."""
        return _grid_side(self.image_size, self.patch_size, self.patch_stride, self.patch_padding)

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        def bad(field, value, allowed):
            raise ValueError(f"FixationViTConfig: {field}={value!r} is invalid; {allowed}")

        for field in ("image_size", "num_channels", "num_frames", "patch_size", "patch_stride", "hidden_size",
                      "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_time_embeddings",
                      "classifier_hidden_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(field, value, "expected a positive integer")
        if not isinstance(self.patch_padding, int) or self.patch_padding < 0:
            bad("patch_padding", self.patch_padding, "expected an integer >= 0")
        if self.hidden_size % self.num_attention_heads:
            bad("hidden_size", self.hidden_size,
                f"must be divisible by num_attention_heads={self.num_attention_heads}")
        if self.image_size + 2 * self.patch_padding < self.patch_size:
            bad("image_size", self.image_size,
                f"image_size + 2*patch_padding must be >= patch_size={self.patch_size}")
        if self.attention_type not in ATTENTION_TYPES:
            bad("attention_type", self.attention_type, f"allowed: {ATTENTION_TYPES}")
        if self.fixation_inputs not in FIXATION_INPUTS:
            bad("fixation_inputs", self.fixation_inputs, f"allowed: {FIXATION_INPUTS}")
        from transformers.activations import ACT2FN

        if self.hidden_act not in ACT2FN:
            bad("hidden_act", self.hidden_act, f"allowed: {sorted(ACT2FN)}")
        for field in ("attention_probs_dropout_prob", "hidden_dropout_prob", "drop_path_rate", "token_dropout",
                      "classifier_dropout"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                bad(field, value, "expected a probability in [0, 1)")
        if self.linear_attention_eps < 0:
            bad("linear_attention_eps", self.linear_attention_eps, "expected >= 0")
        if not self.tile_time_embeddings and self.num_frames > self.num_time_embeddings:
            bad("num_frames", self.num_frames,
                f"exceeds num_time_embeddings={self.num_time_embeddings} while tile_time_embeddings=False "
                "(raise num_time_embeddings or set tile_time_embeddings=True)")
        if self.temporal_shift:
            if not isinstance(self.temporal_shift_div, int) or self.temporal_shift_div < 2:
                bad("temporal_shift_div", self.temporal_shift_div, "expected an integer >= 2")
            if self.hidden_size // self.temporal_shift_div < 1:
                bad("temporal_shift_div", self.temporal_shift_div,
                    f"leaves no channel to shift at hidden_size={self.hidden_size}")
            segment = self.temporal_shift_segment
            if segment is not None and (not isinstance(segment, int) or segment < 1 or self.num_frames % segment):
                bad("temporal_shift_segment", segment, f"must be None or a positive divisor of num_frames={self.num_frames}")
        if self.spatial_shift:
            if self.spatial_shift_size != 1:
                bad("spatial_shift_size", self.spatial_shift_size, "only 1 is implemented (every final official config)")
            if self.hidden_size < 16:
                bad("hidden_size", self.hidden_size, "the spatial shift needs hidden_size >= 16 (8 neighbour groups)")
            grid = self.grid_size
            if grid <= self.spatial_shift_size:
                bad("image_size", self.image_size,
                    f"gives a {grid}x{grid} token grid, too small for spatial_shift_size={self.spatial_shift_size} "
                    "(needs more than 1 token per side); use a larger image or set spatial_shift=False")


__all__ = ["FixationViTConfig"]
