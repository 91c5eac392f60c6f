"""The dashboards on what the product really writes: a simulated farm polled by the real
collector, through the real mosquitto and the real bridge into a real influxd, then every
collector-health panel and the wall screen's live figures run on it as Grafana runs them.
This catches a panel whose field the collector or bridge does not write (or writes with a
type its function refuses: InfluxQL's max() of a boolean is an error)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from collector.service import run_collector
from dashboards.build import DASHBOARDS
from hashwatt.config import load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from sim.model import Scenario
from tests.conftest import FarmFactory, wait_for, write_config
from tests.expected import expected_rig
from tests.grafana import run_panel
from tests.test_e2e import bridge_running

pytestmark = pytest.mark.e2e


def board(name: str) -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / f"{name}.json").read_text()))


def test_collector_health_and_live_panels_on_a_real_collector_and_bridge_run(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    f = farm(3, mix=("s19pro", "m50", "s19pro"), scenarios={"r01-s03": Scenario.OFFLINE})
    influx = f'api = "v1"\nurl = "{influxd.url}"\ndatabase = "{influx_db.database}"'
    cfg = load_config(write_config(tmp_path / "hashwatt.toml", mqtt_port=mosquitto.port,
                                   rigs=f.rigs, influx=influx, bridge="stats_interval_s = 0.5"))
    with bridge_running(cfg):
        asyncio.run(run_collector(cfg, cycles=1))
        assert wait_for(lambda: influx_db.rows('SELECT "rigs_total" FROM "collector" WHERE '
                                               '"rigs_total" = 3')
                        and influx_db.rows('SELECT count("up") FROM "rig"')
                        and influx_db.rows('SELECT "messages" FROM "exporter" WHERE '
                                           '"messages" >= 4'))  # 3 rigs + the cycle
    now = time.time()
    health = board("collector-health")
    shown: dict[str, list[Any]] = {}
    for panel in health["panels"]:
        [rows] = run_panel(influx_db, health, panel["title"], now)  # errors raise here
        shown[panel["title"]] = [v for r in rows for k, v in r.items()
                                 if k not in ("time", "collector", "exporter") and v is not None]
    # every panel shows something: its field is written, with a type its function takes;
    # but the roster's list of silent collectors, empty while the collector reports
    assert shown.pop("Collectors silent") == []
    assert {t: v for t, v in shown.items() if not v} == {}
    # one cycle of three rigs, one of them offline (no reply: a failed poll, no timeout);
    # nothing resent, nothing refused by the spool's disk, connected to the broker
    assert shown["Failed polls per cycle"] == [1.0]
    assert shown["Readings resent (since start)"] == [0.0]
    assert shown["Spool disk errors (since start)"] == [0.0]
    assert shown["Readings held in memory (spool disk refused)"] == [0.0]
    assert shown["Broker connected (1 = yes)"] == [True]
    assert shown["Device fields dropped (collector)"] == [0.0]
    # the bridge set nothing aside and lost no QoS 0 message
    assert set(shown["Set-aside messages (total)"]) == {0}
    assert set(shown["Dead-letter write errors (since start)"]) == {0}
    assert set(shown["QoS 0 messages dropped (since start)"]) == {0}

    # the wall screen's live figures: what the simulated rigs served (tests/expected.py)
    online = [expected_rig(r, f.seed) for r in f.rigs if r.rig_id != "r01-s03"]
    overview = board("farm-overview")
    [hashrate] = run_panel(influx_db, overview, "Fleet hashrate", now)
    [power] = run_panel(influx_db, overview, "Wall power", now)
    [efficiency] = run_panel(influx_db, overview, "Efficiency", now)
    ths = sum(r["hashrate_ths"] for r in online)
    watts = sum(r["power_w"] for r in online)
    assert round(hashrate[0]["sum"], 6) == round(ths, 6)
    assert round(power[0]["sum"], 6) == round(watts, 6)
    assert round(efficiency[0]["sum_sum"], 6) == round(watts / ths, 6)
    rigs = [row[0] for row in run_panel(influx_db, overview, "Rigs", now)]
    assert [r[k] for r, k in zip(rigs, ("online", "offline", "hot", "maintenance"),
                                 strict=True)] == [2, 1, 0, 0]
    [down] = run_panel(influx_db, overview, "Rigs down and why", now)
    assert [r["rig"] for r in down] == ["r01-s03"] and "identification" in down[0]["reason"]
