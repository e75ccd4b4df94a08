"""The supplier EDI adapter in the fleet: a PO procurement issues reaches the supplier's outbox as an
850; the supplier's 856 dropped in the inbox moves the ETAs of exactly the lines that PO serves (and
mails those customers, no one else); its 861 receipt fills the queue."""

import json
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from backbone.testing.edi_documents import x12_856, x12_861
from backbone.testing.fixtures import unique_name
from backbone.testing.fleet import SERVICE_NAMES, Fleet, running_fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.outsiders import Outsiders
from backbone.testing.servers import Servers, state_dir
from backbone.testing.waiting import eventually

pytestmark = pytest.mark.e2e

ACME = {"supplier_id": "acme", "lead_time_days": 10, "unit_cost": "40.00", "role": "primary"}
PARTNERS = [{"supplier_id": "acme", "standard": "x12", "their_id": "ACMESUPPLY", "our_id": "BACKORDER"}]
ENVELOPE = {"sender": "ACMESUPPLY", "receiver": "BACKORDER"}


@pytest.fixture(scope="module")
def folders() -> Path:
    return state_dir() / "test-edi" / unique_name("edi")


@pytest.fixture(scope="module")
async def fleet(servers: Servers, mail: MailSink, folders: Path) -> AsyncIterator[Fleet]:
    run = unique_name("edi")
    service_env = {
        "notifier": {"SMTP_HOST": mail.host, "SMTP_PORT": str(mail.port), "SMTP_SENDER": "shop@shop.example"},
        "edi": {
            "EDI_PARTNERS": json.dumps(PARTNERS),
            "EDI_INBOX_DIR": str(folders / "inbox"),
            "EDI_OUTBOX_DIR": str(folders / "outbox"),
            "EDI_POLL_INTERVAL_SECONDS": "0.2",
        },
    }
    async with running_fleet(
        servers, run, state_dir() / "test-logs" / run, service_env=service_env, names=(*SERVICE_NAMES, "edi")
    ) as f:
        yield f


async def _enough(found: Awaitable[list[Path]], count: int) -> list[Path]:
    paths = await found
    return paths if len(paths) >= count else []


def line_eta(view: dict) -> str | None:
    return view["lines"][0]["eta"]


async def files_named(folder: Path, part: str) -> list[Path]:
    # A probe for `eventually`, so async; listing a folder of a few files does not stall the test's loop.
    return sorted(p for p in folder.glob("*.edi") if part in p.name) if folder.exists() else []  # noqa: ASYNC240


async def test_an_asn_moves_exactly_its_lines_etas_and_a_receipt_fills_them(
    shop: Outsiders, folders: Path
) -> None:
    jacket, boot, run = unique_name("JACKET"), unique_name("BOOT"), unique_name("edi")
    ann, bob, cy = f"{run}-ann", f"{run}-bob", f"{run}-cy"
    await shop.set_suppliers(jacket, ACME)
    await shop.set_suppliers(boot, ACME)
    await shop.place_order(ann, [(jacket, 3)], customer=ann)
    await shop.place_order(bob, [(jacket, 2)], customer=bob)
    await shop.place_order(cy, [(boot, 4)], customer=cy)
    views = {c: await shop.order_when(c, "an ETA", lambda v: line_eta(v) is not None) for c in (ann, bob, cy)}
    [jacket_po] = await shop.purchase_orders(jacket)
    [boot_po] = await shop.purchase_orders(boot)
    for customer in (ann, bob, cy):
        await shop.emails_to(customer, 1)

    # The POs reached the supplier as 850s: the original, then a replacement per revision (the jacket PO
    # grew when the second order joined the queue, as long as acme had not confirmed it).
    outbox = folders / "outbox" / "acme"
    for po in (jacket_po, boot_po):
        sent = await eventually(
            lambda po=po: _enough(files_named(outbox, f"850-{po['po_id']}-r"), po["revision"]), what="850s"
        )
        # The PO numbers are too long for X12 (22 characters): acme knows them by a short reference.
        reference = (await shop.call("edi", "GET", f"/purchase-orders/{po['po_id']}"))["reference"]
        first, *replacements = [p.read_text() for p in sent]
        assert f"BEG*00*SA*{reference}" in first and f"BP*{po['sku']}" in first
        assert all(f"BEG*05*SA*{reference}" in text for text in replacements)
        po["reference"] = reference

    # The supplier ships the jackets four days later than procurement expected.
    later = date.fromisoformat(jacket_po["expected_arrival"]) + timedelta(days=4)
    inbox = folders / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    at = datetime.now(UTC)
    notice = x12_856(
        "ASN-1",
        later,
        [(jacket_po["reference"], jacket, jacket_po["quantity"])],
        control=1,
        at=at,
        **ENVELOPE,
    )
    (inbox / f"{run}-856.edi").write_text(notice)
    for customer in (ann, bob):
        await shop.order_when(customer, "the later ETA", lambda v: line_eta(v) == later.isoformat())
        await shop.emails_to(customer, 2)
    assert (await shop.call("order", "GET", f"/orders/{cy}"))["lines"][0]["eta"] == line_eta(views[cy])
    assert len(shop.mail.to(f"{cy}@example.com")) == 1  # the boots' customer heard nothing new
    assert await files_named(outbox, "997-")  # the 856 was acknowledged

    # The goods arrive: the 861 fills both jacket lines; the boots still wait.
    receipt = x12_861(
        "RCV-1", at, [(jacket_po["reference"], jacket, jacket_po["quantity"])], control=2, at=at, **ENVELOPE
    )
    (inbox / f"{run}-861.edi").write_text(receipt)
    for customer in (ann, bob):
        await shop.order_status(customer, "ready_to_ship")
    assert (await shop.call("order", "GET", f"/orders/{cy}"))["status"] == "backordered"
    assert len(list((inbox / "processed").glob(f"*{run}-*"))) == 2
