"""What a reply quotes from a passage: the sentences that answer the question, not the whole section.

Rule: a passage of at most QUOTE_CHARS is quoted whole. A longer one is read as units (a
sentence of a paragraph; a whole list, table row or code block, which are never cut) and the
quote is the run of consecutive units, at most QUOTE_CHARS long, holding the most of the
question's words (rarer words in the passage count more); with no word in common, its start.
A unit that alone is longer than the limit is quoted whole: a list or code cut in half
misleads more than a long reply. "…" marks text left out after the quote.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from bm25s.stopwords import STOPWORDS_EN

from knowledge.passages import sentences
from knowledge.records import FaqEntry

QUOTE_CHARS = 600
_WORD = re.compile(r"[a-z0-9]+")
_QUESTION_WORDS = ("i", "my", "me", "we", "our", "you", "your", "do", "does", "can", "how", "what", "when",
                   "where", "why", "which", "who", "is", "am", "are", "was", "be", "have", "has")
_STOP = frozenset(STOPWORDS_EN) | frozenset(_QUESTION_WORDS)
_WHOLE = re.compile(r"^(```|- |\d+\. |\|)")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def _units(answer: str) -> list[tuple[int, str]]:
    """(paragraph number, text) for every sentence of prose and every whole list, table row or code block."""
    out = []
    for number, block in enumerate(part for part in answer.split("\n\n") if part.strip()):
        if _WHOLE.match(block.lstrip()):
            out.append((number, block))
        else:
            out.extend((number, sentence) for sentence in sentences(block))
    return out


def _join(units: list[tuple[int, str]]) -> str:
    text = ""
    for i, (number, unit) in enumerate(units):
        if i == 0:
            text = unit
        else:
            text += (" " if number == units[i - 1][0] else "\n\n") + unit
    return text


def quote(entry: FaqEntry, query: str, limit: int = QUOTE_CHARS) -> str:
    """The text a reply gives for `entry` asked `query`: an FAQ answer whole, a passage trimmed."""
    if entry.article is None or len(entry.answer) <= limit:
        return entry.answer
    units = _units(entry.answer)
    if not units:
        return entry.answer
    unit_words = [_words(text) for _, text in units]
    frequency = Counter(word for words in unit_words for word in words)
    wanted = _words(query)
    weight = {w: math.log(1 + len(units) / frequency[w]) for w in wanted if frequency[w]}
    best_score, best = -1.0, (0, 1)
    for start in range(len(units)):
        end, size, score = start, 0, 0.0
        while end < len(units) and (end == start or size + len(units[end][1]) + 2 <= limit):
            size += len(units[end][1]) + 2
            score += sum(weight.get(w, 0.0) for w in unit_words[end])
            end += 1
        if score > best_score + 1e-9:
            best_score, best = score, (start, end)
    start, end = best
    text = _join(units[start:end])
    return text + (" …" if end < len(units) else "")
