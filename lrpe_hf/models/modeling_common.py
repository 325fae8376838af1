"""Behaviour shared by every model of the package (kept tiny: models stay readable on their own)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


class AtomicSaveMixin:
    """``save_pretrained`` that never leaves a half-written checkpoint behind.

    Everything is first written to a temporary sibling folder; only when that succeeded are the files moved
    into place (``os.replace`` per file, atomic on one file system). A failure while serialising (disk full,
    an exception in a hook, Ctrl-C) therefore leaves an existing checkpoint in ``save_directory`` intact.
    """

    def save_pretrained(self, save_directory, *args, **kwargs):  # noqa: D401 - same contract as transformers
        if kwargs.get("push_to_hub"):
            # Uploading is huggingface_hub's job; the local folder is still written atomically first.
            return super().save_pretrained(save_directory, *args, **kwargs)
        target = Path(save_directory)
        if target.exists() and not target.is_dir():
            raise ValueError(f"save_pretrained: {target} exists and is not a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            result = super().save_pretrained(tmp, *args, **kwargs)
            target.mkdir(parents=True, exist_ok=True)
            for item in tmp.iterdir():
                dest = target / item.name
                if dest.is_dir() and not dest.is_symlink():
                    shutil.rmtree(dest)
                os.replace(item, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return result
