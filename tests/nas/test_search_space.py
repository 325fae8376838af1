import random

import pytest

from lrpe_hf.nas.search_space import PRESETS, Arch, LayerStack, get_search_space, load_arch


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_sampler_is_reproducible_and_inside_space(name):
    space = get_search_space(name)
    a = [space.sample_gene(step) for step in range(20)]
    b = [space.sample_gene(step) for step in range(20)]
    assert a == b
    assert len({tuple(g) for g in a}) > 1  # different steps give different sub-networks
    for g in a:
        assert len(g) == space.gene_length
        space.validate_arch(space.gene_to_arch(g))


def test_cifar_gene_layout_matches_paper():
    space = PRESETS["cifar10"]
    assert space.gene_length == 44  # 2 + 3 * 14
    assert f"{space.size():.3g}" == "4.28e+23"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_gene_arch_roundtrip_ignores_inactive_layers(name):
    space = get_search_space(name)
    rng = random.Random(0)
    for _ in range(30):
        gene = space.sample_gene(rng)
        arch = space.gene_to_arch(gene)
        canon = space.arch_to_gene(arch)
        assert space.gene_to_arch(canon) == arch
        assert space.canonical_gene(canon) == canon
        assert Arch.from_dict(arch.to_dict()) == arch
        assert load_arch(arch.to_dict(), space) == arch


def test_inactive_genes_do_not_change_the_arch():
    space = PRESETS["small"]
    gene = space.sample_gene(3)
    gene[1] = 2  # depth 2 of max 4: slots 2 and 3 are inactive
    other = list(gene)
    L = space.encoder.max_depth
    other[2 + 3] = 192 if other[2 + 3] != 192 else 64
    other[2 + 2 * L + 3] = "softmax" if other[2 + 2 * L + 3] != "softmax" else "lrpe"
    assert space.gene_to_arch(gene) == space.gene_to_arch(other)


def test_bad_archs_and_genes_raise_clear_errors():
    space = PRESETS["small"]
    good = space.sample_arch(0)
    with pytest.raises(ValueError, match="embed_dim=40 is outside"):
        space.validate_arch(Arch(40, good.encoder))
    with pytest.raises(ValueError, match="ffn_dims has 1 entries but depth is 2"):
        space.validate_arch(Arch(32, LayerStack(2, (64,), (2, 2), ("softmax", "softmax"))))
    with pytest.raises(ValueError, match="attention_type.*'flash'.*outside"):
        space.validate_arch(Arch(32, LayerStack(2, (64, 64), (2, 2), ("softmax", "flash"))))
    with pytest.raises(ValueError, match="depth=7 is outside"):
        space.validate_arch(Arch(32, LayerStack(7, (64,) * 7, (2,) * 7, ("softmax",) * 7)))
    with pytest.raises(ValueError, match="gene has 3 entries"):
        space.gene_to_arch([32, 2, 64])
    with pytest.raises(ValueError, match="unknown search space"):
        get_search_space("nope")
