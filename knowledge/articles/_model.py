"""The records a help-center article is read into: an article, its sections, their blocks.

A reader (Markdown, HTML, plain text, PDF) turns one file into one `Article`: its id, title,
link and tags, and its sections in document order. A section is the text under one heading,
with the path of headings above it ("Backing up", "Postgres database"); its blocks keep
what a reply must show whole (a list, a code block, a table row) apart from prose, so that
passages split between blocks and code is shown but never matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BlockKind(StrEnum):
    PROSE = "prose"  # a paragraph (or a quote, a hint box's text): matched and shown
    LIST = "list"  # a whole list, one item per line starting "- " or "1. ": matched and shown whole
    CODE = "code"  # a code block: shown whole in answers, never matched as prose
    TABLE_ROW = "table_row"  # one table row read as "Header: value; Header: value": matched and shown


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str  # plain text: markup removed, a link reduced to its words (what retrieval matches)
    display: str = ""  # what a reply shows, links written "words (absolute target)"; empty: the same as text

    @property
    def shown(self) -> str:
        return self.display or self.text


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]  # heading path below the article title; () for the text before the first heading
    blocks: tuple[Block, ...]
    line: int  # 1-based line (for a PDF: the page) where the section starts in its file
    anchor: str = ""  # the heading's fragment id (`{#export}`, an HTML id, else a slug of the heading)


@dataclass(frozen=True)
class Article:
    id: str  # its path under articles/ without the extension, unless its front matter names one
    title: str
    sections: tuple[Section, ...]
    source: str  # the file it was read from
    url: str = ""  # front matter `url`, else FRONTDESK_ARTICLES_BASE_URL + its path; "" when neither
    tags: tuple[str, ...] = ()
    content_hash: str = ""  # sha256 of the file's bytes: a reload re-reads only files whose hash changed
