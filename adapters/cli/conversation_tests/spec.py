"""The conversation-test file format, read into typed records; whatever is wrong is `file:line: message`.

A file is a YAML list of conversations `{name, channel?, steps}`; a step is `{user: TEXT, expect?: {...}}` or
`{staff: claim | resolve | "reply TEXT", expect?: {...}}`. The YAML is composed into nodes first (not loaded
straight into dicts) so every record keeps the line it came from: an error, and later a failure, names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

SUFFIXES = (".yaml", ".yml")
DEFAULT_CHANNEL = "rest"


class Check(StrEnum):
    """What a step can expect (docs/CONVERSATION_TESTS.md says what each means)."""

    ANSWER = "answer"
    SUGGESTIONS = "suggestions"
    DECLINED = "declined"
    ESCALATED = "escalated"
    HANDED_BACK = "handed_back"
    INTENT = "intent"
    SENTIMENT = "sentiment"
    OUT_OF_SCOPE = "out_of_scope"
    REPLY_CONTAINS = "reply_contains"
    REPLY_MATCHES = "reply_matches"


# What a staff action can be checked for: it sends messages and changes the hand-off, but classifies nothing.
STAFF_CHECKS = frozenset({Check.ESCALATED, Check.HANDED_BACK, Check.REPLY_CONTAINS, Check.REPLY_MATCHES})
_BOOLEAN = frozenset({Check.DECLINED, Check.ESCALATED, Check.HANDED_BACK, Check.OUT_OF_SCOPE})
_ONE_STRING = frozenset({Check.INTENT, Check.SENTIMENT, Check.REPLY_MATCHES})
_STRINGS = frozenset({Check.ANSWER, Check.SUGGESTIONS, Check.REPLY_CONTAINS})  # one string, or a list of them


class StaffAction(StrEnum):
    CLAIM = "claim"
    REPLY = "reply"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Expectation:
    check: Check
    value: bool | str | tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Step:
    number: int  # 1-based, as a person counts the steps of a conversation
    line: int
    expect: tuple[Expectation, ...]
    user: str | None = None  # the customer's message, or None for a staff step
    staff: StaffAction | None = None
    staff_text: str = ""  # what `staff: reply TEXT` says

    @property
    def label(self) -> str:
        """How a report names the step: its number and what it says."""
        said = f"user: {self.user}" if self.user is not None else f"staff: {self.staff} {self.staff_text}".rstrip()
        return f"step {self.number} ({said})"


@dataclass(frozen=True)
class Conversation:
    name: str
    channel: str
    steps: tuple[Step, ...]
    file: Path
    line: int


class MalformedTests(ValueError):
    """A test file that cannot be run as written (exit 2)."""

    def __init__(self, file: Path | str, line: int, message: str):
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def collect(paths: list[Path]) -> list[Path]:
    """The test files named: each file as given, each folder's *.yaml / *.yml files (any depth), sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise MalformedTests(path, 0, "no .yaml or .yml test files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise MalformedTests(path, 0, "no such file or folder")
    return files


def load(files: list[Path]) -> list[Conversation]:
    """Every conversation of every file, in order; the first problem found raises `MalformedTests`."""
    conversations: list[Conversation] = []
    for file in files:
        conversations += parse(file.read_text(encoding="utf-8"), file)
    return conversations


def parse(text: str, file: Path) -> list[Conversation]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise MalformedTests(file, mark.line + 1 if mark else 0, f"not valid YAML: {exc.problem}") from None
    finally:
        loader.dispose()
    if root is None:
        raise MalformedTests(file, 1, "the file is empty: expected a list of conversations")
    if not isinstance(root, yaml.SequenceNode):
        raise MalformedTests(file, _line(root), "expected a list of conversations (`- name: ...`)")
    reader = _Reader(file)
    conversations = [reader.conversation(node) for node in root.value]
    seen: dict[str, int] = {}
    for c in conversations:
        if c.name in seen:
            raise MalformedTests(file, c.line, f"a second test named {c.name!r} (the first is on line {seen[c.name]})")
        seen[c.name] = c.line
    return conversations


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Turns the nodes of one file into records, checking each as it goes."""

    def __init__(self, file: Path):
        self.file = file
        self.constructor = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, message: str) -> MalformedTests:
        return MalformedTests(self.file, _line(node), message)

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping ({', '.join(allowed)})")
        fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name not in allowed:
                raise self.fail(key, f"unknown key {name!r} in {what} (known: {', '.join(allowed)})")
            if name in fields:
                raise self.fail(key, f"{name!r} appears twice in {what}")
            fields[name] = (key, value)
        return fields

    def scalar(self, node: yaml.Node, what: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
            raise self.fail(node, f"{what} must be a single value, not a {kind}")
        return self.constructor.construct_object(node)  # the tag YAML resolved: `true` a bool, `12` an int

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = node.value  # `user: 42`, `reply_contains: 5.95`: the text as written
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{what} must be non-empty text, got {value!r} (quote it to mean the text)")
        return value

    def conversation(self, node: yaml.Node) -> Conversation:
        fields = self.mapping(node, "a conversation", ("name", "channel", "steps"))
        if "name" not in fields:
            raise self.fail(node, "a conversation needs a `name`")
        if "steps" not in fields:
            raise self.fail(node, "a conversation needs `steps` (a list)")
        name = self.text(fields["name"][1], "name")
        channel = self.text(fields["channel"][1], "channel") if "channel" in fields else DEFAULT_CHANNEL
        steps_node = fields["steps"][1]
        if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
            raise self.fail(steps_node, f"steps of {name!r} must be a non-empty list")
        steps = tuple(self.step(n, i) for i, n in enumerate(steps_node.value, 1))
        return Conversation(name, channel, steps, self.file, _line(node))

    def step(self, node: yaml.Node, number: int) -> Step:
        fields = self.mapping(node, "a step", ("user", "staff", "expect"))
        if ("user" in fields) == ("staff" in fields):
            raise self.fail(node, f"step {number} needs exactly one of `user: TEXT` or "
                                  "`staff: claim|resolve|reply TEXT`")
        staff_node = fields.get("staff", (None, None))[1]
        user = self.text(fields["user"][1], "user") if "user" in fields else None
        staff, staff_text = self.staff(staff_node) if staff_node is not None else (None, "")
        expect = self.expectations(fields["expect"][1], staff is not None) if "expect" in fields else ()
        return Step(number, _line(node), expect, user=user, staff=staff, staff_text=staff_text)

    def staff(self, node: yaml.Node) -> tuple[StaffAction, str]:
        verb, _, rest = self.text(node, "staff").strip().partition(" ")
        if verb not in tuple(StaffAction):
            raise self.fail(node, f"staff: {verb!r} is not claim, resolve or reply TEXT")
        if (verb == StaffAction.REPLY) != bool(rest.strip()):
            raise self.fail(node, "staff: reply needs the text to send (`staff: reply Hello`); claim and resolve "
                                  "take none")
        return StaffAction(verb), rest.strip()

    def expectations(self, node: yaml.Node, staff: bool) -> tuple[Expectation, ...]:
        fields = self.mapping(node, "expect", tuple(Check))
        out = []
        for name, (key, value) in fields.items():
            check = Check(name)
            if staff and check not in STAFF_CHECKS:
                raise self.fail(key, f"{check} is not checked on a staff step (only "
                                     f"{', '.join(sorted(STAFF_CHECKS))})")
            out.append(Expectation(check, self.value(check, value), _line(key)))
        return tuple(out)

    def value(self, check: Check, node: yaml.Node) -> bool | str | tuple[str, ...]:
        if check in _STRINGS and isinstance(node, yaml.SequenceNode):
            if not node.value:
                raise self.fail(node, f"{check} must not be an empty list")
            return tuple(self.text(item, check) for item in node.value)
        if check in _STRINGS:
            return (self.text(node, check),)
        value = self.scalar(node, check)
        if check in _BOOLEAN:
            if not isinstance(value, bool):
                raise self.fail(node, f"{check} must be true or false, got {value!r}")
            return value
        text = self.text(node, check)
        if check == Check.REPLY_MATCHES:
            try:
                re.compile(text)
            except re.error as exc:
                raise self.fail(node, f"reply_matches is not a valid regular expression: {exc}") from None
        return text
