"""``lrpe-hf nas``: train a weight-sharing super-network, search it, export the chosen sub-network.

    lrpe-hf nas train-supernet --search_space small --dataset digits --output_dir supernet/   # = lrpe-hf train supernet
    lrpe-hf nas search --supernet supernet/ --max_flops 2e6 --output_dir search/
    lrpe-hf nas export --supernet supernet/ --arch search/best.json --output_dir model/
"""

from __future__ import annotations

import json
from pathlib import Path

from ..training.supernet import add_arguments, run


def _search(args) -> int:
    from ..nas.pipeline import run_search
    from ..nas.search import Constraints

    constraints = Constraints(max_params=args.max_params, max_flops=args.max_flops, max_latency_ms=args.max_latency_ms)
    evolution = {k: getattr(args, k) for k in ("population", "parents", "mutants", "crossovers", "mutation_prob", "iterations")}
    best, _ = run_search(
        args.supernet, args.output_dir, dataset=args.dataset, constraints=constraints, evolution=evolution,
        search_space=args.search_space, eval_batch_size=args.eval_batch_size, max_eval_batches=args.max_eval_batches,
        seed=args.seed, overwrite_output_dir=args.overwrite_output_dir, fitness=args.fitness,
    )
    print(f"best: {best['description']}  {best['score_name']}={best['score']:.4f}  params={best['params']:.0f}  "
          f"FLOPs={best['flops']:.4g}  -> {args.output_dir}/best.json")
    return 0


def _export(args) -> int:
    from ..nas.pipeline import run_export

    from ..hub.push import push_request_from_args

    push = push_request_from_args(args)
    run_export(args.supernet, args.arch, args.output_dir, args.overwrite_output_dir, args.search_space)
    print(f"standalone mixformer checkpoint saved to {args.output_dir}")
    if push is not None:
        arch = json.loads(Path(args.arch).read_text())
        metrics = {f"supernet_{arch['score_name']}": arch["score"]} if "score_name" in arch and "score" in arch else {}
        print(push.push(args.output_dir, results={"metrics": metrics}))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("nas", help="mixed-attention architecture search (arXiv 2207.13955)")
    sub = parser.add_subparsers(dest="nas_command", metavar="NAS_COMMAND")
    sub.required = True

    t = sub.add_parser("train-supernet", help="train a weight-sharing super-network (one sampled sub-network per step)")
    add_arguments(t)
    t.set_defaults(func=run)

    s = sub.add_parser("search", help="evolutionary search on a trained super-network")
    s.add_argument("--supernet", required=True)
    s.add_argument("--output_dir", required=True)
    s.add_argument("--dataset", default="digits", help="the data the super-network was trained on (its validation split)")
    s.add_argument("--search_space", default=None, help="refuse a super-network trained for another space")
    s.add_argument("--max_params", type=float, default=None)
    s.add_argument("--max_flops", type=float, default=None)
    s.add_argument("--max_latency_ms", type=float, default=None)
    for name, typ in (("population", int), ("parents", int), ("mutants", int), ("crossovers", int),
                      ("mutation-prob", float), ("iterations", int)):
        s.add_argument(f"--{name}", type=typ, default=None, help="default: the search space's preset")
    s.add_argument("--fitness", choices=["accuracy", "loss"], default=None,
                   help="validation score the search optimises: top-1 accuracy (image default) or cross-entropy "
                        "loss (translation default; also orders image sub-networks whose accuracies tie)")
    s.add_argument("--eval_batch_size", type=int, default=100)
    s.add_argument("--max_eval_batches", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite_output_dir", action="store_true")
    s.set_defaults(func=_search)

    e = sub.add_parser("export", help="save a sub-network as a standalone mixformer checkpoint")
    e.add_argument("--supernet", required=True)
    e.add_argument("--arch", required=True, help="best.json of a search (or a JSON architecture)")
    e.add_argument("--output_dir", required=True)
    e.add_argument("--search_space", default=None)
    e.add_argument("--overwrite_output_dir", action="store_true")
    from ..hub.push import add_push_arguments

    add_push_arguments(e)
    e.set_defaults(func=_export)
