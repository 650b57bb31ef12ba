"""The outbox's statement as a PL/pgSQL function, planned once per connection (issue 17)

`core.webhooks.emit` put a check-in's, redemption's or feedback's events in the outbox with one
`INSERT ... SELECT` sent as literal SQL, so PostgreSQL parsed and planned it on every call: about
0.1-0.2 ms of planning against 0.2-0.3 ms of execution, a large part of what the outbox added to
a check-in (docs/integrations.md, "Cost to a check-in"). As a function its plan is kept for the
life of the connection, as migration 0018 did for the check-in's big reads. The SQL is the
statement's own.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
CREATE FUNCTION webhook_emit(p_events jsonb, p_merchant uuid, p_window_s double precision)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- the events, and one delivery per live endpoint of the merchant that subscribes to the
    -- type: an event nobody subscribes to is not stored at all
    WITH e AS (
        SELECT e.id, e.type, e.data
        FROM jsonb_to_recordset(p_events) AS e(id uuid, type text, data jsonb)
    ), subscribed AS (
        SELECT e.id AS event_id, w.id AS endpoint_id
        FROM e JOIN webhook_endpoints w
          ON w.merchant_id = p_merchant AND w.deleted_at IS NULL AND e.type = ANY(w.events)
    ), ev AS (
        INSERT INTO webhook_events (id, merchant_id, type, data, created_at)
        SELECT e.id, p_merchant, e.type, e.data, now() FROM e
        WHERE e.id IN (SELECT event_id FROM subscribed)
        RETURNING id
    )
    INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, created_at,
                                    next_attempt_at, give_up_at)
    SELECT gen_random_uuid(), ev.id, s.endpoint_id, 'pending', 0, now(), now(),
           now() + make_interval(secs => p_window_s)
    FROM ev JOIN subscribed s ON s.event_id = ev.id;
END
$$
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION webhook_emit(jsonb, uuid, double precision)")
