"""MkDocs hooks (mkdocs.yml ``hooks:``): checks that keep the site true to the code.

Each failed check is a warning, so ``mkdocs build --strict`` (``make docs``) fails on it:

* a page whose front matter lists ``config_classes: [lrpe_hf/models/<x>/configuration_<x>.py:ClassName]`` must name
  every argument of that class's ``__init__`` in backticks, so a field added or renamed in code is documented;
* a page whose front matter lists ``commands: [...]`` names ``lrpe-hf`` sub-commands that exist, and together the
  pages cover every sub-command of ``lrpe_hf/cli.py``;
* README.md and the pages that state the supported Transformers range state the one ``lrpe_hf/version.py`` declares;
* README.md's relative links point at files that exist (MkDocs checks the pages' own links).

Everything is read statically (``ast``, regular expressions): the build imports neither torch nor the package.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.lrpe_hf")
ROOT = Path(__file__).resolve().parents[1]
_commands_documented: set[str] = set()


def _init_arguments(source: Path, class_name: str) -> list[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args.posonlyargs + item.args.args + item.args.kwonlyargs
                    return [a.arg for a in args if a.arg != "self"]
    raise LookupError(f"class {class_name} with an __init__ not found in {source.relative_to(ROOT)}")


def _cli_commands() -> set[str]:
    tree = ast.parse((ROOT / "lrpe_hf" / "cli.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "COMMANDS":
            return {key.value for key in node.value.keys}
    raise LookupError("COMMANDS not found in lrpe_hf/cli.py")


def _supported_transformers() -> str:
    text = (ROOT / "lrpe_hf" / "version.py").read_text(encoding="utf-8")
    return re.search(r'SUPPORTED_TRANSFORMERS\s*=\s*"([^"]+)"', text).group(1)


def on_pre_build(config, **kwargs) -> None:
    _commands_documented.clear()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    supported = _supported_transformers()
    if f"`{supported}`" not in readme:
        log.warning(f"README.md does not state the supported Transformers range `{supported}` (lrpe_hf/version.py)")
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (ROOT / target.split("#")[0]).exists():
            log.warning(f"README.md links to '{target}', which does not exist")


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    meta = page.meta or {}
    for spec in meta.get("config_classes", []):
        path, class_name = spec.split(":")
        try:
            fields = _init_arguments(ROOT / path, class_name)
        except (OSError, LookupError) as err:
            log.warning(f"{page.file.src_uri}: config_classes entry '{spec}': {err}")
            continue
        missing = [f for f in fields if not re.search(rf"`{re.escape(f)}\b", markdown)]
        if missing:
            log.warning(f"{page.file.src_uri} does not document these fields of {class_name}: {', '.join(missing)}")
    if meta.get("commands"):
        known = _cli_commands()
        for name in meta["commands"]:
            if name not in known:
                log.warning(f"{page.file.src_uri} documents `lrpe-hf {name}`, which lrpe_hf/cli.py does not define")
            _commands_documented.add(name)
    if meta.get("states_transformers_range"):
        supported = _supported_transformers()
        if f"`{supported}`" not in markdown:
            log.warning(f"{page.file.src_uri} does not state the supported Transformers range `{supported}`")
    return markdown


def on_post_build(config, **kwargs) -> None:
    undocumented = sorted(_cli_commands() - _commands_documented)
    if undocumented:
        log.warning(f"no page documents these lrpe-hf commands: {', '.join(undocumented)} (front matter `commands:`)")
