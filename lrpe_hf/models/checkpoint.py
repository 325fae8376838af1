"""Checks on a saved checkpoint folder, run before Transformers touches it.

A folder with a missing file, a truncated or corrupt ``*.safetensors`` file, a ``config.json`` of another
architecture or one written by a newer, incompatible ``lrpe_hf`` must fail with an error that names the file and
what is wrong -- not with a traceback from deep inside torch or safetensors. Pure standard library: this module is
also bundled into the self-contained remote code written next to every checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

from ..version import __version__

# Key written into every saved config.json; read back when loading.
VERSION_KEY = "lrpe_hf_version"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint folder cannot be loaded; the message names the file and the problem."""


#: Architecture class name -> model_type of every package model, filled by the registry when ``lrpe_hf`` is
#: imported (empty in a remote-code bundle, where the check below then does nothing).
ARCHITECTURE_MODEL_TYPES: dict[str, str] = {}


def check_architectures(model_type: str, architectures) -> None:
    """A config.json whose ``model_type`` was edited to another package type (or mixed up) would fail on the first
    field the other config does not know; name the mismatch instead."""
    for name in architectures or ():
        owner = ARCHITECTURE_MODEL_TYPES.get(name)
        if owner is not None and owner != model_type:
            raise CheckpointError(
                f"config.json says model_type {model_type!r}, but its architectures {list(architectures)} are "
                f"{owner!r} models: the file was edited or mixed up; its model_type should be {owner!r}"
            )


def _release(version: str) -> tuple[int, ...]:
    """(0, 1, 0) from "0.1.0", "0.1.0rc1" or "0.1.0.dev3"."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else (0,)


def _compat_key(release: tuple[int, ...]) -> tuple[int, ...]:
    # Semantic versioning: the major version breaks compatibility; while it is 0, the minor one does.
    release = release + (0,) * (2 - len(release))
    return release[:2] if release[0] == 0 else release[:1]


def check_version_compatible(saved_version, source: str = CONFIG_NAME, installed: str = __version__) -> None:
    """Raise :class:`CheckpointError` if ``saved_version`` was written by a newer, incompatible ``lrpe_hf``."""
    if saved_version is None:
        return  # written before the field existed, or by hand: nothing to compare
    if not isinstance(saved_version, str) or not saved_version[:1].isdigit():
        raise CheckpointError(f"{source}: field {VERSION_KEY!r} must be a version string like '0.1.0', got {saved_version!r}")
    if _compat_key(_release(saved_version)) > _compat_key(_release(installed)):
        raise CheckpointError(
            f"{source} was written by lrpe_hf {saved_version}, which is newer than and incompatible with the installed "
            f"lrpe_hf {installed}. Upgrade the package (pip install -U lrpe_hf), or load the checkpoint with "
            "trust_remote_code=True in an environment without lrpe_hf, which runs the code saved next to it."
        )


def read_config_json(folder: str | os.PathLike) -> dict:
    """``config.json`` of ``folder`` as a dict, with clear errors for a missing or unreadable file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist (or is not a directory)")
    path = folder / CONFIG_NAME
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir())[:12]
        raise FileNotFoundError(
            f"{path} is missing: {folder} is not a saved model folder (it holds {present or 'nothing'}; "
            f"save_pretrained writes {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the file is corrupt or truncated") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(config).__name__}")
    return config


def check_safetensors_file(path: str | os.PathLike) -> None:
    """Validate the header of a ``.safetensors`` file without loading any tensor.

    Layout: 8-byte little-endian header length N, N bytes of JSON (``{name: {dtype, shape, data_offsets}}``), then
    the data. A truncated download or a file of another format fails here with the file named.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a safetensors file: only {size} bytes (truncated or empty)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise CheckpointError(
                f"{path} is truncated or not a safetensors file: its header claims {header_len} bytes but the file "
                f"has {size} bytes"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is corrupt: its safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupt: its safetensors header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{path} is corrupt: tensor {name!r} has no valid data_offsets in the header")
        end = max(end, offsets[1])
    if 8 + header_len + end > size:
        raise CheckpointError(
            f"{path} is truncated: its tensors need {8 + header_len + end} bytes but the file has {size} bytes "
            "(an interrupted download or copy); download or save it again"
        )


def check_checkpoint_folder(
    folder: str | os.PathLike,
    *,
    expected_model_types: tuple[str, ...] | None = None,
    weights_name: str = WEIGHTS_NAME,
    require_weights: bool = True,
) -> dict:
    """Check a saved model folder before loading it; return its ``config.json`` as a dict.

    Raises ``FileNotFoundError`` for missing files and :class:`CheckpointError` (a ``ValueError``) for corrupt
    files, an unexpected ``model_type`` or a newer, incompatible ``lrpe_hf_version``.
    """
    folder = Path(folder)
    config = read_config_json(folder)
    config_path = folder / CONFIG_NAME
    model_type = config.get("model_type")
    if expected_model_types is not None and model_type not in expected_model_types:
        raise CheckpointError(
            f"{config_path} has model_type {model_type!r}, but this class loads {', '.join(map(repr, expected_model_types))}"
        )
    check_version_compatible(config.get(VERSION_KEY), source=str(config_path))
    if not require_weights:
        return config
    index_name = weights_name.replace(".safetensors", ".safetensors.index.json")
    weights, index = folder / weights_name, folder / index_name
    if weights.is_file():
        check_safetensors_file(weights)
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise CheckpointError(f"{index} is corrupt: expected JSON with a 'weight_map' object") from None
        for shard in sorted(set(weight_map.values())):
            shard_path = folder / shard
            if not shard_path.is_file():
                raise FileNotFoundError(f"{shard_path} is missing (listed in {index.name})")
            check_safetensors_file(shard_path)
    else:
        others = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
        hint = (
            f" It holds {others}: lrpe_hf loads safetensors checkpoints only (no pickle); convert them with "
            "model.save_pretrained() in a trusted environment."
            if others
            else ""
        )
        raise FileNotFoundError(f"{weights} is missing: {folder} has a {CONFIG_NAME} but no weights.{hint}")
    return config
