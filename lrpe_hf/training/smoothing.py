"""Staged training of the DGFN smoother with `Trainer` (arXiv 1712.02893: TPN, SPN, filter on ground-truth guidance, joint).

```python
from lrpe_hf.training.smoothing import SmoothingTrainingConfig, train_smoothing
results = train_smoothing(SmoothingTrainingConfig(output_dir="outputs/dgfn-small"))
```
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..cli_flags import ArgumentParser
from .common import output_dir_guard, write_json_atomic

STAGES = ("tpn", "spn", "filter", "joint")


@dataclass
class SmoothingTrainingConfig:
    """Everything the staged run needs; the defaults train the `small` preset on CPU in a few minutes."""

    output_dir: str = "outputs/dgfn-small"
    preset: str = "small"
    config_overrides: dict = field(default_factory=dict)
    # start from a saved DGFN (a directory or a Hub id) instead of a fresh `preset` model; `config_overrides` are
    # applied to its config (e.g. loss weights for a further joint stage)
    model_name_or_path: str | None = None
    dataset_dir: str | None = None  # a DatasetDict saved with save_to_disk; generated when None
    save_dataset_dir: str | None = None  # where a generated dataset is saved (default: "<output_dir>-dataset")
    num_train: int = 2000
    num_validation: int = 120
    num_test: int = 120
    image_size: int = 48
    seed: int = 0
    stage_steps: dict = field(default_factory=lambda: {"tpn": 200, "spn": 300, "filter": 600, "joint": 300})
    stage_learning_rates: dict = field(default_factory=lambda: {"tpn": 2e-3, "spn": 1e-3, "filter": 2e-3, "joint": 3e-4})
    batch_size: int = 8
    eval_batch_size: int = 32
    weight_decay: float = 0.0
    logging_steps: int = 25
    gradient_checkpointing: bool = False
    overwrite_output_dir: bool = False  # write into a non-empty output_dir (files of the same name are replaced)

    def __post_init__(self):
        unknown = set(self.stage_steps) - set(STAGES)
        if unknown:
            raise ValueError(f"stage_steps has unknown stages {sorted(unknown)}; stages are {STAGES}")
        for stage, steps in self.stage_steps.items():
            if not isinstance(steps, int) or steps < 0:
                raise ValueError(f"stage_steps[{stage!r}]={steps!r} must be an integer >= 0")
        if self.model_name_or_path and Path(self.model_name_or_path).exists() and (
            Path(self.model_name_or_path).resolve() == Path(self.output_dir).resolve()
        ):
            raise ValueError(
                f"output_dir={self.output_dir!r} is the model training starts from (model_name_or_path); choose "
                "another output_dir so the starting model is not overwritten"
            )


def load_or_build_dataset(cfg: SmoothingTrainingConfig):
    import datasets

    from ..data.smoothing_pairs import build_smoothing_dataset

    if cfg.dataset_dir:
        return datasets.load_from_disk(cfg.dataset_dir)
    return build_smoothing_dataset(cfg.num_train, cfg.num_validation, cfg.num_test, seed=cfg.seed, size=cfg.image_size)


def make_compute_metrics():
    """`compute_metrics` for Trainer: PSNR and SSIM (offline evaluate modules) of the reconstruction vs target."""
    from ..metrics import load_metric

    psnr, ssim = load_metric("psnr"), load_metric("ssim")

    def compute_metrics(eval_pred):
        preds = eval_pred.predictions
        preds = preds[0] if isinstance(preds, (tuple, list)) else preds
        labels = eval_pred.label_ids
        labels = labels[0] if isinstance(labels, (tuple, list)) else labels
        preds = np.clip(preds.astype(np.float32), 0, 1)
        return {
            **psnr.compute(predictions=list(preds), references=list(labels), data_range=1.0),
            **ssim.compute(predictions=list(preds), references=list(labels), data_range=1.0, channel_axis=0),
        }

    return compute_metrics


def _training_arguments(cfg: SmoothingTrainingConfig, stage: str, steps: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(Path(cfg.output_dir) / "stages" / stage),
        max_steps=steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        learning_rate=cfg.stage_learning_rates.get(stage, 1e-3),
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=min(20, steps // 10),
        logging_steps=cfg.logging_steps,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=cfg.seed,
        # tpn/spn stages produce no reconstruction: only their eval loss is gathered
        prediction_loss_only=stage in ("tpn", "spn"),
        disable_tqdm=False,
        **({"gradient_checkpointing": True} if cfg.gradient_checkpointing else {}),
    )


def train_smoothing(cfg: SmoothingTrainingConfig) -> dict:
    """Run the staged schedule; save model + image processor to `cfg.output_dir`; return (and write) the results.

    Each stage is one `Trainer.train()` with its own optimiser over the parameters that stage trains (the others
    are frozen by `set_training_stage`). After the filter and joint stages the validation split is evaluated with
    PSNR/SSIM; at the end validation and test are evaluated with predicted guidance.
    """
    import torch
    from transformers import Trainer

    from ..data.smoothing_pairs import smoothing_batch_transform
    from ..models.dgfn import DgfnConfig, DgfnForImageSmoothing, DgfnImageProcessor

    torch.manual_seed(cfg.seed)
    out_dir = output_dir_guard(cfg.output_dir, cfg.overwrite_output_dir)
    t0 = time.time()
    data = load_or_build_dataset(cfg)
    if not cfg.dataset_dir:
        data.save_to_disk(cfg.save_dataset_dir or f"{str(out_dir).rstrip('/')}-dataset")
    splits = {name: data[name].with_transform(smoothing_batch_transform) for name in ("train", "validation", "test")}
    data_seconds = time.time() - t0

    if cfg.model_name_or_path:
        model = DgfnForImageSmoothing.from_pretrained(cfg.model_name_or_path, **cfg.config_overrides)
    else:
        model = DgfnForImageSmoothing(DgfnConfig.from_preset(cfg.preset, **cfg.config_overrides))
    compute_metrics = make_compute_metrics()
    results = {"config": asdict(cfg), "data_seconds": round(data_seconds, 1), "stages": {}}
    for stage in STAGES:
        steps = cfg.stage_steps.get(stage, 0)
        if steps == 0:
            continue
        model.set_training_stage(stage)
        with_metrics = stage in ("filter", "joint")
        trainer = Trainer(
            model=model,
            args=_training_arguments(cfg, stage, steps),
            train_dataset=splits["train"],
            eval_dataset=splits["validation"],
            compute_metrics=compute_metrics if with_metrics else None,
        )
        start = time.time()
        train_output = trainer.train()
        stage_result = {"steps": steps, "train_seconds": round(time.time() - start, 1),
                        "train_loss": float(train_output.training_loss)}
        stage_result.update(trainer.evaluate())
        results["stages"][stage] = stage_result
        print(f"[{stage}] {json.dumps(stage_result)}", flush=True)

    model.set_training_stage("joint")
    final = Trainer(
        model=model,
        args=_training_arguments(cfg, "final", 1),
        compute_metrics=compute_metrics,
    )
    for split in ("validation", "test"):
        metrics = final.evaluate(splits[split], metric_key_prefix=split)
        results[split] = {k: float(v) for k, v in metrics.items()}
    results["total_seconds"] = round(time.time() - t0, 1)
    model.save_pretrained(out_dir)
    DgfnImageProcessor().save_pretrained(out_dir)
    write_json_atomic(out_dir / "train_results.json", results)
    return results


__all__ = ["SmoothingTrainingConfig", "train_smoothing", "make_compute_metrics", "load_or_build_dataset"]


_CLI_DOC = """Staged DGFN training (TPN -> SPN -> filter on ground-truth guidance -> joint) on generated smoothing pairs.

    python scripts/train_smoothing.py --output_dir outputs/dgfn-small            # CPU, a few minutes
    python scripts/train_smoothing.py --preset tsafn-vgg16 --steps 2000,4000,4000,4000 --image_size 96
"""


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` and run the staged training; returns the exit status."""
    from ..hub.push import add_push_arguments, push_request_from_args

    defaults = SmoothingTrainingConfig()
    p = ArgumentParser(prog=prog, description=_CLI_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", default=defaults.output_dir)
    p.add_argument("--preset", default=defaults.preset, help="tsafn-vgg16 | small | tiny")
    p.add_argument("--config", default="{}", help="JSON overrides of DgfnConfig fields")
    p.add_argument("--model_name_or_path", default=None,
                   help="start from this saved DGFN (directory or Hub id) instead of a fresh --preset model")
    p.add_argument("--dataset_dir", default=None, help="a saved DatasetDict (default: generate one)")
    p.add_argument("--num_train", type=int, default=defaults.num_train)
    p.add_argument("--num_validation", type=int, default=defaults.num_validation)
    p.add_argument("--num_test", type=int, default=defaults.num_test)
    p.add_argument("--image_size", type=int, default=defaults.image_size)
    p.add_argument("--steps", default=",".join(str(defaults.stage_steps[s]) for s in STAGES),
                   help="steps of the tpn,spn,filter,joint stages (0 skips a stage)")
    p.add_argument("--learning_rates", default=",".join(str(defaults.stage_learning_rates[s]) for s in STAGES))
    p.add_argument("--batch_size", type=int, default=defaults.batch_size)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--overwrite_output_dir", action="store_true",
                   help="write into a non-empty --output_dir (files of the same name are replaced)")
    add_push_arguments(p)
    a = p.parse_args(argv)
    push = push_request_from_args(a)
    steps = [int(s) for s in a.steps.split(",")]
    lrs = [float(s) for s in a.learning_rates.split(",")]
    if len(steps) != 4 or len(lrs) != 4:
        p.error("--steps and --learning_rates take 4 comma-separated values (tpn,spn,filter,joint)")
    cfg = SmoothingTrainingConfig(
        output_dir=a.output_dir, preset=a.preset, config_overrides=json.loads(a.config), dataset_dir=a.dataset_dir,
        model_name_or_path=a.model_name_or_path,
        num_train=a.num_train, num_validation=a.num_validation, num_test=a.num_test, image_size=a.image_size,
        seed=a.seed, stage_steps=dict(zip(STAGES, steps)), stage_learning_rates=dict(zip(STAGES, lrs)),
        batch_size=a.batch_size, gradient_checkpointing=a.gradient_checkpointing,
        overwrite_output_dir=a.overwrite_output_dir,
    )
    results = train_smoothing(cfg)
    print(json.dumps({k: results[k] for k in ("validation", "test", "total_seconds")}, indent=2))
    if push is not None:
        metrics = {k: v for k, v in results["test"].items() if isinstance(v, (int, float))}
        print(push.push(a.output_dir, results={"metrics": metrics, "dataset": {"name": "lrpe_hf smoothing pairs"}}))
    return 0
