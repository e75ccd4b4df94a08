"""Rendering: a notification's kind and context become an email (subject, text) or a webhook JSON body.

The wording lives in Jinja2 templates under templates/, one subject and one body per kind for email and
one JSON layout for webhooks. StrictUndefined turns a field a template expects but the context lacks into
an error here, instead of a message with a hole in it. Rendering has no side effects: the templates are
read from files once, and the same input always gives the same text.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from backbone.contracts.events import NotificationKind
from services.notifier.events import Notification

TEMPLATES = Path(__file__).with_name("templates")


def long_date(value: date | str) -> str:
    """1 April 2026: unambiguous in every locale, unlike 01/04/2026. Accepts ISO strings (of a date or
    a date and time) and datetimes too."""
    day = datetime.fromisoformat(value).date() if isinstance(value, str) else value
    return f"{day.day} {day:%B %Y}"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=False,  # plain text and JSON (through tojson), never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["long_date"] = long_date
    return environment


_ENVIRONMENT = _environment()


@dataclass(frozen=True, slots=True)
class EmailMessage:
    subject: str
    body: str


def render(template_name: str, context: Mapping[str, Any]) -> str:
    """One template, by its path under templates/, with `context`; a missing variable raises."""
    return _ENVIRONMENT.get_template(template_name).render(context)


def render_email(kind: NotificationKind, context: Mapping[str, Any]) -> EmailMessage:
    subject = " ".join(render(f"email/{kind}.subject.j2", context).split())  # one line, as mail needs
    body = render(f"email/{kind}.txt.j2", context).strip() + "\n"
    return EmailMessage(subject=subject, body=body)


def render_webhook(context: Mapping[str, Any]) -> str:
    """The webhook's JSON body; `context` holds JSON values only. Checked to be valid JSON, compacted."""
    rendered = render("webhook/notification.json.j2", context)
    return json.dumps(json.loads(rendered), ensure_ascii=False, separators=(",", ":"))


def message_context(notification: Notification) -> dict[str, Any]:
    """What the email templates see: who, which order and line, and the fields of the content."""
    return {
        "notification_id": notification.notification_id,
        "customer_name": notification.customer_name,
        "shop_id": notification.shop_id,
        "order_id": notification.order_id,
        "line_id": notification.line_id,
        **notification.content.model_dump(exclude={"kind"}),
    }


def email_for(notification: Notification) -> EmailMessage:
    return render_email(notification.kind, message_context(notification))


def webhook_body_for(notification: Notification) -> str:
    """The shop's webhook gets the data and the email's wording, so it can forward either."""
    email = email_for(notification)
    return render_webhook(
        {
            "notification_id": notification.notification_id,
            "kind": notification.kind,
            "shop_id": notification.shop_id,
            "customer_id": notification.customer_id,
            "email": notification.email,
            "customer_name": notification.customer_name,
            "order_id": notification.order_id,
            "line_id": notification.line_id,
            "subject": email.subject,
            "text": email.body,
            "data": notification.content.model_dump(mode="json", exclude={"kind"}),
        }
    )
