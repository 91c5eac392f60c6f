"""ePIC UMC firmware (PowerPlay-BMS) on Antminers: a JSON HTTP API on port 4028 (no cgminer
RPC), the "Miner Web Dashboard" page on port 80.

Shapes follow a real ePIC on an S19 XP (`reference/miner-api/epic/v1`): `summary` with `HBs`
(hashrate as `[MH/s, % of ideal, ...]`, board temperature), twelve `Fans Rpm` slots of which
the unused ones are `null`, `Power Supply Stats.Input Power`, `Session.Uptime`,
`Status.Operating State` ("Mining"/"Idling"); a disabled board is left out of `HBs`
(`HBStatus` says `Enabled: false`); `capabilities` names the model ("AntMiner S19 XP") and
the chip count; `temps` gives two sensors per board.
"""

from __future__ import annotations

from sim.model import Snapshot
from sim.vendors.base import Vendor, mac_of
from sim.wire import HttpResponse, json_response, not_found

FAN_SLOTS = 12
PASSWORD = "letmein"  # the firmware's default (pyasic `default_epic_web_password`)


class Epic(Vendor):
    """ePIC UMC."""

    has_rpc = False
    has_http = True
    web_ports = (80, 4028)

    async def http(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> HttpResponse:
        """The dashboard page and the JSON API (both ports answer both)."""
        s = self.snap()
        route = path.split("?")[0]
        if route == "/":
            return HttpResponse(200, b"<html><head><title>Miner Web Dashboard</title></head>"
                                     b"<body></body></html>", "text/html")
        pages = {"/summary": self._summary, "/capabilities": self._capabilities,
                 "/network": self._network, "/temps": self._temps}
        page = pages.get(route)
        return json_response(page(s)) if page and method == "GET" else not_found()

    @staticmethod
    def _summary(s: Snapshot) -> dict:
        ideal = s.expected_gh * 1000 / len(s.boards)
        hbs = [{"Index": b.index, "Hashrate": [round(b.hashrate_gh * 1000, 1),
                                                round(b.hashrate_gh * 1000 / ideal * 100, 1),
                                                0.8],
                "Temperature": b.board_temp_c, "Input Voltage": 12.6, "Core Clock Avg": 487.5,
                "Input Power": 0.0, "Output Power": 0.0} for b in s.boards if b.chips]
        fans: dict[str, int | None] = {f"Fans Speed {i + 1}": None for i in range(FAN_SLOTS)}
        fans.update({f"Fans Speed {i + 1}": rpm for i, rpm in enumerate(s.fans_rpm)})
        return {
            "Software": "PowerPlay-BMS v1.5.13", "Hostname": s.rig.rig_id, "OS Type": "umcOS",
            "Fans Rpm": fans, "HBs": hbs,
            "HBStatus": [{"Index": b.index, "Detected": True, "Enabled": bool(b.chips)}
                         for b in s.boards],
            "PerpetualTune": {"Running": True, "Algorithm": {"VoltageOptimizer": {
                "Optimized": True, "Target": round(s.expected_gh / 1000), "Unit": "TH/s"}}},
            "Power Supply Stats": {"Input Power": float(s.power_w), "Output Voltage": 12.595},
            "Session": {"Uptime": s.uptime_s, "Accepted": 1862, "Rejected": 2,
                        "Active HBs": len(hbs), "Average MHs": round(s.average_gh * 1000, 1)},
            "Status": {"Operating State": "Idling" if s.idle else "Mining",
                       "Last Error": s.errors[0] if s.errors else None,
                       "Last Command": None, "Last Command Result": None},
            "Misc": {"Locate Miner State": False, "Critical Temp": 100.0,
                     "Shutdown Temp": 85.0},
            "Stratum": {"Current Pool": "pool.example.net:3333", "IsPoolConnected": True,
                        "Current User": f"farm.{s.rig.rig_id}"},
            "Mining": {"Algorithm": "SHA-256", "Coin": "BTC"},
        }

    @staticmethod
    def _capabilities(s: Snapshot) -> dict:
        hw = s.rig.hardware
        return {"Model": f"AntMiner {hw.model}", "Max HBs": hw.boards,
                "Default Hashrate": round(s.expected_gh / 1000),
                "Board Serial Numbers": [b.serial for b in s.boards],
                "Performance Estimator": {"Chip Count": hw.chips}, "Coins": ["BTC"]}

    @staticmethod
    def _network(s: Snapshot) -> dict:
        return {"dhcp": {"address": s.rig.ip, "mac_address": mac_of(s),
                         "netmask": "255.255.255.0"}}

    @staticmethod
    def _temps(s: Snapshot) -> list[dict]:
        return [{"Index": b.index, "Data": [b.board_temp_c - 12, b.board_temp_c], "Total": 0.0}
                for b in s.boards]
