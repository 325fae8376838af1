"""README's quick starts run as written (README must stay true)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the LM quick start saves into ./out
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (the documented code itself)
    assert namespace["out"].shape[0] == 1 and namespace["smoothed"].shape == (1, 3, 64, 64)
    assert (tmp_path / "out" / "lrpe" / "config.json").is_file()
