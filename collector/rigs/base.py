"""What every fast path shares: the telemetry shape, the RPC exchange read to EOF and repaired
the way pyasic repairs it, and per-rig learning of joined (`a+b`) commands."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pyasic.device.algorithm import SHA256Unit
from pyasic.device.algorithm.hashrate import SHA256HashRate
from pyasic.errors import APIError
from pyasic.rpc.base import BaseMinerRPCAPI

from hashwatt.errors import RigError

RPC_PORT = 4028
READ_LIMIT = 4 << 20  # the largest real reply seen is ~30 KB (LuxOS healthchipget); bounded


class FastPathError(RigError):
    """The rig's reply could not be used."""


class ReplyTooLarge(FastPathError):
    """The rig sent more than any real reply holds (or never stopped): pyasic, which reads
    a reply whole, must not be asked to read it again."""


@dataclass
class Board:
    """A hashboard, with the attribute names pyasic's HashBoard has."""

    slot: int
    expected_chips: int | None
    hashrate: Any = None
    chip_temp: float | None = None
    temp: float | None = None
    chips: int | None = None


@dataclass
class Fan:
    """A fan speed."""

    speed: int | None


@dataclass(kw_only=True)
class Telemetry:
    """What the mapping reads: the MinerData attributes the collector uses, plus the hottest
    single sensor (`temp_max`) where the firmware reports several per board."""

    make: str
    model: str
    firmware: str
    expected_hashboards: int | None
    hashrate: Any = None
    expected_hashrate: Any = None
    wattage: int | None = None
    env_temp: float | None = None
    uptime: int | None = None
    hashboards: list[Board] = field(default_factory=list)
    fans: list[Fan] = field(default_factory=list)
    # None until a path reads the rig's error list: a firmware whose API has none (Avalon
    # RPC, AxeOS, LuxOS here) leaves it unknown, never "no errors" ([])
    errors: list[Any] | None = None
    temp_max: float | None = None


# Rig web APIs are plain HTTP; one TLS context for every client instead of one each
# (building one loads the CA bundle: ~1 MB and milliseconds per rig)
_TLS = ssl.create_default_context()


def rig_client(timeout: float) -> httpx.AsyncClient:
    """A small HTTP client for one rig. Connections are not kept between polls: thousands of
    idle sockets cost more memory than one TCP handshake per poll costs CPU."""
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=0)
    return httpx.AsyncClient(timeout=timeout, limits=limits, verify=_TLS)


async def get_json(client: httpx.AsyncClient, url: str, auth: Any = None,
                   limit: int = READ_LIMIT) -> tuple[int, Any]:
    """GET a reply (at most `limit` bytes) and its JSON when the status is 200: a rig that
    sends 64 MB or never stops costs its deadline, not the collector's memory (httpx alone
    reads any body whole)."""
    async with client.stream("GET", url, auth=auth) as resp:
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise ReplyTooLarge(f"reply larger than {limit} bytes")
    return resp.status_code, json.loads(body) if resp.status_code == 200 and body else None


def rate(value: Any, unit: SHA256Unit) -> Any:
    """A hashrate in TH/s from a firmware figure in `unit` (pyasic's own conversion)."""
    return SHA256HashRate(rate=float(value), unit=unit).into(SHA256Unit.TH)


def base_telemetry(miner: Any) -> Telemetry:
    """Telemetry with pyasic's identification and one empty board per expected board."""
    boards = [Board(slot=i, expected_chips=miner.expected_chips)
              for i in range(miner.expected_hashboards or 0)]
    return Telemetry(make=str(miner.make or ""), model=str(miner.raw_model or ""),
                     firmware=str(miner.firmware or ""),
                     expected_hashboards=miner.expected_hashboards, hashboards=boards)


# a peer that has sent a complete reply and then stays quiet this long without closing (or
# sending cgminer's NUL) is done: the reply is used, not waited on until the deadline
QUIET_S = 0.3


async def read_to_eof(reader: asyncio.StreamReader, deadline: float,
                      limit: int = READ_LIMIT, command: str = "") -> bytes:
    """One whole reply: cgminer `api.c send_result` writes the reply and a NUL, then closes;
    on a LAN it arrives in ~1460-byte segments. It ends at the NUL (anything after it is
    not part of the reply), at EOF, or when a peer that keeps the socket open has sent a
    complete reply and gone quiet."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FastPathError(f"reply not complete within the deadline ({size} bytes read)")
        try:
            chunk = await asyncio.wait_for(reader.read(65536), min(left, QUIET_S))
        except TimeoutError:
            if chunks and _complete(b"".join(chunks)):
                return b"".join(chunks)
            continue
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise FastPathError(f"connection reset by the rig after {size} bytes of the "
                                f"reply{' to ' + command if command else ''} "
                                f"({type(exc).__name__})") from None
        if not chunk:
            raw = b"".join(chunks)
            if _cut_short(raw):
                raise FastPathError(f"reply cut short: the rig closed after {size} bytes, "
                                    "inside the JSON")
            return raw
        end = chunk.find(b"\0")
        if end >= 0:  # cgminer's terminator: the reply is complete
            chunks.append(chunk[:end])
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ReplyTooLarge(f"reply larger than {limit} bytes")
        chunks.append(chunk)


def _complete(raw: bytes) -> bool:
    """Whether what a quiet peer sent so far is a whole reply (pyasic's repairs alone would
    turn a truncated reply into a shorter object)."""
    if _cut_short(raw):
        return False
    try:
        load_reply(raw, "")
    except FastPathError:
        return False
    return True


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def _cut_short(raw: bytes) -> bool:
    """Whether a reply that opens a JSON object ends before closing it (brackets counted
    outside strings; bmminer's `}{` glue and trailing commas are balanced)."""
    text = raw.decode("utf-8", errors="replace").lstrip()
    if not text.startswith("{"):
        return False  # not an object (Avalon's leading-comma quirk): pyasic decides
    bare = _STRINGS.sub('""', text)  # strings removed: their brackets do not count
    if bare.count('"') % 2:
        return True  # cut inside a string
    return bare.count("{") + bare.count("[") > bare.count("}") + bare.count("]")


def load_reply(raw: bytes, command: str) -> dict[str, Any]:
    """Parse a reply with pyasic's own repairs (`BaseMinerRPCAPI._load_api_data`: trailing
    `,}`, `}{` glue, NUL, `"inf"`/`"nan"`, a leading comma, btminer 2.0.4 error lists)."""
    if not raw:
        raise FastPathError(f"empty reply to {command}")
    try:
        parsed = BaseMinerRPCAPI._load_api_data(_without_trailer(raw))
    except APIError:
        raise FastPathError(f"malformed reply to {command} ({len(raw)} bytes)") from None
    if not isinstance(parsed, dict):
        raise FastPathError(f"reply to {command} is not a JSON object")
    return parsed


def _without_trailer(raw: bytes) -> bytes:
    """The reply without bytes a rig wrote after its JSON object (garbage after the reply):
    cut where the first whole object ends, so pyasic's repairs see the reply alone. A reply
    that needs those repairs to parse at all (glue, trailing commas) is left as it is."""
    if raw.rstrip(b" \t\r\n\0").endswith(b"}"):
        return raw  # ends like a reply (the usual case): no second parse
    text = raw.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] != "{":
        return raw
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return raw
    return text[:end].encode() if text[end:].strip(" \t\r\n\0") else raw


async def rpc(ip: str, command: str, timeout: float, port: int = RPC_PORT) -> dict[str, Any]:
    """One CGMiner-style request and its whole JSON reply."""
    deadline = time.monotonic() + timeout
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    try:
        writer.write(json.dumps({"command": command}).encode())
        await writer.drain()
        raw = await read_to_eof(reader, deadline, command=command)
    finally:
        writer.close()
    return load_reply(raw, command)


def status_error(reply: dict[str, Any]) -> str | None:
    """The firmware's own error message when a reply says STATUS E/F, else None."""
    status = reply.get("STATUS")
    if isinstance(status, list) and status and isinstance(status[0], dict):
        status = status[0]
        if status.get("STATUS") in ("E", "F"):
            return str(status.get("Msg", "error"))
    elif status in ("E", "F"):  # btminer v2 puts STATUS at the top level
        return str(reply.get("Msg", "error"))
    return None


@dataclass
class RpcSession:
    """RPC to one rig, learning whether it answers joined commands (`a+b`): stock S19
    firmware refuses them (pyasic splits them, "doesn't work for S19"), btminer v2 never
    joins `get_*`/`status`. Learned once per rig, kept until re-identification."""

    ip: str
    timeout: float
    port: int = RPC_PORT
    joined: bool | None = None  # None: not tried yet

    async def one(self, command: str) -> dict[str, Any]:
        """One command."""
        return await rpc(self.ip, command, self.timeout, self.port)

    async def many(self, *commands: str) -> dict[str, dict[str, Any]]:
        """Several commands, joined when the rig accepts that, else one connection each."""
        if len(commands) > 1 and self.joined is not False:
            try:
                reply = await self.one("+".join(commands))
            except FastPathError:  # an answer, but not one we can use: ask one by one
                reply = {}
            parts = {c: reply.get(c) for c in commands}
            if all(isinstance(p, list) and p and isinstance(p[0], dict) for p in parts.values()):
                self.joined = True
                return {c: p[0] for c, p in parts.items() if isinstance(p, list)}
            self.joined = False  # refused ("Invalid command") or a shape we cannot split
        replies = await asyncio.gather(*(self.one(c) for c in commands))
        return dict(zip(commands, replies, strict=True))


_SENSOR = re.compile(r"(?:^|-)\s*(-?\d+(?:\.\d+)?)")


def sensor_values(text: Any) -> list[float]:
    """Stock Antminer RPC gives one "78-50-69-70" string per chain: four sensors, `-` as the
    separator and as a sign ("2--1-20-22" is 2, -1, 20, 22 on a cold start)."""
    if text is None or text == "":
        return []
    if isinstance(text, int | float):
        return [float(text)]
    return [float(m) for m in _SENSOR.findall(str(text))]


def mean_nonzero(values: list[float]) -> float | None:
    """pyasic's board temperature: the mean of the sensors that are not 0 (0: absent)."""
    present = [v for v in values if v]
    return sum(present) / len(present) if present else None


def number(value: Any) -> float | None:
    """A firmware number (often a string); None for "", missing or not a number."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
