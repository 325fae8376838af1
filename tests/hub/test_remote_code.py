"""Every architecture saved by the package loads (a) with lrpe_hf imported through the plain Auto classes and
(b) with trust_remote_code=True in a fresh process where lrpe_hf cannot be imported, with identical outputs."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from safetensors.torch import save_file

import lrpe_hf
from lrpe_hf.hub.remote_code import BundleError

from .tiny_models import example_inputs, model_cases, output_tensors, registration, tiny_config

CASES = model_cases()

# Runs in a fresh interpreter: lrpe_hf is made unimportable, then every saved folder is loaded through the Auto
# classes with trust_remote_code=True and its outputs compared with the ones computed by the package.
CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockLrpeHf(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "lrpe_hf" or name.startswith("lrpe_hf."):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockLrpeHf())
    try:
        import lrpe_hf  # noqa: F401
        raise SystemExit("lrpe_hf is importable in the child process")
    except ImportError:
        pass

    import torch, transformers
    from safetensors.torch import load_file

    def tensors(output):
        items = output.to_tuple() if hasattr(output, "to_tuple") else output
        found = []
        for item in items if isinstance(items, (tuple, list)) else (items,):
            if isinstance(item, torch.Tensor):
                found.append(item)
            elif isinstance(item, (tuple, list)):
                found.extend(tensors(item))
        return found

    results = {}
    for job in json.loads(sys.argv[1]):
        key = job["key"]
        try:
            auto = getattr(transformers, job["auto"])
            model = auto.from_pretrained(job["folder"], trust_remote_code=True).eval()
            inputs = load_file(job["inputs"])
            expected = load_file(job["expected"])
            with torch.no_grad():
                got = tensors(model(**inputs))
            diffs = [float((g - expected[str(i)]).abs().max()) if g.shape == expected[str(i)].shape else float("inf")
                     for i, g in enumerate(got)]
            entry = {"module": type(model).__module__, "class": type(model).__name__, "n": len(got),
                     "n_expected": len(expected), "max_diff": max(diffs) if diffs else None}
            if job.get("resave"):
                # a user without the package fine-tunes and re-saves: the folder must stay loadable
                resaved = job["folder"] + "-resaved"
                model.save_pretrained(resaved)
                again = auto.from_pretrained(resaved, trust_remote_code=True).eval()
                with torch.no_grad():
                    got2 = tensors(again(**inputs))
                entry["resave_max_diff"] = max(float((a - b).abs().max()) for a, b in zip(got2, got))
                entry["resave_module"] = type(again).__module__
            if job["processor"]:
                processor = transformers.AutoImageProcessor.from_pretrained(job["folder"], trust_remote_code=True)
                entry["processor_module"] = type(processor).__module__
            entry["lrpe_hf_imported"] = any(m == "lrpe_hf" or m.startswith("lrpe_hf.") for m in sys.modules)
            results[key] = entry
        except Exception as err:  # reported per case by the parent test
            results[key] = {"error": f"{type(err).__name__}: {err}"}
    print("RESULTS " + json.dumps(results))
    """
)


def _case_id(case):
    return f"{case[0]}-{case[1]}"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Save every (model_type, Auto class) once; return {key: (folder, model, inputs, expected outputs)}."""
    root = tmp_path_factory.mktemp("hub_models")
    cases = {}
    for model_type, auto_name in CASES:
        torch.manual_seed(0)
        config = tiny_config(model_type, auto_name)
        model_class = registration(model_type).AUTO_MODEL_CLASSES[auto_name]
        model = model_class(config).eval()
        folder = root / f"{model_type}-{auto_name}"
        processor_class = getattr(registration(model_type), "IMAGE_PROCESSOR_CLASS", None)
        if processor_class is not None:
            processor_class().save_pretrained(folder)  # processor first: the model save must still add auto_map
        model.save_pretrained(folder)
        inputs = example_inputs(model_class, config)
        with torch.no_grad():
            expected = output_tensors(model(**inputs))
        save_file({k: v.contiguous() for k, v in inputs.items()}, root / f"{folder.name}.inputs.safetensors")
        save_file({str(i): t.contiguous() for i, t in enumerate(expected)}, root / f"{folder.name}.expected.safetensors")
        cases[_case_id((model_type, auto_name))] = (folder, model, inputs, expected, processor_class is not None)
    return root, cases


@pytest.fixture(scope="module")
def remote_results(saved, tmp_path_factory):
    root, cases = saved
    jobs = [
        {"key": key, "auto": key.split("-", 1)[1], "folder": str(folder), "processor": has_processor, "resave": True,
         "inputs": str(root / f"{folder.name}.inputs.safetensors"),
         "expected": str(root / f"{folder.name}.expected.safetensors")}
        for key, (folder, _, _, _, has_processor) in cases.items()
    ]
    workdir = tmp_path_factory.mktemp("child_cwd")  # neither the repository nor lrpe_hf on the path
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(workdir / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(jobs)], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_trust_remote_code_without_package(case, remote_results, saved):
    result = remote_results[_case_id(case)]
    assert "error" not in result, result.get("error")
    assert result["module"].startswith("transformers_modules."), result
    assert not result["lrpe_hf_imported"]
    assert result["n"] == result["n_expected"] > 0
    assert result["max_diff"] <= 1e-5, result
    assert result["resave_max_diff"] <= 1e-6 and result["resave_module"].startswith("transformers_modules."), result
    if saved[1][_case_id(case)][4]:
        assert result["processor_module"].startswith("transformers_modules."), result


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_plain_auto_class_with_package(case, saved):
    model_type, auto_name = case
    folder, model, inputs, expected, has_processor = saved[1][_case_id(case)]
    loaded = getattr(transformers, auto_name).from_pretrained(folder).eval()
    assert type(loaded) is type(model)  # the registered class wins over auto_map
    with torch.no_grad():
        got = output_tensors(loaded(**inputs))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)
    if has_processor:
        processor = transformers.AutoImageProcessor.from_pretrained(folder)
        assert type(processor) is registration(model_type).IMAGE_PROCESSOR_CLASS


@pytest.mark.parametrize("model_type", sorted(lrpe_hf.MODEL_TYPES))
def test_saved_folder_layout(model_type, saved):
    """auto_map names AutoConfig and every registered Auto class; the version is stamped; no package import left."""
    folder = next(f for key, (f, *_rest) in saved[1].items() if key.startswith(model_type + "-"))
    config = json.loads((folder / "config.json").read_text())
    assert config["lrpe_hf_version"] == lrpe_hf.__version__
    expected_autos = {"AutoConfig", *registration(model_type).AUTO_MODEL_CLASSES}
    assert set(config["auto_map"]) == expected_autos
    for auto_name, ref in config["auto_map"].items():
        module_name = ref.split(".")[0]
        assert (folder / f"{module_name}.py").is_file(), ref
    for code in folder.glob("*.py"):
        for node in ast.walk(ast.parse(code.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level in (0, 1), f"{code.name} line {node.lineno}: relative import beyond the folder"
                assert node.level == 1 or not (node.module or "").startswith("lrpe_hf"), f"{code.name}: {node.module}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("lrpe_hf") for a in node.names), code.name
    if getattr(registration(model_type), "IMAGE_PROCESSOR_CLASS", None) is not None:
        processor_config = json.loads((folder / "preprocessor_config.json").read_text())
        assert set(processor_config["auto_map"]) == {"AutoImageProcessor"}


def test_processor_saved_after_model_gets_auto_map(tmp_path):
    types = [mt for mt in sorted(lrpe_hf.MODEL_TYPES) if getattr(registration(mt), "IMAGE_PROCESSOR_CLASS", None)]
    if not types:
        pytest.skip("no registered model type has an image processor yet")
    model_type = types[0]
    auto_name, model_class = next(iter(registration(model_type).AUTO_MODEL_CLASSES.items()))
    model = model_class(tiny_config(model_type, auto_name))
    model.save_pretrained(tmp_path)
    registration(model_type).IMAGE_PROCESSOR_CLASS().save_pretrained(tmp_path)
    processor_config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    module_name, class_name = processor_config["auto_map"]["AutoImageProcessor"]["pil"].split(".")
    assert (tmp_path / f"{module_name}.py").is_file()
    assert class_name == registration(model_type).IMAGE_PROCESSOR_CLASS.__name__


def test_bundle_opt_out(tmp_path, monkeypatch):
    model_type = sorted(lrpe_hf.MODEL_TYPES)[0] if lrpe_hf.MODEL_TYPES else pytest.skip("no model registered")
    auto_name, model_class = next(iter(registration(model_type).AUTO_MODEL_CLASSES.items()))
    monkeypatch.setattr(model_class, "bundle_remote_code", False)
    model_class(tiny_config(model_type, auto_name)).save_pretrained(tmp_path)
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())
    assert not list(tmp_path.glob("*.py"))


def test_bundle_rewrites_imports(tmp_path, monkeypatch):
    """The rewriter on a synthetic package: relative, absolute, lazy and submodule imports, and the name that is
    both a submodule and a function exported by its package (``ops.linear_attention``)."""
    from lrpe_hf.hub import remote_code

    files = {
        "fakepkg/__init__.py": "",
        "fakepkg/ops/__init__.py": "from .linear_attention import linear_attention\nfrom .maps import feature_map\n",
        "fakepkg/ops/linear_attention.py": "def linear_attention():\n    return 1\n",
        "fakepkg/ops/maps.py": "def feature_map():\n    return 2\n",
        "fakepkg/models/__init__.py": "",
        "fakepkg/models/x/__init__.py": "",
        "fakepkg/models/x/helper.py": "VALUE = 3\n",
        "fakepkg/models/x/modeling_x.py": (
            "import math\n"
            "from ...ops import feature_map, linear_attention\n"
            "from .helper import VALUE as V\n"
            "from . import helper\n"
            "import fakepkg.models.x.helper as h2\n"
            "def f():\n"
            "    from ...ops.maps import feature_map as fm  # lazy\n"
            "    return linear_attention, feature_map, fm, V, helper.VALUE, h2.VALUE, math.pi\n"
        ),
        "fakepkg/models/x/bad.py": "from fakepkg import ops\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(remote_code, "PACKAGE", "fakepkg")
    source, deps = remote_code._rewrite_module("fakepkg.models.x.modeling_x", "fakepkg.models.x")
    assert "from .fakepkg__ops import feature_map, linear_attention\n" in source  # the function, not the module
    assert "from .helper import VALUE as V\n" in source
    assert "from .helper import __name__ as _bundled_helper; from . import helper as helper\n" in source
    assert "from . import helper as h2\n" in source
    assert "    from .fakepkg__ops__maps import feature_map as fm  # lazy\n" in source
    assert deps == {"fakepkg.ops", "fakepkg.ops.maps", "fakepkg.models.x.helper"}
    # the flat files import and run on their own
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "__init__.py").write_text("")
    (bundle / "modeling_x.py").write_text(source)
    for dep in deps:
        text, _ = remote_code._rewrite_module(dep, "fakepkg.models.x")
        (bundle / f"{remote_code._flat_name(dep, 'fakepkg.models.x')}.py").write_text(text)
    for dep in ("fakepkg.ops.linear_attention",):  # reached from fakepkg/ops/__init__.py
        text, _ = remote_code._rewrite_module(dep, "fakepkg.models.x")
        (bundle / f"{remote_code._flat_name(dep, 'fakepkg.models.x')}.py").write_text(text)
    import importlib

    module = importlib.import_module("bundle.modeling_x")
    assert module.f()[0]() == 1 and module.f()[1]() == 2 and module.f()[3:6] == (3, 3, 3)
    with pytest.raises(BundleError, match="top-level"):
        remote_code._rewrite_module("fakepkg.models.x.bad", "fakepkg.models.x")


def test_save_pretrained_push_to_hub_saves_bundle_then_pushes(tmp_path, monkeypatch):
    model_type = sorted(lrpe_hf.MODEL_TYPES)[0]
    auto_name, model_class = next(iter(registration(model_type).AUTO_MODEL_CLASSES.items()))
    model = model_class(tiny_config(model_type, auto_name))
    calls = []
    monkeypatch.setattr(model_class, "push_to_hub", lambda self, repo_id, **kw: calls.append((repo_id, kw)))
    model.save_pretrained(tmp_path / "out", push_to_hub=True, repo_id="me/tiny", commit_message="m", private=True)
    assert calls == [("me/tiny", {"commit_message": "m", "private": True})]
    assert "auto_map" in json.loads((tmp_path / "out" / "config.json").read_text())
