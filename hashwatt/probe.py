"""`hashwatt check-config --probe`: after the config is valid, try what it points at.

The broker (connect and CONNACK with the configured credentials and TLS), InfluxDB (`/ping`,
then a query on the configured database with the configured login), a sample of rigs (one
real poll each, with the collector's own code, so the reason for a failure is the one the
collector would publish) and every PDU and meter. One line per check; nothing is written.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from hashwatt.config import Config
from hashwatt.contract import PduDoc


@dataclass(frozen=True)
class Check:
    """One probed thing: its name, whether it worked, and what was seen."""

    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        """`ok    what: detail` or `FAIL  what: detail`."""
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"


def probe_broker(cfg: Config, timeout_s: float = 5.0) -> Check:
    """Connect to the broker with the collector's credentials and TLS, then disconnect."""
    from hashwatt.mqtt import make_client

    what = f"broker {cfg.mqtt.host}:{cfg.mqtt.port}"
    client = make_client(cfg, f"hashwatt-probe-{cfg.site.name}-{random.randrange(10**6)}")
    result: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result["reason"] = reason
        done.set()

    client.on_connect = on_connect
    started = time.monotonic()
    try:
        client.connect(cfg.mqtt.host, cfg.mqtt.port, keepalive=cfg.mqtt.keepalive_s)
    except OSError as exc:
        return Check(what, False, f"cannot connect: {exc.strerror or exc}")
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return Check(what, False, f"no CONNACK within {timeout_s:g} s")
        reason = result["reason"]
        if reason.is_failure:
            return Check(what, False, f"refused: {reason}")
        user = f" as {cfg.mqtt.username}" if cfg.mqtt.username else ""
        return Check(what, True, f"connected{user} in {time.monotonic() - started:.2f} s")
    finally:
        client.disconnect()
        client.loop_stop()


def probe_influx(cfg: Config) -> Check:
    """InfluxDB answers /ping and a query on the configured database with its login."""
    import httpx

    from exporters.finance.store import query_client
    from hashwatt.influxql import InfluxQLError

    if cfg.influxdb is None:
        return Check("influxdb", True, "not configured (the collector does not need it)")
    what = f"influxdb {cfg.influxdb.url}"
    db = query_client(cfg)
    try:
        ping = db.client.get("/ping")
        version = ping.headers.get("X-Influxdb-Version", "?")
        db.execute('SHOW MEASUREMENTS LIMIT 1')
    except httpx.HTTPError as exc:
        return Check(what, False, f"unreachable: {exc}")
    except InfluxQLError as exc:
        return Check(what, False, f"answers (version {version}) but the query failed: {exc}")
    finally:
        db.close()
    return Check(what, True, f"version {version}, database {db.database} readable")


def sample(cfg: Config, size: int, seed: int | None = None) -> list[Any]:
    """Up to size rigs spread over the inventory (a random choice, stable for a seed)."""
    rigs = list(cfg.rigs)
    if len(rigs) <= size:
        return rigs
    return sorted(random.Random(seed).sample(rigs, size), key=lambda r: r.id)


async def probe_devices(cfg: Config, rigs: list[Any]) -> list[Check]:
    """One poll of each sampled rig and of every PDU and meter, with the collector's code."""
    from collector.inventory_checks import annotate
    from collector.mapping import Origin
    from collector.meters.source import MeterSource
    from collector.pdu.source import PduSource
    from collector.rigs import PyasicSource
    from collector.rigs.credentials import credentials_lookup
    from collector.service import poll_pdus, poll_rig

    checks: list[Check] = []
    pdu_readings: list[PduDoc] = []
    meters = MeterSource(cfg)
    try:
        outlets, _ok = await poll_pdus(cfg, PduSource(cfg), pdu_readings.append, meters=meters)
    finally:
        await meters.close()
    for r in sorted(pdu_readings, key=lambda r: str(r["pdu"])):  # gathered as they came
        outlets_seen = len(r.get("outlets") or [])
        detail = (f"{r.get('vendor') or ''} {r.get('model') or ''}".strip() or "answered")
        detail += f", {r['power_w']:.0f} W" if r.get("power_w") is not None else ""
        detail += f", {outlets_seen} outlets" if outlets_seen else ""
        checks.append(Check(f"PDU {r['pdu']}", bool(r.get("online")),
                            detail if r.get("online") else str(r.get("error"))))
    source = PyasicSource(timeout_s=cfg.collector.deadline_s,
                          credentials=credentials_lookup(cfg))
    slots = asyncio.Semaphore(cfg.collector.concurrency)

    async def one(rig: Any) -> Check:
        outlet_w = outlets.get(rig.id) if rig.pdu and rig.outlet else None
        origin = Origin(site=cfg.site.name, collector=cfg.collector.id, rig=rig,
                        ts_ms=int(time.time() * 1000), outlet_w=outlet_w)
        async with slots:
            reading = annotate(await poll_rig(source, origin, cfg.collector.deadline_s), rig,
                               outlet_w)
        if not reading["online"]:
            return Check(f"rig {rig.id} ({rig.address})", False, str(reading.get("error")))
        rate = reading.get("hashrate_ths")
        detail = f"{reading.get('make', '')} {reading.get('identified_model') or ''}".strip()
        detail += f", {rate:g} TH/s" if rate is not None else ""
        warnings = [w for w in (reading.get("wiring_reason"),) if w]
        if reading.get("model_mismatch"):
            warnings.append(f"the inventory says {rig.model}")
        return Check(f"rig {rig.id} ({rig.address})", not warnings,
                     "; ".join([detail, *warnings]))

    checks += await asyncio.gather(*(one(rig) for rig in rigs))
    return checks


def run_probe(cfg: Config, sample_size: int) -> list[Check]:
    """Every check, in order: broker, InfluxDB, PDUs and meters, sampled rigs."""
    checks = [probe_broker(cfg), probe_influx(cfg)]
    chosen = sample(cfg, sample_size)
    checks += asyncio.run(probe_devices(cfg, chosen))
    return checks
