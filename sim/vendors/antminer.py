"""Stock Antminer (BMMiner): CGMiner RPC on 4028 plus the digest-auth CGI web API on 80.

Shapes follow a real S19 Pro's replies (`reference/miner-api/antminer/v2020`): four chains in
`stats` with the fourth absent (`"temp_chip4": "0-0-0-0"`, `"chain_rate4": ""`), four sensors
per chain as one dash-joined string (a negative reading makes `"2--1-20-22"`), hashrates as
strings, `Description` "cgminer 1.0.0"; the `}{` glue between the two STATS objects that
pyasic's `_load_api_data` repairs ("bmminer return not having a specific comma"); joined
commands refused (pyasic: "doesn't work for S19", it then sends each command alone).
"""

from __future__ import annotations

from collections.abc import Callable

from sim.model import Board, Snapshot
from sim.vendors.base import Vendor, encode, mac_of, status
from sim.wire import DigestAuth, HttpResponse, json_response, not_found

CHAINS = 4  # the S19 control board has four chain connectors; three carry boards


def sensors(values: tuple[float, ...]) -> str:
    """"78-50-69-70": each sensor as a whole number, joined by dashes (negatives included)."""
    return "-".join(f"{v:.0f}" for v in values)


class Antminer(Vendor):
    """Stock Antminer (BMMiner)."""

    has_http = True
    auth = DigestAuth(realm="antMiner Configuration")
    DESCRIPTION = "cgminer 1.0.0"
    JOIN = "refuse"

    def rpc(self, command: str) -> dict | None:
        """RPC replies: version, summary, stats, pools, devdetails."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "summary": self._summary, "stats": self._stats,
            "pools": lambda s: pools(s, self.DESCRIPTION), "devdetails": self._devdetails,
        }
        build = builders.get(command)
        return build(s) if build else None

    def serialize(self, command: str, reply: dict) -> bytes:
        """bmminer's stats: no comma between the version object and the chain object."""
        body = encode(reply)
        if self.quirks and command == "stats":
            body = body.replace(b'},{"STATS":0', b'}{"STATS":0', 1)
        return body

    def _version(self, s: Snapshot) -> dict:
        return {"STATUS": status(22, "CGMiner versions", self.DESCRIPTION),
                "VERSION": [{"BMMiner": "1.0.0", "API": "3.1", "Miner": "49.0.1.3",
                             "CompileTime": "Tue Dec  6 16:12:30 CST 2022",
                             "Type": f"Antminer {s.rig.hardware.model}"}], "id": 1}

    def _summary(self, s: Snapshot) -> dict:
        gh = s.hashrate_gh
        five = gh if self.quirks else f"{gh:.2f}"
        return {"STATUS": status(11, "Summary", self.DESCRIPTION),
                "SUMMARY": [{"Elapsed": s.uptime_s, "GHS 5s": five, "GHS av": s.average_gh,
                             "GHS 30m": s.average_gh, "Accepted": 4057, "Rejected": 11,
                             "Hardware Errors": 562, "Best Share": 12904207043}], "id": 1}

    def _chain(self, n: int, b: Board | None) -> dict[str, object]:
        if not self.quirks:
            return {f"chain_acn{n}": b.chips if b else 0,
                    f"chain_acs{n}": " ooo" * (b.chips // 3) if b and b.chips else "",
                    f"chain_rate{n}": f"{b.hashrate_gh:.2f}" if b else "",
                    f"temp_chip{n}": f"{b.chip_temp_c:.0f}" if b else "",
                    f"temp_pcb{n}": f"{b.board_temp_c:.0f}" if b else ""}
        live = b is not None and b.chips > 0
        chip = b.chip_sensors if b else (0.0,) * 4
        pcb = b.pcb_sensors if b else (0.0,) * 4
        return {f"chain_acn{n}": b.chips if b else 0,
                f"chain_acs{n}": " ooo" * (b.chips // 3) if live and b else "",
                f"chain_rate{n}": f"{b.hashrate_gh:.2f}" if live and b else "",
                f"chain_hw{n}": 183 if live else 0, f"freq{n}": 525 if live else 0,
                f"temp_chip{n}": sensors(chip), f"temp_pcb{n}": sensors(pcb),
                f"temp_pic{n}": sensors(tuple(v - 10 if v else 0.0 for v in pcb))}

    def _stats(self, s: Snapshot) -> dict:
        chain: dict[str, object] = {}
        for i in range(CHAINS if self.quirks else 4):
            chain.update(self._chain(i + 1, s.boards[i] if i < len(s.boards) else None))
        fans = {f"fan{i + 1}": rpm for i, rpm in enumerate(s.fans_rpm)}
        body: dict[str, object] = {
            "STATS": 0, "ID": "BTM_SOC0", "Elapsed": s.uptime_s,
            "GHS 5s": s.hashrate_gh if self.quirks else f"{s.hashrate_gh:.2f}",
            "GHS av": s.average_gh, "total_rateideal": s.expected_gh, "rate_unit": "GH",
            "fan_num": len(s.fans_rpm), **fans, "miner_count": len(s.boards), **chain}
        if self.quirks:
            body.update({"total rate": s.average_gh, "total_acn": sum(b.chips for b in s.boards),
                         "temp_num": len(s.boards), "temp_max": 0, "miner_version": "49.0.1.3",
                         # the first pcb and chip sensors again (a real S19 Pro:
                         # "temp1": 73, "temp2_1": 78)
                         **{f"temp{i + 1}": round(b.pcb_sensors[0]) for i, b in
                            enumerate(s.boards)},
                         **{f"temp2_{i + 1}": round(b.chip_sensors[0]) for i, b in
                            enumerate(s.boards)}})
        return {"STATUS": status(70 if self.quirks else 11, "CGMiner stats", self.DESCRIPTION),
                "STATS": [{"BMMiner": "1.0.0", "Miner": "49.0.1.3",
                           "CompileTime": "Tue Dec  6 16:12:30 CST 2022",
                           "Type": f"Antminer {s.rig.hardware.model}"}, body], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": status(69, "Device Details", self.DESCRIPTION),
                "DEVDETAILS": [{"DEVDETAILS": 0, "Name": "BTM_SOC", "ID": 0, "Driver": "bitmain",
                                "Model": "", "Device Path": ""}], "id": 1}

    async def http(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> HttpResponse:
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
                "macaddr": mac_of(s), "ipaddress": s.rig.ip, "serinum": f"SIM{s.rig.rig_id}",
                "firmware_type": "Release", "system_filesystem_version": "FR-1.12"}

    def _web_stats(self, s: Snapshot) -> dict:
        def temps(b: Board) -> tuple[list[float], list[float]]:
            if self.quirks:
                return list(b.pcb_sensors), list(b.chip_sensors)
            return [b.board_temp_c] * 4, [b.chip_temp_c] * 4

        chains = [{"index": b.index, "rate_real": b.hashrate_gh, "asic_num": b.chips,
                   "temp_pcb": temps(b)[0], "temp_chip": temps(b)[1], "sn": b.serial}
                  for b in s.boards if b.chips]
        return {"STATUS": {"STATUS": "S"}, "STATS": [{"elapsed": s.uptime_s,
                                                      "rate_5s": s.hashrate_gh,
                                                      "rate_ideal": s.expected_gh,
                                                      "rate_unit": "GH/s", "chain": chains,
                                                      "fan": s.fans_rpm}]}

    def _web_summary(self, s: Snapshot) -> dict:
        state = [{"type": "rate", "status": "s", "code": 0, "msg": ""},
                 {"type": "network", "status": "s", "code": 0, "msg": ""},
                 {"type": "fans", "status": "s" if all(s.fans_rpm) else "e", "code": 0,
                  "msg": "" if all(s.fans_rpm) else "fan lost"},
                 {"type": "temp", "status": "s", "code": 0, "msg": ""}]
        state += [{"type": "chain", "status": "e", "code": 1, "msg": e} for e in s.errors]
        return {"STATUS": {"STATUS": "S"}, "SUMMARY": [{"elapsed": s.uptime_s,
                                                        "rate_5s": s.hashrate_gh,
                                                        "status": state}]}


# a rig's pool changed behind the site's back (hashrate hijacking): rig id -> (URL, user),
# set through the farm's control API (POST /rigs/<id>/pool)
POOL_CHANGES: dict[str, tuple[str, str]] = {}


def pools(s: Snapshot, description: str) -> dict:
    """A cgminer `pools` reply with one active pool."""
    url, user = POOL_CHANGES.get(s.rig.rig_id, ("stratum+tcp://pool.example.net:3333",
                                                f"farm.{s.rig.rig_id}"))
    return {"STATUS": status(7, "1 Pool(s)", description),
            "POOLS": [{"POOL": 0, "URL": url,
                       "User": user, "Status": "Alive",
                       "Stratum Active": True, "Accepted": 4057, "Rejected": 11,
                       "Get Failures": 0, "Remote Failures": 0}], "id": 1}
