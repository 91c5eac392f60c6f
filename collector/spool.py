"""The collector's on-disk spool: every reading is written here first and stays until the
bridge says it is *stored* in InfluxDB (a broker's PUBACK is not enough: mosquitto writes
its state to disk only every `autosave_interval`).

Every message gets a sequence number (`id`) and the spool an `epoch` (a random id made when
the spool file is created): the pair names one reading for the bridge's stored receipts.
It survives broker outages and collector restarts (SQLite in WAL mode). It is bounded:
past `max_messages` the oldest readings are dropped, and the count of dropped readings is
kept and reported in the collector's statistics, never silently.

When the disk refuses (full, read-only, gone) the spool says so once, naming the path,
keeps new readings in a bounded memory buffer (counted) and moves them to disk, in order,
as soon as the disk takes writes again.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
RETRY_DISK_S = 2.0  # how often a refusing disk is tried again


@dataclass(frozen=True)
class Spooled:
    """One spooled message."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """A bounded FIFO of MQTT messages on disk, with a bounded memory fallback."""

    def __init__(self, path: Path, max_messages: int, memory_max: int = 20_000,
                 audit: bool = False) -> None:
        self.path = path
        self.max_messages = max_messages
        self.memory_max = memory_max
        self.audit = audit  # drills: keep a copy of every message ever spooled
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        self.memory: deque[Spooled] = deque()  # readings the disk did not take, in order
        self.unremoved: set[int] = set()  # stored, but the disk refused the delete
        self.epoch = secrets.token_hex(6)
        self.next_id = 1
        self._count = 0
        self.memory_dropped = 0
        self.disk_errors = 0
        self.renumbered = 0  # bumped when memory readings got new ids (the disk came late)
        self.disk_ok = False
        self._retry_at = 0.0
        self._open()

    # -- disk state ---------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY "
                       "AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, "
                       "value INTEGER NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, "
                       "value TEXT NOT NULL)")
            if self.audit:
                db.execute("CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, "
                           "topic TEXT NOT NULL, payload BLOB NOT NULL)")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (self.epoch,))
            epoch = str(db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()[0])
            row = db.execute("SELECT max(id), count(*) FROM spool").fetchone()
            seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._refused("cannot open", exc)
            return
        self.db, self.disk_ok = db, True
        # counted once: a count(*) per append would scan the whole backlog every reading
        self._count = int(row[1])
        disk_next = max(int(row[0] or 0), int(seq[0]) if seq else 0) + 1
        if epoch == self.epoch:  # a new file: ids taken in memory so far stay valid
            self.next_id = max(disk_next, self.next_id)
            return
        taken = self.next_id > 1
        self.epoch, self.next_id = epoch, disk_next
        if taken:  # readings numbered in memory before the disk came: renumber them
            self.memory = deque(Spooled(self.next_id + n, m.topic, m.payload)
                                for n, m in enumerate(self.memory))
            self.next_id += len(self.memory)
            self.renumbered += 1
            log.warning("spool %s: opened; %d readings from memory follow", self.path,
                        len(self.memory))

    def _refused(self, what: str, exc: BaseException) -> None:
        """Say once per outage, naming the path, that the disk refused; retry later."""
        self.disk_errors += 1
        self._retry_at = time.monotonic() + RETRY_DISK_S
        if self.disk_ok or self.disk_errors == 1:
            log.error("spool %s: %s (%s): keeping readings in memory (at most %d) until the "
                      "disk takes them", self.path, what, exc, self.memory_max)
        self.disk_ok = False

    def _retry_disk(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        if self.db is None:
            self._open()
            if self.db is None:
                return
        if self.memory and self._insert(list(self.memory)):
            log.warning("spool %s: the disk takes writes again; %d readings moved from memory",
                        self.path, len(self.memory))
            self.memory.clear()

    def _insert(self, messages: list[Spooled]) -> bool:
        """Write messages (one transaction); False when the disk refused."""
        assert self.db is not None
        rows = [(m.id, m.topic, m.payload) for m in messages]
        try:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO spool (id, topic, payload) VALUES (?, ?, ?)", rows)
            if self.audit:
                self.db.executemany("INSERT OR IGNORE INTO audit VALUES (?, ?, ?)", rows)
            count = self._count + len(rows)
            excess = count - self.max_messages
            if excess > 0:
                count -= self.db.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                    (excess,)).rowcount
                self.db.execute("INSERT INTO counters VALUES ('dropped', ?) ON CONFLICT(name) "
                                "DO UPDATE SET value = value + excluded.value", (excess,))
            self.db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            self._refused("write refused", exc)
            return False
        if not self.disk_ok:
            self.disk_ok = True
        self._count = count
        return True

    def _rollback(self) -> None:
        assert self.db is not None
        # nothing was begun, or the failure ended the transaction already
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("ROLLBACK")

    # -- the spool's interface -----------------------------------------------------------
    def append(self, messages: list[tuple[str, bytes]]) -> None:
        """Add messages at the end; drop the oldest beyond the bound (and count them)."""
        with self.lock:
            batch = [Spooled(self.next_id + n, t, p) for n, (t, p) in enumerate(messages)]
            self.next_id += len(batch)
            if self.memory or not self.disk_ok:
                self._retry_disk()
            if not self.memory and self.db is not None and self.disk_ok \
                    and self._insert(batch):
                return
            self.memory.extend(batch)
            while len(self.memory) > self.memory_max:
                self.memory.popleft()
                self.memory_dropped += 1

    def after(self, last_id: int, limit: int) -> list[Spooled]:
        """The next messages after last_id, oldest first."""
        with self.lock:
            out: list[Spooled] = []
            if self.db is not None:
                try:
                    rows = self.db.execute("SELECT id, topic, payload FROM spool WHERE id > ? "
                                           "ORDER BY id LIMIT ?", (last_id, limit)).fetchall()
                    out = [Spooled(int(i), str(t), bytes(p)) for i, t, p in rows]
                except sqlite3.Error as exc:
                    self._refused("read refused", exc)
            if len(out) < limit:
                out += [m for m in self.memory if m.id > last_id][:limit - len(out)]
            return [m for m in out if m.id not in self.unremoved]

    def get(self, ids: list[int]) -> list[Spooled]:
        """The messages with these ids that are still spooled, oldest first."""
        wanted = set(ids)
        with self.lock:
            out = [m for m in self.memory if m.id in wanted]
            if self.db is not None and wanted:
                try:
                    for chunk in _chunks(sorted(wanted), 500):
                        marks = ",".join("?" * len(chunk))
                        rows = self.db.execute(f"SELECT id, topic, payload FROM spool WHERE id "
                                               f"IN ({marks})", chunk).fetchall()
                        out += [Spooled(int(i), str(t), bytes(p)) for i, t, p in rows]
                except sqlite3.Error as exc:
                    self._refused("read refused", exc)
        return sorted((m for m in out if m.id not in self.unremoved), key=lambda m: m.id)

    def remove(self, ids: Iterable[int]) -> None:
        """Forget messages (stored, or refused for good)."""
        self.remove_ranges([(i, i) for i in ids])

    def remove_ranges(self, ranges: list[tuple[int, int]]) -> None:
        """Forget the messages whose ids fall in these inclusive ranges."""
        if not ranges:
            return
        with self.lock:
            if self.memory:
                self.memory = deque(m for m in self.memory
                                    if not any(a <= m.id <= b for a, b in ranges))
            if self.db is None:
                return
            pending = [(i, i) for i in self.unremoved]
            try:
                self.db.execute("BEGIN")
                self._count -= self.db.executemany(
                    "DELETE FROM spool WHERE id BETWEEN ? AND ?", ranges + pending).rowcount
                self.db.execute("COMMIT")
                self.unremoved.clear()
            except sqlite3.Error as exc:
                self._rollback()
                self._refused("delete refused", exc)
                for a, b in ranges:  # keep them out of every resend until the delete works
                    if b - a < 100_000:
                        self.unremoved.update(range(a, b + 1))

    def depth(self) -> int:
        """Messages waiting for their stored receipt (in memory ones included)."""
        with self.lock:
            return self._count + len(self.memory) - len(self.unremoved)

    def in_memory(self) -> int:
        """Messages the disk has not taken yet."""
        with self.lock:
            return len(self.memory)

    def dropped(self) -> int:
        """Messages dropped at a bound (disk or memory), since the spool was created."""
        with self.lock:
            row = None
            if self.db is not None:
                try:
                    row = self.db.execute(
                        "SELECT value FROM counters WHERE name = 'dropped'").fetchone()
                except sqlite3.Error:
                    row = None
        return (int(row[0]) if row else 0) + self.memory_dropped

    def close(self) -> None:
        """Close the database (readings still in memory are lost, and said so)."""
        with self.lock:
            if self.memory:
                log.error("spool %s: %d readings the disk never took are lost at exit",
                          self.path, len(self.memory))
            if self.db is not None:
                self.db.close()
                self.db = None


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
