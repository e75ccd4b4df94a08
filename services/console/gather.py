"""One round of the board: every figure asked of its source at once, each failure kept to its source.

Work per round is bounded by the board's own limits, not by the data: the top SKUs (at most MAX_TOP),
one queue page of the selected SKU, one page each of failed notifications and unsourced SKUs, one
metadata and two offset requests to Kafka; the services answer each from queries of their own tables.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from aiokafka.errors import KafkaError
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.console import board
from services.console.deadletters import DeadLetterCounter
from services.console.sources import SERVICES, SourceDown, Sources

MAX_TOP = 50
QUEUE_PAGE = 25
FAILURES_LIMIT = 200
FAILURES_SHOWN = 8
UNSOURCED_LIMIT = 100
KAFKA = "kafka"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A service's answer about one SKU; `view` None: it knows nothing of the SKU (404)."""

    view: T | None


@dataclass(frozen=True)
class Query:
    top: int = 10
    sku: str | None = None
    bucket: board.RateBucket = "hour"


@dataclass
class _Round:
    """The sources' states of one round: a source is down if any of its calls failed."""

    down: dict[str, str] = field(default_factory=dict)

    async def attempt(self, source: str, call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await call()
        except SourceDown as e:
            self.down.setdefault(source, e.reason)
        except (KafkaError, OSError, TimeoutError) as e:
            self.down.setdefault(source, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        except ValidationError as e:
            self.down.setdefault(source, f"answered in an unexpected shape ({e.error_count()} errors)")
        return None

    def states(self) -> dict[str, board.SourceState]:
        return {
            name: board.SourceState(ok=name not in self.down, detail=self.down.get(name))
            for name in (*SERVICES, KAFKA)
        }


class Gatherer:
    def __init__(
        self,
        sources: Sources,
        dead_letters: DeadLetterCounter,
        *,
        topic_prefix: str,
        timeout: float,
        refresh_seconds: float,
    ) -> None:
        self._sources = sources
        self._topic_prefix = topic_prefix
        self._dead_letters = dead_letters
        self._timeout = timeout
        self._refresh = refresh_seconds

    async def _get(self, model: type[M], source: str, path: str, **params: Any) -> M:
        return model.model_validate(await self._sources.get(source, path, params or None))

    async def _list(self, model: type[M], source: str, path: str, **params: Any) -> list[M]:
        return TypeAdapter(list[model]).validate_python(await self._sources.get(source, path, params))

    async def _procurement_sku(self, sku: str, lines: int) -> Answer[board.ProcurementSku]:
        found = await self._sources.get(
            "procurement", f"/skus/{quote(sku, safe='')}", {"lines_limit": lines}, missing_ok=True
        )
        return Answer(None if found is None else board.ProcurementSku.model_validate(found))

    async def _stock(self, sku: str) -> Answer[board.Stock]:
        found = await self._sources.get(
            "inventory", f"/stock/{quote(sku, safe='')}", {"queue_limit": QUEUE_PAGE}, missing_ok=True
        )
        return Answer(None if found is None else board.Stock.model_validate(found))

    async def _dead_letter_counts(self) -> list[board.DeadLetters]:
        return await self._dead_letters.counts(self._timeout)

    async def gather(self, query: Query) -> board.Board:
        run = _Round()
        buckets = board.BUCKETS[query.bucket]
        rate_params = {"bucket": query.bucket, "buckets": buckets}
        waiting, rates, ageing, failed, dead, unsourced = await asyncio.gather(
            run.attempt(
                "inventory",
                lambda: self._list(board.WaitingSku, "inventory", "/reports/waiting", limit=query.top),
            ),
            run.attempt("order", lambda: self._get(board.Rates, "order", "/reports/rates", **rate_params)),
            run.attempt("order", lambda: self._get(board.Ageing, "order", "/reports/ageing")),
            run.attempt(
                "notifier",
                lambda: self._list(
                    board.Failure,
                    "notifier",
                    "/notifications",
                    status="failed",
                    newest_first="true",
                    limit=FAILURES_LIMIT,
                ),
            ),
            run.attempt(KAFKA, self._dead_letter_counts),
            run.attempt(
                "procurement",
                lambda: self._list(
                    board.UnsourcedSku, "procurement", "/reports/unsourced", limit=UNSOURCED_LIMIT
                ),
            ),
        )
        selected = query.sku or (waiting[0].sku if waiting else None)
        rows, detail = await asyncio.gather(
            self._rows(run, waiting), self._detail(run, selected, rate_params)
        )
        found_failures = (
            board.failures(failed, FAILURES_LIMIT, FAILURES_SHOWN) if failed is not None else None
        )
        return board.Board(
            generated_at=datetime.now(UTC),
            refresh_seconds=self._refresh,
            topic_prefix=self._topic_prefix,
            top=query.top,
            bucket=query.bucket,
            sources=run.states(),
            skus=rows,
            selected=detail,
            rates=rates,
            ageing=ageing,
            failures=found_failures,
            dead_letters=dead,
            unsourced=unsourced,
            totals=board.totals(rates, ageing, found_failures, dead, unsourced),
        )

    async def _rows(
        self, run: _Round, waiting: Sequence[board.WaitingSku] | None
    ) -> list[board.SkuRow] | None:
        if waiting is None:
            return None
        answers = await asyncio.gather(
            *(run.attempt("procurement", lambda sku=w.sku: self._procurement_sku(sku, 1)) for w in waiting)
        )
        if any(a is None for a in answers):  # procurement down: the rows go without its figures
            return board.sku_rows(waiting, None)
        return board.sku_rows(waiting, {w.sku: a.view for w, a in zip(waiting, answers, strict=True)})

    async def _detail(
        self, run: _Round, sku: str | None, rate_params: dict[str, Any]
    ) -> board.SkuDetail | None:
        if sku is None:
            return None
        stock, procurement, backorders, rates, ageing = await asyncio.gather(
            run.attempt("inventory", lambda: self._stock(sku)),
            run.attempt("procurement", lambda: self._procurement_sku(sku, QUEUE_PAGE)),
            run.attempt(
                "order",
                lambda: self._list(board.Backorder, "order", "/backorders", sku=sku, limit=4 * QUEUE_PAGE),
            ),
            run.attempt(
                "order", lambda: self._get(board.Rates, "order", "/reports/rates", sku=sku, **rate_params)
            ),
            run.attempt("order", lambda: self._get(board.Ageing, "order", "/reports/ageing", sku=sku)),
        )
        return board.sku_detail(
            sku,
            stock.view if stock else None,
            procurement.view if procurement else None,
            backorders,
            rates,
            ageing,
            procurement_answered=procurement is not None,
        )
