"""HTML articles (`.html`, `.htm`), read with BeautifulSoup's `html.parser`.

Rules:
- Title: `<title>`, else the first `<h1>`, else the file's name.
- Page chrome is dropped before reading: `nav`, `aside`, `script`, `style`, `noscript`, `form`,
  `svg`, `template`, `iframe`, `button`; a `header`/`footer` outside `<main>`/`<article>` (inside
  one it is the article's own header, which may hold its title); anything with role
  navigation/banner/contentinfo/search, or hidden; and anything whose class or id names chrome
  (breadcrumb, sidebar, menu, navbar, nav, toc, cookie, consent, skip-link, pagination, share).
- The text read is `<main>`'s (or role=main's), else the first `<article>`'s, else `<body>`'s; chrome
  never includes that element or what wraps it, nor (when named by class or id) a page's `<h1>`.
- h1..h6 make the section structure (the `id` attribute, or an enclosing `<section>`'s, is the
  anchor, else the heading's slug); the page's only `<h1>`, when it is its first heading, titles
  the article and is not a section level.
- p (and dt, dd, figcaption, summary) -> PROSE; ul/ol -> one LIST; pre -> CODE; a table -> one
  TABLE_ROW per body row ("Header: cell; Header: cell"); loose text in a container -> PROSE.
  Links keep their words in `text`; `display` adds the target resolved against the article's url.
- Bytes: UTF-8 first, then the charset a `<meta>` declares (`declared_charset`).
"""

from __future__ import annotations

import codecs
import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from knowledge.articles._blocks import (
    ParsedArticle,
    SectionCollector,
    Words,
    code_block,
    humanise,
    link_target,
    linked,
    list_block,
    make_block,
    table_row,
    tidy,
)
from knowledge.articles._model import Block, BlockKind

_CHROME_TAGS = ("nav", "aside", "script", "style", "noscript", "form", "svg", "template", "iframe", "button")
_CHROME_ROLES = {"navigation", "banner", "contentinfo", "search"}
_CHROME_NAMES = re.compile(r"(?:^|[-_])(?:breadcrumbs?|sidebar|menu|navbar|nav|toc|cookies?|consent|skip-link|"
                           r"pagination|share)(?:$|[-_])", re.I)
_KEPT_ALWAYS = {"html", "body", "main", "article"}  # never chrome, whatever their class says
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_PARAGRAPHS = {"p", "dt", "dd", "figcaption", "summary", "address", "caption", "legend"}
_INLINE = {"a", "abbr", "b", "bdi", "bdo", "br", "cite", "code", "data", "dfn", "em", "i", "img", "kbd", "label",
           "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr", "del",
           "ins", "font", "tt", "strike", "big"}
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)


def declared_charset(raw: bytes) -> str | None:
    """The encoding a page's `<meta charset>` (or http-equiv Content-Type) names, if Python knows it."""
    match = _META_CHARSET.search(raw[:8192])
    if match is None:
        return None
    try:
        return codecs.lookup(match[1].decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def _is_chrome(tag: Tag) -> bool:
    if tag.name in _KEPT_ALWAYS:
        return False
    if tag.name in _CHROME_TAGS:
        return True
    if tag.name in ("header", "footer"):
        return tag.find_parent(("main", "article")) is None
    if str(tag.get("role", "")).lower() in _CHROME_ROLES or tag.has_attr("hidden"):
        return True
    if str(tag.get("aria-hidden", "")).lower() == "true":
        return True
    names = [*tag.get("class", []), str(tag.get("id", ""))]
    # A name is only a hint ("has-sidebar" may wrap the whole page): never drop what holds the page's heading.
    return any(_CHROME_NAMES.search(name) for name in names if name) and tag.find("h1") is None


def _drop_chrome(soup: BeautifulSoup, root: Tag) -> None:
    protected = {id(root), *(id(parent) for parent in root.parents)}  # the content and what wraps it
    for tag in soup.find_all(True):
        if not tag.decomposed and id(tag) not in protected and _is_chrome(tag):
            tag.decompose()


class _Walker:
    """Turns the content element into sections and blocks."""

    def __init__(self, url: str, collector: SectionCollector, title_heading: Tag | None):
        self.url = url
        self.collector = collector
        self.title_heading = title_heading

    def walk(self, element: Tag) -> None:
        loose: list[NavigableString | Tag] = []  # inline content outside any paragraph
        for child in element.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, _NOT_TEXT):
                    loose.append(child)
                continue
            if not isinstance(child, Tag):
                continue
            if child.name in _INLINE:
                loose.append(child)
                continue
            self._flush(loose, element)
            self._block(child)
        self._flush(loose, element)

    def _flush(self, loose: list[NavigableString | Tag], parent: Tag) -> None:
        if loose:
            line = next((node.sourceline for node in loose if isinstance(node, Tag) and node.sourceline), None)
            self.collector.add(make_block(BlockKind.PROSE, self.inline(loose)), line or parent.sourceline or 1)
            loose.clear()

    def _block(self, tag: Tag) -> None:
        line = tag.sourceline or 1
        if tag.name in _HEADINGS:
            if tag is not self.title_heading:
                self.collector.heading(_HEADINGS[tag.name], self._heading_text(tag), line, self._anchor(tag))
        elif tag.name in _PARAGRAPHS:
            self.collector.add(make_block(BlockKind.PROSE, self.inline(tag.contents)), line)
        elif tag.name in ("ul", "ol", "menu"):
            texts: list[str] = []
            displays: list[str] = []
            self._list_lines(tag, 0, texts, displays)
            self.collector.add(list_block(texts, displays), line)
        elif tag.name == "pre":
            self.collector.add(_code(tag), line)
        elif tag.name == "table":
            for row_line, row in self._table_rows(tag):
                self.collector.add(row, row_line or line)
        elif tag.name not in ("hr", "br", "img"):
            self.walk(tag)  # a container: div, section, blockquote, figure, a custom element...

    def _heading_text(self, tag: Tag) -> str:
        # Documentation generators append a permalink sign to headings ("Install ¶").
        return self.inline(tag.contents).text.replace("\n", " ").rstrip(" ¶#🔗")

    @staticmethod
    def _anchor(tag: Tag) -> str:
        if tag.get("id"):
            return str(tag["id"])
        parent = tag.parent
        if isinstance(parent, Tag) and parent.name == "section" and parent.get("id"):
            return str(parent["id"])
        return ""

    # ------------------------------------------------------------ inline text
    def inline(self, nodes: list) -> Words:
        texts: list[str] = []
        displays: list[str] = []
        for node in nodes:
            self._inline_into(node, texts, displays)
        return Words(tidy("".join(texts)), tidy("".join(displays)))

    def _inline_into(self, node: object, texts: list[str], displays: list[str]) -> None:
        if isinstance(node, NavigableString):
            if not isinstance(node, _NOT_TEXT):
                text = re.sub(r"\s+", " ", str(node))  # HTML whitespace: any run is one space
                texts.append(text)
                displays.append(text)
            return
        if not isinstance(node, Tag):
            return
        if node.name == "br":
            texts.append("\n")
            displays.append("\n")
        elif node.name == "img":
            alt = str(node.get("alt", ""))
            texts.append(alt)
            displays.append(alt)
        elif node.name == "a":
            words = self.inline(node.contents)
            texts.append(words.text.replace("\n", " "))
            displays.append(linked(words.display.replace("\n", " "), link_target(str(node.get("href", "")), self.url)))
        elif node.name == "code":
            code = re.sub(r"\s+", " ", node.get_text())
            texts.append(code)
            displays.append(f"`{code}`" if code.strip() else code)
        else:
            spaced = node.name not in _INLINE  # a block inside inline content still separates words
            if spaced:
                texts.append(" ")
                displays.append(" ")
            for child in node.children:
                self._inline_into(child, texts, displays)
            if spaced:
                texts.append(" ")
                displays.append(" ")

    # ------------------------------------------------------------ lists and tables
    def _list_lines(self, tag: Tag, depth: int, texts: list[str], displays: list[str]) -> None:
        ordered = tag.name == "ol"
        try:
            number = int(str(tag.get("start", 1)))
        except ValueError:
            number = 1
        for item in tag.find_all("li", recursive=False):
            inline_nodes: list = []
            nested_texts: list[str] = []
            nested_displays: list[str] = []
            for child in item.children:
                if isinstance(child, Tag) and child.name in ("ul", "ol"):
                    self._list_lines(child, depth + 1, nested_texts, nested_displays)
                elif isinstance(child, Tag) and child.name == "pre":  # shown under its item, never matched
                    nested_displays.append(re.sub(r"(?m)^", "  " * (depth + 1), _code(child).display))
                else:
                    inline_nodes.append(child)
            words = self.inline(inline_nodes)
            marker = f"{'  ' * depth}{f'{number}.' if ordered else '-'} "
            number += 1
            if words.text or words.display:
                texts.append(marker + words.text.replace("\n", " "))
                displays.append(marker + words.display.replace("\n", " "))
            texts += nested_texts
            displays += nested_displays

    def _table_rows(self, table: Tag) -> list[tuple[int | None, Block]]:
        rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]  # not a nested table's
        cells_of = {id(tr): tr.find_all(("td", "th"), recursive=False) for tr in rows}
        headers: list[Words] = []
        head = table.find("thead")
        if isinstance(head, Tag) and head.find_parent("table") is table:
            header_rows = [tr for tr in rows if tr.find_parent("thead") is head]
            if header_rows:
                headers = [self.inline(cell.contents) for cell in cells_of[id(header_rows[-1])]]
            rows = [tr for tr in rows if tr not in header_rows]
        elif rows and all(cell.name == "th" for cell in cells_of[id(rows[0])]):
            headers = [self.inline(cell.contents) for cell in cells_of[id(rows[0])]]
            rows = rows[1:]
        out = []
        for tr in rows:
            row = table_row(headers, [self.inline(cell.contents) for cell in cells_of[id(tr)]])
            if row is not None:
                out.append((tr.sourceline, row))
        return out


def _code(pre: Tag) -> Block:
    code = pre.find("code")
    classes = [*(code.get("class", []) if isinstance(code, Tag) else []), *pre.get("class", [])]
    language = next((name.split("-", 1)[1] for name in classes if name.startswith(("language-", "lang-"))), "")
    return code_block(pre.get_text(), language)


def read_html(text: str, stem: str, url: str) -> ParsedArticle:
    soup = BeautifulSoup(text, "html.parser")
    title_tag = soup.find("title")
    title = tidy(title_tag.get_text()).replace("\n", " ") if isinstance(title_tag, Tag) else ""
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article") or soup.find("body") or soup
    _drop_chrome(soup, root)
    h1s = root.find_all("h1")
    first_heading = root.find(tuple(_HEADINGS))
    title_heading = h1s[0] if len(h1s) == 1 and first_heading is h1s[0] else None
    collector = SectionCollector()
    walker = _Walker(url, collector, title_heading)
    if not title and h1s:
        title = walker._heading_text(h1s[0])
    walker.walk(root)
    return ParsedArticle(title or humanise(stem), collector.finish(), url=url)

