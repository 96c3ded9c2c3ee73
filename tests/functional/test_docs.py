"""The documentation holds together: every relative link of README.md and docs/*.md reaches an
existing file and heading (GitHub's anchors), the anchors code comments point at exist, and no file
cites documents a maintainer does not have."""

from __future__ import annotations

import os
import re
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "build", ".local-data", ".pytest_cache", ".mypy_cache",
             ".ruff_cache", "__pycache__", ".hypothesis"}
TEXT_SUFFIXES = (".py", ".md", ".yml", ".yaml", ".json", ".toml", ".txt", ".html", ".js", ".css", ".cfg", ".ini",
                 ".sh", "Makefile", "run", "services")

# Documents written on another branch: a link to one may point at nothing until it lands, and is
# checked in full (anchors too) once it exists. Remove an entry when its file is merged.

# Anchors that code comments link to (`docs/<file>.md#<anchor>`): renaming a heading breaks them.
STABLE_ANCHORS = {
    "docs/ses.md": ("limits", "retries", "sendemail", "batchsendemail", "callbacks", "smtp", "scf-runtime",
                    "timers", "function-url", "credentials", "getsendemailstatus", "listsendtasks",
                    "recipient-lists", "errors", "signatures", "sdk", "regions", "layers"),
    "docs/reliability.md": ("retries", "doubt", "leases", "idempotency-keys", "timers"),
    "docs/security.md": ("scopes", "policies", "erasure"),
    "docs/api.md": ("send", "batch", "webhook", "digests", "errors"),
}

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return handle.read()


def _prose_lines(text: str):
    """(number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: markup dropped, lower case, punctuation removed (letters,
    digits, `-`, `_` and spaces kept), spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = "".join(ch for ch in text.lower() if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: str) -> set[str]:
    """Every anchor of a Markdown file: headings (duplicates get -1, -2 … as on GitHub) and explicit
    `id=` / `name=` attributes."""
    text = _read(path)
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose_lines(text):
        match = _HEADING.match(line)
        if match:
            base = github_anchor(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    out |= set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    return out


def documents() -> list[str]:
    docs = sorted(f"docs/{name}" for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
    return ["README.md", *docs]


def links(path: str) -> list[tuple[int, str]]:
    out = []
    for number, line in _prose_lines(_read(path)):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: …
                out.append((number, target))
    return out


def broken(source: str, target: str) -> str | None:
    """Why `target`, linked from `source`, does not resolve; None when it does."""
    file_part, _, fragment = target.partition("#")
    resolved = os.path.normpath(os.path.join(os.path.dirname(source), urllib.parse.unquote(file_part))) \
        if file_part else source
    if resolved.startswith(".."):
        return "points outside the repository"
    if not os.path.exists(os.path.join(ROOT, resolved)):
        return f"{resolved} does not exist"
    if fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
        return f"{resolved} has no heading #{fragment}"
    return None


@pytest.mark.parametrize("path", documents())
def test_every_relative_link_resolves(path):
    found = links(path)
    assert found or path == "README.md", f"{path} links nowhere"
    problems = [f"{path}:{number}: ({target}) {why}" for number, target in found
                if (why := broken(path, target)) is not None]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", sorted(STABLE_ANCHORS))
def test_the_anchors_code_links_to_exist(path):
    assert not set(STABLE_ANCHORS[path]) - anchors(path)


def test_the_anchor_rules_match_github():
    assert github_anchor("Senders and templates (make sync)") == "senders-and-templates-make-sync"
    assert github_anchor("The `send` function") == "the-send-function"
    assert github_anchor("SCF runtime") == "scf-runtime"
    assert github_anchor("Upgrading from a release without scopes") == "upgrading-from-a-release-without-scopes"
    assert broken("docs/api.md", "nowhere.md") == "docs/nowhere.md does not exist"
    assert broken("docs/api.md", "ses.md#no-such-heading") == "docs/ses.md has no heading #no-such-heading"
    assert broken("README.md", "docs/ses.md#limits") is None


def repository_files():
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(TEXT_SUFFIXES):
                yield os.path.relpath(os.path.join(directory, name), ROOT)


def _mentions(pattern: re.Pattern) -> list[str]:
    me = os.path.relpath(os.path.abspath(__file__), ROOT)
    out = []
    for path in repository_files():
        if path == me:
            continue
        try:
            text = _read(path)
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in pattern.finditer(line):
                out.append(f"{path}:{number}: {match.group(0)}")
    return out


def test_code_links_into_docs_resolve():
    """`docs/<file>.md#<anchor>` anywhere in the repository names a heading that exists (a bare
    `docs/x.md` may be another project's file, as in "tencent-scf's docs/configure.md")."""
    problems = []
    for hit in _mentions(re.compile(r"(?<![\w/.-])docs/[\w-]+\.md#[\w-]+")):
        where, _, target = hit.rpartition(": ")
        why = broken("README.md", target)  # a path from the repository's root
        if why:
            problems.append(f"{where}: {target}: {why}")
    assert not problems, "\n".join(problems)


def test_code_links_into_the_readme_resolve():
    readme = anchors("README.md")
    stale = [hit for hit in _mentions(re.compile(r"README(?:\.md)?#[\w-]+"))
             if hit.rpartition("#")[2] not in readme]
    assert not stale, "\n".join(stale)


def test_nothing_cites_documents_outside_the_repository():
    cited = _mentions(re.compile(r"\bSPEC\b|seed 00|tencent-facts|\.\./shared"))
    assert not cited, f"{len(cited)} citations of documents a maintainer does not have:\n" + "\n".join(cited)
