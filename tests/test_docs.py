"""The documentation: generated pages that match the code, every setting and hook on them, no dead link."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

DOCS = ROOT / "docs"
GENERATED = ("configuration.md", "hooks.md")


def test_the_generated_pages_are_what_the_code_says(tmp_path):
    out = subprocess.run([sys.executable, "-m", "autoresearch.docsgen", str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    for name in GENERATED:
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (DOCS / name).read_text(encoding="utf-8") if (DOCS / name).is_file() else ""
        assert committed == fresh, f"docs/{name} is out of date with the code: run python -m autoresearch.docsgen"


def test_check_mode_finds_a_stale_page_and_writes_nothing(tmp_path):
    from autoresearch import docsgen

    assert docsgen.main([str(tmp_path)]) == 0
    page = tmp_path / "hooks.md"
    page.write_text(page.read_text() + "a hand edit\n")
    assert docsgen.main([str(tmp_path), "--check"]) == 1
    assert page.read_text().endswith("a hand edit\n")  # --check wrote nothing
    assert docsgen.main([str(tmp_path), "--check"]) == 1


def settings_from_help(tmp_path: Path) -> set[str]:
    """Every setting `autoresearch --help` lists in a folder with no project (so no conftest.py)."""
    out = subprocess.run([sys.executable, "-m", "autoresearch", "--help"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("[tool.autoresearch] settings", 1)[1]
    return set(re.findall(r"^  (\w+)(?: \([^)]*\))? = ", section, re.M))


def test_every_setting_is_on_the_configuration_page(tmp_path):
    names = settings_from_help(tmp_path)
    assert {"budget", "paths", "executor", "ray_address", "mlflow_tracking_uri", "prune_after"} <= names
    page = (DOCS / "configuration.md").read_text()
    missing = sorted(n for n in names if f"### `{n}`\n" not in page)
    assert not missing, f"settings missing from docs/configuration.md: {missing} (run python -m autoresearch.docsgen)"


def test_every_hook_is_on_the_hook_reference():
    from autoresearch.pluginmanager import PluginManager

    hooks = [name for name, caller in vars(PluginManager().hook).items()
             if name.startswith("autoresearch_") and caller.has_spec()]
    assert len(hooks) >= 20 and "autoresearch_experiment_progress" in hooks
    page = (DOCS / "hooks.md").read_text()
    missing = sorted(n for n in hooks if f"### `{n}`\n" not in page)
    assert not missing, f"hooks missing from docs/hooks.md: {missing} (run python -m autoresearch.docsgen)"


def test_the_generator_imports_no_torch_ray_or_mlflow():
    code = ("import sys, autoresearch.docsgen as d; d.pages(); "
            "print(sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", strip_code(path.read_text()), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def strip_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def broken_links(path: Path) -> list[str]:
    """Relative links in a Markdown file whose file, or heading in it, does not exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", strip_code(path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading in {dest.name})")
    return broken


def test_every_relative_link_in_the_readme_and_docs_points_to_an_existing_file():
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    assert len(pages) >= 12
    broken = {p.relative_to(ROOT).as_posix(): b for p in pages if (b := broken_links(p))}
    assert not broken, broken


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n## Noise: how sure\n\n[ok](b.md#the-b) [ok](#noise-how-sure) "
                                   "[web](https://example.com/x) [gone](c.md) [bad](b.md#nothing)\n"
                                   "```\n[in code](not-checked.md)\n```\n")
    (tmp_path / "b.md").write_text("# The `B`\n")
    assert broken_links(tmp_path / "a.md") == ["c.md (no such file)", "b.md#nothing (no such heading in b.md)"]


def test_the_readme_is_a_first_page_and_docs_has_an_index():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "docs/index.md" in readme
    index = (DOCS / "index.md").read_text()
    unlisted = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md" and f"]({p.name}" not in index)
    assert not unlisted, f"docs/index.md does not list {unlisted}"
