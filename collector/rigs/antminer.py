"""Stock Antminer (BMMiner/CGMiner API on 4028, digest-auth CGI web API): `stats` and
`summary` over RPC (joined when the rig accepts it), errors from `summary.cgi`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from pyasic import settings
from pyasic.data.error_codes import X19Error
from pyasic.device.algorithm import SHA256Unit
from pyasic.miners.backends import AntminerModern
from pyasic.miners.factory import MINER_CLASSES, MinerTypes

from collector.rigs.base import (
    Board,
    Fan,
    FastPathError,
    RpcSession,
    Telemetry,
    base_telemetry,
    get_json,
    mean_nonzero,
    number,
    rate,
    rig_client,
    sensor_values,
)
from collector.rigs.credentials import Credentials

log = logging.getLogger(__name__)
BACKEND = AntminerModern
# what pyasic 0.79's factory builds for a stock Antminer model missing from its table (a
# plain-RPC BMMiner, not AntminerModern): read by the same fast path
UNKNOWN = MINER_CLASSES[MinerTypes.ANTMINER][None]
# firmware without summary.cgi (or a login that fails) is asked again only after this many
# error reads are skipped (with ERRORS_EVERY = 5: every 20 polls)
WEB_RETRY_READS = 4
# the web API's error list costs more client CPU than the RPC telemetry (an HTTP exchange
# with digest auth): it is read every this many polls (2.5 min at 30 s) and kept between
ERRORS_EVERY = 5


class AntminerPath:
    """Stock Antminer fast path."""

    def __init__(self, miner: Any, timeout: float, creds: Credentials) -> None:
        self.miner, self.timeout = miner, timeout
        self.session = RpcSession(miner.ip, timeout)
        # the digest auth object keeps the rig's challenge: no 401 round trip after the first
        self.auth = httpx.DigestAuth(creds.web_user or "root",
                                     creds.web_password or settings.get(
                                         "default_antminer_web_password", "root"))
        self.web = rig_client(timeout)
        self.skip_web = 0  # error reads left before summary.cgi is tried again
        self.polls = 0
        self.errors: list[Any] | None = None

    async def telemetry(self) -> Telemetry:
        """Read one poll's telemetry."""
        # the web error list (every ERRORS_EVERY polls) is read beside the RPC, not after
        # it: a slow rig costs one exchange's time, not two
        read_errors = self.polls % ERRORS_EVERY == 0
        self.polls += 1
        replies, errors = await asyncio.gather(
            self.session.many("stats", "summary"),
            self._errors() if read_errors else _kept(self.errors))
        self.errors = errors
        try:
            head, stats = replies["stats"]["STATS"][:2]
        except (KeyError, ValueError, TypeError) as exc:
            raise FastPathError(f"unexpected stats reply: {exc!r}") from None
        # stats carries its own "GHS 5s": a summary refused or cut short leaves the rest
        summary = _first(replies["summary"].get("SUMMARY")) or {}
        t = base_telemetry(self.miner)
        chains = [b.slot + 1 for b in t.hashboards]
        if self.miner.expected_hashboards is None:  # a model pyasic 0.79 does not know
            chains = unknown_model(t, head, stats)
        ghs = number(summary.get("GHS 5s", stats.get("GHS 5s")))
        t.hashrate = rate(ghs, SHA256Unit.GH) if ghs is not None else None
        ideal = number(stats.get("total_rateideal"))
        if ideal is not None:
            t.expected_hashrate = rate(ideal, SHA256Unit.from_str(stats.get("rate_unit", "GH")))
        elapsed = number(stats.get("Elapsed", summary.get("Elapsed")))
        t.uptime = int(elapsed) if elapsed is not None else None
        t.fans = self._fans(stats, t.model)
        hottest = [chain_board(board, stats, n) for board, n in zip(t.hashboards, chains,
                                                                    strict=True)]
        # the firmware's own `temp_max` (0 when it keeps none) can be hotter than the four
        # sensors per chain: an S23 Hydro (asic-rs s23_hydro_rpc_stats_captured.json) sends
        # 59 beside chain sensors of at most 56
        hottest.append(number(stats.get("temp_max")) or None)
        present = [h for h in hottest if h is not None]
        t.temp_max = max(present) if present else None
        t.errors = self.errors
        return t

    def _fans(self, stats: dict[str, Any], model: str = "") -> list[Fan]:
        if self.miner.expected_fans is None:  # a model pyasic does not know: as listed
            return _listed_fans(stats, model)
        offset = next((n for n in (1, 5) if any(stats.get(f"fan{n + i}") for i in range(4))), 1)
        # a fan key the reply lacks is unknown (None), not a stopped fan
        speeds = [number(stats.get(f"fan{offset + i}"))
                  for i in range(self.miner.expected_fans or 0)]
        return [Fan(int(s) if s is not None else None) for s in speeds]

    async def _errors(self) -> list[Any] | None:
        """Errors from the web API; None (unknown) when the web API does not give them."""
        if self.skip_web > 0:
            self.skip_web -= 1
            return None
        try:
            status, doc = await get_json(self.web, f"http://{self.miner.ip}/cgi-bin/summary.cgi",
                                         auth=self.auth)
            if status in (401, 403, 404):  # absent, or the login is wrong
                if status != 404 and not self.skip_web:
                    log.warning("%s: web login refused (HTTP %d): errors unknown, check the "
                                "rig's credentials", self.miner.ip, status)
                self.skip_web = WEB_RETRY_READS
                return None
            items = doc["SUMMARY"][0]["status"] if status == 200 else None
        except (httpx.HTTPError, FastPathError, ValueError, KeyError, IndexError, TypeError):
            return None
        if not isinstance(items, list):
            return None
        return [X19Error(error_message=i["msg"]) for i in items
                if isinstance(i, dict) and i.get("status") != "s" and "msg" in i]

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.web.aclose()


def _first(items: Any) -> dict[str, Any] | None:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else None


def chain_numbers(stats: dict[str, Any]) -> list[int]:
    """The chains stats lists with chips (chain_acn{n} > 0), in order."""
    found = []
    for key, value in stats.items():
        if key.startswith("chain_acn") and key[9:].isdigit() and (number(value) or 0) > 0:
            found.append(int(key[9:]))
    return sorted(found)


def unknown_model(t: Telemetry, head: dict[str, Any], stats: dict[str, Any]) -> list[int]:
    """A stock Antminer whose model pyasic 0.79 does not know (it builds `AntminerUnknown`:
    no model, no board count; e.g. "Antminer S21 XP Hyd." and "Antminer S23 Hyd." in asic-rs's
    captured stats): the model from stats' own "Type", one board per chain it lists."""
    if not t.model and head.get("Type"):
        t.model = str(head["Type"])
    count = number(stats.get("miner_count"))
    chains = chain_numbers(stats)[:int(count)] if count else chain_numbers(stats)
    # boards numbered from 0 whatever the chain numbers (older bmminer counts chains 6-8)
    t.hashboards = [Board(slot=i, expected_chips=None) for i in range(len(chains))]
    return chains


def _listed_fans(stats: dict[str, Any], model: Any) -> list[Fan]:
    """Fans of an unknown model as stats lists them (fan_num of them); none for a hydro
    model, whose fan slots read 0 without fans (an alert on them would be false)."""
    name = str(model or "")
    count = int(number(stats.get("fan_num")) or 0)
    if "hyd" in name.lower():
        return []
    speeds = [number(stats.get(f"fan{i + 1}")) for i in range(count)]
    return [Fan(int(s) if s is not None else None) for s in speeds]


async def _kept(errors: list[Any] | None) -> list[Any] | None:
    return errors


def chain_board(board: Board, stats: dict[str, Any], n: int | None = None) -> float | None:
    """Fill one board from the `chain_*`/`temp_*{n}` keys; return its hottest chip sensor.

    Each chain reports four sensors per kind ("78-50-69-70"); the board figures are the mean
    of the non-zero sensors (pyasic's web parser does the same), the overheat check uses the
    hottest one."""
    n = board.slot + 1 if n is None else n
    chips = number(stats.get(f"chain_acn{n}"))
    if chips is None:
        return None  # the firmware does not report this chain at all: unknown
    board.chips = int(chips)
    chain_rate = number(stats.get(f"chain_rate{n}"))
    # a chain the firmware lost ("", 0 chips) hashes nothing: a known 0, not unknown
    board.hashrate = rate(chain_rate or 0.0, SHA256Unit.GH)
    chip_sensors = sensor_values(stats.get(f"temp_chip{n}"))
    board.chip_temp = mean_nonzero(chip_sensors)
    board.temp = mean_nonzero(sensor_values(stats.get(f"temp_pcb{n}")))
    present = [v for v in chip_sensors if v]
    return max(present) if present else None
