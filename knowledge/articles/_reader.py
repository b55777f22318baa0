"""Reading help-center articles: one file, or every article under a folder, with located problems.

Rules:
- Supported: Markdown (`.md`, `.markdown`, `.mdx`), HTML (`.html`, `.htm`), plain text (`.txt`)
  and PDF (`.pdf`); see each reader's module for how a file becomes sections and blocks.
- An article's id is its path under the folder without the extension ("guides/care/oak-table"),
  unless its front matter names one; its url is its front matter's `url` (a site-relative one made
  absolute against `base_url`), else `base_url` + "/" + that path, else "".
- Skipped quietly: hidden files and folders; files without an extension (LICENSE, README, CNAME);
  the assets a help center keeps beside its articles (`QUIET_SUFFIXES`: images, audio and video,
  fonts, stylesheets and scripts, sitemaps); editor backups (`name~`, `#name#`) and OS litter
  (Thumbs.db, desktop.ini). Any other type (`.docx`, `.odt`, `.yaml`...) is a problem: an admin
  who put a document there expects it read.
- Problems, each with a file and a line: unreadable file, not UTF-8 (the line of the first bad byte;
  HTML may instead be in the charset its `<meta>` declares), NUL bytes (a binary file), invalid
  front matter (its line), a damaged or encrypted PDF, an article with no text, and an id two files
  share (the second is left out of the result, the first kept).
- A re-read passes the previous read's articles by source: a file whose sha256 is unchanged is
  not parsed again but reused as it was. They must come from a read of the same folder with the
  same `base_url`, since the id and url they hold were derived from both.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterable
from pathlib import Path

from knowledge.articles._blocks import ParsedArticle, UnreadableArticle
from knowledge.articles._html import declared_charset, read_html
from knowledge.articles._markdown import read_markdown
from knowledge.articles._model import Article
from knowledge.articles._pdf import read_pdf
from knowledge.articles._text import read_plain_text
from knowledge.records import SourceProblem

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdx"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | {".txt", ".pdf"}
QUIET_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".avif", ".ico", ".bmp", ".tif", ".tiff",  # images
    ".mp4", ".webm", ".mov", ".m4v", ".mp3", ".ogg", ".wav",  # audio and video
    ".woff", ".woff2", ".ttf", ".otf", ".eot",  # fonts
    ".css", ".js", ".map", ".xml",  # a site's stylesheets, scripts and sitemap
})
_OS_LITTER = {"thumbs.db", "desktop.ini"}
# A page called index names its folder: content/en/admin/_index.md is the "Admin" page.
_INDEX_STEMS = {"index", "_index"}


class ArticleError(ValueError):
    """An article could not be read; `problems` says where and why."""

    def __init__(self, problems: Iterable[SourceProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def _is_quietly_skipped(relative: Path) -> bool:
    name = relative.name
    return (any(part.startswith(".") for part in relative.parts) or not relative.suffix
            or relative.suffix.lower() in QUIET_SUFFIXES or name.endswith("~")
            or (name.startswith("#") and name.endswith("#")) or name.lower() in _OS_LITTER)


def _decode(raw: bytes, suffix: str) -> str:
    nul = raw.find(b"\x00")
    if nul >= 0:  # valid UTF-8, but no text file holds one: a binary file renamed, or UTF-16
        raise UnreadableArticle(raw.count(b"\n", 0, nul) + 1, "file holds NUL bytes: binary data, not text")
    body = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        charset = declared_charset(raw) if suffix in HTML_SUFFIXES else None
        if charset is None or charset == "utf-8":
            raise UnreadableArticle(line, "file is not valid UTF-8") from None
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            raise UnreadableArticle(line, f"file is neither valid UTF-8 nor valid {charset}, "
                                          "the charset it declares") from None


def _parse(raw: bytes, suffix: str, stem: str, default_url: str) -> ParsedArticle:
    if suffix == ".pdf":
        return read_pdf(raw, stem)
    text = _decode(raw, suffix)
    if suffix in MARKDOWN_SUFFIXES:
        return read_markdown(text, stem, default_url, mdx=suffix == ".mdx")
    if suffix in HTML_SUFFIXES:
        return read_html(text, stem, default_url)
    return read_plain_text(text, stem)


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:  # a file outside the folder: named by itself
        return Path(path.name)


def _from_bytes(path: Path, root: Path, base_url: str, raw: bytes, digest: str) -> Article:
    source = str(path)
    relative = _relative(path, root)
    suffix = relative.suffix.lower()
    if suffix not in ARTICLE_SUFFIXES:
        raise ArticleError([SourceProblem(source, 0, f"unsupported article type {suffix or relative.name!r}")])
    path_id = relative.with_suffix("").as_posix()
    default_url = f"{base_url.rstrip('/')}/{path_id}" if base_url else ""
    stem = relative.parent.name if relative.stem.lower() in _INDEX_STEMS and relative.parent.name else relative.stem
    try:
        parsed = _parse(raw, suffix, stem, default_url)
    except UnreadableArticle as exc:
        raise ArticleError([SourceProblem(source, exc.line, exc.message)]) from None
    if not parsed.sections:
        raise ArticleError([SourceProblem(source, 1, "article has no text")])
    return Article(parsed.id or path_id, parsed.title, parsed.sections, source, parsed.url or default_url,
                   parsed.tags, digest)


def read_article(path: Path, root: Path, base_url: str = "") -> Article:
    """Read one article; `root` is the articles folder its id is the path under. Raises `ArticleError`."""
    path, root = Path(path), Path(root)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArticleError([SourceProblem(str(path), 0, f"cannot read: {exc.strerror or exc}")]) from None
    return _from_bytes(path, root, base_url, raw, hashlib.sha256(raw).hexdigest())


def article_files(folder: Path) -> list[Path]:
    """The files under `folder` that are read as articles (or reported), in path order."""
    found = (path for path in folder.rglob("*") if path.is_file())
    return sorted((path for path in found if not _is_quietly_skipped(path.relative_to(folder))),
                  key=lambda path: path.relative_to(folder).as_posix())


def read_articles(folder: Path, base_url: str = "", previous: dict[str, Article] | None = None
                  ) -> tuple[list[Article], list[SourceProblem]]:
    """Every article under `folder` that reads, and every problem found, both in path order.

    `previous`: the last read's articles by `source`; an unchanged file's article is reused unparsed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [], [SourceProblem(str(folder), 0, "no such folder")]
    previous = previous or {}
    articles: list[Article] = []
    problems: list[SourceProblem] = []
    for path in article_files(folder):
        source = str(path)
        if path.suffix.lower() not in ARTICLE_SUFFIXES:  # reported without reading it
            problems.append(SourceProblem(source, 0, f"unsupported article type {path.suffix.lower()!r}"))
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problems.append(SourceProblem(source, 0, f"cannot read: {exc.strerror or exc}"))
            continue
        digest = hashlib.sha256(raw).hexdigest()
        known = previous.get(source)
        if known is not None and known.content_hash == digest:
            articles.append(known)
            continue
        try:
            articles.append(_from_bytes(path, folder, base_url, raw, digest))
        except ArticleError as exc:
            problems += exc.problems
    first_with_id: dict[str, Article] = {}
    unique: list[Article] = []
    for article in articles:
        first = first_with_id.setdefault(article.id, article)
        if first is article:
            unique.append(article)
        else:
            problems.append(SourceProblem(article.source, 1, f"duplicate article id {article.id!r}: "
                                                             f"{first.source} has it too"))
    return unique, problems
