"""The platform-neutral message type survives what browsers and platforms send."""

from __future__ import annotations

import json

from bot.messages import InboundMessage


def test_lone_surrogates_become_replacement_characters_and_pairs_survive():
    message = InboundMessage("web", "s", "s", "half \ud83d an emoji, whole 😀, stray \udc00")
    assert message.text == "half \ufffd an emoji, whole 😀, stray \ufffd"
    json.dumps(message.to_dict(), ensure_ascii=False).encode("utf-8")  # storable as UTF-8 JSON
    assert InboundMessage.from_dict(message.to_dict()) == message
