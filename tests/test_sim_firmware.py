"""The simulator sends what real firmware sends: LAN-sized segments, each family's own reply
shapes and quirks, joined-command semantics, idle and offline rigs, and the firmware families
sites run beside stock firmware, identified and polled by unmodified pyasic.

Expected numbers come from the simulator's deterministic model (`snapshot(rig, seed, 0)`),
converted by hand the way each pyasic backend reads the field (named beside each number).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import struct
import time
import urllib.error
import urllib.request
import warnings
from typing import Any

import pytest
from pyasic import get_miner
from pyasic.miners.data import DataOptions

from sim.model import Scenario, SimRig, snapshot
from tests.conftest import FarmFactory, RunningFarm

# no simulate options: every check here is on the farm's default output (firmware replies,
# LAN delivery)
FIRMWARE: tuple[str, ...] = ()
FIELDS = [DataOptions.HASHRATE, DataOptions.EXPECTED_HASHRATE, DataOptions.WATTAGE,
          DataOptions.HASHBOARDS, DataOptions.FANS, DataOptions.UPTIME, DataOptions.ERRORS,
          DataOptions.ENVIRONMENT_TEMP]


def raw_rpc(ip: str, command: str, port: int = 4028) -> tuple[bytes, list[int]]:
    """One cgminer-style exchange on a plain socket: the whole reply and each recv's size."""
    with socket.create_connection((ip, port), timeout=5) as sock:
        sock.sendall(json.dumps({"command": command}).encode())
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks), [len(c) for c in chunks]


def rpc_json(ip: str, command: str) -> Any:
    """A reply repaired the way pyasic's `_load_api_data` repairs it, then parsed."""
    text = raw_rpc(ip, command)[0].rstrip(b"\x00").decode()
    text = text.replace(",}", "}").replace("}{", "},{")
    return json.loads(text.replace('"inf"', "0").replace('"nan"', "0"))


def control(f: RunningFarm, rig_id: str, scenario: str) -> None:
    """Switch a rig's scenario over the farm's control port."""
    url = f"http://127.0.0.1:{f.control_port}/rigs/{rig_id}/scenario/{scenario}"
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5).read()


def poll(rig: SimRig) -> tuple[Any, Any]:
    """Identify the rig with unmodified pyasic and read what the collector asks for."""
    async def run() -> tuple[Any, Any]:
        miner = await get_miner(rig.ip)
        assert miner is not None, rig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return miner, await miner.get_data(include=FIELDS)
    return asyncio.run(run())


def th(value: Any) -> float:
    """A pyasic hashrate in TH/s, to the micro-TH."""
    return round(float(value), 6)


# --- delivery ---------------------------------------------------------------------------------

@pytest.mark.e2e
def test_lan_delivery_sends_a_long_reply_in_segments_with_gaps_then_nul_and_close(
        farm: FarmFactory) -> None:
    f = farm(1, mix=("s19pro",), extra=FIRMWARE)
    ip = f.rigs[0].ip
    # the stats reply of a three-chain S19 is ~1.7 KB: two 1460-byte segments.
    # A reader that is descheduled may find several segments waiting, so look for the
    # segmentation in up to five exchanges rather than demanding it of one.
    sizes: list[int] = []
    for _ in range(5):
        body, sizes = raw_rpc(ip, "stats")
        assert body.endswith(b"}\x00")  # cgminer send_result: strlen + 1, then close (EOF)
        assert len(body) > 1460
        if len(sizes) >= 2 and max(sizes) <= 1460:
            break
    assert len(sizes) >= 2 and max(sizes) <= 1460, sizes


@pytest.mark.e2e
def test_loopback_delivery_sends_the_reply_in_one_piece(farm: FarmFactory) -> None:
    f = farm(1, mix=("s19pro",), extra=("--replies=firmware", "--delivery=loopback"))
    body, _ = raw_rpc(f.rigs[0].ip, "stats")
    with socket.create_connection((f.rigs[0].ip, 4028), timeout=5) as sock:
        sock.sendall(b'{"command": "stats"}')
        time.sleep(0.3)  # the whole reply is in the socket buffer by now
        first = sock.recv(65536)
    assert len(first) == len(body)


# --- run-time offline -------------------------------------------------------------------------

@pytest.mark.e2e
def test_switching_a_rig_offline_at_run_time_makes_it_stop_answering(
        farm: FarmFactory) -> None:
    f = farm(2, mix=("s19pro",), extra=FIRMWARE)
    rig = f.rigs[1]
    assert raw_rpc(rig.ip, "version")[0]
    control(f, rig.rig_id, "offline")
    for port in (4028, 80):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((rig.ip, port), timeout=5).close()
    assert raw_rpc(f.rigs[0].ip, "version")[0]  # its neighbour still answers
    control(f, rig.rig_id, "normal")
    assert b"Antminer S19 Pro" in raw_rpc(rig.ip, "version")[0]


@pytest.mark.e2e
def test_an_unknown_scenario_is_refused_with_400(farm: FarmFactory) -> None:
    f = farm(1, mix=("s19pro",))
    with pytest.raises(urllib.error.HTTPError) as err:
        control(f, f.rigs[0].rig_id, "melted")
    assert err.value.code == 400


# --- quirks in the default output -------------------------------------------------------------

@pytest.mark.e2e
def test_stock_antminer_replies_like_a_real_s19(farm: FarmFactory) -> None:
    # 41 rigs: rig 41 stands in rack 5, the cold container (ambient -12 degC)
    f = farm(41, mix=("s19pro",), extra=FIRMWARE)
    warm, cold = f.rigs[0], f.rigs[40]
    raw = raw_rpc(warm.ip, "stats")[0]
    assert b'"Type":"Antminer S19 Pro"}{"STATS":0' in raw  # bmminer's missing comma
    stats = rpc_json(warm.ip, "stats")["STATS"][1]
    b0 = snapshot(warm, f.seed, 0).boards[0]
    # four sensors per chain, the real capture's spread: hottest, inlet -28, then -9, -8
    c, p = int(b0.chip_temp_c), int(b0.board_temp_c)
    assert stats["temp_chip1"] == f"{c}-{c - 28}-{c - 9}-{c - 8}"
    assert stats["temp_pcb1"] == f"{p}-{p - 28}-{p - 9}-{p - 8}"
    assert stats["temp_chip4"] == stats["temp_pcb4"] == "0-0-0-0"  # the absent fourth chain
    assert stats["chain_rate4"] == "" and stats["chain_acn4"] == 0
    assert stats["chain_rate1"] == f"{b0.hashrate_gh:.2f}"  # a number as a string
    # in the cold the inlet-side board sensor reads below zero: "8--20-..."
    cb = snapshot(cold, f.seed, 0).boards[0]
    cp = int(cb.board_temp_c)
    assert cold.ambient_c == -12.0 and cp - 28 < 0
    assert rpc_json(cold.ip, "stats")["STATS"][1]["temp_pcb1"] == (
        f"{cp}-{cp - 28}-{cp - 9}-{cp - 8}")
    assert "--" in rpc_json(cold.ip, "stats")["STATS"][1]["temp_pcb1"]
    # joined commands are refused: the whole string is one unknown command (pyasic splits)
    joined = rpc_json(warm.ip, "stats+summary")
    assert joined["STATUS"][0]["STATUS"] == "E" and joined["STATUS"][0]["Code"] == 14


@pytest.mark.e2e
def test_whatsminer_v2_replies_like_btminer_2_0_5(farm: FarmFactory) -> None:
    f = farm(1, mix=("m50",), extra=FIRMWARE)
    ip = f.rigs[0].ip
    raw = raw_rpc(ip, "summary")[0]
    assert b',}],"id"' in raw  # the trailing comma pyasic strips
    summary = rpc_json(ip, "summary")["SUMMARY"][0]
    assert "MHS 1m" not in summary and {"MHS av", "HS RT"} <= set(summary)
    assert all("MHS 1m" not in d for d in rpc_json(ip, "devs")["DEVS"])
    # cgminer commands join; btminer's own get_*/status are unknown to the join loop
    joined = rpc_json(ip, "summary+get_version")
    assert joined["summary"][0]["STATUS"][0]["STATUS"] == "S"
    assert joined["get_version"][0]["STATUS"][0]["Msg"] == "Invalid command"
    alone = rpc_json(ip, "get_version")
    assert alone["STATUS"] == "S" and alone["Msg"]["fw_ver"] == "20230803.11.REL"


@pytest.mark.e2e
def test_whatsminer_api_2_0_4_lists_its_errors_shaped_like_a_dict(farm: FarmFactory) -> None:
    f = farm(1, mix=("m30splus",), extra=FIRMWARE, scenarios={"r01-s01": Scenario.DEAD_BOARD})
    ip = f.rigs[0].ip
    assert rpc_json(ip, "get_version")["Msg"]["api_ver"] == "2.0.4"
    raw = raw_rpc(ip, "get_error_code")[0]
    assert b'"error_code":["218":"2026-01-01 00:00:00"]' in raw  # not valid JSON as sent


@pytest.mark.e2e
def test_avalon_estats_have_no_pool_entries_and_percentages_are_nan_and_inf(
        farm: FarmFactory) -> None:
    f = farm(1, mix=("a1246",), extra=FIRMWARE)
    ip = f.rigs[0].ip
    estats = rpc_json(ip, "estats")["STATS"]
    stats = rpc_json(ip, "stats")["STATS"]
    assert [e["ID"] for e in estats] == ["AVA100"]  # cgminer api.c minerestats: devices only
    assert [e["ID"] for e in stats] == ["AVA100", "POOL0"]  # minerstats adds the pools
    raw = raw_rpc(ip, "summary")[0]
    assert b'"Device Hardware%":"nan"' in raw and b'"Device Rejected%":"inf"' in raw


@pytest.mark.e2e
def test_an_idle_avalon_q_hashes_nothing_while_its_average_stays(farm: FarmFactory) -> None:
    f = farm(2, mix=("avalonq",), extra=FIRMWARE, scenarios={"r01-s02": Scenario.IDLE})
    busy, idle = f.rigs
    stats = rpc_json(busy.ip, "estats")["STATS"][0]
    block = stats["MM ID0:Summary"]
    assert block.startswith("'STATS':{") and "WALLPOWER" not in block
    for key in ("ITemp[", "TMax[", "PS[", "SYSTEMSTATU[Work: In Work"):
        assert key in block
    assert stats["HBinfo"].startswith("'HB0':{PVT_T0[")
    s = snapshot(idle, f.seed, 0)
    devs = rpc_json(idle.ip, "devs")["DEVS"][0]
    # MHS 1m is 0; MHS av keeps the since-start average: 99.5 % of nominal (model.average_gh)
    assert devs["MHS 1m"] == 0.0
    assert devs["MHS av"] == round(90_000 * 0.995, 2) * 1000 == s.average_gh * 1000
    idle_block = rpc_json(idle.ip, "estats")["STATS"][0]["MM ID0:Summary"]
    assert "SYSTEMSTATU[Work: In Idle" in idle_block
    assert f"MGHS[{90_000 * 0.995:.2f}]" in idle_block  # the board's since-start average


# --- new families, read by unmodified pyasic --------------------------------------------------

@pytest.mark.e2e
def test_pyasic_reads_an_avalon_q(farm: FarmFactory) -> None:
    f = farm(1, mix=("avalonq",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    assert type(miner).__name__ == "CGMinerAvalonQHome" and miner.raw_model == "Avalon Q Home"
    b = s.boards[0]
    # hashrate: devs MHS 1m (MH/s) -> TH/s; expected: GHSmm (GH/s) -> TH/s
    assert th(d.hashrate) == round(b.hashrate_gh * 1000 / 1e6, 6)
    assert th(d.expected_hashrate) == 90.0
    assert d.wattage is None  # the Q has no WALLPOWER (its PS[...] is not read by pyasic)
    board = d.hashboards[0]
    # MGHS[...] (GH/s, two decimals), TMax for the chip, TAvg for the board, PVT_T0 count
    assert th(board.hashrate) == round(float(f"{b.hashrate_gh:.2f}") / 1000, 6)
    assert (board.chip_temp, board.temp, board.chips) == (int(b.chip_temp_c),
                                                          int(b.board_temp_c), 160)
    assert [fan.speed for fan in d.fans] == s.fans_rpm[:2]


def _v3_token(cmd: str, password: str, salt: str, ts: int) -> str:
    """WhatsMiner API v3 token, written out from its definition (pyasic BTMinerV3RPCAPI):
    base64(sha256(cmd + password + salt + ts)), the first 8 characters."""
    digest = hashlib.sha256((cmd + password + salt + str(ts)).encode()).digest()
    return base64.b64encode(digest).decode()[:8]


def _framed(ip: str, request: dict) -> dict:
    """One Whatsminer API v3 exchange: 4-byte little-endian length, then JSON, both ways."""
    payload = json.dumps(request).encode()
    with socket.create_connection((ip, 4433), timeout=5) as sock:
        sock.sendall(struct.pack("<I", len(payload)) + payload)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack("<I", buf[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "closed before the whole reply"
            buf += chunk
    return dict(json.loads(buf[4:]))


@pytest.mark.e2e
def test_pyasic_reads_a_whatsminer_on_api_v3(farm: FarmFactory) -> None:
    f = farm(1, mix=("m60s",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    # firmware 20251209 is after 2024.11: pyasic injects BTMinerV3 (port 4433)
    assert type(miner).__name__ == "BTMinerM60SVK40" and miner.raw_model == "M60S VK40"
    assert miner.rpc.port == 4433
    # summary: hash-realtime and factory-hash in TH/s (three decimals), power-realtime in W
    assert th(d.hashrate) == round(s.hashrate_gh / 1000, 3)
    assert th(d.expected_hashrate) == 186.0
    assert d.wattage == float(s.power_w)
    assert d.uptime == s.uptime_s and d.env_temp == rig.ambient_c
    assert [fan.speed for fan in d.fans] == [s.fans_rpm[0], s.fans_rpm[-1]]
    for board, b in zip(d.hashboards, s.boards, strict=True):
        # edevs: hash-average (TH/s), chip-temp-min read as the board temperature
        assert th(board.hashrate) == round(b.hashrate_gh / 1000, 3)
        assert (board.temp, board.chips) == (b.chip_temp_c - 12, 75)


@pytest.mark.e2e
def test_whatsminer_v3_set_commands_need_the_salted_token(farm: FarmFactory) -> None:
    f = farm(1, mix=("m60s",), extra=FIRMWARE)
    ip = f.rigs[0].ip
    salt = _framed(ip, {"cmd": "get.device.info", "param": "salt"})["msg"]["salt"]
    ts = int(time.time())
    good = {"cmd": "set.system.led", "param": "auto", "ts": ts, "account": "super",
            "token": _v3_token("set.system.led", "super", salt, ts)}
    assert _framed(ip, good)["code"] == 0
    assert _framed(ip, {**good, "token": _v3_token("set.system.led", "wrong", salt, ts)}
                   )["code"] != 0

    async def pyasic_led() -> bool:
        miner = await get_miner(ip)
        assert miner is not None
        return bool(await miner.fault_light_off())

    assert asyncio.run(pyasic_led())  # pyasic computes the token itself


@pytest.mark.e2e
def test_pyasic_reads_luxos(farm: FarmFactory) -> None:
    f = farm(1, mix=("luxos",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    assert type(miner).__name__ == "LUXMinerS19kPro" and miner.raw_model == "S19k Pro"
    assert d.wattage == s.power_w  # power: POWER[0].Watts
    assert th(d.expected_hashrate) == 120.0  # stats total_rateideal 120000 GH
    assert d.uptime == s.uptime_s
    assert [fan.speed for fan in d.fans] == s.fans_rpm
    for board, b in zip(d.hashboards, s.boards, strict=True):
        c, p = b.chip_temp_c, b.board_temp_c
        # LUXMiner._get_hashboards: chip = mean of chip sensors 1 and 4 (c, c-8); board =
        # mean of pcb sensors 2 and 3 (p-28, p-9)
        assert board.chip_temp == (c + (c - 8)) / 2
        assert board.temp == ((p - 28) + (p - 9)) / 2
        assert th(board.hashrate) == round(float(f"{b.hashrate_gh:.2f}") / 1000, 6)
        assert board.chips == 77


@pytest.mark.e2e
def test_pyasic_reads_vnish(farm: FarmFactory) -> None:
    f = farm(1, mix=("vnish",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    assert type(miner).__name__ == "VNishS21Plus" and miner.raw_model == "S21+"
    assert th(d.hashrate) == round(s.hashrate_gh / 1000, 6)  # summary GHS 5s
    assert th(d.expected_hashrate) == 216.0
    assert d.wattage == s.power_w  # web /api/v1/summary miner.power_usage, after unlock
    for board, b in zip(d.hashboards, s.boards, strict=True):
        # BMMiner's RPC parser: temp{n} (the first pcb sensor) as chip, temp2_{n} (the first
        # chip sensor) as board: pyasic swaps them, we serve them where the S19 has them
        assert (board.chip_temp, board.temp) == (round(b.board_temp_c), round(b.chip_temp_c))
        assert board.chips == 108


@pytest.mark.e2e
def test_pyasic_reads_epic(farm: FarmFactory) -> None:
    f = farm(1, mix=("epic",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    assert type(miner).__name__ == "ePICS19XP" and miner.raw_model == "S19 XP"
    mh = [round(b.hashrate_gh * 1000, 1) for b in s.boards]  # HBs Hashrate[0], MH/s
    assert th(d.hashrate) == round(sum(mh) / 1e6, 6)
    # expected: each board's MH/s divided by its share of ideal, Hashrate[1] / 100
    ideal = s.expected_gh * 1000 / 3
    pct = [round(m / ideal * 100, 1) for m in mh]
    assert th(d.expected_hashrate) == round(sum(m / (p / 100) for m, p in zip(mh, pct,
                                                                             strict=True))
                                            / 1e6, 6)
    assert d.wattage == s.power_w and d.uptime == s.uptime_s
    # twelve fan slots, the unused ones null
    assert [fan.speed for fan in d.fans] == [*s.fans_rpm, *([None] * 8)]
    for board, b, m in zip(d.hashboards, s.boards, mh, strict=True):
        assert th(board.hashrate) == round(m / 1e6, 6)
        assert (board.temp, board.chips) == (int(b.board_temp_c), 110)


def test_every_new_model_has_nominal_figures() -> None:
    from hashwatt.models import lookup
    from sim.model import HARDWARE

    for name in ("avalonq", "m60s", "luxos", "vnish", "epic", "bosplus", "at2880"):
        assert lookup(HARDWARE[name].model) is not None, name


@pytest.mark.e2e
def test_pyasic_reads_braiins_os_plus_over_grpc(farm: FarmFactory) -> None:
    f = farm(1, mix=("bosplus",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    assert type(miner).__name__ == "BOSMinerS19jPro" and miner.raw_model == "S19j Pro"
    assert th(d.hashrate) == round(s.hashrate_gh / 1000, 6)  # RPC summary MHS 1m
    # gRPC (after Login): sticker_hashrate, approximated_consumption, cooling fans
    assert th(d.expected_hashrate) == 104.0
    assert d.wattage == s.power_w
    assert [fan.speed for fan in d.fans] == s.fans_rpm
    for board, b in zip(d.hashboards, s.boards, strict=True):
        # get_hashboards: real_hashrate.last_5s (GH/s), board_temp, highest_chip_temp
        assert th(board.hashrate) == round(b.hashrate_gh / 1000, 6)
        assert (board.chip_temp, board.temp, board.chips) == (int(b.chip_temp_c),
                                                              int(b.board_temp_c), 126)


@pytest.mark.e2e
def test_braiins_grpc_refuses_calls_without_the_login_token(farm: FarmFactory) -> None:
    from grpclib import GRPCError
    from grpclib.client import Channel
    from pyasic.web.braiins_os.proto.braiins.bos import v1

    f = farm(1, mix=("bosplus",), extra=FIRMWARE)

    async def call() -> None:
        async with Channel(f.rigs[0].ip, 50051) as channel:
            await v1.MinerServiceStub(channel).get_miner_stats(v1.GetMinerStatsRequest())

    with pytest.raises(GRPCError) as err:
        asyncio.run(call())
    assert err.value.status.name == "UNAUTHENTICATED"


@pytest.mark.e2e
def test_pyasic_reads_auradine(farm: FarmFactory) -> None:
    f = farm(1, mix=("at2880",), extra=FIRMWARE)
    rig = f.rigs[0]
    s = snapshot(rig, f.seed, 0)
    miner, d = poll(rig)
    assert type(miner).__name__ == "AuradineFluxAT2880" and miner.raw_model == "AT2880"
    assert th(d.hashrate) == round(s.hashrate_gh * 1000 / 1e6, 6)  # summary MHS 5s
    assert d.wattage == s.power_w  # web psu PowerIn "NNNNW", after the token login
    assert d.uptime == s.uptime_s
    assert [fan.speed for fan in d.fans] == s.fans_rpm
    for board, b in zip(d.hashboards, s.boards, strict=True):
        assert th(board.hashrate) == round(b.hashrate_gh * 1000 / 1e6, 6)  # devs MHS 5s
        assert board.temp == round(b.board_temp_c)


@pytest.mark.e2e
def test_faults_reach_the_framed_v3_and_grpc_apis_too(farm: FarmFactory) -> None:
    from grpclib.client import Channel
    from pyasic.web.braiins_os.proto.braiins.bos import v1

    f = farm(2, mix=("m60s", "bosplus"), extra=FIRMWARE,
             scenarios={"r01-s01": Scenario.GLUED, "r01-s02": Scenario.HUNG})
    v3, bos = f.rigs
    with pytest.raises(ValueError):  # two JSON objects in one frame
        _framed(v3.ip, {"cmd": "get.miner.status", "param": "summary"})

    async def stats_call() -> None:
        async with Channel(bos.ip, 50051) as channel:
            stub = v1.MinerServiceStub(channel)
            await asyncio.wait_for(stub.get_miner_stats(v1.GetMinerStatsRequest()), 2)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(stats_call())
