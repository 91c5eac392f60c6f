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


# -- framing against the MQTT v5 spec (OASIS mqtt-v5.0, 1.5.5 Variable Byte Integer: at
# most four bytes, 268,435,455; 2.2.2.2 the properties) and what mosquitto sends: its
# send__real_publish (lib/send_publish.c) writes the publisher's stored properties, the
# remaining Message Expiry Interval and a Subscription Identifier into every PUBLISH


def _prop_string(ident: int, text: bytes) -> bytes:
    return bytes([ident]) + len(text).to_bytes(2, "big") + text


# every property a broker may put in a PUBLISH to a subscriber, each of its own shape
PUBLISH_PROPS = (b"\x01\x01"  # payload format indicator (byte)
                 + b"\x02" + (3600).to_bytes(4, "big")  # message expiry interval (4 bytes)
                 + _prop_string(0x03, b"application/json")  # content type (string)
                 + _prop_string(0x08, b"reply/here")  # response topic (string)
                 + _prop_string(0x09, bytes(range(40)))  # correlation data (binary)
                 + b"\x26" + _prop_string(0, b"k")[1:] + _prop_string(0, b"v" * 300)[1:]
                 + b"\x26" + _prop_string(0, b"k2")[1:] + _prop_string(0, b"")[1:]
                 + b"\x0b\xff\xff\xff\x7f")  # subscription identifier: a 4-byte varint
CONTROL = (b"\x90\x04\x00\x01\x00\x01"  # SUBACK: mid 1, no properties, granted QoS 1
           b"\xd0\x00"  # PINGRESP
           b"\x40\x02\x00\x05"  # PUBACK of a receipt, success implied
           b"\x40\x06\x00\x06\x10\x02\x1f\x00")  # PUBACK, reason 0x10 + a property block
LARGE = bytes(range(256)) * 8200  # 2,099,200 bytes: the remaining length takes four bytes


def _feed(sub: Subscriber, chunks: list[bytes]) -> bytearray:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        del buf[:sub._packets(buf)]
    return buf


def _stream(messages: list[tuple[str, bytes, int, int, bytes]] = STREAM,
            ) -> tuple[bytes, list[tuple[str, bytes, int, int]]]:
    """PUBLISHes (with every property shape) and control packets, interleaved."""
    parts, expected = [], []
    for n, (topic, payload, qos, mid, _props) in enumerate(messages):
        parts.append(publish_packet(topic, payload, qos, mid, PUBLISH_PROPS if n % 2 else b""))
        parts.append(CONTROL)
        expected.append((topic, payload, qos, mid))
    return b"".join(parts), expected


def test_every_split_of_every_packet_arrives_whole_in_order() -> None:
    """Two recvs, cut at every byte position of the stream (headers, varints, properties,
    payloads, control packets): the same messages, in order, nothing left over. (The
    three-byte length of STREAM's 20 KB message is cut everywhere in the next test.)"""
    data, expected = _stream([*STREAM[:3], ("hashwatt/v1/s/pdu/p1", b"p" * 200, 1, 65535, b"")])
    for cut in range(1, len(data)):
        sub, got = collecting()
        assert not _feed(sub, [data[:cut], data[cut:]])
        assert [(m.topic, m.payload, m.qos, m.mid) for m in got] == expected, cut


def test_many_packets_in_one_recv_and_one_byte_per_recv() -> None:
    data, expected = _stream()
    sub, got = collecting()
    assert not _feed(sub, [data])  # everything in one recv
    assert [(m.topic, m.payload, m.qos, m.mid) for m in got] == expected
    small = b"".join(publish_packet(t, p, q, m, PUBLISH_PROPS) + CONTROL
                     for t, p, q, m, _ in STREAM[:3])
    sub, got = collecting()
    assert not _feed(sub, [small[i:i + 1] for i in range(len(small))])  # a byte at a time
    assert [(m.topic, m.payload) for m in got] == [(t, p) for t, p, *_ in STREAM[:3]]


@pytest.mark.parametrize("size", [len(LARGE), 20480])
def test_a_four_or_three_byte_length_split_anywhere_in_its_header_or_end(size: int) -> None:
    packet = publish_packet("hashwatt/v1/s/pdu/big", LARGE[:size], 1, 300, PUBLISH_PROPS)
    length_bytes = 4 if size == len(LARGE) else 3
    assert all(b & 0x80 for b in packet[1:length_bytes]) and not packet[length_bytes] & 0x80
    data = packet + publish_packet("hashwatt/v1/s/rig/after", b"{}", 1, 301)
    cuts = [*range(1, 64), *range(len(packet) - 40, len(packet) + 30)]
    for cut in cuts:
        sub, got = collecting()
        assert not _feed(sub, [data[:cut], data[cut:]])
        assert [(m.topic, len(m.payload), m.mid) for m in got] == [
            ("hashwatt/v1/s/pdu/big", size, 300), ("hashwatt/v1/s/rig/after", 2, 301)]
        assert got[0].payload == LARGE[:size]
    sub, got = collecting()  # as a socket delivers it: 64 KiB reads
    assert not _feed(sub, [data[i:i + 65536] for i in range(0, len(data), 65536)])
    assert [m.payload for m in got] == [LARGE[:size], b"{}"]


def test_the_largest_remaining_length_is_read_and_a_fifth_byte_refused() -> None:
    """268,435,455 (ff ff ff 7f) is the largest; a header announcing it waits for the rest
    (nothing taken); a fifth length byte is a protocol error (the connection is dropped)."""
    sub, got = collecting()
    assert sub._packets(bytearray(b"\x30\xff\xff\xff\x7f\x00\x01t")) == 0 and not got
    with pytest.raises(ProtocolError):
        sub._packets(bytearray(b"\x30\x80\x80\x80\x80\x01"))


def test_connack_properties_of_every_shape_are_read() -> None:
    """A CONNACK with every property a v5 server may send (spec 3.2.2.3): the block is
    walked to its end and the Server Keep Alive taken."""
    props = (b"\x11" + (60).to_bytes(4, "big") + b"\x21\x00\x14" + b"\x24\x01" + b"\x25\x01"
             + b"\x27" + (1 << 20).to_bytes(4, "big") + _prop_string(0x12, b"assigned")
             + b"\x22\x00\x0a" + _prop_string(0x1F, b"fine")
             + b"\x26" + _prop_string(0, b"a")[1:] + _prop_string(0, b"b")[1:]
             + b"\x28\x01\x29\x01\x2a\x01" + b"\x13\x00\x07" + _prop_string(0x1A, b"resp")
             + _prop_string(0x1C, b"elsewhere") + _prop_string(0x15, b"SCRAM")
             + _prop_string(0x16, b"\x00\x01"))
    body = b"\x00\x00" + _varint(len(props)) + props
    sub, _ = collecting()
    assert sub._packets(bytearray(b"\x20" + _varint(len(body)) + body)) == 1 + len(
        _varint(len(body))) + len(body)
    assert sub.keepalive_s == 7.0


def test_mosquitto_forwards_properties_and_a_four_byte_length_intact(
        mosquitto: Mosquitto, subscriber: tuple[Subscriber, list[Inbound]]) -> None:
    """The real broker: a publisher's v5 properties (user properties, content type,
    correlation data, response topic, payload format, message expiry) and a 2 MB payload
    (four length bytes) reach the intake with the payload byte for byte."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v" * 300), ("k2", "")]
    props.ContentType = "application/json"
    props.CorrelationData = bytes(range(40))
    props.ResponseTopic = "reply/here"
    props.PayloadFormatIndicator = 1
    props.MessageExpiryInterval = 3600
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        infos = [client.publish("intake/props", b'{"a":1}', qos=1, properties=props),
                 client.publish("intake/large", LARGE, qos=1, properties=props),
                 client.publish("intake/after", b"after", qos=1)]
        for info in infos:
            info.wait_for_publish(timeout=20)
    finally:
        client.disconnect()
        client.loop_stop()
    _, got = subscriber
    assert wait_for(lambda: len(got) == 3, timeout=30)
    assert [(m.topic, m.payload) for m in got] == [
        ("intake/props", b'{"a":1}'), ("intake/large", LARGE), ("intake/after", b"after")]
