"""What the bot says to one customer message: record it, classify it, decide, reply.

Per message (called by the dispatcher under the conversation's lease, see `bot.dispatch`):
record it; unless staff hold the conversation, classify it (intent, out of scope,
sentiment), check the escalation rules, and answer from templates, canned intent answers or
the knowledge base, with an honest fallback when nothing fits. What the message changes
outside its conversation (statistics, staff notifications) is not done here: it is returned
as `Effect` values in the `Outcome`, committed with the replies and run after (`bot.effects`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot import csat
from bot.audit import AuditLog, staff_actor
from bot.dispatch_records import Outcome
from bot.effects import (
    AnnounceEscalation,
    CountAnswer,
    CountAnswered,
    CountAsked,
    CountEscalation,
    CountFallback,
    CountIntent,
    CountMessage,
    CountRatedLow,
    CountRefusedEscalation,
    CountReopened,
    CountStaffed,
    CountTopic,
    Effect,
    RelayToAgent,
)
from bot.escalation_rules import EscalationRules
from bot.escalations import EscalationQueue, EscalationStatus
from bot.events import BotObserver, FaqOutcome, Stage
from bot.hours import BusinessHours
from bot.messages import InboundMessage, Reply, Source
from bot.protocols import Answerer, Classifier
from bot.ratelimit import EscalationLimits, RateLimiter
from bot.replay import BotDecision, Choice
from bot.resolution import LOW_RATINGS, RecentAnswers, intent_topic
from bot.review import ReviewInbox
from bot.store import ConversationStatus, ConversationStore
from bot.templates import Templates

log = logging.getLogger("bot.core")

# Said to a customer over an escalation limit, when the templates in use have no `escalation_limited`.
LIMITED_TEXT = ("I can't pass this to our team right now: a lot of requests for a person came from here recently. "
                "Please try again later; meanwhile I'm happy to help with anything I can.")
SMALL_TALK = ("greet", "thanks", "goodbye", "bot_capabilities")
CHAT_COMMANDS = {"/start": "greet", "/help": "bot_capabilities"}
# The admin chat commands, by the action each is audited as (the same names as the HTTP admin routes' entries).
ADMIN_COMMANDS = {"/reload": "faq.reload", "/queue": "escalation.list"}


@dataclass
class Turn:
    """One message being handled: what it is, its conversation's state, and the effects it leaves."""

    message: InboundMessage
    meta: dict
    effects: list[Effect] = field(default_factory=list)
    # For the resolution figures (bot.resolution): what the conversation was answered within the window, this
    # message's classified intent as a topic ("" for small talk, out of scope or none) and its answer's id.
    recent: RecentAnswers = field(default_factory=RecentAnswers)
    topic: str = ""
    answer: str = ""
    # Seconds in the intent model and the knowledge base (None: not asked), for the stage times (bot.events.Stage).
    classify_s: float | None = None
    retrieve_s: float | None = None

    @property
    def conversation(self) -> str:
        return self.message.conversation_key


class Responder:
    """The dispatcher's handler: `respond(message) -> Outcome` (see the module docstring)."""

    def __init__(self, store: ConversationStore, queue: EscalationQueue, review: ReviewInbox,
                 rate_limiter: RateLimiter, nlu: Classifier, kb: Answerer | None, *, audit: AuditLog,
                 templates: Templates,
                 rules: EscalationRules, observer: BotObserver, admins: Mapping[str, set[str]],
                 admin_actions: Mapping[str, Callable[[], str]], hours: BusinessHours | None,
                 clock: Callable[[], float] = time.time, escalation_limits: EscalationLimits | None = None,
                 resolution_s: float = 24 * 3600):
        self.store = store
        self.queue = queue
        self.review = review  # what the bot was unsure of, for staff to label (bot.review)
        self.rate_limiter = rate_limiter
        self.nlu = nlu
        self.kb = kb
        self.templates = templates
        self.rules = rules  # replaced when the knowledge base recalibrates (`Bot.use_rules`)
        self.observer = observer
        self.admins = admins
        self.admin_actions = admin_actions  # "/reload" -> its summary text; the wiring layer's
        self.audit = audit  # every admin command tried in a chat, done or refused
        self.hours = hours  # staff's business hours (bot.hours); None: always open
        self.clock = clock  # injectable, so a test can hand off at a chosen hour
        self.escalation_limits = escalation_limits  # escalations per customer and per client address (None: off)
        self.resolution_s = resolution_s  # FRONTDESK_RESOLUTION_HOURS: a return this soon reopens an answer

    def respond(self, message: InboundMessage) -> Outcome:
        """The replies to `message`, recorded in its transcript, with the effects to commit beside them."""
        started = time.perf_counter()
        conversation = message.conversation_key
        # The customer's words recorded, with the meta and what the conversation was answered lately (the reopen
        # check) read in the same round trip.
        begun = self.store.begin(message, answered_since=self.clock() - self.resolution_s)
        if begun.retried:
            log.warning("re-handling a message whose first attempt died", extra={"conversation": conversation})
        # Their words counted among the day's questions too (masked), for a replay of real traffic.
        turn = Turn(message, begun.meta, [CountMessage(conversation), CountAsked(message.text)],
                    recent=RecentAnswers(begun.answered))
        replies = self._replies(turn)
        for reply in replies:
            self.store.append_reply(conversation, reply, to=message.user_id)
        self._report_stages(turn, time.perf_counter() - started)
        return Outcome(replies, turn.effects)

    def _report_stages(self, turn: Turn, seconds: float) -> None:
        """The message's classify and retrieve times, where it had them, and the rest of `seconds` as decide."""
        for stage, spent in ((Stage.CLASSIFY, turn.classify_s), (Stage.RETRIEVE, turn.retrieve_s)):
            if spent is not None:
                self.observer.stage(stage, spent)
                seconds -= spent
        self.observer.stage(Stage.DECIDE, seconds)

    def _replies(self, turn: Turn) -> list[Reply]:
        message = turn.message
        if not self.rate_limiter.allow(message.channel, message.user_id, uid=message.uid):
            # Kept in the transcript for staff, but no model time spent and no escalation rules run.
            self.observer.rate_limited(message.channel)
            return [Reply(self.templates.say("rate_limited"), sender="system")]
        command = message.text.strip().split(maxsplit=1)[0].lower() if message.text.strip() else ""
        if command in ADMIN_COMMANDS:
            return [self._admin_command(message, command)]
        status = turn.meta.get("status", ConversationStatus.BOT)
        if status in (ConversationStatus.WITH_AGENT, ConversationStatus.ESCALATED):
            turn.effects.append(CountStaffed(turn.conversation))  # the conversation reached a person today
        if status == ConversationStatus.WITH_AGENT:
            turn.effects.append(RelayToAgent(turn.meta.get("escalation_id") or "", turn.conversation,
                                             turn.meta.get("agent") or "", message.text, message.user_id))
            return []  # staff hold the conversation: the bot adds nothing of its own
        if status == ConversationStatus.ESCALATED:
            away = self._away()  # "shortly" only while staff are in
            return [Reply(self._escalated_text("", away) if away else self.templates.say("waiting_for_agent"))]
        rated = self._take_rating(turn)  # the answer to "how did we do?" is not a question
        if rated is not None:
            return rated
        replies = self._answer(turn)
        self._note_resolution(turn)
        return replies

    def _note_resolution(self, turn: Turn) -> None:
        """What the resolution figures need of a classified message (`bot.resolution`): the answer or topic, and
        the earlier answers in the window it comes back to."""
        if turn.answer:
            turn.effects.append(CountAnswered(turn.conversation, turn.answer, turn.topic))
        elif turn.topic:
            turn.effects.append(CountTopic(turn.conversation, turn.topic))
        turn.effects += [CountReopened(turn.conversation, day)
                         for day in turn.recent.reopened_days((turn.answer, turn.topic))]

    def _answer(self, turn: Turn) -> list[Reply]:
        message, conversation = turn.message, turn.conversation
        name = message.display_name or turn.meta.get("display_name") or "there"
        command = message.text.strip().lower()
        if command == "/human":
            return self._escalate(turn, "asked_for_human")
        started = time.perf_counter()
        result = self.nlu.predict_one(message.text)
        turn.classify_s = time.perf_counter() - started
        intent = CHAT_COMMANDS.get(command, result.intent)
        # A command is sure; a guess below the rules' `sure_intent` gives the knowledge base its say first.
        confidence = 1.0 if command in CHAT_COMMANDS else float(result.confidence)
        negative = float(result.sentiment_scores.get("negative", 0.0))
        trail = self.store.push_sentiment(conversation, negative)
        self.observer.intent(intent, message.channel)
        log.info("classified by model %s", getattr(result, "model_version", ""), extra={"conversation": conversation})
        turn.effects.append(CountIntent(intent))
        topical = intent not in SMALL_TALK and not result.out_of_scope
        turn.topic = intent_topic(intent) if topical else ""
        fallbacks = int(turn.meta.get("fallbacks", 0))
        reason = self.rules.reason(negative=negative, trail=trail, intent=intent, fallbacks=fallbacks,
                                   confidence=confidence)
        if reason:
            self.review.record_message(message, "escalated", result)
            return self._escalate(turn, reason)
        small_talk = self._small_talk_for(intent)
        if small_talk and confidence >= self.rules.sure_intent:
            return self._small_talk(turn, intent, name)
        canned = self.templates.intent_answer(intent)
        if canned:
            self.store.update(conversation, fallbacks=0)
            self.review.note_answer(message, result)
            turn.answer = intent_topic(intent)  # an intent's own reply: its answer id, as `decisions_for` names it
            return [Reply(canned)]
        return self._from_knowledge(turn, result, intent, name, negative)

    def _from_knowledge(self, turn: Turn, result, intent: str, name: str, negative: float) -> list[Reply]:
        """The knowledge base's answer or suggestions, where an unsure guess of small talk or of a person yields."""
        message, conversation = turn.message, turn.conversation
        decision = None
        if self.kb is not None:
            started = time.perf_counter()
            decision = self.kb.answer(message.text, result)
            turn.retrieve_s = time.perf_counter() - started
        # Negative but below the escalation line: the answer comes with an apology first.
        apology = [Reply(self.templates.say("apology"))] if self.rules.apologise(negative) else []
        # Reached with a person's intent only when unsure of it (a sure one escalated above).
        person = intent in self.rules.human_intents
        if decision is not None and decision.kind == "answer":
            self.store.update(conversation, fallbacks=0)
            self.observer.faq(FaqOutcome.ANSWER)
            turn.effects.append(CountAnswer())
            turn.answer = decision.best.id
            self.review.note_answer(message, result, decision)
            # Perhaps they did ask for a person: one is a click away, beside the answer.
            offer = (self.templates.say("offer_human_button"),) if person else ()
            return [*apology, Reply(decision.text or decision.best.entry.answer, suggestions=offer,
                                    source=Source.from_dict(decision.best.source))]
        if person:  # no clear answer to what might be a request for a person: take it as one
            self.review.record_message(message, "escalated", result)
            return self._escalate(turn, "asked_for_human")
        if self._small_talk_for(intent):
            return self._small_talk(turn, intent, name)
        if decision is not None and decision.kind == "suggest":
            self.store.update(conversation, fallbacks=0)
            self.observer.faq(FaqOutcome.SUGGEST)
            self.review.record_message(message, "suggested", result, decision)
            return [*apology, Reply(self.templates.say("suggest_intro"),
                                    suggestions=tuple(h.entry.question for h in decision.hits),
                                    suggestion_sources=tuple(Source.from_dict(h.source) for h in decision.hits))]
        self.review.record_message(message, "fallback", result, decision)
        return self._fallback(turn, int(turn.meta.get("fallbacks", 0)) + 1)

    def decisions_for(self, texts: list[str], results: list, kb: Answerer | None = None) -> list[BotDecision]:
        """What the bot would do with each text classified as its result, changing nothing (`bot.replay`): the
        rules of `_answer` for a fresh conversation (no earlier fallbacks or sentiment trail). `kb`: answer from
        this knowledge base instead of the serving one (a candidate's preview)."""
        kb = kb if kb is not None else self.kb
        decided: list[BotDecision | None] = []
        asked: list[int] = []  # the texts the knowledge base decides
        for i, result in enumerate(results):
            negative = float(result.sentiment_scores.get("negative", 0.0))
            confidence = float(result.confidence)
            if self.rules.reason(negative=negative, trail=[negative], intent=result.intent, fallbacks=0,
                                 confidence=confidence):
                decided.append(BotDecision(Choice.ESCALATE))
            elif (self._small_talk_for(result.intent) and confidence >= self.rules.sure_intent) or \
                    self.templates.intent_answer(result.intent):
                decided.append(BotDecision(Choice.ANSWER, f"intent:{result.intent}"))
            else:
                decided.append(None)
                asked.append(i)
        answers = kb.answers([texts[i] for i in asked], [results[i] for i in asked]) if kb is not None and asked \
            else []
        decisions = dict(zip(asked, answers, strict=True)) if answers else {}
        for i in asked:
            # As in `_answer`: an unsure guess of a person or small talk yields to an answer, and only to one.
            decision, intent = decisions.get(i), results[i].intent
            if decision is not None and decision.kind == "answer":
                decided[i] = BotDecision(Choice.ANSWER, decision.best.id)
            elif intent in self.rules.human_intents:
                decided[i] = BotDecision(Choice.ESCALATE)
            elif self._small_talk_for(intent):
                decided[i] = BotDecision(Choice.ANSWER, f"intent:{intent}")
            elif decision is not None and decision.kind == "suggest":
                decided[i] = BotDecision(Choice.SUGGEST, suggestions=tuple(h.id for h in decision.hits))
        return [d if d is not None else BotDecision(Choice.FALLBACK) for d in decided]

    def _small_talk_for(self, intent: str) -> bool:
        return intent in SMALL_TALK and self.templates.has(intent)

    def _small_talk(self, turn: Turn, intent: str, name: str) -> list[Reply]:
        self.store.update(turn.conversation, fallbacks=0)
        return [Reply(self.templates.say(intent, name=name))]

    def _fallback(self, turn: Turn, fallbacks: int) -> list[Reply]:
        message = turn.message
        self.store.update(turn.conversation, fallbacks=fallbacks)
        self.observer.fallback(message.channel, len(message.text))
        self.store.append(turn.conversation, "unanswered", message.text, author=message.user_id)
        turn.effects.append(CountFallback(message.text))  # to stats, never to the observer (metrics, logs)
        if fallbacks >= self.rules.max_fallbacks:
            return self._escalate(turn, "repeated_fallbacks")
        if fallbacks >= 2:  # two in a row: offer a person rather than a third guess
            return [Reply(self.templates.say("offer_human"), suggestions=(self.templates.say("offer_human_button"),))]
        return [Reply(self.templates.say("fallback"))]

    def _escalate(self, turn: Turn, reason: str) -> list[Reply]:
        message, conversation = turn.message, turn.conversation
        refused = self.escalation_limits.refused(message) if self.escalation_limits is not None else None
        if refused is not None:
            # Nothing reaches staff; the bot keeps the conversation, its fallback count starting afresh.
            self.store.update(conversation, fallbacks=0)
            self.observer.escalation_refused(str(refused), message.channel)
            turn.effects.append(CountRefusedEscalation(str(refused)))
            text = self.templates.say("escalation_limited") if self.templates.has("escalation_limited") \
                else LIMITED_TEXT
            return [Reply(text, sender="system")]
        away = self._away()
        # Keyed by the message: handled again after a crash, it finds the same escalation instead of a second one.
        escalation = self.queue.create(conversation_id=conversation, channel=message.channel,
                                       user_id=message.user_id, reason=reason, uid=message.uid,
                                       display_name=message.display_name, out_of_hours=away is not None)
        self.store.update(conversation, status=ConversationStatus.ESCALATED, escalation_id=escalation.id, fallbacks=0,
                          **csat.CLEARED)  # a pending rating question lapses
        self.store.append(conversation, "system", f"escalated: {reason}", escalation_id=escalation.id,
                          to=message.user_id)
        self.observer.escalation(reason, message.channel)
        # Staff hear of it once the message is committed.
        turn.effects += [CountEscalation(conversation), AnnounceEscalation(escalation.id)]
        return [Reply(self._escalated_text(reason, away))]

    def _admin_command(self, message: InboundMessage, command: str) -> Reply:
        action, where = ADMIN_COMMANDS[command], f"{message.channel} chat"
        if message.user_id not in self.admins.get(message.channel, set()):
            # Tried by someone not on the allow-list, most likely a customer: named by pseudonym (bot.audit).
            self.audit.record(self.audit.pseudonym(message.channel, message.user_id), f"{action}.refused", where)
            return Reply(self.templates.say("admin_only"), sender="system")
        self.audit.record(staff_actor(message.channel, message.user_id, message.display_name), action, where)
        if command == "/queue":
            waiting = self.queue.list(status=EscalationStatus.OPEN) + self.queue.list(status=EscalationStatus.CLAIMED)
            if not waiting:
                return Reply("The escalation queue is empty.", sender="system")
            lines = [f"{e.id}  {e.status}  {e.reason}  {e.conversation_id}" for e in waiting[:20]]
            return Reply("Escalations:\n" + "\n".join(lines), sender="system")
        action = self.admin_actions.get(command)
        if action is None:
            return Reply(f"{command} is not available on this server.", sender="system")
        return Reply(action(), sender="system")

    # ------------------------------------------------------------------ business hours and ratings
    def _away(self) -> dict | None:
        """When staff are out: their next opening (`BusinessHours.describe_next`); None while they are in."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        if self.hours is None or self.hours.is_open(now):
            return None
        return self.hours.describe_next(now)

    def _escalated_text(self, reason: str, away: dict | None) -> str:
        if away is None:
            return self.templates.escalated(reason)
        if self.templates.has("escalated_out_of_hours"):
            return self.templates.say("escalated_out_of_hours", **away)
        return ("Our team is away right now; they're back {day} at {time} ({timezone}) and will pick this up "
                "then.").format(**away)

    def _take_rating(self, turn: Turn) -> list[Reply] | None:
        """The thanks for a rating, once stored (`bot.csat.store_rating`); None when the message is none."""
        message = turn.message
        escalation_id = csat.pending(turn.meta, self.clock())
        rating = csat.parse_rating(message.text) if escalation_id else None
        if rating is None:
            return None
        turn.effects.append(csat.store_rating(self.queue, self.store, turn.conversation, escalation_id,
                                              turn.meta.get("csat_agent") or "unknown", rating, self.clock()))
        if rating in LOW_RATINGS:  # not resolved by the bot, whatever else the day had (bot.resolution)
            turn.effects.append(CountRatedLow(turn.conversation))
        self.observer.rating(rating, message.channel)
        return [Reply(csat.thanks_text(self.templates))]
