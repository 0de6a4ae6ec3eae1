"""The documentation site builds with `mkdocs build --strict` (every warning an error: a broken link or anchor,
a page missing from the nav, a docstring the API reference cannot render). The `docs` extra installs MkDocs;
`make test` (CI) installs it, so this runs there."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
           if importlib.util.find_spec(m.split(".")[0]) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"the docs extra is not installed ({', '.join(MISSING)} missing): "
                                          "pip install -e '.[docs]'")
def test_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "Set-up: two commands" in index and 'href="environment/"' in index  # README is the front page
    assert (site / "results" / "reference" / "plots" / "violations_unmet.png").is_file()  # its image from outside docs/
    api = (site / "api" / "pev_env" / "index.html").read_text(encoding="utf-8")
    assert "ChargingCore" in api and "EnvConfig" in api  # the API reference is rendered from the docstrings


def test_relative_links_resolve_on_github() -> None:
    """README.md and docs/*.md link to files by paths relative to themselves, as GitHub shows them (the site's
    hook, docs/hooks.py, maps the same links onto the site)."""
    link = re.compile(r"\]\((?!https?:|#|mailto:)([^)\s#]+)(?:#[^)\s]*)?\)")
    broken = [f"{page.relative_to(ROOT)}: {target}"
              for page in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
              for target in link.findall(page.read_text(encoding="utf-8"))
              if not (page.parent / target).exists()]
    assert not broken, broken
