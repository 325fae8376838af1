"""Super-network training inside a normal ``transformers.Trainer`` and the fitness used by the search.

``train_supernet`` hands the super-network to ``Trainer`` with :func:`make_sampling_callback`, which activates one
uniformly drawn sub-network per optimiser step (HAT's rule: seeded with the step; no sandwich rule, no in-place
distillation). Everything else (optimiser, schedule, accumulation, logging, distributed launch) is Trainer's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .search_space import Arch, SearchSpace
from .supernet import MixFormerSuperNetwork, evaluate_arch, make_sampling_callback
from ..training.common import output_dir_guard  # noqa: F401  (the pipeline imports it from here)

logger = logging.getLogger(__name__)

IMAGE_MODEL_DEFAULTS = {"image_size": 32, "patch_size": 8, "num_channels": 3}


def image_collate(batch):
    return {"pixel_values": torch.stack([b["pixel_values"] for b in batch]), "labels": torch.stack([torch.as_tensor(b["labels"]) for b in batch])}


def train_supernet(supernet: MixFormerSuperNetwork, train_dataset, training_args, data_collator=None, seed: int = 0,
                   eval_dataset=None, callbacks=None):
    """Train ``supernet`` with ``transformers.Trainer`` + one uniformly sampled sub-network per optimiser step.

    ``training_args``: a ``TrainingArguments`` (use ``remove_unused_columns=False`` with ``with_transform``
    datasets). Returns the Trainer (its ``state.log_history`` holds the losses; the sampled architectures are in
    ``trainer.sampling_callback.history``)."""
    from transformers import Trainer

    if getattr(training_args, "ddp_find_unused_parameters", None) is None:
        # Under DDP, the attention weights of the types a step did not pick (and skipped layers) get no gradient.
        training_args.ddp_find_unused_parameters = True
    sampler = make_sampling_callback(supernet, seed=seed)
    trainer = Trainer(
        model=supernet,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        callbacks=[sampler] + list(callbacks or []),
    )
    trainer.sampling_callback = sampler
    trainer.train()
    return trainer


def validation_batches(dataset, batch_size: int, collate=image_collate, max_batches: int | None = None):
    """Materialise the (small) validation batches once, so every candidate is scored on identical data."""
    batches = []
    for start in range(0, len(dataset), batch_size):
        if max_batches is not None and len(batches) >= max_batches:
            break
        rows = dataset[start : start + batch_size]
        if isinstance(rows, dict):
            keys = list(rows)
            rows = [{k: rows[k][i] for k in keys} for i in range(len(rows[keys[0]]))]
        batches.append(collate(rows))
    return batches


def make_fitness(supernet: MixFormerSuperNetwork, batches, metric: str = "accuracy"):
    """``arch -> score`` on fixed validation batches (accuracy for classification, loss for translation)."""

    def fitness(arch: Arch) -> float:
        return evaluate_arch(supernet, arch, batches)[metric]

    return fitness


def default_model_kwargs(space: SearchSpace, num_labels: int | None = None, **overrides) -> dict:
    """Fixed ``MixFormerConfig`` settings for a space's task (image: 32x32 inputs, patch 8)."""
    kwargs = {}
    if space.task == "image-classification":
        kwargs.update(IMAGE_MODEL_DEFAULTS)
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return kwargs
