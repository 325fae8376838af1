"""Multi-head attention with a relative position encoding on q and k: linear (the paper) or softmax (baseline).

Linear attention (fairseq-evo ``LinearKernelAttention`` order; arXiv 2307.09270)::

    q, k, v = projections, split into heads
    q, k    = phi(q), phi(k)                      (feature map, q and k only)
    q, k    = f(q, s), f(k, t)                    (LRPE or a baseline encoding at absolute positions)
    o       = linear_attention(q, k, v)           (no 1/sqrt(d); no denominator for LRPE)
    o       = LayerNorm(concat heads)             (LRPE) -- baselines divide by the denominator instead
    o       = o_proj(o)

Softmax attention applies the same position transform (no feature map) and then scaled dot-product attention, so a
softmax model of identical size is one flag away.

Between calls, Transformers' ``Cache`` (``DynamicCache(config=...)``, one layer per ``config.layer_types`` entry)
carries the recurrent state of linear layers (``get_/update_recurrent_state``) and the growing keys/values of
softmax layers (``update``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.feature_maps import feature_map
from ..ops.linear_attention import linear_attention
from .position_encoding import build_position_encoding


class LrpeAttention(nn.Module):
    """Attention layer configured by an ``LrpeConfig``-like object (fields documented there).

    Shapes: ``hidden_states (batch, n, hidden)``, ``positions (batch, n)`` (0-based absolute),
    ``key_mask (batch, n)`` or ``(batch, past + n)`` (1 = real token, 0 = padding; linear layers read the last n
    columns, softmax layers need all keys') or None.
    """

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.attention_type = config.attention_type
        self.feature_map = config.feature_map
        self.chunk_size = config.chunk_size
        self.algorithm = config.attention_algorithm
        self.backend = getattr(config, "linear_attention_backend", "auto")
        self.attention_dropout = config.attention_dropout
        norm = config.resolved_attention_norm
        self.normalize = "denominator" if norm == "denominator" else None
        # RoFormer's linear attention (arXiv 2104.09864, section 3.3) keeps the denominator unrotated: q . sum k of
        # the positive features, which cannot cross zero as the rotated one can.
        self.unrotated_denominator = (
            self.attention_type == "linear" and self.normalize == "denominator"
            and config.position_encoding == "rope" and getattr(config, "rope_denominator", "unrotated") == "unrotated"
        )
        bias = config.attention_bias
        self.q_proj = nn.Linear(self.hidden_size, self.hidden_size, bias=bias)
        self.k_proj = nn.Linear(self.hidden_size, self.hidden_size, bias=bias)
        self.v_proj = nn.Linear(self.hidden_size, self.hidden_size, bias=bias)
        self.o_proj = nn.Linear(self.hidden_size, self.hidden_size, bias=bias)
        # fairseq-evo initialisation, read by the models' _init_weights: q/k/v xavier-uniform with gain 1/sqrt(2),
        # the output projection xavier-uniform.
        for proj, gain in ((self.q_proj, 2**-0.5), (self.k_proj, 2**-0.5), (self.v_proj, 2**-0.5), (self.o_proj, 1.0)):
            proj.xavier_gain = gain
        self.position_encoding = build_position_encoding(
            config.position_encoding,
            self.head_dim,
            self.num_heads,
            core=config.lrpe_core,
            p=config.lrpe_p,
            theta_type=config.lrpe_theta_type,
            theta_learned=config.lrpe_theta_learned,
            householder_learned=config.lrpe_householder_learned,
            max_positions=config.max_position_embeddings,
            seed=config.lrpe_seed + layer_idx,
            layer_idx=layer_idx,
            num_layers=config.num_hidden_layers,
        )
        # LayerNorm over the concatenated heads (TransNormer "NormAttention"): only for linear attention.
        use_norm = self.attention_type == "linear" and norm == "layernorm"
        self.attention_norm = nn.LayerNorm(self.hidden_size, eps=config.layer_norm_eps) if use_norm else None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        positions: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        cache=None,
        causal: bool = True,
        documents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, n, _ = hidden_states.shape
        q = self._heads(self.q_proj(hidden_states))
        k = self._heads(self.k_proj(hidden_states))
        v = self._heads(self.v_proj(hidden_states))
        if self.attention_type == "linear":
            o = self._linear(q, k, v, positions, key_mask, cache, causal, documents)
        else:
            o = self._softmax(q, k, v, positions, key_mask, cache, causal, documents)
        o = o.transpose(1, 2).reshape(b, n, self.hidden_size)
        if self.attention_norm is not None:
            # The raw linear-attention sum comes in float32 (it grows with position and overflows float16 past
            # ~8k tokens); normalise it there and only then return to the model's dtype.
            norm = self.attention_norm
            wide = torch.promote_types(o.dtype, torch.float32)  # float64 stays float64
            with torch.autocast(device_type=o.device.type, enabled=False):
                o = F.layer_norm(o.to(wide), norm.normalized_shape, norm.weight.to(wide), norm.bias.to(wide),
                                 norm.eps)
        return self.o_proj(o.to(hidden_states.dtype))

    # -- linear attention -------------------------------------------------------------------------------------
    def _linear(self, q, k, v, positions, key_mask, cache, causal, documents=None):
        pos = positions[:, None, :]  # broadcast over heads
        qf, kf = feature_map(q, self.feature_map), feature_map(k, self.feature_map)
        q, k = self.position_encoding(qf, pos), self.position_encoding(kf, pos)
        if self.unrotated_denominator:
            return self._split_denominator(qf, kf, q, k, v, key_mask, cache, causal, documents)
        return self._linear_sums(q, k, v, key_mask, cache, causal, documents, self.normalize,
                                 float32=self.attention_norm is not None)

    def _linear_sums(self, q, k, v, key_mask, cache, causal, documents, normalize, float32):
        """Linear attention over encoded q, k: bidirectional, or causal with the cache; the raw sums in float32 when
        ``float32`` (a norm or a division follows), else in v's dtype."""
        km = None if key_mask is None else key_mask[:, None, -q.shape[-2]:]  # the new tokens; broadcast over heads
        decay = self.position_encoding.decay
        seq_idx = None if documents is None else documents[:, None, :]  # broadcast over heads
        if documents is not None and cache is not None:
            raise ValueError("a packed (padding-free) batch cannot use a cache")
        if not causal:
            if cache is not None:
                raise ValueError("bidirectional attention has no cache (use_cache must be False)")
            if decay is not None or seq_idx is not None:
                return self._bidirectional_decayed(q, k, v, decay, km, seq_idx, normalize, float32)
            return linear_attention(
                q, k, v, causal=False, normalize=normalize, algorithm=self.algorithm, key_mask=km,
                output_float32=float32,
            )
        initial_state = None if cache is None else cache.get_recurrent_state(self.layer_idx)
        # One new token (a decoding step): the recurrence is one rank-1 update, far cheaper than a 1-token chunk.
        algorithm = "recurrent" if q.shape[-2] == 1 else self.algorithm
        out = linear_attention(
            q, k, v,
            causal=True,
            normalize=normalize,
            algorithm=algorithm,
            chunk_size=self.chunk_size,
            initial_state=initial_state,
            return_state=cache is not None,
            decay=decay,
            key_mask=km,
            backend=self.backend,
            output_float32=float32,
            seq_idx=seq_idx,
        )
        if cache is None:
            return out
        out, state = out
        # The window's keys and values go along so a recording layer can roll the state back (draft verification).
        cache.update_recurrent_state(state, self.layer_idx, keys=k, values=v, key_mask=km, normalize=normalize,
                                     decay=decay)
        # Transformers 5.23-5.24 set has_previous_state only in update_conv_state; without it get_recurrent_state
        # returns None and every step would restart from an empty state.
        cache.layers[self.layer_idx].has_previous_state[0] = True
        return out

    def _split_denominator(self, qf, kf, q, k, v, key_mask, cache, causal, documents):
        """``sum_t (q~_s . k~_t) v_t / sum_t (q_s . k_t)``: rotated numerator, unrotated denominator.

        Both sums are one linear attention over 2h heads: heads ``0..h-1`` carry the rotated q~, k~ with values
        ``[v, 0]``, heads ``h..2h-1`` the unrotated q, k with values ``[0, 1]``. So the chunked, parallel and
        recurrent algorithms, padding, packed documents, the cache (a ``(b, 2h, d, d_v + 1)`` state) and its
        rollback all apply unchanged; the division happens in float32 afterwards.
        """
        h, dv = v.shape[1], v.shape[-1]
        zeros, ones = torch.zeros_like(v[..., :1]), torch.ones_like(v[..., :1])
        values = torch.cat([torch.cat([v, zeros], -1), torch.cat([torch.zeros_like(v), ones], -1)], dim=1)
        out = self._linear_sums(torch.cat([q, qf], 1), torch.cat([k, kf], 1), values, key_mask, cache, causal,
                                documents, normalize=None, float32=True)
        with torch.autocast(device_type=v.device.type, enabled=False):
            num, den = out[:, :h, :, :dv], out[:, h:, :, dv:]
            return (num / den.clamp(min=1e-6)).to(v.dtype)

    def _bidirectional_decayed(self, q, k, v, decay, key_mask, seq_idx, normalize, float32):
        """Bidirectional attention with the symmetric decay lam^|s-t| (PermuteFormer/LRPE-d encoders), or within
        packed documents (``seq_idx``; decay may then be None).

        The forward causal pass covers t <= s, the causal pass over the reversed sequence covers t >= s; the
        diagonal t = s is counted twice and removed once. The denominator (if any) rides along as a column of ones.
        Both passes keep to the token's own document, so the sum does too.
        """
        if normalize == "denominator":
            v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        if key_mask is not None:
            m = key_mask.to(k.dtype)[..., None]
            k, v = k * m, v * m.to(v.dtype)
        kwargs = dict(causal=True, algorithm=self.algorithm, chunk_size=self.chunk_size, decay=decay,
                      backend=self.backend, output_float32=True)
        fwd = linear_attention(q, k, v, seq_idx=seq_idx, **kwargs)
        # reversed, the document indices decrease: negate them so they stay non-decreasing
        rev_idx = None if seq_idx is None else -seq_idx.flip(-1)
        bwd = linear_attention(q.flip(-2), k.flip(-2), v.flip(-2), seq_idx=rev_idx, **kwargs).flip(-2)
        with torch.autocast(device_type=q.device.type, enabled=False):  # the sums stay in float32
            wide = torch.promote_types(v.dtype, torch.float32)
            diag = (q.to(wide) * k.to(wide)).sum(-1, keepdim=True) * v.to(wide)
            out = fwd + bwd - diag
            if normalize == "denominator":
                out = out[..., :-1] / out[..., -1:].clamp(min=1e-6)
        return out if float32 else out.to(v.dtype)

    # -- softmax attention ------------------------------------------------------------------------------------
    def _softmax(self, q, k, v, positions, key_mask, cache, causal, documents=None):
        q = self.position_encoding(q, positions[:, None, :])
        k = self.position_encoding(k, positions[:, None, :])
        n = q.shape[-2]
        past = 0
        if documents is not None:  # packed documents: a block-diagonal (and causal) mask, no cache
            if cache is not None:
                raise ValueError("a packed (padding-free) batch cannot use a cache")
            allowed = (documents[:, :, None] == documents[:, None, :])[:, None]
            if causal:
                allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
            dropout = self.attention_dropout if self.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout,
                                                  scale=1.0 / math.sqrt(self.head_dim))
        if cache is not None:
            if not causal:
                raise ValueError("bidirectional attention has no cache (use_cache must be False)")
            past = cache.layers[self.layer_idx].get_seq_length() if self.layer_idx < len(cache.layers) else 0
            k, v = cache.update(k, v, self.layer_idx)
        if key_mask is not None and key_mask.shape[-1] != k.shape[-2]:
            raise ValueError(
                f"softmax attention over {k.shape[-2]} cached + new keys needs the attention_mask of the whole "
                f"sequence (batch, {k.shape[-2]}), got one of length {key_mask.shape[-1]}"
            )
        scale = 1.0 / math.sqrt(self.head_dim)
        dropout = self.attention_dropout if self.training else 0.0
        if key_mask is None and past == 0:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal, scale=scale)
        m = k.shape[-2]
        allowed = torch.ones(q.shape[0], 1, n, m, dtype=torch.bool, device=q.device)
        if key_mask is not None:
            allowed = allowed & key_mask.bool()[:, None, None, :]
        if causal:
            qi = torch.arange(n, device=q.device)[:, None] + past
            kj = torch.arange(m, device=q.device)[None, :]
            allowed = allowed & (kj <= qi)
            # A padded query may see no key at all; letting it see itself keeps its (ignored) row finite.
            allowed = allowed | (kj == qi)
        else:
            allowed = allowed | ~allowed.any(-1, keepdim=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout, scale=scale)
