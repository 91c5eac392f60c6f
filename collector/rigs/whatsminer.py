"""Whatsminer btminer API v2 (plain JSON on 4028): `summary`+`devs` (joined when the rig
accepts it) and `get_error_code` on its own (btminer never joins `get_*`/`status`)."""

from __future__ import annotations

import asyncio
from typing import Any

from pyasic.data.error_codes import WhatsminerError
from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends import BTMinerV2

from collector.rigs.base import (
    Board,
    Fan,
    FastPathError,
    RpcSession,
    Telemetry,
    base_telemetry,
    number,
    rate,
    status_error,
)
from collector.rigs.credentials import Credentials

BACKEND = BTMinerV2

# current figures first: "MHS av" is the average since the start of btminer
CURRENT = ("MHS 1m", "HS RT", "MHS 5s")


def current_mhs(entry: dict[str, Any]) -> float | None:
    """The current hashrate in MH/s: 1-minute figure, else the real-time one (firmware
    2023+ sends only `MHS av` and `HS RT`)."""
    for key in CURRENT:
        value = number(entry.get(key))
        if value is not None:
            return value
    return None


def apportion(total: float | None, averages: list[float | None]) -> list[float | None]:
    """Per-board current figures when boards report only their since-start average: the
    current total shared out by each board's part of the averages (a rig that stopped
    hashing has 0 on every board, not its history)."""
    known = [a for a in averages if a is not None]
    if total is None or not known:
        return [None] * len(averages)
    whole = sum(known)
    return [None if a is None else (a * total / whole if whole else 0.0) for a in averages]


def summary_errors(summary: dict[str, Any]) -> list[Any] | None:
    """The error codes btminer API v1 firmware lists in `summary` ("Error Code Count" 2,
    "Error Code 0" 110, ...: asic-rs whatsminer/v1 fixtures; pyasic reads them too); None
    when the summary has no such count."""
    count = number(summary.get("Error Code Count"))
    if count is None:
        return None
    out = []
    for i in range(max(int(count), 0)):
        code = number(summary.get(f"Error Code {i}"))
        if code is not None:
            out.append(WhatsminerError(error_code=int(code)))
    return out


def merge_errors(*lists: list[Any] | None) -> list[Any] | None:
    """Every code any source gave, once; None only when no source could be read."""
    known = [lst for lst in lists if lst is not None]
    if not known:
        return None
    seen: dict[int, Any] = {}
    for lst in known:
        for err in lst:
            seen.setdefault(err.error_code, err)
    return list(seen.values())


class WhatsminerPath:
    """Whatsminer API v2 fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.session = RpcSession(miner.ip, timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        replies, codes = await asyncio.gather(self.session.many("summary", "devs"),
                                              self._error_codes())
        try:
            summary = replies["summary"]["SUMMARY"][0]
            devs = replies["devs"].get("DEVS") or []
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise FastPathError(f"unexpected summary/devs reply: {exc!r}") from None
        t = base_telemetry(self.miner)
        mhs = current_mhs(summary)
        t.hashrate = rate(mhs, SHA256Unit.MH) if mhs is not None else None
        factory = number(summary.get("Factory GHS"))
        t.expected_hashrate = rate(factory, SHA256Unit.GH) if factory else None
        # "Power" (pyasic's key), else the real-time "Power_RT" API v1 sends beside it
        # (asic-rs whatsminer/v1 summary: 3417 and 3427)
        watts = number(summary.get("Power", summary.get("Power_RT")))
        t.wattage = int(watts) if watts is not None and watts >= 0 else None
        t.env_temp = number(summary.get("Env Temp"))
        elapsed = number(summary.get("Elapsed"))
        t.uptime = int(elapsed) if elapsed is not None else None
        if self.miner.expected_fans != 0:  # None: a model pyasic does not know; read them
            t.fans = [Fan(int(summary[k])) for k in ("Fan Speed In", "Fan Speed Out")
                      if number(summary.get(k)) is not None]
        self._boards(t, devs, mhs)
        if t.temp_max is None:  # no board gave its hottest chip: the whole rig's, from summary
            top = number(summary.get("Chip Temp Max"))
            t.temp_max = top if top else None
        t.errors = merge_errors(codes, summary_errors(summary))
        return t

    def _boards(self, t: Telemetry, devs: list[dict[str, Any]], total: float | None) -> None:
        current = [current_mhs(d) for d in devs]
        if any(c is None for c in current):  # only the since-start average: apportion
            current = apportion(total, [number(d.get("MHS av")) for d in devs])
        hottest: list[float] = []
        for dev, mhs in zip(devs, current, strict=True):
            slot = dev.get("ASC", dev.get("Slot"))
            if not isinstance(slot, int) or slot < 0 or slot > 63:
                continue
            while len(t.hashboards) <= slot:  # pyasic adds boards the model table lacks
                t.hashboards.append(Board(slot=len(t.hashboards),
                                          expected_chips=self.miner.expected_chips))
            board = t.hashboards[slot]
            board.chip_temp = number(dev.get("Chip Temp Avg"))
            board.temp = number(dev.get("Temperature"))
            board.hashrate = rate(mhs, SHA256Unit.MH) if mhs is not None else None
            chips = number(dev.get("Effective Chips"))
            board.chips = int(chips) if chips is not None else None
            top = number(dev.get("Chip Temp Max"))
            if top:
                hottest.append(top)
        t.temp_max = max(hottest) if hottest else None

    async def _error_codes(self) -> list[Any] | None:
        """The rig's error codes; None (unknown) when it does not give them."""
        try:
            reply = await self.session.one("get_error_code")
        except (OSError, TimeoutError, FastPathError):
            return None
        if status_error(reply) is not None:
            return None
        try:
            items = reply["Msg"]["error_code"]
        except (KeyError, TypeError):
            return None
        # 2.0.4 sends ["110", ...], later firmware [{"110": "date"}, ...] (pyasic reads both)
        if isinstance(items, dict):
            items = [items]
        out = []
        for err in items if isinstance(items, list) else []:
            for code in (err if isinstance(err, dict) else [err]):
                if str(code).lstrip("-").isdigit():
                    out.append(WhatsminerError(error_code=int(code)))
        return out

    async def close(self) -> None:
        """Nothing kept open."""
