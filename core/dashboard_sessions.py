"""Dashboard sign-ins that signing out ends on the server, not only in the browser.

The dashboard's cookie (api/dashboard/session.py) is signed and holds the merchant's key sealed;
it also names a row here. Every dashboard request (pages, their JSON calls and the API proxy)
looks the row up with one indexed read (`is_open`), so deleting it (`end`) ends a copied cookie
as well as the browser's own. Rows expire with the cookie's lifetime; a sign-in clears its key's
expired rows. Revoking the key ends its sessions too: the key is checked on every request.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, text
from sqlalchemy.orm import Session

from core.models import DashboardSession
from core.uow import UnitOfWork, execute


def open_session(uow: UnitOfWork, api_key_id: uuid.UUID, lifetime: timedelta) -> uuid.UUID:
    """A new sign-in of this key, open for `lifetime`: its id goes into the cookie."""
    now = datetime.now(UTC)
    with uow:
        uow.session.execute(
            delete(DashboardSession).where(
                DashboardSession.api_key_id == api_key_id, DashboardSession.expires_at <= now
            )
        )
        row = DashboardSession(api_key_id=api_key_id, expires_at=now + lifetime)
        uow.session.add(row)
        uow.session.flush()
        uow.commit()
        return row.id


def end_session(uow: UnitOfWork, session_id: uuid.UUID) -> bool:
    """Sign out: the session no longer opens anything, whoever holds its cookie. Whether it was
    open (ending it twice changes nothing)."""
    with uow:
        gone = execute(
            uow.session, delete(DashboardSession).where(DashboardSession.id == session_id)
        ).rowcount
        uow.commit()
        return bool(gone)


_OPEN = text("SELECT 1 FROM dashboard_sessions WHERE id = :id AND expires_at > now()")


def is_open(db: Session | Connection, session_id: uuid.UUID) -> bool:
    """Whether the sign-in is still open: not signed out and not expired."""
    return execute(db, _OPEN, {"id": session_id}).first() is not None
