"""Hub helpers: model-card rendering, self-contained remote-code bundles, push, checked loading."""

from .cards import render_model_card, validate_model_card
from .loading import load_pretrained
from .push import PushError, PushResult, push_folder
from .remote_code import write_remote_code

__all__ = [
    "PushError",
    "PushResult",
    "load_pretrained",
    "push_folder",
    "render_model_card",
    "validate_model_card",
    "write_remote_code",
]
