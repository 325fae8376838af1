# Copyright 2026 The lrpe_hf authors. Licensed under the Apache License, Version 2.0.
"""Configuration of LRPE linear-attention language models (arXiv 2307.09270)."""

from __future__ import annotations

import copy

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from ..checkpoint import VERSION_KEY, check_architectures
from ...layers.attention import ATTENTION_TYPES, check_attention_pair, default_attention_norm
from ...layers.position_encoding import LRPE_MODEL_CORES, check_lrpe_options
from ...layers.position_encoding import POSITION_ENCODINGS as REGISTERED_ENCODINGS
from ...ops.feature_maps import FEATURE_MAPS
from ...ops.linear_attention import ALGORITHM_CHOICES, BACKEND_CHOICES
from ...ops.lrpe import LRPE_P_MATRICES, THETA_TYPES

# The registry of position encodings and the LRPE vocabulary are the layers' and ops' own (one list of each);
# validation reads the live registry, so an encoding registered later is accepted too.
POSITION_ENCODINGS = tuple(REGISTERED_ENCODINGS)
LRPE_CORES = LRPE_MODEL_CORES
ATTENTION_NORMS = ("layernorm", "denominator", "none")
ROPE_DENOMINATORS = ("unrotated", "rotated")
ABSOLUTE_POSITION_EMBEDDINGS = ("none", "sinusoidal", "learned")
CLASSIFIER_POOLINGS = ("mean", "first")
ALGORITHMS = ALGORITHM_CHOICES
BACKENDS = BACKEND_CHOICES
# Position encodings that make sense in front of softmax attention (the others carry linear-attention-only parts:
# a decay applied inside the recurrence, or cosFormer's re-weighting that replaces the softmax): each encoding
# class says so (``softmax_compatible``).
SOFTMAX_POSITION_ENCODINGS = tuple(name for name, cls in REGISTERED_ENCODINGS.items() if cls.softmax_compatible)

# The paper's four final configurations (arch names of the authors' code in brackets) and the baselines.
PRESETS: dict[str, dict] = {
    # rotation core, fixed random Householder P, learned theta (1+elu_l_ro_wiki_base / roberta_1+elu_l_ro)
    "lrpe-rotation-householder-learned": dict(
        position_encoding="lrpe", lrpe_core="rotation", lrpe_p="householder", lrpe_theta_learned=True
    ),
    # permutation core, fixed random Householder P (1+elu_l_per_*)
    "lrpe-permutation-householder": dict(position_encoding="lrpe", lrpe_core="permutation", lrpe_p="householder"),
    # unitary core, fixed random Householder P, fixed type-a theta (1+elu_l_un_*)
    "lrpe-unitary-householder": dict(position_encoding="lrpe", lrpe_core="unitary", lrpe_p="householder"),
    # unitary core, fixed random Householder P, learned theta (1+elu_l_unl_*)
    "lrpe-unitary-householder-learned": dict(
        position_encoding="lrpe", lrpe_core="unitary", lrpe_p="householder", lrpe_theta_learned=True
    ),
    # Baselines (denominator normalisation, as in the paper's comparisons).
    "nope": dict(position_encoding="nope", absolute_position_embedding="none"),
    "rope": dict(position_encoding="rope"),
    "cosformer": dict(position_encoding="cosformer", feature_map="relu"),
    "permuteformer": dict(position_encoding="permuteformer"),
    "lrpe-d": dict(position_encoding="lrpe_d"),
    "softmax": dict(attention_type="softmax", position_encoding="nope"),
}

SIZES: dict[str, dict] = {
    # Causal LM of the paper's WikiText-103 experiments: 6 x 512, FFN 2048 (ReLU), 8 heads, pre-norm, sinusoidal APE.
    "wikitext-base": dict(
        hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048, hidden_act="relu",
        pre_norm=True, absolute_position_embedding="sinusoidal", max_position_embeddings=512, is_causal=True,
        hidden_dropout_prob=0.1, attention_dropout=0.0, scale_embedding=True,
    ),
    # Bidirectional encoder (RoBERTa-base): 12 x 768, FFN 3072 (GELU), 12 heads, post-norm, learned APE.
    "roberta-base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
        pre_norm=False, absolute_position_embedding="learned", max_position_embeddings=512, is_causal=False,
        hidden_dropout_prob=0.1, attention_dropout=0.1, vocab_size=50265, scale_embedding=False,
    ),
    # CPU-friendly sizes for demos and tests (causal, pre-norm like wikitext-base).
    "small": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, hidden_act="relu",
        pre_norm=True, absolute_position_embedding="sinusoidal", max_position_embeddings=2048, is_causal=True,
        hidden_dropout_prob=0.1, scale_embedding=True,
    ),
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, hidden_act="relu",
        pre_norm=True, absolute_position_embedding="sinusoidal", max_position_embeddings=512, is_causal=True,
        hidden_dropout_prob=0.0, vocab_size=128, scale_embedding=True,
    ),
}


def _check_choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"LrpeConfig.{field}={value!r} is not supported; choose one of {tuple(allowed)}")


class LrpeConfig(PreTrainedConfig):
    r"""Configuration of an LRPE linear-attention transformer (causal LM or bidirectional encoder).

    Attention per layer: ``q, k, v`` projections -> feature map ``phi`` on q and k -> position encoding on q and k
    (``position_encoding``) -> linear attention (or softmax attention with ``attention_type="softmax"``) ->
    normalisation (``attention_norm``) -> output projection.

    Args:
        vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act: usual sizes.
        feature_map: ``phi`` applied to q and k of linear attention, one of ``FEATURE_MAPS`` (``"1+elu"`` default).
            Softmax attention uses no feature map.
        position_encoding: ``"lrpe"`` (the paper), or a baseline: ``"rope"`` (half-split RoPE), ``"cosformer"``
            (cos re-weighting with ``M = max_position_embeddings``, fixed so that cached decoding matches full
            forwards), ``"permuteformer"`` (random permutation core + per-head decay ``r_h``), ``"lrpe_d"`` (unitary
            core with per-head learned theta + decay ``lambda_{h,l}``, TransNormerLLM; applied in every layer),
            ``"nope"`` (none).
        lrpe_core: ``"rotation"``, ``"mixed_rotation"``, ``"permutation"``, ``"unitary"`` or ``"none"`` (P only).
        lrpe_p: ``"identity"``, ``"householder"``, ``"dct"``, ``"oddeven"`` or ``"fft"`` (unitary core only).
        lrpe_theta_type: ``"a"`` (``10000^(-2i/d)``), ``"b"``, ``"c"``; types b/c use ``l = max_position_embeddings``.
        lrpe_theta_learned: theta is a trainable parameter (one per layer, shared by heads) instead of a fixed buffer.
        lrpe_householder_learned: the Householder vector is trained (it is always saved with the weights).
        lrpe_seed: seed of the generator drawing the Householder vectors and permutations (layer ``l`` uses
            ``lrpe_seed + l``), so a config alone reproduces a model's random parts.
        attention_type: ``"linear"`` or ``"softmax"`` (same q/k transform, then scaled dot-product attention).
        attention_norm: ``"layernorm"`` (LayerNorm over the concatenated heads, no denominator: the LRPE form),
            ``"denominator"`` (classic ``sum a v / max(sum a, eps)``) or ``"none"``; ``None`` picks ``"layernorm"``
            for ``position_encoding="lrpe"``/``"lrpe_d"`` and ``"denominator"`` for the other baselines. Ignored by
            softmax attention.
        rope_denominator: with ``position_encoding="rope"`` and the denominator, whether ``q . sum k`` uses the
            rotated features (``"rotated"``) or the feature-mapped ones before rotation (``"unrotated"``, RoFormer's
            linear attention, arXiv 2104.09864 section 3.3: positive, so it never crosses zero; the rotated one can,
            and float16 rounding at long context makes it do so, giving NaN). ``None``: ``"unrotated"``, except for
            a config.json written before the field existed (lrpe_hf 0.1), which keeps the ``"rotated"`` form it was
            trained with.
        absolute_position_embedding: ``"none"``, ``"sinusoidal"`` or ``"learned"`` (added to token embeddings).
        scale_embedding: multiply token embeddings by ``sqrt(hidden_size)`` (fairseq's language models do; without
            it a sinusoidal table of amplitude 1 swamps token embeddings initialised at std 0.02). ``None`` means
            "when the absolute position embedding is sinusoidal"; the resolved bool is what gets saved.
        chunk_size: chunk length of the chunked linear-attention algorithm.
        loss_chunk_size: ``0`` (default): the causal-LM loss is Transformers' (all logits, then cross-entropy).
            ``n > 0``: while training with ``labels``, the output projection and the loss run together over chunks of
            ``n`` tokens (``lrpe_hf.ops.cross_entropy``), never holding all ``tokens x vocab`` float32 logits; the
            output's ``logits`` is then None (evaluation and generation still return them). Same loss and gradients.
        attention_algorithm: ``"chunked"`` (default), ``"parallel"`` or ``"recurrent"``: same function.
        linear_attention_backend: ``"auto"`` runs the causal chunked path through flash-linear-attention's kernel
            when that package is installed and the tensors are on a GPU (plain PyTorch otherwise); ``"torch"``
            always uses the PyTorch code; ``"fla"`` requires the kernel (error otherwise).
        max_position_embeddings: size of the learned APE table, cosFormer's ``M`` and the theta length of types b/c.
        is_causal: whether ``LrpeModel`` is causal (``LrpeForCausalLM`` always is; ``LrpeForMaskedLM`` and
            ``LrpeForSequenceClassification`` never are).
        pre_norm: pre-norm blocks with a final LayerNorm (LM) or post-norm blocks with an embedding LayerNorm
            (RoBERTa style).
        classifier_pooling: ``"mean"`` (over non-padded tokens) or ``"first"`` for sequence classification.
    """

    model_type = "lrpe"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 512,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 8,
        intermediate_size: int = 2048,
        hidden_act: str = "relu",
        feature_map: str = "1+elu",
        position_encoding: str = "lrpe",
        lrpe_core: str = "unitary",
        lrpe_p: str = "householder",
        lrpe_theta_type: str = "a",
        lrpe_theta_learned: bool = False,
        lrpe_householder_learned: bool = False,
        lrpe_seed: int = 0,
        attention_type: str = "linear",
        attention_norm: str | None = None,
        attention_bias: bool = True,
        rope_denominator: str | None = None,
        absolute_position_embedding: str = "sinusoidal",
        scale_embedding: bool | None = None,
        chunk_size: int = 64,
        loss_chunk_size: int = 0,
        attention_algorithm: str = "chunked",
        linear_attention_backend: str = "auto",
        max_position_embeddings: int = 512,
        is_causal: bool = True,
        pre_norm: bool = True,
        hidden_dropout_prob: float = 0.1,
        attention_dropout: float = 0.0,
        classifier_dropout: float | None = None,
        classifier_pooling: str = "mean",
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        **kwargs,
    ):
        check_architectures(self.model_type, kwargs.get("architectures"))
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.feature_map = feature_map
        self.position_encoding = position_encoding
        self.lrpe_core = lrpe_core
        self.lrpe_p = lrpe_p
        self.lrpe_theta_type = lrpe_theta_type
        self.lrpe_theta_learned = lrpe_theta_learned
        self.lrpe_householder_learned = lrpe_householder_learned
        self.lrpe_seed = lrpe_seed
        self.attention_type = attention_type
        self.attention_norm = attention_norm
        self.attention_bias = attention_bias
        if rope_denominator is None:
            # A saved config.json carries the lrpe_hf version that wrote it; one without this field was written
            # before it existed, with the rotated denominator, and keeps its outputs.
            rope_denominator = "rotated" if VERSION_KEY in kwargs else "unrotated"
        self.rope_denominator = rope_denominator
        self.absolute_position_embedding = absolute_position_embedding
        if scale_embedding is None:
            scale_embedding = absolute_position_embedding == "sinusoidal"
        self.scale_embedding = bool(scale_embedding)
        self.chunk_size = chunk_size
        self.loss_chunk_size = loss_chunk_size
        self.attention_algorithm = attention_algorithm
        self.linear_attention_backend = linear_attention_backend
        self.max_position_embeddings = max_position_embeddings
        self.is_causal = is_causal
        self.pre_norm = pre_norm
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.classifier_dropout = classifier_dropout
        self.classifier_pooling = classifier_pooling
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.use_cache = use_cache  # PreTrainedConfig does not keep generation parameters itself
        # Before the base class: its own architecture validator divides by num_attention_heads.
        self._validate_numbers(kwargs.get("num_labels"))
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self.validate_lrpe()

    # -- validation -------------------------------------------------------------------------------------------
    def _validate_numbers(self, num_labels=None) -> None:
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                      "chunk_size", "max_position_embeddings"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LrpeConfig.{field} must be a positive int, got {value!r}")
        if isinstance(self.layer_norm_eps, bool) or not isinstance(self.layer_norm_eps, (int, float)) \
                or not self.layer_norm_eps > 0:
            raise ValueError(f"LrpeConfig.layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        if not isinstance(self.lrpe_seed, int) or isinstance(self.lrpe_seed, bool) or self.lrpe_seed < 0:
            raise ValueError(f"LrpeConfig.lrpe_seed must be a non-negative int, got {self.lrpe_seed!r}")
        if not isinstance(self.loss_chunk_size, int) or isinstance(self.loss_chunk_size, bool) \
                or self.loss_chunk_size < 0:
            raise ValueError(f"LrpeConfig.loss_chunk_size must be a non-negative int (0: off), got "
                             f"{self.loss_chunk_size!r}")
        if num_labels is not None and (not isinstance(num_labels, int) or num_labels < 1):
            raise ValueError(f"LrpeConfig.num_labels must be a positive int, got {num_labels!r}")

    def validate_lrpe(self) -> None:
        """Raise ValueError naming the field, the bad value and the allowed values."""
        _check_choice("feature_map", self.feature_map, FEATURE_MAPS)
        _check_choice("hidden_act", self.hidden_act, sorted(ACT2FN))
        _check_choice("position_encoding", self.position_encoding, tuple(REGISTERED_ENCODINGS))
        # LRPE options: one validation for every config (combinations only where the layers use LRPE).
        check_lrpe_options(self.lrpe_core, self.lrpe_p, self.lrpe_theta_type, self.lrpe_theta_learned,
                           owner="LrpeConfig", prefix="lrpe_", combinations=self.position_encoding == "lrpe")
        _check_choice("attention_type", self.attention_type, ATTENTION_TYPES)
        _check_choice("attention_norm", self.attention_norm, (None, *ATTENTION_NORMS))
        _check_choice("rope_denominator", self.rope_denominator, ROPE_DENOMINATORS)
        _check_choice("absolute_position_embedding", self.absolute_position_embedding, ABSOLUTE_POSITION_EMBEDDINGS)
        _check_choice("classifier_pooling", self.classifier_pooling, CLASSIFIER_POOLINGS)
        _check_choice("attention_algorithm", self.attention_algorithm, ALGORITHMS)
        _check_choice("linear_attention_backend", self.linear_attention_backend, BACKENDS)
        self._validate_numbers()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"LrpeConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        head_dim = self.head_dim
        check_attention_pair(self.attention_type, self.position_encoding, type_field="LrpeConfig.attention_type",
                             encoding_field="LrpeConfig.position_encoding")
        needs_even = self.position_encoding == "rope" or (
            self.position_encoding == "lrpe" and self.lrpe_core in ("rotation", "mixed_rotation")
        )
        if needs_even and head_dim % 2:
            what = "rope" if self.position_encoding == "rope" else f"lrpe_core={self.lrpe_core!r}"
            raise ValueError(
                f"{what} rotates pairs of channels and needs an even head dim, got head_dim={head_dim} "
                f"(hidden_size={self.hidden_size} / num_attention_heads={self.num_attention_heads})"
            )

    # -- derived values ---------------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def layer_types(self) -> list[str]:
        """One cache-layer kind per layer, as Transformers' ``DynamicCache(config=...)`` reads it: a recurrent state
        (``linear_attention``) or growing keys/values (``full_attention``). Derived from ``attention_type``, so it is
        never saved and cannot disagree with it."""
        kind = "linear_attention" if self.attention_type == "linear" else "full_attention"
        return [kind] * self.num_hidden_layers

    @layer_types.setter
    def layer_types(self, value) -> None:
        # A config.json that carries layer_types (written by another tool) loads if it agrees with attention_type.
        if value is not None and list(value) != self.layer_types:
            raise ValueError(
                f"LrpeConfig.layer_types={value!r} disagrees with attention_type={self.attention_type!r} and "
                f"num_hidden_layers={self.num_hidden_layers}; layer_types is derived, set attention_type instead"
            )

    @property
    def resolved_attention_norm(self) -> str:
        """The normalisation actually used by linear attention (``attention_norm`` with ``None`` resolved)."""
        if self.attention_norm is not None:
            return self.attention_norm
        return default_attention_norm(self.position_encoding)

    # -- presets ----------------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, size: str = "wikitext-base", **overrides) -> "LrpeConfig":
        """A named configuration of the paper at a named size; ``overrides`` replace any field.

        Names: ``PRESETS`` (four final LRPE configurations, baselines ``nope``, ``rope``, ``cosformer``,
        ``permuteformer``, ``lrpe-d``, ``softmax``). Sizes: ``SIZES`` (``wikitext-base`` causal LM, ``roberta-base``
        encoder, ``small`` and ``tiny`` for CPU).
        """
        if name not in PRESETS:
            raise ValueError(f"unknown LRPE preset {name!r}; choose one of {tuple(PRESETS)}")
        if size not in SIZES:
            raise ValueError(f"unknown LRPE size {size!r}; choose one of {tuple(SIZES)}")
        kwargs = copy.deepcopy(SIZES[size])
        kwargs.update(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)


__all__ = ["LrpeConfig", "PRESETS", "SIZES"]
