"""Checkpoints are a promise: the fixtures that earlier code saved (tests/fixtures/checkpoints, written by the script
beside them at the commit in manifest.json) load with today's code -- every key used, none missing -- and give the
logits, and for causal LMs the greedy continuation, that the saving code computed."""

import inspect
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

import lrpe_hf  # noqa: F401  (registers the model types)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
LOCAL = sorted(name for name, entry in MANIFEST.items() if not entry["remote_code"])
ARCHIVED = sorted(name for name, entry in MANIFEST.items() if entry["remote_code"])


def _unpack(name, tmp_path):
    with tarfile.open(FIXTURES / f"{name}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / name


def _check(model, folder, greedy):
    expected = load_file(str(folder / "expected.safetensors"))
    inputs = {k.removeprefix("input."): v for k, v in expected.items() if k.startswith("input.")}
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits.float(), expected["logits"], rtol=1e-5, atol=1e-5)
        if greedy:
            got = model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
            assert torch.equal(got, expected["greedy"])


def _load(entry, folder, **kwargs):
    auto = getattr(transformers, entry["auto_class"])
    model, info = auto.from_pretrained(folder, output_loading_info=True, **kwargs)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return model.eval()


def test_the_manifest_lists_every_fixture_and_nothing_else():
    on_disk = {p.name.removesuffix(".tar.gz") for p in FIXTURES.iterdir() if p.name not in ("manifest.json",
                                                                                          "make_checkpoints.py")}
    assert on_disk == set(MANIFEST) and len(MANIFEST) >= 20


@pytest.mark.parametrize("name", LOCAL)
def test_old_checkpoint_loads_with_the_same_outputs(name):
    entry = MANIFEST[name]
    _check(_load(entry, FIXTURES / name), FIXTURES / name, entry["greedy"])


@pytest.mark.parametrize("name", ARCHIVED)
def test_old_checkpoint_with_remote_code_loads_through_the_package(name, tmp_path):
    """Its config.json carries an auto_map; without trust_remote_code the installed package's classes load it."""
    folder = _unpack(name, tmp_path)
    entry = MANIFEST[name]
    model = _load(entry, folder)
    assert type(model).__module__.startswith("lrpe_hf.")
    _check(model, folder, entry["greedy"])


@pytest.mark.parametrize("name", ARCHIVED)
def test_old_checkpoint_with_remote_code_loads_its_own_code_without_the_package(name, tmp_path):
    """trust_remote_code=True where lrpe_hf cannot be imported runs the code saved with the checkpoint."""
    folder = _unpack(name, tmp_path)
    helpers = "\n\n".join(inspect.getsource(f) for f in (_check, _load))
    script = f"""
import sys
sys.modules["lrpe_hf"] = None  # not importable: only the code saved with the checkpoint may run
from pathlib import Path
import torch, transformers
from safetensors.torch import load_file
{helpers}
model = _load({MANIFEST[name]!r}, {str(folder)!r}, trust_remote_code=True)
assert not type(model).__module__.startswith("lrpe_hf."), type(model).__module__
_check(model, Path({str(folder)!r}), {MANIFEST[name]["greedy"]!r})
print("ok")
"""
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]


@pytest.mark.parametrize("name", LOCAL)
def test_resaved_old_checkpoint_keeps_its_key_names_and_outputs(name, tmp_path):
    """Renamed attention parameters (``out_proj`` -> ``o_proj``, ...) are a load-time migration, and saving renames
    them back: the file a user re-saves has the keys it had, so earlier versions of the package still read it."""
    entry = MANIFEST[name]
    model = _load(entry, FIXTURES / name)
    model.save_pretrained(tmp_path / "again")
    assert set(load_file(str(tmp_path / "again" / "model.safetensors"))) == \
        set(load_file(str(FIXTURES / name / "model.safetensors")))
    _check(_load(entry, tmp_path / "again"), FIXTURES / name, entry["greedy"])
