"""Whatsminer API v3 (M6x/M7x, firmware after 2024-11): length-framed JSON on 4433.

Shapes follow real v3 replies (`reference/miner-api/whatsminer/v3`): `get.device.info`
(network, miner, power, system with `fwversion` and `api` 3.0.x, the `salt`),
`get.miner.status` with `param` summary / edevs / pools, hashrates in TH/s. Port 4028 keeps a
remnant of the v2 API, as pyasic's factory relies on: `version` says btminer, `get_version`
carries the firmware date (pyasic picks BTMinerV3 for a date after 2024.11), `devdetails`
no longer names the model (pyasic then asks `get.device.info` on 4433; hass-miner issue 566
shows the KeyError from such a firmware).

`set.*` commands need `account` and `token`: the first 8 characters of
base64(sha256(cmd + password + salt + ts)) (pyasic `BTMinerV3RPCAPI.send_command`).
"""

from __future__ import annotations

import base64
import hashlib
import time

from sim.model import Snapshot
from sim.vendors.base import Vendor, mac_of, status

SALT = "uhCiDyVj"


def token(command: str, password: str, salt: str, ts: int) -> str:
    """The v3 token: base64 of sha256(command + password + salt + ts), cut at 8 characters."""
    digest = hashlib.sha256(f"{command}{password}{salt}{ts}".encode()).digest()
    return base64.b64encode(digest).decode()[:8]


class WhatsminerV3(Vendor):
    """Whatsminer with API v3."""

    has_v3 = True
    FW = "20251209.16.Rel2"
    DESCRIPTION = "btminer"
    account = "super"
    password = "super"  # the firmware's default; sites change it

    def rpc(self, command: str) -> dict | None:
        """What remains on 4028."""
        if command == "version":
            return {"STATUS": status(22, "CGMiner versions", "btminer"),
                    "VERSION": [{"CGMiner": "4.9.2", "API": "3.7", "Miner": "btminer"}],
                    "id": 1}
        if command == "get_version":
            return {"STATUS": "S", "When": int(time.time()), "Code": 131,
                    "Msg": {"api_ver": "3.0.2", "fw_ver": self.FW, "platform": "H616"},
                    "Description": ""}
        return None

    def invalid(self, ok: bool = False) -> dict:
        """btminer's flat error, without the cgminer envelope."""
        return {"STATUS": "E", "When": int(time.time()), "Code": 14, "Msg": "invalid cmd",
                "Description": ""}

    def v3(self, request: dict) -> dict:
        """Answer one framed request."""
        cmd, param = str(request.get("cmd", "")), request.get("param")
        s = self.snap()
        if cmd.startswith("set."):
            return self._set(cmd, request)
        if cmd == "get.device.info":
            return self._reply(cmd, self._device_info(s))
        if cmd == "get.miner.status":
            parts = {"summary": self._summary, "edevs": self._edevs, "pools": self._pools}
            part = parts.get(str(param))
            if part is not None:
                return self._reply(cmd, {str(param): part(s)})
        return {"code": -1, "when": int(time.time()), "msg": "invalid command", "desc": cmd}

    @staticmethod
    def _reply(cmd: str, msg: dict) -> dict:
        return {"code": 0, "when": int(time.time()), "msg": msg, "desc": cmd}

    def _set(self, cmd: str, request: dict) -> dict:
        ts = request.get("ts")
        good = (request.get("account") == self.account and isinstance(ts, int)
                and request.get("token") == token(cmd, self.password, SALT, ts))
        if not good:
            return {"code": -2, "when": int(time.time()), "msg": "invalid token", "desc": cmd}
        if cmd in ("set.system.led", "set.miner.service", "set.miner.power_limit"):
            return {"code": 0, "when": int(time.time()), "msg": "ok", "desc": cmd}
        return {"code": -1, "when": int(time.time()), "msg": "invalid command", "desc": cmd}

    def _device_info(self, s: Snapshot) -> dict:
        hw = s.rig.hardware
        miner: dict[str, object] = {
            "type": hw.wire_model or hw.model.replace(" ", "_"), "board-num": str(hw.boards),
            "miner-sn": f"BTM{s.boards[0].serial}", "working": "false" if s.idle else "true",
            "hash-board": hw.wire_model.rsplit("_", 1)[-1][:3],
            **{f"pcbsn{b.index}": b.serial for b in s.boards}}
        errors = [{"300": "2026-01-01 00:00:00", "reason": "fan speed error"}
                  ] if not all(s.fans_rpm) and not s.idle else []
        errors += [{"218": "2026-01-01 00:00:00", "reason": "hashboard lost"}] if s.errors else []
        info: dict[str, object] = {
            "miner": miner,
            "network": {"mac": mac_of(s), "hostname": s.rig.rig_id, "ip": s.rig.ip,
                        "proto": "dhcp"},
            "power": {"fanspeed": 6344, "model": "P221B", "type": "P221B", "vendor": "1"},
            "salt": SALT,
            "system": {"api": "3.0.2", "fwversion": self.FW, "ledstatus": "auto",
                       "platform": "H616", "control-board-version": "CB6V10"}}
        if errors:
            info["error-code"] = errors
        return info

    def _summary(self, s: Snapshot) -> dict:
        return {"elapsed": s.uptime_s, "bootup-time": s.uptime_s + 1323,
                "hash-realtime": round(s.hashrate_gh / 1000, 3),
                "hash-average": round(s.average_gh / 1000, 3),
                "factory-hash": round(s.expected_gh / 1000, 3),
                "power-realtime": float(s.power_w), "power-limit": 3600,
                "environment-temperature": s.rig.ambient_c,
                "fan-speed-in": s.fans_rpm[0], "fan-speed-out": s.fans_rpm[-1],
                "chip-temp-max": s.chip_temp_max_c,
                "board-temperature": [b.board_temp_c for b in s.boards]}

    @staticmethod
    def _edevs(s: Snapshot) -> list[dict]:
        return [{"id": b.index, "status": "alive" if b.chips else "dead",
                 "hash-average": round(b.hashrate_gh / 1000, 3),
                 "hash-realtime": round(b.hashrate_gh / 1000, 3),
                 "factory-hash": round(s.expected_gh / 1000 / len(s.boards), 3),
                 # the spread of the real M60S capture: min 12 and avg 6 below the max
                 "chip-temp-min": b.chip_temp_c - 12 if b.chips else 0.0,
                 "chip-temp-avg": b.chip_temp_c - 6 if b.chips else 0.0,
                 "chip-temp-max": b.chip_temp_c, "effective-chips": b.chips, "freq": 625.0}
                for b in s.boards]

    @staticmethod
    def _pools(s: Snapshot) -> list[dict]:
        return [{"account": f"farm.{s.rig.rig_id}", "pool-priority": 0, "status": "alive",
                 "stratum-active": True, "url": "stratum+tcp://pool.example.net:3333"}]
