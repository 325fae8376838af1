"""LRPE linear-attention transformers (arXiv 2307.09270) as Transformers models.

``LrpeModel`` (causal or bidirectional backbone), ``LrpeForCausalLM`` (generation with a recurrent state: memory per
generated token does not grow with the context), ``LrpeForMaskedLM`` and ``LrpeForSequenceClassification``
(bidirectional, padding-aware encoders). The attention math lives in ``lrpe_hf.ops``; the layer in
``lrpe_hf.layers.attention`` (the package's one linear and one softmax attention module).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    MaskedLMOutput,
    SequenceClassifierOutput,
)
from transformers.utils import can_return_tuple

from ...layers.attention import LinearAttention, SoftmaxAttention
from ...layers.position_encoding import PositionEncoding, init_position_encoding
from ...ops.cross_entropy import linear_cross_entropy
from ..cache_layers import RollbackLinearAttentionLayer, adopt_rollback_layers, layer_past, store_layer_state
from ..modeling_common import (
    AtomicSaveMixin,
    cache_output,
    refuse_output_attentions,
    CACHE_NAME,
    PACKING_KWARGS,
    packed_documents,
    prepare_rollback_decoding,
    reject_unknown_kwargs,
    resolve_cache,
)

# What Transformers' loss functions take besides logits and labels (the Trainer passes num_items_in_batch).
CAUSAL_LM_LOSS_KWARGS = ("num_items_in_batch", "ignore_index", "shift_labels")
# generate(stop_strings=..., tokenizer=tok) forwards the tokenizer to forward (Transformers 5.24); it is ignored.
GENERATE_PASSTHROUGH_KWARGS = ("tokenizer",)
MASKED_LM_LOSS_KWARGS = ("num_items_in_batch", "ignore_index")
CLASSIFICATION_LOSS_KWARGS = ("num_items_in_batch",)
from .configuration_lrpe import LrpeConfig


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------
class LrpeScaledWordEmbedding(nn.Embedding):
    """Token embedding multiplied by ``embed_scale`` (``sqrt(hidden_size)`` with ``config.scale_embedding``).

    The scale lives in the module, as in BART, so ``get_input_embeddings()(ids)`` gives what the model adds
    position embeddings to, and a tied output layer uses the unscaled weight.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, embed_scale: float = 1.0):
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.embed_scale = embed_scale

    def forward(self, input_ids):
        out = super().forward(input_ids)
        return out * self.embed_scale if self.embed_scale != 1.0 else out


def sinusoidal_position_embedding(positions: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """fairseq-style sinusoidal embedding ``[sin(p w) || cos(p w)]`` for positions ``(batch, n)`` -> ``(batch, n, dim)``.

    Computed on the fly, so it has no length limit and nothing to save.
    """
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32) * -scale)
    angles = positions.float()[..., None] * freqs
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb.to(dtype)


class LrpeMLP(nn.Module):
    def __init__(self, config: LrpeConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act_fn = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.dropout(self.act_fn(self.up_proj(x))))


def build_lrpe_attention(config: LrpeConfig, layer_idx: int) -> LinearAttention | SoftmaxAttention:
    """The attention module of one block (fairseq-evo ``LinearKernelAttention`` order; arXiv 2307.09270)::

        q, k, v = projections, split into heads
        q, k    = phi(q), phi(k)                   (feature map, linear attention only)
        q, k    = f(q, s), f(k, t)                 (the position encoding at absolute positions)
        o       = linear_attention(q, k, v)        (no 1/sqrt(d); no denominator for LRPE)
        o       = LayerNorm(concat heads)          (LRPE) -- baselines divide by the denominator instead
        o       = o_proj(o)

    The softmax reference applies the same position transform (no feature map) and then scaled dot-product attention,
    so a softmax model of identical size is one flag away.
    """
    head_dim = config.hidden_size // config.num_attention_heads
    encoding_options = dict(
        core=config.lrpe_core, p=config.lrpe_p, theta_type=config.lrpe_theta_type,
        theta_learned=config.lrpe_theta_learned, householder_learned=config.lrpe_householder_learned,
        max_positions=config.max_position_embeddings, seed=config.lrpe_seed + layer_idx, layer_idx=layer_idx,
        num_layers=config.num_hidden_layers,
    )
    common = dict(qkv_bias=config.attention_bias, out_bias=config.attention_bias, layer_idx=layer_idx,
                  position_encoding=config.position_encoding, encoding_options=encoding_options)
    if config.attention_type == "linear":
        norm = config.resolved_attention_norm
        attn = LinearAttention(
            config.hidden_size, config.num_attention_heads, head_dim, feature_map=config.feature_map,
            normalize=norm, norm_eps=config.layer_norm_eps, chunk_size=config.chunk_size,
            algorithm=config.attention_algorithm, backend=getattr(config, "linear_attention_backend", "auto"),
            unrotated_denominator=(norm == "denominator" and config.position_encoding == "rope"
                                   and getattr(config, "rope_denominator", "unrotated") == "unrotated"),
            **common,
        )
    else:
        attn = SoftmaxAttention(config.hidden_size, config.num_attention_heads, head_dim,
                                dropout=config.attention_dropout, **common)
    # fairseq-evo initialisation, read by _init_weights: q/k/v xavier-uniform with gain 1/sqrt(2), the output
    # projection xavier-uniform.
    for proj, gain in ((attn.q_proj, 2**-0.5), (attn.k_proj, 2**-0.5), (attn.v_proj, 2**-0.5), (attn.o_proj, 1.0)):
        proj.xavier_gain = gain
    return attn


class LrpeBlock(GradientCheckpointingLayer):
    """Attention + MLP with residuals; pre-norm (LM) or post-norm (RoBERTa-style encoder).

    Between calls, Transformers' ``Cache`` (``DynamicCache(config=...)``, one layer per ``config.layer_types`` entry)
    carries the recurrent state of linear layers and the growing keys/values of softmax layers; the block moves them
    in and out of the attention module's state dict (``lrpe_hf.models.cache_layers``).
    """

    def __init__(self, config: LrpeConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.pre_norm
        self.self_attn = build_lrpe_attention(config, layer_idx)
        self.mlp = LrpeMLP(config)
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def _attend(self, hidden_states, positions, key_mask, cache, causal, documents):
        """``key_mask (batch, n)`` or ``(batch, past + n)`` (1 = real token) or None."""
        attn, n = self.self_attn, hidden_states.shape[1]
        past = None
        if cache is not None:
            seen = cache.layers[attn.layer_idx].get_seq_length() if attn.layer_idx < len(cache.layers) else 0
            full = key_mask if key_mask is not None and key_mask.shape[-1] > n else None
            if key_mask is not None and full is None and not attn.is_linear and seen:
                raise ValueError(
                    f"softmax attention over {seen} cached + {n} new keys needs the attention_mask of the whole "
                    f"sequence (batch, {seen + n}), got one of length {key_mask.shape[-1]}"
                )
            # cached keys sit at the positions the model gave them: real tokens counted, padding skipped
            key_positions = None if full is None else (full.long().cumsum(-1) - 1).clamp(min=0)
            past = layer_past(cache, attn.layer_idx, seen, hidden_states.shape[0], full, key_positions)
        out, state = attn(hidden_states, key_padding_mask=None if key_mask is None else key_mask[:, -n:],
                          positions=positions, causal=causal, past_state=past, use_cache=cache is not None,
                          documents=documents)
        if cache is not None:
            store_layer_state(cache, attn.layer_idx, 0 if past is None or attn.is_linear else past["key"].shape[2],
                              state)
        return out

    def forward(self, hidden_states, positions, key_mask=None, cache=None, causal=True, documents=None):
        if self.pre_norm:
            h = self._attend(self.input_layernorm(hidden_states), positions, key_mask, cache, causal, documents)
            hidden_states = hidden_states + self.dropout(h)
            return hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        h = self._attend(hidden_states, positions, key_mask, cache, causal, documents)
        hidden_states = self.input_layernorm(hidden_states + self.dropout(h))
        return self.post_attention_layernorm(hidden_states + self.dropout(self.mlp(hidden_states)))


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------
class LrpePreTrainedModel(AtomicSaveMixin, PreTrainedModel):
    config_class = LrpeConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LrpeBlock"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    # Position parameters (theta, Householder vectors, decays) stay float32 under from_pretrained(dtype=...), bf16
    # included ("strict"), as under .to(dtype) (PositionEncoding._apply): low-precision angles lose the positions.
    _keep_in_fp32_modules_strict = ["position_encoding"]
    _supports_sdpa = False  # softmax layers call SDPA directly; there is no attn_implementation switch

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, PositionEncoding):
            # Learned theta gets its start; fixed tables (non-persistent buffers, never saved) are rebuilt after
            # meta-device loading; random parts are redrawn from the configured seed unless loaded.
            init_position_encoding(module, init)
        elif isinstance(module, nn.Linear):
            gain = getattr(module, "xavier_gain", None)  # attention projections (set by build_lrpe_attention)
            if gain is not None:
                init.xavier_uniform_(module.weight, gain=gain)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            if getattr(module, "embed_scale", 1.0) != 1.0:
                # fairseq's pairing: N(0, d^-1/2) times sqrt(d) gives token embeddings of unit scale, comparable to
                # the sinusoidal table; 0.02 * sqrt(d) would still leave them under it.
                std = module.embedding_dim**-0.5
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


def _take_packing(kwargs: dict) -> dict:
    """The packed-batch keywords (DataCollatorWithFlattening's boundary arguments), taken out of ``kwargs``."""
    return {name: kwargs.pop(name) for name in PACKING_KWARGS if name in kwargs}


def _documents(packing, input_ids, inputs_embeds, position_ids, attention_mask, cache=None):
    """Document index per token of a packed batch, or None (what ``LrpeModel`` computes; the heads need it too)."""
    source = input_ids if input_ids is not None else inputs_embeds
    if source is None or source.dim() < 2:
        return None
    return packed_documents(dict(packing), position_ids, _select_mask(attention_mask), cache is not None,
                            source.shape[0], source.shape[1], source.device)[0]


def _select_mask(attention_mask):
    """Accept the dict form generate may build (keyed by layer type) and return the plain 2-D padding mask."""
    if isinstance(attention_mask, dict):
        for key in ("linear_attention", "full_attention"):
            m = attention_mask.get(key)
            if m is not None and m.dim() == 2:
                return m
        if any(m is not None for m in attention_mask.values()):
            raise ValueError(
                "attention_mask dict holds no 2-D (batch, seq_len) padding mask; LRPE layers need the 2-D form"
            )
        return None
    return attention_mask


class LrpeModel(LrpePreTrainedModel):
    """The backbone: token (+ absolute position) embeddings and ``num_hidden_layers`` LRPE blocks.

    ``causal`` (default ``config.is_causal``) selects causal or bidirectional attention; the heads fix it.
    """

    def __init__(self, config: LrpeConfig, causal: bool | None = None):
        super().__init__(config)
        self.causal = config.is_causal if causal is None else causal
        scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0
        self.embed_tokens = LrpeScaledWordEmbedding(config.vocab_size, config.hidden_size, config.pad_token_id, scale)
        if config.absolute_position_embedding == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        else:
            self.embed_positions = None
        self.embed_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([LrpeBlock(config, i) for i in range(config.num_hidden_layers)])
        # pre-norm: a final norm after the blocks; post-norm: a norm on the embeddings (RoBERTa).
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def _check_inputs(self, input_ids, inputs_embeds, attention_mask, position_ids, past_length):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("LrpeModel: pass exactly one of input_ids and inputs_embeds")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}")
            if not torch.compiler.is_compiling() and input_ids.numel():
                lo, hi = int(input_ids.min()), int(input_ids.max())
                if lo < 0 or hi >= self.config.vocab_size:
                    raise ValueError(
                        f"input_ids must lie in [0, vocab_size={self.config.vocab_size}), got values in [{lo}, {hi}]"
                    )
            b, n = input_ids.shape
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"inputs_embeds must have shape (batch, seq_len, {self.config.hidden_size}), "
                    f"got {tuple(inputs_embeds.shape)}"
                )
            b, n = inputs_embeds.shape[:2]
        if n == 0:
            raise ValueError("LrpeModel: got an empty sequence (seq_len 0); give at least one token")
        if attention_mask is not None:
            past = "past" if past_length is None else past_length  # a recurrent state does not know its length
            fits = attention_mask.shape[-1] == n or (
                attention_mask.shape[-1] > n if past_length is None else attention_mask.shape[-1] == past_length + n
            )
            if attention_mask.dim() != 2 or attention_mask.shape[0] != b or not fits:
                raise ValueError(
                    f"attention_mask must have shape (batch={b}, seq_len={n}) or (batch={b}, {past}+seq_len) "
                    f"with 1 for tokens and 0 for padding, got {tuple(attention_mask.shape)}"
                )
            if not torch.compiler.is_compiling() and not attention_mask.dtype == torch.bool:
                if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
                    raise ValueError("attention_mask must hold only 1 (token) and 0 (padding)")
        if position_ids is not None and (position_ids.dim() != 2 or position_ids.shape[-1] != n
                                         or position_ids.shape[0] not in (1, b)):
            raise ValueError(
                f"position_ids must have shape (batch={b} or 1, seq_len={n}), got {tuple(position_ids.shape)}"
            )
        return b, n

    def _check_cache(self, cache) -> None:
        if not isinstance(cache, Cache):
            raise ValueError(
                f"cache must be a transformers Cache (DynamicCache(config=model.config)), got {type(cache).__name__}"
            )
        expected = self.config.layer_types
        kinds = [_cache_layer_kind(layer) for layer in cache.layers]
        if kinds and kinds != expected:
            raise ValueError(
                f"cache layers {kinds} do not match this model's layer_types {expected}: build the cache with "
                "DynamicCache(config=model.config)"
            )

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        cache = resolve_cache(cache, past_key_values, kwargs)
        packing = _take_packing(kwargs)
        reject_unknown_kwargs(type(self).__name__, kwargs)
        refuse_output_attentions(type(self).__name__, output_attentions)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        cache_asked = use_cache is True
        if not self.causal:
            if cache is not None:
                raise ValueError("a bidirectional LrpeModel has no cache: pass cache=None")
            use_cache = False
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        if cache is not None:
            self._check_cache(cache)
        # A packed (padding-free) row: the document of every token, positions restarting per document.
        source = input_ids if input_ids is not None else inputs_embeds
        documents = None
        if source is not None and source.dim() >= 2:
            documents, position_ids = packed_documents(
                packing, position_ids, _select_mask(attention_mask), cache is not None, source.shape[0],
                source.shape[1], source.device,
            )
        if documents is not None:
            if cache_asked:
                raise ValueError("a packed (padding-free) batch returns no cache: pass use_cache=False")
            use_cache = False
            attention_mask = None  # all ones (checked): nothing to mask
        if use_cache and cache is None:
            # Transformers' own cache: LinearAttentionLayer recurrent states or DynamicLayer keys/values per layer.
            cache = DynamicCache(config=self.config)
        if use_cache:
            # Its empty linear layers become rollback layers (count tokens; crop for draft verification).
            adopt_rollback_layers(cache)
        if not use_cache:
            cache = None
        past_length = _cache_length(cache)
        attention_mask = _select_mask(attention_mask)
        b, n = self._check_inputs(input_ids, inputs_embeds, attention_mask, position_ids, past_length)

        # Positions count real tokens only, so a left-padded row gets the positions of the unpadded one.
        if position_ids is None:
            if attention_mask is not None and attention_mask.shape[1] > n:  # the mask of past + new tokens
                position_ids = (attention_mask.long().cumsum(-1)[:, -n:] - 1).clamp(min=0)
            elif past_length is None:
                raise ValueError(
                    "continuing from a cache of linear-attention layers needs position_ids, or the attention_mask of "
                    "the whole sequence (past + new tokens): a recurrent state does not count the tokens it has seen"
                )
            elif attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1 + past_length).clamp(min=0)
            else:
                position_ids = torch.arange(past_length, past_length + n, device=self.embed_tokens.weight.device)
                position_ids = position_ids[None, :]
        position_ids = position_ids.expand(b, n)
        key_mask = attention_mask  # (batch, n) or (batch, past + n): linear layers use the last n columns
        if key_mask is not None and not torch.compiler.is_compiling() and bool(key_mask.all()):
            key_mask = None  # no padding: skip the masking (and let softmax layers use the causal SDPA kernel)

        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        ape = self.config.absolute_position_embedding
        if ape == "sinusoidal":
            hidden_states = hidden_states + sinusoidal_position_embedding(
                position_ids, self.config.hidden_size, hidden_states.dtype
            )
        elif ape == "learned":
            if not torch.compiler.is_compiling() and int(position_ids.max()) >= self.config.max_position_embeddings:
                raise ValueError(
                    f"position {int(position_ids.max())} is beyond the learned absolute position table "
                    f"(max_position_embeddings={self.config.max_position_embeddings})"
                )
            hidden_states = hidden_states + self.embed_positions(position_ids)
        if not self.config.pre_norm:
            hidden_states = self.norm(hidden_states)
        hidden_states = self.embed_dropout(hidden_states)

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(
                hidden_states, positions=position_ids, key_mask=key_mask, cache=cache, causal=self.causal,
                documents=documents,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        if self.config.pre_norm:
            hidden_states = self.norm(hidden_states)
            if output_hidden_states:
                all_hidden_states = all_hidden_states[:-1] + (hidden_states,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            **cache_output(cache),
        )


def _cache_layer_kind(layer) -> str:
    # Duck-typed: the layer classes' names and bases moved between Transformers releases.
    return "linear_attention" if hasattr(layer, "recurrent_states") else "full_attention"


def _cache_length(cache) -> int | None:
    """Tokens the cache has seen: 0 for none or an empty cache, the count a key/value or rollback layer keeps, and
    None for a filled plain ``LinearAttentionLayer`` (it does not count tokens; positions then come from
    ``position_ids`` or the mask)."""
    if cache is None or not cache.layers:
        return 0
    layer = cache.layers[0]
    if isinstance(layer, RollbackLinearAttentionLayer):
        return layer.get_seq_length()
    if _cache_layer_kind(layer) == "linear_attention":
        return None if any(layer.has_previous_state.values()) else 0
    return layer.get_seq_length()


class LrpeForCausalLM(LrpePreTrainedModel, GenerationMixin):
    """Causal LM head on a causal ``LrpeModel``. ``generate`` builds Transformers' ``DynamicCache`` from
    ``config.layer_types`` (a recurrent state per linear layer, keys/values per softmax layer) and Transformers' own
    code reorders it for beam search, expands it for ``num_return_sequences`` and offloads it."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LrpeConfig):
        super().__init__(config)
        self.model = LrpeModel(config, causal=True)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            # The tied head is not stored; listing it lets the Trainer's resume re-tie it instead of logging it as
            # a missing key of the checkpoint.
            self._keys_to_ignore_on_save = ["lm_head.weight"]
        self.post_init()

    def generate(self, *args, **kwargs):
        prepare_rollback_decoding(self, kwargs, lambda: adopt_rollback_layers(DynamicCache(config=self.config)))
        return super().generate(*args, **kwargs)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # Before 5.24, generate asks a cache it built for its length at prefill, which an all-linear DynamicCache
        # cannot answer; there the model builds the same DynamicCache in forward and generate threads it through.
        return CACHE_NAME == "cache" and super()._supports_default_dynamic_cache()

    def _chunked_loss(self, hidden_states, labels, num_items_in_batch=None, ignore_index=-100, shift_labels=None):
        """Transformers' causal-LM loss (labels shifted left, ``ignore_index`` skipped, mean or sum over
        ``num_items_in_batch``) computed with the output projection chunk by chunk."""
        if shift_labels is None:
            shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
        return linear_cross_entropy(hidden_states, self.lm_head.weight, self.lm_head.bias, shift_labels,
                                    chunk_size=self.config.loss_chunk_size, ignore_index=ignore_index,
                                    num_items_in_batch=num_items_in_batch)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        cache = resolve_cache(cache, past_key_values, kwargs)
        packing = _take_packing(kwargs)
        loss_kwargs = reject_unknown_kwargs(type(self).__name__, kwargs,
                                            CAUSAL_LM_LOSS_KWARGS + GENERATE_PASSTHROUGH_KWARGS)
        loss_kwargs.pop("tokenizer", None)
        if labels is not None and use_cache is None:
            use_cache = False  # a training step needs no state
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **packing,
        )
        if labels is not None and "shift_labels" not in loss_kwargs:
            documents = _documents(packing, input_ids, inputs_embeds, position_ids, attention_mask, cache)
            if documents is not None:
                # The last token of a document must not learn to predict the next document's first token
                # (DataCollatorWithFlattening already puts -100 there; plain labels = input_ids do not).
                starts = torch.zeros_like(labels, dtype=torch.bool)
                starts[:, 1:] = documents[:, 1:] != documents[:, :-1]
                labels = labels.masked_fill(starts, -100)
        hidden_states = outputs.last_hidden_state
        if labels is not None and self.training and self.config.loss_chunk_size:
            # The head and the loss in one pass over chunks of tokens: no (tokens x vocab) logits (see the config).
            return CausalLMOutputWithPast(
                loss=self._chunked_loss(hidden_states, labels, **loss_kwargs),
                logits=None,
                **cache_output(getattr(outputs, CACHE_NAME, None)),
                hidden_states=outputs.hidden_states,
            )
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size,
                                      **loss_kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            **cache_output(getattr(outputs, CACHE_NAME)),
        )


class LrpeForMaskedLM(LrpePreTrainedModel):
    """Masked LM on a bidirectional, padding-aware ``LrpeModel`` (padded keys and values contribute nothing)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LrpeConfig):
        super().__init__(config)
        self.model = LrpeModel(config, causal=False)
        # RoBERTa-style transform before the (tied) decoder.
        self.mlm_dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.mlm_act = ACT2FN[config.hidden_act]
        self.mlm_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        packing = _take_packing(kwargs)
        loss_kwargs = reject_unknown_kwargs(type(self).__name__, kwargs, MASKED_LM_LOSS_KWARGS)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **packing,
        )
        h = self.mlm_norm(self.mlm_act(self.mlm_dense(outputs.last_hidden_state)))
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size,
                                      **loss_kwargs)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class LrpeForSequenceClassification(LrpePreTrainedModel):
    """Sequence classification / regression on a bidirectional ``LrpeModel`` with mean (over real tokens) or
    first-token pooling (``config.classifier_pooling``); the loss follows ``config.problem_type``."""

    def __init__(self, config: LrpeConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LrpeModel(config, causal=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        packing = _take_packing(kwargs)
        loss_kwargs = reject_unknown_kwargs(type(self).__name__, kwargs, CLASSIFICATION_LOSS_KWARGS)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **packing,
        )
        h = outputs.last_hidden_state
        documents = _documents(packing, input_ids, inputs_embeds, position_ids, attention_mask)
        attention_mask = _select_mask(attention_mask)
        if documents is not None:
            # A packed row holds several examples: one pooled vector (and one label) per document, in order.
            pooled = _pool_documents(h, documents, self.config.classifier_pooling)
            if labels is not None and labels.shape[0] != pooled.shape[0]:
                raise ValueError(f"a packed batch of {pooled.shape[0]} (non-empty) documents needs one label each, got "
                                 f"labels of shape {tuple(labels.shape)}")
        elif self.config.classifier_pooling == "first":
            if attention_mask is not None:  # the first real token (also with left padding)
                first = attention_mask.long().argmax(-1)
                pooled = h[torch.arange(h.shape[0], device=h.device), first]
            else:
                pooled = h[:, 0]
        else:
            if attention_mask is not None:
                m = attention_mask.to(h.dtype)[..., None]
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            else:
                pooled = h.mean(1)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config, **loss_kwargs)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


def _pool_documents(h: torch.Tensor, documents: torch.Tensor, pooling: str) -> torch.Tensor:
    """``(num_documents, hidden)``: the first token or the mean of each packed document, row by row."""
    b, n, d = h.shape
    starts = torch.ones_like(documents, dtype=torch.bool)
    starts[:, 1:] = documents[:, 1:] != documents[:, :-1]
    doc_of_token = starts.flatten().long().cumsum(0) - 1  # a running document number over the whole batch
    flat = h.reshape(b * n, d)
    if pooling == "first":
        return flat[starts.flatten()]
    count = int(starts.sum())
    sums = flat.new_zeros(count, d).index_add_(0, doc_of_token, flat)
    sizes = torch.bincount(doc_of_token, minlength=count).to(h.dtype)[:, None]
    return sums / sizes


__all__ = [
    "LrpePreTrainedModel",
    "LrpeModel",
    "LrpeForCausalLM",
    "LrpeForMaskedLM",
    "LrpeForSequenceClassification",
]
