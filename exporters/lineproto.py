"""Points, and InfluxDB line protocol for the sinks that speak it (exporters/sinks), escaped so
that no tag or field value can create another point."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from hashwatt.errors import SinkError

FieldValue = float | int | bool | str

_INF = float("inf")
# line protocol integers are signed 64-bit: influxd refuses the whole point for one outside
# ("unable to parse integer ...: value out of range"), so such a value is left out instead
_I64 = 2**63
_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\\": "/"})
# InfluxDB 1.x has no escape for a backslash in a tag: one before "," or at the end breaks
# the line. Tags are identifiers, so a backslash becomes "/" there (string fields keep it).
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r",
                      "\\": "/"})


@lru_cache(maxsize=65536)
def _escape_key(text: str) -> str:
    """Escaped tag key, tag value or field key (they repeat: cached)."""
    return text.translate(_KEY)


class NonFinite(SinkError, ValueError):
    """A number that line protocol cannot carry (inf, NaN, an integer beyond 64 bits)."""


class _Dropped:
    """Non-finite field values left out of their points since start."""

    count = 0


DROPPED = _Dropped()


def _field_value(value: FieldValue) -> str:
    kind = type(value)  # exact types, most frequent first: this runs for every field
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise NonFinite(f"line protocol cannot carry {value}")
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        if not -_I64 <= value < _I64:  # type: ignore[operator]
            raise NonFinite(f"line protocol cannot carry the integer {value}")
        return f"{value}i"
    if isinstance(value, str):
        escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                   .replace("\r", "\\r"))
        return f'"{escaped}"'
    return _field_value(float(value) if isinstance(value, float) else int(value))


class _FieldKeys(dict[str, str]):
    """Escaped field keys: a fixed set written on every point, so a plain dict lookup."""

    def __missing__(self, key: str) -> str:
        if len(self) > 4096:  # keys come from the contract; bound it all the same
            self.clear()
        escaped = self[key] = _escape_key(key)
        return escaped


_FIELD_KEYS = _FieldKeys()


@lru_cache(maxsize=256)
def _measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


@lru_cache(maxsize=16384)
def _tag_text(items: tuple[tuple[str, str], ...]) -> str:
    """The escaped tag set, sorted by key as InfluxDB prefers (a rig's tags repeat every poll
    and on every board: cached, so the sorting happens once per tag set)."""
    return "".join([f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(items) if v != ""])


def tag_text(tags: dict[str, str]) -> str:
    """The tag set as written after the measurement: sorted, escaped, empty values left out."""
    return _tag_text(tuple(tags.items()))


class Point(NamedTuple):
    """One point: measurement, tags, fields and a timestamp in epoch milliseconds: what
    exporters/decode.py produces and every sink takes (exporters/sinks; a sink with another
    wire form reads the first four and ignores `tags_line`).

    A NamedTuple: the bridge builds several per message and a frozen dataclass's __init__
    costs three times as much. `tags_line` is tag_text(tags) when the caller has it already
    (a rig's boards share the rig's tags)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ms: int
    tags_line: str = ""

    def line(self) -> str:
        """The point as one line of line protocol (precision ms)."""
        if not self.fields:
            raise ValueError(f"point {self.measurement} has no fields")
        tags = self.tags_line or tag_text(self.tags)
        keys = _FIELD_KEYS
        # finite floats and ints (most fields) inline; NaN fails the comparison, refused below
        try:
            fields = ",".join([
                f"{keys[k]}={v!r}" if type(v) is float and -_INF < v < _INF
                else f"{keys[k]}={v}i" if type(v) is int and -_I64 <= v < _I64
                else f"{keys[k]}={_field_value(v)}"
                for k, v in self.fields.items()])
        except NonFinite:
            fields = self._finite_fields()
        return f"{_measurement(self.measurement)}{tags} {fields} {self.ts_ms}"

    def _finite_fields(self) -> str:
        """The fields without the ones line protocol cannot carry (non-finite floats,
        integers beyond 64 bits; each left out is counted in DROPPED)."""
        kept = []
        for key, value in self.fields.items():
            try:
                kept.append(f"{_FIELD_KEYS[key]}={_field_value(value)}")
            except NonFinite:
                DROPPED.count += 1
        if not kept:
            raise ValueError(f"point {self.measurement} has no finite field")
        return ",".join(kept)


def line_without(point: Point, line: str, drop: frozenset[str]) -> str | None:
    """The point's line without the fields in `drop` (None when nothing else is left).
    `line` is point.line(): when the dropped fields are numbers that end its field set (the
    decoder appends the tariff figures last, exporters/decode.py pricing) they are cut off
    the line instead of rendering the point again (this runs for every customer point). The
    last match is the real one: only the dropped numbers follow it, while a string field
    before it could hold the text."""
    fields = point.fields
    private = [k for k in fields if k in drop]
    if not private:
        return line
    newest = reversed(fields)
    tail = [next(newest) for _ in private]
    if set(tail) == set(private) and all(type(fields[k]) in (int, float) for k in private):
        first = _FIELD_KEYS[tail[-1]]
        cut = max(line.rfind(f",{first}="), line.rfind(f" {first}="))
        if line[cut] == " ":
            return None
        return line[:cut] + line[line.rindex(" "):]
    kept = {k: v for k, v in fields.items() if k not in drop}
    return point._replace(fields=kept).line() if kept else None


def lines(points: Sequence[Point]) -> str:
    """Points as line-protocol text, each line ending in a newline."""
    return "\n".join([p.line() for p in points]) + "\n"


def encode(points: Sequence[Point]) -> bytes:
    """Points as a line-protocol body."""
    return lines(points).encode()
