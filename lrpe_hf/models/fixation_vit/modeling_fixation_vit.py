"""Feature-fixation linear video transformer (arXiv 2210.08164) as a Transformers model.

Frames are embedded independently by an overlapping patch convolution (no CLS token, no spatial position
embedding), get a learned temporal embedding, then pass divided space-time blocks: temporal attention over the
frames of each grid location (with the eight-neighbour spatial shift of K/V), spatial attention over the tokens of
each frame (with the temporal shift of K/V), and a depth-wise-conv MLP. Both attentions are linear with feature
fixation. The video head pools tokens, then frames, then applies LayerNorm -> Linear -> GELU -> Linear.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils import can_return_tuple

from ...layers.elastic import DropPath
from ...layers.fixation import ConvFeedForward, FixationAttention, OverlapPatchEmbedding
from ...ops.shifts import spatial_shift, temporal_shift
from ..modeling_common import AtomicSaveMixin, reject_unknown_kwargs
from .configuration_fixation_vit import FixationViTConfig


class FixationViTEmbeddings(nn.Module):
    """Overlapping patch embedding + LayerNorm per frame, then the (tiled) temporal embedding."""

    def __init__(self, config: FixationViTConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = OverlapPatchEmbedding(
            config.num_channels, config.hidden_size, config.patch_size, config.patch_stride, config.patch_padding
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.patch_layer_norm_eps)
        self.time_embeddings = nn.Parameter(torch.zeros(config.num_time_embeddings, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """``(B, T, C, H, W)`` -> ``(tokens (B * T, N, D), grid height, grid width)``."""
        batch, frames = pixel_values.shape[:2]
        slots = self.time_embeddings.shape[0]
        if frames > slots and not self.config.tile_time_embeddings:
            raise ValueError(
                f"pixel_values has {frames} frames but the temporal embedding has {slots} slots and "
                "tile_time_embeddings=False; sample at most that many frames or enable tiling"
            )
        tokens, height, width = self.patch_embeddings(pixel_values.flatten(0, 1))
        tokens = self.dropout(self.layernorm(tokens))
        # Frame t uses slot t % slots (the official table of 8 slots is tiled over 16 frames).
        index = torch.arange(frames, device=tokens.device) % slots
        time = self.time_embeddings[index].to(tokens.dtype)  # (T, D)
        tokens = (tokens.view(batch, frames, -1, tokens.shape[-1]) + time[None, :, None, :]).flatten(0, 1)
        return tokens, height, width


class FixationViTLayer(GradientCheckpointingLayer):
    """One divided space-time block: temporal attention -> spatial attention -> DWConv MLP (pre-norm residuals)."""

    def __init__(self, config: FixationViTConfig, drop_path: float = 0.0):
        super().__init__()
        self.config = config
        attn_kwargs = dict(
            qkv_bias=config.qkv_bias,
            attention_type=config.attention_type,
            feature_map_offset=config.feature_map_offset,
            eps=config.linear_attention_eps,
            use_fixation=config.use_feature_fixation,
            share_gate=config.share_fixation_gate,
            fixation_inputs=config.fixation_inputs,
            attention_dropout=config.attention_probs_dropout_prob,
        )
        d, h = config.hidden_size, config.num_attention_heads
        self.temporal_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.temporal_attention = FixationAttention(d, h, **attn_kwargs)
        self.spatial_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.spatial_attention = FixationAttention(d, h, **attn_kwargs)
        self.mlp_layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mlp = ConvFeedForward(
            d, config.intermediate_size, ACT2FN[config.hidden_act], config.hidden_dropout_prob, config.use_mlp_dwconv
        )
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        hidden_states: torch.Tensor,
        batch_size: int = 1,
        height: int = 1,
        width: int = 1,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``hidden_states (B * T, N, D)`` (frame-major rows) -> same shape, plus attention maps on request:
        temporal ``(B * N, h, T, T)`` and spatial ``(B * T, h, N, N)``."""
        config = self.config
        bt, tokens, dim = hidden_states.shape
        frames = bt // batch_size

        # (a) temporal attention over the frames of each grid location, layout (B * N, T, D)
        x = hidden_states.view(batch_size, frames, tokens, dim).transpose(1, 2).reshape(batch_size * tokens, frames, dim)
        shift = None
        if config.spatial_shift:
            shift = partial(spatial_shift, height=height, width=width, shift_size=config.spatial_shift_size)
        out, temporal_probs = self.temporal_attention(self.temporal_layernorm(x), shift, output_attentions)
        x = x + self.drop_path(out)
        hidden_states = x.view(batch_size, tokens, frames, dim).transpose(1, 2).reshape(bt, tokens, dim)

        # (b) spatial attention over the tokens of each frame, layout (B * T, N, D)
        shift = None
        if config.temporal_shift:
            segment = config.temporal_shift_segment or frames
            if frames % segment:
                raise ValueError(
                    f"temporal_shift_segment={segment} does not divide the clip's {frames} frames; sample a multiple "
                    "of it or change the config"
                )
            shift = partial(temporal_shift, segment=segment, fold=dim // config.temporal_shift_div)
        out, spatial_probs = self.spatial_attention(self.spatial_layernorm(hidden_states), shift, output_attentions)
        hidden_states = hidden_states + self.drop_path(out)

        # (c) MLP per frame with the depth-wise conv on the grid
        hidden_states = hidden_states + self.drop_path(self.mlp(self.mlp_layernorm(hidden_states), height, width))
        return hidden_states, temporal_probs, spatial_probs


class FixationViTPreTrainedModel(AtomicSaveMixin, PreTrainedModel):
    config_class = FixationViTConfig
    base_model_prefix = "fixation_vit"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["FixationViTLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Linear: trunc-normal(std=initializer_range), bias 0; LayerNorm (1, 0); convs N(0, sqrt(2 / fan_out));
        temporal embedding zeros (the official initialisation)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            init.normal_(module.weight, mean=0.0, std=(2.0 / fan_out) ** 0.5)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, FixationViTEmbeddings):
            init.zeros_(module.time_embeddings)


class FixationViTModel(FixationViTPreTrainedModel):
    """The backbone. ``last_hidden_state`` is ``(B, T * N, D)`` in frame-major order, after the final LayerNorm;
    ``pooler_output`` is its mean over all tokens ``(B, D)``."""

    def __init__(self, config: FixationViTConfig):
        super().__init__(config)
        self.embeddings = FixationViTEmbeddings(config)
        # linearly increasing stochastic depth, in plain Python: a torch tensor here cannot be read on the meta device
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layer = nn.ModuleList(FixationViTLayer(config, rate) for rate in rates)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        # the patch convolution itself: enable_input_require_grads (PEFT with gradient checkpointing) hooks this
        # module's output, which must be a tensor, not the embedding's (tokens, height, width)
        return self.embeddings.patch_embeddings.projection

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if pixel_values.dim() != 5:
            hint = (" (several views per video: average them with lrpe_hf.models.fixation_vit.multiview_logits)"
                    if pixel_values.dim() == 6 else "")
            raise ValueError(
                f"pixel_values must have shape (batch, frames, channels, height, width), got {tuple(pixel_values.shape)}"
                + hint
            )
        if pixel_values.numel() == 0:
            raise ValueError(f"pixel_values is empty (shape {tuple(pixel_values.shape)}); pass at least one video "
                             "of one frame")
        if pixel_values.shape[2] != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[2]} channels at dim 2 but config.num_channels="
                f"{self.config.num_channels}; expected layout (batch, frames, channels, height, width)"
            )

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, frames, channels, height, width)`):
            Normalised frames, e.g. from [`FixationViTImageProcessor`].
        output_attentions (`bool`, *optional*):
            Materialise the (row-normalised) attention maps; one `(batch * frames, heads, N, N)` spatial map per
            layer is returned in `attentions` (the temporal maps are not). This costs O(N^2) memory. The spatial
            attention then computes its output from these maps, so they (like `hidden_states`, which are the tensors
            the layers consume) lie on the gradient path for attribution.
        """
        reject_unknown_kwargs(type(self).__name__, kwargs)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        self._check_pixel_values(pixel_values)
        batch, frames = pixel_values.shape[:2]
        hidden_states, height, width = self.embeddings(pixel_values)
        if self.config.spatial_shift and (height <= self.config.spatial_shift_size or width <= self.config.spatial_shift_size):
            raise ValueError(
                f"frames of {tuple(pixel_values.shape[-2:])} px give a {height}x{width} token grid, too small for the "
                f"spatial shift (size {self.config.spatial_shift_size}); use larger frames or spatial_shift=False"
            )

        # Between layers the tokens are kept as (B, T * N, D); each layer gets a (B * T, N, D) view of that very
        # tensor, so the returned hidden states are the ones the model computes with (gradients reach them).
        tokens = hidden_states.shape[1]
        hidden_states = hidden_states.reshape(batch, frames * tokens, -1)
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        for layer in self.layer:
            out, _, spatial_probs = layer(
                hidden_states.view(batch * frames, tokens, -1), batch_size=batch, height=height, width=width,
                output_attentions=bool(output_attentions),
            )
            hidden_states = out.reshape(batch, frames * tokens, -1)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            if output_attentions:
                all_attn = all_attn + (spatial_probs,)
        sequence = self.layernorm(hidden_states)
        return BaseModelOutputWithPooling(
            last_hidden_state=sequence,
            pooler_output=sequence.mean(dim=1),
            hidden_states=all_hidden,
            attentions=all_attn,
        )


class FixationViTClassificationHead(nn.Module):
    """LayerNorm -> Linear(D, hidden) -> GELU -> Dropout -> Linear(hidden, num_labels) on the pooled clip feature."""

    def __init__(self, config: FixationViTConfig):
        super().__init__()
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.classifier_layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.classifier_hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(config.classifier_hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.act(self.dense(self.layernorm(pooled)))))


class FixationViTForVideoClassification(FixationViTPreTrainedModel):
    """Backbone + token dropout + mean over tokens, then over frames + MLP head. Loss follows
    ``config.problem_type`` (single-label cross-entropy, multi-label BCE or regression MSE)."""

    def __init__(self, config: FixationViTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fixation_vit = FixationViTModel(config)
        self.token_dropout = nn.Dropout(config.token_dropout)
        self.classifier = FixationViTClassificationHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
            Class indices (or float targets for regression / multi-label, see `config.problem_type`).
        """
        kwargs = reject_unknown_kwargs(type(self).__name__, kwargs, ("num_items_in_batch",))
        outputs = self.fixation_vit(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        # Dropout acts on every token (the official backbone "head"), then tokens and frames are averaged;
        # with equal tokens per frame the mean over all T * N tokens is exactly that two-step mean.
        pooled = self.token_dropout(outputs.last_hidden_state).mean(dim=1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


@torch.no_grad()
def multiview_logits(model: FixationViTForVideoClassification, pixel_values: torch.Tensor,
                     average: str = "probs", views_per_batch: int | None = None) -> torch.Tensor:
    """Multi-view test-time evaluation: ``pixel_values (B, V, T, C, H, W)`` (V = temporal clips x spatial crops,
    as produced by the image processor with ``num_temporal_clips``/``num_spatial_crops``) -> ``(B, num_labels)``.

    ``average="probs"`` averages softmax probabilities over views and returns their log (usable as logits for
    argmax/top-k); ``"logits"`` averages raw logits.
    """
    if pixel_values.dim() == 5:
        pixel_values = pixel_values[:, None]
    if pixel_values.dim() != 6:
        raise ValueError(f"multiview_logits expects (B, V, T, C, H, W), got {tuple(pixel_values.shape)}")
    if average not in ("probs", "logits"):
        raise ValueError(f"average={average!r}; choose 'probs' or 'logits'")
    batch, views = pixel_values.shape[:2]
    flat = pixel_values.flatten(0, 1)
    step = views_per_batch or flat.shape[0]
    logits = torch.cat([model(pixel_values=flat[i : i + step]).logits for i in range(0, flat.shape[0], step)])
    logits = logits.view(batch, views, -1).float()
    if average == "logits":
        return logits.mean(1)
    return logits.softmax(-1).mean(1).log()


__all__ = [
    "FixationViTPreTrainedModel",
    "FixationViTModel",
    "FixationViTForVideoClassification",
    "FixationViTLayer",
    "multiview_logits",
]
