"""Whatsminer btminer API v2: plain JSON on 4028 (firmware before 2024-11).

Shapes follow a real btminer 2.0.5 (`reference/miner-api/whatsminer/v2`): `summary` and
`devs` carry `MHS av` and `HS RT` but no `MHS 1m`; the btminer-only commands (`get_*`,
`status`) answer in the flat `{"STATUS": "S", "Msg": {...}}` form and cannot be joined
(pyasic's BTMinerRPCAPI.multicommand sends them alone; inside a join cgminer's api.c answers
a command it does not know with "Invalid command"); a trailing comma before `}` that pyasic's
`_load_api_data` repairs ("btminer return having an extra comma"). The M30S+ runs the older
API 2.0.4, whose `get_error_code` lists its errors as `["110":"2024-06-15 09:15:00"]`, a list
shaped like a dict (pyasic: "a really nasty bug with whatsminer API v2.0.4").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sim.model import Snapshot
from sim.vendors.antminer import pools
from sim.vendors.base import Vendor, encode, mac_of, status


class Whatsminer(Vendor):
    """Whatsminer btminer API v2."""

    FW = "20230803.11.REL"
    DESCRIPTION = "cgminer 4.9.2"
    OLD_API = {"M30S+ VE40": ("2.0.4", "20220915.22.REL")}  # model -> (API, firmware)

    def _api(self) -> tuple[str, str]:
        return self.OLD_API.get(self.snap().rig.hardware.model, ("2.0.5", self.FW))

    def rpc(self, command: str) -> dict | None:
        """RPC replies as btminer 2.0.5 gives them."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "devdetails": self._devdetails,
            "get_version": self._get_version, "summary": self._summary, "devs": self._devs,
            "pools": lambda s: pools(s, self.DESCRIPTION), "get_miner_info": self._miner_info,
            "get_psu": self._psu, "get_error_code": self._error_code, "status": self._status,
        }
        build = builders.get(command)
        return build(s) if build else None

    def unjoinable(self, command: str) -> dict:
        """btminer's own commands live outside cgminer's table: "Invalid command" in a join."""
        return self.invalid()

    def serialize(self, command: str, reply: dict) -> bytes:
        """btminer's summary object ends with a comma."""
        body = encode(reply)
        if self.quirks and command == "summary":
            body = body.replace(b'}],"id"', b',}],"id"', 1)
        if self.quirks and command == "get_error_code" and self._api()[0] == "2.0.4":
            # [{"110":"..."},{"300":"..."}] -> ["110":"...","300":"..."]
            body = body.replace(b'"error_code":[{', b'"error_code":[').replace(b'}]}', b']}')
            body = body.replace(b'"},{"', b'","')
        return body

    def _msg(self, msg: dict) -> dict:
        return {"STATUS": "S", "When": int(time.time()), "Code": 131, "Msg": msg,
                "Description": ""}

    def _status(self, s: Snapshot) -> dict:
        return self._msg({"mineroff": "true" if s.idle else "false",
                          "FirmwareVersion": self._api()[1]})

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": status(22, "CGMiner versions", "btminer"),
                "VERSION": [{"CGMiner": "4.9.2", "API": "3.7", "Miner": "btminer"}], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        model = s.rig.hardware.model.replace(" ", "_")
        return {"STATUS": status(69, "Device Details", "btminer"),
                "DEVDETAILS": [{"DEVDETAILS": b.index, "Name": "SM", "ID": b.index,
                                "Driver": "bitmicro", "Kernel": "", "Model": model}
                               for b in s.boards], "id": 1}

    def _get_version(self, s: Snapshot) -> dict:
        api, fw = self._api()
        return self._msg({"api_ver": api, "fw_ver": fw, "platform": "H616"})

    def _summary(self, s: Snapshot) -> dict:
        mhs, avg = s.hashrate_gh * 1000, s.average_gh * 1000
        rates = ({"MHS av": avg, "HS RT": mhs} if self.quirks else
                 {"MHS av": mhs, "MHS 5s": mhs, "MHS 1m": mhs, "MHS 15m": mhs, "HS RT": mhs})
        return {"STATUS": status(11, "Summary", self.DESCRIPTION), "SUMMARY": [{
            "Elapsed": s.uptime_s, **rates, "Factory GHS": int(s.expected_gh),
            "Power": s.power_w, "Power Limit": 3600, "Env Temp": s.rig.ambient_c,
            "Fan Speed In": s.fans_rpm[0], "Fan Speed Out": s.fans_rpm[-1],
            "Chip Temp Max": s.chip_temp_max_c, "MAC": mac_of(s), "Uptime": s.uptime_s + 500,
            "Accepted": 5412, "Rejected": 0, "Power Fanspeed": 6000,
            "Power Mode": "Normal"}], "id": 1}

    def _devs(self, s: Snapshot) -> dict:
        def rates(mhs: float) -> dict[str, float]:
            return {"MHS av": mhs} if self.quirks else {"MHS av": mhs, "MHS 1m": mhs}

        devs = [{"ASC": b.index, "Slot": b.index, "Name": "SM", "ID": b.index,
                 "Enabled": "Y", "Status": "Alive" if b.chips else "Dead",
                 "Temperature": b.board_temp_c, "Chip Temp Avg": b.chip_temp_c,
                 "Chip Temp Max": b.chip_temp_c + 4, **rates(b.hashrate_gh * 1000),
                 "Effective Chips": b.chips,
                 "PCB SN": b.serial, "Factory GHS": int(s.expected_gh / len(s.boards))}
                for b in s.boards]
        return {"STATUS": status(9, f"{len(devs)} ASC(s)", self.DESCRIPTION), "DEVS": devs,
                "id": 1}

    def _miner_info(self, s: Snapshot) -> dict:
        return self._msg({"hostname": s.rig.rig_id, "mac": mac_of(s), "ledstat": "auto"})

    def _psu(self, s: Snapshot) -> dict:
        return self._msg({"fan_speed": "6000", "model": "P222B", "name": "P222B"})

    def _error_code(self, s: Snapshot) -> dict:
        codes = [{"300": "2026-01-01 00:00:00"}] if not all(s.fans_rpm) else []
        codes += [{"218": "2026-01-01 00:00:00"}] if s.errors else []
        return self._msg({"error_code": codes})
