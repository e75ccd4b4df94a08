"""HTTP API of the EDI adapter: a supplier's gateway posts interchanges; staff read what came and went.

POST /interchanges takes the interchange as the raw request body (any content type: application/EDI-X12,
application/EDIFACT, text/plain) and answers with what became of it and the acknowledgement: 200 for an
accepted one or a re-send of one, 422 with the segment, position and reason for a refused one (the
rejection acknowledgement, if one could be addressed, is in the answer too), 413 beyond
EDI_MAX_INTERCHANGE_BYTES.
"""

from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from backbone.auth import ReadsViews, SendsEdi
from services.edi.receiving import Outcome, Receiver

PoIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^\S(?:.*\S)?$")]


class InterchangeView(BaseModel):
    standard: str
    sender_id: str
    control_number: str
    supplier_id: str
    source: str
    messages: int
    events: int
    acknowledgement_control_number: str
    received_at: datetime


class RejectionView(BaseModel):
    standard: str | None
    sender_id: str | None
    control_number: str | None
    supplier_id: str | None
    source: str
    reason: str
    segment: str
    segment_position: int
    element: int
    received_at: datetime


class TransmissionView(BaseModel):
    po_id: str
    reference: str = Field(
        description="The PO number in the documents: the po_id, or a short one if it is too long"
    )
    supplier_id: str
    sku: str
    revision: int
    purpose: str
    quantity: int
    standard: str
    control_number: str
    file_name: str
    transmitted_at: datetime


def make_router(pool: asyncpg.Pool, receiver: Receiver) -> APIRouter:
    router = APIRouter(tags=["edi"])

    @router.post(
        "/interchanges",
        response_model=Outcome,
        responses={422: {"model": Outcome, "description": "Refused: nothing of it was applied"}, 413: {}},
    )
    async def post_interchange(request: Request, _: SendsEdi) -> JSONResponse:
        """Receive one interchange (the raw body): applied whole, or refused whole with the reason."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > receiver.max_bytes:
            raise HTTPException(413, detail=f"an interchange may have at most {receiver.max_bytes} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > receiver.max_bytes:
                raise HTTPException(413, detail=f"an interchange may have at most {receiver.max_bytes} bytes")
        if not raw:
            raise HTTPException(422, detail="the body is empty: post the interchange itself")
        outcome = await receiver.receive(bytes(raw), source="http", now=datetime.now(UTC))
        status = 422 if outcome.status == "rejected" else 200
        return JSONResponse(outcome.model_dump(mode="json"), status_code=status)

    @router.get("/interchanges", response_model=list[InterchangeView])
    async def list_interchanges(
        _: ReadsViews,
        supplier_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[InterchangeView]:
        """Accepted interchanges, newest first."""
        rows = await pool.fetch(
            "SELECT * FROM edi_interchanges WHERE ($1::text IS NULL OR supplier_id = $1)"
            " ORDER BY received_at DESC LIMIT $2",
            supplier_id,
            limit,
        )
        return [InterchangeView(**dict(r)) for r in rows]

    @router.get("/rejections", response_model=list[RejectionView])
    async def list_rejections(
        _: ReadsViews, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[RejectionView]:
        """Refused interchanges, newest first, with the segment and reason."""
        rows = await pool.fetch(
            "SELECT * FROM edi_rejections ORDER BY received_at DESC, id DESC LIMIT $1", limit
        )
        return [RejectionView(**dict(r)) for r in rows]

    @router.get("/purchase-orders/{po_id}", response_model=TransmissionView)
    async def get_transmission(po_id: PoIdPath, _: ReadsViews) -> TransmissionView:
        """The PO as last sent to its supplier (revision, purpose, file)."""
        row = await pool.fetchrow("SELECT * FROM edi_purchase_orders WHERE po_id = $1", po_id)
        if row is None:
            raise HTTPException(404, detail=f"purchase order {po_id!r} was never sent by EDI")
        return TransmissionView(**dict(row))

    return router
