"""Evolutionary search over a mixed-attention search space (HAT's genetic algorithm, as used by mixFormer).

Defaults are the paper's (arXiv 2207.13955, evolutionary search): 30 iterations of a population of 125 = 25 parents (the elite, kept
unchanged) + 50 mutants (each gene resampled uniformly with probability 0.3; parent drawn with replacement)
+ 50 uniform crossovers of two distinct parents. Every member satisfies the constraints: infeasible initial
draws and children are redrawn, up to a bound, after which the search raises instead of looping.

Fitness is any ``fitness_fn(arch) -> float`` (the super-network's validation accuracy of the slice for
classification, higher is better; its validation loss for translation, lower is better). Costs come from a
cost model with ``params(arch)``, ``flops(arch)`` and ``latency_ms(arch)`` (see :class:`SupernetCostModel`).
The result is the best gene of the last scored population; every evaluated architecture is recorded.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .search_space import Arch, SearchSpace


@dataclass
class EvolutionConfig:
    """Genetic-algorithm settings (defaults: HAT / mixFormer)."""

    population: int = 125
    parents: int = 25
    mutants: int = 50
    crossovers: int = 50
    mutation_prob: float = 0.3
    iterations: int = 30
    seed: int = 0
    # Bound on rejection sampling: at most this many draws per feasible member needed (x population).
    max_draws_per_member: int = 200

    def __post_init__(self):
        for name in ("population", "parents", "iterations", "max_draws_per_member"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("mutants", "crossovers"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.parents + self.mutants + self.crossovers != self.population:
            raise ValueError(
                f"population ({self.population}) must equal parents + mutants + crossovers "
                f"({self.parents} + {self.mutants} + {self.crossovers})"
            )
        if self.crossovers and self.parents < 2:
            raise ValueError("crossover needs at least 2 parents")
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ValueError(f"mutation_prob must lie in [0, 1], got {self.mutation_prob}")

    @classmethod
    def for_space(cls, space: SearchSpace, **overrides) -> "EvolutionConfig":
        values = dict(space.search_defaults)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Constraints:
    """Upper bounds; ``None`` means unconstrained. Params are exact, FLOPs analytic, latency measured."""

    max_params: float | None = None
    max_flops: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value}")

    def active(self) -> list[str]:
        return [n for n, v in (("params", self.max_params), ("flops", self.max_flops), ("latency_ms", self.max_latency_ms)) if v is not None]

    def limit(self, name: str) -> float | None:
        return {"params": self.max_params, "flops": self.max_flops, "latency_ms": self.max_latency_ms}[name]


class UnsatisfiableConstraintsError(ValueError):
    """No architecture of the search space meets the constraints (or feasible ones are too rare to find)."""


@dataclass
class SearchResult:
    best_arch: Arch
    best_gene: list
    best_score: float
    best_costs: dict
    history: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    final_population: list[list] = field(default_factory=list)


class EvolutionarySearch:
    """HAT's evolutionary search.

    Args:
        space: the search space.
        fitness_fn: ``arch -> float``; called once per distinct architecture (results are cached).
        cost_model: object with ``params(arch)``, ``flops(arch)``, ``latency_ms(arch)`` (only the constrained
            ones are called during sampling; params and FLOPs are also recorded for every evaluated arch).
        constraints: the bounds.
        config: GA settings.
        higher_is_better: True for accuracy, False for loss.
        progress: show a tqdm bar per generation.
    """

    def __init__(self, space: SearchSpace, fitness_fn: Callable[[Arch], float], cost_model, constraints: Constraints | None = None,
                 config: EvolutionConfig | None = None, higher_is_better: bool = True, progress: bool = True):
        self.space = space
        self.fitness_fn = fitness_fn
        self.cost_model = cost_model
        self.constraints = constraints or Constraints()
        self.config = config or EvolutionConfig()
        self.higher_is_better = higher_is_better
        self.progress = progress
        self.rng = random.Random(self.config.seed)
        self._scores: dict[str, float] = {}
        self._costs: dict[str, dict] = {}
        self.records: list[dict] = []

    # ------------------------------------------------------------------------------------------- costs
    def costs(self, arch: Arch, names=None) -> dict:
        key = arch.key()
        cached = self._costs.setdefault(key, {})
        for name in names or ("params", "flops"):
            if name not in cached:
                cached[name] = float(getattr(self.cost_model, name)(arch))
        return cached

    def violation(self, arch: Arch) -> str | None:
        """None if feasible, else a text naming the first violated bound. Cheap costs are checked first."""
        for name in self.constraints.active():
            value = self.costs(arch, [name])[name]
            limit = self.constraints.limit(name)
            if value > limit:
                return f"{name}={value:.4g} > {limit:.4g}"
        return None

    def is_feasible(self, arch: Arch) -> bool:
        return self.violation(arch) is None

    def check_satisfiable(self) -> None:
        """Raise :class:`UnsatisfiableConstraintsError` when even the cheapest architectures break a bound.

        Costs grow with every size, so the cheapest architecture of each attention type (all sizes at their
        minimum) bounds what any architecture can reach; if each of them violates a constraint, nothing fits.
        """
        if not self.constraints.active():
            return
        reasons = []
        types = sorted({t for s in self.space.stacks() for t in s.attention_types})
        for attn in types:
            try:
                arch = self.space.smallest_arch(attn)
            except ValueError:  # the type is not a choice of every stack
                continue
            why = self.violation(arch)
            if why is None:
                return
            reasons.append(f"all-{attn}: {why}")
        if not reasons:
            return
        raise UnsatisfiableConstraintsError(
            "no architecture of search space "
            f"{self.space.name!r} meets the constraints {self._constraint_text()}: even the smallest ones fail "
            f"({'; '.join(reasons)}). Relax the constraints or use a smaller search space."
        )

    def _constraint_text(self) -> str:
        return ", ".join(f"max_{n}={self.constraints.limit(n):.4g}" for n in self.constraints.active()) or "none"

    # ------------------------------------------------------------------------------------- GA operators
    def _draw_feasible(self, make: Callable[[], list], count: int, what: str) -> list[list]:
        out: list[list] = []
        budget = self.config.max_draws_per_member * max(count, 1)
        draws = 0
        while len(out) < count:
            if draws >= budget:
                raise UnsatisfiableConstraintsError(
                    f"could only draw {len(out)} of {count} feasible {what} in {draws} tries under "
                    f"{self._constraint_text()}: feasible architectures are too rare in search space "
                    f"{self.space.name!r}. Relax the constraints (or raise max_draws_per_member)."
                )
            draws += 1
            gene = make()
            if self.is_feasible(self.space.gene_to_arch(gene)):
                out.append(gene)
        return out

    def random_gene(self) -> list:
        return self.space.sample_gene(self.rng)

    def mutate(self, gene: list) -> list:
        choices = self.space.gene_choices()
        return [self.rng.choice(c) if self.rng.random() < self.config.mutation_prob else g for g, c in zip(gene, choices)]

    def crossover(self, a: list, b: list) -> list:
        return [x if self.rng.random() < 0.5 else y for x, y in zip(a, b)]

    def make_mutants(self, parents: list[list]) -> list[list]:
        return self._draw_feasible(lambda: self.mutate(self.rng.choice(parents)), self.config.mutants, "mutants")

    def make_crossovers(self, parents: list[list]) -> list[list]:
        def child():
            a, b = self.rng.sample(range(len(parents)), 2)
            return self.crossover(parents[a], parents[b])

        return self._draw_feasible(child, self.config.crossovers, "crossovers")

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, gene: list, iteration: int) -> float:
        arch = self.space.gene_to_arch(gene)
        key = arch.key()
        if key not in self._scores:
            value = float(self.fitness_fn(arch))
            if math.isnan(value):
                raise ValueError(f"fitness of {arch.describe()} is NaN")
            self._scores[key] = value
            costs = self.costs(arch, ["params", "flops"] + self.constraints.active())
            self.records.append({
                "iteration": iteration,
                "score": value,
                **costs,
                "gene": self.space.canonical_gene(gene),
                "arch": arch.to_dict(),
            })
        return self._scores[key]

    def _rank(self, population: list[list], iteration: int) -> list[tuple[float, list]]:
        scored = [(self.score(g, iteration), g) for g in population]
        # Stable sort: ties keep population order (parents first), so the elite is deterministic.
        return sorted(scored, key=lambda t: -t[0] if self.higher_is_better else t[0])

    # ---------------------------------------------------------------------------------------------- run
    def run(self) -> SearchResult:
        from tqdm.auto import tqdm

        cfg = self.config
        self.check_satisfiable()
        population = self._draw_feasible(self.random_gene, cfg.population, "initial architectures")
        history: list[dict] = []
        ranked: list[tuple[float, list]] = []
        bar = tqdm(range(cfg.iterations), desc="evolution", unit="gen", disable=not self.progress)
        for it in bar:
            ranked = self._rank(population, it)
            parents = [g for _, g in ranked[: cfg.parents]]
            scores = [s for s, _ in ranked]
            best_score, best_gene = ranked[0]
            history.append({
                "iteration": it,
                "best_score": best_score,
                "mean_score": sum(scores) / len(scores),
                "population": len(population),
                "evaluated_total": len(self._scores),
                "best_gene": self.space.canonical_gene(best_gene),
            })
            bar.set_postfix(best=f"{best_score:.4g}", evaluated=len(self._scores))
            if it == cfg.iterations - 1:
                break  # children of the last iteration would never be scored
            population = parents + self.make_mutants(parents) + self.make_crossovers(parents)
        best_score, best_gene = ranked[0]
        best_arch = self.space.gene_to_arch(best_gene)
        return SearchResult(
            best_arch=best_arch,
            best_gene=self.space.canonical_gene(best_gene),
            best_score=best_score,
            best_costs=self.costs(best_arch, ["params", "flops"] + self.constraints.active()),
            history=history,
            records=list(self.records),
            final_population=[self.space.canonical_gene(g) for _, g in ranked],
        )


# --------------------------------------------------------------------------------------------- outputs
def pareto_front(records: list[dict], higher_is_better: bool = True, cost: str = "flops") -> list[dict]:
    """Records not dominated by any other (lower-or-equal cost and better-or-equal score, one strictly)."""
    sign = 1.0 if higher_is_better else -1.0
    pts = sorted(records, key=lambda r: (r[cost], -sign * r["score"]))
    front, best = [], -math.inf
    for r in pts:
        if sign * r["score"] > best:
            front.append(r)
            best = sign * r["score"]
    return front


def write_search_outputs(result: SearchResult, output_dir, space: SearchSpace, constraints: Constraints,
                         config: EvolutionConfig, higher_is_better: bool, score_name: str, extra: dict | None = None) -> dict:
    """Write ``evaluated.jsonl`` (every evaluated arch), ``history.json``, ``pareto.png`` and ``best.json``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "evaluated.jsonl", "w") as f:
        for r in result.records:
            f.write(json.dumps(r) + "\n")
    (out / "history.json").write_text(json.dumps(result.history, indent=1))
    front = pareto_front(result.records, higher_is_better)
    best = {
        "arch": result.best_arch.to_dict(),
        "gene": result.best_gene,
        "score": result.best_score,
        "score_name": score_name,
        "higher_is_better": higher_is_better,
        **result.best_costs,
        "search_space": space.name,
        "constraints": asdict(constraints),
        "evolution": asdict(config),
        "description": result.best_arch.describe(),
        **(extra or {}),
    }
    (out / "best.json").write_text(json.dumps(best, indent=1))
    plot_pareto(result.records, front, out / "pareto.png", score_name, best=best, limit=constraints.max_flops)
    return best


def plot_pareto(records, front, path, score_name: str, best: dict | None = None, limit: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter([r["flops"] / 1e6 for r in records], [r["score"] for r in records], s=10, alpha=0.35, label="evaluated")
    ax.plot([r["flops"] / 1e6 for r in front], [r["score"] for r in front], "o-", color="C3", ms=4, label="Pareto front")
    if best is not None:
        ax.scatter([best["flops"] / 1e6], [best["score"]], marker="*", s=160, color="C2", zorder=5, label="best (constrained)")
    if limit is not None:
        ax.axvline(limit / 1e6, ls="--", color="grey", lw=1, label="FLOPs limit")
    ax.set_xlabel("MFLOPs per example (analytic)")
    ax.set_ylabel(score_name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
