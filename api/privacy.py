"""Privacy (user token): download everything kept about me, delete my account (core/privacy.py,
docs/privacy.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response, current_app
from flask.views import MethodView

from api import auth, db
from api.jsonbody import Blueprint
from api.observability import request_id
from core import privacy

blp = Blueprint("privacy", __name__, url_prefix="/v1", description="Export and erasure")

_EXPORT_DOC = {
    "responses": {
        200: {
            "description": "One JSON object: `exported_at`, then the sections "
            + ", ".join(f"`{s}`" for s in privacy.EXPORT_SECTIONS)
            + " (docs/privacy.md describes each field).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
}


@blp.route("/me/export")
class Export(MethodView):
    @auth.user
    @blp.doc(**_EXPORT_DOC)
    def get(self) -> Response:
        """Everything kept about me, as one JSON document (streamed): my account, my check-ins
        with their fixes and verdicts, unlocks, redemptions, holdouts, impressions, NFC taps,
        cards, devices and tokens (never a token's secret), and feedback."""
        user_id = auth.current_user().user_id
        # A session of its own, closed by the stream when it ends (or the client goes away):
        # the request's teardown comes before the last piece is sent.
        db.release()
        session = current_app.extensions["sessionmaker"]()
        try:
            pieces = privacy.export_user(session.connection(), user_id, datetime.now(UTC))
            first = next(pieces)  # a failure before the first byte is still problem+json
        except BaseException:
            session.close()
            raise

        def stream() -> Iterator[str]:
            try:
                yield first
                yield from pieces
            finally:
                pieces.close()
                session.close()

        return Response(
            stream(),
            status=200,
            content_type="application/json",
            headers={
                "Content-Disposition": 'attachment; filename="checkin-offers-export.json"',
                "Cache-Control": "no-store",
            },
        )


@blp.route("/me")
class Me(MethodView):
    @auth.user
    @blp.response(204)
    def delete(self) -> None:
        """Delete my account: its tokens stop working at once; its fixes, device ids, cards,
        handle and password are erased. Merchants' counts stay true: the visits, unlocks and
        redemptions they count stay, without the person. A second call with the same token is
        401 (the token is gone)."""
        privacy.erase_user(db.uow(), auth.current_user().user_id, "user", request_id())
