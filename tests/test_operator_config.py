"""The operator's config: spreadsheet CSVs as they come, host-only addresses, every problem in
one run with file:line, PDUs and meters from CSV, overlapping tariff windows, one-line CLI
errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hashwatt.config import ConfigError, load_config
from hashwatt.tomlplace import TomlPlaces

BASE = """[site]
name = "north"

[inventory]
csv = "inventory.csv"
"""
# BASE lines: [site] 1, name 2, [inventory] 4, csv 5


def config(tmp_path: Path, extra: str = "", csv: bytes | None = None,
           base: str = BASE) -> Path:
    path = tmp_path / "hashwatt.toml"
    path.write_text(base + extra)
    if csv is not None:
        (tmp_path / "inventory.csv").write_bytes(csv)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.problems


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hashwatt.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_an_excel_export_from_windows_reads_as_written(tmp_path: Path, caplog) -> None:
    # what Excel (German locale) writes for "CSV": Windows-1252, `;`, capitalised headers,
    # an extra column, a blank line and the trailing ";;;;" rows of formatted-but-empty cells
    text = ("ID;Address;Rack;Customer;Notes\r\n"
            "r01-s01;10.0.1.11;R01;Bäckerei Müller;fan noisy\r\n"
            "\r\n"
            "r01-s02;10.0.1.12;R01;Café Olé;\r\n"
            ";;;;\r\n;;;;\r\n")
    path = config(tmp_path, csv=text.encode("cp1252"))
    cfg = load_config(path)
    assert [(r.id, r.address, r.rack, r.customer) for r in cfg.rigs] == [
        ("r01-s01", "10.0.1.11", "R01", "Bäckerei Müller"),
        ("r01-s02", "10.0.1.12", "R01", "Café Olé")]
    assert f"{tmp_path / 'inventory.csv'}:1: unknown column 'Notes' ignored" in caplog.text


@pytest.mark.parametrize("encoding,sep", [("utf-8-sig", ","), ("utf-8", "\t"),
                                          ("utf-8", ";")])
def test_separators_and_a_byte_order_mark_are_detected(tmp_path: Path, encoding: str,
                                                      sep: str) -> None:
    rows = [["id", "address", "slot", "maintenance"], ["r09-s01", "10.0.9.11", "1", "yes"],
            ["", "", "", ""]]
    text = "\n".join(sep.join(r) for r in rows) + "\n"
    cfg = load_config(config(tmp_path, csv=text.encode(encoding)))
    [rig] = cfg.rigs
    assert (rig.id, rig.slot, rig.maintenance) == ("r09-s01", 1, True)


def test_a_bad_row_names_its_real_line_after_blank_lines(tmp_path: Path) -> None:
    # line 1 header, 2 blank, 3 good, 4 ",,," , 5 bad slot
    text = b"id,address,slot\n\nr01-s01,10.0.1.11,1\n,,,\nr01-s02,10.0.1.12,two\n"
    [line] = problems(config(tmp_path, csv=text))
    assert line.startswith(f"{tmp_path / 'inventory.csv'}:5: slot: ")


@pytest.mark.parametrize("address,why", [
    ("10.0.1.13:4028", "'10.0.1.13:4028': give the host only, without :4028"),
    ("http://10.0.1.14", "'http://10.0.1.14': give the host only, without http:// "
                         "(e.g. 10.0.1.14)"),
    ("https://miner-7.site/", "'https://miner-7.site/': give the host only, without https:// "
                              "(e.g. miner-7.site)"),
])
def test_an_address_must_be_a_host_only(tmp_path: Path, address: str, why: str) -> None:
    path = config(tmp_path, csv=f"id,address\nr01-s01,{address}\n".encode())
    [line] = problems(path)
    assert line.startswith(f"{tmp_path / 'inventory.csv'}:2: address: {why}")


def test_ipv6_and_hostnames_are_hosts(tmp_path: Path) -> None:
    path = config(tmp_path, csv=b"id,address\nr1,fd00::13\nr2,miner-2.farm.local\n")
    assert [r.address for r in load_config(path).rigs] == ["fd00::13", "miner-2.farm.local"]


def test_every_problem_of_every_file_comes_in_one_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HW_NO_SUCH_A", raising=False)
    monkeypatch.delenv("HW_NO_SUCH_B", raising=False)
    extra = ('\n[collector]\nintervl_s = 30\n'                        # lines 6, 7, 8
             '\n[mqtt]\npassword = { env = "HW_NO_SUCH_A" }\n'        # 9, 10, 11
             '\n[influxdb]\ndatabase = "x"\ntoken = { env = "HW_NO_SUCH_B" }\n'  # 12-15
             '\n[[rigs]]\nid = "r00"\naddress = "10.0.0.5:80"\n')      # 16-19
    path = config(tmp_path, extra, csv=b"id,address,outlet\nr01,10.0.1.11,0\n")
    inventory = tmp_path / "inventory.csv"
    assert problems(path) == [
        f"{path}:8: collector.intervl_s: unknown key; did you mean 'interval_s'?",
        f"{path}:19: rigs[0].address: '10.0.0.5:80': give the host only, without :80 "
        "(the ports are the firmware's or their own keys)",
        f"{inventory}:2: outlet: Input should be greater than or equal to 1",
        f"{path}:11: mqtt.password.env: environment variable HW_NO_SUCH_A is not set",
        f"{path}:15: influxdb.token.env: environment variable HW_NO_SUCH_B is not set",
    ]


def test_an_unknown_table_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = config(tmp_path, '\n[colector]\nid = "c1"\n', csv=b"id,address\n")
    assert problems(path) == [f"{path}:7: colector: unknown key; did you mean 'collector'?"]


PDUS_CSV = ("Id,Address,Rack,Community,SNMP_Version\n"
            "pdu-01,10.0.1.250,R01,env:HW_PDU_COMMUNITY,2c\n"
            "pdu-02,10.0.2.250,R02,public,\n")
METERS_CSV = "id;address;map;unit_id\nmain-1;10.0.0.40;eastron_sdm630;3\n"


def test_pdus_and_meters_come_from_csv_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_PDU_COMMUNITY", "s3cret")
    (tmp_path / "pdus.csv").write_text(PDUS_CSV)
    (tmp_path / "meters.csv").write_text(METERS_CSV)
    path = config(tmp_path, 'pdus_csv = "pdus.csv"\nmeters_csv = "meters.csv"\n',
                  csv=b"id,address,pdu,outlet\nr01-s01,10.0.1.11,pdu-01,1\n")
    cfg = load_config(path)
    assert [(p.id, p.rack, cfg.secret(p.community)) for p in cfg.pdus] == [
        ("pdu-01", "R01", "s3cret"), ("pdu-02", "R02", "public")]
    assert [(m.id, m.map, m.unit_id) for m in cfg.meters] == [("main-1", "eastron_sdm630", 3)]
    run = cli("check-config", str(path))
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{path}: ok: site north, 1 rig, 2 PDUs, 1 meter, influxdb not " \
                         "configured\n"


def test_a_pdu_csv_secret_that_is_not_set_is_named_by_line(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.delenv("HW_PDU_COMMUNITY", raising=False)
    (tmp_path / "pdus.csv").write_text(PDUS_CSV)
    path = config(tmp_path, 'pdus_csv = "pdus.csv"\n', csv=b"id,address\n")
    assert problems(path) == [f"{tmp_path / 'pdus.csv'}:2: community.env: environment "
                              "variable HW_PDU_COMMUNITY is not set"]


TARIFF = """
[[tariff.periods]]
from = 2026-01-01
rate = 0.10

[[tariff.periods.windows]]
name = "peak"
rate = 0.30
weekdays = ["mon", "tue", "wed", "thu", "fri"]
start = "17:00"
end = "20:00"

[[tariff.periods.windows]]
name = "evening"
rate = 0.20
weekdays = ["fri", "sat"]
start = "19:00"
end = "22:00"
"""
# TARIFF's own lines: 1 blank, [[tariff.periods]] 2, rate 4, second window header 13, its
# start 17; after BASE's 5 lines the second window header is line 5 + 13 = 18


def test_overlapping_time_of_use_windows_are_refused(tmp_path: Path) -> None:
    path = config(tmp_path, TARIFF, csv=b"id,address\n")
    assert problems(path) == [
        f"{path}:18: tariff.periods[0].windows[1]: window 'evening' 19:00-22:00 overlaps "
        "window 'peak' 17:00-20:00 (windows[0]) on fri: make them disjoint"]


def test_touching_windows_do_not_overlap(tmp_path: Path) -> None:
    path = config(tmp_path, TARIFF.replace('start = "19:00"', 'start = "20:00"'),
                  csv=b"id,address\n")
    assert load_config(path).tariff is not None


def test_toml_places_count_arrays_of_tables() -> None:
    places = TomlPlaces(TARIFF)
    assert places.line(("tariff", "periods", 0, "windows", 1, "start")) == 13 + 4
    assert places.line(("tariff", "periods", 0, "rate")) == 4


def test_check_config_counts_rigs_pdus_and_meters_and_maintenance(tmp_path: Path) -> None:
    path = config(tmp_path, '\n[[pdus]]\nid = "p1"\naddress = "10.0.0.9"\n',
                  csv=b"id,address,maintenance\nr1,10.0.0.1,\nr2,10.0.0.2,yes\n")
    run = cli("check-config", str(path))
    assert run.stdout == (f"{path}: ok: site north, 2 rigs (1 in maintenance), 1 PDU, "
                          "0 meters, influxdb not configured\n")


def test_a_folder_as_config_is_one_line(tmp_path: Path) -> None:
    run = cli("check-config", str(tmp_path))
    assert (run.returncode, run.stderr) == (2, f"error: {tmp_path}: is a folder, not a "
                                               "config file\n")


def test_a_month_13_is_one_line(tmp_path: Path) -> None:
    run = cli("report", "energy", str(config(tmp_path, csv=b"id,address\n")),
              "--month", "2026-13")
    assert (run.returncode, run.stderr) == (
        2, "error: hashwatt report: argument --month: '2026-13' is not a month: use "
           "YYYY-MM, e.g. 2026-10 (see hashwatt report --help)\n")


def test_influxdb_down_during_a_report_is_one_line_and_v_shows_the_traceback(
        tmp_path: Path) -> None:
    from sim.launch import free_port

    port = free_port()  # nothing listens there
    path = config(tmp_path, f'\n[influxdb]\nurl = "http://127.0.0.1:{port}"\n'
                            'database = "hashwatt"\n', csv=b"id,address\n")
    run = cli("report", "energy", str(path), "--month", "2026-10")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"error: cannot reach http://127.0.0.1:{port}: connection refused or unreachable "
        "([Errno 111] Connection refused); is InfluxDB running there? (run with -v for the "
        "details)"]
    verbose = cli("report", "energy", str(path), "--month", "2026-10", "-v")
    assert "Traceback" in verbose.stderr


def test_an_output_folder_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    path = config(tmp_path, csv=b"id,address\n")
    run = cli("report", "energy", str(path), "--month", "2026-10", "--output",
              str(tmp_path / "nope" / "oct.csv"))
    assert (run.returncode, run.stderr) == (
        2, f"error: --output {tmp_path / 'nope' / 'oct.csv'}: the folder "
           f"{tmp_path / 'nope'} does not exist\n")


def test_version_and_v_after_the_subcommand() -> None:
    from importlib.metadata import version

    run = cli("--version")
    assert run.stdout == f"hashwatt {version('hashwatt')}\n"
    from hashwatt.cli import build_parser

    assert build_parser().parse_args(["check-config", "x.toml", "-vv"]).verbose == 2
    assert build_parser().parse_args(["-v", "check-config", "x.toml"]).verbose == 1
    assert build_parser().parse_args(["check-config", "x.toml"]).verbose == 0
