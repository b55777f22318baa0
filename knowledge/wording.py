"""A company's wording for the bot, kept in its knowledge folder and versioned with it.

Rule: a knowledge folder may hold `templates.yaml`, the texts the bot says in that company's
words (its greeting, what it can help with, how it says it did not understand), by the names of
the bot's own defaults. It is read with the entries and articles and belongs to the same version:
a reload that changes only the wording is a new version, which every worker then serves, and a
restore brings back the wording of the version restored. A file that is not a mapping of names
to texts (a text, a list of texts, or a mapping of names to texts) is a problem of the knowledge
base like any other, named by file and line, and the version served stays. What the names mean
is the bot's business (`bot.templates`), not this module's.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from knowledge.records import SourceProblem, folder_file

WORDING_FILE = "templates.yaml"

Wording = dict[str, object]  # name -> a text, a list of texts, or {name: text}


def read_wording(path: str | Path) -> tuple[Wording | None, list[SourceProblem]]:
    """The knowledge folder's wording (None without one), or the problems that keep it from being read."""
    file = folder_file(path, WORDING_FILE)
    if file is None:
        return None, []
    source = str(file)
    try:
        text = file.read_bytes().decode("utf-8-sig")
        loader = yaml.SafeLoader(text)  # parsed once: the nodes give the lines, the same nodes give the data
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError) as exc:
        return None, [SourceProblem(source, 0, f"cannot read the bot's wording: {exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [SourceProblem(source, mark.line + 1 if mark else 0, f"not valid YAML: {exc}")]
    if data is None:
        return {}, []
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        return None, [SourceProblem(source, 1, "expected a mapping of names to texts (greet: \"Hi {name}!\", ...)")]
    problems = [SourceProblem(source, key.start_mark.line + 1, why)
                for key, value in root.value if (why := _bad(key, value))]
    return (None, problems) if problems else (data, [])


def _bad(key: yaml.Node, value: yaml.Node) -> str:
    """Why one name and its texts cannot be the bot's wording ("" when they can)."""
    if not isinstance(key, yaml.ScalarNode):
        return "a name must be a word, not a list or mapping"
    if isinstance(value, yaml.ScalarNode):
        return "" if value.tag != "tag:yaml.org,2002:null" else f"{key.value}: no text given"
    if isinstance(value, yaml.SequenceNode):
        return "" if value.value and all(isinstance(v, yaml.ScalarNode) for v in value.value) else \
            f"{key.value}: a list of texts, one per variant"
    if all(isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode) for k, v in value.value):
        return ""
    return f"{key.value}: a mapping of names to texts, nothing nested deeper"
