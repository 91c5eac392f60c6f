"""LuxOS (Luxor firmware on Antminers; cgminer-style API on 4028 that joins commands):
`summary+stats+devs+power+fans` in one exchange."""

from __future__ import annotations

from typing import Any

from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends import LUXMiner

from collector.rigs.base import (
    Fan,
    FastPathError,
    RpcSession,
    Telemetry,
    base_telemetry,
    number,
    rate,
    sensor_values,
)
from collector.rigs.credentials import Credentials

BACKEND = LUXMiner
# LuxOS's four sensors per board are not chip sensors: the `temps` command's METADATA names
# them exhaust, intake, intake, exhaust (as pyasic reads them: chip = exhaust, board = intake)
EXHAUST, INTAKE = (0, 3), (1, 2)


def _mean(values: list[float], idx: tuple[int, ...]) -> float | None:
    picked = [values[i] for i in idx if i < len(values) and values[i]]
    return sum(picked) / len(picked) if picked else None


class LuxosPath:
    """LuxOS fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.session = RpcSession(miner.ip, timeout)

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        r = await self.session.many("summary", "stats", "devs", "power", "fans")
        try:
            summary, stats = r["summary"]["SUMMARY"][0], r["stats"]["STATS"][1]
        except (KeyError, IndexError, TypeError) as exc:
            raise FastPathError(f"unexpected summary/stats reply: {exc!r}") from None
        t = base_telemetry(self.miner)
        ghs = number(summary.get("GHS 5s"))  # pyasic 0.79 returns None before reading it
        t.hashrate = rate(ghs, SHA256Unit.GH) if ghs is not None else None
        ideal = number(stats.get("total_rateideal"))
        if ideal is not None:
            t.expected_hashrate = rate(ideal, SHA256Unit.from_str(stats.get("rate_unit", "GH")))
        elapsed = number(stats.get("Elapsed"))
        t.uptime = int(elapsed) if elapsed is not None else None
        power = (r["power"].get("POWER") or [{}])[0] if isinstance(r["power"], dict) else {}
        watts = number(power.get("Watts"))
        t.wattage = int(watts) if watts else None
        fans = r["fans"].get("FANS") if isinstance(r["fans"], dict) else None
        # a fan entry without RPM is unknown (None), not a stopped fan
        t.fans = [Fan(int(rpm) if (rpm := number(f.get("RPM"))) is not None else None)
                  for f in fans or [] if isinstance(f, dict)]
        self._boards(t, stats, r["devs"].get("DEVS") or [])
        return t

    @staticmethod
    def _boards(t: Telemetry, stats: dict[str, Any], devs: list[dict[str, Any]]) -> None:
        # chain_rate{n} is the average since start; devs' MHS 5s per ASC is current and sums
        # to the summary's GHS 5s
        current = {d.get("ASC"): number(d.get("MHS 5s")) for d in devs if isinstance(d, dict)}
        exhausts: list[float] = []
        for board in t.hashboards:
            n = board.slot + 1
            chips = number(stats.get(f"chain_acn{n}"))
            if chips is None:
                continue
            board.chips = int(chips)
            mhs = current.get(board.slot)
            board.hashrate = rate(mhs, SHA256Unit.MH) if mhs is not None else None
            sensors = sensor_values(stats.get(f"temp_chip{n}"))
            board.chip_temp = _mean(sensors, EXHAUST)
            board.temp = _mean(sensor_values(stats.get(f"temp_pcb{n}")), INTAKE)
            exhausts += [sensors[i] for i in EXHAUST if i < len(sensors) and sensors[i]]
        t.temp_max = max(exhausts) if exhausts else None

    async def close(self) -> None:
        """Nothing kept open."""
