"""Every Redis key the bot uses, in one place, under one configurable prefix.

    {p}:conv:{key}:meta        hash: status, agent, channel, user, created/updated times, fallbacks
    {p}:conv:{key}:history     list of JSON events (capped)
    {p}:conv:{key}:sentiment   list of recent negative-sentiment probabilities (capped)
    {p}:conv:{key}:inbox       list: messages waiting to be handled, in arrival order
    {p}:conv:{key}:processing  list: the message being handled (recovered if its worker dies)
    {p}:conv:{key}:lock        the per-conversation lease (SET NX PX)
    {p}:seen:{channel}:{id}    platform message id -> our message uid (redelivery de-duplication)
    {p}:result:{uid}           JSON replies of a handled message
    {p}:done:{uid}             wake-up list for whoever waits on that message
    {p}:delivery:{uid}:claim   who is sending a handled message's replies to the platform (short-lived)
    {p}:delivery:{uid}:sent    set once they reached it, so a platform's redelivery is not answered twice
    {p}:outbox:{key}           pub/sub channel: replies pushed to a live connection (see bot.outbox)
    {p}:rate:{channel}:{user}:{slot}   messages counted in one rate-limit window (see bot.ratelimit)
    {p}:stats:{day}:counts     hash: messages, escalations, fallbacks, faq_answers that UTC day (see bot.stats)
    {p}:stats:{day}:conversations  set of conversations with a customer message that day
    {p}:stats:{day}:escalated  set of conversations escalated that day
    {p}:stats:{day}:intents    sorted set: intent -> messages
    {p}:stats:{day}:unanswered sorted set: normalised question that fell back -> times (capped)
    {p}:role:{name}            the token of the one process playing a role, with a TTL (see bot.roles)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "frontdesk"

    def conv(self, conversation: str, part: str) -> str:
        return f"{self.prefix}:conv:{conversation}:{part}"

    def seen(self, channel: str, message_id: str) -> str:
        return f"{self.prefix}:seen:{channel}:{message_id}"

    def role(self, name: str) -> str:
        return f"{self.prefix}:role:{name}"

    def result(self, uid: str) -> str:
        return f"{self.prefix}:result:{uid}"

    def done(self, uid: str) -> str:
        return f"{self.prefix}:done:{uid}"

    def rate(self, channel: str, user_id: str, slot: int) -> str:
        return f"{self.prefix}:rate:{channel}:{user_id}:{slot}"

    def delivery(self, uid: str, part: str) -> str:
        return f"{self.prefix}:delivery:{uid}:{part}"

    def outbox(self, conversation: str) -> str:
        return f"{self.prefix}:outbox:{conversation}"

    def stats(self, day: str, part: str) -> str:
        """A daily statistics key; `day` is the UTC date, YYYY-MM-DD."""
        return f"{self.prefix}:stats:{day}:{part}"

    def conversation_parts(self, conversation: str) -> list[str]:
        return [self.conv(conversation, p) for p in ("meta", "history", "sentiment")]
