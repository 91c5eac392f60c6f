"""A simulated farm: many rigs, each on its own loopback address, speaking real protocols."""

from __future__ import annotations

import asyncio
import csv
import ipaddress
import json
import logging
import resource
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hashwatt.errors import ServiceError
from sim.launch import SnmpSim
from sim.model import HARDWARE, Scenario, SimRig, Snapshot, snapshot, tick_of
from sim.pdus import VARIATION_DIR, SimPdu, farm_spec, write_agent_files
from sim.vendors import VENDORS, Vendor
from sim.wire import (
    LOOPBACK,
    Delivery,
    FramedServer,
    HttpResponse,
    HttpServer,
    RpcServer,
    json_response,
    not_found,
)

log = logging.getLogger(__name__)

DEFAULT_MIX = ("s19pro", "m50", "a1246", "s21", "supra", "m30splus", "gamma")
# every simulated family, stock models first: the demo's farm
EVERY_FAMILY_MIX = (*DEFAULT_MIX, "avalonq", "m60s", "luxos", "vnish", "epic", "bosplus",
                    "at2880")
CUSTOMERS = ("acme-hosting", "blockfarm", "self")
RPC_PORT = 4028
V3_PORT = 4433  # Whatsminer API v3
GRPC_PORT = 50051  # Braiins OS+
SLOTS_PER_RACK = 10
# What a farm sends unless told otherwise: replies shaped like real firmware's, delivered in
# LAN-sized segments (`--replies tidy` / `--delivery loopback` for the old behaviour).
FIRMWARE_QUIRKS = True
LAN_DELIVERY = True
COLD_RACK = 5  # every fifth rack stands in an outdoor container in winter
COLD_AMBIENT_C = -12.0


def rig_addresses(base: str, count: int) -> list[str]:
    """count loopback addresses after base, skipping .0 and .255 host octets."""
    start = ipaddress.IPv4Address(base)
    if not start.is_loopback:
        raise ValueError(f"simulated rigs live on loopback only, not {base}")
    out: list[str] = []
    addr = start
    while len(out) < count:
        addr += 1
        if str(addr).split(".")[-1] not in ("0", "255"):
            out.append(str(addr))
    return out


def build_rigs(count: int, base: str = "127.10.0.0", mix: tuple[str, ...] = DEFAULT_MIX,
               scenarios: dict[str, Scenario] | None = None) -> list[SimRig]:
    """A farm of count rigs, models cycling through mix, ids r<rack>-s<slot>."""
    unknown = [m for m in mix if m not in HARDWARE]
    if unknown:
        raise ValueError(f"unknown simulated models {unknown}; known: {sorted(HARDWARE)}")
    rigs = []
    for i, ip in enumerate(rig_addresses(base, count)):
        rig_id = f"r{i // SLOTS_PER_RACK + 1:02d}-s{i % SLOTS_PER_RACK + 1:02d}"
        rack = i // SLOTS_PER_RACK + 1
        ambient = COLD_AMBIENT_C if rack % COLD_RACK == 0 else 24.0 + (rack - 1) % 4
        rigs.append(SimRig(rig_id=rig_id, ip=ip, hw_name=mix[i % len(mix)], ambient_c=ambient))
    scenarios = scenarios or {}
    missing = set(scenarios) - {r.rig_id for r in rigs}
    if missing:
        raise ValueError(f"scenario for unknown rigs: {sorted(missing)}")
    return [replace(r, scenario=scenarios.get(r.rig_id, r.scenario)) for r in rigs]


def write_inventory(rigs: list[SimRig], path: Path, pdus: list[SimPdu] | None = None) -> None:
    """Write the farm's inventory as the CSV a site would keep in a spreadsheet."""
    outlets = {r.rig_id: (p.pdu_id, n) for p in pdus or [] for n, r in enumerate(p.rigs, 1)}
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "address", "rack", "slot", "customer", "pdu", "outlet"])
        for i, rig in enumerate(rigs):
            rack, slot = rig.rig_id.split("-")
            pdu, outlet = outlets.get(rig.rig_id, ("", ""))
            out.writerow([rig.rig_id, rig.ip, rack.upper(), int(slot[1:]),
                          CUSTOMERS[(i // SLOTS_PER_RACK) % len(CUSTOMERS)], pdu, outlet])


def pdus_toml(pdus: list[SimPdu]) -> str:
    """[[pdus]] tables for the simulated PDUs (community = PDU id, as snmpsim serves them)."""
    return "".join(f'\n[[pdus]]\nid = "{p.pdu_id}"\naddress = "{p.ip}"\n'
                   f'rack = "R{p.pdu_id[-2:]}"\ncommunity = "{p.pdu_id}"\n' for p in pdus)


class FarmError(ServiceError):
    """The farm cannot start."""


@dataclass
class Farm:
    """Runs the rigs' servers in one asyncio loop."""

    rigs: list[SimRig]
    seed: int = 1
    tick_s: float = 10.0
    frozen: bool = False
    pdus: list[SimPdu] = field(default_factory=list)
    state_dir: Path | None = None
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    grpc_servers: list[Any] = field(default_factory=list)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    agent: SnmpSim | None = None
    quirks: bool = FIRMWARE_QUIRKS
    delivery: Delivery = field(default_factory=lambda: Delivery() if LAN_DELIVERY else LOOPBACK)
    _cache: dict[tuple[str, int], Snapshot] = field(default_factory=dict)
    _listeners: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scenarios = {r.rig_id: r.scenario for r in self.rigs}

    def current(self, rig: SimRig) -> Snapshot:
        """The rig's snapshot at the current tick, with its current scenario."""
        rig = replace(rig, scenario=self.scenarios[rig.rig_id])
        tick = tick_of(time.time(), self.tick_s, self.frozen)
        key = (rig.rig_id + rig.scenario, tick)
        if key not in self._cache:
            if len(self._cache) > 4 * len(self.rigs):
                self._cache.clear()
            self._cache[key] = snapshot(rig, self.seed, tick)
        return self._cache[key]

    async def start(self) -> None:
        """Bind every rig's ports and start the PDUs' SNMP agent."""
        _raise_fd_limit(len(self.rigs) * 4 + 256)
        for rig in self.rigs:
            await self._start_rig(rig)
        if self.pdus:
            await asyncio.to_thread(self._start_agent)

    def _spec(self) -> dict:
        return farm_spec(self.rigs, self.pdus, self.seed, self.tick_s, self.frozen,
                         self.scenarios)

    def _start_agent(self) -> None:
        if self.state_dir is None:
            raise FarmError("simulated PDUs need a state directory")
        data = write_agent_files(self.pdus, self._spec(), self.state_dir)
        endpoints = tuple(f"{p.ip}:161" for p in self.pdus)
        self.agent = SnmpSim(self.state_dir, data_dir=data, endpoints=endpoints,
                             variation_dir=VARIATION_DIR).start(timeout=120)

    async def _start_rig(self, rig: SimRig) -> None:
        if self.scenarios[rig.rig_id] is Scenario.OFFLINE:
            return
        vendor: Vendor = VENDORS[rig.hardware.kind](lambda: self.current(rig), self.quirks)

        def scenario() -> Scenario:
            return self.scenarios[rig.rig_id]

        listen = [(RpcServer(vendor.rpc_bytes, scenario, self.delivery).serve, RPC_PORT)
                  ] if vendor.has_rpc else []
        if vendor.has_http:
            web = HttpServer(vendor.http, scenario, self.delivery).serve
            listen += [(web, port) for port in vendor.web_ports]
        if vendor.has_v3:
            listen.append((FramedServer(vendor.v3, scenario, self.delivery).serve, V3_PORT))
        for handler, port in listen:
            await self._listen(handler, rig, port)
        if vendor.has_grpc:
            await self._listen_grpc(vendor.grpc_service(), rig)

    async def _listen_grpc(self, service: Any, rig: SimRig) -> None:
        from grpclib.server import Server

        server = Server([service])
        try:
            await server.start(rig.ip, GRPC_PORT)
        except OSError as exc:
            await self.stop()
            raise FarmError(f"cannot listen on {rig.ip}:{GRPC_PORT}: {exc.strerror}") from None
        self.grpc_servers.append(server)
        self._listeners.setdefault(rig.rig_id, []).append(server)

    async def _stop_rig(self, rig_id: str) -> None:
        """Switched off: its listeners close, so connections are refused as on a dead host."""
        for server in self._listeners.pop(rig_id, []):
            server.close()
            for pool in (self.servers, self.grpc_servers):
                if server in pool:
                    pool.remove(server)
            await server.wait_closed()

    async def _listen(self, handler: Any, rig: SimRig, port: int) -> None:
        ip = rig.ip
        try:
            server = await asyncio.start_server(handler, ip, port)
        except OSError as exc:
            await self.stop()
            raise FarmError(f"cannot listen on {ip}:{port}: {exc.strerror} (is another "
                            f"simulated farm using this subnet? see --base)") from None
        self.servers.append(server)
        self._listeners.setdefault(rig.rig_id, []).append(server)

    async def stop(self) -> None:
        """Close every listener."""
        for server in [*self.servers, *self.grpc_servers]:
            server.close()
        for server in [*self.servers, *self.grpc_servers]:
            await server.wait_closed()
        self.servers.clear()
        self.grpc_servers.clear()
        self._listeners.clear()
        if self.agent is not None:
            await asyncio.to_thread(self.agent.stop)
            self.agent = None

    async def _switch(self, rig_id: str, wanted: Scenario) -> None:
        """Change a rig's scenario; `offline` closes its ports, leaving it opens them again."""
        was = self.scenarios[rig_id]
        self.scenarios[rig_id] = wanted
        rig = next(r for r in self.rigs if r.rig_id == rig_id)
        if wanted is Scenario.OFFLINE and was is not Scenario.OFFLINE:
            await self._stop_rig(rig_id)
        elif was is Scenario.OFFLINE and wanted is not Scenario.OFFLINE:
            await self._start_rig(rig)

    async def control(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> HttpResponse:
        """Control API: GET /rigs (current snapshots), POST /rigs/<id>/scenario/<name>,
        POST /rigs/<id>/pool with {"url": ..., "user": ...} (its cgminer-family `pools`
        reply changes: a hijacked rig)."""
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "rigs" and parts[2] == "pool":
            from sim.vendors.antminer import POOL_CHANGES

            if parts[1] not in self.scenarios:
                return not_found()
            try:
                wanted = json.loads(body)
                POOL_CHANGES[parts[1]] = (str(wanted["url"]), str(wanted["user"]))
            except (ValueError, KeyError, TypeError):
                return HttpResponse(400, b'give {"url": ..., "user": ...}', "text/plain")
            return json_response({"rig": parts[1], "pool": wanted})
        if method == "GET" and parts == ["rigs"]:
            return json_response([_snapshot_json(self.current(r)) for r in self.rigs])
        if method == "POST" and len(parts) == 4 and parts[0] == "rigs" and parts[2] == "scenario":
            if parts[1] not in self.scenarios:
                return not_found()
            try:
                wanted = Scenario(parts[3])
            except ValueError:
                return HttpResponse(400, f"unknown scenario {parts[3]!r}".encode(), "text/plain")
            await self._switch(parts[1], wanted)
            if self.agent is not None and self.state_dir is not None:
                # the PDUs' agent re-reads the spec: an outlet follows its rig's scenario
                write_agent_files(self.pdus, self._spec(), self.state_dir)
            return json_response({"rig": parts[1], "scenario": parts[3]})
        return not_found()


def _snapshot_json(s: Snapshot) -> dict:
    return {"rig": s.rig.rig_id, "ip": s.rig.ip, "model": s.rig.hardware.model,
            "scenario": str(s.rig.scenario), "hashrate_gh": s.hashrate_gh,
            "power_w": s.power_w, "fans_rpm": s.fans_rpm, "uptime_s": s.uptime_s,
            "boards": [b.__dict__ for b in s.boards]}


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def run_farm(farm: Farm, control_port: int = 0, ready_file: Path | None = None,
                   duration: float | None = None) -> None:
    """Serve the farm until cancelled (or for duration seconds)."""
    await farm.start()
    control = None
    if control_port:
        server = HttpServer(farm.control, lambda: Scenario.NORMAL)
        control = await asyncio.start_server(server.serve, "127.0.0.1", control_port)
    if ready_file:
        ready_file.write_text(json.dumps({"rigs": len(farm.rigs)}))
    log.info("simulated farm: %d rigs serving", len(farm.rigs))
    try:
        await asyncio.sleep(duration if duration else float("inf"))
    finally:
        if control:
            control.close()
        await farm.stop()
