"""InfluxDB answering badly, with real processes (README "Reliability drills"): 503 and 500,
413 for a batch over influxd's max-body-size, writes that take 10 s (longer than the bridge's
timeout), a field type conflict, influxd SIGKILLed mid-write and its disk full. Each ends
with the verdict (every reading the collector took stored exactly once, with its values) and
an exact count of what was set aside.

What influxd 1.x answers is read in its source (services/httpd/handler.go serveWrite): a
batch with refused points is a 400 "partial write: ..." and the *other* points are written
(tsdb.PartialWriteError); a body over max-body-size is a 413 and nothing is written; an
engine error (disk full) is a 500; a retention policy that does not exist is a 500 too
(checked against the Debian 1.6.7 here)."""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FarmFactory, read_deadletters, wait_for
from tests.test_reliability import INTERVAL, RIGS, drill, report, small_filesystem

# `make soak` runs the long forms (HASHWATT_DRILL_LONG=1): writes that take 10 s against a
# 4 s timeout, more kills; `make test` the short ones (5 s against 2 s: the same two
# timeouts before the third try waits long enough)
LONG = os.environ.get("HASHWATT_DRILL_LONG") == "1"
SLOW_S, TIMEOUT_S = (10.0, 4) if LONG else (5.0, 2)

pytestmark = pytest.mark.e2e


def stored_rigs(d: object) -> int:
    """Rig points in InfluxDB."""
    rows = d.db.rows('SELECT count("up") FROM "rig"')  # type: ignore[attr-defined]
    return int(rows[0]["count"]) if rows else 0


def cycles_stored(d: object, n: int) -> bool:
    """At least n cycles of every rig are in InfluxDB."""
    rows = d.db.rows('SELECT count("up") FROM "rig"')  # type: ignore[attr-defined]
    return bool(rows) and rows[0]["count"] >= n * RIGS


def test_influxd_answering_503_500_413_and_slowly_loses_nothing(
        tmp_path: Path, farm: FarmFactory) -> None:
    """503 three times and 500 twice are retried; a backlog batch over max-body-size (413:
    nothing written) is halved until it fits; for 32 s every write takes 10 s against a 4 s
    timeout (16 s, 5 s and 2 s in the short form): each write lands in influxd and the
    bridge gives up waiting. Before, it asked again with the same timeout forever and stored
    nothing while influxd was slow; now each try waits twice as long, rewriting what landed
    (same series and timestamp: no double)."""
    with drill(tmp_path, farm, proxy=True, influx_http="  max-body-size = 6000",
               influx=f"timeout_s = {TIMEOUT_S}") as d:
        d.bridge()
        collector = d.collector()
        assert wait_for(lambda: cycles_stored(d, 1), timeout=60)
        before = stored_rigs(d)
        # every write takes SLOW_S meanwhile: before, nothing was stored in the window
        window = 3.2 * SLOW_S
        d.proxy.slow_s, d.proxy.slow_until = SLOW_S, time.monotonic() + window
        assert wait_for(lambda: stored_rigs(d) > before, timeout=window), \
            f"nothing stored while influxd answered in {SLOW_S:.0f} s"
        wait_for(lambda: time.monotonic() > d.proxy.slow_until, timeout=window)
        d.proxy.fail.extend([503, 503, 503, 500, 500])
        assert wait_for(lambda: not d.proxy.fail, timeout=60)
        d.influx.stop()  # a backlog builds up in the broker: the next batches are big
        time.sleep((4 if LONG else 2) * INTERVAL)
        d.influx.start()
        time.sleep(2 * INTERVAL)
        v = d.conclude(collector)
        letters = read_deadletters(tmp_path / "deadletters.jsonl")
        logged = d.logs("bridge")
        report("influxd answering badly",
               f"{d.proxy.failed} writes failed (503/500), {logged.count('HTTP 413')} "
               f"refused as too large, {d.proxy.delayed} answered after {SLOW_S:.0f} s "
               f"(timeout {TIMEOUT_S} s); set aside "
               f"{len(letters)}; {v.line()}")
        assert v.ok(), v.line()
        assert letters == []
        assert "HTTP 503" in logged and "HTTP 500" in logged
        assert f"no answer within {TIMEOUT_S} s" in logged
        assert f"no answer within {2 * TIMEOUT_S} s" in logged
        assert d.proxy.delayed >= 3 and d.proxy.failed == 5
        assert "HTTP 413" in logged


def test_a_bridge_killed_between_write_and_ack_doubles_nothing(
        tmp_path: Path, farm: FarmFactory) -> None:
    """Once (three times in the long form): a batch reaches influxd (stored), its answer is
    held back, and the bridge is SIGKILLed before it could acknowledge or send a receipt.
    The restarted bridge gets the same messages again from its persistent session and writes
    them again. InfluxDB identifies a point by measurement, tag set and timestamp and
    overwrites it (docs: write-data/best-practices/duplicate-points); the bridge's tags and
    timestamp come from the message alone, so the rewrite is the same point: no double."""
    with drill(tmp_path, farm, proxy=True) as d:
        bridge = d.bridge()
        collector = d.collector()
        assert wait_for(lambda: cycles_stored(d, 1), timeout=60)
        rounds = 3 if LONG else 1
        for _ in range(rounds):
            landed = d.proxy.landed
            d.proxy.slow.append(20.0)
            assert wait_for(lambda n=landed: d.proxy.landed > n, timeout=30)  # not answered
            bridge.kill()
            bridge.wait()
            bridge = d.bridge()
        time.sleep(2 * INTERVAL)
        v = d.conclude(collector)
        report("bridge killed between write and ack", f"{rounds} batches stored, not acked; "
                                                      f"{v.line()}")
        assert v.ok(), v.line()


def test_a_field_type_conflict_costs_that_field_only(tmp_path: Path, farm: FarmFactory) -> None:
    """The database already holds `uptime_s` of `rig` as a float and `chip_temp_c` of
    `rig_board` as an integer (another writer, an older schema). influxd refuses every point
    that carries them ("field type conflict", the whole point) and writes the rest of the
    batch. Each such point is stored without the refused field and its message kept in the
    dead letters with the reason: before, every such message was set aside whole (every
    reading lost), and the bridge's own `exporter` point, refused for `messages`, ended the
    bridge (an exception out of its loop, again at every restart)."""
    with drill(tmp_path, farm, bridge="stats_interval_s = 1") as d:
        seeded = int(time.time() * 1000)
        body = (f"rig,rig=seed uptime_s=1.5 {seeded}\n"
                f"rig_board,rig=seed chip_temp_c=1i {seeded}\n"
                f"exporter,exporter=seed messages=1.5 {seeded}\n")
        answer = httpx.post(f"{d.influx.url}/write", params={"db": "drill", "precision": "ms"},
                            content=body.encode())
        assert answer.status_code == 204, answer.text
        bridge = d.bridge()
        collector = d.collector()
        assert wait_for(lambda: cycles_stored(d, 3), timeout=90)
        v = d.conclude(collector)
        assert bridge.poll() is None  # before: its own statistics' refusal ended it
        letters = read_deadletters(tmp_path / "deadletters.jsonl")
        # derived from what the collector took, not from the bridge: a reading conflicts
        # when it carries an uptime or a board with a chip temperature
        taken = d.polled().values()
        conflicting = [r for r in taken if r.get("uptime_s") is not None
                       or any(b.get("chip_temp_c") is not None for b in r.get("boards", []))]
        report("field type conflict", f"{len(conflicting)} readings carry a refused field; "
                                      f"set aside {len(letters)}; {v.line()}")
        assert v.ok(), v.line()
        assert len(conflicting) > 0
        assert len(letters) == len(conflicting)
        assert all("field type conflict" in str(r["reason"]) and "stored without"
                   in str(r["reason"]) for r in letters)
        stored_uptimes = d.db.rows('SELECT count("uptime_s") FROM "rig"')
        assert stored_uptimes[0]["count"] == 1  # the seed's own
        logged = d.logs("bridge")
        assert logged.count("InfluxDB refuses rig.uptime_s") == 1
        assert logged.count("InfluxDB refuses exporter.messages") == 1
        stats = d.db.rows('SELECT count("batches"), count("messages") FROM "exporter"')
        assert stats[0]["count"] > 0 and stats[0]["count_1"] == 1  # only the seed's own


def test_influxd_killed_mid_write_and_out_of_disk_loses_nothing(
        tmp_path: Path, farm: FarmFactory) -> None:
    """influxd SIGKILLed at seeded random moments while the bridge writes, restarted; then
    its disk (a real 64 MB tmpfs holding its data and WAL) fills up (writes answer 500 "no
    space left on device") and is freed again."""
    rng = random.Random(int(os.environ.get("HASHWATT_DRILL_SEED", "14")))
    with small_filesystem(tmp_path / "disk", size="64m") as mount, drill(
            tmp_path, farm, influx_dir=mount / "influx") as d:
        d.bridge()
        collector = d.collector()
        assert wait_for(lambda: cycles_stored(d, 1), timeout=90)
        kills = 6 if LONG else 2
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 3.0))
            d.influx.stop(kill=True)
            time.sleep(rng.uniform(0.1, 2.0))
            d.influx.start()
        filler = mount / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as fh:
            while True:
                fh.write(b"\0" * 1024 * 1024)
                fh.flush()
        full_s = (4 if LONG else 2) * INTERVAL
        time.sleep(full_s)
        filler.unlink()
        time.sleep(2 * INTERVAL)
        # influxd 1.x keeps its WAL's write error after space is freed, until restarted
        # (influxdata/influxdb#9923, #24460: "Restarting is the solution"): what systemd's
        # Restart= or an operator does; the bridge says so in one ERROR line
        still = d.db.rows('SELECT count("up") FROM "rig"')[0]["count"]
        d.influx.stop()
        d.influx.start()
        time.sleep(2 * INTERVAL)
        v = d.conclude(collector)
        letters = read_deadletters(tmp_path / "deadletters.jsonl")
        logged = d.logs("bridge")
        report("influxd killed and out of disk",
               f"{kills} SIGKILLs, disk full for {full_s} s, influxd restarted once "
               f"space was back; set aside {len(letters)}; "
               f"{v.line()}")
        assert v.ok(), v.line()
        assert letters == []
        assert "no space left on device" in logged, logged[-2000:]
        assert logged.count("InfluxDB's own disk is full") == 1
        assert still < v.polled  # readings taken while the disk was full waited for it
