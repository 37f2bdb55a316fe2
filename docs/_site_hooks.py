"""MkDocs hooks for the documentation site (mkdocs.yml names this file; it is not a page).

Three pages are files kept elsewhere in the repository, where GitHub shows them: ``getting-started.md`` is
README.md, ``benchmarks.md`` is benchmarks/README.md and ``changelog.md`` is CHANGELOG.md. Each of those
pages holds one line, ``<!-- include PATH -->``, which is replaced by the file. Links in any page that leave
docs/ (written so that they work on GitHub) are pointed at the site's page for that file, or, for a source
file or folder, shown as its path in code, since the site does not serve the repository.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include (\S+) -->\s*$", re.MULTILINE)
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
PAGES = {
    "README.md": "getting-started.md",
    "benchmarks/README.md": "benchmarks.md",
    "CHANGELOG.md": "changelog.md",
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    source = page.file.src_uri  # the page's path inside docs/, with "/" separators
    match = INCLUDE.search(markdown)
    if match:
        included = match.group(1)
        text = (ROOT / included).read_text(encoding="utf-8")
        # The included file's links are relative to where it lives in the repository.
        return _relink(text, posixpath.dirname(included), posixpath.dirname(source))
    return _relink(markdown, posixpath.join("docs", posixpath.dirname(source)), posixpath.dirname(source))


def _relink(markdown: str, repo_folder: str, page_folder: str) -> str:
    """Rewrite the links of a text written in ``repo_folder`` (repository-relative) for a page in
    ``page_folder`` (docs-relative)."""

    def replace(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        in_repo = posixpath.normpath(posixpath.join(repo_folder, path))
        if in_repo in PAGES:
            in_docs = PAGES[in_repo]
        elif in_repo.startswith("docs/"):
            in_docs = in_repo[len("docs/") :]
        else:  # a source file or folder: not on the site
            return f"{label} (`{in_repo}`)" if label.strip("`") != in_repo else f"`{in_repo}`"
        relative = posixpath.relpath(in_docs, page_folder or ".")
        return f"[{label}]({relative}{'#' + anchor if anchor else ''})"

    return LINK.sub(replace, markdown)
