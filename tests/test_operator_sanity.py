"""Inventory sanity and pool integrity on every reading, against a simulated farm with its
PDUs: two rigs' addresses swapped in the inventory (the issue's S19 Pro at 15 W and Bitaxe at
3,285 W), a hung rig whose outlet still draws, and workers outside a customer's prefix; the
readings go into a real influxd where the alert rules and the wall-screen table see them."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from collector.inventory_checks import PoolWatch, pool_problem, wiring_reason
from collector.meters.source import MeterSource
from collector.pdu.source import PduSource
from collector.rigs import PyasicSource
from collector.service import poll_pdus, run_cycle
from dashboards.build import ALERTING, DASHBOARDS
from exporters.decode import rig_points
from exporters.sinks import InfluxV1Sink
from hashwatt.config import PoolsConfig, RigConfig, load_config
from hashwatt.contract import RigReading
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd
from sim.model import Scenario, snapshot
from tests.conftest import FarmFactory, write_config
from tests.grafana import evaluate_rule, run_panel

POOLS = '\n[pools]\nallowed = ["stratum+tcp://*.example.net:*"]\n' \
        '[pools.workers]\nacme = ["acme."]\n"*" = ["farm."]\n'
MODELS = {"r01-s01": "S19 Pro", "r01-s02": "Supra", "r01-s03": "M50 VH50", "r01-s04": "S21"}


def swapped_config(tmp_path: Path, f: Any) -> Path:
    """The farm's config with r01-s01 and r01-s02's addresses swapped, models inventoried."""
    path = write_config(tmp_path / "hashwatt.toml", mqtt_port=1883, rigs=f.rigs, pdus=f.pdus,
                        collector="deadline_s = 5")  # roomy: a loaded 2-core machine
    text = path.read_text()
    a, b = f.rig("r01-s01").ip, f.rig("r01-s02").ip
    text = (text.replace(f'address = "{a}"', 'address = "SWAP"')
            .replace(f'address = "{b}"', f'address = "{a}"').replace('"SWAP"', f'"{b}"'))
    for rig_id, model in MODELS.items():
        text = text.replace(f'id = "{rig_id}"\n', f'id = "{rig_id}"\nmodel = "{model}"\n')
    path.write_text(text + POOLS)
    return path


def collect(cfg: Any) -> list[dict[str, Any]]:
    async def cycle() -> list[dict[str, Any]]:
        published: list[dict[str, Any]] = []
        pdus: list[dict[str, Any]] = []
        outlets, _ok = await poll_pdus(cfg, PduSource(cfg), pdus.append,
                                        meters=MeterSource(cfg))
        await run_cycle(cfg, PyasicSource(timeout_s=5), published.append,
                        outlet_power=outlets, pools=PoolWatch(cfg.pools, timeout_s=5))
        return published

    return asyncio.run(cycle())


@pytest.mark.e2e
def test_swapped_addresses_a_drawing_silent_rig_and_foreign_workers_are_flagged(
        tmp_path: Path, farm: FarmFactory, influxd: Influxd, influx_db: InfluxQL) -> None:
    f = farm(4, mix=("s19pro", "supra", "m50", "s21"), scenarios={"r01-s03": Scenario.HUNG},
             pdus=True)
    [pdu] = f.pdus
    cfg = load_config(swapped_config(tmp_path, f))
    readings = {r["rig"]: r for r in collect(cfg)}
    # what each outlet draws: the simulator's rig power at tick 0 (sim/pdus.py rig_power_w)
    watts = {r.rig_id: snapshot(r, f.seed, 0).power_w for r in f.rigs}
    ths = {r.rig_id: round(snapshot(r, f.seed, 0).hashrate_gh / 1000, 6) for r in f.rigs}

    s01, s02, s03, s04 = (readings[f"r01-s0{n}"] for n in range(1, 5))
    # r01-s01 is inventoried as an S19 Pro but its address answers as the Supra; its outlet
    # feeds the real S19 Pro. The Supra's expected draw: nominal 15 W x its hashrate share of
    # 0.6 TH/s (models.toml), kept within 0.2..1.5
    assert (s01["model"], s01["identified_model"], s01["model_mismatch"]) == (
        "S19 Pro", "Supra", True)
    supra_w = 15 * min(max(ths["r01-s02"] / 0.6, 0.2), 1.5)
    assert s01["wiring_reason"] == (
        f"outlet {pdu.pdu_id}/1 draws {watts['r01-s01']:.0f} W but the Supra answering at "
        f"{f.rig('r01-s02').ip} hashes {ths['r01-s02']:g} TH/s (about {supra_w:.0f} W): "
        "outlet mapping or address swapped?")
    # r01-s02: inventoried as a Supra, answers as the S19 Pro, its outlet feeds the Supra
    s19_w = 3250 * min(max(ths["r01-s01"] / 110, 0.2), 1.5)
    assert (s02["model"], s02["identified_model"], s02["model_mismatch"]) == (
        "Supra", "S19 Pro", True)
    assert s02["wiring_reason"] == (
        f"outlet {pdu.pdu_id}/2 draws {watts['r01-s02']:.0f} W but the S19 Pro answering at "
        f"{f.rig('r01-s01').ip} hashes {ths['r01-s01']:g} TH/s (about {s19_w:.0f} W): "
        "outlet mapping or address swapped?")
    # r01-s03 hangs while its outlet still draws the M50's power
    assert s03["online"] is False and s03["wiring_suspect"] is True
    assert s03["wiring_reason"] == (
        f"outlet {pdu.pdu_id}/3 draws {watts['r01-s03']:.0f} W but the rig does not answer: "
        "the outlet feeds another rig, or this one hangs while drawing power")
    # r01-s04 is what the inventory says, drawing what an S21 draws
    assert (s04["model_mismatch"], s04["wiring_suspect"]) == (False, False)
    # pools: the simulated cgminer-family rigs mine on pool.example.net as farm.<rig id>;
    # write_config makes r01-s02 and r01-s04 customer acme (prefix acme.), the others "*"
    assert (s02["pool_url"], s02["pool_user"]) == ("stratum+tcp://pool.example.net:3333",
                                                   "farm.r01-s01")
    assert s02["pool_unexpected"] is True
    assert s02["pool_reason"] == "worker 'farm.r01-s01' does not start with 'acme.' " \
                                 "(customer 'acme')"
    assert s04["pool_unexpected"] is True
    assert "pool_url" not in s01  # the Supra answers there: pyasic 0.79 reads no AxeOS pools
    assert "pool_unexpected" not in s03  # silent: nothing to judge

    # stored and alerted on
    points = [p for r in readings.values() for p in rig_points(RigReading.model_validate(r))]
    InfluxV1Sink(influxd.url, influx_db.database).write(points)
    now = time.time() + 1
    fired = {uid: sorted(dict(x.labels)["rig"] for x in evaluate_rule(influx_db, rule(uid), now))
             for uid in ("hw-rig-wiring-suspect", "hw-rig-model-mismatch",
                         "hw-rig-pool-unexpected")}
    assert fired == {"hw-rig-wiring-suspect": ["r01-s01", "r01-s02", "r01-s03"],
                     "hw-rig-model-mismatch": ["r01-s01", "r01-s02"],
                     "hw-rig-pool-unexpected": ["r01-s02", "r01-s04"]}
    [rows] = run_panel(influx_db, board(), "Inventory, wiring and pool suspects", now)
    table = {r["rig"]: r for r in rows}
    assert sorted(table) == ["r01-s01", "r01-s02", "r01-s03", "r01-s04"]
    assert table["r01-s02"]["answers as"] == "S19 Pro"
    assert table["r01-s04"]["pool problem"] == s04["pool_reason"]


def board() -> dict[str, Any]:
    return dict(json.loads((DASHBOARDS / "farm-overview.json").read_text()))


def rule(uid: str) -> dict[str, Any]:
    rules = json.loads((ALERTING / "rules.json").read_text())
    return next(r for g in rules["groups"] for r in g["rules"] if r["uid"] == uid)


def test_the_allow_list_matches_urls_and_worker_prefixes() -> None:
    pools = PoolsConfig(allowed=["stratum+tcp://*.braiins.com:*", "stratum2+tcp://*"],
                        workers={"acme": ["acme.", "acmeh."]})
    assert pool_problem("stratum+tcp://eu.Braiins.com:3333", "acme.r1", "acme", pools) is None
    assert pool_problem("stratum+tcp://pool.evil.example:3333", "acme.r1", "acme", pools) == \
        "pool stratum+tcp://pool.evil.example:3333 is not on the site's allow-list"
    assert pool_problem("stratum2+tcp://x:1", "thief.r1", "acme", pools) == \
        "worker 'thief.r1' does not start with 'acme.' or 'acmeh.' (customer 'acme')"
    # a customer with no prefix listed and no "*": any worker
    assert pool_problem("stratum2+tcp://x:1", "anyone", "blockfarm", pools) is None


@pytest.mark.parametrize("online,hashrate,outlet_w,suspect", [
    (True, 110.0, 3250.0, False),   # an S19 Pro drawing its nominal power
    (True, 110.0, 15.0, True),      # the case: 15 W behind a hashing S19 Pro
    (True, 55.0, 1700.0, False),    # half the hashrate, about half the power
    (False, None, 0.0, False),      # switched off, outlet at 0 W
    (False, None, 90.0, False),     # silent, a controller and fans: under the idle ceiling
    (False, None, 3300.0, True),    # silent but drawing full power
    (True, 0.0, 2500.0, True),      # answers, hashes nothing, draws like a miner
])
def test_outlet_power_against_the_rig(online: bool, hashrate: float | None, outlet_w: float,
                                      suspect: bool) -> None:
    rig = RigConfig(id="r1", address="10.0.0.1", model="S19 Pro", pdu="p1", outlet=1)
    reading = {"online": online, "hashrate_ths": hashrate, "identified_model": "S19 Pro"}
    assert (wiring_reason(reading, rig, outlet_w) is not None) is suspect
