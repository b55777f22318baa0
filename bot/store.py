"""Conversation state in Redis: metadata, capped transcript, sentiment trail, expiry after inactivity.

Writes made while handling a message (under the conversation's lease, `bot.lease.current`) are fenced:
transcript appends, rewinds, metadata updates and the sentiment trail check the lease token in the same
Lua step and raise `LeaseLost` instead of writing once the lease is someone else's (or nobody's). Writes
outside a lease (staff actions, tools) are not fenced.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum

import redis

from bot.keys import Keys
from bot.lease import LeaseLost, token_for
from bot.messages import InboundMessage, Reply


class ConversationStatus(StrEnum):
    """Who has the conversation: the bot, the staff queue (waiting for someone), or an agent."""

    BOT = "bot"
    ESCALATED = "escalated"
    WITH_AGENT = "with_agent"

# Every script's KEYS[1] is the conversation's lock and ARGV[1] the fencing token ('' = not fenced).
_FENCE = "if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then return -1 end\n"

# A transcript event added (the transcript capped at `cap`) and the expiry of KEYS[first_part..] refreshed.
_PUSH_EVENT = """
local function push_event(history, event, cap, first_part, ttl)
  redis.call('rpush', history, event)
  redis.call('ltrim', history, -tonumber(cap), -1)
  for i = first_part, #KEYS do redis.call('expire', KEYS[i], ttl) end
end
"""

# KEYS: lock, history, then every part whose expiry is refreshed. ARGV: token, event, cap, idle TTL.
_APPEND = _FENCE + _PUSH_EVENT + """
push_event(KEYS[2], ARGV[2], ARGV[3], 3, ARGV[4])
return 1
"""

# The start of handling message ARGV[2], one step. First attempt: note the state the handling may change (the
# metadata fields from ARGV[9] on, the sentiment trail) in the checkpoint. A later attempt at the same message
# (its worker died, or lost its lease): put that state back and drop the dead attempt's transcript events
# (metadata is left alone once staff hold the conversation: they may have claimed it since). Then open the
# conversation (fields set only where missing), record the customer's event, refresh the expiry, and read the
# metadata and what the bot answered since ARGV[7] ('': not read). Returns {rewound, meta, answered}: rewound 0
# for a first attempt, else the number of events dropped + 1.
# KEYS: lock, checkpoint, meta, sentiment, history, answered, then every part whose expiry is refreshed.
# ARGV: token, uid ('': none), look back, idle TTL, history cap, event, answered since, opening fields (JSON),
# then the metadata fields.
_BEGIN = _FENCE + _PUSH_EVENT + """
local function rewind()
  if redis.call('hget', KEYS[2], 'uid') ~= ARGV[2] then
    local saved = {}
    for i = 9, #ARGV do saved[ARGV[i]] = redis.call('hget', KEYS[3], ARGV[i]) or cjson.null end
    redis.call('hset', KEYS[2], 'uid', ARGV[2], 'meta', cjson.encode(saved),
               'sentiment', cjson.encode(redis.call('lrange', KEYS[4], 0, -1)))
    return 0
  end
  if redis.call('hget', KEYS[3], 'status') ~= 'with_agent' then
    for field, value in pairs(cjson.decode(redis.call('hget', KEYS[2], 'meta'))) do
      if value == cjson.null then redis.call('hdel', KEYS[3], field) else redis.call('hset', KEYS[3], field, value) end
    end
  end
  redis.call('del', KEYS[4])
  local trail = cjson.decode(redis.call('hget', KEYS[2], 'sentiment'))
  if #trail > 0 then redis.call('rpush', KEYS[4], unpack(trail)) end
  local tail = redis.call('lrange', KEYS[5], -tonumber(ARGV[3]), -1)
  for i, raw in ipairs(tail) do
    local ok, event = pcall(cjson.decode, raw)
    if ok and type(event) == 'table' and event['uid'] == ARGV[2] then
      redis.call('ltrim', KEYS[5], 0, -(#tail - i + 1) - 1)
      return #tail - i + 2
    end
  end
  return 1
end
local rewound = 0
if ARGV[2] ~= '' then rewound = rewind() end
for field, value in pairs(cjson.decode(ARGV[8])) do redis.call('hsetnx', KEYS[3], field, value) end
push_event(KEYS[5], ARGV[6], ARGV[5], 7, ARGV[4])
local answered = {}
if ARGV[7] ~= '' then answered = redis.call('zrangebyscore', KEYS[6], ARGV[7], '+inf', 'WITHSCORES') end
return {rewound, redis.call('hgetall', KEYS[3]), answered}
"""

# The metadata a message's handling may change (staff actions change more, outside any message).
HANDLED_FIELDS = ("status", "escalation_id", "fallbacks", "csat_pending", "csat_agent", "csat_asked_at", "last_rating")

# KEYS: lock, meta. ARGV: token, updated_at, n, n field/value pairs, then fields to delete.
_UPDATE = _FENCE + """
local n = tonumber(ARGV[3])
if n > 0 then
  local pairs_ = {}
  for i = 4, 3 + 2 * n do pairs_[#pairs_ + 1] = ARGV[i] end
  pairs_[#pairs_ + 1] = 'updated_at'
  pairs_[#pairs_ + 1] = ARGV[2]
  redis.call('hset', KEYS[2], unpack(pairs_))
end
if #ARGV > 3 + 2 * n then redis.call('hdel', KEYS[2], unpack(ARGV, 4 + 2 * n)) end
return 1
"""

# KEYS: lock, sentiment. ARGV: token, value, cap. The trail after the push.
_SENTIMENT = _FENCE + """
redis.call('rpush', KEYS[2], ARGV[2])
redis.call('ltrim', KEYS[2], -tonumber(ARGV[3]), -1)
return redis.call('lrange', KEYS[2], 0, -1)
"""


@dataclass(frozen=True)
class Begun:
    """A message's start (`ConversationStore.begin`): whether a dead attempt at it was undone, the conversation's
    metadata, and what the bot answered in it lately (topic -> when)."""

    retried: bool
    meta: dict[str, str]
    answered: dict[str, float]


class ConversationStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, history_cap: int = 200, sentiment_cap: int = 20,
                 idle_ttl: int = 7 * 86_400):
        self.redis = client
        self.keys = keys
        self.history_cap = history_cap
        self.sentiment_cap = sentiment_cap
        self.idle_ttl = idle_ttl
        self._append = client.register_script(_APPEND)
        self._begin = client.register_script(_BEGIN)
        self._update = client.register_script(_UPDATE)
        self._sentiment = client.register_script(_SENTIMENT)

    def _fenced(self, script, conversation: str, keys: list[str], args: list):
        """Run a write script fenced by the current lease (if it is this conversation's)."""
        lock = self.keys.conv(conversation, "lock")
        result = script(keys=[lock, *keys], args=[token_for(lock), *args])
        if result == -1:
            raise LeaseLost(f"the lease on {conversation} is no longer ours")
        return result

    def meta(self, conversation: str) -> dict[str, str]:
        raw = self.redis.hgetall(self.keys.conv(conversation, "meta"))
        return {_text(k): _text(v) for k, v in raw.items()}

    def start(self, conversation: str, channel: str, user_id: str, display_name: str | None) -> dict[str, str]:
        """Create the conversation's metadata if it does not exist yet; return it."""
        key = self.keys.conv(conversation, "meta")
        pipe = self.redis.pipeline(transaction=True)
        for field, value in _opening(channel, user_id, display_name).items():
            pipe.hsetnx(key, field, value)
        pipe.hgetall(key)  # in the same round trip
        return {_text(k): _text(v) for k, v in pipe.execute()[-1].items()}

    def update(self, conversation: str, **fields: str | int | float | None) -> None:
        values = {k: str(v) for k, v in fields.items() if v is not None}
        cleared = [k for k, v in fields.items() if v is None]
        if not values and not cleared:
            return
        self._fenced(self._update, conversation, [self.keys.conv(conversation, "meta")],
                     [str(time.time()), len(values), *(x for kv in values.items() for x in kv), *cleared])

    def append(self, conversation: str, role: str, text: str, **extra) -> dict:
        """Add an event to the transcript (capped) and refresh the conversation's expiry."""
        event = {"at": time.time(), "role": role, "text": text, **{k: v for k, v in extra.items() if v is not None}}
        key = self.keys.conv(conversation, "history")
        self._fenced(self._append, conversation, [key, *self.keys.conversation_parts(conversation)],
                     [json.dumps(event, ensure_ascii=False), self.history_cap, self.idle_ttl])
        return event

    def append_reply(self, conversation: str, reply: Reply, **extra) -> dict:
        """Add a reply to the transcript with what a redraw needs: its sender, agent, buttons and source."""
        return self.append(conversation, reply.sender, reply.text, agent=reply.agent,
                           suggestions=list(reply.suggestions) or None,
                           source=reply.source.to_dict() if reply.source else None, **extra)

    def begin(self, message: InboundMessage, answered_since: float | None = None,
              look_back: int = 50) -> Begun:
        """Start handling `message` in its conversation: one fenced Lua step, one round trip.

        Messages of one conversation are handled one at a time, so a second start of the same
        uid means the first attempt died (or lost its lease) part-way: its transcript events
        (everything from that message's customer event on) are dropped, and the metadata and
        sentiment trail it may have changed are put back, so a fallback or an angry message
        counts once toward escalation however often the message is handled. The conversation is
        then opened (`start`), the customer's words recorded, and its metadata read, with what
        the bot answered since `answered_since` (topic -> when: `bot.resolution`'s memory).
        """
        conversation = message.conversation_key
        # Every event names whose it is (`author`: who wrote it), so one person's part of a shared conversation
        # (a group) can be exported and erased on its own (bot.customers).
        event = {"at": time.time(), "role": "customer", "text": message.text, "author": message.user_id,
                 "user_id": message.user_id, **({"uid": message.uid} if message.uid else {})}
        rewound, meta, answered = self._fenced(
            self._begin, conversation,
            [self.keys.conv(conversation, p) for p in ("checkpoint", "meta", "sentiment", "history")]
            + [self.keys.answered(conversation), *self.keys.conversation_parts(conversation)],
            [message.uid or "", look_back, self.idle_ttl, self.history_cap, json.dumps(event, ensure_ascii=False),
             "" if answered_since is None else answered_since,
             json.dumps(_opening(message.channel, message.user_id, message.display_name)), *HANDLED_FIELDS])
        return Begun(bool(rewound), {_text(k): _text(v) for k, v in zip(meta[::2], meta[1::2], strict=True)},
                     {_text(t): float(at) for t, at in zip(answered[::2], answered[1::2], strict=True)})

    def history(self, conversation: str, last: int | None = None) -> list[dict]:
        start = -last if last else 0
        return [json.loads(e) for e in self.redis.lrange(self.keys.conv(conversation, "history"), start, -1)]

    def push_sentiment(self, conversation: str, negative: float) -> list[float]:
        """Record this message's negative-sentiment probability; return the recent trail, oldest first."""
        trail = self._fenced(self._sentiment, conversation, [self.keys.conv(conversation, "sentiment")],
                             [f"{negative:.4f}", self.sentiment_cap])
        return [float(x) for x in trail]


MEMBER = "member:"  # meta field prefix: one field per person who wrote in the conversation


def member_field(user_id: str) -> str:
    """The meta field saying `user_id` wrote in the conversation (its value: when they first did)."""
    return MEMBER + user_id


def _opening(channel: str, user_id: str, display_name: str | None) -> dict[str, str]:
    """A conversation's first metadata, each field set only where missing (its first message's)."""
    now = str(time.time())
    fields = {"channel": channel, "user_id": user_id, "status": "bot", "created_at": now, "updated_at": now,
              "fallbacks": "0"}
    if display_name:
        fields["display_name"] = display_name
    # Everyone who writes in it (a Telegram group, a Slack thread has several people), so exporting or
    # erasing one of them finds the conversation although its `user_id` names whoever wrote first.
    fields[member_field(user_id)] = now
    return fields


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
