# Copyright 2026 The lrpe_hf authors. Licensed under the Apache License, Version 2.0.
"""Configuration of the mixed-attention transformer (mixFormer / "mFormer", arXiv 2207.13955)."""

from __future__ import annotations

from transformers import PretrainedConfig

from ..checkpoint import check_architectures
from ...layers.attention import (
    check_attention_pair,
    default_feature_map,
    default_position_encoding,
    resolve_variant,
    variant_name,
)
from ...ops import FEATURE_MAPS
from ...layers.position_encoding import check_lrpe_options
from ...ops.linear_attention import check_linear_attention_options

POOLING_CHOICES = ("mean", "cls")
FFN_ACTIVATIONS = ("relu", "gelu", "silu")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_layer_lists(prefix, depth_name, depth, types, encodings, ffn_dims, num_heads):
    """Per-layer lists must have one entry per layer, known attention types and encodings, and positive sizes."""
    for name, values in ((f"{prefix}layer_attention_type", types), (f"{prefix}layer_position_encoding", encodings),
                         (f"{prefix}layer_ffn_dim", ffn_dims), (f"{prefix}layer_num_heads", num_heads)):
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{name} must be a list with one entry per layer, got {values!r}")
        if len(values) != depth:
            raise ValueError(f"{name} has {len(values)} entries but {depth_name}={depth}; give one per layer")
    for i, (kind, encoding) in enumerate(zip(types, encodings)):
        check_attention_pair(kind, encoding, type_field=f"{prefix}layer_attention_type[{i}]",
                             encoding_field=f"{prefix}layer_position_encoding[{i}]")
    for name, values in ((f"{prefix}layer_ffn_dim", ffn_dims), (f"{prefix}layer_num_heads", num_heads)):
        for i, v in enumerate(values):
            _positive_int(f"{name}[{i}]", v)


def _layer_kinds(prefix, types, encodings, legacy, depth):
    """The per-layer attention types and encodings: given, or from a config.json of lrpe_hf <= 0.2, whose
    ``{prefix}layer_attention`` named the variant (``"lrpe"`` = linear + LRPE, ...)."""
    if legacy is not None:
        if types is not None or encodings is not None:
            raise ValueError(f"give {prefix}layer_attention_type/{prefix}layer_position_encoding or the older "
                             f"{prefix}layer_attention, not both")
        if not isinstance(legacy, (list, tuple)):
            raise ValueError(f"{prefix}layer_attention must be a list with one entry per layer, got {legacy!r}")
        pairs = [resolve_variant(name, f"{prefix}layer_attention[{i}]") for i, name in enumerate(legacy)]
        return [t for t, _ in pairs], [e for _, e in pairs]
    if types is None:
        types = ["softmax"] * depth
    if encodings is None:
        encodings = [default_position_encoding(t) for t in types]
    return list(types), list(encodings)


class MixFormerConfig(PretrainedConfig):
    r"""Mixed-attention transformer: every layer picks its own attention type, FFN width and head count.

    Two architectures share this config:

    * ``is_encoder_decoder=False`` (default): a ViT-like **image encoder** as in mixFormer's CIFAR-10 model (arXiv
      2207.13955's released code): patch embedding, CLS token, learned absolute position embedding, tokens scaled by ``sqrt(d)``
      before the position embedding is added (``scale_embedding``), pre-LN blocks, ReLU FFN, final LayerNorm,
      mean over the patch tokens (``pooling="mean"``; CLS excluded) or the CLS token.
    * ``is_encoder_decoder=True``: a **sequence-to-sequence** transformer with shared token embeddings (input,
      decoder input and output projection), the same per-layer encoder, and a decoder whose self-attention type is
      per layer (``decoder_layer_*``), with softmax cross-attention.

    Args:
        hidden_size: embedding dim d (all layers).
        num_hidden_layers: encoder depth; every ``layer_*`` list has exactly this many entries.
        layer_attention_type: per-layer attention type, ``"softmax"`` or ``"linear"`` (default: all softmax).
        layer_position_encoding: per-layer registered position encoding (``lrpe_hf.layers.position_encoding``;
            default ``"nope"`` for softmax, ``"lrpe"`` for linear layers). mixFormer's candidates are the pairs
            softmax/nope, softmax/relative_key (``softmax_relative``), linear/cosformer and linear/lrpe; configs saved
            by lrpe_hf <= 0.2 named them in one list, ``layer_attention``, and load as the same pairs.
        layer_ffn_dim: per-layer FFN hidden width (default: ``4 * hidden_size``).
        layer_num_heads: per-layer head count; q/k/v width is ``heads * head_dim`` (independent of d, as in
            mixFormer/AutoFormer; default ``hidden_size // head_dim``).
        head_dim: per-head width (64 in mixFormer).
        decoder_layers, decoder_layer_attention_type, decoder_layer_position_encoding, decoder_layer_ffn_dim, decoder_layer_num_heads,
            decoder_layer_cross_num_heads: the decoder's depth and per-layer lists (seq2seq only; default: copies of
            the encoder's when the depths agree; cross-attention heads default to the self-attention heads).
        max_relative_length: clipping distance K of the relative-key softmax (mixFormer: 14).
        cosformer_eps: clamp of cosFormer's denominator (official cosFormer 1e-6; mixFormer's super-network 1e-3).
        cosformer_causal: run cosFormer *causally inside the bidirectional image/text encoder*, reproducing the
            released mixFormer CIFAR code (the CLS token then sees only itself). Default False, the clean
            bidirectional form. Decoder self-attention is always causal.
        lrpe_core, lrpe_p, lrpe_theta_learned, lrpe_householder_learned, lrpe_seed: settings of the LRPE layers
            (default: the unitary core with a fixed Householder P); 1-D raster positions for image tokens, like the
            relative softmax.
        feature_map: phi of every linear layer (default None: each encoding's paper, ReLU for cosFormer and
            ``1 + elu`` for LRPE; lrpe_hf <= 0.2 called the LRPE layers' one ``lrpe_feature_map``).
        chunk_size, attention_algorithm, linear_attention_backend: how the linear layers (cosFormer, LRPE) run
            ``lrpe_hf.ops.linear_attention``: chunk length, ``"chunked"``/``"parallel"``/``"recurrent"`` (the same
            function) and ``"auto"``/``"torch"``/``"fla"`` (the flash-linear-attention kernel on a GPU).
        image_size, patch_size, num_channels: image encoder input (mixFormer: 224, 16, 3).
        use_cls_token: prepend a CLS token (image encoder).
        pooling: ``"mean"`` over the patch tokens (mixFormer) or ``"cls"`` (needs ``use_cls_token``).
        scale_embedding: multiply token embeddings by ``sqrt(hidden_size)`` before adding positions (fairseq).
        max_position_embeddings: learned-position table length and cosFormer's fixed M (image: tokens of the grid
            plus CLS by default; text: 512).
        vocab_size: shared vocabulary (seq2seq).
        hidden_dropout_prob, attention_dropout, activation_dropout, drop_path_rate: regularisation; drop-path rises
            linearly from 0 to ``drop_path_rate`` over the encoder layers.
        activation: FFN activation (``"relu"`` in mixFormer).
        layer_norm_eps: eps of every LayerNorm.
    """

    model_type = "mixformer"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        hidden_size: int = 384,
        num_hidden_layers: int = 12,
        layer_attention_type: list[str] | None = None,
        layer_position_encoding: list[str] | None = None,
        layer_ffn_dim: list[int] | None = None,
        layer_num_heads: list[int] | None = None,
        head_dim: int = 64,
        decoder_layers: int | None = None,
        decoder_layer_attention_type: list[str] | None = None,
        decoder_layer_position_encoding: list[str] | None = None,
        decoder_layer_ffn_dim: list[int] | None = None,
        decoder_layer_num_heads: list[int] | None = None,
        decoder_layer_cross_num_heads: list[int] | None = None,
        max_relative_length: int = 14,
        cosformer_eps: float = 1e-6,
        cosformer_causal: bool = False,
        lrpe_core: str = "unitary",
        lrpe_p: str = "householder",
        lrpe_theta_learned: bool = False,
        lrpe_householder_learned: bool = False,
        feature_map: str | None = None,
        lrpe_seed: int = 0,
        chunk_size: int = 64,
        attention_algorithm: str = "chunked",
        linear_attention_backend: str = "auto",
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        use_cls_token: bool = True,
        pooling: str = "mean",
        scale_embedding: bool = True,
        max_position_embeddings: int | None = None,
        vocab_size: int = 1000,
        hidden_dropout_prob: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        is_encoder_decoder: bool = False,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        decoder_start_token_id: int | None = None,
        tie_word_embeddings: bool = True,
        num_attention_heads: int | None = None,
        **kwargs,
    ):
        check_architectures(self.model_type, kwargs.get("architectures"))
        # Field names of config.json files written by lrpe_hf <= 0.2.
        legacy_layers = kwargs.pop("layer_attention", None)
        legacy_decoder = kwargs.pop("decoder_layer_attention", None)
        legacy_feature_map = kwargs.pop("lrpe_feature_map", None)
        _positive_int("hidden_size", hidden_size)
        _positive_int("num_hidden_layers", num_hidden_layers)
        _positive_int("head_dim", head_dim)
        depth = num_hidden_layers
        if num_attention_heads is not None:
            # The standard field name means the same head count in every layer (encoder and decoder).
            _positive_int("num_attention_heads", num_attention_heads)
            if layer_num_heads is None:
                layer_num_heads = [num_attention_heads] * depth
            elif max(layer_num_heads) != num_attention_heads:
                raise ValueError(
                    f"num_attention_heads={num_attention_heads} disagrees with layer_num_heads={list(layer_num_heads)}"
                    "; MixFormer sets heads per layer: pass layer_num_heads (and decoder_layer_num_heads) only"
                )
            if is_encoder_decoder and decoder_layer_num_heads is None:
                decoder_layer_num_heads = [num_attention_heads] * (decoder_layers or depth)
        layer_attention_type, layer_position_encoding = _layer_kinds(
            "", layer_attention_type, layer_position_encoding, legacy_layers, depth)
        if layer_ffn_dim is None:
            layer_ffn_dim = [4 * hidden_size] * depth
        if layer_num_heads is None:
            layer_num_heads = [max(1, hidden_size // head_dim)] * depth
        _check_layer_lists("", "num_hidden_layers", depth, layer_attention_type, layer_position_encoding, layer_ffn_dim,
                           layer_num_heads)

        if is_encoder_decoder:
            if decoder_layers is None:
                decoder_layers = depth
            _positive_int("decoder_layers", decoder_layers)
            same = decoder_layers == depth
            if (legacy_decoder, decoder_layer_attention_type, decoder_layer_position_encoding) == (None, None, None) \
                    and same:
                decoder_layer_attention_type = list(layer_attention_type)
                decoder_layer_position_encoding = list(layer_position_encoding)
            decoder_layer_attention_type, decoder_layer_position_encoding = _layer_kinds(
                "decoder_", decoder_layer_attention_type, decoder_layer_position_encoding, legacy_decoder,
                decoder_layers)
            if decoder_layer_ffn_dim is None:
                decoder_layer_ffn_dim = list(layer_ffn_dim) if same else [4 * hidden_size] * decoder_layers
            if decoder_layer_num_heads is None:
                default_heads = [max(1, hidden_size // head_dim)] * decoder_layers
                decoder_layer_num_heads = list(layer_num_heads) if same else default_heads
            if decoder_layer_cross_num_heads is None:
                decoder_layer_cross_num_heads = list(decoder_layer_num_heads)
            _check_layer_lists("decoder_", "decoder_layers", decoder_layers, decoder_layer_attention_type,
                               decoder_layer_position_encoding, decoder_layer_ffn_dim, decoder_layer_num_heads)
        elif legacy_decoder is not None or decoder_layer_attention_type is not None:
            decoder_layer_attention_type, decoder_layer_position_encoding = _layer_kinds(
                "decoder_", decoder_layer_attention_type, decoder_layer_position_encoding, legacy_decoder,
                len(legacy_decoder or decoder_layer_attention_type))
            if len(decoder_layer_cross_num_heads) != decoder_layers:
                raise ValueError(f"decoder_layer_cross_num_heads has {len(decoder_layer_cross_num_heads)} entries "
                                 f"but decoder_layers={decoder_layers}")
            for i, v in enumerate(decoder_layer_cross_num_heads):
                _positive_int(f"decoder_layer_cross_num_heads[{i}]", v)
            _positive_int("vocab_size", vocab_size)

        _positive_int("max_relative_length", max_relative_length)
        if not cosformer_eps > 0:
            raise ValueError(f"cosformer_eps must be > 0, got {cosformer_eps!r}")
        check_lrpe_options(lrpe_core, lrpe_p, "a", lrpe_theta_learned, owner="MixFormerConfig", prefix="lrpe_")
        check_linear_attention_options(chunk_size, attention_algorithm, linear_attention_backend,
                                       owner="MixFormerConfig")
        if legacy_feature_map is not None and legacy_feature_map != default_feature_map("lrpe"):
            # lrpe_hf <= 0.2 applied lrpe_feature_map to the LRPE layers only; feature_map applies to every linear layer
            linear = [e for t, e in zip(layer_attention_type + list(decoder_layer_attention_type or []),
                                        layer_position_encoding + list(decoder_layer_position_encoding or []))
                      if t == "linear"]
            if any(e != "lrpe" for e in linear):
                raise ValueError(f"lrpe_feature_map={legacy_feature_map!r} applied to the LRPE layers only; this "
                                 "config also has other linear layers: set feature_map for all linear layers instead")
            feature_map = feature_map or legacy_feature_map
        if feature_map is not None and feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map={feature_map!r} is not supported; choose one of {FEATURE_MAPS}")
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("num_channels", num_channels)):
            _positive_int(name, value)
        if not is_encoder_decoder and image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        if pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling={pooling!r} is not supported; choose one of {POOLING_CHOICES}")
        if pooling == "cls" and not use_cls_token:
            raise ValueError("pooling='cls' needs use_cls_token=True")
        if activation not in FFN_ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported; choose one of {FFN_ACTIVATIONS}")
        for name, value in (("hidden_dropout_prob", hidden_dropout_prob), ("attention_dropout", attention_dropout),
                            ("activation_dropout", activation_dropout), ("drop_path_rate", drop_path_rate)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        if max_position_embeddings is None:
            if is_encoder_decoder:
                max_position_embeddings = 512
            else:
                max_position_embeddings = (image_size // patch_size) ** 2 + int(use_cls_token)
        _positive_int("max_position_embeddings", max_position_embeddings)

        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.layer_attention_type = list(layer_attention_type)
        self.layer_position_encoding = list(layer_position_encoding)
        self.layer_ffn_dim = [int(v) for v in layer_ffn_dim]
        self.layer_num_heads = [int(v) for v in layer_num_heads]
        self.head_dim = head_dim
        self.decoder_layers = decoder_layers
        self.decoder_layer_attention_type = (
            None if decoder_layer_attention_type is None else list(decoder_layer_attention_type)
        )
        self.decoder_layer_position_encoding = (
            None if decoder_layer_position_encoding is None else list(decoder_layer_position_encoding)
        )
        self.decoder_layer_ffn_dim = None if decoder_layer_ffn_dim is None else [int(v) for v in decoder_layer_ffn_dim]
        self.decoder_layer_num_heads = (
            None if decoder_layer_num_heads is None else [int(v) for v in decoder_layer_num_heads]
        )
        self.decoder_layer_cross_num_heads = (
            None if decoder_layer_cross_num_heads is None else [int(v) for v in decoder_layer_cross_num_heads]
        )
        self.max_relative_length = max_relative_length
        self.cosformer_eps = cosformer_eps
        self.cosformer_causal = cosformer_causal
        self.lrpe_core = lrpe_core
        self.lrpe_p = lrpe_p
        self.lrpe_theta_learned = lrpe_theta_learned
        self.lrpe_householder_learned = lrpe_householder_learned
        self.feature_map = feature_map
        self.lrpe_seed = lrpe_seed
        self.chunk_size = chunk_size
        self.attention_algorithm = attention_algorithm
        self.linear_attention_backend = linear_attention_backend
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.use_cls_token = use_cls_token
        self.pooling = pooling
        self.scale_embedding = scale_embedding
        self.max_position_embeddings = max_position_embeddings
        self.vocab_size = vocab_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.drop_path_rate = drop_path_rate
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.use_cache = use_cache  # PreTrainedConfig does not keep it itself
        super().__init__(
            is_encoder_decoder=is_encoder_decoder,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def num_attention_heads(self) -> int:
        """Largest encoder head count (what generic Transformers utilities read)."""
        return max(self.layer_num_heads)

    @num_attention_heads.setter
    def num_attention_heads(self, value: int) -> None:
        if value != max(self.layer_num_heads):
            raise ValueError(
                f"MixFormerConfig.num_attention_heads is derived from layer_num_heads={self.layer_num_heads}; "
                f"to use {value!r} heads, set layer_num_heads (per layer) instead"
            )

    @property
    def uses_linear_attention(self) -> bool:
        return "linear" in list(self.layer_attention_type) + list(self.decoder_layer_attention_type or [])

    @uses_linear_attention.setter
    def uses_linear_attention(self, value) -> None:
        if bool(value) != self.uses_linear_attention:
            raise ValueError(
                "MixFormerConfig.uses_linear_attention is derived from layer_attention_type / "
                "decoder_layer_attention_type; set those per-layer lists instead"
            )

    @staticmethod
    def variant_kwargs(variants, decoder: bool = False) -> dict:
        """``layer_attention_type`` and ``layer_position_encoding`` (``decoder_*`` with ``decoder``) from the
        papers' variant names: ``variant_kwargs(["lrpe", "softmax"])`` -> ``{"layer_attention_type": ["linear",
        "softmax"], "layer_position_encoding": ["lrpe", "nope"]}``."""
        prefix = "decoder_" if decoder else ""
        pairs = [resolve_variant(name, f"{prefix}variant[{i}]") for i, name in enumerate(variants)]
        return {f"{prefix}layer_attention_type": [t for t, _ in pairs],
                f"{prefix}layer_position_encoding": [e for _, e in pairs]}

    def layer_variants(self, decoder: bool = False) -> list[str | None]:
        """The per-layer variant names (``lrpe_hf.layers.attention.ATTENTION_VARIANTS``: ``"lrpe"``,
        ``"softmax_relative"``, ...; None for a pair that has no name), as the NAS search spaces name them."""
        types = self.decoder_layer_attention_type if decoder else self.layer_attention_type
        encodings = self.decoder_layer_position_encoding if decoder else self.layer_position_encoding
        return [variant_name(t, e) for t, e in zip(types or [], encodings or [])]

    def attention_options(self, attention_type: str, position_encoding: str, layer_idx: int) -> dict:
        """Keyword options for :func:`lrpe_hf.layers.attention.build_attention` of one self-attention layer."""
        return {
            "position_encoding": position_encoding,
            "encoding_options": {
                "max_relative_length": self.max_relative_length, "max_positions": self.max_position_embeddings,
                "core": self.lrpe_core, "p": self.lrpe_p, "theta_learned": self.lrpe_theta_learned,
                "householder_learned": self.lrpe_householder_learned, "mode_2d": "shared",
                "seed": self.lrpe_seed + layer_idx,
            },
            "feature_map": self.feature_map,
            "eps": self.cosformer_eps,
            "norm_eps": 1e-5,
            "chunk_size": self.chunk_size,
            "algorithm": self.attention_algorithm,
            "backend": self.linear_attention_backend,
            "dropout": self.attention_dropout,
            "layer_idx": layer_idx,
        }


__all__ = ["MixFormerConfig", "POOLING_CHOICES"]
