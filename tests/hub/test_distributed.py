"""Beyond one process: FSDP wrapping metadata of every model, shipped accelerate configs, a 2-process gloo run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import FullyShardedDataParallelPlugin

from .tiny_models import model_cases, registration, tiny_config

ROOT = Path(__file__).resolve().parents[2]
CNN_TYPES = {"dgfn"}  # no transformer blocks: `_no_split_modules = []`, like Transformers' ConvNets


# Known model bugs, strict: the test starts failing (XPASS) once fixed, so the entry gets removed.
KNOWN_WRAP_BUGS: dict = {}  # (model_type, auto class) -> reason, for wrap bugs not fixed yet


def _wrap_cases():
    return [
        pytest.param(case, marks=pytest.mark.xfail(reason=KNOWN_WRAP_BUGS[case], strict=True))
        if case in KNOWN_WRAP_BUGS else case
        for case in model_cases()
    ]


@pytest.mark.parametrize("case", _wrap_cases(), ids=lambda c: f"{c[0]}-{c[1]}")
def test_no_split_modules_resolve_to_blocks(case):
    """FSDP's TRANSFORMER_BASED_WRAP (and device_map="auto") wrap the classes named in `_no_split_modules`."""
    model_type, auto_name = case
    model_class = registration(model_type).AUTO_MODEL_CLASSES[auto_name]
    model = model_class(tiny_config(model_type, auto_name))
    names = model._no_split_modules  # what accelerate reads (post_init may narrow the class-level list)
    assert isinstance(names, (list, set, tuple)), f"{model_class.__name__}._no_split_modules is {names!r}"
    if model_type in CNN_TYPES:
        return
    assert names, f"{model_class.__name__} lists no blocks in _no_split_modules"
    present = {type(m).__name__ for m in model.modules()}
    assert set(names) <= present, f"{set(names) - present} listed in _no_split_modules but not in the model"
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    plugin.set_auto_wrap_policy(model)  # raises if a listed name is not a class in the model
    wrapped = {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]}
    assert wrapped == set(names) & present


def test_accelerate_configs_parse():
    fsdp = load_config_from_file(str(ROOT / "scripts/configs/accelerate_fsdp.yaml"))
    assert fsdp.distributed_type == "FSDP"
    assert fsdp.fsdp_config["fsdp_version"] == 2
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp.fsdp_config  # taken from _no_split_modules
    zero2 = load_config_from_file(str(ROOT / "scripts/configs/accelerate_deepspeed_zero2.yaml"))
    assert zero2.distributed_type == "DEEPSPEED" and zero2.deepspeed_config["zero_stage"] == 2


def _run(command, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.mark.slow  # ~3 min on 2 busy cores: five interpreters import torch + transformers
def test_torchrun_and_accelerate_two_processes_match_one_process(tmp_path):
    script = str(ROOT / "tests/hub/ddp_train_lm.py")
    _run([sys.executable, script, str(tmp_path / "single.json"), "8"], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script,
          str(tmp_path / "ddp.json"), "8"], tmp_path)
    single = json.loads((tmp_path / "single.json").read_text())
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    assert ddp["world_size"] == 2 and ddp["distributed_type"].endswith("MULTI_CPU")
    assert single["distributed_type"].endswith("NO")
    assert len(single["losses"]) == len(ddp["losses"]) == 6
    torch.testing.assert_close(torch.tensor(ddp["losses"]), torch.tensor(single["losses"]), rtol=1e-5, atol=1e-5)
    # the model learns: the trajectory is not flat (else equal losses would prove little)
    assert len(set(round(x, 4) for x in single["losses"])) > 1
    # the same script, unchanged, under `accelerate launch` (multi-CPU needs --multi_gpu; --cpu starts one process)
    accelerate = Path(sys.executable).with_name("accelerate")
    if accelerate.exists():
        _run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", script, str(tmp_path / "acc.json"), "8"], tmp_path)
        launched = json.loads((tmp_path / "acc.json").read_text())
        assert launched["world_size"] == 2 and launched["distributed_type"].endswith("MULTI_CPU")
        torch.testing.assert_close(torch.tensor(launched["losses"]), torch.tensor(single["losses"]), rtol=1e-5,
                                   atol=1e-5)
