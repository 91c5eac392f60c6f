"""Property tests (hypothesis): the decoder never fails except by setting a message aside,
and line protocol never lets a value leave its place."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.decode import Limits, Rejected, decode
from exporters.lineproto import Point, encode

TOPIC = "hashwatt/v1/north/rig/r01-s01"
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) |
                    st.dictionaries(st.text(max_size=12), inner, max_size=6), max_leaves=20)
FIELDS = {"schema": st.just(1), "kind": st.just("rig"), "ts_ms": st.integers(),
          "site": st.sampled_from(["north", "south", "n o"]), "rig": st.text(max_size=8),
          "collector": st.text(max_size=8), "online": st.booleans() | st.integers(),
          "hashrate_ths": st.floats() | st.text(max_size=4) | st.none(),
          "power_w": st.floats(allow_nan=True) | st.integers() | st.none(),
          "boards": st.lists(st.dictionaries(st.sampled_from(["board", "hashrate_ths",
                                                              "chips"]), JSON), max_size=3),
          "fans_rpm": st.lists(st.integers() | st.text(max_size=3), max_size=3)}


def decoded_or_rejected(topic: str, payload: bytes) -> None:
    try:
        points = decode(topic, payload, prefix="hashwatt", limits=Limits(), now=1.79e9)
    except Rejected as exc:
        assert str(exc)
        return
    for point in points:
        point.line()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_decoded_or_set_aside(payload: bytes) -> None:
    decoded_or_rejected(TOPIC, payload)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELDS))
def test_any_reading_shaped_json_is_decoded_or_set_aside(doc: dict) -> None:
    decoded_or_rejected(TOPIC, json.dumps(doc, allow_nan=True).encode())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.binary(max_size=100))
def test_any_topic_is_decoded_or_set_aside(topic: str, payload: bytes) -> None:
    decoded_or_rejected(topic, payload)


def unescaped(line: str, char: str) -> int:
    """Occurrences of char that no backslash escapes, outside quoted string fields. Quotes
    are literal in the measurement-and-tags part (up to its first unescaped space)."""
    count, quoted, escaped, in_tags = 0, False, False, True
    for c in line:
        if escaped:
            escaped = False
            continue
        if c == "\\":
            escaped = True
        elif c == '"' and not in_tags:
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
        if c == " " and not quoted:
            in_tags = False
    return count


TEXT = st.text(min_size=1, max_size=20)
KEYS = st.from_regex(r"[a-z_]{1,10}", fullmatch=True)  # our own field and tag names
VALUES = st.floats(allow_nan=False, allow_infinity=False) | st.integers(
    min_value=-2**63, max_value=2**63 - 1) | st.booleans() | st.text(max_size=20)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEYS, TEXT, max_size=4), st.dictionaries(KEYS, VALUES, min_size=1,
                                                                 max_size=4))
def test_any_tag_and_field_values_stay_one_line_with_three_parts(tags: dict,
                                                                 fields: dict) -> None:
    body = encode([Point("rig", tags, fields, 1)]).decode()
    line = body[:-1]
    assert "\n" not in line and "\r" not in line
    assert unescaped(line, " ") == 2  # measurement+tags, fields, timestamp
    assert unescaped(line, ",") == len([v for v in tags.values() if v]) + len(fields) - 1


@given(st.floats())
def test_non_finite_floats_never_reach_line_protocol(value: float) -> None:
    point = Point("rig", {}, {"x": value}, 1)
    if math.isfinite(value):
        assert point.line().endswith(" 1")
    else:
        try:
            point.line()
        except ValueError:
            return
        raise AssertionError("a non-finite float was encoded")
