"""Independent audit of the energy ledger, the monthly reports and the customer statements
(issues 12 and 17) on scenarios the project's own tests do not have.

Readings go in through the bridge's own encoders (exporters.decode.rig_points/pdu_points) into
the real influxd fixture, the ledger is built by the real rollup, and every expected number is
derived here from the tariff's definition with zoneinfo and decimal, quarter hour by quarter
hour. Nothing here calls hashwatt.tariff, the ledger's arithmetic or the statement code to get
an expected number; the hand figures are written beside each assertion.

The tariff's definition as the README states it: a period applies from its local date/time
until the next period's start; within a period, the first window whose weekdays, months and
wall-clock span [start, end) hold the local time gives the rate, else the period's rate.
A change is an instant: the first moment the site's wall clock reads the `from` time (on a
fall-back night its first occurrence; on a spring-forward night a `from` inside the skipped
hour applies from the jump, the first instant the clock reads past it).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporters.decode import pdu_points, rig_points
from exporters.finance.ledger import LedgerRow, ledger_rows, rollup
from exporters.finance.report import last_month
from exporters.lineproto import Point
from hashwatt.config import Config, load_config
from hashwatt.contract import OutletReading, PduReading, RigReading
from hashwatt.influxql import InfluxQL
from tests.ledger_seed import report, write_points

pytestmark = pytest.mark.e2e
Q = 900
CENT, MILLI = Decimal("0.01"), Decimal("0.001")
ALL_DAYS, WEEKDAYS, ALL_MONTHS = set(range(7)), set(range(5)), set(range(1, 13))

# ------------------------------------------------------------ the independent tariff reading

# (window name, rate, weekdays (0 = Monday), (h, m) start, (h, m) end, months)
RefWindow = tuple[str, Decimal, set[int], tuple[int, int], tuple[int, int], set[int]]
# (naive local start, base rate, base name, windows)
RefPeriod = tuple[dt.datetime, Decimal, str, list[RefWindow]]


def change_instant(local: dt.datetime, zone: ZoneInfo) -> int:
    """The first instant the wall clock of zone reads `local` or later (epoch s)."""
    first = int(local.replace(tzinfo=zone, fold=0).timestamp())
    if dt.datetime.fromtimestamp(first, zone).replace(tzinfo=None) == local:
        return first  # it exists: its first occurrence (fold 0)
    # skipped by a spring-forward: the jump itself, the first quarter whose clock is past it
    t = int(local.replace(tzinfo=zone, fold=1).timestamp()) // Q * Q
    while dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None) < local:
        t += Q
    return t


def ref_price(ts: int, zone: ZoneInfo, periods: list[RefPeriod]) -> tuple[Decimal, str]:
    """Rate and window name of the quarter starting at ts, from the definition."""
    chosen = None
    for period in periods:
        if ts >= change_instant(period[0], zone):
            chosen = period
    assert chosen is not None
    local = dt.datetime.fromtimestamp(ts, zone)
    for name, rate, days, start, end, months in chosen[3]:
        if (local.weekday() in days and local.month in months
                and start <= (local.hour, local.minute) < end):
            return rate, name
    return chosen[1], chosen[2]


def ref_costs(kwh: dict[int, Decimal], zone: ZoneInfo,
              periods: list[RefPeriod]) -> tuple[Decimal, dict[str, Decimal], dict[str, Decimal]]:
    """Exact cost of kWh per quarter start; kWh and cost per window name."""
    cost: dict[str, Decimal] = defaultdict(Decimal)
    energy: dict[str, Decimal] = defaultdict(Decimal)
    for q, k in kwh.items():
        rate, name = ref_price(q, zone, periods)
        cost[name] += k * rate
        energy[name] += k
    return sum(cost.values(), Decimal(0)), dict(energy), dict(cost)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def at(zone: ZoneInfo, *args: int, fold: int = 0) -> int:
    return int(dt.datetime(*args, tzinfo=zone, fold=fold).timestamp())


# ---------------------------------------------------------------- seeding, the bridge's path




def make_config(db: InfluxQL, tmp: Path, zone: str, tariff: str, currency: str = "EUR",
                extra: str = "") -> Config:
    path = tmp / f"audit-{uuid.uuid4().hex[:6]}.toml"
    url = str(db.client.base_url).rstrip("/")
    path.write_text(f'[site]\nname = "south"\ntimezone = "{zone}"\ncurrency = "{currency}"\n'
                    f'[influxdb]\nurl = "{url}"\ndatabase = "{db.database}"\n\n{tariff}\n'
                    f'{extra}')
    return load_config(path)


def rig(rig_id: str, ts: float, watts: float | None, *, customer: str = "kilo",
        rack: str = "R1", source: str = "miner", online: bool = True,
        hashrate: float | None = 100.0, maintenance: bool = False) -> list[Point]:
    return rig_points(RigReading(
        ts_ms=int(ts * 1000), site="south", rig=rig_id, collector="c1", rack=rack,
        customer=customer, online=online, hashrate_ths=hashrate if online else None,
        expected_hashrate_ths=110.0, maintenance=maintenance,
        power_w=watts, power_source=source if watts is not None else None))  # type: ignore[arg-type]


def outlet(ts: float, energy: float, watts: float, *, rig_id: str = "p1",
           customer: str = "kilo", reset: bool = False) -> list[Point]:
    o = OutletReading(outlet=4, power_w=watts, energy_kwh=energy, energy_reset=reset,
                      rig=rig_id, customer=customer)
    return pdu_points(PduReading(ts_ms=int(ts * 1000), site="south", pdu="pdu-a",
                                 collector="c1", rack="R1", online=True, outlets=[o]))


def write(db: InfluxQL, points: list[Point]) -> None:
    write_points(db, points)


def rows_of(cfg: Config, start: int, end: int) -> list[LedgerRow]:
    return ledger_rows(cfg, dt.datetime.fromtimestamp(start, dt.UTC),
                       dt.datetime.fromtimestamp(end, dt.UTC))


def dec(x: float) -> Decimal:
    return Decimal(repr(x))


def kwh_per_quarter(rows: list[LedgerRow]) -> dict[int, Decimal]:
    out: dict[int, Decimal] = defaultdict(Decimal)
    for r in rows:
        out[int(r.time.timestamp())] += dec(r.kwh)
    return {q: v.quantize(Decimal("1e-9")) for q, v in out.items()}


def row_cost(rows: list[LedgerRow]) -> Decimal:
    return sum((dec(r.cost) for r in rows), Decimal(0)).quantize(Decimal("1e-9"))


def adds_up(r: Any) -> None:
    for column in ("kwh", "kwh_measured", "kwh_estimated", "cost",
                   *(f"{k}_{w}" for w in r.windows for k in ("kwh", "cost"))):
        assert sum(row[column] for row in r.rows) == r.total[column], column
    for row in [*r.rows, r.total]:
        assert row["kwh_measured"] + row["kwh_estimated"] == row["kwh"]
        assert sum(row[f"kwh_{w}"] for w in r.windows) == row["kwh"]
        assert sum(row[f"cost_{w}"] for w in r.windows) == row["cost"]


# ------------------------------------------------- time zones: 25-hour, 23-hour, 23.5-hour days

CHICAGO_TARIFF = """
[[tariff.periods]]
from = 2026-10-01
rate = 0.05
name = "base"
[[tariff.periods.windows]]
name = "overnight"
rate = 0.20
start = "01:00"
end = "02:00"
[[tariff.periods]]
from = "2026-11-01T01:30"
rate = 0.07
name = "base"
[[tariff.periods.windows]]
name = "overnight"
rate = 0.30
start = "01:00"
end = "02:00"
"""
CHICAGO: list[RefPeriod] = [
    (dt.datetime(2026, 10, 1), Decimal("0.05"), "base",
     [("overnight", Decimal("0.20"), ALL_DAYS, (1, 0), (2, 0), ALL_MONTHS)]),
    (dt.datetime(2026, 11, 1, 1, 30), Decimal("0.07"), "base",
     [("overnight", Decimal("0.30"), ALL_DAYS, (1, 0), (2, 0), ALL_MONTHS)])]


def test_chicago_fall_back_day_with_a_window_on_the_repeated_hour_and_a_change_inside_it(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """America/Chicago, Sunday 1 November 2026: 01:00-02:00 happens twice (CDT, then CST),
    the day has 25 h = 100 quarters. A 2 kW miner-power rig, readings every 5 minutes.
    The overnight window (01:00-02:00 wall clock) holds both passes: 8 quarters. The change at
    01:30 applies from its first occurrence (06:30 UTC) on, so the second pass of 01:00-01:30
    (07:00-07:30 UTC) is priced by the new period although its wall clock reads before 01:30.
    By hand, 0.5 kWh a quarter:
      00:00-01:00 CDT 4 q x 0.05 | 01:00-01:30 CDT 2 q x 0.20 | 01:30-02:00 CDT 2 q x 0.30
      01:00-02:00 CST 4 q x 0.30 | 02:00-24:00 CST 88 q x 0.07
      cost = 0.5 x (0.20 + 0.40 + 1.80 + 6.16) = 4.28 USD; overnight 4.000 kWh 1.10 USD,
      base 46.000 kWh 3.18 USD; the day 50.000 kWh."""
    zone = ZoneInfo("America/Chicago")
    cfg = make_config(ledger_db, tmp_path, "America/Chicago", CHICAGO_TARIFF, "USD")
    day, next_day = at(zone, 2026, 11, 1), at(zone, 2026, 11, 2)
    assert (next_day - day) // Q == 100
    write(ledger_db, [p for t in range(day - 3600 + 150, next_day + 3600, 300)
                      for p in rig("c1", t, 2000.0)])
    rollup(cfg, day, next_day, now_s=next_day + 7200)
    rows = rows_of(cfg, day, next_day)
    assert len(rows) == 100
    expected = {q: Decimal("0.5") for q in range(day, next_day, Q)}
    assert kwh_per_quarter(rows) == expected
    cost, energy, costs = ref_costs(expected, zone, CHICAGO)
    assert (cost, energy, costs) == (
        Decimal("4.280"), {"base": Decimal("46.0"), "overnight": Decimal("4.0")},
        {"base": Decimal("3.180"), "overnight": Decimal("1.100")})
    assert row_cost(rows) == cost
    # every quarter priced as the definition says (the repeated hour included)
    got = {int(r.time.timestamp()): (dec(r.rate_per_kwh), r.window) for r in rows}
    assert got == {q: ref_price(q, zone, CHICAGO) for q in expected}
    second_pass = at(zone, 2026, 11, 1, 1, 0, fold=1)
    assert got[second_pass] == (Decimal("0.30"), "overnight")
    # the November report: 30 x 24 + 1 = 721 hours; the day's split as above
    r = report(cfg, "2026-11")
    assert r.hours == 721
    [row] = r.rows
    assert (row["kwh"], row["cost"], row["kwh_overnight"], row["cost_overnight"],
            row["kwh_base"], row["cost_base"]) == (
        Decimal("50.000"), Decimal("4.28"), Decimal("4.000"), Decimal("1.10"),
        Decimal("46.000"), Decimal("3.18"))
    adds_up(r)


LONDON_TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.30
name = "day"
[[tariff.periods.windows]]
name = "night"
rate = 0.15
start = "00:00"
end = "07:00"
"""
LONDON: list[RefPeriod] = [
    (dt.datetime(2026, 1, 1), Decimal("0.30"), "day",
     [("night", Decimal("0.15"), ALL_DAYS, (0, 0), (7, 0), ALL_MONTHS)])]


def test_london_spring_forward_day_has_92_quarters_and_6_night_hours(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Europe/London, Sunday 29 March 2026: 01:00 GMT jumps to 02:00 BST, 23 h = 92 quarters.
    The night window 00:00-07:00 holds 00:00-01:00 GMT and 02:00-07:00 BST = 6 h = 24 q.
    1.5 kW counter-metered (a read every 60 s, 0.025 kWh apart): 0.375 kWh a quarter.
    By hand: 34.500 kWh; 24 x 0.375 x 0.15 + 68 x 0.375 x 0.30 = 1.35 + 7.65 = 9.00 GBP."""
    zone = ZoneInfo("Europe/London")
    cfg = make_config(ledger_db, tmp_path, "Europe/London", LONDON_TARIFF, "GBP")
    day, next_day = at(zone, 2026, 3, 29), at(zone, 2026, 3, 30)
    assert (next_day - day) // Q == 92
    first = day - 3600
    points = []
    for t in range(first + 30, next_day + 3600, 60):
        points += outlet(t, 500 + 1.5 * (t - first) / 3600, 1500.0)
        points += rig("p1", t, 1500.0, source="pdu")
    write(ledger_db, points)
    rollup(cfg, day, next_day, now_s=next_day + 7200)
    rows = rows_of(cfg, day, next_day)
    assert len(rows) == 92 and {r.source for r in rows} == {"pdu_energy"}
    got = kwh_per_quarter(rows)
    assert got == {q: Decimal("0.375") for q in range(day, next_day, Q)}
    cost, energy, _ = ref_costs(got, zone, LONDON)
    assert (cost, energy) == (Decimal("9.00000"), {"night": Decimal("9.000"),
                                                   "day": Decimal("25.500")})
    assert money(row_cost(rows)) == Decimal("9.00")
    assert sum(dec(r.kwh_measured) for r in rows) == Decimal("34.500")


def test_lord_howe_half_hour_dst_shift_and_kathmandu_edges_at_xx_45(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Australia/Lord_Howe, Sunday 4 October 2026: 02:00 +10:30 jumps to 02:30 +11:00, a day
    of 23.5 h = 94 quarters. Window "late" 02:00-03:00 at 0.40 (only 02:30-03:00 exists that
    day: 2 q), base 0.20, and a change to base 0.22 at 12:15. 1.2 kW nominal: 0.3 kWh a q.
    By hand: 00:00-02:00 8 q x 0.20, 02:30-03:00 2 q x 0.40, 03:00-12:15 37 q x 0.20,
    12:15-24:00 47 q x 0.22: 0.3 x (1.6 + 0.8 + 7.4 + 10.34) = 6.042 -> 6.04 AUD, 28.200 kWh."""
    zone = ZoneInfo("Australia/Lord_Howe")
    tariff = ('[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.20\nname = "base"\n'
              '[[tariff.periods.windows]]\nname = "late"\nrate = 0.40\nstart = "02:00"\n'
              'end = "03:00"\n'
              '[[tariff.periods]]\nfrom = "2026-10-04T12:15"\nrate = 0.22\nname = "base"\n'
              '[[tariff.periods.windows]]\nname = "late"\nrate = 0.40\nstart = "02:00"\n'
              'end = "03:00"\n')
    periods: list[RefPeriod] = [
        (dt.datetime(2026, 1, 1), Decimal("0.20"), "base",
         [("late", Decimal("0.40"), ALL_DAYS, (2, 0), (3, 0), ALL_MONTHS)]),
        (dt.datetime(2026, 10, 4, 12, 15), Decimal("0.22"), "base",
         [("late", Decimal("0.40"), ALL_DAYS, (2, 0), (3, 0), ALL_MONTHS)])]
    cfg = make_config(ledger_db, tmp_path, "Australia/Lord_Howe", tariff, "AUD")
    day, next_day = at(zone, 2026, 10, 4), at(zone, 2026, 10, 5)
    assert (next_day - day) // Q == 94
    write(ledger_db, [p for t in range(day - 3600 + 100, next_day + 3600, 300)
                      for p in rig("l1", t, 1200.0, source="nominal")])
    rollup(cfg, day, next_day, now_s=next_day + 7200)
    rows = rows_of(cfg, day, next_day)
    got = kwh_per_quarter(rows)
    assert got == {q: Decimal("0.3") for q in range(day, next_day, Q)}
    cost, energy, _ = ref_costs(got, zone, periods)
    assert cost == Decimal("6.042") and energy == {"base": Decimal("27.6"), "late": Decimal("0.6")}
    assert row_cost(rows) == cost and money(cost) == Decimal("6.04")

    # Asia/Kathmandu (+05:45): a peak window 17:45-22:45 local = 12:00-17:00 UTC
    kzone = ZoneInfo("Asia/Kathmandu")
    ktariff = ('[[tariff.periods]]\nfrom = 2026-01-01\nrate = 8\nname = "normal"\n'
               '[[tariff.periods.windows]]\nname = "peak"\nrate = 12\nstart = "17:45"\n'
               'end = "22:45"\n')
    kcfg = make_config(ledger_db, tmp_path, "Asia/Kathmandu", ktariff, "NPR")
    kday = at(kzone, 2026, 10, 7)
    assert dt.datetime.fromtimestamp(at(kzone, 2026, 10, 7, 17, 45), dt.UTC).time() == \
        dt.time(12, 0)
    write(ledger_db, [p for t in range(kday - 3600 + 200, kday + 25 * 3600, 300)
                      for p in rig("k9", t, 1800.0, customer="nepal")])
    rollup(kcfg, kday, kday + 86400, now_s=kday + 90000)
    krows = [r for r in rows_of(kcfg, kday, kday + 86400) if r.rig == "k9"]
    # 1.8 kW: 0.45 kWh a quarter; 20 peak q x 12 + 76 q x 8 = 848 -> 381.60 NPR
    assert sum(dec(r.kwh) for r in krows) == Decimal("43.20")
    peak = [r for r in krows if r.window == "peak"]
    assert len(peak) == 20
    assert min(r.time for r in peak) == dt.datetime(2026, 10, 7, 12, 0, tzinfo=dt.UTC)
    assert money(row_cost(krows)) == Decimal("381.60")


def test_a_change_inside_the_skipped_spring_forward_hour_applies_from_the_jump() -> None:
    """Europe/London, 29 March 2026: the wall clock jumps from 01:00 GMT to 02:00 BST, so a
    change "from 01:30" is in force as soon as the clock reads past 01:30, at the jump
    (01:00 UTC). zoneinfo's fold=0 reading of the skipped 01:30 is 01:30 UTC (02:30 BST),
    half an hour late; fold=1 is 00:30 UTC, half an hour early."""
    from hashwatt.tariff import Tariff, TariffConfig  # the code under test, not a reference

    zone = ZoneInfo("Europe/London")
    tariff = Tariff(TariffConfig.model_validate({"periods": [
        {"from": "2026-01-01", "rate": 0.1}, {"from": "2026-03-29T01:30", "rate": 0.2}]}),
        "Europe/London")
    jump = change_instant(dt.datetime(2026, 3, 29, 1, 30), zone)
    assert jump == int(dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC).timestamp())
    assert [tariff.rate_at(jump + d) for d in (-Q, 0, Q, 2 * Q)] == [0.1, 0.2, 0.2, 0.2]


# --------------------------------------------------------------- rigs: moves, counters, gaps

BERLIN_TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.10
name = "off-peak"
[[tariff.periods.windows]]
name = "peak"
rate = 0.25
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "20:00"
"""
BERLIN: list[RefPeriod] = [
    (dt.datetime(2026, 1, 1), Decimal("0.10"), "off-peak",
     [("peak", Decimal("0.25"), WEEKDAYS, (8, 0), (20, 0), ALL_MONTHS)])]


def test_a_counter_metered_rig_moving_customer_and_rack_twice_in_a_day(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Berlin, Wednesday 7 October 2026. p1 draws 3 kW on a counter (a read every 60 s at :30,
    0.05 kWh apart): alpha/R1 until 10:00, beta/R2 until 14:07 (inside the 14:00 quarter),
    alpha/R3 afterwards. A move inside a quarter splits it by time at the midpoint of the
    last old and first new reading (14:06:30 and 14:07:30: 14:07:00): 7 min beta, 8 min
    alpha, and the counter's energy (spread evenly between its reads) split there.
    By hand (0.75 kWh a quarter, 0.05 kWh a minute): alpha 40 q R1 = 30.000 kWh, R3 39 q +
    8 min = 29.250 + 0.400 = 29.650; beta 16 q + 7 min = 12.350 kWh. Cost: alpha off-peak
    32 q + 16 q, peak 8 q + 23 q + 0.4 kWh: 0.10 x 36 + 0.25 x (6.0 + 17.25 + 0.4) =
    3.60 + 5.9125 = 9.5125; beta all peak 12.35 x 0.25 = 3.0875; together 12.60 exactly.
    Rounded by largest remainder: 9.51 + 3.09 (remainders .25 and .75)."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", BERLIN_TARIFF)
    day = at(zone, 2026, 10, 7)
    ten, move = at(zone, 2026, 10, 7, 10), at(zone, 2026, 10, 7, 14, 7)
    first = day - 3600
    points = []
    for t in range(first + 30, day + 25 * 3600, 60):
        who, rack = ("alpha", "R1") if t < ten else ("beta", "R2") if t < move else \
            ("alpha", "R3")
        points += outlet(t, 42 + 3 * (t - first) / 3600, 3000.0, customer=who)
        points += rig("p1", t, 3000.0, customer=who, rack=rack, source="pdu")
    write(ledger_db, points)
    rollup(cfg, day, day + 86400, now_s=day + 90000)
    rows = rows_of(cfg, day, day + 86400)
    assert len(rows) == 97 and {r.source for r in rows} == {"pdu_energy"}  # one split
    kwh: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        kwh[(r.customer, r.rack)] += dec(r.kwh)
    assert {k: v.quantize(MILLI) for k, v in kwh.items()} == {
        ("alpha", "R1"): Decimal("30.000"), ("beta", "R2"): Decimal("12.350"),
        ("alpha", "R3"): Decimal("29.650")}
    split = {(r.customer, r.rack): (r.seconds, dec(r.kwh).quantize(MILLI))
             for r in rows if int(r.time.timestamp()) == move // Q * Q}
    assert split == {("beta", "R2"): (420, Decimal("0.350")),
                     ("alpha", "R3"): (480, Decimal("0.400"))}
    alpha = {q: Decimal("0.75") for q in range(day, day + 86400, Q) if not ten <= q <= move}
    alpha[move // Q * Q] = Decimal("0.40")
    beta = {q: Decimal("0.75") for q in range(ten, move // Q * Q, Q)}
    beta[move // Q * Q] = Decimal("0.35")
    assert ref_costs(alpha, zone, BERLIN)[0] == Decimal("9.5125")
    assert ref_costs(beta, zone, BERLIN)[0] == Decimal("3.0875")
    r = report(cfg, "2026-10")
    got = {row["customer"]: (row["kwh"], row["kwh_measured"], row["cost"], row["kwh_peak"],
                             row["rigs"]) for row in r.rows}
    assert got == {"alpha": (Decimal("59.650"), Decimal("59.650"), Decimal("9.51"),
                             Decimal("23.650"), 1),
                   "beta": (Decimal("12.350"), Decimal("12.350"), Decimal("3.09"),
                            Decimal("12.350"), 1)}
    assert r.total["rigs"] == 1 and r.total["cost"] == Decimal("12.60")
    adds_up(r)
    by_rack = {row["rack"]: row["kwh"] for row in report(cfg, "2026-10", "rack").rows}
    assert by_rack == {"R1": Decimal("30.000"), "R2": Decimal("12.350"),
                       "R3": Decimal("29.650")}


def _counter_day(ledger_db: InfluxQL, tmp_path: Path, jitter: bool) -> tuple[Config, int]:
    """Berlin, Thursday 8 October 2026: p1 at 3 kW, counter reads every 60 s at :30 from
    07:00 to 10:59:30; an unflagged reset to 0 at 09:07:18 (the 09:07:30 read says 0.010);
    with jitter, the 08:20:30 read steps back 0.02 kWh below the read before it. After 11:00
    the PDU is gone and the rig's own (miner) figure, 2.9 kW, is all there is until 13:00."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", BERLIN_TARIFF)
    seven, reset = at(zone, 2026, 10, 8, 7), at(zone, 2026, 10, 8, 9, 7, 18)
    eleven, one = at(zone, 2026, 10, 8, 11), at(zone, 2026, 10, 8, 13)
    points = []
    for t in range(seven + 30, eleven, 60):
        kwh = 7000 + 3 * (t - seven) / 3600 if t < reset else 3 * (t - reset) / 3600
        if jitter and t == at(zone, 2026, 10, 8, 8, 20, 30):
            kwh = 7000 + 3 * (t - 60 - seven) / 3600 - 0.02
        points += outlet(t, round(kwh, 6), 3000.0)
        points += rig("p1", t, 3000.0, source="pdu")
    for t in range(eleven + 30, one, 60):
        points += rig("p1", t, 2900.0, source="miner")
    write(ledger_db, points)
    rollup(cfg, at(zone, 2026, 10, 8, 8), one, now_s=one + 7200)
    return cfg, at(zone, 2026, 10, 8, 8)


def test_a_counter_reset_then_the_miner_figure_when_the_pdu_is_gone(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """By hand: 08:00-11:00 is 12 counter quarters of 0.75 kWh, less the 48 s between the
    09:06:30 read and the reset (0.04 kWh, unknowable: the 09:07:30 read counts from zero):
    8.960 kWh measured; the 10:45 quarter is 870 s of counter + 30 s of outlet power = 0.75;
    11:00-13:00 is 8 quarters of 2.9 kW x 0.25 h = 0.725 kWh estimated (miner) = 5.800.
    Cost: 08:00-13:00 is all peak (0.25): (8.96 + 5.8) x 0.25 = 3.69 EUR."""
    cfg, eight = _counter_day(ledger_db, tmp_path, jitter=False)
    rows = rows_of(cfg, eight, eight + 5 * 3600)
    got = kwh_per_quarter(rows)
    zone = ZoneInfo("Europe/Berlin")
    nine = at(zone, 2026, 10, 8, 9)
    expected = {q: Decimal("0.75") for q in range(eight, eight + 3 * 3600, Q)}
    expected[nine] = Decimal("0.71")
    expected |= {q: Decimal("0.725") for q in range(eight + 3 * 3600, eight + 5 * 3600, Q)}
    assert got == expected
    measured = sum(dec(r.kwh_measured) for r in rows).quantize(Decimal("1e-9"))
    estimated = sum(dec(r.kwh_estimated) for r in rows).quantize(Decimal("1e-9"))
    assert (measured, estimated) == (Decimal("8.96"), Decimal("5.8"))
    assert {r.source for r in rows if r.time.timestamp() >= eight + 3 * 3600} == {"miner"}
    cost = ref_costs(expected, zone, BERLIN)[0]
    assert cost == Decimal("3.69000") and money(row_cost(rows)) == Decimal("3.69")


def test_counter_jitter_stepping_back_adds_no_energy(ledger_db: InfluxQL,
                                                     tmp_path: Path) -> None:
    """A counter that steps back 0.02 kWh for one read and then goes on: between its reads
    before and after the step the rig drew what the counter says (last - first), 0.75 kWh in
    the 08:15 quarter as in every other; counting the step back as 0 and the step up from the
    lower read bills the 0.02 kWh jitter a second time."""
    cfg, eight = _counter_day(ledger_db, tmp_path, jitter=True)
    rows = rows_of(cfg, eight, eight + 3600)
    assert kwh_per_quarter(rows) == {q: Decimal("0.75") for q in range(eight, eight + 3600, Q)}


def _nominal_morning(ledger_db: InfluxQL, tmp_path: Path) -> tuple[Config, int]:
    """Berlin, Friday 9 October 2026, 06:00-12:00: n1 on nominal 2 kW, a reading every 5
    minutes on the minute (06:00, 06:05, ...). Missing: 07:10-07:40 (readings 07:05 and
    07:45 are 40 min apart) and 09:00-09:40 (08:55 and 09:45: 50 min apart). Offline:
    10:00-10:25 (two whole quarters, from a quarter's first reading) and 10:55, 11:00 (the
    last reading of one quarter and the first of the next)."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", BERLIN_TARIFF)
    six = at(zone, 2026, 10, 9, 6)
    missing = {*range(at(zone, 2026, 10, 9, 7, 10), at(zone, 2026, 10, 9, 7, 45), 300),
               *range(at(zone, 2026, 10, 9, 9), at(zone, 2026, 10, 9, 9, 45), 300)}
    offline = {*range(at(zone, 2026, 10, 9, 10), at(zone, 2026, 10, 9, 10, 30), 300),
               at(zone, 2026, 10, 9, 10, 55), at(zone, 2026, 10, 9, 11)}
    write(ledger_db, [p for t in range(six - 1800, six + 6 * 3600 + 1800, 300)
                      if t not in missing
                      # offline as the collector publishes it (collector/mapping.py
                      # offline_reading): no power figure unless the outlet has one
                      for p in rig("n1", t, None if t in offline else 2000.0,
                                   source="nominal", online=t not in offline)])
    rollup(cfg, six, six + 6 * 3600, now_s=six + 8 * 3600)
    return cfg, six


def test_a_nominal_rig_offline_at_quarter_edges_and_a_40_minute_gap_filled(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """By hand, 0.5 kWh a full quarter (2 kW x 0.25 h); a reading stands for the part of its
    quarter nearer to it than to the quarter's other readings (the first from the quarter's
    start, the last to its end). 07:15 and 07:30 have no reading; 07:05 and 07:45 are 40 min
    apart: filled with the 07:00 quarter's power, 0.5 each, estimated, coverage 0. 10:00 and
    10:15: offline readings only, 0 kWh (offline). 10:45 (10:45, 10:50 online, 10:55
    offline): the offline reading stands for 10:52:30-11:00, 7.5 min drawn = 0.25 kWh; 11:00
    (11:00 offline, 11:05, 11:10 online): offline 11:00-11:02:30, 12.5 min drawn = 5/12 kWh
    (the plain mean of each quarter's readings said 1/3 and 1/3)."""
    cfg, six = _nominal_morning(ledger_db, tmp_path)
    got = {int(r.time.timestamp()): r for r in rows_of(cfg, six, six + 6 * 3600)}

    def hm(h: int, m: int) -> int:
        return six + (h - 6) * 3600 + m * 60

    for q in (hm(7, 15), hm(7, 30)):
        assert (dec(got[q].kwh_estimated), got[q].coverage) == (Decimal("0.5"), 0.0)
    for q in (hm(10, 0), hm(10, 15)):
        assert (dec(got[q].kwh), got[q].source, got[q].coverage) == (Decimal(0), "offline", 1.0)
    nine = Decimal("1e-9")
    for q, kwh in ((hm(9, 45), Decimal("0.5")), (hm(10, 45), Decimal("0.25")),
                   (hm(11, 0), Decimal(5) / 12)):
        assert (dec(got[q].kwh).quantize(nine), got[q].source) == (kwh.quantize(nine), "nominal")
    assert dec(got[hm(10, 30)].kwh) == Decimal("0.5")


def test_a_50_minute_gap_between_readings_is_not_filled(ledger_db: InfluxQL,
                                                        tmp_path: Path) -> None:
    """README: 'A quarter without readings between readings at most 45 minutes apart takes
    the power of the quarter before it ... Other quarters without readings get no row'. The
    readings around 09:00-09:45 are 08:55 and 09:45, 50 minutes apart: no rows for 09:00,
    09:15, 09:30."""
    cfg, six = _nominal_morning(ledger_db, tmp_path)
    times = {int(r.time.timestamp()) for r in rows_of(cfg, six, six + 6 * 3600)}
    assert not times & {six + 3 * 3600 + m * 60 for m in (0, 15, 30)}


# ------------------------------------------------------------------------------- reports

TOKYO_TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 30
name = "standard"
[[tariff.periods.windows]]
name = "peak"
rate = 45
start = "13:00"
end = "16:00"
"""


def test_a_month_report_with_a_rig_added_and_removed_and_one_moving_customer(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Asia/Tokyo, November 2026 (720 h). t1 (kilo, 1 kW) exists 10-20 November only, with
    no reading 15 November 12:00-14:00 (8 quarters, too long to fill); m1 (2 kW) runs 1-3
    November, kilo's on the 1st and lima's on the 2nd. Neither is in the inventory now.
    By hand: t1 952 q x 0.25 = 238.000 kWh, peak 13:00-16:00 10 days x 12 q less 4 = 116 q:
    0.25 x (116 x 45 + 836 x 30) = 7575.00 JPY; m1 a day each: 48.000 kWh,
    0.5 x (12 x 45 + 84 x 30) = 1530.00 JPY. kilo 286.000 kWh 9105.00 JPY, coverage
    (952 + 96) / (960 + 96) = 0.9924; lima 48.000 kWh 1530.00 JPY, coverage 1; total 334.000
    kWh 10635.00 JPY, 2 rigs."""
    zone = ZoneInfo("Asia/Tokyo")
    cfg = make_config(ledger_db, tmp_path, "Asia/Tokyo", TOKYO_TARIFF, "JPY")
    start, end = at(zone, 2026, 11, 1), at(zone, 2026, 12, 1)
    added, removed = at(zone, 2026, 11, 10), at(zone, 2026, 11, 20)
    hole = range(at(zone, 2026, 11, 15, 12), at(zone, 2026, 11, 15, 14))
    second = at(zone, 2026, 11, 2)
    points = [p for q in range(added, removed, Q) if q not in hole
              for p in rig("t1", q + 450, 1000.0, customer="kilo")]
    points += [p for q in range(start, at(zone, 2026, 11, 3), Q)
               for p in rig("m1", q + 450, 2000.0, customer="kilo" if q < second else "lima")]
    write(ledger_db, points)
    rollup(cfg, start, end, now_s=end + 3600)
    r = report(cfg, "2026-11")
    assert r.hours == 720
    got = {row["customer"]: (row["kwh"], row["cost"], row["kwh_peak"], row["coverage"],
                             row["rigs"]) for row in r.rows}
    assert got == {
        "kilo": (Decimal("286.000"), Decimal("9105.00"), Decimal("35.000"), Decimal("0.9924"),
                 2),
        "lima": (Decimal("48.000"), Decimal("1530.00"), Decimal("6.000"), Decimal("1.0000"),
                 1)}
    assert (r.total["kwh"], r.total["cost"], r.total["rigs"]) == (
        Decimal("334.000"), Decimal("10635.00"), 2)
    adds_up(r)
    # the files finance opens: CSV rows, the JSON total, the XLSX total row
    cmd = [sys.executable, "-m", "hashwatt.cli", "report", "energy", str(cfg.source),
           "--month", "2026-11"]
    csv_text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert csv_text.splitlines()[1:] == [
        "south,2026-11,JPY,kilo,286.000,0.000,286.000,9105.00,251.000,7530.00,35.000,1575.00,"
        "0.9924,2",
        "south,2026-11,JPY,lima,48.000,0.000,48.000,1530.00,42.000,1260.00,6.000,270.00,"
        "1.0000,1"]
    doc = json.loads(subprocess.run([*cmd, "--format", "json"], capture_output=True,
                                    text=True, check=True).stdout)
    assert (doc["total"]["kwh"], doc["total"]["cost"], doc["total"]["rigs"]) == (
        "334.000", "10635.00", 2)
    xlsx = tmp_path / "nov.xlsx"
    subprocess.run([*cmd, "--format", "xlsx", "--output", str(xlsx)], check=True)
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).worksheets[0]
    header = [c.value for c in sheet[1]]
    total = dict(zip(header, [c.value for c in sheet[4]], strict=True))
    assert total["kwh"] == "=SUM(E2:E3)" and total["cost"] == "=SUM(H2:H3)"
    # rigs are counted, not added: m1 is in both rows but is one rig
    assert total["rigs"] == 2
    # a month without ledger rows: a warning and exit 3, no all-zero invoice
    empty = subprocess.run([*cmd[:-1], "2026-10"], capture_output=True, text=True)
    assert (empty.returncode, empty.stdout) == (3, "")


def test_the_default_month_at_a_month_boundary_far_east_and_far_west() -> None:
    """Pacific/Kiritimati is UTC+14: at 10:30 UTC on 30 November it is already 00:30 on
    1 December there, so last month is November; Pacific/Pago_Pago (UTC-11) at 10:30 UTC on
    1 December is still 23:30 on 30 November: last month is October."""
    assert last_month("Pacific/Kiritimati", dt.datetime(2026, 11, 30, 10, 30, tzinfo=dt.UTC)) \
        == "2026-11"
    assert last_month("Pacific/Pago_Pago", dt.datetime(2026, 12, 1, 10, 30, tzinfo=dt.UTC)) \
        == "2026-10"
    assert last_month("Pacific/Kiritimati", dt.datetime(2026, 12, 31, 10, 0, tzinfo=dt.UTC)) \
        == "2026-12"


# ---------------------------------------------------------------------- statements (17)

STATEMENT_TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.12
name = "off-peak"
[[tariff.periods.windows]]
name = "peak"
rate = 0.30
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "20:00"
[[tariff.periods]]
from = "2026-10-14T14:00"
rate = 0.15
name = "off-peak"
[[tariff.periods.windows]]
name = "peak"
rate = 0.36
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "20:00"
"""
STATEMENT_PERIODS: list[RefPeriod] = [
    (dt.datetime(2026, 1, 1), Decimal("0.12"), "off-peak",
     [("peak", Decimal("0.30"), WEEKDAYS, (8, 0), (20, 0), ALL_MONTHS)]),
    (dt.datetime(2026, 10, 14, 14, 0), Decimal("0.15"), "off-peak",
     [("peak", Decimal("0.36"), WEEKDAYS, (8, 0), (20, 0), ALL_MONTHS)])]
CUSTOMERS = """
[[customers]]
id = "kilo"
name = "Kilo Hosting"
currency = "EUR"
availability_target_pct = 98
price = { kind = "tariff", markup_pct = "12.5" }
fees = { per_rig_month = "20.00", per_kw_month = "4.00", contracted_kw = "7.5" }
[[customers]]
id = "lima"
name = "Lima Mining"
currency = "EUR"
price = { kind = "fixed", per_kwh = "0.09" }
fees = { per_rig_month = "10.00" }
[[rigs]]
id = "k1"
address = "10.0.0.1"
customer = "kilo"
[[rigs]]
id = "m2"
address = "10.0.0.2"
customer = "kilo"
"""


def test_a_statement_with_pass_through_across_a_tariff_change_a_move_in_and_maintenance(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Berlin, October 2026 (745 h), readings through the bridge's encoders, the real rollup,
    then the statement. kilo pays the site tariff + 12.5 %, 20.00 per rig-month pro rata,
    4.00 per kW x 7.5 kW. k1 (kilo all month, 2 kW miner power) is offline 5 October
    02:00-04:00 (8 q) and in maintenance 20 October 10:00-14:00 (16 q, hashrate 0, still
    drawing). m2 (3 kW) is lima's until 14 October 12:00 and kilo's from then: 421 of 745 h
    (14 Oct 10:00 UTC to 31 Oct 23:00 UTC). The tariff changes at 14:00 that day.
    By hand: k1 (2980 - 8) q x 0.5 = 1486.000 kWh, fee 20.00; m2 1684 q x 0.75 = 1263.000 kWh,
    fee 20 x 421 / 745 = 11.302 -> 11.30; capacity 4.00 x 7.5 = 30.00. Energy cost = the
    quarters' tariff cost (ref_costs, below) x 1.125, per rig to the cent. Availability k1:
    hashing 2956 q = 739 h of 745 - 4 = 741 h = 99.73 %; m2 421 of 421 h = 100.00 %;
    together 1160 / 1162 = 99.83 %."""
    from exporters.customers.ledger_source import open_ledger
    from exporters.customers.statements import compute, customer_of

    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", STATEMENT_TARIFF, extra=CUSTOMERS)
    start, end = at(zone, 2026, 10, 1), at(zone, 2026, 11, 1)
    move = at(zone, 2026, 10, 14, 12)
    assert ((end - start) // 3600, (end - move) // 3600) == (745, 421)
    down = range(at(zone, 2026, 10, 5, 2), at(zone, 2026, 10, 5, 4))
    maint = range(at(zone, 2026, 10, 20, 10), at(zone, 2026, 10, 20, 14))
    points: list[Point] = []
    for q in range(start, end, Q):
        t = q + 450
        points += rig("k1", t, None if q in down else 2000.0, customer="kilo", rack="A",
                      online=q not in down, hashrate=0.0 if q in maint else 100.0,
                      maintenance=q in maint)
        points += rig("m2", t, 3000.0, customer="lima" if q < move else "kilo", rack="B")
    write(ledger_db, points)
    rollup(cfg, start, end, now_s=end + 3600)

    k1 = {q: Decimal("0.5") for q in range(start, end, Q) if q not in down}
    m2 = {q: Decimal("0.75") for q in range(move, end, Q)}
    k1_cost, m2_cost = ref_costs(k1, zone, STATEMENT_PERIODS)[0], \
        ref_costs(m2, zone, STATEMENT_PERIODS)[0]
    assert (k1_cost, m2_cost) == (K1_TARIFF_COST, M2_TARIFF_COST)
    k1_energy = money(k1_cost * Decimal("1.125"))
    m2_energy = money(m2_cost * Decimal("1.125"))
    assert (k1_energy, m2_energy) == (K1_ENERGY, M2_ENERGY)

    db = open_ledger(cfg)
    try:
        st = compute(cfg, db, customer_of(cfg, "kilo"), "2026-10")
        again = compute(cfg, db, customer_of(cfg, "kilo"), "2026-10")
    finally:
        db.close()
    lines = {line.rig: line for line in st.rigs}
    assert set(lines) == {"k1", "m2"}
    a, b = lines["k1"], lines["m2"]
    assert (a.kwh, a.kwh_estimated, a.energy_cost, a.fee) == (
        Decimal("1486.000"), Decimal("1486.000"), k1_energy, Decimal("20.00"))
    assert (b.kwh, b.energy_cost, b.fee, b.assigned_hours) == (
        Decimal("1263.000"), m2_energy, Decimal("11.30"), Decimal("421.00"))
    assert (a.hours_hashing, a.hours_drawing, a.hours_maintenance, a.availability_pct) == (
        Decimal("739.00"), Decimal("743.00"), Decimal("4.00"), Decimal("99.73"))
    assert b.availability_pct == Decimal("100.00")
    t = st.totals
    assert st.capacity_fee == Decimal("30.00")
    assert (t["kwh"], t["energy_cost"], t["rig_fees"], t["fees"], t["total"]) == (
        Decimal("2749.000"), k1_energy + m2_energy, Decimal("31.30"), Decimal("61.30"),
        k1_energy + m2_energy + Decimal("61.30"))
    assert t["availability_pct"] == Decimal("99.83")
    # lima had m2 for the 324 h before the move: 1296 q x 0.75 = 972.000 kWh at the fixed
    # 0.09 = 87.48 EUR, fee 10.00 x 324 / 745 = 4.3489 -> 4.35; total 91.83
    db = open_ledger(cfg)
    try:
        lima = compute(cfg, db, customer_of(cfg, "lima"), "2026-10")
    finally:
        db.close()
    [m2_lima] = lima.rigs
    assert (m2_lima.kwh, m2_lima.energy_cost, m2_lima.fee, m2_lima.assigned_hours) == (
        Decimal("972.000"), Decimal("87.48"), Decimal("4.35"), Decimal("324.00"))
    assert lima.totals["total"] == Decimal("91.83") and lima.capacity_fee == Decimal("0.00")
    # the ledger state reproduces, and changes when one row changes
    assert again.ledger_state == st.ledger_state
    rollup(cfg, start, start + 86400, now_s=end + 3600)  # a re-run on the same readings
    db = open_ledger(cfg)
    try:
        assert compute(cfg, db, customer_of(cfg, "kilo"), "2026-10").ledger_state == \
            st.ledger_state
        late = at(zone, 2026, 10, 3, 9, 0, 20)  # a late reading: k1 drew 2.3 kW in that quarter
        write(ledger_db, rig("k1", late, 2600.0, customer="kilo", rack="A"))
        rollup(cfg, late // 86400 * 86400 - 86400, late // 86400 * 86400 + 86400,
               now_s=end + 3600)
        changed = compute(cfg, db, customer_of(cfg, "kilo"), "2026-10")
    finally:
        db.close()
    assert changed.ledger_state != st.ledger_state
    # the 09:00 quarter's readings are 09:00:20 (2600 W) and 09:07:30 (2000 W): time-weighted,
    # 2600 W stands for 09:00-09:03:55 (235 s, the first reading reaches back to the quarter's
    # start; the cut is midway between the two), so +600 W x 235 s = 0.039167 kWh
    assert {x.rig: x.kwh for x in changed.rigs}["k1"] == Decimal("1486.039")


# By hand: October 2026 has 22 weekdays, 12 peak hours each = 264 h; 114 of them before the
# change (1, 2, 5-9, 12, 13 October and 08:00-14:00 on the 14th) at 0.30, 150 after at 0.36.
# k1 (2 kW, 743 h): peak 2 x (114 x 0.30 + 150 x 0.36) = 176.40; off-peak 479 h, 210 of them
# before the change (326 h to 14 Oct 14:00 - 114 peak - 2 offline): 2 x (210 x 0.12 + 269 x
# 0.15) = 131.10; 307.50 x 1.125 = 345.9375 -> 345.94.
# m2 from 14 Oct 12:00 (3 kW, 421 h): peak 2 h at 0.30 and 150 h at 0.36 = 163.80, off-peak
# 269 h at 0.15 = 121.05; 284.85 x 1.125 = 320.45625 -> 320.46.
K1_TARIFF_COST = Decimal("307.500")
M2_TARIFF_COST = Decimal("284.8500")
K1_ENERGY = Decimal("345.94")
M2_ENERGY = Decimal("320.46")
