"""How a long-running component (relay, consumer loop, background job) is doing, for `GET /health`.

A component never ends on an outage: it waits, retries and says so here. `degraded` carries the reason
and since when, so an operator sees at once what a service is waiting for.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

HealthStatus = Literal["ok", "degraded"]


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    status: HealthStatus = "ok"
    detail: str | None = None
    since: datetime | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "detail": self.detail,
            "since": self.since.isoformat() if self.since else None,
        }


OK = ComponentHealth()


class HealthReport:
    """A component's mutable health: `degraded(reason)` while it waits, `ok()` once it works again."""

    def __init__(self) -> None:
        self.current: ComponentHealth = OK

    def degraded(self, detail: str) -> None:
        since = self.current.since if self.current.status == "degraded" else datetime.now(UTC)
        self.current = ComponentHealth("degraded", detail, since)

    def ok(self) -> None:
        self.current = OK
