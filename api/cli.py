"""Operator commands, for people working from a shell: `flask --app api.wsgi COMMAND`.

    migrate                       apply the database migrations up to the newest
    create-merchant NAME EMAIL    a merchant and its owner key (the key is printed this once)
    create-key MERCHANT_ID ROLE   another key for a merchant (printed this once)
    revoke-key KEY_ID             a key stops working at once
    end-offer OFFER_ID            end an active or paused offer, for good
    code-history CODE             everything about one unlock code and every attempt to redeem it

Each command calls the same use case as the HTTP API, which commits its own unit of work and
records the change in the merchant's audit trail with the operator as its actor (role
`operator`, request id `cli:<login name>`). Refusals print `Error: ...` and exit with status 1.
Nothing prints a secret except the new key it was asked for.
"""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import marshmallow as ma
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import literal_column, select
from sqlalchemy.orm import Session, aliased

from api.schemas import KeyCreateSchema, MerchantCreateSchema
from core import accounts, privacy
from core.audit import Actor
from core.errors import DomainError, NotFoundError
from core.models import (
    ApiKey,
    Checkin,
    Merchant,
    Offer,
    Redemption,
    RedemptionAttempt,
    Unlock,
    User,
    Venue,
)
from core.uow import UnitOfWork
from offers import catalog, codes
from offers.redemptions import UNLOCK_STATUS_SQL

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


def init_app(app: Flask) -> None:
    for cmd in (
        migrate,
        create_merchant,
        create_key,
        revoke_key,
        end_offer,
        code_history,
        retention,
        erase_user,
    ):
        app.cli.add_command(cmd)


def _unit_of_work() -> UnitOfWork:
    return UnitOfWork(current_app.extensions["sessionmaker"])


def _operator() -> Actor:
    """The person at the shell, as the audit trail's actor."""
    return Actor.operator(getpass.getuser())


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "-"


@click.command("migrate")
@with_appcontext
def migrate() -> None:
    """Apply the database migrations up to the newest."""
    command.upgrade(alembic_config(current_app.config["DATABASE_URL"]), "head")
    click.echo("database schema is up to date")


@click.command("create-merchant")
@click.argument("name")
@click.argument("email")
@with_appcontext
def create_merchant(name: str, email: str) -> None:
    """Create a merchant and its owner key; the key is printed this once."""
    data = _load(MerchantCreateSchema(), {"name": name, "email": email})
    merchant, key, token = accounts.create_merchant(
        _unit_of_work(), _operator(), data["name"], data["email"]
    )
    click.echo(f"merchant  {merchant.id}  {merchant.name} <{merchant.email}>")
    click.echo(f"key       {key.id}  owner")
    click.echo(f"api_key   {token}")
    click.echo("The key is shown only this once: hand it over now.", err=True)


@click.command("create-key")
@click.argument("merchant_id", type=click.UUID)
@click.argument("role", type=click.Choice(accounts.ROLES))
@click.option("--label", default=None, help="What the key is for, e.g. 'till 2'.")
@with_appcontext
def create_key(merchant_id: uuid.UUID, role: str, label: str | None) -> None:
    """Create an API key with ROLE (owner, staff, analyst) for a merchant; printed this once."""
    data = _load(KeyCreateSchema(), {"role": role, "label": label})
    try:
        key, token = accounts.create_api_key(
            _unit_of_work(), _operator(), merchant_id, data["role"], data["label"]
        )
    except NotFoundError:
        raise click.ClickException(f"no merchant {merchant_id}") from None
    click.echo(f"key       {key.id}  {role}" + (f"  {label}" if label else ""))
    click.echo(f"api_key   {token}")
    click.echo("The key is shown only this once: hand it over now.", err=True)


@click.command("revoke-key")
@click.argument("key_id", type=click.UUID)
@with_appcontext
def revoke_key(key_id: uuid.UUID) -> None:
    """Revoke an API key: it stops working at once. Revoking it again changes nothing. A
    merchant's last live owner key is refused: create another owner key first."""
    with _unit_of_work() as uow:
        merchant_id = uow.session.scalar(select(ApiKey.merchant_id).where(ApiKey.id == key_id))
    if merchant_id is None:
        raise click.ClickException(f"no key {key_id}")
    try:
        key, revoked = accounts.revoke_api_key(_unit_of_work(), _operator(), merchant_id, key_id)
    except DomainError as exc:  # the merchant's last owner key
        raise click.ClickException(
            f"{exc.detail}: flask --app api.wsgi create-key {merchant_id} owner"
        ) from None
    if not revoked:
        click.echo(f"key {key_id} was already revoked at {_when(key.revoked_at)}")
        return
    click.echo(f"key {key_id} revoked at {_when(key.revoked_at)}")


@click.command("end-offer")
@click.argument("offer_id", type=click.UUID)
@with_appcontext
def end_offer(offer_id: uuid.UUID) -> None:
    """End an active or paused offer, for good: it unlocks nothing more (codes already issued
    can still be redeemed until they expire)."""
    with _unit_of_work() as uow:
        merchant_id = uow.session.scalar(select(Offer.merchant_id).where(Offer.id == offer_id))
    if merchant_id is None:
        raise click.ClickException(f"no offer {offer_id}")
    try:
        offer = catalog.transition(_unit_of_work(), _operator(), merchant_id, offer_id, "end")
    except DomainError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"offer {offer['id']} ({offer['title']}) is {offer['status']}")


@click.command("retention")
@with_appcontext
def retention() -> None:
    """Run the retention job once (docs/privacy.md): coarsen the check-ins older than
    RETENTION_DAYS, prune expired idempotency records and rate-limit counters. The service runs
    it by itself unless RETENTION_JOB_ENABLED is off; one run at a time either way."""
    report = privacy.apply_retention(
        current_app.extensions["engine"], retention_days=current_app.config["RETENTION_DAYS"]
    )
    if not report.ran:
        raise click.ClickException("another process is running the retention job")
    click.echo(json.dumps(report.as_dict()))


@click.command("erase-user")
@click.argument("user_id", type=click.UUID)
@with_appcontext
def erase_user(user_id: uuid.UUID) -> None:
    """Erase a mobile user's account, as DELETE /v1/me does (a person's request that reached
    support): the person goes, what merchants count stays. Erasing again changes nothing."""
    try:
        done = privacy.erase_user(
            _unit_of_work(), user_id, f"operator:{getpass.getuser()}"[:64], "cli"
        )
    except DomainError:
        raise click.ClickException(f"no user {user_id}") from None
    if not done.erased:
        click.echo(f"user {user_id} was already erased")
        return
    click.echo(f"user {user_id} erased: {json.dumps(done.counts, sort_keys=True)}")


@click.command("code-history")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_appcontext
def code_history(code: str, as_json: bool) -> None:
    """Everything about one unlock code: who unlocked it where and when, its expiry, its
    redemption, and every attempt to redeem it (outcome, key, venue)."""
    canonical = codes.normalize(code)
    if canonical is None:
        raise click.ClickException(
            "not a valid code: 11 symbols whose last is a check symbol (e.g. 7K3Q-XM9T-2RK)"
        )
    with _unit_of_work() as uow:
        history = _code_history(uow.session, canonical)
    if history is None:
        raise click.ClickException("no such code")
    if as_json:
        click.echo(json.dumps(history, indent=2, default=str))
    else:
        _print_history(history)


def _code_history(session: Session, code: str) -> dict[str, Any] | None:
    u = aliased(Unlock, name="u")  # the alias redemptions.UNLOCK_STATUS_SQL reads
    row: Any = session.execute(
        select(u, User, Offer, Venue, Checkin, Merchant, literal_column(UNLOCK_STATUS_SQL))
        .join(User, User.id == u.user_id)
        .join(Offer, Offer.id == u.offer_id)
        .join(Venue, Venue.id == u.venue_id)
        .join(Checkin, Checkin.id == u.checkin_id)
        .join(Merchant, Merchant.id == u.merchant_id)
        .where(u.code == code)
    ).one_or_none()
    if row is None:
        return None
    unlock, user, offer, venue, checkin, merchant, status = row
    redemption = session.scalar(select(Redemption).where(Redemption.unlock_id == unlock.id))
    attempt_venue = aliased(Venue)
    attempts = session.execute(
        select(RedemptionAttempt, ApiKey.role, ApiKey.label, attempt_venue.name)
        .outerjoin(ApiKey, ApiKey.id == RedemptionAttempt.api_key_id)
        .outerjoin(attempt_venue, attempt_venue.id == RedemptionAttempt.venue_id)
        .where(RedemptionAttempt.unlock_id == unlock.id)
        .order_by(RedemptionAttempt.created_at, RedemptionAttempt.id)
    ).all()
    return {
        "code": codes.format_code(code),
        "unlock": {
            "id": unlock.id,
            "status": status,
            "created_at": unlock.created_at,
            "expires_at": unlock.expires_at,
            "redeemed_at": unlock.redeemed_at,
        },
        "user": {"id": user.id, "handle": user.handle},
        "merchant": {"id": merchant.id, "name": merchant.name},
        "offer": {
            "id": offer.id,
            "title": offer.title,
            "kind": offer.rule.get("kind"),
            "status": offer.status,
        },
        "venue": {"id": venue.id, "name": venue.name},
        "checkin": {
            "id": checkin.id,
            "status": checkin.status,
            "observed_at": checkin.observed_at,
            "created_at": checkin.created_at,
        },
        "redemption": None
        if redemption is None
        else {
            "id": redemption.id,
            "redeemed_at": redemption.redeemed_at,
            "api_key_id": redemption.api_key_id,
            "venue_id": redemption.venue_id,
        },
        "attempts": [
            {
                "at": attempt.created_at,
                "outcome": attempt.outcome,
                "merchant_id": attempt.merchant_id,
                "api_key_id": attempt.api_key_id,
                "key_role": role,
                "key_label": label,
                "venue_id": attempt.venue_id,
                "venue_name": venue_name,
            }
            for attempt, role, label, venue_name in attempts
        ],
    }


def _print_history(h: dict[str, Any]) -> None:
    u = h["unlock"]
    click.echo(f"code        {h['code']}  ({u['status']})")
    click.echo(f"unlock      {u['id']}")
    click.echo(f"created     {_when(u['created_at'])}")
    click.echo(f"expires     {_when(u['expires_at'])}")
    click.echo(f"redeemed    {_when(u['redeemed_at'])}")
    click.echo(f"user        {h['user']['id']}  {h['user']['handle']}")
    o = h["offer"]
    click.echo(f"offer       {o['id']}  {o['title']}  ({o['kind']}, {o['status']})")
    click.echo(f"merchant    {h['merchant']['id']}  {h['merchant']['name']}")
    click.echo(f"venue       {h['venue']['id']}  {h['venue']['name']}")
    c = h["checkin"]
    click.echo(f"check-in    {c['id']}  {c['status']} at {_when(c['created_at'])}")
    r = h["redemption"]
    if r is not None:
        click.echo(
            f"redemption  {r['id']}  at {_when(r['redeemed_at'])}  key {r['api_key_id'] or '-'}"
            f"  venue {r['venue_id'] or '-'}"
        )
    click.echo(f"attempts    {len(h['attempts'])}")
    for a in h["attempts"]:
        key = f"{a['api_key_id'] or '-'}" + (f" ({a['key_role']})" if a["key_role"] else "")
        venue = f"{a['venue_id']} ({a['venue_name']})" if a["venue_id"] else "-"
        click.echo(
            f"  {_when(a['at'])}  {a['outcome']:<16}  merchant {a['merchant_id']}  key {key}"
            f"  venue {venue}"
        )


def _load(schema: ma.Schema, arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments checked by the HTTP API's own schema, so a shell takes exactly what the API
    takes (the text rules included: a name from a terminal may carry control characters, and
    bytes that are not UTF-8 arrive as lone surrogates)."""
    try:
        data: dict[str, Any] = schema.load(arguments)
    except ma.ValidationError as exc:
        raise click.ClickException(_messages(exc.messages)) from None
    return data


def _messages(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in messages.items())
    return str(messages)
