"""Every setting Frontdesk reads, from the environment (names listed in docs/OPERATIONS.md "Settings") or a file.

Secrets are `SecretStr` so they never show up in a repr, a log line or an error page.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.hours import BusinessHours

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TOKEN_VARIABLES = {"admin_token": "FRONTDESK_ADMIN_TOKEN", "chat_token": "FRONTDESK_CHAT_TOKEN",
                   "predict_token": "FRONTDESK_PREDICT_TOKEN"}
MIN_TOKEN_LENGTH = 32
DEMO_KB = Path(__file__).resolve().parents[2] / "knowledge" / "demo"  # the demo store's knowledge folder
# Values that shipped in examples or that people type when told to "set a secret": refused at any length.
PLACEHOLDER_TOKENS = frozenset({"change-me", "changeme", "change-me-to-a-long-random-string", "secret", "password",
                                "admin", "token", "replace-me", "your-token-here", "xxx"})


def rate_pair(value: str) -> tuple[int, float]:
    """"COUNT/SECONDS" (already checked by the field's pattern) as a pair."""
    count, seconds = value.split("/")
    return int(count), float(seconds)


def parse_networks(value: str, variable: str) -> list[IPNetwork]:
    """Comma-separated addresses or CIDRs as networks; a bad entry is a ValueError naming it and the variable."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{variable}: {entry!r} is not an IP address or CIDR") from None
    return networks


# A page allowed to frame the web chat: 'self', or a scheme and host (a "*." subdomain wildcard, a port) with no path.
FRAME_SOURCE_RE = re.compile(r"'self'|https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:(\d{1,5}|\*))?")


def check_frame_ancestors(value: str) -> str:
    """FRONTDESK_FRAME_ANCESTORS as it goes into the CSP header; a ValueError naming the bad source otherwise.

    Only whole origins: a bare scheme (`https:`) or `*` would let any site frame the chat, and a `;` or a line
    break would end the directive and smuggle in others."""
    sources = value.split()
    if sources == ["'none'"]:
        return "'none'"
    if not sources:  # `VAR=` (as compose passes an unset variable) means unset: the default
        return "'self'"
    for source in sources:
        if not FRAME_SOURCE_RE.fullmatch(source):
            raise ValueError(f"FRONTDESK_FRAME_ANCESTORS: {source[:100]!r} is not 'self', 'none' (alone) or an "
                             f"origin such as https://shop.example.com")
    return " ".join(sources)


def check_token_strength(token: str, variable: str) -> None:
    """A bearer token guards the bot's data: refuse a known placeholder or one short enough to guess."""
    if token.strip().lower() in PLACEHOLDER_TOKENS or "change-me" in token.lower():
        raise ValueError(f"{variable} is a placeholder; set a random value (e.g. `openssl rand -hex 32`)")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{variable} is {len(token)} characters; at least {MIN_TOKEN_LENGTH} are needed "
                         f"(e.g. `openssl rand -hex 32`)")


class LogSettings(BaseSettings):
    """How the process logs: read apart from `Settings`, before it, so a bad setting elsewhere is still logged."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=False)

    level: str = Field(default="INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$",
                       validation_alias="FRONTDESK_LOG_LEVEL")
    format: str = Field(default="json", pattern="^(json|text)$", validation_alias="FRONTDESK_LOG_FORMAT")


class Settings(BaseSettings):
    # Only the documented names (FRONTDESK_HOME, ...): matching field names too would read $HOME as `home`.
    # A refused value is never echoed: it may be a token (the error names the variable and the rule).
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=False,
                                      hide_input_in_errors=True)

    # Where `run` keeps what it builds (the demo model, indexes, the embedded Redis file).
    home: Path = Field(default=Path(".frontdesk"), validation_alias="FRONTDESK_HOME")
    model_dir: Path | None = Field(default=None, validation_alias="FRONTDESK_MODEL_DIR")
    kb: Path | None = Field(default=None, validation_alias="FRONTDESK_KB")
    # Customers' questions the answer rule is calibrated on (`text,id` CSV); unset: the knowledge-base
    # folder's dev-questions.csv, else questions generated from the entries and articles.
    kb_questions: Path | None = Field(default=None, validation_alias="FRONTDESK_KB_QUESTIONS")
    # The share of customers' questions that may get a wrong answer; the answer rule's bars follow it.
    wrong_answer_rate: float = Field(default=0.05, gt=0, lt=1, validation_alias="FRONTDESK_WRONG_ANSWER_RATE")
    faq_encoder: Path | None = Field(default=None, validation_alias="FRONTDESK_FAQ_ENCODER")
    # A student of that encoder for customers' questions (`frontdesk kb encoder`): int8 ONNX, a few layers.
    query_encoder: Path | None = Field(default=None, validation_alias="FRONTDESK_QUERY_ENCODER")
    # Knowledge-base vectors embedded ahead (`kb build --out DIR` writes DIR/cache), only ever read: a new home
    # starts without embedding them again.
    kb_embeddings: Path | None = Field(default=None, validation_alias="FRONTDESK_KB_EMBEDDINGS")
    # The link of a help-center article whose front matter gives no `url`: this base plus the article's path.
    articles_base_url: str = Field(default="", max_length=2000, pattern=r"^(https?://\S*)?$",
                                   validation_alias="FRONTDESK_ARTICLES_BASE_URL")
    # Changing the bot safely (docs/MODEL_LIFECYCLE.md "Replay and gates"): the conversation tests a check or
    # gate runs on a candidate (a YAML file or folder); the days of real traffic a replay runs again; and the
    # share of replayed messages whose decision may change before `--gate` refuses a deploy or reload.
    conversation_tests: Path | None = Field(default=None, validation_alias="FRONTDESK_CONVERSATION_TESTS")
    replay_days: int = Field(default=7, ge=1, le=35, validation_alias="FRONTDESK_REPLAY_DAYS")
    gate_max_changed: float = Field(default=0.10, ge=0, le=1, validation_alias="FRONTDESK_GATE_MAX_CHANGED")
    # A shadow model (`/admin/model/shadow`) works at most this share of its thread's time: the rest is the
    # customers' (adapters/runtime/shadow.py).
    shadow_budget: float = Field(default=0.1, gt=0, le=1, validation_alias="FRONTDESK_SHADOW_BUDGET")
    admin_token: SecretStr | None = Field(default=None, validation_alias="FRONTDESK_ADMIN_TOKEN")
    device: str = Field(default="auto", validation_alias="FRONTDESK_DEVICE")
    # auto: onnxruntime when the model directory holds an ONNX export and the device is the CPU.
    backend: str = Field(default="auto", pattern="^(auto|torch|onnx)$", validation_alias="FRONTDESK_BACKEND")
    # Passes the ONNX backend runs side by side (nlu.onnx_backend); 0: one per core this process may use.
    onnx_threads: int = Field(default=0, ge=0, validation_alias="FRONTDESK_ONNX_THREADS")
    # The demo model `frontdesk run` serves: a student of this many layers, distilled from the 6-layer model it
    # trains and exported to int8 ONNX (docs/BENCHMARKS.md "Distilled students"); 0 serves the 6-layer model.
    demo_layers: int = Field(default=4, ge=0, le=5, validation_alias="FRONTDESK_DEMO_LAYERS")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    redis_prefix: str = Field(default="frontdesk", validation_alias="FRONTDESK_REDIS_PREFIX")
    # docs/OPERATIONS.md "Redis": REDIS_URL names one node of a cluster, or (with Sentinel) holds only the
    # credentials and database of the master the sentinels name. See adapters.runtime.redis_client.
    redis_cluster: bool = Field(default=False, validation_alias="REDIS_CLUSTER")
    redis_sentinels: str = Field(default="", validation_alias="REDIS_SENTINELS")  # host:port,host:port
    redis_sentinel_master: str = Field(default="", validation_alias="REDIS_SENTINEL_MASTER")
    reannounce_after: float = Field(default=300.0, validation_alias="FRONTDESK_REANNOUNCE_SECONDS")
    max_batch: int = Field(default=64, validation_alias="FRONTDESK_MAX_BATCH")
    max_wait_ms: float = Field(default=2.0, validation_alias="FRONTDESK_MAX_WAIT_MS")
    # How long a worker may hold a conversation without progress before another takes over (crash recovery).
    lease_ms: int = Field(default=15_000, ge=1000, validation_alias="FRONTDESK_LEASE_MS")
    # How long a platform message id is remembered, and its answer kept for a redelivery (one number for both).
    dedup_seconds: int = Field(default=86_400, ge=1, validation_alias="FRONTDESK_DEDUP_SECONDS")
    # How often each worker's sweeper looks for conversations a dead worker left with work (bot.dispatch).
    sweep_seconds: float = Field(default=1.0, gt=0, le=60, validation_alias="FRONTDESK_SWEEP_SECONDS")
    # Messages per customer per window, "COUNT/SECONDS"; "0/60" switches the limit off.
    rate_limit: str = Field(default="20/60", pattern=r"^\d+/\d+(\.\d+)?$", validation_alias="FRONTDESK_RATE_LIMIT")
    # Resolved escalation records (they name the customer) and the unanswered questions in the statistics are
    # kept this many days; counts stay (docs/STAFF_AND_DATA.md).
    escalation_retention_days: int = Field(default=30, ge=1, validation_alias="FRONTDESK_ESCALATION_RETENTION_DAYS")
    # A customer back with the same topic this many hours after an answer reopens it: that conversation does not
    # count as resolved by the bot (bot.resolution; docs/SUPPORT_DESK.md). At most a week, the day statistics'
    # unit being a day and a conversation's own keys lasting a week idle.
    resolution_hours: float = Field(default=24.0, gt=0, le=168, validation_alias="FRONTDESK_RESOLUTION_HOURS")
    # Hardening (docs/SECURITY.md): request bodies refused with 413 past this many bytes, while they stream in;
    # requests per client address per window ("COUNT/SECONDS", "0/60" off), checked before any route runs;
    # browser origins the web chat socket accepts besides the served host (comma-separated, "*" any).
    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="FRONTDESK_MAX_BODY_BYTES")
    ip_rate_limit: str = Field(default="300/60", pattern=r"^\d+/\d+(\.\d+)?$",
                               validation_alias="FRONTDESK_IP_RATE_LIMIT")
    allowed_origins: str = Field(default="", validation_alias="FRONTDESK_ALLOWED_ORIGINS")
    # Business hours (docs/SUPPORT_DESK.md): "Mon-Fri 09:00-17:30[, Sat 10:00-14:00]"; empty: always open.
    business_hours: str = Field(default="", validation_alias="FRONTDESK_BUSINESS_HOURS")
    timezone: str = Field(default="UTC", validation_alias="FRONTDESK_TIMEZONE")
    # Review inbox items (customers' masked words) are kept this many days (docs/MODEL_LIFECYCLE.md).
    review_days: int = Field(default=30, ge=1, validation_alias="FRONTDESK_REVIEW_DAYS")
    # An answer given on an intent confidence under this is kept for review too (1.0: every answer).
    review_confidence: float = Field(default=0.6, ge=0, le=1, validation_alias="FRONTDESK_REVIEW_CONFIDENCE")

    # The public surface (docs/SECURITY.md). Reverse proxies whose X-Forwarded-For is believed (addresses or
    # CIDRs, comma-separated; none by default): the client is the rightmost address that is not one of them.
    trusted_proxies: str = Field(default="", validation_alias="FRONTDESK_TRUSTED_PROXIES")
    # Bearer tokens: the REST channel's (`POST /chat`; unset under `serve`, /chat answers 401) and /predict's.
    chat_token: SecretStr | None = Field(default=None, validation_alias="FRONTDESK_CHAT_TOKEN")
    predict_token: SecretStr | None = Field(default=None, validation_alias="FRONTDESK_PREDICT_TOKEN")
    # /predict: requests per client address per window, and texts waiting for the model before it answers 503.
    predict_rate_limit: str = Field(default="120/60", pattern=r"^\d+/\d+(\.\d+)?$",
                                    validation_alias="FRONTDESK_PREDICT_RATE_LIMIT")
    predict_queue: int = Field(default=2048, ge=1, validation_alias="FRONTDESK_PREDICT_QUEUE")
    # Only model directories under this one can be deployed or checked through the admin API.
    models_root: Path | None = Field(default=None, validation_alias="FRONTDESK_MODELS_ROOT")
    # Audit entries are kept this many days; a staff token lives this many days (signing out revokes it sooner).
    audit_days: int = Field(default=365, ge=1, validation_alias="FRONTDESK_AUDIT_DAYS")
    staff_token_days: float = Field(default=30.0, gt=0, validation_alias="FRONTDESK_STAFF_TOKEN_DAYS")
    # Escalations opened per customer and per client address per window ("COUNT/SECONDS"); an unclaimed one
    # expires after this many hours; staff are reminded of an unclaimed one at most this many times.
    escalation_rate_limit: str = Field(default="3/3600", pattern=r"^\d+/\d+(\.\d+)?$",
                                       validation_alias="FRONTDESK_ESCALATION_RATE_LIMIT")
    escalation_address_limit: str = Field(default="20/3600", pattern=r"^\d+/\d+(\.\d+)?$",
                                          validation_alias="FRONTDESK_ESCALATION_ADDRESS_LIMIT")
    escalation_expire_hours: float = Field(default=72.0, gt=0, validation_alias="FRONTDESK_ESCALATION_EXPIRE_HOURS")
    reannounce_max: int = Field(default=3, ge=0, validation_alias="FRONTDESK_REANNOUNCE_MAX")
    # Pages that may embed the web chat (CSP frame-ancestors), space-separated; default: only this server.
    frame_ancestors: str = Field(default="'self'", validation_alias="FRONTDESK_FRAME_ANCESTORS")
    # The embedded Redis's memory cap (`frontdesk run`); an external Redis is configured by its operator.
    redis_maxmemory: str = Field(default="256mb", pattern=r"(?i)^\d+(b|kb|mb|gb)?$",
                                 validation_alias="FRONTDESK_REDIS_MAXMEMORY")

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_support_channel: str | None = Field(default=None, validation_alias="SLACK_SUPPORT_CHANNEL")
    slack_admin_users: str = Field(default="", validation_alias="SLACK_ADMIN_USERS")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")

    telegram_bot_token: SecretStr | None = Field(default=None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_api_url: str = Field(default="https://api.telegram.org/bot", validation_alias="TELEGRAM_API_URL")
    telegram_webhook_url: str | None = Field(default=None, validation_alias="TELEGRAM_WEBHOOK_URL")
    telegram_webhook_secret: SecretStr | None = Field(default=None, validation_alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_admin_users: str = Field(default="", validation_alias="TELEGRAM_ADMIN_USERS")

    @field_validator("model_dir", "kb", "kb_questions", "faq_encoder", "query_encoder", "kb_embeddings",
                     "admin_token", "redis_url",
                     "slack_bot_token", "chat_token", "predict_token", "models_root",
                     "slack_signing_secret", "slack_app_token", "slack_support_channel", "telegram_bot_token",
                     "telegram_webhook_url", "telegram_webhook_secret", mode="before")
    @classmethod
    def empty_is_unset(cls, value):
        """`VAR=` (as compose passes an unset variable) means unset, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_cluster", mode="before")
    @classmethod
    def empty_is_false(cls, value):
        return False if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def redis_deployment(self) -> Settings:
        if self.redis_sentinels.strip():
            if not self.redis_sentinel_master.strip():
                raise ValueError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the name the sentinels monitor)")
            if self.redis_cluster:
                raise ValueError("REDIS_CLUSTER and REDIS_SENTINELS cannot both be set")
            self.redis_url = self.redis_url or "redis://"  # no credentials; and no embedded Redis
        elif self.redis_cluster and not self.redis_url:
            raise ValueError("REDIS_CLUSTER=1 needs REDIS_URL naming one node of the cluster")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def proxy_networks(cls, value: str) -> str:
        parse_networks(value, "FRONTDESK_TRUSTED_PROXIES")  # a typo fails at start-up, naming the entry
        return value

    @field_validator("frame_ancestors")
    @classmethod
    def frame_sources(cls, value: str) -> str:
        return check_frame_ancestors(value)  # checked at start-up: it is written into every chat page's header

    @field_validator("admin_token", "chat_token", "predict_token")
    @classmethod
    def strong_token(cls, value: SecretStr | None, info) -> SecretStr | None:
        if value is not None:
            check_token_strength(value.get_secret_value(), TOKEN_VARIABLES[info.field_name])
        return value

    @model_validator(mode="after")
    def readable_hours(self) -> Settings:
        self.hours()  # a bad FRONTDESK_BUSINESS_HOURS or FRONTDESK_TIMEZONE fails at start-up, naming the part
        return self

    def hours(self):
        """The parsed business hours (`bot.hours.BusinessHours`), None when unset (always open)."""
        return BusinessHours.parse(self.business_hours, self.timezone)

    @cached_property  # read on every request by the address middleware: parsed once per settings object
    def proxy_networks_list(self) -> list[IPNetwork]:
        return parse_networks(self.trusted_proxies, "FRONTDESK_TRUSTED_PROXIES")

    @property
    def predict_rate_limit_pair(self) -> tuple[int, float]:
        return rate_pair(self.predict_rate_limit)

    @property
    def escalation_rate_limit_pair(self) -> tuple[int, float]:
        return rate_pair(self.escalation_rate_limit)

    @property
    def escalation_address_limit_pair(self) -> tuple[int, float]:
        return rate_pair(self.escalation_address_limit)

    @property
    def ip_rate_limit_pair(self) -> tuple[int, float]:
        return rate_pair(self.ip_rate_limit)

    @property
    def origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def rate_limit_pair(self) -> tuple[int, float]:
        return rate_pair(self.rate_limit)

    @property
    def kb_source(self) -> Path:
        """The knowledge folder served: FRONTDESK_KB, else the demo store's."""
        return self.kb or DEMO_KB

    @property
    def demo_model_dir(self) -> Path:
        return self.home / "models" / "demo"

    @property
    def demo_teacher_dir(self) -> Path:
        """The 6-layer demo model the served one is distilled from (kept: a new student needs it)."""
        return self.home / "models" / "demo-teacher"


def load_settings(config_file: Path | None = None) -> Settings:
    """Settings from the environment; `config_file` (a dotenv-style file) fills in the rest. The log settings
    are checked here too, so a bad FRONTDESK_LOG_* value is refused at start-up with the others."""
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        LogSettings(_env_file=str(config_file))  # type: ignore[call-arg]
        return Settings(_env_file=str(config_file))  # type: ignore[call-arg]
    LogSettings()
    return Settings()
