"""The collector daemon: poll every rig each interval, publish every reading at QoS 1."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from collector.diagnose import connect_failed, diagnose, login_refused
from collector.events import StateLog
from collector.inventory_checks import PoolWatch, annotate
from collector.mapping import Origin, offline_reading
from collector.meters.source import MeterSource
from collector.pdu.source import PduSource
from collector.publisher import Publisher
from collector.rigs import PyasicSource
from collector.rigs.credentials import credentials_lookup
from collector.sanitise import sanitise_pdu, sanitise_rig
from hashwatt.config import Config, ConfigError, MeterConfig, PduConfig, RigConfig
from hashwatt.contract import CycleStatsDoc, PduDoc, RigDoc, pdu_doc
from hashwatt.errors import NoAnswer, PollTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")


class RigSource(Protocol):
    """Anything that turns a rig into a reading."""

    identifications: int

    async def poll(self, origin: Origin) -> RigDoc:
        """Poll one rig."""
        ...

    def failed(self, rig_id: str) -> None:
        """Count a failure that happened outside poll (a deadline)."""
        ...


@dataclass
class Cycle:
    """Counters of one poll cycle."""

    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    failed: int = 0
    timeout: int = 0
    published: int = 0
    fields_dropped: int = 0


async def within(poll: Awaitable[T], deadline_s: float) -> T:
    """Await one poll under a hard deadline; PollTimeout (a TimeoutError) when it passes."""
    try:
        return await asyncio.wait_for(poll, deadline_s)
    except TimeoutError as exc:
        raise PollTimeout(deadline_s) from exc


async def poll_rig(source: RigSource, origin: Origin, deadline_s: float) -> RigDoc:
    """Poll one rig under a hard deadline: a hung rig costs its own deadline and no more;
    a silent rig's reason says whether it is hung, dead or refusing our login."""
    return (await _poll_rig(source, origin, deadline_s))[0]


async def _poll_rig(source: RigSource, origin: Origin,
                    deadline_s: float) -> tuple[RigDoc, bool]:
    """poll_rig's reading and whether the deadline passed."""
    # a LAN host answers a connect in milliseconds: 0.5 s is ample for the probes
    probe_s = min(0.5, deadline_s / 4)
    try:
        reading = await within(source.poll(origin), deadline_s)
    except NoAnswer as exc:  # PollTimeout included: nothing came back, so probe why
        timed_out = isinstance(exc, PollTimeout)
        if timed_out:  # the source did not see its poll end
            source.failed(origin.rig.id)
        reading = offline_reading(origin, str(exc))
        reading["error"] = await explain_offline(origin.rig.address, exc, probe_s)
        return reading, timed_out
    except Exception as exc:  # a bug for one rig must not end the cycle for all
        log.exception("rig %s: unexpected error while polling", origin.rig.id)
        source.failed(origin.rig.id)
        return offline_reading(origin, f"collector error: {type(exc).__name__}"), False
    if not reading["online"]:
        reading["error"] = await explain_offline(origin.rig.address, reading.get("error"),
                                                 probe_s)
    return reading, False


async def explain_offline(address: str, error: str | NoAnswer | None,
                          timeout_s: float) -> str | None:
    """Hung, dead or login refused: the reason an operator can act on. A NoAnswer (nothing
    answered: a timeout, no miner at identification) is probed; a text is the rig's own
    words, checked for a refused login."""
    if error is None:
        return None
    if isinstance(error, NoAnswer) or connect_failed(error):
        return (await diagnose(address, str(error), timeout_s))[:512]
    return login_refused(error) or error


OutletPower = dict[str, float]  # rig id -> the power of the outlet the inventory maps it to


class DeviceSource(Protocol):
    """A PDU or meter source."""

    async def poll(self, device: Any, ts_ms: int) -> PduDoc:
        """Poll one device."""
        ...


def _pdu_offline(cfg: Config, pdu_id: str, ts_ms: int, error: str) -> PduDoc:
    return pdu_doc(ts_ms=ts_ms, site=cfg.site.name, pdu=pdu_id, collector=cfg.collector.id,
                   online=False, error=error)


async def poll_pdus(cfg: Config, source: DeviceSource, publish: Any, *,
                    meters: DeviceSource | None = None,
                    states: StateLog | None = None) -> tuple[OutletPower, int]:
    """Poll every PDU and meter under the deadline; return outlet power by the rig the
    inventory maps to the outlet, and how many answered."""
    semaphore = asyncio.Semaphore(cfg.collector.concurrency)
    devices: list[tuple[PduConfig | MeterConfig, DeviceSource]] = [(p, source) for p in cfg.pdus]
    devices += [(m, meters) for m in cfg.meters if meters is not None]

    async def one(pdu: PduConfig | MeterConfig, source: DeviceSource) -> PduDoc:
        async with semaphore:
            ts_ms = int(time.time() * 1000)
            try:
                reading = await within(source.poll(pdu, ts_ms), cfg.collector.deadline_s)
            except PollTimeout as exc:
                reading = _pdu_offline(cfg, pdu.id, ts_ms, str(exc))
            except Exception as exc:  # a bug for one PDU must not end the cycle for all
                log.exception("pdu %s: unexpected error while polling", pdu.id)
                reading = _pdu_offline(cfg, pdu.id, ts_ms,
                                       f"collector error: {type(exc).__name__}")
        sanitise_pdu(reading)
        if states is not None:
            states.pdu(reading)
        publish(reading)
        return reading

    readings = await asyncio.gather(*(one(device, src) for device, src in devices))
    # keyed by the rig the source mapped to the outlet (pdu, daisy-chain unit and outlet):
    # a link unit's outlet 3 is not the master's outlet 3
    power = {rig: w for r in readings if r["online"] for o in r.get("outlets", [])
             if (w := o.get("power_w")) is not None and (rig := o.get("rig"))}
    return power, sum(1 for r in readings if r["online"])


async def run_cycle(cfg: Config, source: RigSource, publish: Any, *,
                    rigs: list[RigConfig] | None = None,
                    outlet_power: OutletPower | None = None,
                    states: StateLog | None = None,
                    pools: PoolWatch | None = None) -> CycleStatsDoc:
    """Poll every rig once with bounded concurrency; publish each reading as it arrives."""
    rigs = cfg.rigs if rigs is None else rigs
    outlet_power = outlet_power or {}
    cycle = Cycle()
    semaphore = asyncio.Semaphore(cfg.collector.concurrency)
    identified_before = source.identifications

    async def one(rig: RigConfig) -> None:
        async with semaphore:
            outlet_w = outlet_power.get(rig.id) if rig.pdu and rig.outlet else None
            origin = Origin(site=cfg.site.name, collector=cfg.collector.id, rig=rig,
                            ts_ms=int(time.time() * 1000), outlet_w=outlet_w)
            reading, timed_out = await _poll_rig(source, origin, cfg.collector.deadline_s)
            reading = annotate(reading, rig, outlet_w)
            if pools is not None:
                await pools.annotate(reading, rig, getattr(source, "miners", {}).get(rig.id))
        cycle.fields_dropped += sanitise_rig(reading)
        if reading["online"]:
            cycle.ok += 1
        elif timed_out:
            cycle.timeout += 1
        else:
            cycle.failed += 1
        if states is not None:
            states.rig(reading)
        publish(reading)
        cycle.published += 1

    await asyncio.gather(*(one(rig) for rig in rigs))
    return {"cycle_s": round(time.monotonic() - cycle.started, 3), "rigs_total": len(rigs),
            "rigs_ok": cycle.ok, "rigs_failed": cycle.failed, "rigs_timeout": cycle.timeout,
            "identified": source.identifications - identified_before,
            "published": cycle.published, "fields_dropped": cycle.fields_dropped}


Reload = Callable[[], Config]


def _publish_counted(publisher: Publisher, flagged: list[int], reading: PduDoc) -> None:
    """Spool a PDU or meter reading, noting how many fields its sanitising dropped."""
    flagged.append(len(reading.get("invalid") or ()))
    publisher.publish_reading(reading)


def reload_inventory(cfg: Config, reload: Reload, source: RigSource) -> Config:
    """The config with the inventory (rigs, PDUs, meters) read again; the old one, with one
    error line, if the file is now wrong. Removed and readdressed rigs are forgotten by the
    source (identified again when they come back)."""
    try:
        new = reload()
    except (ConfigError, OSError, SystemExit) as exc:
        detail = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        log.error("SIGHUP: %s not reloaded (%s): keeping the %d rigs polled so far",
                  cfg.source, detail[:500], len(cfg.rigs))
        return cfg
    old = {r.id: r for r in cfg.rigs}
    fresh = {r.id: r for r in new.rigs}
    added = fresh.keys() - old.keys()
    removed = old.keys() - fresh.keys()
    changed = {i for i in fresh.keys() & old.keys() if fresh[i] != old[i]}
    for table in ("miners", "paths", "failures"):
        known = getattr(source, table, None)
        if isinstance(known, dict):
            for rig_id in removed | {i for i in changed if fresh[i].address != old[i].address}:
                known.pop(rig_id, None)
    if new.mqtt != cfg.mqtt or new.collector != cfg.collector:
        log.warning("SIGHUP: [mqtt] and [collector] changes take effect at the next restart; "
                    "only the inventory was reloaded")
    log.info("SIGHUP: inventory reloaded: %d rigs (%d added, %d removed, %d changed), "
             "%d PDUs, %d meters; the spool is kept", len(fresh), len(added), len(removed),
             len(changed), len(new.pdus), len(new.meters))
    return cfg.model_copy(update={"rigs": new.rigs, "pdus": new.pdus, "meters": new.meters})


def _on_hangup(flag: asyncio.Event) -> bool:
    """Route SIGHUP to flag (main thread only); False where signals cannot be caught."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, flag.set)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


async def run_collector(cfg: Config, *, cycles: int | None = None,
                        source: RigSource | None = None,
                        reload: Reload | None = None) -> None:
    """Poll forever (or `cycles` times), one cycle every interval; with `reload`, SIGHUP
    reads the inventory again before the next cycle."""
    source = source or PyasicSource(reidentify_after=cfg.collector.reidentify_after,
                                    fast_paths=cfg.collector.fast_paths,
                                    timeout_s=cfg.collector.deadline_s,
                                    credentials=credentials_lookup(cfg))
    pdu_source, meter_source = PduSource(cfg), MeterSource(cfg)
    publisher = Publisher(cfg)
    publisher.start()  # never waits for the broker: readings are spooled from the start
    overruns, done = 0, 0
    states = StateLog()
    hangup = asyncio.Event()
    hooked = reload is not None and _on_hangup(hangup)
    pools = PoolWatch(cfg.pools, timeout_s=min(2.0, cfg.collector.deadline_s / 2))
    log.info("collector %s: %d rigs every %g s", cfg.collector.id, len(cfg.rigs),
             cfg.collector.interval_s)
    try:
        while cycles is None or done < cycles:
            if hangup.is_set() and reload is not None:
                hangup.clear()
                cfg = reload_inventory(cfg, reload, source)
                if isinstance(source, PyasicSource):  # per-rig credentials may have changed
                    source.credentials = credentials_lookup(cfg)
                await meter_source.close()
                pdu_source, meter_source = PduSource(cfg), MeterSource(cfg)
            started = time.monotonic()
            # PDUs first: each rig's reading then carries its outlet's power of this cycle
            flagged: list[int] = []  # fields the PDU and meter readings had dropped
            outlet_power, pdus_ok = await poll_pdus(
                cfg, pdu_source, functools.partial(_publish_counted, publisher, flagged),
                meters=meter_source, states=states)
            stats = await run_cycle(cfg, source, publisher.publish_reading,
                                    outlet_power=outlet_power, states=states, pools=pools)
            stats.update({"pdus_total": len(cfg.pdus) + len(cfg.meters), "pdus_ok": pdus_ok,
                          "fields_dropped": stats["fields_dropped"] + sum(flagged),
                          **publisher.spool_stats()})
            done += 1
            spare = cfg.collector.interval_s - (time.monotonic() - started)
            overruns += spare < 0
            publisher.publish_stats({**stats, "overruns": overruns})
            states.cycle(stats, cfg.collector.interval_s)
            if cycles is None or done < cycles:
                await asyncio.sleep(max(spare, 0))
    finally:
        if hooked:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await meter_source.close()
        await asyncio.to_thread(publisher.stop)
