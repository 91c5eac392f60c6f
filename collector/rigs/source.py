"""The pyasic rig source: identify each rig once, keep the miner object, poll what we need
through the firmware's fast path, and fall back to pyasic's `get_data` in the same poll."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pyasic.miners.data import DataOptions
from pyasic.miners.factory import MinerFactory

from collector.mapping import Origin, offline_reading, reading_from_miner
from collector.rigs.base import ReplyTooLarge
from collector.rigs.credentials import DEFAULT, Credentials, Lookup
from collector.rigs.registry import FastPath, HostileReply, fast_path_for, identify
from hashwatt.config import RigConfig
from hashwatt.contract import RigDoc
from hashwatt.errors import NoAnswer

log = logging.getLogger(__name__)

# Only what the telemetry needs: every extra option is another request to the rig.
FIELDS = [DataOptions.HASHRATE, DataOptions.EXPECTED_HASHRATE, DataOptions.WATTAGE,
          DataOptions.HASHBOARDS, DataOptions.FANS, DataOptions.UPTIME, DataOptions.ERRORS,
          DataOptions.ENVIRONMENT_TEMP]
# identification gets this share of the deadline, so the first poll still fits after it
IDENTIFY_SHARE = 0.4
# each fast-path exchange may take this share of the deadline (a slow rig answering at 80 %
# of it is read, not abandoned), the whole fast path a little more; pyasic's fallback gets
# what is left, and only when that is worth trying (a rig that failed the fast path by
# being slow would be as slow for pyasic)
EXCHANGE_SHARE = 0.85
PATH_SHARE = 0.9
FALLBACK_MIN_SHARE = 0.25
NO_MINER = "identification: no miner answered"


def apply_credentials(miner: Any, creds: Credentials) -> None:
    """Give pyasic's own clients the rig's logins where set (pyasic's defaults otherwise:
    root/root, admin, super)."""
    web, rpc = getattr(miner, "web", None), getattr(miner, "rpc", None)
    if web is not None and hasattr(web, "pwd"):
        if creds.web_user is not None:
            web.username = creds.web_user
        if creds.web_password is not None:
            web.pwd = creds.web_password
    if rpc is not None and hasattr(rpc, "pwd") and creds.rpc_password is not None:
        rpc.pwd = creds.rpc_password


def _default_credentials(rig: RigConfig, model: str) -> Credentials:
    return DEFAULT


@dataclass
class PyasicSource:
    """Rig polling through unmodified pyasic; callers bound each poll with a deadline."""

    reidentify_after: int = 3
    fast_paths: bool = True
    timeout_s: float = 10.0
    factory: MinerFactory = field(default_factory=MinerFactory)
    credentials: Lookup = _default_credentials
    miners: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, FastPath | None] = field(default_factory=dict)
    identify_concurrency: int = 25
    _identify_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
    failures: dict[str, int] = field(default_factory=dict)
    identifications: int = 0
    reasons: dict[str, str] = field(default_factory=dict)

    async def poll(self, origin: Origin) -> RigDoc:
        """Poll one rig and return its reading (offline readings included); NoAnswer when
        no miner answered identification at all."""
        rig = origin.rig
        miner = self.miners.get(rig.id)
        if miner is None:
            miner, reason = await self._identify(rig.address)
            if miner is None:
                self.failed(rig.id)
                self._tell(rig.id, reason)
                if reason == NO_MINER:  # typed: the collector probes why (collector.diagnose)
                    raise NoAnswer(reason)
                return offline_reading(origin, reason)
            creds = self.credentials(rig, str(miner.raw_model or ""))
            apply_credentials(miner, creds)
            self.miners[rig.id] = miner
            self.paths[rig.id] = (fast_path_for(miner, self.timeout_s * EXCHANGE_SHARE, creds)
                                  if self.fast_paths else None)
        data, note = await self._read(rig.id, miner)
        if data is None:
            self.failed(rig.id)
            return offline_reading(origin, note or "no reply", make=str(miner.make or ""),
                                   model=str(miner.raw_model or ""))
        reading = reading_from_miner(origin, data)
        if reading["online"]:
            self.failures[rig.id] = 0
            if note and reading["error"] is None:
                reading["error"] = note[:512]
        else:
            self.failed(rig.id)
            if note:  # the fast path's reason says more than pyasic's empty data
                text = note.removesuffix("; read by pyasic")
                reading["error"] = f"{text}; pyasic read nothing"[:512]
        return reading

    async def _read(self, rig_id: str, miner: Any) -> tuple[Any, str | None]:
        """The fast path's telemetry, else pyasic's get_data; and what went wrong, if so."""
        path = self.paths.get(rig_id)
        note = None
        start = time.monotonic()
        budget = self.timeout_s
        if path is not None:
            try:
                return await asyncio.wait_for(path.telemetry(), budget * PATH_SHARE), None
            except ReplyTooLarge as exc:  # pyasic would read the same reply without a bound
                return None, f"fast path: {exc}"
            except TimeoutError:
                return None, (f"fast path: no complete reply within {budget * PATH_SHARE:g} s "
                              "(rig too slow for the deadline)")
            except Exception as exc:  # any failure of the fast path: pyasic reads the rig
                note = f"fast path: {_cause(exc)}; read by pyasic"
                self._tell(rig_id, note)
            left = budget * 0.95 - (time.monotonic() - start)
            if left < budget * FALLBACK_MIN_SHARE:  # failed late: pyasic would not finish
                return None, note.removesuffix("; read by pyasic") if note else None
        else:
            left = budget * 0.95
        try:
            return await asyncio.wait_for(miner.get_data(include=FIELDS), left), note
        except TimeoutError:
            return None, ((note.removesuffix("; read by pyasic") + "; " if note else "")
                          + f"pyasic: no reply within {left:.1f} s")
        except Exception as exc:  # pyasic wraps any parser failure; the rig is in error
            return None, f"bad reply: {_cause(exc)}"

    async def _identify(self, address: str) -> tuple[Any, str]:
        self.identifications += 1
        # pyasic's factory builds HTTP clients and TLS contexts per probe: a few at a time
        # keep the collector's memory flat when thousands of rigs are identified at start
        loop = asyncio.get_running_loop()
        if self._identify_slots is None or self._identify_slots[0] is not loop:
            self._identify_slots = (loop, asyncio.Semaphore(self.identify_concurrency))
        async with self._identify_slots[1]:
            try:
                miner = await identify(address, self.timeout_s * IDENTIFY_SHARE, self.factory)
            except HostileReply as exc:  # retried like any failed identification
                return None, f"identification: {exc}"
            except Exception as exc:  # pyasic 0.79 raises e.g. TypeError on odd replies
                return None, f"identification: {_cause(exc)}"
        if miner is None:
            return None, NO_MINER
        if type(miner).__name__.startswith("Unknown"):
            return None, "identification: answered, but pyasic does not know the firmware"
        return miner, ""

    def _tell(self, rig_id: str, reason: str) -> None:
        """Log a rig's problem once, and again only when it changes (a rig that goes down
        is logged by the collector's state log, with its diagnosed reason: DEBUG here)."""
        if self.reasons.get(rig_id) != reason:
            self.reasons[rig_id] = reason
            # a firmware pyasic cannot identify needs a human; a silent rig does not
            # (a fast path falling back to pyasic is for developers: the reading carries it)
            level = (logging.DEBUG if reason == NO_MINER or reason.startswith("fast path")
                     else logging.WARNING)
            log.log(level, "rig %s: %s", rig_id, reason)

    def failed(self, rig_id: str) -> None:
        """Count a failure; after `reidentify_after` in a row, forget the miner object."""
        count = self.failures.get(rig_id, 0) + 1
        self.failures[rig_id] = count
        if count >= self.reidentify_after and self.miners.pop(rig_id, None) is not None:
            self.paths.pop(rig_id, None)
            # DEBUG: a rig that stays down would say it every cycle; its going down is
            # logged once by the collector's state log
            log.debug("rig %s: %d failures in a row, will identify it again", rig_id, count)


def _cause(exc: BaseException) -> str:
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text, name = str(root), type(root).__name__
    if name == "FastPathError":
        return text[:200]
    return (f"{name}: {text}" if text else name)[:200]
