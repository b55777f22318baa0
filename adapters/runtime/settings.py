"""Every setting Frontdesk reads, from the environment (names listed in docs/OPERATIONS.md "Settings") or a file.

Secrets are `SecretStr` so they never show up in a repr, a log line or an error page.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.hours import BusinessHours


class LogSettings(BaseSettings):
    """How the process logs: read apart from `Settings`, before it, so a bad setting elsewhere is still logged."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=False)

    level: str = Field(default="INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$",
                       validation_alias="FRONTDESK_LOG_LEVEL")
    format: str = Field(default="json", pattern="^(json|text)$", validation_alias="FRONTDESK_LOG_FORMAT")


class Settings(BaseSettings):
    # Only the documented names (FRONTDESK_HOME, ...): matching field names too would read $HOME as `home`.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=False)

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
    # The link of a help-center article whose front matter gives no `url`: this base plus the article's path.
    articles_base_url: str = Field(default="", max_length=2000, pattern=r"^(https?://\S*)?$",
                                   validation_alias="FRONTDESK_ARTICLES_BASE_URL")
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

    @field_validator("model_dir", "kb", "kb_questions", "faq_encoder", "admin_token", "redis_url", "slack_bot_token",
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

    @model_validator(mode="after")
    def readable_hours(self) -> Settings:
        self.hours()  # a bad FRONTDESK_BUSINESS_HOURS or FRONTDESK_TIMEZONE fails at start-up, naming the part
        return self

    def hours(self):
        """The parsed business hours (`bot.hours.BusinessHours`), None when unset (always open)."""
        return BusinessHours.parse(self.business_hours, self.timezone)

    @property
    def ip_rate_limit_pair(self) -> tuple[int, float]:
        count, seconds = self.ip_rate_limit.split("/")
        return int(count), float(seconds)

    @property
    def origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def rate_limit_pair(self) -> tuple[int, float]:
        count, seconds = self.rate_limit.split("/")
        return int(count), float(seconds)

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
