"""Measurement as it happens: the events analytics count that are not part of a use case's
transaction.

An impression is an offer shown to a signed-in user: once per user, offer and day (the local
day at the venue it was listed with), however often the app asks `nearby` that day and however
many of the offer's venues it lists. The unique `(offer_id, user_id, day)` and
`ON CONFLICT DO NOTHING` make it so in one statement, so concurrent listings cannot count twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from core.uow import execute

_RECORD_IMPRESSIONS = text(
    """
    INSERT INTO impressions (user_id, venue_id, offer_id, day)
    SELECT CAST(:user_id AS uuid), l.venue_id, l.offer_id, (now() AT TIME ZONE v.timezone)::date
    FROM unnest(CAST(:venue_ids AS uuid[]), CAST(:offer_ids AS uuid[])) AS l(venue_id, offer_id)
    JOIN venues v ON v.id = l.venue_id
    ON CONFLICT (offer_id, user_id, day) DO NOTHING
    """
)


def record_impressions(
    db: Connection | Session,
    user_id: uuid.UUID,
    listed: Iterable[tuple[uuid.UUID | str, uuid.UUID | str]],
) -> int:
    """Record that `user_id` was shown these (venue, offer) pairs (ids or their text, as nearby's
    JSON gives them); answers how many impressions
    are new today. One statement. On the request's autocommit connection it stands alone (the
    commit costs no round trip); on a session the commit makes it stand alone too."""
    pairs = list(listed)
    if not pairs:
        return 0
    result = execute(
        db,
        _RECORD_IMPRESSIONS,
        {
            "user_id": str(user_id),
            "venue_ids": [str(venue_id) for venue_id, _ in pairs],
            "offer_ids": [str(offer_id) for _, offer_id in pairs],
        },
    )
    db.commit()
    return result.rowcount
