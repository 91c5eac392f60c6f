"""Tariffs, the hourly energy ledger and monthly reports against a real influxd: exact kWh and
cost for a DST month, a time-of-use edge inside an hour, a tariff change, a counter reset,
a four-hour gap, a customer in two racks; totals reconcile to the cent; re-runs change nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporters.decode import pdu_points, rig_points
from exporters.ledger import rollup
from exporters.lineproto import Point, encode
from exporters.report import build_report, month_bounds, render
from exporters.sinks import InfluxV1Sink
from hashwatt.config import Config, load_config
from hashwatt.contract import OutletReading, PduReading, RigReading
from hashwatt.influxql import InfluxQL
from hashwatt.services import Influxd
from hashwatt.tariff import Tariff, TariffConfig

pytestmark = pytest.mark.e2e
ZONE = ZoneInfo("Europe/Berlin")
MONTH = "2026-10"  # daylight saving ends on 25 October: 745 hours
FLAT = '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.10\n'


@pytest.fixture
def ledger_db(influxd: Influxd, tmp_path: Path) -> Iterator[tuple[InfluxQL, Path]]:
    db = InfluxQL(influxd.url, f"l_{uuid.uuid4().hex[:10]}")
    db.create_database()
    db.execute(f'CREATE RETENTION POLICY "ledger" ON "{db.database}" DURATION INF '
               'REPLICATION 1')
    yield db, tmp_path
    db.close()


def config(db: InfluxQL, influxd: Influxd, tmp_path: Path, tariff: str = FLAT) -> Config:
    path = tmp_path / "ledger.toml"
    path.write_text(f'[site]\nname = "north"\ntimezone = "Europe/Berlin"\ncurrency = "EUR"\n'
                    f'[influxdb]\nurl = "{influxd.url}"\ndatabase = "{db.database}"\n{tariff}')
    return load_config(path)


def local(*args: int) -> float:
    return dt.datetime(*args, tzinfo=ZONE).timestamp()


def rig(rig_id: str, ts: float, watts: float, customer: str = "acme",
        rack: str = "R01") -> RigReading:
    return RigReading(ts_ms=int(ts * 1000), site="north", rig=rig_id, collector="c1",
                      rack=rack, customer=customer, online=True, hashrate_ths=100.0,
                      power_w=watts, power_source="miner")


def quarters(start: float, end: float) -> list[float]:
    """One reading time in the middle of every quarter hour of [start, end)."""
    return [t + 450 for t in range(int(start), int(end), 900)]


def write(influxd: Influxd, db: InfluxQL, points: list[Point]) -> None:
    InfluxV1Sink(influxd.url, db.database).write(encode(points))


def month_seconds() -> tuple[int, int]:
    start, end = month_bounds(MONTH, "Europe/Berlin")
    return int(start.timestamp()), int(end.timestamp())


def ledger(db: InfluxQL) -> list[dict[str, Any]]:
    return db.rows('SELECT * FROM "ledger"."energy_hourly" GROUP BY *')


def report(cfg: Config, db: InfluxQL, by: str = "rig") -> Any:
    return build_report(cfg, db, MONTH, by)  # type: ignore[arg-type]


def test_a_rig_at_constant_power_for_a_dst_month_bills_745_hours(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    start, end = month_seconds()
    write(influxd, db, [p for t in quarters(start, end) for p in rig_points(rig("r1", t, 3000))])
    rollup(cfg, start, end)
    r = report(cfg, db)
    assert r.hours == 745
    assert r.rows == [{"rig": "r1", "kwh": Decimal("2235.000"), "kwh_measured": Decimal("0.000"),
                       "kwh_estimated": Decimal("2235.000"), "cost": Decimal("223.50"),
                       "coverage": 1.0, "units": 1}]


def test_a_time_of_use_edge_inside_an_hour_prices_each_quarter(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    tou = (FLAT + '[[tariff.periods.windows]]\nname = "peak"\nrate = 0.30\nstart = "17:30"\n'
           'end = "21:00"\n')
    cfg = config(db, influxd, tmp, tou)
    hour = local(2026, 10, 6, 17)
    write(influxd, db, [p for t in quarters(hour, hour + 3600)
                        for p in rig_points(rig("r1", t, 4000))])
    rollup(cfg, int(hour), int(hour + 3600))
    [row] = ledger(db)
    assert (row["kwh"], row["cost"], row["rate_per_kwh"]) == (4.0, 0.8, 0.2)


def test_a_tariff_change_mid_month_prices_each_side_at_its_rate(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    change = FLAT + '[[tariff.periods]]\nfrom = 2026-10-16\nrate = 0.20\n'
    cfg = config(db, influxd, tmp, change)
    start, end = month_seconds()
    write(influxd, db, [p for t in quarters(start, end) for p in rig_points(rig("r1", t, 1000))])
    rollup(cfg, start, end)
    [row] = report(cfg, db).rows
    # 1 to 15 October: 360 h at 0.10; 16 to 31 October: 385 h (one extra at the DST change)
    assert (row["kwh"], row["cost"]) == (Decimal("745.000"), Decimal("113.00"))


def outlet_reading(ts: float, energy: float, reset: bool = False) -> PduReading:
    outlet = OutletReading(outlet=3, power_w=2000.0, energy_kwh=energy, energy_reset=reset,
                           rig="r2", customer="acme", rack="R01")
    return PduReading(ts_ms=int(ts * 1000), site="north", pdu="pdu-r01", collector="c1",
                      online=True, outlets=[outlet])


def test_an_energy_counter_reset_is_counted_from_zero_not_as_negative_energy(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    hour = local(2026, 10, 6, 10)
    values = [(hour - 450, 100.0, False), (hour + 450, 100.5, False),
              (hour + 1350, 101.0, False), (hour + 2250, 0.2, True), (hour + 3150, 0.7, False)]
    write(influxd, db, [p for t, e, reset in values
                        for p in pdu_points(outlet_reading(t, e, reset))])
    rollup(cfg, int(hour), int(hour + 3600))
    [row] = ledger(db)
    assert (row["rig"], row["source"], round(row["kwh"], 6)) == ("r2", "pdu_energy", 1.7)
    assert round(row["cost"], 6) == 0.17


def test_a_four_hour_gap_is_missing_coverage_not_silent_zeros(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    day = local(2026, 10, 6)
    gap = (day + 8 * 3600, day + 12 * 3600)
    times = [t for t in quarters(day, day + 86400) if not gap[0] <= t < gap[1]]
    write(influxd, db, [p for t in times for p in rig_points(rig("r1", t, 1000))])
    rollup(cfg, int(day), int(day + 86400))
    rows = ledger(db)
    assert len(rows) == 20 and sum(r["kwh"] for r in rows) == 20.0
    [row] = report(cfg, db).rows
    assert row["coverage"] == round(20 / 745, 4) and row["kwh"] == Decimal("20.000")


def test_a_counter_spans_a_gap_so_the_days_energy_stays_exact(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    day = local(2026, 10, 6)
    times = [day - 450] + [t for t in quarters(day, day + 86400)
                           if not day + 8 * 3600 <= t < day + 12 * 3600]
    # the counter grows 0.25 kWh a quarter hour (1 kW), gap or no gap
    write(influxd, db, [p for t in times
                        for p in pdu_points(outlet_reading(t, 50 + (t - day + 450) / 3600))])
    rollup(cfg, int(day), int(day + 86400))
    rows = ledger(db)
    assert round(sum(r["kwh"] for r in rows), 6) == 24.0
    assert len(rows) == 20


def test_a_customer_with_rigs_in_two_racks_is_one_report_row(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    day = local(2026, 10, 6)
    fleet = [("a", "acme", "R01", 1000), ("b", "acme", "R02", 2000), ("c", "blockfarm", "R02", 500)]
    write(influxd, db, [p for t in quarters(day, day + 7200) for rid, cust, rack, w in fleet
                        for p in rig_points(rig(rid, t, w, cust, rack))])
    rollup(cfg, int(day), int(day + 7200))
    by_customer = {r["customer"]: r["kwh"] for r in report(cfg, db, "customer").rows}
    by_rack = {r["rack"]: r["kwh"] for r in report(cfg, db, "rack").rows}
    assert by_customer == {"acme": Decimal("6.000"), "blockfarm": Decimal("1.000")}
    assert by_rack == {"R01": Decimal("2.000"), "R02": Decimal("5.000")}


def test_report_totals_reconcile_to_the_ledger_to_the_cent(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    tou = (FLAT + '[[tariff.periods.windows]]\nname = "peak"\nrate = 0.2713\nstart = "07:15"\n'
           'end = "19:45"\n')
    cfg = config(db, influxd, tmp, tou)
    day = local(2026, 10, 6)
    odd = [(f"r{i}", ["acme", "blockfarm", "self"][i % 3], 997.3 + 113.7 * i) for i in range(7)]
    write(influxd, db, [p for t in quarters(day, day + 86400) for rid, cust, w in odd
                        for p in rig_points(rig(rid, t, w, cust))])
    rollup(cfg, int(day), int(day + 86400))
    r = report(cfg, db, "customer")
    ledger_cost = sum(Decimal(repr(row["cost"])) for row in ledger(db))
    assert r.total["cost"] == ledger_cost.quantize(Decimal("0.01"))
    assert r.total["cost"] == sum(row["cost"] for row in r.rows)
    assert r.total["kwh"] == sum(row["kwh"] for row in r.rows)


def test_rerunning_the_rollup_changes_nothing(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    day = local(2026, 10, 6)
    write(influxd, db, [p for t in quarters(day, day + 3 * 3600)
                        for p in rig_points(rig("r1", t, 1234.5))])
    rollup(cfg, int(day), int(day + 3 * 3600))
    first = ledger(db)
    rollup(cfg, int(day), int(day + 3 * 3600))
    assert ledger(db) == first and len(first) == 3


def test_the_report_command_writes_csv_json_and_xlsx_with_a_total_and_a_method_footer(
        ledger_db: tuple[InfluxQL, Path], influxd: Influxd) -> None:
    db, tmp = ledger_db
    cfg = config(db, influxd, tmp)
    day = local(2026, 10, 6)
    write(influxd, db, [p for t in quarters(day, day + 3600)
                        for p in rig_points(rig("r1", t, 2000))])
    rollup(cfg, int(day), int(day + 3600))
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "report", "energy",
                          str(cfg.source), "--month", MONTH, "--by", "customer"],
                         capture_output=True, text=True, check=True)
    lines = list(csv.reader(io.StringIO(run.stdout)))
    assert lines[0][:5] == ["customer", "kWh", "measured kWh", "estimated kWh", "cost EUR"]
    assert lines[1][:5] == ["acme", "2.000", "0.000", "2.000", "0.20"]
    assert lines[2][:5] == ["TOTAL", "2.000", "0.000", "2.000", "0.20"]
    assert lines[3][0].startswith("# period 2026-10-01T00:00:00+02:00")
    report_json = json.loads(render(report(cfg, db, "customer"), "json", None))
    assert report_json["total"]["cost"] == "0.20" and report_json["hours"] == 745
    from openpyxl import load_workbook

    xlsx = tmp / "r.xlsx"
    render(report(cfg, db, "customer"), "xlsx", xlsx)
    rows = list(load_workbook(xlsx).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert rows[1][:5] == ("acme", 2.0, 0.0, 2.0, 0.2)


def test_the_bridge_prices_each_reading_at_its_own_time() -> None:
    tariff = Tariff(TariffConfig.model_validate({"periods": [{"from": "2026-01-01", "rate": 0.1,
        "windows": [{"name": "peak", "rate": 0.3, "start": "17:30", "end": "21:00",
                     "weekdays": ["mon", "tue", "wed", "thu", "fri"]}]}]}), "Europe/Berlin")
    peak = rig_points(rig("r1", local(2026, 10, 6, 18), 3000), tariff)[0].fields
    weekend = rig_points(rig("r1", local(2026, 10, 10, 18), 3000), tariff)[0].fields
    assert (peak["rate_per_kwh"], peak["cost_per_h"]) == (0.3, 0.9)
    assert (weekend["rate_per_kwh"], weekend["cost_per_h"]) == (0.1, 0.3)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Kathmandu", "America/St_Johns"])
def test_the_rate_changes_exactly_at_a_window_edge_in_any_utc_offset(zone: str) -> None:
    tariff = Tariff(TariffConfig.model_validate({"periods": [{"from": "2026-01-01", "rate": 0.1,
        "windows": [{"rate": 0.3, "start": "17:30", "end": "17:45"}]}]}), zone)
    edge = dt.datetime(2026, 10, 6, 17, 30, tzinfo=ZoneInfo(zone)).timestamp()
    # asked in this order, so a rate remembered for the wrong quarter would show
    assert [tariff.rate_at(edge + s) for s in (-0.001, 0, 899.999, 900, -900, 450)] == [
        0.1, 0.3, 0.3, 0.1, 0.1, 0.3]


def test_tariff_periods_must_be_in_date_order(tmp_path: Path) -> None:
    from hashwatt.config import ConfigError

    path = tmp_path / "t.toml"
    path.write_text('[site]\nname = "n"\n[[tariff.periods]]\nfrom = 2026-05-01\nrate = 0.1\n'
                    '[[tariff.periods]]\nfrom = 2026-01-01\nrate = 0.2\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [f"{path}: tariff: tariff periods must be in date order, "
                                  "one per date"]
