"""What a real LAN does to a rig's reply, over real TCP/HTTP on loopback: segments split at
awkward bytes, a rig that keeps the socket open after its reply, garbage after the reply,
HTTP chunked + gzip, a rig answering at 80 % of the deadline, a connection reset mid-reply.
Each gives the right reading or one clear reason, and no poll outlives its deadline."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyasic.miners.avalonminer as avalonminers
import pytest
from pyasic.miners.backends.espminer import ESPMiner

from collector.mapping import Origin
from collector.rigs import avalon
from collector.rigs.base import FastPathError, rpc
from collector.rigs.bitaxe import BitaxePath
from collector.rigs.credentials import DEFAULT
from collector.rigs.source import EXCHANGE_SHARE, PyasicSource
from collector.service import poll_rig
from hashwatt.config import RigConfig
from sim.replay import reference_dir
from tests.conftest import next_octet

HANDWRITTEN = Path(__file__).parent / "cases" / "rigs" / "handwritten"
# a reply with what splits badly: multibyte UTF-8 (é is C3 A9, — is E2 80 94) and a JSON
# \u00e9 escape; the NUL cgminer ends it with
TEXT = {"STATUS": [{"STATUS": "S", "Msg": "Summary", "Description": "cgminer 4.11.1 — é"}],
        "SUMMARY": [{"Elapsed": 42, "Pool": "stratum+tcp://pool.exämple/\u00e9"}], "id": 1}
RAW = json.dumps(TEXT, ensure_ascii=False).replace("/\u00e9", "/\\u00e9").encode()
SplitAt = Callable[[bytes], list[int]]


async def peer(segments: list[bytes], then: str = "close", gap: float = 0.02,
               delay: float = 0.0) -> asyncio.Server:
    """A rig on loopback: reads one request, waits `delay`, writes the segments with gaps,
    then closes, keeps the socket open (`keep`) or resets it (`reset`)."""
    kept: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(delay)
        for seg in segments:
            writer.write(seg)
            await writer.drain()
            await asyncio.sleep(gap)
        if then == "keep":
            kept.append(writer)
            await asyncio.sleep(30)
        elif then == "reset":  # SO_LINGER 0: close sends RST, not FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def split(raw: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(edges)]


async def ask(server: asyncio.Server, timeout: float = 5.0) -> dict[str, Any]:
    async with server:
        port = server.sockets[0].getsockname()[1]
        return await rpc("127.0.0.1", "summary", timeout, port)


@pytest.mark.parametrize("where", ["inside a multibyte char", "inside \\u00", "before the NUL",
                                   "every byte"])
def test_a_reply_split_at_awkward_bytes_is_read_whole(where: str) -> None:
    body = RAW + b"\x00"
    cuts = {"inside a multibyte char": [body.index("—".encode()) + 1,
                                        body.index("ä".encode()) + 1],
            "inside \\u00": [body.index(b"\\u00") + 4],
            "before the NUL": [len(RAW)],
            "every byte": list(range(1, len(body)))}[where]
    gap = 0.0 if where == "every byte" else 0.05
    got = asyncio.run(_run(lambda: peer(split(body, cuts), gap=gap)))
    assert got == TEXT


async def _run(make: Callable[[], Awaitable[asyncio.Server]], timeout: float = 5.0) -> Any:
    return await ask(await make(), timeout)


def test_a_rig_that_keeps_the_socket_open_after_its_reply_is_read_without_waiting() -> None:
    start = time.monotonic()
    got = asyncio.run(_run(lambda: peer([RAW[:100], RAW[100:]], then="keep"), timeout=8.0))
    assert got == TEXT
    # done once the peer went quiet with a whole reply (QUIET_S 0.3 s), not at the 8 s deadline
    assert time.monotonic() - start < 4.0


def test_a_rig_that_keeps_the_socket_open_mid_reply_is_one_clear_reason() -> None:
    start = time.monotonic()
    with pytest.raises(FastPathError, match=r"not complete within the deadline \(100 bytes"):
        asyncio.run(_run(lambda: peer([RAW[:100]], then="keep"), timeout=1.5))
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize("tail", [b"\x00garbage\xff\xfe", b"\x00\x00\x00",
                                  b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\xff\xfe}{]"])
def test_a_reply_followed_by_garbage_is_read(tail: bytes) -> None:
    assert asyncio.run(_run(lambda: peer([RAW, tail]))) == TEXT


def test_a_rig_closing_mid_reply_is_one_clear_reason_not_a_shorter_object() -> None:
    # pyasic's repairs alone would make an object of the first 100 bytes
    with pytest.raises(FastPathError, match="cut short: the rig closed after 100 bytes"):
        asyncio.run(_run(lambda: peer([RAW[:100]])))


def test_a_connection_reset_mid_reply_is_one_clear_reason() -> None:
    with pytest.raises(FastPathError, match="connection reset by the rig after 100 bytes"):
        asyncio.run(_run(lambda: peer([RAW[:100]], then="reset")))


# --- whole polls through the collector's source, under the collector's deadline -------------

def _nano3_reply(command: str) -> bytes:
    replies = json.loads((HANDWRITTEN / "avalon_nano3_ps_layout.json").read_text())["replies"]
    parts = command.split("+")
    return json.dumps({c: [replies[c]] for c in parts}).encode() + b"\x00"


def _poll_with(make: Callable[[], Awaitable[asyncio.Server]],
               deadline: float) -> tuple[dict[str, Any], float]:
    """One poll of a known Avalon Nano 3 (identification done: the miner object is kept) at an
    address where nothing else listens, its RPC on the peer's port; and the time it took."""
    ip = f"127.{next_octet()}.9.9"

    async def run() -> tuple[dict[str, Any], float]:
        server = await make()
        async with server:
            miner = avalonminers.CGMinerAvalonNano3(ip)
            path = avalon.AvalonPath(miner, deadline * EXCHANGE_SHARE, DEFAULT)
            path.session.ip, path.session.port = "127.0.0.1", server.sockets[0].getsockname()[1]
            source = PyasicSource(timeout_s=deadline)
            source.miners["r1"], source.paths["r1"] = miner, path
            origin = Origin(site="north", collector="c1", rig=RigConfig(id="r1", address=ip),
                            ts_ms=1_790_000_000_000)
            start = time.monotonic()
            reading = await poll_rig(source, origin, deadline)
            return reading, time.monotonic() - start

    return asyncio.run(run())


def test_a_rig_answering_at_80_percent_of_the_deadline_is_read() -> None:
    # 10 s: the 5 % between the rig's 80 % and an exchange's 85 % is 0.5 s of slack for a
    # loaded test machine
    deadline = 10.0
    reading, took = _poll_with(lambda: peer([_nano3_reply("estats+devs")],
                                            delay=0.8 * deadline), deadline)
    assert reading["online"] and reading["error"] is None
    assert reading["hashrate_ths"] == 3.0  # the case's devs MHS 1m 3,000,000 MH/s
    assert took < deadline


def test_a_rig_too_slow_for_the_deadline_is_one_clear_reason_within_it() -> None:
    deadline = 5.0
    reading, took = _poll_with(lambda: peer([_nano3_reply("estats+devs")], delay=30),
                               deadline)
    assert not reading["online"]
    assert reading["error"].startswith("fast path: no complete reply within 4.5 s")
    assert took < deadline


def test_a_rig_resetting_mid_reply_is_one_clear_reason_within_the_deadline() -> None:
    deadline = 4.0
    body = _nano3_reply("estats+devs")
    reading, took = _poll_with(lambda: peer([body[:700]], then="reset"), deadline)
    assert not reading["online"]
    # the fast path's reason; pyasic's fallback (port 4028 at that address: refused) read nothing
    assert reading["error"].startswith("fast path: connection reset by the rig after 700 bytes")
    assert reading["error"].endswith("; pyasic read nothing")
    assert took < deadline


# --- HTTP: chunked transfer and gzip, as AxeOS's web server may send them ------------------

async def http_peer(ip: str, body: bytes, chunks: list[int]) -> asyncio.Server:
    """An HTTP/1.1 server on port 80 answering every GET with a gzip body in chunks."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        for part in split(body, chunks):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, ip, 80)


def test_axeos_reply_chunked_and_gzipped_is_read_exactly() -> None:
    ref = reference_dir()
    assert ref is not None, "../shared/reference/miner-api is missing"
    info = (ref / "bitaxe" / "v2_0_0" / "system_info.json").read_bytes()
    body = gzip.compress(info)
    ip = f"127.{next_octet()}.8.8"

    async def run() -> Any:
        server = await http_peer(ip, body, [1, 7, len(body) // 2, len(body) - 3])
        async with server:
            path = BitaxePath(ESPMiner(ip), 5.0, DEFAULT)
            try:
                return await path.telemetry()
            finally:
                await path.close()

    t = asyncio.run(run())
    # the same figures as tests/cases/rigs/bitaxe/expected.toml (derived there by hand)
    assert float(t.hashrate) == 1.0 and t.wattage == 2.65 and t.uptime == 4
    assert [f.speed for f in t.fans] == [3517]
