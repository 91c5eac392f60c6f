"""Fast paths on replies shaped like real firmware this project has no capture of: each reply
is HAND-WRITTEN in tests/cases/rigs/handwritten/ (its source named in its "//" key), served
by a cgminer-style peer on loopback; the expected figures are derived by hand below."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyasic.miners.antminer as antminers
import pyasic.miners.avalonminer as avalonminers
import pyasic.miners.whatsminer as whatsminers
import pytest

from collector.rigs import antminer, avalon, whatsminer
from collector.rigs.base import Telemetry
from collector.rigs.credentials import DEFAULT
from tests.test_rig_reads import port, serve

HANDWRITTEN = Path(__file__).parent / "cases" / "rigs" / "handwritten"


def case(name: str) -> dict[str, Any]:
    """A hand-written case file."""
    return dict(json.loads((HANDWRITTEN / f"{name}.json").read_text()))


def poll(path_cls: Any, module: Any, name: str) -> Telemetry:
    """One fast-path poll of the case's replies over real TCP (one connection per command,
    or one joined command when the path tries that; the peer answers both)."""
    spec = case(name)
    replies = spec["replies"]

    def reply(command: str) -> bytes:
        parts = command.split("+")
        if len(parts) > 1:  # cgminer's join: each command's reply list under its name
            return json.dumps({c: [replies[c]] for c in parts}).encode() + b"\x00"
        # a command the case does not answer: cgminer's own "Invalid command" (code 14)
        return json.dumps(replies.get(command, {"STATUS": [
            {"STATUS": "E", "Code": 14, "Msg": "Invalid command"}], "id": 1})).encode() + b"\x00"

    async def run() -> Telemetry:
        server = await serve(reply)
        async with server:
            miner = getattr(module, spec["model"])("127.0.0.1")
            path = path_cls(miner, 5.0, DEFAULT)
            path.session.port = port(server)
            if hasattr(path, "skip_web"):  # the Antminer error list is a web API: not served
                path.skip_web = 1
            try:
                return await path.telemetry()  # type: ignore[no-any-return]
            finally:
                await path.close()

    return asyncio.run(run())


def th(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def test_avalon_nano3_ps4_is_not_watts_above_its_own_power_limit() -> None:
    t = poll(avalon.AvalonPath, avalonminers, "avalon_nano3_ps_layout")
    # no WALLPOWER; PS[4] = 2800 > MPO[90] * 1.25 = 112.5: not this rig's watts -> unknown
    assert t.wattage is None
    assert th(t.hashrate) == 3.0            # devs MHS 1m 3,000,000 MH/s = 3.0 TH/s
    assert th(t.expected_hashrate) == 3.2   # GHSmm 3200 GH/s
    assert t.env_temp == 30.0               # Temp[30]
    assert t.uptime == 1000                 # the STATS entry's Elapsed
    assert [f.speed for f in t.fans] == [2900]  # Fan1[2900]; the Nano 3 has one fan
    [board] = t.hashboards
    assert th(board.hashrate) == 3.0        # GHSspd 3000 GH/s, one board: all of it
    assert board.chips == 10                # ten PVT_T0 sensors
    assert board.chip_temp == 80.0 and board.temp is None  # MTmax[80]; no PCB sensor
    assert t.temp_max == 80.0


def test_avalon_ps4_within_the_power_limit_is_the_rigs_watts() -> None:
    # the A1246 shape (reference avalon_a_stats.json: PS[4] 3189 beside MPO[3200]), own numbers
    assert avalon.power({"PS": ["0", "1214", "1316", "242", "3100", "1320", "3400"],
                         "MPO": "3200"}) == 3100
    # WALLPOWER, when sent, is the wall power whatever PS says
    assert avalon.power({"WALLPOWER": "3300", "PS": ["0", "0", "0", "0", "9999"],
                         "MPO": "90"}) == 3300


def test_whatsminer_overheat_figure_falls_back_to_the_rigs_hottest_chip() -> None:
    t = poll(whatsminer.WhatsminerPath, whatsminers, "whatsminer_rig_chip_max_only")
    # no board sends Chip Temp Max: the hottest chip is summary's Chip Temp Max 101.5, not unknown
    assert t.temp_max == 101.5
    assert th(t.hashrate) == 61.0           # summary MHS 1m 61,000,000 MH/s
    assert th(t.expected_hashrate) == 55.5  # Factory GHS 55500 GH/s
    assert t.wattage == 2600 and t.env_temp == 54.25 and t.uptime == 40000
    assert [f.speed for f in t.fans] == [0, 0]  # hydro: both fans report 0
    assert t.errors is None                 # get_error_code refused: unknown, not "no errors"
    # boards: MHS 1m 20/21/20 TH/s, 148 chips, Chip Temp Avg and Temperature as sent
    assert [(th(b.hashrate), b.chips, b.chip_temp, b.temp) for b in t.hashboards[:3]] == [
        (20.0, 148, 91.0, 70.0), (21.0, 148, 93.0, 71.0), (20.0, 148, 92.0, 72.0)]


def test_antminer_overheat_figure_includes_the_firmwares_own_temp_max() -> None:
    t = poll(antminer.AntminerPath, antminers, "antminer_firmware_temp_max")
    # chain sensors reach 56 at most; the firmware's own temp_max says 60: the hottest is 60
    assert t.temp_max == 60.0
    assert th(t.hashrate) == 570.0          # summary GHS 5s 570000 GH/s
    assert th(t.expected_hashrate) == 580.0  # total_rateideal 580000, rate_unit GH
    assert t.uptime == 1000 and t.errors is None  # the web error list was not read: unknown
    assert t.fans == []                     # S21 Hydro: pyasic expects no fans
    # chain_rate 190000/191000/189000 GH/s; 84 chips; means of the non-zero sensors:
    # chip (44+44+56+56)/4 = 50, (42+42+54+54)/4 = 48, (44+44+55+55)/4 = 49.5;
    # board (44+44+52+52)/4 = 48, 48, (40+40+50+50)/4 = 45
    assert [(th(b.hashrate), b.chips, b.chip_temp, b.temp) for b in t.hashboards] == [
        (190.0, 84, 50.0, 48.0), (191.0, 84, 48.0, 48.0), (189.0, 84, 49.5, 45.0)]


def test_whatsminer_v3_error_code_shapes_pyasic_has_seen() -> None:
    from collector.rigs.whatsminer_v3 import WhatsminerV3Path
    # the "error-code" shapes in pyasic's tests/miners_tests/backends_tests/btminer_tests/
    # test_v3_error_mapping.py: codes as strings, ints, {"code": text, "reason": ...} items,
    # junk; the codes are 541, 2010, 5032 (sorted, once each)
    got = WhatsminerV3Path._errors({"error-code": [
        "2010", 541, {"541": "Slot 1 error reading chip id.", "reason": "hashboard"},
        {"5032": "Slot 2 voltage abnormal"}, "not-a-code", None]})
    assert [e.error_code for e in got] == [541, 2010, 5032]
    # a plain string is one error in words (pyasic drops it): not "none", not its characters
    [err] = WhatsminerV3Path._errors({"error-code": "btminer process is down err"})
    assert err.error_message == "btminer process is down err"
    assert WhatsminerV3Path._errors({}) == []  # no "error-code" in get.device.info: none


def test_a_fan_the_reply_does_not_list_is_unknown_not_stopped() -> None:
    # an S19 Pro has four fans; a stats entry listing only fan1/fan2 (own numbers): the other
    # two are unknown (None: left out of fans_rpm), not 0 rpm ("fan dead" would fire)
    miner = antminers.BMMinerS19Pro("127.0.0.1")
    path = antminer.AntminerPath(miner, 1.0, DEFAULT)
    assert [f.speed for f in path._fans({"fan1": 5400, "fan2": "5520"})] == [
        5400, 5520, None, None]
    assert [f.speed for f in path._fans({"fan1": 0, "fan2": 0, "fan3": 0, "fan4": 0})] == [
        0, 0, 0, 0]  # reported 0: a stopped fan is a known 0
    asyncio.run(path.close())


async def _http(ip: str, routes: dict[str, Any]) -> asyncio.Server:
    """A plain HTTP/1.1 server on port 80 answering GETs from a table (404 otherwise)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ")[1]
        body = json.dumps(routes[path]).encode() if path in routes else b"not found"
        status = b"200 OK" if path in routes else b"404 Not Found"
        writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (status, len(body), body))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, ip, 80)


@pytest.mark.parametrize("pyasic_class", ["BitAxeUltra", "BitAxe"])
def test_axeos_2_9_without_asic_count_in_system_info(pyasic_class: str) -> None:
    # BitAxeUltra: what pyasic's factory builds for ASICModel BM1366; BitAxe: its class for
    # an ASIC it does not name (no board count: the path still reads the one board)
    import pyasic.miners.bitaxe as bitaxes
    from pyasic.miners.backends.bitaxe import BitAxe

    from collector.rigs.bitaxe import BitaxePath
    from tests.conftest import next_octet

    spec = case("axeos_2_9_multi_asic")
    ip = f"127.{next_octet()}.6.6"

    async def run() -> Telemetry:
        server = await _http(ip, spec["routes"])
        async with server:
            cls = BitAxe if pyasic_class == "BitAxe" else getattr(bitaxes, pyasic_class)
            path = BitaxePath(cls(ip), 5.0, DEFAULT)
            try:
                await path.telemetry()
                return await path.telemetry()  # the second poll: asic count kept, not asked
            finally:
                await path.close()

    t = asyncio.run(run())
    assert th(t.hashrate) == 2.5873           # hashRate 2587.3 GH/s
    # the firmware's expectedHashrate 2602.2 GH/s (485 MHz x 894 cores x 6 ASICs / 1000 =
    # 2601.54: the firmware's own figure wins), not 894 x 1 x 485 (asicCount defaulted to 1)
    assert th(t.expected_hashrate) == 2.6022
    [board] = t.hashboards
    assert board.chips == 6                   # /api/system/asic asicCount 6
    assert board.chip_temp == 61.25           # temp
    assert board.temp is None                 # vrTemp -1: no reading, not -1 degrees
    assert [e.error_message for e in t.errors or []] == ["Input voltage too low"]
    assert t.wattage == 74.52 and t.uptime == 86400 and [f.speed for f in t.fans] == [4620]


def test_axeos_expected_hashrate_from_cores_when_the_firmware_gives_none() -> None:
    from collector.rigs.bitaxe import _expected, _faults

    # before v2.8.0 there is no expectedHashrate: small cores x ASICs x MHz, in MH/s
    assert th(_expected({"smallCoreCount": 1276, "frequency": 490}, 1.0)) == 0.62524
    assert _expected({"smallCoreCount": 1276, "frequency": 490}, None) is None  # ASICs unknown
    # faults: none listed on v2.6.0+ is none; on older firmware unknown
    assert _faults({"version": "v2.6.0"}) == [] and _faults({"version": "v2.4.5"}) is None


def test_epic_miner_error_shapes_are_one_line() -> None:
    from collector.rigs.epic import _error_text

    # PowerPlay 1.30.0's MinerError (asic-rs meta/epic/1.30.0/powerplay.json): a name, or
    # one key with its detail
    assert _error_text("NoHashboardsEnabled") == "NoHashboardsEnabled"
    assert _error_text({"UartReadError": 3}) == "UartReadError: 3"
    assert _error_text({"MismatchingBoardTypes": [[0, "S19XP"]]}) == (
        'MismatchingBoardTypes: [[0, "S19XP"]]')


def test_an_unknown_antminer_model_counts_its_boards_from_zero_whatever_its_chain_numbers() -> None:
    from collector.rigs.antminer import chain_board, unknown_model
    from collector.rigs.base import Telemetry

    # older bmminer numbers its chains 6-8 (chain_acn6..8; own numbers): boards 0-2
    stats = {"miner_count": 3, "chain_acn1": 0, "chain_acn6": 63, "chain_acn7": 63,
             "chain_acn8": 62, "chain_rate6": "4500.10", "temp_chip7": "70-60-65-66"}
    t = Telemetry(make="AntMiner", model="", firmware="", expected_hashboards=None)
    chains = unknown_model(t, {"Type": "Antminer S11"}, stats)
    assert chains == [6, 7, 8] and [b.slot for b in t.hashboards] == [0, 1, 2]
    assert t.model == "Antminer S11"
    assert chain_board(t.hashboards[1], stats, 7) == 70.0  # the hottest of temp_chip7
    assert t.hashboards[1].chips == 63 and t.hashboards[1].chip_temp == 65.25
    chain_board(t.hashboards[0], stats, 6)
    assert th(t.hashboards[0].hashrate) == 4.5001   # chain_rate6 "4500.10" GH/s


def test_whatsminer_v3_heartbeat_frames_and_a_summary_only_hottest_chip() -> None:
    import struct

    from pyasic.miners.backends import BTMinerV3

    from collector.rigs.whatsminer_v3 import WhatsminerV3Path
    from tests.conftest import next_octet

    # shapes from MicroBT's API v3 document (get.miner.status summary example: chip-temp-max
    # 100.3 in summary; heartbeat frame 0x00000000); edevs here carry no chip-temp-max.
    # Numbers are the document's where it has them, else my own.
    summary = {"elapsed": 1074, "factory-hash": 101.366, "hash-average": 101.847,
               "hash-realtime": 101.847, "power-realtime": 3268,
               "environment-temperature": 34.8, "board-temperature": [69.6, 70.1, 72.3],
               "chip-temp-max": 100.3, "fan-speed-in": 4980, "fan-speed-out": 5070}
    edevs = [{"id": i, "hash-realtime": 33.9, "chip-temp-avg": 92.0, "effective-chips": 111}
             for i in range(3)]
    replies = {"get.device.info": {"code": 0, "msg": {"miner": {"type": "M30S++_VH70"}}},
               "get.miner.status:summary": {"code": 0, "msg": {"summary": summary}},
               "get.miner.status:edevs": {"code": 0, "msg": {"edevs": edevs}}}
    ip = f"127.{next_octet()}.5.5"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack("<I", await reader.readexactly(4))[0]
        req = json.loads(await reader.readexactly(size))
        key = req["cmd"] + (f":{req['param']}" if req.get("param") else "")
        body = json.dumps(replies[key]).encode()
        writer.write(b"\x00\x00\x00\x00" + struct.pack("<I", len(body)) + body)  # heartbeat
        await writer.drain()
        writer.close()

    async def run() -> Telemetry:
        server = await asyncio.start_server(handle, ip, 4433)
        async with server:
            return await WhatsminerV3Path(BTMinerV3(ip), 5.0, DEFAULT).telemetry()

    t = asyncio.run(run())
    assert t.temp_max == 100.3              # summary chip-temp-max: no board gave one
    assert th(t.hashrate) == 101.847 and t.wattage == 3268 and t.env_temp == 34.8
    assert [b.temp for b in t.hashboards] == [69.6, 70.1, 72.3]
    assert [f.speed for f in t.fans] == [4980, 5070]
