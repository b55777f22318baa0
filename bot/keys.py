"""Every Redis key the bot uses, in one place, under one configurable prefix `p`.

Each key carries a Redis Cluster hash tag (the part in braces): Redis Cluster hashes only
the tag, so every key of one operation (a Lua script, a MULTI transaction, LMOVE) lands in
one slot and the same code runs on one Redis, on Sentinel and on a cluster.

    tag {p:conv:KEY} -- one conversation (KEY is "channel:conversation_id"); scripts and transactions
                        touch several of these at once (intake, LMOVE, commit, transcript append)
    {p:conv:KEY}:meta          hash: status, agent, channel, user, created/updated times, fallbacks, and
                               member:USER for everyone who wrote in it (bot.store.member_field)
    {p:conv:KEY}:history       list of JSON events (capped)
    {p:conv:KEY}:sentiment     list of recent negative-sentiment probabilities (capped)
    {p:conv:KEY}:inbox         list: messages waiting to be handled, in arrival order
    {p:conv:KEY}:processing    list: the message being handled (recovered if its worker dies)
    {p:conv:KEY}:lock          the per-conversation lease (SET NX PX)
    {p:conv:KEY}:seen:ID       platform message id -> our message uid (redelivery de-duplication; set in
                               the intake script together with the inbox, so it carries the conversation's tag)
    {p:conv:KEY}:result:UID    JSON replies of a handled message (committed with `processing` and `lock`)
    {p:conv:KEY}:done:UID      wake-up list for whoever waits on that message
    {p:conv:KEY}:outbox        pub/sub channel: replies pushed to a live connection (see bot.outbox)
    {p:conv:KEY}:undelivered   hash uid -> message: answers committed for a push channel, not yet posted
    {p:conv:KEY}:effects       hash uid -> side effects committed with a message, not yet run (bot.dispatch)
    {p:conv:KEY}:checkpoint    hash: the message being handled and the state before it, to undo a dead attempt
    {p:conv:KEY}:answered      sorted set: topic -> when the bot last answered it here, for the reopen check of the
                               resolution figures (bounded, none older than the window, expires with it;
                               bot.resolution)

    tag {p:esc} -- the staff escalation queue, one slot (create, claim and resolve touch several keys)
    {p:esc}:ID                 hash: id, conversation_id, channel, user_id, reason, status, agent, ...
    {p:esc}:all, {p:esc}:open  sorted sets of escalation ids (see bot.escalations)
    {p:esc}:status:STATUS      sorted set: the ids in one status (open, claimed, resolved, expired), moved in the
                               step that changes the status; what the console lists (bot.escalations)
    {p:esc}:indexed            set once the status sets above hold every older escalation (the one-time backfill)
    {p:esc}:link:PLATFORM:REF  escalation id for a platform's handle on it (a Slack thread, ...)
    {p:esc}:seen:PLATFORM:ID   a staff message taken from a platform (a Slack event id), with a TTL: a
                               redelivery of it does not reach the customer twice

    {p:pending}                sorted set: conversations with work maybe pending (score: last intake time);
                               marked before each intake, read and cleared by every worker's sweeper (bot.dispatch)
    {p:delivery:UID}:claim     who is sending a handled message's replies to the platform (short-lived)
    {p:delivery:UID}:sent      set once they reached it, so a platform's redelivery is not answered twice
    {p:rate:CHANNEL:USER}:SLOT messages counted in one rate-limit window; the current and previous
                               window are read together (see bot.ratelimit)
    {p:rate:CHANNEL:USER}:m:UID  a message already counted (so a message handled twice counts once)
    {p:escrate:CHANNEL:USER}:SLOT, {p:escrate-ip:ADDRESS}:SLOT  escalations asked for by one customer, and from
                               one client address, in one window; :m:UID marks as above (bot.ratelimit)
    {p:stats:DAY}:PART         one UTC day's statistics, PART in counts, conversations, escalated,
                               intents, unanswered, csat (see bot.stats); answered, staffed, reopened,
                               rated_low, topics and topic:TOPIC, sets of conversation keys and of topics for
                               the resolution figures (bot.resolution); and scrubbed: set of hashed
                               tokens of unanswered questions an erasure already took off (so a rerun
                               after a crash takes each off once; bot.customer_stats)
    {p:posts:CHANNEL:USER}     hash: "PLATFORM:CHANNEL:TS" -> JSON {platform, channel, ts, at}: the bot's posts
                               holding this customer's words (a Slack escalation post or relay), deleted and
                               forgotten on their erasure; a post the platform would not delete stays listed
    {p:iprate:ADDRESS}:SLOT    requests from one client address in one rate-limit window (adapters.http.address_limit)
    {p:predictrate:ADDRESS}:SLOT  the same for `POST /predict`'s own limit (adapters.http.predict_guard)
    {p:desk}:saved-replies     hash: id -> JSON saved reply, shared by the team (adapters.http.desk_admin)
    {p:role:NAME}              the token of the one process playing a role, with a TTL (see bot.roles)
    {p:staff}:members          hash: staff name -> JSON {role, token_sha256, created_at, expires_at} (see bot.staff)
    {p:staff}:token:SHA256     a staff token's member name, TTL = its lifetime (the lookup on every /admin request)
    {p:staff}:tokens           hash: sha256 -> name of tokens from before they expired (moved on first use)
    {p:audit}:entries          sorted set of "ORDER JSON {at, actor, action, target}" by time, trimmed to
                               FRONTDESK_AUDIT_DAYS (see bot.audit); {p:audit}:log, the old capped list, moves here
    {p:audit}:once:DIGEST      an audited read already recorded for this actor and target (TTL: how long)
    {p:audit}:key              random key that pseudonymises customer ids in audit targets (bot.audit)
    {p:model}:desired          JSON {seq, action, current, previous} each {path, version}: the model every worker
                               should serve (nlu.sync, wired in adapters.runtime.model_sync)
    {p:model}:seq              counter behind "seq";  {p:model}:events  pub/sub channel of deploys and restores
    {p:model}:workers          sorted set: worker id -> last heartbeat time (for listing)
    {p:model}:worker:ID        JSON {version, path, at, error} of one worker, with a TTL (gone when it stops)
    {p:model}:lock             random token, with a TTL: one deploy or restore at a time across the fleet
    {p:review}:item:ID         JSON of one review-inbox item (masked text, prediction, reason, ...; TTL = retention)
    {p:review}:all             sorted set: item ids by time;  {p:review}:seq  id counter
    {p:review}:group:G         set of item ids sharing group G (the same text once normalised; see bot.review)
    {p:review}:user:CHANNEL:USER  set of item ids of one customer (export and erasure find them here)
    {p:review}:seen:CHANNEL:USER  hash: delivery id -> item id (a message handled twice is one item)
    {p:review}:faq-alternates  hash: FAQ entry id -> JSON list of texts labelled for it (merged on FAQ reload)
    {p:review}:alternate-owners  hash: JSON [faq id, text] -> JSON list of [channel, user] whose words it is
    {p:review}:proposals       hash: proposal id -> JSON of an agent's FAQ label waiting for an admin
                               (bot.review_proposals); ids from {p:review}:seq

Owned elsewhere, same scheme: `knowledge.sync` names the knowledge-base sync keys
`{p:kb}:desired`, `{p:kb}:seq`, `{p:kb}:workers` and the `{p:kb}:events` channel itself
(`knowledge/` never imports `bot/`).

If a conversation key contains "}", Redis takes the tag up to that brace: still the same
slot for every key of that conversation, since they share everything up to it. The prefix
itself must not contain braces.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "frontdesk"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("the Redis key prefix must not contain '{' or '}' (they mark Redis Cluster hash tags)")

    def _tag(self, tag: str) -> str:
        return f"{{{self.prefix}:{tag}}}"

    # ---------------------------------------------------------------- one conversation: {p:conv:KEY}
    def conv(self, conversation: str, part: str) -> str:
        return f"{self._tag('conv:' + conversation)}:{part}"

    def seen(self, conversation: str, message_id: str) -> str:
        return self.conv(conversation, f"seen:{message_id}")

    def result(self, conversation: str, uid: str) -> str:
        return self.conv(conversation, f"result:{uid}")

    def done(self, conversation: str, uid: str) -> str:
        return self.conv(conversation, f"done:{uid}")

    def outbox(self, conversation: str) -> str:
        return self.conv(conversation, "outbox")

    def answered(self, conversation: str) -> str:
        """What the bot answered in the conversation lately, by topic (`bot.resolution`'s reopen check)."""
        return self.conv(conversation, "answered")

    def conversation_parts(self, conversation: str) -> list[str]:
        return [self.conv(conversation, p) for p in ("meta", "history", "sentiment", "checkpoint")]

    # ---------------------------------------------------------------- the escalation queue: {p:esc}
    def esc(self, *parts: str) -> str:
        """`esc(id)`, `esc("all")`, `esc("open")`, `esc("link", platform, ref)`, `esc("seen", platform, id)`."""
        return ":".join((self._tag("esc"), *parts))

    def escalation_index(self, status: str) -> str:
        """The escalations in one status, by time (`bot.escalations`): what the console lists, page by page."""
        return self.esc("status", status)

    # ---------------------------------------------------------------- single-key families
    def pending(self) -> str:
        """Conversations that may have work left behind, for the sweeper (`bot.dispatch`)."""
        return self._tag("pending")

    def delivery(self, uid: str, part: str) -> str:
        return f"{self._tag('delivery:' + uid)}:{part}"

    def rate(self, channel: str, user_id: str, slot: int | str) -> str:
        return f"{self._tag(f'rate:{channel}:{user_id}')}:{slot}"

    def stats(self, day: str, part: str) -> str:
        """A daily statistics key; `day` is the UTC date, YYYY-MM-DD."""
        return f"{self._tag('stats:' + day)}:{part}"

    def stats_topic(self, day: str, topic: str) -> str:
        """The day's conversations with one topic (an answer's id, or `intent:NAME`; `bot.resolution`)."""
        return self.stats(day, f"topic:{topic}")

    def posts(self, channel: str, user_id: str) -> str:
        """The platform posts holding one customer's words (`bot.posts`), to delete on their erasure."""
        return self._tag(f"posts:{channel}:{user_id}")

    def escalation_rate(self, channel: str, user_id: str, slot: int | str) -> str:
        """Escalations one customer asked for in one window (`bot.ratelimit.EscalationLimits`)."""
        return f"{self._tag(f'escrate:{channel}:{user_id}')}:{slot}"

    def escalation_address_rate(self, address: str, slot: int | str) -> str:
        """Escalations asked for from one client address in one window, whoever the customers say they are."""
        return f"{self._tag(f'escrate-ip:{address}')}:{slot}"

    def client_rate(self, address: str, slot: int) -> str:
        """Requests from one client address in one window, for the per-address limit in front of routes."""
        return f"{self._tag(f'iprate:{address}')}:{slot}"

    def predict_rate(self, address: str, slot: int) -> str:
        """`POST /predict` requests from one client address in one window: its own limit, apart from the above."""
        return f"{self._tag(f'predictrate:{address}')}:{slot}"

    def desk(self, part: str) -> str:
        """The staff desk's shared settings: `desk("saved-replies")`."""
        return f"{self._tag('desk')}:{part}"

    def role(self, name: str) -> str:
        return self._tag(f"role:{name}")

    def model(self, *parts: str) -> str:
        """`model("desired")`, `model("worker", ID)`: one tag, so a deploy's keys share a slot."""
        return ":".join((self._tag("model"), *parts))

    def learned(self, part: str) -> str:
        """`learned("entries")`, `learned("owners")`: FAQ entries approved from topics (`bot.learned`)."""
        return f"{self._tag('learned')}:{part}"

    def review(self, *parts: str) -> str:
        """`review("item", ID)`, `review("user", CHANNEL, USER)`: one tag, so recording an item is one MULTI."""
        return ":".join((self._tag("review"), *parts))

    def staff(self, part: str) -> str:
        """`staff("members")`, `staff("token:SHA256")`: one tag, so adding and removing a member is one Lua step."""
        return f"{self._tag('staff')}:{part}"

    def audit(self, part: str) -> str:
        """`audit("entries")`, `audit("once:DIGEST")`, `audit("key")`."""
        return f"{self._tag('audit')}:{part}"

    def pattern(self, tag: str) -> str:
        """The start of every key of hash tag `tag` (`conv:rest:u1`, `rate:rest:u1`), as a SCAN MATCH pattern
        with glob characters escaped: customer ids are chosen by customers and may hold `*` or `[`."""
        return _glob(self._tag(tag)) + "*"

    # ---------------------------------------------------------------- patterns for finding a customer's data
    def channel_metas(self, channel: str) -> str:
        """SCAN MATCH pattern of every conversation meta key of one channel: `{p:conv:CHANNEL:*}:meta`."""
        return _glob(f"{{{self.prefix}:conv:{channel}:") + "*}:meta"

    def conversation_of_meta(self, meta_key: str) -> str:
        """"channel:id" from "{p:conv:channel:id}:meta" (the id may itself hold ':' or '}')."""
        return meta_key[len(f"{{{self.prefix}:conv:"):-len("}:meta")]

    def all_stats(self) -> str:
        """SCAN MATCH pattern of every day's statistics keys."""
        return _glob(f"{{{self.prefix}:stats:") + "*"


def _glob(text: str) -> str:
    """`text` with SCAN's glob characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
