"""VNish (AnthillOS) on Antminers: BMMiner's RPC on 4028 plus a token-authenticated JSON web
API on 80 (`POST /api/v1/unlock {"pw": ...}` gives a token; `GET /api/v1/summary`).

No capture of VNish is in the reference set: the shapes are those pyasic 0.79's VNish backend
reads (`web/vnish.py`, `miners/backends/vnish.py`), on top of the stock BMMiner `stats`.
"""

from __future__ import annotations

import json

from sim.model import Snapshot
from sim.vendors.antminer import Antminer
from sim.vendors.base import mac_of, session_token, status
from sim.wire import HttpResponse, json_response, not_found

VNISH = "1.2.6"
PASSWORD = "admin"  # the firmware's default (pyasic `default_vnish_web_password`)


class VNish(Antminer):
    """VNish: BMMiner RPC with the model in `stats`, the rest on the web API."""

    DESCRIPTION = f"bmminer 1.0.0 (vnish {VNISH})"
    JOIN = "cgminer"

    def _version(self, s: Snapshot) -> dict:
        # no "Antminer" here: pyasic's factory would take the socket reply for stock firmware
        return {"STATUS": status(22, "BMMiner versions", self.DESCRIPTION),
                "VERSION": [{"BMMiner": "1.0.0", "API": "3.1", "Miner": f"vnish {VNISH}",
                             "CompileTime": "Mon Mar  3 10:00:00 UTC 2025"}], "id": 1}

    def _stats(self, s: Snapshot) -> dict:
        reply = super()._stats(s)
        reply["STATS"][0]["Type"] = f"Antminer {s.rig.hardware.model} (Vnish {VNISH})"
        return reply

    def _token(self) -> str:
        return session_token(self.snap().rig.rig_id, PASSWORD)

    async def http(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> HttpResponse:
        """AnthillOS page, unlock, and the token-protected API."""
        route = path.split("?")[0]
        if route == "/":
            return HttpResponse(200, b"<html><head><title>AnthillOS</title></head></html>",
                                "text/html")
        if route == "/api/v1/unlock" and method == "POST":
            try:
                given = json.loads(body or b"{}").get("pw")
            except (ValueError, AttributeError):
                given = None
            if given != PASSWORD:
                return HttpResponse(401, b'{"err":"Unauthorized"}')
            return json_response({"token": self._token()})
        if not route.startswith("/api/v1/"):
            return not_found()
        if headers.get("authorization", "").removeprefix("Bearer ") != self._token():
            return HttpResponse(401, b'{"err":"Unauthorized"}')
        s = self.snap()
        if route in ("/api/v1/summary", "/api/v1/info"):
            return json_response(self._web_summary_vnish(s))
        if route == "/api/v1/settings":
            return json_response({"miner": {"overclock": {"preset": "disabled"}}})
        return not_found()

    def _web_summary_vnish(self, s: Snapshot) -> dict:
        chains = [{"id": b.index, "status": {"state": "mining" if b.chips else "failure",
                                             "description": "" if b.chips else "chain lost"}}
                  for b in s.boards]
        return {"miner": {"miner_type": f"Antminer {s.rig.hardware.model} (Vnish {VNISH})",
                          "power_usage": float(s.power_w), "chains": chains,
                          "miner_status": {"miner_state": "stopped" if s.idle else "mining"},
                          "overclock": {"preset": "disabled"}},
                "system": {"network_status": {"mac": mac_of(s), "hostname": s.rig.rig_id}}}
