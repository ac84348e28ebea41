"""Every setting ptnudge reads, in one typed class.

Nothing else in the code base reads ``os.environ``: entry points build a ``Settings`` once and
pass it (or what they need from it) down. A bad value stops the process at start with a
one-line error that names the variable.
"""

from __future__ import annotations

import math
import sys
import zoneinfo
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})
DEV_SECRET_KEY = "development-only-secret-key"  # noqa: S105 - refused outside development
DEFAULT_BROKER_URL = "sqla+sqlite:///ptnudge-broker.db"
TWILIO_API_URL = "https://api.twilio.com"
SETTINGS_EXIT_CODE = 2
# A production secret: long, and varied enough to be worth 128 bits by a simple estimate
# (Shannon entropy of its characters times its length). `secrets.token_urlsafe(32)` gives
# about 200; "changemechangemechangemechangeme" about 88.
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 128.0
SECRET_HINT = "openssl rand -hex 32"  # noqa: S105 - a command to make one, not a secret


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable."""


class SmtpConfig:
    """The parts of ``PTNUDGE_SMTP_URL`` a mail client needs."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("expected smtp://user:pass@host:port or smtps://…")
        self.host: str = parts.hostname
        self.ssl: bool = parts.scheme == "smtps"
        self.port: int = parts.port or (465 if self.ssl else 25)
        self.username: str | None = parts.username
        self.password: str | None = parts.password
        query = parse_qs(parts.query)
        self.starttls: bool = query.get("starttls", ["0"])[0] in {"1", "true", "yes"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        # compose passes an unset ${VAR:-} as "": treat it as unset, not as a value.
        env_ignore_empty=True,
    )

    env: Literal["development", "production", "test"] = Field(
        "development", validation_alias="PTNUDGE_ENV"
    )
    database_url: str = Field("sqlite:///ptnudge.db", validation_alias="PTNUDGE_DATABASE_URL")
    broker_url: str = Field(DEFAULT_BROKER_URL, validation_alias="PTNUDGE_BROKER_URL")
    public_url: str = Field("http://localhost:8000", validation_alias="PTNUDGE_PUBLIC_URL")
    secret_key: SecretStr = Field(SecretStr(DEV_SECRET_KEY), validation_alias="PTNUDGE_SECRET_KEY")
    sms_backend: Literal["twilio", "console"] | None = Field(
        None, validation_alias="PTNUDGE_SMS_BACKEND"
    )
    twilio_account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(None, validation_alias="TWILIO_FROM_NUMBER")
    twilio_messaging_service_sid: str | None = Field(
        None, validation_alias="TWILIO_MESSAGING_SERVICE_SID"
    )
    twilio_api_url: str = Field(TWILIO_API_URL, validation_alias="PTNUDGE_TWILIO_API_URL")
    twilio_timeout_seconds: float = Field(
        10.0, gt=0, le=120, validation_alias="PTNUDGE_TWILIO_TIMEOUT_SECONDS"
    )
    # Only for trying the webhooks by hand on a laptop; refused anywhere else.
    verify_twilio_signatures: bool = Field(
        True, validation_alias="PTNUDGE_VERIFY_TWILIO_SIGNATURES"
    )
    # Most SMS a second from our sender, across every worker (0: no limit of our own). A long
    # code takes about 1; toll-free, 10DLC and short codes more, as registered.
    sms_per_second: int = Field(0, ge=0, le=1000, validation_alias="PTNUDGE_SMS_PER_SECOND")
    twilio_handles_opt_out_replies: bool = Field(
        True, validation_alias="PTNUDGE_TWILIO_HANDLES_OPT_OUT_REPLIES"
    )
    smtp_url: str | None = Field(None, validation_alias="PTNUDGE_SMTP_URL")
    email_from: str | None = Field(None, validation_alias="PTNUDGE_EMAIL_FROM")
    # Where a clinic's warning-sign alerts go when the clinic has no address of its own.
    alert_email: str | None = Field(None, validation_alias="PTNUDGE_ALERT_EMAIL")
    # Prefix for every key ptnudge's Celery puts in Redis: several deployments (or test
    # runs) can share one Redis without seeing each other's queues.
    broker_key_prefix: str = Field("", max_length=64, validation_alias="PTNUDGE_BROKER_KEY_PREFIX")
    tick_seconds: float = Field(15.0, gt=0, le=3600, validation_alias="PTNUDGE_TICK_SECONDS")
    # The sweeper's period; beat never runs it more often than the dispatcher.
    sweep_seconds: float = Field(30.0, gt=0, le=3600, validation_alias="PTNUDGE_SWEEP_SECONDS")
    programs_dir: Path | None = Field(None, validation_alias="PTNUDGE_PROGRAMS_DIR")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", validation_alias="PTNUDGE_LOG_FORMAT"
    )
    # Delivery tuning. Defaults suit a clinic; tests shorten them.
    stale_after_seconds: int = Field(900, gt=0, validation_alias="PTNUDGE_STALE_AFTER_SECONDS")
    min_gap_minutes: int = Field(10, ge=0, le=240, validation_alias="PTNUDGE_MIN_GAP_MINUTES")
    dispatch_batch_size: int = Field(500, gt=0, validation_alias="PTNUDGE_DISPATCH_BATCH_SIZE")
    requeue_after_seconds: int = Field(120, gt=0, validation_alias="PTNUDGE_REQUEUE_AFTER_SECONDS")
    reconcile_after_seconds: int = Field(
        300, gt=0, validation_alias="PTNUDGE_RECONCILE_AFTER_SECONDS"
    )
    retry_backoff_seconds: int = Field(
        5, ge=1, le=300, validation_alias="PTNUDGE_RETRY_BACKOFF_SECONDS"
    )
    worker_concurrency: int = Field(
        0, ge=0, le=256, validation_alias="PTNUDGE_WORKER_CONCURRENCY"
    )  # 0: two pool processes per CPU (sends wait on the network and the database)
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, validation_alias="PTNUDGE_WORKER_METRICS_PORT"
    )
    send_max_retries: int = Field(6, ge=0, le=20, validation_alias="PTNUDGE_SEND_MAX_RETRIES")
    reply_window_hours: int = Field(12, gt=0, validation_alias="PTNUDGE_REPLY_WINDOW_HOURS")
    default_timezone: str = Field("America/Chicago", validation_alias="PTNUDGE_DEFAULT_TIMEZONE")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("only sqlite:// and postgresql:// databases are supported")
        return value

    @field_validator("public_url", "twilio_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"expected an http(s):// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value:
            SmtpConfig(value)
        return value or None

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("programs_dir")
    @classmethod
    def _programs_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.env in {"development", "test"}:
            return self
        problem = secret_problem(self.secret_key.get_secret_value())
        if problem:
            raise ValueError(
                f"PTNUDGE_SECRET_KEY is too weak for production: {problem}; "
                f"make one with {SECRET_HINT}"
            )
        if self.resolved_sms_backend == "twilio":
            token = self.twilio_auth_token.get_secret_value() if self.twilio_auth_token else ""
            if token.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("TWILIO_AUTH_TOKEN must be set outside development")
        return self

    @model_validator(mode="after")
    def _production_endpoints(self) -> Settings:
        """Production talks to the world: links and webhooks over https, real transports.
        The console transports only print what they would send."""
        if self.env != "production":
            return self
        if urlsplit(self.public_url).scheme != "https":
            raise ValueError(
                f"PTNUDGE_PUBLIC_URL must be an https:// URL in production, got {self.public_url!r}"
            )
        if self.resolved_sms_backend == "console":
            raise ValueError(
                "PTNUDGE_SMS_BACKEND=console only prints messages and is for development; "
                "production needs twilio (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender)"
            )
        if not self.smtp_url:
            raise ValueError(
                "PTNUDGE_SMTP_URL must be set in production: without it emails (reminders, "
                "clinic alerts) are only printed to the log"
            )
        return self

    @model_validator(mode="after")
    def _signatures_checked(self) -> Settings:
        if not self.verify_twilio_signatures and self.env != "development":
            raise ValueError(
                "PTNUDGE_VERIFY_TWILIO_SIGNATURES=false is allowed only with "
                "PTNUDGE_ENV=development: anyone could forge replies and opt-outs"
            )
        return self

    @model_validator(mode="after")
    def _twilio_complete(self) -> Settings:
        if self.resolved_sms_backend != "twilio":
            return self
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
            )
            if not value
        ]
        if not (self.twilio_from_number or self.twilio_messaging_service_sid):
            missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            raise ValueError("PTNUDGE_SMS_BACKEND=twilio needs " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _email_sender(self) -> Settings:
        if self.smtp_url and not self.email_from:
            raise ValueError("PTNUDGE_SMTP_URL is set, so PTNUDGE_EMAIL_FROM must be set too")
        return self

    @property
    def resolved_sms_backend(self) -> Literal["twilio", "console"]:
        if self.sms_backend is not None:
            return self.sms_backend
        return "twilio" if self.twilio_account_sid and self.twilio_auth_token else "console"

    @property
    def sms_enabled(self) -> bool:
        """True when SMS really leave the building (not the console transport)."""
        return self.resolved_sms_backend == "twilio"

    @property
    def email_enabled(self) -> bool:
        """True when email really leaves the building (an SMTP server is configured)."""
        return self.smtp_url is not None

    @cached_property
    def smtp(self) -> SmtpConfig | None:
        return SmtpConfig(self.smtp_url) if self.smtp_url else None

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def broker_kind(self) -> Literal["embedded", "redis", "other"]:
        """Which broker the URL names: the serverless one of a single machine (kombu's
        SQLAlchemy transport), Redis (which also holds locks and the shared rate limit), or
        another kombu transport (``memory://`` in tests)."""
        if self.broker_url.startswith("sqla+"):
            return "embedded"
        if self.broker_url.startswith(("redis://", "rediss://")):
            return "redis"
        return "other"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_kind == "embedded"

    @property
    def redis_broker(self) -> bool:
        return self.broker_kind == "redis"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning a validation error into one line a person
    can act on: ``PTNUDGE_TICK_SECONDS: Input should be greater than 0``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def settings_or_exit() -> Settings:
    """Settings for a process entry point (the web app, the worker, beat): a bad setting is
    one line on stderr and exit status 2, not a traceback from inside the importer."""
    try:
        return load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"error: settings: {exc}\n")
        raise SystemExit(SETTINGS_EXIT_CODE) from None


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is too weak to sign links with, or None when it will do."""
    if secret == DEV_SECRET_KEY or secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "a placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{len(secret)} characters (at least {MIN_SECRET_LENGTH} needed)"
    bits = secret_bits(secret)
    if bits < MIN_SECRET_BITS:
        return f"too little variety (about {bits:.0f} bits, {MIN_SECRET_BITS:.0f} needed)"
    return None


def secret_bits(secret: str) -> float:
    """Shannon entropy of the characters times the length: a cheap upper estimate of how
    many bits of guessing the secret is worth."""
    length = len(secret)
    return sum(count * math.log2(length / count) for count in Counter(secret).values())


def _describe(exc: ValidationError) -> str:
    """One line. A field's error starts with its variable; a check across fields (empty
    location) names its variables itself."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(line.replace("\n", " ") for line in lines)
