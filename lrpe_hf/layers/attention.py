"""The package's attention: one softmax module and one linear-attention module, each taking any registered position
encoding (``lrpe_hf.layers.position_encoding``).

Every model builds its layers here: the LRPE language models and encoders, the LRPE ViT (``lrpe_vit``), the
mixed-attention transformer (``mixformer``) and its weight-sharing super-network (``lrpe_hf.nas``). The maths lives
in ``lrpe_hf.ops`` (``linear_attention``, the encodings' transforms, ``feature_map``) and in torch's
``scaled_dot_product_attention``; this file projects, splits heads and routes.

``attention_type`` (what each caches for generation in brackets):

* ``"softmax"``: ``softmax(q~ k~^T / sqrt(d_h) + bias) v`` through torch SDPA, q~ and k~ encoded by a
  softmax-compatible encoding (NoPE, RoPE, LRPE, ...) or a score bias (``relative_key``: Shaw et al.'s relative keys)
  [keys, values and their positions].
* ``"linear"``: ``phi`` features, the encoding on q and k (1-D, or 2-D on an image grid), ``linear_attention`` with
  the encoding's decay, then LayerNorm over the heads (LRPE) or the denominator (cosFormer, RoPE, ...)
  [recurrent state].

The papers' variants are names for pairs (:data:`ATTENTION_VARIANTS`): ``lrpe`` = linear + LRPE, ``cosformer`` =
linear + cosFormer (ReLU features, fixed ``M = max_positions``), ``softmax_relative`` = softmax + relative keys.

Call signature (both modules)::

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

from ..ops import bidirectional_linear_attention, feature_map, linear_attention
from .elastic import sliced_layer_norm, sliced_linear
from .position_encoding import (
    LRPE_2D_MODES,
    POSITION_ENCODINGS,
    NoPositionEncoding,
    PositionEncoding,
    build_position_encoding,
    init_position_encoding,
)

ATTENTION_TYPES = ("softmax", "linear")


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

    def __init__(self, hidden_size, num_heads, head_dim, *, kv_hidden_size=None, qkv_bias=True, out_bias=True,
                 dropout=0.0, layer_idx=0):
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
        self.o_proj = nn.Linear(inner, hidden_size, bias=out_bias)
        self.dropout = dropout
        self.layer_idx = layer_idx

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
        documents: torch.Tensor | None = None,
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
        if documents is not None:
            if is_cross:
                raise ValueError("packed documents are defined for self-attention only")
            if use_cache or past_state:
                raise ValueError("a packed (padding-free) batch cannot use a cache")
            if documents.shape != (b, n):
                raise ValueError(f"documents must have shape ({b}, {n}), got {tuple(documents.shape)}")
        q = self._heads(hidden_states, self.q_proj, h)
        out, state = self._attend(
            q, hidden_states, key_value_states, is_cross, key_padding_mask, positions, grid, causal,
            past_state, use_cache, h, documents,
        )
        out = out.transpose(1, 2).reshape(b, n, h * self.head_dim)
        out = self._post_attention(out).to(hidden_states.dtype)
        return sliced_linear(out, self.o_proj, hidden_states.shape[-1]), state

    def _post_attention(self, out):
        return out

    def _attend(self, q, x, kv, is_cross, mask, positions, grid, causal, past, use_cache, h,
                documents):  # pragma: no cover
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------ softmax types
class SoftmaxAttention(MultiHeadAttentionBase):
    """Multi-head softmax attention through ``torch.nn.functional.scaled_dot_product_attention``.

    Scale ``head_dim ** -0.5``. ``position_encoding`` (a registry name, default ``"nope"``) transforms q and k of
    self-attention at their absolute positions before the dot product (RoPE, LRPE, ...: any encoding that is
    ``softmax_compatible``). The cache keeps the encoded keys, the values, their padding mask and their positions; a
    cross-attention cache keeps the projected encoder keys/values (``{"cross": True, ...}``). ``documents`` (packed
    rows) restricts every query to keys of its own document. A query with no visible key (a padded row) gives 0.
    """

    attention_type = "softmax"

    def __init__(self, hidden_size, num_heads, head_dim, *, position_encoding="nope", encoding_options=None,
                 **kwargs):
        super().__init__(hidden_size, num_heads, head_dim, **kwargs)
        self.position_encoding = build_position_encoding(position_encoding, head_dim, num_heads,
                                                         **(encoding_options or {}))
        if not self.position_encoding.softmax_compatible:
            raise ValueError(f"the {position_encoding!r} position encoding is not defined for softmax attention")

    def _relative_bias(self, q, q_pos, k_pos):
        """The encoding's bias on the scores (``relative_key``), or None."""
        score_bias = getattr(self.position_encoding, "score_bias", None)
        return None if score_bias is None else score_bias(q, q_pos, k_pos)

    def _encode(self, x, positions, grid):
        pe = self.position_encoding
        if type(pe) is NoPositionEncoding:
            return x
        return pe(x, positions[:, None, :], grid if pe.supports_2d else None)

    def _attend(self, q, x, kv, is_cross, mask, positions, grid, causal, past, use_cache, h, documents):
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
            q, k = self._encode(q, q_pos, grid), self._encode(k, q_pos, grid)
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

        dropout = self.dropout if self.training else 0.0
        scale = self.head_dim**-0.5  # of the head, also when an encoding widens q and k (LRPE's unitary core)
        bias = self._relative_bias(q, q_pos, k_pos)
        if key_mask is None and bias is None and documents is None and (not causal or n == m):
            # nothing to mask but (possibly) causality over the same n tokens: SDPA's own causal kernel
            return F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), dropout_p=dropout,
                                                  is_causal=causal, scale=scale), state
        allowed = None  # bool (b or 1, 1, n, m), True = attend
        if key_mask is not None:
            allowed = key_mask[:, None, None, :]
        if causal:
            key_idx = torch.arange(m, device=q.device)
            query_idx = torch.arange(m - n, m, device=q.device)
            cm = (key_idx[None, :] <= query_idx[:, None])[None, None]
            allowed = cm if allowed is None else allowed & cm
        if documents is not None:
            same = (documents[:, :, None] == documents[:, None, :])[:, None]
            allowed = same if allowed is None else allowed & same
        attn_mask = allowed
        if bias is not None:
            attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
        out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=attn_mask, dropout_p=dropout,
                                             scale=scale)
        if allowed is not None:  # rows with no visible key (an all-padding sample) give 0, not NaN
            out = out.masked_fill(~allowed.any(-1, keepdim=True), 0.0)
        return out, state


# ------------------------------------------------------------------------------------------------ linear types
class LinearAttention(MultiHeadAttentionBase):
    """Linear attention with any registered position encoding, feature map and normalisation: the one class behind
    every linear layer of the package (language models and encoders, LRPE ViT, mixFormer, the super-network).

    ``phi`` (``feature_map``) on q and k -> the position encoding on q and k (``lrpe_hf.layers.position_encoding``;
    2-D on an image grid where it has one; its per-head decay enters the recurrence) ->
    ``lrpe_hf.ops.linear_attention`` (chunked, parallel or recurrent; causal or bidirectional; packed documents) ->
    the normalisation: ``"layernorm"`` over the concatenated heads (the LRPE form, no denominator;
    ``attention_norm``, eps ``norm_eps``, computed on the float32 sums), ``"denominator"``
    (``sum a v / max(sum a, eps)``) or ``"none"`` (the raw sums).

    * Bidirectional with a decay (PermuteFormer, LRPE-d encoders) or within packed documents: a forward and a
      backward causal pass, the diagonal counted once.
    * ``unrotated_denominator`` (RoPE with the denominator): RoFormer's linear attention (arXiv 2104.09864, §3.3)
      divides the rotated numerator by the *unrotated* ``q . sum k`` of the positive features, which cannot cross
      zero as the rotated one can. Both sums run as one linear attention over 2h heads, so every algorithm, padding,
      packing, the cache and its rollback apply unchanged.

    Cached, the state is ``{"state": (b, h', d_k', d_v'), "seen": int, "window": ...}``; ``"window"`` holds what a
    rollback cache layer needs to count these tokens and undo them (draft verification).
    """

    is_linear = True
    attention_type = "linear"

    def __init__(self, hidden_size, num_heads, head_dim, *, position_encoding="lrpe",
                 encoding_options=None, feature_map="1+elu", normalize="layernorm", eps=1e-6, norm_eps=1e-5,
                 chunk_size=64, algorithm="chunked", backend="auto", unrotated_denominator=False, **kwargs):
        super().__init__(hidden_size, num_heads, head_dim, **kwargs)
        if normalize not in ("layernorm", "denominator", "none"):
            raise ValueError(f"normalize must be 'layernorm', 'denominator' or 'none', got {normalize!r}")
        if unrotated_denominator and normalize != "denominator":
            raise ValueError("unrotated_denominator needs normalize='denominator'")
        self.feature_map = feature_map
        self.normalize = "denominator" if normalize == "denominator" else None
        self.eps = eps
        self.chunk_size, self.algorithm, self.backend = chunk_size, algorithm, backend
        self.position_encoding = build_position_encoding(position_encoding, head_dim, num_heads,
                                                         **(encoding_options or {}))
        if not self.position_encoding.linear_compatible:
            raise ValueError(f"the {position_encoding!r} position encoding is not defined for linear attention")
        if unrotated_denominator and self.position_encoding.decay is not None:
            raise ValueError("unrotated_denominator is defined for encodings without a decay")
        self.unrotated_denominator = unrotated_denominator
        inner = num_heads * head_dim
        self.attention_norm = nn.LayerNorm(inner, eps=norm_eps) if normalize == "layernorm" else None

    def _post_attention(self, out):
        if self.attention_norm is None:
            return out
        # The raw sums come in float32 (they grow with position and overflow float16 past ~8k tokens): normalise
        # there, over the active width (a sliced super-network uses gamma[:d], beta[:d]).
        norm, d = self.attention_norm, out.shape[-1]
        wide = torch.promote_types(out.dtype, torch.float32)  # float64 stays float64
        with torch.autocast(device_type=out.device.type, enabled=False):
            return F.layer_norm(out.to(wide), (d,), norm.weight[:d].to(wide), norm.bias[:d].to(wide), norm.eps)

    def _attend(self, q, x, kv, is_cross, mask, positions, grid, causal, past, use_cache, h, documents):
        b, n = q.shape[0], q.shape[2]
        past = past or {}
        if is_cross and use_cache:
            raise ValueError(f"{self.attention_type} cross-attention has no cache; use softmax cross-attention")
        if not causal and (use_cache or past.get("state") is not None or past.get("seen")):
            raise ValueError("bidirectional attention has no cache (use_cache must be False); a linear-attention "
                             "state can only be continued causally")
        source = kv if is_cross else x
        k, v = self._heads(source, self.k_proj, h), self._heads(source, self.v_proj, h)
        m = k.shape[2]
        offset = int(past.get("seen", 0))
        q_pos = _normalise_positions(positions, n, offset, b, q.device)
        k_pos = torch.arange(m, device=q.device)[None, :] if is_cross else q_pos
        if is_cross and grid is not None:
            raise ValueError("grid positions are only defined for self-attention")
        pe = self.position_encoding
        qf0, kf0 = feature_map(q, self.feature_map), feature_map(k, self.feature_map)
        qf = pe(qf0, q_pos[:, None, :], grid if pe.supports_2d else None)
        kf = pe(kf0, k_pos[:, None, :], None if is_cross or not pe.supports_2d else grid)
        key_mask = _key_mask(mask, b, m, q.device)
        km = None if key_mask is None else key_mask[:, None, :]  # broadcast over heads
        decay = pe.decay
        if decay is not None:
            decay = decay[:h]  # the active heads
        seq_idx = None if documents is None else documents[:, None, :]
        if self.unrotated_denominator:
            # heads 0..h-1: rotated q~, k~ with values [v, 0]; heads h..2h-1: unrotated q, k with values [0, 1]
            zeros, ones = torch.zeros_like(v[..., :1]), torch.ones_like(v[..., :1])
            values = torch.cat([torch.cat([v, zeros], -1), torch.cat([torch.zeros_like(v), ones], -1)], dim=1)
            out, state = self._sums(torch.cat([qf, qf0], 1), torch.cat([kf, kf0], 1), values, km, None, seq_idx,
                                    causal, past, use_cache, offset, None, True)
            dv = v.shape[-1]
            with torch.autocast(device_type=v.device.type, enabled=False):
                out = (out[:, :h, :, :dv] / out[:, h:, :, dv:].clamp(min=self.eps)).to(v.dtype)
            return out, state
        return self._sums(qf, kf, v, km, decay, seq_idx, causal, past, use_cache, offset, self.normalize,
                          self.attention_norm is not None)

    def _sums(self, q, k, v, km, decay, seq_idx, causal, past, use_cache, offset, normalize, float32):
        """Linear attention over encoded q, k (the raw sums in float32 when ``float32``: a norm or a division
        follows), and the new cache state."""
        if not causal:
            if decay is not None or seq_idx is not None:
                return bidirectional_linear_attention(
                    q, k, v, decay=decay, key_mask=km, seq_idx=seq_idx, normalize=normalize, eps=self.eps,
                    algorithm=self.algorithm, chunk_size=self.chunk_size, backend=self.backend,
                    output_float32=float32), None
            return linear_attention(
                q, k, v, causal=False, normalize=normalize, eps=self.eps, algorithm=self.algorithm,
                chunk_size=self.chunk_size, key_mask=km, output_float32=float32,
            ), None
        # One new token (a decoding step): the recurrence is one rank-1 update, far cheaper than a 1-token chunk.
        result = linear_attention(
            q, k, v, causal=True, normalize=normalize, eps=self.eps,
            algorithm="recurrent" if q.shape[-2] == 1 else self.algorithm, chunk_size=self.chunk_size,
            initial_state=past.get("state"), return_state=use_cache, decay=decay, key_mask=km, backend=self.backend,
            output_float32=float32, seq_idx=seq_idx,
        )
        if not use_cache:
            return result, None
        out, state = result
        window = {"keys": k, "values": v, "normalize": normalize, "decay": decay, "key_mask": km}
        return out, {"state": state, "seen": offset + q.shape[-2], "window": window}

    def extra_repr(self):
        return (f"attention_type={self.attention_type!r}, feature_map={self.feature_map!r}, "
                f"position_encoding={self.position_encoding.name!r}")


#: The attention variants by their papers' names: mixFormer's per-layer candidates and the NAS search spaces'
#: operations, and the values ``attention_type``/``layer_attention`` took in configs saved by lrpe_hf <= 0.2. Each is
#: one attention type and one registered position encoding.
ATTENTION_VARIANTS = {
    "softmax": ("softmax", "nope"),
    "softmax_relative": ("softmax", "relative_key"),
    "cosformer": ("linear", "cosformer"),
    "lrpe": ("linear", "lrpe"),
}


def resolve_variant(name: str, owner: str = "attention variant") -> tuple[str, str]:
    """``(attention_type, position_encoding)`` of a variant name (``"lrpe"`` -> ``("linear", "lrpe")``)."""
    if name not in ATTENTION_VARIANTS:
        raise ValueError(f"{owner}={name!r} is not an attention variant; choose from {tuple(ATTENTION_VARIANTS)}")
    return ATTENTION_VARIANTS[name]


def variant_name(attention_type: str, position_encoding: str) -> str | None:
    """The variant name of ``(attention_type, position_encoding)``, or None when it has none."""
    for name, pair in ATTENTION_VARIANTS.items():
        if pair == (attention_type, position_encoding):
            return name
    return None


def check_attention_pair(attention_type, position_encoding, *, type_field="attention_type",
                         encoding_field="position_encoding") -> None:
    """The one check that an attention type and a registered encoding go together (configs call it with their own
    field names, so the error names what the user wrote)."""
    if attention_type not in ATTENTION_TYPES:
        raise ValueError(f"{type_field}={attention_type!r} is not an attention type; choose one of {ATTENTION_TYPES}")
    if position_encoding not in POSITION_ENCODINGS:
        raise ValueError(f"{encoding_field}={position_encoding!r} is not registered; choose one of "
                         f"{tuple(POSITION_ENCODINGS)}")
    def fits(cls):
        return cls.softmax_compatible if attention_type == "softmax" else cls.linear_compatible

    if not fits(POSITION_ENCODINGS[position_encoding]):
        allowed = tuple(name for name, cls in POSITION_ENCODINGS.items() if fits(cls))
        raise ValueError(f"{encoding_field}={position_encoding!r} is not defined for {attention_type} attention; "
                         f"with {type_field}={attention_type!r} choose one of {allowed}")


def default_position_encoding(attention_type: str) -> str:
    """What a layer of ``attention_type`` uses when the config names no encoding: LRPE for linear attention, none
    for softmax attention."""
    return "lrpe" if attention_type == "linear" else "nope"


def default_feature_map(position_encoding: str) -> str:
    """The feature map of the encoding's paper: ReLU for cosFormer, ``1 + elu`` otherwise."""
    return "relu" if position_encoding == "cosformer" else "1+elu"


def default_attention_norm(position_encoding: str) -> str:
    """The normalisation of the encoding's paper: LayerNorm over the heads for the LRPE family (no denominator), the
    denominator for the baselines."""
    return "layernorm" if position_encoding in ("lrpe", "lrpe_d") else "denominator"


def build_attention(attention_type: str, hidden_size: int, num_heads: int, head_dim: int, *,
                    position_encoding: str | None = None, encoding_options: dict | None = None,
                    feature_map: str | None = None, attention_norm: str | None = None, eps: float = 1e-6,
                    norm_eps: float = 1e-5, chunk_size: int = 64, algorithm: str = "chunked", backend: str = "auto",
                    kv_hidden_size=None, qkv_bias=True, out_bias=True, dropout=0.0,
                    layer_idx: int = 0) -> MultiHeadAttentionBase:
    """One attention module: ``attention_type`` ``"softmax"`` or ``"linear"`` and a registered
    ``position_encoding`` (default :func:`default_position_encoding`).

    ``encoding_options`` may hold every encoding's options, each encoding takes its own (``core``, ``p``, ``seed``,
    ``max_positions``, ``max_relative_length``, ...). Linear attention: ``feature_map`` and ``attention_norm``
    default to the encoding's paper (:func:`default_feature_map`, :func:`default_attention_norm`); ``eps`` clamps
    the denominator, ``norm_eps`` is the LayerNorm's; ``chunk_size``, ``algorithm`` and ``backend`` choose how
    ``lrpe_hf.ops.linear_attention`` runs. ``dropout`` is the softmax attention-probability dropout.
    """
    if attention_type not in ATTENTION_TYPES:
        raise ValueError(f"attention_type={attention_type!r} is not supported; choose one of {ATTENTION_TYPES}")
    encoding = position_encoding or default_position_encoding(attention_type)
    common = dict(kv_hidden_size=kv_hidden_size, qkv_bias=qkv_bias, out_bias=out_bias, layer_idx=layer_idx,
                  position_encoding=encoding, encoding_options=encoding_options)
    if attention_type == "softmax":
        attn = SoftmaxAttention(hidden_size, num_heads, head_dim, dropout=dropout, **common)
    else:
        attn = LinearAttention(hidden_size, num_heads, head_dim,
                               feature_map=feature_map or default_feature_map(encoding),
                               normalize=attention_norm or default_attention_norm(encoding), eps=eps,
                               norm_eps=norm_eps, chunk_size=chunk_size, algorithm=algorithm, backend=backend,
                               **common)
    return attn


__all__ = [
    "ATTENTION_TYPES",
    "ATTENTION_VARIANTS",
    "LRPE_2D_MODES",
    "MultiHeadAttentionBase",
    "SoftmaxAttention",
    "LinearAttention",
    "build_attention",
    "check_attention_pair",
    "default_attention_norm",
    "default_feature_map",
    "default_position_encoding",
    "resolve_variant",
    "variant_name",
    "init_attention_weights",
]


def init_attention_weights(module: nn.Module, init) -> None:
    """Initialise the attention-specific tensors of ``module`` (call from a model's ``_init_weights``).

    ``init`` is ``transformers.initialization`` (passed in so this layer needs no Transformers import): its functions
    skip tensors already loaded from a checkpoint. The position encodings' random parts are rebuilt from their seed,
    so a model built on the meta device gets the same Householder vectors and permutations as one built eagerly.
    """
    if isinstance(module, PositionEncoding):
        init_position_encoding(module, init)
