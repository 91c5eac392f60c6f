"""`hashwatt discover`: find the rigs on a network and write (or reconcile) the inventory.

Each address gets a short TCP connect on the miner ports first (a LAN of mostly empty DHCP
addresses costs one connect timeout each, not pyasic's identification timeouts), then
pyasic identifies what answered. Concurrency is bounded by our own semaphore:
`MinerFactory.get_multiple_miners(limit=...)` creates every task up front (see DESIGN.md).
Against an existing inventory it reports new, missing and moved rigs (same MAC, new address).
"""

from __future__ import annotations

import asyncio
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
    """One rig that answered."""

    address: str
    make: str = ""
    model: str = ""
    firmware: str = ""
    mac: str = ""
    serial: str = ""
    hostname: str = ""


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


async def identify(address: str, timeout_s: float, factory: Any) -> Found | None:
    """What answers at address, or None (nothing listening, or not a miner)."""
    probes = await asyncio.gather(*(probe(address, port, timeout_s) for port in MINER_PORTS))
    if not any(p.outcome == "connected" for p in probes):
        return None
    try:
        miner = await asyncio.wait_for(factory.get_miner(address), 4 * timeout_s + 5)
    except Exception as exc:  # pyasic's identification can raise (DESIGN.md)
        log.info("%s: answers on a miner port but was not identified: %s", address,
                 type(exc).__name__)
        return None
    if miner is None or type(miner).__name__.startswith("Unknown"):
        return None
    calls = ("get_mac", "get_serial_number", "get_fw_ver", "get_hostname")
    mac, serial, firmware, hostname = await asyncio.gather(
        *(_call(miner, name, 4 * timeout_s + 5) for name in calls))
    return Found(address=address, make=_text(miner.make), model=_text(miner.raw_model),
                 firmware=firmware or _text(miner.firmware), mac=normalise_mac(mac),
                 serial=serial, hostname=hostname)


async def scan(cidrs: list[str], *, concurrency: int = 256, timeout_s: float = 1.0,
               terminal: bool | None = None) -> list[Found]:
    """Every rig on the networks, at most `concurrency` addresses at once."""
    from pyasic.miners.factory import MinerFactory

    targets = addresses(cidrs)
    factory = MinerFactory()
    slots = asyncio.Semaphore(concurrency)
    found: list[Found] = []
    with Progress("discover", len(targets), "addresses", terminal=terminal) as progress:
        async def one(address: str) -> None:
            async with slots:
                rig = await identify(address, timeout_s, factory)
            if rig is not None:
                found.append(rig)
            progress.advance(note=f"{len(found)} rigs")

        await asyncio.gather(*(one(a) for a in targets))
    return sorted(found, key=lambda r: ipaddress.ip_address(r.address))


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


def report(result: Reconciled, scanned: int, seconds: float) -> list[str]:
    """What changed, one line each, and a summary line."""
    lines = [f"new      {r['id']} {r['address']} {r['make']} {r['model']} mac {r['mac'] or '?'}"
             for r in result.new]
    lines += [f"moved    {r['id']} {old} -> {r['address']} (same MAC {r['mac']})"
              for r, old in result.moved]
    lines += [f"replaced {r['id']} {r['address']} answers with MAC {r['mac']}, the inventory "
              f"says {old}" for r, old in result.replaced]
    lines += [f"missing  {r['id']} {r['address']} (no answer; kept in the inventory)"
              for r in result.missing]
    found = len(result.rows) - len(result.missing)
    lines.append(f"discover: {scanned} addresses in {seconds:.1f} s: {found} rigs answered, "
                 f"{len(result.new)} new, {len(result.moved)} moved, {len(result.replaced)} "
                 f"replaced, {len(result.missing)} missing")
    return lines


def run(cidrs: list[str], *, output: Path | None, inventory: Path | None, concurrency: int,
        timeout_s: float) -> tuple[str, list[str]]:
    """Scan, reconcile, and return the CSV text and the report lines."""
    known = read_known(inventory) if inventory is not None else []
    started = time.monotonic()
    found = asyncio.run(scan(cidrs, concurrency=concurrency, timeout_s=timeout_s))
    result = reconcile(found, known)
    text = to_csv(result.rows)
    if output is not None:
        output.write_text(text)
    return text, report(result, len(addresses(cidrs)), time.monotonic() - started)
