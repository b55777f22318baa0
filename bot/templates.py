"""Loading the bot's wording from an operator-editable YAML file."""

from __future__ import annotations

import random
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
        self.data = data
        self._rng = random.Random(seed)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Templates:
        path = Path(path or DEFAULT_TEMPLATES)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateError(f"cannot read templates {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise TemplateError(f"{path}: expected a mapping of template names")
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


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return "there" if key == "name" else "a colleague"
