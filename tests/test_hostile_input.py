"""Hostile MQTT input through the real broker to the real bridge and influxd, counted
exactly: every message is either stored (its tags escaped so that it stays one point of one
series) or set aside with its reason; the bridge never stops.

Expected values are derived by hand, not from the code under test:
- JSON: RFC 8259 allows neither NaN/Infinity literals nor invalid UTF-8 or lone surrogates;
  1e400 parses to infinity, which the contract refuses (no non-finite numbers); duplicate
  names are "unpredictable" in RFC 8259 §4, and both Python's json and pydantic-core's
  parser keep the last one, so does the bridge (the stored value is the second);
- topics: segments must be ids (`[A-Za-z0-9][A-Za-z0-9._-]{0,63}`); MQTT v5 §4.7.1 forbids
  wildcards in a topic name (paho refuses to send one, mosquitto would disconnect us);
- line protocol (InfluxDB 1.x models/points.go): a tag value escapes ",", "=" and " " with a
  backslash and influxd unescapes exactly those; a backslash has no escape there, so the
  encoder writes "/", and a newline is written as the two characters backslash and "n";
  an integer must fit in 64 bits, else influxd refuses the whole point ("value out of
  range"), so the encoder leaves such a field out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import FarmFactory, read_deadletters, wait_for
from tests.test_reliability import drill, publish, report, rig_doc

pytestmark = pytest.mark.e2e
TOP = "hashwatt/v1/testsite"
RACK = 'r 1,x=1\\\n"y\x00z \\'


def test_hostile_messages_are_stored_escaped_or_set_aside_exactly(
        tmp_path: Path, farm: FarmFactory) -> None:
    now = int(time.time() * 1000)
    nan = rig_doc("nan", now).replace(b'"power_w": 3000.0', b'"power_w": NaN')
    good = [
        (f"{TOP}/rig/g1", rig_doc("g1", now)),
        (f"{TOP}/rig/g2", rig_doc("g2", now, rack=RACK, customer="c=1,d 2", model="m\\",
                                  firmware="fw\nrig,a=b c=1 1", error='e "q" \\ \\')),
        (f"{TOP}/rig/g3", rig_doc("g3", now).replace(
            b'"power_w": 3000.0', b'"power_w": 1.0, "power_w": 2.0')),
        (f"{TOP}/rig/g4", rig_doc("g4", now, uptime_s=2**70)),
        (f"{TOP}/pdu/p1", json.dumps({
            "schema": 1, "kind": "pdu", "ts_ms": now, "site": "testsite", "pdu": "p1",
            "collector": "c9", "online": True, "power_w": 10.0,
            "outlets": [{"outlet": 1, "name": 'out 1,"x"=\\', "unit": "u\n2",
                         "customer": "c\u0000", "power_w": 5.0}]}).encode()),
    ]
    bad = {  # topic's last segment (or a label) -> what the reason must say
        "huge": ((f"{TOP}/rig/huge", rig_doc("huge", now, pad="x" * 300_000)), "exceeds"),
        "deep": ((f"{TOP}/rig/deep", rig_doc("deep", now).replace(
            b'"power_w": 3000.0', b'"power_w": 1.0, "x": ' + b"[" * 20_000 + b"]" * 20_000)),
                 "recursion limit"),
        "nan": ((f"{TOP}/rig/nan", nan), "finite number"),
        "inf": ((f"{TOP}/rig/inf", rig_doc("inf", now).replace(
            b'"power_w": 3000.0', b'"power_w": Infinity')), "finite number"),
        "e400": ((f"{TOP}/rig/e400", rig_doc("e400", now).replace(
            b'"power_w": 3000.0', b'"power_w": 1e400')), "finite number"),
        "utf8": ((f"{TOP}/rig/utf8", rig_doc("utf8", now).replace(b'"c9"', b'"c\xff9"')),
                 "Invalid JSON"),
        "surrogate": ((f"{TOP}/rig/surrogate", rig_doc("surrogate", now).replace(
            b'"c9"', b'"c\\ud800"')), "Invalid JSON"),
        "array": ((f"{TOP}/rig/array", b"[1, 2]"), "schema"),
        "other": ((f"{TOP}/rig/other", rig_doc("not-other", now)), "differs"),
        "unicode": ((f"{TOP}/rig/r\u00efg", rig_doc("r\u00efg", now)), "not a valid id"),
        "long": ((f"{TOP}/rig/{'a' * 65}", rig_doc("a" * 65, now)), "not a valid id"),
        "empty": ((f"{TOP}/rig/", rig_doc("x", now)), "not a valid id"),
        "topic60k": ((f"{TOP}/rig/{'b' * 60_000}", rig_doc("b", now)), "not a valid id"),
    }
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    with pytest.raises(ValueError):  # MQTT v5 4.7.1: no wildcard in a topic name
        client.publish(f"{TOP}/rig/+", b"{}")
    with drill(tmp_path, farm) as d:
        bridge = d.bridge()
        publish(d.broker.port, [m for m, _ in bad.values()] + good)
        publish(d.broker.port, [(f"{TOP}/rig/after", rig_doc("after", now + 1))])
        assert wait_for(lambda: d.db.rows('SELECT * FROM "rig" WHERE "rig" = \'after\''), 60)
        letters = read_deadletters(tmp_path / "deadletters.jsonl")
        rows = d.db.rows('SELECT "power_w", "uptime_s", "error" FROM "rig" GROUP BY *')
        report("hostile input", f"published {len(bad) + len(good) + 1}, stored "
                                f"{len(rows)} rig + 1 PDU, "
                                f"set aside {len(letters)}, bridge alive {bridge.poll() is None}")
        assert bridge.poll() is None
        assert len(letters) == len(bad)
        by_topic = {str(r["topic"]): str(r["reason"]) for r in letters}
        for (topic, _), expected in bad.values():
            assert expected in by_topic[topic], (topic, by_topic[topic])
        stored = {r["rig"]: r for r in rows}
        assert sorted(stored) == ["after", "g1", "g2", "g3", "g4"]
        assert [r["power_w"] for r in rows].count(None) == 0
        assert stored["g3"]["power_w"] == 2.0  # the last of the duplicate names
        assert stored["g4"]["uptime_s"] is None  # 2**70 does not fit: left out
        g2 = stored["g2"]
        assert (g2["rack"], g2["customer"], g2["model"], g2["firmware"]) == (
            'r 1,x=1/\\n"y\x00z /', "c=1,d 2", "m/", "fw\\nrig,a=b c=1 1")
        assert g2["error"] == 'e "q" \\ \\'  # a string field keeps its backslashes
        assert len(d.db.rows('SELECT "up" FROM "rig" WHERE "rig" = \'g2\' GROUP BY *')) == 1
        outlets = d.db.rows('SELECT "power_w" FROM "pdu_outlet" GROUP BY *')
        assert [(o["outlet_name"], o["unit"], o["customer"], o["power_w"]) for o in outlets] \
            == [('out 1,"x"=/', "u\\n2", "c\x00", 5.0)]


def test_the_hostile_payloads_in_json_terms() -> None:
    """(pure) The payloads above are what they claim: invalid for a strict JSON parser."""
    for raw in (b'{"a": NaN}', b'{"a": Infinity}', b'{"a": "\xff"}'):
        with pytest.raises(ValueError):
            json.loads(raw, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert json.loads(b'{"a": 1e400}')["a"] == float("inf")
    assert json.loads(b'{"a": 1, "a": 2}') == {"a": 2}
