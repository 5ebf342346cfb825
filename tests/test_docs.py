"""The documentation: README.md and docs/*.md.

Links between the pages are checked the way GitHub renders them, so a moved section or a renamed
heading shows up here instead of as a dead link; the generated parameter tables are checked
against the check types' own models.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1", re.DOTALL)
# [text](target) and ![alt](target); the text may itself contain `code` or brackets one deep.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:[^>]*?\s)?(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)


def _prose(text: str) -> str:
    """The page without fenced code blocks, whose '#' lines and brackets are not Markdown."""
    return FENCE.sub("", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation but '-' and '_'
    removed, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (numbered when repeated) and <a id>s."""
    prose = _prose(path.read_text())
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(prose):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    found.update(EXPLICIT_ANCHOR.findall(prose))
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of the page's links that stay inside the repository."""
    prose = INLINE_CODE.sub("", _prose(path.read_text()))
    return [
        target
        for target in LINK.findall(prose)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I)  # http:, mailto:, ...
    ]


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    problems = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: ({target})"
        if not linked.exists():
            problems.append(f"{where} points at a missing file")
        elif root.resolve() not in (linked, *linked.parents):
            problems.append(f"{where} points outside the repository")
        elif anchor and linked.suffix != ".md":
            problems.append(f"{where} has an anchor, but {file_part} is not a Markdown page")
        elif anchor and anchor not in anchors(linked):
            problems.append(f"{where} names no heading or <a id> of {linked.name}")
    return problems


def test_the_anchor_rules_follow_github() -> None:
    """Headings become anchors the way GitHub makes them."""
    assert github_slug("Settings (environment)") == "settings-environment"
    assert (
        github_slug("`backup_files`: dumps in a directory") == "backup_files-dumps-in-a-directory"
    )
    assert (
        github_slug("Quick start from the application's own variables")
        == "quick-start-from-the-applications-own-variables"
    )
    assert github_slug("DrwatchDown") == "drwatchdown"


def test_every_relative_link_and_anchor_resolves() -> None:
    """Each relative link in README.md and docs/*.md reaches a file, and its anchor a heading."""
    assert len(PAGES) > 1, "no pages under docs/"
    problems = [problem for page in PAGES for problem in broken_links(page)]
    assert not problems, "\n".join(problems)


def test_the_link_check_notices_broken_links(tmp_path: Path) -> None:
    """A missing page, a missing heading and an anchor on a non-page are reported; links inside
    code and to existing headings, <a id>s and files are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "app.yaml").write_text("x: 1\n")
    (tmp_path / "docs" / "a.md").write_text(
        '# A page\n\n## Settings (environment)\n\n<a id="custom"></a>\n'
    )
    (tmp_path / "README.md").write_text(
        "# Top\n\n"
        "[ok](docs/a.md#settings-environment) [ok](docs/a.md#custom) [ok](#top) [ok](app.yaml)\n"
        "[gone](docs/b.md) [no heading](docs/a.md#settings) [no anchor](app.yaml#x)\n"
        "`[in code](docs/c.md)`\n\n```md\n[in a block](docs/d.md)\n# not a heading\n```\n"
        "[not here](#not-a-heading)\n"
    )
    problems = broken_links(tmp_path / "README.md", root=tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "(docs/b.md) points at a missing file",
        "(docs/a.md#settings) names no heading or <a id> of a.md",
        "(app.yaml#x) has an anchor, but app.yaml is not a Markdown page",
        "(#not-a-heading) names no heading or <a id> of README.md",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_page_is_linked_from_the_readme_or_the_docs_index(page: Path) -> None:
    """No page of docs/ is an orphan: the README or docs/README.md links to it."""
    if page.name == "README.md":
        return
    linking = [REPO / "README.md", REPO / "docs" / "README.md"]
    targets = {
        (source.parent / t.partition("#")[0]).resolve()
        for source in linking
        if source.exists()
        for t in relative_links(source)
    }
    assert page.resolve() in targets, f"{page.relative_to(REPO)} is not linked from an index"


def test_the_generated_parameter_tables_match_the_models() -> None:
    """scripts/gen_check_docs.py --check finds docs/checks.md and README.md up to date."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_check_docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_generator_resolves_lazy_registry_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CHECK_TYPES value given as "module:Class" resolves to the same class as the class."""
    import importlib.util

    import app.checks

    spec = importlib.util.spec_from_file_location(
        "gen_check_docs", REPO / "scripts" / "gen_check_docs.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    classes = generator._check_classes()
    lazy = {name: f"{cls.__module__}:{cls.__qualname__}" for name, cls in classes.items()}
    monkeypatch.setattr(app.checks, "CHECK_TYPES", lazy)
    assert generator._check_classes() == classes


def test_the_readme_stays_short_and_keeps_its_two_commands() -> None:
    """The README is a front page: the two commands on top, the rest in docs/."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    first_block = FENCE.search(readme)
    assert first_block is not None
    assert (
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/drwatch serve"
        in first_block.group(0)
    )
    assert "bash scripts/test.sh" in first_block.group(0)
