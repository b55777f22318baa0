"""Reading a whole knowledge base: FAQ files and help-center articles, validated together.

A knowledge base is a file of FAQ entries, or a folder of FAQ files with articles under its
`articles/` sub-folder (any depth). Everything is read and every problem collected (file and
line) before anything is indexed; one problem anywhere rejects the whole version, so a broken
PDF never half-replaces a working index. FAQ ids and article ids share one name space: a
reviewer labels a question with either, and a dev set names either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from knowledge.articles import Article, read_articles
from knowledge.passages import article_passages
from knowledge.sources import (
    ARTICLES_DIR,
    SUFFIXES,
    FaqEntry,
    KnowledgeBaseError,
    SourceProblem,
    read_faq,
    source_files,
)
from knowledge.wording import Wording, read_wording


@dataclass
class LoadedKnowledge:
    entries: list[FaqEntry]  # the FAQ entries, then every article's passages
    articles: list[Article] = field(default_factory=list)
    wording: Wording | None = None  # the folder's templates.yaml (`knowledge.wording`), versioned with the rest

    @property
    def faq_entries(self) -> int:
        return sum(entry.article is None for entry in self.entries)

    @property
    def passages(self) -> int:
        return len(self.entries) - self.faq_entries

    @property
    def sections(self) -> int:
        return sum(len(article.sections) for article in self.articles)

    def by_source(self) -> dict[str, Article]:
        """The articles by file, for the next read to reuse those whose bytes did not change."""
        return {article.source: article for article in self.articles}

    def summary(self) -> dict:
        return {"faq_entries": self.faq_entries, "articles": len(self.articles), "sections": self.sections,
                "passages": self.passages}


def articles_folder(path: str | Path) -> Path | None:
    candidate = Path(path) / ARTICLES_DIR
    return candidate if candidate.is_dir() else None


def load_knowledge(path: str | Path, base_url: str = "", previous: dict[str, Article] | None = None
                   ) -> LoadedKnowledge:
    """Read and validate FAQ files and articles; raise `KnowledgeBaseError` with every problem.

    `base_url`: FRONTDESK_ARTICLES_BASE_URL, the link of an article whose front matter gives none.
    `previous`: the last read's articles by file (`LoadedKnowledge.by_source`), reused when unchanged.
    """
    files = source_files(path)
    folder = articles_folder(path) if Path(path).is_dir() else None
    entries, problems = read_faq(files)
    wording, wording_problems = read_wording(path) if Path(path).is_dir() else (None, [])
    problems += wording_problems
    articles: list[Article] = []
    if folder is not None:
        articles, article_problems = read_articles(folder, base_url, previous)
        problems += article_problems
    if not files and folder is None:
        problems.append(SourceProblem(str(path), 0, f"no {', '.join(sorted(SUFFIXES))} files and no "
                                                    f"{ARTICLES_DIR}/ folder found"))
    faq_ids = {entry.id: entry for entry in entries}
    for article in articles:
        clash = faq_ids.get(article.id)
        if clash is not None:
            problems.append(SourceProblem(article.source, 1, f"article id {article.id!r} is also an FAQ entry's id "
                                                             f"({clash.source}:{clash.line})"))
    passages = [passage for article in articles for passage in article_passages(article)]
    if not entries and not passages and not problems:
        problems.append(SourceProblem(str(path), 0, "the knowledge base has no entries and no article text"))
    if problems:
        raise KnowledgeBaseError(problems)
    return LoadedKnowledge([*entries, *passages], articles, wording)
