"""One run of a comparison -- build the model of an (encoding, task, seed), train it, evaluate it at every length --
and the entry point of the worker processes that run several at once (``--jobs > 1``)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from ..common import perplexity, write_json_atomic
from .data import MaskedLMCollator, _curve_eval_set
from .memory import _eval_batch_size
from .settings import CompareSettings, build_config, logger

# ------------------------------------------------------------------------------------------------ one run


def evaluate_perplexity(model, dataset, task: str, batch_size: int) -> dict:
    """Token-weighted loss and perplexity: next-token NLL over every position (causal) or NLL of the masked
    targets (masked LM; ``dataset`` carries fixed ``labels``)."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                rows = dataset[start : start + batch_size]
                ids = torch.tensor(rows["input_ids"], dtype=torch.long, device=device)
                if task == "clm":
                    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
                    labels = ids[:, 1:]
                else:
                    logits = model(input_ids=ids).logits
                    labels = torch.tensor(rows["labels"], dtype=torch.long, device=device)
                nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
                total += float(nll)
                count += int((labels != -100).sum())
    finally:
        model.train(was_training)
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": perplexity(loss), "tokens": count}


def _step_timer_callback():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of the training steps only (evaluation and checkpointing excluded)."""

        def __init__(self):
            self.seconds, self.steps, self._t0 = 0.0, 0, None

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._t0 is not None:
                self.seconds += time.perf_counter() - self._t0
                self.steps += 1
                self._t0 = None

    return StepTimer()


_write_json_atomic = write_json_atomic


def run_one(out: str | Path, settings: CompareSettings, encoding: str, task: str, seed: int, *,
            keep_checkpoints: bool = False, show_progress: bool = True, threads: int | None = None) -> dict:
    """Train and evaluate one (encoding, task, seed); returns its result (also ``runs/.../result.json``).

    A finished run (``result.json`` present) is returned as is; an interrupted one resumes from its last checkpoint.
    """
    import datasets
    import torch
    from transformers import AutoTokenizer, Trainer, TrainingArguments, default_data_collator, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from lrpe_hf.models.lrpe.modeling_lrpe import LrpeForCausalLM, LrpeForMaskedLM

    out = Path(out)
    run_dir = out / "runs" / task / encoding / f"seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    if threads:
        torch.set_num_threads(threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    train = datasets.load_from_disk(str(data_dir / "train"))
    if task == "mlm":
        train = train.select_columns(["input_ids"])
    curve_set = _curve_eval_set(data_dir, task, settings)

    set_seed(seed)
    config = build_config(encoding, task, settings, len(tokenizer), tokenizer)
    config.lrpe_seed = seed  # the random Householder vectors / permutations are part of the seed's draw
    model_class = LrpeForCausalLM if task == "clm" else LrpeForMaskedLM
    model = model_class(config)
    n_params = sum(p.numel() for p in model.parameters())

    trainer_dir = run_dir / "trainer"
    eval_every = max(1, settings.max_steps // max(1, settings.eval_points))
    save_every = max(1, settings.max_steps // 4)
    args = TrainingArguments(
        output_dir=str(trainer_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        adam_beta1=0.9,
        adam_beta2=settings.adam_beta2,
        eval_strategy="steps",
        eval_steps=eval_every,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=1,
        logging_steps=max(1, eval_every // 2),
        report_to="none",
        seed=seed,
        data_seed=seed,
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        prediction_loss_only=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    collator = default_data_collator if task == "clm" else MaskedLMCollator(tokenizer, settings.mlm_probability)
    # Looked up on the package at call time: patching lrpe_hf.training.compare._step_timer_callback takes effect.
    from . import _step_timer_callback as step_timer_callback

    timer = step_timer_callback()
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=curve_set, data_collator=collator,
                      callbacks=[timer])
    checkpoint = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    if checkpoint:
        logger.info("%s/%s/seed%d: resuming from %s", task, encoding, seed, checkpoint)
    t0 = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=checkpoint, ignore_keys_for_eval=["cache", "past_key_values"])
    train_seconds = time.perf_counter() - t0
    model.save_pretrained(str(run_dir / "model"))

    history = trainer.state.log_history
    curve = [{"step": h["step"], "loss": h["eval_loss"]} for h in history if "eval_loss" in h]
    train_curve = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    tokens_per_update = settings.tokens_per_update
    evaluation: dict = {}
    prefix = "mlm_" if task == "mlm" else ""
    for split in ("validation", "test"):
        evaluation[split] = {}
        for factor in settings.extrapolation:
            ds = datasets.load_from_disk(str(data_dir / f"{prefix}{split}_x{factor}"))
            try:
                evaluation[split][str(factor)] = evaluate_perplexity(model, ds, task, _eval_batch_size(settings, factor))
            except (ValueError, RuntimeError) as err:  # e.g. a position table shorter than the evaluation length
                logger.warning("%s at %dx the context could not be evaluated: %s", encoding, factor, err)
                evaluation[split][str(factor)] = {"error": f"{type(err).__name__}: {err}"}
    result = {
        "encoding": encoding,
        "task": task,
        "seed": seed,
        "num_parameters": n_params,
        "context": settings.context,
        "tokens_seen": settings.max_steps * tokens_per_update,
        "train_loss": train_output.metrics.get("train_loss"),
        "tokens_per_second": (timer.steps * tokens_per_update / timer.seconds) if timer.seconds > 0 else None,
        "timed_steps": timer.steps,
        "train_seconds_this_process": train_seconds,
        "resumed_from": Path(checkpoint).name if checkpoint else None,
        "eval": evaluation,
        "validation_curve": curve,
        "train_curve": train_curve,
        "config": config.to_diff_dict(),
    }
    _write_json_atomic(result_path, result)
    if not keep_checkpoints:
        shutil.rmtree(trainer_dir, ignore_errors=True)
    return result


def _run_one_in_worker(kwargs: dict) -> dict:
    """Entry point of a worker process (``--jobs > 1``)."""
    logging.basicConfig(level=logging.WARNING)
    settings = CompareSettings(**kwargs.pop("settings"))
    settings.extrapolation = tuple(settings.extrapolation)
    return run_one(settings=settings, **kwargs)
