"""PDF articles (pypdf).

Rule: one section per page; with an outline (bookmarks), a section's headings are the outline
path of the entry it falls under, and a page where entries start is cut at their titles; without
one, a page's section is headed "Page N". A section's `line` is its page number and its anchor
`page=N` (the fragment PDF viewers open a page with). The title is the document's /Title, else
the first line of page 1, else the file's name.
"""

from __future__ import annotations

import io

from pypdf import PdfReader

from knowledge.articles._blocks import (
    LIST_ITEM,
    SPACES,
    ParsedArticle,
    SectionCollector,
    UnreadableArticle,
    humanise,
    paragraph_block,
    tidy,
)


def _pdf_paragraphs(lines: list[str]) -> list[list[str]]:
    """A page's lines as paragraphs: pypdf rarely keeps blank lines, so a line much shorter than the
    page's longest (a paragraph's last line, a heading) also ends one, and a list item starts one."""
    widest = max((len(line.strip()) for line in lines), default=0)
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if not line.strip():
            paragraphs.append([])
            continue
        if LIST_ITEM.match(line) and paragraphs[-1] and not LIST_ITEM.match(paragraphs[-1][0]):
            paragraphs.append([])
        paragraphs[-1].append(line)
        if len(line.strip()) < 0.7 * widest and not LIST_ITEM.match(line):
            paragraphs.append([])
    return [paragraph for paragraph in paragraphs if paragraph]


def _add_pdf_text(collector: SectionCollector, lines: list[str], page: int) -> None:
    pending_list: list[str] = []  # consecutive list paragraphs make one LIST block
    for paragraph in _pdf_paragraphs(lines):
        if LIST_ITEM.match(paragraph[0]):
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
    line, heading = SPACES.sub(" ", line).strip().casefold(), heading.casefold()
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
