"""LuxOS (Luxor firmware on Antminers): a cgminer-style API on 4028 named LUXminer.

Shapes follow a real LuxOS 2025.4 on an S19k Pro (`reference/miner-api/luxminer/v1`):
`Description` "LUXminer ...", BMMiner-like `stats` with four dash-joined sensors per chain,
`power` (`POWER[0].Watts`), `fans` (`FANS[i].RPM`), `config` (`MACAddr`, `Model`). LuxOS
answers its own commands inside a join too.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.model import Snapshot
from sim.vendors.antminer import pools, sensors
from sim.vendors.base import Vendor, mac_of, status

VERSION = "2025.4.8.220305"


class LuxOS(Vendor):
    """LuxOS."""

    DESCRIPTION = f"LUXminer {VERSION}-57b389c7"

    def rpc(self, command: str) -> dict | None:
        """LUXminer's read commands."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "summary": self._summary, "stats": self._stats,
            "power": self._power, "fans": self._fans, "config": self._config,
            "pools": lambda s: pools(s, self.DESCRIPTION), "devdetails": self._devdetails,
            "profiles": self._profiles,
        }
        build = builders.get(command)
        return build(s) if build else None

    def unjoinable(self, command: str) -> dict:
        """LuxOS joins its own read commands as well."""
        return self.rpc(command) or self.invalid()

    def _type(self, s: Snapshot) -> str:
        return f"Antminer {s.rig.hardware.model}"

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": status(22, "LUXminer versions", self.DESCRIPTION),
                "VERSION": [{"API": "3.7", "LUXminer": f"{VERSION}-57b389c7", "Miner": VERSION,
                             "CompileTime": "Tue Apr  8 22:05:35 UTC 2025",
                             "Type": self._type(s)}], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": status(69, "Device Details", self.DESCRIPTION),
                "DEVDETAILS": [{"DEVDETAILS": b.index, "Name": "", "ID": b.index,
                                "Driver": "bitmain", "Model": self._type(s)}
                               for b in s.boards], "id": 1}

    def _summary(self, s: Snapshot) -> dict:
        return {"STATUS": status(11, "Summary", self.DESCRIPTION), "SUMMARY": [{
            "Elapsed": s.uptime_s, "GHS 5s": s.hashrate_gh, "GHS 1m": s.hashrate_gh,
            "GHS av": s.average_gh, "Accepted": 1483, "Rejected": 1}], "id": 1}

    def _stats(self, s: Snapshot) -> dict:
        body: dict[str, object] = {"STATS": 0, "ID": "BTM_SOC0", "Elapsed": s.uptime_s,
                                   "GHS 5s": s.hashrate_gh, "GHS av": s.average_gh,
                                   "total_rateideal": s.expected_gh, "rate_unit": "GH",
                                   "fan_num": len(s.fans_rpm), "miner_count": len(s.boards)}
        body.update({f"fan{i + 1}": rpm for i, rpm in enumerate(s.fans_rpm)})
        for i in range(4):
            b = s.boards[i] if i < len(s.boards) else None
            n = i + 1
            body[f"chain_acn{n}"] = b.chips if b else 0
            body[f"chain_rate{n}"] = f"{b.hashrate_gh:.2f}" if b else "0"
            body[f"temp_chip{n}"] = sensors(b.chip_sensors if b else (0.0,) * 4)
            body[f"temp_pcb{n}"] = sensors(b.pcb_sensors if b else (0.0,) * 4)
        return {"STATUS": status(70, "LUXminer stats", self.DESCRIPTION),
                "STATS": [{"Miner": VERSION, "Type": self._type(s),
                           "CompileTime": "Tue Apr  8 22:05:35 UTC 2025"}, body], "id": 1}

    def _power(self, s: Snapshot) -> dict:
        return {"STATUS": status(311, "Power usage", self.DESCRIPTION),
                "POWER": [{"PSU": False, "Watts": s.power_w}], "id": 1}

    def _fans(self, s: Snapshot) -> dict:
        fans = [{"FAN": f"FAN{i + 1}", "ID": i, "RPM": rpm, "Speed": 60}
                for i, rpm in enumerate(s.fans_rpm)]
        return {"STATUS": status(202, f"{len(fans)} Fan(s)", self.DESCRIPTION),
                "FANS": fans, "FANCTRL": [{"MinFans": 3, "PowerOffSpeed": 20}], "id": 1}

    def _config(self, s: Snapshot) -> dict:
        return {"STATUS": status(33, "LUXminer config", self.DESCRIPTION), "CONFIG": [{
            "ASC Count": len(s.boards), "Hostname": s.rig.rig_id, "IPAddr": s.rig.ip,
            "MACAddr": mac_of(s).lower(), "Model": self._type(s), "OS": "LuxOS",
            "Profile": "default", "RedLed": "auto", "GreenLed": "auto",
            "IsAtmEnabled": False, "SystemStatus": "Normal"}], "id": 1}

    def _profiles(self, s: Snapshot) -> dict:
        return {"STATUS": status(34, "LUXminer profiles", self.DESCRIPTION), "PROFILES": [{
            "Profile Name": "default", "Frequency": 525, "Hashrate": s.expected_gh / 1000,
            "Voltage": 13.4, "Watts": s.rig.info.nominal_w, "IsDynamic": False,
            "Step": "0"}], "id": 1}
