"""The exporter bridge: MQTT (persistent session, QoS 1) → InfluxDB, ack only after the write.

paho's network thread only queues messages; one worker thread decodes, batches, writes and
then acknowledges. A malformed message is set aside (dead-letter file + counter) and acked,
so it never blocks the ones behind it. While InfluxDB is down the worker backs off and the
unacknowledged messages stay with the broker.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from exporters.decode import Limits, Rejected, decode
from exporters.ledger import rollup
from exporters.lineproto import Point, encode
from exporters.sinks import Sink, WriteRejected, WriteUnavailable, make_sink
from hashwatt.config import Config
from hashwatt.contract import subscriptions
from hashwatt.influxql import InfluxQLError
from hashwatt.mqtt import ConnectionWaiter, make_client
from hashwatt.tariff import Tariff

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400
LINGER_S = 0.02
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Inbound:
    """One received MQTT message."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float


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


@dataclass
class Bridge:
    """Subscribe, decode, batch, write, acknowledge."""

    cfg: Config
    sink: Sink
    inbox: queue.Queue[Inbound] = field(default_factory=queue.Queue)
    counters: Counters = field(default_factory=Counters)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        bc = self.cfg.bridge
        self.limits = Limits(bc.max_payload_bytes, bc.max_clock_skew_s)
        self.tariff = (Tariff(self.cfg.tariff, self.cfg.site.timezone)
                       if self.cfg.tariff is not None else None)
        self.dead = DeadLetters(bc.dead_letter_file if bc.dead_letter_file.is_absolute()
                                else self.cfg.source.parent / bc.dead_letter_file)
        self.client = make_client(self.cfg, bc.client_id)
        self.client.manual_ack_set(True)
        self.waiter = ConnectionWaiter()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: mqtt.ReasonCode, properties: Any) -> None:
        self.waiter.on_connect(reason_code)
        if not reason_code.is_failure:
            topics = subscriptions(self.cfg.mqtt.topic_prefix)
            group = self.cfg.bridge.shared_group
            if group:
                topics = [f"$share/{group}/{t}" for t in topics]
            client.subscribe([(t, 1) for t in topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[mqtt.ReasonCode], properties: Any) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker refused the subscription: %s", ", ".join(failed))
        else:
            self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Inbound(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time()))

    def connect(self, timeout: float = 30.0) -> None:
        """Open the persistent session and wait for the broker."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = min(65535, self.cfg.bridge.batch_size * 2)
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port,
                                  keepalive=self.cfg.mqtt.keepalive_s, clean_start=False,
                                  properties=props)
        self.client.loop_start()
        self.waiter.wait(timeout, "bridge")
        if not self.subscribed.wait(timeout):
            raise ConnectionError("bridge: the broker did not confirm the subscription")

    def next_batch(self) -> list[Inbound]:
        """Up to batch_size messages: wait for one, then take what arrives soon after."""
        try:
            first = self.inbox.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        flush_at = time.monotonic() + self.cfg.bridge.flush_interval_s
        while len(batch) < self.cfg.bridge.batch_size and time.monotonic() < flush_at:
            try:
                batch.append(self.inbox.get(timeout=LINGER_S))
            except queue.Empty:
                break
        return batch

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
        for msg, _ in good:
            self._ack(msg)
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
        self._ack(msg)

    def _ack(self, msg: Inbound) -> None:
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)

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
        self.client.disconnect()
        self.client.loop_stop()
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
