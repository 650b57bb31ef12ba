"""A Python client generated from the running service's own OpenAPI document, as an app
developer makes one (`openapi-python-client generate --url .../openapi.json`), drives the main
flows with generated code only: a merchant creates and patches a venue and an offer, a phone
checks in and reads its wallet, a till redeems.

openapi-python-client is a development dependency (pyproject.toml), so `make test` has it.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

PACKAGE = "checkin_offers_generated"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def generated(
    live_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModuleType, dict[str, Any], str]]:
    """The generated package, imported, with the document it came from and the generator's
    output."""
    where = tmp_path_factory.mktemp("generated")
    document = requests.get(f"{live_server}/openapi.json", timeout=10).json()
    (where / "openapi.json").write_text(json.dumps(document))
    # No post hooks: the generator formats with ruff from PATH by default, which says nothing
    # about the document.
    (where / "config.yaml").write_text("post_hooks: []\n")
    run = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(where / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
            "--config",
            str(where / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE), document, output
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def connect(
    generated: tuple[ModuleType, dict[str, Any], str], live_server: str
) -> Iterator[Callable[[str | None], Any]]:
    """Generated clients for the live server, as anyone (None) or with a token; closed after."""
    package = generated[0]
    with ExitStack() as stack:

        def client(token: str | None = None) -> Any:
            made = (
                package.Client(base_url=live_server)
                if token is None
                else package.AuthenticatedClient(base_url=live_server, token=token)
            )
            return stack.enter_context(made)

        yield client


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_every_operation_is_generated_without_a_warning(
    generated: tuple[ModuleType, dict[str, Any], str],
) -> None:
    package, document, output = generated
    assert "Warning" not in output and "WARNING" not in output, output
    root = Path(package.__file__).parent
    modules = {path.stem for path in (root / "api").glob("*/*.py") if path.stem != "__init__"}
    wanted = {
        _snake(operation["operationId"])
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert wanted <= modules, sorted(wanted - modules)
    models = {path.stem for path in (root / "models").glob("*.py")}
    assert {"venue", "venue_list", "venue_create", "venue_patch", "problem"} <= models


def _snake(operation_id: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation_id)


def test_the_main_flows_with_generated_code_only(
    generated: tuple[ModuleType, dict[str, Any], str], connect: Callable[[str | None], Any]
) -> None:
    package, _, _ = generated
    m = _module(package, "models")
    api = {
        name: _module(package, f"api.{name}")
        for name in (
            "accounts.create_merchant",
            "accounts.create_key",
            "accounts.create_user",
            "venues.create_venue",
            "venues.update_venue",
            "venues.get_venue",
            "offers.create_offer",
            "offers.update_offer",
            "offers.activate_offer",
            "checkins.create_checkin",
            "checkins.list_my_unlocks",
            "redemptions.create_redemption",
        )
    }
    anyone = connect(None)

    signed_up = api["accounts.create_merchant"].sync(
        client=anyone, body=m.MerchantCreate(name="Kahvila Generoitu", email="gen@example.com")
    )
    assert isinstance(signed_up, m.MerchantCreated), signed_up
    owner = connect(signed_up.api_key)

    # A Helsinki venue with a 0-minute cooldown; a PATCH of its name changes only the name.
    venue = api["venues.create_venue"].sync(
        client=owner,
        body=m.VenueCreate(
            name="Generated Cafe",
            location=m.GeoJsonPoint(type_=m.GeoJsonPointType.POINT, coordinates=[24.9384, 60.1699]),
            timezone="Europe/Helsinki",
            radius_m=40.0,
            checkin_cooldown_minutes=0,
            max_accuracy_m=30.0,
        ),
    )
    assert isinstance(venue, m.Venue), venue
    assert isinstance(venue.geofence, m.GeoJsonPolygon)
    assert venue.geofence.coordinates[0][0] == venue.geofence.coordinates[0][-1]
    patch = m.VenuePatch(name="Generated Cafe, renamed")
    assert patch.to_dict() == {"name": "Generated Cafe, renamed"}  # what goes on the wire
    patched = api["venues.update_venue"].sync(venue.id, client=owner, body=patch)
    assert isinstance(patched, m.Venue), patched
    assert (patched.name, patched.timezone) == ("Generated Cafe, renamed", "Europe/Helsinki")
    assert (patched.checkin_cooldown_minutes, patched.max_accuracy_m) == (0, 30.0)
    assert patched.radius_m == 40.0

    # An offer with an nth_visit rule (the first visit unlocks it), patched, activated.
    offer = api["offers.create_offer"].sync(
        client=owner,
        body=m.OfferCreate(
            venue_ids=[venue.id],
            title="Generated coffee",
            rule=m.RuleNthVisit(kind=m.RuleNthVisitKind.NTH_VISIT, visits=1),
            per_user_cap=3,
        ),
    )
    assert isinstance(offer, m.Offer), offer
    assert isinstance(offer.rule, m.RuleNthVisit) and offer.rule.visits == 1
    assert offer.status == "draft"
    offer = api["offers.update_offer"].sync(
        offer.id, client=owner, body=m.OfferPatch(title="Generated espresso")
    )
    assert isinstance(offer, m.Offer), offer
    assert (offer.title, offer.per_user_cap) == ("Generated espresso", 3)
    assert offer.code_ttl_minutes == 1440  # the contract's default, untouched by the PATCH
    activated = api["offers.activate_offer"].sync(offer.id, client=owner)
    assert isinstance(activated, m.Offer) and activated.status == "active"

    # A phone checks in and finds the unlock in its wallet.
    user = api["accounts.create_user"].sync(
        client=anyone, body=m.UserCreate(handle="generated_phone", password="correct horse")
    )
    assert isinstance(user, m.UserCreated), user
    phone = connect(user.token)
    checkin = api["checkins.create_checkin"].sync(
        client=phone,
        body=m.CheckinCreate(
            venue_id=venue.id,
            lat=60.1699,
            lon=24.9384,
            accuracy_m=8.0,
            observed_at=datetime.now(UTC),
        ),
    )
    assert isinstance(checkin, m.Checkin), checkin
    assert checkin.status == "verified", checkin.reasons
    assert [u.offer_id for u in checkin.unlocks] == [offer.id]
    wallet = api["checkins.list_my_unlocks"].sync(client=phone)
    assert isinstance(wallet, m.Wallet), wallet
    (unlock,) = wallet.unlocks
    assert unlock.status == "active"

    # A till (a staff key) redeems it; a second time is a typed problem.
    key = api["accounts.create_key"].sync(
        client=owner, body=m.KeyCreate(role=m.KeyCreateRole.STAFF, label="till 1")
    )
    assert isinstance(key, m.KeyCreated), key
    till = connect(key.api_key)
    redeemed = api["redemptions.create_redemption"].sync(
        client=till, body=m.RedemptionCreate(code=unlock.code, venue_id=venue.id)
    )
    assert isinstance(redeemed, m.Redemption), redeemed
    assert redeemed.unlock_id == unlock.id
    again = api["redemptions.create_redemption"].sync(
        client=till, body=m.RedemptionCreate(code=unlock.code)
    )
    assert isinstance(again, m.Problem) and (again.status, again.code) == (409, "already_redeemed")


def test_errors_are_typed_problems(
    generated: tuple[ModuleType, dict[str, Any], str], connect: Callable[[str | None], Any]
) -> None:
    package, _, _ = generated
    m = _module(package, "models")
    create_merchant = _module(package, "api.accounts.create_merchant")
    get_venue = _module(package, "api.venues.get_venue")
    anyone = connect(None)
    signed_up = create_merchant.sync(
        client=anyone, body=m.MerchantCreate(name="Typed", email="typed@example.com")
    )
    owner = connect(signed_up.api_key)
    missing = get_venue.sync_detailed(uuid.UUID(int=1), client=owner)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, m.Problem) and missing.parsed.code == "not_found"
    refused = create_merchant.sync(client=anyone, body=m.MerchantCreate(name="", email="x"))
    assert isinstance(refused, m.Problem) and refused.code == "validation_error"
    assert isinstance(refused.errors, m.ProblemErrors)
    assert set(refused.errors.additional_properties) == {"name", "email"}
    assert all(
        isinstance(text, str)
        for texts in refused.errors.additional_properties.values()
        for text in texts
    )
