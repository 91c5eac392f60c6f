"""An independent recomputation of invoices (issues 12 and 17) on scenarios no other test has.

The reference below is written from the README's definitions with `decimal`, `zoneinfo` and
the raw readings this file seeds; it never calls hashwatt's tariff, ledger, report or
statement code. Readings go in through the bridge's encoders into the real influxd fixture,
the real `rollup` builds the ledger, and the reports/statements are compared with the
reference to the 0.001 kWh and the cent.

The definitions, as the README states them:
- power: each reading stands for the part of its quarter nearer to it than to the quarter's
  other readings (of the same stream: outlet power, or the rig's own/nominal figure with
  offline readings as 0 W), the first reaching back to the quarter's start and the last on to
  its end; a quarter without readings between readings at most 45 minutes apart takes the
  power of the quarter before the gap;
- counters: consecutive reads, the difference spread evenly over the time between them; a
  step back to at least half the read before is jitter (0, the next read counts from the
  higher one); a 32-bit counter that wraps counts through the wrap; a restart counts the
  read from zero; a step implying more than 50 kW (plus 1 kWh) is unknown and the power
  readings cover that time;
- holders: a move lies between the last reading of the old holder and the first of the new:
  on the quarter edge between them, or midway when both are in one quarter; energy of a
  quarter is split there by time;
- prices: a period applies from the first instant the wall clock reads its `from`; in it the
  first window whose weekdays, months and clock span hold the local time gives the rate (a
  span whose end is before its start crosses midnight and belongs to the day it began).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from collections import defaultdict
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporters.decode import pdu_points, rig_points
from exporters.finance.ledger import ledger_rows, rollup
from exporters.lineproto import Point
from hashwatt.config import Config, load_config
from hashwatt.contract import OutletReading, PduReading, RigReading
from hashwatt.influxql import InfluxQL
from tests.ledger_seed import report, write_points

pytestmark = pytest.mark.e2e
Q = 900
GAP = 2700
CENT, MILLI = Decimal("0.01"), Decimal("0.001")
ALL_DAYS, ALL_MONTHS = frozenset(range(7)), frozenset(range(1, 13))
Who = tuple[str, str]

# ----------------------------------------------------------------- reference: the tariff

# (name, rate, weekdays (0 = Monday), (h, m) start, (h, m) end, months)
RefWindow = tuple[str, Decimal, frozenset[int], tuple[int, int], tuple[int, int], frozenset[int]]
RefPeriod = tuple[dt.datetime, Decimal, str, list[RefWindow]]  # naive local start


def change_instant(local: dt.datetime, zone: ZoneInfo) -> int:
    """The first instant the wall clock reads `local` or later."""
    t = int(local.replace(tzinfo=zone, fold=0).timestamp())
    if dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None) == local:
        return t
    t = int(local.replace(tzinfo=zone, fold=1).timestamp()) // Q * Q
    while dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None) < local:
        t += Q
    return t


def ref_rate(ts: int, zone: ZoneInfo, periods: list[RefPeriod]) -> tuple[Decimal, str]:
    """The rate and window name at instant ts."""
    chosen = [p for p in periods if ts >= change_instant(p[0], zone)][-1]
    local = dt.datetime.fromtimestamp(ts, zone)
    hm = (local.hour, local.minute)
    for name, rate, days, start, end, months in chosen[3]:
        if start < end:
            day = local if start <= hm < end else None
        else:  # crosses midnight: after midnight it is the window of the day before
            day = local if hm >= start else (local - dt.timedelta(days=1)) if hm < end else None
        if day is not None and day.weekday() in days and day.month in months:
            return rate, name
    return chosen[1], chosen[2]


# ------------------------------------------------------ reference: energy from raw readings

Step = tuple[Decimal, Decimal, Decimal]  # [lo, hi) and W (power) or kWh (counter piece)


def floor_q(t: Decimal) -> Decimal:
    return (t / Q).to_integral_value(rounding=ROUND_FLOOR) * Q


def quarter_steps(readings: list[tuple[Decimal, Decimal]], q: Decimal) -> list[Step] | None:
    """The quarter's readings' spans of time within it (see the module docstring)."""
    pts = sorted(dict(sorted((t, w) for t, w in readings if q <= t < q + Q)).items())
    if not pts:
        return None
    cuts = [q, *((a[0] + b[0]) / 2 for a, b in itertools.pairwise(pts)), q + Q]
    return [(cuts[n], cuts[n + 1], w) for n, (_, w) in enumerate(pts)]


def fill_steps(readings: list[tuple[Decimal, Decimal]], q: Decimal) -> list[Step] | None:
    """A quarter inside a gap of at most 45 minutes: the quarter before the gap's power."""
    before = [t for t, _ in readings if t < q]
    after = [t for t, _ in readings if t >= q + Q]
    if not before or not after or min(after) - max(before) > GAP:
        return None
    last_q = floor_q(max(before))
    steps = quarter_steps(readings, last_q)
    assert steps is not None
    watts = sum((w * (b - a) for a, b, w in steps), Decimal(0)) / Q
    return [(q, q + Q, watts)]


def counter_pieces(reads: list[tuple[Decimal, Decimal]]) -> list[Step]:
    """(lo, hi, kWh) per interval of consecutive reads the counter can vouch for."""
    out = []
    t0, base = reads[0]
    for t1, k1 in reads[1:]:
        limit = 50 * (t1 - t0) / 3600 + 1
        step = k1 - base
        energy: Decimal | None
        if step >= 0:
            energy = step if step <= limit else None
        elif k1 >= base / 2:
            continue  # jitter: the read is not believed, the interval runs on to the next
        else:
            wraps = [m - base + k1 for m in (Decimal(2**32) * u for u in (
                Decimal("0.001"), Decimal("0.01"), Decimal("0.1"), Decimal(1))) if m >= base]
            ok = [e for e in wraps if e <= limit]
            energy = ok[0] if ok else (k1 if k1 <= limit else None)
        if energy is not None:
            out.append((t0, t1, energy))
        t0, base = t1, k1
    return out


def move_instant(old: Decimal, new: Decimal) -> Decimal:
    if floor_q(old) == floor_q(new):
        return (old + new) / 2
    edges = [e for e in range(int(floor_q(old)) + Q, int(floor_q(new)) + 1, Q)]
    middle = (old + new) / 2
    return Decimal(min(edges, key=lambda e: (abs(e - middle), e)))


def holder_parts(timeline: list[tuple[Decimal, Who]], lo: Decimal,
                 hi: Decimal) -> list[tuple[Decimal, Decimal, Who]]:
    tl = sorted(timeline, key=lambda e: e[0])
    changes = [(move_instant(a[0], b[0]), b[1]) for a, b in itertools.pairwise(tl)
               if a[1] != b[1]]
    who, at, out = tl[0][1], lo, []
    for instant, new in changes:
        if instant <= lo:
            who = new
        elif instant < hi:
            out.append((at, instant, who))
            at, who = instant, new
    out.append((at, hi, who))
    return [p for p in out if p[1] > p[0]]


def overlap(a: Decimal, b: Decimal, lo: Decimal, hi: Decimal) -> Decimal:
    return max(min(b, hi) - max(a, lo), Decimal(0))


def uncovered(q: Decimal, pieces: list[Step]) -> list[tuple[Decimal, Decimal]]:
    out, at = [], q
    for lo, hi, _ in sorted(pieces):
        if max(lo, q) > at:
            out.append((at, max(lo, q)))
        at = max(at, min(hi, q + Q))
    if at < q + Q:
        out.append((at, q + Q))
    return out


def ref_rig(power: list[tuple[Decimal, Decimal]], timeline: list[tuple[Decimal, Who]],
            start: int, end: int,
            counter: list[tuple[Decimal, Decimal]] | None = None) -> dict[tuple[int, Who], Decimal]:
    """kWh per (quarter, holder) of one rig in [start, end)."""
    pieces = counter_pieces(counter) if counter else []
    out: dict[tuple[int, Who], Decimal] = defaultdict(Decimal)
    for qi in range(start, end, Q):
        q = Decimal(qi)
        mine = [(a, b, k) for a, b, k in pieces if overlap(a, b, q, q + Q) > 0]
        steps = quarter_steps(power, q) or fill_steps(power, q) or []
        if not mine and not steps:
            continue
        rest = uncovered(q, mine)
        for a, b, who in holder_parts(timeline, q, q + Q):
            kwh = sum((k * overlap(lo, hi, a, b) / (hi - lo) for lo, hi, k in mine),
                      Decimal(0))
            if steps:
                kwh += sum((w * overlap(lo, hi, max(a, x), min(b, y)) / 3_600_000
                            for lo, hi, w in steps for x, y in rest if min(b, y) > max(a, x)),
                           Decimal(0))
            out[(qi, who)] += kwh
    return out


def priced(kwh: dict[tuple[int, Who], Decimal], zone: ZoneInfo,
           periods: list[RefPeriod]) -> dict[str, dict[str, Decimal]]:
    """kWh and cost per customer, and per window."""
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for (q, who), k in kwh.items():
        rate, name = ref_rate(q, zone, periods)
        out[who[0]]["kwh"] += k
        out[who[0]]["cost"] += k * rate
        out[who[0]][f"kwh_{name}"] += k
    return out


def largest_remainder(values: list[Decimal], step: Decimal) -> list[Decimal]:
    """The README's rounding: rows add up to the total rounded half up."""
    goal = sum(values, Decimal(0)).quantize(step, ROUND_HALF_UP)
    floors = [(v / step).to_integral_value(ROUND_FLOOR) * step for v in values]
    order = sorted(range(len(values)), key=lambda i: (values[i] - floors[i], -i), reverse=True)
    for i in order[:int((goal - sum(floors, Decimal(0))) / step)]:
        floors[i] += step
    return floors


# ---------------------------------------------------------------------------- seeding




def make_config(db: InfluxQL, tmp: Path, zone: str, tariff: str, extra: str = "") -> Config:
    path = tmp / f"recompute-{uuid.uuid4().hex[:6]}.toml"
    url = str(db.client.base_url).rstrip("/")
    path.write_text(f'[site]\nname = "east"\ntimezone = "{zone}"\ncurrency = "EUR"\n'
                    f'[influxdb]\nurl = "{url}"\ndatabase = "{db.database}"\n\n{tariff}\n{extra}')
    return load_config(path)


def rig(rig_id: str, ts: Decimal | float, watts: float | None, who: Who = ("kilo", "R1"), *,
        source: str = "miner", online: bool = True, maintenance: bool = False) -> list[Point]:
    return rig_points(RigReading(
        ts_ms=int(Decimal(ts) * 1000), site="east", rig=rig_id, collector="c1", rack=who[1],
        customer=who[0], online=online, hashrate_ths=100.0 if online else None,
        expected_hashrate_ths=100.0, maintenance=maintenance, power_w=watts,
        power_source=source if watts is not None else None))  # type: ignore[arg-type]


def outlet(ts: Decimal | float, kwh: Decimal, watts: float, who: Who, *,
           reset: bool = False, rig_id: str = "c1") -> list[Point]:
    o = OutletReading(outlet=7, power_w=watts, energy_kwh=float(kwh), energy_reset=reset,
                      rig=rig_id, customer=who[0])
    return pdu_points(PduReading(ts_ms=int(Decimal(ts) * 1000), site="east", pdu="pdu-x",
                                 collector="c1", rack=who[1], online=True, outlets=[o]))


def write(db: InfluxQL, points: list[Point]) -> None:
    write_points(db, points)


def jittered(start: int, end: int, rng: random.Random, lo: int = 20, hi: int = 40) -> list[Decimal]:
    """Poll times from start to end, 20-40 s apart, on the millisecond."""
    out, t = [], Decimal(start)
    while t < end:
        out.append(t)
        t += Decimal(rng.randint(lo * 1000, hi * 1000)) / 1000
    return out


def at(zone: ZoneInfo, *args: int, fold: int = 0) -> int:
    return int(dt.datetime(*args, tzinfo=zone, fold=fold).timestamp())


def ledger_kwh(cfg: Config, start: int, end: int) -> dict[tuple[int, Who], Decimal]:
    out: dict[tuple[int, Who], Decimal] = defaultdict(Decimal)
    for r in ledger_rows(cfg, dt.datetime.fromtimestamp(start, dt.UTC),
                         dt.datetime.fromtimestamp(end, dt.UTC)):
        out[(int(r.time.timestamp()), (r.customer, r.rack))] += Decimal(repr(r.kwh))
    return out


def assert_same(got: dict[tuple[int, Who], Decimal],
                want: dict[tuple[int, Who], Decimal]) -> None:
    """Quarter by quarter and holder by holder: the same rows, each within 1e-8 kWh (the
    ledger computes in binary floats: a counter near 4.29e6 kWh carries ~1e-9 of noise)."""
    assert set(got) == set(want)
    off = {k: (got[k], want[k]) for k in want if abs(got[k] - want[k]) > Decimal("1e-8")}
    assert off == {}


def assert_report(r: Any, want: dict[str, dict[str, Decimal]]) -> None:
    """The report's rows equal the reference, rounded by the README's rule."""
    names = sorted(want)
    kwh = largest_remainder([want[n]["kwh"] for n in names], MILLI)
    cost = largest_remainder([want[n]["cost"] for n in names], CENT)
    got = {row["customer"]: (row["kwh"], row["cost"]) for row in r.rows}
    assert got == {n or "(none)": (kwh[i], cost[i]) for i, n in enumerate(names)}
    assert (r.total["kwh"], r.total["cost"]) == (sum(kwh, Decimal(0)), sum(cost, Decimal(0)))


FLAT = '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.20\nname = "flat"\n'
FLAT_PERIODS: list[RefPeriod] = [(dt.datetime(2026, 1, 1), Decimal("0.20"), "flat", [])]


# ------------------------------------------------------ 1. irregular polls, integrated by hand


def test_irregular_polls_a_7_minute_gap_and_duplicates_are_integrated_by_time(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Berlin, Tue 13 Oct 2026, 10:00-11:00. A rig's miner figure, polled every 20-40 s
    (seeded jitter), is 2000 W until the 10:20:00 poll; the next poll is 7 minutes later
    (10:27:00) and says 5000 W, as every poll after it. Every fifth reading is written twice
    (a resend: same series, same timestamp). The seeded power is a step midway through the
    gap, 10:23:30, so by hand: 10:00 quarter 2 kW x 0.25 h = 0.500 kWh; 10:15 quarter
    2 kW x 510 s + 5 kW x 390 s = (1,020,000 + 1,950,000) W s / 3.6e6 = 0.825 kWh; 10:30
    and 10:45 5 kW x 0.25 h = 1.250 each; 3.825 kWh, 0.765 EUR at 0.20.
    A plain mean of the 10:15 quarter's readings weighs the 2 kW polls before the gap (each
    ~30 s) like the 5 kW ones after it: it is what the ledger said before."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", FLAT)
    ten = at(zone, 2026, 10, 13, 10)
    gap_lo, gap_hi = Decimal(ten + 20 * 60), Decimal(ten + 27 * 60)
    rng = random.Random(13)
    polls = [t for t in jittered(ten - 1800, ten + 5400, rng) if t < gap_lo or t > gap_hi]
    polls = sorted({*polls, gap_lo, gap_hi})
    points: list[Point] = []
    for i, t in enumerate(polls):
        watts = 2000.0 if t <= gap_lo else 5000.0
        points += rig("m1", t, watts) * (2 if i % 5 == 0 else 1)
    write(ledger_db, points)
    rollup(cfg, ten, ten + 3600, now_s=ten + 7200)
    got = ledger_kwh(cfg, ten, ten + 3600)
    by_hand = {(ten, ("kilo", "R1")): Decimal("0.5"), (ten + Q, ("kilo", "R1")): Decimal("0.825"),
               (ten + 2 * Q, ("kilo", "R1")): Decimal("1.25"),
               (ten + 3 * Q, ("kilo", "R1")): Decimal("1.25")}
    assert_same(got, by_hand)
    # the reference agrees with the hand figure
    ref = ref_rig([(t, Decimal(2000) if t <= gap_lo else Decimal(5000)) for t in polls],
                  [(t, ("kilo", "R1")) for t in polls], ten, ten + 3600)
    assert_same(ref, by_hand)
    r = report(cfg, "2026-10")
    assert (r.total["kwh"], r.total["cost"]) == (Decimal("3.825"), Decimal("0.77"))  # 0.765 up


# --------------------------------------- 2. DST both ways, a night window across midnight

def tou(change: str) -> str:
    """Two periods (the second from `change`), each with a 02:00-03:00 window on every day and
    a night window 22:00-02:00 on Mon-Sat nights."""
    period = ('[[tariff.periods]]\nfrom = {start}\nrate = {day}\nname = "day"\n'
              '[[tariff.periods.windows]]\nname = "dst-hour"\nrate = 0.30\nstart = "02:00"\n'
              'end = "03:00"\n[[tariff.periods.windows]]\nname = "night"\nrate = {night}\n'
              'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat"]\nstart = "22:00"\n'
              'end = "02:00"\n')
    return (period.format(start="2026-01-01", day="0.10", night="0.05")
            + period.format(start=f'"{change}"', day="0.12", night="0.06"))


def tou_periods(change: dt.datetime) -> list[RefPeriod]:
    six = frozenset(range(6))  # mon-sat: the night that begins on a Sunday is "day"
    return [(dt.datetime(2026, 1, 1), Decimal("0.10"), "day",
             [("dst-hour", Decimal("0.30"), ALL_DAYS, (2, 0), (3, 0), ALL_MONTHS),
              ("night", Decimal("0.05"), six, (22, 0), (2, 0), ALL_MONTHS)]),
            (change, Decimal("0.12"), "day",
             [("dst-hour", Decimal("0.30"), ALL_DAYS, (2, 0), (3, 0), ALL_MONTHS),
              ("night", Decimal("0.06"), six, (22, 0), (2, 0), ALL_MONTHS)])]


@pytest.mark.parametrize(("zone_name", "day", "change", "hours"), [
    ("Europe/Berlin", (2026, 10, 24), "2026-10-24T13:45", 49),  # falls back on Sun 25 Oct
    ("America/New_York", (2026, 3, 7), "2026-03-07T13:45", 47),  # springs forward Sun 8 Mar
])
def test_dst_days_with_a_night_window_across_midnight_and_a_change_at_13_45(
        ledger_db: InfluxQL, tmp_path: Path, zone_name: str, day: tuple[int, int, int],
        change: str, hours: int) -> None:
    """Saturday and the DST Sunday after it, local midnight to midnight (49 h in Berlin,
    47 h in New York). A night window 22:00-02:00 (Mon-Sat nights: Saturday's night runs into
    Sunday morning and is "night"; Sunday's own 22:00 is "day"), a 02:00-03:00 window that
    happens twice in Berlin's fall-back night and not at all in New York's spring-forward
    night, and a tariff change on Saturday at 13:45. One nominal rig (1500 W, then 2500 W
    from Saturday 18:00 local), polled every 20-40 s; it reports itself offline from Sunday
    01:50 to 02:20 (local, first pass): offline readings are 0 W."""
    zone = ZoneInfo(zone_name)
    local = dt.datetime(*day)
    tariff = tou(change)
    cfg = make_config(ledger_db, tmp_path, zone_name, tariff)
    start = at(zone, *day)
    end = at(zone, *(local + dt.timedelta(days=2)).timetuple()[:3])
    assert (end - start) // 3600 == hours
    step = at(zone, *day, 18)
    sunday = (day[0], day[1], day[2] + 1)
    # 30 real minutes either way: 02:00-03:00 does not exist on New York's night
    off = (at(zone, *sunday, 1, 50),
           at(zone, *sunday, 2, 20) if zone_name == "Europe/Berlin" else at(zone, *sunday, 3, 20))
    rng = random.Random(day[1])
    polls = jittered(start - 3600, end + 3600, rng)
    points: list[Point] = []
    power, timeline = [], []
    for t in polls:
        down = off[0] <= t < off[1]
        watts = None if down else (1500.0 if t < step else 2500.0)
        points += rig("n1", t, watts, source="nominal", online=not down)
        power.append((t, Decimal(0) if watts is None else Decimal(watts)))
        timeline.append((t, ("kilo", "R1")))
    write(ledger_db, points)
    rollup(cfg, start, end, now_s=end + 7200)
    want = ref_rig(power, timeline, start, end)
    assert_same(ledger_kwh(cfg, start, end), want)
    periods = tou_periods(dt.datetime.fromisoformat(change))
    ref = priced(want, zone, periods)
    month = f"{day[0]}-{day[1]:02d}"
    r = report(cfg, month)
    assert_report(r, ref)
    windows = {name[4:] for name in ref["kilo"] if name.startswith("kwh_")}
    assert windows == {"day", "night", "dst-hour"}
    # Sunday's 02:00-03:00: twice in Berlin (8 quarters), not at all in New York
    sunday_start = at(zone, *sunday)
    assert sum(ref_rate(q, zone, periods)[1] == "dst-hour"
               for q in range(sunday_start, end, Q)) == (8 if zone_name == "Europe/Berlin" else 0)
    [row] = r.rows
    names = sorted(windows)
    split = largest_remainder([ref["kilo"][f"kwh_{w}"] for w in names], MILLI)
    assert {w: row[f"kwh_{w}"] for w in names} == dict(zip(names, split, strict=True))


# ------------------------------------------- 3. half-hour and 45-minute zones at month edges


@pytest.mark.parametrize("zone_name", ["Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide"])
def test_half_and_45_minute_zones_bill_the_local_month_edges(
        ledger_db: InfluxQL, tmp_path: Path, zone_name: str) -> None:
    """October 2026 in +05:30, +05:45 and Adelaide (+09:30, then +10:30 from Sun 4 Oct
    02:00): a rig polled every 20-40 s for 3 hours around each month edge and around
    Adelaide's DST jump, 3000 W in the month and 7000 W outside it (the step midway between
    the two polls around the local midnight), with a peak window 23:45-00:15 across the
    local midnight of each edge. Only October's local quarters may be billed, each at its
    local rate."""
    zone = ZoneInfo(zone_name)
    tariff = ('[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.10\nname = "base"\n'
              '[[tariff.periods.windows]]\nname = "peak"\nrate = 0.40\nstart = "23:45"\n'
              'end = "00:15"\n')
    periods: list[RefPeriod] = [(dt.datetime(2026, 1, 1), Decimal("0.10"), "base",
                                 [("peak", Decimal("0.40"), ALL_DAYS, (23, 45), (0, 15),
                                   ALL_MONTHS)])]
    cfg = make_config(ledger_db, tmp_path, zone_name, tariff)
    start, end = at(zone, 2026, 10, 1), at(zone, 2026, 11, 1)
    jump = at(zone, 2026, 10, 4, 1)
    rng = random.Random(len(zone_name))
    spans = [(start - 5400, start + 5400), (jump - 3600, jump + 7200), (end - 5400, end + 5400)]
    points: list[Point] = []
    power: list[tuple[Decimal, Decimal]] = []
    for lo, hi in spans:
        for t in jittered(lo, hi, rng):
            watts = 3000 if start <= t < end else 7000
            points += rig("z1", t, float(watts))
            power.append((t, Decimal(watts)))
    write(ledger_db, points)
    for lo, hi in spans:
        rollup(cfg, lo, hi, now_s=end + 86400)
    want: dict[tuple[int, Who], Decimal] = {}
    for lo, hi in spans:
        want.update(ref_rig(power, [(power[0][0], ("kilo", "R1"))], lo, hi))
    assert_same(ledger_kwh(cfg, start - 5400, end + 5400), want)
    in_month = {k: v for k, v in want.items() if start <= k[0] < end}
    ref = priced(in_month, zone, periods)
    assert_report(report(cfg, "2026-10"), ref)
    # the month's first local quarter starts at local midnight, a UTC :30 or :45 or :30
    first = dt.datetime.fromtimestamp(start, dt.UTC)
    assert (first.minute, dt.datetime.fromtimestamp(start, zone).hour) == (
        {"Asia/Kolkata": 30, "Asia/Kathmandu": 15, "Australia/Adelaide": 30}[zone_name], 0)


# ------------------------------------- 4. counters: reset, wrap, jitter, an absurd jump


def test_counters_that_reset_wrap_step_back_and_jump_bill_what_was_drawn(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Berlin, Wed 14 Oct 2026, 08:00-12:00. An outlet counting Wh in 32 bits (it wraps at
    2**32 Wh = 4294967.296 kWh) feeds a rig drawing 3 kW (outlet power 3000 W), read every
    30 s from 07:30. The counter starts at 4294965.300 kWh and wraps 1.996 kWh later, at
    08:09:55.2; right after the 08:59:30 read it is reset to zero (the 09:00:00 read says
    0.025 and is flagged); at 10:00:00 and 10:30:00 a read steps back 4 Wh below the read
    before it (flagged, as the collector flags every step back) and the next goes on from the
    true count; at 11:00:00 one read jumps by 1,000,000 kWh and the counter goes on from
    there. By hand the rig drew 3 kW for 4 hours: 12.000 kWh, 0.750 a quarter; the
    jumped 30 s are unknown to the counter and come from the outlet's 3000 W power."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", FLAT)
    eight = at(zone, 2026, 10, 14, 8)
    wrap = Decimal(2**32) / 1000
    who = ("kilo", "R1")
    points: list[Point] = []
    reads: list[tuple[Decimal, Decimal]] = []
    for t in range(eight - 1800, eight + 4 * 3600 + 1800, 30):
        drawn = Decimal(3) * (t - (eight - 1800)) / 3600  # kWh since the first read
        if t < eight + 3600:
            kwh = (Decimal("4294965.300") + drawn) % wrap
        else:  # reset to 0 right after the 08:59:30 read
            kwh = Decimal(3) * (t - (eight + 3600 - 30)) / 3600
        if t >= eight + 3 * 3600 + 30:
            kwh += 1_000_000  # the jump, and the counter goes on from there
        reset = t == eight + 3600
        if t in (eight + 2 * 3600, eight + 2 * 3600 + 1800):
            kwh -= Decimal("0.029")  # 0.004 below the read 30 s before
            reset = True
        kwh = kwh.quantize(MILLI)
        points += outlet(t, kwh, 3000.0, who, reset=reset)
        points += rig("c1", t, 3000.0, who, source="pdu")
        reads.append((Decimal(t), kwh))
    write(ledger_db, points)
    rollup(cfg, eight, eight + 4 * 3600, now_s=eight + 6 * 3600)
    got = ledger_kwh(cfg, eight, eight + 4 * 3600)
    want = ref_rig([(Decimal(t), Decimal(3000)) for t, _ in reads], [(reads[0][0], who)],
                   eight, eight + 4 * 3600, counter=reads)
    assert_same(got, want)
    by_hand = {(q, who): Decimal("0.75") for q in range(eight, eight + 4 * 3600, Q)}
    assert_same(got, by_hand)
    r = report(cfg, "2026-10")
    assert (r.total["kwh"], r.total["cost"]) == (Decimal("12.000"), Decimal("2.40"))


# ------------------------------------------- 5. moves: inside a quarter, twice, unmapped


def test_moves_inside_a_quarter_twice_a_day_and_unmapped_then_remapped(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Berlin, Thu 15 Oct 2026, 08:00-16:00, two rigs polled every 20-40 s on their miner
    figure. m1 (2000 W): kilo/R1 until a poll after 09:07, lima/R2 from the next poll (inside
    the 09:00 quarter, split midway between the two polls), kilo/R3 from 13:00 (both sides
    of the move in different quarters: the move is the 13:00 edge). m2 (4000 W): kilo until
    11:00, then unmapped (no customer, no rack) until 12:00, then lima. Reference: the
    module's rules, from the raw polls."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", FLAT)
    eight = at(zone, 2026, 10, 15, 8)
    first_move, second_move = eight + 3600 + 7 * 60, eight + 5 * 3600
    rng = random.Random(15)
    points: list[Point] = []
    per_rig: dict[str, dict[tuple[int, Who], Decimal]] = {}
    for name, watts, holder in (
            ("m1", 2000, lambda t: ("kilo", "R1") if t < first_move else ("lima", "R2")
             if t < second_move else ("kilo", "R3")),
            ("m2", 4000, lambda t: ("kilo", "R1") if t < eight + 3 * 3600 else ("", "")
             if t < eight + 4 * 3600 else ("lima", "R2"))):
        polls = jittered(eight - 1800, eight + 8 * 3600 + 1800, rng)
        for t in polls:
            points += rig(name, t, float(watts), holder(t))
        per_rig[name] = ref_rig([(t, Decimal(watts)) for t in polls],
                                [(t, holder(t)) for t in polls], eight, eight + 8 * 3600)
    ref: dict[tuple[int, Who], Decimal] = defaultdict(Decimal)
    for table in per_rig.values():
        for k, v in table.items():
            ref[k] += v
    write(ledger_db, points)
    rollup(cfg, eight, eight + 8 * 3600, now_s=eight + 9 * 3600)
    assert_same(ledger_kwh(cfg, eight, eight + 8 * 3600), ref)
    # m1's 09:00 quarter is split between kilo/R1 and lima/R2, 0.5 kWh in all
    split = {who: v for (q, who), v in per_rig["m1"].items() if q == eight + 3600}
    assert set(split) == {("kilo", "R1"), ("lima", "R2")}
    assert sum(split.values(), Decimal(0)).quantize(Decimal("1e-9")) == Decimal("0.5")
    want = priced(ref, zone, FLAT_PERIODS)
    assert_report(report(cfg, "2026-10"), want)
    # 16 kWh of m1 (8 h x 2 kW) and 32 of m2: the customers and "" add up to 48 exactly
    assert sum((v["kwh"] for v in want.values()), Decimal(0)).quantize(MILLI) == Decimal("48.000")


def test_a_window_across_midnight_is_checked_for_overlaps_on_the_day_after(
        tmp_path: Path) -> None:
    """A Friday 22:00-06:00 window covers Saturday 00:00-06:00: a Saturday 05:00-07:00 window
    overlaps it (on Saturday, the day after), a Saturday 06:00-07:00 one does not."""
    from hashwatt.errors import ConfigError

    def load(second: str) -> None:
        path = tmp_path / f"t-{uuid.uuid4().hex[:6]}.toml"
        path.write_text('[site]\nname = "east"\ntimezone = "UTC"\n[[tariff.periods]]\n'
                        'from = 2026-01-01\nrate = 0.1\n[[tariff.periods.windows]]\n'
                        'name = "night"\nrate = 0.05\nweekdays = ["fri"]\nstart = "22:00"\n'
                        'end = "06:00"\n[[tariff.periods.windows]]\nname = "early"\n'
                        f'rate = 0.2\nweekdays = ["sat"]\nstart = "{second}"\nend = "07:00"\n')
        load_config(path)

    load("06:00")
    with pytest.raises(ConfigError, match=r"window 'early' 05:00-07:00 overlaps window "
                                          r"'night' 22:00-06:00 \(windows\[0\]\) on sat"):
        load("05:00")
