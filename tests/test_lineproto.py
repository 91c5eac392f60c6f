"""Line protocol: exact encoding, and no tag or field value can create another point."""

from __future__ import annotations

import pytest

from exporters.lineproto import Point
from exporters.sinks import InfluxV1Sink
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd


def test_fields_keep_their_types() -> None:
    p = Point("rig", {"rig": "r1"}, {"h": 110.5, "up": 42, "on": True, "src": "pdu"}, 1000)
    assert p.line() == 'rig,rig=r1 h=110.5,up=42i,on=true,src="pdu" 1000'


def test_tags_are_sorted_and_empty_tags_left_out() -> None:
    p = Point("rig", {"rig": "r1", "customer": "", "rack": "R1"}, {"x": 1.0}, 5)
    assert p.line() == "rig,rack=R1,rig=r1 x=1.0 5"


HOSTILE = ['rack 1,rig=evil x=1 1\nrig', 'a"b', "a=b,c", "a\\", "a\rb", "x y=1i 99\nrig,rig=b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_tag_value_stays_one_tag_of_one_point_in_a_real_influxd(
        name: str, influx_db: InfluxQL, influxd: Influxd) -> None:
    sink = InfluxV1Sink(influxd.url, influx_db.database)
    sink.write([Point("rig", {"rig": name, "site": "s"}, {"x": 1.0}, 7)])
    rows = influx_db.rows('SELECT "x", "rig" FROM "rig"')
    assert len(rows) == 1
    # a tag cannot carry a newline or a backslash: they are stored as "\\n" and "/"
    want = name.replace("\\", "/").replace("\n", "\\n").replace("\r", "\\r")
    assert rows[0]["rig"] == want


def test_a_hostile_string_field_is_quoted_and_escaped() -> None:
    p = Point("rig", {"rig": "r"}, {"error": 'bad "reply"\nrig x=1'}, 1)
    assert p.line() == 'rig,rig=r error="bad \\"reply\\"\\nrig x=1" 1'


def test_non_finite_floats_are_refused() -> None:
    with pytest.raises(ValueError):
        Point("rig", {}, {"x": float("nan")}, 1).line()
