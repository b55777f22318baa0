"""The bot's wording: neutral defaults, and a company's own texts over them.

`bot/templates.yaml` names no company and no topics, so a team that points Frontdesk at its own
knowledge base is never greeted as someone else's store. A company's wording (its name, what the
bot can help with, how it says it did not understand) is a YAML file of the same names, usually
the knowledge folder's `templates.yaml` (the wiring finds it; the demo store keeps its wording
there): every name it sets replaces the default, the rest stay, and `escalated` and `intents`
are merged name by name.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Mapping
from pathlib import Path

import yaml

DEFAULT_TEMPLATES = Path(__file__).with_name("templates.yaml")
REQUIRED = ("greet", "thanks", "goodbye", "fallback", "offer_human", "offer_human_button", "suggest_intro",
            "escalated", "waiting_for_agent", "agent_joined", "resolved", "admin_only", "unavailable")


class TemplateError(ValueError):
    pass


class Templates:
    def __init__(self, data: dict, seed: int | None = None):
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise TemplateError(f"templates file lacks: {', '.join(missing)}")
        flat = [k for k in ("escalated", "intents") if not isinstance(data.get(k) or {}, dict)]
        if flat:
            raise TemplateError(f"{', '.join(flat)}: a mapping of names to texts, one per reason or intent")
        self.data = data
        self._rng = random.Random(seed)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Templates:
        """The defaults, with the texts of the file at `path` over them (None: the defaults alone)."""
        return cls.over_defaults(_read(Path(path)) if path is not None and Path(path) != DEFAULT_TEMPLATES else None)

    @classmethod
    def over_defaults(cls, wording: Mapping[str, object] | None) -> Templates:
        """The defaults, with `wording`'s texts (a knowledge folder's `templates.yaml`) over them."""
        data = copy.deepcopy(_defaults())  # each Templates owns its texts: a merge must not reach the shared ones
        for name, value in (wording or {}).items():
            merged = isinstance(value, dict) and isinstance(data.get(name), dict)
            data[name] = {**data[name], **value} if merged else value
        return cls(data)

    def say(self, template: str, **values: str) -> str:
        """A template by name (a random variant when it lists several), filled in."""
        entry = self.data[template]
        if isinstance(entry, list):
            entry = self._rng.choice(entry)
        return str(entry).format_map(_Defaults(values))

    def has(self, name: str) -> bool:
        return name in self.data

    def escalated(self, reason: str) -> str:
        texts = self.data["escalated"]
        return str(texts.get(reason) or next(iter(texts.values())))

    def intent_answer(self, intent: str) -> str | None:
        return (self.data.get("intents") or {}).get(intent)


@functools.cache
def _defaults() -> dict:
    """`bot/templates.yaml`, read once per process (a knowledge-base swap merges over it again)."""
    return _read(DEFAULT_TEMPLATES)


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read templates {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping of template names")
    return data


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return "there" if key == "name" else "a colleague"
