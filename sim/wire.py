"""The transports a simulated rig speaks: CGMiner-style JSON on TCP 4028, length-framed JSON
(Whatsminer API v3 on 4433) and a small HTTP/1.1.

Replies leave the way they leave a rig on a LAN: in ~1460-byte TCP segments with small gaps
(`Delivery`), because loopback hands a whole reply to one `read()` and hides every reader that
stops after the first segment. Faults (hung, trickling, malformed) are applied here, so every
vendor gets them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sim.model import Scenario

RpcHandler = Callable[[str], bytes]
IDENTIFY_COMMANDS = {"version", "devdetails", "get_version"}
TRICKLE_INTERVAL_S = 1.0
MSS = 1460  # an Ethernet TCP segment's payload (1500 MTU - 40 bytes of IP and TCP headers)
HEALTHY = {Scenario.NORMAL, Scenario.OVERHEAT, Scenario.DEAD_FAN, Scenario.DEAD_BOARD,
           Scenario.IDLE}
MALFORMED = {Scenario.NULL_BYTES, Scenario.GLUED, Scenario.TRUNCATED, Scenario.GARBAGE,
             Scenario.TRICKLE}


@dataclass(frozen=True)
class Delivery:
    """How replies leave a simulated rig: `lan` writes one segment at a time, each pushed out
    on its own (TCP_NODELAY, drained) and followed by a short gap, as a reply of several KB
    reaches a collector across a switch; `loopback` writes the reply in one piece."""

    lan: bool = True
    segment: int = MSS
    gap_s: float = 0.001

    async def send(self, writer: asyncio.StreamWriter, payload: bytes) -> None:
        """Write payload and wait until it has left."""
        if not self.lan or len(payload) <= self.segment:
            writer.write(payload)
            await writer.drain()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(payload), self.segment):
            if start:
                await asyncio.sleep(self.gap_s)
            writer.write(payload[start:start + self.segment])
            await writer.drain()


LOOPBACK = Delivery(lan=False)


def mangle(body: bytes, scenario: Scenario) -> bytes:
    """Turn a good reply into the kind of broken reply real firmware sends."""
    if scenario is Scenario.NULL_BYTES:
        half = len(body) // 2
        return body[:half] + b"\x00\x00" + body[half:] + b"\x00"
    if scenario is Scenario.GLUED:
        return body + body
    if scenario is Scenario.TRUNCATED:
        return body[: len(body) * 3 // 5]
    if scenario is Scenario.GARBAGE:
        return b"\xff\xfeERR: socket buffer overflow <html>" + body[:40]
    return body


async def _read_json_request(reader: asyncio.StreamReader, limit: int = 65536) -> dict | None:
    buf = b""
    while len(buf) < limit:
        chunk = await reader.read(4096)
        if not chunk:
            break
        buf += chunk
        try:
            parsed = json.loads(buf.rstrip(b"\x00").decode())
        except (ValueError, UnicodeDecodeError):
            continue
        return parsed if isinstance(parsed, dict) else None
    return None


async def _trickle(writer: asyncio.StreamWriter, body: bytes) -> None:
    """Slowloris: one byte a second, never finishing within any sane deadline."""
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(TRICKLE_INTERVAL_S)


async def _hang(reader: asyncio.StreamReader) -> None:
    """Accept and never answer: wait until the client gives up."""
    while await reader.read(4096):
        pass


@dataclass
class RpcServer:
    """A CGMiner-style API: one JSON request, one reply and a NUL, then the socket is closed
    (cgminer api.c `send_result` sends strlen+1 bytes; the listener then closes the socket)."""

    handler: RpcHandler
    scenario: Callable[[], Scenario]
    delivery: Delivery = LOOPBACK

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one connection."""
        scenario = self.scenario()
        try:
            if scenario is Scenario.HUNG:
                await _hang(reader)
                return
            if scenario is Scenario.OFFLINE:
                return  # switched off while its listener was closing: nothing answers
            request = await _read_json_request(reader)
            command = str((request or {}).get("command", ""))
            body = self.handler(command) + b"\x00"
            if scenario in HEALTHY or command in IDENTIFY_COMMANDS:
                await self.delivery.send(writer, body)
            elif scenario is Scenario.TRICKLE:
                await _trickle(writer, body)
            else:
                await self.delivery.send(writer, mangle(body, scenario))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()


FramedHandler = Callable[[dict], dict]


@dataclass
class FramedServer:
    """Whatsminer API v3 (port 4433): a 4-byte little-endian length, then JSON, both ways."""

    handler: FramedHandler
    scenario: Callable[[], Scenario]
    delivery: Delivery = LOOPBACK

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until the client closes it."""
        try:
            if self.scenario() is Scenario.HUNG:
                await _hang(reader)
                return
            while True:
                (length,) = struct.unpack("<I", await reader.readexactly(4))
                if length > 65536:
                    return
                request = json.loads(await reader.readexactly(length))
                reply = json.dumps(self.handler(request if isinstance(request, dict) else {}),
                                   separators=(",", ":")).encode()
                scenario = self.scenario()
                if scenario in MALFORMED:
                    # the frame's length still says what follows, as firmware computes it
                    # before its buffer goes wrong
                    reply = mangle(reply, scenario)
                frame = struct.pack("<I", len(reply)) + reply
                if scenario is Scenario.TRICKLE:
                    await _trickle(writer, frame)
                    return
                await self.delivery.send(writer, frame)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError,
                ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()




@dataclass
class HttpResponse:
    """A reply of the small HTTP server."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


HttpHandler = Callable[[str, str, dict[str, str], bytes], Awaitable[HttpResponse]]
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed"}


def json_response(data: object) -> HttpResponse:
    """A 200 reply carrying JSON."""
    return HttpResponse(200, json.dumps(data).encode())


def not_found() -> HttpResponse:
    """A 404 whose body is not JSON (or pyasic takes the rig for a Marathon firmware)."""
    return HttpResponse(404, b"<html><body>404 Not Found</body></html>", "text/html")


@dataclass
class DigestAuth:
    """HTTP digest authentication (RFC 7616, MD5, qop=auth), as stock Antminers use."""

    realm: str
    username: str = "root"
    password: str = "root"

    def challenge(self) -> HttpResponse:
        """The 401 that asks the client to authenticate."""
        nonce = secrets.token_hex(16)
        header = f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", algorithm=MD5'
        return HttpResponse(401, b"401 Unauthorized", "text/html",
                            (("WWW-Authenticate", header),))

    def verify(self, method: str, header: str) -> bool:
        """True when an Authorization header answers the challenge with the right password."""
        if not header.startswith("Digest "):
            return False
        fields = _parse_digest(header[7:])
        if fields.get("username") != self.username or fields.get("realm") != self.realm:
            return False
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{fields.get('uri', '')}")
        parts = [ha1, fields.get("nonce", ""), fields.get("nc", ""), fields.get("cnonce", ""),
                 fields.get("qop", ""), ha2]
        return fields.get("response") == _md5(":".join(parts))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _parse_digest(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _split_params(text):
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out


def _split_params(text: str) -> list[str]:
    items, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += ch
    return [*items, current] if current else items


@dataclass
class HttpServer:
    """Just enough HTTP/1.1 for pyasic's httpx client: keep-alive, Content-Length, GET/POST."""

    handler: HttpHandler
    scenario: Callable[[], Scenario]
    delivery: Delivery = LOOPBACK

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle requests on one connection until the client closes it."""
        try:
            if self.scenario() is Scenario.HUNG:
                await _hang(reader)
                return
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError,
                asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _one_request(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
        response = await self.handler(method, path, headers, body)
        await self._send(writer, response)
        return headers.get("connection", "").lower() != "close"

    async def _send(self, writer: asyncio.StreamWriter, response: HttpResponse) -> None:
        body = response.body
        scenario = self.scenario()
        if response.status == 200 and scenario in (Scenario.NULL_BYTES, Scenario.GLUED,
                                                   Scenario.TRUNCATED, Scenario.GARBAGE):
            body = mangle(body, scenario)
        head = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'OK')}",
                f"Content-Type: {response.content_type}", f"Content-Length: {len(body)}",
                *(f"{k}: {v}" for k, v in response.headers)]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if response.status == 200 and scenario is Scenario.TRICKLE:
            await _trickle(writer, payload)
            return
        await self.delivery.send(writer, payload)
