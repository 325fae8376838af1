"""Broken checkpoint folders fail with an error naming the file and the problem, never deep in torch."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import save_file

import lrpe_hf
from lrpe_hf.models.checkpoint import CheckpointError, check_checkpoint_folder, check_version_compatible

from .tiny_models import registration, tiny_config

MODEL_TYPES = sorted(lrpe_hf.MODEL_TYPES)


# ---- unit level: synthetic folders, no model needed ------------------------------------------------------------
def _folder(tmp_path, config=None, tensors=True):
    (tmp_path / "config.json").write_text(json.dumps(config or {"model_type": "lrpe", "lrpe_hf_version": "0.1.0"}))
    if tensors:
        save_file({"w": torch.arange(100, dtype=torch.float32), "b": torch.zeros(3)}, tmp_path / "model.safetensors")
    return tmp_path


def test_valid_folder_passes(tmp_path):
    assert check_checkpoint_folder(_folder(tmp_path))["model_type"] == "lrpe"


def test_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        check_checkpoint_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_checkpoint_folder(tmp_path / "nope")


def test_missing_weights_mentions_pickle_files(tmp_path):
    _folder(tmp_path, tensors=False)
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing"):
        check_checkpoint_folder(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"pytorch_model\.bin.*safetensors checkpoints only"):
        check_checkpoint_folder(tmp_path)


@pytest.mark.parametrize("keep", [0, 5, 12, -20])
def test_truncated_safetensors(tmp_path, keep):
    path = _folder(tmp_path) / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|not a safetensors)"):
        check_checkpoint_folder(tmp_path)


def test_garbage_safetensors(tmp_path):
    path = _folder(tmp_path) / "model.safetensors"
    path.write_bytes((16).to_bytes(8, "little") + b"\xff" * 16 + b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
        check_checkpoint_folder(tmp_path)


def test_corrupt_config_json(tmp_path):
    _folder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "lrpe", ')
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        check_checkpoint_folder(tmp_path)


def test_sharded_checkpoint_missing_shard(tmp_path):
    _folder(tmp_path, tensors=False)
    save_file({"w": torch.zeros(2)}, tmp_path / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match=r"model-00002-of-00002\.safetensors is missing"):
        check_checkpoint_folder(tmp_path)


def test_unexpected_model_type(tmp_path):
    _folder(tmp_path, {"model_type": "bert"})
    with pytest.raises(CheckpointError, match=r"config\.json has model_type 'bert'.*'lrpe'"):
        check_checkpoint_folder(tmp_path, expected_model_types=("lrpe",))


@pytest.mark.parametrize(
    "saved, installed, ok",
    [("0.1.0", "0.1.0", True), ("0.1.7", "0.1.0", True), ("0.0.9", "0.1.0", True), ("0.2.0", "0.1.3", False),
     ("1.0.0", "0.9.0", False), ("1.4.0", "1.0.0", True), ("2.0.0rc1", "1.9.0", False), (None, "0.1.0", True)],
)
def test_version_compatibility(saved, installed, ok):
    if ok:
        check_version_compatible(saved, installed=installed)
    else:
        with pytest.raises(CheckpointError, match=f"written by lrpe_hf {saved}.*newer"):
            check_version_compatible(saved, installed=installed)


def test_version_field_must_be_a_version():
    with pytest.raises(CheckpointError, match="lrpe_hf_version"):
        check_version_compatible(3)


def test_load_pretrained_unknown_model_type(tmp_path):
    _folder(tmp_path, {"model_type": "not_a_model"})
    with pytest.raises(ValueError, match=r"config\.json has model_type 'not_a_model', which lrpe_hf does not provide"):
        lrpe_hf.load_pretrained(tmp_path)


# ---- through the real loading paths of every registered architecture ---------------------------------------------
@pytest.fixture(scope="module", params=MODEL_TYPES)
def saved_model(request, tmp_path_factory):
    model_type = request.param
    auto_name, model_class = next(iter(registration(model_type).AUTO_MODEL_CLASSES.items()))
    folder = tmp_path_factory.mktemp(model_type) / "model"
    torch.manual_seed(0)
    model_class(tiny_config(model_type, auto_name)).save_pretrained(folder)
    return model_type, auto_name, model_class, folder


def _copy(saved_model, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(saved_model[3], folder)
    return folder


def _loaders(saved_model):
    model_type, auto_name, model_class, _ = saved_model
    return [
        ("Auto", lambda f: getattr(transformers, auto_name).from_pretrained(f)),
        ("class", lambda f: model_class.from_pretrained(f)),
        ("load_pretrained", lambda f: lrpe_hf.load_pretrained(f)),
    ]


def test_good_checkpoint_loads_and_records_version(saved_model):
    model_type, auto_name, model_class, folder = saved_model
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.lrpe_hf_version == lrpe_hf.__version__
    assert type(lrpe_hf.load_pretrained(folder)).__name__ in json.loads((folder / "config.json").read_text())["architectures"]
    assert isinstance(lrpe_hf.load_pretrained(folder, auto_class=auto_name), model_class)
    with pytest.raises(ValueError, match="not registered for AutoModelForNothing"):
        lrpe_hf.load_pretrained(folder, auto_class="AutoModelForNothing")


def test_missing_weights_every_path(saved_model, tmp_path):
    folder = _copy(saved_model, tmp_path)
    (folder / "model.safetensors").unlink()
    for name, load in _loaders(saved_model):
        with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing"):
            load(folder)


def test_truncated_weights_every_path(saved_model, tmp_path):
    folder = _copy(saved_model, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for name, load in _loaders(saved_model):
        with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated"):
            load(folder)


def test_newer_version_every_path(saved_model, tmp_path):
    folder = _copy(saved_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["lrpe_hf_version"] = "99.0.0"
    (folder / "config.json").write_text(json.dumps(config))
    for name, load in _loaders(saved_model):
        with pytest.raises(CheckpointError, match=r"config\.json was written by lrpe_hf 99\.0\.0.*newer"):
            load(folder)


def test_missing_config_every_path(saved_model, tmp_path):
    folder = _copy(saved_model, tmp_path)
    (folder / "config.json").unlink()
    for name, load in _loaders(saved_model)[1:]:  # AutoConfig raises Transformers' own error first
        with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
            load(folder)
    with pytest.raises((OSError, ValueError), match=r"config\.json"):
        _loaders(saved_model)[0][1](folder)


def test_other_model_type_every_path(saved_model, tmp_path):
    model_type, auto_name, model_class, _ = saved_model
    folder = _copy(saved_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "unknown_arch"
    (folder / "config.json").write_text(json.dumps(config))
    # Transformers' own answer: the folder carries code (auto_map), so it asks for trust_remote_code
    with pytest.raises(ValueError, match="trust_remote_code"):
        getattr(transformers, auto_name).from_pretrained(folder)
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model type `unknown_arch`"):
        getattr(transformers, auto_name).from_pretrained(folder)
    with pytest.raises(CheckpointError, match=rf"has model_type 'unknown_arch', but this class loads '{model_type}'"):
        model_class.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="which lrpe_hf does not provide"):
        lrpe_hf.load_pretrained(folder)


def test_failed_save_keeps_existing_checkpoint(saved_model, tmp_path, monkeypatch):
    from lrpe_hf.models import modeling_common

    model_type, auto_name, model_class, _ = saved_model
    folder = _copy(saved_model, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(modeling_common, "_remote_code_writer", boom)  # the save hook the package installs
    model = model_class(tiny_config(model_type, auto_name))
    with pytest.raises(RuntimeError, match="disk full"):
        model.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt.tmp")]
