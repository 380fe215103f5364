"""The documentation stays true to the tree: config paths it names exist, every config file is
documented, the paper is cited as ``docs/paper.md`` only, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 320
# A repository-relative config path: not the tail of a longer path such as src/maestro_lab/configs/….
CONFIG_PATH = re.compile(r"(?<![\w./-])configs/[\w./-]+?\.ya?ml\b")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def config_paths_named(text: str) -> set[str]:
    return set(CONFIG_PATH.findall(text))


def missing_config_paths(text: str, root: Path = ROOT) -> list[str]:
    return sorted(p for p in config_paths_named(text) if not (root / p).is_file())


def undocumented_configs(docs_text: str, root: Path = ROOT) -> list[str]:
    files = sorted(p.relative_to(root).as_posix() for p in (root / "configs").rglob("*") if p.is_file())
    return [f for f in files if f not in docs_text]


def uppercase_paper_citations(roots: list[Path], base: Path = ROOT) -> list[str]:
    """``file:line`` of every ``PAPER.md`` (upper case): the paper is cited as ``docs/paper.md``.

    Build outputs (``*.egg-info`` copies the README, caches) are not sources and are skipped."""
    hits = []
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(base)
            if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in relative.parts):
                continue
            text = path.read_bytes().decode("utf-8", errors="ignore")
            hits += [f"{relative.as_posix()}:{n}" for n, line in enumerate(text.splitlines(), 1) if "PAPER.md" in line]
    return hits


def test_config_paths_named_in_the_docs_exist():
    missing = {}
    for doc in doc_files():
        absent = missing_config_paths(doc.read_text(encoding="utf-8"))
        if absent:
            missing[doc.relative_to(ROOT).as_posix()] = absent
    assert not missing, missing


def test_every_config_file_is_documented():
    docs_text = "\n".join(doc.read_text(encoding="utf-8") for doc in doc_files())
    assert undocumented_configs(docs_text) == []


def test_the_paper_is_cited_as_docs_paper_md():
    hits = uppercase_paper_citations([ROOT / "README.md", ROOT / "docs", ROOT / "src", ROOT / "configs"])
    assert not hits, "cite docs/paper.md, not PAPER.md: " + ", ".join(hits)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


# The checks themselves: each fails when its property breaks.


def test_config_path_pattern_skips_paths_inside_other_folders():
    text = "see `configs/base/gpu.yaml`, src/maestro_lab/configs/testbed/v3.yaml and configs/methods/*.yaml"
    assert config_paths_named(text) == {"configs/base/gpu.yaml"}


def test_a_missing_config_path_is_reported():
    text = "run `--config configs/base/gpu.yaml --config configs/base/nope.yaml`"
    assert missing_config_paths(text) == ["configs/base/nope.yaml"]


def test_an_undocumented_config_is_reported(tmp_path):
    (tmp_path / "configs" / "base").mkdir(parents=True)
    (tmp_path / "configs" / "base" / "a.yaml").write_text("x: 1\n")
    (tmp_path / "configs" / "base" / "b.yaml").write_text("x: 2\n")
    assert undocumented_configs("only configs/base/a.yaml here", tmp_path) == ["configs/base/b.yaml"]


def test_an_uppercase_paper_citation_is_reported(tmp_path):
    (tmp_path / "good.md").write_text("as docs/paper.md#rewards says\n")
    (tmp_path / "bad.py").write_text('"""x"""\n# see PAPER.md §2\n')
    (tmp_path / "pkg.egg-info").mkdir()
    (tmp_path / "pkg.egg-info" / "PKG-INFO").write_text("PAPER.md\n")
    assert uppercase_paper_citations([tmp_path], base=tmp_path) == ["bad.py:2"]
