"""The EDI adapter against the real servers: procurement's POs become 850/ORDERS files, interchanges from
the inbox folder or HTTP become contract events on the supplier topic, each applied once and whole."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from backbone.auth import Role
from backbone.contracts import REGISTRY, Topic, new_envelope
from backbone.contracts.events import PurchaseOrderCancelled, PurchaseOrderIssued
from backbone.eventstore import EventStore
from backbone.testing.edi_documents import edifact_desadv, x12_855, x12_856, x12_861
from backbone.testing.fixtures import publish, read_topic
from backbone.testing.service import bearer, service_settings, serving, token_for
from backbone.testing.waiting import eventually
from services.edi import projections, x12
from services.edi.app import REGISTRY as EDI_REGISTRY
from services.edi.app import build_service
from services.edi.settings import EdiSettings

pytestmark = pytest.mark.integration

AT = datetime(2030, 1, 7, 9, 30, tzinfo=UTC)
ACME = {"sender": "ACMESUPPLY", "receiver": "BACKORDER", "at": AT}
GLOBEX = {"sender": "GLOBEX", "receiver": "BACKORDER", "at": AT}
PARTNERS = [
    {"supplier_id": "acme", "standard": "x12", "their_id": "ACMESUPPLY", "our_id": "BACKORDER"},
    {"supplier_id": "globex", "standard": "edifact", "their_id": "GLOBEX", "our_id": "BACKORDER"},
]


def issued(po_id: str, sku: str, supplier_id: str = "acme", revision: int = 1, quantity: int = 40) -> Any:
    return new_envelope(
        PurchaseOrderIssued(
            po_id=po_id,
            revision=revision,
            supplier_id=supplier_id,
            sku=sku,
            quantity=quantity,
            unit_cost=Decimal("9.50"),
            currency="EUR",
            expected_arrival=date(2030, 1, 17),
        )
    )


def files(folder: Path, pattern: str = "*.edi") -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.exists() else []


async def supplier_events(bootstrap: str, prefix: str, count: int) -> list[Any]:
    records = await read_topic(bootstrap, Topic.SUPPLIER.qualified(prefix), count)
    return [REGISTRY.decode(r.value).payload for r in records]


@pytest.fixture
def config(database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> EdiSettings:
    return service_settings(
        EdiSettings,
        service_name="edi",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        edi_partners=PARTNERS,
        edi_inbox_dir=tmp_path / "inbox",
        edi_outbox_dir=tmp_path / "outbox",
        edi_poll_interval_seconds=0.1,
        edi_max_interchange_bytes=64 * 1024,
    )


async def test_purchase_orders_go_out_and_supplier_documents_come_in_once_and_whole(
    config: EdiSettings,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
) -> None:
    procurement = Topic.PROCUREMENT.qualified(topic_prefix)
    outbox, inbox = config.edi_outbox_dir, config.edi_inbox_dir
    async with serving(build_service(), config) as http:
        # Out: an 850 per PO of an EDI partner, a replacement for a revision, ORDERS for the EDIFACT one;
        # the PO of a supplier without EDI sends nothing.
        await publish(
            producer,
            procurement,
            [
                issued("PO-1", "JACKET"),
                issued("PO-2", "BOOT"),
                issued("PO-7", "HAT", "globex"),
                issued("PO-8", "SCARF", "phone-only"),
                issued("PO-1", "JACKET", revision=2, quantity=60),
            ],
        )
        sent = await eventually(
            lambda: _async(len(files(outbox / "acme", "850-*")) == 3 and files(outbox / "acme", "850-*")),
            what="three 850s for acme",
        )
        texts = {p.name: p.read_text() for p in sent}
        assert [n.rsplit("-", 1)[0] for n in sorted(texts)] == ["850-PO-1-r1", "850-PO-1-r2", "850-PO-2-r1"]
        assert "BEG*00*SA*PO-1" in texts[sorted(texts)[0]] and "BEG*05*SA*PO-1" in texts[sorted(texts)[1]]
        [orders] = await eventually(lambda: _async(files(outbox / "globex", "ORDERS-*")), what="ORDERS")
        assert "BGM+220+PO-7+9'" in orders.read_text(encoding="latin-1")
        assert not (outbox / "phone-only").exists()

        # In over HTTP: an 856 for both of acme's POs, acknowledged with a 997; its re-send changes nothing.
        notice = x12_856(
            "ASN-5", date(2030, 1, 12), [("PO-1", "JACKET", 10), ("PO-2", "BOOT", 8)], control=101, **ACME
        )
        answer = await http.post("/interchanges", content=notice)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "accepted" and answer.json()["events"] == 2
        assert "AK5*A" in answer.json()["acknowledgement"]
        assert (outbox / "acme" / answer.json()["acknowledgement_file"]).exists()
        again = await http.post("/interchanges", content=notice)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert again.json()["acknowledgement"] == answer.json()["acknowledgement"]

        # In through the folder: an 855, a DESADV, and an 861 receipt; then a broken one.
        (inbox).mkdir(parents=True, exist_ok=True)
        (inbox / "ack.edi").write_text(
            x12_855("PO-2", [("BOOT", 40, date(2030, 1, 16))], control=102, **ACME)
        )
        (inbox / "desadv.edi").write_text(
            edifact_desadv("DES-1", date(2030, 1, 14), [("PO-7", "HAT", 5)], control=9, **GLOBEX)
        )
        (inbox / "receipt.edi").write_text(
            x12_861(
                "RCV-1",
                datetime(2030, 1, 12, 14, 5, tzinfo=UTC),
                [("PO-1", "JACKET", 10)],
                control=103,
                **ACME,
            )
        )
        await eventually(lambda: _async(len(files(inbox / "processed")) == 3), what="three files processed")
        events = await supplier_events(kafka_bootstrap, topic_prefix, 5)
        assert sorted(type(e).__name__ for e in events) == [
            "GoodsReceived",
            "PurchaseOrderAcknowledged",
            "ShipmentNoticed",
            "ShipmentNoticed",
            "ShipmentNoticed",
        ]
        [receipt] = [e for e in events if type(e).__name__ == "GoodsReceived"]
        assert (receipt.receipt_id, receipt.po_id, receipt.supplier_id, receipt.quantity) == (
            "RCV-1",
            "PO-1",
            "acme",
            10,
        )

        broken = x12_861("RCV-2", AT, [("PO-1", "JACKET", 10)], control=104, **ACME).replace("SE*", "SE*9", 1)
        (inbox / "broken.edi").write_text(broken)
        await eventually(lambda: _async(files(inbox / "rejected")), what="the broken file rejected")
        reason = json.loads(next((inbox / "rejected").glob("*.reason")).read_text())
        assert reason["status"] == "rejected" and reason["segment"] == "SE", reason
        rejections = (await http.get("/rejections")).json()
        assert rejections[0]["segment"] == "SE" and rejections[0]["control_number"] == "000000104"

        # Refused over HTTP, each with its reason and nothing applied.
        stranger = await http.post(
            "/interchanges",
            content=x12_861(
                "R", AT, [("PO-1", "JACKET", 1)], control=5, sender="NOBODY", receiver="BACKORDER", at=AT
            ),
        )
        assert (
            stranger.status_code == 422 and "'NOBODY' is not a trading partner" in stranger.json()["reason"]
        )
        wrong_sku = await http.post(
            "/interchanges",
            content=x12_856("ASN-6", date(2030, 1, 12), [("PO-1", "BOOT", 1)], control=105, **ACME),
        )
        assert wrong_sku.status_code == 422
        assert (
            "purchase order 'PO-1' is for SKU 'JACKET', the line names 'BOOT'" in wrong_sku.json()["reason"]
        )
        assert "AK5*R" in wrong_sku.json()["acknowledgement"]
        assert (await http.post("/interchanges", content=b"x" * (70 * 1024))).status_code == 413
        reader = await http.post(
            "/interchanges", content=notice, headers=bearer(token_for(config, Role.READER))
        )
        assert reader.status_code == 403

        # A cancellation withdraws PO-2 with its last terms.
        await publish(
            producer,
            procurement,
            [
                new_envelope(
                    PurchaseOrderCancelled(
                        po_id="PO-2", supplier_id="acme", sku="BOOT", reason="backorders cancelled"
                    )
                )
            ],
        )
        [cancel] = await eventually(
            lambda: _async(files(outbox / "acme", "850-PO-2-r1-cancel-*")), what="cancel"
        )
        assert "BEG*01*SA*PO-2" in cancel.read_text()

        # Still five events: no rejected or duplicate interchange published anything.
        assert len(await supplier_events(kafka_bootstrap, topic_prefix, 5)) == 5
        listed = (await http.get("/interchanges", params={"supplier_id": "acme"})).json()
        assert sorted(i["control_number"] for i in listed) == ["000000101", "000000102", "000000103"]
        gauges = (await http.get("/metrics")).text
        assert "backorder_interchanges_accepted_last_day 4.0" in gauges  # globex's DESADV too
        assert (
            "backorder_interchanges_rejected_last_day 3.0" in gauges
        )  # broken, stranger, wrong SKU (413: none)
        assert "backorder_purchase_orders_sent_last_day 3.0" in gauges  # PO-1, PO-2 (cancelled), PO-7

    await _rebuild_gives_the_same_read_models(database_url)


async def _rebuild_gives_the_same_read_models(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = ("edi_purchase_orders", "edi_interchanges", "edi_control_numbers")
        before = {t: sorted(map(tuple, await conn.fetch(f"SELECT * FROM {t}"))) for t in tables}
        rejections = await conn.fetchval("SELECT count(*) FROM edi_rejections")
        async with conn.transaction():
            await projections.rebuild(conn, EventStore(EDI_REGISTRY))
        assert {t: sorted(map(tuple, await conn.fetch(f"SELECT * FROM {t}"))) for t in tables} == before
        assert await conn.fetchval("SELECT count(*) FROM edi_rejections") == rejections
    finally:
        await conn.close()


async def _async(value: Any) -> Any:
    return value


async def test_an_interchange_the_codec_chokes_on_is_refused_not_retried(
    config: EdiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def choke(raw: bytes | str) -> Any:
        raise IndexError("list index out of range")

    monkeypatch.setattr(x12, "parse", choke)
    notice = x12_856("ASN-9", date(2030, 1, 12), [("PO-1", "JACKET", 1)], control=201, **ACME)
    async with serving(build_service(), config) as http:
        answer = await http.post("/interchanges", content=notice)
        assert answer.status_code == 422
        assert (
            answer.json()["reason"]
            == "the interchange could not be read: IndexError: list index out of range"
        )
        config.edi_inbox_dir.mkdir(parents=True, exist_ok=True)
        (config.edi_inbox_dir / "odd.edi").write_text(notice)
        await eventually(lambda: _async(files(config.edi_inbox_dir / "rejected")), what="the file rejected")
