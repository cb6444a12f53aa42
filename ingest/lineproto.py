"""InfluxDB line protocol: escaping and formatting, with series keys built once per device.

Rules (InfluxDB 1.x line protocol): measurement names escape `,` and space; tag keys, tag values and
field keys escape `,`, `=` and space; string field values are double-quoted with `"` and `\\` escaped.
Tags are sorted by key, the order InfluxDB stores them in, so it need not sort them on every write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from parkmodel.points import POINTS

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": r"\\"})


class LineProtocolError(ValueError):
    """A name or value that line protocol cannot carry (empty, or with a line break)."""


def _check_name(value: str, what: str) -> None:
    if not value:
        raise LineProtocolError(f"{what} must not be empty")
    if "\n" in value or "\r" in value:
        raise LineProtocolError(f"{what} {value!r} contains a line break")
    if value.endswith("\\"):
        # A trailing backslash would escape the separator that follows it.
        raise LineProtocolError(f"{what} {value!r} ends with a backslash")


def escape_measurement(name: str) -> str:
    """Escape a measurement name.

    Args:
        name: the measurement, e.g. `telemetry`.
    """
    _check_name(name, "measurement")
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(value: str, what: str = "tag or field key") -> str:
    """Escape a tag key, a tag value or a field key.

    Args:
        value: the text to escape.
        what: what the text is (for the error message).
    """
    _check_name(value, what)
    return value.translate(_KEY_ESCAPES)


def string_field(value: str) -> str:
    """A string field value, quoted and escaped (line breaks are allowed inside the quotes).

    Args:
        value: the string.
    """
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def float_field(value: float) -> str:
    """A float field value (`repr` round-trips exactly and is never mistaken for an integer).

    Args:
        value: a finite number.
    """
    return repr(float(value))


def int_field(value: int) -> str:
    """An integer field value (`i` suffix).

    Args:
        value: the integer.
    """
    return f"{int(value)}i"


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,k1=v1,k2=v2` with tags sorted by key.

    Args:
        measurement: the measurement name.
        tags: tag keys and values (none empty).
    """
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        parts.append(f"{escape_key(key, 'tag key')}={escape_key(tags[key], f'tag {key}')}")
    return ",".join(parts)


def line(series: str, fields: str, ts_ms: int) -> str:
    """One point: the series key, its formatted fields and the timestamp in ms.

    Args:
        series: from `series_key`.
        fields: `k=v,k=v` already formatted.
        ts_ms: epoch milliseconds (write with precision=ms).
    """
    return f"{series} {fields} {ts_ms}"


# Telemetry field names come from the point dictionary, so their escaped forms are computed once.
FIELD_KEYS: dict[str, str] = {name: escape_key(name, "field key") for name in POINTS}


def float_fields(fields: Mapping[str, float]) -> str:
    """`k=v,...` for telemetry fields (all floats).

    Args:
        fields: field name to value; names outside the point dictionary are escaped on the fly.
    """
    keys = FIELD_KEYS
    return ",".join([f"{keys.get(k) or escape_key(k, 'field key')}={v!r}" for k, v in fields.items()])


def telemetry_lines(series: str, points: Iterable[tuple[int, Mapping[str, float]]]) -> list[str]:
    """Lines for the points of one telemetry message (all of one series).

    Args:
        series: the device's preformatted series key.
        points: `(ts_ms, fields)` pairs; field values already validated finite floats.
    """
    return [f"{series} {float_fields(fields)} {ts}" for ts, fields in points]
