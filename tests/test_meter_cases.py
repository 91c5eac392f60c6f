"""Every meter case in tests/cases/meters/<map>/: the 16-bit words a meter answers, written by
hand from the vendor's register table, served by a real pymodbus server as input or holding
registers (as the vendor's table says, not as hashwatt's map says), read under the map and
compared exactly with the readings worked out by hand beside the words."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from collector.meters.source import MeterSource
from hashwatt.config import Config, MeterConfig, SiteConfig
from hashwatt.contract import PduReading, unknown_keys
from sim.launch import free_port
from sim.meters import SPACE, word_server

CASES = Path(__file__).resolve().parent / "cases" / "meters"
CASE_FILES = sorted(CASES.glob("*/*.toml"))
DEVICE_FIELDS = ("power_w", "energy_kwh", "current_a")


def words(spec: dict[str, Any]) -> list[int]:
    """The register space: zeros, with each case's words from its protocol address."""
    out = [0] * SPACE
    for address, text in spec["words"].items():
        parts = [int(w, 16) for w in text.split()]
        out[int(address):int(address) + len(parts)] = parts
    return out


def read(spec: dict[str, Any], map_name: str) -> dict[str, Any]:
    port = free_port()
    meter = MeterConfig(id="main-1", address="127.0.0.1", port=port, unit_id=spec["unit_id"],
                        map=map_name, timeout_s=2, **spec.get("meter", {}))
    source = MeterSource(Config(site=SiteConfig(name="north"), meters=[meter]))

    async def run() -> dict[str, Any]:
        server = word_server(spec["function"], words(spec), "127.0.0.1", port,
                             unit_id=spec["unit_id"], max_registers=spec.get("max_registers"))
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.2)
        try:
            return await source.poll(meter, 1_790_000_000_000)
        finally:
            await source.close()
            await server.shutdown()
            task.cancel()

    return asyncio.run(run())


@pytest.mark.parametrize("path", CASE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in CASE_FILES])
def test_each_meter_case_reads_the_values_worked_out_from_the_vendor_table(path: Path) -> None:
    spec = tomllib.loads(path.read_text())
    r = read(spec, path.parent.name)
    assert r["online"] is True, r.get("error")
    assert unknown_keys(PduReading, r) == []
    PduReading.model_validate(r)  # signed power and all: the contract holds the reading whole
    expected = spec["expected"]
    assert {k: r[k] for k in expected["device"]} == expected["device"]
    assert [k for k in spec["absent"] if k in r] == []
    assert set(DEVICE_FIELDS) <= set(expected["device"]) | set(spec["absent"])
    assert r["phases"] == expected["phases"]


def test_every_shipped_map_has_a_case() -> None:
    maps = {p.stem for p in (CASES.parents[2] / "collector" / "meters" / "maps").glob("*.toml")}
    assert maps <= {p.parent.name for p in CASE_FILES}
