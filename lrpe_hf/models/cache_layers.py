"""A recurrent-state cache layer that can be rolled back: assisted, speculative and prompt-lookup decoding.

Those strategies run several drafted tokens through the model in one forward pass and then ``crop`` the cache back
to the accepted ones. Transformers' ``LinearAttentionLayer`` refuses that once it holds a recurrent state
(``is_croppable`` is false): a running sum cannot be taken apart again. But it can be rebuilt: the state after any
prefix of the window since the last crop is

    S_j = lam^j S_start + sum_{t < j} lam^(j - 1 - t) k_t v_t^T

so the layer keeps ``S_start`` and the window's keys and values (what :func:`linear_attention_state` needs), and only
while ``activate_past_recording`` is on -- plain decoding records nothing. The window is closed at every ``crop``
(the verified point) and never grows beyond ``max_window`` tokens: older tokens are folded into ``S_start``, so the
memory for rollback grows with the draft window, never with the context.

The layer also counts the tokens it has seen, which a bare recurrent state cannot tell, so ``Cache.get_seq_length``
answers for an all-linear cache (the assistant model's rounds ask it).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, LinearAttentionLayer

from ..ops.linear_attention import linear_attention_state


class RollbackLinearAttentionLayer(LinearAttentionLayer, CacheLayerMixin):
    """Transformers' ``LinearAttentionLayer`` (state 0: the recurrent state) plus a token count and, while recording,
    the window since the last ``crop``. ``update_recurrent_state(state, 0, keys=..., values=..., ...)`` takes the
    window's keys and values with the arguments ``linear_attention`` got (``normalize``, ``decay``, ``key_mask``)."""

    #: Tokens of the window a crop can reach back into; older tokens are folded into the window's start state.
    max_window = 1024
    #: The window grows per step and the token count is a Python int: not a static-shape layer. (Declaring it
    #: compileable would make ``generate`` build 4-D masks for models whose layers take a (batch, keys) mask.)
    is_compileable = False

    def __init__(self, number_of_states: int = 1, **kwargs):
        LinearAttentionLayer.__init__(self, number_of_states=number_of_states)
        # CacheLayerMixin's key/value fields stay empty: this layer has no per-token keys outside a window.
        self.keys = self.values = None
        self.is_initialized = False
        self.seen = 0
        self._close_window()

    # -- what Transformers asks of an attention-like layer --------------------------------------------------------
    def update(self, key_states, value_states, *args, **kwargs):
        raise TypeError("a linear-attention cache layer holds a recurrent state: use update_recurrent_state")

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    @property
    def is_croppable(self) -> bool:
        # Before any state: nothing to undo. After: only what was recorded can be undone.
        return self.record_past or not any(self.is_recurrent_states_initialized.values())

    # -- state ------------------------------------------------------------------------------------------------
    def _close_window(self) -> None:
        self._start_state = None  # state before the window (None: no window open)
        self._window = None  # keys, values (batch, heads, w, d) and key_mask (batch, heads, w)
        self._window_args = None  # normalize, decay: fixed for a layer

    def update_recurrent_state(self, recurrent_states, state_idx: int = 0, *, keys=None, values=None,
                               key_mask=None, normalize=None, decay=None, **kwargs):
        if state_idx == 0:
            if keys is None or values is None:
                # Without them the layer could neither count the tokens nor roll them back.
                raise ValueError("RollbackLinearAttentionLayer.update_recurrent_state needs the new tokens' keys and "
                                 "values (keys=, values=)")
            if self.record_past:
                self._record(keys, values, key_mask, normalize, decay)
            self.seen += keys.shape[-2]
        return LinearAttentionLayer.update_recurrent_state(self, recurrent_states, state_idx)

    def _record(self, keys, values, key_mask, normalize, decay) -> None:
        # The mask is kept per key (batch, heads, n), so windows of forwards with and without one concatenate.
        mask = torch.ones(keys.shape[:-1], dtype=torch.bool, device=keys.device)
        if key_mask is not None:
            mask = mask & key_mask.bool().expand(keys.shape[:-1])
        if self._window is None:
            if self.is_recurrent_states_initialized[0] and any(self.has_previous_state.values()):
                self._start_state = self.recurrent_states[0].clone()
            else:
                self._start_state = None  # an empty state: the window starts from zeros
            self._window = {"keys": keys, "values": values, "key_mask": mask}
            self._window_args = {"normalize": normalize, "decay": decay}
        else:
            w = self._window
            w["keys"] = torch.cat([w["keys"], keys], dim=-2)
            w["values"] = torch.cat([w["values"], values], dim=-2)
            w["key_mask"] = torch.cat([w["key_mask"], mask], dim=-1)
        excess = self._window["keys"].shape[-2] - self.max_window
        if excess > 0:  # fold the oldest tokens into the start state
            self._start_state = self._state_after(excess)
            w = self._window
            w["keys"], w["values"] = w["keys"][..., excess:, :], w["values"][..., excess:, :]
            w["key_mask"] = w["key_mask"][..., excess:]

    def _state_after(self, j: int) -> torch.Tensor:
        """State after the first ``j`` tokens of the window."""
        w = self._window
        return linear_attention_state(
            w["keys"][..., :j, :], w["values"][..., :j, :],
            key_mask=w["key_mask"][..., :j],
            initial_state=self._start_state, **self._window_args,
        )

    def crop(self, tokens_to_remove: int) -> None:
        """Remove the last ``-tokens_to_remove`` tokens (Transformers passes a count <= 0); ``crop(0)`` closes the
        window at the verified point."""
        if not self.record_past:
            raise RuntimeError(
                "`crop` was called, but this layer does not record its past: call `activate_past_recording` before "
                "the tokens that may be removed"
            )
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes the number of tokens to remove as a negative int, got {tokens_to_remove}")
        r = -tokens_to_remove
        if r:
            recorded = 0 if self._window is None else self._window["keys"].shape[-2]
            if r > recorded:
                raise ValueError(
                    f"cannot remove {r} tokens from a linear-attention state: only the {recorded} tokens since the "
                    f"last crop were recorded (at most max_window={self.max_window})"
                )
            state = self._state_after(recorded - r)
            self.recurrent_states[0].copy_(state.to(self.recurrent_states[0].dtype))
            self.seen -= r
        self._close_window()

    def reorder_cache(self, beam_idx: torch.LongTensor):
        LinearAttentionLayer.reorder_cache(self, beam_idx)
        if self._window is not None:
            for key, value in self._window.items():
                self._window[key] = value.index_select(0, beam_idx.to(value.device))
            if self._start_state is not None:
                self._start_state = self._start_state.index_select(0, beam_idx.to(self._start_state.device))

    def reset(self) -> None:
        LinearAttentionLayer.reset(self)
        self.seen = 0
        self._close_window()


def adopt_rollback_layers(cache: Cache) -> Cache:
    """Give a cache built by ``DynamicCache(config=...)`` (which ``generate`` builds) rollback layers in place of its
    empty ``LinearAttentionLayer``s, keeping their recording flag. A plain layer that already holds a state is left
    as it is (it was filled elsewhere; Transformers' own rules then apply to cropping it)."""
    for i, layer in enumerate(cache.layers):
        if type(layer) is LinearAttentionLayer and not any(layer.is_recurrent_states_initialized.values()):
            new = RollbackLinearAttentionLayer(number_of_states=layer.number_of_states)
            new.record_past = layer.record_past
            cache.layers[i] = new
    return cache


# ------------------------------------------------------------------------------------- attention modules <-> Cache
def cached_length(cache: Cache) -> int:
    """Tokens already in ``cache`` (0 when empty): the first layer that counts them answers."""
    for layer in cache.layers:
        if layer.get_seq_length() > 0:
            return layer.get_seq_length()
    return 0


def layer_past(cache: Cache, i: int, offset: int, batch: int, full_mask: torch.Tensor | None = None,
               key_positions: torch.Tensor | None = None) -> dict | None:
    """Layer ``i``'s cached tensors as the state dict the attention modules take (``lrpe_hf.layers.attention``).

    ``offset``: the tokens already cached (what a recurrent layer reports as seen; a softmax layer counts its own
    keys); ``full_mask``: the padding mask of the cached and the new tokens
    ``(batch, offset + n)`` or None (softmax layers need the cached keys' part); ``key_positions``: the positions the
    cached keys were encoded at, ``(batch, offset)`` or more columns (default ``0 .. offset - 1``; a relative-key bias
    reads them, so a model whose positions skip padding passes its own).
    """
    if i >= len(cache.layers):
        return None
    layer = cache.layers[i]
    if hasattr(layer, "recurrent_states"):
        if not any(layer.has_previous_state.values()):
            return None
        return {"state": cache.get_recurrent_state(i, 0), "seen": offset}
    offset = layer.get_seq_length()
    if not offset:
        return None
    if key_positions is None:
        positions = torch.arange(offset, device=layer.keys.device)[None].expand(batch, offset)
    else:
        positions = key_positions[:, :offset].to(layer.keys.device).long().expand(batch, offset)
    past = {"key": layer.keys, "value": layer.values, "key_positions": positions}
    if full_mask is not None:
        if full_mask.shape[-1] <= offset:
            raise ValueError(
                f"softmax attention over {offset} cached keys and new ones needs the attention_mask of the whole "
                f"sequence (batch, cached + new), got one of length {full_mask.shape[-1]}"
            )
        past["key_mask"] = full_mask[:, :offset].bool()
    return past


def store_layer_state(cache: Cache, i: int, offset: int, state: dict) -> None:
    """Write what an attention module returned (``use_cache=True``) back into layer ``i`` of Transformers' cache."""
    layer = cache.layers[i]
    if hasattr(layer, "recurrent_states"):
        # The window's keys and values go along so the layer can count them and roll the state back.
        cache.update_recurrent_state(state["state"], i, 0, **state["window"])
        # Transformers 5.23-5.24 set has_previous_state only in update_conv_state; without it get_recurrent_state
        # returns None and every step would restart from an empty state.
        layer.has_previous_state[0] = True
    else:
        cache.update(state["key"][:, :, offset:], state["value"][:, :, offset:], i)
