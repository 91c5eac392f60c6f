"""Fast polling paths: the telemetry of a rig in one RPC exchange (or one kept-alive HTTP
request) instead of pyasic's ~10 digest-auth HTTP requests plus RPC per poll.

pyasic still identifies every rig (and stays the fallback for firmware without a fast
path). Each path reads the same reply fields pyasic reads and applies pyasic's own unit
conversions, so the telemetry is identical: tests/test_fastpath.py proves it per model.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx
from pyasic.data.error_codes import WhatsminerError, X19Error
from pyasic.device.algorithm import SHA256Unit
from pyasic.device.algorithm.hashrate import SHA256HashRate
from pyasic.miners.backends import AntminerModern, AvalonMiner, BTMinerV2
from pyasic.miners.backends.espminer import ESPMiner

RPC_PORT = 4028
READ_LIMIT = 1 << 20


class FastPathError(Exception):
    """The rig's reply could not be used."""


@dataclass
class Board:
    """A hashboard, with the attribute names pyasic's HashBoard has."""

    slot: int
    expected_chips: int | None
    hashrate: Any = None
    chip_temp: float | None = None
    temp: float | None = None
    chips: int | None = None


@dataclass
class Fan:
    """A fan speed."""

    speed: int | None


@dataclass
class Telemetry:
    """What the mapping reads: the MinerData attributes the collector uses."""

    make: str
    model: str
    firmware: str
    expected_hashboards: int | None
    hashrate: Any = None
    expected_hashrate: Any = None
    wattage: int | None = None
    env_temp: float | None = None
    uptime: int | None = None
    hashboards: list[Board] = field(default_factory=list)
    fans: list[Fan] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)


# Rig web APIs are plain HTTP; one TLS context for every client instead of one each
# (building one loads the CA bundle: ~1 MB and milliseconds per rig)
_TLS = ssl.create_default_context()


def rig_client(timeout: float) -> httpx.AsyncClient:
    """A small HTTP client for one rig. Connections are not kept between polls: thousands of
    idle sockets cost more memory than one TCP handshake per poll costs CPU. (A client shared
    by all rigs scans its whole pool on every request: slower at farm scale.)"""
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=0)
    return httpx.AsyncClient(timeout=timeout, limits=limits, verify=_TLS)


def _rate(value: Any, unit: SHA256Unit) -> Any:
    return SHA256HashRate(rate=float(value), unit=unit).into(SHA256Unit.TH)


def _base(miner: Any) -> Telemetry:
    boards = [Board(slot=i, expected_chips=miner.expected_chips)
              for i in range(miner.expected_hashboards or 0)]
    return Telemetry(make=str(miner.make or ""), model=str(miner.raw_model or ""),
                     firmware=str(miner.firmware or ""),
                     expected_hashboards=miner.expected_hashboards, hashboards=boards)


async def rpc(ip: str, command: str, timeout: float) -> dict[str, Any]:
    """One CGMiner-style request and its JSON reply (the rig closes the socket)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, RPC_PORT), timeout)
    try:
        writer.write(json.dumps({"command": command}).encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(READ_LIMIT), timeout)
    finally:
        writer.close()
    try:
        return dict(json.loads(raw.rstrip(b"\x00").decode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FastPathError(f"malformed reply to {command}: {exc}") from None


def _avg_nonzero(values: list[float]) -> float | None:
    present = [v for v in values if v]
    return sum(present) / len(present) if present else 0


def _sensor_values(text: Any) -> list[float]:
    """Stock Antminer RPC gives "52-55-70-72" (or one number) per chain."""
    return [float(p) for p in str(text).split("-") if p.strip()] if text not in ("", None) else []


class AntminerPath:
    """Stock Antminer: `stats+summary` in one RPC exchange; errors from summary.cgi over a
    kept-alive connection with a reused digest challenge."""

    def __init__(self, miner: Any, timeout: float) -> None:
        self.miner, self.timeout = miner, timeout
        self.auth = httpx.DigestAuth("root", "root")  # keeps the rig's challenge: no 401 round
        self.web = rig_client(timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        reply = await rpc(self.miner.ip, "stats+summary", self.timeout)
        try:
            stats, summary = reply["stats"][0]["STATS"][1], reply["summary"][0]["SUMMARY"][0]
        except (KeyError, IndexError, TypeError) as exc:
            raise FastPathError(f"unexpected stats/summary reply: {exc!r}") from None
        t = _base(self.miner)
        t.hashrate = _rate(summary["GHS 5s"], SHA256Unit.GH)
        t.expected_hashrate = _rate(stats["total_rateideal"],
                                    SHA256Unit.from_str(stats.get("rate_unit", "GH")))
        t.uptime = int(stats["Elapsed"])
        t.fans = self._fans(stats)
        for board in t.hashboards:
            self._chain(board, stats)
        t.errors = await self._errors()
        return t

    def _fans(self, stats: dict[str, Any]) -> list[Fan]:
        offset = next((n for n in (1, 5) if any(stats.get(f"fan{n + i}") for i in range(4))), 1)
        return [Fan(stats.get(f"fan{offset + i}", 0)) for i in range(self.miner.expected_fans)]

    @staticmethod
    def _chain(board: Board, stats: dict[str, Any]) -> None:
        n = board.slot + 1
        if not stats.get(f"chain_acn{n}"):
            return  # a chain the firmware lost: pyasic reports it missing, so do we
        board.hashrate = _rate(stats[f"chain_rate{n}"], SHA256Unit.GH)
        board.chips = int(stats[f"chain_acn{n}"])
        board.temp = _avg_nonzero(_sensor_values(stats.get(f"temp_pcb{n}")))
        board.chip_temp = _avg_nonzero(_sensor_values(stats.get(f"temp_chip{n}")))

    async def _errors(self) -> list[Any]:
        resp = await self.web.get(f"http://{self.miner.ip}/cgi-bin/summary.cgi", auth=self.auth)
        try:
            items = resp.json()["SUMMARY"][0]["status"]
        except (ValueError, KeyError, IndexError, TypeError):
            return []
        return [X19Error(error_message=i["msg"]) for i in items if i.get("status") != "s"]

    async def close(self) -> None:
        """Close the kept HTTP connection."""
        await self.web.aclose()


class WhatsminerPath:
    """Whatsminer btminer API v2: `summary+devs+get_error_code` in one RPC exchange."""

    def __init__(self, miner: Any, timeout: float) -> None:
        self.miner, self.timeout = miner, timeout

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        reply = await rpc(self.miner.ip, "summary+devs+get_error_code", self.timeout)
        try:
            summary = reply["summary"][0]["SUMMARY"][0]
            devs = reply["devs"][0]["DEVS"]
            codes = reply["get_error_code"][0]["Msg"]["error_code"]
        except (KeyError, IndexError, TypeError) as exc:
            raise FastPathError(f"unexpected summary/devs reply: {exc!r}") from None
        t = _base(self.miner)
        t.hashrate = _rate(summary["MHS 1m"], SHA256Unit.MH)
        t.expected_hashrate = _rate(summary["Factory GHS"], SHA256Unit.GH)
        watts = summary.get("Power")
        t.wattage = watts if watts != -1 else None
        t.env_temp = summary.get("Env Temp")
        t.uptime = int(summary["Elapsed"])
        t.fans = [Fan(summary.get("Fan Speed In", 0)), Fan(summary.get("Fan Speed Out", 0))]
        for dev in devs:
            board = t.hashboards[dev.get("ASC", dev.get("Slot"))]
            board.chip_temp = round(dev["Chip Temp Avg"])
            board.temp = round(dev["Temperature"])
            board.hashrate = _rate(dev["MHS 1m"], SHA256Unit.MH)
            board.chips = dev["Effective Chips"]
        t.errors = [WhatsminerError(error_code=int(code)) for err in codes
                    for code in (err if isinstance(err, dict) else [err])]
        return t

    async def close(self) -> None:
        """Nothing kept open."""


class AvalonPath:
    """AvalonMiner: `estats+devs` in one RPC exchange, estats parsed as pyasic parses it."""

    def __init__(self, miner: Any, timeout: float) -> None:
        self.miner, self.timeout = miner, timeout

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        reply = await rpc(self.miner.ip, "estats+devs", self.timeout)
        try:
            parsed = AvalonMiner.parse_estats(reply["estats"][0])
            mm = parsed["STATS"][0]["MM ID0"]
            dev = reply["devs"][0]["DEVS"][0]
            elapsed = reply["estats"][0]["STATS"][1]["Elapsed"]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise FastPathError(f"unexpected estats/devs reply: {exc!r}") from None
        t = _base(self.miner)
        t.hashrate = _rate(dev["MHS 1m"], SHA256Unit.MH)
        t.expected_hashrate = _rate(mm["GHSmm"], SHA256Unit.GH)
        t.wattage, t.env_temp, t.uptime = int(mm["WALLPOWER"]), float(mm["Temp"]), int(elapsed)
        t.fans = [Fan(int(mm[f"Fan{i + 1}"])) for i in range(self.miner.expected_fans)]
        rates = mm["MGHS"] if isinstance(mm["MGHS"], list) else [mm["MGHS"]] * len(t.hashboards)
        for board in t.hashboards:
            board.hashrate = _rate(rates[board.slot], SHA256Unit.GH)
            board.chip_temp = board.temp = int(mm["MTmax"][board.slot])
            chips = mm.get(f"PVT_T{board.slot}")
            if chips:
                board.chips = len(chips) if isinstance(chips, list) else 1
        return t

    async def close(self) -> None:
        """Nothing kept open."""


class BitaxePath:
    """Bitaxe (AxeOS): GET /api/system/info over a kept-alive connection."""

    def __init__(self, miner: Any, timeout: float) -> None:
        self.miner, self.timeout = miner, timeout
        self.web = rig_client(timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        resp = await self.web.get(f"http://{self.miner.ip}/api/system/info")
        try:
            info = resp.json()
        except ValueError as exc:
            raise FastPathError(f"malformed system/info: {exc}") from None
        t = _base(self.miner)
        t.hashrate = _rate(info["hashRate"], SHA256Unit.GH)
        expected = info["smallCoreCount"] * info.get("asicCount", 1) * info["frequency"]
        t.expected_hashrate = _rate(expected, SHA256Unit.MH)
        t.wattage, t.uptime = round(info["power"]), info["uptimeSeconds"]
        t.fans = [Fan(info["fanrpm"])]
        board = t.hashboards[0]
        board.hashrate = _rate(info["hashRate"], SHA256Unit.GH)
        board.chip_temp, board.temp = info.get("temp"), info.get("vrTemp")
        board.chips = info.get("asicCount", 1)
        return t

    async def close(self) -> None:
        """Close the kept HTTP connection."""
        await self.web.aclose()


FastPath = AntminerPath | WhatsminerPath | AvalonPath | BitaxePath


def fast_path_for(miner: Any, timeout: float) -> FastPath | None:
    """The fast path for an identified pyasic miner, or None (pyasic get_data then)."""
    if isinstance(miner, AntminerModern):
        return AntminerPath(miner, timeout)
    if isinstance(miner, BTMinerV2):
        return WhatsminerPath(miner, timeout)
    if isinstance(miner, AvalonMiner):
        return AvalonPath(miner, timeout)
    if isinstance(miner, ESPMiner):
        return BitaxePath(miner, timeout)
    return None
