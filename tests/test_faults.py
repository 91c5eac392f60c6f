"""Fault injection against the real mosquitto and influxd: every reading the collector
polled is stored in InfluxDB once (none missing, none doubled), whatever is killed."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hashwatt.influxql import InfluxQL
from hashwatt.launch import Influxd, Mosquitto
from tests.conftest import FarmFactory, wait_for, write_config

pytestmark = pytest.mark.e2e
RIGS = 6
INTERVAL = 3


@dataclass
class Chain:
    """A broker, a database, a farm, and the collector and bridges as processes."""

    tmp: Path
    broker: Mosquitto
    influx: Influxd
    db: InfluxQL
    config: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{args[0]}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def bridge(self, config: Path | None = None) -> subprocess.Popen[bytes]:
        ready = self.tmp / f"bridge-{uuid.uuid4().hex[:6]}.ready"
        proc = self.spawn("bridge", str(config or self.config), f"--ready-file={ready}")
        assert wait_for(ready.exists, timeout=30), "bridge did not subscribe"
        return proc

    def collector(self, cycles: int) -> subprocess.Popen[bytes]:
        return self.spawn("collect", str(self.config), f"--cycles={cycles}")

    def polled(self) -> int:
        """Every rig reading the collector ever spooled (the drill's audit copy)."""
        with sqlite3.connect(self.tmp / "hashwatt-spool.db") as db:
            row = db.execute("SELECT count(*) FROM audit WHERE topic LIKE '%/rig/%'").fetchone()
        return int(row[0])

    def stored(self) -> int:
        rows = self.db.rows('SELECT count("up") FROM "rig"')
        return int(rows[0]["count"]) if rows else 0

    def assert_complete(self, timeout: float = 120) -> None:
        polled = self.polled()
        assert polled >= RIGS * 2
        assert wait_for(lambda: self.stored() >= polled, timeout=timeout, every=1), (
            f"stored {self.stored()} of {polled} readings")
        assert self.stored() == polled
        per_rig = self.db.rows('SELECT count("up") FROM "rig" GROUP BY "rig"')
        assert sum(r["count"] for r in per_rig) == polled and len(per_rig) == RIGS


@pytest.fixture
def chain(tmp_path: Path, farm: FarmFactory, influxd: Influxd) -> Iterator[Chain]:
    broker = Mosquitto(tmp_path / "broker").start()
    own_influx = Influxd(tmp_path / "influx").start()
    db = InfluxQL(own_influx.url, "faults")
    db.create_database()
    f = farm(RIGS, mix=("m50", "a1246", "supra"))
    config = write_config(tmp_path / "hashwatt.toml", mqtt_port=broker.port, rigs=f.rigs,
                          influx=f'url = "{own_influx.url}"\ndatabase = "faults"',
                          collector=f"interval_s = {INTERVAL}\nspool_audit = true",
                          bridge="rollup_interval_s = 0\nbatch_size = 50")
    c = Chain(tmp_path, broker, own_influx, db, config)
    yield c
    for proc in c.procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
    broker.stop()
    own_influx.stop()


def finish(proc: subprocess.Popen[bytes], timeout: float = 150) -> None:
    assert proc.wait(timeout=timeout) == 0


def test_a_broker_killed_for_30_s_mid_run_loses_nothing(chain: Chain) -> None:
    chain.bridge()
    collector = chain.collector(cycles=16)
    time.sleep(2 * INTERVAL)
    chain.broker.stop(kill=True)
    time.sleep(30)
    chain.broker.start()
    finish(collector)
    chain.assert_complete()


def test_influxdb_stopped_for_60_s_loses_nothing(chain: Chain) -> None:
    chain.bridge()
    collector = chain.collector(cycles=8)
    time.sleep(2 * INTERVAL)
    chain.influx.stop()
    time.sleep(60)
    chain.influx.start()
    finish(collector)
    chain.assert_complete()


def test_an_exporter_killed_mid_batch_loses_nothing(chain: Chain) -> None:
    bridge = chain.bridge()
    collector = chain.collector(cycles=10)
    time.sleep(3 * INTERVAL)
    bridge.send_signal(signal.SIGKILL)
    bridge.wait()
    time.sleep(5)
    chain.bridge()
    finish(collector)
    chain.assert_complete()


def test_a_collector_killed_and_restarted_loses_nothing(chain: Chain) -> None:
    chain.bridge()
    first = chain.collector(cycles=50)
    time.sleep(3 * INTERVAL + 1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    finish(chain.collector(cycles=3))
    chain.assert_complete()


def test_one_of_three_shared_subscription_exporters_killed_loses_nothing(
        chain: Chain) -> None:
    bridges = []
    for n in range(3):
        config = chain.tmp / f"bridge{n}.toml"
        text = chain.config.read_text().replace('client_id = "b-', f'client_id = "b{n}-')
        config.write_text(text.replace("[bridge]", '[bridge]\nshared_group = "exporters"'))
        bridges.append((config, chain.bridge(config)))
    collector = chain.collector(cycles=10)
    time.sleep(3 * INTERVAL)
    bridges[1][1].send_signal(signal.SIGKILL)
    bridges[1][1].wait()
    time.sleep(5)
    chain.bridge(bridges[1][0])  # systemd restarts it: its session's unacked readings follow
    finish(collector)
    chain.assert_complete()
