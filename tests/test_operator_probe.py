"""`hashwatt check-config --probe` against a real mosquitto, a real influxd and a simulated
farm with its PDU: one line per check, the collector's own reasons, exit 1 on a failure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto, free_port
from sim.model import Scenario
from tests.conftest import FarmFactory, write_config

pytestmark = pytest.mark.e2e


def probe(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hashwatt.cli", "check-config", str(path),
                           "--probe"], capture_output=True, text=True, timeout=120)


def test_probe_tries_broker_influxdb_pdus_and_rigs(tmp_path: Path, farm: FarmFactory,
                                                   mosquitto: Mosquitto, influxd: Influxd,
                                                   influx_db: InfluxQL) -> None:
    f = farm(3, mix=("s19pro", "m50", "a1246"), scenarios={"r01-s02": Scenario.HUNG},
             pdus=True)
    path = write_config(tmp_path / "hashwatt.toml", mqtt_port=mosquitto.port, rigs=f.rigs,
                        pdus=f.pdus, influx=f'url = "{influxd.url}"\n'
                                            f'database = "{influx_db.database}"')
    run = probe(path)
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stderr  # the hung rig fails its check
    assert lines[0] == f"{path}: ok: site testsite, 3 rigs, 1 PDU, 0 meters, influxdb v1"
    assert re.fullmatch(rf"ok    broker 127\.0\.0\.1:{mosquitto.port}: connected in \d+\.\d\d s",
                        lines[1])
    assert re.fullmatch(rf"ok    influxdb {re.escape(influxd.url)}: version 1\.6\.\S+, "
                        rf"database {influx_db.database} readable", lines[2])
    [pdu] = f.pdus
    assert lines[3].startswith(f"ok    PDU {pdu.pdu_id}: ") and lines[3].endswith(" 3 outlets")
    rig = {line.split()[2]: line for line in lines[4:7]}
    assert rig["r01-s01"].startswith(
        f"ok    rig r01-s01 ({f.rig('r01-s01').ip}): AntMiner S19 Pro, ")
    assert rig["r01-s02"] == (
        f"FAIL  rig r01-s02 ({f.rig('r01-s02').ip}): no reply within 2 s: rig hung? (port 4028 "
        "accepts connections but nothing answers)")
    assert rig["r01-s03"].startswith(f"ok    rig r01-s03 ({f.rig('r01-s03').ip}): AvalonMiner ")
    assert lines[7] == "probe: 5 of 6 checks ok"


def test_probe_names_a_broker_and_influxdb_that_are_not_there(tmp_path: Path) -> None:
    mqtt_port, influx_port = free_port(), free_port()
    path = write_config(tmp_path / "hashwatt.toml", mqtt_port=mqtt_port,
                        influx=f'url = "http://127.0.0.1:{influx_port}"\ndatabase = "x"')
    run = probe(path)
    lines = run.stdout.splitlines()
    assert run.returncode == 1
    assert lines[1] == f"FAIL  broker 127.0.0.1:{mqtt_port}: cannot connect: Connection refused"
    assert lines[2].startswith(f"FAIL  influxdb http://127.0.0.1:{influx_port}: unreachable: ")
    assert lines[-1] == "probe: 0 of 2 checks ok"
