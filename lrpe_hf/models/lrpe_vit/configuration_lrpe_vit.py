# Copyright 2026 The lrpe_hf authors. Licensed under the Apache License, Version 2.0.
"""Configuration of the LRPE vision transformer (arXiv 2307.09270, image classification)."""

from __future__ import annotations

from transformers import PretrainedConfig

from ..checkpoint import check_architectures
from ...layers.attention import (
    ATTENTION_TYPES,
    ATTENTION_VARIANTS,
    check_attention_pair,
    default_feature_map,
    default_position_encoding,
)
from ...layers.position_encoding import check_lrpe_options
from ...ops import FEATURE_MAPS
from ...ops.linear_attention import check_linear_attention_options

POOLING_CHOICES = ("mean", "cls")
ACTIVATIONS = ("gelu", "relu", "silu")

# The paper's ViT-small (arXiv 2307.09270, image classification): patch 16, width 384, depth 12, 6 heads of 64,
# MLP 4x, 1+elu, pre-norm, learned APE, mean pooling without CLS, qkv without bias, drop-path 0.1 (DeiT recipe).
_VIT_SMALL = dict(
    image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4.0,
    feature_map="1+elu", pooling="mean", use_absolute_position_embeddings=True, qkv_bias=False,
    drop_path_rate=0.1, attention_type="linear", position_encoding="lrpe", lrpe_2d_mode="shared",
)
# The four final LRPE configurations (fairseq-evo "icml" group, arch names linear_vit_small_l_*), all with a fixed
# Householder P.
PRESETS = {
    "vit-small-lrpe-rotation": dict(_VIT_SMALL, lrpe_core="rotation", lrpe_p="householder", lrpe_theta_learned=True),
    "vit-small-lrpe-permutation": dict(_VIT_SMALL, lrpe_core="permutation", lrpe_p="householder"),
    "vit-small-lrpe-unitary": dict(_VIT_SMALL, lrpe_core="unitary", lrpe_p="householder", lrpe_theta_learned=False),
    "vit-small-lrpe-unitary-learned": dict(_VIT_SMALL, lrpe_core="unitary", lrpe_p="householder",
                                           lrpe_theta_learned=True),
}
PRESET_ALIASES = {
    "linear_vit_small_l_ro": "vit-small-lrpe-rotation",
    "linear_vit_small_l_per": "vit-small-lrpe-permutation",
    "linear_vit_small_l_un": "vit-small-lrpe-unitary",
    "linear_vit_small_l_unl": "vit-small-lrpe-unitary-learned",
}


class LrpeVitConfig(PretrainedConfig):
    r"""ViT whose attention is linear attention with a 2-D LRPE (or, as a like-for-like baseline, another type).

    Args:
        image_size, patch_size, num_channels: input geometry (tokens: ``(image_size / patch_size) ** 2``).
        hidden_size, num_hidden_layers, num_attention_heads: width, depth, heads (``head_dim = hidden / heads``).
        mlp_ratio, hidden_act: MLP width ``mlp_ratio * hidden_size`` and activation (GELU).
        attention_type: ``"linear"`` (default) or ``"softmax"`` (a like-for-like baseline of the same size).
        position_encoding: a registered encoding (``lrpe_hf.layers.position_encoding``; default ``"lrpe"`` for
            linear attention, ``"nope"`` for softmax; e.g. ``"cosformer"``, ``"rope"``, ``"relative_key"``). Configs
            saved by lrpe_hf <= 0.2 said ``attention_type="lrpe"``/``"cosformer"``/``"softmax_relative"``; those
            load as the same pair.
        feature_map: phi of linear attention (default: the encoding's paper, ReLU for cosFormer, else ``1 + elu``).
        lrpe_core, lrpe_p, lrpe_theta_learned, lrpe_householder_learned, lrpe_seed: the LRPE (one per layer, shared
            by its heads; the Householder vector and the permutation are drawn from ``lrpe_seed + layer`` and saved).
        lrpe_2d_mode: ``"shared"`` (official: rows and columns share one angle, so the score depends on dr + dc) or
            ``"separable"`` (rows and columns on separate channels: a real 2-D relative encoding; rotation/unitary).
        pooling: ``"mean"`` over the tokens (official, no CLS) or ``"cls"`` (adds a CLS token at grid position
            (0, 0), left unencoded by the LRPE).
        use_absolute_position_embeddings: learned APE (official: on). Without it any image size that is a multiple
            of the patch size works.
        qkv_bias: bias on q/k/v (official: none).
        hidden_dropout_prob, attention_dropout, drop_path_rate, layer_norm_eps, initializer_range: as in ViT.
        cosformer_eps, max_relative_length: options of the baseline attention types.
        intermediate_size: the MLP width, another way to give ``mlp_ratio``.
        chunk_size, attention_algorithm, linear_attention_backend: how the linear attention runs
            ``lrpe_hf.ops.linear_attention`` (chunk length; ``"chunked"``, ``"parallel"`` or ``"recurrent"``, the same
            function; ``"auto"``, ``"torch"`` or ``"fla"``).

    Presets: ``LrpeVitConfig.from_preset(name, **overrides)`` with ``name`` in ``LrpeVitConfig.PRESETS``.
    """

    model_type = "lrpe_vit"
    PRESETS = PRESETS

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        hidden_size: int = 384,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 6,
        mlp_ratio: float = 4.0,
        hidden_act: str = "gelu",
        attention_type: str = "linear",
        feature_map: str | None = None,
        lrpe_core: str = "unitary",
        lrpe_p: str = "householder",
        lrpe_theta_learned: bool = False,
        lrpe_householder_learned: bool = False,
        lrpe_2d_mode: str = "shared",
        lrpe_seed: int = 0,
        pooling: str = "mean",
        use_absolute_position_embeddings: bool = True,
        qkv_bias: bool = False,
        hidden_dropout_prob: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path_rate: float = 0.1,
        layer_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        cosformer_eps: float = 1e-6,
        max_relative_length: int = 14,
        intermediate_size: int | None = None,
        chunk_size: int = 64,
        attention_algorithm: str = "chunked",
        linear_attention_backend: str = "auto",
        position_encoding: str | None = None,
        **kwargs,
    ):
        check_architectures(self.model_type, kwargs.get("architectures"))
        if attention_type in ATTENTION_VARIANTS and attention_type not in ATTENTION_TYPES:
            # a config.json of lrpe_hf <= 0.2 named the variant; the same pair, and cosFormer always ran on ReLU
            legacy = attention_type
            attention_type, encoding = ATTENTION_VARIANTS[legacy]
            if position_encoding not in (None, encoding):
                raise ValueError(f"attention_type={legacy!r} means position_encoding={encoding!r}, but "
                                 f"position_encoding={position_encoding!r} was given")
            position_encoding = encoding
            if legacy == "cosformer":
                feature_map = "relu"
        if intermediate_size is not None:
            # The standard field name: an MLP this wide, i.e. mlp_ratio = intermediate_size / hidden_size.
            if isinstance(intermediate_size, bool) or not isinstance(intermediate_size, int) or intermediate_size < 1:
                raise ValueError(f"intermediate_size must be a positive int, got {intermediate_size!r}")
            if isinstance(hidden_size, int) and hidden_size > 0:
                mlp_ratio = intermediate_size / hidden_size
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("num_channels", num_channels),
                            ("hidden_size", hidden_size), ("num_hidden_layers", num_hidden_layers),
                            ("num_attention_heads", num_attention_heads), ("max_relative_length", max_relative_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_attention_heads={num_attention_heads}"
            )
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio!r}")
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={hidden_act!r} is not supported; choose one of {ACTIVATIONS}")
        position_encoding = position_encoding or default_position_encoding(attention_type)
        check_attention_pair(attention_type, position_encoding)
        feature_map = feature_map or default_feature_map(position_encoding)
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map={feature_map!r} is not supported; choose one of {FEATURE_MAPS}")
        check_lrpe_options(lrpe_core, lrpe_p, "a", lrpe_theta_learned, lrpe_2d_mode, owner="LrpeVitConfig",
                           prefix="lrpe_", combinations=position_encoding == "lrpe")
        check_linear_attention_options(chunk_size, attention_algorithm, linear_attention_backend,
                                       owner="LrpeVitConfig")
        if pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling={pooling!r} is not supported; choose one of {POOLING_CHOICES}")
        for name, value in (("hidden_dropout_prob", hidden_dropout_prob), ("attention_dropout", attention_dropout),
                            ("drop_path_rate", drop_path_rate)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        if not cosformer_eps > 0:
            raise ValueError(f"cosformer_eps must be > 0, got {cosformer_eps!r}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.mlp_ratio = mlp_ratio
        self.hidden_act = hidden_act
        self.attention_type = attention_type
        self.position_encoding = position_encoding
        self.feature_map = feature_map
        self.lrpe_core = lrpe_core
        self.lrpe_p = lrpe_p
        self.lrpe_theta_learned = lrpe_theta_learned
        self.lrpe_householder_learned = lrpe_householder_learned
        self.lrpe_2d_mode = lrpe_2d_mode
        self.lrpe_seed = lrpe_seed
        self.pooling = pooling
        self.use_absolute_position_embeddings = use_absolute_position_embeddings
        self.qkv_bias = qkv_bias
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.cosformer_eps = cosformer_eps
        self.max_relative_length = max_relative_length
        self.chunk_size = chunk_size
        self.attention_algorithm = attention_algorithm
        self.linear_attention_backend = linear_attention_backend
        super().__init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def intermediate_size(self) -> int:
        return int(round(self.hidden_size * self.mlp_ratio))

    # Derived fields: a value that agrees is accepted (a config.json written by another tool may carry it), any other
    # is refused with the field to set instead.
    def _derived(self, name: str, value, source: str) -> None:
        if value != getattr(self, name):
            raise ValueError(f"LrpeVitConfig.{name}={value!r} is derived from {source}; set those instead")

    @head_dim.setter
    def head_dim(self, value) -> None:
        self._derived("head_dim", value, "hidden_size / num_attention_heads")

    @num_patches.setter
    def num_patches(self, value) -> None:
        self._derived("num_patches", value, "image_size and patch_size")

    @intermediate_size.setter
    def intermediate_size(self, value) -> None:
        self._derived("intermediate_size", value, "hidden_size * mlp_ratio (or pass intermediate_size to __init__)")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LrpeVitConfig":
        """A named configuration (``PRESETS``; the official arch names ``linear_vit_small_l_*`` are aliases),
        with keyword overrides (e.g. ``num_labels=10``, ``image_size=32``)."""
        key = PRESET_ALIASES.get(name, name)
        if key not in PRESETS:
            choices = sorted(PRESETS) + sorted(PRESET_ALIASES)
            raise ValueError(f"unknown LrpeVit preset {name!r}; choose one of {choices}")
        return cls(**{**PRESETS[key], **overrides})


__all__ = ["LrpeVitConfig", "PRESETS", "PRESET_ALIASES"]
