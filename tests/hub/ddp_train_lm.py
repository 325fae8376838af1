"""Tiny LRPE causal-LM training used by test_distributed.py, run unchanged in one process or under torchrun.

    python tests/hub/ddp_train_lm.py OUT.json GLOBAL_BATCH
    torchrun --standalone --nproc_per_node 2 tests/hub/ddp_train_lm.py OUT.json GLOBAL_BATCH

Same seed, same data order (sequential sampler), same global batch: the per-step losses must agree.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

import lrpe_hf  # noqa: F401
from lrpe_hf.models.lrpe import LrpeConfig, LrpeForCausalLM


def main(out_path: str, global_batch: int) -> None:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    torch.manual_seed(0)
    config = LrpeConfig.from_preset("lrpe-unitary-householder", size="tiny", vocab_size=64, pad_token_id=0,
                                    hidden_dropout_prob=0.0, attention_dropout=0.0)
    model = LrpeForCausalLM(config)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 64, (64, 16), generator=generator)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    args = TrainingArguments(
        output_dir=os.path.join(os.path.dirname(out_path), f"run-{world_size}"),
        per_device_train_batch_size=global_batch // world_size,
        max_steps=6,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=True,
        train_sampling_strategy="sequential",
        # gloo only with several processes (one process has no process group)
        ddp_backend="gloo" if world_size > 1 else None,
        ddp_find_unused_parameters=False if world_size > 1 else None,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    if trainer.is_world_process_zero():
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        with open(out_path, "w") as handle:
            json.dump({"world_size": world_size, "losses": losses,
                       "distributed_type": str(trainer.accelerator.distributed_type)}, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
