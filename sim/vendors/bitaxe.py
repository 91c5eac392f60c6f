"""Bitaxe with AxeOS: HTTP only, hashrate in GH/s, power in W (`reference/miner-api/bitaxe`)."""

from __future__ import annotations

from sim.model import Snapshot
from sim.vendors.base import Vendor, mac_of
from sim.wire import HttpResponse, json_response, not_found


class Bitaxe(Vendor):
    """Bitaxe with AxeOS: HTTP only, hashrate in GH/s, power in W."""

    has_rpc = False
    has_http = True
    ASIC = {"Supra": "BM1368", "Gamma": "BM1370", "Ultra": "BM1366"}
    CORES = 1276

    async def http(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> HttpResponse:
        """The AxeOS page and its REST API."""
        if path == "/":
            page = b"<!doctype html><html><head><title>AxeOS</title></head><body></body></html>"
            return HttpResponse(200, page, "text/html")
        if path.split("?")[0] == "/api/system/info":
            return json_response(self._info(self.snap()))
        return not_found()

    def _info(self, s: Snapshot) -> dict:
        board = s.boards[0]
        return {"ASICModel": self.ASIC[s.rig.hardware.model], "asicCount": 1,
                "smallCoreCount": self.CORES, "frequency": s.expected_gh * 1000 / self.CORES,
                "hashRate": board.hashrate_gh,
                "power": float(s.power_w), "temp": board.chip_temp_c,
                "vrTemp": board.board_temp_c, "fanrpm": s.fans_rpm[0], "fanspeed": 60,
                "uptimeSeconds": s.uptime_s, "hostname": s.rig.rig_id, "macAddr": mac_of(s),
                "version": "v2.4.5", "boardVersion": "401", "voltage": 5175,
                "coreVoltage": 1166, "sharesAccepted": 1200, "sharesRejected": 3,
                "stratumURL": "pool.example.net", "stratumPort": 3333,
                "stratumUser": f"farm.{s.rig.rig_id}", "fallbackStratumURL": "",
                "fallbackStratumPort": 3333, "fallbackStratumUser": "",
                "isUsingFallbackStratum": 0, "autofanspeed": 1, "fanspeed_pct": 60,
                "temptarget": 60, "overheat_mode": 0, "flipscreen": 1, "invertscreen": 0,
                "invertfanpolarity": 1}
