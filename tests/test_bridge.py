"""The bridge against a real mosquitto and a real influxd: ack after write, bad input aside."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from exporters.bridge import Bridge
from exporters.intake import Inbound
from exporters.lineproto import Point
from exporters.sinks import InfluxV1Sink, make_sink
from hashwatt.config import Config, load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from tests.conftest import read_deadletters, wait_for, write_config

pytestmark = pytest.mark.e2e
NOW_MS = int(time.time() * 1000)


def reading(n: int) -> dict:
    return {"schema": 1, "kind": "rig", "ts_ms": NOW_MS - n * 1000, "site": "testsite",
            "rig": f"r{n:03d}", "collector": "c1", "online": True,
            "hashrate_ths": 100.0 + n / 8, "power_w": 3000.0 + n, "power_source": "miner"}


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def good(n: int) -> tuple[str, bytes]:
    return f"hashwatt/v1/testsite/rig/r{n:03d}", json.dumps(reading(n)).encode()


@contextmanager
def bridge_thread(cfg: Config) -> Iterator[Bridge]:
    bridge = Bridge(cfg, make_sink(cfg))
    bridge.connect()
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    try:
        yield bridge
    finally:
        bridge.stopping.set()
        thread.join(20)
        bridge.close()


def config(tmp_path: Path, mosquitto: Mosquitto, url: str, database: str,
           client_id: str = "bridge-under-test") -> Config:
    path = write_config(tmp_path / "b.toml", mqtt_port=mosquitto.port,
                        influx=f'url = "{url}"\ndatabase = "{database}"',
                        bridge="stats_interval_s = 0.5")
    path.write_text(path.read_text().replace('client_id = "b-', f'client_id = "{client_id}-'))
    return load_config(path)


def stored(db: InfluxQL) -> dict[str, tuple[float, float]]:
    return {r["rig"]: (r["hashrate_ths"], r["power_w"])
            for r in db.rows('SELECT "hashrate_ths", "power_w", "rig" FROM "rig"')}


def test_malformed_messages_are_set_aside_and_never_block_the_good_ones(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: InfluxQL) -> None:
    cfg = config(tmp_path, mosquitto, influxd.url, influx_db.database)
    bad = [("hashwatt/v1/testsite/rig/r900", b"\x00\xffnot json"),
           ("hashwatt/v1/testsite/rig/r901", json.dumps({**reading(901), "hashrate_ths": "1"})
            .encode()),
           ("hashwatt/v1/testsite/rig/r902", json.dumps({**reading(902), "ts_ms": 99}).encode())]
    messages = [good(1), bad[0], good(2), bad[1], good(3), bad[2], good(4)]
    with bridge_thread(cfg) as bridge:
        publish(mosquitto.port, messages)
        assert wait_for(lambda: len(stored(influx_db)) == 4)
        assert wait_for(lambda: bridge.counters.dead_letters == 3)
        exporter = wait_for(lambda: influx_db.rows(
            'SELECT last("dead_letters") AS d FROM "exporter" WHERE "dead_letters" = 3'))
    assert stored(influx_db) == {f"r{n:03d}": (100.0 + n / 8, 3000.0 + n) for n in range(1, 5)}
    letters = read_deadletters(tmp_path / "deadletters.jsonl")
    assert [d["topic"] for d in letters] == [t for t, _ in bad]
    assert letters[0]["reason"].startswith("schema: payload: Invalid JSON")
    assert letters[0]["payload_b64"]
    assert letters[1]["reason"].startswith("schema: hashrate_ths: Input should be a valid number")
    assert "in the past" in letters[2]["reason"]
    assert exporter and exporter[0]["d"] == 3  # type: ignore[index]


class NumbersOnly(InfluxV1Sink):
    """A sink whose wire form carries numbers and flags only, as Prometheus remote write
    does: it cannot encode a point with a text field."""

    def encode(self, points: Sequence[Point]) -> list[str]:
        for p in points:
            text = [k for k, v in p.fields.items() if isinstance(v, str)]
            if text:
                raise ValueError(f"cannot carry the text field {text[0]!r}")
        return super().encode(points)


def test_a_message_the_sink_cannot_encode_is_set_aside_and_its_batch_mates_are_stored(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: InfluxQL) -> None:
    cfg = config(tmp_path, mosquitto, influxd.url, influx_db.database, client_id="enc-bridge")
    bridge = Bridge(cfg, NumbersOnly(influxd.url, influx_db.database))
    docs = [{k: v for k, v in reading(n).items() if k != "power_source"} for n in (1, 2, 3)]
    docs.insert(1, {**docs[0], "rig": "r902", "error": "fan 2 stopped"})
    bridge.process([Inbound(0, 0, f"hashwatt/v1/testsite/rig/{d['rig']}",
                            json.dumps(d).encode(), time.time()) for d in docs])
    bridge.close()
    # the three others in one write, exactly as sent (reading(): 100 + n/8 TH/s, 3000 + n W)
    assert stored(influx_db) == {f"r{n:03d}": (100.0 + n / 8, 3000.0 + n) for n in (1, 2, 3)}
    assert (bridge.counters.messages, bridge.counters.dead_letters) == (3, 1)
    [letter] = read_deadletters(tmp_path / "deadletters.jsonl")
    assert letter["topic"] == "hashwatt/v1/testsite/rig/r902"
    assert letter["reason"] == "cannot encode: ValueError: cannot carry the text field 'error'"


def test_readings_are_acknowledged_only_after_influxdb_stored_them(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    own = Influxd(tmp_path / "own-influxd").start()
    db = InfluxQL(own.url, "acktest")
    db.create_database()
    cfg = config(tmp_path, mosquitto, own.url, "acktest", client_id="ack-bridge")
    try:
        with bridge_thread(cfg) as bridge:
            own.stop()
            publish(mosquitto.port, [good(n) for n in range(1, 21)])
            assert wait_for(lambda: bridge.counters.write_errors >= 2)
            assert bridge.counters.messages == 0
        # the bridge gave up without acking; the broker keeps the readings for its session
        own.start()
        with bridge_thread(cfg):
            assert wait_for(lambda: len(stored(db)) == 20)
        assert stored(db) == {f"r{n:03d}": (100.0 + n / 8, 3000.0 + n) for n in range(1, 21)}
    finally:
        own.stop()


def test_a_redelivered_reading_is_the_same_point_not_a_second_one(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: InfluxQL) -> None:
    cfg = config(tmp_path, mosquitto, influxd.url, influx_db.database, client_id="dup-bridge")
    with bridge_thread(cfg):
        publish(mosquitto.port, [good(7), good(7), good(7)])
        assert wait_for(lambda: len(stored(influx_db)) == 1)
        time.sleep(0.5)
    rows = influx_db.rows('SELECT count("hashrate_ths") FROM "rig"')
    assert rows[0]["count"] == 1


def test_a_pause_in_arrivals_ends_a_batch_before_the_flush_interval() -> None:
    from exporters.bridge import Inbox
    from exporters.intake import Inbound

    inbox = Inbox()
    first = [Inbound(n, 1, "t", b"", 0.0) for n in range(3)]
    inbox.put_many(first)
    late = threading.Timer(0.3, inbox.put_many, [[Inbound(9, 1, "t", b"", 0.0)]])
    late.start()
    assert inbox.batch(size=1000, flush_s=5.0) == first  # 0.3 s of silence: no waiting on
    late.join()
    assert [m.mid for m in inbox.batch(size=1000, flush_s=5.0)] == [9]
