"""The Transformers range: one promise, stated in pyproject.toml and checked at import."""

import subprocess
import sys
import tomllib
from pathlib import Path

import lrpe_hf  # noqa: F401
from lrpe_hf.version import SUPPORTED_TRANSFORMERS

ROOT = Path(__file__).resolve().parents[2]


def test_declared_range_equals_the_import_check():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("transformers"))
    assert spec == f"transformers{SUPPORTED_TRANSFORMERS}"


def test_import_warns_once_outside_the_verified_range():
    code = (
        "import warnings, transformers\n"
        "transformers.__version__ = '9.0.0'\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import lrpe_hf, importlib\n"
        "    import lrpe_hf.models\n"
        "msgs = [str(x.message) for x in w if 'verified with transformers' in str(x.message)]\n"
        "assert len(msgs) == 1 and '9.0.0' in msgs[0] and '" + SUPPORTED_TRANSFORMERS + "' in msgs[0], msgs\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_import_is_quiet_inside_the_range():
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import lrpe_hf\n"
        "assert not [x for x in w if 'verified with transformers' in str(x.message)]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
