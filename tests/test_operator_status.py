"""The fleet at a glance: `hashwatt status`, the wall screen's "Rigs down and why" panel, and
the maintenance flag (muted alerts, out of availability), on a real influxd seeded with
known readings and through the whole chain from a simulated farm."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.service import run_collector
from dashboards.build import ALERTING, DASHBOARDS
from exporters.decode import rig_points
from exporters.lineproto import Point
from exporters.sinks import InfluxV1Sink
from hashwatt.config import load_config
from hashwatt.contract import RigReading
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from sim.model import Scenario
from tests.conftest import FarmFactory, wait_for, write_config
from tests.grafana import evaluate_rule, run_panel

HUNG = "no reply within 10 s: rig hung? (port 4028 accepts connections but nothing answers)"
OFF = ("no miner answered identification: connection refused on 4028/80: rig off, rebooting "
       "or its miner software stopped")


# the collector's own words (collector/inventory_checks.py pool_problem, wiring_reason)
HIJACK_URL = "stratum+tcp://pool.elsewhere.example:3333"
HIJACK = f"pool {HIJACK_URL} is not on the site's allow-list"
SWAPPED = ("outlet pdu-r01/2 draws 15 W but the S19 Pro answering at 10.0.1.11 hashes 110 TH/s "
           "(about 3250 W): outlet mapping or address swapped?")


def reading(now: float, rig: str, rack: str, ago_s: float, online: bool,
            **more: Any) -> RigReading:
    base: dict[str, Any] = {"ts_ms": int((now - ago_s) * 1000), "site": "north", "rig": rig,
                            "collector": "c1", "rack": rack, "model": "S19 Pro",
                            "online": online}
    if online:
        base.update(hashrate_ths=100.0, power_w=3250.0, temp_max_c=80.0, temp_limit_c=95.0)
    return RigReading(**{**base, **more})


# a, b, e: R01 and up now (b 4 °C over its limit: hot; e was down ten minutes ago and is back)
# d: R02, up half an hour ago, then down three polls in a row from 250 s ago
# m: R02, in maintenance and down three polls in a row
def readings(now: float) -> list[RigReading]:
    return [
        reading(now, "a", "R01", 30, True, pool_url=HIJACK_URL, pool_user="thief.1",
                pool_unexpected=True, pool_reason=HIJACK),
        reading(now, "b", "R01", 30, True, temp_max_c=99.0, wiring_suspect=True,
                wiring_reason=SWAPPED, model_mismatch=True, identified_model="Supra"),
        reading(now, "e", "R01", 600, False, error="connection refused"),
        reading(now, "e", "R01", 30, True),
        reading(now, "d", "R02", 1800, True),
        *(reading(now, "d", "R02", ago, False, error=HUNG) for ago in (250, 150, 30)),
        *(reading(now, "m", "R02", ago, False, error=OFF, maintenance=True)
          for ago in (200, 100, 30)),
    ]


NOW = 0.0  # set by the seeded fixture: the readings are that many seconds old then


@pytest.fixture(scope="module")
def seeded(influxd: Influxd) -> Iterator[InfluxQL]:
    global NOW
    NOW = time.time()
    db = InfluxQL(influxd.url, f"status_{uuid.uuid4().hex[:8]}")
    db.create_database()
    points = [p for r in readings(NOW) for p in rig_points(r)]
    points.append(Point("collector", {"site": "north", "collector": "c1"},
                        {"online": True, "cycle_s": 2.5, "rigs_total": 5, "rigs_ok": 3,
                         "rigs_failed": 1, "rigs_timeout": 1, "pdus_total": 0, "pdus_ok": 0,
                         "spool_depth": 0}, int((NOW - 30) * 1000)))
    InfluxV1Sink(influxd.url, db.database).write(points)
    yield db
    db.close()


def board() -> dict[str, Any]:
    import json

    return dict(json.loads((DASHBOARDS / "farm-overview.json").read_text()))


def rule(uid: str) -> dict[str, Any]:
    import json

    rules = json.loads((ALERTING / "rules.json").read_text())
    return next(r for g in rules["groups"] for r in g["rules"] if r["uid"] == uid)


def only(rows: list[dict[str, Any]]) -> Any:
    [row] = rows
    return next(v for k, v in row.items() if k != "time")


def test_availability_leaves_maintenance_out_and_counts_it_apart(seeded: InfluxQL) -> None:
    online, offline, hot, maintenance = run_panel(seeded, board(), "Rigs", NOW)
    # online a, b, e; offline d (m is in maintenance); hot b; maintenance m
    assert (only(online), only(offline), only(hot), only(maintenance)) == (3, 1, 1, 1)


def test_the_wall_screen_lists_the_rigs_down_with_their_reason(seeded: InfluxQL) -> None:
    [rows] = run_panel(seeded, board(), "Rigs down and why", NOW)
    # e's old error must not stick to it; m is in maintenance
    assert [(r["rig"], r["rack"], r["reason"]) for r in rows] == [("d", "R02", HUNG)]


def test_the_offline_rule_pages_for_d_and_not_for_the_rig_in_maintenance(
        seeded: InfluxQL) -> None:
    firing = evaluate_rule(seeded, rule("hw-rig-offline"), NOW)
    assert [dict(f.labels)["rig"] for f in firing] == ["d"]


def test_status_shows_racks_rigs_down_since_when_and_collectors(
        tmp_path: Path, influxd: Influxd, seeded: InfluxQL) -> None:
    cfg = tmp_path / "hashwatt.toml"
    cfg.write_text(f'[site]\nname = "north"\n[influxdb]\nurl = "{influxd.url}"\n'
                   f'database = "{seeded.database}"\n[inventory]\ncsv = "inv.csv"\n')
    (tmp_path / "inv.csv").write_text(
        "id,address,rack,maintenance\na,10.0.0.1,R01,\nb,10.0.0.2,R01,\ne,10.0.0.5,R01,\n"
        "d,10.0.0.4,R02,\nm,10.0.0.6,R02,yes\nz,10.0.0.9,R03,\n")
    before = time.time()
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "status", str(cfg),
                          "--width", "250"], capture_output=True, text=True, timeout=60)
    after = time.time()
    assert run.returncode == 0, run.stderr

    def ago(seconds_before_now: float) -> set[str]:
        """'N min ago' as status may say it while it ran between before and after."""
        ts = int((NOW - seconds_before_now) * 1000) / 1000
        return {f"({int(t - ts) // 60} min ago)" for t in (before, after)}

    cells = [[c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
             for line in run.stdout.splitlines() if "│" in line or "┃" in line]
    racks = cells[:cells.index(["rig", "rack", "down since", "reason"])]
    assert racks == [["rack", "rigs", "online", "offline", "hot", "maintenance", "silent"],
                     ["R01", "3", "3", "0", "1", "0", "0"],
                     ["R02", "2", "0", "1", "0", "1", "0"],
                     ["R03", "1", "0", "0", "0", "0", "1"],
                     ["total", "6", "3", "1", "1", "1", "1"]]
    down = {row[0]: row[1:] for row in cells if row and row[0] in ("d", "m", "z")}
    # d: its last online reading was 1800 s ago, its first offline one after that 250 s ago
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int((NOW - 250) * 1000) / 1000))
    assert down["d"][0::2] == ["R02", HUNG]
    assert down["d"][1].startswith(f"{since} (") and down["d"][1][len(since) + 1:] in ago(250)
    assert down["m"][0] == "R02" and down["m"][2] == f"[maintenance] {OFF}"
    # m was never seen up within the 72 h the status looks back: it says so
    first = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int((NOW - 200) * 1000) / 1000))
    prefix = f"not up within 72h; first seen down {first} "
    assert down["m"][1].startswith(prefix) and down["m"][1][len(prefix):] in ago(200)
    assert down["z"] == ["R03", "-", "no reading in the last 10 min: is a collector polling "
                                     "it?"]
    # the suspects: a's pool changed to one the site does not allow; b's outlet does not fit
    # and it identifies as a Supra while the inventory says S19 Pro (addresses swapped)
    start = cells.index(["rig", "rack", "what", "reason"])
    end = cells.index(["collector", "state now", "last cycle", "cycle s",
                       "rigs ok/failed/timeout", "PDUs ok", "spool"])
    assert cells[start + 1:end] == [["a", "R01", "pool", HIJACK],
                                    ["b", "R01", "wiring", SWAPPED],
                                    ["b", "R01", "model", "identifies as Supra, the inventory "
                                                          "says S19 Pro"]]
    collector = next(row for row in cells if row and row[0] == "c1")
    assert collector[1] == "online" and collector[3:] == ["2.5", "3/1/1", "0/0", "0"]


@pytest.mark.e2e
def test_status_through_the_whole_chain(tmp_path: Path, farm: FarmFactory,
                                        mosquitto: Mosquitto, influxd: Influxd,
                                        influx_db: InfluxQL) -> None:
    from tests.test_e2e import bridge_running

    f = farm(3, mix=("s19pro", "m50", "supra"),
             scenarios={"r01-s02": Scenario.HUNG, "r01-s03": Scenario.OFFLINE})
    path = write_config(tmp_path / "hashwatt.toml", mqtt_port=mosquitto.port, rigs=f.rigs,
                        influx=f'url = "{influxd.url}"\ndatabase = "{influx_db.database}"')
    text = path.read_text().replace('id = "r01-s03"\n', 'id = "r01-s03"\nmaintenance = true\n')
    path.write_text(text)
    cfg = load_config(path)
    with bridge_running(cfg):
        asyncio.run(run_collector(cfg, cycles=1))
        assert wait_for(lambda: len(influx_db.rows(
            'SELECT last("up") FROM "rig" GROUP BY "rig"')) == 3)
    stored = {r["rig"]: r for r in influx_db.rows(
        'SELECT "up", "maintenance" FROM "rig" GROUP BY "rig", "maintenance"')}
    assert stored["r01-s03"]["maintenance"] == "yes"
    assert stored["r01-s01"].get("maintenance") in (None, "")  # no tag: in service
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "status", str(path),
                          "--width", "250"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # write_config puts all three in rack R01: one online, one offline (hung), one maintenance
    assert re.search(r"│ R01\s+│\s+3 │\s+1 │\s+1 │\s+\d │\s+1 │\s+0 │", run.stdout), run.stdout
    # the collector stopped after its cycle: offline now (its last will), figures of the cycle
    assert re.search(r"│ c1\s+│ offline\s+│ [^│]+│ \d+\.\d\s+│ 1/1/1\s+│", run.stdout), run.stdout
    assert "rig hung? (port 4028 accepts connections but nothing answers)" in run.stdout
    assert "[maintenance] identification: no miner answered: connection refused" in run.stdout
