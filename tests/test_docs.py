"""The generated reference pages are current: regenerating them changes nothing."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from tools import docs

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return docs.generate(ROOT)


def test_committed_pages_equal_what_the_code_generates(pages):
    stale = [name for name, text in pages.items() if not (ROOT / name).is_file() or (ROOT / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated pages: {', '.join(stale)}; regenerate them with: {docs.COMMAND}"


def test_every_page_says_it_is_generated(pages):
    assert set(pages) == {"docs/reference/cli.md", "docs/reference/config.md", "docs/reference/hooks.md", "docs/results.md", "docs/recipes.md"}
    for name, text in pages.items():
        assert docs.COMMAND in text.splitlines()[0], name


def test_every_built_in_component_is_in_the_config_page(pages):
    text = pages["docs/reference/config.md"]
    found = docs.builtin_components()
    assert sum(map(len, found.values())) > 0
    missing = [f"{kind}: {entry.name}" for kind, entries in found.items() for entry in entries if f"#### {kind}: `{entry.name}`" not in text]
    assert not missing, f"config.md lacks {missing}; regenerate it with: {docs.COMMAND}"


def test_pages_carry_no_paths_of_this_machine(pages):
    for name, text in pages.items():
        assert str(ROOT) not in text and str(Path.home()) not in text, name


def test_check_names_a_stale_page(tmp_path, capsys):
    for name, text in docs.generate(tmp_path).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "docs/reference/hooks.md").write_text("edited by hand\n", encoding="utf-8")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("stale:")] == ["stale: docs/reference/hooks.md"]
    assert docs.COMMAND in out


def test_the_recipes_page_has_every_method_with_its_paper_and_every_preset(pages):
    from genkit import config, plugins

    text = pages["docs/recipes.md"]
    papers = {
        "cd": "Consistency Models", "ct": "Consistency Models",
        "ict": "Improved Techniques for Training Consistency Models",
        "edm": "Elucidating the Design Space of Diffusion-Based Generative Models",
    }
    for method, title in papers.items():
        section = text.split(f"### `{method}`\n", 1)[1].split("\n### ", 1)[0]
        assert f'"{title}"' in section, method
    for preset in config.preset_names(plugins.registries()):
        assert f"### `{preset}`" in text, preset


def test_the_recipes_page_reads_defaults_from_the_code(pages):
    text = pages["docs/recipes.md"]
    # a part resolved with its own defaults (the doubling curriculum's s0 and s1), from the Config dataclasses
    assert '| `methods.ict.curriculum` | `{name = "doubling", s0 = 10, s1 = 1280}` |' in text
    assert '| `methods.cd.target_ema` | `0.0` |' in text
    # a preset's header comment and a key with its inline comment
    assert "2-D toy distributions and a small MLP" in text
    assert "| `train.steps` | `400000` | iCT: K = 400k |" in text


def test_the_plugin_guide_example_is_a_plugin_as_written(tmp_path, monkeypatch):
    """The guide's first pyproject and module, copied as they are, make a working plugin."""
    import torch

    from genkit import plugins

    blocks = re.findall(r"```(\w*)\n(.*?)```", (ROOT / "docs/plugins.md").read_text(encoding="utf-8"), re.S)
    pyproject = tomllib.loads(next(text for lang, text in blocks if lang == "toml" and "[project]" in text))
    package = pyproject["project"]["entry-points"]["genkit"]["cosine"]
    assert pyproject["tool"]["setuptools"]["packages"] == [package]
    code = next(text for lang, text in blocks if lang == "python" and text.startswith(f"# {package}/__init__.py"))
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with plugins.use(importlib.import_module(package)) as registries:
            loss = registries.losses.build("cosine")
            assert loss(torch.ones(2, 3), -torch.ones(2, 3)).tolist() == pytest.approx([2.0, 2.0])
    finally:
        sys.modules.pop(package, None)  # the next test imports it afresh


def test_every_build_context_field_is_documented_in_the_hooks_page(pages):
    import dataclasses

    from genkit.components import BuildContext

    text = pages["docs/reference/hooks.md"]
    plugin_guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for spec in dataclasses.fields(BuildContext):
        assert spec.metadata.get("help"), spec.name
        assert f"| `{spec.name}` |" in text and spec.metadata["help"] in text.replace("\\|", "|"), spec.name
        assert f"`{spec.name}`" in plugin_guide, spec.name
