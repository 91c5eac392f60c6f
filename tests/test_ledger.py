"""The energy ledger and the monthly reports against a real influxd.

Every expected number here is computed independently of hashwatt's tariff and ledger code:
`ref_price` below re-reads each tariff's definition with zoneinfo (the site's wall clock) and
the sums are done in decimal, quarter hour by quarter hour. Readings go in through the
bridge's own encoders (rig_points, pdu_points), as the bridge would write them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
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
from exporters.finance.ledger import LedgerRow, ledger_rows, recent_range, rollup
from exporters.finance.report import apportion, last_month, month_bounds
from exporters.lineproto import Point
from hashwatt.config import Config, ConfigError, load_config
from hashwatt.contract import OutletReading, PduReading, RigReading
from hashwatt.influxql import InfluxQL
from tests.ledger_seed import report, write_points

pytestmark = pytest.mark.e2e
Q = 900
CENT, MILLI = Decimal("0.01"), Decimal("0.001")

# ---------------------------------------------------------------- the independent reference

Window = tuple[str, Decimal, set[int], tuple[int, int], tuple[int, int], set[int]]
Period = tuple[dt.datetime, Decimal, str, list[Window]]


def ref_price(ts: int, zone: ZoneInfo, periods: list[Period]) -> tuple[Decimal, str]:
    """The tariff as its definition reads: the period whose local start has passed, the first
    window whose weekday, month and wall-clock span hold the local time, else the base rate."""
    local = dt.datetime.fromtimestamp(ts, zone)
    chosen = None
    for period in periods:
        if local >= period[0].replace(tzinfo=zone):
            chosen = period
    assert chosen is not None
    for name, rate, days, start, end, months in chosen[3]:
        if (local.weekday() in days and local.month in months
                and start <= (local.hour, local.minute) < end):
            return rate, name
    return chosen[1], chosen[2]


def ref_cost(quarters: dict[int, Decimal], zone: ZoneInfo,
             periods: list[Period]) -> tuple[Decimal, dict[str, Decimal]]:
    """Exact cost of kWh per quarter start, and cost per window name."""
    per: dict[str, Decimal] = defaultdict(Decimal)
    for q, kwh in quarters.items():
        rate, name = ref_price(q, zone, periods)
        per[name] += kwh * rate
    return sum(per.values(), Decimal(0)), dict(per)


def constant(start: int, end: int, watts: int) -> dict[int, Decimal]:
    """kWh per quarter of a constant draw: W x 0.25 h / 1000."""
    return {q: Decimal(watts) / 4000 for q in range(start, end, Q)}


ALL_DAYS, ALL_MONTHS = set(range(7)), set(range(1, 13))

# ---------------------------------------------------------------------------- fixtures




def make_config(db: InfluxQL, tmp: Path, zone: str, tariff: str, currency: str = "EUR",
                extra: str = "") -> Config:
    path = tmp / f"ledger-{uuid.uuid4().hex[:6]}.toml"
    url = db.client.base_url
    path.write_text(f'[site]\nname = "north"\ntimezone = "{zone}"\ncurrency = "{currency}"\n'
                    f'[influxdb]\nurl = "{str(url).rstrip("/")}"\ndatabase = "{db.database}"\n'
                    f'{extra}\n{tariff}')
    return load_config(path)


def at(zone: ZoneInfo, *args: int) -> int:
    return int(dt.datetime(*args, tzinfo=zone).timestamp())


def rig(rig_id: str, ts: float, watts: float | None, customer: str = "acme", rack: str = "R01",
        source: str | None = "miner", online: bool = True) -> list[Point]:
    return rig_points(RigReading(
        ts_ms=int(ts * 1000), site="north", rig=rig_id, collector="c1", rack=rack,
        customer=customer, online=online, hashrate_ths=100.0 if online else None,
        power_w=watts, power_source=source if watts is not None else None))  # type: ignore[arg-type]


def outlet(ts: float, energy: float, watts: float, rig_id: str | None = "r1",
           customer: str = "acme", outlet_no: int = 3, reset: bool = False,
           pdu: str = "pdu-r01") -> list[Point]:
    o = OutletReading(outlet=outlet_no, power_w=watts, energy_kwh=energy, energy_reset=reset,
                      rig=rig_id, customer=customer)
    return pdu_points(PduReading(ts_ms=int(ts * 1000), site="north", pdu=pdu, collector="c1",
                                 rack="R01", online=True, outlets=[o]))


def write(db: InfluxQL, points: list[Point]) -> None:
    write_points(db, points)


def clear_of_the_hour_end(zone: ZoneInfo, margin_s: float = 120.0) -> dt.datetime:
    """Now, at least `margin_s` before the local hour ends: a test that asserts "the current
    hour is not billed" must not have the hour close under it (CI failed once at 09:59:5x)."""
    import time

    now = dt.datetime.now(zone)
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < margin_s:
        time.sleep(left + 1)
        now = dt.datetime.now(zone)
    return now


def rows_of(cfg: Config, start: int, end: int) -> list[LedgerRow]:
    return ledger_rows(cfg, dt.datetime.fromtimestamp(start, dt.UTC),
                       dt.datetime.fromtimestamp(end, dt.UTC))


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def per(rows: list[LedgerRow], key: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        out[getattr(r, key)] += Decimal(repr(r.kwh))
    return {k: v.quantize(Decimal("0.000001")) for k, v in out.items()}


def cost_of(rows: list[LedgerRow]) -> Decimal:
    """The rows' cost, their float noise (~1e-15 a row) dropped at 1e-9 as the report does."""
    return sum((Decimal(repr(r.cost)) for r in rows), Decimal(0)).quantize(Decimal("1e-9"))


def assert_report_adds_up(r: Any) -> None:
    for column in ("kwh", "kwh_measured", "kwh_estimated", "cost",
                   *(f"{k}_{w}" for w in r.windows for k in ("kwh", "cost"))):
        assert sum(row[column] for row in r.rows) == r.total[column], column
    for row in [*r.rows, r.total]:
        assert row["kwh_measured"] + row["kwh_estimated"] == row["kwh"]
        assert sum(row[f"kwh_{w}"] for w in r.windows) == row["kwh"]
        assert sum(row[f"cost_{w}"] for w in r.windows) == row["cost"]


# -------------------------------------------------------- DST months and odd UTC offsets

BERLIN_TOU = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.1213
name = "off-peak"
[[tariff.periods.windows]]
name = "peak"
rate = 0.3127
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "17:00"
end = "20:30"
[[tariff.periods]]
from = "2026-10-14T14:00"
rate = 0.1517
name = "off-peak"
[[tariff.periods.windows]]
name = "peak"
rate = 0.3719
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "17:00"
end = "20:30"
"""
WEEKDAYS = {0, 1, 2, 3, 4}
BERLIN_PERIODS: list[Period] = [
    (dt.datetime(2026, 1, 1), Decimal("0.1213"), "off-peak",
     [("peak", Decimal("0.3127"), WEEKDAYS, (17, 0), (20, 30), ALL_MONTHS)]),
    (dt.datetime(2026, 10, 14, 14, 0), Decimal("0.1517"), "off-peak",
     [("peak", Decimal("0.3719"), WEEKDAYS, (17, 0), (20, 30), ALL_MONTHS)])]


def test_berlin_october_with_dst_a_tariff_change_at_14_00_and_customer_moves(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Three rigs on miner power for the 745-hour October 2026 in Berlin. r1 moves from zeta
    to acme and r2 from acme to zeta on 10 October at 14:00 (both directions, names sorting
    either way); r3 moves from rack R01 to R02 on the 20th at 09:15. One reading per quarter,
    each in the middle of it; the readings outside the month draw 9 kW so a shifted month
    boundary would show."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", BERLIN_TOU)
    start, end = at(zone, 2026, 10, 1), at(zone, 2026, 11, 1)
    assert (end - start) // 3600 == 745
    move, rack_move = at(zone, 2026, 10, 10, 14), at(zone, 2026, 10, 20, 9, 15)
    points: list[Point] = []
    for q in range(start - 2 * 3600, end + 2 * 3600, Q):
        inside = start <= q < end
        t = q + 450
        points += rig("r1", t, 2000 if inside else 9000, "zeta" if q < move else "acme")
        points += rig("r2", t, 3000 if inside else 9000, "acme" if q < move else "zeta")
        points += rig("r3", t, 1000 if inside else 9000, "zeta", "R01" if q < rack_move else "R02")
    write(ledger_db, points)
    rollup(cfg, start - 3600, end + 3600)
    before, after = (move - start) // Q, (end - move) // Q  # quarters held before/after
    expected_kwh = {  # W / 4000 kWh a quarter
        "acme": Decimal("0.5") * after + Decimal("0.75") * before,
        "zeta": Decimal("0.5") * before + Decimal("0.75") * after
        + Decimal("0.25") * (before + after)}
    cost_acme = (ref_cost(constant(move, end, 2000), zone, BERLIN_PERIODS)[0]
                 + ref_cost(constant(start, move, 3000), zone, BERLIN_PERIODS)[0])
    cost_zeta = (ref_cost(constant(start, move, 2000), zone, BERLIN_PERIODS)[0]
                 + ref_cost(constant(move, end, 3000), zone, BERLIN_PERIODS)[0]
                 + ref_cost(constant(start, end, 1000), zone, BERLIN_PERIODS)[0])
    r = report(cfg, "2026-10")
    assert r.hours == 745
    got = {row["customer"]: (row["kwh"], row["cost"]) for row in r.rows}
    assert got == {"acme": (expected_kwh["acme"].quantize(MILLI), money(cost_acme)),
                   "zeta": (expected_kwh["zeta"].quantize(MILLI), money(cost_zeta))}
    assert r.total["cost"] == money(cost_acme + cost_zeta)
    assert_report_adds_up(r)
    # the peak split, from the definition: weekday 17:00-20:30 quarters of the month
    _, windows = ref_cost(constant(start, end, 6000), zone, BERLIN_PERIODS)
    assert r.total["cost_peak"] + r.total["cost_off-peak"] == money(sum(windows.values()))
    assert abs(r.total["cost_peak"] - money(windows["peak"])) <= CENT
    by_rack = {row["rack"]: row["kwh"] for row in report(cfg, "2026-10", "rack").rows}
    r3_r02 = Decimal(1000) / 4000 * ((end - rack_move) // Q)
    assert by_rack["R02"] == r3_r02.quantize(MILLI)
    assert by_rack["R01"] == (Decimal(5000) / 4000 * ((end - start) // Q) + Decimal(1000) / 4000
                              * ((rack_move - start) // Q)).quantize(MILLI)
    coverage = {row["customer"]: row["coverage"] for row in r.rows}
    assert coverage == {"acme": Decimal(1), "zeta": Decimal(1)}


NY_TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.0925
name = "off-peak"
[[tariff.periods.windows]]
name = "winter peak"
rate = 0.2175
start = "07:00"
end = "11:00"
months = [11, 12, 1, 2, 3]
[[tariff.periods.windows]]
name = "summer peak"
rate = 0.2950
start = "14:00"
end = "19:00"
months = [4, 5, 6, 7, 8, 9, 10]
"""
NY_PERIODS: list[Period] = [
    (dt.datetime(2026, 1, 1), Decimal("0.0925"), "off-peak",
     [("winter peak", Decimal("0.2175"), ALL_DAYS, (7, 0), (11, 0), {11, 12, 1, 2, 3}),
      ("summer peak", Decimal("0.2950"), ALL_DAYS, (14, 0), (19, 0), {4, 5, 6, 7, 8, 9, 10})])]


def test_new_york_march_has_743_hours_and_the_season_changes_on_1_april(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """A counter-metered rig at 3.3 kW (one read in the middle of each quarter) through
    March 2026 (DST starts on the 8th) and the first day of April, when the winter peak
    gives way to the summer peak."""
    zone = ZoneInfo("America/New_York")
    cfg = make_config(ledger_db, tmp_path, "America/New_York", NY_TARIFF, "USD")
    start, april, end = at(zone, 2026, 3, 1), at(zone, 2026, 4, 1), at(zone, 2026, 4, 2)
    first = start - 3600
    points = []
    for q in range(first, end + 3600, Q):
        t = q + 450
        points += outlet(t, 100 + 3.3 * (t - first) / 3600, 3300.0)
        points += rig("r1", t, 3300.0, source="pdu")
    write(ledger_db, points)
    rollup(cfg, start, end)
    r = report(cfg, "2026-03")
    assert r.hours == 743
    march_cost, march_windows = ref_cost(constant(start, april, 3300), zone, NY_PERIODS)
    [row] = r.rows
    assert (row["kwh"], row["kwh_measured"], row["cost"]) == (
        Decimal("2451.900"), Decimal("2451.900"), money(march_cost))  # 743 h x 3.3 kW
    assert row["cost_winter peak"] == money(march_windows["winter peak"])
    april_rows = rows_of(cfg, april, end)
    april_cost, april_windows = ref_cost(constant(april, end, 3300), zone, NY_PERIODS)
    assert money(cost_of(april_rows)) == money(april_cost)
    assert {r.window for r in april_rows} == {"summer peak", "off-peak"}
    assert money(sum((Decimal(repr(r.cost)) for r in april_rows if r.window == "summer peak"),
                     Decimal(0))) == money(april_windows["summer peak"])
    assert_report_adds_up(r)


@pytest.mark.parametrize(("zone_name", "offset"), [("Asia/Kolkata", (5, 30)),
                                                   ("Asia/Kathmandu", (5, 45))])
def test_half_and_quarter_hour_zones_bill_local_months_and_local_windows(
        ledger_db: InfluxQL, tmp_path: Path, zone_name: str, offset: tuple[int, int]) -> None:
    """October 2026 in a +05:30 and a +05:45 zone: 1.2 kW inside the month and 9 kW outside
    it, a peak window from 18:15 to 21:45 local. The month starts at 18:30 (18:15) UTC on
    30 September; a ledger on UTC hours would be off by 30 (45) minutes at both ends. One
    reading in the middle of each quarter: a reading stands for the time nearer to it than to
    its neighbours, so the step from 9 to 1.2 kW falls exactly on the month's edge."""
    zone = ZoneInfo(zone_name)
    tariff = ('[[tariff.periods]]\nfrom = 2026-01-01\nrate = 7.25\nname = "normal"\n'
              '[[tariff.periods.windows]]\nname = "peak"\nrate = 11.5\nstart = "18:15"\n'
              'end = "21:45"\n')
    periods: list[Period] = [(dt.datetime(2026, 1, 1), Decimal("7.25"), "normal",
                              [("peak", Decimal("11.5"), ALL_DAYS, (18, 15), (21, 45),
                                ALL_MONTHS)])]
    cfg = make_config(ledger_db, tmp_path, zone_name, tariff, "INR")
    start, end = at(zone, 2026, 10, 1), at(zone, 2026, 11, 1)
    assert dt.datetime.fromtimestamp(start, dt.UTC).time() == dt.time(
        24 - offset[0] - 1, 60 - offset[1])
    points = []
    for q in range(start - 3 * 3600, end + 3 * 3600, Q):
        points += rig("r1", q + 450, 1200 if start <= q < end else 9000, source="nominal")
    write(ledger_db, points)
    rollup(cfg, start - 3 * 3600, end + 3 * 3600)
    cost, windows = ref_cost(constant(start, end, 1200), zone, periods)
    [row] = report(cfg, "2026-10").rows
    assert (row["kwh"], row["kwh_estimated"], row["cost"]) == (
        Decimal("892.800"), Decimal("892.800"), money(cost))  # 744 h x 1.2 kW
    assert (row["cost_peak"], row["cost_normal"]) == (money(windows["peak"]),
                                                      money(windows["normal"]))
    # the first local hour of the month is four quarter rows starting at local midnight
    first_rows = rows_of(cfg, start, start + 3600)
    assert [r.time.timestamp() for r in first_rows] == [start + i * Q for i in range(4)]


# ------------------------------------------------- counters: moves, outages, resets, gaps


def test_a_counter_metered_rig_moving_customer_is_billed_its_own_energy_once(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """The bug this ledger fixes: rig r1 on a PDU counter moves from customer "alpha" to
    "omega" and rig r2 from "omega" to "alpha" at 14:00 on day 2 of 3; each customer gets
    exactly the counter growth of the quarters it held the rig (2.0 and 4.0 kW)."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n')
    start, move, end = at(zone, 2026, 10, 5), at(zone, 2026, 10, 6, 14), at(zone, 2026, 10, 8)
    points = []
    for q in range(start - 3600, end + 3600, Q):
        t = q + 7 * 60  # reads at :07, :22, :37, :52
        for rid, no, watts, before, after in (("r1", 1, 2000, "alpha", "omega"),
                                              ("r2", 2, 4000, "omega", "alpha")):
            cust = before if q < move else after
            points += outlet(t, 10 + watts / 1000 * (t - start) / 3600, watts, rid, cust, no)
            points += rig(rid, t, watts * 0.9, cust)  # the miner's own figure is lower
    write(ledger_db, points)
    rollup(cfg, start, end)
    got = per(rows_of(cfg, start, end), "customer")
    held_before, held_after = (move - start) // Q, (end - move) // Q
    assert got == {"alpha": (Decimal("0.5") * held_before + Decimal(1) * held_after)
                   .quantize(Decimal("0.000001")),
                   "omega": (Decimal(1) * held_before + Decimal("0.5") * held_after)
                   .quantize(Decimal("0.000001"))}
    assert {r.source for r in rows_of(cfg, start, end)} == {"pdu_energy"}


PEAK_TARIFF = ('[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.10\nname = "off-peak"\n'
               '[[tariff.periods.windows]]\nname = "peak"\nrate = 0.40\nstart = "17:30"\n'
               'end = "21:00"\n')
PEAK_PERIODS: list[Period] = [(dt.datetime(2026, 1, 1), Decimal("0.10"), "off-peak",
                               [("peak", Decimal("0.40"), ALL_DAYS, (17, 30), (21, 0),
                                 ALL_MONTHS)])]


def test_a_pdu_outage_across_the_peak_edge_with_the_in_service_rollup_running(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """A rig drawing 3.3 kW at the wall (its miner says 3.0 kW) loses its PDU from 14:52 to
    19:07, longer than the 3 hours the in-service rollup rewrites: the collector falls back
    to the miner's figure. The in-service rollup (the last 3 closed hours, every 30 minutes
    here) runs all along. Once the PDU is back, the counter's jump is spread over the
    quarters of the whole gap (the rollup reaches back to its start) and priced in each,
    off-peak and peak; the miner-power rows written during the outage are replaced, never
    added."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", PEAK_TARIFF)
    day = at(zone, 2026, 10, 6)
    lost, back = at(zone, 2026, 10, 6, 14, 52), at(zone, 2026, 10, 6, 19, 7)

    def readings(until: int) -> list[Point]:
        out = []
        for t in range(day - 3600 + 120, until, 300):  # every 5 minutes, at :02, :07, ...
            down = lost < t < back
            out += rig("r1", t, 3000.0 if down else 3300.0, source="miner" if down else "pdu")
            if not down:
                out += outlet(t, 50 + 3.3 * (t - day) / 3600, 3300.0)
        return out

    written = 0
    for now in range(day + 12 * 3600, day + 24 * 3600 + 1, 2 * Q):
        new = [p for p in readings(now) if p.ts_ms > written]
        write(ledger_db, new)
        written = max([written, *(p.ts_ms for p in new)])
        rollup(cfg, *recent_range(cfg, 3, now_s=now), now_s=now)
    rows = rows_of(cfg, day + 9 * 3600, day + 24 * 3600)
    expected_cost, _ = ref_cost(constant(day + 9 * 3600, day + 24 * 3600, 3300), zone,
                                PEAK_PERIODS)
    assert per(rows, "rig") == {"r1": Decimal("49.500000")}  # 15 h x 3.3 kW, counted once
    assert money(cost_of(rows)) == money(expected_cost)
    assert {r.source for r in rows} == {"pdu_energy"}
    assert len(rows) == 15 * 4


@pytest.mark.parametrize("flagged", [True, False])
def test_a_counter_reset_mid_quarter_keeps_the_energy_on_both_sides(
        ledger_db: InfluxQL, tmp_path: Path, flagged: bool) -> None:
    """Reads every 5 minutes at 2 kW; the counter is reset at 10:25 and the 10:27:30 read
    shows 0.0833 kWh (flagged energy_reset by the collector, or not: a collector restarted
    in between cannot know; the read is lower than the one before it): the energy before the
    reset in that quarter (10:15-10:22:30) is kept, and only the 2.5 minutes between the
    last read and the reset itself are unknowable."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.25\n')
    hour = at(zone, 2026, 10, 6, 10)
    reset_at = hour + 25 * 60
    points = []
    for t in range(hour - 3600 + 150, hour + 2 * 3600, 300):
        if t < reset_at:
            points += outlet(t, 500 + 2 * (t - hour) / 3600, 2000.0)
        else:
            points += outlet(t, 2 * (t - reset_at) / 3600, 2000.0,
                             reset=flagged and t - 300 < reset_at)
    write(ledger_db, points)
    rollup(cfg, hour, hour + 3600)
    rows = rows_of(cfg, hour, hour + 3600)
    # 2 kW for an hour is 2 kWh, less the 150 s between the 10:22:30 read and the reset
    lost = Decimal(2) * 150 / 3600
    kwh = {r.time.timestamp(): Decimal(repr(r.kwh)) for r in rows}
    assert sum(kwh.values(), Decimal(0)).quantize(Decimal("0.000001")) == (
        Decimal(2) - lost).quantize(Decimal("0.000001"))
    # the quarter of the reset holds the whole 10:22:30-10:27:30 interval: it loses all of it
    assert kwh[hour + Q].quantize(Decimal("0.000001")) == (
        Decimal("0.5") - lost).quantize(Decimal("0.000001"))


def test_a_newly_mapped_rig_keeps_its_first_quarter_and_an_added_rig_is_fully_covered(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """r7 appears on 20 October at 12:00 (miner power, 2.4 kW, reads every 5 minutes) and
    its outlet mapping starts at 12:07: the first quarter is 8 minutes of counter and 7 of
    the outlet's power reading (both measured), and no energy is lost. Its coverage in the
    month is 100 %: it did not exist before."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n')
    added, end = at(zone, 2026, 10, 20, 12), at(zone, 2026, 10, 22)
    mapped = added + 7 * 60
    points = []
    for t in range(added, end + 600, 300):
        points += rig("r7", t, 2400.0, "acme")
    for t in range(mapped, end + 600, 300):
        points += outlet(t, 3 + 2.4 * (t - mapped) / 3600, 2400.0, "r7")
    write(ledger_db, points)
    rollup(cfg, at(zone, 2026, 10, 1), end)
    rows = rows_of(cfg, added, end)
    first = rows[0]
    assert first.time.timestamp() == added and first.kwh == pytest.approx(0.6, abs=1e-9)
    assert (round(first.kwh_measured, 9), first.source) == (0.6, "pdu_energy")
    [row] = report(cfg, "2026-10").rows
    assert row["kwh"] == Decimal("86.400") and row["coverage"] == Decimal(1)  # 36 h x 2.4 kW


def test_coverage_counts_the_quarters_a_rig_existed_in_the_month(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """r8 (still in the inventory) reports from 20 October 12:00 for 36 hours, then nothing:
    it existed until the month's end, so its coverage is 144 quarters of the 1,108 from
    20 October 12:00 to 1 November 00:00 (277 hours: 25 October has 25). r9 was there before
    the month (a row on 30 September) and reports only the first 24 hours of October:
    it existed from the month's start until its last row."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n',
                      extra='[[rigs]]\nid = "r8"\naddress = "127.0.0.8"\n')
    added, month = at(zone, 2026, 10, 20, 12), at(zone, 2026, 10, 1)
    write(ledger_db, [p for t in range(added, added + 36 * 3600, 300)
                      for p in rig("r8", t, 1000.0)]
          + rig("r9", month - 6 * 3600, 500.0)
          + [p for t in range(month + 3600, month + 25 * 3600, 300)
             for p in rig("r9", t, 500.0)])
    rollup(cfg, month - 86400, at(zone, 2026, 11, 1))
    coverage = {row["rig"]: row["coverage"] for row in report(cfg, "2026-10", "rig").rows}
    # r9: 96 quarters with readings (01:00 .. 00:45 next day) of 100 (00:00 .. 00:45)
    assert coverage == {"r8": (Decimal(144) / 1108).quantize(Decimal("0.0001")),
                        "r9": Decimal("0.9600")}


def test_an_offline_nominal_rig_draws_nothing_while_it_says_it_is_offline(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """A rig without a meter or a power figure of its own (nominal 3250 W) reports itself
    offline from 02:00 to 04:35 (its 04:40 reading is online): those quarters bill 0 kWh; in
    the 04:30 quarter the offline 04:30 and 04:35 readings stand for 04:30-04:37:30 and the
    online 04:40 one for 04:37:30-04:45 (each reading for the part of its quarter nearest
    it): half of it, 0.40625 kWh."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n')
    day = at(zone, 2026, 10, 7)
    off = (day + 2 * 3600, day + 4 * 3600 + 40 * 60)
    points = []
    for t in range(day, day + 6 * 3600, 300):  # every 5 minutes, on the minute
        down = off[0] <= t < off[1]
        points += rig("r5", t, None if down else 3250.0, source="nominal", online=not down)
    write(ledger_db, points)
    rollup(cfg, day, day + 6 * 3600)
    rows = rows_of(cfg, day, day + 6 * 3600)
    # 6 h minus 2 h 37.5 min offline (02:00-04:37:30) = 3 h 22.5 min at 3.25 kW
    assert per(rows, "rig") == {"r5": (Decimal("3.25") * Decimal("202.5") / 60).quantize(
        Decimal("0.000001"))}
    assert {r.source for r in rows if off[0] <= r.time.timestamp() < off[0] + 2 * 3600} == {
        "offline"}


def test_late_data_and_a_rerun_replace_every_row_whatever_wrote_it(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """First run: only the PDU outlet is known (customer "zeta" from the outlet mapping,
    1.5 kW). Late rig readings arrive saying the inventory held the rig for "acme" and the
    counter's missing hour arrives too: the re-run bills everything to acme, once; the old
    rows are voided, not left beside the new ones."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.3\n')
    day = at(zone, 2026, 10, 8)
    counter = [outlet(t, 7 + 1.5 * (t - day) / 3600, 1500.0, "r1", "zeta")
               for t in range(day - 3600 + 60, day + 5 * 3600, 300)]
    write(ledger_db, [p for i, pts in enumerate(counter) for p in pts if not 12 <= i < 36])
    rollup(cfg, day, day + 4 * 3600)
    assert set(per(rows_of(cfg, day, day + 4 * 3600), "customer")) == {"zeta"}
    write(ledger_db, [p for pts in counter for p in pts]
          + [p for t in range(day - 3600 + 60, day + 5 * 3600, 300)
             for p in rig("r1", t, 1400.0, "acme")])
    rollup(cfg, day, day + 4 * 3600)
    rows = rows_of(cfg, day, day + 4 * 3600)
    assert per(rows, "customer") == {"acme": Decimal("6.000000")}  # 4 h x 1.5 kW
    assert len(rows) == 16 and money(cost_of(rows)) == Decimal("1.80")
    first = rows
    rollup(cfg, day, day + 4 * 3600)
    assert rows_of(cfg, day, day + 4 * 3600) == first
    cfg_r = report(cfg, "2026-10")
    assert [(r["customer"], r["kwh"], r["cost"]) for r in cfg_r.rows] == [
        ("acme", Decimal("6.000"), Decimal("1.80"))]


def test_unfinished_hours_are_never_billed(ledger_db: InfluxQL, tmp_path: Path) -> None:
    zone = ZoneInfo("Asia/Kolkata")
    cfg = make_config(ledger_db, tmp_path, "Asia/Kolkata",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 8\n', "INR")
    hour = at(zone, 2026, 10, 9, 10)
    write(ledger_db, [p for t in range(hour - 3600, hour + 3000, 60)
                      for p in rig("r1", t, 1000.0)])
    rollup(cfg, hour - 3600, hour + 3600, now_s=hour + 50 * 60)  # 10:50 local, still open
    rows = rows_of(cfg, hour - 3600, hour + 3600)
    assert [r.time.timestamp() for r in rows] == [hour - 3600 + i * Q for i in range(4)]


# ---------------------------------------------------------------------- reports


def test_the_report_command_csv_sidecar_xlsx_and_json_as_finance_opens_them(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin", PEAK_TARIFF)
    day = at(zone, 2026, 10, 6, 16)
    fleet = [("a", "acme", 1000.0), ("b", "blockfarm", 2000.0), ("c", "acme", 1234.5)]
    write(ledger_db, [p for t in range(day, day + 4 * 3600, 450) for rid, cust, w in fleet
                      for p in rig(rid, t, w, cust)])
    rollup(cfg, day, day + 4 * 3600)
    out = tmp_path / "october.csv"
    cmd = [sys.executable, "-m", "hashwatt.cli", "report", "energy", str(cfg.source),
           "--month", "2026-10", "--by", "customer"]
    run = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True,
                         check=True)
    lines = list(csv.DictReader(io.StringIO(out.read_text())))
    # acme: 2234.5 W for 4 h = 8.938 kWh, of it 17:30-20:00 at 0.40 (2.5 h), the rest 0.10
    assert lines == [
        {"site": "north", "month": "2026-10", "currency": "EUR", "customer": "acme",
         "kwh": "8.938", "kwh_measured": "0.000", "kwh_estimated": "8.938", "cost": "2.57",
         "kwh_off-peak": "3.352", "cost_off-peak": "0.34", "kwh_peak": "5.586",
         "cost_peak": "2.23", "coverage": "1.0000", "rigs": "2"},
        {"site": "north", "month": "2026-10", "currency": "EUR", "customer": "blockfarm",
         "kwh": "8.000", "kwh_measured": "0.000", "kwh_estimated": "8.000", "cost": "2.30",
         "kwh_off-peak": "3.000", "cost_off-peak": "0.30", "kwh_peak": "5.000",
         "cost_peak": "2.00", "coverage": "1.0000", "rigs": "1"}]
    assert "#" not in out.read_text()
    notes = (tmp_path / "october.csv.method.txt").read_text()
    assert "Total: kwh 16.938" in notes and "peak: 0.4 EUR/kWh, 17:30-21:00" in notes
    assert "method and totals" in run.stderr
    stdout = subprocess.run([*cmd, "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    data = json.loads(stdout)
    assert data["total"]["cost"] == "4.87" and data["rows"][0]["kwh"] == "8.938"
    xlsx = tmp_path / "october.xlsx"
    subprocess.run([*cmd, "--format", "xlsx", "--output", str(xlsx)], check=True)
    from openpyxl import load_workbook

    book = load_workbook(xlsx)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[:8] == ["site", "month", "currency", "customer", "kwh", "kwh_measured",
                          "kwh_estimated", "cost"]
    assert sheet.freeze_panes == "A2"
    total = [c.value for c in sheet[4]]
    assert total[3] == "TOTAL" and total[4] == "=SUM(E2:E3)" and total[7] == "=SUM(H2:H3)"
    assert sheet["H2"].number_format == '#,##0.00 "EUR"'
    assert sheet["E2"].number_format == "#,##0.000"
    assert sheet.column_dimensions["E"].width >= 12
    assert book.sheetnames[1] == "Method"
    assert any("17:30-21:00" in str(c.value) for c in book["Method"]["A"])


def test_an_empty_month_warns_and_fails_and_the_month_defaults_to_last_month(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    cfg = make_config(ledger_db, tmp_path, "Asia/Kathmandu",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 9\n', "NPR")
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "report", "energy",
                          str(cfg.source)], capture_output=True, text=True)
    assert run.returncode == 3 and run.stdout == ""
    assert "no ledger rows for site north in" in run.stderr
    # 18:20 UTC on 31 October is already 1 November in Kathmandu (+05:45)
    now = dt.datetime(2026, 10, 31, 18, 20, tzinfo=dt.UTC)
    assert last_month("Asia/Kathmandu", now) == "2026-10"
    assert last_month("Europe/Berlin", now) == "2026-09"


def test_rounding_keeps_rows_totals_and_measured_plus_estimated_exact() -> None:
    # three rows whose plain rounding would not add up: 0.3335 x 3 = 1.0005 -> 1.001
    rows = apportion([Decimal("0.3335")] * 3, MILLI)
    assert sum(rows) == Decimal("1.001") and sorted(rows) == [
        Decimal("0.333"), Decimal("0.334"), Decimal("0.334")]
    # a row total given: the parts add up to it
    assert sum(apportion([Decimal("0.0004"), Decimal("0.0004")], MILLI, Decimal("0.001"))) == \
        Decimal("0.001")


def test_no_query_spans_more_than_72_hours_and_the_ledger_can_live_in_its_own_database(
        ledger_db: InfluxQL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """InfluxDB 3 Core: no retention policies and queries of at most 72 hours. A week of
    readings rolled up and reported with the ledger in a database of its own."""
    import re

    ledger_name = f"{ledger_db.database}_ledger"
    InfluxQL(str(ledger_db.client.base_url).rstrip("/"), ledger_name).create_database()
    zone = ZoneInfo("UTC")
    cfg = make_config(ledger_db, tmp_path, "UTC",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.1\n',
                      extra=f'ledger_database = "{ledger_name}"')
    start, end = at(zone, 2026, 10, 1), at(zone, 2026, 10, 8)
    write(ledger_db, [p for t in range(start, end + 1800, 1800) for p in rig("r1", t, 1000.0)])
    spans: list[int] = []
    original = InfluxQL.execute

    def recording(self: InfluxQL, statement: str) -> list[dict[str, Any]]:
        times = [int(x) for x in re.findall(r"time [<>]=? (\d+)ms", statement)]
        if statement.startswith("SELECT"):
            assert len(times) == 2, statement
            spans.append(times[1] - times[0])
        return original(self, statement)

    monkeypatch.setattr(InfluxQL, "execute", recording)
    rollup(cfg, start, end)
    r = report(cfg, "2026-10")
    assert spans and max(spans) <= 72 * 3600 * 1000
    # 7 days x 24 h x 1 kW; every other quarter filled from the reading before it
    assert (r.rows[0]["kwh"], r.rows[0]["coverage"]) == (Decimal("168.000"), Decimal("0.5"))


def test_tariff_changes_at_a_local_time_and_rejects_one_off_the_quarter(tmp_path: Path) -> None:
    from hashwatt.tariff import Tariff, TariffConfig

    tariff = Tariff(TariffConfig.model_validate({"periods": [
        {"from": "2026-01-01", "rate": 0.1},
        {"from": "2026-10-14T14:00", "rate": 0.2}]}), "Asia/Kathmandu")
    edge = at(ZoneInfo("Asia/Kathmandu"), 2026, 10, 14, 14)
    assert [tariff.rate_at(edge - 1), tariff.rate_at(edge)] == [0.1, 0.2]
    path = tmp_path / "t.toml"
    path.write_text('[site]\nname = "n"\n[[tariff.periods]]\nfrom = 2026-01-01T14:10:00\n'
                    'rate = 0.1\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    [problem] = err.value.problems
    assert problem.startswith(str(path)) and problem.endswith(
        " tariff.periods[0]: from = 2026-01-01T14:10:00: changes fall on quarter hours "
        "(:00, :15, :30, :45)")


def test_month_bounds_are_local_midnights() -> None:
    start, end = month_bounds("2026-10", "Asia/Kathmandu")
    assert start.astimezone(dt.UTC) == dt.datetime(2026, 9, 30, 18, 15, tzinfo=dt.UTC)
    assert (end - start) == dt.timedelta(days=31)


def test_ledger_rows_go_through_the_v2_write_path_to_a_real_v2_server(
        ledger_db: InfluxQL, tmp_path: Path, victoria: Any) -> None:
    """The ledger's rows for a v2 config go to its ledger bucket through /api/v2/write
    (victoria-metrics stores each numeric field as <measurement>_<field>)."""
    import os
    import urllib.parse
    import urllib.request

    from exporters.finance.ledger import compute
    from exporters.sinks import make_sink

    zone = ZoneInfo("Asia/Kolkata")
    cfg = make_config(ledger_db, tmp_path, "Asia/Kolkata",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 8.5\n', "INR")
    # victoria-metrics keeps one month by default: a local hour of two days ago
    now = dt.datetime.now(zone) - dt.timedelta(days=2)
    hour = int(now.replace(minute=0, second=0, microsecond=0).timestamp())
    write(ledger_db, [p for t in range(hour - 900, hour + 4500, 300)
                      for p in rig("r1", t, 1600.0)])
    _, points = compute(cfg, ledger_db, hour, hour + 3600)
    os.environ["HASHWATT_TEST_TOKEN"] = "not-checked-by-victoria-metrics"
    path = tmp_path / "v2.toml"
    path.write_text('[site]\nname = "north"\ntimezone = "Asia/Kolkata"\n[influxdb]\napi = "v2"\n'
                    f'url = "{victoria.url}"\norg = "farm"\nbucket = "raw"\n'
                    'ledger_bucket = "ledger"\ntoken = { env = "HASHWATT_TEST_TOKEN" }\n')
    sink = make_sink(load_config(path), ledger=True)
    sink.write(points)
    sink.close()
    urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=10).read()
    query = urllib.parse.urlencode({"match[]": '{__name__="energy_quarter_cost",rig="r1"}'})
    with urllib.request.urlopen(f"{victoria.url}/api/v1/export?{query}", timeout=10) as resp:
        [stored] = [json.loads(line) for line in resp.read().decode().splitlines()]
    # 1.6 kW x 15 min = 0.4 kWh x 8.5 INR = 3.4 INR, at each local quarter of 10:00-11:00
    assert stored["values"] == [3.4] * 4
    assert stored["timestamps"] == [(hour + i * Q) * 1000 for i in range(4)]


def test_a_move_inside_a_quarter_is_split_at_the_move_whichever_name_sorts_first(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Two readings a quarter (:00 and :07:30); r1 moves alpha -> omega and r2 omega -> alpha
    between the 14:00:00 and 14:07:30 readings, both inside the 14:00 quarter. The move is
    put midway between the last reading of the old holder and the first of the new one,
    14:03:45, and the quarter is split there by time: 225 s to the old holder, 675 s to the
    new one, in both directions (not to the name that sorts first, not whole to anyone).
    By hand: r1 (1 kW) alpha 8 q x 0.25 + 225 s x 1 kW = 2.0625 kWh, omega 7 q x 0.25 +
    675 s x 1 kW = 1.9375; r2 (2 kW) omega 4.0 + 0.125 = 4.125, alpha 3.5 + 0.375 = 3.875."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n')
    start, move = at(zone, 2026, 10, 12, 12), at(zone, 2026, 10, 12, 14, 7, 30)
    points = []
    for t in range(start, start + 4 * 3600, 450):
        points += rig("r1", t, 1000.0, "alpha" if t < move else "omega")
        points += rig("r2", t, 2000.0, "omega" if t < move else "alpha")
    write(ledger_db, points)
    rollup(cfg, start, start + 4 * 3600)
    rows = rows_of(cfg, start, start + 4 * 3600)
    quarter = move - 450
    split = {(r.rig, r.customer): (r.seconds, Decimal(repr(r.kwh)))
             for r in rows if int(r.time.timestamp()) == quarter}
    assert split == {("r1", "alpha"): (225, Decimal("0.0625")),
                     ("r1", "omega"): (675, Decimal("0.1875")),
                     ("r2", "omega"): (225, Decimal("0.125")),
                     ("r2", "alpha"): (675, Decimal("0.375"))}
    assert per(rows, "customer") == {"alpha": Decimal("5.937500"),  # 2.0625 + 3.875
                                     "omega": Decimal("6.062500")}  # 1.9375 + 4.125


def test_outlets_of_daisy_chained_units_are_separate_counters(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """Outlet 3 of the master and outlet 3 of link unit 2 (same PDU id) are two counters and
    two unmapped outlets in the ledger, never one stream jumping between them."""
    zone = ZoneInfo("Europe/Berlin")
    cfg = make_config(ledger_db, tmp_path, "Europe/Berlin",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n')
    hour = at(zone, 2026, 10, 13, 8)
    points = []
    for t in range(hour - 600, hour + 4200, 300):
        outlets = [OutletReading(outlet=3, unit=unit, power_w=watts,
                                 energy_kwh=base + watts / 1000 * (t - hour) / 3600)
                   for unit, base, watts in (("1", 900.0, 1000.0), ("2", 15.0, 3000.0))]
        points += pdu_points(PduReading(ts_ms=t * 1000, site="north", pdu="chain", rack="R09",
                                        collector="c1", online=True, outlets=outlets))
    write(ledger_db, points)
    rollup(cfg, hour, hour + 3600)
    rows = rows_of(cfg, hour, hour + 3600)
    assert per(rows, "unit") == {"chain/1/3": Decimal("1.000000"),
                                 "chain/2/3": Decimal("3.000000")}
    assert {r.source for r in rows} == {"pdu_energy"}


def test_the_rollup_runs_as_a_service_of_its_own_and_picks_up_late_data(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    """`hashwatt rollup --follow`: rewrites the last closed hours every interval; late
    counter reads that arrive while it runs reprice the hour; SIGTERM stops it cleanly."""
    import signal
    import time

    cfg = make_config(ledger_db, tmp_path, "Asia/Kolkata",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 10\n', "INR")
    now = dt.datetime.now(ZoneInfo("Asia/Kolkata"))
    hour = int(now.replace(minute=0, second=0, microsecond=0).timestamp()) - 3600
    write(ledger_db, [p for t in range(hour - 600, hour + 3600, 300)
                      for p in rig("r1", t, 1000.0, source="nominal")])
    proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "rollup", str(cfg.source),
                             "--follow", "--hours", "2", "--interval", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def kwh() -> Decimal:
            return sum((Decimal(repr(r.kwh)) for r in rows_of(cfg, hour, hour + 3600)),
                       Decimal(0))

        deadline = time.monotonic() + 30
        while kwh() != Decimal(1) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kwh() == Decimal(1)  # 1 kW nominal for the closed hour
        # late: the outlet's counter for the hour (1.2 kW at the wall) beats nominal power
        write(ledger_db, [p for t in range(hour - 600, hour + 4200, 300)
                          for p in outlet(t, 40 + 1.2 * (t - hour) / 3600, 1200.0)])
        while kwh().quantize(MILLI) != Decimal("1.200") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kwh().quantize(MILLI) == Decimal("1.200")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_counter_step_back_is_a_reset_only_below_half_flagged_or_not() -> None:
    from exporters.finance.ledger import Read, interval_kwh

    def read(kwh: float, reset: bool = False) -> Read:
        return Read(ts_s=0.0, kwh=kwh, reset=reset, unit=("rig", "r1"), attribution=("", ""))

    assert interval_kwh(read(150.0), read(150.25)) == 0.25
    assert interval_kwh(read(150.0), read(0.75)) == 0.75  # reset, unflagged: from zero
    assert interval_kwh(read(150.0), read(149.9)) == 0.0  # jitter: no energy, not 149.9
    # the collector flags every step back (collector/pdu/source.py _reset), jitter too: a
    # flagged 0.1 kWh step back is still jitter, not 149.9 kWh "counted from zero"
    assert interval_kwh(read(150.0), read(149.9, reset=True)) == 0.0


def test_a_tariff_change_inside_the_repeated_fall_back_hour_applies_once() -> None:
    """Berlin, 25 October 2026: 02:00-03:00 happens twice (CEST, then CET). A change from
    02:30 applies from its first occurrence (00:30 UTC) on, also through the second pass of
    02:00-02:30 (01:00-01:30 UTC)."""
    from hashwatt.tariff import Tariff, TariffConfig

    tariff = Tariff(TariffConfig.model_validate({"periods": [
        {"from": "2026-01-01", "rate": 0.1},
        {"from": "2026-10-25T02:30", "rate": 0.2}]}), "Europe/Berlin")
    utc = [dt.datetime(2026, 10, 25, h, m, tzinfo=dt.UTC).timestamp()
           for h, m in ((0, 15), (0, 30), (1, 0), (1, 15), (1, 30))]
    assert [tariff.rate_at(t) for t in utc] == [0.1, 0.2, 0.2, 0.2, 0.2]


def test_a_backfill_into_the_current_hour_is_clipped_with_a_warning(
        ledger_db: InfluxQL, tmp_path: Path) -> None:
    cfg = make_config(ledger_db, tmp_path, "Asia/Kathmandu",
                      '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 9\n', "NPR")
    now = clear_of_the_hour_end(ZoneInfo("Asia/Kathmandu"))
    hour = now.replace(minute=0, second=0, microsecond=0)
    write(ledger_db, [p for t in range(int(hour.timestamp()) - 3600, int(now.timestamp()), 300)
                      for p in rig("r1", t, 800.0)])
    until = (hour + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "rollup", str(cfg.source),
                          "--backfill", (hour - dt.timedelta(hours=1)).strftime(
                              "%Y-%m-%dT%H:%M"), until], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "the current hour is not finished" in run.stderr
    rows = rows_of(cfg, int(hour.timestamp()) - 3600, int(hour.timestamp()) + 7200)
    assert [r.time.timestamp() for r in rows] == [hour.timestamp() - 3600 + i * Q
                                                  for i in range(4)]


def test_the_rollup_service_survives_influxdb_being_away(tmp_path: Path) -> None:
    """A run that cannot reach InfluxDB is logged and tried again; the service never stops
    for it (it starts before InfluxDB does on a booting host)."""
    import signal
    import time

    from sim.launch import free_port

    path = tmp_path / "away.toml"
    path.write_text(f'[site]\nname = "north"\n[influxdb]\nurl = "http://127.0.0.1:{free_port()}"'
                    '\ndatabase = "hashwatt"\n')
    proc = subprocess.Popen([sys.executable, "-m", "hashwatt.cli", "rollup", str(path),
                             "--follow", "--interval", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert alive and proc.returncode == 0, err
    assert "ledger rollup failed" in err and "Traceback" not in err
