"""Locked-down transport: MQTT over TLS with passwords and a per-site ACL, InfluxDB with
authentication, secrets that never reach a log line or the published data."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.service import run_collector
from exporters.bridge import run_bridge
from exporters.sinks import InfluxV1Sink, WriteUnavailable
from hashwatt.config import load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from tests.conftest import FarmFactory, wait_for, write_config

pytestmark = pytest.mark.e2e
# the deployed ACL itself: collectors read stored receipts, the bridge writes them
ACL = (Path(__file__).parent.parent / "deploy/mosquitto/acl").read_text()
SECRETS = {"north": "n0rth-Secret-7731", "hashwatt-bridge": "br1dge-Secret-9042"}
INFLUX_PASSWORD = "infl0x-Secret-5519"


def make_certs(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca, key, csr, cert = (folder / n for n in
                                  ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca, cert, key


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, Path]]:
    folder = tmp_path_factory.mktemp("tls-broker")
    ca, cert, key = make_certs(folder)
    broker = Mosquitto(folder, tls=(ca, cert, key), passwords=SECRETS, acl=ACL).start()
    yield broker, ca
    broker.stop()


@pytest.fixture(scope="module")
def secure_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = Influxd(tmp_path_factory.mktemp("auth-influxd"), auth=True).start()
    InfluxQL(server.url, "").execute(
        f"CREATE USER admin WITH PASSWORD '{INFLUX_PASSWORD}' WITH ALL PRIVILEGES")
    InfluxQL(server.url, "hw", username="admin", password=INFLUX_PASSWORD).create_database()
    yield server
    server.stop()


def tls_client(ca: Path, user: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}",
                         protocol=mqtt.MQTTv5)
    client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
    client.username_pw_set(user, SECRETS[user])
    return client


def publish_outcome(ca: Path, port: int, user: str, topic: str) -> str:
    """The PUBACK reason the broker gives a QoS 1 publish."""
    outcome: dict[str, str] = {}
    done = threading.Event()
    client = tls_client(ca, user)

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: mqtt.ReasonCode, p: object) -> None:
        outcome["rc"] = str(rc)
        done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, b"{}", qos=1)
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return outcome.get("rc", "no PUBACK")


def test_a_collector_may_not_publish_under_another_sites_prefix(
        secure_broker: tuple[Mosquitto, Path]) -> None:
    broker, ca = secure_broker
    # "No matching subscribers" is a success code: nobody subscribed to this test topic
    assert publish_outcome(ca, broker.port, "north", "hashwatt/v1/north/rig/r1") in (
        "Success", "No matching subscribers")
    assert publish_outcome(ca, broker.port, "north",
                           "hashwatt/v1/south/rig/r1") == "Not authorized"


def test_the_bridge_user_may_read_but_not_publish(secure_broker: tuple[Mosquitto, Path]) -> None:
    broker, ca = secure_broker
    assert publish_outcome(ca, broker.port, "hashwatt-bridge",
                           "hashwatt/v1/north/rig/r1") == "Not authorized"


def test_a_client_without_tls_cannot_talk_to_the_tls_listener(
        secure_broker: tuple[Mosquitto, Path]) -> None:
    broker, _ = secure_broker
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    client.username_pw_set("north", SECRETS["north"])
    client.connect_async("127.0.0.1", broker.port)
    client.loop_start()
    connected = wait_for(client.is_connected, timeout=3)
    client.loop_stop()
    assert not connected


def test_a_wrong_influxdb_password_is_refused(secure_influx: Influxd) -> None:
    sink = InfluxV1Sink(secure_influx.url, "hw", username="admin", password="wrong")
    with pytest.raises(WriteUnavailable, match="HTTP 401"):
        sink.post(b"m v=1 1\n")


def test_readings_cross_tls_acl_and_influx_auth_and_no_secret_reaches_a_log_line(
        tmp_path: Path, farm: FarmFactory, secure_broker: tuple[Mosquitto, Path],
        secure_influx: Influxd, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    broker, ca = secure_broker
    f = farm(3, mix=("m50",))
    monkeypatch.setenv("T_MQTT", SECRETS["north"])
    monkeypatch.setenv("T_BRIDGE", SECRETS["hashwatt-bridge"])
    monkeypatch.setenv("T_INFLUX", INFLUX_PASSWORD)
    influx = (f'url = "{secure_influx.url}"\ndatabase = "hw"\nusername = "admin"\n'
              'password = { env = "T_INFLUX" }')
    path = write_config(tmp_path / "c.toml", mqtt_port=broker.port, rigs=f.rigs, influx=influx,
                        site="north")
    text = path.read_text().replace(
        "[mqtt]\n", f'[mqtt]\ntls = true\nca_file = "{ca}"\nusername = "north"\n'
                    'password = { env = "T_MQTT" }\n')
    path.write_text(text)
    collector_cfg = load_config(path)
    path.write_text(text.replace('username = "north"\npassword = { env = "T_MQTT" }',
                                 'username = "hashwatt-bridge"\npassword = { env = "T_BRIDGE" }'))
    bridge_cfg = load_config(path)
    caplog.set_level(logging.DEBUG)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_bridge, args=(bridge_cfg, stop, ready.set), daemon=True)
    thread.start()
    assert ready.wait(30)
    asyncio.run(run_collector(collector_cfg, cycles=1))
    db = InfluxQL(secure_influx.url, "hw", username="admin", password=INFLUX_PASSWORD)
    assert wait_for(lambda: len(db.rows('SELECT * FROM "rig"')) == 3)
    stop.set()
    thread.join(20)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the services did log
    for secret in [*SECRETS.values(), INFLUX_PASSWORD]:
        assert secret not in logged
    stored = json.dumps(db.rows('SELECT * FROM "rig"'))
    assert not any(s in stored for s in [*SECRETS.values(), INFLUX_PASSWORD])


def test_a_config_with_a_literal_secret_readable_by_others_warns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "loose.toml"
    path.write_text('[site]\nname = "n"\n[mqtt]\nusername = "u"\npassword = "literal-pw"\n')
    os.chmod(path, 0o644)
    load_config(path)
    assert any("readable by other users" in r.getMessage() for r in caplog.records)
    caplog.clear()
    os.chmod(path, 0o600)
    load_config(path)
    assert not any("readable by other users" in r.getMessage() for r in caplog.records)
    assert not any("literal-pw" in r.getMessage() for r in caplog.records)
