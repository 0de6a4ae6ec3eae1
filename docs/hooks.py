"""MkDocs hook: the site's front page is README.md, read from the repository root.

README.md links into the docs as `docs/PAGE.md` (so that they work on GitHub); on the site it becomes
`index.md` with those links made relative to the docs folder. Images that a page takes from outside the
docs folder (`results/reference/plots/...` from README.md, `../results/...` from a page) are added to the
site under the same path relative to the repository root, so one file serves GitHub and the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"\]\((?!https?:|#|mailto:)([^)\s]+)\)")
_OUTSIDE_IMAGE = re.compile(r"!\[[^\]]*\]\((?:\.\./)?((?:results|benchmarks)/[^)\s]+)\)")


def front_page(readme: str) -> str:
    """README.md as the docs' index.md: `docs/X` links become `X`, other relative links stay repository paths."""
    return _LINK.sub(lambda m: f"]({m.group(1).removeprefix('docs/')})", readme)


def on_files(files: Files, config: Any) -> Files:
    """Add index.md (from README.md) and the images the pages take from outside the docs folder."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=front_page(readme)))
    texts = [readme] + [p.read_text(encoding="utf-8") for p in Path(config["docs_dir"]).glob("*.md")]
    for path in sorted({m.group(1) for text in texts for m in _OUTSIDE_IMAGE.finditer(text)}):
        files.append(File.generated(config, path, abs_src_path=str(ROOT / path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """A page's `../results/...` image is the site's `results/...` (pages sit at the docs root)."""
    return re.sub(r"\]\(\.\./((?:results|benchmarks)/)", r"](\1", markdown)
