"""Plain-text articles.

Rule: the first non-empty line is the title when it reads like one (short, not ending a
sentence), else the file's name is; paragraphs are separated by blank lines; a heading is a short
line underlined with === (level 1) or --- (level 2), or, conservatively, a short single-line
paragraph that another paragraph follows and that is ALL CAPS (level 1) or capitalised with no
closing punctuation (level 2). A paragraph whose every line is a list item ("- ", "* ", "• ",
"1. ", "1) ") is a LIST.
"""

from __future__ import annotations

from knowledge.articles._blocks import (
    LIST_ITEM,
    SENTENCE_END,
    SPACES,
    UNDERLINE,
    ParsedArticle,
    SectionCollector,
    humanise,
    paragraph_block,
)


def _title_like(line: str, limit: int = 100) -> bool:
    line = line.strip()
    return 0 < len(line) <= limit and not line.endswith((".", ",", ";")) and not LIST_ITEM.match(line)


def _short_heading_level(lines: list[str]) -> int:
    """1 or 2 when a one-line paragraph reads as a heading, else 0 (kept conservative)."""
    if len(lines) != 1:
        return 0
    line = lines[0].strip()
    letters = [c for c in line if c.isalpha()]
    if (not letters or len(line) > 60 or len(line.split()) > 8 or line.endswith(SENTENCE_END)
            or LIST_ITEM.match(line) or "://" in line or not (line[0].isupper() or line[0].isdigit())):
        return 0
    return 1 if all(c.isupper() for c in letters) and len(letters) > 1 else 2


def read_plain_text(text: str, stem: str) -> ParsedArticle:
    lines = text.splitlines()
    title = humanise(stem)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and _title_like(lines[first]):
        title = SPACES.sub(" ", lines[first]).strip()
        lines[first] = ""  # the title line is the article's title, not a paragraph of it
        if first + 1 < len(lines) and UNDERLINE.match(lines[first + 1]):
            lines[first + 1] = ""
    # Events in order: ("heading", level, text, line) or ("paragraph", lines, line).
    events: list[tuple] = []
    paragraph: list[str] = []
    start = 0
    for index, line in enumerate(lines):
        underline = UNDERLINE.match(line)
        if underline and len(paragraph) == 1 and len(paragraph[0].strip()) <= 80:
            events.append(("heading", 1 if underline[1][0] == "=" else 2, paragraph[0].strip(), start))
            paragraph = []
        elif not line.strip() or underline:
            if paragraph:
                events.append(("paragraph", paragraph, start))
            paragraph = []
        else:
            if not paragraph:
                start = index + 1
            paragraph.append(line)
    if paragraph:
        events.append(("paragraph", paragraph, start))
    collector = SectionCollector()
    for index, event in enumerate(events):
        if event[0] == "heading":
            collector.heading(event[1], event[2], event[3])
            continue
        followed_by_text = index + 1 < len(events) and events[index + 1][0] == "paragraph"
        level = _short_heading_level(event[1]) if followed_by_text else 0
        if level:
            collector.heading(level, event[1][0].strip(), event[2])
        else:
            collector.add(paragraph_block(event[1]), event[2])
    return ParsedArticle(title, collector.finish())
