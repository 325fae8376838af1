"""Relative position encodings applied to queries and keys: the LRPE family and its baselines.

One module per attention layer holds the parameters of its encoding (frequencies theta, a Householder vector,
a permutation, a per-head decay). Every random part is drawn from a ``torch.Generator`` seeded with ``seed`` so a
configuration reproduces it, and is saved with the weights (Householder vector: a parameter when learned, else a
persistent buffer; permutation: a persistent buffer). Derived tables (fixed theta, decays) are non-persistent
buffers that a model's ``_init_weights`` rebuilds from :meth:`PositionEncoding.initial_tensors` after meta-device
loading.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.lrpe import (
    cosformer_reweight,
    lrpe,
    lrpe_d_decay,
    lrpe_d_theta,
    lrpe_output_dim,
    lrpe_theta,
    make_householder_vector,
    make_permutation,
    permutation_table,
    permuteformer_decay,
    permuteformer_permutation,
    rope,
)

class PositionEncoding(nn.Module):
    """Transforms per-head queries or keys ``(batch, heads, n, head_dim)`` at absolute positions ``(batch, n)``.

    Args:
        kind: ``"lrpe"``, ``"rope"``, ``"cosformer"``, ``"permuteformer"``, ``"lrpe_d"`` or ``"nope"``.
        head_dim, num_heads: per-head feature size and number of heads.
        core, p, theta_type, theta_learned, householder_learned: LRPE settings (``kind="lrpe"`` only); one module
            per layer, shared by all heads, as in the authors' code.
        max_positions: cosFormer's M, the length l of theta types b/c (fixed so caching stays exact) and the
            length of the permutation table (positions beyond it raise ValueError).
        seed: seed of the generator drawing the Householder vector and the permutation.
        layer_idx, num_layers: position of the layer (LRPE-d's decay depends on it).

    ``decay`` (``(heads,)`` or None) is the per-head decay linear attention must apply (PermuteFormer, LRPE-d).
    """

    def __init__(
        self,
        kind: str,
        head_dim: int,
        num_heads: int,
        *,
        core: str = "unitary",
        p: str = "identity",
        theta_type: str = "a",
        theta_learned: bool = False,
        householder_learned: bool = False,
        max_positions: int = 512,
        seed: int = 0,
        layer_idx: int = 0,
        num_layers: int = 1,
    ):
        super().__init__()
        self.kind = kind
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.core = core if kind == "lrpe" else None
        # core "none" is no transform at all (NoPE with LRPE's normalisation); P alone would change nothing in
        # the scores since P is orthogonal.
        self.p = p if kind == "lrpe" and core != "none" else "identity"
        self.theta_type = theta_type
        self.theta_learned = theta_learned
        self.max_positions = max_positions
        self.seed = seed
        self.layer_idx = layer_idx
        self.num_layers = num_layers

        theta = self._compute_theta()
        if theta is not None:
            if self.kind == "lrpe_d" or theta_learned:
                self.theta = nn.Parameter(theta)
            else:
                self.register_buffer("theta", theta, persistent=False)
        else:
            self.theta = None
        if self.p == "householder":
            # Learned: a parameter. Fixed: a *persistent buffer*, saved under the same name; a frozen parameter
            # would come back trainable after from_pretrained (which re-enables requires_grad).
            if householder_learned:
                self.householder_v = nn.Parameter(self._draw_householder())
            else:
                self.register_buffer("householder_v", self._draw_householder(), persistent=True)
        else:
            self.householder_v = None
        if self.core == "permutation" or kind == "permuteformer":
            # pi is saved; the table of its powers pi^s, s < max_positions, is derived (rebuilt after loading).
            self.register_buffer("permutation", self._draw_permutation(), persistent=True)
            self.register_buffer("permutation_table", self._compute_permutation_table(), persistent=False)
        else:
            self.permutation = None
            self.permutation_table = None
        decay = self._compute_decay()
        if decay is not None:
            self.register_buffer("decay", decay, persistent=False)
        else:
            self.decay = None

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.half()``, ``.bfloat16()`` move this module but never lower its float tensors below float32:
        the angles are s * theta with s up to the context length, and a bfloat16 theta (8 bits of mantissa) shifts
        them by whole turns at long context (LRPE-d at 16k: largest logit error 0.58 instead of 0.04)."""
        super()._apply(fn, recurse)
        for store in (self._parameters, self._buffers):
            for tensor in store.values():
                if tensor is not None and tensor.dtype in (torch.float16, torch.bfloat16):
                    tensor.data = tensor.data.float()
        return self

    # -- parameters -------------------------------------------------------------------------------------------
    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(int(seed))

    def _compute_theta(self) -> torch.Tensor | None:
        if self.kind == "lrpe" and self.core in ("rotation", "unitary"):
            length = self.max_positions if self.theta_type in ("b", "c") else None
            return lrpe_theta(self.head_dim, self.core, self.theta_type, length=length, p=self.p).float()
        if self.kind == "lrpe_d":  # per-head frequencies (heads, d), broadcast by lrpe over (batch, heads, n, d)
            return lrpe_d_theta(self.num_heads, self.head_dim).float()
        return None

    def _compute_decay(self) -> torch.Tensor | None:
        if self.kind == "permuteformer":
            decay = permuteformer_decay(self.num_heads)
        elif self.kind == "lrpe_d":
            decay = lrpe_d_decay(self.num_heads, self.layer_idx, self.num_layers)
        else:
            return None
        return decay.float().reshape(self.num_heads)

    def _draw_householder(self) -> torch.Tensor:
        return make_householder_vector(self.head_dim, self._generator(self.seed)).float()

    def _draw_permutation(self) -> torch.Tensor:
        if self.kind == "permuteformer":  # the fixed seed of the PermuteFormer code, shared by all layers
            return permuteformer_permutation(self.head_dim).long()
        return make_permutation(self.head_dim, self._generator(self.seed)).long()

    def _compute_permutation_table(self) -> torch.Tensor:
        if self.permutation.is_meta:  # from_pretrained builds on the meta device; _init_weights fills it in
            return torch.empty(self.max_positions, self.head_dim, dtype=torch.long, device="meta")
        return permutation_table(self.permutation.cpu(), self.max_positions)

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        """Values of every tensor of this module at initialisation (for ``_init_weights``: learned theta gets its
        type-a start, fixed tables are rebuilt, random parts are redrawn from the seed)."""
        out = {}
        if self.theta is not None:
            out["theta"] = self._compute_theta()
        if self.householder_v is not None:
            out["householder_v"] = self._draw_householder()
        if self.permutation is not None:
            out["permutation"] = self._draw_permutation()
        if self.decay is not None:
            out["decay"] = self._compute_decay()
        return out

    def derived_tables(self) -> dict[str, torch.Tensor]:
        """Tables derived from (possibly loaded) saved tensors; call after :meth:`initial_tensors` is applied."""
        if self.permutation_table is None:
            return {}
        return {"permutation_table": self._compute_permutation_table()}

    @property
    def output_dim(self) -> int:
        """Feature size of the transformed q/k (twice ``head_dim`` for the unitary core and cosFormer)."""
        if self.kind == "lrpe":
            return self.head_dim if self.core == "none" else lrpe_output_dim(self.core, self.p, self.head_dim)
        if self.kind in ("cosformer", "lrpe_d"):
            return 2 * self.head_dim
        return self.head_dim

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``x (batch, heads, n, head_dim)``, ``positions (batch, n)`` (0-based absolute) -> encoded x."""
        pos = positions[:, None, :]  # broadcast over heads
        if self.kind == "nope":
            return x
        if self.kind == "lrpe":
            if self.core == "none":
                return x
            return lrpe(
                x, pos, core=self.core, p=self.p, theta=self.theta, theta_type=self.theta_type,
                householder_v=self.householder_v, permutation_table=self.permutation_table,
            )
        if self.kind == "rope":
            return rope(x, pos)
        if self.kind == "cosformer":
            return cosformer_reweight(x, pos, self.max_positions)
        if self.kind == "permuteformer":
            return lrpe(x, pos, core="permutation", p="identity", permutation_table=self.permutation_table)
        if self.kind == "lrpe_d":
            return lrpe(x, pos, core="unitary", p="identity", theta=self.theta)
        raise ValueError(f"unknown position encoding {self.kind!r}")

    def extra_repr(self) -> str:
        parts = [f"kind={self.kind!r}", f"head_dim={self.head_dim}"]
        if self.kind == "lrpe":
            parts += [f"core={self.core!r}", f"p={self.p!r}", f"theta_learned={self.theta_learned}"]
        return ", ".join(parts)
