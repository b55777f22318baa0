"""Plain-text and PDF articles, and the pieces every article reader shares.

Rule for `.txt`: the first non-empty line is the title when it reads like one (short, not ending a
sentence), else the file's name is; paragraphs are separated by blank lines; a heading is a short
line underlined with === (level 1) or --- (level 2), or, conservatively, a short single-line
paragraph that another paragraph follows and that is ALL CAPS (level 1) or capitalised with no
closing punctuation (level 2). A paragraph whose every line is a list item ("- ", "* ", "• ",
"1. ", "1) ") is a LIST.

Rule for `.pdf` (pypdf): one section per page; with an outline (bookmarks), a section's headings
are the outline path of the entry it falls under, and a page where entries start is cut at their
titles; without one, a page's section is headed "Page N". A section's `line` is its page number
and its anchor `page=N` (the fragment PDF viewers open a page with). The title is the document's
/Title, else the first line of page 1, else the file's name.

Shared pieces: `Words` (a run of text as matched and as shown), `SectionCollector` (blocks into
sections by heading path), link resolution, table rows and code blocks, so that the Markdown and
HTML readers write blocks the same way.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from pypdf import PdfReader

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
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")


def tidy(text: str) -> str:
    """`text` with runs of spaces collapsed, each line stripped and empty lines dropped."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
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
_LIST_ITEM = re.compile(r"^\s*(?:([-*•‣◦▪–])|(\d{1,3})[.)])\s+(.*)$")
_UNDERLINE = re.compile(r"^\s*(={3,}|-{3,})\s*$")
_SENTENCE_END = (".", "!", "?", ",", ";", ":")


def paragraph_block(lines: list[str]) -> Block:
    """A paragraph of plain text: a LIST when every line is an item or an item's indented
    continuation, else PROSE with its hard line wraps joined."""
    items: list[str] = []
    for line in lines:
        match = _LIST_ITEM.match(line)
        if match:
            marker = f"{match[2]}." if match[2] else "-"
            items.append(f"{marker} {match[3].strip()}")
        elif items and line[:1].isspace():
            items[-1] += " " + line.strip()
        else:
            return make_block(BlockKind.PROSE, Words(" ".join(lines), " ".join(lines)))
    text = "\n".join(_SPACES.sub(" ", item) for item in items)
    return Block(BlockKind.LIST, text)


def _title_like(line: str, limit: int = 100) -> bool:
    line = line.strip()
    return 0 < len(line) <= limit and not line.endswith((".", ",", ";")) and not _LIST_ITEM.match(line)


def _short_heading_level(lines: list[str]) -> int:
    """1 or 2 when a one-line paragraph reads as a heading, else 0 (kept conservative)."""
    if len(lines) != 1:
        return 0
    line = lines[0].strip()
    letters = [c for c in line if c.isalpha()]
    if (not letters or len(line) > 60 or len(line.split()) > 8 or line.endswith(_SENTENCE_END)
            or _LIST_ITEM.match(line) or "://" in line or not (line[0].isupper() or line[0].isdigit())):
        return 0
    return 1 if all(c.isupper() for c in letters) and len(letters) > 1 else 2


def read_plain_text(text: str, stem: str) -> ParsedArticle:
    lines = text.splitlines()
    title = humanise(stem)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and _title_like(lines[first]):
        title = _SPACES.sub(" ", lines[first]).strip()
        lines[first] = ""  # the title line is the article's title, not a paragraph of it
        if first + 1 < len(lines) and _UNDERLINE.match(lines[first + 1]):
            lines[first + 1] = ""
    # Events in order: ("heading", level, text, line) or ("paragraph", lines, line).
    events: list[tuple] = []
    paragraph: list[str] = []
    start = 0
    for index, line in enumerate(lines):
        underline = _UNDERLINE.match(line)
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


# ---------------------------------------------------------------- PDF
def _pdf_paragraphs(lines: list[str]) -> list[list[str]]:
    """A page's lines as paragraphs: pypdf rarely keeps blank lines, so a line much shorter than the
    page's longest (a paragraph's last line, a heading) also ends one, and a list item starts one."""
    widest = max((len(line.strip()) for line in lines), default=0)
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if not line.strip():
            paragraphs.append([])
            continue
        if _LIST_ITEM.match(line) and paragraphs[-1] and not _LIST_ITEM.match(paragraphs[-1][0]):
            paragraphs.append([])
        paragraphs[-1].append(line)
        if len(line.strip()) < 0.7 * widest and not _LIST_ITEM.match(line):
            paragraphs.append([])
    return [paragraph for paragraph in paragraphs if paragraph]


def _add_pdf_text(collector: SectionCollector, lines: list[str], page: int) -> None:
    pending_list: list[str] = []  # consecutive list paragraphs make one LIST block
    for paragraph in _pdf_paragraphs(lines):
        if _LIST_ITEM.match(paragraph[0]):
            pending_list += paragraph
            continue
        if pending_list:
            collector.add(paragraph_block(pending_list), page)
            pending_list = []
        collector.add(paragraph_block(paragraph), page)
    if pending_list:
        collector.add(paragraph_block(pending_list), page)


def _outline(reader: PdfReader) -> list[tuple[int, tuple[str, ...]]]:
    """(page index, heading path) for each outline entry, in page order."""
    entries: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list, parents: tuple[str, ...], depth: int) -> None:
        last = parents
        for item in items:
            if isinstance(item, list):  # an entry's children follow it as a list
                if depth < 20:  # a malformed outline can nest without end
                    walk(item, last, depth + 1)
                continue
            last = (*parents, tidy(str(item.title or "")).replace("\n", " "))
            page = reader.get_destination_page_number(item)
            if page is not None and page >= 0 and last[-1]:
                entries.append((page, last))

    try:
        walk(reader.outline, (), 0)
    except Exception:  # a damaged outline costs the headings, never the text: fall back to pages
        return []
    return sorted(entries, key=lambda entry: entry[0])  # stable: entries of one page keep their order


def _same_line(line: str, heading: str) -> bool:
    line, heading = _SPACES.sub(" ", line).strip().casefold(), heading.casefold()
    return line == heading or (line.startswith(heading) and len(line) - len(heading) < 4)  # "1 Intro" numbering


def read_pdf(raw: bytes, stem: str) -> ParsedArticle:
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):  # many PDFs are "encrypted" with no password
            raise UnreadableArticle(0, "cannot read PDF: it is encrypted with a password")
        pages = [(page.extract_text() or "").splitlines() for page in reader.pages]
        metadata_title = tidy(str(reader.metadata.title or "")) if reader.metadata else ""
    except UnreadableArticle:
        raise
    except Exception as exc:  # pypdf raises many kinds (PdfReadError, KeyError, zlib.error...) on a damaged file
        raise UnreadableArticle(0, f"cannot read PDF: {exc or type(exc).__name__}") from exc
    outline = _outline(reader)
    first_lines = [line.strip() for line in (pages[0] if pages else []) if line.strip()]
    title = metadata_title.replace("\n", " ") or (first_lines[0] if first_lines else humanise(stem))
    collector = SectionCollector()
    path: tuple[str, ...] = ()
    for index, lines in enumerate(pages):
        number = index + 1
        if not outline:
            collector.start((f"Page {number}",), number, f"page={number}")
            _add_pdf_text(collector, lines, number)
            continue
        collector.start(path, number, f"page={number}")  # the page continues the entry before it
        cursor = 0
        for _, entry_path in (entry for entry in outline if entry[0] == index):
            found = next((i for i in range(cursor, len(lines)) if _same_line(lines[i], entry_path[-1])), None)
            _add_pdf_text(collector, lines[cursor:found if found is not None else cursor], number)
            collector.start(entry_path, number, f"page={number}")
            path = entry_path
            cursor = found + 1 if found is not None else cursor  # the heading's own line is not text
        _add_pdf_text(collector, lines[cursor:], number)
    return ParsedArticle(title, collector.finish())
