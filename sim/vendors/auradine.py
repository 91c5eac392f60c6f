"""Auradine Teraflux (FluxOS): gcminer's cgminer-style RPC on 4028 and a token-authenticated
JSON web API on 8080 (`POST /token` gives a token sent back in a `Token` header).

No capture of Auradine is in the reference set: the shapes are those pyasic 0.79's Auradine
backend reads (`web/auradine.py`, `miners/backends/auradine.py`): `ipreport`, `psu`
(`PowerIn` as a string with a unit, "3850W"), `fan`, `mode`, `led`, each with a cgminer
`STATUS` section; devs numbered from 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sim.model import Snapshot
from sim.vendors.antminer import pools
from sim.vendors.base import Vendor, mac_of, session_token, status
from sim.wire import HttpResponse, json_response, not_found

USER, PASSWORD = "admin", "admin"  # the firmware's default (pyasic `AuradineWebAPI`)
FW = "FluxOS_v1.4.0"


class Auradine(Vendor):
    """Auradine Teraflux."""

    has_http = True
    web_ports = (80, 8080)
    DESCRIPTION = "gcminer 1.4.0"

    def rpc(self, command: str) -> dict | None:
        """gcminer's read commands."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "devdetails": self._devdetails,
            "summary": self._summary, "devs": self._devs,
            "pools": lambda s: pools(s, self.DESCRIPTION),
        }
        build = builders.get(command)
        return build(s) if build else None

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": status(22, "GCMiner versions", self.DESCRIPTION),
                "VERSION": [{"GCMiner": "1.4.0", "API": "3.7", "Miner": FW}], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": status(69, "Device Details", self.DESCRIPTION), "DEVDETAILS": [
            {"DEVDETAILS": b.index, "ID": b.index + 1, "Name": "HB", "Driver": "gcminer",
             "Model": s.rig.hardware.model} for b in s.boards], "id": 1}

    def _summary(self, s: Snapshot) -> dict:
        mhs = s.hashrate_gh * 1000
        return {"STATUS": status(11, "Summary", self.DESCRIPTION), "SUMMARY": [{
            "Elapsed": s.uptime_s, "MHS 5s": mhs, "MHS av": s.average_gh * 1000,
            "Accepted": 2210, "Rejected": 3}], "id": 1}

    def _devs(self, s: Snapshot) -> dict:
        return {"STATUS": status(9, f"{len(s.boards)} ASC(s)", self.DESCRIPTION), "DEVS": [
            {"ASC": b.index, "ID": b.index + 1, "Enabled": "Y",
             "Status": "Alive" if b.chips else "Dead", "MHS 5s": b.hashrate_gh * 1000,
             "Temperature": b.board_temp_c} for b in s.boards], "id": 1}

    def _token(self) -> str:
        return session_token(self.snap().rig.rig_id, PASSWORD)

    async def http(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> HttpResponse:
        """The "Miner UI" page on 80; the token API on 8080 (both ports answer both)."""
        route = path.split("?")[0]
        if route == "/":
            return HttpResponse(200, b"<html><head><title>Miner UI</title></head></html>",
                                "text/html")
        if route == "/token" and method == "POST":
            try:
                login = json.loads(body or b"{}")
            except ValueError:
                login = {}
            if (login.get("user"), login.get("password")) != (USER, PASSWORD):
                return json_response({"STATUS": status(401, "Invalid credentials",
                                                       self.DESCRIPTION, False)})
            return json_response({"STATUS": status(0, "Token", self.DESCRIPTION),
                                  "Token": [{"Token": self._token()}]})
        if headers.get("token") != self._token():
            return json_response({"STATUS": status(401, "Invalid token", self.DESCRIPTION,
                                                   False)})
        s = self.snap()
        pages: dict[str, Callable[[Snapshot], dict]] = {
            "/ipreport": self._ipreport, "/psu": self._psu, "/fan": self._fan,
            "/mode": self._mode, "/led": self._led,
        }
        page = pages.get(route)
        return json_response(page(s)) if page else not_found()

    def _ok(self, msg: str) -> list[dict]:
        return status(0, msg, self.DESCRIPTION)

    def _ipreport(self, s: Snapshot) -> dict:
        return {"STATUS": self._ok("IPReport"), "IPReport": [{
            "mac": mac_of(s).lower(), "version": FW, "hostname": s.rig.rig_id, "ip": s.rig.ip,
            "model": s.rig.hardware.model, "HBSerialNo": [b.serial for b in s.boards]}]}

    def _psu(self, s: Snapshot) -> dict:
        return {"STATUS": self._ok("PSU"), "PSU": [{"PowerIn": f"{s.power_w}W",
                                                     "PoutMax": "4500W", "VoltageIn": "230V"}]}

    def _fan(self, s: Snapshot) -> dict:
        return {"STATUS": self._ok("Fan"), "Fan": [{"ID": i + 1, "Speed": rpm, "Max": 7000}
                                                   for i, rpm in enumerate(s.fans_rpm)]}

    def _mode(self, s: Snapshot) -> dict:
        return {"STATUS": self._ok("Mode"), "Mode": [{"Mode": "normal",
                                                       "Sleep": "on" if s.idle else "off",
                                                       "Power": s.rig.info.nominal_w}]}

    def _led(self, s: Snapshot) -> dict:
        return {"STATUS": self._ok("LED"), "LED": [{"Code": 0}]}
