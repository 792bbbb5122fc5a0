"""Every relative link in README.md, docs/*.md and the other committed Markdown files resolves:
the file exists, and a `#anchor` names a heading of that file as GitHub renders it. Pure file
reading, no Kafka; links inside code blocks and code spans are not links and are skipped."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target), text possibly wrapped; the target ends at the first space
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)((?:(?!\n\s*\n).)+?)\1", re.S)   # not across a blank line


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for extra in ("models/README.md", "tests/perf/README.md"):
        if (ROOT / extra).exists():
            files.append(ROOT / extra)
    return files


def prose(text: str) -> str:
    """`text` with fenced code blocks and code spans blanked out (same length, same newlines,
    so offsets still give line numbers); a code span may wrap onto the next line."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            lines.append("")
        else:
            lines.append("" if in_fence else line)
    joined = "\n".join(lines)
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), joined)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: inline markup dropped, lower case, every character
    that is not a letter, digit, `_`, `-` or space removed, spaces turned into `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)                          # inline HTML
    text = text.lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "_- ")
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    anchors = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `path` that does not resolve, as `file:line: target (why)`."""
    problems = []
    text = prose(path.read_text(encoding="utf-8"))
    for link in LINK.finditer(text):
        target, number = link.group(1), text.count("\n", 0, link.start()) + 1
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):   # http:, mailto: ...: not ours
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not linked.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked):
            problems.append(f"{where} (no heading with that anchor)")
    return problems


def test_slug_follows_github():
    assert github_slug("`-X`: librdkafka passthrough") == "-x-librdkafka-passthrough"
    assert github_slug("Per-card state, exactly once") == "per-card-state-exactly-once"
    assert github_slug("`rate: max`") == "rate-max"
    assert github_slug("Transactional ids and static membership") == "transactional-ids-and-static-membership"


def test_checker_finds_a_broken_anchor_and_file(tmp_path):
    (tmp_path / "a.md").write_text(
        "# Top\n\n## Sub part\n\n[ok](#sub-part) [bad](#nope) [gone](b.md) `[code](#skipped)`\n"
        "```\n[x](#fence)\n## Fenced\n```\n"
        "a `code span\nwrapped [y](#in-span)` and [a wrapped\nlink](#fenced)\n")
    problems = broken_links(tmp_path / "a.md", root=tmp_path)
    assert problems == ["a.md:5: #nope (no heading with that anchor)", "a.md:5: b.md (no such file)",
                        "a.md:11: #fenced (no heading with that anchor)"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []
