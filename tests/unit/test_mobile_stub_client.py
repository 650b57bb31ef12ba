"""The mobile_stub client over a recording transport: the requests it sends for each call, and
problem+json answers raised as `ApiError` with their stable `code`. No server needed."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import mobile_stub
from mobile_stub.client import ApiError, Client, Response


class Recorder:
    """A transport that records each request and answers from a queue."""

    def __init__(self, *answers: Response):
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> Response:
        self.requests.append(
            {
                "method": method,
                "path": path,
                "json": json_body,
                "params": params,
                "headers": headers,
            }
        )
        return self.answers.pop(0) if self.answers else Response(200, {}, {})


def problem(status: int, code: str, **extra: Any) -> Response:
    body = {
        "type": "about:blank",
        "title": "Refused",
        "status": status,
        "detail": "why",
        "code": code,
    }
    return Response(status, {"Content-Type": "application/problem+json"}, {**body, **extra})


def test_a_problem_answer_raises_api_error_with_its_code() -> None:
    api = Client(Recorder(problem(409, "already_redeemed")), token="cok_x")
    with pytest.raises(ApiError) as err:
        api.redeem("7K3Q-XM9T-2RK")
    assert (err.value.status, err.value.code, err.value.detail) == (409, "already_redeemed", "why")
    assert err.value.title == "Refused"
    assert not err.value.retryable


def test_validation_errors_carry_their_fields() -> None:
    answer = problem(422, "validation_error", errors={"lat": ["must be between -90 and 90"]})
    with pytest.raises(ApiError) as err:
        Client(Recorder(answer)).create_user("x", "y")
    assert err.value.errors == {"lat": ["must be between -90 and 90"]}


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False)]
)
def test_only_server_failures_are_worth_retrying(status: int, retryable: bool) -> None:
    with pytest.raises(ApiError) as err:
        Client(Recorder(problem(status, "x"))).health()
    assert err.value.retryable is retryable


def test_a_non_json_error_still_has_a_code() -> None:
    answer = Response(502, {"Content-Type": "text/html"}, None, "<h1>Bad gateway</h1>")
    with pytest.raises(ApiError) as err:
        Client(Recorder(answer)).health()
    assert (err.value.code, err.value.detail) == ("http_502", "<h1>Bad gateway</h1>")
    assert err.value.retryable


def test_check_in_sends_the_fix_the_token_and_the_idempotency_key() -> None:
    transport = Recorder(Response(201, {}, {"id": "c1", "status": "verified"}))
    user = Client(transport).with_token("cou_token")
    answer = user.check_in(
        "v1",
        60.17,
        24.94,
        8.0,
        "2026-11-23T12:00:00+00:00",
        mock_location=False,
        idempotency_key="k1",
    )
    assert answer["status"] == "verified"
    [sent] = transport.requests
    assert (sent["method"], sent["path"]) == ("POST", "/v1/checkins")
    assert sent["json"] == {
        "venue_id": "v1",
        "lat": 60.17,
        "lon": 24.94,
        "accuracy_m": 8.0,
        "observed_at": "2026-11-23T12:00:00+00:00",
        "mock_location": False,
    }
    assert sent["headers"] == {"Authorization": "Bearer cou_token", "Idempotency-Key": "k1"}


def test_nearby_sends_only_the_parameters_given() -> None:
    transport = Recorder(Response(200, {}, {"venues": []}))
    assert Client(transport).nearby(60.17, 24.94, limit=5) == []
    assert transport.requests[0]["params"] == {"lat": 60.17, "lon": 24.94, "limit": 5}


def test_analytics_calls_follow_the_contracts_paths_and_parameters() -> None:
    transport = Recorder(
        Response(200, {}, {"impressions": 3}),
        Response(200, {}, {"rows": []}),
        Response(200, {"Content-Type": "text/csv"}, None, "day,redemptions\n"),
        Response(200, {}, {"lift": None}),
    )
    analyst = Client(transport, token="cok_analyst")
    assert analyst.offer_funnel("o1", from_="2026-11-01T00:00:00Z") == {"impressions": 3}
    assert analyst.redemption_report(group_by="venue") == {"rows": []}
    assert analyst.redemption_report_csv(group_by="day") == "day,redemptions\n"
    assert analyst.offer_lift("o1", window_days=30) == {"lift": None}
    assert [(r["path"], r["params"]) for r in transport.requests] == [
        ("/v1/analytics/offers/o1/funnel", {"from": "2026-11-01T00:00:00Z"}),
        ("/v1/analytics/redemptions", {"group_by": "venue"}),
        ("/v1/analytics/redemptions", {"group_by": "day", "format": "csv"}),
        ("/v1/analytics/offers/o1/lift", {"window_days": 30}),
    ]


def test_feedback_calls_follow_the_contracts_paths_and_bodies() -> None:
    transport = Recorder(
        Response(201, {}, {"id": "f1"}),
        Response(200, {}, {"feedback": []}),
        Response(200, {}, {"feedback": []}),
        Response(201, {}, {"id": "r1"}),
        Response(200, {}, {"feedback": 0}),
        Response(200, {"Content-Type": "text/csv"}, None, "scope,feedback\n"),
    )
    client = Client(transport, token="t")
    assert client.give_feedback("c1", 5) == {"id": "f1"}
    assert client.my_feedback() == []
    assert client.list_feedback(status="unanswered", rating=1) == []
    assert client.reply_to_feedback("f1", "Thanks!") == {"id": "r1"}
    assert client.responsiveness(target_hours=0.25) == {"feedback": 0}
    assert client.responsiveness_csv(from_="2026-12-01T00:00:00Z") == "scope,feedback\n"
    assert [(r["method"], r["path"], r["json"], r["params"]) for r in transport.requests] == [
        ("POST", "/v1/checkins/c1/feedback", {"rating": 5}, None),
        ("GET", "/v1/me/feedback", None, None),
        ("GET", "/v1/feedback", None, {"status": "unanswered", "rating": 1}),
        ("POST", "/v1/feedback/f1/replies", {"body": "Thanks!"}, None),
        ("GET", "/v1/analytics/responsiveness", None, {"target_hours": 0.25}),
        (
            "GET",
            "/v1/analytics/responsiveness",
            None,
            {"from": "2026-12-01T00:00:00Z", "format": "csv"},
        ),
    ]


def test_mobile_stub_imports_nothing_from_the_service() -> None:
    service = {"api", "core", "geo", "offers"}
    for path in Path(mobile_stub.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & service, (path.name, names)
