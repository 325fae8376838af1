"""Linearized relative positional encoding (LRPE, arXiv 2307.09270) and the baselines in the same form.

An LRPE transforms each query or key once, at its own absolute position s: ``f(x, s) = C_s(P x)``. ``P`` is a
fixed or learned unitary matrix (applied first; ``P^H`` cancels in the score and is never applied) and ``C_s`` a
position-dependent core with ``C_s^H C_t`` depending only on ``t - s``. So ``f(q, s) . f(k, t)`` depends only on
the offset, and any linear-attention algorithm runs unchanged on the transformed q and k.

Cores (``core=``):
  * ``"rotation"``: 2x2 rotations of interleaved channel pairs (2i, 2i+1) by ``s * theta_i``; d/2 frequencies.
    With odd d the last channel passes through unchanged (as in the authors' code).
  * ``"mixed_rotation"``: the rotation on the first e channels only (e = d/2 rounded down to even), fixed
    ``theta_i = 10000^(-2i/e)``; the other channels are position-free.
  * ``"permutation"``: position s gathers x at ``pi`` applied s times (``y[j] = x[pi^s[j]]``).
  * ``"unitary"``: ``x * exp(i s theta)`` with d frequencies, returned as the real concatenation
    ``[x cos(s theta) || x sin(s theta)]``: the last dim doubles, and ``f(q,s).f(k,t) = sum_j q_j k_j cos((t-s) theta_j)``.

P matrices (``p=``): ``"identity"``, ``"householder"`` (``I - 2 v v^T / |v|^2``, fixed or learned v),
``"dct"`` (orthonormal DCT-II), ``"oddeven"`` (``y_2k = x_k, y_2k+1 = x_ceil(d/2)+k``; with the rotation core it
reproduces half-split RoPE), ``"fft"`` (orthonormal real FFT, complex; unitary core only, output ``2(d//2+1)``).

Shapes: ``x (..., n, d)``; ``positions`` integer, ``(n,)`` or any shape broadcastable to ``x.shape[:-1]`` (for
``(batch, heads, n, d)`` inputs pass per-sample positions as ``(batch, 1, n)``). Frequencies ``theta`` have the
core's frequency count as last dim and may carry leading dims broadcastable against ``x.shape[:-2]`` (e.g. one row
per head, ``(heads, n_freq)``, as LRPE-d does).
"""

from __future__ import annotations

import math

import torch

LRPE_CORES = ("rotation", "mixed_rotation", "permutation", "unitary")
LRPE_P_MATRICES = ("identity", "householder", "dct", "oddeven", "fft")
THETA_TYPES = ("a", "b", "c")
PERMUTEFORMER_SEED = 0xDEADBEEFDEADBEEF


# ----------------------------------------------------------------------------------------------- validation
def _check_core_p(core: str, p: str) -> None:
    if core not in LRPE_CORES:
        raise ValueError(f"unknown LRPE core {core!r}; choose one of {LRPE_CORES}")
    if p not in LRPE_P_MATRICES:
        raise ValueError(f"unknown LRPE P matrix {p!r}; choose one of {LRPE_P_MATRICES}")
    if p == "fft" and core != "unitary":
        raise ValueError(f"p='fft' gives complex features and needs core='unitary', got core={core!r}")


def _check_positions(positions: torch.Tensor) -> torch.Tensor:
    positions = torch.as_tensor(positions)
    if positions.dtype.is_floating_point or positions.dtype == torch.bool or positions.is_complex():
        raise ValueError(f"positions must be an integer tensor, got dtype {positions.dtype}")
    if positions.numel() and not torch.compiler.is_compiling() and int(positions.min()) < 0:
        raise ValueError(f"positions must be >= 0, got a minimum of {int(positions.min())}")
    return positions


def lrpe_output_dim(core: str, p: str, dim: int) -> int:
    """Feature dim of ``lrpe(x)`` for input dim ``dim`` (doubles for the unitary core)."""
    _check_core_p(core, p)
    if core != "unitary":
        return dim
    return 2 * (dim // 2 + 1) if p == "fft" else 2 * dim


def num_frequencies(core: str, p: str, dim: int) -> int:
    """Length of ``theta`` for a core: d//2 (rotation), e/2 (mixed rotation), d or d//2+1 (unitary), 0."""
    _check_core_p(core, p)
    if core == "rotation":
        return dim // 2
    if core == "mixed_rotation":
        return _mixed_rotation_width(dim) // 2
    if core == "unitary":
        return dim // 2 + 1 if p == "fft" else dim
    return 0


def _mixed_rotation_width(dim: int) -> int:
    return (dim // 2) // 2 * 2


# ----------------------------------------------------------------------------------------------- parameters
def lrpe_theta(
    dim: int,
    core: str,
    theta_type: str = "a",
    length: int | None = None,
    *,
    p: str = "identity",
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Initial frequencies of a core (the θ types a/b/c of the LRPE authors' code, arXiv 2307.09270).

    Type ``"a"``: ``base^(-2i/d)`` (i < d/2 for rotation, j < d for unitary). Types ``"b"`` and ``"c"`` (rotation
    only) imitate cosFormer and depend on a length ``l``: ``(pi / 2l) * i / (d/2)`` and ``pi / (2 l i)``, i = 1..d/2.
    Pass a fixed ``length`` (e.g. max positions) so the encoding does not change while decoding.
    """
    if theta_type not in THETA_TYPES:
        raise ValueError(f"unknown theta_type {theta_type!r}; choose one of {THETA_TYPES}")
    count = num_frequencies(core, p, dim)
    if core == "permutation":
        raise ValueError("the permutation core has no frequencies (theta)")
    if core == "mixed_rotation":
        e = _mixed_rotation_width(dim)
        if theta_type != "a":
            raise ValueError("the mixed_rotation core only has fixed type-'a' frequencies")
        i = torch.arange(count, dtype=torch.float64, device=device)
        return (base ** (-2.0 * i / e)).to(dtype)
    if theta_type == "a":
        denom = dim if core == "rotation" or p != "fft" else count
        i = torch.arange(count, dtype=torch.float64, device=device)
        return (base ** (-2.0 * i / denom)).to(dtype)
    if core != "rotation":
        raise ValueError(f"theta_type {theta_type!r} is only defined for the rotation core (got {core!r})")
    if length is None or length < 1:
        raise ValueError(f"theta_type {theta_type!r} needs the sequence length l (a positive int), got {length!r}")
    i = torch.arange(1, count + 1, dtype=torch.float64, device=device)
    if theta_type == "b":
        theta = (math.pi / (2 * length)) * i / (dim / 2)
    else:
        theta = math.pi / (2 * length * i)
    return theta.to(dtype)


def make_householder_vector(dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """v ~ N(0, I_d), drawn from ``generator`` (seed it, and save v with the weights)."""
    return torch.randn(dim, generator=generator)


def make_permutation(dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random permutation pi of range(dim) from ``generator``."""
    return torch.randperm(dim, generator=generator)


def permutation_powers(permutation: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Index table ``pi^s`` for every position s: shape ``(*positions.shape, d)``, with ``pi^s[j] = pi(pi(...j))``.

    Computed by binary exponentiation (powers of one permutation commute), O(n d log s_max), no sequential loop.
    """
    positions = _check_positions(positions).to(permutation.device)
    d = permutation.shape[-1]
    flat = positions.reshape(-1)
    table = torch.arange(d, device=permutation.device).expand(flat.shape[0], d).clone()
    power = permutation.clone()
    s_max = int(flat.max()) if flat.numel() else 0
    bit = 0
    while (s_max >> bit) > 0:
        use = ((flat >> bit) & 1).bool()
        if use.any():
            table[use] = table[use][:, power]
        power = power[power]
        bit += 1
    return table.reshape(*positions.shape, d)


def permutation_table(permutation: torch.Tensor, max_positions: int) -> torch.Tensor:
    """``(max_positions, d)`` table of ``pi^s`` for s < max_positions (what a module keeps as a buffer)."""
    return permutation_powers(permutation, torch.arange(max_positions, device=permutation.device))


def dct_matrix(dim: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Orthonormal DCT-II matrix C (``C @ C.T = I``): ``C_kn = sqrt(2/d) c_k cos(pi (2n+1) k / (2d))``."""
    n = torch.arange(dim, dtype=torch.float64, device=device)
    k = n[:, None]
    c = torch.cos(math.pi * (2 * n[None, :] + 1) * k / (2 * dim)) * math.sqrt(2.0 / dim)
    c[0] = c[0] / math.sqrt(2.0)
    return c.to(dtype)


def oddeven_index(dim: int, device=None) -> torch.Tensor:
    """Gather index of the odd-even P: ``y[2k] = x[k]``, ``y[2k+1] = x[ceil(d/2) + k]``."""
    half = (dim + 1) // 2
    j = torch.arange(dim, device=device)
    return torch.where(j % 2 == 0, j // 2, half + j // 2)


# ----------------------------------------------------------------------------------------------- P matrices
def apply_p(x: torch.Tensor, p: str, householder_v: torch.Tensor | None = None) -> torch.Tensor:
    """``P x`` on the last dim; ``"fft"`` returns a complex tensor of length d//2+1."""
    if p == "identity":
        return x
    if p == "householder":
        if householder_v is None:
            raise ValueError("p='householder' needs householder_v (the vector v of P = I - 2vv^T/|v|^2)")
        if householder_v.shape[-1] != x.shape[-1]:
            raise ValueError(f"householder_v has dim {householder_v.shape[-1]}, x has {x.shape[-1]}")
        v = householder_v.to(x.dtype)
        # Renormalised on every call (a learned v drifts), exactly: an epsilon added to the norm would make P a
        # slightly shrunken, non-orthogonal map (arXiv 2307.09270 needs P unitary for the relative property).
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        return x - 2.0 * (x * v).sum(-1, keepdim=True) * v
    if p == "dct":
        return x @ dct_matrix(x.shape[-1], dtype=x.dtype, device=x.device).T
    if p == "oddeven":
        return x[..., oddeven_index(x.shape[-1], device=x.device)]
    if p == "fft":
        return torch.fft.rfft(x, dim=-1, norm="ortho")
    raise ValueError(f"unknown LRPE P matrix {p!r}; choose one of {LRPE_P_MATRICES}")


# ----------------------------------------------------------------------------------------------- cores
def _angles(positions: torch.Tensor, theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``positions[..., n, None] * theta[..., None, :]`` in the compute dtype."""
    return positions.to(dtype).unsqueeze(-1) * theta.to(dtype).unsqueeze(-2)


def rotate_interleaved(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (2i, 2i+1) by ``angles[..., i]``; channels past 2*n_freq pass through."""
    m = angles.shape[-1]
    cos, sin = torch.cos(angles), torch.sin(angles)
    pairs = x[..., : 2 * m]
    even, odd = pairs[..., 0::2], pairs[..., 1::2]
    rot = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)
    if 2 * m == x.shape[-1]:
        return rot
    rest = x[..., 2 * m :].expand(*rot.shape[:-1], x.shape[-1] - 2 * m)
    return torch.cat((rot, rest), dim=-1)


def rotate_half_split(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """RoPE pairing: rotate (i, i + d/2) by ``angles[..., i]``."""
    half = x.shape[-1] // 2
    cos, sin = torch.cos(angles), torch.sin(angles)
    a, b = x[..., :half], x[..., half:]
    return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)


def unitary_features(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``[Re(x e^{i angles}) || Im(x e^{i angles})]``; for real x that is ``[x cos || x sin]``."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    if x.is_complex():
        re, im = x.real, x.imag
        return torch.cat((re * cos - im * sin, re * sin + im * cos), dim=-1)
    return torch.cat((x * cos, x * sin), dim=-1)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if x.is_complex():
        return x.real.dtype if x.real.dtype == torch.float64 else torch.float32
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def lrpe(
    x: torch.Tensor,
    positions: torch.Tensor,
    *,
    core: str,
    p: str = "identity",
    theta: torch.Tensor | None = None,
    theta_type: str = "a",
    householder_v: torch.Tensor | None = None,
    permutation: torch.Tensor | None = None,
    permutation_table: torch.Tensor | None = None,
    theta_length: int | None = None,
) -> torch.Tensor:
    """Apply the LRPE ``f(x, s) = C_s(P x)`` (module docstring) at integer ``positions``.

    Args:
        x: ``(..., n, d)`` queries or keys (after the feature map).
        positions: 0-based absolute positions, ``(n,)`` or broadcastable to ``x.shape[:-1]``.
        core, p: see ``LRPE_CORES`` and ``LRPE_P_MATRICES``.
        theta: frequencies (last dim = ``num_frequencies(core, p, d)``); default: ``lrpe_theta(d, core, theta_type)``.
        theta_type, theta_length: initialisation type and the fixed length l of types ``"b"``/``"c"``.
        householder_v: v of the Householder P (required for ``p="householder"``).
        permutation: pi for the permutation core, or ``permutation_table``: a precomputed ``(max_positions, d)``
            table of its powers (positions beyond it raise ``ValueError``).

    Returns:
        ``(..., n, lrpe_output_dim(core, p, d))`` in the dtype of ``x``.
    """
    _check_core_p(core, p)
    positions = _check_positions(positions).to(x.device)
    d = x.shape[-1]
    if positions.shape[-1] != x.shape[-2]:
        raise ValueError(f"positions cover {positions.shape[-1]} tokens but x has {x.shape[-2]}")
    out_dtype = x.dtype
    y = apply_p(x, p, householder_v)

    if core == "permutation":
        if permutation_table is not None:
            limit = permutation_table.shape[0]
            if positions.numel() and not torch.compiler.is_compiling() and int(positions.max()) >= limit:
                raise ValueError(
                    f"position {int(positions.max())} is beyond the permutation table ({limit} positions); "
                    f"raise max_position_embeddings"
                )
            index = permutation_table.to(x.device)[positions]
        elif permutation is not None:
            if permutation.shape[-1] != d:
                raise ValueError(f"permutation has length {permutation.shape[-1]}, x has dim {d}")
            index = permutation_powers(permutation.to(x.device), positions)
        else:
            raise ValueError("core='permutation' needs permutation (pi) or permutation_table")
        index = index.expand(*y.shape[:-2], *index.shape[-2:]) if index.dim() < y.dim() else index
        y, index = torch.broadcast_tensors(y, index) if index.shape != y.shape else (y, index)
        return torch.gather(y, -1, index).to(out_dtype)

    dtype = _compute_dtype(y)
    if theta is None:
        theta = lrpe_theta(d, core, theta_type, theta_length, p=p, dtype=dtype, device=x.device)
    expected = num_frequencies(core, p, d)
    if theta.shape[-1] != expected:
        raise ValueError(f"theta has {theta.shape[-1]} frequencies; core {core!r} with d={d} needs {expected}")
    angles = _angles(positions, theta, dtype)
    if not y.is_complex():
        y = y.to(dtype)
    if core in ("rotation", "mixed_rotation"):
        return rotate_interleaved(y, angles).to(out_dtype)
    return unitary_features(y, angles).to(out_dtype)


def lrpe_2d(
    x: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    *,
    core: str,
    mode: str = "shared",
    p: str = "identity",
    theta: torch.Tensor | None = None,
    householder_v: torch.Tensor | None = None,
    permutation: torch.Tensor | None = None,
) -> torch.Tensor:
    """2-D LRPE for image tokens at grid positions ``(rows, cols)`` (each broadcastable like ``positions``).

    ``mode="shared"`` is the authors' image code: the core is applied along rows and again along columns with the
    same parameters; those transforms commute, so this equals the 1-D encoding at ``rows + cols`` and the score
    depends only on ``dr + dc``. ``mode="separable"`` gives each axis its own frequencies (the phase vector is
    ``[r theta || c theta]`` truncated to the frequency count), so the score is a sum of a ``dr`` part and a
    ``dc`` part: a real 2-D relative encoding. Prefix tokens such as CLS can use position 0 on both axes.
    """
    if mode == "shared":
        return lrpe(x, rows + cols, core=core, p=p, theta=theta, householder_v=householder_v, permutation=permutation)
    if mode != "separable":
        raise ValueError(f"unknown 2-D LRPE mode {mode!r}; choose 'shared' or 'separable'")
    if core not in ("rotation", "unitary"):
        raise ValueError(f"the separable 2-D LRPE is defined for the rotation and unitary cores, not {core!r}")
    _check_core_p(core, p)
    rows, cols = _check_positions(rows).to(x.device), _check_positions(cols).to(x.device)
    d = x.shape[-1]
    y = apply_p(x, p, householder_v)
    dtype = _compute_dtype(y)
    count = num_frequencies(core, p, d)
    if theta is None:
        # Frequencies for one axis span the whole range over half the slots.
        half = (count + 1) // 2
        i = torch.arange(half, dtype=torch.float64, device=x.device)
        theta = (10000.0 ** (-i / max(half, 1))).to(dtype)
    half = theta.shape[-1]
    if 2 * half < count:
        raise ValueError(f"separable 2-D LRPE needs at least {(count + 1) // 2} frequencies per axis, got {half}")
    angles = torch.cat((_angles(rows, theta, dtype), _angles(cols, theta, dtype)), dim=-1)[..., :count]
    if not y.is_complex():
        y = y.to(dtype)
    if core == "rotation":
        return rotate_interleaved(y, angles).to(x.dtype)
    return unitary_features(y, angles).to(x.dtype)


# ----------------------------------------------------------------------------------------------- baselines
def rope(x: torch.Tensor, positions: torch.Tensor, theta: torch.Tensor | None = None, base: float = 10000.0):
    """Rotary position embedding with half-split pairs (i, i + d/2), ``theta_i = base^(-2i/d)``."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE (half-split) needs an even head dim, got {d}")
    positions = _check_positions(positions).to(x.device)
    dtype = _compute_dtype(x)
    if theta is None:
        theta = lrpe_theta(d, "rotation", "a", base=base, dtype=dtype, device=x.device)
    return rotate_half_split(x.to(dtype), _angles(positions, theta, dtype)).to(x.dtype)


def cosformer_reweight(x: torch.Tensor, positions: torch.Tensor, max_length: int) -> torch.Tensor:
    """cosFormer's re-weighting: ``[x sin(a s) || x cos(a s)]`` with ``a = pi / (2 M)``, M = ``max_length``.

    ``q~_s . k~_t = q.k cos(a (s - t))``. cosFormer counts positions from 1; scores depend only on the offset, so
    0- or 1-based positions give the same attention. ``max_length`` must be at least the longest sequence (and
    fixed, so cached decoding sees the same encoding as a full forward).
    """
    positions = _check_positions(positions).to(x.device)
    if max_length < 1:
        raise ValueError(f"cosformer max_length must be >= 1, got {max_length}")
    if positions.numel() and not torch.compiler.is_compiling() and int(positions.max()) > max_length:
        raise ValueError(f"position {int(positions.max())} exceeds cosFormer's max_length {max_length}")
    dtype = _compute_dtype(x)
    ang = positions.to(dtype).unsqueeze(-1) * (math.pi / (2 * max_length))
    xf = x.to(dtype)
    return torch.cat((xf * torch.sin(ang), xf * torch.cos(ang)), dim=-1).to(x.dtype)


def permuteformer_decay(num_heads: int) -> torch.Tensor:
    """PermuteFormer's per-head decay ``r_h = sigmoid(3h/H + 2)`` (about 0.88 ... 0.99)."""
    h = torch.arange(num_heads, dtype=torch.float64)
    return torch.sigmoid(3.0 * h / num_heads + 2.0).float()


def permuteformer_permutation(dim: int) -> torch.Tensor:
    """The permutation PermuteFormer draws with its fixed seed (shared by all heads)."""
    g = torch.Generator().manual_seed(PERMUTEFORMER_SEED & 0x7FFFFFFFFFFFFFFF)
    return torch.randperm(dim, generator=g)


def lrpe_d_decay(num_heads: int, layer_idx: int, num_layers: int) -> torch.Tensor:
    """TransNormerLLM's per-head decay ``lambda_h = exp(-(8h/H) (1 - l/L))`` for layer l of L."""
    if not 0 <= layer_idx < num_layers:
        raise ValueError(f"layer_idx must lie in [0, {num_layers}), got {layer_idx}")
    h = torch.arange(num_heads, dtype=torch.float64)
    return torch.exp(-(8.0 * h / num_heads) * (1.0 - layer_idx / num_layers)).float()


def lrpe_d_theta(num_heads: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Per-head unitary frequencies of LRPE-d: head h gets ``base^(-2j/(H d))``, j = h d ... (h+1) d - 1."""
    j = torch.arange(num_heads * head_dim, dtype=torch.float64)
    return (base ** (-2.0 * j / (num_heads * head_dim))).float().reshape(num_heads, head_dim)
