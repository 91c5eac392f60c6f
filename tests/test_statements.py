"""Customer statements against a real influxd: ledger rows and raw rig readings seeded by
hand, every number of the statement derived here by hand with `decimal` (never by calling
the statement code): a rig that moved between customers mid-day, a maintenance window,
estimated hours, per-rig and capacity fees, a daylight-saving month. The PDF is rendered
to images (pdftoppm) and its text (pdftotext) carries the same numbers as XLSX and JSON."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from exporters.customers.render import render
from exporters.customers.statements import compute, customer_of
from exporters.sinks import InfluxV1Sink
from hashwatt.cli import main
from hashwatt.config import Config, load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd

pytestmark = pytest.mark.e2e
ZONE = ZoneInfo("Europe/Berlin")
MONTH = "2026-10"
# October 2026 in Europe/Berlin: 31 days, daylight saving ends on the 25th (one 25-hour
# day): 31 * 24 + 1 = 745 hours
MONTH_H = Decimal(745)
CENT = Decimal("0.01")

CONFIG = """
[site]
name = "north"
timezone = "Europe/Berlin"
currency = "EUR"
[influxdb]
url = "{url}"
database = "{db}"
[[tariff.periods]]
from = 2026-01-01
rate = 0.08
[[customers]]
id = "acme"
name = "Acme Hosting Client GmbH"
currency = "EUR"
billing_contact = "=HYPERLINK(\\"http://x\\") billing@acme.example"
availability_target_pct = 95
price = {{ kind = "fixed", per_kwh = "0.08" }}
fees = {{ per_rig_month = "30.00", per_kw_month = "5.00", contracted_kw = "10" }}
[[customers]]
id = "blue"
name = "Blue Ocean Mining & Sons <BOM>"
currency = "EUR"
availability_target_pct = "90"
price = {{ kind = "tariff", markup_pct = "10" }}
fees = {{ per_rig_month = "12.50" }}
[[rigs]]
id = "r1"
address = "10.0.0.1"
customer = "acme"
[[rigs]]
id = "r2"
address = "10.0.0.2"
customer = "blue"
[[rigs]]
id = "r3"
address = "10.0.0.3"
customer = "blue"
"""


def ms(*args: int) -> int:
    """Epoch ms of a Berlin local time (zoneinfo, not the code under test)."""
    return int(dt.datetime(*args, tzinfo=ZONE).timestamp() * 1000)


def ledger_line(rig: str, customer: str, rack: str, at: int, kwh: str, measured: str,
                estimated: str, cost: str, source: str) -> str:
    """One ledger row (exporters/finance/ledger.py: `energy_quarter`, one per quarter)."""
    return (f"energy_quarter,customer={customer},rack={rack},rig={rig},site=north,"
            f"window=base kwh={kwh},kwh_measured={measured},kwh_estimated={estimated},"
            f'cost={cost},rate_per_kwh=0.08,coverage=1,source="{source}" {at}')


def quarters(row: tuple[Any, ...]) -> list[str]:
    """An hour of the table below as its four quarter rows, each a quarter of the hour's
    figures (every quarter of these figures is exact in decimal)."""
    rig, customer, rack, hour, *figures, source = row
    parts = [str(Decimal(x) / 4) for x in figures]
    return [ledger_line(rig, customer, rack, ms(*hour, 15 * i), *parts, source)
            for i in range(4)]


# ledger hours: (rig, customer, rack, local hour, kwh, measured, estimated, cost at the tariff,
# source), each seeded as four quarter rows
LEDGER = [
    # r1 (acme, rack A): two counter hours and one hour with a quarter filled (estimated)
    ("r1", "acme", "A", (2026, 10, 1, 0), "3.2501", "3.2501", "0", "0.260008", "pdu_energy"),
    ("r1", "acme", "A", (2026, 10, 1, 1), "3.2499", "3.2499", "0", "0.259992", "pdu_energy"),
    ("r1", "acme", "A", (2026, 10, 1, 2), "3.1", "2.325", "0.775", "0.248", "pdu_power"),
    # r2 (rack B) moves from acme to blue at 12:00 on 10 October (miner power: estimated)
    ("r2", "acme", "B", (2026, 10, 10, 10), "3.0", "0", "3.0", "0.24", "miner"),
    ("r2", "acme", "B", (2026, 10, 10, 11), "3.05", "0", "3.05", "0.244", "miner"),
    ("r2", "blue", "B", (2026, 10, 10, 12), "3.1", "0", "3.1", "0.651", "miner"),
    ("r2", "blue", "B", (2026, 10, 10, 13), "2.9", "0", "2.9", "0.609", "miner"),
    # r3 (blue, rack B): nominal power (all estimated) the day after daylight saving ended
    *[("r3", "blue", "B", (2026, 10, 26, h), "3.25", "0", "3.25", "0.26", "nominal")
      for h in range(4)],
]


def rig_line(rig: str, customer: str, rack: str, at: int, hashrate: float | None,
             power: float, maintenance: bool = False) -> str:
    """A raw rig point as the bridge writes it (the maintenance flag is a tag)."""
    hashing = f"hashrate_ths={hashrate}," if hashrate is not None else ""
    expected = {"r1": 110.0, "r2": 100.0, "r3": 52.0}[rig]
    flag = ",maintenance=yes" if maintenance else ""
    return (f"rig,customer={customer}{flag},rack={rack},rig={rig},site=north online=true,"
            f"{hashing}expected_hashrate_ths={expected},power_w={power} {at}")


def raw_rig_lines() -> list[str]:
    """One reading a minute into each quarter hour."""
    lines = []
    for i in range(12):  # r1: 00:00-03:00, the last quarter not hashing but drawing 50 W
        at = ms(2026, 10, 1, i // 4, i % 4 * 15, 1)
        lines.append(rig_line("r1", "acme", "A", at, 100.0 if i < 11 else 0.0,
                              3250.0 if i < 11 else 50.0))
    for i in range(16):  # r2: acme 10:00-12:00, blue 12:00-14:00
        at = ms(2026, 10, 10, 10 + i // 4, i % 4 * 15, 1)
        mine = i < 8
        lines.append(rig_line("r2", "acme" if mine else "blue", "B", at,
                              95.0 if mine else 96.0, 3000.0 if mine else 3100.0))
    for i in range(16):  # r3: 01:00-02:00 maintenance (off), 03:00-03:15 no reading at all
        if i == 12:
            continue
        at = ms(2026, 10, 26, i // 4, i % 4 * 15, 1)
        maint = 4 <= i < 8
        lines.append(rig_line("r3", "blue", "B", at, 0.0 if maint else 50.0,
                              0.0 if maint else 1500.0, maintenance=maint))
    return lines


@pytest.fixture(scope="module")
def seeded(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    name = f"s_{uuid.uuid4().hex[:10]}"
    db = InfluxQL(influxd.url, name)
    db.create_database()
    db.execute(f'CREATE RETENTION POLICY "ledger" ON "{name}" DURATION INF REPLICATION 1')
    ledger = InfluxV1Sink(influxd.url, name, retention_policy="ledger")
    ledger.post("\n".join(line for row in LEDGER for line in quarters(row)).encode())
    raw = InfluxV1Sink(influxd.url, name)
    raw.post("\n".join(raw_rig_lines()).encode())
    ledger.close()
    raw.close()
    path = tmp_path_factory.mktemp("statements") / "site.toml"
    path.write_text(CONFIG.format(url=influxd.url, db=name))
    yield load_config(path)
    db.close()


def half_up(value: Decimal, step: str = "0.01") -> Decimal:
    return value.quantize(Decimal(step), rounding=ROUND_HALF_UP)


def statement_json(cfg: Config, customer: str) -> dict[str, Any]:
    from exporters.customers.ledger_source import open_ledger

    db = open_ledger(cfg)
    try:
        st = compute(cfg, db, customer_of(cfg, customer), MONTH)
    finally:
        db.close()
    return json.loads(render(st, "json"))


def test_acme_statement_equals_the_hand_computation(seeded: Config) -> None:
    doc = statement_json(seeded, "acme")
    rigs = {r["rig"]: r for r in doc["rigs"]}
    assert set(rigs) == {"r1", "r2"}  # r3 never was acme's
    r1, r2 = rigs["r1"], rigs["r2"]
    # r1: 3.2501 + 3.2499 + 3.1 = 9.6 kWh; measured 3.2501 + 3.2499 + 2.325 = 8.825
    assert (r1["kwh"], r1["kwh_measured"], r1["kwh_estimated"]) == ("9.600", "8.825", "0.775")
    assert r1["sources"] == {"pdu_energy": "6.500", "pdu_power": "3.100"}
    assert r1["source"] == "pdu_energy 6.500, pdu_power 3.100"
    # fixed 0.08 EUR/kWh: 9.6 x 0.08 = 0.768 -> 0.77
    assert r1["energy_cost"] == "0.77"
    # fee 30.00 per rig-month, r1 was acme's 3 of 745 hours: 30 x 3 / 745 = 0.1208 -> 0.12
    assert half_up(Decimal(30) * 3 / MONTH_H) == Decimal("0.12") and r1["fee"] == "0.12"
    # availability: 11 of 12 quarters hashing, no maintenance: 2.75 h / 3 h = 91.666 %
    assert (r1["assigned_hours"], r1["hours_hashing"], r1["hours_drawing"],
            r1["hours_maintenance"]) == ("3.00", "2.75", "3.00", "0.00")
    assert r1["availability_pct"] == "91.67"
    # mean hashrate over 12 quarters (11 x 100 + 0) / 12 = 91.666; expected 110 -> 83.33 %
    assert (r1["avg_hashrate_ths"], r1["expected_hashrate_ths"], r1["hashrate_pct"]) == (
        "91.67", "110.00", "83.33")
    # J/TH over the hashing quarters: 3250 W / 100 TH/s
    assert r1["efficiency_j_th"] == "32.50"
    # r2, acme's part only (10:00-12:00): 3.0 + 3.05 = 6.05 kWh, all estimated (miner power)
    assert (r2["kwh"], r2["kwh_measured"], r2["kwh_estimated"]) == ("6.050", "0.000", "6.050")
    assert r2["energy_cost"] == "0.48"  # 6.05 x 0.08 = 0.484
    assert r2["fee"] == "0.08"  # 30 x 2 / 745 = 0.0805
    assert (r2["assigned_hours"], r2["availability_pct"], r2["hashrate_pct"]) == (
        "2.00", "100.00", "95.00")
    assert r2["efficiency_j_th"] == "31.58"  # 3000 / 95 = 31.5789
    t = doc["totals"]
    assert (t["kwh"], t["kwh_measured"], t["kwh_estimated"]) == ("15.650", "8.825", "6.825")
    assert (t["energy_cost"], t["rig_fees"]) == ("1.25", "0.20")
    assert t["capacity_fee"] == "50.00"  # 10 kW x 5.00
    assert (t["fees"], t["total"]) == ("50.20", "51.45")
    # (2.75 + 2) hashing of (3 + 2) hours: exactly the 95 % target
    assert (t["hours_available"], t["availability_pct"]) == ("4.75", "95.00")
    assert doc["availability_target_met"] is True
    assert doc["period"] == {"start": "2026-10-01T00:00:00+02:00",
                             "end": "2026-11-01T00:00:00+01:00", "hours": "745"}
    assert doc["daily"] == [
        {"day": "2026-10-01", "group": "A", "kwh": "9.600", "cost": "0.77",
         "availability_pct": "91.67"},
        {"day": "2026-10-10", "group": "B", "kwh": "6.050", "cost": "0.48",
         "availability_pct": "100.00"}]


def test_blue_statement_passes_the_tariff_through_with_its_markup(seeded: Config) -> None:
    doc = statement_json(seeded, "blue")
    rigs = {r["rig"]: r for r in doc["rigs"]}
    assert set(rigs) == {"r2", "r3"}
    r2, r3 = rigs["r2"], rigs["r3"]
    # r2 after the move: 3.1 + 2.9 kWh; tariff cost (0.651 + 0.609) x 1.10 = 1.386 -> 1.39
    assert (r2["kwh"], r2["energy_cost"]) == ("6.000", "1.39")
    assert r2["fee"] == "0.03"  # 12.50 x 2 / 745 = 0.0336
    assert r2["efficiency_j_th"] == "32.29"  # 3100 / 96 = 32.2917
    # r3: 4 x 3.25 kWh nominal (estimated); (4 x 0.26) x 1.10 = 1.144 -> 1.14
    assert (r3["kwh"], r3["kwh_estimated"], r3["energy_cost"]) == ("13.000", "13.000", "1.14")
    assert r3["fee"] == "0.07"  # 12.50 x 4 / 745 = 0.0671
    # 16 quarters: 4 in maintenance, one without any reading, 11 hashing
    assert (r3["assigned_hours"], r3["hours_hashing"], r3["hours_drawing"],
            r3["hours_maintenance"]) == ("4.00", "2.75", "2.75", "1.00")
    assert r3["availability_pct"] == "91.67"  # 2.75 / (4 - 1) = 91.666 %
    assert (r3["avg_hashrate_ths"], r3["hashrate_pct"], r3["efficiency_j_th"]) == (
        "50.00", "96.15", "30.00")  # 50 / 52 = 96.15 %; 1500 / 50
    t = doc["totals"]
    assert (t["kwh"], t["kwh_estimated"], t["energy_cost"], t["rig_fees"]) == (
        "19.000", "19.000", "2.53", "0.10")
    assert (t["capacity_fee"], t["total"]) == ("0.00", "2.63")
    # (2 + 2.75) / ((2 + 4) - 1) = 95 %
    assert t["availability_pct"] == "95.00" and doc["availability_target_met"] is True
    # the chart's days: 26 October is r3's 4 hours less 1 in maintenance, 2.75 h hashing
    assert doc["daily"] == [
        {"day": "2026-10-10", "group": "B", "kwh": "6.000", "cost": "1.39",
         "availability_pct": "100.00"},
        {"day": "2026-10-26", "group": "B", "kwh": "13.000", "cost": "1.14",
         "availability_pct": "91.67"}]


def test_totals_add_up_and_the_move_is_split(seeded: Config) -> None:
    acme, blue = statement_json(seeded, "acme"), statement_json(seeded, "blue")
    for doc in (acme, blue):
        t = doc["totals"]
        for key, rig_key in (("kwh", "kwh"), ("energy_cost", "energy_cost"),
                             ("rig_fees", "fee"), ("kwh_estimated", "kwh_estimated")):
            assert Decimal(t[key]) == sum(Decimal(r[rig_key]) for r in doc["rigs"])
        assert Decimal(t["total"]) == (Decimal(t["energy_cost"]) + Decimal(t["rig_fees"])
                                       + Decimal(t["capacity_fee"]))
        assert sum(Decimal(d["kwh"]) for d in doc["daily"]) == Decimal(t["kwh"])
    # r2's 12.05 kWh of the 10th: 6.05 to acme, 6.00 to blue, nothing twice or lost
    r2 = [next(r for r in d["rigs"] if r["rig"] == "r2") for d in (acme, blue)]
    assert Decimal(r2[0]["kwh"]) + Decimal(r2[1]["kwh"]) == Decimal("12.050")


def test_the_ledger_state_identifies_the_rows_used(seeded: Config, influxd: Influxd) -> None:
    first = statement_json(seeded, "acme")
    assert first == statement_json(seeded, "acme")  # the closed month reproduces exactly
    assert first["ledger_state"]["ledger_rows"] == 20 and \
        first["ledger_state"]["activity_rows"] == 20
    assert statement_json(seeded, "blue")["ledger_state"] != first["ledger_state"]
    # a re-run of the ledger that changes one row changes the identifier (and is undone)
    assert seeded.influxdb is not None and seeded.influxdb.database is not None
    sink = InfluxV1Sink(influxd.url, seeded.influxdb.database, retention_policy="ledger")
    row = LEDGER[0]
    try:
        sink.post(ledger_line(row[0], row[1], row[2], ms(*row[3]), "0.81255", "0.81255", "0",
                               "0.065004", "pdu_energy").encode())
        changed = statement_json(seeded, "acme")
        assert changed["ledger_state"]["sha256"] != first["ledger_state"]["sha256"]
    finally:
        sink.post(quarters(row)[0].encode())
        sink.close()
    assert statement_json(seeded, "acme") == first
    # the closed statement reproduces by its identifier; another identifier is refused
    state = first["ledger_state"]["sha256"]
    args = ["report", "statement", str(seeded.source), "--customer", "acme", "--month",
            MONTH, "--format", "json", "--output"]
    out = Path(str(seeded.source)).parent / "again.json"
    assert main([*args, str(out), "--expect-ledger-state", state]) == 0
    assert json.loads(out.read_text()) == first
    assert main([*args, str(out) + ".x", "--expect-ledger-state", "0" * 64]) == 2
    assert not Path(str(out) + ".x").exists()


def numbers_of(doc: dict[str, Any]) -> list[str]:
    """Every rig and total figure a statement prints."""
    out = [v for k, v in doc["totals"].items() if v is not None and k not in ("rigs",)]
    for rig in doc["rigs"]:
        out += [v for k, v in rig.items() if isinstance(v, str) and k not in (
            "rig", "rack", "source", "hours_available")]
    return out


def test_pdf_renders_and_carries_the_same_numbers_as_xlsx_and_json(
        seeded: Config, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    for tool in ("pdftoppm", "pdftotext"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (poppler-utils) is not installed")
    out = tmp_path / "out"
    out.mkdir()
    config = str(seeded.source)
    for fmt in ("pdf", "xlsx", "json"):
        assert main(["report", "statement", config, "--all-customers", "--month", MONTH,
                     "--format", fmt, "--output", str(out)]) == 0
    for customer in ("acme", "blue"):
        stem = out / f"statement-north-{customer}-{MONTH}"
        doc = json.loads(Path(f"{stem}.json").read_text())
        pdf = Path(f"{stem}.pdf")
        subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / customer)],
                       check=True)
        pages = sorted(tmp_path.glob(f"{customer}*.png"))
        assert pages and all(p.stat().st_size > 5000 for p in pages)
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                              capture_output=True, text=True).stdout
        words = set(text.split())
        missing = [n for n in numbers_of(doc) if n not in words]
        assert not missing, f"{customer}: numbers not in the PDF text: {missing}"
        assert doc["ledger_state"]["sha256"] in text
        assert doc["customer"]["name"] in text  # markup characters in a name stay text
        book = load_workbook(f"{stem}.xlsx")
        cells = {Decimal(str(c.value)) for row in book["Statement"].iter_rows() for c in row
                 if isinstance(c.value, int | float)}
        missing = [n for n in numbers_of(doc) if Decimal(n) not in cells]
        assert not missing, f"{customer}: numbers not in the XLSX: {missing}"
        contact = [r[1] for r in book["Statement"].iter_rows() if r[0].value == "Billing contact"]
        if customer == "acme":  # a contact that looks like a formula stays text
            assert contact[0].data_type == "s" and contact[0].value.startswith("=HYPERLINK")
        total_row = next(r for r in book["Statement"].iter_rows() if r[0].value == "Total")
        assert Decimal(str(total_row[1].value)) == Decimal(doc["totals"]["total"])


def test_statement_errors_are_one_line(seeded: Config, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    config = str(seeded.source)
    assert main(["report", "statement", config, "--customer", "nobody", "--month", MONTH]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "customers: no customer 'nobody' (known: acme, blue)")
    with pytest.raises(SystemExit) as exc:
        main(["report", "statement", config, "--customer", "acme", "--month", "2026-13"])
    assert exc.value.code == 2 and "'2026-13' is not a month" in capsys.readouterr().err
    assert main(["report", "statement", config, "--customer", "acme", "--month", "2025-01",
                 "--format", "json", "--output", str(tmp_path / "empty.json")]) == 1
    assert "no ledger rows in 2025-01" in capsys.readouterr().err


@pytest.mark.parametrize(("customers", "expected"), [
    ('[[customers]]\nid = "a"\nname = "A"\ncurrency = "EUR"\nprice = { kind = "fixed" }\n',
     'customers[0].price: kind = "fixed" needs per_kwh'),
    ('[[customers]]\nid = "a"\nname = "A"\ncurrency = "USD"\n'
     'price = { kind = "tariff", markup_pct = 5 }\n',
     "customers[0].currency: USD differs from the site currency EUR"),
    ('[[customers]]\nid = "a"\nname = "A"\ncurrency = "EUR"\nprice = { kind = "fixed", '
     'per_kwh = "0.1" }\n[[customers]]\nid = "a"\nname = "B"\ncurrency = "EUR"\n'
     'price = { kind = "fixed", per_kwh = "-0.1" }\n',
     "customers[1].price.per_kwh: Input should be greater than or equal to 0"),
    ('[[customers]]\nid = "a"\nname = "A"\ncurrency = "EUR"\nprice = { kind = "fixed", '
     'per_kwh = "0.1" }\n[[rigs]]\nid = "r1"\naddress = "10.0.0.1"\ncustomer = "zeta"\n',
     "customer: 'zeta' is not in [[customers]]"),
])
def test_contract_mistakes_are_one_line_each(tmp_path: Path, customers: str,
                                             expected: str) -> None:
    from hashwatt.config import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[site]\nname = "north"\ncurrency = "EUR"\n[[tariff.periods]]\n'
                    'from = 2026-01-01\nrate = 0.1\n' + customers)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert len(exc.value.problems) == 1, exc.value.problems
    assert expected in exc.value.problems[0] and str(path) in exc.value.problems[0]


def test_the_maintenance_flag_reaches_the_raw_data_as_the_tag_statements_read() -> None:
    from exporters.decode import rig_points
    from hashwatt.contract import RigReading

    reading = RigReading(ts_ms=1, site="north", rig="r3", collector="c1", customer="blue",
                         online=True, maintenance=True)
    assert rig_points(reading)[0].tags["maintenance"] == "yes"  # as rig_line() seeds it
