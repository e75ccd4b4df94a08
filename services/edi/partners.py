"""The trading partners of EDI_PARTNERS, found by who sent an interchange or by supplier."""

from collections.abc import Iterable

from services.edi.documents import Partner, Standard


class Partners:
    def __init__(self, partners: Iterable[Partner]) -> None:
        self._by_sender = {(p.standard, p.their_id): p for p in partners}
        self._by_supplier = {p.supplier_id: p for p in self._by_sender.values()}

    def sent_by(self, standard: Standard, sender_id: str) -> Partner | None:
        return self._by_sender.get((standard, sender_id))

    def of_supplier(self, supplier_id: str) -> Partner | None:
        return self._by_supplier.get(supplier_id)

    def __len__(self) -> int:
        return len(self._by_sender)
