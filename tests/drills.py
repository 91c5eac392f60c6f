"""Drill harness: real mosquitto, influxd, bridges and collectors as processes, and the
verdict that matters — every reading the collector took is stored exactly once with its
values (polled vs stored vs lost vs doubled), plus the peak memory of each process."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashwatt.influxql import InfluxQL
from sim.launch import Influxd, Mosquitto
from tests.conftest import wait_for


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    """A process's resident memory in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Verdict:
    """What the collector took against what InfluxDB holds."""

    polled: int
    stored: int
    lost: int
    doubled: int
    wrong: int
    unknown: int  # stored points no collector took (must be 0 too)
    cycles: int = 0  # cycle statistics the collector took
    cycle_points: int = 0  # `collector` points with cycle figures (no more, no fewer)
    cycles_match: bool = True  # the same cycles, stamp by stamp
    peak_rss_mb: dict[str, float] = field(default_factory=dict)

    def ok(self) -> bool:
        """Nothing lost, nothing doubled, every value right, nothing invented."""
        return (self.polled > 0 and self.cycles_match
                and not (self.lost or self.doubled or self.wrong or self.unknown))

    def line(self) -> str:
        """The verdict as the README prints it."""
        mem = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(self.peak_rss_mb.items()))
        return (f"polled {self.polled}, stored {self.stored}, lost {self.lost}, "
                f"doubled {self.doubled}, wrong values {self.wrong}, unknown {self.unknown}, "
                f"cycles {self.cycles} taken / {self.cycle_points} stored; "
                f"peak RSS {mem}")


@dataclass
class Drill:
    """The processes of one drill and their bookkeeping."""

    tmp: Path
    broker: Mosquitto
    influx: Influxd
    db: InfluxQL
    config: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)
    peak_kb: dict[str, int] = field(default_factory=dict)
    sampling: threading.Event = field(default_factory=threading.Event)
    spool_file: Path | None = None  # the collector's spool, when not beside the config
    proxy: Any = None  # a tests.faultproxy.FaultProxy between the bridge and influxd

    def spawn(self, role: str, *args: str,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A `hashwatt` subcommand as a process of its own, logging to a file."""
        log = (self.tmp / f"{role}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        self.roles[proc.pid] = role
        return proc

    def bridge(self, config: Path | None = None, role: str = "bridge",
               wait: bool = True) -> subprocess.Popen[bytes]:
        """A bridge process; waits for its subscription unless told not to."""
        ready = self.tmp / f"bridge-{uuid.uuid4().hex[:6]}.ready"
        proc = self.spawn(role, "bridge", str(config or self.config), f"--ready-file={ready}")
        if wait:
            assert wait_for(ready.exists, timeout=60), "bridge did not subscribe"
        return proc

    def collector(self, cycles: int | None = None,
                  env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A collector process (env: its whole environment, when not ours)."""
        extra = [f"--cycles={cycles}"] if cycles is not None else []
        return self.spawn("collector", "collect", str(self.config), *extra, env=env)

    def logs(self, role: str) -> str:
        """Everything processes of this role logged."""
        files = sorted(self.tmp.glob(f"{role}-*.log"))
        return "".join(p.read_text(errors="replace") for p in files)

    # -- memory ----------------------------------------------------------------------------
    def start_sampling(self, every: float = 0.25) -> None:
        """Track the peak RSS of every spawned process, by role, on a thread."""
        def sample() -> None:
            while not self.sampling.wait(every):
                for proc in list(self.procs):
                    if proc.poll() is None:
                        role = self.roles[proc.pid]
                        self.peak_kb[role] = max(self.peak_kb.get(role, 0), rss_kb(proc.pid))
        threading.Thread(target=sample, daemon=True).start()

    # -- the verdict ------------------------------------------------------------------------
    def spool(self) -> Path:
        """The collector's spool file."""
        return self.spool_file or self.tmp / "hashwatt-spool.db"

    def _query(self, sql: str) -> list[Any]:
        """Rows from the collector's spool, read-only ([] before the collector made it)."""
        if not self.spool().exists():
            return []
        db = sqlite3.connect(f"file:{self.spool()}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            db.close()

    def spool_depth(self) -> int:
        """Readings waiting for their stored receipt."""
        return int(self._query("SELECT count(*) FROM spool")[0][0])

    def polled(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Every rig reading the collector took: (rig, ts_ms) -> reading (the audit copy)."""
        rows = self._query("SELECT payload FROM audit WHERE topic LIKE '%/rig/%'")
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for (payload,) in rows:
            doc = json.loads(payload)
            out[(doc["rig"], doc["ts_ms"])] = doc
        return out

    def stored(self) -> list[dict[str, Any]]:
        """Every `rig` point, every series (a doubled reading would be a second series)."""
        return self.db.rows('SELECT "up", "hashrate_ths", "power_w" FROM "rig" GROUP BY *')

    def verdict(self) -> Verdict:
        """Compare what the collector took with what InfluxDB holds, value by value."""
        polled = self.polled()
        seen: dict[tuple[str, int], int] = {}
        wrong = unknown = 0
        rows = self.stored()
        for row in rows:
            key = (row["rig"], int(row["time"]))
            seen[key] = seen.get(key, 0) + 1
            taken = polled.get(key)
            if taken is None:
                unknown += 1
            elif (row["up"], row["hashrate_ths"], row["power_w"]) != (
                    int(taken["online"]), taken.get("hashrate_ths"), taken.get("power_w")):
                wrong += 1
        cycles = {json.loads(p)["ts_ms"] for (p,) in
                  self._query("SELECT payload FROM audit WHERE topic LIKE '%/cycle'")}
        points = self.db.rows('SELECT "rigs_total" FROM "collector" GROUP BY *')
        stamps = {int(p["time"]) for p in points if p["rigs_total"] is not None}
        return Verdict(
            cycles=len(cycles), cycle_points=len(stamps), cycles_match=stamps == cycles,
            polled=len(polled), stored=sum(1 for k in seen if k in polled),
            lost=sum(1 for k in polled if k not in seen),
            doubled=sum(n - 1 for n in seen.values()), wrong=wrong, unknown=unknown,
            peak_rss_mb={k: v / 1024 for k, v in self.peak_kb.items()})

    def drain(self, timeout: float = 120) -> None:
        """With the collector stopped: send what is spooled (`collect --cycles 0`) until the
        spool is empty."""
        deadline = time.monotonic() + timeout
        while self.spool_depth() and time.monotonic() < deadline:
            proc = self.spawn("drain", "collect", str(self.config), "--cycles=0")
            proc.wait(timeout=60)
        assert self.spool_depth() == 0, f"{self.spool_depth()} readings never stored"

    def conclude(self, collector: subprocess.Popen[bytes]) -> Verdict:
        """Stop the collector (SIGTERM), send what it left spooled, and judge."""
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(timeout=60) == 0
        self.drain()
        return self.verdict()

    def stop_all(self) -> None:
        """Stop every process this drill started."""
        self.sampling.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
