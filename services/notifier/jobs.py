"""Background jobs of the notifier: the delivery worker, and the pass that announces overdue backorders.

The delivery worker runs one lane per channel (email: shops without a webhook; webhook: shops with
one), so a mail relay that hangs until its timeout does not hold up the webhooks, and vice versa.
A lane, over and over:
1. claims due rows (pending, next_attempt_at passed, no live lease, no earlier message of the same
   order still pending, so an order's messages arrive in the order they were decided) with FOR UPDATE
   SKIP LOCKED and leases them (claimed_until, claim_token) in the same statement, so two instances
   never take the same row, and the send then runs outside any transaction, without holding a
   database connection;
2. sends them, at most DELIVERY_CONCURRENCY at once, each bounded by its channel's timeout;
3. records each outcome through the domain (`decide_delivery` on the row's delivery stream) and updates
   the row, in one transaction. The relay publishes NotificationSent / NotificationFailed.
Once a channel accepted a message, its outcome is kept in memory and recording it is retried, with a
capped backoff of a few seconds, for as long as the database is away: giving up would let the lease run
out and the message go a second time. Until it is recorded the lane does not claim that row again, even
if its lease ran out during a long outage. Only a crash between 2 and 3 leaves the lease to run out; the
row is then sent again, and its receiver can recognise the repeat (Message-ID / Idempotency-Key). On
shutdown, leases of sends cut short are given back at once, those of sends that went out are kept.

The announcement pass periodically hands `AnnounceOverdueBackorders` to the orders listed in
backorder_announcement whose grace period has run out (the domain decides what exactly is due).
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import structlog
from pydantic import ValidationError

from backbone import tracing
from backbone.aggregate import StreamRepository
from backbone.backoff import Backoff
from backbone.contracts import Envelope
from backbone.contracts.events import Channel
from backbone.db import DATABASE_UNAVAILABLE
from backbone.decider import Input, decide_and_append
from backbone.eventstore import ConcurrencyError, EventStore
from backbone.health import HealthReport
from backbone.jobs import run_rounds
from backbone.metrics import ServiceMetrics
from backbone.runtime import component_health
from services.notifier import projections
from services.notifier.channels import DeliveryFailure, EmailChannel, WebhookChannel
from services.notifier.domain import (
    AnnounceOverdueBackorders,
    DeliveryAttempt,
    DeliveryState,
    OrderFacts,
    decide_delivery,
    delivery_stream_id,
    destination_for,
    execute_order,
    order_stream_id,
    scrub_error,
)
from services.notifier.events import Notification
from services.notifier.handlers import delivery_repository, order_repository
from services.notifier.settings import NotifierSettings

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Send = Callable[[Notification, str], Awaitable[None]]

# Worth another try: the database or the network hiccupped, or another writer won a race.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConcurrencyError,
    *DATABASE_UNAVAILABLE,
    asyncpg.PostgresError,
)
_RECORD_CONFLICTS = 10  # a database that answers yet keeps refusing the record: a bug, given up on
_RECORD_MAX_DELAY = 2.0  # seconds between tries while the database is away; far below any lease


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Claimed:
    notification: Notification
    attempt: int  # the number of the attempt about to be made
    correlation_id: str
    token: uuid.UUID
    traceparent: str | None = None  # of the flow that requested it, to carry its trace on to the outcome


@dataclass(frozen=True, slots=True)
class _Finished:
    """A send whose outcome waits to be recorded; `recorded` gets the events appended for it (or the
    error), set by whichever send records the group it is in."""

    outcome: DeliveryAttempt
    claimed: Claimed
    recorded: "asyncio.Future[list[Envelope[Any]]]"

    @property
    def input(self) -> Input[DeliveryAttempt]:
        notification_id = self.outcome.notification.notification_id
        return Input(
            delivery_stream_id(notification_id), self.outcome, correlation_id=self.claimed.correlation_id
        )

    def settle(self, outcome: list[Envelope[Any]] | Exception) -> None:
        """Give the waiting send its recording's events (or error), unless it stopped waiting."""
        if self.recorded.done():
            return
        if isinstance(outcome, Exception):
            self.recorded.set_exception(outcome)
        else:
            self.recorded.set_result(outcome)


_CLAIM = """
WITH due AS (
    SELECT notification_id FROM notification_delivery d
    WHERE status = 'pending' AND next_attempt_at <= $1
      AND (claimed_until IS NULL OR claimed_until <= $1)
      AND (shop_id = ANY($2::text[])) = $3
      AND NOT (notification_id = ANY($7::text[]))
      -- One order's messages go out in the order they were requested (a refund never before its
      -- cancellation, a backordered message never after the outcome): an earlier one still pending,
      -- in flight or retrying, holds the later ones back.
      AND NOT EXISTS (
          SELECT 1 FROM notification_delivery earlier
          WHERE earlier.order_id = d.order_id AND earlier.status = 'pending'
            AND (earlier.requested_at, earlier.notification_id) < (d.requested_at, d.notification_id)
      )
    ORDER BY next_attempt_at, notification_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE notification_delivery d SET claimed_until = $5, claim_token = $6
FROM due WHERE d.notification_id = due.notification_id
RETURNING d.notification_id, d.notification::text AS notification, d.attempts, d.correlation_id,
          d.traceparent
"""

_RELEASE = """
UPDATE notification_delivery SET claimed_until = NULL, claim_token = NULL
WHERE claim_token = ANY($1::uuid[]) AND notification_id = ANY($2::text[])
"""


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        settings: NotifierSettings,
        *,
        clock: Clock = utc_now,
        health: HealthReport | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._settings = settings
        self._clock = clock
        self._repository: StreamRepository[DeliveryState] = delivery_repository(store)
        self._webhook_shops = sorted(settings.shop_webhooks)
        self._timeouts: dict[Channel, float] = {
            "email": settings.smtp_timeout_seconds,
            "webhook": settings.webhook_timeout_seconds,
        }
        self.health = health or component_health()
        self._claim_error: str | None = None
        # Notification ids whose send went out and whose outcome is not recorded yet: never claimed again
        # by this worker meanwhile, and their leases are not given back on shutdown.
        self.unrecorded: set[str] = set()
        self._to_record: list[_Finished] = []  # finished sends waiting for the recording transaction
        self._recording = asyncio.Lock()
        self._outcomes = (metrics or ServiceMetrics("notifier")).count_job(
            "notifications",
            "Delivery attempts by channel and outcome: sent, failed (tried again later), given_up",
            ["channel", "outcome"],
        )

    def _report(self) -> None:
        if self._claim_error is not None:
            self.health.degraded(f"cannot claim notifications: {self._claim_error}")
        elif self.unrecorded:
            self.health.degraded(f"{len(self.unrecorded)} sent notifications wait for the database")
        else:
            self.health.ok()

    async def run(self) -> None:
        """Deliver until cancelled."""
        s = self._settings
        email = EmailChannel(s)
        async with httpx.AsyncClient(timeout=s.webhook_timeout_seconds, follow_redirects=False) as client:
            senders: dict[Channel, Send] = {
                "email": email.send,
                "webhook": WebhookChannel(client, s).send,
            }
            try:
                async with asyncio.TaskGroup() as lanes:
                    lanes.create_task(self._lane("email", senders))
                    if self._webhook_shops:
                        lanes.create_task(self._lane("webhook", senders))
            finally:
                await asyncio.shield(email.aclose())

    async def _lane(self, channel: Channel, senders: dict[Channel, Send]) -> None:
        in_flight: dict[asyncio.Task[None], Claimed] = {}
        poll = self._settings.delivery_poll_seconds
        try:
            while True:
                free = self._settings.delivery_concurrency - len(in_flight)
                claimed = await self._claim(channel, free, in_flight.values()) if free > 0 else []
                for c in claimed:
                    in_flight[asyncio.create_task(self._deliver(c, senders))] = c
                if in_flight:
                    done, _ = await asyncio.wait(in_flight, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        in_flight.pop(task)
                        if not task.cancelled() and (error := task.exception()) is not None:
                            log.error("delivery task failed", channel=channel, error=repr(error))
                elif not claimed:
                    await asyncio.sleep(poll)
        finally:
            # Decided before the cancellation ends the recordings: a send that went out keeps its lease.
            unsent = [c for c in in_flight.values() if c.notification.notification_id not in self.unrecorded]
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            if unsent:
                await asyncio.shield(self._release(unsent))

    async def _claim(self, channel: Channel, limit: int, busy: Iterable[Claimed]) -> list[Claimed]:
        now, token = self._clock(), uuid.uuid4()
        lease_end = now + timedelta(seconds=self._settings.delivery_lease_seconds)
        # Rows of sends still in flight or unrecorded here: their lease may have run out in an outage.
        held = [c.notification.notification_id for c in busy]
        try:
            rows = await self._pool.fetch(
                _CLAIM,
                now,
                self._webhook_shops,
                channel == "webhook",
                limit,
                lease_end,
                token,
                held,
            )
        except TRANSIENT_ERRORS as e:
            if self._claim_error is None:
                log.warning("could not claim due notifications; trying again", channel=channel, error=repr(e))
            self._claim_error = f"{type(e).__name__}: {e}"
            self._report()
            return []
        if self._claim_error is not None:
            log.info("claiming notifications again", channel=channel)
            self._claim_error = None
            self._report()
        claimed = []
        for r in rows:
            try:
                notification = Notification.model_validate_json(r["notification"])
            except ValidationError as e:  # cannot happen for rows this code wrote; left leased, and logged
                # Where and what, never the row or pydantic's input values: they hold the customer's data.
                problems = [
                    f"{'.'.join(map(str, p['loc']))}: {p['msg']}"
                    for p in e.errors(include_url=False, include_input=False, include_context=False)[:5]
                ]
                log.error(
                    "unreadable queued notification", notification_id=r["notification_id"], problems=problems
                )
                continue
            claimed.append(
                Claimed(notification, r["attempts"] + 1, r["correlation_id"], token, r["traceparent"])
            )
        return claimed

    async def _release(self, claims: Iterable[Claimed]) -> None:
        claims = list(claims)
        tokens, ids = {c.token for c in claims}, [c.notification.notification_id for c in claims]
        try:
            async with asyncio.timeout(5):
                await self._pool.execute(_RELEASE, list(tokens), ids)
        except Exception as e:  # shutting down: the leases then simply run out
            log.warning("could not give back delivery leases", error=repr(e))

    async def _deliver(self, claimed: Claimed, senders: dict[Channel, Send]) -> None:
        """One attempt, in the trace of the flow that requested the notification (when traces are on)."""
        with tracing.continuing(claimed.traceparent, f"deliver {claimed.notification.kind} notification"):
            await self._attempt(claimed, senders)

    async def _attempt(self, claimed: Claimed, senders: dict[Channel, Send]) -> None:
        notification = claimed.notification
        destination = destination_for(notification, self._settings.webhook_url(notification.shop_id))
        timeout = self._timeouts[destination.channel]
        error: str | None = None
        permanent = False
        try:
            async with asyncio.timeout(timeout):
                await senders[destination.channel](notification, destination.recipient)
        except DeliveryFailure as e:
            error, permanent = e.reason, e.permanent
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except Exception as e:  # an unforeseen failure is retried like any other
            log.exception("unexpected delivery error", notification_id=notification.notification_id)
            error = f"{type(e).__name__}: {e}"
        outcome = DeliveryAttempt(
            notification=notification,
            destination=destination,
            attempt=claimed.attempt,
            at=self._clock(),
            policy=self._settings.retry_policy,
            error=error,
            permanent=permanent,
        )
        log.info(
            "delivery attempted",
            notification_id=notification.notification_id,
            kind=notification.kind,
            channel=destination.channel,
            recipient_ref=destination.ref,
            attempt=claimed.attempt,
            error=None if error is None else scrub_error(error, notification, destination),
            permanent=permanent,
        )
        recorded = await self._record(outcome, claimed)
        if recorded:  # counted once, by the worker that recorded it
            given_up = any(e.event_type == "NotificationFailed" for e in recorded)
            verdict = "sent" if error is None else "given_up" if given_up else "failed"
            self._outcomes.labels(channel=destination.channel, outcome=verdict).inc()

    async def _record(self, outcome: DeliveryAttempt, claimed: Claimed) -> list[Envelope[Any]]:
        """Append the outcome to the delivery stream and update the row; the events appended. Waits for
        the database as long as it is away: the message went out (or not) and must not go again.

        Group commit: outcomes that finish while a recording transaction runs wait for it and are then
        recorded together, in one transaction, by whichever of them goes next. A lane's sends finish
        close together, and each transaction costs its statements and a WAL flush; one outcome alone is
        recorded at once, as before."""
        notification_id = outcome.notification.notification_id
        self.unrecorded.add(notification_id)
        recorded: asyncio.Future[list[Envelope[Any]]] = asyncio.get_running_loop().create_future()
        self._to_record.append(_Finished(outcome, claimed, recorded))
        try:
            async with self._recording:
                if not recorded.done():
                    group, self._to_record = self._to_record, []
                    try:
                        await self._record_group(group)
                    except asyncio.CancelledError:  # the others' outcomes go with the next group
                        self._to_record[:0] = [f for f in group if not f.recorded.done()]
                        raise
            return await recorded
        finally:
            self.unrecorded.discard(notification_id)
            self._report()

    async def _record_group(self, group: Sequence[_Finished]) -> None:
        """Record the group in one transaction, retried as _record says, and settle every future. A
        group that keeps failing for another reason than an outage is recorded one by one, so that one
        outcome the database refuses does not hold back the others."""
        work = [f.input for f in group]
        backoff = Backoff(first=0.1, cap=_RECORD_MAX_DELAY)
        conflicts = 0
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    decided = await decide_and_append(conn, self._repository, work, decide=decide_delivery)
                    # Recorded by another worker already: only our lease is left to give back.
                    appended = {d.stream_id: d for d in decided}
                    stale = [
                        f.claimed for f, i in zip(group, work, strict=True) if i.stream_id not in appended
                    ]
                    if stale:
                        await conn.execute(
                            _RELEASE,
                            [c.token for c in stale],
                            [c.notification.notification_id for c in stale],
                        )
                    await projections.apply(conn, decided)
                if backoff.attempt:
                    log.info("delivery outcomes recorded after all", count=len(group))
                for f, i in zip(group, work, strict=True):
                    d = appended.get(i.stream_id)
                    f.settle(list(d.events) if d else [])
                return
            except DATABASE_UNAVAILABLE as e:
                if not backoff.attempt:
                    log.warning(
                        "recording deliveries waits for the database", count=len(group), error=repr(e)
                    )
                self._report()
            except TRANSIENT_ERRORS as e:
                conflicts += 1
                log.warning("recording deliveries failed; retrying", error=repr(e), attempt=conflicts)
                if conflicts >= _RECORD_CONFLICTS:
                    if len(group) > 1:
                        break
                    log.error(
                        "delivery outcome not recorded; the message goes again once its lease runs out",
                        notification_id=group[0].outcome.notification.notification_id,
                    )
                    group[0].settle([])
                    return
            except Exception as e:  # a bug: raised to the send's task, as for an outcome recorded alone
                if len(group) > 1:
                    break
                group[0].settle(e)
                return
            await backoff.wait()
        for one in group:  # the group kept failing: one by one, so one outcome does not hold back the others
            await self._record_group([one])


# --- the grace-period announcements ------------------------------------------------------------------------

_MAX_ROUNDS = 20  # batches per pass; the next pass goes on
_BATCH = 200


async def announce_overdue(
    pool: asyncpg.Pool,
    repository: StreamRepository[OrderFacts],
    grace: timedelta,
    now: datetime,
    limit: int = _BATCH,
    order_api_url: str = "",
) -> tuple[int, int]:
    """One batch of orders whose grace period ran out: (orders looked at, notifications requested).

    No row locks here: the advisory locks of decide_and_append serialise writers of an order (taking a
    row lock first would invert the consumer's lock order), and the domain requests nothing twice.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT order_id, skus FROM backorder_announcement WHERE awaiting_eta_since <= $1"
            " ORDER BY awaiting_eta_since, order_id LIMIT $2",
            now - grace,
            limit,
        )
        work: Sequence[Input[Any]] = [
            Input(
                order_stream_id(r["order_id"]),
                AnnounceOverdueBackorders(order_id=r["order_id"], now=now, grace=grace),
                correlation_id=r["order_id"],
            )
            for r in rows
        ]
        offers = await projections.catalogue(conn, [s for r in rows for s in r["skus"]], order_api_url)

        def execute(state: OrderFacts, command: AnnounceOverdueBackorders) -> tuple[OrderFacts, list[Any]]:
            return execute_order(state, command, offers)

        decided = await decide_and_append(conn, repository, work, execute=execute) if work else []
        await projections.apply(conn, decided)
    return len(rows), sum(len(d.events) for d in decided)


async def announcement_pass(
    pool: asyncpg.Pool,
    store: EventStore,
    settings: NotifierSettings,
    *,
    clock: Clock = utc_now,
    health: HealthReport | None = None,
) -> None:
    """Every ANNOUNCEMENT_INTERVAL_SECONDS, until cancelled (backbone.jobs.run_rounds: a failed pass is
    reported in `health` and tried again at the next interval)."""
    repository = order_repository(store)
    grace = settings.backorder_eta_grace

    async def one_round() -> bool:
        for _ in range(_MAX_ROUNDS):
            seen, requested = await announce_overdue(
                pool, repository, grace, clock(), order_api_url=str(settings.order_api_url)
            )
            if requested:
                log.info("overdue backorders announced", orders=seen, notifications=requested)
            if seen < _BATCH or not requested:
                break
        return False

    await run_rounds(
        one_round,
        interval_seconds=settings.announcement_interval_seconds,
        health=health or component_health(),
        what="announcement pass",
    )
