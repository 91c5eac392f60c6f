"""Monthly energy reports from the hourly ledger: kWh, cost, measured/estimated split and
coverage per customer, site, rack or rig, with a total row that equals the sum of the rows.

Month boundaries are local midnights in the site's timezone (a month with a daylight-saving
change has 743 or 745 hours). Rows are rounded (kWh to 0.001, money to 0.01) by the largest
remainder method, so the rounded rows add up exactly to the rounded ledger total.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from exporters.ledger import query_client
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL

GroupBy = Literal["customer", "site", "rack", "rig"]
KWH, MONEY = Decimal("0.001"), Decimal("0.01")


def month_bounds(month: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month (YYYY-MM) at local midnight, as aware datetimes."""
    year, mon = (int(x) for x in month.split("-"))
    zone = ZoneInfo(timezone)
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return start, end


@dataclass
class Group:
    """The sums of one report row before rounding."""

    kwh: float = 0.0
    measured: float = 0.0
    estimated: float = 0.0
    cost: float = 0.0
    covered_hours: float = 0.0
    units: set[str] = field(default_factory=set)


def ledger_rows(db: InfluxQL, site: str, start: dt.datetime, end: dt.datetime,
                source: str = '"ledger"."energy_hourly"') -> list[dict[str, Any]]:
    """Every ledger row of the site in [start, end) (source: InfluxConfig.ledger_source)."""
    query = (f'SELECT "kwh", "kwh_measured", "kwh_estimated", "cost", "coverage" FROM '
             f'{source} WHERE time >= '
             f'{int(start.timestamp() * 1000)}ms AND time < {int(end.timestamp() * 1000)}ms '
             f'AND "site" = \'{site}\' GROUP BY "site", "customer", "rack", "rig", "pdu", '
             f'"outlet"')
    return db.rows(query)


def _unit(row: dict[str, Any]) -> str:
    return row.get("rig") or f'{row.get("pdu", "")}/{row.get("outlet", "")}'


def group_rows(rows: list[dict[str, Any]], by: GroupBy) -> dict[str, Group]:
    """Sum ledger rows by the report key (a rig's own tag; outlets by PDU/outlet)."""
    groups: dict[str, Group] = defaultdict(Group)
    for row in rows:
        key = (row.get(by) or "") if by != "rig" else _unit(row)
        g = groups[key or "(none)"]
        g.kwh += row["kwh"]
        g.measured += row["kwh_measured"]
        g.estimated += row["kwh_estimated"]
        g.cost += row["cost"]
        g.covered_hours += row["coverage"]
        g.units.add(_unit(row))
    return dict(sorted(groups.items()))


def largest_remainder(values: list[float], step: Decimal) -> list[Decimal]:
    """Round each value to step so that the rounded values sum to the rounded total."""
    exact = [Decimal(repr(v)) for v in values]
    total = sum(exact, Decimal(0)).quantize(step, rounding=ROUND_HALF_UP)
    floors = [(v / step).to_integral_value(rounding="ROUND_FLOOR") * step for v in exact]
    short = int(((total - sum(floors, Decimal(0))) / step).to_integral_value())
    order = sorted(range(len(exact)), key=lambda i: exact[i] - floors[i], reverse=True)
    for i in order[:max(short, 0)]:
        floors[i] += step
    return [f.quantize(step) for f in floors]


@dataclass
class Report:
    """A computed report."""

    month: str
    by: GroupBy
    site: str
    timezone: str
    currency: str
    hours: int
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    method: list[str]


def build_report(cfg: Config, db: InfluxQL, month: str, by: GroupBy) -> Report:
    """Read the ledger for the month and build the rounded report."""
    start, end = month_bounds(month, cfg.site.timezone)
    hours = int((end.timestamp() - start.timestamp()) // 3600)
    source = cfg.influxdb.ledger_source() if cfg.influxdb else '"ledger"."energy_hourly"'
    groups = group_rows(ledger_rows(db, cfg.site.name, start, end, source), by)
    columns = {"kwh": KWH, "kwh_measured": KWH, "kwh_estimated": KWH, "cost": MONEY}
    sums = {"kwh": [g.kwh for g in groups.values()],
            "kwh_measured": [g.measured for g in groups.values()],
            "kwh_estimated": [g.estimated for g in groups.values()],
            "cost": [g.cost for g in groups.values()]}
    rounded = {name: largest_remainder(sums[name], step) for name, step in columns.items()}
    rows = []
    for i, (key, g) in enumerate(groups.items()):
        coverage = g.covered_hours / (hours * len(g.units)) if g.units else 0.0
        rows.append({by: key, **{name: rounded[name][i] for name in columns},
                     "coverage": round(coverage, 4), "units": len(g.units)})
    covered = sum(g.covered_hours for g in groups.values())
    units = sum(len(g.units) for g in groups.values())
    total = {by: "TOTAL", **{name: sum(rounded[name], Decimal(0)).quantize(step)
                             for name, step in columns.items()},
             "coverage": round(covered / (hours * units), 4) if units else 0.0, "units": units}
    return Report(month, by, cfg.site.name, cfg.site.timezone, cfg.site.currency, hours, rows,
                  total, _method(cfg, start, end, hours))


def _method(cfg: Config, start: dt.datetime, end: dt.datetime, hours: int) -> list[str]:
    return [
        f"period {start.isoformat()} to {end.isoformat()} ({cfg.site.timezone}, {hours} h)",
        "source: the hourly energy ledger (energy_hourly), one row per rig or unmapped outlet "
        "per hour",
        "measured = PDU energy-counter differences or PDU outlet power; estimated = the "
        "miner's own or the model's nominal power, and quarter hours filled with the hour's "
        "mean",
        "coverage = hours with readings / (hours in the month x rigs); hours without any "
        "reading are not in the kWh",
        f"cost in {cfg.site.currency}: each quarter hour priced at its own tariff rate",
        "rows rounded by largest remainder: the total row is the sum of the rows and equals "
        "the ledger total rounded",
    ]


def render(report: Report, fmt: Literal["csv", "json", "xlsx"], output: Path | None) -> bytes:
    """The report as CSV, JSON or XLSX bytes (also written to output when given)."""
    data = {"csv": _csv, "json": _json, "xlsx": _xlsx}[fmt](report)
    if output is not None:
        output.write_bytes(data)
    return data


def _header(report: Report) -> list[str]:
    return [report.by, "kWh", "measured kWh", "estimated kWh", f"cost {report.currency}",
            "coverage", "units"]


def _cells(report: Report, row: dict[str, Any]) -> list[Any]:
    return [row[report.by], row["kwh"], row["kwh_measured"], row["kwh_estimated"], row["cost"],
            row["coverage"], row["units"]]


def _csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_header(report))
    for row in [*report.rows, report.total]:
        writer.writerow(_cells(report, row))
    for line in report.method:
        writer.writerow([f"# {line}"])
    return out.getvalue().encode()


def _json(report: Report) -> bytes:
    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}

    return json.dumps({"month": report.month, "site": report.site, "by": report.by,
                       "timezone": report.timezone, "currency": report.currency,
                       "hours": report.hours, "rows": [plain(r) for r in report.rows],
                       "total": plain(report.total), "method": report.method},
                      indent=2).encode()


def _xlsx(report: Report) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"energy {report.month}"
    sheet.append(_header(report))
    for row in [*report.rows, report.total]:
        sheet.append([float(c) if isinstance(c, Decimal) else c for c in _cells(report, row)])
    sheet.append([])
    for line in report.method:
        sheet.append([line])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def energy_report(cfg: Config, month: str, by: GroupBy) -> Report:
    """Build a report against the configured InfluxDB."""
    db = query_client(cfg)
    try:
        return build_report(cfg, db, month, by)
    finally:
        db.close()
