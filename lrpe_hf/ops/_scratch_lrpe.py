"""TEMPORARY placeholder for lrpe_hf.ops.lrpe (deleted once the real operators land)."""
import math
import torch

CORES = ("rotation", "mixed_rotation", "permutation", "unitary")
P_MATRICES = ("identity", "householder", "dct", "oddeven", "fft")


def lrpe_theta(d, core, theta_type="a", length=None):
    if core == "unitary":
        return 10000 ** (-2 * torch.arange(d, dtype=torch.float64) / d)
    return 10000 ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)


def lrpe_output_dim(core, p, d):
    return 2 * d if core == "unitary" else d


def make_householder_vector(d, generator=None):
    return torch.randn(d, generator=generator, dtype=torch.float32)


def make_permutation(d, generator=None):
    return torch.randperm(d, generator=generator)


def _pos(positions, x):
    return positions.to(x.dtype)[..., None]


def lrpe(x, positions, *, core, p="identity", theta=None, theta_type="a", householder_v=None, permutation=None,
         permutation_table=None):
    if core not in CORES:
        raise ValueError(f"unknown core {core!r}; choose one of {CORES}")
    if p not in P_MATRICES:
        raise ValueError(f"unknown p {p!r}; choose one of {P_MATRICES}")
    d = x.shape[-1]
    if p == "householder":
        v = householder_v.to(x.dtype)
        v = v / (v.norm() + 1e-6)
        x = x - 2 * (x @ v)[..., None] * v
    if core == "unitary":
        th = (theta if theta is not None else lrpe_theta(d, core)).to(x.dtype)
        ang = _pos(positions, x) * th
        return torch.cat([x * torch.cos(ang), x * torch.sin(ang)], dim=-1)
    if core == "rotation":
        th = (theta if theta is not None else lrpe_theta(d, core)).to(x.dtype)
        ang = _pos(positions, x) * th
        c, s = torch.cos(ang), torch.sin(ang)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        y = torch.stack([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)
        return y.flatten(-2)
    if core == "permutation":
        perm = permutation
        table = [torch.arange(d)]
        mx = int(positions.max()) + 1 if positions.numel() else 1
        if mx > 512:
            raise ValueError("positions beyond the permutation table (512)")
        for _ in range(mx - 1):
            table.append(table[-1][perm])
        table = torch.stack(table).to(x.device)
        idx = table[positions]  # (..., n, d)
        idx = idx.expand(*x.shape[:-2], *idx.shape[-2:]) if idx.dim() < x.dim() else idx.expand_as(x)
        return torch.gather(x, -1, idx)
    raise NotImplementedError(core)


def rope(x, positions, theta=None):
    d = x.shape[-1]
    th = (theta if theta is not None else lrpe_theta(d, "rotation")).to(x.dtype)
    ang = _pos(positions, x) * th
    c, s = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def cosformer_reweight(x, positions, max_length):
    ang = _pos(positions, x) * (math.pi / (2 * max_length))
    return torch.cat([x * torch.sin(ang), x * torch.cos(ang)], dim=-1)


def permuteformer_decay(num_heads):
    h = torch.arange(num_heads, dtype=torch.float64)
    return torch.sigmoid(3 * h / num_heads + 2)


def lrpe_d_decay(num_heads, layer_idx, num_layers):
    h = torch.arange(num_heads, dtype=torch.float64)
    return torch.exp(-(8 * h / num_heads) * (1 - layer_idx / num_layers))


def lrpe_d_theta(num_heads, head_dim):
    j = torch.arange(num_heads * head_dim, dtype=torch.float64)
    return (10000 ** (-2 * j / (num_heads * head_dim))).reshape(num_heads, head_dim)
