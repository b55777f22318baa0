"""FAQ labels from the review inbox: an agent's proposal waits for an admin; approved texts become FAQ alternates.

Labelling a review item with an FAQ entry puts a customer's words into the knowledge base that
answers everyone, so only an admin decides it: an agent's label becomes a pending `Proposal`,
which an admin approves (the text is added as an alternate of the entry, merged on the next FAQ
reload) or rejects (nothing is added). An admin's own label is approved as it is made.

Every alternate remembers whose words it is (`alternate-owners`), so erasing that customer
removes it from the FAQ too (`erase_customer`), with their pending proposals. Alternates added
before owners were kept are found by their text: the customer's masked review texts and messages.

Keys (`bot.keys.Keys.review`, the review inbox's one hash tag, so each change is one MULTI):
proposals (hash id -> JSON), faq-alternates (hash FAQ id -> JSON list of texts), alternate-owners
(hash JSON [FAQ id, text] -> JSON list of [channel, user]); ids come from the inbox's seq.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

import redis

from bot.keys import Keys


class ProposalNotFound(LookupError):
    """No pending proposal with that id (decided already, or never made): the routes answer 404."""


class ProposalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Proposal:
    """An agent's label that would add a customer's (masked) text to an FAQ entry, waiting for an admin."""

    id: str
    faq_id: str
    text: str
    item_id: str
    channel: str
    user_id: str
    proposed_by: str
    at: float
    status: ProposalStatus = ProposalStatus.PENDING
    decided_by: str | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "status": str(self.status)}

    @classmethod
    def from_dict(cls, data: dict) -> Proposal:
        return cls(**{**data, "status": ProposalStatus(data.get("status", "pending"))})


@dataclass(frozen=True)
class CustomerLabels:
    """What one customer's erasure removed here."""

    proposals: int
    alternates: int


class FaqProposals:
    def __init__(self, client: redis.Redis, keys: Keys, *, clock: Callable[[], float] = time.time):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self._proposals = keys.review("proposals")
        self._alternates = keys.review("faq-alternates")
        self._owners = keys.review("alternate-owners")

    # ------------------------------------------------------------------ proposing and deciding
    def propose(self, item: dict, faq_id: str, by: str | None) -> Proposal:
        """An agent's FAQ label on `item`: kept pending, nothing added to the FAQ."""
        proposal = Proposal(str(self.redis.incr(self.keys.review("seq"))), faq_id, item["text"], str(item["id"]),
                            item["channel"], item["user_id"], by or "", self.clock())
        self.redis.hset(self._proposals, proposal.id, json.dumps(proposal.to_dict()))
        return proposal

    def pending(self) -> list[dict]:
        """Oldest first."""
        found = [Proposal.from_dict(json.loads(raw)) for raw in self.redis.hvals(self._proposals)]
        return [p.to_dict() for p in sorted(found, key=lambda p: (p.at, int(p.id)))]

    def approve(self, proposal_id: str, by: str) -> Proposal:
        """Add the proposal's text as an alternate of its entry (merged on the next FAQ reload); no longer pending."""
        return self._decide(proposal_id, by, ProposalStatus.APPROVED)

    def reject(self, proposal_id: str, by: str) -> Proposal:
        return self._decide(proposal_id, by, ProposalStatus.REJECTED)

    def _decide(self, proposal_id: str, by: str, status: ProposalStatus) -> Proposal:
        def work(pipe):
            raw = pipe.hget(self._proposals, proposal_id)
            if raw is None:
                raise ProposalNotFound(f"no pending FAQ proposal {proposal_id!r}")
            proposal = Proposal.from_dict({**json.loads(raw), "status": str(status), "decided_by": by})
            add = (self._alternate_writes(pipe, proposal.faq_id, proposal.text, (proposal.channel, proposal.user_id))
                   if status is ProposalStatus.APPROVED else [])
            return proposal, [("hdel", self._proposals, proposal_id), *add]

        return self._atomically(work)

    def add_alternate(self, faq_id: str, text: str, owner: tuple[str, str] | None) -> None:
        """`text` becomes an alternate of `faq_id` at the next FAQ reload, remembered as `owner`'s words."""
        self._atomically(lambda pipe: (None, self._alternate_writes(pipe, faq_id, text, owner)))

    def _alternate_writes(self, pipe, faq_id: str, text: str, owner: tuple[str, str] | None) -> list:
        raw = pipe.hget(self._alternates, faq_id)
        texts = json.loads(raw) if raw else []
        if text not in texts:
            texts.append(text)
        field = json.dumps([faq_id, text])
        owners = json.loads(pipe.hget(self._owners, field) or "[]")
        if owner is not None and list(owner) not in owners:
            owners.append(list(owner))
        writes = [("hset", self._alternates, faq_id, json.dumps(texts))]
        if owners:
            writes.append(("hset", self._owners, field, json.dumps(owners)))
        return writes

    def alternates(self) -> dict[str, list[str]]:
        """FAQ entry id -> approved texts for it, to add as that entry's alternates on the next reload."""
        return {_text(k): json.loads(v) for k, v in self.redis.hgetall(self._alternates).items()}

    # ------------------------------------------------------------------ one customer's data
    def for_customer(self, channel: str, user_id: str, texts: Iterable[str] = ()) -> dict:
        """Their pending proposals and the FAQ alternates holding their words (for their data export)."""
        proposals = [p for p in self.pending() if (p["channel"], p["user_id"]) == (channel, user_id)]
        alternates = [{"faq_id": faq_id, "text": text}
                      for faq_id, text in self._theirs(self.redis, channel, user_id, set(texts))]
        return {"faq_proposals": proposals, "faq_alternates": alternates}

    def erase_customer(self, channel: str, user_id: str, texts: Iterable[str] = ()) -> CustomerLabels:
        """Remove their pending proposals and every alternate holding their words (owned by them, or, for
        alternates older than owners, equal to one of `texts`: their masked review texts and messages)."""
        texts = set(texts)

        def work(pipe):
            ids = [_text(k) for k, raw in pipe.hgetall(self._proposals).items()
                   if (json.loads(raw)["channel"], json.loads(raw)["user_id"]) == (channel, user_id)]
            theirs = self._theirs(pipe, channel, user_id, texts)
            current = {_text(k): json.loads(v) for k, v in pipe.hgetall(self._alternates).items()}
            writes = [("hdel", self._proposals, i) for i in ids]
            for faq_id in {faq_id for faq_id, _ in theirs}:
                kept = [t for t in current.get(faq_id, []) if (faq_id, t) not in theirs]
                writes.append(("hset", self._alternates, faq_id, json.dumps(kept)) if kept
                              else ("hdel", self._alternates, faq_id))
            writes += [("hdel", self._owners, json.dumps([f, t])) for f, t in theirs]
            return CustomerLabels(len(ids), len(theirs)), writes

        return self._atomically(work)

    def _theirs(self, reader, channel: str, user_id: str, texts: set[str]) -> set[tuple[str, str]]:
        """(FAQ id, text) of every alternate holding the customer's words."""
        found = set()
        for field, raw in reader.hgetall(self._owners).items():
            if [channel, user_id] in json.loads(raw):
                faq_id, text = json.loads(field)
                found.add((faq_id, text))
        if texts:
            for faq_id, raw in reader.hgetall(self._alternates).items():
                found |= {(_text(faq_id), t) for t in json.loads(raw) if t in texts}
        return found

    def _atomically(self, work):
        """Run `work(pipe)` under WATCH of every key here, retried on a conflict: it reads, and answers its result
        and its writes as `(command, *arguments)`, made in one MULTI."""
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self._proposals, self._alternates, self._owners)
                    result, writes = work(pipe)
                    pipe.multi()
                    for command, *arguments in writes:
                        getattr(pipe, command)(*arguments)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
