"""Mixed-attention transformer (mixFormer, arXiv 2207.13955): per-layer attention type, FFN width and head count.

* :class:`MixFormerModel`: the backbone. Image encoder (``pixel_values``) or, with ``config.is_encoder_decoder``,
  a text encoder-decoder (``input_ids``, ``decoder_input_ids``).
* :class:`MixFormerForImageClassification`: mean over patch tokens (or CLS) -> linear classifier.
* :class:`MixFormerForConditionalGeneration`: seq2seq LM head tied to the shared embeddings; ``generate()`` with
  greedy/beam search/sampling, and assisted, speculative and prompt-lookup decoding, on Transformers' own cache layers
  (:func:`build_generation_cache`: softmax layers keep keys/values, linear layers a recurrent state that can be
  rolled back over a drafted window, cross-attention the projected encoder keys/values).

Layers (:class:`MixFormerEncoderLayer`, :class:`MixFormerDecoderLayer`) accept ``num_heads=`` and ``ffn_dim=``
and run on inputs narrower than ``hidden_size`` (prefix slicing, ``lrpe_hf.layers.elastic``), so the NAS
super-network can reuse them unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.utils import can_return_tuple

from ...layers.attention import build_attention, init_attention_weights
from ...layers.elastic import DropPath, FeedForward, PatchEmbedding, sliced_layer_norm
from ..cache_layers import (
    RollbackLinearAttentionLayer,
    adopt_rollback_layers,
    cached_length,
    layer_past,
    store_layer_state,
)
from ..modeling_common import (
    CACHE_NAME,
    AtomicSaveMixin,
    cache_output,
    check_pixel_values,
    refuse_output_attentions,
    prepare_rollback_decoding,
    refuse_packed_batch,
    register_key_migration,
    reject_unknown_kwargs,
    resolve_cache,
)
from .configuration_mixformer import MixFormerConfig

register_key_migration("mixformer")  # checkpoints keep the attention names of lrpe_hf <= 0.2


# ------------------------------------------------------------------------------------------------------- cache
def build_generation_cache(config: MixFormerConfig) -> EncoderDecoderCache:
    """Transformers' own cache layers for the decoder, wrapped like any built-in encoder-decoder's:

    * self-attention: a ``RollbackLinearAttentionLayer`` (Transformers' ``LinearAttentionLayer`` that also counts
      its tokens and can be cropped back over a drafted window) per cosFormer/LRPE layer and a ``DynamicLayer`` per
      softmax layer;
    * cross-attention: a ``DynamicCache`` of the projected encoder keys/values (always softmax), computed once.

    Not ``DynamicCache(config=...)``: the config's ``num_hidden_layers`` counts the encoder's layers, and its cross
    layers would copy the self-attention kinds.
    """
    layers = [RollbackLinearAttentionLayer() if kind == "linear" else DynamicLayer()
              for kind in config.decoder_layer_attention_type]
    # A DynamicCache holding these layers (EncoderDecoderCache crops only DynamicCaches); it must not replicate
    # DynamicLayers for indices it lacks.
    self_cache = DynamicCache()
    self_cache.layers, self_cache.layer_class_to_replicate = layers, None
    return EncoderDecoderCache(self_cache, DynamicCache())


def _is_empty(cache: Cache) -> bool:
    return all(
        not any(layer.has_previous_state.values()) if hasattr(layer, "recurrent_states")
        else getattr(layer, "keys", None) is None or layer.get_seq_length() == 0
        for layer in cache.layers
    )


def adopt_generation_cache(cache: EncoderDecoderCache, config: MixFormerConfig) -> EncoderDecoderCache:
    """Check a caller's cache against the decoder; an empty one (e.g. ``DynamicCache(config=...)`` wrapped by the
    caller, whose layers follow the encoder's count) is given the decoder's layer kinds in place, so it is filled."""
    expected = build_generation_cache(config)
    for name in ("self_attention_cache", "cross_attention_cache"):
        mine, theirs = getattr(expected, name), getattr(cache, name)
        kinds = [hasattr(layer, "recurrent_states") for layer in theirs.layers]
        wanted = [hasattr(layer, "recurrent_states") for layer in mine.layers]
        if kinds[: len(wanted)] == wanted[: len(kinds)] and len(kinds) <= max(len(wanted), len(kinds)):
            if name == "cross_attention_cache" or kinds == wanted:
                continue
        if not _is_empty(theirs):
            raise ValueError(
                f"the cache's {name} layers do not match the decoder's layer types "
                f"{config.decoder_layer_attention_type}; "
                "build it with lrpe_hf.models.mixformer.build_generation_cache(config)"
            )
        theirs.layers[:] = mine.layers
    adopt_rollback_layers(cache.self_attention_cache)
    for layer in cache.self_attention_cache.layers:
        if hasattr(layer, "recurrent_states") and not isinstance(layer, RollbackLinearAttentionLayer):
            raise ValueError("the cache's linear layers hold states that do not count their tokens; build it with "
                             "lrpe_hf.models.mixformer.build_generation_cache(config)")
    return cache


def _cross_past(cross_cache, i):
    """Layer ``i``'s cached encoder keys/values as a cross-attention state dict, or None."""
    if i < len(cross_cache.layers) and cross_cache.layers[i].get_seq_length() > 0:
        return {"cross": True, "key": cross_cache.layers[i].keys, "value": cross_cache.layers[i].values}
    return None


# ------------------------------------------------------------------------------------------------------- layers
class MixFormerEncoderLayer(GradientCheckpointingLayer):
    """Pre-LN block: ``x + drop_path(attn(LN(x)))``, then ``x + drop_path(FFN(LN(x)))``.

    ``forward(hidden_states, key_padding_mask=None, positions=None, grid=None, num_heads=None, ffn_dim=None)``;
    ``hidden_states`` may be narrower than ``hidden_size`` (sliced super-network), the attention may use fewer
    heads and the FFN fewer hidden units.
    """

    def __init__(self, config: MixFormerConfig, layer_idx: int, attention_type: str, position_encoding: str,
                 ffn_dim: int, num_heads: int, drop_path: float = 0.0):
        super().__init__()
        d = config.hidden_size
        self.attention_type = attention_type
        # the released mixFormer CIFAR code runs cosFormer causally inside the bidirectional encoder
        self.causal = attention_type == "linear" and position_encoding == "cosformer" and config.cosformer_causal
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.self_attn = build_attention(attention_type, d, num_heads, config.head_dim,
                                         **config.attention_options(attention_type, position_encoding, layer_idx))
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ffn = FeedForward(d, ffn_dim, config.activation, config.activation_dropout)
        self.dropout = config.hidden_dropout_prob
        self.drop_path = DropPath(drop_path)

    def forward(self, hidden_states, key_padding_mask=None, positions=None, grid=None, num_heads=None,
                ffn_dim=None):
        h, _ = self.self_attn(sliced_layer_norm(hidden_states, self.self_attn_layer_norm),
                              key_padding_mask=key_padding_mask, positions=positions, grid=grid,
                              causal=self.causal, num_heads=num_heads)
        hidden_states = hidden_states + self.drop_path(F.dropout(h, self.dropout, self.training))
        h = self.ffn(sliced_layer_norm(hidden_states, self.final_layer_norm), ffn_dim=ffn_dim)
        return hidden_states + self.drop_path(F.dropout(h, self.dropout, self.training))


class MixFormerDecoderLayer(GradientCheckpointingLayer):
    """Pre-LN decoder block: causal self-attention (per-layer type), softmax cross-attention, FFN.

    ``forward(hidden_states, encoder_hidden_states, encoder_key_mask=None, key_padding_mask=None,
    positions=None, past_key_values=None, use_cache=False, num_heads=None, cross_num_heads=None, ffn_dim=None)``
    returns ``(hidden_states, (self_state, cross_state))``; ``past_key_values`` is this layer's pair of state dicts.
    """

    def __init__(self, config: MixFormerConfig, layer_idx: int, attention_type: str, position_encoding: str,
                 ffn_dim: int, num_heads: int, cross_num_heads: int):
        super().__init__()
        d = config.hidden_size
        self.attention_type = attention_type
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.self_attn = build_attention(attention_type, d, num_heads, config.head_dim,
                                         **config.attention_options(attention_type, position_encoding, layer_idx))
        self.encoder_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.encoder_attn = build_attention("softmax", d, cross_num_heads, config.head_dim,
                                            dropout=config.attention_dropout, layer_idx=layer_idx)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ffn = FeedForward(d, ffn_dim, config.activation, config.activation_dropout)
        self.dropout = config.hidden_dropout_prob

    def forward(self, hidden_states, encoder_hidden_states, encoder_key_mask=None, key_padding_mask=None,
                positions=None, past_key_values=None, use_cache=False, num_heads=None, cross_num_heads=None,
                ffn_dim=None):
        self_past, cross_past = past_key_values if past_key_values is not None else (None, None)
        h, self_state = self.self_attn(sliced_layer_norm(hidden_states, self.self_attn_layer_norm),
                                       key_padding_mask=key_padding_mask, positions=positions, causal=True,
                                       past_state=self_past, use_cache=use_cache, num_heads=num_heads)
        hidden_states = hidden_states + F.dropout(h, self.dropout, self.training)
        h, cross_state = self.encoder_attn(sliced_layer_norm(hidden_states, self.encoder_attn_layer_norm),
                                           None if cross_past else encoder_hidden_states,
                                           key_padding_mask=encoder_key_mask, past_state=cross_past,
                                           use_cache=use_cache, num_heads=cross_num_heads)
        hidden_states = hidden_states + F.dropout(h, self.dropout, self.training)
        h = self.ffn(sliced_layer_norm(hidden_states, self.final_layer_norm), ffn_dim=ffn_dim)
        hidden_states = hidden_states + F.dropout(h, self.dropout, self.training)
        return hidden_states, (self_state, cross_state)


class MixFormerImageEmbeddings(nn.Module):
    """Patch embedding, CLS token, ``* sqrt(d)`` scale (``scale_embedding``), learned absolute positions.

    ``forward(pixel_values, hidden_size=None)`` -> ``(tokens (batch, [1 +] rows * cols, d), (rows, cols))``.
    """

    def __init__(self, config: MixFormerConfig):
        super().__init__()
        d = config.hidden_size
        self.config = config
        self.patch_embeddings = PatchEmbedding(config.num_channels, d, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if config.use_cls_token else None
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.max_position_embeddings, d))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values, hidden_size=None):
        x, grid = self.patch_embeddings(pixel_values, hidden_size)
        d = x.shape[-1]
        if self.cls_token is not None:
            x = torch.cat((self.cls_token[..., :d].expand(x.shape[0], -1, -1).to(x.dtype), x), dim=1)
        n = x.shape[1]
        if n > self.position_embeddings.shape[1]:
            raise ValueError(
                f"the image gives {n} tokens but the model has {self.position_embeddings.shape[1]} positions "
                f"(image_size={self.config.image_size}, patch_size={self.config.patch_size}); resize the input"
            )
        if self.config.scale_embedding:
            x = x * math.sqrt(d)
        x = x + self.position_embeddings[:, :n, :d].to(x.dtype)
        return self.dropout(x), grid


class MixFormerEncoder(nn.Module):
    """Stack of :class:`MixFormerEncoderLayer` (per-layer type/FFN/heads from the config) + final LayerNorm."""

    def __init__(self, config: MixFormerConfig):
        super().__init__()
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layers = nn.ModuleList(
            MixFormerEncoderLayer(config, i, config.layer_attention_type[i], config.layer_position_encoding[i],
                                  config.layer_ffn_dim[i], config.layer_num_heads[i], rates[i])
            for i in range(depth)
        )
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, key_padding_mask=None, positions=None, output_hidden_states=False):
        all_hidden = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, key_padding_mask=key_padding_mask, positions=positions)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
        return sliced_layer_norm(hidden_states, self.layer_norm), all_hidden


class MixFormerTextEncoder(nn.Module):
    """Token embeddings (shared) ``* sqrt(d)`` + learned positions -> :class:`MixFormerEncoder` (seq2seq side)."""

    main_input_name = "input_ids"

    def __init__(self, config: MixFormerConfig):
        super().__init__()
        self.config = config
        # the model's one token table: tied to MixFormerSeq2SeqModel.shared (_tied_weights_keys)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.encoder = MixFormerEncoder(config)
        self.embed_scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_hidden_states=None,
                output_attentions=None, return_dict=True, **kwargs):
        # logits_to_keep: assisted decoding prepares an assistant's encoder inputs from the main model's generation
        # kwargs, which carry it; an encoder has no logits, so it is ignored.
        reject_unknown_kwargs(type(self).__name__, kwargs, allowed=("logits_to_keep",))
        refuse_output_attentions(type(self).__name__, output_attentions)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        n = inputs_embeds.shape[1]
        if n > self.config.max_position_embeddings:
            raise ValueError(f"input length {n} exceeds max_position_embeddings={self.config.max_position_embeddings}")
        positions = torch.arange(n, device=inputs_embeds.device)
        x = inputs_embeds * self.embed_scale + self.embed_positions(positions)[None]
        x = F.dropout(x, self.config.hidden_dropout_prob, self.training)
        key_mask = None if attention_mask is None else attention_mask.bool()
        last, hidden = self.encoder(x, key_padding_mask=key_mask, positions=positions,
                                    output_hidden_states=bool(output_hidden_states))
        return BaseModelOutput(last_hidden_state=last, hidden_states=hidden)


class MixFormerTextDecoder(nn.Module):
    """Decoder stack with per-layer self-attention type, softmax cross-attention and the shared embeddings."""

    def __init__(self, config: MixFormerConfig):
        super().__init__()
        self.config = config
        # the model's one token table: tied to MixFormerSeq2SeqModel.shared (_tied_weights_keys)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.embed_scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0
        self.layers = nn.ModuleList(
            MixFormerDecoderLayer(config, config.num_hidden_layers + i, config.decoder_layer_attention_type[i],
                                  config.decoder_layer_position_encoding[i],
                                  config.decoder_layer_ffn_dim[i], config.decoder_layer_num_heads[i],
                                  config.decoder_layer_cross_num_heads[i])
            for i in range(config.decoder_layers)
        )
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids=None, encoder_hidden_states=None, encoder_attention_mask=None, attention_mask=None,
                inputs_embeds=None, cache: EncoderDecoderCache | None = None, use_cache=False,
                output_hidden_states=False):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of decoder_input_ids or decoder_inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        b, n = inputs_embeds.shape[:2]
        self_cache = cache.self_attention_cache if cache is not None else None
        offset = cached_length(self_cache) if cache is not None else 0
        if offset + n > self.config.max_position_embeddings:
            raise ValueError(f"decoder length {offset + n} exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        positions = torch.arange(offset, offset + n, device=inputs_embeds.device)
        x = inputs_embeds * self.embed_scale + self.embed_positions(positions)[None]
        x = F.dropout(x, self.config.hidden_dropout_prob, self.training)
        enc_mask = None if encoder_attention_mask is None else encoder_attention_mask.bool()
        full_mask = self_mask = None
        if attention_mask is not None:
            if attention_mask.shape[-1] not in (n, offset + n) or (offset and attention_mask.shape[-1] == n
                                                                  and not bool(attention_mask.all())):
                raise ValueError(
                    f"decoder_attention_mask must cover the {offset} cached and {n} new decoder tokens "
                    f"(batch, {offset + n}), got {tuple(attention_mask.shape)}"
                )
            if attention_mask.shape[-1] == offset + n:
                full_mask = attention_mask.bool()
            self_mask = attention_mask.bool()[:, -n:]
        all_hidden = (x,) if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            self_past = cross_past = None
            if cache is not None:
                self_past = layer_past(self_cache, i, offset, b, full_mask)
                cross_past = _cross_past(cache.cross_attention_cache, i)
            x, (self_state, cross_state) = layer(
                x, encoder_hidden_states, encoder_key_mask=enc_mask, key_padding_mask=self_mask,
                positions=positions, past_key_values=(self_past, cross_past), use_cache=cache is not None,
            )
            if cache is not None:
                store_layer_state(self_cache, i, offset, self_state)
                if cross_past is None:
                    cache.cross_attention_cache.update(cross_state["key"], cross_state["value"], i)
            if output_hidden_states:
                all_hidden = all_hidden + (x,)
        return sliced_layer_norm(x, self.layer_norm), all_hidden


# ------------------------------------------------------------------------------------------------------- models
class MixFormerPreTrainedModel(AtomicSaveMixin, PreTrainedModel):
    config_class = MixFormerConfig
    base_model_prefix = "mixformer"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["MixFormerEncoderLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, MixFormerImageEmbeddings):
            init.trunc_normal_(module.position_embeddings, std=std)
            if module.cls_token is not None:
                init.trunc_normal_(module.cls_token, std=std)
        else:
            init_attention_weights(module, init)


class MixFormerModel(MixFormerPreTrainedModel):
    """The backbone ``AutoModel`` builds for ``model_type="mixformer"``: constructing it gives a
    :class:`MixFormerImageModel` (image encoder) or a :class:`MixFormerSeq2SeqModel` (encoder-decoder, like
    ``BartModel``) as ``config.is_encoder_decoder`` says; both are ``MixFormerModel``s with their own class-level
    ``main_input_name``, ``_no_split_modules`` and tied weights."""

    def __new__(cls, config=None, *args, **kwargs):
        if cls is MixFormerModel:
            if config is None:
                raise TypeError("MixFormerModel(config): the config says which backbone to build")
            cls = MixFormerSeq2SeqModel if getattr(config, "is_encoder_decoder", False) else MixFormerImageModel
        return super().__new__(cls)


class MixFormerImageModel(MixFormerModel):
    """Image encoder: ``forward(pixel_values)`` -> ``BaseModelOutputWithPooling`` (pooler = mean of the patch tokens
    or CLS, after the final LayerNorm)."""

    def __init__(self, config: MixFormerConfig):
        super().__init__(config)
        if config.is_encoder_decoder:
            raise ValueError("MixFormerImageModel needs is_encoder_decoder=False (MixFormerSeq2SeqModel otherwise)")
        self.embeddings = MixFormerImageEmbeddings(config)
        self.encoder = MixFormerEncoder(config)
        self.post_init()

    def get_input_embeddings(self):
        # the patch conv: a module whose output is a tensor (see PatchEmbedding)
        return self.embeddings.patch_embeddings.projection

    def set_input_embeddings(self, value):
        raise ValueError("the image MixFormer has a patch embedding, not a token embedding to replace")

    @can_return_tuple
    def forward(self, pixel_values=None, output_hidden_states=None, output_attentions=None, **kwargs):
        reject_unknown_kwargs(type(self).__name__, kwargs)
        refuse_output_attentions(type(self).__name__, output_attentions)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if pixel_values is None:
            raise ValueError("the image MixFormer needs pixel_values (batch, channels, height, width)")
        check_pixel_values(pixel_values, type(self).__name__)
        x, grid = self.embeddings(pixel_values)
        positions = torch.arange(x.shape[1], device=x.device)
        last, hidden = self.encoder(x, positions=positions, output_hidden_states=output_hidden_states)
        if self.config.pooling == "cls":
            pooled = last[:, 0]
        else:
            pooled = last[:, int(self.config.use_cls_token):].mean(dim=1)
        return BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooled, hidden_states=hidden)


class MixFormerSeq2SeqModel(MixFormerModel):
    """Encoder-decoder backbone (like ``BartModel``): ``forward(input_ids, attention_mask, decoder_input_ids, ...)``
    -> ``Seq2SeqModelOutput``. One token table, ``shared``, feeds the encoder and the decoder: their
    ``embed_tokens`` are tied to it through ``_tied_weights_keys`` always (the architecture shares one table;
    ``tie_word_embeddings`` decides only whether a language-model head shares it too)."""

    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["MixFormerEncoderLayer", "MixFormerDecoderLayer"]
    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight",
                          "decoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: MixFormerConfig):
        super().__init__(config)
        if not config.is_encoder_decoder:
            raise ValueError("MixFormerSeq2SeqModel needs is_encoder_decoder=True (MixFormerImageModel otherwise)")
        self.shared = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.encoder = MixFormerTextEncoder(config)
        self.decoder = MixFormerTextDecoder(config)
        self.post_init()

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        tied = super().get_expanded_tied_weights_keys(all_submodels=all_submodels)
        if not all_submodels:  # the encoder/decoder tables are one whatever tie_word_embeddings says
            tied = {**self._tied_weights_keys, **tied}
        return tied

    _input_embed_layer = "shared"  # Transformers' get_input_embeddings reads it

    def set_input_embeddings(self, value):
        self.shared = value
        self.encoder.embed_tokens = value
        self.decoder.embed_tokens = value

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, cache=None, inputs_embeds=None,
                decoder_inputs_embeds=None, use_cache=None, output_hidden_states=None, output_attentions=None,
                past_key_values=None, **kwargs):
        past_key_values = resolve_cache(cache, past_key_values, kwargs)
        refuse_packed_batch(type(self).__name__, kwargs)
        if kwargs.get("pixel_values") is not None:
            raise ValueError("the encoder-decoder MixFormer takes input_ids, not pixel_values")
        kwargs.pop("pixel_values", None)
        reject_unknown_kwargs(type(self).__name__, kwargs)
        refuse_output_attentions(type(self).__name__, output_attentions)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                           inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.training and any(layer.gradient_checkpointing for layer in self.decoder.layers):
            use_cache = False  # caching is incompatible with recomputing layers in the backward pass
        if past_key_values is not None and not isinstance(past_key_values, EncoderDecoderCache):
            raise ValueError(
                "cache must be an EncoderDecoderCache of Transformers' cache layers (build it with "
                f"lrpe_hf.models.mixformer.build_generation_cache(config)), got {type(past_key_values).__name__}"
            )
        if past_key_values is not None:
            adopt_generation_cache(past_key_values, self.config)
        if use_cache and past_key_values is None:
            past_key_values = build_generation_cache(self.config)
        last, hidden = self.decoder(
            input_ids=decoder_input_ids, encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask, attention_mask=decoder_attention_mask,
            inputs_embeds=decoder_inputs_embeds, cache=past_key_values if use_cache else None,
            use_cache=use_cache, output_hidden_states=output_hidden_states,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=last,
            **cache_output(past_key_values if use_cache else None),
            decoder_hidden_states=hidden,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )


class MixFormerForImageClassification(MixFormerPreTrainedModel):
    """Image encoder + linear classifier on the pooled tokens (``config.num_labels`` classes)."""

    def __init__(self, config: MixFormerConfig):
        super().__init__(config)
        if config.is_encoder_decoder:
            raise ValueError("MixFormerForImageClassification needs is_encoder_decoder=False")
        self.num_labels = config.num_labels
        self.mixformer = MixFormerImageModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values=None, labels=None, output_hidden_states=None, output_attentions=None, **kwargs):
        loss_kwargs = reject_unknown_kwargs(type(self).__name__, kwargs, ("num_items_in_batch",))
        outputs = self.mixformer(pixel_values=pixel_values, output_hidden_states=output_hidden_states,
                                 output_attentions=output_attentions)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **loss_kwargs)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


def _check_token_ids(ids, vocab_size: int, name: str, ignore_index: int | None = None) -> None:
    """Token ids outside the vocabulary would fail as a bare IndexError deep in the embedding (or the loss)."""
    if ids is None or torch.compiler.is_compiling() or not ids.numel():
        return
    values = ids if ignore_index is None else ids[ids != ignore_index]
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= vocab_size):
        allowed = f"[0, vocab_size={vocab_size})" + (f" or {ignore_index}" if ignore_index is not None else "")
        raise ValueError(f"{name} must lie in {allowed}, got values in [{int(values.min())}, {int(values.max())}]")


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: ``[start, y_0, ..., y_{n-2}]`` with ``-100`` replaced by the pad id."""
    if decoder_start_token_id is None or pad_token_id is None:
        raise ValueError("config.decoder_start_token_id and config.pad_token_id are needed to build decoder inputs "
                         "from labels; set them or pass decoder_input_ids")
    shifted = input_ids.new_zeros(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class MixFormerForConditionalGeneration(MixFormerPreTrainedModel, GenerationMixin):
    """Encoder-decoder with an LM head tied to the shared embeddings.

    Loss: plain token cross-entropy of ``logits[:, t]`` against ``labels[:, t]`` (**no shift**: decoder inputs are
    already the labels shifted right, built from ``labels`` with ``shift_tokens_right`` when not given; -100 is
    ignored). Generation uses Transformers' cache layers (:func:`build_generation_cache`), whose linear layers roll
    back for assisted, speculative and prompt-lookup decoding.
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["MixFormerEncoderLayer", "MixFormerDecoderLayer"]
    _tied_weights_keys = {"lm_head.weight": "mixformer.shared.weight"}

    def __init__(self, config: MixFormerConfig):
        super().__init__(config)
        # The unshifted token cross-entropy (decoder inputs are the labels shifted right already) with Transformers'
        # ignore_index and num_items_in_batch handling; Transformers' guess from the class name would shift them.
        self.loss_type = "ForMaskedLM"
        if not config.is_encoder_decoder:
            raise ValueError("MixFormerForConditionalGeneration needs is_encoder_decoder=True")
        self.mixformer = MixFormerSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def generate(self, *args, **kwargs):
        prepare_rollback_decoding(self, kwargs, lambda: build_generation_cache(self.config))
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, decoder_input_ids, *args, **kwargs):
        inputs = super().prepare_inputs_for_generation(decoder_input_ids, *args, **kwargs)
        cache, ids = inputs.get(CACHE_NAME), inputs.get("decoder_input_ids")
        seen = 0 if cache is None else cache.get_seq_length()
        if ids is not None and seen and ids.shape[-1] == decoder_input_ids.shape[-1] > seen:
            # generate hands over the whole decoder sequence, and the slicing above kept all of it although the cache
            # holds its first `seen` tokens (Transformers 5.25's assistant prefill has no decoder mask to slice by):
            # feeding them again would append them to the state twice.
            inputs["decoder_input_ids"] = ids[:, seen:]
        return inputs

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The model builds its cache in forward (build_generation_cache): DynamicCache(config=...) would size it by
        # the encoder's layer count and give the always-softmax cross-attention the self-attention kinds.
        return False

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, cache=None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, output_hidden_states=None, output_attentions=None, logits_to_keep=0,
                past_key_values=None, **kwargs):
        past_key_values = resolve_cache(cache, past_key_values, kwargs)
        refuse_packed_batch(type(self).__name__, kwargs)
        # tokenizer: forwarded by generate(stop_strings=..., tokenizer=tok) in Transformers 5.24; ignored.
        kwargs = reject_unknown_kwargs(type(self).__name__, kwargs, ("num_items_in_batch", "tokenizer"))
        kwargs.pop("tokenizer", None)
        _check_token_ids(input_ids, self.config.vocab_size, "input_ids")
        _check_token_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids")
        _check_token_ids(labels, self.config.vocab_size, "labels", ignore_index=-100)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                       self.config.decoder_start_token_id)
        outputs = self.mixformer(
            input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
            cache=past_key_values, inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds, use_cache=use_cache,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
        )
        hidden = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **cache_output(getattr(outputs, CACHE_NAME)),
            decoder_hidden_states=outputs.decoder_hidden_states,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
        )


__all__ = [
    "build_generation_cache",
    "MixFormerEncoderLayer",
    "MixFormerDecoderLayer",
    "MixFormerImageEmbeddings",
    "MixFormerEncoder",
    "MixFormerTextEncoder",
    "MixFormerTextDecoder",
    "MixFormerPreTrainedModel",
    "MixFormerModel",
    "MixFormerImageModel",
    "MixFormerSeq2SeqModel",
    "MixFormerForImageClassification",
    "MixFormerForConditionalGeneration",
    "shift_tokens_right",
]
