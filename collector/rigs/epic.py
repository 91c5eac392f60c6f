"""ePIC (PowerPlay / umcOS on Antminers): its HTTP API on port 4028, one `GET /summary`."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from pyasic.data.error_codes import X19Error
from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends import ePIC

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

BACKEND = ePIC
PORT = 4028


def _error_text(error: Any) -> str:
    """PowerPlay's MinerError: a name ("NoHashboardsEnabled") or one key with its detail
    ({"UartReadError": 3}: PowerPlay 1.30.0 openapi, asic-rs meta/epic), as one line."""
    if isinstance(error, dict):
        return "; ".join(f"{k}: {json.dumps(v)}" for k, v in error.items())
    return str(error)


def _fan_index(key: str) -> int:
    found = re.search(r"(\d+)$", key)
    return int(found.group(1)) if found else 0


class EpicPath:
    """ePIC fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.web = rig_client(timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        try:  # bounded like every other reply (httpx alone reads any body whole)
            status, s = await get_json(self.web, f"http://{self.miner.ip}:{PORT}/summary")
        except (httpx.HTTPError, ValueError) as exc:
            raise FastPathError(f"summary: {type(exc).__name__}: {exc}") from None
        if status != 200 or not isinstance(s, dict):
            raise FastPathError(f"summary: HTTP {status}")
        t = base_telemetry(self.miner)
        hbs = [hb for hb in s.get("HBs") or [] if isinstance(hb, dict)]
        rates = [number((hb.get("Hashrate") or [None])[0]) for hb in hbs]
        if hbs and all(r is not None for r in rates):
            t.hashrate = rate(sum(r for r in rates if r is not None), SHA256Unit.MH)
            t.expected_hashrate = self._expected(hbs)
        watts = number((s.get("Power Supply Stats") or {}).get("Input Power"))
        t.wattage = round(watts, 3) if watts else None  # type: ignore[assignment]
        uptime = number((s.get("Session") or {}).get("Uptime"))
        t.uptime = int(uptime) if uptime is not None else None
        fans = s.get("Fans Rpm") or {}
        t.fans = [Fan(int(fans[k])) for k in sorted(fans, key=_fan_index)
                  if number(fans[k]) is not None]
        self._boards(t, s, hbs)
        error = (s.get("Status") or {}).get("Last Error")
        t.errors = [X19Error(error_message=_error_text(error))] if error is not None else []
        return t

    @staticmethod
    def _expected(hbs: list[dict[str, Any]]) -> Any:
        # each board's hashrate over its share of the ideal (Hashrate[1], in %), as pyasic
        total = 0.0
        for hb in hbs:
            value, pct = hb["Hashrate"][0], number(hb["Hashrate"][1]) if len(
                hb["Hashrate"]) > 1 else None
            total += value / (pct / 100) if pct else value
        return rate(total, SHA256Unit.MH)

    @staticmethod
    def _boards(t: Telemetry, s: dict[str, Any], hbs: list[dict[str, Any]]) -> None:
        by_index = {hb.get("Index"): hb for hb in hbs}
        disabled = {st.get("Index") for st in s.get("HBStatus") or []
                    if isinstance(st, dict) and st.get("Detected") and not st.get("Enabled")}
        temps: list[float] = []
        for board in t.hashboards:
            hb = by_index.get(board.slot)
            if hb is None:
                if board.slot in disabled:  # detected but switched off: hashes nothing
                    board.hashrate = rate(0.0, SHA256Unit.MH)
                continue
            value = number((hb.get("Hashrate") or [None])[0])
            board.hashrate = rate(value, SHA256Unit.MH) if value is not None else None
            board.temp = number(hb.get("Temperature"))
            # summary has no working-chip count (capabilities' Chip Count is the model's)
            if board.temp:
                temps.append(board.temp)
        t.temp_max = max(temps) if temps else None

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.web.aclose()
