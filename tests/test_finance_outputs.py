"""The finance outputs as a finance user opens them (issues 12 and 17), on one seeded month.

Berlin, October 2026 (745 h). kilo pays a fixed 0.10 EUR/kWh, 30.00 per rig and month and
5.00 per kW of 10 kW contracted, its contract starting on 15 October; lima pays the tariff
+10 % and 12.50 per rig and month. r1 (kilo, rack A, 2000 W) is polled every 30 s on 15 and
16 October, in maintenance 16 October 10:00-12:00; r2 (3000 W) is lima's until a poll at
09:07:10 on 15 October and kilo's from the poll after it (rack B). Readings on the minute
and half minute, the move between 09:07:10 and 09:07:40: midway, 09:07:25, inside the
09:00 quarter.

By hand (the expected figures below, written from the contract and the seeded readings):
- r1: 48 h x 2 kW = 96.000 kWh x 0.10 = 9.60 EUR; its fee 30.00 x 48 / 745 = 1.9329 ->
  1.93.
- r2 for kilo: from 09:07:25 on the 15th to the 17th 00:00: 38 h 52 min 35 s = 139955 s x
  3 kW = 116.629166... kWh (116.629) x 0.10 = 11.6629 -> 11.66; fee 30 x 139955 / 2682000
  = 1.5655 -> 1.57.
- capacity: 5.00 x 10 kW x 409 h (15 October 00:00 to 1 November 00:00, the fall-back day
  has 25 h) / 745 h = 27.4496 -> 27.45.
- kilo total = 9.60 + 11.66 + 1.93 + 1.57 + 27.45 = 52.21 EUR.
- r2 for lima: 9 h 7 min 25 s = 32845 s x 3 kW = 27.370833... kWh (27.371), at the tariff
  (0.20 off-peak, 0.30 peak 08:00-20:00 Thursday): 8 h x 3 kW x 0.20 = 4.80 + 4045 s x 3 kW
  x 0.30 = 1.01125 -> 5.81125 x 1.10 = 6.392375 -> 6.39; fee 12.50 x 32845 / 2682000 =
  0.1531 -> 0.15; lima total 6.54.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporters.decode import rig_points
from exporters.finance.ledger import rollup
from exporters.lineproto import Point
from hashwatt.cli import main
from hashwatt.config import Config, load_config
from hashwatt.contract import RigReading
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd
from tests.ledger_seed import fresh_ledger_db, write_points

pytestmark = pytest.mark.e2e
ZONE = ZoneInfo("Europe/Berlin")
TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.20
name = "off-peak"
[[tariff.periods.windows]]
name = "peak"
rate = 0.30
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "20:00"
"""
CUSTOMERS = """
[[customers]]
id = "kilo"
name = "Kilo Hosting"
currency = "EUR"
price = { kind = "fixed", per_kwh = "0.10" }
fees = { per_rig_month = "30.00", per_kw_month = "5.00", contracted_kw = "10" }
contract_start = 2026-10-15
[[customers]]
id = "lima"
name = "Lima Mining"
currency = "EUR"
price = { kind = "tariff", markup_pct = "10" }
fees = { per_rig_month = "12.50" }
[[rigs]]
id = "r1"
address = "10.0.0.1"
customer = "kilo"
[[rigs]]
id = "r2"
address = "10.0.0.2"
customer = "kilo"
"""


def at(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=ZONE).timestamp())


def reading(rig: str, ts: int, watts: float, customer: str, rack: str,
            maintenance: bool = False) -> list[Point]:
    return rig_points(RigReading(
        ts_ms=ts * 1000, site="west", rig=rig, collector="c1", rack=rack, customer=customer,
        online=True, hashrate_ths=0.0 if maintenance else 100.0, expected_hashrate_ths=100.0,
        maintenance=maintenance, power_w=watts, power_source="miner"))


@pytest.fixture(scope="module")
def month(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    db = fresh_ledger_db(influxd, "f")
    path = tmp_path_factory.mktemp("finance") / "site.toml"
    url = str(db.client.base_url).rstrip("/")
    path.write_text(f'[site]\nname = "west"\ntimezone = "Europe/Berlin"\ncurrency = "EUR"\n'
                    f'[influxdb]\nurl = "{url}"\ndatabase = "{db.database}"\n{TARIFF}\n'
                    f'{CUSTOMERS}')
    cfg = load_config(path)
    start, end = at(2026, 10, 15), at(2026, 10, 17)
    move = at(2026, 10, 15, 9, 7, 10)
    maint = (at(2026, 10, 16, 10), at(2026, 10, 16, 12))
    points: list[Point] = []
    for t in range(start, end, 30):
        points += reading("r1", t, 2000.0, "kilo", "A", maint[0] <= t < maint[1])
        points += reading("r2", t + 10, 3000.0, "lima" if t + 10 <= move else "kilo",
                          "B")
    write_points(db, points)
    rollup(cfg, start, end, now_s=at(2026, 11, 2))
    yield cfg
    db.close()


def run(*args: str) -> int:
    return main(list(args))


def test_statements_match_the_hand_figures_and_the_pdf_says_the_same(
        month: Config, tmp_path: Path) -> None:
    config = str(month.source)
    assert run("report", "statement", config, "--all-customers", "--month", "2026-10",
               "--format", "json", "--output", str(tmp_path)) == 0
    kilo = json.loads((tmp_path / "statement-west-kilo-2026-10.json").read_text())
    lima = json.loads((tmp_path / "statement-west-lima-2026-10.json").read_text())
    rigs = {r["rig"]: r for r in kilo["rigs"]}
    assert (rigs["r1"]["kwh"], rigs["r1"]["energy_cost"], rigs["r1"]["fee"]) == (
        "96.000", "9.60", "1.93")
    assert (rigs["r2"]["kwh"], rigs["r2"]["energy_cost"], rigs["r2"]["fee"]) == (
        "116.629", "11.66", "1.57")
    assert kilo["fees"]["capacity_fee"] == "27.45"
    assert kilo["fees"]["contract_hours"] == "409"
    assert kilo["totals"]["total"] == "52.21"
    [r2] = lima["rigs"]
    assert (r2["kwh"], r2["energy_cost"], r2["fee"]) == ("27.371", "6.39", "0.15")
    assert lima["totals"]["total"] == "6.54" and "contract_hours" not in lima["fees"]
    # the PDF carries the same totals as the JSON
    assert run("report", "statement", config, "--customer", "kilo", "--month", "2026-10",
               "--format", "pdf", "--output", str(tmp_path / "kilo.pdf")) == 0
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "kilo.pdf"), "-"],
                          check=True, capture_output=True, text=True).stdout
    for label, key in (("Energy (kWh)", "kwh"), ("Energy cost", "energy_cost"),
                       ("Rig fees", "rig_fees"), ("Capacity fee", "capacity_fee"),
                       ("Fees", "fees"), ("Total", "total"),
                       ("Availability (%)", "availability_pct")):
        line = next(x for x in text.splitlines() if x.strip().startswith(label + " "))
        assert kilo["totals"][key] in line.split(), (label, line)
    assert kilo["totals"]["availability_pct"] == "100.00"  # never above 100 %
    assert "10 kW x 5.00 EUR x 409 of 745 h under contract = 27.45 EUR" in " ".join(
        text.split())
    assert "52.21" in text


def test_a_closed_month_reproduces_byte_for_byte_from_its_ledger_state(
        month: Config, tmp_path: Path) -> None:
    """JSON, XLSX and PDF made twice from the same ledger state are the same bytes."""
    config = str(month.source)
    first = json.loads(_statement(config, tmp_path / "a.json", "json"))
    state = first["ledger_state"]["sha256"]
    for fmt in ("json", "xlsx", "pdf"):
        one = _statement(config, tmp_path / f"1.{fmt}", fmt, state)
        two = _statement(config, tmp_path / f"2.{fmt}", fmt, state)
        assert one == two, fmt


def _statement(config: str, out: Path, fmt: str, state: str | None = None) -> bytes:
    extra = ["--expect-ledger-state", state] if state else []
    assert run("report", "statement", config, "--customer", "kilo", "--month", "2026-10",
               "--format", fmt, "--output", str(out), *extra) == 0
    return out.read_bytes()


def test_the_energy_report_opens_in_pandas_and_libreoffice_with_the_same_totals(
        month: Config, tmp_path: Path) -> None:
    """The CSV is data only (pandas reads it with its defaults); the XLSX's TOTAL row is
    formulas that LibreOffice evaluates to the JSON's totals to the cent; number formats are
    kWh and currency."""
    pandas = pytest.importorskip("pandas")
    from openpyxl import load_workbook

    config = str(month.source)
    for fmt in ("csv", "xlsx", "json"):
        assert run("report", "energy", config, "--month", "2026-10", "--format", fmt,
                   "--output", str(tmp_path / f"energy.{fmt}")) == 0
    data = json.loads((tmp_path / "energy.json").read_text())
    total = data["total"]
    frame = pandas.read_csv(tmp_path / "energy.csv")
    assert list(frame["customer"]) == [r["customer"] for r in data["rows"]]
    assert frame["kwh"].dtype.kind == "f" and frame["cost"].dtype.kind == "f"
    with (tmp_path / "energy.csv").open() as f:  # exactly: every cell a plain decimal
        rows = list(csv.DictReader(f))
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal(total["cost"])
    assert sum(Decimal(r["kwh"]) for r in rows) == Decimal(total["kwh"])
    sheet = load_workbook(tmp_path / "energy.xlsx").active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    last = sheet.max_row
    kwh_col, cost_col = header.index("kwh") + 1, header.index("cost") + 1
    assert "TOTAL" in [c.value for c in sheet[last]]
    assert str(sheet.cell(last, cost_col).value).startswith("=SUM(")
    assert sheet.cell(2, kwh_col).number_format == "#,##0.000"
    assert sheet.cell(2, cost_col).number_format == '#,##0.00 "EUR"'
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) is not installed: `make finance-check` installs it")
    computed = _libreoffice_values(soffice, tmp_path / "energy.xlsx", tmp_path)
    assert "TOTAL" in computed[-1]
    got = dict(zip(header, computed[-1], strict=False))
    assert Decimal(got["cost"]).quantize(Decimal("0.01")) == Decimal(total["cost"])
    assert Decimal(got["kwh"]).quantize(Decimal("0.001")) == Decimal(total["kwh"])
    # LibreOffice reads the CSV's numbers as numbers, not text
    as_xlsx = _libreoffice_convert(soffice, tmp_path / "energy.csv", tmp_path / "lo", "xlsx")
    cells = load_workbook(as_xlsx).active
    assert cells is not None
    assert isinstance(cells.cell(2, kwh_col).value, float | int)


def _libreoffice_convert(soffice: str, source: Path, out: Path, fmt: str) -> Path:
    out.mkdir(exist_ok=True)
    profile = out / "profile"
    subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless",
                    "--convert-to", fmt, "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=120)
    return out / f"{source.stem}.{fmt}"


def _libreoffice_values(soffice: str, xlsx: Path, tmp: Path) -> list[list[str]]:
    """The sheet as LibreOffice computes it (formulas evaluated), through its CSV export."""
    converted = _libreoffice_convert(soffice, xlsx, tmp / "lo-csv", "csv")
    return list(csv.reader(io.StringIO(converted.read_text())))


def test_months_only_in_the_old_hourly_ledger_are_named_not_silently_dropped(
        month: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README: old `energy_hourly` rows are not converted (UTC hours carrying the bugs the
    quarter ledger fixed); a report over hours found only there warns and says how to
    rebuild them. Seeded: 3 old hourly rows on 2 October (no quarter rows that day) and one
    on 15 October 12:00 UTC (the quarter ledger has that hour): 3 hours named."""
    from exporters.sinks.influx_common import influx_settings

    settings = influx_settings(month)
    db = InfluxQL(str(settings.url), settings.database)
    try:
        hours = [at(2026, 10, 2, h) for h in (1, 2, 3)] + [at(2026, 10, 15, 14)]
        lines = "\n".join(f'energy_hourly,site=west,rig=r1,customer=kilo kwh=2.0 {h * 10**9}'
                          for h in hours)
        resp = db.client.post("/write", params={"db": db.database, "rp": "ledger"},
                              content=lines.encode())
        assert resp.status_code == 204, resp.text
        assert run("report", "energy", str(month.source), "--month", "2026-10", "--format",
                   "json", "--output", str(tmp_path / "e.json")) == 0
        err = capsys.readouterr().err
        assert "warning: 3 hours of 2026-10 are only in the old hourly ledger (energy_hourly)" \
            in err
        assert run("report", "energy", str(month.source), "--month", "2026-09") == 3
        assert "no ledger rows" in capsys.readouterr().err
    finally:
        db.close()


def test_xlsx_is_a_zip_whose_members_carry_no_wall_clock(month: Config, tmp_path: Path) -> None:
    """Reproducible XLSX: no member dated by the clock of the run that made it."""
    out = _statement(str(month.source), tmp_path / "s.xlsx", "xlsx")
    with zipfile.ZipFile(io.BytesIO(out)) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
