"""Replay of replies captured from real rigs (`../shared/reference/miner-api`, read where it
lies, never copied), each rig on its own loopback address, speaking its firmware's wire
protocol closely enough that unmodified pyasic identifies it:

- cgminer-family RPC on 4028 (stock Antminer, Avalon, LuxOS, Whatsminer API v2): one JSON
  request, the reply plus a NUL in ~1460-byte segments with small gaps (as a LAN delivers
  it), then the socket is closed (cgminer `api.c send_result`);
- Whatsminer API v3 on 4433: 4-byte little-endian length + JSON both ways;
- HTTP where the firmware has it (Antminer digest-auth CGI, AxeOS, ePIC on 4028, the
  Whatsminer LuCI redirect to HTTPS).

Only the identification surfaces pyasic's factory reads (a 401 realm, a page title, a
redirect) are protocol, not data; every reading figure comes from a capture. A command the
capture lacks gets that firmware's own error reply, never invented data. The one derived
reply is Avalon's `estats`: cgminer builds it from the same device entries as `stats`, minus
the POOL entries (`api.c minerestats`), so it is the captured `stats` without them.

    python -m sim.replay --base 127.77.0 --ready-file ready
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.wire import DigestAuth

SEGMENT = 1460      # a TCP segment's payload on Ethernet
GAP_S = 0.0005      # between segments, as on a LAN
REFERENCE = Path("shared", "reference", "miner-api")


def reference_dir(start: Path | None = None) -> Path | None:
    """`../shared/reference/miner-api` beside the repository root (CI lays shared/ there)."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / REFERENCE
        if candidate.is_dir():
            return candidate
    return None


async def send_segments(writer: asyncio.StreamWriter, data: bytes, segment: int = SEGMENT,
                        gap: float = GAP_S) -> None:
    """Write data the way it reaches a client across a LAN: segment by segment."""
    for i in range(0, len(data), segment):
        writer.write(data[i:i + segment])
        await writer.drain()
        if i + segment < len(data):
            await asyncio.sleep(gap)


def compact(doc: Any) -> bytes:
    """JSON as firmware sends it: no indentation."""
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Http:
    """One HTTP reply."""

    status: int
    body: bytes = b""
    content_type: str = "text/html"
    headers: tuple[tuple[str, str], ...] = ()


REASONS = {200: "OK", 307: "Temporary Redirect", 401: "Unauthorized", 404: "Not Found"}
NOT_FOUND = Http(404, b"<html><body><h1>404 Not Found</h1></body></html>")


@dataclass
class Capture:
    """One captured rig: where its replies are and how its firmware speaks."""

    name: str
    folder: str
    rpc: dict[str, str] = field(default_factory=dict)       # command -> capture file stem
    joinable: Callable[[str], bool] | None = None           # None: joined commands refused
    rpc_error: str = "cgminer"                               # cgminer | btminer
    v3: dict[str, str] = field(default_factory=dict)        # "cmd:param" -> stem (port 4433)
    web: dict[str, str] = field(default_factory=dict)       # path -> stem (port 80)
    web_4028: dict[str, str] = field(default_factory=dict)  # path -> stem (ePIC: HTTP on 4028)
    front_page: str | None = None                            # GET / text pyasic identifies
    digest_realm: str | None = None                          # GET / answers 401 with it
    luci_redirect: bool = False                              # http -> https LuCI (Whatsminer)
    derived_estats: bool = False
    note: str = ""
    # replies bundled in one JSON file (command stem -> reply), e.g. a real reply vendored
    # with attribution in tests/cases/rigs/<family>/<case>/replies.json; None: `folder`
    bundle: Path | None = None


def _btminer_joinable(command: str) -> bool:
    # btminer v2 never joins get_* or status (pyasic BTMinerRPCAPI.multicommand splits them)
    return not (command.startswith("get_") or command == "status")


CAPTURES: list[Capture] = [
    Capture("antminer-v2020", "antminer/v2020",
            rpc={c: c for c in ("version", "summary", "stats", "pools", "devs")},
            digest_realm="antMiner Configuration",
            # joined commands: pyasic splits them for stock S19 ("doesn't work for S19")
            note="system_info.json is from another unit (an S21 on 2025 firmware, the RPC "
                 "capture is an S19 Pro on 2022 BMMiner): not served, the CGI answers 404"),
    Capture("whatsminer-v2", "whatsminer/v2",
            rpc={c: c for c in ("summary", "devs", "pools", "get_version", "get_psu",
                                "get_miner_info", "get_error_code", "status")},
            joinable=_btminer_joinable, rpc_error="btminer", luci_redirect=True),
    Capture("whatsminer-v2-errors", "whatsminer/v2",
            rpc={**{c: c for c in ("summary", "devs", "pools", "get_version", "get_psu",
                                   "get_miner_info", "status")},
                 "get_error_code": "get_error_code_with_errors"},
            joinable=_btminer_joinable, rpc_error="btminer", luci_redirect=True),
    Capture("whatsminer-v3", "whatsminer/v3",
            v3={"get.device.info": "get_device_info",
                "get.miner.status:summary": "get_miner_status_summary",
                "get.miner.status:edevs": "get_miner_status_edevs",
                "get.miner.status:pools": "get_miner_status_pools"}),
    Capture("whatsminer-v3-errors", "whatsminer/v3",
            v3={"get.device.info": "get_device_info_with_errors",
                "get.miner.status:summary": "get_miner_status_summary",
                "get.miner.status:edevs": "get_miner_status_edevs",
                "get.miner.status:pools": "get_miner_status_pools"}),
    # a v3 rig whose 4028 still answers, every v2 command with btminer's error: pyasic 0.79's
    # factory raises TypeError on it (get_version's "Msg" is a string, not a dict)
    Capture("whatsminer-v3-v2-port", "whatsminer/v3", rpc={"": ""}, rpc_error="btminer",
            luci_redirect=True,
            v3={"get.device.info": "get_device_info",
                "get.miner.status:summary": "get_miner_status_summary",
                "get.miner.status:edevs": "get_miner_status_edevs",
                "get.miner.status:pools": "get_miner_status_pools"}),
    Capture("avalon-q", "avalonminer/current",
            rpc={c: c for c in ("version", "devdetails", "summary", "devs", "stats", "pools",
                                "config", "coin", "check", "litestats")},
            joinable=lambda c: True, derived_estats=True),
    Capture("bitaxe", "bitaxe/v2_0_0", web={"/api/system/info": "system_info"},
            front_page="<!doctype html><html><head><title>AxeOS</title></head>"
                       "<body><app-root></app-root></body></html>"),
    Capture("luxos", "luxminer/v1",
            rpc={c: c for c in ("version", "summary", "stats", "devs", "fans", "temps", "power",
                                "pools", "config", "profiles", "events")}
            | {f"{c}:{i}": f"{c}_{i}" for c in ("healthchipget", "voltageget") for i in range(3)},
            joinable=lambda c: True),
    Capture("epic", "epic/v1",
            web_4028={f"/{c}": s for c, s in (("summary", "summary"), ("capabilities",
                                                                       "capabilities"),
                                              ("network", "network"),
                                              ("hashrate", "chip_hashrates"),
                                              ("temps", "temps"))},
            front_page="<!DOCTYPE html><html><head><title>Miner Web Dashboard</title></head>"
                       "<body></body></html>"),
]
# Braiins OS 25.07 is captured as gRPC replies only: pyasic 0.79 builds its gRPC class (BOSer)
# only for a model its RPC `devdetails` names, which the capture lacks; without it pyasic picks
# BOSMiner (pre-gRPC: bosminer RPC + LuCI) and would read nothing of what the capture holds.


class ReplayRig:
    """One captured rig on its own address."""

    def __init__(self, capture: Capture, ip: str, root: Path, web_password: str = "root") -> None:
        self.capture, self.ip, self.folder = capture, ip, root / capture.folder
        self.web_password = web_password  # sites change the default: tests set their own
        self.requests: list[str] = []

    def load(self, stem: str) -> Any:
        """A captured reply, parsed (sent compact, as firmware sends it)."""
        if self.capture.bundle is not None:
            return json.loads(self.capture.bundle.read_text())[stem]
        return json.loads((self.folder / f"{stem}.json").read_text())

    def _description(self) -> str:
        for stem in ("version", "summary", "devs"):
            if stem in self.capture.rpc.values():
                status = self.load(stem).get("STATUS")
                if isinstance(status, list) and status:
                    return str(status[0].get("Description", ""))
        return ""

    def rpc_error(self, command: str) -> dict[str, Any]:
        """The firmware's own reply to a command it does not know."""
        now = int(time.time())
        if self.capture.rpc_error == "btminer":
            return {"STATUS": "E", "When": now, "Code": 14, "Msg": "invalid cmd",
                    "Description": ""}
        return {"STATUS": [{"STATUS": "E", "When": now, "Code": 14, "Msg": "Invalid command",
                            "Description": self._description()}], "id": 1}

    def rpc_reply(self, command: str, parameter: str | None = None) -> dict[str, Any]:
        """Reply to one RPC request (joined commands as the firmware treats them)."""
        parts = command.split("+")
        if len(parts) > 1:
            joinable = self.capture.joinable
            if joinable is None or not all(joinable(p) for p in parts):
                return self.rpc_error(command)
            replies = {p: self.one_rpc(p, None) for p in parts}
            if any(_is_error(r) for r in replies.values()):
                return self.rpc_error(command)
            return {**{p: [r] for p, r in replies.items()}, "id": 1}
        return self.one_rpc(command, parameter)

    def one_rpc(self, command: str, parameter: str | None) -> dict[str, Any]:
        """One plain command."""
        key = f"{command}:{parameter}" if parameter not in (None, "") else command
        if key in self.capture.rpc:
            return dict(self.load(self.capture.rpc[key]))
        if command == "estats" and self.capture.derived_estats:
            stats = dict(self.load("stats"))
            stats["STATS"] = [s for s in stats["STATS"]
                              if not str(s.get("ID", "")).startswith("POOL")]
            return stats
        return self.rpc_error(command)

    def v3_reply(self, request: dict[str, Any]) -> dict[str, Any]:
        """Whatsminer API v3: `{"cmd": ..., "param": ...}`."""
        cmd, param = str(request.get("cmd", "")), request.get("param")
        key = f"{cmd}:{param}" if isinstance(param, str) and param else cmd
        if key in self.capture.v3:
            return dict(self.load(self.capture.v3[key]))
        return {"code": -2, "when": int(time.time()), "msg": "invalid command", "desc": cmd}

    def http(self, port: int, path: str, headers: dict[str, str], tls: bool) -> Http:
        """Reply to one HTTP GET/POST."""
        c = self.capture
        path = path.split("?", 1)[0]
        if port == 4028:
            stem = c.web_4028.get(path)
            return Http(200, compact(self.load(stem)), "application/json") if stem else NOT_FOUND
        if c.digest_realm is not None:
            auth = DigestAuth(realm=c.digest_realm, password=self.web_password)
            header = headers.get("authorization", "")
            if not (auth.verify("GET", header) or auth.verify("POST", header)):
                self.requests.append(f"http:{port}:{path} denied" if header else
                                     f"http:{port}:{path} challenged")
                challenge = auth.challenge()
                return Http(401, challenge.body, "text/html", challenge.headers)
            self.requests.append(f"http:{port}:{path} authenticated")
        if c.luci_redirect and not tls:
            return Http(307, b"", headers=(("Location", f"https://{self.ip}/cgi-bin/luci"),))
        if c.luci_redirect and path.startswith("/cgi-bin/luci"):
            return Http(200, b'<html><head><title>LuCI</title></head><body><form '
                             b'action="/cgi-bin/luci" method="post"></form></body></html>')
        if path == "/" and c.front_page is not None:
            return Http(200, c.front_page.encode())
        stem = c.web.get(path)
        return Http(200, compact(self.load(stem)), "application/json") if stem else NOT_FOUND


def _is_error(reply: dict[str, Any]) -> bool:
    status = reply.get("STATUS")
    if isinstance(status, list) and status and isinstance(status[0], dict):
        return status[0].get("STATUS") == "E"
    return status == "E"


async def _closing(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader, limit: int = 65536) -> dict[str, Any]:
    buf = b""
    while len(buf) < limit:
        chunk = await reader.read(4096)
        if not chunk:
            break
        buf += chunk
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            parsed = json.loads(buf.rstrip(b"\x00").decode())
            return parsed if isinstance(parsed, dict) else {}
    return {}


def rpc_handler(rig: ReplayRig) -> Callable[..., Awaitable[None]]:
    """cgminer-style: one request, the reply and a NUL in segments, then close."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            command = str(request.get("command", ""))
            rig.requests.append(command)
            param = request.get("parameter")
            reply = rig.rpc_reply(command, None if param is None else str(param))
            await send_segments(writer, compact(reply) + b"\x00")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await _closing(writer)
    return serve


def v3_handler(rig: ReplayRig) -> Callable[..., Awaitable[None]]:
    """Whatsminer API v3: length-prefixed JSON request and reply."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = struct.unpack("<I", await reader.readexactly(4))[0]
            request = json.loads(await reader.readexactly(min(size, 65536)))
            rig.requests.append(f"v3:{request.get('cmd')}:{request.get('param')}")
            body = compact(rig.v3_reply(request if isinstance(request, dict) else {}))
            await send_segments(writer, struct.pack("<I", len(body)) + body)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError,
                asyncio.CancelledError):
            pass
        finally:
            await _closing(writer)
    return serve


def http_handler(rig: ReplayRig, port: int, tls: bool = False) -> Callable[..., Awaitable[None]]:
    """Just enough HTTP/1.1 for httpx: keep-alive, Content-Length, GET/POST."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                rig.requests.append(f"http:{port}:{method} {path}")
                reply = rig.http(port, path, headers, tls)
                out = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'OK')}",
                       f"Content-Type: {reply.content_type}",
                       f"Content-Length: {len(reply.body)}",
                       *(f"{k}: {v}" for k, v in reply.headers)]
                await send_segments(writer, ("\r\n".join(out) + "\r\n\r\n").encode()
                                    + reply.body)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            await _closing(writer)
    return serve


def _tls_context(folder: Path) -> ssl.SSLContext:
    """A self-signed certificate, as a rig's LuCI has (pyasic does not verify it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "WhatsMiner")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "replay.crt", folder / "replay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


@dataclass
class ReplayFarm:
    """Every capture on its own address: `base` is the first three octets (127.x.y)."""

    base: str = "127.77.0"
    root: Path | None = None
    names: tuple[str, ...] | None = None
    web_password: str = "root"
    extra: tuple[Capture, ...] = ()  # served beside the reference captures (bundled replies)
    rigs: list[ReplayRig] = field(default_factory=list)
    _servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> ReplayFarm:
        """Bind every rig's ports."""
        root = self.root or reference_dir()
        if root is None:
            raise FileNotFoundError(f"no {REFERENCE} beside the repository")
        captures = [c for c in (*CAPTURES, *self.extra)
                    if self.names is None or c.name in self.names]
        tls: ssl.SSLContext | None = None
        with tempfile.TemporaryDirectory() as tmp:
            if any(c.luci_redirect for c in captures):
                tls = _tls_context(Path(tmp))
            for n, capture in enumerate(captures, start=1):
                ip = str(ipaddress.IPv4Address(f"{self.base}.{n}"))
                rig = ReplayRig(capture, ip, root, self.web_password)
                self.rigs.append(rig)
                await self._bind(rig, tls)
        return self

    async def _bind(self, rig: ReplayRig, tls: ssl.SSLContext | None) -> None:
        c, ip = rig.capture, rig.ip
        ports: list[tuple[Callable[..., Awaitable[None]], int, ssl.SSLContext | None]] = []
        if c.rpc:
            ports.append((rpc_handler(rig), 4028, None))
        if c.web_4028:
            ports.append((http_handler(rig, 4028), 4028, None))
        if c.v3:
            ports.append((v3_handler(rig), 4433, None))
        if c.web or c.front_page or c.digest_realm or c.luci_redirect:
            ports.append((http_handler(rig, 80), 80, None))
        if c.luci_redirect and tls is not None:
            ports.append((http_handler(rig, 443, tls=True), 443, tls))
        for handler, port, ctx in ports:
            self._servers.append(await asyncio.start_server(handler, ip, port, ssl=ctx,
                                                            reuse_address=True))

    def rig(self, name: str) -> ReplayRig:
        """The rig replaying one capture."""
        return next(r for r in self.rigs if r.capture.name == name)

    async def stop(self) -> None:
        """Close every port."""
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def __aenter__(self) -> ReplayFarm:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _main(args: argparse.Namespace) -> None:
    names = tuple(args.only.split(",")) if args.only else None
    async with ReplayFarm(base=args.base, names=names) as farm:
        for rig in farm.rigs:
            print(f"{rig.capture.name} {rig.ip}", flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text("\n".join(f"{r.capture.name} {r.ip}"
                                                       for r in farm.rigs))
        await asyncio.Event().wait()


def main() -> None:
    """Serve the captures until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="127.77.0")
    parser.add_argument("--only", default="", help="comma-separated capture names")
    parser.add_argument("--ready-file", default="")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
