"""Fixtures: a real mosquitto, a real influxd and victoria-metrics on free loopback ports,
and simulated farms on loopback subnets of their own."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hashwatt.influxql import InfluxQL
from sim.farm import build_rigs
from sim.launch import Influxd, Mosquitto, SnmpSim, VictoriaMetrics
from sim.model import Scenario, SimRig
from sim.pdus import SimPdu, pdus_for

warnings.filterwarnings("ignore", module="pyasic")
# several test runs can share a machine: HASHWATT_TEST_SUBNET moves this run's farms elsewhere
_subnets = itertools.count(int(os.environ.get("HASHWATT_TEST_SUBNET", "20")))


def next_octet() -> int:
    """The second octet of the next loopback /16 of this run (20-249, wrapping: a high
    HASHWATT_TEST_SUBNET must not run past 127.255)."""
    return 20 + (next(_subnets) - 20) % 230


def next_base() -> str:
    """The next loopback /16 for a simulated farm of this run."""
    return f"127.{next_octet()}.0.0"


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and the services it starts) keeps spool and dead letters in its own state
    directory: the /var/lib/hashwatt default is shared by every run on the machine."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A mosquitto broker for the whole session."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """An InfluxDB 1.x server for the whole session."""
    server = Influxd(tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: Influxd) -> Iterator[InfluxQL]:
    """A fresh database on the session's influxd."""
    db = InfluxQL(influxd.url, f"t_{uuid.uuid4().hex[:12]}")
    db.create_database()
    yield db
    db.close()


@pytest.fixture
def ledger_db(influxd: Influxd) -> Iterator[InfluxQL]:
    """A fresh database with the ledger's retention policy, for one test (tests/ledger_seed)."""
    from tests.ledger_seed import fresh_ledger_db

    db = fresh_ledger_db(influxd)
    yield db
    db.close()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """victoria-metrics: a real server speaking /api/v2/write."""
    server = VictoriaMetrics(tmp_path_factory.mktemp("vm")).start()
    yield server
    server.stop()


@dataclass
class RunningFarm:
    """A simulated farm running as its own process."""

    rigs: list[SimRig]
    seed: int
    proc: subprocess.Popen[bytes]
    control_port: int
    pdus: list[SimPdu]

    def rig(self, rig_id: str) -> SimRig:
        """The rig with this id."""
        return next(r for r in self.rigs if r.rig_id == rig_id)


FarmFactory = Callable[..., RunningFarm]


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[FarmFactory]:
    """Start a frozen simulated farm: `farm(count, mix=..., scenarios={rig: scenario})`."""
    from sim.launch import free_port

    running: list[RunningFarm] = []

    def start(count: int, mix: tuple[str, ...] = ("s19pro", "m50", "a1246", "supra"),
              scenarios: dict[str, Scenario] | None = None, seed: int = 7,
              pdus: bool = False, extra: tuple[str, ...] = ()) -> RunningFarm:
        scenarios = scenarios or {}
        # other test runs on this machine may hold a subnet: take the next one then
        for attempt in range(5):
            base = next_base()
            rigs = build_rigs(count, base, mix, scenarios)
            ready = tmp_path / f"farm-{base}.ready"
            port = free_port()
            args = [sys.executable, "-m", "hashwatt.cli", "simulate", f"--rigs={count}",
                    f"--base={base}", f"--mix={','.join(mix)}", f"--seed={seed}", "--frozen",
                    f"--ready-file={ready}", f"--control-port={port}",
                    f"--state-dir={tmp_path / ('state-' + base)}",
                    *(["--pdus"] if pdus else []), *extra,
                    *(f"--scenario={k}={v}" for k, v in scenarios.items())]
            log_path = tmp_path / f"farm-{base}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while not ready.exists() and proc.poll() is None:
                assert time.monotonic() < deadline, "farm did not start"
                time.sleep(0.05)
            if ready.exists():
                break
            text = log_path.read_text()
            assert "address already in use" in text and attempt < 4, text
        running.append(RunningFarm(rigs, seed, proc, port, pdus_for(rigs) if pdus else []))
        return running[-1]

    yield start
    for f in running:
        f.proc.terminate()
        f.proc.wait(timeout=10)


def write_config(path: Path, *, mqtt_port: int, rigs: list[SimRig] | None = None,
                 influx: str = "", collector: str = "", bridge: str = "",
                 site: str = "testsite", pdus: list[SimPdu] | None = None) -> Path:
    """A config file for a test, rigs from a simulated farm."""
    # state (spool, dead letters) beside the config: each test has a folder of its own
    lines = ['state_dir = "."\n',
             f'[site]\nname = "{site}"\ntimezone = "Europe/Berlin"\ncurrency = "EUR"\n',
             f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n']
    if influx:
        lines.append(f"[influxdb]\n{influx}\n")
    defaults = "".join(line + "\n" for line in ('id = "c1"', "interval_s = 5", "deadline_s = 2")
                       if line.split(" =")[0] not in collector)
    lines.append(f'[collector]\n{defaults}{collector}\n')
    lines.append(f'[bridge]\nclient_id = "b-{uuid.uuid4().hex[:8]}"\n'
                 f'dead_letter_file = "deadletters.jsonl"\nflush_interval_s = 0.2\n{bridge}\n')
    outlets = {r.rig_id: (p.pdu_id, n) for p in pdus or [] for n, r in enumerate(p.rigs, 1)}
    for i, rig in enumerate(rigs or []):
        plug = outlets.get(rig.rig_id)
        lines.append(f'[[rigs]]\nid = "{rig.rig_id}"\naddress = "{rig.ip}"\n'
                     f'rack = "{rig.rig_id[:3].upper()}"\nslot = {i + 1}\n'
                     f'customer = "{"acme" if i % 2 else "blockfarm"}"\n'
                     + (f'pdu = "{plug[0]}"\noutlet = {plug[1]}\n' if plug else ""))
    lines += [f'[[pdus]]\nid = "{p.pdu_id}"\naddress = "{p.ip}"\ncommunity = "{p.pdu_id}"\n'
              f'rack = "R{p.pdu_id[-2:]}"\n' for p in pdus or []]
    path.write_text("\n".join(lines))
    return path


def wait_for(check: Callable[[], object], timeout: float = 20.0, every: float = 0.2) -> object:
    """Poll check() until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


def read_deadletters(path: Path) -> list[dict[str, object]]:
    """The records of a dead-letter file."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


SNMPSIM_DATA = Path(__import__("snmpsim_data").__file__).parent / "data"
V3_USER, V3_AUTH, V3_PRIV = "hashwatt", "auth-secret-1", "priv-secret-1"


@pytest.fixture(scope="session")
def apc_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """snmpsim serving the real APC recordings (AP8641, AP8932, AP7902B) and a Linux host;
    the community (or SNMPv3 context) is the recording's name."""
    import shutil

    run_dir = tmp_path_factory.mktemp("snmpsim")
    data = run_dir / "data"
    data.mkdir()
    for name in ("apc-8641", "apc-8932", "apc-7902b"):
        shutil.copy(SNMPSIM_DATA / "UPS" / f"{name}.snmprec", data)
    shutil.copy(SNMPSIM_DATA / "os" / "linux" / "slackware.snmprec.bz2", data)
    agent = SnmpSim(run_dir, data_dir=data, v3_user=V3_USER, v3_auth_key=V3_AUTH,
                    v3_priv_key=V3_PRIV).start()
    yield agent
    agent.stop()
