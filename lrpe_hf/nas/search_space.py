"""Search spaces of the mixed-attention architecture search (arXiv 2207.13955) and their gene encoding.

A search space lists the choices of every searched dimension:

* ``embed_dims``: the model width (global, all layers);
* per layer stack (the encoder, and for translation also the decoder): ``depths``, per-layer ``ffn_dims``,
  per-layer ``num_heads`` and per-layer ``attention_types`` (``"softmax"``, ``"softmax_relative"``,
  ``"cosformer"``, ``"lrpe"``);
* the head-width convention: a fixed ``head_dim`` (AutoFormer / the paper's CIFAR space: q/k/v width =
  64 x heads, independent of the embedding width). HAT's translation spaces fix the total q/k/v width instead
  (head_dim = 512 / heads); ``mixformer`` has one head_dim per model, so our translation presets use the
  CIFAR convention.

An architecture is a :class:`Arch` (active layers only). Its **gene** is the fixed-length list the
evolutionary search works on (HAT / mixFormer layout)::

    [embed, depth, ffn x L, heads x L, attn x L]                      (one stack, L = max depth)
    [embed, enc_depth, enc_ffn x Le, enc_heads x Le, enc_attn x Le,
            dec_depth, dec_ffn x Ld, dec_heads x Ld, dec_attn x Ld]  (encoder-decoder)

Genes of layers >= depth stay in the gene but are inactive; a mutation that raises the depth activates them.
Values are stored as they are (ints for sizes, strings for attention types), so genes are readable JSON.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..layers.attention import ATTENTION_VARIANTS

#: The attention operations a search space chooses from: the papers' variants (an attention type and an encoding each)
ATTENTION_TYPES = tuple(ATTENTION_VARIANTS)
TASKS = ("image-classification", "translation")


def _check_choices(where: str, values: Sequence, positive_int: bool = True) -> tuple:
    values = tuple(values)
    if not values:
        raise ValueError(f"{where} must list at least one choice")
    if len(set(values)) != len(values):
        raise ValueError(f"{where} has duplicate choices: {list(values)}")
    if positive_int and any((not isinstance(v, int)) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"{where} must be positive ints, got {list(values)}")
    return values


@dataclass(frozen=True)
class StackSpace:
    """Choices of one layer stack (encoder or decoder)."""

    depths: tuple[int, ...]
    ffn_dims: tuple[int, ...]
    num_heads: tuple[int, ...]
    attention_types: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "depths", _check_choices("depths", self.depths))
        object.__setattr__(self, "ffn_dims", _check_choices("ffn_dims", self.ffn_dims))
        object.__setattr__(self, "num_heads", _check_choices("num_heads", self.num_heads))
        attn = _check_choices("attention_types", self.attention_types, positive_int=False)
        bad = [a for a in attn if a not in ATTENTION_TYPES]
        if bad:
            raise ValueError(f"attention_types {bad} are not supported; choose from {ATTENTION_TYPES}")
        object.__setattr__(self, "attention_types", attn)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def gene_length(self) -> int:
        return 1 + 3 * self.max_depth

    def size(self) -> int:
        per_layer = len(self.ffn_dims) * len(self.num_heads) * len(self.attention_types)
        return sum(per_layer**d for d in self.depths)


@dataclass(frozen=True)
class LayerStack:
    """The active layers of one stack of an architecture."""

    depth: int
    ffn_dims: tuple[int, ...]
    num_heads: tuple[int, ...]
    attention_types: tuple[str, ...]

    def __post_init__(self):
        for name in ("ffn_dims", "num_heads", "attention_types"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class Arch:
    """One architecture of a search space (active layers only). ``decoder`` is None for encoder-only tasks."""

    embed_dim: int
    encoder: LayerStack
    decoder: LayerStack | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Arch":
        if not isinstance(data, dict) or "embed_dim" not in data or "encoder" not in data:
            raise ValueError(f"an architecture dict needs 'embed_dim' and 'encoder', got {data!r}")
        dec = data.get("decoder")
        return cls(
            embed_dim=int(data["embed_dim"]),
            encoder=LayerStack(**data["encoder"]),
            decoder=None if dec is None else LayerStack(**dec),
        )

    def key(self) -> str:
        """A canonical string (for caches and de-duplication)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        def stack(s: LayerStack) -> str:
            return " ".join(f"{a}/{h}h/{f}" for a, h, f in zip(s.attention_types, s.num_heads, s.ffn_dims))

        text = f"d={self.embed_dim} enc[{stack(self.encoder)}]"
        if self.decoder is not None:
            text += f" dec[{stack(self.decoder)}]"
        return text


@dataclass(frozen=True)
class SearchSpace:
    """A mixed-attention search space (see the module docstring)."""

    name: str
    task: str
    embed_dims: tuple[int, ...]
    encoder: StackSpace
    decoder: StackSpace | None = None
    head_dim: int = 64
    description: str = ""
    # Evolutionary-search defaults that suit this space (population etc.); see search.EvolutionConfig.
    search_defaults: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} is not supported; choose one of {TASKS}")
        object.__setattr__(self, "embed_dims", _check_choices("embed_dims", self.embed_dims))
        if isinstance(self.head_dim, bool) or not isinstance(self.head_dim, int) or self.head_dim < 1:
            raise ValueError(f"head_dim must be a positive int, got {self.head_dim!r}")
        if self.task == "translation" and self.decoder is None:
            raise ValueError("a translation search space needs a decoder stack")
        if self.task == "image-classification" and self.decoder is not None:
            raise ValueError("an image-classification search space has no decoder stack")

    # ----------------------------------------------------------------------------------------------- basics
    def stacks(self) -> list[StackSpace]:
        return [self.encoder] + ([self.decoder] if self.decoder is not None else [])

    @property
    def gene_length(self) -> int:
        return 1 + sum(s.gene_length for s in self.stacks())

    def size(self) -> int:
        """Number of distinct architectures."""
        total = len(self.embed_dims)
        for s in self.stacks():
            total *= s.size()
        return total

    def gene_choices(self) -> list[tuple]:
        """The choice list of every gene position (what mutation resamples from)."""
        out: list[tuple] = [self.embed_dims]
        for s in self.stacks():
            out.append(s.depths)
            out += [s.ffn_dims] * s.max_depth + [s.num_heads] * s.max_depth + [s.attention_types] * s.max_depth
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def structure(self) -> dict:
        """What defines the architectures (two spaces with equal structures hold the same weights)."""
        data = self.to_dict()
        for key in ("name", "description", "search_defaults"):
            data.pop(key)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        data = dict(data)
        data["encoder"] = StackSpace(**data["encoder"])
        if data.get("decoder") is not None:
            data["decoder"] = StackSpace(**data["decoder"])
        return cls(**data)

    # ----------------------------------------------------------------------------------------- validation
    def validate_arch(self, arch: Arch) -> Arch:
        """Raise ValueError naming the first field outside the space or a list whose length disagrees."""
        if arch.embed_dim not in self.embed_dims:
            raise ValueError(f"embed_dim={arch.embed_dim} is outside the search space {self.name!r}; choose from {list(self.embed_dims)}")
        pairs = [("encoder", arch.encoder, self.encoder)]
        if (arch.decoder is None) != (self.decoder is None):
            raise ValueError(
                f"search space {self.name!r} is {'encoder-decoder' if self.decoder else 'encoder-only'}, "
                f"the architecture {'has' if arch.decoder else 'has no'} decoder"
            )
        if self.decoder is not None:
            pairs.append(("decoder", arch.decoder, self.decoder))
        for where, stack, space in pairs:
            if stack.depth not in space.depths:
                raise ValueError(f"{where} depth={stack.depth} is outside the search space; choose from {list(space.depths)}")
            for name, choices in (("ffn_dims", space.ffn_dims), ("num_heads", space.num_heads), ("attention_types", space.attention_types)):
                values = getattr(stack, name)
                if len(values) != stack.depth:
                    raise ValueError(f"{where} {name} has {len(values)} entries but depth is {stack.depth}")
                for i, v in enumerate(values):
                    if v not in choices:
                        raise ValueError(f"{where} layer {i} {name[:-1] if name.endswith('s') else name}={v!r} is outside the search space; choose from {list(choices)}")
        return arch

    def validate_gene(self, gene: Sequence) -> list:
        gene = list(gene)
        if len(gene) != self.gene_length:
            raise ValueError(f"gene has {len(gene)} entries, search space {self.name!r} needs {self.gene_length}")
        for i, (v, choices) in enumerate(zip(gene, self.gene_choices())):
            if v not in choices:
                raise ValueError(f"gene position {i} = {v!r} is outside the search space; choose from {list(choices)}")
        return gene

    # --------------------------------------------------------------------------------- gene <-> arch
    def gene_to_arch(self, gene: Sequence) -> Arch:
        gene = self.validate_gene(gene)
        embed, pos = gene[0], 1
        stacks = []
        for s in self.stacks():
            L = s.max_depth
            depth = gene[pos]
            ffn = gene[pos + 1 : pos + 1 + L]
            heads = gene[pos + 1 + L : pos + 1 + 2 * L]
            attn = gene[pos + 1 + 2 * L : pos + 1 + 3 * L]
            stacks.append(LayerStack(depth, tuple(ffn[:depth]), tuple(heads[:depth]), tuple(attn[:depth])))
            pos += s.gene_length
        return Arch(embed, stacks[0], stacks[1] if len(stacks) > 1 else None)

    def arch_to_gene(self, arch: Arch) -> list:
        """Gene of an architecture; inactive layer slots get the first choice (the canonical gene)."""
        self.validate_arch(arch)
        gene: list = [arch.embed_dim]
        stacks = [arch.encoder] + ([arch.decoder] if arch.decoder is not None else [])
        for stack, s in zip(stacks, self.stacks()):
            pad = s.max_depth - stack.depth
            gene.append(stack.depth)
            gene += list(stack.ffn_dims) + [s.ffn_dims[0]] * pad
            gene += list(stack.num_heads) + [s.num_heads[0]] * pad
            gene += list(stack.attention_types) + [s.attention_types[0]] * pad
        return gene

    def canonical_gene(self, gene: Sequence) -> list:
        return self.arch_to_gene(self.gene_to_arch(gene))

    # -------------------------------------------------------------------------------------- sampling
    def sample_gene(self, seed: int | random.Random) -> list:
        """Uniform, independent draw of every gene (HAT's rule): embedding and depth first, then per layer
        slot FFN, heads and attention type. ``seed`` is an int (e.g. the optimiser step, so every
        data-parallel worker draws the same sub-network) or a ``random.Random``."""
        rng = seed if isinstance(seed, random.Random) else random.Random(int(seed))
        gene: list = [rng.choice(self.embed_dims)]
        for s in self.stacks():
            gene.append(rng.choice(s.depths))
            L = s.max_depth
            per_layer = [(rng.choice(s.ffn_dims), rng.choice(s.num_heads), rng.choice(s.attention_types)) for _ in range(L)]
            gene += [p[0] for p in per_layer] + [p[1] for p in per_layer] + [p[2] for p in per_layer]
        return gene

    def sample_arch(self, seed: int | random.Random) -> Arch:
        return self.gene_to_arch(self.sample_gene(seed))

    def largest_arch(self, attention_type: str | None = None) -> Arch:
        return self._uniform_arch(max, attention_type)

    def smallest_arch(self, attention_type: str | None = None) -> Arch:
        return self._uniform_arch(min, attention_type)

    def uniform_arch(self, embed_dim: int, depth: int, ffn_dim: int, num_heads: int, attention_type: str,
                     decoder_depth: int | None = None) -> Arch:
        """An architecture with the same FFN / heads / attention in every layer (baselines)."""
        enc = LayerStack(depth, (ffn_dim,) * depth, (num_heads,) * depth, (attention_type,) * depth)
        dec = None
        if self.decoder is not None:
            dd = decoder_depth if decoder_depth is not None else max(self.decoder.depths)
            dec = LayerStack(dd, (ffn_dim,) * dd, (num_heads,) * dd, (attention_type,) * dd)
        return self.validate_arch(Arch(embed_dim, enc, dec))

    def _uniform_arch(self, pick, attention_type):
        def stack(s: StackSpace) -> LayerStack:
            a = attention_type or s.attention_types[0]
            if a not in s.attention_types:
                raise ValueError(f"attention type {a!r} is not in the search space; choose from {list(s.attention_types)}")
            d = pick(s.depths)
            return LayerStack(d, (pick(s.ffn_dims),) * d, (pick(s.num_heads),) * d, (a,) * d)

        return Arch(pick(self.embed_dims), stack(self.encoder), stack(self.decoder) if self.decoder else None)


# ------------------------------------------------------------------------------------------------ presets
PAPER_SEARCH = {"population": 125, "parents": 25, "mutants": 50, "crossovers": 50, "mutation_prob": 0.3, "iterations": 30}
SMALL_SEARCH = {"population": 20, "parents": 4, "mutants": 8, "crossovers": 8, "mutation_prob": 0.3, "iterations": 6}

PRESETS: dict[str, SearchSpace] = {
    # Released CIFAR-10 space of arXiv 2207.13955's code: AutoFormer-Small sizes, head_dim 64, three attention types.
    "cifar10": SearchSpace(
        name="cifar10",
        task="image-classification",
        embed_dims=(320, 384, 448),
        encoder=StackSpace(
            depths=(12, 13, 14),
            ffn_dims=(672, 896, 1344, 1568, 1792),
            num_heads=(5, 6, 7),
            attention_types=("cosformer", "softmax", "softmax_relative"),
        ),
        head_dim=64,
        description="mixFormer's released CIFAR-10 space (supernet-S.yml): 3 x sum_L (5*3*3)^L ~ 4.3e23 archs",
        search_defaults=PAPER_SEARCH,
    ),
    # The same space with LRPE linear attention as a fourth per-layer choice (our extension).
    "cifar10-lrpe": SearchSpace(
        name="cifar10-lrpe",
        task="image-classification",
        embed_dims=(320, 384, 448),
        encoder=StackSpace(
            depths=(12, 13, 14),
            ffn_dims=(672, 896, 1344, 1568, 1792),
            num_heads=(5, 6, 7),
            attention_types=("cosformer", "softmax", "softmax_relative", "lrpe"),
        ),
        head_dim=64,
        description="the CIFAR-10 space plus LRPE linear attention as a per-layer choice (not in the paper)",
        search_defaults=PAPER_SEARCH,
    ),
    # HAT "space0" for WMT'14 En-De (the Hardware-Aware Transformer space, arXiv 2005.14187). The paper's translation space was never released; the
    # attention gene on encoder self-attention and decoder self-attention (cross-attention stays softmax) is
    # OUR choice. Deviations from HAT: head_dim is fixed at 64 (HAT fixes qkv_dim = 512, so head_dim = 512 /
    # heads), and HAT's "arbitrary encoder-decoder attention" gene is not searched (every decoder layer attends
    # to the last encoder layer).
    "wmt14-space0": SearchSpace(
        name="wmt14-space0",
        task="translation",
        embed_dims=(512, 640),
        encoder=StackSpace(depths=(6,), ffn_dims=(1024, 2048, 3072), num_heads=(4, 8), attention_types=("softmax", "cosformer")),
        decoder=StackSpace(depths=(1, 2, 3, 4, 5, 6), ffn_dims=(1024, 2048, 3072), num_heads=(4, 8), attention_types=("softmax", "cosformer")),
        head_dim=64,
        description="HAT space0 with a softmax/cosFormer gene on encoder and decoder self-attention (our choice: the "
        "paper's translation space was not released); head_dim 64",
        search_defaults=PAPER_SEARCH,
    ),
    # Small spaces that train on a CPU in minutes (digits / a toy parallel corpus).
    "small": SearchSpace(
        name="small",
        task="image-classification",
        embed_dims=(32, 48, 64),
        encoder=StackSpace(
            depths=(2, 3, 4),
            ffn_dims=(64, 128, 192),
            num_heads=(2, 4),
            attention_types=("softmax", "cosformer", "lrpe", "softmax_relative"),
        ),
        head_dim=16,
        description="CPU-sized image space: trains on upscaled sklearn digits in minutes",
        search_defaults=SMALL_SEARCH,
    ),
    "small-translation": SearchSpace(
        name="small-translation",
        task="translation",
        embed_dims=(32, 48, 64),
        encoder=StackSpace(depths=(2,), ffn_dims=(64, 128), num_heads=(2, 4), attention_types=("softmax", "cosformer")),
        decoder=StackSpace(depths=(1, 2), ffn_dims=(64, 128), num_heads=(2, 4), attention_types=("softmax", "cosformer")),
        head_dim=16,
        description="CPU-sized translation space (toy parallel text)",
        search_defaults=SMALL_SEARCH,
    ),
}


def get_search_space(name_or_space: str | SearchSpace | dict) -> SearchSpace:
    if isinstance(name_or_space, SearchSpace):
        return name_or_space
    if isinstance(name_or_space, dict):
        return SearchSpace.from_dict(name_or_space)
    if name_or_space not in PRESETS:
        raise ValueError(f"unknown search space {name_or_space!r}; presets: {sorted(PRESETS)}")
    return PRESETS[name_or_space]


def load_arch(path_or_dict: Any, space: SearchSpace | None = None) -> Arch:
    """An :class:`Arch` from a dict, a JSON file (``best.json`` of a search: its ``arch`` entry) or a gene list."""
    data = path_or_dict
    if isinstance(data, str) or hasattr(data, "read_text"):
        from pathlib import Path

        p = Path(data)
        if not p.is_file():
            raise FileNotFoundError(f"architecture file {p} does not exist")
        data = json.loads(p.read_text())
    if isinstance(data, dict) and "arch" in data:
        data = data["arch"]
    if isinstance(data, (list, tuple)):
        if space is None:
            raise ValueError("a gene needs its search space to be decoded")
        return space.gene_to_arch(data)
    arch = Arch.from_dict(data)
    if space is not None:
        space.validate_arch(arch)
    return arch
