"""Publish a saved checkpoint folder to the Hugging Face Hub in one commit.

``push_folder`` stages what belongs on the Hub -- config, safetensors weights, remote-code bundle, processor or
tokenizer files and the rendered model card -- in a temporary folder, checks it (weights readable, card valid),
then lets ``huggingface_hub`` create the repository and upload the staged folder as a single commit. The user's
folder is only read; a failed upload leaves nothing behind locally and is reported with the repository id.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..models.checkpoint import check_checkpoint_folder

# Files of a saved folder that are uploaded (anything else -- optimizer states, RNG states, pickled training
# arguments, checkpoint-* sub-folders -- stays local).
UPLOAD_PATTERNS = (
    "config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
    "preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "vocab.txt", "merges.txt", "*.model", "chat_template.jinja", "chat_template.json", "*.py",
)


class PushError(RuntimeError):
    """The upload to the Hub failed; nothing was published by this call (the message names the repository)."""


@dataclass
class PushResult:
    repo_id: str
    commit_url: str | None
    files: list[str] = field(default_factory=list)
    uploaded: bool = True

    def __str__(self) -> str:
        if not self.uploaded:
            return f"dry run: {len(self.files)} files staged for {self.repo_id}; nothing was uploaded"
        return f"pushed {len(self.files)} files to {self.repo_id} in one commit: {self.commit_url}"


def stage_upload_folder(folder, staging, *, repo_id: str | None = None, **card_kwargs) -> list[str]:
    """Copy the uploadable files of ``folder`` into ``staging`` and write the rendered ``README.md``.

    The remote-code bundle is (re)written when the folder has none (e.g. saved by an older version). Returns the
    staged file names. Raises before anything is uploaded if the weights are unreadable or the card is invalid.
    """
    from .cards import render_model_card
    from .remote_code import write_remote_code

    folder, staging = Path(folder), Path(staging)
    config = check_checkpoint_folder(folder)  # missing/corrupt weights or config fail here, not on the Hub
    staging.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.iterdir()):
        if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in UPLOAD_PATTERNS):
            shutil.copy2(path, staging / path.name)
    if "auto_map" not in config:
        write_remote_code(staging, config["model_type"])
    card = render_model_card(folder, repo_id=repo_id, **card_kwargs)
    card.save(staging / "README.md")
    return sorted(p.name for p in staging.iterdir())


def push_folder(
    folder,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    dry_run_dir=None,
    api=None,
    **card_kwargs,
) -> PushResult:
    """Render the card and upload ``folder`` to ``repo_id`` in one commit (``huggingface_hub``).

    ``card_kwargs`` go to :func:`lrpe_hf.hub.cards.render_model_card` (``results``, ``license``, ``datasets``,
    ``base_model``, ...). With ``dry_run_dir`` the staged folder is written there and nothing is uploaded.
    """
    if not repo_id or repo_id.count("/") > 1 or repo_id.strip() != repo_id:
        raise ValueError(f"invalid repository id {repo_id!r}: expected 'name' or 'namespace/name'")
    if dry_run_dir is not None:
        dry_run_dir = Path(dry_run_dir)
        if dry_run_dir.exists() and any(dry_run_dir.iterdir()):
            raise ValueError(f"dry-run folder {dry_run_dir} is not empty; choose a new folder")
        files = stage_upload_folder(folder, dry_run_dir, repo_id=repo_id, **card_kwargs)
        return PushResult(repo_id=repo_id, commit_url=None, files=files, uploaded=False)

    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="lrpe-hf-push-") as staging:
        files = stage_upload_folder(folder, staging, repo_id=repo_id, **card_kwargs)
        try:
            api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                repo_type="model",
                revision=revision,
                create_pr=create_pr,
                commit_message=commit_message or f"Upload {json.loads((Path(folder) / 'config.json').read_text())['model_type']} model with lrpe_hf",
            )
        except Exception as err:  # network, auth, quota: report with the repository id; the staging dir is removed
            raise PushError(f"upload to the Hub repository {repo_id!r} failed: {type(err).__name__}: {err}") from err
    return PushResult(repo_id=repo_id, commit_url=getattr(commit, "commit_url", None) or str(commit), files=files)


# ---- for training scripts ---------------------------------------------------------------------------------------
def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    """``--push_to_hub``, ``--hub_model_id``, ``--hub_private_repo``, ``--hub_token`` for argparse-based scripts.

    Scripts built on ``HfArgumentParser(TrainingArguments)`` already have these flags; use
    :func:`push_request_from_training_args` there instead.
    """
    group = parser.add_argument_group("Hub")
    group.add_argument("--push_to_hub", action="store_true", help="upload the final model, card and code to the Hub")
    group.add_argument("--hub_model_id", default=None, help="repository id (default: the output folder's name)")
    group.add_argument("--hub_private_repo", action="store_true", help="create the repository as private")
    group.add_argument("--hub_token", default=None, help="Hub token (default: the one saved by `hf auth login`)")


@dataclass
class PushRequest:
    """What a training script should publish at the end; ``push`` does it with :func:`push_folder`."""

    repo_id: str | None
    private: bool = False
    token: str | None = None

    def push(self, folder, results=None, **card_kwargs) -> PushResult:
        repo_id = self.repo_id or Path(folder).resolve().name
        return push_folder(folder, repo_id, private=self.private, token=self.token, results=results, **card_kwargs)


def push_request_from_args(args) -> PushRequest | None:
    """A :class:`PushRequest` from :func:`add_push_arguments` flags, or None without ``--push_to_hub``."""
    if not getattr(args, "push_to_hub", False):
        return None
    return PushRequest(args.hub_model_id, bool(getattr(args, "hub_private_repo", False)), getattr(args, "hub_token", None))


def push_request_from_training_args(training_args) -> PushRequest | None:
    """Take over ``TrainingArguments.push_to_hub``: returns a :class:`PushRequest` and turns the Trainer's own
    pushing off (it would upload at every save, with its own card and without the evaluation results).

    Call it right after parsing, before building the ``Trainer``; at the end call ``request.push(output_dir,
    results=metrics)`` on the main process.
    """
    if not getattr(training_args, "push_to_hub", False):
        return None
    request = PushRequest(
        training_args.hub_model_id, bool(getattr(training_args, "hub_private_repo", False) or False),
        getattr(training_args, "hub_token", None),
    )
    training_args.push_to_hub = False
    return request
