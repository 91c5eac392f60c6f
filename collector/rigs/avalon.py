"""AvalonMiner (CGMiner API on 4028): `estats` and `devs`, the bracketed `MM ID0` strings
parsed by pyasic's own `AvalonMiner.parse_estats` (`MM ID0:Summary` on Avalon Q/Nano)."""

from __future__ import annotations

from typing import Any

from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends import AvalonMiner

from collector.rigs.base import (
    Fan,
    FastPathError,
    RpcSession,
    Telemetry,
    base_telemetry,
    number,
    rate,
)
from collector.rigs.credentials import Credentials
from collector.rigs.whatsminer import apportion

BACKEND = AvalonMiner


def _int(value: Any) -> int | None:
    figure = number(value)
    return int(figure) if figure is not None else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def mm_stats(estats: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parsed `MM ID0` block and its device entry. cgminer's `estats` lists devices only
    (`api.c minerestats`): no POOL entries, so everything comes from the device entry."""
    parsed = AvalonMiner.parse_estats(estats)
    for entry in parsed.get("STATS", []):
        if isinstance(entry, dict) and isinstance(entry.get("MM ID0"), dict):
            return entry["MM ID0"], entry
    raise FastPathError("estats reply has no MM ID0 block")


# a PS[] figure above the rig's own power limit (MPO) times this is not watts
PS_OVER_MPO = 1.25


def power(mm: dict[str, Any]) -> int | None:
    """Wall power: `WALLPOWER` (A12xx and later), else the PSU's output in `PS[4]`.

    The PS[] layout differs by model and firmware: an A1246 sends its output watts in PS[4]
    (3189 W beside MPO[3200]), an Avalon Nano 3 (firmware nano3-24071801) sends 2792 there
    beside MPO[90] (dcbert/miner-sentinel issue #16). A PS[4] far above the rig's own power
    limit is not its power: unknown (null), not a number 30 times too large."""
    watts = number(mm.get("WALLPOWER"))
    if watts is None:
        ps = mm.get("PS")
        watts = number(ps[4]) if isinstance(ps, list) and len(ps) > 4 else None
        limit = number(mm.get("MPO"))
        if watts and limit and watts > limit * PS_OVER_MPO:
            return None
    return int(watts) if watts else None


class AvalonPath:
    """AvalonMiner fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.session = RpcSession(miner.ip, timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        replies = await self.session.many("estats", "devs")
        try:
            mm, entry = mm_stats(replies["estats"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise FastPathError(f"unexpected estats reply: {exc!r}") from None
        devs = replies["devs"].get("DEVS") if isinstance(replies.get("devs"), dict) else None
        dev = devs[0] if isinstance(devs, list) and devs and isinstance(devs[0], dict) else {}
        t = base_telemetry(self.miner)
        # devs' 1-minute figure; without devs (refused, cut) the MM's current speed GHSspd
        mhs = number(dev.get("MHS 1m"))
        if mhs is None and number(mm.get("GHSspd")) is not None:
            mhs = float(mm["GHSspd"]) * 1000
        t.hashrate = rate(mhs, SHA256Unit.MH) if mhs is not None else None
        ghs_mm = number(mm.get("GHSmm"))
        t.expected_hashrate = rate(ghs_mm, SHA256Unit.GH) if ghs_mm is not None else None
        t.wattage = power(mm)
        # `Temp` is the intake on A12xx; Avalon Q/Nano call it `ITemp`
        t.env_temp = number(mm.get("Temp", mm.get("ITemp")))
        elapsed = number(entry.get("Elapsed", mm.get("Elapsed")))
        t.uptime = int(elapsed) if elapsed is not None else None
        # a fan the reply does not list is unknown (None, dropped from the reading), not a
        # stopped fan (0 fires "fan dead")
        t.fans = [Fan(_int(mm.get(f"Fan{i + 1}"))) for i in range(self.miner.expected_fans or 0)]
        speed = number(mm.get("GHSspd"))
        self._boards(t, mm, entry, speed if speed is not None else
                     (mhs / 1000 if mhs is not None else None))
        return t

    @staticmethod
    def _boards(t: Telemetry, mm: dict[str, Any], entry: dict[str, Any],
                speed_ghs: float | None) -> None:
        # MGHS is each board's average since start (its sum is GHSavg): the current figure is
        # the current speed (GHSspd, else devs' MHS 1m) shared out by those averages, so an
        # idle rig reads 0 on every board, not its history
        averages = [number(v) for v in _list(mm.get("MGHS"))]
        if len(averages) == 1 and len(t.hashboards) > 1:
            averages = averages * len(t.hashboards)
        current = apportion(speed_ghs, averages[:len(t.hashboards)])
        tmax = _list(mm.get("MTmax")) if "MTmax" in mm else None
        hb: dict[str, Any] = entry["HBinfo"] if isinstance(entry.get("HBinfo"), dict) else {}
        hottest: list[float] = []
        for board in t.hashboards:
            i = board.slot
            if i < len(current) and current[i] is not None:
                board.hashrate = rate(current[i], SHA256Unit.GH)
            # per-board max chip temperature; Avalon Q reports one TMax for its one board
            board.chip_temp = number(tmax[i]) if tmax and i < len(tmax) else number(
                mm.get("TMax"))
            # no board (PCB) sensor in MM ID0: board.temp stays unknown (pyasic copies MTmax)
            chips = mm.get(f"PVT_T{i}", (hb.get(f"HB{i}") or {}).get(f"PVT_T{i}"))
            if chips:
                board.chips = len(_list(chips))
            if board.chip_temp:
                hottest.append(board.chip_temp)
        t.temp_max = max(hottest) if hottest else None

    async def close(self) -> None:
        """Nothing kept open."""
