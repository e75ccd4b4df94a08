"""docs/openapi/ must be what the services' code generates (run `make docs` after an API change)."""

from services.openapi import NAMES, document, drift, service


def test_the_committed_openapi_documents_match_the_code() -> None:
    assert drift() == [], "run `make docs` and commit docs/openapi/"


def test_every_operation_of_every_service_is_documented() -> None:
    for name in NAMES:
        paths = document(service(name))["paths"]
        operations = [op for methods in paths.values() for op in methods.values()]
        assert len(operations) >= 4, name
        assert all(op.get("responses") for op in operations), name
