"""End-to-end steps of the architecture search, as called by ``lrpe-hf nas ...`` and ``scripts/bench_nas.py``:
train a super-network, search it, export a sub-network (image classification and translation).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .flops import model_flops
from .search import Constraints, EvolutionarySearch, EvolutionConfig, write_search_outputs
from .search_space import Arch, SearchSpace, get_search_space, load_arch
from .supernet import MixFormerSuperNetwork
from .train import default_model_kwargs, image_collate, output_dir_guard, train_supernet, validation_batches
from ..benchmarks.timing import interleaved, trimmed_mean

logger = logging.getLogger(__name__)


def load_image_data(dataset: str, image_size: int, seed: int = 0):
    """``(train, validation, num_labels)`` as in-memory tensor datasets (digits offline; Hub names online)."""
    from ..data.nas_data import TensorImageDataset, digits_tensor_splits, load_image_dataset, num_labels_of

    if dataset == "digits":
        splits = digits_tensor_splits(image_size, seed=seed)
        return splits["train"], splits["validation"], 10
    ds = load_image_dataset(dataset, image_size=image_size, seed=seed)
    n = num_labels_of(ds["train"])
    return TensorImageDataset.from_hf(ds["train"], image_size), TensorImageDataset.from_hf(ds["validation"], image_size), n


def run_train_supernet(search_space: str, dataset: str, output_dir, *, image_size: int = 32, patch_size: int = 8,
                       max_steps: int = 1000, batch_size: int = 64, learning_rate: float = 2e-3, weight_decay: float = 0.05,
                       warmup_steps: int = 50, gradient_accumulation_steps: int = 1, seed: int = 0,
                       overwrite_output_dir: bool = False, logging_steps: int = 50, model_kwargs: dict | None = None,
                       max_length: int = 64):
    """Train a super-network on ``dataset`` and save it (plus ``train_log.json``; for translation also the
    word-level tokenizer learnt from the training text) in ``output_dir``.

    ``dataset``: image side ``"digits"`` or a Hub image dataset; translation side a TSV / JSON-lines file or
    ``hub:<name>:<config>:<src>:<tgt>``."""
    from transformers import TrainingArguments, set_seed

    space = get_search_space(search_space)
    out = output_dir_guard(output_dir, overwrite_output_dir)
    set_seed(seed)
    tokenizer = None
    if space.task == "translation":
        from .translation import load_parallel_splits, make_collator, seq2seq_model_kwargs, tokenize_pairs, train_word_tokenizer

        train_text, _ = load_parallel_splits(dataset, seed=seed)
        tokenizer = train_word_tokenizer(list(train_text["source"]) + list(train_text["target"]))
        train = tokenize_pairs(train_text, tokenizer, max_length)
        kwargs = {**seq2seq_model_kwargs(tokenizer, max_length), **(model_kwargs or {})}
        collate = make_collator(tokenizer.pad_token_id)
    else:
        train, _, num_labels = load_image_data(dataset, image_size, seed)
        kwargs = default_model_kwargs(space, num_labels, image_size=image_size, patch_size=patch_size, **(model_kwargs or {}))
        collate = image_collate
    supernet = MixFormerSuperNetwork(space, kwargs, seed=seed)
    args = TrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=batch_size, max_steps=max_steps,
        learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps, lr_scheduler_type="cosine",
        adam_beta2=0.998, gradient_accumulation_steps=gradient_accumulation_steps, logging_steps=logging_steps,
        save_strategy="no", report_to=[], remove_unused_columns=False, seed=seed, dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    start = time.time()
    trainer = train_supernet(supernet, train, args, data_collator=collate, seed=seed)
    supernet.save_pretrained(out)
    if tokenizer is not None:
        from .translation import TOKENIZER_DIR

        tokenizer.save_pretrained(out / TOKENIZER_DIR)
    log = {"search_space": space.name, "dataset": dataset, "max_steps": max_steps, "seconds": time.time() - start,
           "log_history": trainer.state.log_history}
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    return supernet, trainer


class SupernetCostModel:
    """Exact parameter count, analytic FLOPs and measured latency (batch 1, current device) of a slice."""

    def __init__(self, supernet: MixFormerSuperNetwork, warmup: int = 5, runs: int = 20):
        self.supernet, self.warmup, self.runs = supernet, warmup, runs
        self.device = next(supernet.parameters()).device

    def params(self, arch: Arch) -> int:
        return self.supernet.num_parameters(arch)

    def flops(self, arch: Arch) -> int:
        return model_flops(self.supernet.sub_config(arch))

    @torch.no_grad()
    def latency_ms(self, arch: Arch) -> float:
        """10-90 % trimmed mean of ``runs`` timed batch-1 forwards after ``warmup`` (HAT's protocol)."""
        model = self.supernet.export(arch).to(self.device)
        cfg = model.config
        if cfg.is_encoder_decoder:  # one teacher-forced pass over a 30-token pair (HAT times 30-token sentences)
            ids = torch.full((1, 30), max(cfg.eos_token_id or 0, 3) % cfg.vocab_size, device=self.device)
            inputs = {"input_ids": ids, "decoder_input_ids": ids, "use_cache": False}
        else:
            inputs = {"pixel_values": torch.randn(1, cfg.num_channels, cfg.image_size, cfg.image_size, device=self.device)}
        samples = interleaved({"model": lambda: model(**inputs)}, rounds=self.runs, warmup=self.warmup,
                              device=self.device)["model"]
        return trimmed_mean([1000 * s.wall for s in samples])


FITNESS_CHOICES = ("accuracy", "loss")


def run_search(supernet_dir, output_dir, *, dataset: str = "digits", constraints: Constraints | None = None,
               evolution: dict | None = None, search_space: str | None = None, eval_batch_size: int = 100,
               max_eval_batches: int | None = None, seed: int = 0, overwrite_output_dir: bool = False, progress=True,
               fitness: str | None = None):
    """Evolutionary search on a trained super-network; writes ``evaluated.jsonl``, ``history.json``,
    ``pareto.png`` and ``best.json`` in ``output_dir``. Returns ``(best dict, SearchResult)``.

    ``fitness``: the validation score of the inherited-weight sub-network that the search maximises --
    ``"accuracy"`` (top-1, the paper's CIFAR setting; the default for image classification) or ``"loss"``
    (cross-entropy, minimised; HAT's MT setting and the only choice for translation). On a small validation set
    top-1 saturates and many architectures tie; the loss still orders them."""
    supernet = MixFormerSuperNetwork.from_pretrained(supernet_dir, search_space=search_space)
    space = supernet.space
    translation = space.task == "translation"
    if fitness is None:
        fitness = "loss" if translation else "accuracy"
    if fitness not in FITNESS_CHOICES:
        raise ValueError(f"fitness={fitness!r} is not supported; choose one of {FITNESS_CHOICES}")
    if translation and fitness != "loss":
        raise ValueError("a translation search scores sub-networks by validation loss (fitness='loss'); "
                         "accuracy is defined for image classification only")
    metric = fitness
    config = EvolutionConfig.for_space(space, seed=seed, **(evolution or {}))
    constraints = constraints or Constraints()
    batches = []

    def score(arch):
        from .supernet import evaluate_arch

        return evaluate_arch(supernet, arch, batches)[metric]

    search = EvolutionarySearch(space, score, SupernetCostModel(supernet), constraints, config,
                                higher_is_better=metric == "accuracy", progress=progress)
    search.check_satisfiable()  # before any data is loaded or anything is written
    out = output_dir_guard(output_dir, overwrite_output_dir)
    if translation:
        from transformers import AutoTokenizer

        from .translation import TOKENIZER_DIR, load_parallel_splits, make_collator, tokenize_pairs

        tokenizer = AutoTokenizer.from_pretrained(Path(supernet_dir) / TOKENIZER_DIR)
        _, val_text = load_parallel_splits(dataset, seed=seed)
        val = tokenize_pairs(val_text, tokenizer, supernet.model_kwargs["max_position_embeddings"] - 2)
        batches.extend(validation_batches(val, eval_batch_size, make_collator(tokenizer.pad_token_id), max_eval_batches))
    else:
        image_size = supernet.model_kwargs.get("image_size", 32)
        _, val, _ = load_image_data(dataset, image_size, seed)
        batches.extend(validation_batches(val, eval_batch_size, image_collate, max_eval_batches))
    result = search.run()
    score_name = f"super-network validation {metric}"
    best = write_search_outputs(result, out, space, constraints, config, metric == "accuracy", score_name,
                                extra={"supernet": str(supernet_dir), "dataset": dataset})
    return best, result


def run_export(supernet_dir, arch_path, output_dir, overwrite_output_dir: bool = False, search_space: str | None = None):
    """Export the sub-network of ``arch_path`` (``best.json`` or an arch JSON) as a standalone checkpoint."""
    supernet = MixFormerSuperNetwork.from_pretrained(supernet_dir, search_space=search_space)
    arch = load_arch(arch_path, supernet.space)
    out = output_dir_guard(output_dir, overwrite_output_dir)
    model = supernet.export(arch)
    model.save_pretrained(out)
    from .translation import TOKENIZER_DIR

    if (Path(supernet_dir) / TOKENIZER_DIR).is_dir():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(Path(supernet_dir) / TOKENIZER_DIR).save_pretrained(out)
    (out / "nas_arch.json").write_text(json.dumps({"arch": arch.to_dict(), "search_space": supernet.space.name,
                                                   "gene": supernet.space.arch_to_gene(arch)}, indent=1))
    return model


__all__ = ["run_train_supernet", "run_search", "run_export", "SupernetCostModel", "load_image_data", "asdict"]
