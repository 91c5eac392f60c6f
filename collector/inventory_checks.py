"""What the inventory says about a reading, and checks of the reading against it.

- maintenance: the rig's flag travels with its readings (alerts muted, availability skips it);
- model: the rig at the address identified as another model than the inventory says (the
  reading keeps the inventory's tags, and says what answered);
- wiring: the mapped outlet's power does not fit the rig that answers: a drawing outlet behind
  a silent rig, 15 W behind a hashing S19 Pro, 3,285 W behind a Bitaxe (two rigs' addresses
  or outlets swapped in the inventory, a rig plugged into the wrong outlet);
- pool: the active pool and worker, against the site's allow-list (hashrate hijacking of
  hosted machines is a known risk: a rig mining elsewhere looks perfectly healthy).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from hashwatt.config import PoolsConfig, RigConfig
from hashwatt.contract import RigDoc
from hashwatt.models import ModelInfo, lookup

log = logging.getLogger("collector")

# wall power a rig may draw against its model's nominal figure scaled to its hashrate:
# under-clocked rigs draw ~60 %, over-clocked ~130 %; outside [0.4, 2.0] x (+ 30 W for small
# rigs) something else is on that outlet
LOW, HIGH, SLACK_W = 0.4, 2.0, 30.0
# a silent or idle rig: the controller and fans (an S19's idle draw is ~100-300 W); above
# this share of nominal the outlet feeds something that works
IDLE_SHARE, IDLE_FLOOR_W = 0.3, 100.0


def _same_model(a: str, b: str) -> bool:
    return a.replace(" ", "").casefold() == b.replace(" ", "").casefold()


def check_model(reading: RigDoc, rig: RigConfig) -> None:
    """Flag a rig that identified as another model than the inventory's."""
    found = reading.get("identified_model") or ""
    if not rig.model or not found:
        return  # nothing to compare: unknown, not "fine"
    reading["model_mismatch"] = not _same_model(rig.model, found)


def _expected_w(info: ModelInfo, hashrate_ths: float) -> float:
    share = min(max(hashrate_ths / info.nominal_ths, 0.2), 1.5) if info.nominal_ths else 1.0
    return info.nominal_w * share


def wiring_reason(reading: RigDoc, rig: RigConfig, outlet_w: float) -> str | None:
    """Why this outlet's power does not fit the rig, or None when it does (or cannot say)."""
    answering = reading.get("identified_model") or ""
    info = lookup(answering) or lookup(rig.model)
    if info is None:
        return None
    outlet = f"outlet {rig.pdu}/{rig.outlet}"
    hashrate = reading.get("hashrate_ths")
    idle_max = max(IDLE_FLOOR_W, IDLE_SHARE * info.nominal_w)
    if not reading.get("online"):
        if outlet_w > idle_max:
            return (f"{outlet} draws {outlet_w:.0f} W but the rig does not answer: the outlet "
                    f"feeds another rig, or this one hangs while drawing power")
        return None
    if not hashrate:
        if outlet_w > idle_max:
            return (f"{outlet} draws {outlet_w:.0f} W but the rig hashes nothing (idle draw "
                    f"is under {idle_max:.0f} W): the outlet feeds another rig")
        return None
    expected = _expected_w(info, hashrate)
    if outlet_w < LOW * expected - SLACK_W or outlet_w > HIGH * expected + SLACK_W:
        return (f"{outlet} draws {outlet_w:.0f} W but the {info.name} answering at "
                f"{rig.address} hashes {hashrate:g} TH/s (about {expected:.0f} W): outlet "
                f"mapping or address swapped?")
    return None


def check_wiring(reading: RigDoc, rig: RigConfig, outlet_w: float | None) -> None:
    """Flag an outlet whose power does not fit the rig (only for rigs mapped to an outlet
    that reported power this cycle)."""
    if rig.pdu is None or outlet_w is None:
        return
    reason = wiring_reason(reading, rig, float(outlet_w))
    reading["wiring_suspect"] = reason is not None
    if reason is not None:
        reading["wiring_reason"] = reason[:256]


def pool_problem(url: str, user: str, customer: str, pools: PoolsConfig) -> str | None:
    """Why an active pool and worker are not allowed for this customer, or None."""
    if pools.allowed and not any(fnmatch.fnmatchcase(url.casefold(), p.casefold())
                                 for p in pools.allowed):
        return f"pool {url} is not on the site's allow-list"
    prefixes = pools.workers.get(customer, pools.workers.get("*"))
    if prefixes and not any(user.startswith(p) for p in prefixes):
        who = f"customer {customer!r}" if customer in pools.workers else "this site"
        return (f"worker {user!r} does not start with {' or '.join(map(repr, prefixes))} "
                f"({who})")
    return None


def active_pool(pools: list[Any]) -> tuple[str, str] | None:
    """(url, user) of the pool a rig mines on: the active one, else the first alive, else
    the first configured; None when the firmware lists none."""
    if not pools:
        return None
    chosen = (next((p for p in pools if getattr(p, "active", None)), None)
              or next((p for p in pools if getattr(p, "alive", None)), None) or pools[0])
    url = getattr(chosen, "url", None)
    return (str(url) if url is not None else "", str(getattr(chosen, "user", "") or ""))


@dataclass
class PoolWatch:
    """Reads each rig's pools through pyasic now and then (they change rarely) and puts the
    last answer, checked against the allow-list, into every reading."""

    config: PoolsConfig
    timeout_s: float = 2.0
    known: dict[str, tuple[float, tuple[str, str] | None]] = field(default_factory=dict)
    unexpected: set[str] = field(default_factory=set)

    async def annotate(self, reading: RigDoc, rig: RigConfig, miner: Any) -> None:
        """Add pool_url, pool_user and the allow-list verdict to an online rig's reading."""
        if not reading.get("online") or miner is None:
            return
        last = self.known.get(rig.id)
        if last is None or time.monotonic() - last[0] >= self.config.check_interval_s:
            last = (time.monotonic(), await self._read(rig, miner))
            self.known[rig.id] = last
        pool = last[1]
        if pool is None:
            return  # the firmware gave no pools (pyasic 0.79 reads none from AxeOS): unknown
        url, user = pool
        reading["pool_url"], reading["pool_user"] = url[:256], user[:256]
        if not (self.config.allowed or self.config.workers):
            return  # no allow-list: carried, not judged
        problem = pool_problem(url, user, rig.customer, self.config)
        reading["pool_unexpected"] = problem is not None
        if problem is not None:
            reading["pool_reason"] = problem[:256]
        self._log(rig.id, problem)

    async def _read(self, rig: RigConfig, miner: Any) -> tuple[str, str] | None:
        try:
            return active_pool(await asyncio.wait_for(miner.get_pools(), self.timeout_s))
        except Exception as exc:  # a firmware without pools, or a parser failing on them
            log.debug("rig %s: pools not read: %s", rig.id, exc)
            return None

    def _log(self, rig_id: str, problem: str | None) -> None:
        if problem is not None and rig_id not in self.unexpected:
            self.unexpected.add(rig_id)
            log.warning("rig %s mines elsewhere: %s", rig_id, problem)
        elif problem is None and rig_id in self.unexpected:
            self.unexpected.discard(rig_id)
            log.info("rig %s mines on an allowed pool again", rig_id)


def annotate(reading: RigDoc, rig: RigConfig,
             outlet_w: float | None = None) -> RigDoc:
    """Add the inventory's flags and checks to a rig reading (in place) and return it."""
    if rig.maintenance:
        reading["maintenance"] = True
    check_model(reading, rig)
    check_wiring(reading, rig, outlet_w)
    return reading
