"""The collector's on-disk spool: every reading is written here first, published in order,
and deleted only when the broker acknowledged it (QoS 1 PUBACK).

It survives broker outages and collector restarts (SQLite in WAL mode). It is bounded:
past `max_messages` the oldest readings are dropped, and the count of dropped readings is
kept and reported in the collector's statistics, never silently.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spooled:
    """One spooled message."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """A bounded FIFO of MQTT messages on disk."""

    def __init__(self, path: Path, max_messages: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY "
                        "AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, "
                        "value INTEGER NOT NULL)")
        # counted once: a count(*) per append would scan the whole backlog every reading
        self._count = int(self.db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def append(self, messages: list[tuple[str, bytes]]) -> None:
        """Add messages at the end; drop the oldest beyond the bound (and count them)."""
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO spool (topic, payload) VALUES (?, ?)", messages)
            self._count += len(messages)
            excess = self._count - self.max_messages
            if excess > 0:
                self._count -= self.db.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                    (excess,)).rowcount
                self.db.execute("INSERT INTO counters VALUES ('dropped', ?) ON CONFLICT(name) "
                                "DO UPDATE SET value = value + excluded.value", (excess,))
            self.db.execute("COMMIT")

    def after(self, last_id: int, limit: int) -> list[Spooled]:
        """The next messages after last_id, oldest first."""
        with self.lock:
            rows = self.db.execute("SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY "
                                   "id LIMIT ?", (last_id, limit)).fetchall()
        return [Spooled(int(i), str(t), bytes(p)) for i, t, p in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget acknowledged messages."""
        if not ids:
            return
        with self.lock:
            self.db.execute("BEGIN")
            self._count -= self.db.executemany("DELETE FROM spool WHERE id = ?",
                                               [(i,) for i in ids]).rowcount
            self.db.execute("COMMIT")

    def depth(self) -> int:
        """Messages waiting (published but unacknowledged ones included)."""
        with self.lock:
            return self._count

    def dropped(self) -> int:
        """Messages dropped because the bound was reached, since the spool was created."""
        with self.lock:
            row = self.db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self.db.close()
