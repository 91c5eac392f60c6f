"""The bridge's MQTT v5 intake: packet framing as pure logic, the protocol against mosquitto."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporters.intake import Inbound, ProtocolError, Session, Subscriber, _varint
from sim.launch import Mosquitto
from tests.conftest import wait_for
from tests.test_bridge import publish


def publish_packet(topic: str, payload: bytes, qos: int, mid: int = 0,
                   props: bytes = b"") -> bytes:
    """A PUBLISH as a broker sends it (properties: whatever the broker adds)."""
    body = len(topic).to_bytes(2, "big") + topic.encode()
    if qos:
        body += mid.to_bytes(2, "big")
    body += _varint(len(props)) + props + payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


def collecting() -> tuple[Subscriber, list[Inbound]]:
    got: list[Inbound] = []
    session = Session(host="127.0.0.1", port=1, client_id="t", topics=["x/#"])
    return Subscriber(session, got.extend), got


STREAM = [("hashwatt/v1/s/rig/r1", b'{"a":1}', 1, 7, b""),
          ("hashwatt/v1/s/rig/r2", b"x" * 300, 1, 8, b"\x01\x01"),  # 2-byte length, a property
          ("hashwatt/v1/s/collector/c/status", b"online", 0, 0, b""),
          ("hashwatt/v1/s/pdu/p1", bytes(range(256)) * 80, 1, 65535, b"")]  # 3-byte length


def test_messages_split_at_any_byte_arrive_whole_and_in_order() -> None:
    data = b"".join(publish_packet(*m) for m in STREAM)
    for cut in range(1, 400):
        sub, got = collecting()
        buf = bytearray()
        for chunk in (data[:cut], data[cut:cut + 7], data[cut + 7:]):
            buf += chunk
            del buf[:sub._packets(buf)]
        assert not buf
        assert [(m.topic, m.payload, m.qos, m.mid) for m in got] == [m[:4] for m in STREAM]


def test_a_remaining_length_longer_than_four_bytes_is_a_protocol_error() -> None:
    sub, _ = collecting()
    with pytest.raises(ProtocolError):
        sub._packets(bytearray(b"\x30\xff\xff\xff\xff\x01"))


def test_only_this_connections_qos1_messages_are_acknowledged() -> None:
    sub, _ = collecting()
    ours, broker = socket.socketpair()
    sub.sock, sub.connection = ours, 2
    sub.ack([Inbound(5, 1, "t", b"", 0.0, connection=1),  # redelivered on this connection
             Inbound(6, 1, "t", b"", 0.0, connection=2),
             Inbound(0, 0, "t", b"", 0.0, connection=2),
             Inbound(513, 1, "t", b"", 0.0, connection=2)])
    sub._send_acks()
    assert broker.recv(100) == b"\x40\x02\x00\x06" + b"\x40\x02\x02\x01"


@pytest.fixture()
def subscriber(mosquitto: Mosquitto) -> Iterator[tuple[Subscriber, list[Inbound]]]:
    got: list[Inbound] = []
    sub = Subscriber(Session(host="127.0.0.1", port=mosquitto.port,
                             client_id=f"intake-{time.time_ns()}", topics=["intake/#"],
                             keepalive_s=1), got.extend)
    sub.start(20)
    yield sub, got
    sub.stop()


def test_a_message_larger_than_one_read_arrives_whole(
        mosquitto: Mosquitto, subscriber: tuple[Subscriber, list[Inbound]]) -> None:
    big = bytes(range(256)) * 4000  # 1 MB: four reads at least
    publish(mosquitto.port, [("intake/big", big), ("intake/small", b"after")])
    _, got = subscriber
    assert wait_for(lambda: len(got) == 2)
    assert [(m.topic, m.payload, m.qos) for m in got] == [("intake/big", big, 1),
                                                           ("intake/small", b"after", 1)]


def test_an_idle_connection_is_kept_alive_by_pings(
        mosquitto: Mosquitto, subscriber: tuple[Subscriber, list[Inbound]]) -> None:
    time.sleep(4)  # the broker drops a client silent for 1.5 keep-alives (1.5 s here)
    publish(mosquitto.port, [("intake/late", b"still here")])
    sub, got = subscriber
    assert wait_for(lambda: got)
    assert got[0].payload == b"still here" and sub.connection == 1


def test_unacknowledged_messages_come_again_and_acknowledged_ones_do_not(
        mosquitto: Mosquitto) -> None:
    def session() -> tuple[Subscriber, list[Inbound]]:
        got: list[Inbound] = []
        sub = Subscriber(Session(host="127.0.0.1", port=mosquitto.port,
                                 client_id="intake-session", topics=["again/#"]), got.extend)
        sub.start(20)
        return sub, got

    first, _ = session()
    first.stop()
    publish(mosquitto.port, [("again/1", b"one"), ("again/2", b"two")])
    second, got = session()
    assert wait_for(lambda: len(got) == 2)
    second.ack(got[:1])
    wait_for(lambda: not second.acks)
    second.stop()
    third, again = session()
    assert wait_for(lambda: again)
    time.sleep(0.5)
    third.ack(again)
    third.stop()
    assert [m.payload for m in again] == [b"two"]


def test_a_wrong_password_fails_at_once_with_the_brokers_reason(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, passwords={"bridge": "right"}).start()
    try:
        sub = Subscriber(Session(host="127.0.0.1", port=broker.port, client_id="intake-auth",
                                 topics=["x/#"], username="bridge", password="wrong"),
                         lambda m: None)
        with pytest.raises(ConnectionError) as err:
            sub.start(20)
        assert str(err.value) == "bridge: the broker refused the connection: Not authorized"
        assert not sub.thread.is_alive()  # it gave up instead of retrying a wrong password
    finally:
        broker.stop()
