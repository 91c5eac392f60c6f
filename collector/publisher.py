"""The collector's MQTT side: readings go to the disk spool first; a sender thread publishes
them in order at QoS 1, and a reading leaves the spool only when a bridge says it is stored.

End-to-end delivery (README "Reliability"): every message carries the spool's `epoch` and
its sequence number `seq`. A bridge, after InfluxDB accepted a batch, publishes on
`<prefix>/v1/<site>/collector/<id>/stored` the exact seqs it stored (as ranges), per spool
epoch; the collector deletes exactly those. A PUBACK only moves a reading from "in flight"
to "waiting for its receipt". Readings are sent again, from the oldest unstored one, after
every reconnect (a broker that crashed lost what it had not written to disk) and when
readings sent `resend_after_s` later than one have been stored but it has not (the broker
dropped it, e.g. it had no subscriber then). Writes are idempotent (same series and
timestamp overwrite), so a reading sent twice is stored once.

The collector never waits for the broker: it polls and spools from the first second.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import paho.mqtt.client as mqtt

from collector.spool import Spool, Spooled
from hashwatt.config import Config
from hashwatt.contract import (
    SCHEMA_VERSION,
    CycleDoc,
    CycleStatsDoc,
    PduDoc,
    RigDoc,
    SpoolStatsDoc,
    StatusDoc,
    cycle_topic,
    pdu_topic,
    rig_topic,
    status_topic,
    stored_topic,
)
from hashwatt.mqtt import make_client

log = logging.getLogger(__name__)
WINDOW = 500  # unacknowledged messages in flight at most
# readings sent but not yet stored at most: bounds the broker's queue and our bookkeeping
# while InfluxDB is down (the rest waits in the spool)
MAX_UNSTORED = 50_000
# readings trickle in as rigs answer: a short wait lets one wake-up send a whole burst
# (per-reading hand-offs between three threads cost ~300 us of CPU per reading)
LINGER_S = 0.02


class Publisher:
    """Spooled QoS 1 publishing, trimmed by stored receipts; retained status, `offline` will."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        prefix, site, ident = cfg.mqtt.topic_prefix, cfg.site.name, cfg.collector.id
        self.status = status_topic(prefix, site, ident)
        self.stored_topic = stored_topic(prefix, site, ident)
        self.cycle_topic = cycle_topic(prefix, site, ident)
        self.client = make_client(cfg, f"hashwatt-collector-{site}-{ident}")
        self.client.will_set(self.status, self._status("offline"), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        path = cfg.collector.spool_path
        self.spool = Spool(cfg.state_path(path), cfg.collector.spool_max_messages,
                           memory_max=cfg.collector.spool_memory_max_messages,
                           audit=cfg.collector.spool_audit)
        self.resend_after_s = cfg.collector.resend_after_s
        self.lock = threading.Lock()
        self.inflight: dict[int, tuple[int, float]] = {}  # paho mid -> (spool id, sent at)
        # PUBACKs that beat the bookkeeping of their publish (paho may call back first)
        self.early: dict[int, bool] = {}
        self.waiting: dict[int, float] = {}  # spool id -> sent at: acked, not yet stored
        self.refused_ids: list[int] = []  # refused by the broker: removed by the sender
        self.receipts: list[tuple[int, int]] = []  # stored ranges, applied by the sender
        self.resend: list[int] = []
        self.progress_at = 0.0  # when the newest reading known stored was sent
        self.last_sent = 0
        self.generation = 0  # bumped at every disconnect: older sends no longer count
        self.renumbered = self.spool.renumbered
        self.refused = self.resent = 0
        self.connected = False
        self.was_connected = threading.Event()
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.sender = threading.Thread(target=self._send_loop, daemon=True, name="spool-sender")
        self.last_stats: CycleStatsDoc | None = None
        self.broker_lost = False  # logged once when lost, once when regained
        self.refusal = ""  # the broker's last CONNACK refusal, logged once

    def _status(self, state: Literal["online", "offline"],
                stats: CycleStatsDoc | None = None) -> str:
        doc: StatusDoc = {"schema": SCHEMA_VERSION, "kind": "collector",
                          "site": self.cfg.site.name, "collector": self.cfg.collector.id,
                          "state": state}
        if state == "online":
            doc["ts_ms"] = int(time.time() * 1000)
        if stats is not None:
            doc["stats"] = stats
        return json.dumps(doc)

    # -- paho callbacks (paho's network thread) -------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: mqtt.ReasonCode, properties: Any) -> None:
        broker = f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"
        if reason_code.is_failure:
            if str(reason_code) != self.refusal:  # said once; paho keeps retrying
                log.warning("broker %s refused the connection: %s; readings stay in the "
                            "spool", broker, reason_code)
            self.refusal = str(reason_code)
            self.broker_lost = True  # (so the disconnect that follows says nothing more)
            return
        self.refusal = ""
        self.connected = True
        self.was_connected.set()
        if self.broker_lost:
            self.broker_lost = False
            log.info("broker %s regained: spooled readings go out now", broker)
        else:
            log.info("connected to broker %s", broker)
        client.subscribe(self.stored_topic, qos=1)
        # the retained status says online; its stats are for people, not a new cycle
        client.publish(self.status, self._status("online", self.last_stats), qos=1,
                       retain=True)
        self.wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if not self.broker_lost:  # said once; paho keeps retrying
            self.broker_lost = True
            log.warning("broker %s:%d unreachable: polling goes on, readings wait in the spool",
                        self.cfg.mqtt.host, self.cfg.mqtt.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: mqtt.ReasonCode, properties: Any) -> None:
        if not self.broker_lost and not self.stopping.is_set():
            self.broker_lost = True
            log.warning("lost the broker %s:%d (%s): readings wait in the spool until it is back",
                        self.cfg.mqtt.host, self.cfg.mqtt.port, reason_code)
        self.connected = False
        with self.lock:  # resend everything unstored, in order, once reconnected
            self.inflight.clear()
            self.early.clear()
            self.waiting.clear()
            self.resend.clear()
            self.last_sent = 0
            self.generation += 1

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    reason_code: mqtt.ReasonCode, properties: Any) -> None:
        with self.lock:
            sent = self.inflight.pop(mid, None)
            if sent is None:
                self.early[mid] = reason_code.is_failure
                return
        self._acknowledged(sent, reason_code.is_failure)

    def _acknowledged(self, sent: tuple[int, float], refused: bool) -> None:
        spool_id, at = sent
        with self.lock:
            if refused:  # refused by the broker (ACL): retrying cannot help
                self.refused += 1
                self.refused_ids.append(spool_id)
            else:
                self.waiting[spool_id] = at
            window_full = len(self.inflight) >= WINDOW - 1
        if refused:
            log.error("broker refused a reading: dropped, counted in spool_refused")
        if window_full:
            self.wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ranges = parse_receipt(bytes(msg.payload), self.spool.epoch)
        if ranges:
            with self.lock:
                self.receipts.extend(ranges)
            self.wake.set()

    # -- the sender thread -----------------------------------------------------------------
    def start(self, timeout: float = 0.0) -> bool:
        """Connect in the background (retrying) and start sending. The service never waits
        for the broker (readings are spooled from the first second); a caller may wait up to
        `timeout` for the first connection: True once connected."""
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port,
                                  keepalive=self.cfg.mqtt.keepalive_s)
        self.client.loop_start()
        self.sender.start()
        return self.was_connected.wait(timeout) if timeout > 0 else self.connected

    def _send_loop(self) -> None:
        next_check = 0.0
        while not self.stopping.is_set():
            self._settle()
            if time.monotonic() >= next_check:
                self._find_lost()
                next_check = time.monotonic() + 1.0
            if not self.client.is_connected() or not self._send_some():
                if self.wake.wait(0.2):
                    self.stopping.wait(LINGER_S)
                self.wake.clear()
        self._settle()

    def _settle(self) -> None:
        """Apply stored receipts and broker refusals to the spool."""
        with self.lock:
            receipts, self.receipts = self.receipts, []
            refused, self.refused_ids = self.refused_ids, []
            if self.spool.renumbered != self.renumbered:  # ids changed: start over
                self.renumbered = self.spool.renumbered
                self.waiting.clear()
                self.inflight.clear()
                self.last_sent = 0
                self.generation += 1
            for first, last in receipts:
                if last - first < 4 * len(self.waiting):
                    found = [self.waiting.pop(i) for i in range(first, last + 1)
                             if i in self.waiting]
                else:
                    found = [self.waiting.pop(i) for i in list(self.waiting)
                             if first <= i <= last]
                if found:
                    self.progress_at = max(self.progress_at, *found)
        self.spool.remove_ranges(receipts)
        self.spool.remove(refused)

    def _find_lost(self) -> None:
        """Readings sent well before others that are stored, and not stored themselves, were
        lost on the way (the broker dropped them): send them again."""
        with self.lock:
            limit = self.progress_at - self.resend_after_s
            lost = []
            for spool_id, at in self.waiting.items():
                if at >= limit:
                    break  # waiting is in send order
                lost.append(spool_id)
            for spool_id in lost:
                del self.waiting[spool_id]
        if not lost:
            return
        # a receipt may have beaten its PUBACK: those left the spool already
        present = [m.id for m in self.spool.get(lost)]
        if present:
            with self.lock:
                self.resend.extend(present)
            self.resent += len(present)
            log.warning("%d readings sent %.0f s before stored ones have no stored receipt: "
                        "sending them again", len(present), self.resend_after_s)

    def _send_some(self) -> bool:
        with self.lock:
            room = min(WINDOW - len(self.inflight),
                       MAX_UNSTORED - len(self.inflight) - len(self.waiting))
            after, generation = self.last_sent, self.generation
            resend, self.resend = self.resend[:max(room, 0)], self.resend[max(room, 0):]
        if room <= 0:
            return False
        batch = self.spool.get(resend) if resend else self.spool.after(after, room)
        for message in batch:
            # never under self.lock: paho holds its own lock while calling _on_publish
            info = self.client.publish(message.topic, self._payload(message), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False  # disconnected meanwhile: the reconnect resends from the spool
            sent = (message.id, time.monotonic())
            with self.lock:
                if generation != self.generation:
                    return False  # a disconnect came between: resend from the oldest
                if not resend:
                    self.last_sent = message.id
                early = self.early.pop(info.mid, None)
                if early is None:
                    self.inflight[info.mid] = sent
            if early is not None:
                self._acknowledged(sent, early)
        return bool(batch)

    def _payload(self, message: Spooled) -> bytes:
        """The spooled JSON object with the receipt's key in front: epoch and seq."""
        return b'{"spool":"%s","seq":%d,%s' % (self.spool.epoch.encode(), message.id,
                                               message.payload[1:])

    # -- what the service calls --------------------------------------------------------------
    def publish_readings(self, readings: Sequence[RigDoc | PduDoc]) -> None:
        """Spool rig and PDU readings (one transaction) for the sender to publish."""
        prefix, site = self.cfg.mqtt.topic_prefix, self.cfg.site.name
        messages = [((rig_topic(prefix, site, r["rig"]) if r["kind"] == "rig"
                      else pdu_topic(prefix, site, r["pdu"])),
                     json.dumps(r, separators=(",", ":")).encode()) for r in readings]
        self.spool.append(messages)
        self.wake.set()

    def publish_reading(self, reading: RigDoc | PduDoc) -> None:
        """Spool one reading."""
        self.publish_readings([reading])

    def spool_stats(self) -> SpoolStatsDoc:
        """Spool depth, readings dropped at a bound or refused, delivery state."""
        with self.lock:
            unstored = len(self.waiting) + len(self.inflight)
        return {"spool_depth": self.spool.depth(), "spool_dropped": self.spool.dropped(),
                "spool_refused": self.refused, "spool_memory": self.spool.in_memory(),
                "spool_disk_errors": self.spool.disk_errors, "unstored": unstored,
                "resent": self.resent, "broker_connected": self.client.is_connected()}

    def publish_stats(self, stats: CycleStatsDoc) -> None:
        """Spool the cycle's statistics like a reading (stamped with the cycle's end, so a
        resend is the same point) and update the retained status for people."""
        self.last_stats = stats
        doc: CycleDoc = {"schema": SCHEMA_VERSION, "kind": "cycle", "site": self.cfg.site.name,
                         "collector": self.cfg.collector.id, "ts_ms": int(time.time() * 1000),
                         "stats": stats}
        self.spool.append([(self.cycle_topic, json.dumps(doc, separators=(",", ":")).encode())])
        self.wake.set()
        if self.client.is_connected():
            self.client.publish(self.status, self._status("online", stats), qos=1, retain=True)

    def drain(self, timeout: float) -> bool:
        """Wait until every spooled reading is published and acknowledged by the broker (or
        the timeout passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = bool(self.inflight or self.resend)
            if not busy and not self.spool.after(self.last_sent, 1):
                return True
            time.sleep(0.05)
        return False

    def settle(self, timeout: float) -> bool:
        """Wait until the spool is empty (everything stored), the timeout passes or the
        broker is known to be away (unreachable, refusing, lost)."""
        deadline = time.monotonic() + timeout
        while self.spool.depth() and time.monotonic() < deadline and not self.broker_lost:
            time.sleep(0.05)
        return self.spool.depth() == 0

    def stop(self, timeout: float = 10.0) -> None:
        """Wait (up to timeout) for the bridge to store what is spooled, say offline,
        disconnect. What is still spooled stays on disk and goes out after the next start
        (without a broker there is nothing to wait for: Ctrl-C then stops at once)."""
        self.settle(timeout)
        left = self.spool.depth()
        if left:
            log.info("stopping: %d readings stay in the spool and go out after the next start",
                     left)
        self.stopping.set()
        self.wake.set()
        self.sender.join(timeout=5)
        if self.client.is_connected():
            info = self.client.publish(self.status, self._status("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()


def parse_receipt(payload: bytes, epoch: str) -> list[tuple[int, int]]:
    """The stored ranges of a receipt for this spool epoch ([] for another epoch or junk)."""
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict) or doc.get("spool") != epoch:
            return []
        ranges = [(int(a), int(b)) for a, b in doc["seqs"]]
    except (ValueError, TypeError, KeyError):
        log.warning("a stored receipt that is not JSON of the contract: ignored")
        return []
    return [(a, b) for a, b in ranges if 0 < a <= b]
