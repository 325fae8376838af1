"""Building blocks that run at their full size or at a prefix slice of their weights.

A weight-sharing super-network (``lrpe_hf.nas``) trains one set of maximal weights and evaluates any smaller
architecture as a *prefix slice* of them: a linear layer with ``out`` outputs and ``in`` inputs uses
``W[:out, :in]`` and ``b[:out]``, a LayerNorm over ``d`` channels uses ``gamma[:d]``, ``beta[:d]``. Every module here
infers its active input width from the input tensor and takes the active output width as an optional argument;
with the defaults it is an ordinary full-size module (the slice is the whole tensor, a free view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sliced_linear(x: torch.Tensor, linear: nn.Linear, out_features: int | None = None) -> torch.Tensor:
    """``x @ W[:out, :in].T + b[:out]`` with ``in = x.shape[-1]`` and ``out = out_features`` (default: all)."""
    in_features = x.shape[-1]
    if in_features > linear.in_features:
        raise ValueError(f"input width {in_features} exceeds the layer's {linear.in_features} input features")
    out = linear.out_features if out_features is None else out_features
    if not 0 < out <= linear.out_features:
        raise ValueError(f"out_features={out} must lie in [1, {linear.out_features}]")
    if out == linear.out_features and in_features == linear.in_features:
        # The module itself, so what wraps it takes part: PEFT adapters, quantised or hooked layers.
        return linear(x)
    if type(linear) is not nn.Linear:
        raise ValueError(
            f"a prefix slice of a {type(linear).__name__} is not defined (slicing reads an nn.Linear's weight "
            "directly and would skip what wraps it): merge adapters into the weights before slicing"
        )
    bias = None if linear.bias is None else linear.bias[:out]
    return F.linear(x, linear.weight[:out, :in_features], bias)


def sliced_layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the active width ``d = x.shape[-1]`` with ``gamma[:d]`` and ``beta[:d]``."""
    d = x.shape[-1]
    full = norm.normalized_shape[-1]
    if d > full:
        raise ValueError(f"input width {d} exceeds the LayerNorm's {full} channels")
    weight = None if norm.weight is None else norm.weight[:d]
    bias = None if norm.bias is None else norm.bias[:d]
    return F.layer_norm(x, (d,), weight, bias, norm.eps)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample with probability ``drop_prob`` (training)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must lie in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}


class FeedForward(nn.Module):
    """Position-wise MLP ``fc2(dropout(act(fc1(x))))``; ``forward(x, ffn_dim=k)`` uses the first k hidden units.

    Args:
        hidden_size: model width (maximal width in a super-network).
        ffn_dim: hidden width (maximal).
        activation: ``"relu"`` (mixFormer, fairseq), ``"gelu"`` (ViT) or ``"silu"``.
        activation_dropout: dropout after the activation (scale it yourself for a sliced super-network).
    """

    def __init__(self, hidden_size: int, ffn_dim: int, activation: str = "relu", activation_dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {tuple(ACTIVATIONS)}")
        self.fc1 = nn.Linear(hidden_size, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, hidden_size)
        self.activation = activation
        self.activation_dropout = activation_dropout

    def forward(self, x: torch.Tensor, ffn_dim: int | None = None, activation_dropout: float | None = None):
        p = self.activation_dropout if activation_dropout is None else activation_dropout
        h = ACTIVATIONS[self.activation](sliced_linear(x, self.fc1, ffn_dim))
        h = F.dropout(h, p=p, training=self.training)
        return sliced_linear(h, self.fc2, x.shape[-1])


class PatchEmbedding(nn.Module):
    """Non-overlapping patches -> tokens: ``Conv2d(C, hidden, patch, stride=patch)``, flattened in raster order.

    ``forward(pixel_values, hidden_size=d)`` uses the first d output channels (``weight[:d]``, ``bias[:d]``).
    Input ``(batch, channels, height, width)`` with height and width multiples of the patch size; output
    ``(batch, rows * cols, d)`` and the grid ``(rows, cols)``.
    """

    def __init__(self, num_channels: int, hidden_size: int, patch_size: int):
        super().__init__()
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.projection = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixel_values: torch.Tensor, hidden_size: int | None = None):
        if pixel_values.dim() != 4:
            raise ValueError(f"pixel_values must be (batch, channels, height, width), got {tuple(pixel_values.shape)}")
        b, c, h, w = pixel_values.shape
        if c != self.num_channels:
            raise ValueError(f"pixel_values has {c} channels, the model expects {self.num_channels}")
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        if hidden_size is None or hidden_size == self.projection.out_channels:
            # the module call at full width, so hooks on `projection` fire (enable_input_require_grads, which PEFT
            # uses with gradient checkpointing, hooks the model's input embedding: this conv)
            x = self.projection(pixel_values.to(self.projection.weight.dtype))
        else:  # a narrower sub-network (NAS prefix slicing)
            weight = self.projection.weight[:hidden_size]
            bias = None if self.projection.bias is None else self.projection.bias[:hidden_size]
            x = F.conv2d(pixel_values.to(weight.dtype), weight, bias, stride=self.patch_size)
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid


def grid_positions(rows: int, cols: int, device=None, num_prefix_tokens: int = 0):
    """Row and column indices of a raster-ordered token grid, ``(rows * cols + prefix,)`` each.

    Prefix tokens (CLS) sit at ``(0, 0)``: every LRPE core is the identity there, so they are left unencoded.
    """
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    if num_prefix_tokens:
        zeros = torch.zeros(num_prefix_tokens, dtype=r.dtype, device=device)
        r, c = torch.cat((zeros, r)), torch.cat((zeros, c))
    return r, c
