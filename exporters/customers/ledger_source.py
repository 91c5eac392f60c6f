"""The one place statements read the energy ledger and the raw rig data from.

Everything else in exporters/customers/ works on the typed rows below; when the ledger's
storage or query API changes, this module is the only one to re-point.

Today's ledger (exporters/ledger.py): `energy_hourly` rows in the `ledger` retention policy
(v1) or ledger bucket (v2), one per rig (or unmapped outlet) per hour, tagged with the
customer and rack the reading carried at the time, fields kwh, kwh_measured, kwh_estimated,
cost (at the site tariff) and source. Numbers arrive as JSON floats; they are turned into
Decimal through their shortest repr, which is also what the ledger-state hash is taken over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from exporters.ledger import query_client
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL

QUARTER_S = 900
CHUNK_S = 72 * 3600  # InfluxDB 3 Core limits a query's time range to about 72 hours
LEDGER_MEASUREMENT = "energy_hourly"
LEDGER_ROW_S = 3600  # the length of one ledger row


@dataclass(frozen=True)
class EnergyRow:
    """One ledger row: the energy one rig (or outlet) drew in [start_s, start_s + seconds)."""

    start_s: int
    seconds: int
    customer: str
    rack: str
    unit: str  # the rig id, or "pdu/outlet" for an outlet no rig is mapped to
    source: str
    kwh: Decimal
    kwh_measured: Decimal
    kwh_estimated: Decimal
    cost: Decimal  # at the site tariff, in the site currency

    def canonical(self) -> str:
        """One line for the ledger-state hash (exact decimal strings)."""
        return (f"E|{self.start_s}|{self.seconds}|{self.customer}|{self.rack}|{self.unit}|"
                f"{self.source}|{self.kwh}|{self.kwh_measured}|{self.kwh_estimated}|{self.cost}")


@dataclass(frozen=True)
class ActivityRow:
    """One rig's quarter hour from the raw `rig` data: means of what it reported."""

    start_s: int
    customer: str
    rack: str
    rig: str
    hashrate_ths: Decimal | None
    expected_ths: Decimal | None
    power_w: Decimal | None
    maintenance: bool

    def canonical(self) -> str:
        """One line for the ledger-state hash."""
        return (f"A|{self.start_s}|{self.customer}|{self.rack}|{self.rig}|{self.hashrate_ths}|"
                f"{self.expected_ths}|{self.power_w}|{int(self.maintenance)}")


def month_bounds(month: str, timezone: str) -> tuple[int, int]:
    """[start, end) of a month (YYYY-MM) at local midnights, as epoch seconds."""
    year, mon = (int(x) for x in month.split("-"))
    if not 1 <= mon <= 12:
        raise ValueError(f"month {month!r}: the month must be 01..12")
    zone = ZoneInfo(timezone)
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return int(start.timestamp()), int(end.timestamp())


def open_ledger(cfg: Config) -> InfluxQL:
    """The InfluxQL client the ledger is read with."""
    return query_client(cfg)


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _chunks(start_s: int, end_s: int) -> Iterator[tuple[int, int]]:
    for lo in range(start_s, end_s, CHUNK_S):
        yield lo, min(lo + CHUNK_S, end_s)


def _ledger_from(cfg: Config) -> str:
    influx = cfg.influxdb
    if influx is not None and influx.api == "v1":
        return f'"{influx.ledger_retention_policy}"."{LEDGER_MEASUREMENT}"'
    return f'"{LEDGER_MEASUREMENT}"'  # v2: the ledger bucket's DBRP mapping


def _where(site: str, lo: int, hi: int, customer: str | None, rigs: list[str] | None) -> str:
    where = f"time >= {lo * 1000}ms AND time < {hi * 1000}ms AND \"site\" = '{_quote(site)}'"
    if customer is not None:
        where += f" AND \"customer\" = '{_quote(customer)}'"
    if rigs is not None:
        where += " AND (" + " OR ".join(f"\"rig\" = '{_quote(r)}'" for r in rigs) + ")"
    return where


def energy_rows(cfg: Config, db: InfluxQL, start_s: int, end_s: int, *,
                customer: str | None = None, rigs: list[str] | None = None) -> list[EnergyRow]:
    """Ledger rows of the site in [start, end), of one customer or of some rigs."""
    out: list[EnergyRow] = []
    for lo, hi in _chunks(start_s, end_s):
        query = (f'SELECT "kwh", "kwh_measured", "kwh_estimated", "cost", "source" FROM '
                 f'{_ledger_from(cfg)} WHERE {_where(cfg.site.name, lo, hi, customer, rigs)} '
                 f'GROUP BY "customer", "rack", "rig", "pdu", "outlet"')
        for r in db.rows(query):
            unit = r.get("rig") or f'{r.get("pdu", "")}/{r.get("outlet", "")}'
            out.append(EnergyRow(
                int(r["time"]) // 1000, LEDGER_ROW_S, r.get("customer") or "",
                r.get("rack") or "", unit, r.get("source") or "",
                _dec(r["kwh"]) or Decimal(0), _dec(r["kwh_measured"]) or Decimal(0),
                _dec(r["kwh_estimated"]) or Decimal(0), _dec(r["cost"]) or Decimal(0)))
    return sorted(out, key=lambda e: (e.unit, e.start_s, e.customer))


def activity_rows(cfg: Config, db: InfluxQL, start_s: int, end_s: int,
                  customer: str) -> list[ActivityRow]:
    """The customer's rigs per quarter hour from the raw `rig` data (hashing, power,
    expected hashrate, the maintenance flag)."""
    out: list[ActivityRow] = []
    by = 'GROUP BY time(15m), "customer", "rack", "rig" fill(none)'
    for lo, hi in _chunks(start_s, end_s):
        where = _where(cfg.site.name, lo, hi, customer, None)
        means = db.rows(f'SELECT mean("hashrate_ths") AS h, mean("expected_hashrate_ths") AS e, '
                        f'mean("power_w") AS p FROM "rig" WHERE {where} {by}')
        flagged = {(r["rig"], int(r["time"]) // 1000) for r in db.rows(
            f'SELECT count("online") FROM "rig" WHERE {where} AND "maintenance" = true {by}')}
        for r in means:
            start = int(r["time"]) // 1000
            out.append(ActivityRow(start, r.get("customer") or "", r.get("rack") or "",
                                   r["rig"], _dec(r["h"]), _dec(r["e"]), _dec(r["p"]),
                                   (r["rig"], start) in flagged))
    return sorted(out, key=lambda a: (a.rig, a.start_s))
