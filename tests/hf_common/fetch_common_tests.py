"""Fetch Transformers' own common model tests (ModelTesterMixin, ConfigTester) for the installed version.

They ship in the ``tests/`` folder of the Transformers source distribution, not in the wheel, so this script
downloads the sdist with pip (never committed to this repository), extracts ``test_modeling_common.py`` and
``test_configuration_common.py`` into ``.cache/transformers_common/<version>/transformers_tests/`` and writes three small
stand-ins for modules the sdist lacks: a no-op ``GenerationTesterMixin`` (only an inheritance check uses it), a
no-op ``ExportTesterMixin`` (a base of ModelTesterMixin) and ``config_common_kwargs`` with values that differ from
the v5 defaults. ``tests/hf_common`` skips with a clear reason when this folder is missing.

Usage: ``python tests/hf_common/fetch_common_tests.py`` (``make test`` runs it; failure is not fatal).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMON_ROOT = ROOT / ".cache" / "transformers_common"  # one sub-folder per Transformers version (the compat matrix
# runs several versions from one checkout)
WANTED = ("tests/test_modeling_common.py", "tests/test_configuration_common.py")

STUB_GENERATION = '''"""Stand-in: the real GenerationTesterMixin is not in the sdist's tests we extract."""


class GenerationTesterMixin:
    pass
'''
STUB_EXPORT = '''"""Stand-in: export tests are out of scope (models set test_torch_exportable = False)."""


class ExportTesterMixin:
    pass
'''
# Base-config fields with values different from the v5 defaults, so ConfigTester can see them round-trip.
STUB_CONFIG_KWARGS = '''config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
'''


def main() -> int:
    import transformers

    version = transformers.__version__
    DEST = COMMON_ROOT / version
    stamp = DEST / f"version-{version}"
    if stamp.exists():
        print(f"transformers {version} common tests already in {DEST.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               f"transformers=={version}", "-d", tmp]
        try:
            subprocess.run(cmd, check=True, timeout=600)
        except (subprocess.SubprocessError, OSError) as err:
            print(f"could not download the transformers {version} sdist ({err}); the common-suite tests will skip")
            return 0
        archives = list(Path(tmp).glob("transformers-*.tar.gz"))
        if not archives:
            print("pip produced no transformers sdist; the common-suite tests will skip")
            return 0
        if DEST.exists():
            shutil.rmtree(DEST)
        pkg = DEST / "transformers_tests"
        (pkg / "generation").mkdir(parents=True)
        (pkg / "exporters").mkdir()
        (pkg / "utils").mkdir()
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[-1]
                if rel in WANTED:
                    data = tar.extractfile(member).read()
                    (pkg / Path(rel).name).write_bytes(data)
        for sub in ("", "generation", "exporters", "utils"):
            (pkg / sub / "__init__.py").write_text("")
        (pkg / "generation" / "test_utils.py").write_text(STUB_GENERATION)
        (pkg / "exporters" / "test_export.py").write_text(STUB_EXPORT)
        (pkg / "utils" / "test_configuration_utils.py").write_text(STUB_CONFIG_KWARGS)
        stamp.write_text(version)
    print(f"extracted transformers {version} common tests into {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
