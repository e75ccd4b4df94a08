"""Wiring of the EDI adapter: settings, the consumed procurement topic (purchase orders out), the inbox
folder and HTTP endpoint (interchanges in), its read models."""

from pathlib import Path

from fastapi import APIRouter

from backbone.consumer import Handler
from backbone.contracts import Topic
from backbone.contracts.events import contract_registry
from backbone.runtime import Service, ServiceContext, component_health
from services.edi import api, metrics, sending, watcher
from services.edi.events import EDI_EVENTS
from services.edi.partners import Partners
from services.edi.receiving import Receiver
from services.edi.settings import EdiSettings

REGISTRY = contract_registry(EDI_EVENTS)


def _settings(ctx: ServiceContext) -> EdiSettings:
    if not isinstance(ctx.settings, EdiSettings):
        raise TypeError(f"the EDI adapter runs with EdiSettings, not {type(ctx.settings).__name__}")
    return ctx.settings


def _partners(settings: EdiSettings) -> Partners:
    return Partners(p.partner() for p in settings.edi_partners)


def _receiver(ctx: ServiceContext) -> Receiver:
    settings = _settings(ctx)
    return Receiver(
        pool=ctx.pool,
        store=ctx.store,
        partners=_partners(settings),
        outbox_dir=settings.edi_outbox_dir,
        max_bytes=settings.edi_max_interchange_bytes,
    )


def build_service() -> Service:
    def make_handler(ctx: ServiceContext) -> Handler:
        settings = _settings(ctx)
        return sending.make_handler(ctx.store, _partners(settings), settings.edi_outbox_dir)

    def make_routes(ctx: ServiceContext) -> APIRouter:
        return api.make_router(ctx.pool, _receiver(ctx))

    async def watch_inbox(ctx: ServiceContext) -> None:
        settings = _settings(ctx)
        await watcher.run(
            _receiver(ctx),
            settings.edi_inbox_dir,
            interval_seconds=settings.edi_poll_interval_seconds,
            health=component_health(),
        )

    return Service(
        name="edi",
        settings_type=EdiSettings,
        migrations=Path(__file__).parent / "migrations",
        consumes=[Topic.PROCUREMENT],
        make_handler=make_handler,
        make_routes=make_routes,
        registry=REGISTRY,
        handles=sending.CONSUMED_EVENTS,
        background=[watch_inbox],
        readings=metrics.readings,
    )


SERVICE = build_service()
