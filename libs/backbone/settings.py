"""Settings shared by every service, read from environment variables (documented in README.md)."""

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backbone.auth import DEFAULT_AUDIENCE, DEFAULT_ISSUER, MIN_SECRET_LENGTH


class KafkaSettings(BaseSettings):
    """How any of our processes reaches Kafka: the services, the console and the operator tools."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True, hide_input_in_errors=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle of the brokers' certificates")
    topic_prefix: str = Field(default="backorder.", description="Prepended to every topic name")

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME "
                "and KAFKA_SASL_PASSWORD"
            )
        return self


class AuthSettings(BaseSettings):
    """Which bearer tokens the HTTP APIs accept (backbone.auth). At least one verifier is required: a
    service never runs open; tests and local runs use a generated AUTH_TOKEN_SECRET."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True, hide_input_in_errors=True)

    auth_token_secret: SecretStr | None = Field(
        default=None,
        min_length=MIN_SECRET_LENGTH,
        description="Shared secret of the HS256 tokens `python -m backbone.auth token` mints",
    )
    auth_jwks_url: str | None = Field(
        default=None, description="The identity provider's signing keys (JWKS) for its RS256/ES256 tokens"
    )
    auth_issuer: str = Field(default=DEFAULT_ISSUER, min_length=1, description="Required `iss` of tokens")
    auth_audience: str = Field(default=DEFAULT_AUDIENCE, min_length=1, description="Required `aud` of tokens")

    @model_validator(mode="after")
    def _has_a_verifier(self) -> Self:
        if self.auth_token_secret is None and not self.auth_jwks_url:
            raise ValueError(
                "no token verifier configured: set AUTH_TOKEN_SECRET (at least 32 characters, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and/or AUTH_JWKS_URL"
            )
        if self.auth_jwks_url:
            try:
                import cryptography  # noqa: F401  # PyJWT needs it for RS256/ES256
            except ImportError:
                raise ValueError("AUTH_JWKS_URL needs the cryptography package (pyjwt[crypto])") from None
        return self


class ServiceSettings(KafkaSettings, AuthSettings):
    service_name: str = Field(description="Names the consumer group, logs and the relay")
    database_url: str = Field(description="The service's own PostgreSQL database (its runtime role)")
    database_migration_url: str | None = Field(
        default=None,
        description="The role that owns the database and runs migrations and rebuilds; default DATABASE_URL",
    )
    topic_auto_create: bool = Field(
        default=True, description="Create missing topics at start (off where an operator owns them)"
    )
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    consumer_batch_size: int = Field(default=500, ge=1, description="Messages applied per transaction")
    # A fetch the broker answers at once carries what arrived since the last one: a few messages, and a
    # transaction (about ten statements and a WAL flush) for each few. Waiting for a fuller fetch, up to
    # a bound, spends that latency on fewer, larger transactions; under load the fetch fills at once.
    consumer_fetch_min_bytes: int = Field(
        default=64 * 1024, ge=1, description="Bytes the broker gathers before answering a fetch"
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=25, ge=0, description="The longest the broker holds a fetch for CONSUMER_FETCH_MIN_BYTES"
    )
    relay_batch_size: int = Field(default=1000, ge=1, description="Outbox rows published per round")
    db_pool_size: int = Field(default=10, ge=2)
    log_level: str = "INFO"

    @property
    def migration_url(self) -> str:
        return self.database_migration_url or self.database_url

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}{self.service_name}"
