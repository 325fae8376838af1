import itertools
import math

import pytest
import torch

from lrpe_hf.ops import feature_map, linear_attention
from lrpe_hf.ops.lrpe import (
    LRPE_CORES,
    LRPE_P_MATRICES,
    apply_p,
    cosformer_reweight,
    dct_matrix,
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
    rope,
)

VALID = [(c, p) for c, p in itertools.product(LRPE_CORES, LRPE_P_MATRICES) if p != "fft" or c == "unitary"]


def _params(d, gen):
    return {"householder_v": make_householder_vector(d, gen).double(), "permutation": make_permutation(d, gen)}


@pytest.mark.parametrize("core,p", VALID)
@pytest.mark.parametrize("d", [6, 7, 8])
def test_scores_depend_only_on_offset(core, p, d):
    gen = torch.Generator().manual_seed(d)
    q, k = torch.randn(5, d, dtype=torch.float64, generator=gen), torch.randn(5, d, dtype=torch.float64, generator=gen)
    kw = _params(d, gen)
    pos = torch.arange(5)
    base = lrpe(q, pos, core=core, p=p, **kw) @ lrpe(k, pos, core=core, p=p, **kw).T
    for shift in (1, 7, 300):
        shifted = lrpe(q, pos + shift, core=core, p=p, **kw) @ lrpe(k, pos + shift, core=core, p=p, **kw).T
        torch.testing.assert_close(shifted, base, rtol=0, atol=1e-11)
    assert lrpe(q, pos, core=core, p=p, **kw).shape[-1] == lrpe_output_dim(core, p, d)


@pytest.mark.parametrize("core,p", [cp for cp in VALID if cp[1] != "fft"])
def test_norm_preserved_and_position_zero_is_p_only(core, p):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 9, 8, dtype=torch.float64, generator=gen)
    kw = _params(8, gen)
    y = lrpe(x, torch.arange(9), core=core, p=p, **kw)
    # every P is orthogonal to float64 precision (the Householder vector is normalised exactly, no epsilon)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=1e-12)
    px = apply_p(x, p, kw["householder_v"])
    y0 = lrpe(x[:, :1], torch.zeros(1, dtype=torch.long), core=core, p=p, **kw)
    expected = torch.cat([px[:, :1], torch.zeros_like(px[:, :1])], -1) if core == "unitary" else px[:, :1]
    torch.testing.assert_close(y0, expected)


def test_unitary_score_formula_and_symmetry():
    gen = torch.Generator().manual_seed(4)
    d = 6
    q, k = torch.randn(d, dtype=torch.float64, generator=gen), torch.randn(d, dtype=torch.float64, generator=gen)
    v = make_householder_vector(d, gen).double()
    theta = lrpe_theta(d, "unitary", dtype=torch.float64)
    pq, pk = apply_p(q, "householder", v), apply_p(k, "householder", v)
    for s, t in [(2, 5), (5, 2), (0, 9)]:
        fq = lrpe(q[None], torch.tensor([s]), core="unitary", p="householder", householder_v=v)
        fk = lrpe(k[None], torch.tensor([t]), core="unitary", p="householder", householder_v=v)
        expected = (pq * pk * torch.cos(theta * (t - s))).sum()
        torch.testing.assert_close((fq @ fk.T)[0, 0], expected)
    # symmetric in the direction of the offset (unitary), not for rotation
    def score(core, s, t):
        return (lrpe(q[None], torch.tensor([s]), core=core) @ lrpe(k[None], torch.tensor([t]), core=core).T).item()

    assert score("unitary", 1, 4) == pytest.approx(score("unitary", 4, 1), abs=1e-12)
    assert abs(score("rotation", 1, 4) - score("rotation", 4, 1)) > 1e-3


def test_oddeven_rotation_equals_half_split_rope():
    gen = torch.Generator().manual_seed(5)
    q, k = torch.randn(7, 8, dtype=torch.float64, generator=gen), torch.randn(7, 8, dtype=torch.float64, generator=gen)
    pos = torch.arange(7)
    a = lrpe(q, pos, core="rotation", p="oddeven") @ lrpe(k, pos, core="rotation", p="oddeven").T
    b = rope(q, pos) @ rope(k, pos).T
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_components():
    c = dct_matrix(8, dtype=torch.float64)
    torch.testing.assert_close(c @ c.T, torch.eye(8, dtype=torch.float64))
    assert c[1, 0].item() == pytest.approx(math.sqrt(2 / 8) * math.cos(math.pi / 16))
    x = torch.randn(3, 8, dtype=torch.float64)
    v = torch.randn(8, dtype=torch.float64)
    # H^2 = I up to the authors' v / (|v| + 1e-6) normalisation; a learned v is renormalised on every call
    torch.testing.assert_close(apply_p(apply_p(x, "householder", v), "householder", v), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(apply_p(x, "householder", 5 * v), apply_p(x, "householder", v), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(apply_p(x, "householder", v), x)
    # permutation: position s gathers at pi applied s times
    perm = torch.tensor([1, 2, 3, 0])
    y = lrpe(torch.arange(4.0)[None].expand(3, 4), torch.tensor([0, 1, 2]), core="permutation", permutation=perm)
    assert y.tolist() == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1]]


def test_mixed_rotation_leaves_upper_channels_alone():
    x = torch.randn(4, 64, dtype=torch.float64)
    y = lrpe(x, torch.arange(4), core="mixed_rotation")
    assert num_frequencies("mixed_rotation", "identity", 64) == 16
    torch.testing.assert_close(y[:, 32:], x[:, 32:])
    assert not torch.allclose(y[1:, :32], x[1:, :32])


def test_worked_numeric_example():
    """Reference values (independent NumPy port of the authors' forward path)."""
    h, n, d = 2, 6, 8
    i = torch.arange(h * n * d, dtype=torch.float64).reshape(h, n, d)
    q = feature_map(torch.sin(0.37 * i + 0.1), "1+elu")
    k = feature_map(torch.cos(0.23 * i - 0.2), "1+elu")
    v = torch.sin(0.11 * i) + 0.5 * torch.cos(0.07 * i)
    pos = torch.arange(n)
    rot = lrpe(q, pos, core="rotation")
    torch.testing.assert_close(rot[0, 3, :4], torch.tensor([-1.567607, -0.862115, 0.554749, 0.736258], dtype=torch.float64), rtol=0, atol=1e-6)
    uni = lrpe(q, pos, core="unitary")
    torch.testing.assert_close(uni[0, 3, :4], torch.tensor([-1.415944, 1.026708, 0.747215, 0.539432], dtype=torch.float64), rtol=0, atol=1e-6)
    out = linear_attention(rot, lrpe(k, pos, core="rotation"), v, causal=True, algorithm="parallel")
    out = torch.nn.functional.layer_norm(out.transpose(0, 1).reshape(n, h * d), (h * d,), eps=1e-5)
    torch.testing.assert_close(out[-1, :4], torch.tensor([-0.406927, -0.572699, -0.735527, -0.894010], dtype=torch.float64), rtol=0, atol=1e-6)


def test_2d_shared_depends_on_sum_of_offsets_separable_does_not():
    gen = torch.Generator().manual_seed(6)
    q, k = torch.randn(1, 8, dtype=torch.float64, generator=gen), torch.randn(1, 8, dtype=torch.float64, generator=gen)

    def score(mode, dr, dc):
        r0, c0 = torch.tensor([3]), torch.tensor([3])
        fq = lrpe_2d(q, r0, c0, core="unitary", mode=mode)
        fk = lrpe_2d(k, r0 + dr, c0 + dc, core="unitary", mode=mode)
        return (fq @ fk.T).item()

    assert score("shared", 2, -2) == pytest.approx(score("shared", 0, 0), abs=1e-12)
    assert abs(score("separable", 2, -2) - score("separable", 0, 0)) > 1e-3
    # separable is still relative: shifting both tokens on both axes keeps the score
    fq = lrpe_2d(q, torch.tensor([1]), torch.tensor([2]), core="rotation", mode="separable")
    fk = lrpe_2d(k, torch.tensor([4]), torch.tensor([0]), core="rotation", mode="separable")
    fq2 = lrpe_2d(q, torch.tensor([6]), torch.tensor([9]), core="rotation", mode="separable")
    fk2 = lrpe_2d(k, torch.tensor([9]), torch.tensor([7]), core="rotation", mode="separable")
    assert (fq @ fk.T).item() == pytest.approx((fq2 @ fk2.T).item(), abs=1e-12)


def test_baselines():
    gen = torch.Generator().manual_seed(7)
    q, k = torch.rand(5, 4, dtype=torch.float64, generator=gen), torch.rand(5, 4, dtype=torch.float64, generator=gen)
    pos = torch.arange(1, 6)
    s = cosformer_reweight(q, pos, 16) @ cosformer_reweight(k, pos, 16).T
    expected = (q @ k.T) * torch.cos(math.pi * (pos[:, None] - pos[None, :]) / 32)
    torch.testing.assert_close(s, expected)
    r = permuteformer_decay(8)
    assert 0.87 < r[0] < r[-1] < 0.995
    lam = lrpe_d_decay(4, 0, 2)
    assert lam[0] == 1.0 and torch.all(lam[1:] < 1)
    assert lrpe_d_theta(2, 3).shape == (2, 3)


def test_per_head_theta_and_batched_positions():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)  # (batch, heads, n, d)
    theta = lrpe_d_theta(3, 4).double()
    pos = torch.stack([torch.arange(5), torch.arange(2, 7)])[:, None]  # (batch, 1, n)
    y = lrpe(x, pos, core="unitary", theta=theta)
    assert y.shape == (2, 3, 5, 8)
    y1 = lrpe(x[1, 2], torch.arange(2, 7), core="unitary", theta=theta[2])
    torch.testing.assert_close(y[1, 2], y1)


def test_permutation_table_limit_and_errors():
    perm = make_permutation(6, torch.Generator().manual_seed(0))
    table = permutation_table(perm, 10)
    x = torch.randn(4, 6)
    torch.testing.assert_close(
        lrpe(x, torch.arange(4), core="permutation", permutation_table=table),
        lrpe(x, torch.arange(4), core="permutation", permutation=perm),
    )
    with pytest.raises(ValueError, match="beyond the permutation table"):
        lrpe(x, torch.arange(8, 12), core="permutation", permutation_table=table)
    with pytest.raises(ValueError, match="unknown LRPE core 'spiral'.*rotation"):
        lrpe(x, torch.arange(4), core="spiral")
    with pytest.raises(ValueError, match="unknown LRPE P matrix 'qr'.*householder"):
        lrpe(x, torch.arange(4), core="rotation", p="qr")
    with pytest.raises(ValueError, match="needs core='unitary'"):
        lrpe(x, torch.arange(4), core="rotation", p="fft")
    with pytest.raises(ValueError, match="integer"):
        lrpe(x, torch.arange(4.0), core="rotation")
    with pytest.raises(ValueError, match="even head dim"):
        rope(torch.randn(3, 5), torch.arange(3))
    with pytest.raises(ValueError, match="needs householder_v"):
        lrpe(x, torch.arange(4), core="rotation", p="householder")
    with pytest.raises(ValueError, match="length l"):
        lrpe_theta(6, "rotation", "b")


@pytest.mark.parametrize("dim", [4, 16, 64])
def test_householder_p_is_an_exact_reflection(dim):
    """P = I - 2 v v^T / |v|^2 must be orthogonal and symmetric to float64 precision (no epsilon in the norm),
    for short and long v alike."""
    from lrpe_hf.ops.lrpe import apply_p

    g = torch.Generator().manual_seed(dim)
    for scale in (1e-3, 1.0, 1e3):
        v = scale * torch.randn(dim, generator=g, dtype=torch.float64)
        p = apply_p(torch.eye(dim, dtype=torch.float64), "householder", v)  # rows are P e_i = columns of P
        torch.testing.assert_close(p @ p.T, torch.eye(dim, dtype=torch.float64), atol=1e-12, rtol=0)
        torch.testing.assert_close(p, p.T, atol=1e-12, rtol=0)
        u = v / v.norm()
        torch.testing.assert_close(p, torch.eye(dim, dtype=torch.float64) - 2 * torch.outer(u, u), atol=1e-12, rtol=0)
