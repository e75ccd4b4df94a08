"""Which OTEL_* variables turn traces on, and which Kafka security options the settings give clients."""

import ssl

import pytest
from pydantic import ValidationError

from backbone.kafka import client_options
from backbone.settings import KafkaSettings
from backbone.tracing import wanted


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, True),
    ],
)
def test_traces_are_off_unless_the_standard_variables_ask_for_them(environ: dict[str, str], on: bool) -> None:
    assert wanted(environ) is on


def test_plaintext_needs_no_client_options() -> None:
    assert client_options(KafkaSettings()) == {}


def test_sasl_ssl_gives_scram_credentials_and_a_tls_context() -> None:
    options = client_options(
        KafkaSettings(
            kafka_security_protocol="SASL_SSL", kafka_sasl_username="order", kafka_sasl_password="s3cret-pw"
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("order", "s3cret-pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_credentials_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        KafkaSettings(kafka_security_protocol="SASL_PLAINTEXT")


def test_the_password_does_not_show_in_the_settings_repr() -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="order", kafka_sasl_password="s3cret-pw"
    )
    assert "s3cret-pw" not in repr(settings)
