"""Which fast path serves which rig: keyed by the pyasic backend class identification chose
(first match wins, so subclasses go before their bases)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from collector.rigs import antminer, avalon, bitaxe, epic, luxos, whatsminer, whatsminer_v3
from collector.rigs.base import Telemetry
from collector.rigs.credentials import DEFAULT, Credentials
from collector.rigs.probe import oversize
from hashwatt.errors import RigError

log = logging.getLogger(__name__)


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
    (antminer.UNKNOWN, antminer.AntminerPath),
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


async def rescue(ip: str, timeout: float) -> Any:
    """A miner object when pyasic's identification raised: pyasic 0.79 raises TypeError when
    a Whatsminer on API v3 answers `get_version` on 4028 with an error (its `Msg` is a
    string), so such a rig is asked on 4433 directly. None when that fails too."""
    return await whatsminer_v3.identify(ip, timeout)


def fast_path_for(miner: Any, timeout: float, creds: Credentials = DEFAULT) -> FastPath | None:
    """The fast path for an identified pyasic miner, or None (pyasic get_data then)."""
    for backend, path in REGISTRY:
        if isinstance(miner, backend):
            return path(miner, timeout, creds)
    return None


class HostileReply(RigError):
    """A rig answered an identification request with more than any miner sends."""


async def identify(ip: str, timeout: float, factory: Any = None) -> Any:
    """pyasic's identification with the corrections above: refined when it succeeds, rescued
    when it raises (the exception is raised again when the rescue finds nothing too). A rig
    whose reply to pyasic's own requests is over the probe's bound is not handed to pyasic
    (it reads replies whole): HostileReply, with the reason."""
    from pyasic.miners.factory import MinerFactory

    reason = await oversize(ip, timeout)
    if reason is not None:
        raise HostileReply(reason)

    try:
        miner = await (factory or MinerFactory()).get_miner(ip)
    except Exception:
        rescued = await rescue(ip, timeout)
        if rescued is None:
            raise
        log.info("%s: pyasic's identification raised; identified on Whatsminer API v3", ip)
        return rescued
    return await refine(miner, timeout) if miner is not None else None
