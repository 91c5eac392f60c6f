"""InfluxDB line protocol, escaped so that no tag or field value can create another point."""

from __future__ import annotations

import math
from dataclasses import dataclass

FieldValue = float | int | bool | str

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\\": "/"})
# InfluxDB 1.x has no escape for a backslash in a tag: one before "," or at the end breaks
# the line. Tags are identifiers, so a backslash becomes "/" there (string fields keep it).
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r",
                      "\\": "/"})


def _escape_key(text: str) -> str:
    return text.translate(_KEY)


def _field_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol cannot carry {value}")
        return repr(value)
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r"))
    return f'"{escaped}"'


@dataclass(frozen=True)
class Point:
    """One point: measurement, tags, fields and a timestamp in epoch milliseconds."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ms: int

    def line(self) -> str:
        """The point as one line of line protocol (precision ms)."""
        if not self.fields:
            raise ValueError(f"point {self.measurement} has no fields")
        tags = "".join(f",{_escape_key(k)}={_escape_key(v)}"
                       for k, v in sorted(self.tags.items()) if v != "")
        fields = ",".join(f"{_escape_key(k)}={_field_value(v)}"
                          for k, v in self.fields.items())
        return f"{self.measurement.translate(_MEASUREMENT)}{tags} {fields} {self.ts_ms}"


def encode(points: list[Point]) -> bytes:
    """Points as a line-protocol body."""
    return ("\n".join(p.line() for p in points) + "\n").encode()
