"""Kafka topics of the public contract. Names are `<prefix><topic>`; dead letters go to `<name>.dlq`."""

from enum import StrEnum


class Topic(StrEnum):
    ORDERS = "orders"  # checkout systems and the order service; key = order_id
    INVENTORY = "inventory"  # inventory service; key = sku
    PROCUREMENT = "procurement"  # procurement service; key = sku
    SUPPLIER = "supplier"  # supplier EDI adapters; key = sku
    NOTIFIER = "notifier"  # notifier service; key = customer_id
    FULFILMENT = "fulfilment"  # warehouse (WMS) adapters; key = order_id

    def qualified(self, prefix: str) -> str:
        return f"{prefix}{self.value}"


def dead_letter_topic(topic_name: str) -> str:
    return f"{topic_name}.dlq"
