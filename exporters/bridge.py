"""The exporter bridge: MQTT (persistent session, QoS 1) → InfluxDB, ack only after the write.

The intake thread (exporters/intake.py) only queues messages; one worker thread decodes,
batches, writes and then acknowledges. After InfluxDB accepted a batch the bridge tells each
collector which of its spooled readings are stored (exact seqs as ranges, per spool epoch, on
`.../collector/<id>/stored`): only then do they leave the collector's spool. The sink encodes
each message on its own (`Sink.encode`) and the batch goes in one write (`Sink.send`), so a
message that cannot be decoded or encoded is set aside (bounded dead-letter files + counter),
counted as settled in the receipt and acked, and never blocks the ones behind it; nothing a
message holds stops the bridge. While InfluxDB is down the worker backs off and the
unacknowledged messages stay with the broker (and, unstored, in the collectors' spools).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from exporters.customers.fanout import follow_customers, make_fanout
from exporters.decode import Limits, Receipt, Rejected, decode_message, receipt_of
from exporters.finance.ledger import follow
from exporters.intake import Inbound, Session, Subscriber
from exporters.lineproto import DROPPED, Point
from exporters.roster import roster_loop
from exporters.sinks import Sink, WriteRejected, WriteUnavailable, make_sink
from hashwatt.config import Config
from hashwatt.contract import stored_topic, subscriptions
from hashwatt.influxql import InfluxQLError
from hashwatt.mqtt import tls_context
from hashwatt.names import Field as F
from hashwatt.names import Measurement, Tag
from hashwatt.tariff import Tariff

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
LINGER_S = 0.02
# InfluxDB 1.x, tsdb/shard.go (ErrFieldTypeConflict), as the /write answer carries it
FIELD_CONFLICT = re.compile(r'field type conflict: input field \\?"(?P<field>[^"\\]+)\\?" '
                            r'on measurement \\?"(?P<measurement>[^"\\]+)\\?"')


@dataclass
class Counters:
    """The exporter's self-monitoring figures since start."""

    messages: int = 0
    points: int = 0
    dead_letters: int = 0
    dead_letter_errors: int = 0  # set-aside messages the dead-letter file did not take
    qos0_dropped: int = 0
    receipts: int = 0
    write_errors: int = 0
    batches: int = 0
    last_lag_ms: float = 0.0
    last_batch_ms: float = 0.0
    # poll-to-stored latency of every reading since the last stats point
    lags_ms: list[float] = field(default_factory=list)


class DeadLetters:
    """Appends set-aside messages, with their reason, to a JSON-lines file, rotated at
    max_bytes (keeping `keep` old files). A file that cannot be written is logged and
    counted, never fatal: the message is still set aside."""

    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, keep: int = 3) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self.errors = 0
        self.failing = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._failed(exc)

    def put(self, msg: Inbound, reason: str) -> bool:
        """Record one set-aside message; False when the file refused it."""
        body = msg.payload[:4096]
        try:
            text: dict[str, Any] = {"payload": body.decode("utf-8")}
        except UnicodeDecodeError:
            text = {"payload_b64": base64.b64encode(body).decode()}
        record = {"received": round(msg.received, 3), "topic": msg.topic, "reason": reason,
                  "size": len(msg.payload), "truncated": len(msg.payload) > len(body), **text}
        line = (json.dumps(record) + "\n").encode()
        try:
            self._rotate(len(line))
            with self.path.open("ab") as fh:
                fh.write(line)
        except OSError as exc:
            self._failed(exc)
            return False
        if self.failing:
            self.failing = False
            log.warning("dead letters %s: writable again", self.path)
        return True

    def _rotate(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_bytes:
            return
        if self.keep == 0:
            self.path.unlink()
            return
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def _failed(self, exc: OSError) -> None:
        self.errors += 1
        if not self.failing:  # once per outage, not once per message
            log.error("dead letters %s: cannot write (%s); set-aside messages are counted "
                      "(dead_letter_errors) but not kept", self.path, exc)
        self.failing = True


class Inbox:
    """Messages waiting for the worker; the intake adds them a recv's worth at a time.

    QoS 1 messages are bounded by the receive maximum the bridge asks the broker for; QoS 0
    ones (outside the contract) have no flow control, so past max_qos0 they are dropped and
    counted instead of growing the inbox while InfluxDB hangs."""

    def __init__(self, max_qos0: int = 10_000) -> None:
        self.items: deque[Inbound] = deque()
        self.ready = threading.Condition()
        self.max_qos0 = max_qos0
        self.qos0 = 0
        self.qos0_dropped = 0

    def put_many(self, messages: list[Inbound]) -> None:
        """Queue messages and wake the worker."""
        with self.ready:
            for msg in messages:
                if msg.qos == 0:
                    if self.qos0 >= self.max_qos0:
                        self.qos0_dropped += 1
                        continue
                    self.qos0 += 1
                self.items.append(msg)
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
            out = [self.items.popleft() for _ in range(count)]
            self.qos0 -= sum(1 for m in out if m.qos == 0)
            return out

    def qsize(self) -> int:
        """Messages waiting."""
        return len(self.items)


class Good(NamedTuple):
    """A message that decoded and encoded: its points, the sink's form of them
    (Sink.encode), its receipt."""

    msg: Inbound
    points: list[Point]
    encoded: Any
    receipt: Receipt | None


def without(points: list[Point], fields: set[str]) -> tuple[list[Point], list[str]]:
    """The points without these "measurement.field"s (a point left with no field goes), and
    which of them were there."""
    out, left_out = [], []
    for p in points:
        drop = [k for k in p.fields if f"{p.measurement}.{k}" in fields]
        if drop:
            left_out += [f"{p.measurement}.{k}" for k in drop]
            p = p._replace(fields={k: v for k, v in p.fields.items() if k not in drop})
        if p.fields:
            out.append(p)
    return out, sorted(set(left_out))


def _it(fields: list[str]) -> str:
    return "it" if len(fields) == 1 else "them"


def seq_ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted, merged inclusive ranges: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


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
        self.limits = Limits(max_payload_bytes=bc.max_payload_bytes,
                             max_clock_skew_s=bc.max_clock_skew_s)
        self.tariff = (Tariff(self.cfg.tariff, self.cfg.site.timezone)
                       if self.cfg.tariff is not None else None)
        self.dead = DeadLetters(self.cfg.state_path(bc.dead_letter_file),
                                bc.dead_letter_max_bytes, bc.dead_letter_keep)
        self.inbox.max_qos0 = bc.max_qos0_queued
        self.intake = Subscriber(self._session(), self.inbox.put_many)
        # customers' own databases get a copy of their points (exporters/customers/)
        self.fanout = make_fanout(self.cfg)
        self.conflicts: set[str] = set()  # fields whose type the database refuses (logged)
        self.disk_full_said = False

    def _session(self) -> Session:
        m, group = self.cfg.mqtt, self.cfg.bridge.shared_group
        username, password = self.cfg.mqtt_login("bridge")
        topics = subscriptions(m.topic_prefix)
        if group:
            topics = [f"$share/{group}/{t}" for t in topics]
        return Session(host=m.host, port=m.port, client_id=self.cfg.bridge.client_id,
                       topics=topics, keepalive_s=m.keepalive_s,
                       receive_maximum=min(65535, self.cfg.bridge.batch_size * 2),
                       username=username, password=password if username else None,
                       tls=tls_context(self.cfg))

    def connect(self, timeout: float = 30.0) -> None:
        """Open the persistent session and wait for the subscription."""
        self.intake.start(timeout, cancel=self.stopping)

    def next_batch(self) -> list[Inbound]:
        """Up to batch_size messages: wait for one, then take what arrives within the flush."""
        return self.inbox.batch(self.cfg.bridge.batch_size, self.cfg.bridge.flush_interval_s)

    def process(self, batch: list[Inbound]) -> None:
        """Decode and encode (setting aside the bad), write the good, tell the collectors
        what is stored, then acknowledge them all."""
        started = time.monotonic()
        good: list[Good] = []
        settled: list[Receipt] = []
        prefix, encode = self.cfg.mqtt.topic_prefix, self.sink.encode
        for msg in batch:
            try:
                points, receipt = decode_message(msg.topic, msg.payload, prefix=prefix,
                                                 limits=self.limits, tariff=self.tariff)
                if self.conflicts:  # fields the database refuses: left out before the write
                    points, left_out = without(points, self.conflicts)
                    if left_out:
                        if not points:
                            raise Rejected(f"database refuses {', '.join(left_out)} "
                                           f"(field type conflict) and nothing else is left")
                        DROPPED.count += len(left_out)
                        self._dead_letter(msg, f"database refuses {', '.join(left_out)} "
                                               f"(field type conflict, seen before); stored "
                                               f"without {_it(left_out)}")
                good.append(Good(msg, points, encode(points), receipt))
            except Rejected as exc:
                self._set_aside(msg, str(exc), settled)
            except Exception as exc:  # nothing in a message may stop the bridge
                self._set_aside(msg, f"cannot encode: {type(exc).__name__}: {exc}"[:300],
                                settled)
        if good:
            self._write(good, settled)
        settled += [g.receipt for g in good if g.receipt is not None]
        self._receipts(settled)
        self.intake.ack([g.msg for g in good])
        self._account(good, started)

    def _receipts(self, settled: list[Receipt]) -> None:
        """Publish, per collector and spool epoch, the exact seqs now stored (as ranges)."""
        by_spool: dict[tuple[str, str, str], list[int]] = {}
        for r in settled:
            by_spool.setdefault((r.site, r.collector, r.spool), []).append(r.seq)
        out = []
        for (site, collector, spool), seqs in by_spool.items():
            doc = {"spool": spool, "seqs": seq_ranges(seqs), "bridge": self.cfg.bridge.client_id}
            out.append((stored_topic(self.cfg.mqtt.topic_prefix, site, collector),
                        json.dumps(doc, separators=(",", ":")).encode()))
        if out:
            self.counters.receipts += len(out)
            self.intake.publish(out)

    def _account(self, good: list[Good], started: float) -> None:
        c = self.counters
        c.messages += len(good)
        c.points += sum(len(g.points) for g in good)
        c.batches += 1
        c.last_batch_ms = (time.monotonic() - started) * 1000
        now_ms = time.time() * 1000
        stamps = [g.points[0].ts_ms for g in good
                  if g.points and g.points[0].measurement in ("rig", "pdu")]
        if stamps:
            c.last_lag_ms = now_ms - max(stamps)
            c.lags_ms.extend(now_ms - ts for ts in stamps)

    def _dead_letter(self, msg: Inbound, reason: str) -> None:
        if not self.dead.put(msg, reason):
            self.counters.dead_letter_errors += 1
        self.counters.dead_letters += 1

    def _set_aside(self, msg: Inbound, reason: str, settled: list[Receipt]) -> None:
        self._dead_letter(msg, reason)
        receipt = receipt_of(msg.topic, msg.payload, self.cfg.mqtt.topic_prefix)
        if receipt is not None:  # sending it again cannot help: the collector may forget it
            settled.append(receipt)
        self.intake.ack([msg])

    def _write(self, good: list[Good], settled: list[Receipt]) -> None:
        try:
            self._write_retrying([g.encoded for g in good])
        except WriteRejected as exc:
            log.warning("InfluxDB refused a batch of %d messages (%s): writing it in halves to "
                        "find the refused ones", len(good), exc)
            good[:] = self._write_parts(good, settled, exc)
        if self.fanout is not None:  # after the site's write: a copy never holds up the ack
            self.fanout.write([(g.points, g.encoded) for g in good])

    def _write_parts(self, part: list[Good], settled: list[Receipt],
                     refusal: WriteRejected) -> list[Good]:
        """The database refused some of these (InfluxDB 1.x stores the rest of a batch and
        answers 400 "partial write"; 413 refuses it all): halve until each refused message
        is alone, so a batch of n with one bad message costs about 2·log2(n) writes, not n.
        Writing the others again is harmless (same series and timestamp overwrite).
        Returns the messages now stored."""
        if len(part) == 1:
            return self._refused(part[0], settled, str(refusal))
        half = len(part) // 2
        stored = []
        for piece in (part[:half], part[half:]):
            try:
                self._write_retrying([g.encoded for g in piece])
                stored += piece
            except WriteRejected as exc:
                stored += self._write_parts(piece, settled, exc)
        return stored

    def _refused(self, g: Good, settled: list[Receipt], first: str) -> list[Good]:
        """One message the database refuses. A field type conflict (InfluxDB keeps one type
        per field and shard: "input field "x" on measurement "rig" is type integer, already
        exists as type float") refuses the whole point, so the point is written again
        without that field; the message goes to the dead letters with the reason either
        way. Anything else: the message is set aside."""
        points, left_out, reason = g.points, list[str](), first
        while (conflict := FIELD_CONFLICT.search(reason)) and len(left_out) < 16:
            name = f"{conflict['measurement']}.{conflict['field']}"
            points = without(points, {name})[0]
            left_out.append(name)
            if not points:
                break
            encoded = self.sink.encode(points)
            try:
                self._write_retrying([encoded])
            except WriteRejected as exc:
                reason = str(exc)
                continue
            DROPPED.count += len(left_out)
            self._conflict_logged(left_out, first)
            self._dead_letter(g.msg, f"database refused {', '.join(left_out)}: {first}; "
                                     f"stored without {_it(left_out)}")
            return [Good(g.msg, points, encoded, g.receipt)]
        self._set_aside(g.msg, f"database refused: {first}", settled)
        return []

    def _conflict_logged(self, fields: list[str], reason: str) -> None:
        """Say once per field that the database refuses its type; from then on the field is
        left out before the write (a batch is not refused and halved again for it)."""
        new = [f for f in fields if f not in self.conflicts]
        if new and len(self.conflicts) < 1000:
            self.conflicts.update(new)
            log.error("InfluxDB refuses %s (%s): such points are stored without it from now "
                      "on and their messages kept in the dead letters; this field's type in "
                      "the database differs from the contract's (until restarted)",
                      ", ".join(new), reason)

    def _write_stats(self) -> None:
        """The `exporter` point. Self-monitoring never stops the bridge: a field whose type
        the database refuses is left out from then on, any other refusal costs this point."""
        point = self.stats_point()
        for _ in range(16):
            kept = without([point], self.conflicts)[0]
            if not kept:
                return
            try:
                self._write_retrying([self.sink.encode(kept)])
                return
            except WriteRejected as exc:
                conflict = FIELD_CONFLICT.search(str(exc))
                if conflict is None:
                    log.warning("InfluxDB refused the bridge's own statistics (%s): skipped",
                                exc)
                    return
                self._conflict_logged([f"{conflict['measurement']}.{conflict['field']}"],
                                      str(exc))

    def _write_retrying(self, encoded: list[Any]) -> None:
        delay = 0.5
        while True:
            try:
                self.sink.send(encoded)
                return
            except WriteUnavailable as exc:
                self.counters.write_errors += 1
                if "no space left on device" in str(exc) and not self.disk_full_said:
                    self.disk_full_said = True  # once per bridge: the warnings below repeat
                    log.error("InfluxDB's own disk is full. influxd 1.x keeps refusing writes "
                              "even after space is freed, until it is restarted "
                              "(influxdata/influxdb#9923); the readings wait in the broker "
                              "and in the collectors' spools meanwhile")
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                if self.stopping.wait(delay):
                    raise
                delay = min(delay * 2, MAX_BACKOFF_S)

    def stats_point(self) -> Point:
        """The `exporter` self-monitoring point."""
        c = self.counters
        fields: dict[str, float | int | bool | str] = {
            F.MESSAGES: c.messages, F.POINTS: c.points, F.DEAD_LETTERS: c.dead_letters,
            F.DEAD_LETTER_ERRORS: c.dead_letter_errors, F.QOS0_DROPPED: self.inbox.qos0_dropped,
            F.FIELDS_DROPPED: DROPPED.count, F.RECEIPTS: c.receipts,
            F.WRITE_ERRORS: c.write_errors, F.BATCHES: c.batches,
            F.QUEUE_DEPTH: self.inbox.qsize(), F.LAG_MS: round(c.last_lag_ms, 1),
            F.BATCH_MS: round(c.last_batch_ms, 3)}
        if c.lags_ms:
            lags = sorted(c.lags_ms)
            fields[F.LAG_P50_MS] = round(lags[len(lags) // 2], 1)
            fields[F.LAG_P99_MS] = round(lags[min(len(lags) - 1, len(lags) * 99 // 100)], 1)
            fields[F.LAG_SAMPLES] = len(lags)
            c.lags_ms.clear()
        if self.fanout is not None:
            fields[F.CUSTOMER_WRITE_ERRORS] = self.fanout.errors
        tags = {Tag.SITE: self.cfg.site.name, Tag.EXPORTER: self.cfg.bridge.client_id}
        return Point(Measurement.EXPORTER, tags, fields, int(time.time() * 1000))

    def run(self) -> None:
        """Process batches until stopped, writing self-monitoring every stats interval."""
        next_stats = time.monotonic() + self.cfg.bridge.stats_interval_s
        while not self.stopping.is_set():
            batch = self.next_batch()
            try:
                if batch:
                    self.process(batch)
                elif self.fanout is not None:  # quiet: the customers' copies still go out
                    self.fanout.flush()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.cfg.bridge.stats_interval_s
                    self._write_stats()
            except WriteUnavailable:
                break  # stopping while InfluxDB is down: the broker keeps the rest

    def close(self) -> None:
        """Disconnect, keeping the session (and unacked messages) at the broker."""
        self.intake.stop()
        self.sink.close()
        if self.fanout is not None:
            self.fanout.close()


def ledger_loop(cfg: Config, stop: threading.Event) -> None:
    """Rewrite the last closed hours of the energy ledger every rollup interval."""
    follow(cfg, stop, interval_s=cfg.bridge.rollup_interval_s, hours=cfg.bridge.rollup_hours,
           errors=(WriteUnavailable, WriteRejected, InfluxQLError, OSError))


def run_bridge(cfg: Config, stop: threading.Event | None = None,
               ready: Callable[[], None] | None = None) -> Bridge:
    """Run the bridge until `stop` is set; `ready` is called once subscribed."""
    bridge = Bridge(cfg, make_sink(cfg))
    if stop is not None:
        bridge.stopping = stop
    log.info("bridge %s: subscribing at the broker %s:%d", cfg.bridge.client_id,
             cfg.mqtt.host, cfg.mqtt.port)
    bridge.connect()
    if bridge.stopping.is_set():  # Ctrl-C or SIGTERM before the broker answered
        log.info("bridge %s: stopped before the subscription", cfg.bridge.client_id)
        return bridge
    if ready is not None:
        ready()
    # every rig and collector seen stays known to the alert rules until forgotten
    threading.Thread(target=roster_loop, args=(cfg, bridge.stopping), daemon=True,
                     name="roster").start()
    if cfg.bridge.rollup_interval_s > 0:
        threading.Thread(target=ledger_loop, args=(cfg, bridge.stopping), daemon=True,
                         name="ledger").start()
        if any(c.has_view for c in cfg.customers):  # their ledger rows into their databases
            threading.Thread(target=follow_customers, args=(cfg, bridge.stopping),
                             daemon=True, name="customer-ledgers").start()
    log.info("bridge %s: writing to %s (%s API)", cfg.bridge.client_id,
             cfg.influxdb.url if cfg.influxdb else "?", cfg.influxdb.api if cfg.influxdb else "?")
    try:
        bridge.run()
    finally:
        bridge.close()
    return bridge
