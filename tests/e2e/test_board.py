"""The operations board in a real headless Chromium (Debian's chromium and chromedriver, driven by
selenium): the console process in front of a fleet of the four services, with backorders placed through
Kafka and HTTP, a dead letter and notifications that fail.

The module's fleet is its own: its notifier's mail relay is a closed port and it gives up after one
attempt, so every message fails (the board lists them). A screenshot of the board is kept as
<pytest tmp>/board.png and copied to <state folder>/board.png.
"""

import asyncio
import base64
import contextlib
import os
import shutil
import struct
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.remote.webdriver import WebDriver

from backbone.auth import Role
from backbone.contracts import Topic
from backbone.testing.fleet import Fleet, ServiceProcess
from backbone.testing.mailsink import MailSink
from backbone.testing.outsiders import Outsiders
from backbone.testing.servers import Servers, state_dir
from backbone.testing.service import bearer, free_port
from backbone.testing.waiting import eventually
from tests.e2e.fleets import e2e_fleet

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PARKA, BEANIE, MITTENS = "PARKA-RED-M", "BEANIE-GREY", "MITTENS-WOOL"
DEADLINE = 90.0


def today() -> date:
    return datetime.now(UTC).date()  # the services' days are UTC days


@pytest.fixture(scope="module")
async def fleet(servers: Servers, mail: MailSink) -> AsyncIterator[Fleet]:
    # Nothing listens on the relay's port: every delivery fails, and is given up after the first attempt.
    async with e2e_fleet(servers, mail, "board", SMTP_PORT=str(free_port()), RETRY_MAX_ATTEMPTS="1") as f:
        yield f


@pytest.fixture(scope="module")
async def console(fleet: Fleet) -> AsyncIterator[ServiceProcess]:
    """`python -m services.console` against the fleet, as `make run` starts it."""
    log = state_dir() / "test-logs" / fleet.topic_prefix.rstrip(".") / "console.log"
    env = {
        **os.environ,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        **{f"CONSOLE_{name.upper()}_URL": fleet.url(name) for name in fleet.services},
        "KAFKA_BOOTSTRAP_SERVERS": fleet.kafka_bootstrap,
        "TOPIC_PREFIX": fleet.topic_prefix,
        "AUTH_TOKEN_SECRET": fleet.auth_token_secret,
        "CONSOLE_REFRESH_SECONDS": "1",
        "CONSOLE_CACHE_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    process = ServiceProcess("console", env, log)
    await process.start()
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            await eventually(lambda: process.healthy(http), timeout=30, what="the console to answer /health")
        yield process
    finally:
        await process.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(
            f"the board's browser test needs Debian's Chromium: {', '.join(missing)} missing "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1680,1200",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's errors, for the tests
    # An explicit driver path: selenium-manager is never asked to find (or download) anything.
    driver = webdriver.Chrome(service=ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def in_browser(driver: WebDriver, script: str, *args: Any) -> Any:
    """Run `script` in the page (off the event loop: selenium blocks)."""
    return await asyncio.to_thread(driver.execute_script, script, *args)


async def open_board(driver: WebDriver, url: str) -> None:
    await asyncio.to_thread(driver.get, "about:blank")
    await asyncio.to_thread(driver.get, url)


# What the page shows, read in one go: the texts and data-* attributes the board renders.
_READ_BOARD = """
const text = (el) => (el ? el.textContent.trim() : null);
const cells = (tr) => Object.fromEntries([...tr.querySelectorAll('[data-col]')].map(
  (td) => [td.dataset.col, td.dataset.eta || td.dataset.value || text(td)]));
const rows = (sel, key) => [...document.querySelectorAll(sel + ' tbody tr')].map(
  (tr) => ({ key: tr.dataset[key], ...cells(tr) }));
const dots = [...document.querySelectorAll('#rates-chart circle.dot')].map((c) => ({
  series: c.dataset.series, start: c.dataset.start, value: Number(c.dataset.value) }));
const bars = Object.fromEntries([...document.querySelectorAll('#ageing-chart rect.bar')].map(
  (r) => [r.dataset.bucket, [Number(r.dataset.lines), Number(r.dataset.units)]]));
const kpi = (id) => text(document.querySelector('#' + id + ' .value'));
return {
  tokenNeeded: !document.getElementById('token-needed').hidden,
  boardShown: !document.getElementById('board').hidden,
  banner: document.getElementById('banner').hidden ? null : text(document.getElementById('banner')),
  lastUpdate: text(document.getElementById('last-update')),
  sources: Object.fromEntries([...document.querySelectorAll('#sources li')].map(
    (li) => [li.dataset.source, li.classList.contains('ok')])),
  skus: rows('#sku-table', 'sku'),
  selected: text(document.getElementById('detail-sku')),
  queue: rows('#queue-table', 'order'),
  pos: rows('#po-table', 'po'),
  dots,
  bars,
  dlq: Object.fromEntries(rows('#dlq-table', 'topic').map((r) => [r.key, r.messages])),
  failures: rows('#failures-table', 'notification'),
  failureCount: text(document.getElementById('failures-count')),
  stale: [...document.querySelectorAll('.stale')].map((p) => p.id),
  kpis: {
    waitingUnits: kpi('kpi-waiting-units'), waitingLines: kpi('kpi-waiting-lines'),
    backorderRate: kpi('kpi-backorder-rate'), fillRate: kpi('kpi-fill-rate'),
    failures: kpi('kpi-failures'), deadLetters: kpi('kpi-dead-letters'), unsourced: kpi('kpi-unsourced'),
  },
};
"""


async def board_when(driver: WebDriver, what: str, check: Any, timeout: float = DEADLINE) -> dict[str, Any]:
    """The page's figures once `check(figures)` holds (it may raise AssertionError meanwhile)."""
    last: list[Any] = [None]

    async def probe() -> dict[str, Any] | None:
        shown = last[0] = await in_browser(driver, _READ_BOARD)
        try:
            return shown if check(shown) else None
        except (AssertionError, KeyError, TypeError, IndexError):
            return None

    try:
        found = await eventually(probe, timeout=timeout, interval=0.5, what=f"the board to show {what}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nthe board showed: {last[0]}") from None
    assert found is not None
    return found


async def assert_no_script_errors(driver: WebDriver) -> None:
    entries = await asyncio.to_thread(driver.get_log, "browser")
    errors = [e for e in entries if e.get("source") == "javascript" and e.get("level") == "SEVERE"]
    assert errors == [], f"the page's script failed: {errors}"


def check_png(path: Path, min_width: int, min_height: int) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width >= min_width and height >= min_height, (width, height)
    # A blank or nearly blank page compresses to a few kilobytes; the board has text, tables and charts.
    assert len(data) > 60_000, f"{path} has only {len(data)} bytes: is the page empty?"
    return width, height


async def screenshot(driver: WebDriver, path: Path) -> Path:
    """The whole page at the window's width, saved to `path` and copied to the state folder."""
    size = await in_browser(
        driver, "return [document.documentElement.clientWidth, document.documentElement.scrollHeight];"
    )
    shot = await asyncio.to_thread(
        driver.execute_cdp_cmd,
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        },
    )
    kept = state_dir() / path.name

    def save() -> None:
        path.write_bytes(base64.b64decode(shot["data"]))
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, kept)

    await asyncio.to_thread(save)
    return kept


async def test_without_a_token_the_page_asks_for_one_and_the_api_refuses(
    browser: WebDriver, fleet: Fleet, console: ServiceProcess
) -> None:
    async with httpx.AsyncClient(base_url=console.url, timeout=10.0) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "operations board" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        refused = await http.get("/api/board")
        assert refused.status_code == 401
        assert refused.json() == {"detail": "this needs a bearer token"}
        forged = await http.get("/api/board", headers=bearer("not.a.token"))
        assert forged.status_code == 401 and "well-formed" in forged.json()["detail"]
        # Staff, support and readers may look; a checkout system's token (maybe one shop's) may not.
        assert (await http.get("/api/board", headers=bearer(fleet.token(Role.READER)))).status_code == 200
        assert (await http.get("/api/board", headers=bearer(fleet.token(Role.CHECKOUT)))).status_code == 403
        scraped = (await http.get("/metrics")).text
        assert all(
            f'backorder_console_source_up{{source="{name}"}} 1.0' in scraped for name in fleet.services
        )
        assert (await http.get("/health/ready")).status_code == 200

    await open_board(browser, f"{console.url}/")
    await in_browser(browser, "sessionStorage.clear();")
    await open_board(browser, f"{console.url}/")
    shown = await board_when(browser, "the token-needed message", lambda s: s["tokenNeeded"])
    assert not shown["boardShown"]
    assert "Token needed" in await in_browser(
        browser, "return document.getElementById('token-needed').innerText;"
    )

    # A token the console does not accept: the page says why, and still asks for one.
    await open_board(browser, f"{console.url}/#token=not.a.token")
    await board_when(browser, "the refusal", lambda s: s["tokenNeeded"])
    reason = await in_browser(browser, "return document.getElementById('token-reason').textContent;")
    assert "refused the token" in reason and "well-formed" in reason
    assert await in_browser(browser, "return window.location.hash;") == ""  # not left in the address bar
    await assert_no_script_errors(browser)


async def test_the_board_shows_queues_rates_ageing_failures_and_dead_letters(
    browser: WebDriver,
    fleet: Fleet,
    shop: Outsiders,
    producer: AIOKafkaProducer,
    console: ServiceProcess,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    await shop.stock_up(PARKA, 10)
    await shop.set_suppliers(
        PARKA, {"supplier_id": "nordwear", "lead_time_days": 7, "unit_cost": "40.00", "role": "primary"}
    )
    await shop.set_suppliers(
        BEANIE, {"supplier_id": "knitco", "lead_time_days": 5, "unit_cost": "8.00", "role": "primary"}
    )
    await shop.set_policy(MITTENS, "allow")  # known and backordered, but no supplier: waits without a date

    # The first order takes 8 of the 10 parkas before the others arrive (they go to other partitions).
    await shop.place_order("SO-1001", [(PARKA, 8)], placed_at=now - timedelta(days=2))
    await shop.order_status("SO-1001", "ready_to_ship")
    placed = {
        "SO-1002": (PARKA, 5, now - timedelta(hours=20)),  # 2 reserved, 3 waiting
        "SO-1003": (PARKA, 4, now - timedelta(hours=3)),
        "SO-1004": (PARKA, 6, now),
        "SO-1005": (BEANIE, 2, now - timedelta(days=10)),
        "SO-1006": (BEANIE, 3, now - timedelta(minutes=20)),
        "SO-1007": (MITTENS, 1, now - timedelta(days=5)),
    }
    # SO-1002 takes the last 2 parkas: decided before the others are sent, since orders on other
    # partitions that arrive together are decided in no particular order.
    for order_id, (sku, quantity, at) in placed.items():
        await shop.place_order(order_id, [(sku, quantity)], placed_at=at)
        if order_id == "SO-1002":
            await shop.order_when(order_id, "decided", lambda v: v["status"] != "accepted")
    for order_id in placed:
        await shop.order_when(order_id, "decided", lambda v: v["status"] != "accepted")
    # A message no service can read, on a topic three of them consume: each dead-letters it.
    await producer.send_and_wait(fleet.topic(Topic.FULFILMENT), b"{not json", key=b"SO-1001")

    # What procurement promised, as its own API says: the board must show the same.
    async def parka_planned() -> dict[str, Any] | None:
        view = await shop.get_or_none("procurement", f"/skus/{PARKA}")
        lines = view["backorders"] if view else []
        return view if len(lines) == 3 and all(x["eta"] for x in lines) else None

    parka = await eventually(parka_planned, timeout=DEADLINE, what="ETAs for the parka's waiting lines")
    [parka_po] = parka["open_purchase_orders"]
    parka_eta = parka["backorders"][0]["eta"]
    assert parka_eta == (today() + timedelta(days=7)).isoformat() == parka_po["expected_arrival"]

    async def all_failed() -> list[dict[str, Any]] | None:
        failed = await shop.call("notifier", "GET", "/notifications", params={"status": "failed"})
        return failed if {n["order_id"] for n in failed} >= set(placed) - {"SO-1007"} else None

    failed = await eventually(all_failed, timeout=DEADLINE, what="the notifier to give up on the messages")

    await open_board(browser, f"{console.url}/#token={fleet.token(Role.READER, subject='board-test')}")

    def figures_shown(s: dict[str, Any]) -> bool:
        rows = {r["key"]: r for r in s["skus"]}
        assert [r["key"] for r in s["skus"]] == [PARKA, BEANIE, MITTENS]
        assert (rows[PARKA]["waiting_units"], rows[PARKA]["waiting_lines"]) == ("13", "3")
        assert (rows[BEANIE]["waiting_units"], rows[BEANIE]["waiting_lines"]) == ("5", "2")
        assert (rows[MITTENS]["waiting_units"], rows[MITTENS]["waiting_lines"]) == ("1", "1")
        assert rows[PARKA]["available"] == "0"
        assert rows[PARKA]["open_purchase_orders"] == "1" and rows[PARKA]["eta"] == parka_eta
        assert rows[PARKA]["on_order"] == str(parka["on_order"])
        assert rows[MITTENS]["eta"] == "no supplier"
        assert s["selected"] == PARKA
        assert [(q["key"], q["position"], q["quantity"], q["eta"]) for q in s["queue"]] == [
            ("SO-1002", "1", "3", parka_eta),
            ("SO-1003", "2", "4", parka_eta),
            ("SO-1004", "3", "6", parka_eta),
        ]
        assert [p["key"] for p in s["pos"]] == [parka_po["po_id"]]
        assert s["dlq"][fleet.topic(Topic.FULFILMENT)] == "3"
        assert {k: v for k, v in s["dlq"].items() if k != fleet.topic(Topic.FULFILMENT)} == dict.fromkeys(
            [fleet.topic(t) for t in Topic if t != Topic.FULFILMENT], "0"
        )
        return all(s["sources"].values()) and s["banner"] is None

    shown = await board_when(browser, "the SKUs, queues and dead letters", figures_shown)

    # Rates of the last 24 hours: SO-1002, -1003, -1004 and -1006 (18 units ordered, 2 reserved).
    assert shown["kpis"]["backorderRate"] == "88.9%" and shown["kpis"]["fillRate"] == "11.1%"
    hour = lambda at: at.replace(minute=0, second=0, microsecond=0)  # noqa: E731
    backorder_rate = {
        datetime.fromisoformat(d["start"]): d["value"] for d in shown["dots"] if d["series"] == "backorder"
    }
    assert backorder_rate[hour(placed["SO-1002"][2])] == 60.0  # 3 of 5 units
    assert backorder_rate[hour(placed["SO-1003"][2])] == 100.0
    assert all(at > now - timedelta(hours=24) for at in backorder_rate)
    # Ageing: how long each waiting line has waited since its order was placed.
    assert shown["bars"] == {
        "<1h": [2, 9],
        "1-6h": [1, 4],
        "6-24h": [1, 3],
        "1-3d": [0, 0],
        "3-7d": [1, 1],
        "7-14d": [1, 2],
        "14-30d": [0, 0],
        ">=30d": [0, 0],
    }
    assert (shown["kpis"]["waitingUnits"], shown["kpis"]["waitingLines"]) == ("19", "6")
    assert (shown["kpis"]["deadLetters"], shown["kpis"]["unsourced"]) == ("3", "1")

    # The notifier's failures: each listed once, with its order and the reason.
    shown = await board_when(
        browser, "the notifier's failures", lambda s: int(s["kpis"]["failures"]) >= len(failed)
    )
    listed = {f["key"]: f for f in shown["failures"]}
    assert len(listed) == min(int(shown["kpis"]["failures"]), 8)
    known = {n["notification_id"]: n for n in await all_failed() or []}
    for notification_id, row in listed.items():
        assert row["order"] == known[notification_id]["order_id"]
        assert row["error"] not in ("", "\u2013")  # an en dash: none given
    assert shown["lastUpdate"].startswith("updated ")

    # Another SKU, chosen by a click: its queue and its own rates.
    await in_browser(browser, f"document.querySelector('#sku-table tr[data-sku=\"{BEANIE}\"]').click();")
    shown = await board_when(
        browser,
        "the beanie's queue",
        lambda s: s["selected"] == BEANIE and [q["key"] for q in s["queue"]] == ["SO-1005", "SO-1006"],
    )
    assert all(q["eta"] == (today() + timedelta(days=5)).isoformat() for q in shown["queue"])

    await in_browser(browser, f"document.querySelector('#sku-table tr[data-sku=\"{PARKA}\"]').click();")
    await board_when(browser, "the parka again", lambda s: s["selected"] == PARKA and len(s["queue"]) == 3)
    kept = await screenshot(browser, tmp_path / "board.png")
    width, height = check_png(tmp_path / "board.png", 1600, 900)
    print(f"board screenshot ({width}x{height}): {tmp_path / 'board.png'}, copied to {kept}")

    # A source going down does not break the page: the banner names it, its figures stay, marked stale.
    await fleet.services["procurement"].stop()
    try:
        shown = await board_when(
            browser,
            "procurement down",
            lambda s: s["sources"]["procurement"] is False and "procurement" in (s["banner"] or ""),
        )
        assert [r["key"] for r in shown["skus"]] == [PARKA, BEANIE, MITTENS]  # inventory still answers
        assert {r["key"]: r["waiting_units"] for r in shown["skus"]}[PARKA] == "13"
        assert "po-block" in shown["stale"] and "queue-block" not in shown["stale"]
        assert [p["key"] for p in shown["pos"]] == [parka_po["po_id"]]  # the last ones known
        # The queue's ETAs as the order service heard them; the rows keep procurement's last figures.
        assert [q["eta"] for q in shown["queue"]] == [parka_eta] * 3
        assert {r["key"]: r["eta"] for r in shown["skus"]}[PARKA] == parka_eta
        assert shown["dlq"][fleet.topic(Topic.FULFILMENT)] == "3"
        await screenshot(browser, tmp_path / "board-degraded.png")
    finally:
        with contextlib.suppress(Exception):
            await fleet.services["procurement"].start()
    await fleet.wait_healthy(["procurement"])
    await board_when(
        browser, "every source back", lambda s: all(s["sources"].values()) and s["banner"] is None
    )
