"""Canaan AvalonMiner (cgminer 4.11): the bracketed `MM ID0` estats string.

Shapes follow real Avalon replies (`reference/miner-api/avalonminer/current`): `estats` lists
the devices only (cgminer api.c `minerestats`), `stats` adds the POOLn entries
(`minerstats`); the Avalon Q puts its summary under `"MM ID0:Summary"` as `'STATS':{...}`
with `ITemp`, `TMax`, `PS[...]` and its chip sensors in `HBinfo`, and no `WALLPOWER`; an idle
rig (`SYSTEMSTATU[Work: In Idle, ...]`) reports `MHS 1m` 0 while `MHS av` keeps the
since-start average; percentages arrive as the strings "nan" and "inf" (pyasic's
`_load_api_data`: "Avalonminers returning inf and nan").
"""

from __future__ import annotations

from collections.abc import Callable

from sim.model import Snapshot
from sim.vendors.antminer import pools
from sim.vendors.base import Vendor, mac_of, status


def _join(values: list[str]) -> str:
    return " ".join(values)


class Avalon(Vendor):
    """Canaan AvalonMiner."""

    DESCRIPTION = "cgminer 4.11.1"

    @property
    def q(self) -> bool:
        """The Avalon Q (home miner) family, with its own estats layout."""
        return self.snap().rig.hardware.wire_model == "Q"

    def rpc(self, command: str) -> dict | None:
        """RPC replies: version, devdetails, summary, devs, stats/estats, pools."""
        s = self.snap()
        builders: dict[str, Callable[[Snapshot], dict]] = {
            "version": self._version, "devdetails": self._devdetails,
            "summary": self._summary, "devs": self._devs,
            "stats": lambda s: self._stats(s, pools=True),
            "estats": lambda s: self._stats(s, pools=not self.quirks),
            "pools": lambda s: pools(s, self.DESCRIPTION),
        }
        build = builders.get(command)
        return build(s) if build else None

    def _version(self, s: Snapshot) -> dict:
        if self.q:
            prod, model, hw = "Avalon Q", "Q", "Q_MM1v1_X1"
        else:
            model = s.rig.hardware.model.split()[-1]
            prod, model, hw = f"AvalonMiner {model}-86", f"{model}-86", "MM3v2_X3"
        return {"STATUS": status(22, "CGMiner versions", self.DESCRIPTION),
                "VERSION": [{"CGMiner": "4.11.1", "API": "3.7", "PROD": prod, "MODEL": model,
                             "HWTYPE": hw, "MAC": mac_of(s).replace(":", "").lower(),
                             "LVERSION": "21042001_4ec6bb0_61407fa"}], "id": 1}

    def _devdetails(self, s: Snapshot) -> dict:
        return {"STATUS": status(69, "Device Details", self.DESCRIPTION),
                "DEVDETAILS": [{"DEVDETAILS": 0, "Name": "AVALON", "ID": 0, "Driver": "avalon",
                                "Model": "", "Kernel": "", "Device Path": ""}], "id": 1}

    def _rates(self, s: Snapshot) -> dict[str, object]:
        mhs, avg = s.hashrate_gh * 1000, s.average_gh * 1000
        out: dict[str, object] = {"MHS av": avg, "MHS 1m": mhs, "MHS 5s": mhs}
        if self.quirks:
            out.update({"MHS 5m": mhs, "MHS 15m": mhs, "Diff1 Work": 0,
                        "Device Hardware%": "nan", "Device Rejected%": "inf"})
        return out

    def _summary(self, s: Snapshot) -> dict:
        return {"STATUS": status(11, "Summary", self.DESCRIPTION), "SUMMARY": [{
            "Elapsed": s.uptime_s, **self._rates(s), "Accepted": 890, "Rejected": 2}], "id": 1}

    def _devs(self, s: Snapshot) -> dict:
        return {"STATUS": status(9, "1 ASC(s)", self.DESCRIPTION), "DEVS": [{
            "ASC": 0, "Name": "AVALON", "ID": 0, "Enabled": "Y", "Status": "Alive",
            "Temperature": 0.0, **self._rates(s), "Device Elapsed": s.uptime_s}], "id": 1}

    def _stats(self, s: Snapshot, pools: bool) -> dict:
        device: dict[str, object] = {"STATS": 0, "ID": "AVALON0" if self.q else "AVA100",
                                     "Elapsed": s.uptime_s, "Calls": 0, "Wait": 0.0,
                                     "Max": 0.0, "Min": 99999999.0}
        if self.q and self.quirks:
            device["MM ID0:Summary"] = "'STATS':{" + self._q_summary(s) + "}"
            board = s.boards[0]
            temps = _join([f"{board.chip_temp_c:.0f}"] * board.chips)
            volts = _join(["278"] * board.chips)  # per-chip mV/10 and work, as the capture
            work = _join(["600"] * board.chips)
            device["HBinfo"] = ("'HB0':{PVT_T0[" + temps + "] PVT_V0[" + volts + "] MW0["
                                + work + "]}")
        else:
            device["MM Count"] = 1
            device["MM ID0"] = self._mm(s)
        entries = [device]
        if pools:
            entries.append({"STATS": 1, "ID": "POOL0", "Elapsed": s.uptime_s, "Calls": 0,
                            "Wait": 0.0, "Max": 0.0, "Min": 99999999.0})
        return {"STATUS": status(70, "CGMiner stats", self.DESCRIPTION), "STATS": entries,
                "id": 1}

    def _board_rates(self, s: Snapshot) -> list[str]:
        """MGHS: per-board since-start averages (a real A1246's sum to its GHSavg)."""
        if self.quirks and s.idle:
            return [f"{s.average_gh / len(s.boards):.2f}"] * len(s.boards)
        return [f"{x.hashrate_gh:.2f}" for x in s.boards]

    @staticmethod
    def _work(s: Snapshot) -> str:
        return f"Work: {'In Idle' if s.idle else 'In Work'}, Hash Board: {len(s.boards)} "

    def _mm(self, s: Snapshot) -> str:
        b = s.boards
        fans = " ".join(f"Fan{i + 1}[{rpm}]" for i, rpm in enumerate(s.fans_rpm))
        pvt = " ".join(f"PVT_T{x.index}[{_join([f'{x.chip_temp_c:.0f}'] * x.chips)}]"
                       if x.chips else f"PVT_T{x.index}[]" for x in b)
        if self.quirks:  # per-chip voltages too, as the real A1246 sends them (~5 KB estats)
            pvt += " " + " ".join(f"PVT_V{x.index}[{_join(['305'] * x.chips)}]" for x in b)
        return (f"Ver[1246-86-21042001_4ec6bb0_61407fa] SYSTEMSTATU[{self._work(s)}] "
                f"Elapsed[{s.uptime_s}] Temp[{s.rig.ambient_c:.0f}] "
                f"TMax[{s.chip_temp_max_c:.0f}] "
                f"TAvg[{sum(x.board_temp_c for x in b) / len(b):.0f}] {fans} FanR[60%] "
                f"PS[0 1214 1316 242 {round(s.power_w * 0.91)} 1320 {s.power_w}] "
                f"GHSspd[{s.hashrate_gh:.2f}] GHSmm[{s.expected_gh:.2f}] "
                f"GHSavg[{s.average_gh:.2f}] "
                f"MGHS[{' '.join(self._board_rates(s))}] "
                f"MTmax[{' '.join(f'{x.chip_temp_c:.0f}' for x in b)}] "
                f"MTavg[{' '.join(f'{x.board_temp_c:.0f}' for x in b)}] "
                f"WALLPOWER[{s.power_w}] MPO[3500] Led[0] {pvt}")

    def _q_summary(self, s: Snapshot) -> str:
        """The Avalon Q's summary block: inlet and board temperatures, no WALLPOWER."""
        board = s.boards[0]
        fans = " ".join(f"Fan{i + 1}[{rpm}]" for i, rpm in enumerate([*s.fans_rpm, 0, 0][:4]))
        return (f"Ver[Q-25052801_14a19a2] LVer[25052801_14a19a2] STATE[2] "
                f"SYSTEMSTATU[{self._work(s)}] Elapsed[{s.uptime_s}] "
                f"ITemp[{s.rig.ambient_c:.0f}] HBITemp[{board.board_temp_c:.0f}] "
                f"HBOTemp[{board.board_temp_c:.0f}] TMax[{board.chip_temp_c:.0f}] "
                f"TAvg[{board.board_temp_c:.0f}] TarT[65] {fans} FanR[0%] "
                f"PS[0 1222 4 0 0 2245 {s.power_w}] GHSspd[{s.hashrate_gh:.2f}] "
                f"GHSmm[{s.expected_gh:.2f}] GHSavg[{s.average_gh:.2f}] "
                f"MGHS[{self._board_rates(s)[0]}] WORKMODE[0] MPO[800]")
