"""The console's HTTP app: the board's page at `/` (open: it holds no data), its figures at `/api/board`
(a staff, support or reader bearer token), `/health`, `/health/live`, `/health/ready` and `/metrics`.

The page reads its token from the URL fragment (`/#token=...`, never sent to a server) into the tab's
sessionStorage and sends it as `Authorization: Bearer` on every /api call; without one it says what it
needs. Many open pages share one gathering per query within CONSOLE_CACHE_SECONDS.
"""

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated

import httpx
import jinja2
import structlog
from fastapi import FastAPI, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest

from backbone import auth
from backbone.kafka import client_options
from services.console import board
from services.console.deadletters import DeadLetterCounter
from services.console.gather import MAX_TOP, Gatherer
from services.console.gather import Query as BoardQuery
from services.console.settings import ConsoleSettings
from services.console.sources import ReaderToken, Sources

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
_MAX_CACHED = 64
_SKU_PATTERN = r"^\S(?:.*\S)?$"
# The page loads nothing from elsewhere and runs only our own script.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

# Every shop's queues and failures: not for a checkout token (which may be bound to one shop).
Viewer = auth.ReadsViews


class SharedRounds:
    """One gathering per query at a time, reused for `ttl` seconds after it started."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._rounds: dict[BoardQuery, tuple[float, asyncio.Task[board.Board]]] = {}

    async def get(
        self, query: BoardQuery, gather: Callable[[BoardQuery], Awaitable[board.Board]]
    ) -> board.Board:
        now = time.monotonic()
        found = self._rounds.get(query)
        if found is None or (found[1].done() and now - found[0] >= self._ttl):
            for stale in [q for q, (at, t) in self._rounds.items() if t.done() and now - at >= self._ttl]:
                del self._rounds[stale]
            if len(self._rounds) >= _MAX_CACHED:  # many distinct queries at once: no sharing for this one
                return await gather(query)
            task = asyncio.ensure_future(gather(query))
            # Retrieved even when every page waiting for it went away (no "never retrieved" warning).
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            found = (now, task)
            self._rounds[query] = found
        try:
            # Shielded: a page that goes away does not cancel the round the others wait for.
            return await asyncio.shield(found[1])
        except Exception:
            if self._rounds.get(query) is found:
                del self._rounds[query]  # a failed round is not reused
            raise


def _static_version() -> str:
    """Changes with the static files, so a browser never mixes an old script with a new page."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


class _SourceLog:
    """Logs each source going down and coming back, once per change (not once per round), and keeps the
    console's gauges (GET /metrics)."""

    def __init__(self) -> None:
        self._down: dict[str, str] = {}
        self.registry = CollectorRegistry()
        self._up = Gauge(
            "backorder_console_source_up",
            "1 if the source answered the console's last round, else 0",
            ["source"],
            registry=self.registry,
        )
        self._rounds = Histogram(
            "backorder_console_round_seconds",
            "Time to gather the board from every source",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )

    def timed(self, seconds: float) -> None:
        self._rounds.observe(seconds)

    def note(self, states: dict[str, board.SourceState]) -> None:
        for name, state in states.items():
            self._up.labels(source=name).set(1 if state.ok else 0)
            if not state.ok and name not in self._down:
                log.warning("source down", source=name, detail=state.detail)
                self._down[name] = state.detail or ""
            elif state.ok and name in self._down:
                log.info("source back", source=name)
                del self._down[name]


def create_app(settings: ConsoleSettings) -> FastAPI:
    assert settings.auth_token_secret is not None  # ConsoleSettings requires it
    token = ReaderToken(
        settings.auth_token_secret.get_secret_value(),
        settings.console_token_ttl_seconds,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
    )
    shared = SharedRounds(settings.console_cache_seconds)
    sources_log = _SourceLog()
    page = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    ).get_template("index.html")
    version = _static_version()
    state: dict[str, Gatherer] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.console_source_timeout_seconds
        dead_letters = DeadLetterCounter(
            settings.kafka_bootstrap_servers, settings.topic_prefix, client_options(settings)
        )
        async with httpx.AsyncClient(timeout=timeout) as http:
            state["gatherer"] = Gatherer(
                Sources(http, settings.service_urls(), token),
                dead_letters,
                topic_prefix=settings.topic_prefix,
                timeout=timeout,
                refresh_seconds=settings.console_refresh_seconds,
            )
            try:
                yield
            finally:
                await dead_letters.close()

    app = FastAPI(title="backorder console", version="1.0.0", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        html = page.render(version=version, refresh_seconds=settings.console_refresh_seconds, max_top=MAX_TOP)
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """200 while the console answers; the services' own state shows on the board."""
        return {"status": "ok", "service": "console"}

    @app.get("/health/live", tags=["operations"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        """200 once the console can gather (a service being down shows on the board, not here)."""
        ok = "gatherer" in state
        return JSONResponse({"status": "ok" if ok else "starting"}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text: which sources answered the last round, how long rounds take."""
        return PlainTextResponse(generate_latest(sources_log.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/board", response_model=board.Board, tags=["board"])
    async def get_board(
        viewer: Viewer,
        response: Response,
        top: Annotated[int, Query(ge=1, le=MAX_TOP, description="SKUs with the most units waiting")] = 10,
        sku: Annotated[
            str | None,
            Query(min_length=1, max_length=128, pattern=_SKU_PATTERN, description="default: the first"),
        ] = None,
        bucket: Annotated[board.RateBucket, Query(description="hour: the last 24 h; day: 30 days")] = "hour",
    ) -> board.Board:
        """Everything the board shows, gathered from the services and Kafka now (each section null when
        its source did not answer; `sources` says why)."""
        response.headers["Cache-Control"] = "no-store"
        result = await shared.get(BoardQuery(top=top, sku=sku, bucket=bucket), timed_gather)
        sources_log.note(result.sources)
        return result

    async def timed_gather(query: BoardQuery) -> board.Board:
        started = time.monotonic()
        try:
            return await state["gatherer"].gather(query)
        finally:
            sources_log.timed(time.monotonic() - started)

    auth.install(app, settings)
    return app
