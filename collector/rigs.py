"""The pyasic rig source: identify each rig once, keep the miner object, poll what we need."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from pyasic.miners.data import DataOptions
from pyasic.miners.factory import MinerFactory

from collector.fastpath import FastPath, fast_path_for
from collector.mapping import Origin, offline_reading, reading_from_miner

log = logging.getLogger(__name__)

# Only what the telemetry needs: every extra option is another request to the rig.
FIELDS = [DataOptions.HASHRATE, DataOptions.EXPECTED_HASHRATE, DataOptions.WATTAGE,
          DataOptions.HASHBOARDS, DataOptions.FANS, DataOptions.UPTIME, DataOptions.ERRORS,
          DataOptions.ENVIRONMENT_TEMP]


@dataclass
class PyasicSource:
    """Rig polling through unmodified pyasic; callers bound each poll with a deadline."""

    reidentify_after: int = 3
    fast_paths: bool = True
    timeout_s: float = 10.0
    factory: MinerFactory = field(default_factory=MinerFactory)
    miners: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, FastPath | None] = field(default_factory=dict)
    identify_concurrency: int = 25
    _identify_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
    failures: dict[str, int] = field(default_factory=dict)
    identifications: int = 0

    async def poll(self, origin: Origin) -> dict[str, Any]:
        """Poll one rig and return its reading (offline readings included)."""
        rig = origin.rig
        miner = self.miners.get(rig.id)
        if miner is None:
            miner = await self._identify(rig.address)
            if miner is None:
                self.failed(rig.id)
                return offline_reading(origin, "no miner answered identification")
            self.miners[rig.id] = miner
            self.paths[rig.id] = fast_path_for(miner, self.timeout_s) if self.fast_paths else None
        try:
            path = self.paths.get(rig.id)
            data = await path.telemetry() if path else await miner.get_data(include=FIELDS)
        except Exception as exc:  # pyasic wraps any parser failure; the rig is in error
            self.failed(rig.id)
            return offline_reading(origin, f"bad reply: {_cause(exc)}", str(miner.make or ""),
                                   str(miner.raw_model or ""))
        reading = reading_from_miner(origin, data)
        if reading["online"]:
            self.failures[rig.id] = 0
        else:
            self.failed(rig.id)
        return reading

    async def _identify(self, address: str) -> Any:
        self.identifications += 1
        # pyasic's factory builds HTTP clients and TLS contexts per probe: a few at a time
        # keep the collector's memory flat when thousands of rigs are identified at start
        loop = asyncio.get_running_loop()
        if self._identify_slots is None or self._identify_slots[0] is not loop:
            self._identify_slots = (loop, asyncio.Semaphore(self.identify_concurrency))
        async with self._identify_slots[1]:
            miner = await self.factory.get_miner(address)
        if miner is None or type(miner).__name__.startswith("Unknown"):
            return None
        return miner

    def failed(self, rig_id: str) -> None:
        """Count a failure; after `reidentify_after` in a row, forget the miner object."""
        count = self.failures.get(rig_id, 0) + 1
        self.failures[rig_id] = count
        if count >= self.reidentify_after and self.miners.pop(rig_id, None) is not None:
            self.paths.pop(rig_id, None)
            log.info("rig %s: %d failures in a row, will identify it again", rig_id, count)


def _cause(exc: BaseException) -> str:
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = f"{type(root).__name__}: {root}" if root is not exc else str(exc)
    return text[:200]
