"""Reliability drills with real processes (README "Reliability drills"): the broker-crash
window, a full spool disk, read-only dead letters, a silent broker, poison messages.
Each drill ends with the verdict: polled = stored, lost 0, doubled 0, every value right."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto, free_port, plain_environment
from tests.conftest import FarmFactory, read_deadletters, wait_for, write_config
from tests.drills import Drill, rss_kb
from tests.faultproxy import FaultProxy
from tests.test_deploy_mosquitto import Broker as DeployedBroker
from tests.test_deploy_mosquitto import broker as shipped  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e
RIGS = 6
INTERVAL = 2
REPORT = os.environ.get("HASHWATT_DRILL_REPORT")  # append each verdict here (README numbers)


def report(name: str, line: str) -> None:
    """Print a drill's numbers (and keep them when asked to)."""
    print(f"{name}: {line}")
    if REPORT:
        with open(REPORT, "a") as fh:
            fh.write(f"{name}: {line}\n")


@contextlib.contextmanager
def drill(tmp_path: Path, farm: FarmFactory, *, autosave_s: int = 1, collector: str = "",
          bridge: str = "", broker_port: int = 0, influx_dir: Path | None = None,
          influx_http: str = "", influx: str = "", proxy: bool = False) -> Iterator[Drill]:
    """Broker, influxd, a 6-rig farm and a config with the drill's audit copy on; with
    proxy=True the bridge writes through a FaultProxy (d.proxy) in front of influxd."""
    broker = Mosquitto(tmp_path / "broker", port=broker_port, autosave_interval_s=autosave_s)
    if not broker_port:
        broker.start()
    server = Influxd(influx_dir or tmp_path / "influx", http_extra=influx_http).start()
    db = InfluxQL(server.url, "drill")
    db.create_database()
    front = FaultProxy(server.url).start() if proxy else None
    f = farm(RIGS, mix=("m50", "a1246", "supra"))
    url = front.url if front else server.url
    config = write_config(tmp_path / "hashwatt.toml", mqtt_port=broker.port or broker_port,
                          rigs=f.rigs, influx=f'url = "{url}"\ndatabase = "drill"\n{influx}',
                          collector=f"interval_s = {INTERVAL}\ndeadline_s = 1.5\n"
                                    f"spool_audit = true\n{collector or 'resend_after_s = 10'}",
                          bridge=f"rollup_interval_s = 0\nbatch_size = 50\n{bridge}")
    d = Drill(tmp_path, broker, server, db, config, proxy=front)
    d.start_sampling()
    try:
        yield d
    finally:
        d.stop_all()
        broker.stop()
        server.stop()
        if front is not None:
            front.stop()


@contextlib.contextmanager
def small_filesystem(mount: Path, *options: str, size: str = "1m") -> Iterator[Path]:
    """A real small filesystem (tmpfs, 1 MB unless told) mounted here for the test;
    skipped without root."""
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]),
                       "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_the_broker_crash_window_loses_nothing(tmp_path: Path, farm: FarmFactory) -> None:
    """SIGKILL the broker while the bridge cannot drain (influxd stopped): every reading the
    broker had acknowledged dies with it (autosave far away), and the spools resend them."""
    with drill(tmp_path, farm, autosave_s=3600) as d:
        d.bridge()
        d.influx.stop()  # the bridge cannot drain: the readings sit in the broker, acked
        collector = d.collector()
        assert wait_for(lambda: len(d.polled()) >= 4 * RIGS, timeout=60)
        time.sleep(1)  # the last ones reach the broker and are acknowledged
        in_window = len(d.polled())
        d.broker.stop(kill=True)
        time.sleep(1)
        d.broker.start()
        d.influx.start()
        time.sleep(2 * INTERVAL)
        v = d.conclude(collector)
        report("broker crash window", f"{in_window} readings acked by the broker before its "
                                      f"SIGKILL; {v.line()}")
        assert v.ok(), v.line()
        assert "regained" in d.logs("collector")


def test_a_full_spool_disk_is_said_once_and_survived(tmp_path: Path, farm: FarmFactory) -> None:
    """The spool on a real 1 MB filesystem that fills up, with the broker down meanwhile:
    one log line naming the path, readings kept in memory, moved to disk when space returns."""
    with small_filesystem(tmp_path / "small") as mount, drill(
            tmp_path, farm, collector=f'spool_path = "{mount}/spool.db"') as d:
        d.bridge()
        collector = d.collector()
        assert wait_for(lambda: d.db.rows('SELECT count("up") FROM "rig"'), timeout=60)
        d.broker.stop()
        filler = mount / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        os.close(fd)
        time.sleep(4 * INTERVAL)  # cycles while the disk is full and the broker away
        logged = d.logs("collector")
        assert logged.count("keeping readings in memory") == 1, logged[-2000:]
        assert f"spool {mount}/spool.db" in logged
        filler.unlink()
        time.sleep(INTERVAL + 3)
        d.broker.start()
        time.sleep(2 * INTERVAL)
        d.spool_file = mount / "spool.db"
        v = d.conclude(collector)
        assert "the disk takes writes again" in d.logs("collector")
        report("full spool disk", v.line())
        assert v.ok(), v.line()
        said = d.db.rows('SELECT max("spool_memory"), max("spool_disk_errors") '
                         'FROM "collector" WHERE "rigs_total" > 0')
        assert said[0]["max"] > 0 and said[0]["max_1"] > 0, said  # the statistics said so


def publish(port: int, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish with paho as an outside client would, waiting for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(t, p, qos=qos) for t, p in messages]
    for info in infos:
        info.wait_for_publish(timeout=20)
    client.disconnect()
    client.loop_stop()


def rig_doc(rig: str, ts_ms: int, **fields: object) -> bytes:
    doc = {"schema": 1, "kind": "rig", "ts_ms": ts_ms, "site": "testsite", "rig": rig,
           "collector": "c9", "online": True, "hashrate_ths": 100.0, "power_w": 3000.0}
    doc.update(fields)
    return json.dumps(doc).encode()


def test_poison_messages_are_set_aside_and_the_bridge_carries_on(
        tmp_path: Path, farm: FarmFactory) -> None:
    """The issue's poison: efficiency inf from 1e308 W at 1e-300 TH/s, a PDU phase at
    1e308 A of a 1e-300 A breaker, NaN, non-JSON, oversized; then 3 s of junk: the bridge
    keeps running, stores the good, the dead letters stay within their bound."""
    with drill(tmp_path, farm, bridge="dead_letter_max_bytes = 65536\ndead_letter_keep = 2"
               ) as d:
        bridge = d.bridge()
        now = int(time.time() * 1000)
        top = "hashwatt/v1/testsite"
        pdu = {"schema": 1, "kind": "pdu", "ts_ms": now, "site": "testsite", "pdu": "p1",
               "collector": "c9", "online": True,
               "phases": [{"phase": "L1", "current_a": 1e308, "rating_a": 1e-300}]}
        publish(d.broker.port, [
            (f"{top}/rig/inf", rig_doc("inf", now, power_w=1e308, hashrate_ths=1e-300)),
            (f"{top}/pdu/p1", json.dumps(pdu).encode()),
            (f"{top}/rig/nan", b'{"schema":1,"rig":"nan","hashrate_ths":NaN}'),
            (f"{top}/rig/junk", b"\xff\xfe not json"),
            (f"{top}/rig/big", b"{" + b" " * 300_000 + b"}"),
            (f"{top}/rig/good", rig_doc("good", now + 1))])
        assert wait_for(lambda: d.db.rows('SELECT * FROM "rig" WHERE "rig" = \'good\''), 30)
        inf = d.db.rows('SELECT * FROM "rig" WHERE "rig" = \'inf\'')
        assert inf and inf[0]["power_w"] == 1e308 and inf[0].get("efficiency_j_th") is None
        phase = d.db.rows('SELECT * FROM "pdu_phase"')
        assert phase and phase[0]["current_a"] == 1e308 and phase[0].get("load_pct") is None
        letters = read_deadletters(tmp_path / "deadletters.jsonl")
        assert {r["topic"].split("/")[-1] for r in letters} == {"nan", "junk", "big"}
        started = time.monotonic()
        while time.monotonic() - started < 3:  # one client allowed to publish: 3 s of junk
            publish(d.broker.port, [(f"{top}/rig/junk", b"x" * 2000)] * 200, qos=0)
        publish(d.broker.port, [(f"{top}/rig/after", rig_doc("after", now + 2))])
        assert wait_for(lambda: d.db.rows('SELECT * FROM "rig" WHERE "rig" = \'after\''), 60)
        assert bridge.poll() is None
        files = list(tmp_path.glob("deadletters.jsonl*"))
        total = sum(p.stat().st_size for p in files)
        assert len(files) <= 3 and total <= 3 * 65536
        report("poison messages", f"bridge alive, good stored, dead letters {total} bytes in "
                                  f"{len(files)} files (bound 3 x 64 KiB); peak RSS bridge "
                                  f"{d.peak_kb.get('bridge', 0) / 1024:.0f} MB")


def test_dead_letters_on_a_read_only_disk_are_counted_not_fatal(
        tmp_path: Path, farm: FarmFactory) -> None:
    with small_filesystem(tmp_path / "ro", "ro") as mount, drill(tmp_path, farm) as d:
        d.config.write_text(d.config.read_text().replace(
            'dead_letter_file = "deadletters.jsonl"', f'dead_letter_file = "{mount}/dl.jsonl"'))
        bridge = d.bridge()
        now = int(time.time() * 1000)
        top = "hashwatt/v1/testsite"
        publish(d.broker.port, [(f"{top}/rig/bad{i}", b"not json") for i in range(5)]
                + [(f"{top}/rig/good", rig_doc("good", now))])
        assert wait_for(lambda: d.db.rows('SELECT * FROM "rig" WHERE "rig" = \'good\''),
                        30)
        assert bridge.poll() is None
        logged = d.logs("bridge")
        assert logged.count("cannot write") == 1 and f"{mount}/dl.jsonl" in logged


class SilentBroker:
    """Accepts TCP connections on a port and never says a word (no CONNACK)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                self.held.append(conn)
        self.sock.close()  # on this thread: a close under a blocked accept() keeps the port

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.closing.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


def test_a_silent_broker_does_not_stop_polling_and_nothing_is_lost(
        tmp_path: Path, farm: FarmFactory) -> None:
    """The broker's port accepts TCP and never sends CONNACK: the collector polls and spools
    from its first second; when a real broker takes the port every reading is stored."""
    port = free_port()
    silent = SilentBroker(port)
    with drill(tmp_path, farm, broker_port=port) as d:
        d.config.write_text(d.config.read_text().replace("[mqtt]\n", "[mqtt]\nkeepalive_s = 5\n"))
        collector = d.collector()
        assert wait_for(lambda: d.spool().exists() and len(d.polled()) >= 3 * RIGS, timeout=30)
        assert collector.poll() is None
        silent.close()
        d.broker.start()
        d.bridge()
        time.sleep(2 * INTERVAL)
        v = d.conclude(collector)
        report("silent broker", v.line())
        assert v.ok(), v.line()
        # the cycle statistics said so while it lasted (and were kept, stamped once)
        said = d.db.rows('SELECT "broker_connected" FROM "collector" WHERE "rigs_total" > 0')
        assert [r["broker_connected"] for r in said][:2] == [False, False], said


def test_service_children_inherit_no_secrets(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHWATT_MQTT_PASSWORD", "s3cret-should-stay-home")
    assert "HASHWATT_MQTT_PASSWORD" not in plain_environment()
    broker = Mosquitto(tmp_path / "b", passwords={"u": "pw-not-on-argv-4711"}).start()
    try:
        assert broker.proc is not None
        pid = broker.proc.pid
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"s3cret-should-stay-home" not in environ
        assert b"pw-not-on-argv-4711" not in cmdline
        assert "pw-not-on-argv-4711" not in (tmp_path / "b" / "passwd").read_text()
        assert rss_kb(pid) > 0
    finally:
        broker.stop()


class HostileAxeOS:
    """AxeOS-speaking rigs (the page pyasic's factory recognises, GET /api/system/info) on
    loopback addresses of their own, each lying in its own way: NaN, absurd values, a huge
    reply, an endless one."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.loop = __import__("asyncio").new_event_loop()
        self.servers: list[object] = []
        # huge and endless replies start once set: pyasic's identification reads a reply
        # whole (no bound we could set without patching it), our polls must not
        self.hostile = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def info(kind: str) -> bytes:
        good = {"ASICModel": "BM1368", "asicCount": 1, "smallCoreCount": 1276,
                "frequency": 490.0, "hashRate": 600.0, "power": 15.0, "temp": 55.0,
                "vrTemp": 50.0, "fanrpm": 5000, "uptimeSeconds": 3600, "hostname": kind,
                "version": "v2.4.5", "boardVersion": "401"}
        if kind == "nan":
            return json.dumps({**good, "hashRate": float("nan"), "temp": float("nan")}).encode()
        if kind == "absurd":  # 1e30 GH/s = 1e27 TH/s; a million rpm; 1e308 W
            return json.dumps({**good, "hashRate": 1e30, "fanrpm": 1_000_000,
                               "power": 1e308, "temp": 1e6}).encode()
        return json.dumps(good).encode()

    async def _serve(self, kind: str, reader: object, writer: object) -> None:
        import asyncio
        r: asyncio.StreamReader = reader  # type: ignore[assignment]
        w: asyncio.StreamWriter = writer  # type: ignore[assignment]
        try:
            request = (await r.readuntil(b"\r\n\r\n")).decode(errors="replace")
            path = request.split(" ")[1] if " " in request else "/"
            if path == "/" and kind == "endless-page":  # endless from the first GET /
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"10000\r\n" + b"<p>AxeOS</p>".ljust(0x10000) + b"\r\n"
                while True:
                    w.write(chunk)
                    await w.drain()
            elif path == "/":
                body = b"<html><head><title>AxeOS</title></head></html>"
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            elif not path.startswith("/api/system/info"):
                w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif kind == "huge-info" or (kind == "huge" and self.hostile.is_set()):
                # 64 MB of a JSON array, announced (huge-info: from the first request on)
                size = 64 << 20
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(size).encode() + b"\r\n\r\n[")
                chunk = b"1," * 32768
                for _ in range(size // len(chunk)):
                    w.write(chunk)
                    await w.drain()
            elif kind == "endless" and self.hostile.is_set():  # chunked, never ends
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
                while True:
                    w.write(chunk)
                    await w.drain()
            else:
                body = self.info(kind)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await w.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            w.close()

    def start(self, kinds: list[str]) -> list[str]:
        """One server per kind on port 80 of its own address; the addresses."""
        import asyncio
        import functools
        addresses = []
        for n, kind in enumerate(kinds, 1):
            address = f"{self.base}.{n}"
            coro = asyncio.start_server(functools.partial(self._serve, kind), address, 80)
            try:
                server = asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)
            except PermissionError:
                self.stop()
                pytest.skip("port 80 (where pyasic looks for AxeOS) needs root")
            self.servers.append(server)
            addresses.append(address)
        return addresses

    def stop(self) -> None:
        """Close every server and the loop."""
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)  # type: ignore[attr-defined]
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_hostile_devices_cost_their_own_fields_and_no_memory(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """NaN and absurd values are dropped field by field (the rest published, flagged); a
    64 MB reply and an endless one (after identification) cost that rig its deadline, not
    the collector's memory."""
    kinds = ["good", "nan", "absurd", "huge", "endless", "huge-info", "endless-page"]
    servers = HostileAxeOS(f"127.251.{os.getpid() % 250}")
    addresses = servers.start(kinds)
    try:
        # state_dir: the spool beside the config, not the shared /var/lib/hashwatt default
        lines = [f'state_dir = "."\n[site]\nname = "testsite"\n[mqtt]\nhost = "127.0.0.1"\n'
                 f'port = {mosquitto.port}\n',
                 '[collector]\nid = "hostile"\ninterval_s = 3\ndeadline_s = 2.5\n'
                 'spool_audit = true\n']
        lines += [f'[[rigs]]\nid = "{k}"\naddress = "{a}"\n'
                  for k, a in zip(kinds, addresses, strict=True)]
        config = tmp_path / "hostile.toml"
        config.write_text("\n".join(lines))
        d = Drill(tmp_path, mosquitto, None, None, config)  # type: ignore[arg-type]
        d.start_sampling(every=0.05)
        proc = d.collector(cycles=4)
        assert wait_for(lambda: len(d.polled()) >= len(kinds), timeout=60)
        servers.hostile.set()
        assert proc.wait(timeout=120) == 0
        d.sampling.set()
        by_rig: dict[str, list[dict]] = {}
        for (rig, _), doc in sorted(d.polled().items()):
            by_rig.setdefault(rig, []).append(doc)
        assert {k: len(v) for k, v in by_rig.items()} == dict.fromkeys(kinds, 4)
        good, nan, absurd = by_rig["good"][-1], by_rig["nan"][-1], by_rig["absurd"][-1]
        assert good["online"] and good["hashrate_ths"] == 0.6 and "invalid" not in good
        # 600 GH/s is 0.6 TH/s (AxeOS reports GH/s)
        assert nan["online"] is True and nan["hashrate_ths"] is None
        assert any(i.startswith("hashrate_ths: not finite") for i in nan["invalid"])
        assert nan["power_w"] == 15.0
        assert absurd["online"] is True and absurd["hashrate_ths"] is None
        assert absurd["fans_rpm"] == [] and absurd["power_w"] is None
        assert any("hashrate_ths: 1e+27 outside" in i for i in absurd["invalid"])
        assert any("fans_rpm: 1e+06 outside" in i for i in absurd["invalid"])
        for kind in ("huge", "endless"):  # hostile from the second cycle on
            assert by_rig[kind][0]["online"], by_rig[kind][0]
            assert not any(r["online"] for r in by_rig[kind][2:]), by_rig[kind]
        # hostile while pyasic would identify them: our bounded probe (collector/rigs/
        # probe.py, 1 MB) stops it first, every cycle (each failed identification is retried)
        over = "identification: reply over 1 MB on port 80{}: not a miner?"
        assert [r["error"] for r in by_rig["huge-info"]] == [over.format(
            " (/api/system/info)")] * 4
        assert [r["error"] for r in by_rig["endless-page"]] == [over.format("")] * 4
        assert not any(r["online"] for r in by_rig["huge-info"] + by_rig["endless-page"])
        peak = d.peak_kb["collector"] / 1024
        report("hostile devices", f"7 AxeOS rigs x 4 cycles: good, NaN, absurd (fields dropped "
                                  f"and flagged, reading kept), 64 MB reply, endless reply "
                                  f"(offline within the deadline), 64 MB /api/system/info and "
                                  f"endless / from the first request (not identified: reply "
                                  f"over 1 MB); collector peak RSS {peak:.0f} MB")
        assert peak < 250, f"collector peak RSS {peak:.0f} MB"
    finally:
        servers.stop()


def test_sighup_reloads_the_inventory_and_keeps_the_spool(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto) -> None:
    f = farm(4, mix=("m50", "supra"))
    first, later = f.rigs[:2], f.rigs[1:]
    common = dict(mqtt_port=mosquitto.port,
                  collector=f"interval_s = {INTERVAL}\ndeadline_s = 1.5\nspool_audit = true")
    config = write_config(tmp_path / "hashwatt.toml", rigs=first, **common)  # type: ignore[arg-type]
    d = Drill(tmp_path, mosquitto, None, None, config)  # type: ignore[arg-type]
    proc = d.collector()
    try:
        assert wait_for(lambda: {r for r, _ in d.polled()} == {r.rig_id for r in first}, 30)
        write_config(config, rigs=later, **common)  # type: ignore[arg-type]
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: {r.rig_id for r in later} <= {r for r, _ in d.polled()}, 30)
        assert proc.poll() is None
        config.write_text(config.read_text() + "\n[[rigs]]\nid = \"bad id!\"\n")
        proc.send_signal(signal.SIGHUP)
        taken = len(d.polled())
        assert wait_for(lambda: len(d.polled()) >= taken + 2 * len(later), 30)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    logged = d.logs("collector")
    # write_config numbers slots by position: the rig kept moved from slot 2 to 1 (changed)
    assert "SIGHUP: inventory reloaded: 3 rigs (2 added, 1 removed, 1 changed)" in logged
    assert "not reloaded" in logged and "keeping the 3 rigs" in logged
    removed = first[0].rig_id
    stamps = sorted(ts for r, ts in d.polled() if r == removed)
    assert stamps and all(ts <= min(t for r, t in d.polled() if r == later[-1].rig_id)
                          for ts in stamps)



def test_the_shipped_broker_keeps_no_password_in_its_environment(
        shipped: DeployedBroker) -> None:  # noqa: F811 - the imported fixture
    """deploy/mosquitto/entrypoint.sh run for real (tests/test_deploy_mosquitto.py's fixture):
    mosquitto needs the hashed file, not the passwords its entrypoint was given."""
    environ = Path(f"/proc/{shipped.proc.pid}/environ").read_bytes()
    assert b"MQTT_COLLECTOR_USER=north" in environ  # it is the broker's environment
    assert not any(p.encode() in environ for p in shipped.passwords.values())


def test_readings_the_broker_dropped_are_sent_again_once_later_ones_are_stored(
        tmp_path: Path, farm: FarmFactory) -> None:
    """No bridge has subscribed yet: the broker acknowledges the readings and drops them (no
    subscriber). Once a bridge stores newer readings, the older unstored ones are resent by
    the running collector (no reconnect, no restart), resend_after_s after them."""
    with drill(tmp_path, farm, collector="resend_after_s = 3") as d:
        collector = d.collector()
        assert wait_for(lambda: len(d.polled()) >= 2 * RIGS, timeout=30)
        dropped = len(d.polled())
        d.bridge()
        assert wait_for(lambda: d.verdict().lost == 0 and len(d.polled()) > dropped,
                        timeout=60, every=1)
        assert collector.poll() is None  # the same process, never reconnected
        logged = d.logs("collector")
        assert "sending them again" in logged and "lost the broker" not in logged
        v = d.conclude(collector)
        report("broker without subscriber", f"{dropped} readings acked and dropped before a "
                                            f"bridge subscribed; {v.line()}")
        assert v.ok(), v.line()
