"""`hashwatt discover`: find the rigs on a network and write (or reconcile) the inventory.

Each address gets a short TCP connect on the miner ports first (a LAN of mostly empty DHCP
addresses costs one connect timeout each, not pyasic's identification timeouts), then
pyasic identifies what answered. Concurrency is bounded by our own semaphore:
`MinerFactory.get_multiple_miners(limit=...)` creates every task up front (see DESIGN.md).
Against an existing inventory it reports new, missing and moved rigs (same MAC, new address).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import ipaddress
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.diagnose import probe
from hashwatt.config import RigConfig, normalise_mac, read_csv_models
from hashwatt.errors import ConfigError, UsageError
from hashwatt.progress import Progress

log = logging.getLogger(__name__)

# cgminer-family RPC, the web UI (Antminer CGI, AxeOS), Whatsminer API v3
MINER_PORTS = (4028, 80, 4433)
COLUMNS = ["id", "address", "make", "model", "firmware", "mac", "serial", "rack", "slot",
           "customer", "pdu", "outlet", "pdu_unit", "maintenance"]
MAX_ADDRESSES = 65536
ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DiscoverError(UsageError, ValueError):
    """A bad network argument or inventory: one line."""


@dataclass(frozen=True, kw_only=True)
class Found:
    """One rig that answered (`missing`: what it did not tell, and why)."""

    address: str
    make: str = ""
    model: str = ""
    firmware: str = ""
    mac: str = ""
    serial: str = ""
    hostname: str = ""
    missing: str = ""


@dataclass(frozen=True, kw_only=True)
class Unknown:
    """An address that answers on a miner port but is no rig we could identify, and why."""

    address: str
    reason: str


def addresses(cidrs: list[str]) -> list[str]:
    """The host addresses of the networks, in order, without duplicates."""
    out: dict[str, None] = {}
    for text in cidrs:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise DiscoverError(f"{text!r} is not a network: give CIDRs like 10.0.1.0/24 "
                                "or single addresses") from None
        if net.num_addresses > MAX_ADDRESSES:
            raise DiscoverError(f"{text}: {net.num_addresses} addresses is more than one "
                                f"scan takes ({MAX_ADDRESSES}): split it")
        hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
        out.update((str(host), None) for host in hosts)
    return list(out)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


async def _call(miner: Any, name: str, timeout_s: float) -> str:
    """One pyasic getter, bounded; a failing getter leaves its column empty."""
    try:
        return _text(await asyncio.wait_for(getattr(miner, name)(), timeout_s))
    except Exception as exc:  # firmware that lacks the call, or a parser failing on it
        log.debug("%s: %s failed: %s", miner.ip, name, exc)
        return ""


async def identify(address: str, timeout_s: float, factory: Any) -> Found | Unknown | None:
    """What answers at address: a rig, something that is not one (with the reason), or None
    (nothing listening)."""
    probes = await asyncio.gather(*(probe(address, port, timeout_s) for port in MINER_PORTS))
    ports = [p.port for p in probes if p.outcome == "connected"]
    if not ports:
        return None
    deadline = 4 * timeout_s + 5
    try:
        miner = await asyncio.wait_for(factory.get_miner(address), deadline)
    except TimeoutError:
        return Unknown(address=address, reason=f"{_ports(ports)} connections but nothing "
                       f"answered identification within {deadline:g} s: a hung rig?")
    except Exception as exc:  # pyasic's identification can raise (DESIGN.md)
        seen = await describe(address, ports, timeout_s)
        return Unknown(address=address, reason=f"identification failed "
                       f"({type(exc).__name__}: {str(exc)[:80]}); {seen}")
    if miner is None or type(miner).__name__.startswith("Unknown"):
        seen = await describe(address, ports, timeout_s)
        if _silent(seen):
            return Unknown(address=address, reason=f"{_ports(ports)} connections but nothing "
                           "answers: a hung rig?")
        return Unknown(address=address, reason=f"no miner firmware pyasic knows: {seen}")
    calls = ("get_mac", "get_serial_number", "get_fw_ver", "get_hostname")
    mac, serial, firmware, hostname = await asyncio.gather(
        *(_call(miner, name, deadline) for name in calls))
    make, model = _text(miner.make), _text(miner.raw_model)
    if not mac and 4028 in ports:
        mac = await _rpc_mac(address, timeout_s)
    # (pyasic's `miner.firmware` is the family, "Stock" or "ePIC": not a version, not written)
    lacking = [name for name, value in (("model", model), ("firmware version", firmware),
                                        ("MAC", mac)) if not value]
    missing = ""
    if lacking:
        web = await describe(address, [80], timeout_s) if 80 in ports else ""
        why = ("its web UI refuses the default login" if "HTTP 401" in web or "HTTP 403" in web
               else "its replies were slow, refused or did not parse")
        family = "" if model else f" (pyasic took it for {type(miner).__name__})"
        missing = f"{', '.join(lacking)} not read: {why}{family}"
    return Found(address=address, make=make, model=model, firmware=firmware,
                 mac=normalise_mac(mac), serial=serial, hostname=hostname, missing=missing)


async def _rpc_mac(address: str, timeout_s: float) -> str:
    """The MAC from a cgminer-style `config` reply (`CONFIG[0].MACAddr`, as LuxOS gives it):
    pyasic 0.79's LuxOS `_get_mac` returns None before reading it (luxminer.py, a stray
    `return None` above the parser)."""
    import json

    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, 4028),
                                                timeout_s)
    except (OSError, TimeoutError):
        return ""
    try:
        writer.write(b'{"command":"config"}')
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 2 * timeout_s + 1)
        reply = json.loads(data.rstrip(b"\x00").decode("utf-8", "replace"))
        return str(reply["CONFIG"][0].get("MACAddr") or "")
    except (OSError, TimeoutError, ValueError, KeyError, IndexError, TypeError,
            AttributeError):
        return ""
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout_s)


def _ports(ports: list[int]) -> str:
    return (f"port {ports[0]} accepts" if len(ports) == 1 else
            f"ports {' and '.join(str(p) for p in ports)} accept")


async def describe(address: str, ports: list[int], timeout_s: float) -> str:
    """What answers on the ports, for an operator to recognise: an HTTP server's status,
    Server header and title, or what a TCP port sends (an SSH banner on 4028 ...)."""
    parts = []
    for port in ports:
        look = _http_banner(address, timeout_s) if port == 80 else \
            _tcp_banner(address, port, timeout_s)
        try:  # overall: httpx's timeouts are per read, and a slowloris reads forever
            parts.append(await asyncio.wait_for(look, 2 * timeout_s + 1))
        except TimeoutError:
            parts.append(f"port {port} answers too slowly to read")
    return "; ".join(parts)


def _silent(description: str) -> bool:
    return all(part.endswith("accepts connections but says nothing")
               for part in description.split("; "))


async def _http_banner(address: str, timeout_s: float) -> str:
    import httpx

    host = f"[{address}]" if ":" in address else address
    try:
        async with httpx.AsyncClient(timeout=timeout_s + 1) as client:
            resp = await client.get(f"http://{host}/")
    except httpx.HTTPError as exc:
        return f"port 80 accepts but gives no HTTP answer ({type(exc).__name__})"
    server = resp.headers.get("server")
    title = re.search(r"<title[^>]*>([^<]{1,80})", resp.text, re.IGNORECASE)
    realm = re.search(r'realm="([^"]{1,60})"', resp.headers.get("www-authenticate", ""))
    bits = [f"HTTP {resp.status_code}"]
    bits += [f"server {server!r}"] if server else []
    bits += [f"title {' '.join(title.group(1).split())!r}"] if title else []
    bits += [f"login realm {realm.group(1)!r}"] if realm else []
    return f"port 80 answers {', '.join(bits)}"


async def _tcp_banner(address: str, port: int, timeout_s: float) -> str:
    """What the port sends by itself, else what it answers to a cgminer `version` request."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port),
                                                timeout_s)
    except (OSError, TimeoutError):
        return f"port {port} no longer accepts connections"
    try:
        data = b""
        with contextlib.suppress(TimeoutError, OSError):
            data = await asyncio.wait_for(reader.read(120), 0.5)
        if data:
            return f"port {port} sends {_printable(data)!r} by itself, no miner API does"
        with contextlib.suppress(TimeoutError, OSError):
            writer.write(b'{"command":"version"}')
            await writer.drain()
            data = await asyncio.wait_for(reader.read(120), timeout_s)
        if data:
            return f"port {port} answers {_printable(data)!r}"
        return f"port {port} accepts connections but says nothing"
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), timeout_s)


def _printable(data: bytes) -> str:
    return " ".join(data.decode("utf-8", "replace").split())[:80]


async def scan(cidrs: list[str], *, concurrency: int = 256, timeout_s: float = 1.0,
               terminal: bool | None = None) -> tuple[list[Found], list[Unknown]]:
    """Every rig on the networks and every address that answers without being one, at most
    `concurrency` addresses at once."""
    from pyasic.miners.factory import MinerFactory

    targets = addresses(cidrs)
    factory = MinerFactory()
    slots = asyncio.Semaphore(concurrency)
    found: list[Found] = []
    unknown: list[Unknown] = []
    with Progress("discover", len(targets), "addresses", terminal=terminal) as progress:
        async def one(address: str) -> None:
            async with slots:
                rig = await identify(address, timeout_s, factory)
            if isinstance(rig, Found):
                found.append(rig)
            elif isinstance(rig, Unknown):
                unknown.append(rig)
            progress.advance(note=f"{len(found)} rigs")

        await asyncio.gather(*(one(a) for a in targets))

    def order(item: Found | Unknown) -> Any:
        return ipaddress.ip_address(item.address)

    return sorted(found, key=order), sorted(unknown, key=order)


@dataclass(kw_only=True)
class Reconciled:
    """The inventory after a scan, and what changed."""

    rows: list[dict[str, str]] = field(default_factory=list)
    new: list[dict[str, str]] = field(default_factory=list)
    moved: list[tuple[dict[str, str], str]] = field(default_factory=list)  # (row, old address)
    missing: list[dict[str, str]] = field(default_factory=list)
    replaced: list[tuple[dict[str, str], str]] = field(default_factory=list)  # (row, old mac)


def _row(rig: RigConfig) -> dict[str, str]:
    data = rig.model_dump()
    return {k: ("yes" if data.get(k) is True else "" if data.get(k) in (None, False)
                else str(data[k])) for k in COLUMNS}


def _found_cells(found: Found) -> dict[str, str]:
    return {"address": found.address, "make": found.make, "model": found.model,
            "firmware": found.firmware, "mac": found.mac, "serial": found.serial}


def _new_id(found: Found, taken: set[str]) -> str:
    base = found.hostname if ID_OK.match(found.hostname or "") else \
        "rig-" + found.address.replace(".", "-").replace(":", "-")
    rig_id, n = base, 2
    while rig_id in taken:
        rig_id, n = f"{base}-{n}", n + 1
    return rig_id


def reconcile(found: list[Found], known: list[RigConfig]) -> Reconciled:
    """Match what answered to the inventory: by MAC first, then by address."""
    out = Reconciled()
    by_mac = {normalise_mac(r.mac): r for r in known if r.mac}
    by_address = {r.address: r for r in known}
    matched: set[str] = set()
    taken = {r.id for r in known}
    for rig in found:
        old = by_mac.get(rig.mac) if rig.mac else None
        if old is None and rig.address in by_address and by_address[rig.address].id not in \
                matched:
            old = by_address[rig.address]
        if old is None or old.id in matched:
            row = {**dict.fromkeys(COLUMNS, ""), "id": _new_id(rig, taken),
                   **_found_cells(rig)}
            taken.add(row["id"])
            out.new.append(row)
        else:
            matched.add(old.id)
            row = {**_row(old), **{k: v for k, v in _found_cells(rig).items() if v}}
            if old.address != rig.address:
                out.moved.append((row, old.address))
            elif old.mac and rig.mac and normalise_mac(old.mac) != rig.mac:
                out.replaced.append((row, old.mac))
        out.rows.append(row)
    for inventoried in known:
        if inventoried.id not in matched:
            row = _row(inventoried)
            out.missing.append(row)
            out.rows.append(row)  # kept: its rack, customer and outlet are still worth having
    return out


def read_known(path: Path) -> list[RigConfig]:
    """The rigs of an existing inventory CSV (every problem in one ConfigError)."""
    rigs, problems = read_csv_models(path, RigConfig)
    if problems:  # one line each, as check-config prints them
        raise ConfigError(problems)
    return [rig for _, rig in rigs]


def to_csv(rows: list[dict[str, str]]) -> str:
    """The inventory CSV (the columns check-config reads)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def report(result: Reconciled, scanned: int, seconds: float, *,
           unknown: list[Unknown] | None = None, found: list[Found] | None = None) -> list[str]:
    """What changed, one line each, what answered without being a rig we know (and what a
    rig did not tell), and a summary line."""
    unknown = unknown or []
    lines = [f"new      {r['id']} {r['address']} {r['make']} {r['model']} mac {r['mac'] or '?'}"
             for r in result.new]
    lines += [f"moved    {r['id']} {old} -> {r['address']} (same MAC {r['mac']})"
              for r, old in result.moved]
    lines += [f"replaced {r['id']} {r['address']} answers with MAC {r['mac']}, the inventory "
              f"says {old}" for r, old in result.replaced]
    lines += [f"missing  {r['id']} {r['address']} (no answer; kept in the inventory)"
              for r in result.missing]
    ids = {r["address"]: r["id"] for r in result.rows}
    lines += [f"partial  {ids.get(f.address, '?')} {f.address}: {f.missing}"
              for f in found or [] if f.missing]
    lines += [f"unknown  {u.address}: {u.reason} (not in the inventory)" for u in unknown]
    answered = len(result.rows) - len(result.missing)
    lines.append(f"discover: {scanned} addresses in {seconds:.1f} s: {answered} rigs answered, "
                 f"{len(result.new)} new, {len(result.moved)} moved, {len(result.replaced)} "
                 f"replaced, {len(result.missing)} missing, {len(unknown)} unknown")
    return lines


def run(cidrs: list[str], *, output: Path | None, inventory: Path | None, concurrency: int,
        timeout_s: float) -> tuple[str, list[str]]:
    """Scan, reconcile, and return the CSV text and the report lines."""
    known = read_known(inventory) if inventory is not None else []
    started = time.monotonic()
    found, unknown = asyncio.run(scan(cidrs, concurrency=concurrency, timeout_s=timeout_s))
    result = reconcile(found, known)
    text = to_csv(result.rows)
    if output is not None:
        output.write_text(text)
    return text, report(result, len(addresses(cidrs)), time.monotonic() - started,
                        unknown=unknown, found=found)
