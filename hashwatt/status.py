"""`hashwatt status`: the fleet at a glance from InfluxDB, as terminal tables.

Per rack: rigs online, offline, hot (chip within 5 °C of its limit, as the wall screen
counts), in maintenance, and silent (in the inventory, no reading lately). Then each rig that
is down with its reason and since when, and each collector's last cycle. Every query stays
within 72 hours (InfluxDB 3's query limit, DESIGN.md).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hashwatt.config import Config
from hashwatt.influxql import InfluxQL

HOT_MARGIN_C = 5.0  # the wall screen's "hot" (dashboards/boards.py RIGS_HOT)
LOOKBACK = "72h"


@dataclass(kw_only=True)
class RigState:
    """A rig's latest reading."""

    rig: str
    rack: str
    ts_ms: int
    up: bool
    error: str
    margin_c: float | None
    maintenance: bool
    # what the inventory checks flag on the latest reading: (what, reason)
    suspects: list[tuple[str, str]] = field(default_factory=list)
    down_since_ms: int | None = None
    up_seen: bool = True  # an online reading within the lookback


@dataclass
class Fleet:
    """What `status` shows."""

    site: str
    now_ms: int
    rigs: dict[str, RigState] = field(default_factory=dict)
    silent: list[tuple[str, str]] = field(default_factory=list)  # (rig, rack): no reading
    collectors: list[dict[str, Any]] = field(default_factory=list)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def latest(db: InfluxQL, site: str, window: str) -> dict[str, RigState]:
    """Each rig's latest reading of the window, all its fields from that one point."""
    rows = db.rows(f'SELECT "up", "error", "temp_margin_c", {SUSPECT_FIELDS} FROM "rig" WHERE '
                   f'time > now() - {window} AND "site" = {_quote(site)} GROUP BY "rig", '
                   '"rack", "maintenance", "model" ORDER BY time DESC LIMIT 1')
    out: dict[str, RigState] = {}
    for row in rows:  # a rig whose tags changed has several series: the newest wins
        state = RigState(rig=row["rig"], rack=row.get("rack", ""), ts_ms=int(row["time"]),
                         up=bool(row["up"]), error=row.get("error") or "",
                         margin_c=row.get("temp_margin_c"),
                         maintenance=row.get("maintenance") == "yes", suspects=suspects(row))
        if state.rig not in out or out[state.rig].ts_ms < state.ts_ms:
            out[state.rig] = state
    return out


# the inventory checks' flags and reasons (collector/inventory_checks.py, pools)
SUSPECT_FIELDS = ('"wiring_suspect", "wiring_reason", "model_mismatch", "identified_model", '
                  '"pool_unexpected", "pool_reason"')


def suspects(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, reason) for each flag the reading raises: a pool the site does not allow, an
    outlet that does not fit the rig, a rig that identifies as another model."""
    out = []
    if row.get("pool_unexpected"):
        out.append(("pool", row.get("pool_reason") or "mines on a pool the site does not allow"))
    if row.get("wiring_suspect"):
        out.append(("wiring", row.get("wiring_reason") or "outlet power does not fit the rig"))
    if row.get("model_mismatch"):
        out.append(("model", f"identifies as {row.get('identified_model') or '?'}, the "
                             f"inventory says {row.get('model') or '?'}"))
    return out


def _down_since(db: InfluxQL, site: str, down: list[RigState]) -> None:
    """The first offline reading after each down rig's last online one (two requests)."""
    if not down:
        return
    where = f'"site" = {_quote(site)} AND time > now() - {LOOKBACK}'
    last_up = [f'SELECT last("up") FROM "rig" WHERE {where} AND "up" = 1 AND "rig" = '
               f'{_quote(r.rig)}' for r in down]
    after: list[str] = []
    for rig, result in zip(down, db.execute("; ".join(last_up)), strict=True):
        series = result.get("series") or []
        rig.up_seen = bool(series)
        since = f"time > {series[0]['values'][0][0]}ms" if series else f"time > now() - {LOOKBACK}"
        after.append(f'SELECT first("up") FROM "rig" WHERE "site" = {_quote(site)} AND {since} '
                     f'AND "up" = 0 AND "rig" = {_quote(rig.rig)}')
    for rig, result in zip(down, db.execute("; ".join(after)), strict=True):
        series = result.get("series") or []
        rig.down_since_ms = int(series[0]["values"][0][0]) if series else None


def collectors(db: InfluxQL, site: str) -> list[dict[str, Any]]:
    """Each collector's state now (its retained status: online, or offline by its last will)
    and its last cycle's figures."""
    where = f'time > now() - {LOOKBACK} AND "site" = {_quote(site)}'
    cycles = db.rows(f'SELECT "cycle_s", "rigs_total", "rigs_ok", "rigs_failed", '
                     f'"rigs_timeout", "pdus_total", "pdus_ok", "spool_depth" FROM "collector" '
                     f'WHERE {where} AND "cycle_s" >= 0 GROUP BY "collector" ORDER BY time '
                     'DESC LIMIT 1')
    states = {r["collector"]: r["online"] for r in db.rows(
        f'SELECT "online" FROM "collector" WHERE {where} GROUP BY "collector" ORDER BY time '
        'DESC LIMIT 1')}
    return [{**row, "online": states.get(row["collector"], False)} for row in cycles]


def fleet(cfg: Config, db: InfluxQL, window: str = "10m") -> Fleet:
    """Read the fleet's state from InfluxDB."""
    out = Fleet(cfg.site.name, int(time.time() * 1000))
    out.rigs = latest(db, cfg.site.name, window)
    _down_since(db, cfg.site.name, [r for r in out.rigs.values() if not r.up])
    out.silent = [(r.id, r.rack) for r in cfg.rigs if r.id not in out.rigs]
    out.collectors = collectors(db, cfg.site.name)
    return out


def rack_rows(f: Fleet) -> list[dict[str, Any]]:
    """Counts per rack: online, offline, hot, maintenance, silent."""
    racks: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("rigs", "online", "offline", "hot", "maintenance", "silent"), 0))
    for r in f.rigs.values():
        counts = racks[r.rack or "(none)"]
        counts["rigs"] += 1
        if r.maintenance:
            counts["maintenance"] += 1
        else:
            counts["online" if r.up else "offline"] += 1
        if r.margin_c is not None and r.margin_c < HOT_MARGIN_C:
            counts["hot"] += 1
    for _rig, rack in f.silent:
        counts = racks[rack or "(none)"]
        counts["rigs"] += 1
        counts["silent"] += 1
    return [{"rack": rack, **counts} for rack, counts in sorted(racks.items())]


def _since(now_ms: int, r: RigState) -> str:
    if r.up_seen or r.down_since_ms is None:
        return _ago(now_ms, r.down_since_ms)
    return f"not up within {LOOKBACK}; first seen down {_ago(now_ms, r.down_since_ms)}"


def _ago(now_ms: int, ts_ms: int | None) -> str:
    if ts_ms is None:
        return f"over {LOOKBACK}"
    seconds = max(0, (now_ms - ts_ms) // 1000)
    stamp = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if seconds < 3600:
        return f"{stamp} ({seconds // 60} min ago)"
    return f"{stamp} ({seconds // 3600} h {seconds % 3600 // 60} min ago)"


def render(f: Fleet) -> Any:
    """The tables as a rich renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    racks = Table(title=f"site {f.site}: rigs per rack")
    for name in ("rack", "rigs", "online", "offline", "hot", "maintenance", "silent"):
        racks.add_column(name, justify="left" if name == "rack" else "right")
    rows = rack_rows(f)
    for row in rows:
        racks.add_row(*(Text(str(row[k])) for k in row))
    if rows:
        racks.add_row("total", *(str(sum(r[k] for r in rows)) for k in list(rows[0])[1:]),
                      style="bold")
    down = Table(title="rigs down")
    for name in ("rig", "rack", "down since", "reason"):
        down.add_column(name, overflow="fold")
    for r in sorted((r for r in f.rigs.values() if not r.up),
                    key=lambda r: (r.maintenance, r.rack, r.rig)):
        reason = ("[maintenance] " if r.maintenance else "") + (r.error or "no reason given")
        # Text: reasons and ids are data, never rich markup ("[maintenance]", "[Errno 111]")
        down.add_row(Text(r.rig), Text(r.rack), _since(f.now_ms, r), Text(reason))
    for rig, rack in f.silent:
        down.add_row(Text(rig), Text(rack), "-",
                     "no reading in the last 10 min: is a collector polling it?")
    cols = Table(title="collectors: last cycle")
    for name in ("collector", "state now", "last cycle", "cycle s", "rigs ok/failed/timeout",
                 "PDUs ok", "spool"):
        cols.add_column(name)
    for c in f.collectors:
        cols.add_row(Text(c.get("collector", "")), "online" if c.get("online") else "offline",
                     _ago(f.now_ms, int(c["time"])), f"{c.get('cycle_s') or 0:.1f}",
                     f"{c.get('rigs_ok')}/{c.get('rigs_failed')}/{c.get('rigs_timeout')}",
                     f"{c.get('pdus_ok') or 0}/{c.get('pdus_total') or 0}",
                     str(c.get("spool_depth") or 0))
    flagged = Table(title="suspects: pool, wiring, model")
    for name in ("rig", "rack", "what", "reason"):
        flagged.add_column(name, overflow="fold")
    for r in sorted(f.rigs.values(), key=lambda r: (r.rack, r.rig)):
        for what, why in r.suspects:
            flagged.add_row(Text(r.rig), Text(r.rack), what, Text(why))
    return Group(racks, down, flagged, cols)
