"""Monthly energy reports from the quarter-hour ledger: kWh (measured and estimated), cost,
kWh and cost per tariff window (peak / off-peak ...), coverage and rigs per customer, site,
rack or rig, as CSV (data only, the method in a sidecar file), XLSX or JSON.

Month boundaries are local midnights in the site's timezone (a month with a daylight-saving
change has 743 or 745 hours). The ledger is summed by the server per tag set, 72 hours at a
time, and added up here in decimal. Rounding (kWh to 0.001, money to 0.01) is by the largest
remainder method: each column's rows add up exactly to its total, kWh = measured + estimated
in every row, and a row's window columns add up to its kWh and cost.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from exporters.finance.ledger import LEDGER_TAGS, VOID, closed_end, unit_key
from exporters.finance.reproducible import fixed_xlsx
from exporters.finance.store import CHUNK_S, chunks, ledger_client, query_client, series, window
from exporters.sinks.influx_common import influx_settings
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL, InfluxQLError
from hashwatt.names import Field
from hashwatt.tariff import QUARTER_S

GroupBy = Literal["customer", "site", "rack", "rig"]
Format = Literal["csv", "json", "xlsx"]
KWH, MONEY, SHARE = Decimal("0.001"), Decimal("0.01"), Decimal("0.0001")
ZERO = Decimal(0)


def month_bounds(month: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month (YYYY-MM) at local midnight, as aware datetimes."""
    year, mon = (int(x) for x in month.split("-"))
    zone = ZoneInfo(timezone)
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return start, end


def last_month(timezone: str, now: dt.datetime | None = None) -> str:
    """The month before the current one in the site's timezone (YYYY-MM)."""
    today = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(timezone)).date()
    previous = today.replace(day=1) - dt.timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"


@dataclass
class SeriesSum:
    """The server's sums of one ledger series (unit, customer, rack, window) in the month."""

    tags: dict[str, str]
    kwh_measured: Decimal = ZERO
    kwh_estimated: Decimal = ZERO
    cost: Decimal = ZERO
    covered: int = 0
    first_ms: int | None = None
    last_ms: int | None = None


# the server sums floats: quantizing its sums to 1e-9 drops the binary noise (~1e-12), so a
# cost that is exactly x.xx5 stays a tie the rounding below breaks the same way every time
SUM_STEP = Decimal("1e-9")


def _dec(value: Any) -> Decimal:
    return Decimal(repr(float(value))).quantize(SUM_STEP) if value is not None else ZERO


def ledger_sums(db: InfluxQL, *, measurement: str, site: str, start: dt.datetime,
                end: dt.datetime) -> list[SeriesSum]:
    """Sums, covered quarters and first/last quarter per ledger series, 72 hours a query."""
    sums: dict[tuple[tuple[str, str], ...], SeriesSum] = {}
    live = f"\"{Field.SOURCE}\" != '{VOID}'"
    for lo, hi in chunks(int(start.timestamp()), int(end.timestamp())):
        where = f"{window(lo, hi, site)} AND {live}"
        query = (f'SELECT sum("kwh_measured") AS m, sum("kwh_estimated") AS e, '
                 f'sum("cost") AS cost, sum("coverage") AS covered FROM {measurement} WHERE '
                 f'{where} GROUP BY {LEDGER_TAGS}')
        for tags, rows in series(db, query):
            s = sums.setdefault(tuple(sorted(tags.items())), SeriesSum(tags))
            s.kwh_measured += _dec(rows[0]["m"])
            s.kwh_estimated += _dec(rows[0]["e"])
            s.cost += _dec(rows[0]["cost"])
            s.covered += round(rows[0]["covered"] or 0)
        for selector in ("first", "last"):  # a selector alone answers with the row's time
            query = (f'SELECT {selector}("kwh") FROM {measurement} WHERE {where} '
                     f'GROUP BY {LEDGER_TAGS}')
            for tags, rows in series(db, query):
                s = sums[tuple(sorted(tags.items()))]
                ts = rows[0]["time"]
                s.first_ms = ts if s.first_ms is None else min(s.first_ms, ts)
                s.last_ms = ts if s.last_ms is None else max(s.last_ms, ts)
    return list(sums.values())


def _unit(tags: dict[str, str]) -> str:
    key = unit_key(tags)
    return key[1] if key[0] == "rig" else "/".join(x for x in key[1:] if x)


@dataclass(kw_only=True)
class Group:
    """The exact (unrounded) sums of one report row."""

    measured: Decimal = ZERO
    estimated: Decimal = ZERO
    cost: Decimal = ZERO
    window_kwh: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    window_cost: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    covered: int = 0
    # unit -> [first, last] quarter (ms) it appears in this group
    spans: dict[str, list[int]] = field(default_factory=dict)

    def existed(self) -> int:
        """Quarter hours from each unit's first to its last row in this group, summed."""
        return sum((last - first) // (QUARTER_S * 1000) + 1 for first, last in self.spans.values())


def _key(tags: dict[str, str], by: GroupBy, site: str) -> str:
    return {"site": site, "rig": _unit(tags)}.get(by) or tags.get(by, "") or "(none)"


@dataclass(kw_only=True)
class Existence:
    """What tells how long each unit existed in the month beyond its own rows there."""

    first_ms: int  # the month's first quarter
    last_ms: int  # its last closed quarter
    before: dict[str, dict[str, str]]  # unit -> tags of its last row in the 72 h before
    after: dict[str, dict[str, str]]  # unit -> tags of its first row in the 72 h after
    inventory: set[str]  # rigs the configuration holds now


def ledger_edges(db: InfluxQL, *, measurement: str, site: str, start: dt.datetime,
                 end: dt.datetime) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Each unit's tags in its last ledger row of the 72 hours before the month and in its
    first of the 72 hours after it (a rig that was there before the month existed from its
    start, whatever its readings in it)."""
    out: list[dict[str, dict[str, str]]] = []
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    for lo, hi, selector in ((start_s - CHUNK_S, start_s, "last"), (end_s, end_s + CHUNK_S,
                                                                     "first")):
        found: dict[str, tuple[int, dict[str, str]]] = {}
        query = (f'SELECT {selector}("kwh") FROM {measurement} WHERE {window(lo, hi, site)} '
                 f"AND \"source\" != '{VOID}' GROUP BY {LEDGER_TAGS}")
        for tags, rows in series(db, query):
            unit, ts = _unit(tags), rows[0]["time"]
            if unit not in found or (ts > found[unit][0]) == (selector == "last"):
                found[unit] = (ts, tags)
        out.append({unit: tags for unit, (_, tags) in found.items()})
    return out[0], out[1]


def group_sums(sums: list[SeriesSum], by: GroupBy, site: str,
               existence: Existence | None = None) -> dict[str, Group]:
    """Series sums added up per report key; each unit's span in a group runs from the month's
    start when it was there before the month, and to the month's end (or the last closed
    quarter) when it is still there after it or still in the inventory."""
    groups: dict[str, Group] = defaultdict(Group)
    whole: dict[str, list[int]] = {}
    for s in sums:
        unit = _unit(s.tags)
        g = groups[_key(s.tags, by, site)]
        g.measured += s.kwh_measured
        g.estimated += s.kwh_estimated
        g.cost += s.cost
        name = s.tags.get("window", "")
        g.window_kwh[name] += s.kwh_measured + s.kwh_estimated
        g.window_cost[name] += s.cost
        g.covered += s.covered
        if s.first_ms is not None and s.last_ms is not None:
            for spans in (g.spans, whole):
                span = spans.setdefault(unit, [s.first_ms, s.last_ms])
                span[0], span[1] = min(span[0], s.first_ms), max(span[1], s.last_ms)
    if existence is not None:
        _stretch(groups, whole, by, site, existence)
    return dict(sorted(groups.items()))


def _stretch(groups: dict[str, Group], whole: dict[str, list[int]], by: GroupBy, site: str,
             e: Existence) -> None:
    for key, g in groups.items():
        for unit, span in g.spans.items():
            before, after = e.before.get(unit), e.after.get(unit)
            if span[0] == whole[unit][0] and before is not None and \
                    _key(before, by, site) == key:
                span[0] = min(span[0], e.first_ms)
            if span[1] == whole[unit][1] and (
                    (after is not None and _key(after, by, site) == key)
                    or (after is None and unit in e.inventory)):
                span[1] = max(span[1], e.last_ms)


def apportion(values: list[Decimal], step: Decimal, target: Decimal | None = None) -> list[Decimal]:
    """Round each value to step so that they add up to target (default: their sum rounded
    half up), moving the fewest values away from their nearest step (largest remainder)."""
    total = sum(values, ZERO)
    goal = (total if target is None else target).quantize(step, rounding=ROUND_HALF_UP)
    floors = [(v / step).to_integral_value(rounding=ROUND_FLOOR) * step for v in values]
    short = int(((goal - sum(floors, ZERO)) / step).to_integral_value())
    order = sorted(range(len(values)), key=lambda i: (values[i] - floors[i], -i), reverse=True)
    if short >= 0:
        for i in order[:short]:
            floors[i] += step
    else:  # a target below the floors (a row's rounded kWh): take from the smallest remainders
        for i in [i for i in reversed(order) if floors[i] > 0][:-short]:
            floors[i] -= step
    return [f.quantize(step) for f in floors]


@dataclass(kw_only=True)
class Report:
    """A computed report: rounded rows, their total, the method and the tariff applied."""

    month: str
    by: GroupBy
    site: str
    timezone: str
    currency: str
    hours: int
    windows: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    method: list[str]
    tariff: list[str]


def _windows(cfg: Config, present: set[str]) -> list[str]:
    order: list[str] = []
    for period in cfg.tariff.periods if cfg.tariff is not None else []:
        order += [period.name, *(w.label for w in period.windows)]
    known = [w for w in dict.fromkeys(order) if w in present]
    return known + sorted(present - set(known))


def build_report(cfg: Config, db: InfluxQL, *, measurement: str, month: str,
                 by: GroupBy) -> Report:
    """Read the ledger for the month and build the rounded report."""
    start, end = month_bounds(month, cfg.site.timezone)
    hours = int((end.timestamp() - start.timestamp()) // 3600)
    before, after = ledger_edges(db, measurement=measurement, site=cfg.site.name, start=start,
                                 end=end)
    closed = min(end.timestamp(), closed_end(end.timestamp(), cfg.site.timezone))
    existence = Existence(first_ms=int(start.timestamp()) * 1000,
                          last_ms=(int(closed) - QUARTER_S) * 1000, before=before, after=after,
                          inventory={r.id for r in cfg.rigs})
    sums = ledger_sums(db, measurement=measurement, site=cfg.site.name, start=start, end=end)
    groups = group_sums(sums, by, cfg.site.name, existence)
    names = _windows(cfg, {w for g in groups.values() for w in g.window_kwh})
    keys, gs = list(groups), list(groups.values())
    measured = apportion([g.measured for g in gs], KWH)
    estimated = apportion([g.estimated for g in gs], KWH)
    cost = apportion([g.cost for g in gs], MONEY)
    rows: list[dict[str, Any]] = []
    for i, g in enumerate(gs):
        kwh = measured[i] + estimated[i]
        w_kwh = apportion([g.window_kwh.get(w, ZERO) for w in names], KWH, kwh)
        w_cost = apportion([g.window_cost.get(w, ZERO) for w in names], MONEY, cost[i])
        existed = g.existed()
        rows.append({by: keys[i], "kwh": kwh, "kwh_measured": measured[i],
                     "kwh_estimated": estimated[i], "cost": cost[i],
                     **{f"kwh_{w}": w_kwh[j] for j, w in enumerate(names)},
                     **{f"cost_{w}": w_cost[j] for j, w in enumerate(names)},
                     "coverage": (Decimal(g.covered) / existed).quantize(SHARE, ROUND_HALF_UP)
                     if existed else ZERO, "rigs": len(g.spans)})
    total: dict[str, Any] = {by: "TOTAL"}
    for name in ("kwh", "kwh_measured", "kwh_estimated", "cost",
                 *(f"{k}_{w}" for w in names for k in ("kwh", "cost"))):
        total[name] = sum((r[name] for r in rows), ZERO)
    covered, existed = sum(g.covered for g in gs), sum(g.existed() for g in gs)
    total["coverage"] = ((Decimal(covered) / existed).quantize(SHARE, ROUND_HALF_UP)
                         if existed else ZERO)
    total["rigs"] = len({u for g in gs for u in g.spans})
    return Report(month=month, by=by, site=cfg.site.name, timezone=cfg.site.timezone,
                  currency=cfg.site.currency, hours=hours, windows=names, rows=rows, total=total,
                  method=_method(cfg, start, end, hours), tariff=tariff_lines(cfg))


def _method(cfg: Config, start: dt.datetime, end: dt.datetime, hours: int) -> list[str]:
    return [
        f"Site {cfg.site.name}: {start.isoformat()} to {end.isoformat()} "
        f"({cfg.site.timezone}, {hours} hours); amounts in {cfg.site.currency}.",
        "Source: the energy ledger (energy_quarter), one row per rig or unmapped PDU outlet "
        "per local quarter hour, attributed to the customer and rack the rig had then.",
        "Measured kWh: PDU outlet energy counters (consecutive reads, spread evenly over the "
        "time between them; a counter reset counts from zero) or PDU outlet power. Estimated "
        "kWh: the miner's own or the model's nominal power (a rig reporting itself offline "
        "counts as 0 W), and gaps of up to 45 minutes between readings filled with the power "
        "before them.",
        "Cost: every quarter hour priced at the tariff rate in force then (see Tariff); the "
        "window columns split kWh and cost by the tariff window they fell in.",
        "Coverage: quarter hours with readings of their own / quarter hours each rig existed "
        "in the month: from its first ledger row (from the month's start when it had rows "
        "in the 72 hours before) to its last (to the month's end when it has rows in the 72 "
        "hours after or is still in the inventory). A rig added mid-month is not missing "
        "before it existed. Quarter hours without any reading are in no kWh figure.",
        "Rounding: kWh to 0.001 and money to 0.01 by the largest remainder method, so each "
        "column's rows add up to its total exactly and kWh = measured + estimated in every "
        "row.",
        "Unfinished hours are never billed: the ledger covers closed hours only.",
    ]


def tariff_lines(cfg: Config) -> list[str]:
    """The tariff as text: every period with its rate and windows."""
    if cfg.tariff is None:
        return ["No tariff configured: every cost is 0."]
    lines = []
    for p in cfg.tariff.periods:
        lines.append(f"From {p.start.isoformat(timespec='minutes')} ({cfg.site.timezone}): "
                     f"{p.name} {p.rate} {cfg.site.currency}/kWh outside every window")
        for w in p.windows:
            lines.append(f"  {w.label}: {w.rate} {cfg.site.currency}/kWh, {w.start}-{w.end} "
                         f"on {','.join(w.weekdays)}, months {','.join(map(str, w.months))}")
    return lines


def columns(report: Report) -> list[str]:
    """The data columns, in order."""
    return ["site", "month", "currency", report.by, "kwh", "kwh_measured", "kwh_estimated",
            "cost", *(f"{k}_{w}" for w in report.windows for k in ("kwh", "cost")),
            "coverage", "rigs"]


def _values(report: Report, row: dict[str, Any]) -> list[Any]:
    fixed = {"site": report.site, "month": report.month, "currency": report.currency}
    return [fixed[c] if c in fixed else row[c] for c in columns(report)]


def render(report: Report, fmt: Format, output: Path | None) -> bytes:
    """The report as CSV, JSON or XLSX bytes; written to output when given (a CSV gets its
    method and totals in a sidecar file beside it, <output>.method.txt)."""
    data = {"csv": _csv, "json": _json, "xlsx": _xlsx}[fmt](report)
    if output is not None:
        output.write_bytes(data)
        if fmt == "csv":
            sidecar_path(output).write_text(notes(report))
    return data


def sidecar_path(output: Path) -> Path:
    """Where a CSV's method notes go."""
    return output.with_name(output.name + ".method.txt")


def notes(report: Report) -> str:
    """The method, the tariff and the totals, as text to keep beside the CSV."""
    total = ", ".join(f"{c} {report.total[c]}" for c in columns(report)[4:])
    return "\n".join([f"Energy report {report.month}, site {report.site}, per {report.by}",
                      "", "Method", *report.method, "", "Tariff", *report.tariff, "",
                      f"Total: {total}", ""])


def _csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns(report))
    for row in report.rows:
        writer.writerow(_values(report, row))
    return out.getvalue().encode()


def _json(report: Report) -> bytes:
    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}

    return json.dumps({"month": report.month, "site": report.site, "by": report.by,
                       "timezone": report.timezone, "currency": report.currency,
                       "hours": report.hours, "windows": report.windows,
                       "rows": [plain(r) for r in report.rows], "total": plain(report.total),
                       "method": report.method, "tariff": report.tariff},
                      indent=2).encode()


def _xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"Energy {report.month}"
    names = columns(report)
    sheet.append(names)
    for row in report.rows:
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in _values(report, row)])
    last = len(report.rows) + 1
    total: list[str | float] = ["", "", "", "TOTAL"]
    for i, name in enumerate(names[4:], start=5):
        letter = get_column_letter(i)
        # coverage is a share and rigs a count of distinct rigs (a rig that moved is in two
        # rows): neither adds up, both are the report's own total
        total.append(f"=SUM({letter}2:{letter}{last})" if name not in ("coverage", "rigs")
                     else float(report.total[name]) if name == "coverage"
                     else report.total[name])
    sheet.append(total)
    money = f'#,##0.00 "{report.currency}"'
    for i, name in enumerate(names, start=1):
        fmt = (money if name.startswith("cost") else "#,##0.000" if name.startswith("kwh")
               else "0.0%" if name == "coverage" else None)
        for cells in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
            if fmt:
                cells[0].number_format = fmt
        sheet.column_dimensions[get_column_letter(i)].width = max(12, len(name) + 4)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for cell in sheet[last + 1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    method = book.create_sheet("Method")
    method.column_dimensions["A"].width = 120
    for line in ["Method", *report.method, "", "Tariff", *report.tariff]:
        method.append([line])
    out = io.BytesIO()
    book.save(out)
    end = month_bounds(report.month, report.timezone)[1].astimezone(dt.UTC)
    return fixed_xlsx(out.getvalue(), end.strftime("%Y-%m-%dT%H:%M:%SZ"))


def energy_report(cfg: Config, month: str, by: GroupBy) -> Report:
    """Build a report against the configured InfluxDB."""
    db, measurement = ledger_client(cfg)
    try:
        return build_report(cfg, db, measurement=measurement, month=month, by=by)
    finally:
        db.close()


LEGACY_MEASUREMENT = "energy_hourly"  # the hourly ledger before energy_quarter (UTC hours)


def legacy_only_hours(cfg: Config, month: str) -> int:
    """Hours of the month found only in the old hourly ledger (`energy_hourly`, which no
    report reads) and not in `energy_quarter`: the README's stance is to rebuild such months
    from raw data with `rollup --backfill` while it is kept, never to convert the old rows
    (UTC hours carrying the attribution bugs the quarter ledger fixed)."""
    start, end = month_bounds(month, cfg.site.timezone)
    influx = influx_settings(cfg) if cfg.influxdb is not None else None
    rp = influx.ledger_retention_policy if influx is not None else "ledger"
    raw = query_client(cfg)
    ledger, measurement = ledger_client(cfg, raw)
    old: set[int] = set()
    new: set[int] = set()
    try:
        for lo, hi in chunks(int(start.timestamp()), int(end.timestamp())):
            where = window(lo, hi, cfg.site.name)
            places = [(raw, f'"{rp}"."{LEGACY_MEASUREMENT}"')]
            if ledger is not raw:  # a ledger database of its own may hold old rows too
                places.append((ledger, f'"{LEGACY_MEASUREMENT}"'))
            for db, source in places:
                try:
                    old |= _hours(db, f'SELECT count("kwh") FROM {source} WHERE {where} '
                                      'GROUP BY time(1h) fill(none)')
                except InfluxQLError:  # no such retention policy or database: nothing old
                    continue
            new |= _hours(ledger, f'SELECT count("kwh") FROM {measurement} WHERE {where} AND '
                                  f"\"source\" != '{VOID}' GROUP BY time(1h) fill(none)")
    finally:
        raw.close()
        if ledger is not raw:
            ledger.close()
    return len(old - new)


def _hours(db: InfluxQL, query: str) -> set[int]:
    return {int(row["time"]) for _, rows in series(db, query) for row in rows if row["count"]}
