"""Settings of the console (the operations board), read from environment variables."""

from typing import Self

from pydantic import Field, model_validator

from backbone.settings import AuthSettings, KafkaSettings


class ConsoleSettings(KafkaSettings, AuthSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8005
    console_order_url: str = Field(default="http://127.0.0.1:8001", description="The order service's API")
    console_inventory_url: str = "http://127.0.0.1:8002"
    console_procurement_url: str = "http://127.0.0.1:8003"
    console_notifier_url: str = "http://127.0.0.1:8004"
    console_source_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="A service or Kafka answering slower counts as down"
    )
    console_token_ttl_seconds: int = Field(
        default=300, ge=30, le=3600, description="Lifetime of the reader token the console calls with"
    )
    console_refresh_seconds: float = Field(default=5.0, ge=1, le=300, description="The page's refresh")
    console_cache_seconds: float = Field(
        default=2.0, ge=0, le=60, description="Many open pages share one gathering within this time"
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _can_mint(self) -> Self:
        if self.auth_token_secret is None:
            # A JWKS alone would let the console check the browser's tokens but not call the services.
            raise ValueError("the console needs AUTH_TOKEN_SECRET: it signs its own reader token with it")
        return self

    def service_urls(self) -> dict[str, str]:
        return {
            "order": self.console_order_url.rstrip("/"),
            "inventory": self.console_inventory_url.rstrip("/"),
            "procurement": self.console_procurement_url.rstrip("/"),
            "notifier": self.console_notifier_url.rstrip("/"),
        }
