"""``lrpe_hf.load_pretrained``: load any saved package checkpoint with the right class and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

from ..models.checkpoint import CheckpointError, check_checkpoint_folder
from ..models.registry import MODEL_TYPES, model_module


def registered_classes(model_type: str) -> dict[str, type]:
    """``{Auto class name: model class}`` of a registered model type."""
    return dict(model_module(model_type).AUTO_MODEL_CLASSES)


def load_pretrained(folder: str | os.PathLike, auto_class: str | None = None, **kwargs):
    """Load a model saved by ``save_pretrained`` from a local folder.

    The class is ``auto_class`` (e.g. ``"AutoModelForCausalLM"``) when given, else the one named in the config's
    ``architectures``, else ``AutoModel``'s. Missing or corrupt files, an unknown ``model_type`` and a checkpoint
    from a newer incompatible ``lrpe_hf`` raise ``FileNotFoundError``/``ValueError`` naming the file and the
    problem. Extra keyword arguments go to ``from_pretrained``.
    """
    folder = Path(folder)
    config = check_checkpoint_folder(folder, require_weights=False)
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise CheckpointError(
            f"{folder / 'config.json'} has model_type {model_type!r}, which lrpe_hf does not provide "
            f"(registered: {', '.join(sorted(MODEL_TYPES))})"
        )
    classes = registered_classes(model_type)
    if auto_class is not None:
        if auto_class not in classes:
            raise ValueError(
                f"model_type {model_type!r} is not registered for {auto_class}; choose one of {sorted(classes)}"
            )
        model_class = classes[auto_class]
    else:
        by_name = {cls.__name__: cls for cls in classes.values()}
        architectures = config.get("architectures") or []
        model_class = next((by_name[a] for a in architectures if a in by_name), classes.get("AutoModel"))
        if model_class is None:
            model_class = next(iter(classes.values()))
    return model_class.from_pretrained(folder, **kwargs)
