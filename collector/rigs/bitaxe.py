"""Bitaxe and other AxeOS (ESP-Miner) rigs: one `GET /api/system/info`."""

from __future__ import annotations

import re
from typing import Any

import httpx
from pyasic.data.error_codes import X19Error
from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends.espminer import ESPMiner

from collector.rigs.base import (
    Board,
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


# AxeOS reports -1 for a temperature it could not read (ESP-Miner thermal/EMC2101.c,
# Thermal_get_chip_temp before the ASIC is initialised): unknown, not -1 degrees
NO_READING = -1.0
# AxeOS puts faults in system/info ("power_fault", "hardware_fault") from v2.6.0 on: from
# then, none listed means none; before, the firmware cannot say
FAULTS_SINCE = (2, 6, 0)


def _version(text: Any) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", str(text or ""))
    return tuple(int(g) for g in match.groups()) if match else None


def _temp(value: Any) -> float | None:
    figure = number(value)
    return None if figure is None or figure == NO_READING else figure


class BitaxePath:
    """AxeOS fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.web = rig_client(timeout)
        self.asic_count: float | None = None  # from /api/system/asic, asked once
        self.asked_asic = False

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
        chips = await self._asic_count(info)
        t.expected_hashrate = _expected(info, chips)
        watts = number(info.get("power"))
        # AxeOS reports float32 watts (2.65000009536743): kept to the milliwatt
        t.wattage = round(watts, 3) if watts is not None else None  # type: ignore[assignment]
        uptime = number(info.get("uptimeSeconds"))
        t.uptime = int(uptime) if uptime is not None else None
        rpm = number(info.get("fanrpm"))
        t.fans = [Fan(int(rpm))] if rpm is not None else []
        if not t.hashboards:  # an ASIC pyasic does not name (generic BitAxe): still one board
            t.hashboards = [Board(slot=0, expected_chips=None)]
        if t.hashboards:
            board = t.hashboards[0]
            board.hashrate = t.hashrate
            board.chip_temp, board.temp = _temp(info.get("temp")), _temp(info.get("vrTemp"))
            board.chips = int(chips) if chips is not None else None
        t.errors = _faults(info)
        return t

    async def _asic_count(self, info: dict[str, Any]) -> float | None:
        """The number of ASICs: in system/info before AxeOS v2.9.0, since then only in
        /api/system/asic (ESP-Miner commit 5d95e4c1, "asicCount is moved from info to asic
        endpoint"); asked once, a configuration figure. None when neither says."""
        listed = number(info.get("asicCount"))
        if listed is not None:
            return listed
        if not self.asked_asic:
            self.asked_asic = True
            try:
                status, asic = await get_json(self.web,
                                              f"http://{self.miner.ip}/api/system/asic")
            except (httpx.HTTPError, ValueError, FastPathError):
                status, asic = 0, None
            if status == 200 and isinstance(asic, dict):
                self.asic_count = number(asic.get("asicCount"))
        return self.asic_count

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.web.aclose()


def _expected(info: dict[str, Any], chips: float | None) -> Any:
    """The firmware's own expectedHashrate (GH/s, AxeOS v2.8.0+: frequency x small cores x
    ASICs / 1000), else that product computed here (MH/s); unknown when a factor is."""
    own = number(info.get("expectedHashrate"))
    if own:
        return rate(own, SHA256Unit.GH)
    cores, mhz = number(info.get("smallCoreCount")), number(info.get("frequency"))
    if cores and chips and mhz:
        return rate(cores * chips * mhz, SHA256Unit.MH)
    return None


def _faults(info: dict[str, Any]) -> list[Any] | None:
    """The faults AxeOS lists (power_fault, hardware_fault); [] on firmware that lists them
    when there are any (v2.6.0+), None (unknown) on older firmware."""
    faults = [X19Error(error_message=str(info[k])) for k in ("power_fault", "hardware_fault")
              if info.get(k)]
    if faults:
        return faults
    version = _version(info.get("version") or info.get("axeOSVersion"))
    return [] if version is not None and version >= FAULTS_SINCE else None
