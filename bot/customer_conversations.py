"""One customer's conversations, and their own part of the ones they share with others (groups, threads).

A Telegram group or a Slack thread is one conversation with several people in it. Every event
names whose it is (`author`: who wrote it; `to`: whom the bot or staff answered; a customer event
of an earlier version: its `user_id`), and the conversation's meta lists everyone who wrote in it
(`member:USER`, `bot.store.member_field`). An event naming nobody (written before events named
anyone) is the conversation's customer's: the meta's `user_id`.

A conversation only the customer wrote in is theirs whole: exported and deleted as it is. In a
shared one, their part is their events, what was stored for their messages (stored answers under
`result:UID`, seen platform ids, undelivered answers, pending side effects, waiting messages) and
their `member:` field; erasing it leaves everyone else's words where they are. When they were the
conversation's customer, the meta passes to the member who wrote first after them, without their
display name. The sentiment trail (numbers, no one's words) stays with the conversation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from bot.keys import Keys
from bot.store import MEMBER, member_field

# KEYS: history, meta, inbox, undelivered, effects, checkpoint of one conversation (one slot). ARGV: the person,
# the meta's user_id as read, the member taking it over ('' when the person is not the conversation's customer).
# Rewrites the transcript and the waiting messages without the person's, and drops what the meta and the hashes
# keep for their messages. Returns how many events were removed.
_ERASE_PART = """
local person, owner = ARGV[1], ARGV[2]
local function whose(raw)
  local ok, event = pcall(cjson.decode, raw)
  if not ok or type(event) ~= 'table' then return nil, nil end
  local who = event['author'] or event['to'] or event['user_id'] or owner
  return tostring(who), event
end
local function rewrite(key, keep)
  local ttl = redis.call('pttl', key)
  redis.call('del', key)
  for i = 1, #keep, 500 do redis.call('rpush', key, unpack(keep, i, math.min(i + 499, #keep))) end
  if ttl > 0 and #keep > 0 then redis.call('pexpire', key, ttl) end
end
local uids, kept, removed = {}, {}, 0
for _, raw in ipairs(redis.call('lrange', KEYS[1], 0, -1)) do
  local who, event = whose(raw)
  if who == person then
    removed = removed + 1
    if type(event['uid']) == 'string' then uids[#uids + 1] = event['uid'] end
  else kept[#kept + 1] = raw end
end
if removed > 0 then rewrite(KEYS[1], kept) end
local waiting = {}
for _, raw in ipairs(redis.call('lrange', KEYS[3], 0, -1)) do
  local ok, message = pcall(cjson.decode, raw)
  local from = ok and type(message) == 'table' and type(message['message']) == 'table' and message['message']['user_id']
  if not from or tostring(from) ~= person then waiting[#waiting + 1] = raw end
end
if #waiting < redis.call('llen', KEYS[3]) then rewrite(KEYS[3], waiting) end
for _, uid in ipairs(uids) do
  redis.call('hdel', KEYS[4], uid)
  redis.call('hdel', KEYS[5], uid)
  if redis.call('hget', KEYS[6], 'uid') == uid then redis.call('del', KEYS[6]) end
end
redis.call('hdel', KEYS[2], 'member:' .. person)
if ARGV[3] ~= '' then
  redis.call('hset', KEYS[2], 'user_id', ARGV[3])
  redis.call('hdel', KEYS[2], 'display_name')
end
return removed
"""


def person_of(event: dict, owner: str) -> str:
    """Whose an event is: its author, whom it answered, or (an event naming no one) the conversation's customer."""
    return str(event.get("author") or event.get("to") or event.get("user_id") or owner)


@dataclass
class Conversation:
    """One conversation the customer is in, read whole."""

    id: str  # "channel:conversation_id"
    meta: dict[str, str]
    transcript: list[dict]
    waiting: list[dict] = field(default_factory=list)  # inbox entries {"uid", "message"} not handled yet
    owner: str = field(init=False)

    def __post_init__(self) -> None:
        self.owner = self.meta.get("user_id") or self.id.partition(":")[2]

    def members(self) -> set[str]:
        named = {k[len(MEMBER):] for k in self.meta if k.startswith(MEMBER)}
        wrote = {person_of(e, self.owner) for e in self.transcript if e.get("role") == "customer"}
        waiting = {str(w["message"]["user_id"]) for w in self.waiting if (w.get("message") or {}).get("user_id")}
        return named | wrote | waiting | {self.owner}

    def shared_with_others(self, person: str) -> bool:
        return bool(self.members() - {person})

    def part_of(self, person: str) -> list[dict]:
        return [e for e in self.transcript if person_of(e, self.owner) == person]

    def uids_of(self, person: str) -> set[str]:
        """Our ids of their messages: handled (in the transcript) and waiting."""
        waiting = {str(w.get("uid")) for w in self.waiting
                   if str((w.get("message") or {}).get("user_id")) == person and w.get("uid")}
        return {str(e["uid"]) for e in self.part_of(person) if e.get("uid")} | waiting

    def successor(self, person: str) -> str:
        """Who the conversation passes to when `person`, its customer, is erased: the first other member."""
        if person != self.owner:
            return ""
        others = sorted((float(v or 0), k[len(MEMBER):]) for k, v in self.meta.items()
                        if k.startswith(MEMBER) and k[len(MEMBER):] != person)
        if others:
            return others[0][1]
        return next((p for p in sorted(self.members()) if p != person), "")


class SharedConversations:
    """Finding a customer's conversations, and exporting and erasing their part of the shared ones."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys
        self._erase_part = client.register_script(_ERASE_PART)

    def of(self, channel: str, user_id: str) -> list[Conversation]:
        """Every conversation of `channel` the customer wrote in or is the customer of, oldest id first."""
        metas = list(self.redis.scan_iter(match=self.keys.channel_metas(channel), count=1000))
        found = set()
        if metas:
            pipe = self.redis.pipeline(transaction=False)
            for key in metas:
                pipe.hmget(key, "user_id", member_field(user_id))
            for key, (owner, member) in zip(metas, pipe.execute(), strict=True):
                if member is not None or (owner is not None and _text(owner) == user_id):
                    found.add(self.keys.conversation_of_meta(_text(key)))
        own = f"{channel}:{user_id}"  # REST uses the sender as the conversation id too
        if own not in found and next(iter(self.keys_of(own)), None) is not None:
            found.add(own)
        return [self.read(c) for c in sorted(found)]

    def read(self, conversation: str) -> Conversation:
        pipe = self.redis.pipeline(transaction=False)  # both carry the conversation's tag: one slot
        pipe.hgetall(self.keys.conv(conversation, "meta"))
        pipe.lrange(self.keys.conv(conversation, "history"), 0, -1)
        pipe.lrange(self.keys.conv(conversation, "inbox"), 0, -1)
        raw_meta, raw_history, raw_inbox = pipe.execute()
        return Conversation(conversation, {_text(k): _text(v) for k, v in raw_meta.items()},
                            [json.loads(e) for e in raw_history], [json.loads(e) for e in raw_inbox])

    def keys_of(self, conversation: str) -> list[str]:
        return [_text(k) for k in self.redis.scan_iter(match=self.keys.pattern(f"conv:{conversation}"), count=1000)]

    # ------------------------------------------------------------------ a shared conversation: one person's part
    def export_part(self, conversation: Conversation, person: str) -> dict:
        """Their events, their member entry (all of the meta but other members' when it is theirs), and what is
        stored for their messages."""
        meta = {k: v for k, v in conversation.meta.items() if not k.startswith(MEMBER) or k == member_field(person)}
        if person != conversation.owner:
            meta = {k: v for k, v in meta.items() if k.startswith(MEMBER)}
        other = {key.partition("}:")[2]: dump(self.redis, key)
                 for key in self._stored_for(conversation, conversation.uids_of(person))}
        for part in ("undelivered", "effects"):
            uids = sorted(conversation.uids_of(person))
            values = self.redis.hmget(self.keys.conv(conversation.id, part), uids) if uids else []
            kept = {uid: _text(v) for uid, v in zip(uids, values, strict=True) if v is not None}
            if kept:
                other[part] = kept
        return {"conversation_id": conversation.id, "shared": True, "meta": meta,
                "transcript": conversation.part_of(person), "other": other}

    def erase_part(self, conversation: Conversation, person: str) -> tuple[int, int]:
        """Remove their part; (events removed, keys deleted). What is stored per message goes first, then the
        transcript events that lead to it, so an erasure run again after a crash still finds all of it."""
        stored = self._stored_for(conversation, conversation.uids_of(person))
        pipe = self.redis.pipeline(transaction=False)
        for key in stored:
            pipe.delete(key)
        pipe.execute()
        parts = [self.keys.conv(conversation.id, p)
                 for p in ("history", "meta", "inbox", "undelivered", "effects", "checkpoint")]
        removed = self._erase_part(keys=parts, args=[person, conversation.owner, conversation.successor(person)])
        return int(removed), len(stored)

    def _stored_for(self, conversation: Conversation, uids: set[str]) -> list[str]:
        """Keys under the conversation kept for these messages: stored answers, wake-ups, seen platform ids."""
        if not uids:
            return []
        found = [k for uid in sorted(uids) for k in (self.keys.result(conversation.id, uid),
                                                     self.keys.done(conversation.id, uid)) if self.redis.exists(k)]
        seen = [k for k in self.keys_of(conversation.id) if k.partition("}:")[2].startswith("seen:")]
        pipe = self.redis.pipeline(transaction=False)
        for key in seen:
            pipe.get(key)
        found += [k for k, uid in zip(seen, pipe.execute() if seen else [], strict=True)
                  if uid is not None and _text(uid) in uids]
        return found


def dump(client: redis.Redis, key: str):
    """A key's value by type, decoded for JSON."""
    kind = _text(client.type(key))
    if kind == "string":
        return _text(client.get(key))
    if kind == "hash":
        return {_text(k): _text(v) for k, v in client.hgetall(key).items()}
    if kind == "list":
        return [_text(v) for v in client.lrange(key, 0, -1)]
    if kind == "set":
        return sorted(_text(v) for v in client.smembers(key))
    if kind == "zset":
        return [[_text(m), s] for m, s in client.zrange(key, 0, -1, withscores=True)]
    if kind == "stream":
        return [{"id": _text(i), **{_text(k): _text(v) for k, v in f.items()}} for i, f in client.xrange(key)]
    return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
