"""The collector's MQTT side: readings go to the disk spool first; a sender thread publishes
them in order at QoS 1 and deletes each one when the broker acknowledges it.

While the broker is away the spool grows (bounded); after a reconnect, or a restart of the
collector, everything still spooled is published again from the oldest. A reading may thus
reach the broker twice, never zero times: the exporter writes the same point for it again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from collector.spool import Spool
from hashwatt.config import Config
from hashwatt.contract import SCHEMA_VERSION, pdu_topic, rig_topic, status_topic
from hashwatt.mqtt import ConnectionWaiter, make_client

log = logging.getLogger(__name__)
WINDOW = 500  # unacknowledged messages in flight at most
# readings trickle in as rigs answer: a short wait lets one wake-up send a whole burst
# (per-reading hand-offs between three threads cost ~300 us of CPU per reading)
LINGER_S = 0.02


class Publisher:
    """Spooled QoS 1 publishing with a retained status topic and an `offline` last will."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.status = status_topic(cfg.mqtt.topic_prefix, cfg.site.name, cfg.collector.id)
        self.client = make_client(cfg, f"hashwatt-collector-{cfg.site.name}-{cfg.collector.id}")
        self.client.will_set(self.status, self._status("offline"), qos=1, retain=True)
        self.waiter = ConnectionWaiter()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        path = cfg.collector.spool_path
        self.spool = Spool(cfg.state_path(path), cfg.collector.spool_max_messages)
        self.lock = threading.Lock()
        self.inflight: dict[int, int] = {}  # paho mid -> spool id
        # PUBACKs that beat the bookkeeping of their publish (paho may call back first)
        self.early: dict[int, bool] = {}
        self.acked: list[int] = []  # spool ids the broker acknowledged, removed in batches
        self.last_sent = 0
        self.generation = 0  # bumped at every disconnect: older sends no longer count
        self.refused = 0
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.sender = threading.Thread(target=self._send_loop, daemon=True, name="spool-sender")
        self.last_stats: dict[str, Any] | None = None
        self.broker_lost = False  # logged once when lost, once when regained

    def _status(self, state: str, stats: dict[str, Any] | None = None) -> str:
        doc: dict[str, Any] = {"schema": SCHEMA_VERSION, "kind": "collector",
                               "site": self.cfg.site.name, "collector": self.cfg.collector.id,
                               "state": state}
        if state == "online":
            doc["ts_ms"] = int(time.time() * 1000)
        if stats is not None:
            doc["stats"] = stats
        return json.dumps(doc)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: mqtt.ReasonCode, properties: Any) -> None:
        self.waiter.on_connect(reason_code)
        broker = f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"
        if reason_code.is_failure:
            log.warning("broker %s refused the connection: %s", broker, reason_code)
        elif self.broker_lost:
            self.broker_lost = False
            log.info("broker %s regained: spooled readings go out now", broker)
        else:
            log.info("connected to broker %s", broker)
        if not reason_code.is_failure:
            client.publish(self.status, self._status("online", self.last_stats), qos=1,
                           retain=True)
            self.wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: mqtt.ReasonCode, properties: Any) -> None:
        if not self.broker_lost and not self.stopping.is_set():
            self.broker_lost = True
            log.warning("lost the broker %s:%d (%s): readings wait in the spool until it is back",
                        self.cfg.mqtt.host, self.cfg.mqtt.port, reason_code)
        with self.lock:  # resend everything unacknowledged, in order, once reconnected
            self.inflight.clear()
            self.early.clear()
            self.last_sent = 0
            self.generation += 1

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    reason_code: mqtt.ReasonCode, properties: Any) -> None:
        with self.lock:
            spool_id = self.inflight.pop(mid, None)
            if spool_id is None:
                self.early[mid] = reason_code.is_failure
                return
        self._acknowledged(spool_id, reason_code.is_failure)

    def _acknowledged(self, spool_id: int, refused: bool) -> None:
        if refused:  # refused by the broker (ACL): retrying cannot help
            self.refused += 1
            log.error("broker refused a reading: dropped, counted in spool_refused")
        with self.lock:
            self.acked.append(spool_id)
            window_full = len(self.inflight) >= WINDOW - 1
        if window_full:
            self.wake.set()

    def start(self, timeout: float = 30.0) -> None:
        """Connect (retrying in the background), wait for the broker, start sending."""
        self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port,
                                  keepalive=self.cfg.mqtt.keepalive_s)
        self.client.loop_start()
        self.sender.start()
        self.waiter.wait(timeout, "collector")

    def _send_loop(self) -> None:
        while not self.stopping.is_set():
            self._remove_acked()
            if not self.client.is_connected() or not self._send_some():
                if self.wake.wait(0.2):
                    self.stopping.wait(LINGER_S)
                self.wake.clear()
        self._remove_acked()

    def _remove_acked(self) -> None:
        with self.lock:
            acked, self.acked = self.acked, []
        self.spool.remove(acked)

    def _send_some(self) -> bool:
        with self.lock:
            room, after, generation = WINDOW - len(self.inflight), self.last_sent, self.generation
        if room <= 0:
            return False
        batch = self.spool.after(after, room)
        for message in batch:
            # never under self.lock: paho holds its own lock while calling _on_publish
            info = self.client.publish(message.topic, message.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False  # disconnected meanwhile: the reconnect resends from the spool
            with self.lock:
                if generation != self.generation:
                    return False  # a disconnect came between: resend from the oldest
                self.last_sent = message.id
                early = self.early.pop(info.mid, None)
                if early is None:
                    self.inflight[info.mid] = message.id
            if early is not None:
                self._acknowledged(message.id, early)
        return bool(batch)

    def publish_readings(self, readings: list[dict[str, Any]]) -> None:
        """Spool rig and PDU readings (one transaction) for the sender to publish."""
        prefix, site = self.cfg.mqtt.topic_prefix, self.cfg.site.name
        messages = [((rig_topic(prefix, site, r["rig"]) if r["kind"] == "rig"
                      else pdu_topic(prefix, site, r["pdu"])),
                     json.dumps(r, separators=(",", ":")).encode()) for r in readings]
        self.spool.append(messages)
        self.wake.set()

    def publish_reading(self, reading: dict[str, Any]) -> None:
        """Spool one reading."""
        self.publish_readings([reading])

    def spool_stats(self) -> dict[str, int]:
        """Spool depth, readings dropped at the bound, readings the broker refused."""
        return {"spool_depth": self.spool.depth(), "spool_dropped": self.spool.dropped(),
                "spool_refused": self.refused}

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Publish the retained online status carrying the last cycle's statistics."""
        self.last_stats = stats
        self.client.publish(self.status, self._status("online", stats), qos=1, retain=True)

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty (everything acknowledged) or the timeout passes."""
        deadline = time.monotonic() + timeout
        while self.spool.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.spool.depth() == 0

    def stop(self, timeout: float = 10.0) -> None:
        """Publish what the broker will take in time, say offline, disconnect.

        What is still spooled stays on disk and goes out after the next start."""
        self.drain(timeout)
        self.stopping.set()
        self.wake.set()
        self.sender.join(timeout=5)
        if self.client.is_connected():
            info = self.client.publish(self.status, self._status("offline"), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()
