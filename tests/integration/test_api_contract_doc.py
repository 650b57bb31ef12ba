"""docs/api.md, the stable contract published with the project, in step with the OpenAPI document:
every call it names is an operation there, every "status `code`" it names is listed by one of the
operations at that status, and every reason code of a rejected check-in is in `Reason.code`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "api.md").read_text()
# Served beside the API, not operations of it.
NOT_OPERATIONS = {"GET /docs", "GET /openapi.json"}
# Promised by the contract (feedback, webhooks: added 2026-12-06) and not served by this
# version yet. Once one is served, this test fails until it leaves this set: from then on the
# document must describe it.
PENDING: set[str] = set()
PENDING_CODES: set[str] = set()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from tests.integration.test_bad_input import DOCUMENT

    return DOCUMENT


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {_shape(path)}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_every_call_of_the_contract_is_in_the_document(document: dict[str, Any]) -> None:
    named = {
        f"{method} {_shape(path)}"
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)", CONTRACT)
    }
    # Calls the page names in a shorter form ("`GET`, `PATCH`, `DELETE /v1/venues/{id}`").
    named |= {
        "GET /v1/venues/{}",
        "PATCH /v1/venues/{}",
        "GET /v1/offers/{}",
        "POST /v1/offers/{}/pause",
        "POST /v1/offers/{}/end",
    }
    operations = _operations(document)
    assert len(named) > 30
    missing = named - NOT_OPERATIONS - PENDING - set(operations)
    assert not missing, f"named in docs/api.md, not in the OpenAPI document: {sorted(missing)}"
    served = PENDING & set(operations)
    assert not served, f"now served: take them out of PENDING in this file: {sorted(served)}"


def test_every_error_code_of_the_contract_is_listed_at_its_status(
    document: dict[str, Any],
) -> None:
    named = set(re.findall(r"(\d{3})\s+`([a-z_]+)`", CONTRACT))
    named |= {("422", "invalid_geometry"), ("410", "expired"), ("409", "handle_taken")}
    named |= {("422", "idempotency_key_reused"), ("401", "unauthorized"), ("403", "forbidden")}
    named |= {("413", "payload_too_large"), ("400", "bad_request")}
    listed = {
        (status, code)
        for operation in _operations(document).values()
        for status, response in operation["responses"].items()
        for code in response.get("x-codes", ())
    }
    missing = {pair for pair in named if pair[1] not in PENDING_CODES} - listed
    assert not missing, f"codes of docs/api.md no operation lists: {sorted(missing)}"


def test_every_reason_code_of_the_contract_is_in_the_document(document: dict[str, Any]) -> None:
    table = CONTRACT.split("Reason codes for a rejected check-in:", 1)[1].split("\n\n", 2)[1]
    codes = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert len(codes) == 9  # the contract's eight and backdated_fix
    reason = document["components"]["schemas"]["Reason"]["properties"]["code"]
    assert set(codes) <= set(reason["x-extensible-enum"])
