"""End to end: simulated farm → pyasic collector → mosquitto → bridge → influxd, exact numbers."""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from collector.service import run_collector
from exporters.bridge import run_bridge
from hashwatt.config import Config, load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto, VictoriaMetrics
from sim.model import Scenario
from tests.conftest import FarmFactory, wait_for, write_config
from tests.expected import expected_boards, expected_rig

pytestmark = pytest.mark.e2e
ALL_MODELS = ("s19pro", "m50", "a1246", "s21", "supra", "m30splus", "gamma")


@contextmanager
def bridge_running(cfg: Config) -> Iterator[None]:
    """The bridge in a thread of this process, stopped (and drained) on exit."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_bridge, args=(cfg, stop, ready.set), daemon=True)
    thread.start()
    assert ready.wait(30), "bridge did not subscribe"
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=20)


def v1_config(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: InfluxQL,
              rigs: list) -> Config:
    influx = f'api = "v1"\nurl = "{influxd.url}"\ndatabase = "{db.database}"'
    return load_config(write_config(tmp_path / "hashwatt.toml", mqtt_port=mosquitto.port,
                                    rigs=rigs, influx=influx))


def collect_once(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: InfluxQL,
                 rigs: list, until: Callable[[], object]) -> object:
    """One collector cycle through the bridge into db; returns until() once truthy."""
    cfg = v1_config(tmp_path, mosquitto, influxd, db, rigs)
    with bridge_running(cfg):
        asyncio.run(run_collector(cfg, cycles=1))
        return wait_for(until)


def last_rig_points(db: InfluxQL, count: int) -> dict[str, dict]:
    rows = wait_for(lambda: len(db.rows('SELECT last(*) FROM "rig" GROUP BY "rig"')) >= count
                    and db.rows('SELECT * FROM "rig" GROUP BY "rig"'))
    assert rows, "no rig points arrived"
    return {r["rig"]: r for r in rows}  # type: ignore[union-attr]


def test_every_simulated_model_arrives_in_influxdb_with_the_exact_values_served(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    f = farm(len(ALL_MODELS), mix=ALL_MODELS)
    stored = collect_once(tmp_path, mosquitto, influxd, influx_db, f.rigs,
                          lambda: last_rig_points(influx_db, len(f.rigs)))
    assert isinstance(stored, dict)
    assert set(stored) == {r.rig_id for r in f.rigs}
    for rig in f.rigs:
        want = expected_rig(rig, f.seed)
        got = {k: stored[rig.rig_id][k] for k in want}
        assert got == want, rig.rig_id
        assert stored[rig.rig_id]["site"] == "testsite"


def test_every_board_arrives_with_its_hashrate_temperatures_and_chips(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    f = farm(len(ALL_MODELS), mix=ALL_MODELS)
    total = sum(r.hardware.boards for r in f.rigs)
    rows = collect_once(tmp_path, mosquitto, influxd, influx_db, f.rigs, lambda: len(
        r := influx_db.rows('SELECT * FROM "rig_board" GROUP BY "rig", "board"')) >= total and r)
    assert rows
    got: dict[str, dict] = {}
    for row in rows:  # type: ignore[union-attr]
        fields = {k: row[k] for k in ("hashrate_ths", "chip_temp_c", "board_temp_c", "chips")}
        got.setdefault(row["rig"], {})[row["board"]] = fields
    for rig in f.rigs:
        assert got[rig.rig_id] == expected_boards(rig, f.seed), rig.rig_id


def test_scenarios_show_as_hot_fanless_boardless_and_offline_rigs(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    scenarios = {"r01-s01": Scenario.OVERHEAT, "r01-s02": Scenario.DEAD_FAN,
                 "r01-s03": Scenario.DEAD_BOARD, "r01-s04": Scenario.OFFLINE}
    f = farm(4, mix=("s19pro", "m50", "s19pro", "a1246"), scenarios=scenarios)
    stored = collect_once(tmp_path, mosquitto, influxd, influx_db, f.rigs,
                          lambda: last_rig_points(influx_db, 4))
    assert isinstance(stored, dict)
    hot, fanless, boardless, offline = (stored[r] for r in scenarios)
    assert hot["temp_max_c"] == expected_rig(f.rig("r01-s01"), f.seed)["temp_max_c"]
    assert hot["temp_margin_c"] < 0
    assert fanless["fan_min_rpm"] == 0
    assert (boardless["boards_ok"], boardless["boards_total"]) == (2, 3)
    assert offline["online"] is False
    assert offline["hashrate_ths"] is None
    assert "identification" in offline["error"]


def test_collector_statistics_arrive_in_the_collector_measurement(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    f = farm(3, scenarios={"r01-s03": Scenario.OFFLINE})
    rows = collect_once(tmp_path, mosquitto, influxd, influx_db, f.rigs, lambda: influx_db.rows(
        'SELECT * FROM "collector" WHERE "rigs_total" = 3'))
    assert rows
    stats = rows[0]  # type: ignore[index]
    assert (stats["rigs_total"], stats["rigs_ok"], stats["rigs_failed"]) == (3, 2, 1)
    assert stats["published"] == 3


def _vm_export(vm: VictoriaMetrics, match: str) -> list[dict]:
    import json

    url = f"{vm.url}/api/v1/export?" + urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def test_the_v2_write_path_stores_the_same_numbers_in_a_real_v2_server(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto,
        victoria: VictoriaMetrics) -> None:
    f = farm(4)
    bucket = f"b{tmp_path.name[-8:]}".replace("-", "_")
    influx = (f'api = "v2"\nurl = "{victoria.url}"\norg = "farm"\nbucket = "{bucket}"\n'
              'token = { env = "HASHWATT_TEST_TOKEN" }')
    import os

    os.environ["HASHWATT_TEST_TOKEN"] = "not-checked-by-victoria-metrics"
    cfg = load_config(write_config(tmp_path / "v2.toml", mqtt_port=mosquitto.port, rigs=f.rigs,
                                   influx=influx, site="v2site"))
    with bridge_running(cfg):
        asyncio.run(run_collector(cfg, cycles=1))
        urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=10).read()
        series = wait_for(lambda: len(s := _vm_export(
            victoria, '{__name__="rig_hashrate_ths",site="v2site"}')) >= 4 and s)
    assert series
    got = {s["metric"]["rig"]: s["values"][-1] for s in series}  # type: ignore[union-attr]
    assert got == {r.rig_id: expected_rig(r, f.seed)["hashrate_ths"] for r in f.rigs}


def test_collector_workers_poll_every_rig_once_across_their_shards(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    import subprocess
    import sys

    f = farm(12, mix=("m50", "a1246", "supra"))
    cfg = v1_config(tmp_path, mosquitto, influxd, influx_db, f.rigs)
    with bridge_running(cfg):
        run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "collect", str(cfg.source),
                              "--workers=2", "--cycles=1"], timeout=120)
        assert run.returncode == 0
        stored = wait_for(lambda: len(r := influx_db.rows(
            'SELECT count("up") FROM "rig" GROUP BY "rig"')) == 12 and r)
    assert stored and all(r["count"] == 1 for r in stored)  # type: ignore[union-attr]
    collectors = influx_db.rows('SELECT last("rigs_total") FROM "collector" GROUP BY "collector"')
    assert sorted(r["collector"] for r in collectors) == ["c1-s0", "c1-s1"]
    assert sum(r["last"] for r in collectors) == 12
