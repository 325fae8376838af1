"""LRPE vision transformer (arXiv 2307.09270): a ViT whose attention is linear attention with a 2-D LRPE.

Per block (pre-norm): ``x + drop_path(attn(LN(x)))`` then ``x + drop_path(MLP(LN(x)))``. The attention is
:class:`lrpe_hf.layers.attention.LinearAttention`: q/k/v without bias -> ``1 + elu`` -> 2-D LRPE at each patch's
(row, column) -> ``q (k^T v)`` with no denominator -> LayerNorm over the heads -> output projection.
Tokens are mean-pooled (no CLS, official) after the final LayerNorm, or the CLS token is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils import can_return_tuple

from ...layers.attention import build_attention, init_attention_weights
from ...layers.elastic import DropPath, FeedForward, PatchEmbedding, grid_positions
from ..modeling_common import (
    AtomicSaveMixin,
    check_pixel_values,
    refuse_output_attentions,
    register_key_migration,
    reject_unknown_kwargs,
)
from .configuration_lrpe_vit import LrpeVitConfig

register_key_migration("lrpe_vit")  # checkpoints keep the attention names of lrpe_hf <= 0.2


class LrpeVitEmbeddings(nn.Module):
    """Patches -> tokens, optional CLS token, optional learned absolute position embedding.

    ``forward(pixel_values)`` -> ``(tokens (batch, [1 +] rows * cols, hidden), (rows, cols))``.
    """

    def __init__(self, config: LrpeVitConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = PatchEmbedding(config.num_channels, config.hidden_size, config.patch_size)
        self.num_prefix_tokens = int(config.pooling == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if self.num_prefix_tokens else None
        self.position_embeddings = None
        if config.use_absolute_position_embeddings:
            n = config.num_patches + self.num_prefix_tokens
            self.position_embeddings = nn.Parameter(torch.zeros(1, n, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor):
        x, grid = self.patch_embeddings(pixel_values)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x), dim=1)
        if self.position_embeddings is not None:
            if x.shape[1] != self.position_embeddings.shape[1]:
                raise ValueError(
                    f"pixel_values of size {tuple(pixel_values.shape[-2:])} give {grid[0]}x{grid[1]} patches, but the "
                    f"position embedding covers image_size={self.config.image_size}; resize the images (the image "
                    f"processor does) or use use_absolute_position_embeddings=False"
                )
            x = x + self.position_embeddings.to(x.dtype)
        return self.dropout(x), grid


class LrpeVitLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block with pluggable attention (``config.attention_type``)."""

    def __init__(self, config: LrpeVitConfig, layer_idx: int, drop_path: float = 0.0):
        super().__init__()
        d = config.hidden_size
        self.attention_type = config.attention_type
        self.layernorm_before = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.attention = build_attention(
            config.attention_type, d, config.num_attention_heads, config.head_dim,
            position_encoding=config.position_encoding, feature_map=config.feature_map,
            encoding_options=dict(core=config.lrpe_core, p=config.lrpe_p, theta_learned=config.lrpe_theta_learned,
                                  householder_learned=config.lrpe_householder_learned, mode_2d=config.lrpe_2d_mode,
                                  seed=config.lrpe_seed + layer_idx, max_positions=config.num_patches + 1,
                                  max_relative_length=config.max_relative_length),
            eps=config.cosformer_eps, chunk_size=config.chunk_size, algorithm=config.attention_algorithm,
            backend=config.linear_attention_backend, qkv_bias=config.qkv_bias, dropout=config.attention_dropout,
            layer_idx=layer_idx,
        )
        self.layernorm_after = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mlp = FeedForward(d, config.intermediate_size, config.hidden_act, config.hidden_dropout_prob)
        self.dropout = config.hidden_dropout_prob
        self.drop_path = DropPath(drop_path)

    def forward(self, hidden_states, grid=None, positions=None):
        h, _ = self.attention(self.layernorm_before(hidden_states), grid=grid, positions=positions)
        hidden_states = hidden_states + self.drop_path(F.dropout(h, self.dropout, self.training))
        h = self.mlp(self.layernorm_after(hidden_states))
        return hidden_states + self.drop_path(F.dropout(h, self.dropout, self.training))


class LrpeVitPreTrainedModel(AtomicSaveMixin, PreTrainedModel):
    config_class = LrpeVitConfig
    base_model_prefix = "lrpe_vit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["LrpeVitLayer"]

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, LrpeVitEmbeddings):
            if module.position_embeddings is not None:
                init.trunc_normal_(module.position_embeddings, std=std)
            if module.cls_token is not None:
                init.trunc_normal_(module.cls_token, std=std)
        else:
            init_attention_weights(module, init)


class LrpeVitModel(LrpeVitPreTrainedModel):
    """Backbone: ``forward(pixel_values (batch, C, H, W))`` -> ``BaseModelOutputWithPooling`` (``last_hidden_state``
    after the final LayerNorm, ``pooler_output`` = mean over the patch tokens or the CLS token)."""

    def __init__(self, config: LrpeVitConfig):
        super().__init__(config)
        self.embeddings = LrpeVitEmbeddings(config)
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layers = nn.ModuleList(LrpeVitLayer(config, i, rates[i]) for i in range(depth))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.patch_embeddings.projection  # a module whose output is a tensor (see PatchEmbedding)

    @can_return_tuple
    def forward(self, pixel_values=None, output_hidden_states=None, output_attentions=None, **kwargs):
        reject_unknown_kwargs(type(self).__name__, kwargs)
        refuse_output_attentions(type(self).__name__, output_attentions)
        if pixel_values is None:
            raise ValueError("LrpeVitModel needs pixel_values (batch, channels, height, width)")
        check_pixel_values(pixel_values, type(self).__name__)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        x, (rows, cols) = self.embeddings(pixel_values)
        prefix = self.embeddings.num_prefix_tokens
        grid = grid_positions(rows, cols, device=x.device, num_prefix_tokens=prefix)
        positions = torch.arange(x.shape[1], device=x.device)
        all_hidden = (x,) if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, grid=grid, positions=positions)
            if output_hidden_states:
                all_hidden = all_hidden + (x,)
        x = self.layernorm(x)
        pooled = x[:, 0] if self.config.pooling == "cls" else x[:, prefix:].mean(dim=1)
        return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled, hidden_states=all_hidden)


class LrpeVitForImageClassification(LrpeVitPreTrainedModel):
    """:class:`LrpeVitModel` + linear classifier on the pooled tokens; loss from ``config.problem_type``."""

    def __init__(self, config: LrpeVitConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.lrpe_vit = LrpeVitModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values=None, labels=None, output_hidden_states=None, output_attentions=None, **kwargs):
        kwargs = reject_unknown_kwargs(type(self).__name__, kwargs, ("num_items_in_batch",))
        outputs = self.lrpe_vit(pixel_values=pixel_values, output_hidden_states=output_hidden_states,
                                output_attentions=output_attentions)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "LrpeVitEmbeddings",
    "LrpeVitLayer",
    "LrpeVitPreTrainedModel",
    "LrpeVitModel",
    "LrpeVitForImageClassification",
]
