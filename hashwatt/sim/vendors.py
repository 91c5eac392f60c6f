"""Replies of each simulated firmware family, shaped like the captures real miners send.

Each vendor answers RPC commands (dict or None for unknown) and HTTP requests from the
rig's current `Snapshot`. Quirks kept on purpose: numbers as strings, per-chain keys,
Avalon's bracketed `MM ID0` strings, Bitaxe's GH/s hashrate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hashwatt.sim.model import Snapshot
from hashwatt.sim.wire import DigestAuth, HttpResponse, json_response, not_found

SnapshotFn = Callable[[], Snapshot]


def _status(code: int, msg: str, description: str) -> list[dict]:
    return [{"STATUS": "S", "When": int(time.time()), "Code": code, "Msg": msg,
             "Description": description}]


def _mac(snap: Snapshot) -> str:
    octets = [int(x) for x in snap.rig.ip.split(".")]
    return "02:48:57:{:02X}:{:02X}:{:02X}".format(*octets[1:])


@dataclass
class Vendor:
    """Base: no RPC, 404 on every path."""

    snap: SnapshotFn
    has_rpc = True
    has_http = False

    def rpc(self, command: str) -> dict | None:
        """Reply to one RPC command, None when the firmware does not know it."""
        return None

    async def http(self, method: str, path: str, headers: dict[str, str]) -> HttpResponse:
        """Reply to one HTTP request."""
        return not_found()


class Antminer(Vendor):
    """Stock Antminer (BMMiner): CGMiner RPC on 4028 plus the digest-auth CGI web API."""

    has_http = True
    auth = DigestAuth(realm="antMiner Configuration")
    DESCRIPTION = "bmminer 1.0.0"

    def rpc(self, command: str) -> dict | None:
        """RPC replies: version, summary, stats, pools, devdetails."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "summary": self._summary, "stats": self._stats,
            "pools": _pools, "devdetails": self._devdetails,
        }
        build = builders.get(command)
        return build(s) if build else None

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": _status(22, "BMMiner versions", self.DESCRIPTION),
                "VERSION": [{"BMMiner": "1.0.0", "API": "3.1", "Miner": "49.0.1.3",
                             "CompileTime": "Tue Dec  6 16:12:30 CST 2022",
                             "Type": f"Antminer {s.rig.hardware.model}"}], "id": 1}

    def _summary(self, s: Snapshot) -> dict:
        gh = s.hashrate_gh
        return {"STATUS": _status(11, "Summary", self.DESCRIPTION),
                "SUMMARY": [{"Elapsed": s.uptime_s, "GHS 5s": f"{gh:.2f}", "GHS av": gh,
                             "GHS 30m": gh, "Accepted": 4057, "Rejected": 11,
                             "Hardware Errors": 562, "Best Share": 12904207043}], "id": 1}

    def _stats(self, s: Snapshot) -> dict:
        chain: dict[str, object] = {}
        for i in range(4):
            b = s.boards[i] if i < len(s.boards) else None
            chain[f"chain_acn{i + 1}"] = b.chips if b else 0
            chain[f"chain_acs{i + 1}"] = " ooo" * (b.chips // 3) if b and b.chips else ""
            chain[f"chain_rate{i + 1}"] = f"{b.hashrate_gh:.2f}" if b else ""
            chain[f"temp_chip{i + 1}"] = f"{b.chip_temp_c:.0f}" if b else ""
            chain[f"temp_pcb{i + 1}"] = f"{b.board_temp_c:.0f}" if b else ""
        fans = {f"fan{i + 1}": rpm for i, rpm in enumerate(s.fans_rpm)}
        body = {"STATS": 0, "ID": "BTM_SOC0", "Elapsed": s.uptime_s,
                "GHS 5s": f"{s.hashrate_gh:.2f}", "GHS av": s.hashrate_gh,
                "total_rateideal": s.expected_gh, "rate_unit": "GH",
                "fan_num": len(s.fans_rpm), **fans, "miner_count": len(s.boards), **chain}
        return {"STATUS": _status(11, "Stats", self.DESCRIPTION),
                "STATS": [{"BMMiner": "1.0.0", "Miner": "49.0.1.3",
                           "Type": f"Antminer {s.rig.hardware.model}"}, body], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": _status(69, "Device Details", self.DESCRIPTION),
                "DEVDETAILS": [{"DEVDETAILS": 0, "Name": "BTM_SOC", "ID": 0, "Driver": "bitmain",
                                "Model": "", "Device Path": ""}], "id": 1}

    async def http(self, method: str, path: str, headers: dict[str, str]) -> HttpResponse:
        """The CGI API: everything behind digest auth, as on the real firmware."""
        if not self.auth.verify(method, headers.get("authorization", "")):
            return self.auth.challenge()
        s = self.snap()
        pages: dict[str, Callable[[Snapshot], dict]] = {
            "/cgi-bin/get_system_info.cgi": self._system_info,
            "/cgi-bin/stats.cgi": self._web_stats,
            "/cgi-bin/summary.cgi": self._web_summary,
            "/cgi-bin/get_blink_status.cgi": lambda _s: {"blink": False},
            "/cgi-bin/get_miner_conf.cgi": lambda _s: {"bitmain-work-mode": "0",
                                                        "pools": []},
        }
        page = pages.get(path.split("?")[0])
        return json_response(page(s)) if page else not_found()

    def _system_info(self, s: Snapshot) -> dict:
        return {"minertype": f"Antminer {s.rig.hardware.model}", "hostname": s.rig.rig_id,
                "macaddr": _mac(s), "ipaddress": s.rig.ip, "serinum": f"SIM{s.rig.rig_id}",
                "firmware_type": "Release", "system_filesystem_version": "FR-1.12"}

    def _web_stats(self, s: Snapshot) -> dict:
        chains = [{"index": b.index, "rate_real": b.hashrate_gh, "asic_num": b.chips,
                   "temp_pcb": [b.board_temp_c] * 4, "temp_chip": [b.chip_temp_c] * 4,
                   "sn": b.serial} for b in s.boards if b.chips]
        return {"STATUS": {"STATUS": "S"}, "STATS": [{"elapsed": s.uptime_s,
                                                      "rate_5s": s.hashrate_gh,
                                                      "rate_ideal": s.expected_gh,
                                                      "rate_unit": "GH/s", "chain": chains,
                                                      "fan": s.fans_rpm}]}

    def _web_summary(self, s: Snapshot) -> dict:
        status = [{"type": "rate", "status": "s", "code": 0, "msg": ""},
                  {"type": "network", "status": "s", "code": 0, "msg": ""},
                  {"type": "fans", "status": "s" if all(s.fans_rpm) else "e", "code": 0,
                   "msg": "" if all(s.fans_rpm) else "fan lost"},
                  {"type": "temp", "status": "s", "code": 0, "msg": ""}]
        status += [{"type": "chain", "status": "e", "code": 1, "msg": e} for e in s.errors]
        return {"STATUS": {"STATUS": "S"}, "SUMMARY": [{"elapsed": s.uptime_s,
                                                        "rate_5s": s.hashrate_gh,
                                                        "status": status}]}


def _pools(s: Snapshot) -> dict:
    return {"STATUS": _status(7, "1 Pool(s)", "cgminer"),
            "POOLS": [{"POOL": 0, "URL": "stratum+tcp://pool.example.net:3333",
                       "User": f"farm.{s.rig.rig_id}", "Status": "Alive",
                       "Stratum Active": True, "Accepted": 4057, "Rejected": 11,
                       "Get Failures": 0, "Remote Failures": 0}], "id": 1}


class Whatsminer(Vendor):
    """Whatsminer btminer API v2 (plain JSON on 4028; firmware before 2024-11)."""

    FW = "20230803.11.REL"

    def rpc(self, command: str) -> dict | None:
        """RPC replies as btminer 2.0.5 gives them."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "devdetails": self._devdetails,
            "get_version": self._get_version, "summary": self._summary, "devs": self._devs,
            "pools": _pools, "get_miner_info": self._miner_info, "get_psu": self._psu,
            "get_error_code": self._error_code,
            "status": lambda _s: self._msg({"mineroff": "false", "FirmwareVersion": self.FW}),
        }
        build = builders.get(command)
        return build(s) if build else None

    def _msg(self, msg: dict) -> dict:
        return {"STATUS": "S", "When": int(time.time()), "Code": 131, "Msg": msg,
                "Description": ""}

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": _status(22, "CGMiner versions", "btminer"),
                "VERSION": [{"CGMiner": "4.9.2", "API": "3.7", "Miner": "btminer"}], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        model = s.rig.hardware.model.replace(" ", "_")
        return {"STATUS": _status(69, "Device Details", "btminer"),
                "DEVDETAILS": [{"DEVDETAILS": b.index, "Name": "SM", "ID": b.index,
                                "Driver": "bitmicro", "Kernel": "", "Model": model}
                               for b in s.boards], "id": 1}

    def _get_version(self, s: Snapshot) -> dict:
        return self._msg({"api_ver": "2.0.5", "fw_ver": self.FW, "platform": "H616"})

    def _summary(self, s: Snapshot) -> dict:
        mhs = s.hashrate_gh * 1000
        return {"STATUS": _status(11, "Summary", "btminer"), "SUMMARY": [{
            "Elapsed": s.uptime_s, "MHS av": mhs, "MHS 5s": mhs, "MHS 1m": mhs, "MHS 15m": mhs,
            "HS RT": mhs, "Factory GHS": int(s.expected_gh), "Power": s.power_w,
            "Power Limit": 3600, "Power Mode": "Normal", "Env Temp": s.rig.ambient_c,
            "Fan Speed In": s.fans_rpm[0], "Fan Speed Out": s.fans_rpm[-1],
            "Chip Temp Max": s.chip_temp_max_c, "MAC": _mac(s), "Uptime": s.uptime_s + 500,
            "Accepted": 5412, "Rejected": 0, "Power Fanspeed": 6000}], "id": 1}

    def _devs(self, s: Snapshot) -> dict:
        devs = [{"ASC": b.index, "Slot": b.index, "Name": "SM", "ID": b.index,
                 "Enabled": "Y", "Status": "Alive" if b.chips else "Dead",
                 "Temperature": b.board_temp_c, "Chip Temp Avg": b.chip_temp_c,
                 "Chip Temp Max": b.chip_temp_c + 4, "MHS av": b.hashrate_gh * 1000,
                 "MHS 1m": b.hashrate_gh * 1000, "Effective Chips": b.chips,
                 "PCB SN": b.serial, "Factory GHS": int(s.expected_gh / len(s.boards))}
                for b in s.boards]
        return {"STATUS": _status(9, f"{len(devs)} ASC(s)", "btminer"), "DEVS": devs, "id": 1}

    def _miner_info(self, s: Snapshot) -> dict:
        return self._msg({"hostname": s.rig.rig_id, "mac": _mac(s), "ledstat": "auto"})

    def _psu(self, s: Snapshot) -> dict:
        return self._msg({"fan_speed": "6000", "model": "P222B", "name": "P222B"})

    def _error_code(self, s: Snapshot) -> dict:
        codes = [{"300": "2026-01-01 00:00:00"}] if not all(s.fans_rpm) else []
        codes += [{"218": "2026-01-01 00:00:00"}] if s.errors else []
        return self._msg({"error_code": codes})


class Avalon(Vendor):
    """Canaan AvalonMiner (cgminer 4.11) with the bracketed `MM ID0` estats string."""

    def rpc(self, command: str) -> dict | None:
        """RPC replies: version, devdetails, summary, devs, stats/estats, pools."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "devdetails": self._devdetails,
            "summary": self._summary, "devs": self._devs, "stats": self._stats,
            "estats": self._stats, "pools": _pools,
        }
        build = builders.get(command)
        return build(s) if build else None

    def _version(self, s: Snapshot) -> dict:
        model = s.rig.hardware.model.split()[-1]
        return {"STATUS": _status(22, "CGMiner versions", "cgminer 4.11.1"),
                "VERSION": [{"CGMiner": "4.11.1", "API": "3.7", "PROD": f"AvalonMiner {model}-86",
                             "MODEL": f"{model}-86", "HWTYPE": "MM3v2_X3",
                             "MAC": _mac(s).replace(":", "").lower(),
                             "LVERSION": "21042001_4ec6bb0_61407fa"}], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": _status(69, "Device Details", "cgminer 4.11.1"),
                "DEVDETAILS": [{"DEVDETAILS": 0, "Name": "AVALON", "ID": 0, "Driver": "avalon",
                                "Model": "", "Kernel": "", "Device Path": ""}], "id": 1}

    def _summary(self, s: Snapshot) -> dict:
        mhs = s.hashrate_gh * 1000
        return {"STATUS": _status(11, "Summary", "cgminer 4.11.1"), "SUMMARY": [{
            "Elapsed": s.uptime_s, "MHS av": mhs, "MHS 1m": mhs, "MHS 5s": mhs,
            "Accepted": 890, "Rejected": 2}], "id": 1}

    def _devs(self, s: Snapshot) -> dict:
        mhs = s.hashrate_gh * 1000
        return {"STATUS": _status(9, "1 ASC(s)", "cgminer 4.11.1"), "DEVS": [{
            "ASC": 0, "Name": "AVALON", "ID": 0, "Enabled": "Y", "Status": "Alive",
            "Temperature": 0.0, "MHS av": mhs, "MHS 1m": mhs, "MHS 5s": mhs,
            "Device Elapsed": s.uptime_s}], "id": 1}

    def _stats(self, s: Snapshot) -> dict:
        b = s.boards
        fans = " ".join(f"Fan{i + 1}[{rpm}]" for i, rpm in enumerate(s.fans_rpm))
        pvt = " ".join(f"PVT_T{x.index}[{' '.join(['70'] * x.chips)}]" if x.chips
                       else f"PVT_T{x.index}[]" for x in b)
        mm = (f"Ver[1246-86-21042001_4ec6bb0_61407fa] Elapsed[{s.uptime_s}] "
              f"Temp[{s.rig.ambient_c:.0f}] TMax[{s.chip_temp_max_c:.0f}] "
              f"TAvg[{sum(x.board_temp_c for x in b) / len(b):.0f}] {fans} FanR[60%] "
              f"GHSmm[{s.expected_gh:.2f}] "
              f"MGHS[{' '.join(f'{x.hashrate_gh:.2f}' for x in b)}] "
              f"MTmax[{' '.join(f'{x.chip_temp_c:.0f}' for x in b)}] "
              f"MTavg[{' '.join(f'{x.board_temp_c:.0f}' for x in b)}] "
              f"WALLPOWER[{s.power_w}] MPO[3500] Led[0] {pvt}")
        return {"STATUS": _status(11, "Stats", "cgminer 4.11.1"), "STATS": [
            {"STATS": 0, "ID": "AVA100", "Elapsed": s.uptime_s, "MM ID0": mm},
            {"STATS": 1, "ID": "POOL0", "Elapsed": s.uptime_s}], "id": 1}


class Bitaxe(Vendor):
    """Bitaxe with AxeOS: HTTP only, hashrate in GH/s, power in W."""

    has_rpc = False
    has_http = True
    ASIC = {"Supra": "BM1368", "Gamma": "BM1370", "Ultra": "BM1366"}
    CORES = 1276

    async def http(self, method: str, path: str, headers: dict[str, str]) -> HttpResponse:
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
                "uptimeSeconds": s.uptime_s, "hostname": s.rig.rig_id, "macAddr": _mac(s),
                "version": "v2.4.5", "boardVersion": "401", "voltage": 5175,
                "coreVoltage": 1166, "sharesAccepted": 1200, "sharesRejected": 3,
                "stratumURL": "pool.example.net", "stratumPort": 3333,
                "stratumUser": f"farm.{s.rig.rig_id}", "fallbackStratumURL": "",
                "fallbackStratumPort": 3333, "fallbackStratumUser": "",
                "isUsingFallbackStratum": 0, "autofanspeed": 1, "fanspeed_pct": 60,
                "temptarget": 60, "overheat_mode": 0, "flipscreen": 1, "invertscreen": 0,
                "invertfanpolarity": 1}


VENDORS: dict[str, type[Vendor]] = {
    "antminer": Antminer, "whatsminer": Whatsminer, "avalon": Avalon, "bitaxe": Bitaxe,
}
