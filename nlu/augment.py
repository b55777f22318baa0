"""Chat-style noise for training text: typos, casing and punctuation.

Customers type fast on phones: letters swap, neighbours on the keyboard get hit, capitals
and question marks come and go. Training on a noisy copy of each example teaches the
model that these variations do not change the meaning.
"""

from __future__ import annotations

import random
import string

# Neighbouring keys on a QWERTY keyboard, for realistic substitution typos.
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, str] = {}
for _row_index, _row in enumerate(_KEYBOARD_ROWS):
    for _col, _ch in enumerate(_row):
        near = {_row[c] for c in (_col - 1, _col + 1) if 0 <= c < len(_row)}
        for other_row in (_row_index - 1, _row_index + 1):
            if 0 <= other_row < len(_KEYBOARD_ROWS):
                neighbour_row = _KEYBOARD_ROWS[other_row]
                near.update(neighbour_row[c] for c in (_col - 1, _col, _col + 1) if 0 <= c < len(neighbour_row))
        _NEIGHBOURS[_ch] = "".join(sorted(near))


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard-style edit inside a word: swap, drop, double or hit a neighbour key."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    neighbours = _NEIGHBOURS.get(word[i].lower())
    if not neighbours:
        return word
    return word[:i] + rng.choice(neighbours) + word[i + 1 :]


def _recase(text: str, rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.6:
        return text.lower()
    if choice < 0.7:
        return text.upper()
    return text[:1].upper() + text[1:]


def _repunctuate(text: str, rng: random.Random) -> str:
    stripped = text.rstrip(string.punctuation + " ")
    choice = rng.random()
    if choice < 0.5:
        return stripped
    if choice < 0.7:
        return stripped + rng.choice(["?", "??", "!", "!!", "...", " ?"])
    return stripped.replace(",", "").replace("'", "")


def noisy_variant(text: str, rng: random.Random, typo_rate: float = 0.12) -> str:
    """Return a chat-noisy variant of `text`; the meaning is unchanged."""
    words = text.split()
    words = [_typo(w, rng) if rng.random() < typo_rate else w for w in words]
    noisy = " ".join(words)
    if rng.random() < 0.5:
        noisy = _recase(noisy, rng)
    if rng.random() < 0.5:
        noisy = _repunctuate(noisy, rng)
    return noisy or text


def augment_texts(
    pairs: list[tuple[str, int]], copies: int, seed: int
) -> list[tuple[str, int]]:
    """Originals plus `copies` noisy variants of each (text, label) pair, deduplicated."""
    rng = random.Random(seed)
    seen = {text for text, _ in pairs}
    out = list(pairs)
    for text, label in pairs:
        for _ in range(copies):
            variant = noisy_variant(text, rng)
            if variant not in seen:
                seen.add(variant)
                out.append((variant, label))
    return out
