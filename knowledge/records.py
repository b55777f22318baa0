"""What a knowledge base is made of, and what is wrong with it: entries, article references, located problems.

`knowledge.sources` reads FAQ files into these (and still exports them, where most callers find them);
`knowledge.articles` and `knowledge.passages` make passages of help-center articles.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ArticleRef:
    """The article section a passage comes from: what its citation names and links to."""

    id: str  # the article's id (its path under articles/ without the extension, or its front matter id)
    title: str
    section: str  # the heading path below the title, joined with " › "; "" for the text before any heading
    url: str = ""  # the section's link ("" when the article has none)

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "section": self.section, "url": self.url}


@dataclass(frozen=True)
class FaqEntry:
    """One retrievable unit: a curated FAQ entry, or a passage of a help-center article (`article` set).

    A passage's `question` is its citation ("Title › Section"), its `answer` what a reply may quote
    (code and lists kept whole), and its `body` the prose that retrieval matches (code left out).
    """

    id: str
    question: str
    answer: str
    alternates: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()  # intent labels this entry answers
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)
    body: str = ""  # a passage's matched text; "" for FAQ entries
    article: ArticleRef | None = None

    @property
    def answer_id(self) -> str:
        """What answering with this entry counts as: the article for a passage, else the entry itself."""
        return self.article.id if self.article is not None else self.id

    def content_hash(self) -> str:
        parts = [self.id, self.question, self.answer, self.alternates, self.tags, self.intents]
        if self.article is not None:  # FAQ entries hash as before, so their saved versions keep their hashes
            parts += [self.body, self.article.to_dict()]
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        out = {"id": self.id, "question": self.question, "answer": self.answer,
               "alternates": list(self.alternates), "tags": list(self.tags), "intents": list(self.intents)}
        if self.article is not None:
            out |= {"body": self.body, "article": self.article.to_dict()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FaqEntry:
        article = data.get("article")
        return cls(data["id"], data["question"], data["answer"], tuple(data.get("alternates", ())),
                   tuple(data.get("tags", ())), tuple(data.get("intents", ())), body=data.get("body", ""),
                   article=ArticleRef(**article) if article else None)


@dataclass(frozen=True)
class SourceProblem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.source, "line": self.line, "message": self.message}


class KnowledgeBaseError(ValueError):
    """The knowledge base has problems; `problems` lists all of them."""

    def __init__(self, problems: Iterable[SourceProblem]):
        self.problems = list(problems)
        body = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the knowledge base:\n{body}")


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "entry"


def folder_file(path: str | Path, name: str) -> Path | None:
    """The file `name` of the knowledge folder at `path` (its questions, its wording), if it has one."""
    candidate = Path(path) / name
    return candidate if candidate.is_file() else None
