"""Whatsminer API v3 (M6x/M7x, firmware after 2024.11): port 4433, a 4-byte little-endian
length + JSON both ways, `{"cmd": "get.miner.status", "param": "summary"}`, no joined
commands. Reading needs no token (only `set.*` does: pyasic derives it from the password)."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

from pyasic.data.error_codes import WhatsminerError, X19Error
from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends import BTMinerV2, BTMinerV3
from pyasic.miners.factory import MinerFactory, MinerTypes

from collector.rigs.base import (
    Board,
    Fan,
    FastPathError,
    Telemetry,
    base_telemetry,
    number,
    rate,
)
from collector.rigs.credentials import Credentials

BACKEND = BTMinerV3
PORT = 4433
LIMIT = 1 << 20


async def v3_command(ip: str, cmd: str, param: str | None, timeout: float) -> dict[str, Any]:
    """One API v3 exchange."""
    deadline = time.monotonic() + timeout
    body = json.dumps({"cmd": cmd, **({"param": param} if param else {})}).encode()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, PORT), timeout)
    try:
        writer.write(struct.pack("<I", len(body)) + body)
        await writer.drain()
        size = 0
        while size == 0:  # 0x00000000 is API v3's heartbeat frame (MicroBT API v3 doc), skipped
            left = max(deadline - time.monotonic(), 0.001)
            size = struct.unpack("<I", await asyncio.wait_for(reader.readexactly(4), left))[0]
        if size > LIMIT:
            raise FastPathError(f"{cmd}: reply of {size} bytes announced")
        raw = await asyncio.wait_for(reader.readexactly(size),
                                     max(deadline - time.monotonic(), 0.001))
    except asyncio.IncompleteReadError:
        raise FastPathError(f"{cmd}: connection closed mid-reply") from None
    finally:
        writer.close()
    try:
        reply = json.loads(raw)
    except ValueError:
        raise FastPathError(f"malformed reply to {cmd}") from None
    if not isinstance(reply, dict) or reply.get("code", 0) != 0:
        raise FastPathError(f"{cmd}: {str(reply)[:120] if isinstance(reply, dict) else 'bad'}")
    return reply


async def refine(miner: Any, timeout: float) -> Any:
    """pyasic 0.79 picks API v2 for a v3-only rig (it looks the firmware version up on 4028
    only): when 4028 refuses and 4433 answers, choose the class again with the version."""
    if not isinstance(miner, BTMinerV2):
        return miner
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(miner.ip, 4028), timeout)
        writer.close()
        return miner
    except (OSError, TimeoutError):
        pass
    return await identify(miner.ip, timeout) or miner


async def identify(ip: str, timeout: float) -> Any:
    """pyasic's Whatsminer class for a rig that answers API v3 `get.device.info`, with the
    firmware version it reports (None when 4433 does not answer so)."""
    try:
        info = (await v3_command(ip, "get.device.info", None, timeout))["msg"]
        version = str(info["system"]["fwversion"])
        model = await MinerFactory().get_miner_model_whatsminer(ip)
    except (OSError, TimeoutError, FastPathError, KeyError, TypeError):
        return None
    return MinerFactory._select_miner_from_classes(ip, model, MinerTypes.WHATSMINER, version)


class WhatsminerV3Path:
    """Whatsminer API v3 fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        ip, timeout = self.miner.ip, self.timeout
        info, summary, edevs = await asyncio.gather(
            v3_command(ip, "get.device.info", None, timeout),
            v3_command(ip, "get.miner.status", "summary", timeout),
            v3_command(ip, "get.miner.status", "edevs", timeout))
        try:
            s = summary["msg"]["summary"]
            devs = edevs["msg"]["edevs"]
        except (KeyError, TypeError) as exc:
            raise FastPathError(f"unexpected get.miner.status reply: {exc!r}") from None
        t = base_telemetry(self.miner)
        ths = number(s.get("hash-realtime"))
        t.hashrate = rate(ths, SHA256Unit.TH) if ths is not None else None
        factory = number(s.get("factory-hash"))
        t.expected_hashrate = rate(factory, SHA256Unit.TH) if factory and factory > 0 else None
        watts = number(s.get("power-realtime"))
        t.wattage = int(watts) if watts else None
        t.env_temp = number(s.get("environment-temperature"))
        elapsed = number(s.get("elapsed"))
        t.uptime = int(elapsed) if elapsed is not None else None
        t.fans = [Fan(int(s[k])) for k in ("fan-speed-in", "fan-speed-out")
                  if number(s.get(k)) is not None]
        self._boards(t, devs, s.get("board-temperature"))
        if t.temp_max is None:  # no board gave its hottest chip: the rig's, from summary
            top = number(s.get("chip-temp-max"))  # MicroBT API v3 doc: summary has it too
            t.temp_max = top if top else None
        t.errors = self._errors(info.get("msg") or {})
        return t

    def _boards(self, t: Telemetry, devs: Any, board_temps: Any) -> None:
        hottest: list[float] = []
        for dev in devs if isinstance(devs, list) else []:
            slot = dev.get("id")
            if not isinstance(slot, int) or not 0 <= slot < 64:
                continue
            while len(t.hashboards) <= slot:
                t.hashboards.append(Board(slot=len(t.hashboards),
                                          expected_chips=self.miner.expected_chips))
            board = t.hashboards[slot]
            ths = number(dev.get("hash-realtime"))  # hash-average is since start
            board.hashrate = rate(ths, SHA256Unit.TH) if ths is not None else None
            board.chip_temp = number(dev.get("chip-temp-avg"))
            if isinstance(board_temps, list) and slot < len(board_temps):
                board.temp = number(board_temps[slot])
            chips = number(dev.get("effective-chips"))
            board.chips = int(chips) if chips is not None else None
            top = number(dev.get("chip-temp-max"))
            if top:
                hottest.append(top)
        t.temp_max = max(hottest) if hottest else None

    @staticmethod
    def _errors(msg: dict[str, Any]) -> list[Any]:
        """The codes in get.device.info's "error-code": numbers, numeric strings or
        {"541": "text", "reason": ...} items (pyasic's test_v3_error_mapping); a plain string
        there ("btminer process is down err") is an error in words, kept as it is (pyasic
        drops it, and a string's characters are not codes)."""
        raw = msg.get("error-code")
        if isinstance(raw, str):
            return [X19Error(error_message=raw.strip())] if raw.strip() else []
        codes = set()
        for item in raw if isinstance(raw, list) else []:
            for key in item if isinstance(item, dict) else [item]:
                if str(key).isdigit():
                    codes.add(int(key))
        return [WhatsminerError(error_code=c) for c in sorted(codes)]

    async def close(self) -> None:
        """Nothing kept open."""
