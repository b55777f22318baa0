"""Reading FAQ entries from YAML, CSV, Markdown and JSONL files, with located errors.

Every entry has an `id`, a `question`, an `answer`, and optionally `alternates` (other
phrasings), `tags`, and `intents` (the intent-model labels this entry answers, which lets the
dialogue policy combine the intent model with retrieval). A knowledge base is a file or a
folder of such files; validation collects *every* problem (file and line) before anything is indexed, so an admin fixes
the source in one pass and a broken file never half-replaces a working knowledge base.

Markdown format:

    ## How long does delivery take?
    id: shipping-times
    alternates: when will my order arrive | how long is shipping
    tags: shipping
    intents: shipping_info

    Standard shipping takes 3-5 business days ...

(the `id:`, `alternates:`, `tags:` and `intents:` lines are optional; `tags` and `intents` are
comma-separated; without `id` one is derived
from the question).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from knowledge.records import ArticleRef, FaqEntry, KnowledgeBaseError, SourceProblem, folder_file, slugify
from knowledge.wording import WORDING_FILE  # the company's wording beside the entries, never read as entries

__all__ = ["ARTICLES_DIR", "KNOWN_KEYS", "QUESTIONS_FILE", "SUFFIXES", "ArticleRef", "FaqEntry", "KnowledgeBaseError",
           "SourceProblem", "load_entries", "questions_file", "read_faq", "slugify", "source_files", "with_alternates"]

SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv", ".md": "markdown", ".markdown": "markdown",
            ".jsonl": "jsonl", ".json": "jsonl"}
KNOWN_KEYS = {"id", "question", "answer", "alternates", "tags", "intents"}


# ---------------------------------------------------------------- raw records
@dataclass
class _Raw:
    data: dict
    source: str
    line: int


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # C parser when available
    """A safe YAML loader that remembers the line each mapping starts on."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(text: str, source: str, problems: list[SourceProblem]) -> list[_Raw]:
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(SourceProblem(source, (mark.line + 1) if mark else 1, f"invalid YAML: {exc}"))
        return []
    except RecursionError:  # within the parser's nesting limit, but too deep for the constructor
        problems.append(SourceProblem(source, 1, "invalid YAML: nested too deeply"))
        return []
    except ValueError as exc:  # a value the constructor refuses, e.g. an integer of 5000 digits
        problems.append(SourceProblem(source, 1, f"invalid YAML: {exc}"))
        return []
    if isinstance(doc, dict) and isinstance(doc.get("entries"), list):
        doc = doc["entries"]
    if doc is None:
        return []
    if not isinstance(doc, list):
        problems.append(SourceProblem(source, 1, "expected a list of entries (or a mapping with 'entries:')"))
        return []
    out = []
    for item in doc:
        if not isinstance(item, dict):
            problems.append(SourceProblem(source, 1, f"entry is not a mapping: {str(item)[:60]!r}"))
            continue
        line = int(item.pop("__line__", 1))
        out.append(_Raw(item, source, line))
    return out


def _split_list(value: str, separator: str) -> list[str]:
    return [part.strip() for part in value.split(separator) if part.strip()]


def _read_csv(text: str, source: str, problems: list[SourceProblem]) -> list[_Raw]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = [c for c in ("question", "answer") if c not in fields]
    if missing:
        problems.append(SourceProblem(source, 1, f"missing column(s) {', '.join(missing)}; header is {fields}"))
        return []
    reader.fieldnames = fields
    out = []
    try:
        for row in reader:
            data = {k: (v or "").strip() for k, v in row.items() if k}
            if not any(data.values()):
                continue
            for key in ("alternates", "tags", "intents"):
                if key in data:
                    data[key] = _split_list(data[key], "|")
            out.append(_Raw(data, source, reader.line_num))
    except csv.Error as exc:
        problems.append(SourceProblem(source, reader.line_num, f"malformed CSV: {exc}"))
    return out


def _read_jsonl(text: str, source: str, problems: list[SourceProblem]) -> list[_Raw]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(SourceProblem(source, number, f"invalid JSON: {exc.msg}"))
            continue
        except RecursionError:  # e.g. thousands of nested "[": json raises this, not JSONDecodeError
            problems.append(SourceProblem(source, number, "invalid JSON: nested too deeply"))
            continue
        except ValueError as exc:  # valid syntax Python refuses, e.g. an integer of 5000 digits
            problems.append(SourceProblem(source, number, f"invalid JSON: {exc}"))
            continue
        if not isinstance(data, dict):
            problems.append(SourceProblem(source, number, "line is not a JSON object"))
            continue
        out.append(_Raw(data, source, number))
    return out


_META = re.compile(r"^(id|alternates|tags|intents)\s*:\s*(.*)$", re.I)


def _read_markdown(text: str, source: str, problems: list[SourceProblem]) -> list[_Raw]:
    out: list[_Raw] = []
    current: _Raw | None = None
    body: list[str] = []

    def finish() -> None:
        if current is not None:
            current.data["answer"] = "\n".join(body).strip()
            out.append(current)

    in_meta = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            finish()
            current, body, in_meta = _Raw({"question": line[3:].strip()}, source, number), [], True
            continue
        if current is None:
            continue  # preamble (a title, an introduction) before the first question
        match = _META.match(line.strip()) if in_meta else None
        if match:
            key, value = match.group(1).lower(), match.group(2).strip()
            current.data[key] = value if key == "id" else _split_list(value, "|" if key == "alternates" else ",")
            continue
        if line.strip() or body:
            in_meta = False
            body.append(line)
    finish()
    return out


_READERS = {"yaml": _read_yaml, "csv": _read_csv, "jsonl": _read_jsonl, "markdown": _read_markdown}


# ---------------------------------------------------------------- validation
def _as_text_list(value, key: str, raw: _Raw, problems: list[SourceProblem]) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        problems.append(SourceProblem(raw.source, raw.line, f"'{key}' must be a list of strings"))
        return ()
    return tuple(str(v).strip() for v in value if str(v).strip())


def _to_entry(raw: _Raw, problems: list[SourceProblem]) -> FaqEntry | None:
    data = raw.data
    before = len(problems)
    question = data.get("question")
    answer = data.get("answer")
    if not isinstance(question, str) or not question.strip():
        problems.append(SourceProblem(raw.source, raw.line, "empty or missing question"))
    if not isinstance(answer, str) or not answer.strip():
        problems.append(SourceProblem(raw.source, raw.line, "missing answer"))
    raw_id = data.get("id")
    if raw_id is not None and not isinstance(raw_id, str | int):
        problems.append(SourceProblem(raw.source, raw.line, "'id' must be a string"))
    alternates = _as_text_list(data.get("alternates"), "alternates", raw, problems)
    tags = _as_text_list(data.get("tags"), "tags", raw, problems)
    intents = _as_text_list(data.get("intents"), "intents", raw, problems)
    # str(): YAML keys may be numbers or null (`1: x`), which neither sort with strings nor join; a JSON key
    # may hold a lone surrogate, shown escaped so the message itself stays printable.
    unknown = sorted(str(key).encode("utf-8", "backslashreplace").decode("utf-8") for key in set(data) - KNOWN_KEYS)
    if unknown:
        problems.append(SourceProblem(raw.source, raw.line, f"unknown field(s): {', '.join(unknown)}"))
    texts = [question, answer, raw_id, *alternates, *tags, *intents]
    if any(isinstance(t, str) and not _is_unicode(t) for t in texts):
        # JSON's "\ud800" escape decodes to a lone surrogate, which no UTF-8 encoder (the index, Redis) accepts.
        problems.append(SourceProblem(raw.source, raw.line, "text contains a lone surrogate (an unpaired \\uD800-"
                                                            "\\uDFFF escape): not valid Unicode"))
    if len(problems) > before:
        return None
    return FaqEntry(_raw_id(raw) or slugify(question), question.strip(), answer.strip(), alternates, tags,
                    intents, raw.source, raw.line)


def _is_unicode(text: str) -> bool:
    """False when `text` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw_id(raw: _Raw) -> str | None:
    raw_id, question = raw.data.get("id"), raw.data.get("question")
    if isinstance(raw_id, str | int) and str(raw_id).strip():
        return str(raw_id).strip()
    return slugify(question) if isinstance(question, str) and question.strip() else None


# A knowledge-base folder's development set of customer questions (`knowledge.calibration`): kept
# beside the entries so it travels with them, and never read as entries.
LEARNED_FILE = "learned.yaml"  # the entries approved from customers' questions (knowledge.learned writes it)
QUESTIONS_FILE = "dev-questions.csv"


def questions_file(path: str | Path) -> Path | None:
    """The development set that belongs to the knowledge base at `path`, if it has one."""
    return folder_file(path, QUESTIONS_FILE)


# Help-center articles live in this sub-folder of a knowledge-base folder (`knowledge.articles`), any depth.
ARTICLES_DIR = "articles"


def source_files(path: str | Path) -> list[Path]:
    """The FAQ files at `path` (a file, or every supported file under a folder, outside its articles/)."""
    path = Path(path)
    if path.is_file():  # one FAQ file: the entries learned beside it count too (knowledge.learned)
        learned = path.with_name(LEARNED_FILE)
        return [path, learned] if learned.is_file() and learned != path else [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                      and p not in (path / QUESTIONS_FILE, path / WORDING_FILE)
                      and p.relative_to(path).parts[0] != ARTICLES_DIR
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    raise KnowledgeBaseError([SourceProblem(str(path), 0, "no such file or folder")])


def load_entries(path: str | Path) -> list[FaqEntry]:
    """Read and validate the FAQ entries of a knowledge base; raise `KnowledgeBaseError` with every problem."""
    files = source_files(path)
    if not files:
        raise KnowledgeBaseError([SourceProblem(str(path), 0, f"no {', '.join(sorted(SUFFIXES))} files found")])
    entries, problems = read_faq(files)
    if not entries and not problems:
        problems.append(SourceProblem(str(path), 0, "the knowledge base has no entries"))
    if problems:
        raise KnowledgeBaseError(problems)
    return entries


def read_faq(files: list[Path]) -> tuple[list[FaqEntry], list[SourceProblem]]:
    """The valid entries of these FAQ files, and every problem found in them."""
    problems: list[SourceProblem] = []
    entries: list[FaqEntry] = []
    seen: dict[str, _Raw] = {}
    for file in files:
        source = str(file)
        kind = SUFFIXES.get(file.suffix.lower())
        if kind is None:
            problems.append(SourceProblem(source, 0, f"unsupported file type {file.suffix!r}"))
            continue
        try:
            text = file.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = file.read_bytes()[: exc.start].count(b"\n") + 1
            problems.append(SourceProblem(source, line, "file is not valid UTF-8"))
            continue
        except OSError as exc:
            problems.append(SourceProblem(source, 0, f"cannot read: {exc.strerror or exc}"))
            continue
        for raw in _READERS[kind](text, source, problems):
            entry = _to_entry(raw, problems)
            if entry is not None:
                entries.append(entry)
            # Duplicates are checked on every record, valid or not, so all problems show at once.
            entry_id = _raw_id(raw)
            first = seen.get(entry_id) if entry_id else None
            if first is not None:
                problems.append(SourceProblem(raw.source, raw.line,
                                              f"duplicate id {entry_id!r} (first at {first.source}:{first.line})"))
            elif entry_id:
                seen[entry_id] = raw
    return entries, problems


def with_alternates(entries: list[FaqEntry], extra: dict[str, list[str]]) -> list[FaqEntry]:
    """`entries` with `extra[id]` added to their alternates (unknown ids and texts already there ignored).

    How customers' own wordings, labelled by staff in the review inbox, reach the index on the next
    reload without anyone editing the FAQ files.
    """
    out, placed = [], set()
    for entry in entries:
        # An article's labelled wordings join its first passage: the one that carries its title.
        key = entry.answer_id
        texts = [t for t in dict.fromkeys(extra.get(key, ())) if t not in entry.alternates and t != entry.question]
        out.append(replace(entry, alternates=(*entry.alternates, *texts)) if texts and key not in placed else entry)
        placed.add(key)
    return out
