"""deploy/mosquitto run the way the eclipse-mosquitto image runs them: entrypoint.sh as root,
then the real mosquitto (Debian's, which drops to the `mosquitto` user after reading its
config exactly as the image's build does) with the shipped mosquitto.conf and ACL. A
temporary directory stands in for /mosquitto; only the listener port is rewritten."""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.service import run_collector
from exporters.bridge import run_bridge
from hashwatt.config import load_config
from hashwatt.influxql import InfluxQL
from hashwatt.mqtt import make_client
from sim.launch import ServiceError, _tcp_open, _wait_until, free_port
from tests.conftest import FarmFactory, wait_for, write_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the entrypoint runs as root, as in the image"),
    pytest.mark.skipif(shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None,
                       reason="Debian's mosquitto is not installed"),
]


@dataclass
class Broker:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    passwords: dict[str, str]


def _mosquitto_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no `mosquitto` user (Debian's mosquitto package creates it)")


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    _mosquitto_user()
    # under /tmp, not pytest's 0700 tree: mosquitto opens the files after dropping to its user
    root = Path(tempfile.mkdtemp(prefix="hw-mosquitto-", dir="/tmp"))
    root.chmod(0o755)
    (root / "config").mkdir()
    port = free_port()
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    assert "listener 1883\n" in conf
    conf = conf.replace("listener 1883\n", f"listener {port} 127.0.0.1\n")
    (root / "config/mosquitto.conf").write_text(conf.replace("/mosquitto/", f"{root}/"))
    shutil.copy(DEPLOY / "mosquitto/acl", root / "config/acl")
    passwords = {"north": "n0rth-" + secrets.token_hex(8),
                 "hashwatt-bridge": "br1dge-" + secrets.token_hex(8)}
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MOSQUITTO_ROOT": str(root),
           "MQTT_COLLECTOR_USER": "north", "MQTT_COLLECTOR_PASSWORD": passwords["north"],
           "MQTT_BRIDGE_PASSWORD": passwords["hashwatt-bridge"]}
    log = (root / "broker.log").open("wb")
    proc = subprocess.Popen(["/bin/sh", str(DEPLOY / "mosquitto/entrypoint.sh")], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until(lambda: _tcp_open("127.0.0.1", port), "mosquitto", proc, 20)
    except ServiceError:
        proc.kill()
        raise AssertionError((root / "broker.log").read_text()) from None
    yield Broker(root, port, proc, passwords)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    shutil.rmtree(root, ignore_errors=True)


def test_the_broker_runs_as_the_mosquitto_user_and_can_read_its_files(broker: Broker) -> None:
    user = _mosquitto_user()
    status = Path(f"/proc/{broker.proc.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(user.pw_uid)] * 4  # dropped for good
    for name in ("passwd", "acl"):
        st = (broker.root / "auth" / name).stat()
        # lib/misc_mosq.c mosquitto__fopen(restrict_read): owner = the running user, no "other"
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o600), name
    log = (broker.root / "broker.log").read_text()
    assert "Unable to open" not in log and "Future versions will refuse" not in log, log


def test_the_password_file_holds_hashes_only(broker: Broker) -> None:
    text = (broker.root / "auth/passwd").read_text()
    assert sorted(line.split(":")[0] for line in text.splitlines()) == ["hashwatt-bridge",
                                                                        "north"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())
    assert not any(p in text for p in broker.passwords.values())
    assert not list(broker.root.glob("auth/*.new"))


def test_no_password_is_given_on_a_command_line() -> None:
    script = (DEPLOY / "mosquitto/entrypoint.sh").read_text()
    calls = [line for line in script.splitlines() if "mosquitto_passwd" in line
             and not line.lstrip().startswith("#")]
    assert calls == ['mosquitto_passwd -U "$tmp" >/dev/null'], calls


def _config(tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch,
            passwords: dict[str, str]) -> Path:
    monkeypatch.setenv("T_COLLECTOR_PW", passwords["north"])
    monkeypatch.setenv("T_BRIDGE_PW", passwords["hashwatt-bridge"])
    path = tmp_path / "hashwatt.toml"
    path.write_text(f'[site]\nname = "north"\n[mqtt]\nport = {port}\n'
                    '[mqtt.collector]\nusername = "north"\n'
                    'password = { env = "T_COLLECTOR_PW" }\n'
                    '[mqtt.bridge]\nusername = "hashwatt-bridge"\n'
                    'password = { env = "T_BRIDGE_PW" }\n')
    return path


def _publish(client: mqtt.Client, port: int, topic: str) -> str:
    outcome: dict[str, str] = {}
    done, connected = threading.Event(), threading.Event()
    client.on_connect = lambda c, u, f, rc, p: (outcome.update(connect=str(rc)),
                                                connected.set())
    client.on_publish = lambda c, u, mid, rc, p: (outcome.update(rc=str(rc)), done.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(10) and outcome["connect"] == "Success", outcome
        client.publish(topic, b"{}", qos=1)
        done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome.get("rc", "no PUBACK")


def test_collector_and_bridge_log_in_from_one_config_under_the_acl(
        broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(_config(tmp_path, broker.port, monkeypatch, broker.passwords))
    received: list[str] = []
    subscribed, got = threading.Event(), threading.Event()
    bridge = make_client(cfg, "t-bridge", role="bridge")
    bridge.on_connect = lambda c, u, f, rc, p: c.subscribe("hashwatt/v1/#", qos=1)
    bridge.on_subscribe = lambda c, u, mid, rcs, p: (received.extend(str(r) for r in rcs),
                                                     subscribed.set())
    bridge.on_message = lambda c, u, msg: (received.append(msg.topic), got.set())
    bridge.connect("127.0.0.1", broker.port)
    bridge.loop_start()
    try:
        assert subscribed.wait(10) and received == ["Granted QoS 1"], received
        collector = make_client(cfg, "t-collector", role="collector")
        # the ACL: a collector writes its own site's readings, never another site's
        assert _publish(collector, broker.port, "hashwatt/v1/north/rig/r01-s01") == "Success"
        assert got.wait(10) and received[-1] == "hashwatt/v1/north/rig/r01-s01"
        collector = make_client(cfg, "t-collector", role="collector")
        assert _publish(collector, broker.port, "hashwatt/v1/south/rig/r01") == "Not authorized"
        # the bridge only reads
        publisher = make_client(cfg, "t-bridge-pub", role="bridge")
        assert _publish(publisher, broker.port, "hashwatt/v1/north/rig/r01") == "Not authorized"
    finally:
        bridge.disconnect()
        bridge.loop_stop()


def test_a_wrong_password_is_refused(broker: Broker) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-wrong",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("north", "wrong")
    outcome: list[str] = []
    done = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: (outcome.append(str(rc)), done.set())
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    done.wait(10)
    client.loop_stop()
    assert outcome[:1] == ["Not authorized"]  # MQTT v5 CONNACK 0x87 for a wrong password


def test_the_real_bridge_and_collector_run_through_the_shipped_broker(
        broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, farm: FarmFactory,
        influx_db: InfluxQL) -> None:
    """One config, two roles: the collector publishes as the site user, the bridge (its own
    MQTT v5 intake) subscribes as hashwatt-bridge, and the reading lands in InfluxDB."""
    f = farm(2, mix=("m50",))
    path = write_config(tmp_path / "c.toml", mqtt_port=broker.port, rigs=f.rigs, site="north",
                        influx=f'url = "{influx_db.client.base_url}"\n'
                               f'database = "{influx_db.database}"')
    monkeypatch.setenv("T_COLLECTOR_PW", broker.passwords["north"])
    monkeypatch.setenv("T_BRIDGE_PW", broker.passwords["hashwatt-bridge"])
    path.write_text(path.read_text().replace(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n',
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        '[mqtt.collector]\nusername = "north"\npassword = { env = "T_COLLECTOR_PW" }\n'
        '[mqtt.bridge]\nusername = "hashwatt-bridge"\npassword = { env = "T_BRIDGE_PW" }\n'))
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_bridge, args=(load_config(path, "bridge"), stop,
                                                       ready.set), daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        asyncio.run(run_collector(load_config(path, "collector"), cycles=1))
        assert wait_for(lambda: len(influx_db.rows('SELECT "online" FROM "rig"')) == 2)
    finally:
        stop.set()
        thread.join(20)
