"""Building blocks of the feature-fixation linear video transformer (arXiv 2210.08164).

``FixationAttention`` is one attention module of a divided space-time block: multi-head linear attention with the
feature-fixation gate (a per-token, per-channel re-weighting of the feature-mapped queries and keys) and an
optional zero-parameter neighbourhood shift of keys and values. ``attention_type="softmax"`` keeps the same module,
gate and shifts but attends with softmax, so a softmax baseline is one flag away.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import feature_map, linear_attention
from .attention import ATTENTION_TYPES
FIXATION_INPUTS = ("qkv", "qk", "q", "k")


class FixationGate(nn.Linear):
    """``r = sigmoid(W [inputs] + b)``: ``Linear(len(inputs) * d -> d)`` on the last axis of ``(..., heads, d)``
    tensors, hence shared across heads. The output lies in (0, 1)."""

    def forward(self, gate_input: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(gate_input))


class FixationAttention(nn.Module):
    """Multi-head (linear or softmax) attention with feature fixation and K/V neighbourhood shifts.

    Input and output ``(batch, length, hidden_size)``. Channels are head-major (``c = head * d + e``); the fused
    ``qkv`` projection splits as Q = [0, D), K = [D, 2D), V = [2D, 3D).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        attention_type: str = "linear",
        feature_map_offset: float | None = None,
        eps: float = 1e-6,
        use_fixation: bool = True,
        share_gate: bool = True,
        fixation_inputs: str = "qkv",
        attention_dropout: float = 0.0,
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type={attention_type!r}; choose one of {ATTENTION_TYPES}")
        if fixation_inputs not in FIXATION_INPUTS:
            raise ValueError(f"fixation_inputs={fixation_inputs!r}; choose one of {FIXATION_INPUTS}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.attention_type = attention_type
        self.feature_map_offset = self.head_dim**-0.5 if feature_map_offset is None else feature_map_offset
        self.eps = eps
        self.use_fixation = use_fixation
        self.share_gate = share_gate
        self.fixation_inputs = fixation_inputs
        self.attention_dropout = attention_dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        if use_fixation:
            gate_in = len(fixation_inputs) * self.head_dim
            if share_gate:
                self.fixation_gate = FixationGate(gate_in, self.head_dim)
            else:
                self.fixation_gate_q = FixationGate(gate_in, self.head_dim)
                self.fixation_gate_k = FixationGate(gate_in, self.head_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        shift: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden_states (B, L, D)`` -> ``(output (B, L, D), attention probabilities (B, h, L, L) or None)``.

        ``shift`` (a channel shift acting on ``(B, L, D)`` tensors) is applied to keys and values only, before the
        feature map and the gate, so the gate sees neighbour information; queries are never shifted.
        """
        batch, length, hidden = hidden_states.shape
        query, key, value = self.qkv(hidden_states).chunk(3, dim=-1)
        if shift is not None:
            key, value = shift(key), shift(value)
        query, key, value = self._heads(query), self._heads(key), self._heads(value)
        if self.attention_type == "linear":
            query = feature_map(query, "relu", self.feature_map_offset)
            key = feature_map(key, "relu", self.feature_map_offset)

        if self.use_fixation:
            parts = {"q": query, "k": key, "v": value}
            gate_input = torch.cat([parts[c] for c in self.fixation_inputs], dim=-1)
            if self.share_gate:
                ratio = self.fixation_gate(gate_input)
                query, key = ratio * query, ratio * key
            else:
                query, key = self.fixation_gate_q(gate_input) * query, self.fixation_gate_k(gate_input) * key

        dropout = self.attention_dropout if self.training else 0.0
        probs = None
        if self.attention_type == "linear" and dropout:
            # there is no weight matrix: drop re-weighted query and key features instead
            query, key = F.dropout(query, dropout, True), F.dropout(key, dropout, True)
        if output_attentions:
            # Materialised only on request (O(L^2)), and then the output is computed from these maps so that they
            # lie on the gradient path (attribution): rows sum to ~1; for linear attention this is the same
            # row-normalised product that linear_attention computes without forming it.
            scores = query @ key.transpose(-1, -2)
            if self.attention_type == "linear":
                probs = scores / (scores.sum(-1, keepdim=True) + self.eps)
                context = probs @ value
            else:
                probs = torch.softmax(scores * self.head_dim**-0.5, dim=-1)
                context = F.dropout(probs, dropout, self.training) @ value
        elif self.attention_type == "linear":
            context = linear_attention(
                query, key, value, causal=False, normalize="denominator", eps=self.eps, eps_mode="add"
            )
        else:
            context = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout)
        context = context.transpose(1, 2).reshape(batch, length, hidden)
        return self.out_proj(context), probs


class ConvFeedForward(nn.Module):
    """PVTv2-style MLP: ``fc2(act(DWConv3x3(fc1(x))))`` with the depth-wise conv on the token grid."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: nn.Module, dropout: float = 0.0,
                 use_dwconv: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.dwconv = (
            nn.Conv2d(intermediate_size, intermediate_size, 3, 1, 1, groups=intermediate_size) if use_dwconv else None
        )
        self.act = activation
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(B, H * W, D)`` -> ``(B, H * W, D)``."""
        x = self.fc1(hidden_states)
        if self.dwconv is not None:
            batch, tokens, channels = x.shape
            x = x.transpose(1, 2).reshape(batch, channels, height, width)
            x = self.dwconv(x).flatten(2).transpose(1, 2)
        x = self.dropout(self.act(x))
        return self.dropout(self.fc2(x))


class OverlapPatchEmbedding(nn.Module):
    """Overlapping patch embedding: ``Conv2d(C, D, patch, stride, padding)``, flattened to row-major tokens."""

    def __init__(self, num_channels: int, hidden_size: int, patch_size: int, stride: int, padding: int):
        super().__init__()
        self.num_channels = num_channels
        self.projection = nn.Conv2d(num_channels, hidden_size, patch_size, stride, padding)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """``(B, C, H, W)`` -> ``(tokens (B, h * w, D), h, w)``."""
        x = self.projection(pixel_values)
        height, width = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), height, width
