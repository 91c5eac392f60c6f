"""The exporter bridge: MQTT (persistent session, QoS 1) → InfluxDB, ack only after the write.

The intake thread (exporters/intake.py) only queues messages; one worker thread decodes,
batches, writes and then acknowledges. A malformed message is set aside (dead-letter file +
counter) and acked, so it never blocks the ones behind it. While InfluxDB is down the worker
backs off and the unacknowledged messages stay with the broker.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.decode import Limits, Rejected, decode
from exporters.intake import Inbound, Session, Subscriber
from exporters.ledger import rollup
from exporters.lineproto import Point, encode
from exporters.sinks import Sink, WriteRejected, WriteUnavailable, make_sink
from hashwatt.config import Config
from hashwatt.contract import subscriptions
from hashwatt.influxql import InfluxQLError
from hashwatt.mqtt import tls_context
from hashwatt.tariff import Tariff

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
LINGER_S = 0.02


@dataclass
class Counters:
    """The exporter's self-monitoring figures since start."""

    messages: int = 0
    points: int = 0
    dead_letters: int = 0
    write_errors: int = 0
    batches: int = 0
    last_lag_ms: float = 0.0
    last_batch_ms: float = 0.0
    # poll-to-stored latency of every reading since the last stats point
    lags_ms: list[float] = field(default_factory=list)


class DeadLetters:
    """Appends set-aside messages, with their reason, to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def put(self, msg: Inbound, reason: str) -> None:
        """Record one set-aside message."""
        body = msg.payload[:4096]
        try:
            text: dict[str, Any] = {"payload": body.decode("utf-8")}
        except UnicodeDecodeError:
            text = {"payload_b64": base64.b64encode(body).decode()}
        record = {"received": round(msg.received, 3), "topic": msg.topic, "reason": reason,
                  "size": len(msg.payload), "truncated": len(msg.payload) > len(body), **text}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


class Inbox:
    """Messages waiting for the worker; the intake adds them a recv's worth at a time."""

    def __init__(self) -> None:
        self.items: deque[Inbound] = deque()
        self.ready = threading.Condition()

    def put_many(self, messages: list[Inbound]) -> None:
        """Queue messages and wake the worker."""
        with self.ready:
            self.items.extend(messages)
            self.ready.notify()

    def batch(self, size: int, flush_s: float) -> list[Inbound]:
        """Up to size messages: wait up to 0.5 s for one, then take more while they keep
        coming (a pause of LINGER_S ends the batch), for flush_s at the most."""
        with self.ready:
            if not self.ready.wait_for(lambda: self.items, timeout=0.5):
                return []
            flush_at = time.monotonic() + flush_s
            while len(self.items) < size:
                before, wait = len(self.items), min(LINGER_S, flush_at - time.monotonic())
                if wait <= 0 or not self.ready.wait(wait) or len(self.items) == before:
                    break
            count = min(size, len(self.items))
            return [self.items.popleft() for _ in range(count)]

    def qsize(self) -> int:
        """Messages waiting."""
        return len(self.items)


@dataclass
class Bridge:
    """Subscribe, decode, batch, write, acknowledge."""

    cfg: Config
    sink: Sink
    inbox: Inbox = field(default_factory=Inbox)
    counters: Counters = field(default_factory=Counters)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        bc = self.cfg.bridge
        self.limits = Limits(bc.max_payload_bytes, bc.max_clock_skew_s)
        self.tariff = (Tariff(self.cfg.tariff, self.cfg.site.timezone)
                       if self.cfg.tariff is not None else None)
        self.dead = DeadLetters(self.cfg.state_path(bc.dead_letter_file))
        self.intake = Subscriber(self._session(), self.inbox.put_many)

    def _session(self) -> Session:
        m, group = self.cfg.mqtt, self.cfg.bridge.shared_group
        username, password = self.cfg.mqtt_login("bridge")
        topics = subscriptions(m.topic_prefix)
        if group:
            topics = [f"$share/{group}/{t}" for t in topics]
        return Session(m.host, m.port, self.cfg.bridge.client_id, topics,
                       keepalive_s=m.keepalive_s,
                       receive_maximum=min(65535, self.cfg.bridge.batch_size * 2),
                       username=username, password=password if username else None,
                       tls=tls_context(self.cfg))

    def connect(self, timeout: float = 30.0) -> None:
        """Open the persistent session and wait for the subscription."""
        self.intake.start(timeout)

    def next_batch(self) -> list[Inbound]:
        """Up to batch_size messages: wait for one, then take what arrives within the flush."""
        return self.inbox.batch(self.cfg.bridge.batch_size, self.cfg.bridge.flush_interval_s)

    def process(self, batch: list[Inbound]) -> None:
        """Decode, set aside the bad, write the good, then acknowledge them all."""
        started = time.monotonic()
        good: list[tuple[Inbound, list[Point]]] = []
        for msg in batch:
            try:
                good.append((msg, decode(msg.topic, msg.payload, self.cfg.mqtt.topic_prefix,
                                         self.limits, tariff=self.tariff)))
            except Rejected as exc:
                self._set_aside(msg, str(exc))
        if good:
            self._write(good)
        self.intake.ack([msg for msg, _ in good])
        self._account(good, started)

    def _account(self, good: list[tuple[Inbound, list[Point]]], started: float) -> None:
        c = self.counters
        c.messages += len(good)
        c.points += sum(len(points) for _, points in good)
        c.batches += 1
        c.last_batch_ms = (time.monotonic() - started) * 1000
        now_ms = time.time() * 1000
        stamps = [p[0].ts_ms for _, p in good if p and p[0].measurement in ("rig", "pdu")]
        if stamps:
            c.last_lag_ms = now_ms - max(stamps)
            c.lags_ms.extend(now_ms - ts for ts in stamps)

    def _set_aside(self, msg: Inbound, reason: str) -> None:
        self.dead.put(msg, reason)
        self.counters.dead_letters += 1
        self.intake.ack([msg])

    def _write(self, good: list[tuple[Inbound, list[Point]]]) -> None:
        body = encode([p for _, points in good for p in points])
        try:
            self._write_retrying(body)
        except WriteRejected:
            self._write_one_by_one(good)

    def _write_one_by_one(self, good: list[tuple[Inbound, list[Point]]]) -> None:
        """Find the messages the database refuses; set them aside, keep the others."""
        for msg, points in list(good):
            try:
                self._write_retrying(encode(points))
            except WriteRejected as exc:
                good.remove((msg, points))
                self._set_aside(msg, f"database refused: {exc}")

    def _write_retrying(self, body: bytes) -> None:
        delay = 0.5
        while True:
            try:
                self.sink.write(body)
                return
            except WriteUnavailable as exc:
                self.counters.write_errors += 1
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                if self.stopping.wait(delay):
                    raise
                delay = min(delay * 2, MAX_BACKOFF_S)

    def stats_point(self) -> Point:
        """The `exporter` self-monitoring point."""
        c = self.counters
        fields: dict[str, float | int | bool | str] = {
            "messages": c.messages, "points": c.points, "dead_letters": c.dead_letters,
            "write_errors": c.write_errors, "batches": c.batches,
            "queue_depth": self.inbox.qsize(), "lag_ms": round(c.last_lag_ms, 1),
            "batch_ms": round(c.last_batch_ms, 3)}
        if c.lags_ms:
            lags = sorted(c.lags_ms)
            fields["lag_p50_ms"] = round(lags[len(lags) // 2], 1)
            fields["lag_p99_ms"] = round(lags[min(len(lags) - 1, len(lags) * 99 // 100)], 1)
            fields["lag_samples"] = len(lags)
            c.lags_ms.clear()
        tags = {"site": self.cfg.site.name, "exporter": self.cfg.bridge.client_id}
        return Point("exporter", tags, fields, int(time.time() * 1000))

    def run(self) -> None:
        """Process batches until stopped, writing self-monitoring every stats interval."""
        next_stats = time.monotonic() + self.cfg.bridge.stats_interval_s
        while not self.stopping.is_set():
            batch = self.next_batch()
            try:
                if batch:
                    self.process(batch)
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.cfg.bridge.stats_interval_s
                    self._write_retrying(encode([self.stats_point()]))
            except WriteUnavailable:
                break  # stopping while InfluxDB is down: the broker keeps the rest

    def close(self) -> None:
        """Disconnect, keeping the session (and unacked messages) at the broker."""
        self.intake.stop()
        self.sink.close()


def ledger_loop(cfg: Config, stop: threading.Event) -> None:
    """Rewrite the last closed hours of the energy ledger every rollup interval."""
    while not stop.wait(cfg.bridge.rollup_interval_s):
        end = int(time.time() // 3600 * 3600)
        try:
            rollup(cfg, end - cfg.bridge.rollup_hours * 3600, end)
        except (WriteUnavailable, WriteRejected, InfluxQLError, OSError) as exc:
            log.warning("ledger rollup failed (%s); next try in %.0f s", exc,
                        cfg.bridge.rollup_interval_s)


def run_bridge(cfg: Config, stop: threading.Event | None = None,
               ready: Callable[[], None] | None = None) -> Bridge:
    """Run the bridge until `stop` is set; `ready` is called once subscribed."""
    bridge = Bridge(cfg, make_sink(cfg))
    if stop is not None:
        bridge.stopping = stop
    bridge.connect()
    if ready is not None:
        ready()
    if cfg.bridge.rollup_interval_s > 0:
        threading.Thread(target=ledger_loop, args=(cfg, bridge.stopping), daemon=True,
                         name="ledger").start()
    log.info("bridge %s: writing to %s (%s API)", cfg.bridge.client_id,
             cfg.influxdb.url if cfg.influxdb else "?", cfg.influxdb.api if cfg.influxdb else "?")
    try:
        bridge.run()
    finally:
        bridge.close()
    return bridge
