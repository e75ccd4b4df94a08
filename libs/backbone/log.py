"""structlog set up once: JSON lines with service, event_type, event_id and correlation_id when bound.

Customer data never reaches the logs. `redact_customer_data` is the last processor before rendering and
walks every value of every log event (nested dicts and lists, pydantic models, dataclasses, the rendered
traceback of `exc_info`); the standard library's records (uvicorn, aiokafka, asyncpg...) pass the same
rules through `RedactingFilter` on the root handlers. The rules:

- an e-mail address anywhere in any text (messages, error texts, tracebacks, reprs) becomes
  `<redacted e-mail>`. Not even the domain is kept: a person's own domain names them. The log line's ids
  (notification_id, customer_id, order_id) lead a role that may see the address to it.
- the value of a key that names a person (`name`, `customer_name`, `email`, ... see IDENTITY_KEYS)
  becomes `<redacted>`, also inside reprs and JSON text (`name='Ada'`, `"name": "Ada"`). A name cannot be
  recognised in free text, so code logs names only under such keys, if at all.
- the value of a key that names a destination (`recipient`, `to`, `address`, `webhook_url`, ... see
  DESTINATION_KEYS) keeps only what identifies no one: a URL its scheme and host, anything else
  `<redacted>`.
- the input values pydantic prints in a validation error (`input_value=...`) become `<redacted>`: a
  refused payload (an order's customer) would otherwise be printed whole.
- except: the value of `actor` (AUDIT_KEYS), the audit trail's staff member or system as their token
  names them, stays as it is, even when an identity provider names them by e-mail address.

httpx logs every request at INFO with its full URL (a shop's webhook URL may carry a token), so its
logger starts at WARNING.
"""

import dataclasses
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, WrappedLogger

REDACTED = "<redacted>"
REDACTED_EMAIL = "<redacted e-mail>"

# Keys are compared in lower case with "-" read as "_".
IDENTITY_KEYS = frozenset(
    {
        "name",
        "customer_name",
        "display_name",
        "full_name",
        "first_name",
        "last_name",
        "email",
        "e_mail",
        "email_address",
        "customer_email",
    }
)
DESTINATION_KEYS = frozenset(
    {
        "recipient",
        "recipients",
        "to",
        "cc",
        "bcc",
        "reply_to",
        "address",
        "addresses",
        "destination",
        "webhook",
        "webhook_url",
    }
)
# Who did it, for the audit trail: a staff member's or system's token subject, never a customer's.
AUDIT_KEYS = frozenset({"actor"})
_MAX_DEPTH = 12  # deeper structures are not walked but replaced: a log line never needs them

# The local part leaves out quotes, "=" and "/" at its start, so "email='ana@x.org'" keeps "email='":
# the redaction stays readable. Unicode letters (\w) cover internationalised addresses (RFC 6531).
_EMAIL = re.compile(r"[\w.!#$%&*+?^`{|}~-][\w.!#$%&'*+?^`{|}~-]*@[\w-]+(?:\.[\w-]+)+")
# name='Ada' / name="Ada" / "name": "Ada" (reprs of models and dataclasses, JSON in a message).
_IDENTITY_ASSIGNMENT = re.compile(
    r"(?<![\w])(?P<key>" + "|".join(sorted(IDENTITY_KEYS, key=len, reverse=True)) + r")"
    r"(?P<sep>['\"]?\s*[=:]\s*)(?P<quote>['\"])(?:\\.|(?!(?P=quote)).)*(?P=quote)",
    re.IGNORECASE,
)
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)")


def redact_text(text: str) -> str:
    """`text` without e-mail addresses, identity values in `key=value` form, or pydantic input values."""
    if "@" in text:
        text = _EMAIL.sub(REDACTED_EMAIL, text)
    if "=" in text or ":" in text:
        text = _IDENTITY_ASSIGNMENT.sub(
            lambda m: f"{m['key']}{m['sep']}{m['quote']}{REDACTED}{m['quote']}", text
        )
        if "input_value=" in text:
            text = _PYDANTIC_INPUT.sub(f"input_value={REDACTED}", text)
    return text


def _normal(key: object) -> str:
    return str(key).lower().replace("-", "_")


def _destination(value: Any, depth: int) -> Any:
    """A destination reduced to what names no one: a URL's scheme and host."""
    if value is None:
        return None
    if isinstance(value, str):
        if "@" not in value and "://" in value:
            parts = urlsplit(value)
            if parts.scheme and parts.hostname:
                return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/{REDACTED}"
        return REDACTED_EMAIL if "@" in value else REDACTED
    if isinstance(value, list | tuple | set | frozenset):
        return [_destination(v, depth + 1) for v in value]
    return REDACTED


def _walk(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED
    match value:
        case str():
            return redact_text(value)
        case bool() | int() | float() | None:
            return value
        case Mapping():
            return {k: _keyed(k, v, depth + 1) for k, v in value.items()}
        case list() | tuple() | set() | frozenset():
            return [_walk(v, depth + 1) for v in value]
        case BaseModel():
            return _walk(value.model_dump(mode="json"), depth + 1)
        case _ if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _walk({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    # What JSONRenderer would print for it, redacted.
    render = getattr(value, "__structlog__", None)
    return redact_text(render() if callable(render) else repr(value))


def _keyed(key: object, value: Any, depth: int) -> Any:
    normal = _normal(key)
    if normal in AUDIT_KEYS and (value is None or isinstance(value, str)):
        return value
    if normal in IDENTITY_KEYS:
        return None if value is None else REDACTED
    if normal in DESTINATION_KEYS:
        return _destination(value, depth)
    return _walk(value, depth)


def redact_customer_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor; run it after format_exc_info, so that the traceback text is covered too."""
    return {key: _keyed(key, value, 0) for key, value in event_dict.items()}


class RedactingFilter(logging.Filter):
    """The same rules for standard-library records: their message, traceback and stack text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it as it always did
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def _filter_root_handlers() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def configure_logging(service: str, level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stdout, format="%(message)s", level=level.upper())
    _filter_root_handlers()
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_customer_data,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
