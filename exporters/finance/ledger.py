"""The energy ledger: kWh and cost per rig (and per unmapped outlet) per local quarter hour,
attributed to the customer and rack the inventory held at that time, written to
`energy_quarter` in the long-retention ledger.

Every UTC offset in use is a whole number of quarter hours (+05:30, +05:45 too), so a local
quarter hour is a UTC quarter hour and a row's timestamp is its quarter's start.

Energy of a quarter hour, best source first (hashwatt.power.LEDGER_SOURCES):
  pdu_energy  the outlet's energy counter: the difference between consecutive reads spread
              evenly over the time between them, so energy across a gap (up to 72 hours)
              lands in the quarters it was drawn in, each priced at its own rate. A step
              back to at least half the read before is meter jitter: that read is skipped. A
              32-bit counter that wrapped counts through the wrap; a lower read otherwise is
              a restart, counted from zero. A step implying more than MAX_OUTLET_KW is a
              glitch: unknown energy (see interval_kwh). The part of a quarter no counter
              interval covers comes from the next source;
  pdu_power   outlet power (or the rig's power when the collector took it from the outlet);
  miner, nominal  the rig's own or the model's nominal power, every reading in which the rig
              reported itself offline counting as 0 W;
  offline     only offline readings in the quarter: 0 kWh.
Power is time-weighted within each quarter: each reading stands for the part of its quarter
nearer to it than to the quarter's other readings (the first reaches back to the quarter's
start, the last on to its end), so irregular polls, a gap or duplicated timestamps inside a
quarter do not bias it, and a quarter depends on its own readings only. A quarter without
readings takes the power of the quarter before it (estimated, coverage 0) only when the
readings around it are at most 45 minutes apart; others get no row: reports show them as
missing coverage, never as silent zeros.

A quarter belongs to the customer and rack of the rig's readings. A move lies between the
last reading of the old holder and the first of the new one: on the quarter edge between
them, or, when both are in one quarter, midway between them, where the quarter is split by
time into one row per holder (field `seconds`: the part each held). Without rig readings,
the outlet's.

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
from collections import defaultdict
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
from hashwatt.power import LEDGER_SOURCES, MEASURED_SOURCES, ledger_source
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
# the most one outlet can draw: a counter step implying more is a glitch, not energy
MAX_OUTLET_KW = 50.0
COUNTER_SLACK_KWH = 1.0  # one count of the coarsest counter (1 kWh) beyond that
# where a 32-bit counter wraps, in kWh, for the units PDUs count in (Wh, 10 Wh, 0.1 kWh, kWh)
WRAP_KWH = tuple(2**32 * unit for unit in (0.001, 0.01, 0.1, 1.0))
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


@dataclass(slots=True, kw_only=True)
class Read:
    """One energy-counter read of an outlet."""

    ts_s: float
    kwh: float
    reset: bool
    unit: UnitKey
    attribution: Attribution


Step = tuple[float, float, float]  # [lo, hi) and a value: W for power, kWh for a counter piece
Timeline = list[tuple[float, Attribution]]  # (time of a reading, who held the unit then)


@dataclass
class Unit:
    """Everything the readings say about one billed unit."""

    key: UnitKey
    # counter intervals cut at quarter edges: quarter -> [(lo, hi, kWh)]
    counter: dict[int, list[Step]] = field(default_factory=lambda: defaultdict(list))
    # power stream -> [(time, W)]; "pdu_outlet" is the outlet's own power reading
    streams: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))
    offline: list[float] = field(default_factory=list)  # offline readings without power
    holders: Timeline = field(default_factory=list)  # from the rig's readings
    outlet_holders: Timeline = field(default_factory=list)  # from its outlet's readings
    prepared: bool = False
    times: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)
    offline_times: list[float] = field(default_factory=list)
    changes: list[tuple[float, Attribution]] = field(default_factory=list)  # see holders

    def prepare(self) -> None:
        """Sort the streams once (offline readings are 0 W in the miner and nominal ones)."""
        if self.prepared:
            return
        self.prepared = True
        self.offline_times = sorted(self.offline)
        for name, stream in self.streams.items():
            if name in ("miner", "nominal"):
                stream = stream + [(ts, 0.0) for ts in self.offline]
            # a duplicated timestamp keeps one value (InfluxDB keeps one point per series)
            ordered = sorted(dict(sorted(stream)).items())
            self.times[name] = [t for t, _ in ordered]
            self.values[name] = [w for _, w in ordered]
        self.holders = _settle(self.holders)
        self.outlet_holders = _settle(self.outlet_holders)
        timeline = self.holders or self.outlet_holders
        self.changes = [(move_instant(t0, t1), w1) for (t0, w0), (t1, w1) in pairwise(timeline)
                        if w1 != w0]


def _settle(timeline: Timeline) -> Timeline:
    """The timeline in time order, cut down to what a move needs (the first reading, and the
    readings on either side of each change of holder); of two holders at one instant (a
    duplicated timestamp across a move) the one that holds the next reading after it goes
    last, so it holds on."""
    timeline = sorted(timeline)  # by time (equal times are sorted out below)
    ordered: Timeline = []
    i, n = 0, len(timeline)
    while i < n:
        j = i + 1
        while j < n and timeline[j][0] == timeline[i][0]:
            j += 1
        if j - i == 1 or all(who == timeline[i][1] for _, who in timeline[i:j]):
            ordered.append(timeline[i])
        else:
            group = list(dict.fromkeys(who for _, who in timeline[i:j]))
            following = timeline[j][1] if j < n else None
            group.sort(key=lambda who: who == following)
            ordered += [(timeline[i][0], who) for who in group]
        i = j
    return [e for k, e in enumerate(ordered)
            if k == 0 or e[1] != ordered[k - 1][1]
            or (k + 1 < len(ordered) and ordered[k + 1][1] != e[1])]


@dataclass(kw_only=True)
class Quarter:
    """The ledger's account of one unit in one quarter hour, for one holder."""

    kwh_measured: float
    kwh_estimated: float
    source: str
    covered: bool
    seconds: float  # how much of the quarter this holder held the unit


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
        """Every power reading of rigs and outlets with its time, and who held each rig at
        each reading (raw reads: a quarter's energy is weighted by the time each held)."""
        for lo, hi in chunks(start_s, end_s):
            where = window(lo, hi, self.site)
            query = (f'SELECT "power_w", "power_source", "online" FROM "rig" WHERE {where} '
                     f'GROUP BY {RIG_TAGS}')
            for tags, rows in series(self.db, query):
                unit, who = self.unit(unit_key(tags)), _attribution(tags)
                for row in rows:
                    ts = row["time"] / 1000
                    unit.holders.append((ts, who))
                    if row["power_w"] is not None and row["power_source"]:
                        stream = ledger_source(str(row["power_source"]))
                        unit.streams[stream].append((ts, float(row["power_w"])))
                    elif row["online"] is False:  # offline and no power figure: 0 W
                        unit.offline.append(ts)
            query = (f'SELECT "power_w" FROM "pdu_outlet" WHERE {where} AND "power_w" >= 0 '
                     f'GROUP BY {OUTLET_TAGS}')
            for tags, rows in series(self.db, query):
                unit, who = self.unit(unit_key(tags)), _attribution(tags)
                for row in rows:
                    if row["power_w"] is not None:
                        unit.streams["pdu_outlet"].append((row["time"] / 1000,
                                                           float(row["power_w"])))
                        unit.outlet_holders.append((row["time"] / 1000, who))

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
            self.unit(key).holders.append((ts, who))

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
                    Read(ts_s=row["time"] / 1000, kwh=float(row["energy_kwh"]),
                         reset=bool(row["energy_reset"]), unit=unit, attribution=who)
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
    return Read(ts_s=row["time"] / 1000, kwh=float(row["energy_kwh"]),
                reset=bool(row.get("energy_reset")), unit=unit_key(tags),
                attribution=_attribution(tags))


def interval_kwh(before: Read, after: Read) -> float | None:
    """Energy between two consecutive reads of one counter, or None when the counter cannot
    say (the interval then counts as not metered and the power readings cover it).

    The collector flags every step back as `energy_reset` (collector/pdu/source.py
    `_reset`), meter jitter of a few Wh included, so the size of the step decides, not the
    flag: a step back to at least half the read before is jitter (the read is skipped: the
    interval runs from the read before it to the next, see spread_counters); a counter of
    2**32 units (Wh, 10 Wh, 0.1 kWh or kWh) that wrapped counts the distance through it;
    else the counter restarted from zero and the read itself is the energy. Any of these is
    believed only when it is plausible for one outlet over the interval (MAX_OUTLET_KW,
    plus one count of a coarse counter); an absurd jump forward, or a restart to a high
    value, is unknown energy."""
    hours = max(after.ts_s - before.ts_s, 0.0) / HOUR_S
    limit = MAX_OUTLET_KW * hours + COUNTER_SLACK_KWH
    step = after.kwh - before.kwh
    if step >= 0:
        return step if step <= limit else None
    if after.kwh >= before.kwh / 2:
        return 0.0  # jitter
    for modulus in WRAP_KWH:
        through = modulus - before.kwh + after.kwh
        if modulus >= before.kwh and through <= limit:
            return through
    return after.kwh if after.kwh <= limit else None


def _is_jitter(before: Read, after: Read) -> bool:
    return before.kwh / 2 <= after.kwh < before.kwh


def spread_counters(readings: Readings,
                    streams: dict[OutletKey, list[Read]]) -> None:
    """Each interval between consecutive reads of an outlet, spread evenly over its time and
    booked to the unit of its closing read (cut at quarter edges; who held the unit when is
    decided per piece of time, see holders)."""
    for reads in streams.values():
        if not reads:
            continue
        before = reads[0]
        for after in reads[1:]:
            span = after.ts_s - before.ts_s
            if span <= 0:
                continue
            if _is_jitter(before, after):
                # a read a little below the one before is not believed: the interval runs
                # from the read before it to the next read, spread evenly over both
                continue
            energy = interval_kwh(before, after)
            unit = readings.unit(after.unit)
            unit.outlet_holders.append((after.ts_s, after.attribution))
            if energy is None:
                log.warning("ledger: outlet %s counter %.3f -> %.3f kWh in %.0f s is not "
                            "plausible; that interval is billed from power readings",
                            "/".join(after.unit), before.kwh, after.kwh, span)
                before = after  # the counter goes on from its new value
                continue
            quarter = quarter_floor(before.ts_s)
            while quarter < after.ts_s:
                lo, hi = max(before.ts_s, quarter), min(after.ts_s, quarter + QUARTER_S)
                unit.counter[quarter].append((lo, hi, energy * (hi - lo) / span))
                quarter += QUARTER_S
            before = after


def _regions(unit: Unit, name: str, quarter: int) -> list[Step] | None:
    """The quarter as steps of the stream's power (W) from its own readings in it,
    time-weighted: each reading stands for the part of the quarter nearer to it than to the
    quarter's other readings (the first reaches back to the quarter's start, the last on to
    its end), so irregular polls or a gap inside a quarter do not bias it as a plain mean of
    its readings would, and a quarter's energy depends on its own readings only (a step on a
    quarter edge, a month's or a tariff window's, is exact). None without a reading in it."""
    times, values = unit.times.get(name, []), unit.values.get(name, [])
    end = quarter + QUARTER_S
    i = bisect.bisect_left(times, quarter)
    j = bisect.bisect_left(times, end)
    if i == j:
        return None
    cuts = [float(quarter), *((times[k] + times[k + 1]) / 2 for k in range(i, j - 1)),
            float(end)]
    return [(cuts[n], cuts[n + 1], values[i + n]) for n in range(j - i)
            if cuts[n + 1] > cuts[n]]


def _fill(unit: Unit, name: str, quarter: int) -> list[Step] | None:
    """A quarter without readings of the stream inside a gap of at most FILL_GAP_S between
    two of its readings: the time-weighted power of the quarter before the gap holds."""
    times = unit.times.get(name, [])
    i = bisect.bisect_left(times, quarter)
    if i == 0 or i >= len(times) or times[i] - times[i - 1] > FILL_GAP_S:
        return None
    before = _regions(unit, name, quarter_floor(times[i - 1]))
    if before is None:
        return None
    watts = sum(w * (hi - lo) for lo, hi, w in before) / QUARTER_S
    return [(quarter, quarter + QUARTER_S, watts)]


STREAMS = (("pdu_outlet", "pdu_power"), *((s, s) for s in LEDGER_SOURCES[1:]))


def _power(unit: Unit, quarter: int) -> tuple[list[Step], str, bool] | None:
    """The quarter's power as steps, its ledger source and whether the quarter has readings
    of its own (else it lies inside a gap of at most FILL_GAP_S: a fill), best stream first
    (hashwatt.power)."""
    for name, source in STREAMS:
        steps = _regions(unit, name, quarter)
        if steps is not None:
            if (source in ("miner", "nominal") and not any(w for _, _, w in steps)
                    and _has(unit.offline_times, quarter)):
                return steps, "offline", True  # only offline readings in it
            return steps, source, True
    if _has(unit.offline_times, quarter):
        return [(quarter, quarter + QUARTER_S, 0.0)], "offline", True
    for name, source in STREAMS:
        steps = _fill(unit, name, quarter)
        if steps is not None:
            return steps, source, False
    return None


def _has(times: list[float], quarter: int) -> bool:
    i = bisect.bisect_left(times, quarter)
    return i < len(times) and times[i] < quarter + QUARTER_S


def _uncovered(quarter: int, pieces: list[Step]) -> list[tuple[float, float]]:
    """The parts of the quarter no counter piece covers."""
    out, at = [], float(quarter)
    for lo, hi, _ in sorted(pieces):
        if lo > at:
            out.append((at, lo))
        at = max(at, hi)
    if at < quarter + QUARTER_S:
        out.append((at, quarter + QUARTER_S))
    return out


def _clip(steps: list[Step], parts: list[tuple[float, float]]) -> list[Step]:
    """The steps cut down to the given parts of time."""
    out = []
    for lo, hi, value in steps:
        for a, b in parts:
            x, y = max(lo, a), min(hi, b)
            if y > x:
                out.append((x, y, value))
    return out


def move_instant(last_old: float, first_new: float) -> float:
    """When a move between two readings is taken to have happened: at the quarter edge
    between them (the one nearest their midpoint when there are several), so whole quarters
    stay whole; midway between them when both are in one quarter."""
    middle = (last_old + first_new) / 2
    if quarter_floor(last_old) == quarter_floor(first_new):
        return middle
    lo = quarter_floor(last_old) + QUARTER_S  # the first edge after the old reading
    hi = quarter_floor(first_new)  # the last edge at or before the new one
    edge = quarter_floor(middle + QUARTER_S / 2)  # the edge nearest the midpoint
    return float(min(max(edge, lo), hi))


def holders(unit: Unit, quarter: int) -> list[tuple[float, float, Attribution]]:
    """Who held the unit in which part of the quarter. A move happened between the last
    reading carrying the old holder and the first carrying the new one: it is put midway
    between them (as a reading's power stands for the time nearer to it), and the quarter is
    split there by time. Before the first reading known, the first reading's holder. The
    rig's own readings decide; without any, its outlet's; else nobody."""
    timeline = unit.holders or unit.outlet_holders
    if not timeline:
        return [(quarter, quarter + QUARTER_S, ("", ""))]
    end = quarter + QUARTER_S
    # the holder at the quarter's start: the last change at or before it, else the first
    i = bisect.bisect_right(unit.changes, float(quarter), key=lambda c: c[0])
    who = unit.changes[i - 1][1] if i > 0 else timeline[0][1]
    out, at = [], float(quarter)
    for instant, new in unit.changes[i:]:
        if instant >= end:
            break
        out.append((at, instant, who))
        at, who = instant, new
    out.append((at, end, who))
    return [h for h in out if h[1] > h[0]]


def quarter_energy(unit: Unit, quarter: int) -> list[tuple[Attribution, Quarter]]:
    """The unit's energy in one quarter hour per holder (empty when nothing is known)."""
    unit.prepare()
    pieces = unit.counter.get(quarter, [])  # kWh per piece of time
    power = _power(unit, quarter)
    steps: list[Step] = []  # W per piece of time the counter does not cover
    measured_power, source, covered = False, "pdu_energy" if pieces else None, bool(pieces)
    if power is not None:
        steps, power_source, own = power
        if pieces:
            steps = _clip(steps, _uncovered(quarter, pieces))
        measured_power = own and power_source in MEASURED_SOURCES
        source = source or power_source
        covered = covered or own
    if source is None:
        return []
    out = []
    for lo, hi, who in holders(unit, quarter):
        counted = _share(pieces, lo, hi)
        # the mean power over the quarter, then kWh: one rounding, as W x 15 min exactly
        drawn = _watt_seconds(steps, lo, hi) / QUARTER_S / 1000 * QUARTER_S / HOUR_S
        measured = counted + (drawn if measured_power else 0.0)
        estimated = 0.0 if measured_power else drawn
        out.append((who, Quarter(kwh_measured=measured, kwh_estimated=estimated, source=source,
                                 covered=covered, seconds=hi - lo)))
    return out


def _share(pieces: list[Step], lo: float, hi: float) -> float:
    """The kWh of the counter pieces that falls in [lo, hi), each spread evenly."""
    return float(sum((kwh * (min(b, hi) - max(a, lo)) / (b - a)
                      for a, b, kwh in pieces if min(b, hi) > max(a, lo)), 0.0))


def _watt_seconds(steps: list[Step], lo: float, hi: float) -> float:
    """W x s of the power steps within [lo, hi)."""
    return float(sum((w * (min(b, hi) - max(a, lo))
                      for a, b, w in steps if min(b, hi) > max(a, lo)), 0.0))


def unit_tags(site: str, key: UnitKey, who: Attribution, window_name: str) -> dict[str, str]:
    """The ledger row's tags."""
    tags = {T.SITE: site}
    if key[0] == "rig":
        tags[T.RIG] = key[1]
    else:
        tags.update({T.PDU: key[1], T.UNIT: key[2], T.OUTLET: key[3]})
    tags.update({T.CUSTOMER: who[0], T.RACK: who[1], T.WINDOW: window_name})
    return {k: v for k, v in tags.items() if v}


def quarter_points(readings: Readings, *, site: str, tariff: Tariff | None, start_s: int,
                   end_s: int) -> list[Point]:
    """One ledger point per unit per quarter of [start, end) with anything known."""
    points = []
    for key, unit in sorted(readings.units.items()):
        for quarter in range(start_s, end_s, QUARTER_S):
            parts = quarter_energy(unit, quarter)
            if not parts:
                continue
            price = tariff.price_at(quarter) if tariff is not None else None
            rate, window_name = ((price.rate, price.window) if price is not None
                                 else (0.0, UNTARIFFED))
            for who, q in parts:
                kwh = q.kwh_measured + q.kwh_estimated
                fields: dict[str, float | int | bool | str] = {
                    F.KWH: kwh, F.KWH_MEASURED: q.kwh_measured,
                    F.KWH_ESTIMATED: q.kwh_estimated, F.COST: kwh * rate,
                    F.RATE_PER_KWH: rate, F.COVERAGE: 1.0 if q.covered else 0.0,
                    F.SOURCE: q.source, F.SECONDS: q.seconds}
                tags = unit_tags(site, key, who, window_name)
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
    spread_counters(readings, streams)
    tariff = Tariff(cfg.tariff, cfg.site.timezone) if cfg.tariff is not None else None
    return start_s, quarter_points(readings, site=site, tariff=tariff, start_s=start_s,
                                   end_s=end_s)


def voids(ledger: InfluxQL, *, measurement: str, site: str, start_s: int, end_s: int,
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
                        "rate_per_kwh": 0.0, "coverage": 0.0, "source": VOID, F.SECONDS: 0.0},
                        row["time"]))
    return out


def closed_end(end_s: float, timezone: str, now_s: float | None = None) -> int:
    """end, but never past the start of the current local hour (unfinished hours are not
    billed), on a quarter hour."""
    now = time.time() if now_s is None else now_s
    local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
    hour = local.replace(minute=0, second=0, microsecond=0).timestamp()
    return quarter_floor(min(end_s, hour))


def rollup(cfg: Config, start_s: int, end_s: int, *, now_s: float | None = None) -> int:
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
            points += voids(ledger, measurement=measurement, site=cfg.site.name, start_s=lo,
                            end_s=hi, points=points)
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


def follow(cfg: Config, stop: threading.Event, *, interval_s: float, hours: int,
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


@dataclass(frozen=True, kw_only=True)
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
    # how much of the quarter the holder held the unit (a move inside a quarter splits it
    # into one row per holder); rows written before the split existed hold the whole quarter
    seconds: float = float(QUARTER_S)

    @property
    def unit(self) -> str:
        """The rig, or pdu/[unit/]outlet for an unmapped outlet."""
        return self.rig or "/".join(x for x in (self.pdu, self.pdu_unit, self.outlet) if x)


def ledger_rows(cfg: Config, start: dt.datetime, end: dt.datetime, *,
                site: str | None = None) -> list[LedgerRow]:
    """Every live ledger row of the site in [start, end), oldest first (void rows skipped)."""
    db, measurement = ledger_client(cfg)
    site = site or cfg.site.name
    out: list[LedgerRow] = []
    try:
        for lo, hi in chunks(int(start.timestamp()), int(end.timestamp())):
            query = (f'SELECT "kwh", "kwh_measured", "kwh_estimated", "cost", "rate_per_kwh", '
                     f'"coverage", "source", "seconds" FROM {measurement} WHERE '
                     f'{window(lo, hi, site)} '
                     f'GROUP BY {LEDGER_TAGS}')
            for tags, rows in series(db, query):
                out += [LedgerRow(
                    time=dt.datetime.fromtimestamp(r["time"] / 1000, dt.UTC), site=site,
                    rig=tags.get("rig", ""), pdu=tags.get("pdu", ""),
                    pdu_unit=tags.get("unit", ""), outlet=tags.get("outlet", ""),
                    customer=tags.get("customer", ""), rack=tags.get("rack", ""),
                    window=tags.get("window", ""), kwh=r["kwh"], kwh_measured=r["kwh_measured"],
                    kwh_estimated=r["kwh_estimated"], cost=r["cost"],
                    rate_per_kwh=r["rate_per_kwh"], coverage=r["coverage"], source=r["source"],
                    seconds=QUARTER_S if r.get("seconds") is None else r["seconds"])
                    for r in rows if r["source"] != VOID]
    finally:
        db.close()
    out.sort(key=lambda r: (r.time, r.unit))
    return out

