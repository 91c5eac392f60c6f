"""The seeded chaos soak: broker, bridges, collector SIGKILLed, influxd stopped, SIGKILLed,
slow (every write answered after 12 s, past the bridge's timeout) or answering 500/503, at
random moments (sometimes two at once), then the verdict: every reading the collector took is
stored exactly once with its values.

    make soak SEED=7 DURATION=1800     # the long soak
    pytest tests/test_soak.py          # the short form `make test` runs (30 s)

The same seed gives the same sequence of faults (their timing on a loaded machine varies).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from tests.conftest import FarmFactory, write_config
from tests.drills import Drill
from tests.faultproxy import FaultProxy
from tests.test_reliability import report

pytestmark = pytest.mark.e2e
SECONDS = float(os.environ.get("HASHWATT_SOAK_SECONDS", "30"))
SEED = int(os.environ.get("HASHWATT_SOAK_SEED", "1"))
RIGS = int(os.environ.get("HASHWATT_SOAK_RIGS", "12"))
INTERVAL = 2


class Chaos:
    """The faults, each one kill and one restart, drawn from a seeded generator."""

    def __init__(self, d: Drill, bridges: list[Path], rng: random.Random) -> None:
        self.d, self.rng = d, rng
        self.bridges: dict[Path, subprocess.Popen[bytes]] = {
            config: d.bridge(config) for config in bridges}
        self.collector = d.collector()
        self.done: list[str] = []
        self.lock = threading.Lock()

    def pause(self, low: float, high: float) -> None:
        time.sleep(self.rng.uniform(low, high))

    def kill_broker(self, pause: float) -> None:
        self.d.broker.stop(kill=True)
        time.sleep(pause)
        self.d.broker.start()

    def kill_bridge(self, pause: float) -> None:
        config = self.rng.choice(sorted(self.bridges))
        with self.lock:
            proc = self.bridges[config]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(pause)
        with self.lock:  # it comes back like systemd brings it back, with its session
            self.bridges[config] = self.d.bridge(config, wait=False)

    def kill_collector(self, pause: float) -> None:
        with self.lock:
            proc = self.collector
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(pause)
        with self.lock:
            self.collector = self.d.collector()

    def stop_influxd(self, pause: float) -> None:
        self.d.influx.stop()
        time.sleep(pause)
        self.d.influx.start()

    def kill_influxd(self, pause: float) -> None:
        self.d.influx.stop(kill=True)  # SIGKILL, mid-write as likely as not
        time.sleep(pause)
        self.d.influx.start()

    def slow_influxd(self, pause: float) -> None:
        """Every write answered after 12 s (past the bridge's 10 s timeout) meanwhile."""
        self.d.proxy.slow_s = 12.0
        self.d.proxy.slow_until = time.monotonic() + pause
        time.sleep(pause)

    def failing_influxd(self, pause: float) -> None:
        """The next writes answered 500 or 503 (never reaching influxd)."""
        self.d.proxy.fail.extend(self.rng.choice((500, 503)) for _ in range(int(pause) + 1))
        time.sleep(pause)

    def one(self) -> None:
        """One fault, or two at once."""
        faults: list[tuple[str, Callable[[float], None]]] = [
            ("broker", self.kill_broker), ("bridge", self.kill_bridge),
            ("collector", self.kill_collector), ("influxd", self.stop_influxd),
            ("influxd-kill", self.kill_influxd), ("influxd-slow", self.slow_influxd),
            ("influxd-5xx", self.failing_influxd)]
        count = 2 if self.rng.random() < 0.3 else 1
        chosen = self.rng.sample(faults, count)
        if count == 2 and chosen[0][0].split("-")[0] == chosen[1][0].split("-")[0]:
            chosen = chosen[:1]  # two influxd faults at once would fight over one process
        pauses = [self.rng.uniform(0.2, 6.0) for _ in chosen]
        threads = [threading.Thread(target=fault, args=(pause,))
                   for (_, fault), pause in zip(chosen, pauses, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.done.append("+".join(name for name, _ in chosen))


def test_chaos_soak_every_reading_taken_is_stored_exactly_once(
        tmp_path: Path, farm: FarmFactory) -> None:
    rng = random.Random(SEED)
    broker = Mosquitto(tmp_path / "broker", autosave_interval_s=5).start()  # as deployed
    influx = Influxd(tmp_path / "influx").start()
    db = InfluxQL(influx.url, "soak")
    db.create_database()
    proxy = FaultProxy(influx.url).start()  # slow and failing answers, in front of influxd
    f = farm(RIGS, mix=("m50", "a1246", "supra", "s19pro"))
    config = write_config(tmp_path / "hashwatt.toml", mqtt_port=broker.port, rigs=f.rigs,
                          influx=f'url = "{proxy.url}"\ndatabase = "soak"',
                          collector=f"interval_s = {INTERVAL}\ndeadline_s = 1.5\n"
                                    "spool_audit = true\nresend_after_s = 10",
                          bridge='rollup_interval_s = 0\nbatch_size = 50\n'
                                 'shared_group = "exporters"')
    bridges = []
    for n in range(2):  # two bridges share the load: each reports what it stored
        path = tmp_path / f"bridge{n}.toml"
        path.write_text(config.read_text().replace('client_id = "b-', f'client_id = "b{n}-'))
        bridges.append(path)
    d = Drill(tmp_path, broker, influx, db, config, proxy=proxy)
    d.start_sampling()
    try:
        chaos = Chaos(d, bridges, rng)
        ends = time.monotonic() + SECONDS
        while time.monotonic() < ends:
            chaos.pause(1.0, 5.0)
            chaos.one()
        for config_path, proc in chaos.bridges.items():  # everything up again, then settle
            if proc.poll() is not None:
                chaos.bridges[config_path] = d.bridge(config_path)
        time.sleep(2 * INTERVAL)
        chaos.collector.send_signal(signal.SIGTERM)
        assert chaos.collector.wait(timeout=60) == 0
        d.drain(timeout=180)
        v = d.verdict()
        report(f"chaos soak seed {SEED}, {SECONDS:.0f} s, {RIGS} rigs",
               f"faults {len(chaos.done)} ({', '.join(chaos.done)}); {v.line()}")
        assert v.ok(), v.line()
    finally:
        d.stop_all()
        broker.stop()
        influx.stop()
        proxy.stop()
