"""Settings shared by every service, read from environment variables (documented in README.md)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    service_name: str = Field(description="Names the consumer group, logs and the relay")
    database_url: str = Field(description="The service's own PostgreSQL database")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="backorder.", description="Prepended to every topic name")
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    consumer_batch_size: int = Field(default=500, ge=1, description="Messages applied per transaction")
    relay_batch_size: int = Field(default=1000, ge=1, description="Outbox rows published per round")
    db_pool_size: int = Field(default=10, ge=2)
    log_level: str = "INFO"

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}{self.service_name}"
