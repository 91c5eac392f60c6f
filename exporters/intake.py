"""The bridge's MQTT side: a small MQTT v5 subscriber built for one job — take QoS 1 readings
from a persistent session and acknowledge them once they are stored.

Why not paho here: measured with the exporter benchmark, paho spends about 53 us of CPU per
received QoS 1 message with a manual ack (a v5 Properties object per PUBLISH, four recv calls
per packet, a wake-up of its network thread per ack): more than the bridge's whole decode,
encode and write. This reads every packet a recv brings, skips the PUBLISH properties the
bridge never uses and sends a batch's acknowledgements in one write. paho stays the
collector's publisher and the tests' client.

Scope: CONNECT (clean_start=False, session expiry, receive maximum, username/password, TLS),
SUBSCRIBE at QoS 1, PUBLISH in at QoS 0/1, PUBACK out, PUBLISH out at QoS 1 (the stored
receipts; their PUBACK is not tracked: a receipt lost with a connection only makes the
collector send the reading again), keep-alive pings, server DISCONNECT, reconnect with
backoff. All socket I/O happens on the reader thread (an SSL socket must not
be read and written from two threads at once); ack() only queues and wakes it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from hashwatt.errors import MessageError

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
READ_SIZE = 256 * 1024
PINGREQ = b"\xc0\x00"
SESSION_EXPIRY_S = 7 * 86400  # how long the broker keeps the session while we are away
# property id -> size in bytes (0: UTF-8 string or binary data, -1: variable byte integer,
# -2: string pair); MQTT v5 section 2.2.2.2
_PROPERTY_SIZE = {0x01: 1, 0x17: 1, 0x19: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1,
                  0x13: 2, 0x21: 2, 0x22: 2, 0x23: 2, 0x02: 4, 0x11: 4, 0x18: 4, 0x27: 4,
                  0x0B: -1, 0x26: -2}
REASON_STRING, SERVER_KEEP_ALIVE = 0x1F, 0x13


class Inbound(NamedTuple):
    """One received MQTT message; `connection` tells which connection may acknowledge it."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float
    connection: int = 0


class ProtocolError(MessageError, ConnectionError):
    """The broker sent something this client cannot follow."""


class Incomplete(ProtocolError):
    """The bytes end before the value does: in a whole packet an error, at the end of what
    a recv brought the rest still to come."""


class Refused(MessageError, ConnectionError):
    """The broker refused the connection or the subscription."""


@dataclass(frozen=True, kw_only=True)
class Session:
    """Where to connect and what to ask for."""

    host: str
    port: int
    client_id: str
    topics: list[str]
    keepalive_s: int = 30
    session_expiry_s: int = SESSION_EXPIRY_S
    receive_maximum: int = 2000
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _read_varint(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise Incomplete("a variable byte integer runs past its packet")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise ProtocolError("a variable byte integer is longer than four bytes")


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(s: Session) -> bytes:
    """CONNECT: keep the session (clean_start=False) with its expiry and receive maximum."""
    flags = 0x80 * (s.username is not None) + 0x40 * (s.password is not None)
    props = (b"\x11" + s.session_expiry_s.to_bytes(4, "big")
             + b"\x21" + s.receive_maximum.to_bytes(2, "big"))
    body = (_string("MQTT") + b"\x05" + bytes([flags]) + s.keepalive_s.to_bytes(2, "big")
            + _varint(len(props)) + props + _string(s.client_id))
    if s.username is not None:
        body += _string(s.username)
    if s.password is not None:
        body += _string(s.password.encode())
    return _packet(0x10, body)


def subscribe_packet(mid: int, topics: list[str]) -> bytes:
    """SUBSCRIBE every topic at QoS 1 (a QoS 2 publisher is downgraded to 1 for us)."""
    body = mid.to_bytes(2, "big") + b"\x00" + b"".join(_string(t) + b"\x01" for t in topics)
    return _packet(0x82, body)


def publish_packet(mid: int, topic: str, payload: bytes) -> bytes:
    """PUBLISH at QoS 1, no properties."""
    return _packet(0x32, _string(topic) + mid.to_bytes(2, "big") + b"\x00" + payload)


def puback_packets(mids: list[int]) -> bytes:
    """PUBACKs for these packet ids, one buffer (reason "success" is implied by length 2)."""
    return b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)


def properties(buf: bytes | bytearray, pos: int, end: int) -> tuple[dict[int, object], int]:
    """The property block at pos: {id: value} and the position after it."""
    length, pos = _read_varint(buf, pos, end)
    stop, found = pos + length, dict[int, object]()
    while pos < stop:
        ident = buf[pos]
        size = _PROPERTY_SIZE.get(ident, 0)
        pos += 1
        if size > 0:
            found[ident] = int.from_bytes(buf[pos:pos + size], "big")
            pos += size
        elif size == -1:
            found[ident], pos = _read_varint(buf, pos, stop)
        else:
            for _ in range(2 if size == -2 else 1):
                strlen = int.from_bytes(buf[pos:pos + 2], "big")
                found[ident] = bytes(buf[pos + 2:pos + 2 + strlen]).decode(errors="replace")
                pos += 2 + strlen
    if pos != stop:
        raise ProtocolError("a property block does not end where its length says")
    return found, stop


def reason(packet_type: int, code: int, props: dict[int, object]) -> str:
    """The broker's reason code by name, with its reason string when it sent one."""
    try:
        name = ReasonCode(packet_type, identifier=code).getName()
    except KeyError:
        name = f"reason code {code:#04x}"
    detail = props.get(REASON_STRING)
    return f"{name} ({detail})" if detail else str(name)


class Subscriber:
    """Receives the session's messages on a thread of its own and hands them over in lists."""

    def __init__(self, session: Session,
                 deliver: Callable[[list[Inbound]], None]) -> None:
        self.session = session
        self.deliver = deliver
        self.connection = 0  # bumped at every new connection: older messages are not acked
        self.keepalive_s = float(session.keepalive_s)
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        self.acks: list[Inbound] = []
        self.outgoing: list[tuple[str, bytes]] = []  # (topic, payload) to publish at QoS 1
        self.next_mid = 1
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.subscribed, self.stopping = threading.Event(), threading.Event()
        self.settled = threading.Event()  # subscribed, or refused before it ever was
        self.subscriptions = 0  # SUBACKs received: a connection that got one worked
        self.error = ""
        self.thread = threading.Thread(target=self._run, daemon=True, name="mqtt-intake")

    def start(self, timeout: float = 30.0, cancel: threading.Event | None = None) -> None:
        """Connect and subscribe; raise with the broker's reason if that fails in time.
        Setting `cancel` (Ctrl-C, SIGTERM) ends the wait at once, without an error."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.settled.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if (cancel is not None and cancel.is_set()) or time.monotonic() >= deadline:
                break
        refused = self.settled.is_set() and not self.subscribed.is_set()
        if not self.subscribed.is_set():
            self.stop()
            if cancel is not None and cancel.is_set():
                return
            if refused:
                raise ConnectionError(f"bridge: {self.error}")
            detail = f": {self.error}" if self.error else ""
            raise ConnectionError(f"bridge: no subscription at the MQTT broker within "
                                  f"{timeout:.0f} s{detail}")

    def ack(self, messages: list[Inbound]) -> None:
        """Acknowledge these messages (QoS 0 and older connections' messages are skipped)."""
        with self.lock:
            self.acks.extend(messages)
        self._wake()

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish these at QoS 1 before the acknowledgements queued after them."""
        with self.lock:
            self.outgoing.extend(messages)
        self._wake()

    def stop(self) -> None:
        """Disconnect normally: the broker keeps the session and what is not acknowledged."""
        self.stopping.set()
        self._wake()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(10)
        if not self.thread.is_alive():
            self.wake_r.close()
            self.wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already awake, or closed at stop
            self.wake_w.send(b"\x00")

    def _run(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            subscriptions, level = self.subscriptions, logging.WARNING
            try:
                self._connection()
            except OSError as exc:  # Refused and ssl.SSLError are OSErrors too
                if isinstance(exc, Refused):
                    if not self.subscribed.is_set():
                        self.settled.set()  # a wrong password does not mend itself: fail now
                        break
                    level = logging.ERROR
                self.error = str(exc)
            finally:
                self._close()
            if self.subscriptions > subscriptions:  # it worked for a while: start over at 1 s
                delay = 1.0
            if self.subscribed.is_set() and not self.stopping.is_set():
                log.log(level, "MQTT: %s; reconnecting in %.0f s", self.error, delay)
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _connection(self) -> None:
        s = self.session
        raw = socket.create_connection((s.host, s.port), timeout=10)
        self.sock = s.tls.wrap_socket(raw, server_hostname=s.host) if s.tls else raw
        self.connection += 1
        self.sock.sendall(connect_packet(s) + subscribe_packet(1, s.topics))
        self.last_sent = self.last_received = time.monotonic()
        buf = bytearray()
        while not self.stopping.is_set():
            if self._readable():
                data = self.sock.recv(READ_SIZE)
                if not data:
                    raise ConnectionError("the broker closed the connection")
                self.last_received = time.monotonic()
                buf += data
                del buf[:self._packets(buf)]
            self._send_acks()
            self._keep_alive()
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT, normal: the session stays

    def _readable(self) -> bool:
        sock = self.sock
        assert sock is not None
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        ready, _, _ = select.select([sock, self.wake_r], [], [], 1.0)
        if self.wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                self.wake_r.recv(4096)
        return sock in ready

    def _send_acks(self) -> None:
        with self.lock:
            acks, self.acks = self.acks, []
            outgoing, self.outgoing = self.outgoing, []
        mids = [m.mid for m in acks if m.qos and m.connection == self.connection]
        if mids or outgoing:
            assert self.sock is not None
            # receipts first: a crash after the PUBACKs would otherwise lose them for good
            self.sock.sendall(b"".join(publish_packet(self._mid(), t, p) for t, p in outgoing)
                              + puback_packets(mids))
            self.last_sent = time.monotonic()

    def _mid(self) -> int:
        self.next_mid = self.next_mid % 65534 + 2  # 2..65535: 1 is the SUBSCRIBE's
        return self.next_mid

    def _keep_alive(self) -> None:
        now = time.monotonic()
        if now - self.last_received > self.keepalive_s * 1.5:
            raise ConnectionError(f"no packet from the broker for {self.keepalive_s * 1.5:.0f} s")
        if now - self.last_sent > self.keepalive_s / 2:
            assert self.sock is not None
            self.sock.sendall(PINGREQ)
            self.last_sent = now

    def _close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def _packets(self, buf: bytearray) -> int:
        """Handle every complete packet in buf; return how many bytes they took."""
        pos, end, received, out = 0, len(buf), time.time(), []
        connection = self.connection
        while end - pos >= 2:
            try:
                length, i = _read_varint(buf, pos + 1, end)
            except Incomplete:
                break  # the rest arrives with the next recv
            stop = i + length
            if stop > end:
                break
            first = buf[pos]
            if first >> 4 == 3:
                out.append(self._publish(buf, first, i, stop, received, connection))
            else:
                self._control(first, buf, i, stop)
            pos = stop
        if out:
            self.deliver(out)
        return pos

    @staticmethod
    def _publish(buf: bytearray, first: int, i: int, stop: int, received: float,
                 connection: int) -> Inbound:
        qos = (first >> 1) & 3
        topic_end = i + 2 + (buf[i] << 8 | buf[i + 1])
        topic = buf[i + 2:topic_end].decode(errors="replace")
        mid = 0
        if qos:
            mid = buf[topic_end] << 8 | buf[topic_end + 1]
            topic_end += 2
        props, j = _read_varint(buf, topic_end, stop)
        return Inbound(mid, qos, topic, bytes(buf[j + props:stop]), received, connection)

    def _control(self, first: int, buf: bytearray, i: int, stop: int) -> None:
        kind = first >> 4
        if kind == 2:  # CONNACK
            code = buf[i + 1]
            props, _ = properties(buf, i + 2, stop)
            if code >= 0x80:
                self.error = f"the broker refused the connection: " \
                             f"{reason(PacketTypes.CONNACK, code, props)}"
                raise Refused(self.error)
            if SERVER_KEEP_ALIVE in props:  # the server's keep-alive overrides ours
                self.keepalive_s = float(props[SERVER_KEEP_ALIVE])  # type: ignore[arg-type]
        elif kind == 9:  # SUBACK
            props, j = properties(buf, i + 2, stop)
            refused = [reason(PacketTypes.SUBACK, code, props) for code in buf[j:stop]
                       if code >= 0x80]
            if refused:
                self.error = f"the broker refused the subscription: {', '.join(refused)}"
                raise Refused(self.error)
            self.subscriptions += 1
            self.subscribed.set()
            self.settled.set()
        elif kind == 14:  # DISCONNECT from the broker
            code = buf[i] if stop > i else 0
            props = properties(buf, i + 1, stop)[0] if stop > i + 1 else {}
            raise ConnectionError(f"the broker disconnected us: "
                                  f"{reason(PacketTypes.DISCONNECT, code, props)}")
        # PINGRESP (13) only proves the connection is alive; PUBACK (4) of a receipt is
        # not tracked; nothing else is expected
