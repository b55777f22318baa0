"""Cutting help-center articles into passages that compete with FAQ entries in one index.

Rule: one passage per heading section, unless the section is longer than PASSAGE_CHARS of
text; then it is cut between blocks (a paragraph that alone is too long, between sentences),
never inside a list, a table row or a code block. Every passage repeats its article title and
heading path ("Backing up › Postgres database"): that path is the passage's `question` (its
citation, and the words a suggestion button shows), and it leads the `body` that retrieval
matches, so a passage cut from the middle of a section still says what it is about. Code is
shown in answers but left out of the body: commands do not read like customers' questions.
"""

from __future__ import annotations

import re

from knowledge.articles import Article, Block, BlockKind
from knowledge.records import ArticleRef, FaqEntry

PASSAGE_CHARS = 800  # matched text per passage; MiniLM reads about 1,000 characters (256 word pieces)
CITATION_SEPARATOR = " › "
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“'(\[]?[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """`text` cut after each full stop, question or exclamation mark that a capital follows."""
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def _split_prose(block: Block, limit: int) -> list[Block]:
    """A paragraph longer than `limit` as several, cut between sentences (a sentence is never cut)."""
    if len(block.text) <= limit:
        return [block]
    pieces, current = [], ""
    for sentence in sentences(block.shown):
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    pieces.append(current)
    # The shown text (links written out) is what was cut; its words are close enough to match on.
    return [Block(BlockKind.PROSE, piece) for piece in pieces if piece]


def _chunks(blocks: tuple[Block, ...], limit: int) -> list[list[Block]]:
    units = [piece for block in blocks
             for piece in (_split_prose(block, limit) if block.kind is BlockKind.PROSE else [block])]
    chunks: list[list[Block]] = []
    size = 0
    for unit in units:
        length = 0 if unit.kind is BlockKind.CODE else len(unit.text)
        if chunks and chunks[-1] and size + length > limit:
            chunks.append([])
            size = 0
        if not chunks:
            chunks.append([])
        chunks[-1].append(unit)
        size += length
    return [chunk for chunk in chunks if chunk]


MIN_SENTENCE_WORDS = 4  # shorter lines ("Example:", a lone label) say nothing on their own


def passage_sentences(entry: FaqEntry) -> list[str]:
    """Each sentence of a passage's matched prose, led by its citation ("Title › Section: sentence")."""
    if not entry.body:
        return []
    prose = entry.body.partition("\n")[2]
    return [f"{entry.question}: {sentence}" for line in prose.split("\n") for sentence in sentences(line)
            if len(sentence.split()) >= MIN_SENTENCE_WORDS]


def citation(title: str, headings: tuple[str, ...]) -> str:
    return CITATION_SEPARATOR.join(part for part in (title, *headings) if part)


def article_passages(article: Article, limit: int = PASSAGE_CHARS) -> list[FaqEntry]:
    """The passages of one article, in document order, as entries of the index."""
    out: list[FaqEntry] = []
    used: set[str] = set()
    for section in article.sections:
        if not section.blocks:
            continue  # a heading followed directly by a sub-heading
        section_path = CITATION_SEPARATOR.join(section.headings)
        url = f"{article.url}#{section.anchor}" if article.url and section.anchor else article.url
        ref = ArticleRef(article.id, article.title, section_path, url)
        heading = citation(article.title, section.headings)
        for part, blocks in enumerate(_chunks(section.blocks, limit)):
            matched = "\n".join(b.text for b in blocks if b.kind is not BlockKind.CODE and b.text.strip())
            passage_id = _unique(f"{article.id}#{section.anchor or 'top'}" + (f"-{part + 1}" if part else ""), used)
            out.append(FaqEntry(passage_id, heading, "\n\n".join(b.shown for b in blocks), tags=article.tags,
                                source=article.source, line=section.line,
                                body=f"{heading}\n{matched}" if matched else "", article=ref))
    return out


def _unique(candidate: str, used: set[str]) -> str:
    name, n = candidate, 2
    while name in used:
        name, n = f"{candidate}-{n}", n + 1
    used.add(name)
    return name
