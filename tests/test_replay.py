"""Captured replies of real rigs (../shared/reference/miner-api), replayed over TCP the way a
LAN delivers them, read by the collector: every family pyasic 0.79 identifies is stored with
the exact values derived by hand in tests/cases/rigs/<family>/expected.toml, with fast paths
on and off; and a differential test against pyasic on every capture."""

from __future__ import annotations

import asyncio
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector.mapping import Origin, reading_from_miner
from collector.rigs import FIELDS, PyasicSource
from collector.rigs.registry import fast_path_for, identify
from collector.service import run_collector
from exporters.decode import rig_points
from hashwatt.config import RigConfig, load_config
from hashwatt.contract import RigReading, unknown_keys
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from sim.replay import CAPTURES, ReplayFarm, reference_dir
from tests.conftest import next_octet, wait_for, write_config
from tests.differences import without_documented
from tests.test_e2e import bridge_running, last_rig_points

pytestmark = pytest.mark.e2e
CASES = Path(__file__).parent / "cases" / "rigs"
FOLDERS = sorted(p.name for p in CASES.iterdir() if (p / "expected.toml").exists())
RIG_KEYS = ("online", "hashrate_ths", "expected_hashrate_ths", "power_w", "power_source",
            "temp_max_c", "env_temp_c", "fans_rpm", "boards_total", "uptime_s", "errors")
BOARD_KEYS = ("hashrate_ths", "chips", "chip_temp_c", "board_temp_c")


def case(folder: str) -> dict[str, Any]:
    return tomllib.loads((CASES / folder / "expected.toml").read_text())


def nulls(value: Any) -> Any:
    """TOML has no null: the expected files write "null"."""
    if value == "null":
        return None
    if isinstance(value, list):
        return [nulls(v) for v in value]
    return value


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayFarm]:
    """Every capture on its own loopback address, served from a thread of its own."""
    assert reference_dir() is not None, "../shared/reference/miner-api is missing"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    farm = ReplayFarm(base=f"127.{next_octet()}.250")
    asyncio.run_coroutine_threadsafe(farm.start(), loop).result(30)
    yield farm
    asyncio.run_coroutine_threadsafe(farm.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def poll(ip: str, fast: bool) -> dict[str, Any]:
    """One collector poll (identification included) of one replayed rig."""
    source = PyasicSource(fast_paths=fast, timeout_s=10.0)
    origin = Origin(site="north", collector="c1", rig=RigConfig(id="rig-1", address=ip),
                    ts_ms=1_790_000_000_000)
    reading = asyncio.run(source.poll(origin))
    assert unknown_keys(RigReading, reading) == []  # the contract, unknown keys refused
    return reading


def expected(spec: dict[str, Any], fast: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rig = {k: nulls(v) for k, v in spec["reading"].items()}
    boards = [{k: nulls(v) for k, v in b.items()} for b in spec.get("boards", [])]
    if not fast:
        rig.update({k: nulls(v) for k, v in spec.get("pyasic", {}).items()})
        for board, override in zip(boards, spec.get("pyasic_boards", []), strict=False):
            board.update({k: nulls(v) for k, v in override.items()})
        if rig.pop("no_boards", False):
            boards = []
    return rig, boards


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pyasic"])
@pytest.mark.parametrize("folder", FOLDERS)
def test_each_captured_family_is_stored_with_the_values_derived_from_its_capture(
        replay: ReplayFarm, folder: str, fast: bool) -> None:
    spec = case(folder)
    want, want_boards = expected(spec, fast)
    reading = poll(replay.rig(spec["capture"]).ip, fast)
    got = {k: reading[k] for k in RIG_KEYS}
    point = rig_points(RigReading.model_validate(reading))[0]
    got["boards_ok"] = point.fields.get("boards_ok")  # derived by the bridge, as stored
    assert got == {k: want[k] for k in (*RIG_KEYS, "boards_ok")}
    assert [{k: b[k] for k in BOARD_KEYS} for b in reading["boards"]] == want_boards
    assert reading["error"] is None  # the fast path itself worked (no fallback note)


def test_every_capture_pyasic_identifies_has_a_case_and_a_fast_path(replay: ReplayFarm) -> None:
    covered = {case(f)["capture"]: case(f)["path"] for f in FOLDERS}
    assert set(covered) == {c.name for c in CAPTURES}

    async def kinds() -> dict[str, str]:
        out = {}
        for rig in replay.rigs:
            miner = await identify(rig.ip, 4.0)
            path = fast_path_for(miner, 4.0)
            out[rig.capture.name] = type(path).__name__
            if path is not None:
                await path.close()
        return out

    assert asyncio.run(kinds()) == covered


@pytest.mark.parametrize("folder", FOLDERS)
def test_differential_against_pyasic_on_every_capture(replay: ReplayFarm, folder: str) -> None:
    """Fast path and pyasic's get_data on the same miner object: equal except where
    tests/differences.py documents why the capture decides otherwise."""
    spec = case(folder)
    ip = replay.rig(spec["capture"]).ip

    async def both() -> tuple[Any, Any]:
        miner = await identify(ip, 4.0)
        path = fast_path_for(miner, 4.0)
        assert path is not None
        try:
            return await path.telemetry(), await miner.get_data(include=FIELDS)
        finally:
            await path.close()

    fast, slow = asyncio.run(both())
    origin = Origin(site="north", collector="c1", rig=RigConfig(id="rig-1", address=ip), ts_ms=1)
    kind = spec["path"]
    assert without_documented(reading_from_miner(origin, fast), kind) == \
        without_documented(reading_from_miner(origin, slow), kind)


def test_replies_arrive_in_lan_segments_and_unknown_commands_get_the_firmwares_error(
        replay: ReplayFarm) -> None:
    rig = replay.rig("antminer-v2020")
    assert rig.rpc_reply("stats+summary")["STATUS"][0]["Msg"] == "Invalid command"
    assert rig.rpc_reply("estats")["STATUS"][0]["Description"] == "cgminer 1.0.0"
    avalon = replay.rig("avalon-q").rpc_reply("estats")
    assert [s["ID"] for s in avalon["STATS"]] == ["AVALON0"]  # no POOL0, as cgminer builds it
    assert replay.rig("whatsminer-v2").rpc_reply("summary+get_version")["STATUS"] == "E"


class _Broken:
    async def telemetry(self) -> Any:
        raise ConnectionResetError("peer reset")

    async def close(self) -> None:
        pass


def test_a_failing_fast_path_falls_back_to_pyasic_in_the_same_poll(replay: ReplayFarm) -> None:
    rig = replay.rig("bitaxe")
    source = PyasicSource(timeout_s=10.0)
    origin = Origin(site="north", collector="c1", rig=RigConfig(id="rig-1", address=rig.ip),
                    ts_ms=1)

    async def run() -> dict[str, Any]:
        await source.poll(origin)  # identifies the rig and keeps its miner object
        source.paths["rig-1"] = _Broken()
        return await source.poll(origin)

    reading = asyncio.run(run())
    assert reading["online"] is True and reading["hashrate_ths"] == 1.0  # read by pyasic
    assert reading["power_w"] == 3.0  # pyasic's whole watts: it was pyasic that read it
    assert reading["error"] == "fast path: ConnectionResetError: peer reset; read by pyasic"


@dataclass(frozen=True)
class _Inventory:
    rig_id: str
    ip: str


def test_every_capture_is_stored_in_influxdb_with_the_values_derived_by_hand(
        replay: ReplayFarm, tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd,
        influx_db: InfluxQL) -> None:
    """The whole way: the collector (fast paths) through mosquitto and the bridge into a
    real influxd; every stored rig and board field against expected.toml."""
    specs = {case(f)["capture"]: case(f) for f in FOLDERS}
    rigs = [_Inventory(r.capture.name, r.ip) for r in replay.rigs]
    influx = f'api = "v1"\nurl = "{influxd.url}"\ndatabase = "{influx_db.database}"'
    cfg = load_config(write_config(tmp_path / "hashwatt.toml", mqtt_port=mosquitto.port,
                                   rigs=rigs, influx=influx,  # type: ignore[arg-type]
                                   collector='interval_s = 20\ndeadline_s = 15'))
    with bridge_running(cfg):
        asyncio.run(run_collector(cfg, cycles=1))
        stored = last_rig_points(influx_db, len(rigs))
        boards = wait_for(lambda: len(r := influx_db.rows(
            'SELECT * FROM "rig_board" GROUP BY "rig", "board"')) >= sum(
            len(s.get("boards", [])) for s in specs.values()) and r)
    assert isinstance(boards, list)
    for name, spec in specs.items():
        want, want_boards = expected(spec, fast=True)
        row = stored[name]
        fans = want["fans_rpm"]
        assert {k: row[k] for k in ("online", "hashrate_ths", "expected_hashrate_ths",
                                    "power_w", "power_source", "temp_max_c", "env_temp_c",
                                    "boards_total", "uptime_s", "boards_ok", "fan_min_rpm",
                                    "errors")} == {
            **{k: want[k] for k in ("online", "hashrate_ths", "expected_hashrate_ths",
                                    "power_w", "power_source", "temp_max_c", "env_temp_c",
                                    "boards_total", "uptime_s", "boards_ok")},
            "fan_min_rpm": min(fans) if fans else None,
            "errors": "; ".join(want["errors"] or []) or None}, name
        got_boards = sorted((b for b in boards if b["rig"] == name), key=lambda b: b["board"])
        assert [{k: b[k] for k in BOARD_KEYS} for b in got_boards] == want_boards, name
