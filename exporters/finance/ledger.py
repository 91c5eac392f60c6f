"""The energy ledger: kWh and cost per rig (and per unmapped outlet) per local quarter hour,
attributed to the customer and rack the inventory held at that time, written to
`energy_quarter` in the long-retention ledger.

Every UTC offset in use is a whole number of quarter hours (+05:30, +05:45 too), so a local
quarter hour is a UTC quarter hour and a row's timestamp is its quarter's start.

Energy of a quarter hour, best source first (hashwatt.power.LEDGER_SOURCES):
  pdu_energy  the outlet's energy counter: the difference between consecutive reads (a read
              flagged `energy_reset` by the collector, or below half the read before it,
              counts from zero; a smaller step back is jitter, no energy, and the read after it
              counts from the higher read before it) spread evenly over
              the time between the two reads, so energy across a
              gap lands in the quarters it was drawn in, each priced at its own rate; a gap of
              up to 72 hours is spread; the part of a quarter no counter interval covers (a
              newly mapped outlet, the open end of the data) comes from the next source;
  pdu_power   mean outlet power (or the rig's power when the collector took it from the
              outlet) x 15 min;
  miner, nominal  mean of the rig's own or the model's nominal power x 15 min, where every
              reading in which the rig reported itself offline counts as 0 W;
  offline     only offline readings in the quarter: 0 kWh.
A quarter without readings between two readings at most 45 minutes apart (their times are
asked for when two or three quarters in a row are empty) takes the power of the quarter
before it (estimated, coverage 0); quarters without readings otherwise get no row: reports
show them as missing coverage, never as silent zeros.

A quarter belongs to the customer and rack of the rig's readings in it (the tag set with most
readings; on a tie the one the rig kept afterwards); without rig readings, those of the nearest
reading before it (up to 72 hours back; else after it), else the outlet's.

Re-running a range rewrites every row of it: rows keep their tag set (same series, same
timestamp: InfluxDB overwrites the point), and a row of the range whose unit (rig or outlet)
and quarter now get another tag set (customer, rack or tariff window changed) is overwritten
with zeros and source "void", which every reader skips. Nothing else ever writes the ledger.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from exporters.finance.store import (
    CHUNK_S,
    MEASUREMENT,
    chunks,
    ledger_client,
    query_client,
    series,
    window,
)
from exporters.lineproto import Point
from exporters.sinks import make_sink
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL
from hashwatt.names import Field as F
from hashwatt.names import Tag as T
from hashwatt.names import quoted
from hashwatt.power import LEDGER_SOURCES, MEASURED_SOURCES, POWER_SOURCES, ledger_source
from hashwatt.tariff import QUARTER_S, Tariff

log = logging.getLogger(__name__)

HOUR_S = 3600
ROLLUP_CHUNK_S = 86400  # computed and written a day at a time, whatever the range
COUNTER_LOOKBACK_S = CHUNK_S  # a counter gap up to this long is spread over its quarters
FILL_QUARTERS = 3  # quarters without readings filled between readings at most 45 min apart
FILL_GAP_S = 45 * 60  # the longest time between two readings whose gap is filled
RIG_TAGS = quoted(T.RIG, T.CUSTOMER, T.RACK)
# "unit" is the PDU's link unit on a daisy chain: outlet numbers repeat across units
OUTLET_TAGS = quoted(T.PDU, T.UNIT, T.OUTLET, T.RIG, T.CUSTOMER, T.RACK)
LEDGER_TAGS = quoted(T.RIG, T.PDU, T.UNIT, T.OUTLET, T.CUSTOMER, T.RACK, T.WINDOW)
VOID = "void"
UNTARIFFED = "untariffed"  # the window of a quarter no tariff period covers (cost 0)

UnitKey = tuple[str, ...]  # ("rig", id) or ("outlet", pdu, link unit, outlet)
OutletKey = tuple[str, str, str]  # pdu, link unit, outlet: one energy counter
Attribution = tuple[str, str]  # (customer, rack)


def unit_key(tags: dict[str, str]) -> UnitKey:
    """The billed unit of a series: its rig, or the outlet when no rig is mapped to it."""
    if tags.get("rig"):
        return ("rig", tags["rig"])
    return ("outlet", *outlet_key(tags))


def outlet_key(tags: dict[str, str]) -> OutletKey:
    """The outlet (and so the energy counter) of a series."""
    return (tags.get("pdu", ""), tags.get("unit", ""), tags.get("outlet", ""))


def quarter_floor(ts_s: float) -> int:
    """Start of the quarter hour holding ts."""
    return int(ts_s // QUARTER_S * QUARTER_S)


@dataclass(slots=True)
class Read:
    """One energy-counter read of an outlet."""

    ts_s: float
    kwh: float
    reset: bool
    unit: UnitKey
    attribution: Attribution


@dataclass
class Unit:
    """Everything the readings say about one billed unit, per quarter start."""

    key: UnitKey
    counter_kwh: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    counter_s: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    # ledger source -> quarter -> [sum of W, readings]
    power: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: [0.0, 0.0])))
    offline: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    rig_tags: dict[int, Counter[Attribution]] = field(
        default_factory=lambda: defaultdict(Counter))
    outlet_tags: dict[int, Attribution] = field(default_factory=dict)
    sorted_quarters: dict[str, list[int]] = field(default_factory=dict)
    # quarters without readings whose readings around them are more than FILL_GAP_S apart
    unfilled: set[int] = field(default_factory=set)


@dataclass
class Quarter:
    """The ledger's account of one unit in one quarter hour."""

    kwh_measured: float
    kwh_estimated: float
    source: str
    covered: bool


class Readings:
    """The raw readings of a site around [start, end), queried in chunks of at most 72 h."""

    def __init__(self, db: InfluxQL, site: str) -> None:
        self.db, self.site = db, site
        self.units: dict[UnitKey, Unit] = {}

    def unit(self, key: UnitKey) -> Unit:
        """The unit, created on first sight."""
        if key not in self.units:
            self.units[key] = Unit(key)
        return self.units[key]

    def load_power(self, start_s: int, end_s: int) -> None:
        """Per-quarter power of rigs and outlets, and who held each rig in each quarter."""
        for lo, hi in chunks(start_s, end_s):
            where = window(lo, hi, self.site)
            for src in POWER_SOURCES:
                query = (f'SELECT sum("power_w") AS w, count("power_w") AS n FROM "rig" WHERE '
                         f"{where} AND \"power_source\" = '{src}' GROUP BY time(15m), "
                         f"{RIG_TAGS} fill(none)")
                self._add_power(query, ledger_source(src))
            self._add_power(f'SELECT sum("power_w") AS w, count("power_w") AS n FROM '
                            f'"pdu_outlet" WHERE {where} GROUP BY time(15m), {OUTLET_TAGS} '
                            f'fill(none)', "pdu_power", outlet=True)
            query = (f'SELECT count("up") AS n, count("power_w") AS p FROM "rig" WHERE {where} '
                     f'AND "online" = false GROUP BY time(15m), {RIG_TAGS} fill(none)')
            for tags, rows in series(self.db, query):
                unit = self.unit(unit_key(tags))
                for row in rows:  # an offline reading with outlet power is not a zero
                    zeros = (row["n"] or 0) - (row["p"] or 0)
                    if zeros > 0:
                        unit.offline[int(row["time"] // 1000)] += zeros
            query = (f'SELECT count("up") AS n FROM "rig" WHERE {where} GROUP BY time(15m), '
                     f'{RIG_TAGS} fill(none)')
            for tags, rows in series(self.db, query):
                unit = self.unit(unit_key(tags))
                for row in rows:
                    unit.rig_tags[int(row["time"] // 1000)][_attribution(tags)] += row["n"]

    def load_holders(self, before_s: int) -> None:
        """Who held each rig at its last reading in the 72 h before: a counter gap that
        starts there still goes to the rig's customer and rack, not the PDU's."""
        query = (f'SELECT last("up") FROM "rig" WHERE '
                 f'{window(before_s - CHUNK_S, before_s, self.site)} GROUP BY {RIG_TAGS}')
        latest: dict[UnitKey, tuple[float, Attribution]] = {}
        for tags, rows in series(self.db, query):
            key, ts = unit_key(tags), rows[0]["time"] / 1000
            if key not in latest or ts > latest[key][0]:
                latest[key] = (ts, _attribution(tags))
        for key, (ts, who) in latest.items():
            self.unit(key).rig_tags[quarter_floor(ts)][who] += 1

    def load_gaps(self, start_s: int, end_s: int) -> None:
        """Mark the quarters of [start, end) without readings whose readings around them are
        more than FILL_GAP_S apart: quarter sums cannot tell 40 from 50 minutes when two or
        three quarters are empty, so the reading times of those few gaps are asked for."""
        for unit in self.units.values():
            own = sorted({q for table in unit.power.values() for q in table} | set(unit.offline))
            for before, after in pairwise(own):
                empty = (after - before) // QUARTER_S - 1
                if not 2 <= empty <= FILL_QUARTERS or after <= start_s or before >= end_s:
                    continue  # one empty quarter: its readings are under 45 minutes apart
                last = self._edge(unit.key, before, "last")
                first = self._edge(unit.key, after, "first")
                if last is not None and first is not None and first - last > FILL_GAP_S:
                    unit.unfilled.update(range(before + QUARTER_S, after, QUARTER_S))

    def _edge(self, key: UnitKey, quarter: int, selector: str) -> float | None:
        """The time of the unit's last (first) reading in a quarter, rig or outlet."""
        where = window(quarter, quarter + QUARTER_S, self.site)
        if key[0] == "rig":
            rig = _quote(key[1])
            queries = [f'SELECT {selector}("up") FROM "rig" WHERE {where} AND "rig" = \'{rig}\'',
                       f'SELECT {selector}("power_w") FROM "pdu_outlet" WHERE {where} AND '
                       f'"rig" = \'{rig}\'']
        else:
            match = " AND ".join(f'"{tag}" = \'{_quote(value)}\''
                                 for tag, value in zip(("pdu", "unit", "outlet"), key[1:],
                                                       strict=True))
            queries = [f'SELECT {selector}("power_w") FROM "pdu_outlet" WHERE {where} AND '
                       f'{match}']
        times = [rows[0]["time"] / 1000 for query in queries
                 for _, rows in series(self.db, query)]
        if not times:
            return None
        return max(times) if selector == "last" else min(times)

    def _add_power(self, query: str, source: str, outlet: bool = False) -> None:
        for tags, rows in series(self.db, query):
            unit = self.unit(unit_key(tags))
            for row in rows:
                if not row["n"]:
                    continue
                quarter = int(row["time"] // 1000)
                acc = unit.power[source if not outlet else "pdu_outlet"][quarter]
                acc[0] += row["w"]
                acc[1] += row["n"]
                if outlet:
                    unit.outlet_tags[quarter] = _attribution(tags)

    def counter_reads(self, start_s: int, end_s: int) -> dict[OutletKey, list[Read]]:
        """Every counter read of [start, end) per outlet, with the last read before start and
        the first after end (each within COUNTER_LOOKBACK_S)."""
        streams: dict[OutletKey, list[Read]] = defaultdict(list)
        for lo, hi in chunks(start_s, end_s):
            query = (f'SELECT "energy_kwh", "energy_reset" FROM "pdu_outlet" WHERE '
                     f'{window(lo, hi, self.site)} AND "energy_kwh" >= 0 GROUP BY {OUTLET_TAGS}')
            for tags, rows in series(self.db, query):
                unit, who = unit_key(tags), _attribution(tags)  # once per series, not per read
                streams[outlet_key(tags)] += [
                    Read(row["time"] / 1000, float(row["energy_kwh"]),
                         bool(row["energy_reset"]), unit, who)
                    for row in rows if row["energy_kwh"] is not None]
        for edge, selector in ((start_s - COUNTER_LOOKBACK_S, "last"),
                               (end_s, "first")):
            query = (f'SELECT {selector}("energy_kwh") AS energy_kwh FROM "pdu_outlet" WHERE '
                     f'{window(edge, edge + COUNTER_LOOKBACK_S, self.site)} GROUP BY '
                     f'{OUTLET_TAGS}')
            found: dict[OutletKey, Read] = {}
            for tags, rows in series(self.db, query):  # a selector alone keeps the read's time
                read = _read(tags, {**rows[0], "energy_reset": False})
                key = outlet_key(tags)
                other = found.get(key)
                if other is None or (read.ts_s > other.ts_s) == (selector == "last"):
                    found[key] = read
            for key, read in found.items():
                streams[key].append(read)
        for reads in streams.values():
            reads.sort(key=lambda r: r.ts_s)
        return streams


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _attribution(tags: dict[str, str]) -> Attribution:
    return (tags.get("customer", ""), tags.get("rack", ""))


def _read(tags: dict[str, str], row: dict[str, Any]) -> Read:
    return Read(row["time"] / 1000, float(row["energy_kwh"]), bool(row.get("energy_reset")),
                unit_key(tags), _attribution(tags))


def interval_kwh(before: Read, after: Read) -> float:
    """Energy between two consecutive reads of one counter: the difference; after a reset
    (flagged by the collector, or a read below half the one before it) the read itself,
    counted from zero; a smaller step back is meter jitter, no energy (never negative)."""
    if after.reset or after.kwh < before.kwh / 2:
        return after.kwh
    return max(after.kwh - before.kwh, 0.0)


def spread_counters(readings: Readings,
                    streams: dict[OutletKey, list[Read]]) -> None:
    """Each interval between consecutive reads of an outlet, spread evenly over its time and
    booked to the unit of its closing read."""
    for reads in streams.values():
        for before, after in pairwise(reads):
            span = after.ts_s - before.ts_s
            if span <= 0:
                continue
            energy = interval_kwh(before, after)
            if after.kwh < before.kwh and not (after.reset or after.kwh < before.kwh / 2):
                after.kwh = before.kwh  # jitter: the next interval counts from the higher read
            unit = readings.unit(after.unit)
            quarter = quarter_floor(before.ts_s)
            if after.ts_s <= quarter + QUARTER_S:  # the usual case: both reads in one quarter
                unit.counter_kwh[quarter] += energy
                unit.counter_s[quarter] += span
                if quarter not in unit.outlet_tags:
                    unit.outlet_tags[quarter] = after.attribution
                continue
            while quarter < after.ts_s:
                overlap = min(after.ts_s, quarter + QUARTER_S) - max(before.ts_s, quarter)
                unit.counter_kwh[quarter] += energy * overlap / span
                unit.counter_s[quarter] += overlap
                unit.outlet_tags.setdefault(quarter, after.attribution)
                quarter += QUARTER_S


def _power_w(unit: Unit, quarter: int) -> tuple[float, str] | None:
    """The quarter's mean power from its own readings, best source first."""
    outlet = unit.power.get("pdu_outlet", {}).get(quarter)
    if outlet:
        return outlet[0] / outlet[1], "pdu_power"
    zeros = unit.offline.get(quarter, 0)
    for source in LEDGER_SOURCES[1:]:  # pdu_power, miner, nominal (hashwatt.power)
        acc = unit.power.get(source, {}).get(quarter)
        if acc:
            readings = acc[1] + (zeros if source != "pdu_power" else 0)
            return acc[0] / readings, source
    return (0.0, "offline") if zeros else None


def _filled_w(unit: Unit, quarter: int, own: set[int]) -> tuple[float, str] | None:
    """Power of the quarter before a gap of at most FILL_QUARTERS quarters between readings."""
    if quarter in unit.unfilled:
        return None
    before = next((quarter - i * QUARTER_S for i in range(1, FILL_QUARTERS + 1)
                   if quarter - i * QUARTER_S in own), None)
    after = next((quarter + i * QUARTER_S for i in range(1, FILL_QUARTERS + 1)
                  if quarter + i * QUARTER_S in own), None)
    if before is None or after is None or (after - before) // QUARTER_S > FILL_QUARTERS + 1:
        return None
    return _power_w(unit, before)


def quarter_energy(unit: Unit, quarter: int, own: set[int]) -> Quarter | None:
    """The unit's energy in one quarter hour, or None when nothing is known."""
    power = _power_w(unit, quarter)
    covered = power is not None
    if power is None:
        power = _filled_w(unit, quarter, own)
    # power is a measurement only when it is the quarter's own outlet reading
    measured_power = covered and power is not None and power[1] in MEASURED_SOURCES
    counted = min(unit.counter_s.get(quarter, 0.0), QUARTER_S)
    if counted > 0:
        measured = unit.counter_kwh[quarter]
        rest = (QUARTER_S - counted) / HOUR_S
        estimated = 0.0
        if power is not None and rest > 0:
            part = power[0] / 1000 * rest
            if measured_power:
                measured += part
            else:
                estimated += part
        return Quarter(measured, estimated, "pdu_energy", True)
    if power is None:
        return None
    kwh = power[0] / 1000 * QUARTER_S / HOUR_S
    if measured_power:
        return Quarter(kwh, 0.0, power[1], True)
    return Quarter(0.0, kwh, power[1], covered)


def attribution(unit: Unit, quarter: int) -> Attribution:
    """Who held the unit in this quarter (see the module docstring)."""
    counts = unit.rig_tags.get(quarter)
    if counts:
        best = max(counts.values())
        tied = [a for a, n in counts.items() if n == best]
        if len(tied) > 1:  # the holder after the move, never the name that sorts first
            later = unit.rig_tags.get(quarter + QUARTER_S, Counter())
            tied = [a for a in tied if a in later] or tied
        return tied[0]
    if unit.rig_tags:
        return _nearest(unit, "rig", unit.rig_tags, quarter).most_common(1)[0][0]
    if quarter in unit.outlet_tags:
        return unit.outlet_tags[quarter]
    if unit.outlet_tags:
        return _nearest(unit, "outlet", unit.outlet_tags, quarter)
    return ("", "")


def _nearest(unit: Unit, name: str, table: dict[int, Any], quarter: int) -> Any:
    """The table's entry of the nearest quarter before this one, else after it."""
    if name not in unit.sorted_quarters:
        unit.sorted_quarters[name] = sorted(table)
    quarters = unit.sorted_quarters[name]
    i = bisect.bisect_right(quarters, quarter)
    return table[quarters[i - 1] if i > 0 else quarters[i]]


def unit_tags(site: str, key: UnitKey, who: Attribution, window_name: str) -> dict[str, str]:
    """The ledger row's tags."""
    tags = {T.SITE: site}
    if key[0] == "rig":
        tags[T.RIG] = key[1]
    else:
        tags.update({T.PDU: key[1], T.UNIT: key[2], T.OUTLET: key[3]})
    tags.update({T.CUSTOMER: who[0], T.RACK: who[1], T.WINDOW: window_name})
    return {k: v for k, v in tags.items() if v}


def quarter_points(readings: Readings, site: str, tariff: Tariff | None, start_s: int,
                   end_s: int) -> list[Point]:
    """One ledger point per unit per quarter of [start, end) with anything known."""
    points = []
    for key, unit in sorted(readings.units.items()):
        own = {q for table in unit.power.values() for q in table} | set(unit.offline)
        for quarter in range(start_s, end_s, QUARTER_S):
            q = quarter_energy(unit, quarter, own)
            if q is None:
                continue
            price = tariff.price_at(quarter) if tariff is not None else None
            rate, window_name = ((price.rate, price.window) if price is not None
                                 else (0.0, UNTARIFFED))
            kwh = q.kwh_measured + q.kwh_estimated
            fields: dict[str, float | int | bool | str] = {
                F.KWH: kwh, F.KWH_MEASURED: q.kwh_measured, F.KWH_ESTIMATED: q.kwh_estimated,
                F.COST: kwh * rate, F.RATE_PER_KWH: rate,
                F.COVERAGE: 1.0 if q.covered else 0.0, F.SOURCE: q.source}
            tags = unit_tags(site, key, attribution(unit, quarter), window_name)
            points.append(Point(MEASUREMENT, tags, fields, quarter * 1000))
    return points


def _gap_start(streams: dict[OutletKey, list[Read]], start_s: int) -> int:
    """The earliest quarter a counter interval reaching into [start, ...) began in, when it
    began more than a quarter before start (its energy belongs to those quarters too)."""
    earliest = start_s
    for reads in streams.values():
        before = [r for r in reads if r.ts_s < start_s]
        after = [r for r in reads if r.ts_s >= start_s]
        if before and after and start_s - before[-1].ts_s > QUARTER_S:
            earliest = min(earliest, quarter_floor(before[-1].ts_s))
    return max(earliest, start_s - COUNTER_LOOKBACK_S)


def compute(cfg: Config, db: InfluxQL, start_s: int, end_s: int) -> tuple[int, list[Point]]:
    """The ledger points of [start, end) (start moved back over a counter gap that ends in
    the range) and the start actually computed."""
    site = cfg.site.name
    streams: dict[OutletKey, list[Read]] = {}
    for _ in range(4):
        readings = Readings(db, site)
        streams = readings.counter_reads(start_s, end_s)
        earlier = _gap_start(streams, start_s)
        if earlier >= start_s:
            break
        start_s = earlier
    pad = (FILL_QUARTERS + 1) * QUARTER_S
    readings.load_holders(start_s - pad)
    readings.load_power(start_s - pad, end_s + pad)
    readings.load_gaps(start_s, end_s)
    spread_counters(readings, streams)
    tariff = Tariff(cfg.tariff, cfg.site.timezone) if cfg.tariff is not None else None
    return start_s, quarter_points(readings, site, tariff, start_s, end_s)


def voids(ledger: InfluxQL, measurement: str, site: str, start_s: int, end_s: int,
          points: list[Point]) -> list[Point]:
    """Zero rows for every row of the range whose unit and quarter now carry other tags."""
    if not points:  # nothing rewritten, nothing superseded
        return []
    new: dict[tuple[UnitKey, int], set[tuple[tuple[str, str], ...]]] = defaultdict(set)
    for p in points:
        new[(unit_key(p.tags), p.ts_ms)].add(tuple(sorted(p.tags.items())))
    out = []
    for lo, hi in chunks(start_s, end_s):
        query = (f'SELECT "kwh", "source" FROM {measurement} WHERE {window(lo, hi, site)} '
                 f'GROUP BY {LEDGER_TAGS}')
        for tags, rows in series(ledger, query):
            old = {"site": site, **{k: v for k, v in tags.items() if v}}
            for row in rows:
                mine = new.get((unit_key(old), row["time"]))
                if mine and row["source"] != VOID and tuple(sorted(old.items())) not in mine:
                    out.append(Point(MEASUREMENT, old, {
                        "kwh": 0.0, "kwh_measured": 0.0, "kwh_estimated": 0.0, "cost": 0.0,
                        "rate_per_kwh": 0.0, "coverage": 0.0, "source": VOID}, row["time"]))
    return out


def closed_end(end_s: float, timezone: str, now_s: float | None = None) -> int:
    """end, but never past the start of the current local hour (unfinished hours are not
    billed), on a quarter hour."""
    now = time.time() if now_s is None else now_s
    local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
    hour = local.replace(minute=0, second=0, microsecond=0).timestamp()
    return quarter_floor(min(end_s, hour))


def rollup(cfg: Config, start_s: int, end_s: int, now_s: float | None = None) -> int:
    """Write the ledger for [start, end), clipped to closed hours; returns the rows written
    (voided rows included)."""
    start_s, end_s = quarter_floor(start_s), closed_end(end_s, cfg.site.timezone, now_s)
    if end_s <= start_s:
        return 0
    db = query_client(cfg)
    ledger, measurement = ledger_client(cfg, db)
    sink = make_sink(cfg, ledger=True)
    written = 0
    try:
        for lo, hi in chunks(start_s, end_s, ROLLUP_CHUNK_S):
            lo, points = compute(cfg, db, lo, hi)
            points += voids(ledger, measurement, cfg.site.name, lo, hi, points)
            for i in range(0, len(points), 5000):
                sink.write(points[i:i + 5000])
            written += len(points)
    finally:
        sink.close()
        db.close()
        if ledger is not db:
            ledger.close()
    log.info("ledger: %d quarter-hour rows for %s .. %s", written,
             dt.datetime.fromtimestamp(start_s, dt.UTC).isoformat(),
             dt.datetime.fromtimestamp(end_s, dt.UTC).isoformat())
    return written


def recent_range(cfg: Config, hours: int, now_s: float | None = None) -> tuple[int, int]:
    """The last `hours` closed local hours."""
    end = closed_end(time.time() if now_s is None else now_s, cfg.site.timezone, now_s)
    return end - hours * HOUR_S, end


def follow(cfg: Config, stop: threading.Event, interval_s: float, hours: int,
           errors: tuple[type[BaseException], ...], immediately: bool = False) -> None:
    """Rewrite the last closed hours every interval until stopped (in the bridge, or as
    `hashwatt rollup --follow`, which starts at once); a failed run is logged and tried
    again next time."""
    wait = 0.0 if immediately else interval_s
    errors = (*errors, httpx.HTTPError)  # a query to an InfluxDB that is away
    while not stop.wait(wait):
        wait = interval_s
        try:
            rollup(cfg, *recent_range(cfg, hours))
        except errors as exc:
            log.warning("ledger rollup failed (%s); next try in %.0f s", exc, interval_s)


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row: a unit's energy and cost in one quarter hour."""

    time: dt.datetime  # start of the quarter hour, UTC
    site: str
    rig: str  # empty for an unmapped outlet
    pdu: str
    pdu_unit: str  # the PDU's link unit on a daisy chain ("unit" tag), else empty
    outlet: str
    customer: str
    rack: str
    window: str  # the tariff window (or the period's rate name) the quarter was priced in
    kwh: float
    kwh_measured: float
    kwh_estimated: float
    cost: float
    rate_per_kwh: float
    coverage: float  # 1 when the quarter had readings of its own, 0 when filled
    source: str

    @property
    def unit(self) -> str:
        """The rig, or pdu/[unit/]outlet for an unmapped outlet."""
        return self.rig or "/".join(x for x in (self.pdu, self.pdu_unit, self.outlet) if x)


def ledger_rows(cfg: Config, start: dt.datetime, end: dt.datetime,
                site: str | None = None) -> list[LedgerRow]:
    """Every live ledger row of the site in [start, end), oldest first (void rows skipped)."""
    db, measurement = ledger_client(cfg)
    site = site or cfg.site.name
    out: list[LedgerRow] = []
    try:
        for lo, hi in chunks(int(start.timestamp()), int(end.timestamp())):
            query = (f'SELECT "kwh", "kwh_measured", "kwh_estimated", "cost", "rate_per_kwh", '
                     f'"coverage", "source" FROM {measurement} WHERE {window(lo, hi, site)} '
                     f'GROUP BY {LEDGER_TAGS}')
            for tags, rows in series(db, query):
                out += [LedgerRow(
                    dt.datetime.fromtimestamp(r["time"] / 1000, dt.UTC), site,
                    tags.get("rig", ""), tags.get("pdu", ""), tags.get("unit", ""),
                    tags.get("outlet", ""),
                    tags.get("customer", ""), tags.get("rack", ""), tags.get("window", ""),
                    r["kwh"], r["kwh_measured"], r["kwh_estimated"], r["cost"],
                    r["rate_per_kwh"], r["coverage"], r["source"])
                    for r in rows if r["source"] != VOID]
    finally:
        db.close()
    out.sort(key=lambda r: (r.time, r.unit))
    return out

