"""``lrpe-hf push FOLDER --repo_id ID``: render the model card and upload a saved model in one commit."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model folder (config, safetensors, code, processor/tokenizer, card) to the Hub",
        description="Render the architecture's model card (with the evaluation results of the run, if given) and "
        "upload config, safetensors weights, the self-contained remote code, processor or tokenizer files and the "
        "card to a Hub repository in one commit.",
    )
    parser.add_argument("folder", help="folder written by save_pretrained (or by a training script)")
    parser.add_argument("--repo_id", required=True, help="Hub repository id, 'name' or 'namespace/name'")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--results", help="evaluation results JSON of the run (Trainer's eval_results.json or "
                        "{'dataset': {...}, 'metrics': {...}, 'training': {...}})")
    parser.add_argument("--dataset", action="append", dest="datasets", help="dataset id for the card (repeatable)")
    parser.add_argument("--license", default="apache-2.0", help="license identifier for the card")
    parser.add_argument("--base_model", help="Hub id of the model this one was fine-tuned from")
    parser.add_argument("--revision", help="branch to push to")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--commit_message", help="commit message")
    parser.add_argument("--token", help="Hub token (default: the one saved by `hf auth login`)")
    parser.add_argument("--dry_run", metavar="DIR", help="write the folder that would be uploaded to DIR and stop")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..hub.push import PushError, push_folder

    try:
        result = push_folder(
            args.folder, args.repo_id, private=args.private, token=args.token, revision=args.revision,
            create_pr=args.create_pr, commit_message=args.commit_message, dry_run_dir=args.dry_run,
            results=args.results, datasets=args.datasets, license=args.license, base_model=args.base_model,
        )
    except PushError as err:
        print(f"lrpe-hf push: error: {err}", file=sys.stderr)
        return 2
    print(result)
    return 0
