"""Every panel of every dashboard and every variable query, run on a real influxd holding a
farm written by the bridge's own decode path, macros and variables filled as Grafana fills
them (tests/grafana.py), and the numbers each panel shows asserted exactly, derived by hand
below. The site is in Kathmandu (UTC+05:45) so that "cost today" must start at a midnight
that is no UTC hour; a rig id with a dot and a model with "+" check Grafana's escaping.

The farm (site north unless said; a flat tariff of 0.125 per kWh, so cost per hour =
W / 1000 * 0.125):

| rig     | rack/slot | customer  | model       | W    | TH/s | J/TH | chip/limit °C | cost/h |
| a       | R01/1     | acme      | S19 Pro     | 3200 | 100  | 32   | 80/95 (15)    | 0.4    |
| r01.s02 | R01/2     | acme      | S19j Pro+   | 3000 | 120  | 25   | 92/95 (3 hot) | 0.375  |
| c       | R02/1     | blockfarm | Avalon 1246 | 3600 | 90   | 40   | 75/100 (25)   | 0.45   |
| d       | R02/2     | acme      | S19 Pro     | offline: "no reply within 10 s"              |
| m       | R03/1     | acme      | S19 Pro     | 2000 | 50   | 40   | 70/95 (25)    | 0.25   |
| s1      | S1/1      | zeta      | S19 Pro     | 5000 | 200  | 25   | 96/95 (-1 hot)| 0.625  |

m is in maintenance; s1 is on a second site, south.

a, r01.s02, c, d and m are polled every 30 s (each at its own second of the cycle) from
half an hour before the site's midnight M until NOW = M + 2 h 10 min; s1 only in the last
two minutes. Values never change, so "last" and "mean" agree and every sum is exact.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards.build import DASHBOARDS
from dashboards.influxql import DATASOURCE_UID, LEDGER_UID
from exporters.decode import cycle_points, pdu_points, rig_points
from exporters.lineproto import Point
from exporters.roster import RosterKeeper
from exporters.sinks import InfluxV1Sink
from hashwatt.contract import (
    BoardReading,
    CycleReport,
    CycleStats,
    OutletReading,
    PduReading,
    PhaseReading,
    RigReading,
)
from hashwatt.influxql import InfluxQL
from hashwatt.tariff import Tariff, TariffConfig
from sim.launch import Influxd
from tests.grafana import ALL_SELECTED, Databases, run_panel, variable_options

ZONE = "Asia/Kathmandu"
_today = dt.datetime.now(ZoneInfo(ZONE)).date() - dt.timedelta(days=2)
M = dt.datetime(_today.year, _today.month, _today.day, tzinfo=ZoneInfo(ZONE)).timestamp()
NOW = M + 2 * 3600 + 600
TARIFF = Tariff(TariffConfig.model_validate({"periods": [{"from": "2020-01-01", "rate": 0.125}]}),
                ZONE)

# rig, rack, slot, customer, model, W, TH/s, chip °C, limit °C, second of its poll cycle
RIGS = [("a", "R01", 1, "acme", "S19 Pro", 3200.0, 100.0, 80.0, 95.0, 0),
        ("r01.s02", "R01", 2, "acme", "S19j Pro+", 3000.0, 120.0, 92.0, 95.0, 7),
        ("c", "R02", 1, "blockfarm", "Avalon 1246", 3600.0, 90.0, 75.0, 100.0, 14),
        ("m", "R03", 1, "acme", "S19 Pro", 2000.0, 50.0, 70.0, 95.0, 3)]
S1 = ("s1", "S1", 1, "zeta", "S19 Pro", 5000.0, 200.0, 96.0, 95.0, 11)


def reading(rig: tuple[Any, ...], ts: float, site: str = "north") -> RigReading:
    rid, rack, slot, customer, model, watts, ths, temp, limit, _ = rig
    return RigReading(
        ts_ms=int(ts * 1000), site=site, rig=rid, collector="c1", rack=rack, slot=slot,
        customer=customer, make="Bitmain", model=model, online=True, hashrate_ths=ths,
        expected_hashrate_ths=ths, power_w=watts, power_source="pdu", temp_max_c=temp,
        temp_limit_c=limit, nominal_efficiency_j_th=29.5, fans_rpm=[4100, 4000],
        boards_total=3, uptime_s=86400, maintenance=rid == "m",
        wiring_suspect=rid == "a" or None,
        wiring_reason="outlet 7 draws 12 W" if rid == "a" else None,
        boards=[BoardReading(board=b, hashrate_ths=h, chip_temp_c=78.0 + b,
                             board_temp_c=60.0 + b, chips=76)
                for b, h in enumerate((33.0, 33.0, 34.0))] if rid == "a" else [])


def offline(ts: float) -> RigReading:
    return RigReading(ts_ms=int(ts * 1000), site="north", rig="d", collector="c1", rack="R02",
                      slot=2, customer="acme", make="Bitmain", model="S19 Pro", online=False,
                      error="no reply within 10 s")


def pdu(name: str, ts: float) -> PduReading:
    if name == "p1":
        return PduReading(
            ts_ms=int(ts * 1000), site="north", pdu="p1", collector="c1", online=True,
            power_w=9800.0, energy_kwh=1234.5,
            phases=[PhaseReading(phase="1", current_a=50.4, rating_a=63.0),
                    PhaseReading(phase="2", current_a=31.5, rating_a=63.0)],
            outlets=[OutletReading(outlet=7, power_w=3200.0, energy_kwh=100.25, rig="a",
                                   customer="acme"),
                     OutletReading(outlet=8, power_w=3000.0, energy_kwh=90.5, rig="r01.s02",
                                   customer="acme")])
    return PduReading(
        ts_ms=int(ts * 1000), site="north", pdu="p2", collector="c1", online=True,
        power_w=3600.0, energy_kwh=777.0,
        phases=[PhaseReading(phase="1", current_a=15.75, rating_a=32.0)],
        outlets=[OutletReading(outlet=1, power_w=3600.0, energy_kwh=55.0, rig="c",
                               customer="blockfarm")])


GONE = 7 * 3600
STATS = CycleStats(cycle_s=2.5, rigs_total=5, rigs_ok=2, rigs_failed=1, rigs_timeout=2,
                   identified=5, published=5, spool_depth=7, resent=5, fields_dropped=1,
                   broker_connected=True)


def farm() -> list[Point]:
    points: list[Point] = []
    for k in range(320):  # M - 30 min ... NOW - 30 s
        base = M - 1800 + 30 * k
        for rig in RIGS:
            points += rig_points(reading(rig, base + rig[-1]), TARIFF)
        points += rig_points(offline(base + 5))
    for j in (3, 2, 1):  # s1: its last three polls only
        points += rig_points(reading(S1, NOW - 30 * j + S1[-1], site="south"), TARIFF)
    for k in range(1, 21):  # the PDUs and the collector's cycles: the last ten minutes
        points += pdu_points(pdu("p1", NOW - 30 * k), TARIFF)
        points += pdu_points(pdu("p2", NOW - 30 * k + 13), TARIFF)
        points += cycle_points(CycleReport(site="north", collector="c1",
                                           ts_ms=int((NOW - 30 * k + 2) * 1000), stats=STATS))
    # rig z (offline) and collector c9 last reported seven hours ago: outside every 6 h panel,
    # known to the bridge's roster (its marks are written by the fixture at NOW - 20 s)
    points += rig_points(RigReading(
        ts_ms=int((NOW - GONE) * 1000), site="north", rig="z", collector="c9", rack="R04",
        slot=1, customer="acme", make="Bitmain", model="S19 Pro", online=False,
        error="no reply within 10 s"))
    points += cycle_points(CycleReport(site="north", collector="c9",
                                       ts_ms=int((NOW - GONE) * 1000), stats=STATS))
    for k in range(1, 61):  # the bridge's self-monitoring every 10 s
        points.append(Point("exporter", {"site": "north", "exporter": "bridge"},
                            {"lag_ms": 250.0, "dead_letters": 2, "queue_depth": 4,
                             "fields_dropped": 6, "dead_letter_errors": 1,
                             "qos0_dropped": 250}, int((NOW - 10 * k) * 1000)))
    return points


# (customer, rack, rig, window, kWh, measured, estimated, cost, coverage, source), two quarters
LEDGER = [("acme", "R01", "a", "peak", 0.8, 0.8, 0.0, 0.1, 1.0, "pdu_energy"),
          ("acme", "R02", "d", "standard", 0.75, 0.0, 0.75, 0.09375, 0.5, "estimated"),
          ("blockfarm", "R02", "c", "peak", 0.9, 0.9, 0.0, 0.1125, 1.0, "pdu_energy"),
          # superseded by a re-run: zeros, source "void", never in a mean
          ("acme", "R01", "a", "standard", 0.0, 0.0, 0.0, 0.0, 0.0, "void")]


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    server = Influxd(tmp_path_factory.mktemp("panels-influxd")).start()
    ops, ledger = InfluxQL(server.url, "hashwatt"), InfluxQL(server.url, "hashwatt_ledger")
    ops.create_database()
    ledger.create_database()
    points = farm()
    sink = InfluxV1Sink(server.url, "hashwatt")
    for i in range(0, len(points), 5000):
        sink.write(points[i:i + 5000])
    RosterKeeper(ops, sink.write).run(NOW - 20)  # the bridge's marks (exporters/roster.py)
    rows = [Point("energy_quarter", {"site": "north", "customer": c, "rack": rack, "rig": rig,
                                     "window": w},
                  {"kwh": kwh, "kwh_measured": meas, "kwh_estimated": est, "cost": cost,
                   "rate_per_kwh": 0.125, "coverage": cov, "source": src},
                  int((M + 900 * q) * 1000))
            for q in (1, 2) for c, rack, rig, w, kwh, meas, est, cost, cov, src in LEDGER]
    InfluxV1Sink(server.url, "hashwatt_ledger").write(rows)
    yield {DATASOURCE_UID: ops, LEDGER_UID: ledger}
    server.stop()


def board(name: str) -> dict[str, Any]:
    """A dashboard as the site's Grafana has it: the site's timezone written in
    (deploy/grafana/entrypoint.sh; tests/test_grafana_timezone.py)."""
    return {**json.loads((DASHBOARDS / f"{name}.json").read_text()), "timezone": ZONE}


TESTED: set[tuple[str, str]] = set()


def show(name: str, title: str, dbs: Databases, **variables: Any) -> list[list[dict[str, Any]]]:
    TESTED.add((name, title))
    return run_panel(dbs, board(name), title, NOW, variables)


def one(rows: list[dict[str, Any]]) -> float:
    [row] = rows
    [value] = [v for k, v in row.items() if k != "time"]
    return float(value)


def values(rows: list[dict[str, Any]], column: str) -> list[Any]:
    """A time series' non-null values (empty buckets are null: fill(null))."""
    return [r[column] for r in rows if r[column] is not None]


def exact(x: float) -> Decimal:
    return Decimal(repr(round(x, 9)))


# --- farm overview ----------------------------------------------------------------------

def test_live_figures_sum_each_rigs_latest_reading(dbs: Databases) -> None:
    # 100 + 120 + 90 + 50 + 200 TH/s; 3200 + 3000 + 3600 + 2000 + 5000 W; d has neither
    assert one(show("farm-overview", "Fleet hashrate", dbs)[0]) == 560.0
    assert one(show("farm-overview", "Wall power", dbs)[0]) == 16800.0
    # J/TH of the fleet: 16800 W / 560 TH/s
    assert one(show("farm-overview", "Efficiency", dbs)[0]) == 30.0
    # 0.4 + 0.375 + 0.45 + 0.25 + 0.625
    assert exact(one(show("farm-overview", "Cost per hour ($currency)", dbs)[0])) == \
        Decimal("2.1")


def test_cost_today_starts_at_the_sites_midnight_in_whole_quarters(dbs: Databases) -> None:
    # from M (00:00 in Kathmandu, hh:15 UTC) to NOW = M + 2 h 10 min: nine quarters, the
    # ninth in progress and counted whole; a, r01.s02, c, m in all nine, s1 in the ninth:
    # (9 * (0.4 + 0.375 + 0.45 + 0.25) + 0.625) / 4 = (13.275 + 0.625) / 4
    # (hour buckets would have counted three UTC hours from 23:45 local: 5.05)
    [rows] = show("farm-overview", "Cost today ($currency)", dbs)
    assert exact(one(rows)) == Decimal("3.475")


def test_the_rigs_stat_counts_online_offline_hot_and_maintenance(dbs: Databases) -> None:
    # in service: a, r01.s02, c, s1 online, d offline; hot (margin under 5 °C): r01.s02 (3)
    # and s1 (-1); in maintenance: m
    got = [one(rows) for rows in show("farm-overview", "Rigs", dbs)]
    assert got == [4.0, 1.0, 2.0, 1.0]
    # site south: s1 only; a hot count and a maintenance count of 0 are rows of 0
    south = [one(rows) for rows in show("farm-overview", "Rigs", dbs, site="south")]
    assert south == [1.0, 0.0, 1.0, 0.0]
    cool = [one(rows) for rows in show("farm-overview", "Rigs", dbs, customer="blockfarm")]
    assert cool == [1.0, 0.0, 0.0, 0.0]


def test_tables_of_the_wall_screen(dbs: Databases) -> None:
    [heat] = show("farm-overview", "Racks and slots: hottest chip (°C)", dbs)
    assert {(r["rack"], r["slot"], r["temp"]) for r in heat} == {
        ("R01", "1", 80.0), ("R01", "2", 92.0), ("R02", "1", 75.0), ("R03", "1", 70.0),
        ("S1", "1", 96.0)}
    [down] = show("farm-overview", "Rigs down and why", dbs)
    assert [(r["rig"], r["rack"], r["reason"]) for r in down] == [
        ("d", "R02", "no reply within 10 s")]
    [suspects] = show("farm-overview", "Inventory, wiring and pool suspects", dbs)
    assert [(r["rig"], r["rack"], r["model"], r["wiring"], r["pool"]) for r in suspects] == [
        ("a", "R01", "S19 Pro", "outlet 7 draws 12 W", None)]
    [hot] = show("farm-overview", "Hottest rigs", dbs)
    assert sorted(((r["temp_max_c"], r["rig"]) for r in hot), reverse=True) == [
        (96.0, "s1"), (92.0, "r01.s02"), (80.0, "a"), (75.0, "c"), (70.0, "m")]
    [worst] = show("farm-overview", "Worst efficiency", dbs)
    assert sorted((r["efficiency_j_th"], r["rig"]) for r in worst) == [
        (25.0, "r01.s02"), (25.0, "s1"), (32.0, "a"), (40.0, "c"), (40.0, "m")]


def test_silent_rigs_and_collectors_are_listed_from_the_roster(dbs: Databases) -> None:
    # the marks written at NOW - 20 s: z and c9 silent since NOW - 7 h, i.e. 25,180 s; every
    # other rig and collector reported within the last 30 s (under the 300 s that count)
    [rigs] = show("farm-overview", "Rigs silent (no reading: collector down?)", dbs)
    assert [(r["rig"], r["rack"], r["silent for"]) for r in rigs] == [
        ("z", "R04", GONE - 20)]
    [collectors] = show("collector-health", "Collectors silent", dbs)
    assert [(r["collector"], r["silent for"]) for r in collectors] == [("c9", GONE - 20)]


def test_fleet_over_time_is_flat_at_the_panels_min_interval(dbs: Databases) -> None:
    # one-minute buckets hold two polls of every rig: 100 + 120 + 90 + 50 TH/s (d has no
    # hashrate), and in the last two minutes s1's 200 too
    for title, column, fleet, with_s1 in (
            ("Fleet hashrate over time", "sum", 360.0, 560.0),
            ("Wall power over time", "sum", 11800.0, 16800.0)):
        [rows] = show("farm-overview", title, dbs)
        got = values(rows, column)
        assert got[-2:] == [with_s1, with_s1] and set(got[:-2]) == {fleet}, title
        assert len(got) == 130 + 30  # M - 30 min ... NOW, one a minute
    # without the min interval Grafana would ask for 20 s buckets on a 6 h range at 1,000
    # points (roundInterval(21.6 s)): rigs polled at different seconds fall into different
    # buckets and the "fleet" would saw-tooth
    panel = next(p for p in board("farm-overview")["panels"]
                 if p["title"] == "Fleet hashrate over time")
    assert panel["interval"] == "1m"
    bare = {**board("farm-overview"), "panels": [{**panel, "interval": ""}]}
    [rows] = run_panel(dbs, bare, "Fleet hashrate over time", NOW)
    assert min(values(rows, "sum")) < 360.0


def test_variables_offer_what_the_data_holds_and_filter_as_grafana_fills_them(
        dbs: Databases) -> None:
    b = board("farm-overview")
    assert variable_options(dbs, b, "site", NOW) == ["north", "south"]
    assert variable_options(dbs, b, "rack", NOW) == ["R01", "R02", "R03", "R04", "S1"]
    assert variable_options(dbs, b, "customer", NOW) == ["acme", "blockfarm", "zeta"]
    assert variable_options(dbs, b, "model", NOW) == ["Avalon 1246", "S19 Pro", "S19j Pro+"]
    # "+" is a regex operator: Grafana escapes the value (S19j Pro\+), so only r01.s02 matches
    assert one(show("farm-overview", "Fleet hashrate", dbs, model="S19j Pro+")[0]) == 120.0
    # two customers: (acme|blockfarm); s1 (zeta) left out: 100 + 120 + 90 + 50
    assert one(show("farm-overview", "Fleet hashrate", dbs,
                    customer=["acme", "blockfarm"])[0]) == 360.0
    assert one(show("farm-overview", "Wall power", dbs, site="south")[0]) == 5000.0
    assert one(show("farm-overview", "Fleet hashrate", dbs, site=ALL_SELECTED,
                    rack=["R01", "S1"])[0]) == 100.0 + 120.0 + 200.0


# --- rig detail -------------------------------------------------------------------------

def test_rig_detail_now_is_the_latest_reading(dbs: Databases) -> None:
    assert variable_options(dbs, board("rig-detail"), "rig", NOW, {"site": "north"}) == [
        "a", "c", "d", "m", "r01.s02", "z"]
    [[a]] = show("rig-detail", "Now", dbs, site="north", rig="a")
    assert {k: v for k, v in a.items() if k != "time"} == {
        "online": True, "power": 3200.0, "source": "pdu", "J/TH": 32.0, "nominal J/TH": 29.5,
        "uptime": 86400, "error": None, "errors": None}
    [[d]] = show("rig-detail", "Now", dbs, site="north", rig="d")
    assert (d["online"], d["error"], d["power"]) == (False, "no reply within 10 s", None)
    # a rig id with a dot: Grafana's regex format would make it 'r01\.s02' (an InfluxQL
    # syntax error); the query takes it raw
    [[dotted]] = show("rig-detail", "Now", dbs, site="north", rig="r01.s02")
    assert (dotted["power"], dotted["J/TH"]) == (3000.0, 25.0)


def test_rig_detail_time_series(dbs: Databases) -> None:
    per_board = {
        "Hashrate per board": ("mean", {"0": 33.0, "1": 33.0, "2": 34.0}),
        "Chip temperature per board": ("mean", {"0": 78.0, "1": 79.0, "2": 80.0}),
        "Board temperature per board": ("mean", {"0": 60.0, "1": 61.0, "2": 62.0}),
        "Chips per board": ("last", {"0": 76, "1": 76, "2": 76}),
    }
    for title, (column, expected) in per_board.items():
        [rows] = show("rig-detail", title, dbs, site="north", rig="a")
        got = {r["board"]: {r[column]} for r in rows if r[column] is not None}
        assert {b: v.pop() for b, v in got.items() if len(v) == 1} == expected, title
    actual, nominal = show("rig-detail", "Efficiency against nominal", dbs, site="north",
                           rig="a")
    assert set(values(actual, "actual")) == {32.0}
    assert set(values(nominal, "nominal")) == {29.5}
    [fan] = show("rig-detail", "Slowest fan", dbs, site="north", rig="a")
    assert set(values(fan, "fan")) == {4000}
    [power] = show("rig-detail", "Wall power", dbs, site="north", rig="a")
    assert set(values(power, "power")) == {3200.0}


# --- power ------------------------------------------------------------------------------

def test_power_panels(dbs: Databases) -> None:
    assert variable_options(dbs, board("power"), "site", NOW) == ["north"]
    [site] = show("power", "Site power (PDUs and meters)", dbs)
    assert set(values(site, "sum")) == {9800.0 + 3600.0}
    [load] = show("power", "Phase load against breaker rating", dbs)
    # 50.4 / 63 = 80 %, 31.5 / 63 = 50 %, 15.75 / 32 = 49.21875 -> 49.219 (3 decimals)
    assert {(r["pdu"], r["phase"], r["load"]) for r in load} == {
        ("p1", "1", 80.0), ("p1", "2", 50.0), ("p2", "1", 49.219)}
    [energy] = show("power", "Energy counters", dbs)
    assert {(r["pdu"], r["kWh"]) for r in energy} == {("p1", 1234.5), ("p2", 777.0)}
    [per_pdu] = show("power", "Power per PDU", dbs)
    assert {(r["pdu"], r["mean"]) for r in per_pdu if r["mean"] is not None} == {
        ("p1", 9800.0), ("p2", 3600.0)}
    [current] = show("power", "Phase current", dbs)
    assert {(r["pdu"], r["phase"], r["mean"]) for r in current if r["mean"] is not None} == {
        ("p1", "1", 50.4), ("p1", "2", 31.5), ("p2", "1", 15.75)}
    [outlets] = show("power", "Outlets", dbs)
    assert {(r["pdu"], r["outlet"], r["rig"], r["W"], r["kWh"]) for r in outlets} == {
        ("p1", "7", "a", 3200.0, 100.25), ("p1", "8", "r01.s02", 3000.0, 90.5),
        ("p2", "1", "c", 3600.0, 55.0)}


# --- collector health -------------------------------------------------------------------

@pytest.mark.parametrize(("title", "column", "expected"), [
    ("Cycle time", "max", 2.5),
    ("Failed polls per cycle", "max_max", 3.0),  # 1 failed + 2 timed out
    ("Spool depth", "max", 7.0),
    ("Exporter lag", "max", 250.0),
    ("Set-aside messages (total)", "max", 2),
    ("Exporter queue depth", "max", 4),
    ("Readings held in memory (spool disk refused)", "max", 0.0),
    ("Sent, not yet known stored", "max", 0.0),
    ("Readings resent (since start)", "max", 5.0),
    ("Spool disk errors (since start)", "max", 0.0),
    ("Broker connected (1 = yes)", "last", True),
    ("Device fields dropped (collector)", "sum", 2.0),  # one per cycle, two cycles a minute
    ("Derived fields dropped (bridge, since start)", "max", 6),
    ("Dead-letter write errors (since start)", "max", 1),
    ("QoS 0 messages dropped (since start)", "max", 250),
])
def test_collector_health_panels(dbs: Databases, title: str, column: str,
                                 expected: Any) -> None:
    [rows] = show("collector-health", title, dbs)
    got = values(rows, column)
    assert len(got) == 10 and set(got) == {expected}, (title, got)  # ten minutes of data


# --- finance ----------------------------------------------------------------------------

def test_finance_panels(dbs: Databases) -> None:
    b = board("finance")
    assert variable_options(dbs, b, "site", NOW) == ["north"]
    [totals] = show("finance", "kWh and cost for the chosen month", dbs, by="customer")
    # acme: 2 quarters x (0.8 + 0.75) kWh, 2 x (0.1 + 0.09375); coverage the mean of 1, 0.5
    # (the void rows left out); blockfarm 2 x 0.9 kWh, 2 x 0.1125
    assert {r["customer"]: (exact(r["kWh"]), exact(r["cost (EUR)"]), r["coverage"])
            for r in totals} == {"acme": (Decimal("3.1"), Decimal("0.3875"), 0.75),
                                 "blockfarm": (Decimal("1.8"), Decimal("0.225"), 1.0)}
    [per_rig] = show("finance", "kWh and cost for the chosen month", dbs, by="rig")
    assert {r["rig"]: exact(r["kWh"]) for r in per_rig} == {
        "a": Decimal("1.6"), "d": Decimal("1.5"), "c": Decimal("1.8")}
    [split] = show("finance", "Measured and estimated kWh", dbs, by="customer")
    assert {r["customer"]: (exact(r["measured kWh"]), exact(r["estimated kWh"]))
            for r in split} == {"acme": (Decimal("1.6"), Decimal("1.5")),
                                "blockfarm": (Decimal("1.8"), Decimal("0"))}
    [windows] = show("finance", "kWh and cost per tariff window (peak / off-peak)", dbs,
                     by="customer")
    assert {(r["customer"], r["window"]): (exact(r["kWh"]), exact(r["cost (EUR)"]))
            for r in windows} == {("acme", "peak"): (Decimal("1.6"), Decimal("0.2")),
                                  ("acme", "standard"): (Decimal("1.5"), Decimal("0.1875")),
                                  ("blockfarm", "peak"): (Decimal("1.8"), Decimal("0.225"))}


def test_every_panel_of_every_dashboard_is_asserted_here() -> None:
    """Runs last (file order): every panel title of every generated dashboard was shown."""
    panels = {(p.stem, panel["title"]) for p in DASHBOARDS.glob("*.json")
              for panel in json.loads(p.read_text())["panels"]}
    assert panels - TESTED == set()
