"""The registry of position encodings applied to queries and keys: the LRPE family and its baselines.

Every encoding is a small ``nn.Module`` with one interface, used by every attention module of the package:

* ``forward(x, positions, grid=None)``: ``x (..., n, head_dim)`` queries or keys (after the feature map),
  ``positions`` 0-based absolute integer positions broadcastable to ``x.shape[:-1]``, ``grid = (rows, cols)`` for
  image tokens (2-D encodings use it; the others use ``positions``, the raster order) -> ``(..., n, output_dim)``;
* ``output_dim``: feature size of the encoded q/k (twice ``head_dim`` for the unitary core, cosFormer, LRPE-d);
* ``decay``: ``(num_heads,)`` tensor of per-head decays linear attention must apply (PermuteFormer, LRPE-d) or None;
* ``initial_tensors()`` / ``derived_tables()``: what a model's ``_init_weights`` writes into the module (see
  :func:`init_position_encoding`).

Random parts are drawn from a ``torch.Generator`` seeded with ``seed`` so a configuration reproduces them, and are
saved with the weights (a Householder vector: a parameter when learned, else a persistent buffer; a permutation: a
persistent buffer). Derived tables (fixed theta, decays, permutation powers) are non-persistent buffers. Position
tensors stay float32 under ``.to(dtype)``/``.half()``: the angles are ``s * theta`` with ``s`` up to the context
length, and a bfloat16 theta shifts them by whole turns at long context.

Adding an encoding is one class and one entry::

    @register_position_encoding("my_encoding")
    class MyEncoding(PositionEncoding):
        options = ("scale",)                       # keyword options it takes beyond head_dim, num_heads
        def __init__(self, head_dim, num_heads=1, *, scale=1.0): ...
        def forward(self, x, positions, grid=None): ...

after which ``LrpeConfig(position_encoding="my_encoding")`` and ``build_position_encoding("my_encoding", ...)`` build
it. An encoding that biases softmax scores instead of transforming q and k (Shaw et al.'s relative keys,
``relative_key``) leaves ``forward`` as the identity and defines ``score_bias(q, q_positions, k_positions)``; it says
``linear_compatible = False``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.lrpe import (
    LRPE_CORES,
    LRPE_P_MATRICES,
    THETA_TYPES,
    cosformer_reweight,
    lrpe,
    lrpe_2d,
    lrpe_d_decay,
    lrpe_d_theta,
    lrpe_output_dim,
    lrpe_theta,
    make_householder_vector,
    make_permutation,
    num_frequencies,
    permutation_table,
    permuteformer_decay,
    permuteformer_permutation,
    rope,
)

#: LRPE cores a model can ask for: the ops' cores plus ``"none"`` (P only, which changes no score: no transform).
LRPE_MODEL_CORES = (*LRPE_CORES, "none")
LRPE_2D_MODES = ("shared", "separable")

#: name -> class; filled by :func:`register_position_encoding`.
POSITION_ENCODINGS: dict[str, type[PositionEncoding]] = {}


def register_position_encoding(name: str):
    """Class decorator: make an encoding buildable by name (configs, ``build_position_encoding``)."""

    def add(cls):
        if name in POSITION_ENCODINGS:
            raise ValueError(f"position encoding {name!r} is already registered ({POSITION_ENCODINGS[name].__name__})")
        cls.name = name
        POSITION_ENCODINGS[name] = cls
        return cls

    return add


def build_position_encoding(name: str, head_dim: int, num_heads: int = 1, **options) -> PositionEncoding:
    """Build the encoding registered as ``name``; ``options`` may hold every encoding's options, each takes its own."""
    if name not in POSITION_ENCODINGS:
        raise ValueError(f"position encoding {name!r} is not registered; choose one of {tuple(POSITION_ENCODINGS)}")
    cls = POSITION_ENCODINGS[name]
    return cls(head_dim, num_heads, **{key: options[key] for key in cls.options if key in options})


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed))


class PositionEncoding(nn.Module):
    """Base class: no transform (NoPE). Subclasses override ``forward`` and, where they hold tensors,
    ``initial_tensors``/``derived_tables``."""

    name = "base"
    #: keyword options the constructor takes beyond ``head_dim`` and ``num_heads``
    options: tuple[str, ...] = ()
    #: encodes image tokens by their grid position when given ``grid``
    supports_2d = False
    #: a transform of q and k alone, meaningful before softmax attention too (not a decay inside the linear
    #: recurrence, nor a re-weighting that replaces the softmax)
    softmax_compatible = True
    #: meaningful inside linear attention (an encoding that only biases softmax scores is not)
    linear_compatible = True

    def __init__(self, head_dim: int, num_heads: int = 1):
        super().__init__()
        for field, value in (("head_dim", head_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.register_buffer("decay", None, persistent=False)  # (num_heads,) where linear attention must decay

    @property
    def output_dim(self) -> int:
        return self.head_dim

    def _apply(self, fn, recurse=True):
        """``.to()``, ``.half()``, ``.bfloat16()`` move this module but never lower its float tensors below float32
        (LRPE-d at 16k in bfloat16: largest logit error 0.58 with a bfloat16 theta, 0.04 with a float32 one)."""
        super()._apply(fn, recurse)
        for store in (self._parameters, self._buffers):
            for tensor in store.values():
                if tensor is not None and tensor.dtype in (torch.float16, torch.bfloat16):
                    tensor.data = tensor.data.float()
        return self

    def initial_tensors(self) -> dict[str, torch.Tensor]:
        """Values of this module's tensors at initialisation (learned theta at its start, fixed tables rebuilt,
        random parts redrawn from the seed)."""
        return {}

    def derived_tables(self) -> dict[str, torch.Tensor]:
        """Tables derived from (possibly loaded) saved tensors; applied after :meth:`initial_tensors`."""
        return {}

    def forward(self, x: torch.Tensor, positions: torch.Tensor, grid=None) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}"


def init_position_encoding(module: PositionEncoding, init) -> None:
    """Write a freshly built or meta-loaded encoding's initial tensors (for a model's ``_init_weights``).

    ``init`` is ``transformers.initialization``, whose functions skip tensors already loaded from a checkpoint, so a
    saved Householder vector or permutation wins over the seed's and derived tables follow what was loaded.
    """
    for stage in (module.initial_tensors, module.derived_tables):
        for name, value in stage().items():
            tensor = getattr(module, name)
            init.copy_(tensor, value.to(device=tensor.device, dtype=tensor.dtype))


@register_position_encoding("nope")
class NoPositionEncoding(PositionEncoding):
    """No position information in q and k (NoPE)."""


@register_position_encoding("rope")
class RotaryEncoding(PositionEncoding):
    """RoPE with half-split pairs ``(i, i + d/2)``, ``theta_i = 10000^(-2i/d)`` (Su et al., arXiv 2104.09864)."""

    def __init__(self, head_dim, num_heads=1):
        super().__init__(head_dim, num_heads)
        if head_dim % 2:
            raise ValueError(f"RoPE (half-split) needs an even head dim, got {head_dim}")

    def forward(self, x, positions, grid=None):
        return rope(x, positions)


@register_position_encoding("cosformer")
class CosformerEncoding(PositionEncoding):
    """cosFormer's re-weighting ``[x sin(a s) || x cos(a s)]``, ``a = pi / (2 M)`` (Qin et al., arXiv 2202.08791),
    with a *fixed* ``M = max_positions`` so a cached decode sees the encoding of a full forward (the official
    ``M = max(L, S)`` changes with the length). Positions at or beyond M raise."""

    softmax_compatible = False

    options = ("max_positions",)

    def __init__(self, head_dim, num_heads=1, *, max_positions=512):
        super().__init__(head_dim, num_heads)
        if not isinstance(max_positions, int) or isinstance(max_positions, bool) or max_positions < 1:
            raise ValueError(f"max_positions (cosFormer's M) must be a positive int, got {max_positions!r}")
        self.max_positions = max_positions

    @property
    def output_dim(self):
        return 2 * self.head_dim

    def forward(self, x, positions, grid=None):
        positions = torch.as_tensor(positions)
        if positions.numel() and not torch.compiler.is_compiling() and int(positions.max()) >= self.max_positions:
            raise ValueError(
                f"position {int(positions.max())} is beyond cosFormer's M = max_positions = {self.max_positions}; "
                f"raise max_position_embeddings"
            )
        return cosformer_reweight(x, positions, self.max_positions)

    def extra_repr(self):
        return f"head_dim={self.head_dim}, max_positions={self.max_positions}"


class _PermutationTable:
    """Mixin: a saved permutation pi and, when ``max_positions`` is set, a derived table of its powers pi^s."""

    def _init_permutation(self, permutation: torch.Tensor, max_positions: int | None) -> None:
        self.max_positions = max_positions
        self.register_buffer("permutation", permutation, persistent=True)
        table = self._compute_permutation_table() if max_positions is not None else None
        self.register_buffer("permutation_table", table, persistent=False)

    def _compute_permutation_table(self) -> torch.Tensor:
        if self.permutation.is_meta:  # from_pretrained builds on the meta device; _init_weights fills it in
            return torch.empty(self.max_positions, self.head_dim, dtype=torch.long, device="meta")
        # .long(): a loader that casts a whole module to a float dtype (keep-in-fp32 rules) must not break the indices
        return permutation_table(self.permutation.cpu().long(), self.max_positions)

    def derived_tables(self):
        return {} if self.permutation_table is None else {"permutation_table": self._compute_permutation_table()}


@register_position_encoding("permuteformer")
class PermuteFormerEncoding(_PermutationTable, PositionEncoding):
    """PermuteFormer (Chen, arXiv 2109.02377): the permutation core with the fixed permutation of its code and a
    per-head decay ``r_h`` applied by linear attention."""

    softmax_compatible = False

    options = ("max_positions",)

    def __init__(self, head_dim, num_heads=1, *, max_positions=512):
        super().__init__(head_dim, num_heads)
        self._init_permutation(permuteformer_permutation(head_dim).long(), max_positions)
        self.register_buffer("decay", self._compute_decay(), persistent=False)

    def _compute_decay(self):
        return permuteformer_decay(self.num_heads).float().reshape(self.num_heads)

    def initial_tensors(self):
        return {"permutation": permuteformer_permutation(self.head_dim).long(), "decay": self._compute_decay()}

    def forward(self, x, positions, grid=None):
        return lrpe(x, positions, core="permutation", p="identity", permutation=self.permutation.long(),
                    permutation_table=self.permutation_table)


@register_position_encoding("lrpe")
class LrpeEncoding(_PermutationTable, PositionEncoding):
    """LRPE ``f(x, s) = C_s(P x)`` (Qin et al., arXiv 2307.09270): one module per layer, shared by its heads, as in
    the authors' code; 1-D at ``positions`` or 2-D on an image ``grid``.

    Options:
        core: ``"rotation"``, ``"mixed_rotation"``, ``"permutation"``, ``"unitary"`` or ``"none"`` (no transform).
        p: ``"identity"``, ``"householder"``, ``"dct"``, ``"oddeven"`` or ``"fft"``.
        theta_type: ``"a"``, ``"b"`` or ``"c"`` (b/c use ``l = max_positions``, fixed so caching stays exact).
        theta_learned: theta is a trainable parameter (type-a start; 2-D separable: half the frequencies per axis).
        householder_learned: the Householder vector is trained (it is saved either way).
        mode_2d: ``"shared"`` (the authors' image code: rows and columns share one angle, the score depends on
            ``dr + dc``) or ``"separable"`` (rows and columns on separate channels; rotation/unitary cores).
        max_positions: length of the permutation-power table (positions beyond it raise) and l of theta types b/c;
            None computes permutation powers per call (image grids).
        seed: seed of the generator drawing the Householder vector and the permutation.
    """

    options = ("core", "p", "theta_type", "theta_learned", "householder_learned", "mode_2d", "max_positions", "seed")
    supports_2d = True

    def __init__(self, head_dim, num_heads=1, *, core="unitary", p="householder", theta_type="a",
                 theta_learned=False, householder_learned=False, mode_2d="shared", max_positions=None, seed=0):
        super().__init__(head_dim, num_heads)
        check_lrpe_options(core, p, theta_type, theta_learned, mode_2d)
        self.core = core
        # P alone would change no score (P is orthogonal): core "none" is no transform at all.
        self.p = p if core != "none" else "identity"
        self.theta_type, self.mode_2d, self.seed = theta_type, mode_2d, seed
        self.theta_learned = theta_learned
        theta = self._initial_theta(max_positions)
        self._theta_length = max_positions if theta_type in ("b", "c") else None
        if theta is None:
            self.theta = None
        elif theta_learned:
            self.theta = nn.Parameter(theta)
        else:
            self.register_buffer("theta", theta, persistent=False)
        # A fixed Householder vector is a persistent buffer (saved, never trained): a frozen Parameter would come
        # back trainable after from_pretrained.
        if self.p == "householder" and householder_learned:
            self.householder_v = nn.Parameter(self._draw_householder())
        elif self.p == "householder":
            self.register_buffer("householder_v", self._draw_householder(), persistent=True)
        else:
            self.householder_v = None
        if core == "permutation":
            self._init_permutation(self._draw_permutation(), max_positions)
        else:
            self.permutation = self.permutation_table = None

    def _initial_theta(self, max_positions):
        if self.core not in ("rotation", "unitary"):
            return None  # mixed_rotation: fixed type-a frequencies computed by the op; permutation, none: no theta
        if self.mode_2d == "separable":  # one axis's frequencies span the whole range over half the slots
            half = (num_frequencies(self.core, self.p, self.head_dim) + 1) // 2
            i = torch.arange(half, dtype=torch.float64)
            return (10000.0 ** (-i / max(half, 1))).float()
        length = max_positions if self.theta_type in ("b", "c") else None
        return lrpe_theta(self.head_dim, self.core, self.theta_type, length=length, p=self.p).float()

    def _draw_householder(self):
        return make_householder_vector(self.head_dim, _generator(self.seed)).float()

    def _draw_permutation(self):
        return make_permutation(self.head_dim, _generator(self.seed)).long()

    @property
    def output_dim(self):
        return self.head_dim if self.core == "none" else lrpe_output_dim(self.core, self.p, self.head_dim)

    def initial_tensors(self):
        out = {}
        if self.theta is not None:
            out["theta"] = self._initial_theta(self._theta_length)
        if self.householder_v is not None:
            out["householder_v"] = self._draw_householder()
        if self.permutation is not None:
            out["permutation"] = self._draw_permutation()
        return out

    def forward(self, x, positions, grid=None):
        if self.core == "none":
            return x
        permutation = None if self.permutation is None else self.permutation.long()
        kwargs = dict(core=self.core, p=self.p, theta=self.theta, householder_v=self.householder_v,
                      permutation=permutation)
        if grid is not None:
            return lrpe_2d(x, grid[0], grid[1], mode=self.mode_2d, **kwargs)
        return lrpe(x, positions, theta_type=self.theta_type, theta_length=self._theta_length,
                    permutation_table=self.permutation_table, **kwargs)

    def extra_repr(self):
        return (f"head_dim={self.head_dim}, core={self.core!r}, p={self.p!r}, mode_2d={self.mode_2d!r}, "
                f"theta_learned={self.theta_learned}")


@register_position_encoding("lrpe_d")
class LrpeDEncoding(PositionEncoding):
    """LRPE-d (TransNormerLLM, arXiv 2307.14995): the unitary core with per-head learned theta and a per-layer,
    per-head decay ``lambda_{h,l}`` applied by linear attention."""

    softmax_compatible = False

    options = ("layer_idx", "num_layers")

    def __init__(self, head_dim, num_heads=1, *, layer_idx=0, num_layers=1):
        super().__init__(head_dim, num_heads)
        self.layer_idx, self.num_layers = layer_idx, num_layers
        self.theta = nn.Parameter(lrpe_d_theta(num_heads, head_dim).float())  # (heads, d)
        self.register_buffer("decay", self._compute_decay(), persistent=False)

    def _compute_decay(self):
        return lrpe_d_decay(self.num_heads, self.layer_idx, self.num_layers).float().reshape(self.num_heads)

    @property
    def output_dim(self):
        return 2 * self.head_dim

    def initial_tensors(self):
        return {"theta": lrpe_d_theta(self.num_heads, self.head_dim).float(), "decay": self._compute_decay()}

    def forward(self, x, positions, grid=None):
        return lrpe(x, positions, core="unitary", p="identity", theta=self.theta)


@register_position_encoding("relative_key")
class RelativeKeyEncoding(PositionEncoding):
    """Relative-position keys of Shaw et al. (arXiv 1803.02155), keys only, for softmax attention (mixFormer's
    ``softmax_relative`` layers): q and k stay as they are and the scores gain
    ``q_i . E[clip(pos_j - pos_i, -K, K) + K] / sqrt(d_h)`` with one learned table ``relative_key_table
    (2 K + 1, head_dim)`` shared by the heads, ``K = max_relative_length`` (mixFormer: 14)."""

    linear_compatible = False
    options = ("max_relative_length", "seed")

    def __init__(self, head_dim, num_heads=1, *, max_relative_length=14, seed=0):
        super().__init__(head_dim, num_heads)
        if not isinstance(max_relative_length, int) or isinstance(max_relative_length, bool) or max_relative_length < 1:
            raise ValueError(f"max_relative_length must be a positive int, got {max_relative_length!r}")
        self.max_relative_length, self.seed = max_relative_length, seed
        self.relative_key_table = nn.Parameter(self.initial_tensors()["relative_key_table"])

    def initial_tensors(self):
        shape = (2 * self.max_relative_length + 1, self.head_dim)
        return {"relative_key_table": torch.randn(shape, generator=_generator(self.seed)) * self.head_dim**-0.5}

    def score_bias(self, q, q_positions, k_positions):
        """``(batch, heads, n, m)`` bias for queries ``q (batch, heads, n, head_dim)`` at ``q_positions (b or 1, n)``
        and keys at ``k_positions (b or 1, m)``."""
        kmax = self.max_relative_length
        rel = (k_positions[:, None, :] - q_positions[:, :, None]).clamp(-kmax, kmax) + kmax  # (b or 1, n, m)
        logits = torch.matmul(q * self.head_dim**-0.5, self.relative_key_table.to(q.dtype).T)  # (b, h, n, 2K+1)
        return logits.gather(-1, rel[:, None].expand(q.shape[0], q.shape[1], -1, -1))

    def extra_repr(self):
        return f"head_dim={self.head_dim}, max_relative_length={self.max_relative_length}"


def check_lrpe_options(core, p, theta_type="a", theta_learned=False, mode_2d="shared", *, owner="LrpeEncoding",
                       prefix="", combinations=True) -> None:
    """The one validation of LRPE options; configs call it with their own names (``owner="LrpeConfig"``,
    ``prefix="lrpe_"``) so a ``ValueError`` names the field as the user spelled it, the value and what is allowed.
    ``combinations=False`` checks each value alone (a config whose layers do not use LRPE keeps its unused
    combination, as saved checkpoints do)."""

    def name(field):
        return f"{owner}.{prefix}{field}"

    for field, value, allowed in (("core", core, LRPE_MODEL_CORES), ("p", p, LRPE_P_MATRICES),
                                  ("theta_type", theta_type, THETA_TYPES), ("2d_mode", mode_2d, LRPE_2D_MODES)):
        if value not in allowed:
            raise ValueError(f"{name(field)}={value!r} is not supported; choose one of {allowed}")
    if not isinstance(theta_learned, bool):
        raise ValueError(f"{name('theta_learned')} must be a bool, got {theta_learned!r}")
    if not combinations:
        return
    if p == "fft" and core not in ("unitary", "none"):
        raise ValueError(f"{name('p')}='fft' gives complex features and needs {prefix}core='unitary', got "
                         f"{prefix}core={core!r}")
    if theta_learned and core not in ("rotation", "unitary"):
        raise ValueError(f"{name('theta_learned')}=True (learned theta) needs {prefix}core 'rotation' or 'unitary' "
                         f"(the cores with frequencies), got {prefix}core={core!r}")
    if theta_type != "a" and core != "rotation":
        raise ValueError(f"{name('theta_type')}={theta_type!r} is defined for {prefix}core='rotation' only")
    if mode_2d == "separable" and core not in ("rotation", "unitary"):
        raise ValueError(f"{name('2d_mode')}='separable' (the separable 2-D LRPE) needs {prefix}core 'rotation' or "
                         f"'unitary', got {prefix}core={core!r}")


__all__ = [
    "LRPE_2D_MODES",
    "LRPE_MODEL_CORES",
    "POSITION_ENCODINGS",
    "PositionEncoding",
    "NoPositionEncoding",
    "RotaryEncoding",
    "CosformerEncoding",
    "PermuteFormerEncoding",
    "LrpeEncoding",
    "LrpeDEncoding",
    "RelativeKeyEncoding",
    "build_position_encoding",
    "check_lrpe_options",
    "init_position_encoding",
    "register_position_encoding",
]
