"""A customer's monthly statement, computed from ledger rows with decimal arithmetic.

Pure logic: the rows come from exporters/customers/ledger_source.py. Money is rounded half
up to the cent per line (per rig energy, per rig fee, the capacity fee); every total is the
sum of the rounded lines it totals, so the statement adds up as printed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from exporters.customers.ledger_source import LEDGER_ROW_S, ActivityRow, EnergyRow
from hashwatt.config import CustomerConfig

KWH, MONEY, PCT, THS = Decimal("0.001"), Decimal("0.01"), Decimal("0.01"), Decimal("0.01")
HOURS = Decimal("0.01")
QUARTER_H = Decimal("0.25")
HUNDRED = Decimal(100)


def q(value: Decimal, step: Decimal) -> Decimal:
    """Round half up to step."""
    return value.quantize(step, rounding=ROUND_HALF_UP)


@dataclass(kw_only=True)
class RigLine:
    """One rig's part of the month (only the time it was the customer's)."""

    rig: str
    rack: str
    kwh: Decimal
    kwh_measured: Decimal
    kwh_estimated: Decimal
    sources: dict[str, Decimal]  # kWh per ledger source
    energy_cost: Decimal
    fee: Decimal
    assigned_hours: Decimal
    hours_hashing: Decimal
    hours_drawing: Decimal
    hours_maintenance: Decimal
    hours_available: Decimal  # hashing outside maintenance
    availability_pct: Decimal | None
    avg_hashrate_ths: Decimal | None
    expected_hashrate_ths: Decimal | None
    hashrate_pct: Decimal | None
    efficiency_j_th: Decimal | None


@dataclass(kw_only=True)
class DayGroup:
    """One day of one rig group (rack) for the chart."""

    day: str
    group: str
    kwh: Decimal
    cost: Decimal
    availability_pct: Decimal | None


@dataclass(kw_only=True)
class Statement:
    """Everything a statement shows, exact."""

    customer: CustomerConfig
    site: str
    timezone: str
    month: str
    period_start: str
    period_end: str
    month_hours: Decimal
    price: str
    rigs: list[RigLine]
    capacity_fee: Decimal
    totals: dict[str, Decimal | None]
    days: list[DayGroup]
    ledger_state: str
    ledger_rows: int
    activity_rows: int
    method: list[str] = field(default_factory=list)
    # hours of the month the contract covers, when it covers only part of it (the capacity
    # fee is pro rata for them); None for a whole month
    contract_hours: Decimal | None = None


def ledger_state(energy: Iterable[EnergyRow], activity: Iterable[ActivityRow]) -> str:
    """SHA-256 over the canonical lines of every row the statement used, sorted."""
    lines = sorted([e.canonical() for e in energy] + [a.canonical() for a in activity])
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def assigned_seconds(unit_rows: list[EnergyRow], customer: str) -> Decimal:
    """Time a rig was the customer's: each run of its ledger rows attributed to the customer
    (no other customer's row between them) counts from the start of its first row to the end
    of its last, quarters without rows inside the run included; a quarter split by a move
    counts only the customer's part of it."""
    total, run_end = Decimal(0), None  # run_end: the end of the run's last quarter
    for row in sorted(unit_rows, key=lambda r: r.start_s):
        if row.customer != customer:
            run_end = None  # another holder: the run is over
            continue
        if run_end is not None and row.start_s > run_end:
            total += row.start_s - run_end  # quarters without rows, still the customer's
        total += Decimal(row.seconds)
        run_end = row.start_s + LEDGER_ROW_S
    return total


def _energy_cost(c: CustomerConfig, kwh: Decimal, tariff_cost: Decimal) -> Decimal:
    if c.price.kind == "fixed":
        assert c.price.per_kwh is not None
        return kwh * c.price.per_kwh
    return tariff_cost * (1 + c.price.markup_pct / HUNDRED)


def _mean(values: list[Decimal]) -> Decimal | None:
    return sum(values, Decimal(0)) / len(values) if values else None


def _availability(hashing: Decimal, eligible: Decimal) -> Decimal | None:
    return q(hashing / eligible * HUNDRED, PCT) if eligible > 0 else None


@dataclass
class _Activity:
    hashing: Decimal = Decimal(0)  # hours, outside maintenance
    hashing_all: Decimal = Decimal(0)
    drawing: Decimal = Decimal(0)
    maintenance: Decimal = Decimal(0)
    hashrates: list[Decimal] = field(default_factory=list)
    expected: list[Decimal] = field(default_factory=list)
    power_hashing: list[Decimal] = field(default_factory=list)
    hash_hashing: list[Decimal] = field(default_factory=list)


def held_hours(mine: list[EnergyRow]) -> dict[tuple[str, int], Decimal]:
    """Hours of each (rig, quarter) the customer held the rig, where it held only part of the
    quarter (a move inside it); other quarters count whole (QUARTER_H)."""
    return {(r.unit, r.start_s): Decimal(r.seconds) / 3600 for r in mine
            if Decimal(r.seconds) != LEDGER_ROW_S}


def _activity(rows: list[ActivityRow], held: dict[tuple[str, int], Decimal]) -> _Activity:
    a = _Activity()
    for r in rows:
        hours = held.get((r.rig, r.start_s), QUARTER_H)  # a split quarter: its part only
        hashing = r.hashrate_ths is not None and r.hashrate_ths > 0
        a.hashing_all += hours * hashing
        a.drawing += hours * (r.power_w is not None and r.power_w > 0)
        if r.maintenance:
            a.maintenance += hours
            continue
        a.hashing += hours * hashing
        if r.hashrate_ths is not None:
            a.hashrates.append(r.hashrate_ths)
        if r.expected_ths is not None:
            a.expected.append(r.expected_ths)
        if hashing and r.power_w is not None:
            assert r.hashrate_ths is not None
            a.power_hashing.append(r.power_w)
            a.hash_hashing.append(r.hashrate_ths)
    return a


def _rig_line(c: CustomerConfig, unit: str, mine: list[EnergyRow], all_rows: list[EnergyRow],
              activity: list[ActivityRow], month_s: int) -> RigLine:
    kwh = sum((r.kwh for r in mine), Decimal(0))
    sources: dict[str, Decimal] = defaultdict(Decimal)
    for r in mine:
        sources[r.source] += r.kwh
    assigned = Decimal(assigned_seconds(all_rows, c.id))
    a = _activity(activity, held_hours(mine))
    eligible = assigned / 3600 - a.maintenance
    avg, expected = _mean(a.hashrates), _mean(a.expected)
    power, hashed = sum(a.power_hashing, Decimal(0)), sum(a.hash_hashing, Decimal(0))
    return RigLine(
        rig=unit, rack=mine[-1].rack, kwh=q(kwh, KWH),
        kwh_measured=q(sum((r.kwh_measured for r in mine), Decimal(0)), KWH),
        kwh_estimated=q(sum((r.kwh_estimated for r in mine), Decimal(0)), KWH),
        sources={k: q(v, KWH) for k, v in sorted(sources.items())},
        energy_cost=q(_energy_cost(c, kwh, sum((r.cost for r in mine), Decimal(0))), MONEY),
        fee=q(c.fees.per_rig_month * assigned / month_s, MONEY),
        assigned_hours=q(assigned / 3600, HOURS),
        hours_hashing=q(a.hashing_all, HOURS), hours_drawing=q(a.drawing, HOURS),
        hours_maintenance=q(a.maintenance, HOURS), hours_available=q(a.hashing, HOURS),
        availability_pct=_availability(a.hashing, eligible),
        avg_hashrate_ths=q(avg, THS) if avg is not None else None,
        expected_hashrate_ths=q(expected, THS) if expected is not None else None,
        hashrate_pct=(q(avg / expected * HUNDRED, PCT)
                      if avg is not None and expected else None),
        efficiency_j_th=q(power / hashed, THS) if hashed else None)


def _days(c: CustomerConfig, energy: list[EnergyRow], activity: list[ActivityRow],
          timezone: str) -> list[DayGroup]:
    zone = ZoneInfo(timezone)

    def day(ts: int) -> str:
        return dt.datetime.fromtimestamp(ts, zone).date().isoformat()

    kwh: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    eligible: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # hours
    for r in energy:
        key = (day(r.start_s), r.rack or "(no rack)")
        kwh[key] += r.kwh
        cost[key] += _energy_cost(c, r.kwh, r.cost)
        eligible[key] += Decimal(r.seconds) / 3600
    hashing: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    held = held_hours(energy)
    for a in activity:
        key = (day(a.start_s), a.rack or "(no rack)")
        hours = held.get((a.rig, a.start_s), QUARTER_H)
        if a.maintenance:
            eligible[key] -= hours
        elif a.hashrate_ths is not None and a.hashrate_ths > 0:
            hashing[key] += hours
    return [DayGroup(day=d, group=g, kwh=q(kwh[(d, g)], KWH), cost=q(cost[(d, g)], MONEY),
                     availability_pct=_availability(hashing[(d, g)], eligible[(d, g)]))
            for d, g in sorted(set(kwh) | set(hashing))]


def _price_text(c: CustomerConfig, site_currency: str) -> str:
    if c.price.kind == "fixed":
        return f"{c.price.per_kwh} {c.currency}/kWh (fixed)"
    return f"site tariff ({site_currency}) + {c.price.markup_pct} %"


def method_text(c: CustomerConfig, timezone: str) -> list[str]:
    """The method in plain words."""
    price = ("each kWh at the fixed contract price" if c.price.kind == "fixed" else
             f"the site tariff of each quarter hour plus a markup of {c.price.markup_pct} %")
    return [
        f"The month runs from local midnight to local midnight in {timezone}.",
        "Energy comes from hashwatt's energy ledger: per rig and quarter hour, attributed to the "
        "customer the inventory held at that time, so a rig that moved is split at the move.",
        "Measured kWh are read from the rig's PDU outlet (energy counter or metered power); "
        "estimated kWh come from the miner's own power figure or the model's nominal power, "
        "and fill short gaps between readings. The source "
        "column names where each rig's energy came from.",
        f"Energy is charged at {price}; each rig's cost is rounded to the cent.",
        "The capacity fee is per kW of contracted capacity and month, pro rata for the hours "
        "of the month the contract covers (from the local midnight of its first day to that "
        "after its last).",
        "The per-rig fee is charged pro rata for the time the rig was yours: from the first "
        "to the last ledger quarter hour attributed to you in the month (per run, if it moved).",
        "Availability = hours hashing outside maintenance / (hours the rig was yours - hours "
        "in maintenance). Hashing, drawing power and maintenance are counted per quarter hour "
        "from the rig's own readings; quarter hours without any reading count as not hashing.",
        "Average hashrate is the mean of the quarter-hour means outside maintenance; "
        "efficiency J/TH = mean power / mean hashrate over the quarter hours it hashed.",
        "Totals are the sums of the rounded lines above them.",
        "The ledger state is the SHA-256 of every ledger and activity row used, in a canonical "
        "form: recomputing the month from the same rows gives the same identifier and numbers.",
    ]


def build_statement(c: CustomerConfig, *, site: str, timezone: str, site_currency: str,
                    month: str, start_s: int, end_s: int, energy: list[EnergyRow],
                    activity: list[ActivityRow]) -> Statement:
    """The statement of customer c from the rows of its rigs (energy rows of every customer
    for those rigs, so moves are seen; activity rows of this customer only)."""
    by_unit: dict[str, list[EnergyRow]] = defaultdict(list)
    for r in energy:
        by_unit[r.unit].append(r)
    acts: dict[str, list[ActivityRow]] = defaultdict(list)
    for a in activity:
        if a.customer == c.id:
            acts[a.rig].append(a)
    month_s = end_s - start_s
    mine_all = [r for r in energy if r.customer == c.id]
    lines = []
    for unit, rows in sorted(by_unit.items()):
        mine = [r for r in rows if r.customer == c.id]
        if mine:
            lines.append(_rig_line(c, unit, mine, rows, acts.get(unit, []), month_s))
    covered = contract_seconds(c, start_s, end_s, timezone)
    capacity = q(c.fees.per_kw_month * c.fees.contracted_kw * covered / month_s, MONEY)
    used_activity = [a for a in activity if a.customer == c.id]
    totals = _totals(lines, capacity)
    zone = ZoneInfo(timezone)
    return Statement(
        customer=c, site=site, timezone=timezone, month=month,
        period_start=dt.datetime.fromtimestamp(start_s, zone).isoformat(),
        period_end=dt.datetime.fromtimestamp(end_s, zone).isoformat(),
        month_hours=Decimal(month_s) / 3600, price=_price_text(c, site_currency),
        rigs=lines, capacity_fee=capacity, totals=totals,
        days=_days(c, mine_all, used_activity, timezone),
        ledger_state=ledger_state(mine_all, used_activity),
        ledger_rows=len(mine_all), activity_rows=len(used_activity),
        method=method_text(c, timezone),
        contract_hours=(None if covered == month_s else Decimal(covered) / 3600))


def contract_seconds(c: CustomerConfig, start_s: int, end_s: int, timezone: str) -> int:
    """How much of [start, end) the contract covers: from contract_start's local midnight to
    the local midnight after contract_end (the whole range when neither is set)."""
    zone = ZoneInfo(timezone)
    lo, hi = start_s, end_s
    if c.contract_start is not None:
        lo = max(lo, int(dt.datetime.combine(c.contract_start, dt.time(), zone).timestamp()))
    if c.contract_end is not None:
        after = c.contract_end + dt.timedelta(days=1)
        hi = min(hi, int(dt.datetime.combine(after, dt.time(), zone).timestamp()))
    return max(hi - lo, 0)


def _totals(lines: list[RigLine], capacity: Decimal) -> dict[str, Decimal | None]:
    def total(name: str) -> Decimal:
        return sum((getattr(x, name) for x in lines), Decimal(0))

    energy_cost, rig_fees = total("energy_cost"), total("fee")
    eligible = total("assigned_hours") - total("hours_maintenance")
    return {
        "rigs": Decimal(len(lines)), "kwh": total("kwh"), "kwh_measured": total("kwh_measured"),
        "kwh_estimated": total("kwh_estimated"), "energy_cost": energy_cost,
        "rig_fees": rig_fees, "capacity_fee": capacity,
        "fees": rig_fees + capacity, "total": energy_cost + rig_fees + capacity,
        "hours_hashing": total("hours_hashing"), "hours_drawing": total("hours_drawing"),
        "hours_maintenance": total("hours_maintenance"),
        "hours_available": total("hours_available"),
        "availability_pct": _availability(total("hours_available"), eligible),
    }
