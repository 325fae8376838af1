import pytest

from lrpe_hf.nas.search import Constraints, EvolutionarySearch, EvolutionConfig, UnsatisfiableConstraintsError
from lrpe_hf.nas.search_space import PRESETS


class ToyCosts:
    """Monotone costs of an arch (stand-in for the super-network's exact counts in GA-only tests)."""

    def params(self, arch):
        return arch.embed_dim * sum(f + 4 * h for f, h in zip(arch.encoder.ffn_dims, arch.encoder.num_heads))

    def flops(self, arch):
        return 2 * self.params(arch) + 100 * arch.encoder.attention_types.count("softmax")

    def latency_ms(self, arch):
        return arch.encoder.depth * 1.0


def toy_fitness(arch):
    # Rewards size and softmax, so the constraint is binding.
    return arch.embed_dim / 64 + sum(arch.encoder.ffn_dims) / 800 + arch.encoder.attention_types.count("softmax") / 4


def make_search(max_params=20000, seed=0, iterations=5):
    space = PRESETS["small"]
    cfg = EvolutionConfig(population=20, parents=4, mutants=8, crossovers=8, iterations=iterations, seed=seed)
    return EvolutionarySearch(space, toy_fitness, ToyCosts(), Constraints(max_params=max_params), cfg, progress=False)


def test_ga_invariants():
    search = make_search()
    seen_populations = []
    orig_rank = search._rank

    def rank(population, it):
        seen_populations.append([list(g) for g in population])
        return orig_rank(population, it)

    search._rank = rank
    result = search.run()
    assert len(seen_populations) == 5
    for pop in seen_populations:
        assert len(pop) == 20  # 4 parents + 8 mutants + 8 crossovers
        for g in pop:  # every member feasible
            assert ToyCosts().params(search.space.gene_to_arch(g)) <= 20000
    # Elitism: the parents of generation t are the first members of generation t+1, unchanged.
    for prev, nxt in zip(seen_populations, seen_populations[1:]):
        ranked = sorted(prev, key=lambda g: -toy_fitness(search.space.gene_to_arch(g)))
        assert [search.space.canonical_gene(g) for g in nxt[:4]] == [search.space.canonical_gene(g) for g in ranked[:4]]
    best = [h["best_score"] for h in result.history]
    assert all(b2 >= b1 for b1, b2 in zip(best, best[1:]))
    assert best[-1] > best[0]  # the search improves on the random population here
    assert result.best_score == best[-1]
    assert result.best_costs["params"] <= 20000
    assert len(result.records) == len({r["arch"].__repr__() for r in result.records})


def test_search_is_reproducible_with_a_seed():
    a, b, c = make_search(seed=1).run(), make_search(seed=1).run(), make_search(seed=2).run()
    assert a.best_gene == b.best_gene and a.history == b.history
    assert [r["gene"] for r in a.records] == [r["gene"] for r in b.records]
    assert [r["gene"] for r in a.records] != [r["gene"] for r in c.records]


def test_unsatisfiable_constraints_raise_instead_of_looping():
    with pytest.raises(UnsatisfiableConstraintsError, match="even the smallest"):
        make_search(max_params=10).run()
    # Feasible but so rare that bounded rejection sampling gives up with a clear message.
    search = make_search(max_params=ToyCosts().params(PRESETS["small"].smallest_arch()) + 1)
    search.config.max_draws_per_member = 3
    with pytest.raises(UnsatisfiableConstraintsError, match="too rare"):
        search.run()


def test_bad_evolution_settings():
    with pytest.raises(ValueError, match="population"):
        EvolutionConfig(population=10, parents=4, mutants=8, crossovers=8)
    with pytest.raises(ValueError, match="mutation_prob"):
        EvolutionConfig(mutation_prob=1.5)
    with pytest.raises(ValueError, match="max_params"):
        Constraints(max_params=-1)
