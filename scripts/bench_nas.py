"""Accuracy vs FLOPs and images/s of the searched mixed-attention model against all-softmax and all-linear
baselines of the same budget (see lrpe_hf/nas/benchmark.py for the protocol). Writes
docs/results/nas/bench_nas.{json,md,png} and search_pareto.png.

    python scripts/bench_nas.py                      # small space on sklearn digits, CPU, minutes
    python scripts/bench_nas.py --seeds 0 1 2 --supernet-steps 3000
"""

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default="docs/results/nas")
    p.add_argument("--work-dir", default="outputs/bench_nas")
    p.add_argument("--search-space", default="small")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--supernet-steps", type=int, default=800)
    p.add_argument("--retrain-steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--iterations", type=int, default=None, help="GA iterations (default: the space's preset)")
    p.add_argument("--fitness", choices=["accuracy", "loss"], default="accuracy",
                   help="super-network validation score the search optimises")
    p.add_argument("--reuse", action="store_true", help="reuse the super-network and search of --work-dir; only retrain")
    args = p.parse_args()

    from lrpe_hf.nas.benchmark import run_benchmark

    evolution = {"iterations": args.iterations} if args.iterations else None
    report = run_benchmark(
        args.output_dir, search_space=args.search_space, dataset=args.dataset, image_size=args.image_size,
        patch_size=args.patch_size, supernet_steps=args.supernet_steps, retrain_steps=args.retrain_steps,
        batch_size=args.batch_size, seeds=tuple(args.seeds), evolution=evolution, work_dir=args.work_dir,
        reuse=args.reuse, fitness=args.fitness,
    )
    print(open(os.path.join(args.output_dir, "bench_nas.md")).read())
    return report


if __name__ == "__main__":
    main()
