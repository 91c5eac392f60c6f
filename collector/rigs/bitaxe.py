"""Bitaxe and other AxeOS (ESP-Miner) rigs: one `GET /api/system/info`."""

from __future__ import annotations

from typing import Any

import httpx
from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends.espminer import ESPMiner

from collector.rigs.base import (
    Fan,
    FastPathError,
    Telemetry,
    base_telemetry,
    get_json,
    number,
    rate,
    rig_client,
)
from collector.rigs.credentials import Credentials

BACKEND = ESPMiner


class BitaxePath:
    """AxeOS fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.web = rig_client(timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        try:
            status, info = await get_json(self.web, f"http://{self.miner.ip}/api/system/info")
        except (httpx.HTTPError, ValueError) as exc:
            raise FastPathError(f"system/info: {type(exc).__name__}: {exc}") from None
        if status != 200 or not isinstance(info, dict):
            raise FastPathError(f"system/info: HTTP {status}")
        t = base_telemetry(self.miner)
        ghs = number(info.get("hashRate"))
        t.hashrate = rate(ghs, SHA256Unit.GH) if ghs is not None else None
        cores, chips, mhz = (number(info.get("smallCoreCount")), number(info.get("asicCount", 1)),
                             number(info.get("frequency")))
        if cores is not None and chips is not None and mhz is not None:
            t.expected_hashrate = rate(cores * chips * mhz, SHA256Unit.MH)
        watts = number(info.get("power"))
        # AxeOS reports float32 watts (2.65000009536743): kept to the milliwatt
        t.wattage = round(watts, 3) if watts is not None else None  # type: ignore[assignment]
        uptime = number(info.get("uptimeSeconds"))
        t.uptime = int(uptime) if uptime is not None else None
        rpm = number(info.get("fanrpm"))
        t.fans = [Fan(int(rpm))] if rpm is not None else []
        if t.hashboards:
            board = t.hashboards[0]
            board.hashrate = t.hashrate
            board.chip_temp, board.temp = number(info.get("temp")), number(info.get("vrTemp"))
            board.chips = int(chips) if chips is not None else None
        return t

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.web.aclose()
