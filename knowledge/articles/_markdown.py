"""Markdown and MDX articles (`.md`, `.markdown`, `.mdx`): front matter, sections, blocks.

Rules:
- Front matter is YAML between `---` lines or TOML between `+++` lines at the top of the file; its
  `title`, `url`, `id`, `tags` and `description` are read (the description leads the article as a
  paragraph), other keys are ignored. A front matter that does not parse is a problem at its line.
- Title: the front matter's, else the document's only `# H1` when it is its first heading, else the
  file's name. That only-and-first H1 is the title heading, never a section level (even beside a
  front matter title); every other heading is, and a section's headings are the path above its text.
  `## Exporting {#export}` is the heading "Exporting" with the anchor "export"; without one the
  anchor is the heading's slug.
- Hugo shortcodes lose their markup before parsing, as Hugo runs them before Markdown: paired
  ones (`{{< hint >}}…{{< /hint >}}`) keep their inner text, `figure` its caption, `ref`/`relref`
  become the link target they stand for, `page-ref`/`page-relref` their caption; others vanish.
- MDX: `import`/`export` statements and `{/* comments */}` are dropped. HTML and JSX tags
  (`<Note>`, `<Warning>`, `<iframe>`, `<video>`) lose their markup and keep their inner text, which
  is read as Markdown; `<script>`, `<style>` and HTML comments vanish whole.
- Blocks: paragraphs and quotes are PROSE, a top-level list is one LIST ("- item"/"1. item" lines,
  nested items indented two spaces), a code block is CODE, a table is one TABLE_ROW per body row.
  Links keep their words in `text`; `display` adds the target resolved against the article's url.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from typing import Any
from urllib.parse import urljoin

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from knowledge.articles._blocks import (
    ParsedArticle,
    SectionCollector,
    UnreadableArticle,
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

_MARKDOWN = MarkdownIt("commonmark").enable("table")
# Text left after HTML tags are stripped is parsed again without HTML, so a tag the stripping
# missed stays literal text instead of being stripped forever.
_MARKDOWN_NO_HTML = MarkdownIt("commonmark", {"html": False}).enable("table")

# ---------------------------------------------------------------- front matter
_FRONT_MATTER = re.compile(r"\A(?P<fence>---|\+\+\+)[ \t]*\r?\n(?P<body>.*?)^(?P=fence)[ \t]*(?:\r?\n|\Z)",
                           re.S | re.M)
_TOML_LINE = re.compile(r"\s*\(at line (\d+)(?:, column \d+)?\)")


def _front_matter(text: str) -> tuple[dict[str, Any], str, int]:
    """(front matter, body, lines before the body); raises `UnreadableArticle` when it does not parse."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        if re.match(r"(---|\+\+\+)[ \t]*\r?\n", text):
            raise UnreadableArticle(1, "front matter opened on line 1 is never closed")
        return {}, text, 0
    body, fence = match["body"], match["fence"]
    try:
        data = yaml.safe_load(body) if fence == "---" else tomllib.loads(body)
    except yaml.YAMLError as exc:
        # The parser's own message counts lines from the front matter, not the file: only its words are kept.
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1  # +1: 0-based, +1: the opening fence
        words = ", ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part)
        raise UnreadableArticle(line, f"invalid YAML front matter: {words or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        words = _TOML_LINE.sub("", str(exc)).strip()
        raise UnreadableArticle(int(found[1]) + 1 if found else 1, f"invalid TOML front matter: {words}") from exc
    except (ValueError, RecursionError) as exc:  # a value the loader refuses, or nesting too deep
        raise UnreadableArticle(1, f"invalid front matter: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UnreadableArticle(2, "front matter is not a mapping of keys to values")
    return data, text[match.end():], text[:match.end()].count("\n")


def _text_value(value: Any) -> str:
    return tidy(str(value)).replace("\n", " ") if isinstance(value, str | int | float) else ""


def _tags(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(tag for tag in (_text_value(item) for item in items) if tag)


# ---------------------------------------------------------------- Hugo shortcodes, MDX, HTML
_SHORTCODE = re.compile(r"""\{\{(?P<delim>[<%])\s*(?P<close>/)?\s*(?P<name>[\w.-]+)"""
                        r"""(?P<args>(?:"[^"]*"|'[^']*'|`[^`]*`|[^"'`<>%}])*?)\s*/?\s*[>%]\}\}""")
_SHORTCODE_ARG = re.compile(r"""(?:(\w+)=)?(?:"([^"]*)"|'([^']*)'|`([^`]*)`|([^\s"'`=]+))""")


def _shortcode_text(match: re.Match[str]) -> str:
    newlines = "\n" * match[0].count("\n")  # keep every later line where it was, for section lines
    if match["close"]:
        return newlines
    named: dict[str, str] = {}
    positional: list[str] = []
    for arg in _SHORTCODE_ARG.finditer(match["args"]):
        value = next((v for v in arg.groups()[1:] if v is not None), "")
        if arg[1]:
            named[arg[1].lower()] = value
        else:
            positional.append(value)
    name = match["name"].lower()
    if name in ("ref", "relref"):
        text = positional[0] if positional else named.get("path", "")
    elif name == "figure":
        text = named.get("caption") or named.get("title") or named.get("alt") or ""
    elif name in ("page-ref", "page-relref"):
        text = named.get("caption", "")
    else:
        text = ""  # a badge ({{<required>}}) or a paired shortcode's opening tag: its inner text stays
    return text + newlines


_MDX_STATEMENT = re.compile(r"^(?:import\s+(?:['\"]|[\w*{][^\n]*\bfrom\s+['\"])|export\s+(?:const|let|var|function|"
                            r"class|default|async|\{|\*))")
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_HTML_DROPPED = re.compile(r"<(script|style|template|noscript)\b.*?</\1\s*>|<!--.*?-->|<\?.*?\?>|<![A-Za-z][^>]*>",
                           re.S | re.I)
_HTML_TAG = re.compile(r"""</?[A-Za-z][\w.:-]*(?:\s+(?:[^<>"'{}]|"[^"]*"|'[^']*'|\{[^{}]*\})*)?\s*/?>""")


def _keep_lines(match: re.Match[str]) -> str:
    return "\n" * match[0].count("\n")


def _strip_html(html: str) -> str:
    """An HTML or JSX block's inner text, lines kept in place, dedented so it reads as Markdown."""
    text = _HTML_DROPPED.sub(_keep_lines, html)
    text = _HTML_TAG.sub(lambda match: " " + _keep_lines(match) if match[0].startswith("<br") else _keep_lines(match),
                         text)
    return textwrap.dedent(text)


# ---------------------------------------------------------------- walking the document
_HEADING_ATTRIBUTES = re.compile(r"\s*\{:?\s*([^{}]*)\}\s*$")
_LISTS = ("bullet_list", "ordered_list")
_CODE = ("fence", "code_block")


def _heading_text(text: str) -> tuple[str, str]:
    """("Exporting", "export") from "Exporting {#export}"; the anchor is "" without an {#id}."""
    match = _HEADING_ATTRIBUTES.search(text)
    if match is None or not re.match(r"[#.]|\w+=", match[1].strip()):
        return text, ""
    anchor = next((part[1:] for part in match[1].split() if part.startswith("#")), "")
    return text[:match.start()].rstrip(), anchor


class _Walker:
    """Turns the parsed Markdown tree into sections and blocks."""

    def __init__(self, url: str, mdx: bool, collector: SectionCollector, title_heading: SyntaxTreeNode | None):
        self.url = url
        self.mdx = mdx
        self.collector = collector
        self.title_heading = title_heading

    def blocks(self, nodes: list[SyntaxTreeNode], offset: int) -> None:
        for node in nodes:
            line = (node.map[0] if node.map else 0) + offset + 1
            if node.type == "heading":
                if node is not self.title_heading:
                    text, anchor = _heading_text(self.inline(node).text)
                    self.collector.heading(int(node.tag[1]), text, line, anchor)
            elif node.type == "paragraph":
                words = self.inline(node)
                if not (self.mdx and _MDX_STATEMENT.match(words.text)):
                    self.collector.add(make_block(BlockKind.PROSE, words), line)
            elif node.type in _LISTS:
                texts: list[str] = []
                displays: list[str] = []
                self._list_lines(node, 0, texts, displays)
                self.collector.add(list_block(texts, displays), line)
            elif node.type in _CODE:
                self.collector.add(code_block(node.content, node.info.split()[0] if node.info else ""), line)
            elif node.type == "table":
                for row in self._table_rows(node):
                    self.collector.add(row, line)
            elif node.type == "html_block":
                self.blocks(_parse(_strip_html(node.content), html=False), line - 1)
            elif node.children:  # a blockquote: its paragraphs, lists and code as they are
                self.blocks(node.children, offset)

    # ------------------------------------------------------------ inline text
    def inline(self, node: SyntaxTreeNode | None) -> Words:
        """The words of a paragraph, heading or cell (`node` or its inline child)."""
        if node is None:
            return Words("", "")
        if node.type != "inline":
            node = next((child for child in node.children if child.type == "inline"), None)
            if node is None:
                return Words("", "")
        texts: list[str] = []
        displays: list[str] = []
        self._inline_into(node.children, texts, displays)
        return Words(tidy("".join(texts)), tidy("".join(displays)))

    def _inline_into(self, nodes: list[SyntaxTreeNode], texts: list[str], displays: list[str]) -> None:
        for node in nodes:
            kind = node.type
            if kind in ("text", "text_special"):
                texts.append(node.content)
                displays.append(node.content)
            elif kind == "code_inline":
                texts.append(node.content)
                displays.append(f"`{node.content}`")
            elif kind in ("softbreak", "hardbreak"):
                texts.append(" " if kind == "softbreak" else "\n")
                displays.append(" " if kind == "softbreak" else "\n")
            elif kind == "link":
                link_texts: list[str] = []
                link_displays: list[str] = []
                self._inline_into(node.children, link_texts, link_displays)
                words = Words(tidy("".join(link_texts)), tidy("".join(link_displays)))
                texts.append(words.text)
                displays.append(linked(words.display, link_target(str(node.attrs.get("href", "")), self.url)))
            elif kind == "image":  # its alt text only: a reply cannot show the picture
                self._inline_into(node.children, texts, displays)
            elif kind == "html_inline":
                if node.content.lower().startswith("<br"):
                    texts.append(" ")
                    displays.append(" ")
            else:  # emphasis and the like: their words without the markup
                self._inline_into(node.children, texts, displays)

    # ------------------------------------------------------------ lists and tables
    def _list_lines(self, node: SyntaxTreeNode, depth: int, texts: list[str], displays: list[str]) -> None:
        ordered = node.type == "ordered_list"
        number = int(node.attrs.get("start", 1)) if ordered else 0
        for item in node.children:
            words: list[Words] = []
            nested_texts: list[str] = []
            nested_displays: list[str] = []
            self._item_content(item.children, depth, words, nested_texts, nested_displays)
            marker = f"{'  ' * depth}{f'{number}.' if ordered else '-'} "
            number += 1
            text = " ".join(w.text for w in words if w.text)
            display = " ".join(w.display for w in words if w.display)
            if text or display:
                texts.append(marker + text.replace("\n", " "))
                displays.append(marker + display.replace("\n", " "))
            texts += nested_texts
            displays += nested_displays

    def _item_content(self, nodes: list[SyntaxTreeNode], depth: int, words: list[Words], nested_texts: list[str],
                      nested_displays: list[str]) -> None:
        for child in nodes:
            if child.type in _LISTS:
                self._list_lines(child, depth + 1, nested_texts, nested_displays)
            elif child.type in _CODE:  # shown under its item, never matched
                fenced = code_block(child.content, child.info.split()[0] if child.info else "").display
                nested_displays += [textwrap.indent(fenced, "  " * (depth + 1))]
            elif child.type in ("paragraph", "heading"):
                words.append(self.inline(child))
            elif child.type == "table":
                words += [Words(row.text, row.shown) for row in self._table_rows(child)]
            elif child.type == "html_block":
                parsed = _parse(_strip_html(child.content), html=False)
                self._item_content(parsed, depth, words, nested_texts, nested_displays)
            elif child.children:
                self._item_content(child.children, depth, words, nested_texts, nested_displays)

    def _table_rows(self, table: SyntaxTreeNode) -> list[Block]:
        headers: list[Words] = []
        rows: list[Block] = []
        for part in table.children:
            for tr in part.children:
                cells = [self.inline(cell) for cell in tr.children]
                if part.type == "thead":
                    headers = cells
                else:
                    row = table_row(headers, cells)
                    if row is not None:
                        rows.append(row)
        return rows


def _parse(text: str, html: bool = True) -> list[SyntaxTreeNode]:
    parser = _MARKDOWN if html else _MARKDOWN_NO_HTML
    return SyntaxTreeNode(parser.parse(text)).children


def _title_heading(nodes: list[SyntaxTreeNode], walker: _Walker) -> tuple[SyntaxTreeNode | None, str]:
    """The document's only H1 when it is its first heading (it titles the article), and its text."""
    headings = [node for node in nodes if node.type == "heading"]
    h1s = [node for node in headings if node.tag == "h1"]
    if len(h1s) == 1 and headings[0] is h1s[0]:
        return h1s[0], _heading_text(walker.inline(h1s[0]).text)[0]
    return None, ""


def read_markdown(text: str, stem: str, default_url: str, mdx: bool = False) -> ParsedArticle:
    """Read one Markdown or MDX file; `default_url` is the article's link when front matter gives none."""
    meta, body, offset = _front_matter(text)
    # A front matter url is often site-relative ("/user/moving/"): made absolute against the default.
    front_url = _text_value(meta.get("url"))
    url = urljoin(default_url, front_url) if front_url else default_url
    body = _SHORTCODE.sub(_shortcode_text, body)
    if mdx:
        body = _MDX_COMMENT.sub(_keep_lines, body)
    nodes = _parse(body)
    collector = SectionCollector()
    walker = _Walker(url, mdx, collector, None)
    walker.title_heading, heading_title = _title_heading(nodes, walker)
    description = _text_value(meta.get("description"))
    if description:
        collector.add(Block(BlockKind.PROSE, description), 1)
    walker.blocks(nodes, offset)
    title = _text_value(meta.get("title")) or heading_title or humanise(stem)
    return ParsedArticle(title, collector.finish(), _text_value(meta.get("id")), url, _tags(meta.get("tags")))
