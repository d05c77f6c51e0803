"""The dashboard's alerts on SQL (``settlement.views.AlertStore``): one open alert per key, across instances."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from settlement.db import Database
from settlement.schema import AlertRow, table_of
from settlement.sql.common import insert_ignore
from settlement.views import ALERT_KINDS, AlertView

_A = table_of(AlertRow)
_VIEW = (
    _A.c.alert_id, _A.c.kind, _A.c.vehicle_id, _A.c.code, _A.c.detail, _A.c.opened_ms, _A.c.cleared_ms,
    _A.c.acked_ms, _A.c.acked_by,
)  # fmt: skip


MAX_CODE = 64
"""Characters of an alert's code kept (a fault code is cut to as many); open and clear cut it alike."""


def check_kind(kind: str) -> str:
    """``kind`` if it is one of ``ALERT_KINDS``; ``ValueError`` naming them else."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}: one of {', '.join(ALERT_KINDS)}")
    return kind


class SqlAlertStore:
    """Alerts in the settlement database. The partial unique index on (kind, vehicle_id, code) of open alerts
    decides between two dashboards opening the same alert at once: the second insert does nothing (ON CONFLICT),
    and the loser gets None."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def open(self, kind: str, vehicle_id: str, code: str, at_ms: int, detail: str | None = None) -> AlertView | None:
        row = {
            "kind": check_kind(kind),
            "vehicle_id": vehicle_id,
            "code": code[:MAX_CODE],
            "detail": None if detail is None else detail[:256],
            "opened_ms": at_ms,
            "changed_ms": at_ms,
        }
        try:
            with self._db.transaction() as conn:
                made = conn.execute(insert_ignore(conn, _A).values(row).returning(*_VIEW)).first()
        except sa.exc.IntegrityError:  # a driver or dialect that reports the race rather than ignoring it
            return None
        return _view(made) if made else None

    def clear(self, kind: str, vehicle_id: str, code: str, at_ms: int) -> AlertView | None:
        statement = (
            sa.update(_A)
            .where(_A.c.kind == kind, _A.c.vehicle_id == vehicle_id, _A.c.code == code[:MAX_CODE])
            .where(_A.c.cleared_ms.is_(None))
            .values(cleared_ms=at_ms, changed_ms=_later(at_ms))
            .returning(*_VIEW)
        )
        with self._db.transaction() as conn:
            row = conn.execute(statement).first()
        return _view(row) if row else None

    def ack(self, alert_id: int, by: str, at_ms: int) -> AlertView | None:
        statement = (
            sa.update(_A)
            .where(_A.c.alert_id == alert_id, _A.c.acked_ms.is_(None))
            .values(acked_ms=at_ms, acked_by=by[:128], changed_ms=_later(at_ms))
        )
        with self._db.transaction() as conn:
            conn.execute(statement)  # acked already: the first ack stays
            row = conn.execute(sa.select(*_VIEW).where(_A.c.alert_id == alert_id)).first()
        return _view(row) if row else None

    def alerts(self, *, open_only: bool = True, limit: int = 200) -> list[AlertView]:
        query = sa.select(*_VIEW).order_by(_A.c.opened_ms.desc(), _A.c.alert_id.desc()).limit(limit)
        if open_only:
            query = query.where(_A.c.cleared_ms.is_(None))
        with self._db.reading() as conn:
            return [_view(r) for r in conn.execute(query)]

    def changed_since(self, since_ms: int) -> list[AlertView]:
        query = (
            sa.select(*_VIEW).where(_A.c.changed_ms >= since_ms).order_by(_A.c.changed_ms, _A.c.alert_id)
        )  # through the changed_ms index
        with self._db.reading() as conn:
            return [_view(r) for r in conn.execute(query)]


def _later(at_ms: int) -> sa.ColumnElement[Any]:
    """The alert's change time moved to ``at_ms``, never back."""
    return sa.case((_A.c.changed_ms > at_ms, _A.c.changed_ms), else_=sa.literal(at_ms))


def _view(r: Any) -> AlertView:
    return AlertView(
        r.alert_id, r.kind, r.vehicle_id, r.code, r.detail, r.opened_ms, r.cleared_ms, r.acked_ms, r.acked_by
    )
