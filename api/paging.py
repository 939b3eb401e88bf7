"""Keyset pagination: opaque cursors and the ``WHERE``/``ORDER BY`` that continue a list after one.

A cursor is base64url JSON of the sort's name, the last row's sort value and its id. Continuing
"after" that key instead of skipping an offset keeps pages stable while rows are added: nothing is
repeated and nothing that was there is skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.errors import ValidationError

INT32 = 2**31 - 1
INT64 = 2**63 - 1


@dataclass(frozen=True)
class Sort:
    """One sort order: a column, its direction, and the id column that breaks ties (always ascending).

    Rows whose sort value is NULL come last in both directions.
    """

    name: str
    column: Any
    id_column: Any
    kind: type = datetime
    id_kind: type = str
    descending: bool = False
    int_bound: int = INT32

    def order_by(self) -> list[Any]:
        ordered = self.column.desc() if self.descending else self.column.asc()
        return [ordered.nulls_last(), self.id_column.asc()]

    def after(self, value: Any, row_id: Any) -> sa.ColumnElement[bool]:
        """The rows that come after (``value``, ``row_id``) in this order."""
        if value is None:
            return sa.and_(self.column.is_(None), self.id_column > row_id)
        beyond = self.column < value if self.descending else self.column > value
        return sa.or_(
            beyond,
            sa.and_(self.column == value, self.id_column > row_id),
            self.column.is_(None),
        )

    def page(self, query: sa.Select[Any], *, cursor: str | None, limit: int) -> sa.Select[Any]:
        """``query`` ordered, continued after ``cursor``, cut at ``limit`` + 1 rows (one more tells if a next
        page exists)."""
        if cursor:
            value, row_id = decode_cursor(cursor, self)
            query = query.where(self.after(value, row_id))
        return query.order_by(*self.order_by()).limit(limit + 1)


def encode_cursor(sort: str, value: Any, row_id: Any) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps({"s": sort, "v": value, "id": row_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, Any]:
    """The sort value and id inside ``cursor``; a cursor that is damaged or for another sort is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(data, dict) or set(data) != {"s", "v", "id"}:
            raise ValueError("unexpected keys")
    except (ValueError, UnicodeError, binascii.Error):
        raise _bad_cursor("not a valid cursor") from None
    if data["s"] != sort.name:
        raise _bad_cursor(f"issued for the sort {data['s']!r}, not {sort.name!r}; start without a cursor")
    value, row_id = data["v"], data["id"]
    try:
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
            if value.tzinfo is None:
                raise ValueError("naive time")
    except (ValueError, KeyError, TypeError):
        raise _bad_cursor("not a valid cursor") from None
    for item, kind, nullable in ((value, sort.kind, True), (row_id, sort.id_kind, False)):
        if item is None and nullable:
            continue
        if not isinstance(item, kind) or isinstance(item, bool):
            raise _bad_cursor("not a valid cursor")
        if isinstance(item, int) and abs(item) > sort.int_bound:
            raise _bad_cursor("not a valid cursor")
    return value, row_id


def _bad_cursor(message: str) -> ValidationError:
    return ValidationError(f"the cursor is not usable: {message}", errors={"$.cursor": [message]})


def split_page(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    """The rows of this page, and whether another page follows."""
    return rows[:limit], len(rows) > limit
