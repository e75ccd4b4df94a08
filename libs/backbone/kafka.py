"""Kafka clients configured once: an ordered, acknowledged producer, topic creation, a reachability probe."""

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from backbone.health import HealthReport
from backbone.settings import KafkaSettings

log = structlog.get_logger(__name__)


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """The security keyword arguments of every aiokafka client (producer, consumer, admin) for these
    settings: nothing for PLAINTEXT, TLS with the brokers' CA and/or SASL (SCRAM) credentials otherwise."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None  # the settings' validator made sure
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def reliable_producer(bootstrap_servers: str, **overrides: object) -> AIOKafkaProducer:
    """acks=all and idempotence: an acknowledged message is on every in-sync replica, and retries
    neither duplicate nor reorder messages of a partition."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 512 * 1024,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int,
    replication_factor: int,
    **options: Any,
) -> None:
    """Create missing topics; an existing topic is left as it is. `options`: client_options()."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
            for name in sorted(set(names) - existing)
        ]
        if missing:
            response = await admin.create_topics(missing)
            # Errors come back per topic rather than raised; "already exists" means another instance won.
            failed = [
                (t[0], t[1]) for t in response.topic_errors if t[1] not in (0, TopicAlreadyExistsError.errno)
            ]
            if failed and all(for_code(code).retriable for _, code in failed):
                # e.g. a broker that is still electing its controller: worth waiting for
                raise KafkaError(f"topics not created yet (name, Kafka error code): {failed}")
            if failed:
                raise RuntimeError(f"could not create topics (name, Kafka error code): {failed}")
            log.info("topics created", topics=[t.name for t in missing])
    finally:
        await admin.close()


async def started_producer(bootstrap_servers: str, **options: Any) -> AIOKafkaProducer:
    """A started reliable producer; raises KafkaError (leaving nothing open) if the broker does not answer."""
    producer = reliable_producer(bootstrap_servers, **options)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


class KafkaProbe:
    """Checks every few seconds that a broker answers on the producer's connection, for /health. The
    producer and the consumer wait for a lost broker quietly on their own, so without this an outage would
    not show until something had to be published. (Not a metadata request: one for all topics is the
    whole cluster's, thousands of partitions to parse every time.)"""

    def __init__(self, producer: AIOKafkaProducer, *, interval: float = 2.0, timeout: float = 10.0) -> None:
        self._producer = producer
        self._interval, self._timeout = interval, timeout
        self.health = HealthReport()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._broker_answers()
            except (KafkaError, TimeoutError, OSError) as e:
                if self.health.current.status == "ok":
                    log.warning("Kafka unreachable; the service waits for it", error=repr(e))
                self.health.degraded(f"Kafka unreachable: {type(e).__name__}: {e}")
            else:
                if self.health.current.status != "ok":
                    log.info("Kafka reachable again")
                self.health.ok()
            await asyncio.sleep(self._interval)

    async def _broker_answers(self) -> None:
        client = self._producer.client
        node = client.get_random_node()
        if node is None:  # no metadata yet: the bootstrap servers must answer
            await client.fetch_all_metadata()
        elif not await client.ready(node):  # connects (and handshakes) again if the connection was lost
            raise KafkaError(f"broker {node} does not answer")
