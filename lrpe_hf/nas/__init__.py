"""Architecture search over mixed-attention transformers (arXiv 2207.13955): search spaces, the weight-sharing
super-network, evolutionary search under parameter / FLOPs / latency constraints, export of a sub-network."""

from .flops import model_flops
from .search import (
    Constraints,
    EvolutionarySearch,
    EvolutionConfig,
    SearchResult,
    UnsatisfiableConstraintsError,
    pareto_front,
    write_search_outputs,
)
from .search_space import ATTENTION_TYPES, PRESETS, Arch, LayerStack, SearchSpace, StackSpace, get_search_space, load_arch
from .supernet import (
    MixFormerSuperNetwork,
    arch_to_config,
    config_to_arch,
    count_parameters,
    evaluate_arch,
    make_sampling_callback,
)
from .train import train_supernet

__all__ = [
    "ATTENTION_TYPES",
    "PRESETS",
    "Arch",
    "LayerStack",
    "SearchSpace",
    "StackSpace",
    "get_search_space",
    "load_arch",
    "MixFormerSuperNetwork",
    "arch_to_config",
    "config_to_arch",
    "count_parameters",
    "evaluate_arch",
    "make_sampling_callback",
    "train_supernet",
    "Constraints",
    "EvolutionarySearch",
    "EvolutionConfig",
    "SearchResult",
    "UnsatisfiableConstraintsError",
    "pareto_front",
    "write_search_outputs",
    "model_flops",
]
