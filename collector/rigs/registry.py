"""Which fast path serves which rig: keyed by the pyasic backend class identification chose
(first match wins, so subclasses go before their bases)."""

from __future__ import annotations

from typing import Any, Protocol

from collector.rigs import antminer, avalon, bitaxe, epic, luxos, whatsminer, whatsminer_v3
from collector.rigs.base import Telemetry
from collector.rigs.credentials import DEFAULT, Credentials


class FastPath(Protocol):
    """One firmware family's poll."""

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        ...

    async def close(self) -> None:
        """Release what the path keeps open."""
        ...


REGISTRY: list[tuple[type, Any]] = [
    (antminer.BACKEND, antminer.AntminerPath),
    (whatsminer.BACKEND, whatsminer.WhatsminerPath),
    (avalon.BACKEND, avalon.AvalonPath),
    (bitaxe.BACKEND, bitaxe.BitaxePath),
    (luxos.BACKEND, luxos.LuxosPath),
    (epic.BACKEND, epic.EpicPath),
    (whatsminer_v3.BACKEND, whatsminer_v3.WhatsminerV3Path),
]


async def refine(miner: Any, timeout: float) -> Any:
    """Correct what pyasic's identification got wrong in a way a probe can tell."""
    return await whatsminer_v3.refine(miner, timeout)


def fast_path_for(miner: Any, timeout: float, creds: Credentials = DEFAULT) -> FastPath | None:
    """The fast path for an identified pyasic miner, or None (pyasic get_data then)."""
    for backend, path in REGISTRY:
        if isinstance(miner, backend):
            return path(miner, timeout, creds)
    return None
