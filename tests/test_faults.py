"""Fault injection against the real mosquitto and influxd: every reading the collector
polled is stored in InfluxDB once (none missing, none doubled), whatever is killed."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from tests.conftest import FarmFactory, write_config
from tests.drills import Drill

pytestmark = pytest.mark.e2e
RIGS = 6
INTERVAL = 3


class Chain(Drill):
    """A broker, a database, a farm, and the collector and bridges as processes."""

    def assert_complete(self) -> None:
        """Every reading the collector took is stored once, per rig, with its values."""
        self.drain()
        v = self.verdict()
        assert v.polled >= RIGS * 2 and v.ok(), v.line()
        assert len({rig for rig, _ in self.polled()}) == RIGS


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
    c.stop_all()
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
