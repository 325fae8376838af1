"""Staged DGFN training (TPN -> SPN -> filter on ground-truth guidance -> joint) on generated smoothing pairs.

    python scripts/train_smoothing.py --output_dir outputs/dgfn-small            # CPU, a few minutes
    python scripts/train_smoothing.py --preset tsafn-vgg16 --steps 2000,4000,4000,4000 --image_size 96
"""

import argparse
import json

from lrpe_hf.hub.push import add_push_arguments, push_request_from_args
from lrpe_hf.training.smoothing import STAGES, SmoothingTrainingConfig, train_smoothing
from lrpe_hf.cli_flags import ArgumentParser


def main():
    defaults = SmoothingTrainingConfig()
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    add_push_arguments(p)
    a = p.parse_args()
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
    )
    results = train_smoothing(cfg)
    print(json.dumps({k: results[k] for k in ("validation", "test", "total_seconds")}, indent=2))
    if push is not None:
        metrics = {k: v for k, v in results["test"].items() if isinstance(v, (int, float))}
        print(push.push(a.output_dir, results={"metrics": metrics, "dataset": {"name": "lrpe_hf smoothing pairs"}}))


if __name__ == "__main__":
    main()
