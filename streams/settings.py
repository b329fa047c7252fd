"""The one settings object: every option comes from a ``TAGGER_*`` environment variable."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core_build import PURE_PYTHON_VARIABLE
from taggers.bundled import BUNDLED_RULES

MIN_TOKEN_LENGTH = 16  # a web token short enough to guess is refused at start


class Settings(BaseSettings):
    """Options with their defaults; docs/configuration.md lists them all."""

    model_config = SettingsConfigDict(env_prefix="TAGGER_", extra="ignore")

    rules_dir: Path | None = Field(
        default=None, description="Rule directory; default ./rules, else the bundled pack"
    )
    max_event_bytes: int = Field(
        default=64 * 1024, ge=256, description="Larger events go to the DLQ"
    )
    # --- the streaming worker ---------------------------------------------------------------
    app_id: str = Field(default="tagger", description="Kafka consumer group and app id")
    broker_url: str = Field(default="kafka://127.0.0.1:9092", description="Kafka bootstrap")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis; rediss:// for TLS, redis://:PASSWORD@host:port/db with a password",
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Redis AUTH password (instead of one in the URL)"
    )
    redis_username: str | None = Field(default=None, description="Redis ACL user name")
    redis_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the Redis server's certificate (rediss://)"
    )
    redis_cluster: bool = Field(
        default=False, description="The URL names a node of a Redis Cluster"
    )
    redis_prefix: str = Field(
        default="tagger",
        pattern=r"^[^{}]*$",
        description="Prefix of every Redis key (no braces: keys are hashed by their {...})",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How to reach the brokers: TLS (SSL), SASL, both"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism (SASL_* protocols)"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    kafka_ca_file: Path | None = Field(
        default=None, description="CA bundle for the brokers' certificates (SSL, SASL_SSL)"
    )
    kafka_cert_file: Path | None = Field(
        default=None, description="Client certificate for mutual TLS (with the key file)"
    )
    kafka_key_file: Path | None = Field(default=None, description="Client certificate's key")
    events_topic: str = "behaviour-events"
    tag_changes_topic: str = "user-tag-changes"
    transitions_topic: str = "lifecycle-transitions"
    alerts_topic: str = "user-alerts"
    dlq_topic: str = "behaviour-events-dlq"
    rekeyed_topic: str = Field(
        default="behaviour-events-by-user",
        description="Events that arrived unkeyed or wrongly keyed, re-sent keyed by user_id",
    )
    partitions: int = Field(default=8, ge=1, description="Partitions of topics created at start")
    replication_factor: int = Field(default=1, ge=1, description="Of topics created at start")
    batch_size: int = Field(
        default=1000,
        ge=1,
        description="Most events one fetch hands over; each partition's share is one batch",
    )
    fetch_max_wait_ms: int = Field(
        default=500, ge=1, description="How long a fetch may wait on the broker for data"
    )
    session_timeout: float = Field(
        default=30.0, gt=0, description="Consumer group session timeout, seconds"
    )
    clock: Literal["wall", "event"] = Field(
        default="wall",
        description="wall: timers fire by the wall clock; event: by each partition's event time",
    )
    max_future_skew: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds an event's ts may be after it was sent; later ones go to the DLQ",
    )
    max_ids: int = Field(
        default=64,
        ge=2,
        le=10_000,
        description="The most ids one person may have; an identify making more is a dead letter",
    )
    sweep_interval: float = Field(
        default=1.0, gt=0, description="Seconds between timer sweeps of due deadlines (wall clock)"
    )
    rules_poll_interval: float = Field(
        default=5.0,
        ge=0,
        description="Seconds between checks of the rule directory for changes; 0: no reload",
    )
    recompute_rate: int = Field(
        default=1000,
        ge=0,
        description="Stored profiles re-evaluated per second after a rule change; 0: none",
    )
    stats_interval: float = Field(
        default=15.0,
        ge=0,
        description="Seconds between refreshes of the stage and audience gauges; 0: none",
    )
    profile_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Profiles a worker keeps of those it last wrote, read again without Redis",
    )
    tombstone_days: int = Field(
        default=400,
        ge=1,
        description="Days a forgotten id's tombstone is kept; longer than any topic's retention",
    )
    web_port: int = Field(
        default=6066, description="HTTP port: /metrics, /healthz, /readyz, /profiles, /tags"
    )
    web_bind: str = Field(default="0.0.0.0", description="HTTP bind address")
    web_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of /profiles and /tags; unset: they answer on loopback only",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Worker log lines: text (fields as key=value) or JSON lines"
    )

    @field_validator("web_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `TAGGER_WEB_TOKEN=${TAGGER_WEB_TOKEN:-}` in a compose file: no token, not "".
        return None if value == "" else value

    @field_validator("web_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters (not counting spaces)"
            )
        return value

    @field_validator("redis_ca_file")
    @classmethod
    def _redis_tls_only(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        url = str(info.data.get("redis_url", ""))
        if value is not None and not url.startswith("rediss://"):
            raise ValueError("is for TLS: TAGGER_REDIS_URL must start with rediss://")
        return value

    @field_validator("kafka_ca_file", "kafka_cert_file", "kafka_key_file")
    @classmethod
    def _kafka_tls_only(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = str(info.data.get("kafka_security_protocol", ""))
        if value is not None and not protocol.endswith("SSL"):
            raise ValueError("is for TLS: TAGGER_KAFKA_SECURITY_PROTOCOL must be SSL or SASL_SSL")
        return value

    def to_environment(self) -> dict[str, str]:
        """These settings as ``TAGGER_*`` variables, to hand to a worker process."""
        values = self.model_dump(exclude_none=True)
        return {
            f"TAGGER_{name.upper()}": (
                value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            )
            for name, value in values.items()
        }

    def resolved_rules_dir(self) -> Path:
        """The rule directory to load: the setting, else ./rules, else the bundled pack."""
        if self.rules_dir is not None:
            return self.rules_dir
        local = Path("rules")
        return local if local.is_dir() else BUNDLED_RULES


def revealed(secret: SecretStr | None) -> str | None:
    """An optional secret setting's value, for the client that needs it (never to log)."""
    return None if secret is None else secret.get_secret_value()


class SettingsError(Exception):
    """A ``TAGGER_*`` variable holds a value its setting cannot take."""


def load_settings() -> Settings:
    """The settings from the environment; SettingsError names each bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        problems = [
            f"TAGGER_{'_'.join(str(p) for p in item['loc']).upper()}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
        raise SettingsError("; ".join(problems)) from None


# Read outside the settings object, by the build (setup.py) and before the core is imported
# (streams/core_build.py): see docs/configuration.md, Build.
BUILD_VARIABLES: Final = ("TAGGER_COMPILE", PURE_PYTHON_VARIABLE)


def unknown_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``TAGGER_*`` variables that are no setting (a typo is otherwise silently ignored),
    each with the setting it probably meant, if one is close."""
    known = [f"TAGGER_{name.upper()}" for name in Settings.model_fields]
    found = []
    for name in sorted(environ):
        if name.startswith("TAGGER_") and name not in known and name not in BUILD_VARIABLES:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found
