"""What every simulated firmware shares: the CGMiner reply envelope, joined commands as
cgminer's api.c answers them, and the HTTP side's defaults."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sim.model import Snapshot
from sim.wire import HttpResponse, not_found

SnapshotFn = Callable[[], Snapshot]
# cgminer api.c `cmds[]`: read commands a join may carry ("joinable" = true); any other known
# command inside a join answers "Access denied" (MSG_ACCDENY, 45), an unknown one "Invalid
# command" (MSG_INVCMD, 14)
JOINABLE = frozenset({"version", "config", "devs", "edevs", "pools", "summary", "notify",
                      "devdetails", "stats", "dbgstats", "estats", "coin", "usbstats",
                      "pgacount", "asccount", "lcd", "lockstats"})


def status(code: int, msg: str, description: str, ok: bool = True) -> list[dict]:
    """A cgminer STATUS section."""
    return [{"STATUS": "S" if ok else "E", "When": int(time.time()), "Code": code, "Msg": msg,
             "Description": description}]


def encode(reply: object) -> bytes:
    """Compact JSON, as cgminer's io_add builds it (no spaces)."""
    return json.dumps(reply, separators=(",", ":")).encode()


def session_token(rig_id: str, password: str, length: int = 32) -> str:
    """The token a simulated web or gRPC login hands out: fixed per rig and password."""
    return hashlib.sha256(f"{rig_id}/{password}".encode()).hexdigest()[:length]


def mac_of(snap: Snapshot) -> str:
    """A stable locally administered MAC address for the rig."""
    octets = [int(x) for x in snap.rig.ip.split(".")]
    return "02:48:57:{:02X}:{:02X}:{:02X}".format(*octets[1:])


@dataclass
class Vendor:
    """Base: a cgminer-style RPC that knows no command, 404 on every HTTP path.

    `quirks` switches the firmware's own shapes on (strings, glue, missing fields, refused
    joins); without it a vendor sends the tidy replies older tests were written against.
    """

    snap: SnapshotFn
    quirks: bool = True
    has_rpc = True
    has_http = False
    has_v3 = False
    has_grpc = False
    web_ports: ClassVar[tuple[int, ...]] = (80,)
    DESCRIPTION = "cgminer 4.11.1"
    # "cgminer": joins as api.c does them; "refuse": an API without joins takes "a+b" for one
    # unknown command (stock S19 BMMiner: pyasic's BaseMinerRPCAPI.multicommand then splits)
    JOIN = "cgminer"

    def rpc(self, command: str) -> dict | None:
        """Reply to one RPC command, None when the firmware does not know it."""
        return None

    def serialize(self, command: str, reply: dict) -> bytes:
        """The reply's bytes; vendors add their firmware's JSON quirks here."""
        return encode(reply)

    def invalid(self, ok: bool = False) -> dict:
        """cgminer's MSG_INVCMD reply."""
        return {"STATUS": status(14, "Invalid command", self.DESCRIPTION, ok), "id": 1}

    def rpc_bytes(self, command: str) -> bytes:
        """The whole reply to one request, joined commands included."""
        if "+" in command and (self.JOIN == "cgminer" or not self.quirks):
            return self._joined(command)
        reply = self.rpc(command) if "+" not in command else None
        return self.serialize(command, reply if reply is not None else self.invalid())

    def _joined(self, command: str) -> bytes:
        """cgminer api.c: `{"cmd1":[reply],"cmd2":[reply],"id":1}`, a repeated command once."""
        parts: list[bytes] = []
        seen: set[str] = set()
        for part in command.split("+"):
            if not part or part in seen:
                continue
            seen.add(part)
            reply = self.rpc(part)
            if reply is None:
                reply = self.invalid()
            elif part not in JOINABLE and self.quirks:
                reply = self.unjoinable(part)
            parts.append(encode(part) + b":[" + self.serialize(part, reply) + b"]")
        return b"{" + b",".join(parts) + b',"id":1}'

    def unjoinable(self, command: str) -> dict:
        """What a known command that may not be joined answers inside a join (MSG_ACCDENY)."""
        return {"STATUS": status(45, f"Access denied to '{command}' command", self.DESCRIPTION,
                                 False), "id": 1}

    def grpc_service(self) -> Any:
        """The grpclib servable for a gRPC firmware (Braiins OS+ only)."""
        return None

    def v3(self, request: dict) -> dict:
        """Reply to one length-framed request (Whatsminer API v3 only)."""
        return {}

    async def http(self, method: str, path: str, headers: dict[str, str],
                   body: bytes) -> HttpResponse:
        """Reply to one HTTP request."""
        return not_found()
