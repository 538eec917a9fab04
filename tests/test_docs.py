"""The generated reference pages are current: regenerating them changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from genkit import docs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return docs.generate(ROOT)


def test_committed_pages_equal_what_the_code_generates(pages):
    stale = [name for name, text in pages.items() if not (ROOT / name).is_file() or (ROOT / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated pages: {', '.join(stale)}; regenerate them with: {docs.COMMAND}"


def test_every_page_says_it_is_generated(pages):
    assert set(pages) == {"docs/reference/cli.md", "docs/reference/config.md", "docs/reference/hooks.md", "docs/results.md"}
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
