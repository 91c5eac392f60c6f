"""Modbus TCP meters against a real pymodbus server: register maps, units, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from collector.meters.registers import RegisterMap, builtin_maps
from collector.meters.source import MeterSource
from hashwatt.config import Config, MeterConfig, SiteConfig
from hashwatt.services import free_port
from hashwatt.sim.meters import meter_server

SDM630 = builtin_maps()["eastron_sdm630"]
PM5XXX = builtin_maps()["schneider_pm5xxx"]


def poll_meter(rmap: RegisterMap, *polls: dict[int, float], unit_id: int = 1,
               **settings: Any) -> list[dict[str, Any]]:
    """One poll per value set, each served by a fresh meter server on the same port."""
    port = free_port()
    meter = MeterConfig(id="main-1", address="127.0.0.1", port=port, unit_id=unit_id,
                        map=rmap.name, timeout_s=1, **settings)
    source = MeterSource(Config(site=SiteConfig(name="north"), meters=[meter]))

    async def one(values: dict[int, float]) -> dict[str, Any]:
        server = meter_server(rmap, values, "127.0.0.1", port, unit_id=7)
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
    values = {3059: 27.5, 2699: 98765.25, 3009: 40.0, 2999: 40.5, 3027: 231.0, 3053: 9.25}
    [r] = poll_meter(PM5XXX, values, unit_id=7)
    assert (r["power_w"], r["energy_kwh"]) == (27500.0, 98765.25)
    assert r["phases"][0] == {"phase": "1", "power_w": 9250.0, "voltage_v": 231.0,
                              "current_a": 40.5}


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
    assert PM5XXX.blocks() == [(2699, 2), (2999, 62)]


@pytest.mark.parametrize("name", sorted(builtin_maps()))
def test_every_shipped_map_has_device_power_or_energy(name: str) -> None:
    rmap = builtin_maps()[name]
    assert rmap.device.power_w is not None or rmap.device.energy_kwh is not None
