"""Supplier interchanges as a supplier's EDI system lays them out (X12 004010, EDIFACT D.96A), for the POs
a test or the demo issued: what `make demo` and the EDI tests drop in the adapter's inbox."""

from collections.abc import Sequence
from datetime import date, datetime

# (po_id, sku, quantity[, date]) per line
Line = tuple[str, str, int]


def _isa(sender: str, receiver: str, control: int, at: datetime) -> str:
    return (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{receiver:<15}*{at:%y%m%d}*{at:%H%M}*U*00401"
        f"*{control:09d}*0*T*>~"
    )


def x12(kind: str, functional_id: str, body: Sequence[str], *, sender: str, receiver: str, control: int,
        at: datetime) -> str:  # fmt: skip
    """One interchange, one group, one set of `kind` whose segments (between ST and SE) are `body`."""
    segments = [f"ST*{kind}*0001", *body]
    return (
        "\n".join(
            [
                _isa(sender, receiver, control, at),
                f"GS*{functional_id}*{sender}*{receiver}*{at:%Y%m%d}*{at:%H%M}*{control}*X*004010~",
                *(s + "~" for s in segments),
                f"SE*{len(segments) + 1}*0001~",
                f"GE*1*{control}~",
                f"IEA*1*{control:09d}~",
            ]
        )
        + "\n"
    )


def x12_855(po_id: str, lines: Sequence[tuple[str, int, date]], **envelope: object) -> str:
    """Acknowledges `po_id`: per line (sku, confirmed quantity, delivery date); quantity 0 rejects it."""
    body = [f"BAK*00*AC*{po_id}*20300107****ACK-{po_id}"]
    for n, (sku, quantity, day) in enumerate(lines, start=1):
        status = "IR" if quantity == 0 else "IA"
        body += [f"PO1*{n}*{quantity or 1}*EA***BP*{sku}", f"ACK*{status}*{quantity}*EA*067*{day:%Y%m%d}"]
    body.append(f"CTT*{len(lines)}")
    return x12("855", "PR", body, **envelope)  # type: ignore[arg-type]


def x12_856(asn_id: str, expected: date, lines: Sequence[Line], **envelope: object) -> str:
    body = [f"BSN*00*{asn_id}*20300107*0930", "HL*1**S", f"DTM*017*{expected:%Y%m%d}"]
    number = 1
    for po_id, sku, quantity in lines:
        order, item = number + 1, number + 2
        body += [
            f"HL*{order}*1*O",
            f"PRF*{po_id}",
            f"HL*{item}*{order}*I",
            f"LIN**BP*{sku}",
            f"SN1**{quantity}*EA",
        ]
        number = item
    body.append(f"CTT*{number}")
    return x12("856", "SH", body, **envelope)  # type: ignore[arg-type]


def x12_861(receipt_id: str, received: datetime, lines: Sequence[Line], **envelope: object) -> str:
    body = [f"BRA*{receipt_id}*{received:%Y%m%d}*00*1", f"DTM*050*{received:%Y%m%d}*{received:%H%M}"]
    for n, (po_id, sku, quantity) in enumerate(lines, start=1):
        body += [f"RCD*{n}*{quantity}*EA", f"LIN**BP*{sku}", f"PRF*{po_id}"]
    body.append(f"CTT*{len(lines)}")
    return x12("861", "RC", body, **envelope)  # type: ignore[arg-type]


def edifact(kind: str, body: Sequence[str], *, sender: str, receiver: str, control: int, at: datetime) -> str:
    segments = [f"UNH+1+{kind}:D:96A:UN", *body]
    return (
        "\n".join(
            [
                "UNA:+.? '",
                f"UNB+UNOC:3+{sender}:ZZZ+{receiver}:ZZZ+{at:%y%m%d}:{at:%H%M}+{control}'",
                *(s + "'" for s in segments),
                f"UNT+{len(segments) + 1}+1'",
                f"UNZ+1+{control}'",
            ]
        )
        + "\n"
    )


def edifact_desadv(asn_id: str, expected: date, lines: Sequence[Line], **envelope: object) -> str:
    body = [f"BGM+351+{asn_id}+9", f"DTM+17:{expected:%Y%m%d}:102", "CPS+1"]
    for n, (po_id, sku, quantity) in enumerate(lines, start=1):
        body += [f"LIN+{n}++{sku}:IN", f"QTY+12:{quantity}", f"RFF+ON:{po_id}"]
    return edifact("DESADV", body, **envelope)  # type: ignore[arg-type]
