"""CSV export of tables (`?format=csv`): one header row, then one row per item; UTF-8 with a BOM so
spreadsheet programs read Chinese names correctly."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from fastapi.responses import Response

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # never a formula when opened in a spreadsheet
    return value


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A CSV document of `rows` restricted to `columns`, in that order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def csv_response(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], filename: str) -> Response:
    """A downloadable CSV response.

    Args:
        columns: header, and which keys of each row are written.
        rows: the table.
        filename: suggested file name (ASCII; ids only).
    """
    body = "\ufeff" + to_csv(columns, rows)
    return Response(body.encode(), media_type=CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


BEIJING = timezone(timedelta(hours=8))


def with_local_time(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a readable `time` column (Beijing time, ISO 8601) beside their epoch-ms `ts`."""
    out = []
    for row in rows:
        ts = row.get("ts")
        local = datetime.fromtimestamp(ts / 1000, BEIJING).isoformat(timespec="seconds") if ts is not None else None
        out.append({"time": local, **row})
    return out
