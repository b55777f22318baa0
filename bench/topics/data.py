"""The topics benchmark's messages: CLINC150 intents the demo store does not cover, chosen by a fixed rule and a
seed, and the demo store's covered questions (bench/dialogue/cases/demo_covered.csv) mixed in.

Rule for the held-out intents: every intent of the five CLINC150 domains that have nothing to do with a
furniture and homeware shop's customer service (travel, kitchen and dining, auto and commute, utility, work: 75
intents; banking and credit cards touch payments, rewards and accounts, "home" holds `order` and
`order_status`, meta and small talk are conversation, not questions), sorted, shuffled with `SEED`: the first 20
are the evaluation intents (questions from val.csv), the next 20 the tuning intents (questions from train.csv)
on which the clustering threshold is chosen. The two sets share no intent and no question.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from bench._setup import DATA, ROOT

SEED = 2028
CLINC = DATA / "clinc150"
COVERED_CASES = ROOT / "bench" / "dialogue" / "cases" / "demo_covered.csv"
COVERED = "(covered)"  # the true label of a covered question, whatever its FAQ entry

# CLINC150's domains (Larson et al., 2019, domain_mapping.json) that a homeware shop's FAQ does not touch.
DOMAINS = {
    "travel": ("exchange_rate", "car_rental", "vaccines", "international_visa", "translate", "carry_on",
               "book_flight", "timezone", "flight_status", "travel_suggestion", "travel_notification",
               "lost_luggage", "plug_type", "book_hotel", "travel_alert"),
    "kitchen_and_dining": ("ingredients_list", "meal_suggestion", "recipe", "restaurant_reviews", "cook_time",
                           "restaurant_suggestion", "calories", "food_last", "nutrition_info", "how_busy",
                           "restaurant_reservation", "ingredient_substitution", "confirm_reservation",
                           "cancel_reservation", "accept_reservations"),
    "auto_and_commute": ("current_location", "oil_change_when", "oil_change_how", "uber", "traffic",
                         "tire_pressure", "schedule_maintenance", "gas", "mpg", "distance", "directions",
                         "last_maintenance", "gas_type", "tire_change", "jump_start"),
    "utility": ("weather", "alarm", "date", "find_phone", "share_location", "timer", "make_call", "calculator",
                "definition", "measurement_conversion", "flip_coin", "spelling", "time", "roll_dice", "text"),
    "work": ("pto_request", "taxes", "insurance", "payday", "w2", "pto_balance", "pto_request_status", "income",
             "meeting_schedule", "next_holiday", "direct_deposit", "rollover_401k", "insurance_change",
             "schedule_meeting", "pto_used"),
}
RULE = ("all 75 intents of CLINC150's travel, kitchen_and_dining, auto_and_commute, utility and work domains, "
        f"sorted and shuffled with seed {SEED}: the first 20 evaluate (val.csv), the next 20 tune (train.csv)")


@dataclass(frozen=True)
class Message:
    text: str
    label: str  # a CLINC150 intent, or COVERED
    faq_id: str = ""  # a covered question's expected entry


def read_clinc(file: str) -> list[tuple[str, str]]:
    with (CLINC / file).open(encoding="utf-8", newline="") as f:
        return [(r["text"].strip(), r["intent"].strip()) for r in csv.DictReader(f)]


def choose_intents(count: int = 20) -> tuple[list[str], list[str]]:
    """(evaluation intents, tuning intents), disjoint, by `RULE`."""
    pool = sorted(i for intents in DOMAINS.values() for i in intents)
    random.Random(SEED).shuffle(pool)
    if 2 * count > len(pool):
        raise SystemExit(f"--intents {count}: at most {len(pool) // 2} (two disjoint sets of {len(pool)})")
    return sorted(pool[:count]), sorted(pool[count:2 * count])


def held_out(intents: list[str], file: str, per_intent: int) -> list[Message]:
    """`per_intent` questions of each intent from `file`, the first ones after a seeded shuffle."""
    rows = read_clinc(file)
    missing = set(intents) - {label for _, label in rows}
    if missing:
        raise SystemExit(f"{CLINC / file} has no questions of {sorted(missing)}")
    rng = random.Random(SEED)
    chosen: list[Message] = []
    for intent in intents:
        texts = list(dict.fromkeys(t for t, label in rows if label == intent))
        rng.shuffle(texts)
        chosen += [Message(t, intent) for t in texts[:per_intent]]
    return chosen


def covered_questions(count: int) -> tuple[list[Message], list[Message]]:
    """Two disjoint seeded samples of `count` covered demo questions (evaluation, tuning). These are customers'
    wordings kept out of the knowledge base's calibration (unlike knowledge/demo/dev-questions.csv)."""
    rows = _rows(COVERED_CASES)
    messages = [Message(r["text"].strip(), COVERED, r["faq_id"].strip()) for r in rows if r["text"].strip()]
    random.Random(SEED).shuffle(messages)
    if 2 * count > len(messages):
        raise SystemExit(f"--covered {count}: {COVERED_CASES} has {len(messages)} questions, {2 * count} needed")
    return messages[:count], messages[count:2 * count]


def mixed(messages: list[Message]) -> list[Message]:
    """The messages in a seeded order, as a week of traffic would interleave them."""
    out = list(messages)
    random.Random(SEED + 1).shuffle(out)
    return out


def all_clinc_texts() -> list[tuple[str, str]]:
    """Every CLINC150 question of train.csv and val.csv, once per distinct text (the first label kept)."""
    seen: dict[str, str] = {}
    for file in ("train.csv", "val.csv"):
        for text, label in read_clinc(file):
            seen.setdefault(text, label)
    return list(seen.items())


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
