"""Log lines people read: one INFO line per cycle, and a line when a rig or PDU changes state
(down with its reason, back up), never one per reading."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from hashwatt.contract import CycleStatsDoc, PduDoc, RigDoc

log = logging.getLogger("collector")


@dataclass
class StateLog:
    """Remembers each rig's and PDU's last state and logs only the changes."""

    rigs: dict[str, bool] = field(default_factory=dict)
    pdus: dict[str, bool] = field(default_factory=dict)
    cycles: int = 0
    overrunning: bool = False

    def rig(self, reading: RigDoc) -> None:
        """Log a rig that went down (with its reason) or came back."""
        self._change(self.rigs, "rig", reading["rig"], reading)

    def pdu(self, reading: PduDoc) -> None:
        """Log a PDU or meter that stopped answering (e.g. an SNMP timeout) or came back."""
        self._change(self.pdus, "PDU", reading["pdu"], reading)

    @staticmethod
    def _change(states: dict[str, bool], kind: str, name: str,
                reading: Mapping[str, object]) -> None:
        online = bool(reading.get("online"))
        before = states.get(name)
        states[name] = online
        if before == online or (before is None and online):
            return
        if online:
            log.info("%s %s up again", kind, name)
        else:
            note = " (maintenance)" if reading.get("maintenance") else ""
            log.info("%s %s down%s: %s", kind, name, note, reading.get("error") or "no reason")

    def cycle(self, stats: CycleStatsDoc, interval_s: float) -> None:
        """The cycle line, and a warning when cycles start to overrun the interval."""
        self.cycles += 1
        pdus = (f", PDUs {stats['pdus_ok']}/{stats['pdus_total']}"
                if stats.get("pdus_total") else "")
        spool = f", spool {stats['spool_depth']}" if stats.get("spool_depth") else ""
        log.info("cycle %d: %d rigs: %d ok, %d failed, %d timeout in %.1f s%s%s",
                 self.cycles, stats["rigs_total"], stats["rigs_ok"], stats["rigs_failed"],
                 stats["rigs_timeout"], stats["cycle_s"], pdus, spool)
        over = stats["cycle_s"] > interval_s
        if over and not self.overrunning:
            log.warning("cycle %d took %.1f s, longer than interval_s = %g: raise concurrency, "
                        "lower deadline_s or shard the inventory", self.cycles,
                        stats["cycle_s"], interval_s)
        self.overrunning = over
