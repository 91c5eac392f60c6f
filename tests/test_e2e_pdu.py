"""End to end with PDUs: simulated rigs on simulated SNMP PDUs → collector → mosquitto →
bridge → influxd. A rig's power comes from its outlet, and both agree to the watt."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from collector.service import run_collector
from hashwatt.config import load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from sim.model import Scenario, snapshot
from sim.pdus import PHASE_RATING_A, VOLTAGE_V
from tests.conftest import FarmFactory, wait_for, write_config
from tests.test_e2e import ALL_MODELS, bridge_running

pytestmark = pytest.mark.e2e


def run_once(tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
             db: InfluxQL, scenarios: dict[str, Scenario] | None = None):
    f = farm(len(ALL_MODELS), mix=ALL_MODELS, pdus=True, scenarios=scenarios)
    cfg = load_config(write_config(
        tmp_path / "c.toml", mqtt_port=mosquitto.port, rigs=f.rigs, pdus=f.pdus,
        influx=f'url = "{influxd.url}"\ndatabase = "{db.database}"'))
    with bridge_running(cfg):
        asyncio.run(run_collector(cfg, cycles=1))
        assert wait_for(lambda: len(db.rows('SELECT * FROM "rig"')) == len(f.rigs)
                        and len(db.rows('SELECT * FROM "pdu_outlet"')) == len(f.rigs))
    return f


def test_a_rig_on_a_pdu_outlet_reports_the_outlet_power_as_pdu_power(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    f = run_once(tmp_path, farm, mosquitto, influxd, influx_db)
    rigs = {r["rig"]: r for r in influx_db.rows('SELECT * FROM "rig"')}
    outlets = {r["rig"]: r for r in influx_db.rows('SELECT * FROM "pdu_outlet"')}
    for rig in f.rigs:
        watts = float(snapshot(rig, f.seed, 0).power_w)
        assert (rigs[rig.rig_id]["power_w"], rigs[rig.rig_id]["power_source"]) == (watts, "pdu")
        assert outlets[rig.rig_id]["power_w"] == watts
        assert outlets[rig.rig_id]["outlet_name"] == rig.rig_id
        assert outlets[rig.rig_id]["pdu"] == "pdu-r01"


def test_pdu_and_phase_points_carry_device_power_and_load_against_the_breaker(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    f = run_once(tmp_path, farm, mosquitto, influxd, influx_db)
    watts = [snapshot(r, f.seed, 0).power_w for r in f.rigs]
    [pdu] = influx_db.rows('SELECT * FROM "pdu"')
    assert pdu["power_w"] == round(sum(watts) / 10) * 10.0  # the MIB's unit is 0.01 kW
    phases = {r["phase"]: r for r in influx_db.rows('SELECT * FROM "pdu_phase"')}
    for phase in ("1", "2", "3"):
        on_phase = sum(w for n, w in enumerate(watts) if n % 3 == int(phase) - 1)
        current = round(on_phase / VOLTAGE_V * 10) / 10
        assert phases[phase]["current_a"] == current
        assert phases[phase]["load_pct"] == round(current / PHASE_RATING_A * 100, 3)


def test_a_switched_off_rig_shows_zero_watts_at_its_outlet_and_is_offline(
        tmp_path: Path, farm: FarmFactory, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    run_once(tmp_path, farm, mosquitto, influxd, influx_db, {"r01-s02": Scenario.OFFLINE})
    [rig] = influx_db.rows('SELECT * FROM "rig" WHERE "rig" = \'r01-s02\'')
    assert (rig["online"], rig["power_w"], rig["power_source"]) == (False, 0.0, "pdu")


def test_a_switchboard_meter_on_modbus_lands_in_the_pdu_measurements(
        tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: InfluxQL) -> None:
    import threading

    from collector.meters.registers import builtin_maps
    from sim.launch import free_port
    from sim.meters import meter_server

    port, loop, started = free_port(), asyncio.new_event_loop(), threading.Event()
    holder = {}

    async def serve() -> None:
        holder["server"] = meter_server(
            builtin_maps()["eastron_sdm630"],
            {52: 27470.0, 72: 1234.5, 0: 231.5, 6: 40.5, 12: 9300.0, 14: -45.6}, "127.0.0.1", port,
            unit_id=2)
        started.set()
        await holder["server"].serve_forever()

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    assert started.wait(5)
    meter = (f'[[meters]]\nid = "main-board"\naddress = "127.0.0.1"\nport = {port}\n'
             'unit_id = 2\nmap = "eastron_sdm630"\n')
    path = write_config(tmp_path / "m.toml", mqtt_port=mosquitto.port,
                        influx=f'url = "{influxd.url}"\ndatabase = "{influx_db.database}"')
    path.write_text(path.read_text() + meter)
    cfg = load_config(path)
    try:
        with bridge_running(cfg):
            asyncio.run(run_collector(cfg, cycles=1))
            assert wait_for(lambda: influx_db.rows('SELECT * FROM "pdu_phase"'))
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].shutdown(), loop).result(5)
    [pdu] = influx_db.rows('SELECT * FROM "pdu"')
    assert (pdu["pdu"], pdu["vendor"], pdu["power_w"], pdu["energy_kwh"]) == (
        "main-board", "Eastron", 27470.0, 1234.5)
    phase1 = next(r for r in influx_db.rows('SELECT * FROM "pdu_phase"') if r["phase"] == "1")
    assert (phase1["voltage_v"], phase1["current_a"], phase1["power_w"]) == (231.5, 40.5, 9300.0)
    # a phase exporting (or behind a reversed CT) is stored as measured, never dead-lettered
    phase2 = next(r for r in influx_db.rows('SELECT * FROM "pdu_phase"') if r["phase"] == "2")
    assert phase2["power_w"] == -45.6
