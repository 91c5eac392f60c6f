"""Modbus TCP meters against a real pymodbus server: register maps, units, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from collector.meters.registers import RegisterMap, builtin_maps
from collector.meters.source import MeterSource
from hashwatt.config import Config, MeterConfig, SiteConfig
from hashwatt.contract import PduReading, unknown_keys
from sim.launch import free_port
from sim.meters import meter_server

SDM630 = builtin_maps()["eastron_sdm630"]
SDM630MCT = builtin_maps()["eastron_sdm630mct"]
PM5XXX = builtin_maps()["schneider_pm5xxx"]


def poll_meter(rmap: RegisterMap, *polls: dict[int, float], unit_id: int = 1,
               served: RegisterMap | None = None, max_registers: int | None = None,
               **settings: Any) -> list[dict[str, Any]]:
    """One poll per value set, each served by a fresh meter server on the same port (served
    with `served`'s register types when given; refusing reads over max_registers)."""
    port = free_port()
    meter = MeterConfig(id="main-1", address="127.0.0.1", port=port, unit_id=unit_id,
                        map=rmap.name, timeout_s=1, **settings)
    source = MeterSource(Config(site=SiteConfig(name="north"), meters=[meter]))

    async def one(values: dict[int, float]) -> dict[str, Any]:
        server = meter_server(served or rmap, values, "127.0.0.1", port, unit_id=7,
                              max_registers=max_registers)
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.2)
        try:
            return await source.poll(meter, 1)
        finally:
            await server.shutdown()
            task.cancel()

    async def run() -> list[dict[str, Any]]:
        out = [await one(values) for values in polls]
        await source.close()
        for reading in out:  # the contract, unknown keys refused
            assert unknown_keys(PduReading, reading) == []
        return out

    return asyncio.run(run())


def test_an_sdm630_behind_a_gateway_reads_power_energy_and_phases_in_their_units() -> None:
    values = {0: 231.5, 2: 229.75, 4: 230.25, 6: 40.5, 8: 38.25, 10: 41.0,
              12: 9300.0, 14: 8750.0, 16: 9420.0, 52: 27470.0, 72: 1234567.5, 48: 119.75}
    [r] = poll_meter(SDM630, values, unit_id=7)
    assert (r["online"], r["vendor"], r["model"]) == (True, "Eastron", "SDM630")
    assert (r["power_w"], r["energy_kwh"], r["current_a"]) == (27470.0, 1234567.5, 119.75)
    assert r["phases"] == [
        {"phase": "1", "power_w": 9300.0, "voltage_v": 231.5, "current_a": 40.5},
        {"phase": "2", "power_w": 8750.0, "voltage_v": 229.75, "current_a": 38.25},
        {"phase": "3", "power_w": 9420.0, "voltage_v": 230.25, "current_a": 41.0}]


def test_a_pm5xxx_reports_kilowatts_that_become_watts() -> None:
    values = {3059: 27.5, 3203: 98765250, 3009: 40.0, 2999: 40.5, 3027: 231.0, 3053: 9.25}
    [r] = poll_meter(PM5XXX, values, unit_id=7)
    # 3060 total 27.5 kW x 1000; 3204 INT64 98,765,250 Wh / 1000 = 98,765.25 kWh
    assert (r["power_w"], r["energy_kwh"]) == (27500.0, 98765.25)
    assert r["phases"][0] == {"phase": "1", "power_w": 9250.0, "voltage_v": 231.0,
                              "current_a": 40.5}


def test_pm5xxx_energy_comes_from_the_int64_wh_counter_to_the_watt_hour() -> None:
    # register 3204 (protocol 3203) Active Energy Delivered, INT64 Wh = 123,456,789,012 Wh
    # = 123,456,789.012 kWh. As float32 kWh the nearest value is 123,456,792 (float32 keeps
    # 24 bits: steps of 8 kWh at this size), which is why the map reads the INT64 counter.
    [r] = poll_meter(PM5XXX, {3203: 123_456_789_012}, unit_id=7)
    assert r["energy_kwh"] == 123456789.012


def test_device_current_is_the_sum_of_the_line_currents_on_every_map() -> None:
    # one meaning for device current_a: the total the device draws = sum of line currents.
    # SDM630: register 30049 "sum of line currents" = 119.75 A (40.5 + 38.25 + 41.0).
    [sdm] = poll_meter(SDM630, {6: 40.5, 8: 38.25, 10: 41.0, 48: 119.75}, unit_id=7)
    # PM5xxx gives only the average (3010 = 39.916...): the sum of 3000/3002/3004 is used
    pm_values = {2999: 40.5, 3001: 38.25, 3003: 41.0, 3009: 39.916668}
    [pm] = poll_meter(PM5XXX, pm_values, unit_id=7)
    assert (sdm["current_a"], pm["current_a"]) == (119.75, 119.75)


def test_signed_power_is_kept_as_measured_and_passes_the_contract() -> None:
    from exporters.decode import pdu_points
    from hashwatt.contract import PduReading

    # SDM630 30013/30015/30017 phase power: phase 2 at -45.6 W (exported, or a reversed CT);
    # 30053 total = 9300 - 45.6 + 9420 = 18674.4 W. float32 holds -45.6 as -45.59999847...;
    # the meter shows -45.6 and so does hashwatt (shortest decimal of the float32).
    [r] = poll_meter(SDM630, {12: 9300.0, 14: -45.6, 16: 9420.0, 52: 18674.4, 72: 5.0},
                     unit_id=7)
    assert [p["power_w"] for p in r["phases"]] == [9300.0, -45.6, 9420.0]
    assert r["power_w"] == 18674.4
    reading = PduReading.model_validate(r)  # not dead-lettered: energy and all kept
    phase2 = next(p for p in pdu_points(reading) if p.tags.get("phase") == "2")
    assert phase2.fields["power_w"] == -45.6 and reading.energy_kwh == 5.0


def test_the_sdm630mct_is_read_in_requests_of_at_most_30_values() -> None:
    values = {0: 231.5, 52: 27470.0, 72: 1234.5}
    # a meter refusing reads over 60 registers (30 float32 values), as the SDM630MCT does:
    # the SDM630's one 74-register read fails, the SDM630MCT map's reads go through
    [too_long] = poll_meter(SDM630, values, unit_id=7, max_registers=60)
    [split] = poll_meter(SDM630MCT, values, unit_id=7, max_registers=60)
    assert too_long["online"] is False and "registers 0+74" in too_long["error"]
    assert (split["online"], split["power_w"], split["energy_kwh"]) == (True, 27470.0, 1234.5)
    assert max(count for _, count in SDM630MCT.blocks()) <= 60


def test_an_sdm630mct_set_to_the_m_prefix_reports_mwh_that_become_kwh() -> None:
    # 30073 reads 1234.5 with the meter set to MWh: 1,234.5 MWh = 1,234,500 kWh
    [r] = poll_meter(SDM630MCT, {72: 1234.5}, unit_id=7, energy_prefix="M")
    assert r["energy_kwh"] == 1234500.0


def test_an_energy_counter_that_goes_backwards_is_flagged() -> None:
    first, second = poll_meter(SDM630, {72: 5000.0}, {72: 10.0}, unit_id=7)
    assert (first["energy_reset"], second["energy_reset"]) == (False, True)
    assert second["energy_kwh"] == 10.0


def test_a_meter_that_does_not_answer_for_its_unit_id_is_offline_with_the_reason() -> None:
    [r] = poll_meter(SDM630, {52: 1.0}, unit_id=9)
    assert r["online"] is False and r["error"]


def test_an_unreachable_meter_is_offline_with_the_reason() -> None:
    meter = MeterConfig(id="m", address="127.0.0.1", port=free_port(), map="eastron_sdm630",
                        timeout_s=0.5)
    r = asyncio.run(MeterSource(Config(site=SiteConfig(name="n"), meters=[meter])).poll(meter, 1))
    assert r["online"] is False and "cannot connect" in r["error"]


def test_a_not_a_number_register_is_left_out() -> None:
    [r] = poll_meter(SDM630, {52: float("nan"), 72: 1.0}, unit_id=7)
    assert "power_w" not in r and r["energy_kwh"] == 1.0


def test_registers_are_read_in_few_blocks() -> None:
    assert SDM630.blocks() == [(0, 74)]
    assert SDM630MCT.blocks() == [(0, 54), (72, 2)]
    assert PM5XXX.blocks() == [(2999, 62), (3203, 4)]


@pytest.mark.parametrize("name", sorted(builtin_maps()))
def test_every_shipped_map_has_device_power_or_energy(name: str) -> None:
    rmap = builtin_maps()[name]
    assert rmap.device.power_w is not None or rmap.device.energy_kwh is not None
