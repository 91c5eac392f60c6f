"""Why a rig is silent: hung (TCP connects, nothing comes back), dead (connection refused,
no route, no answer to connect) or refusing our login (HTTP 401/403, an auth error).

A hung rig and a switched-off rig both end in "no reply"; what tells them apart is whether
the rig's TCP stack still accepts a connection. One short connect per port, only for rigs
that failed, costs a dead rig at most `timeout_s` more within its own poll slot. Which
failures are probed is decided by type, not by text: a source raises
`hashwatt.errors.NoAnswer` (the poll deadline's `PollTimeout` is one) when nothing answered
(collector.service.explain_offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
from dataclasses import dataclass

# the ports pyasic's identification tries first: cgminer-family RPC and the web UI
PORTS = (4028, 80)
# HTTP 401/403 and the firmware clients' own words (pyasic's VNish client: "Could not
# authenticate web token with miner")
AUTH = re.compile(r"\b(401|403)\b|unauthori[sz]ed|forbidden|auth(entication)? fail|"
                  r"could not authenticate|not authenticated|invalid (password|token|"
                  r"credentials)|wrong password|login fail", re.IGNORECASE)


# a client's words for "could not connect" (httpx, asyncio, the OS): the same silence as a
# timeout, so the connect probe explains it too
CONNECT_FAILED = re.compile(r"ConnectError|All connection attempts failed|Connection refused|"
                            r"ConnectionRefusedError|No route to host|Network is unreachable")


def connect_failed(text: str) -> bool:
    """True when an error text says the rig could not be connected to."""
    return bool(CONNECT_FAILED.search(text))


@dataclass(frozen=True)
class Probe:
    """What one TCP connect to a port gave: connected, refused, unreachable or timeout."""

    port: int
    outcome: str


async def probe(address: str, port: int, timeout_s: float) -> Probe:
    """Open and close one TCP connection."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout_s)
    except ConnectionRefusedError:
        return Probe(port, "refused")
    except TimeoutError:
        return Probe(port, "timeout")
    except OSError as exc:
        unreachable = exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
        return Probe(port, "unreachable" if unreachable else f"error {exc.strerror}")
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), timeout_s)
    return Probe(port, "connected")


def explain(probes: list[Probe], first: str) -> str:
    """The reason text: `first` (what the poll said) and what the connects found."""
    connected = [p.port for p in probes if p.outcome == "connected"]
    if connected:
        which = (f"port {connected[0]} accepts" if len(connected) == 1 else
                 f"ports {' and '.join(str(p) for p in connected)} accept")
        return f"{first}: rig hung? ({which} connections but nothing answers)"
    outcomes = {p.outcome for p in probes}
    ports = "/".join(str(p.port) for p in probes)
    if outcomes == {"refused"}:
        return (f"{first}: connection refused on {ports}: rig off, rebooting or its "
                f"miner software stopped")
    if "unreachable" in outcomes:
        return f"{first}: no route to host: rig off or cut off from the network"
    if outcomes == {"timeout"}:
        return f"{first}: no answer to connect on {ports}: rig off or unreachable"
    return f"{first}: connect failed ({', '.join(sorted(outcomes))})"


async def diagnose(address: str, first: str, timeout_s: float = 1.0) -> str:
    """A reason for a silent rig that tells hung from dead."""
    probes = await asyncio.gather(*(probe(address, port, timeout_s) for port in PORTS))
    return explain(list(probes), first)


def login_refused(text: str) -> str | None:
    """A reason when an error text says our login was refused, else None."""
    if AUTH.search(text):
        return f"login refused ({text[:120]}): check the rig's credentials"
    return None
