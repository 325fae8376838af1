"""Pluggable multi-head attention: softmax, softmax with relative keys, cosFormer and LRPE linear attention.

Four interchangeable modules with one call signature, used by the LRPE ViT (``lrpe_vit``), the mixed-attention
transformer (``mixformer``) and its weight-sharing super-network (``lrpe_hf.nas``). The maths lives in
``lrpe_hf.ops`` (``linear_attention``, ``lrpe``/``lrpe_2d``, ``cosformer_reweight``, ``feature_map``) and in torch's
``scaled_dot_product_attention``; this file only projects, splits heads and routes.

Types (``attention_type``; what each one caches for generation in brackets):

* ``"softmax"``: ``softmax(q k^T / sqrt(d_h)) v`` through torch SDPA [keys and values].
* ``"softmax_relative"``: Shaw et al. relative-position keys,
  ``softmax((q k^T + q E[clip(j - i, -K, K)]^T) / sqrt(d_h)) v`` with one table ``E`` of shape ``(2 K + 1, d_h)``
  shared by the heads, ``K = max_relative_length`` [keys, values and their positions].
* ``"cosformer"``: ReLU features, cos re-weighting with a *fixed* ``M = max_positions``, row-normalised by
  ``max(q~ . sum k~, eps)`` [recurrent state ``(2 d_h, d_h + 1)``].
* ``"lrpe"``: ``1 + elu`` features, LRPE ``f(x, s) = C_s(P x)`` (1-D, or 2-D on an image grid), no denominator,
  LayerNorm over the concatenated heads [recurrent state ``(d_k', d_h)``].

Call signature (all four)::

    out, state = attn(hidden_states, key_value_states=None, *, key_padding_mask=None, positions=None, grid=None,
                      causal=False, past_state=None, use_cache=False, num_heads=None)

* ``hidden_states (batch, n, d)``; ``d`` may be smaller than the module's ``hidden_size`` (prefix slicing).
* ``key_value_states (batch, m, d_kv)``: cross-attention keys/values (self-attention when None). A cached
  cross-attention (softmax types) reuses ``past_state`` keys/values and ignores ``key_value_states``.
* ``key_padding_mask (batch, m_new)``: 1/True = real token, 0/False = padding, for the keys *of this call* (the
  cached keys keep their own mask in the state). Padding never reaches a linear state.
* ``positions``: absolute 0-based positions of the tokens of this call, ``(n,)`` or ``(batch, n)``; default
  ``offset + arange(n)`` with the offset read from ``past_state``.
* ``grid``: ``(rows, cols)`` integer tensors ``(n,)`` for image tokens; the LRPE type then uses the 2-D encoding
  (``lrpe_2d_mode``); the other types ignore it and use ``positions`` (raster order).
* ``causal``: position i sees keys j <= i. With a cache, queries continue after the cached keys.
* ``past_state`` / return ``state``: a ``dict`` of tensors (batch first) or None; returned when ``use_cache``.
  A model-level cache stores one dict per layer and reorders every tensor along dim 0 for beam search.
* ``num_heads``: number of active heads (the first ``num_heads``; ``head_dim`` is fixed). With the defaults the
  module runs at full size. Weights are sliced as ``q/k/v: W[:h * d_h, :d]``, ``out: W[:d, :h * d_h]``, LRPE's
  LayerNorm ``gamma[:h * d_h]``: the clean, block-wise slicing (not the released mixFormer code's packed-row slice).

Build one with :func:`build_attention` (``attention_type`` string + keyword options).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import feature_map, linear_attention
from .elastic import sliced_layer_norm, sliced_linear
from .position_encoding import LRPE_2D_MODES, PositionEncoding, build_position_encoding, init_position_encoding

ATTENTION_TYPES = ("softmax", "softmax_relative", "cosformer", "lrpe")
LINEAR_ATTENTION_TYPES = ("cosformer", "lrpe")


def _normalise_positions(positions, n, offset, batch, device):
    """Positions as an int64 ``(batch or 1, n)`` tensor."""
    if positions is None:
        return torch.arange(offset, offset + n, device=device)[None, :]
    positions = torch.as_tensor(positions, device=device).long()
    if positions.dim() == 1:
        positions = positions[None, :]
    if positions.shape[-1] != n or positions.dim() != 2 or positions.shape[0] not in (1, batch):
        raise ValueError(f"positions must have shape ({n},) or ({batch}, {n}), got {tuple(positions.shape)}")
    return positions


def _key_mask(mask, batch, m, device):
    """Padding mask as bool ``(batch, m)`` (True = keep) or None."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=device)
    if mask.shape != (batch, m):
        raise ValueError(f"key_padding_mask must have shape ({batch}, {m}), got {tuple(mask.shape)}")
    return mask.bool()


class MultiHeadAttentionBase(nn.Module):
    """Projections, head split/merge, slicing and state plumbing shared by the four attention types.

    Args:
        hidden_size: model width d (maximal width in a super-network).
        num_heads: number of heads (maximal); ``head_dim`` is fixed, so the inner width is ``num_heads * head_dim``.
        head_dim: per-head width.
        kv_hidden_size: width of ``key_value_states`` for cross-attention (default: ``hidden_size``).
        qkv_bias: bias on the q/k/v projections (the output projection always has one).
        dropout: attention-probability dropout (softmax types only; linear attention has none).
    """

    attention_type: str = ""
    is_linear: bool = False

    def __init__(self, hidden_size, num_heads, head_dim, *, kv_hidden_size=None, qkv_bias=True, dropout=0.0):
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("num_heads", num_heads), ("head_dim", head_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        inner = num_heads * head_dim
        kv = kv_hidden_size or hidden_size
        self.q_proj = nn.Linear(hidden_size, inner, bias=qkv_bias)
        self.k_proj = nn.Linear(kv, inner, bias=qkv_bias)
        self.v_proj = nn.Linear(kv, inner, bias=qkv_bias)
        self.out_proj = nn.Linear(inner, hidden_size)
        self.dropout = dropout

    def _heads(self, x, proj, h):
        b, n, _ = x.shape
        return sliced_linear(x, proj, h * self.head_dim).view(b, n, h, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        grid: tuple[torch.Tensor, torch.Tensor] | None = None,
        causal: bool = False,
        past_state: dict | None = None,
        use_cache: bool = False,
        num_heads: int | None = None,
    ) -> tuple[torch.Tensor, dict | None]:
        if hidden_states.dim() != 3:
            raise ValueError(f"hidden_states must be (batch, seq, hidden), got {tuple(hidden_states.shape)}")
        h = self.num_heads if num_heads is None else num_heads
        if not 0 < h <= self.num_heads:
            raise ValueError(f"num_heads={h} must lie in [1, {self.num_heads}]")
        is_cross = key_value_states is not None or bool(past_state and past_state.get("cross"))
        if is_cross and causal:
            raise ValueError("cross-attention cannot be causal")
        b, n, _ = hidden_states.shape
        q = self._heads(hidden_states, self.q_proj, h)
        out, state = self._attend(
            q, hidden_states, key_value_states, is_cross, key_padding_mask, positions, grid, causal,
            past_state, use_cache, h,
        )
        out = out.transpose(1, 2).reshape(b, n, h * self.head_dim)
        out = self._post_attention(out)
        return sliced_linear(out, self.out_proj, hidden_states.shape[-1]), state

    def _post_attention(self, out):
        return out

    def _attend(self, q, x, kv, is_cross, mask, positions, grid, causal, past, use_cache, h):  # pragma: no cover
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------ softmax types
class SoftmaxAttention(MultiHeadAttentionBase):
    """Standard multi-head softmax attention through ``torch.nn.functional.scaled_dot_product_attention``.

    Scale ``head_dim ** -0.5``. The cache keeps keys, values, their padding mask and (relative type) their
    positions; a cross-attention cache keeps the projected encoder keys/values (``{"cross": True, ...}``).
    """

    attention_type = "softmax"

    def _relative_bias(self, q, q_pos, k_pos):
        return None

    def _attend(self, q, x, kv, is_cross, mask, positions, grid, causal, past, use_cache, h):
        b, n = q.shape[0], q.shape[2]
        past = past or {}
        if is_cross:
            if "key" in past:
                k, v = past["key"], past["value"]
            else:
                k, v = self._heads(kv, self.k_proj, h), self._heads(kv, self.v_proj, h)
            m = k.shape[2]
            key_mask = _key_mask(mask, b, m, q.device)
            q_pos = _normalise_positions(positions, n, 0, b, q.device)
            k_pos = torch.arange(m, device=q.device)[None, :]
            state = {"cross": True, "key": k, "value": v} if use_cache else None
        else:
            offset = past["key"].shape[2] if "key" in past else 0
            k, v = self._heads(x, self.k_proj, h), self._heads(x, self.v_proj, h)
            q_pos = _normalise_positions(positions, n, offset, b, q.device)
            key_mask = _key_mask(mask, b, n, q.device)
            k_pos = q_pos
            if "key" in past:
                pm = past.get("key_mask")
                if key_mask is not None or pm is not None:
                    pm = torch.ones(b, offset, dtype=torch.bool, device=q.device) if pm is None else pm
                    nm = torch.ones(b, n, dtype=torch.bool, device=q.device) if key_mask is None else key_mask
                    key_mask = torch.cat((pm, nm), dim=1)
                k, v = torch.cat((past["key"], k), dim=2), torch.cat((past["value"], v), dim=2)
                k_pos = torch.cat((past["key_positions"], k_pos.expand(past["key_positions"].shape[0], n)), dim=1)
            state = None
            if use_cache:
                state = {"key": k, "value": v, "key_positions": k_pos.expand(b, -1) if k_pos.shape[0] == 1 else k_pos}
                if key_mask is not None:
                    state["key_mask"] = key_mask
            m = k.shape[2]

        allowed = None  # bool (b or 1, 1, n, m), True = attend
        if key_mask is not None:
            allowed = key_mask[:, None, None, :]
        if causal:
            key_idx = torch.arange(m, device=q.device)
            query_idx = torch.arange(m - n, m, device=q.device)
            cm = (key_idx[None, :] <= query_idx[:, None])[None, None]
            allowed = cm if allowed is None else allowed & cm
        bias = self._relative_bias(q, q_pos, k_pos)
        attn_mask = allowed
        if bias is not None:
            attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
        out = F.scaled_dot_product_attention(
            q, k.to(q.dtype), v.to(q.dtype), attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        if allowed is not None:  # rows with no visible key (an all-padding sample) give 0, not NaN
            out = out.masked_fill(~allowed.any(-1, keepdim=True), 0.0)
        return out, state


class RelativeSoftmaxAttention(SoftmaxAttention):
    """Softmax attention with Shaw-style relative-position *keys* (no relative values).

    ``score_ij = q_i . (k_j + E[clip(pos_j - pos_i, -K, K) + K]) / sqrt(d_h)`` with one learned table
    ``relative_key_table (2 K + 1, head_dim)`` shared by all heads, ``K = max_relative_length`` (mixFormer: 14).
    """

    attention_type = "softmax_relative"

    def __init__(self, hidden_size, num_heads, head_dim, *, max_relative_length=14, **kwargs):
        super().__init__(hidden_size, num_heads, head_dim, **kwargs)
        if not isinstance(max_relative_length, int) or max_relative_length < 1:
            raise ValueError(f"max_relative_length must be a positive int, got {max_relative_length!r}")
        self.max_relative_length = max_relative_length
        self.relative_key_table = nn.Parameter(torch.empty(2 * max_relative_length + 1, head_dim))
        nn.init.normal_(self.relative_key_table, std=head_dim**-0.5)

    def _relative_bias(self, q, q_pos, k_pos):
        kmax = self.max_relative_length
        rel = (k_pos[:, None, :] - q_pos[:, :, None]).clamp(-kmax, kmax) + kmax  # (b or 1, n, m)
        logits = torch.matmul(q * self.head_dim**-0.5, self.relative_key_table.to(q.dtype).T)  # (b, h, n, 2K+1)
        index = rel[:, None].expand(q.shape[0], q.shape[1], -1, -1)
        return logits.gather(-1, index)


# ------------------------------------------------------------------------------------------------ linear types
class LinearAttention(MultiHeadAttentionBase):
    """Linear attention with any registered position encoding, feature map and normalisation (one class for every
    linear type of the image and seq2seq models and the super-network).

    ``phi`` (``feature_map``) on q and k -> the position encoding on q and k (``lrpe_hf.layers.position_encoding``;
    2-D on an image grid where it has one) -> ``lrpe_hf.ops.linear_attention`` (chunked, parallel or recurrent; the
    encoding's per-head decay; causal or not) -> the normalisation: ``"layernorm"`` over the concatenated heads (the
    LRPE form, no denominator; ``norm``, eps ``norm_eps``) or ``"denominator"`` (``sum a v / max(sum a, eps)``).
    Cached, the state is ``{"state": (b, h, d_k', d_v'), "seen": int, "window": ...}``.

    The two linear types of ``ATTENTION_TYPES`` are configurations of it (:func:`build_attention`):

    * ``"cosformer"`` (Qin et al., ICLR 2022): ReLU features, cosFormer's re-weighting with a fixed
      ``M = max_positions``, the denominator with ``eps`` (official 1e-6; mixFormer's super-network uses 1e-3).
      Whether it is causal is the caller's ``causal``: the released mixFormer ViT runs it causally inside a
      bidirectional encoder (the CLS token then sees only itself), which models expose as a config option.
    * ``"lrpe"`` (arXiv 2307.09270): ``1 + elu`` features, the LRPE ``f(x, s) = C_s(P x)``, LayerNorm over heads.
    """

    is_linear = True

    def __init__(self, hidden_size, num_heads, head_dim, *, attention_type="lrpe", position_encoding="lrpe",
                 encoding_options=None, feature_map="1+elu", normalize="layernorm", eps=1e-6, norm_eps=1e-5,
                 chunk_size=64, algorithm="chunked", backend="auto", **kwargs):
        super().__init__(hidden_size, num_heads, head_dim, **kwargs)
        if normalize not in ("layernorm", "denominator"):
            raise ValueError(f"normalize must be 'layernorm' or 'denominator', got {normalize!r}")
        self.attention_type = attention_type
        self.feature_map = feature_map
        self.normalize = "denominator" if normalize == "denominator" else None
        self.eps = eps
        self.chunk_size, self.algorithm, self.backend = chunk_size, algorithm, backend
        self.encoding = build_position_encoding(position_encoding, head_dim, num_heads, **(encoding_options or {}))
        self.norm = nn.LayerNorm(num_heads * head_dim, eps=norm_eps) if normalize == "layernorm" else None

    def _features(self, x, positions, grid):
        return self.encoding(feature_map(x, self.feature_map), positions, grid if self.encoding.supports_2d else None)

    def _post_attention(self, out):
        return out if self.norm is None else sliced_layer_norm(out, self.norm)

    def _attend(self, q, x, kv, is_cross, mask, positions, grid, causal, past, use_cache, h):
        b, n = q.shape[0], q.shape[2]
        past = past or {}
        if is_cross and use_cache:
            raise ValueError(f"{self.attention_type} cross-attention has no cache; use softmax cross-attention")
        source = kv if is_cross else x
        k, v = self._heads(source, self.k_proj, h), self._heads(source, self.v_proj, h)
        m = k.shape[2]
        offset = int(past.get("seen", 0))
        if offset and not causal:
            raise ValueError("a linear-attention state can only be continued causally")
        q_pos = _normalise_positions(positions, n, offset, b, q.device)
        k_pos = torch.arange(m, device=q.device)[None, :] if is_cross else q_pos
        q_grid = k_grid = grid
        if is_cross:
            k_grid = None
            if grid is not None:
                raise ValueError("grid positions are only defined for self-attention")
        qf = self._features(q, q_pos[:, None, :], q_grid)
        kf = self._features(k, k_pos[:, None, :], k_grid)
        key_mask = _key_mask(mask, b, m, q.device)
        decay = self.encoding.decay
        if decay is not None:
            decay = decay[:h]  # the active heads
            if not causal:
                raise ValueError(f"the {self.encoding.name} decay is defined for causal attention only here")
        result = linear_attention(
            qf, kf, v, causal=causal, normalize=self.normalize, eps=self.eps,
            algorithm="recurrent" if causal and n == 1 else self.algorithm, chunk_size=self.chunk_size,
            initial_state=past.get("state"), return_state=use_cache, decay=decay,
            key_mask=None if key_mask is None else key_mask[:, None, :], backend=self.backend if causal else "torch",
        )
        if not use_cache:
            return result, None
        out, state = result
        # "window": what a rollback cache layer needs to count these tokens and undo them (draft verification).
        window = {"keys": kf, "values": v, "normalize": self.normalize, "decay": decay,
                  "key_mask": None if key_mask is None else key_mask[:, None, :]}
        return out, {"state": state, "seen": offset + n, "window": window}

    def extra_repr(self):
        return f"attention_type={self.attention_type!r}, feature_map={self.feature_map!r}"


def _cosformer(hidden_size, num_heads, head_dim, *, max_positions=512, eps=1e-6, chunk_size=64,
               algorithm="chunked", backend="auto", **kwargs):
    return LinearAttention(hidden_size, num_heads, head_dim, attention_type="cosformer", position_encoding="cosformer",
                           encoding_options={"max_positions": max_positions}, feature_map="relu",
                           normalize="denominator", eps=eps, chunk_size=chunk_size, algorithm=algorithm,
                           backend=backend, **kwargs)


def _lrpe(hidden_size, num_heads, head_dim, *, feature_map="1+elu", lrpe_core="unitary", lrpe_p="householder",
          lrpe_theta_learned=False, lrpe_householder_learned=False, lrpe_2d_mode="shared", lrpe_seed=0, norm_eps=1e-5,
          chunk_size=64, algorithm="chunked", backend="auto", **kwargs):
    options = dict(core=lrpe_core, p=lrpe_p, theta_learned=lrpe_theta_learned,
                   householder_learned=lrpe_householder_learned, mode_2d=lrpe_2d_mode, seed=lrpe_seed)
    return LinearAttention(hidden_size, num_heads, head_dim, attention_type="lrpe", position_encoding="lrpe",
                           encoding_options=options, feature_map=feature_map, normalize="layernorm",
                           norm_eps=norm_eps, chunk_size=chunk_size, algorithm=algorithm, backend=backend, **kwargs)


ATTENTION_CLASSES = {
    "softmax": SoftmaxAttention,
    "softmax_relative": RelativeSoftmaxAttention,
    "cosformer": _cosformer,
    "lrpe": _lrpe,
}

# Options each type understands beyond the common ones (so one config can build any type).
_LINEAR_OPTIONS = ("chunk_size", "algorithm", "backend")
_TYPE_OPTIONS = {
    "softmax": (),
    "softmax_relative": ("max_relative_length",),
    "cosformer": ("max_positions", "eps", *_LINEAR_OPTIONS),
    "lrpe": ("feature_map", "lrpe_core", "lrpe_p", "lrpe_theta_learned", "lrpe_householder_learned",
             "lrpe_2d_mode", "lrpe_seed", "norm_eps", *_LINEAR_OPTIONS),
}


def build_attention(attention_type: str, hidden_size: int, num_heads: int, head_dim: int, *,
                    kv_hidden_size=None, qkv_bias=True, dropout=0.0, **options) -> MultiHeadAttentionBase:
    """Build one attention module; ``options`` may hold every type's extras, each type takes what it uses.

    Type extras: ``max_relative_length`` (softmax_relative); ``max_positions``, ``eps`` (cosformer, given as
    ``cosformer_eps`` too); ``feature_map``, ``lrpe_*``, ``norm_eps`` (lrpe); ``chunk_size``, ``algorithm``,
    ``backend`` (both linear types).
    """
    if attention_type not in ATTENTION_CLASSES:
        raise ValueError(f"attention type {attention_type!r} is not supported; choose one of {ATTENTION_TYPES}")
    if "cosformer_eps" in options:
        options.setdefault("eps", options.pop("cosformer_eps"))
    extras = {key: options[key] for key in _TYPE_OPTIONS[attention_type] if key in options}
    build = ATTENTION_CLASSES[attention_type]
    return build(hidden_size, num_heads, head_dim, kv_hidden_size=kv_hidden_size, qkv_bias=qkv_bias,
                 dropout=dropout if attention_type in ("softmax", "softmax_relative") else 0.0, **extras)


__all__ = [
    "ATTENTION_TYPES",
    "LINEAR_ATTENTION_TYPES",
    "LRPE_2D_MODES",
    "MultiHeadAttentionBase",
    "SoftmaxAttention",
    "RelativeSoftmaxAttention",
    "LinearAttention",
    "ATTENTION_CLASSES",
    "build_attention",
    "init_attention_weights",
]


def init_attention_weights(module: nn.Module, init) -> None:
    """Initialise the attention-specific tensors of ``module`` (call from a model's ``_init_weights``).

    ``init`` is ``transformers.initialization`` (passed in so this layer needs no Transformers import): its functions
    skip tensors already loaded from a checkpoint. The position encodings' random parts are rebuilt from their seed,
    so a model built on the meta device gets the same Householder vectors and permutations as one built eagerly.
    """
    if isinstance(module, RelativeSoftmaxAttention):
        init.normal_(module.relative_key_table, std=module.head_dim**-0.5)
    elif isinstance(module, PositionEncoding):
        init_position_encoding(module, init)
