"""The one place statements read the energy ledger and the raw rig data from.

Everything else in exporters/customers/ works on the typed rows below; when the ledger's
storage or query API changes, this module is the only one to re-point.

The ledger (exporters/finance/ledger.py, `ledger_rows`): one row per rig (or unmapped outlet)
per local quarter hour, attributed to the customer and rack the inventory held at the time,
with kWh (measured and estimated), cost at the site tariff and the source. Its numbers are
floats; they become Decimal through their shortest repr, which is also what the ledger-state
hash is taken over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from exporters.finance import ledger as finance_ledger
from exporters.finance.store import CHUNK_S, MEASUREMENT, query_client
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL

QUARTER_S = 900
LEDGER_ROW_S = QUARTER_S  # the length of one ledger row
LEDGER_MEASUREMENT = MEASUREMENT


@dataclass(frozen=True, kw_only=True)
class EnergyRow:
    """One ledger row: the energy one rig (or outlet) drew in [start_s, start_s + seconds)."""

    start_s: int
    # how much of the quarter the customer held the rig: all of it (900) unless the rig
    # moved inside the quarter (the ledger splits such a quarter at the move)
    seconds: int | Decimal
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


@dataclass(frozen=True, kw_only=True)
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
    """An InfluxQL client for the raw readings (the ledger has its own reader)."""
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


def energy_rows(cfg: Config, start_s: int, end_s: int) -> list[EnergyRow]:
    """Every live ledger row of the site in [start, end) (all customers: a statement needs
    its rigs' rows of other customers to see moves)."""
    start = dt.datetime.fromtimestamp(start_s, dt.UTC)
    end = dt.datetime.fromtimestamp(end_s, dt.UTC)
    out = [EnergyRow(start_s=int(r.time.timestamp()), seconds=_seconds(r.seconds),
                     customer=r.customer, rack=r.rack, unit=r.unit, source=r.source,
                     kwh=_dec(r.kwh) or Decimal(0), kwh_measured=_dec(r.kwh_measured) or Decimal(0),
                     kwh_estimated=_dec(r.kwh_estimated) or Decimal(0),
                     cost=_dec(r.cost) or Decimal(0))
           for r in finance_ledger.ledger_rows(cfg, start, end)]
    return sorted(out, key=lambda e: (e.unit, e.start_s, e.customer))


def _seconds(value: float) -> int | Decimal:
    """A row's seconds: an int when whole (as every row before splits existed, so the
    ledger state of an older month is unchanged), else its exact decimal."""
    return int(value) if value == int(value) else Decimal(repr(float(value)))


def activity_rows(cfg: Config, db: InfluxQL, *, start_s: int, end_s: int,
                  customer: str) -> list[ActivityRow]:
    """The customer's rigs per quarter hour from the raw `rig` data (hashing, power,
    expected hashrate, the maintenance flag)."""
    by = 'GROUP BY time(15m), "customer", "rack", "rig", "maintenance" fill(none)'
    # sums and counts, not means: a quarter may hold a maintenance and a normal series
    sums: dict[tuple[str, int], dict[str, Any]] = {}
    for lo, hi in _chunks(start_s, end_s):
        where = (f"time >= {lo * 1000}ms AND time < {hi * 1000}ms AND \"site\" = "
                 f"'{_quote(cfg.site.name)}' AND \"customer\" = '{_quote(customer)}'")
        for r in db.rows(f'SELECT sum("hashrate_ths") AS h, count("hashrate_ths") AS hn, '
                         f'sum("expected_hashrate_ths") AS e, count("expected_hashrate_ths") '
                         f'AS en, sum("power_w") AS p, count("power_w") AS pn FROM "rig" '
                         f'WHERE {where} {by}'):
            key = (r["rig"], int(r["time"]) // 1000)
            acc = sums.setdefault(key, {"rack": r.get("rack") or "", "maintenance": False,
                                        "h": [], "e": [], "p": []})
            # the operator's maintenance flag travels as a tag (exporters/decode.py)
            acc["maintenance"] |= r.get("maintenance") == "yes"
            for name in ("h", "e", "p"):
                if r[f"{name}n"]:
                    acc[name].append((_dec(r[name]), int(r[f"{name}n"])))
    return [ActivityRow(start_s=start, customer=customer, rack=acc["rack"], rig=rig,
                        hashrate_ths=_mean(acc["h"]), expected_ths=_mean(acc["e"]),
                        power_w=_mean(acc["p"]), maintenance=acc["maintenance"])
            for (rig, start), acc in sorted(sums.items())]


def _mean(parts: list[tuple[Decimal | None, int]]) -> Decimal | None:
    count = sum(n for _, n in parts)
    if not count:
        return None
    return sum((v or Decimal(0) for v, _ in parts), Decimal(0)) / count
