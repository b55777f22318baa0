"""The pieces every article reader shares, so that Markdown, HTML, text and PDF write blocks alike.

`Words` (a run of text as matched and as shown), `SectionCollector` (blocks into sections by
heading path), link resolution, list, table-row and code blocks, plain paragraphs, and the
records a format reader hands back (`ParsedArticle`, `UnreadableArticle`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from knowledge.articles._model import Block, BlockKind, Section


class UnreadableArticle(ValueError):
    """A format reader could not read a file; the article reader adds the file's name."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class ParsedArticle:
    """What a format reader found; the article reader adds the id, link and hash it derives."""

    title: str
    sections: tuple[Section, ...]
    id: str = ""  # from front matter; "" derives it from the path
    url: str = ""  # the link the reader resolved links against; "" derives it from the base url
    tags: tuple[str, ...] = ()


class Words(NamedTuple):
    text: str  # what retrieval matches: markup gone, links reduced to their words
    display: str  # what a reply shows: links written "words (target)"


# ---------------------------------------------------------------- shared helpers
SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")


def tidy(text: str) -> str:
    """`text` with runs of spaces collapsed, each line stripped and empty lines dropped."""
    lines = (SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def slug(text: str) -> str:
    """The fragment id a static-site generator gives a heading: "Postgres database" -> "postgres-database"."""
    kept = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"\s+", "-", kept.strip())


def humanise(stem: str) -> str:
    """A title made of a file name: "oak-table_care" -> "Oak table care"."""
    words = re.sub(r"[-_.]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def link_target(href: str, article_url: str) -> str:
    """Where a link points, absolute; "" when it cannot be made absolute (or is a script)."""
    href = href.strip()
    scheme = urlsplit(href).scheme.lower()
    if scheme:  # absolute already; javascript: and data: links are not places a customer can go
        return href if scheme in ("http", "https", "mailto", "tel") else ""
    if not href or not article_url:
        return ""  # a relative link in an article without a url points nowhere a reply can show
    return urljoin(article_url, href)


def linked(words: str, target: str) -> str:
    """How a reply shows a link: its words, then its target in parentheses."""
    if not target or target in (words, f"mailto:{words}", f"tel:{words}"):
        return words or target
    return f"{words} ({target})" if words else target


def make_block(kind: BlockKind, words: Words) -> Block:
    text, display = tidy(words.text), tidy(words.display)
    return Block(kind, text, "" if display == text else display)


def list_block(lines: list[str], display_lines: list[str]) -> Block:
    """A whole list, one item per line; lines are kept as given, since indentation nests items."""
    text, display = "\n".join(lines), "\n".join(display_lines)
    return Block(BlockKind.LIST, text, "" if display == text else display)


def code_block(code: str, language: str = "") -> Block:
    """A code block: its code is its text (never matched), shown fenced so a chat renders it as code."""
    code = code.strip("\n").rstrip()
    fence = "````" if "```" in code else "```"
    return Block(BlockKind.CODE, code, f"{fence}{language.strip()}\n{code}\n{fence}")


def table_row(headers: list[Words], cells: list[Words]) -> Block | None:
    """One table body row as "Header: value; Header: value" (empty cells left out)."""
    texts, displays = [], []
    for index, cell in enumerate(cells):
        text, display = tidy(cell.text).replace("\n", " "), tidy(cell.display).replace("\n", " ")
        if not text and not display:
            continue
        header = tidy(headers[index].text).replace("\n", " ") if index < len(headers) else ""
        texts.append(f"{header}: {text}" if header else text)
        displays.append(f"{header}: {display}" if header else display)
    if not texts:
        return None
    return make_block(BlockKind.TABLE_ROW, Words("; ".join(texts), "; ".join(displays)))


class SectionCollector:
    """Gathers blocks into sections, in document order, as a reader meets headings and blocks.

    A section without blocks (a heading followed directly by a sub-heading) is left out: its
    heading still leads the path of the sections below it.
    """

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._open: list[tuple[int, str]] = []  # the headings above the current text: (level, heading)
        self._anchor = ""
        self._line = 0
        self._blocks: list[Block] = []

    def heading(self, level: int, text: str, line: int, anchor: str = "") -> None:
        if not text:
            return  # an empty heading starts nothing a reply could name
        self._close()
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, text))
        self._anchor, self._line = anchor or slug(text), line

    def start(self, headings: tuple[str, ...], line: int, anchor: str = "") -> None:
        """A section with a given heading path (a PDF page under an outline entry)."""
        self._close()
        self._open = list(enumerate(headings))
        self._anchor, self._line = anchor, line

    def add(self, block: Block | None, line: int) -> None:
        if block is None or not block.text.strip():
            return
        if not self._blocks and not self._line:
            self._line = line  # the text before any heading starts where its first block does
        self._blocks.append(block)

    def finish(self) -> tuple[Section, ...]:
        self._close()
        return tuple(self.sections)

    def _close(self) -> None:
        if self._blocks:
            headings = tuple(text for _, text in self._open)
            self.sections.append(Section(headings, tuple(self._blocks), max(self._line, 1), self._anchor))
        self._blocks, self._line = [], 0


# ---------------------------------------------------------------- paragraphs of plain text
LIST_ITEM = re.compile(r"^\s*(?:([-*•‣◦▪–])|(\d{1,3})[.)])\s+(.*)$")
UNDERLINE = re.compile(r"^\s*(={3,}|-{3,})\s*$")
SENTENCE_END = (".", "!", "?", ",", ";", ":")


def paragraph_block(lines: list[str]) -> Block:
    """A paragraph of plain text: a LIST when every line is an item or an item's indented
    continuation, else PROSE with its hard line wraps joined."""
    items: list[str] = []
    for line in lines:
        match = LIST_ITEM.match(line)
        if match:
            marker = f"{match[2]}." if match[2] else "-"
            items.append(f"{marker} {match[3].strip()}")
        elif items and line[:1].isspace():
            items[-1] += " " + line.strip()
        else:
            return make_block(BlockKind.PROSE, Words(" ".join(lines), " ".join(lines)))
    text = "\n".join(SPACES.sub(" ", item) for item in items)
    return Block(BlockKind.LIST, text)
