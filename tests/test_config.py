"""Configuration: typed models, and one clear line per problem naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporters.sinks import CONFIGS
from hashwatt.config import ConfigError, load_config

GOOD = """
[site]
name = "north"
timezone = "Europe/Berlin"
currency = "EUR"

[mqtt]
host = "broker.farm.local"
username = "collector"
password = { env = "HW_TEST_MQTT_PASSWORD" }

[influxdb]
api = "v1"
url = "http://127.0.0.1:8086"
database = "hashwatt"

[[pdus]]
id = "pdu-a1"
address = "10.0.1.250"
community = "public"

[[rigs]]
id = "r01-s01"
address = "10.0.1.11"
rack = "R01"
slot = 1
customer = "acme"
pdu = "pdu-a1"
outlet = 3
"""


# GOOD's lines (it starts with a newline): [site] 2, currency 5, [mqtt] 7, password 10,
# [influxdb] 12, [[pdus]] 17, [[rigs]] 22, its address 24; an appended [[rigs]] is line 31.


def write(tmp_path: Path, text: str, csv: str | None = None) -> Path:
    path = tmp_path / "hashwatt.toml"
    path.write_text(text)
    if csv is not None:
        (tmp_path / "inventory.csv").write_text(csv)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, sinks=CONFIGS)  # as every command loads it (hashwatt.cli._load)
    return err.value.problems


def test_a_valid_config_loads_into_typed_models(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "hunter2")
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.site.timezone == "Europe/Berlin"
    assert cfg.rigs[0].outlet == 3
    assert cfg.secret(cfg.mqtt.password) == "hunter2"


def test_a_secret_never_shows_in_the_config_repr(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "hunter2")
    cfg = load_config(write(tmp_path, GOOD))
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())


def test_a_secret_can_come_from_a_file_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "mqtt.secret").write_text("s3cret\n")
    cfg = load_config(write(tmp_path, GOOD.replace('{ env = "HW_TEST_MQTT_PASSWORD" }',
                                                   '{ file = "mqtt.secret" }')))
    assert cfg.secret(cfg.mqtt.password) == "s3cret"


def test_a_missing_secret_names_the_key_and_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HW_TEST_MQTT_PASSWORD", raising=False)
    path = write(tmp_path, GOOD)
    assert problems(path) == [f"{path}:10: mqtt.password.env: environment variable "
                              "HW_TEST_MQTT_PASSWORD is not set"]


def test_an_unknown_key_is_named_with_its_section(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD.replace('currency = "EUR"', 'currency = "EUR"\ncolour = "red"'))
    assert problems(path) == [f"{path}:6: site.colour: unknown key"]


def test_a_bad_address_names_the_rig_and_the_value(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD.replace("10.0.1.11", "10.0.1.311"))
    assert problems(path) == [f"{path}:24: rigs[0].address: '10.0.1.311' is not a valid IPv4 "
                              "address"]


def test_a_duplicate_rig_id_in_the_csv_names_the_line_and_the_first_one(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD + '\n[inventory]\ncsv = "inventory.csv"\n',
                 "id,address,rack,slot,customer\nr01-s02,10.0.1.12,R01,2,acme\n"
                 "r01-s01,10.0.1.13,R01,3,acme\n")
    assert problems(path) == [f"{tmp_path / 'inventory.csv'}:3: id: duplicate rig id "
                              f"'r01-s01' (first at {path}:22: rigs[0])"]


def test_a_bad_csv_cell_names_the_line_and_the_column(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD + '\n[inventory]\ncsv = "inventory.csv"\n',
                 "id,address,rack,slot\nr02-s01,10.0.2.11,R02,one\n")
    [line] = problems(path)
    assert line.startswith(f"{tmp_path / 'inventory.csv'}:2: slot: ")


def test_an_unknown_csv_column_is_warned_about_and_ignored(tmp_path: Path, monkeypatch,
                                                          caplog) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD + '\n[inventory]\ncsv = "inventory.csv"\n',
                 "id,address,colour,custmer\nr02-s01,10.0.2.11,red,acme\n")
    cfg = load_config(path)
    assert [r.id for r in cfg.rigs] == ["r01-s01", "r02-s01"]
    assert cfg.rigs[1].customer == ""
    inventory = tmp_path / "inventory.csv"
    assert f"{inventory}:1: unknown column 'colour' ignored" in caplog.text
    assert f"{inventory}:1: unknown column 'custmer' ignored; did you mean 'customer'?" \
        in caplog.text


def test_the_v2_api_requires_org_bucket_and_token(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD.replace('api = "v1"', 'api = "v2"'))
    assert problems(path) == [f'{path}:12: influxdb: api = "v2" needs org, bucket, token']


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[site\nname = 1")
    [line] = problems(path)
    assert line.startswith(f"{path}: not valid TOML") and "line 1" in line


def test_check_config_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("10.0.1.11", "bad address!")
                 .replace('password = { env = "HW_TEST_MQTT_PASSWORD" }', ""))
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "check-config", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [f"error: {path}:24: rigs[0].address: 'bad address!' is not "
                                       "a valid IP address or hostname"]


def test_check_config_accepts_the_shipped_sample(monkeypatch) -> None:
    sample = Path(__file__).parent.parent / "deploy" / "hashwatt.sample.toml"
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "check-config", str(sample)],
                         capture_output=True, text=True,
                         env={"HASHWATT_MQTT_COLLECTOR_PASSWORD": "x",
                              "HASHWATT_MQTT_BRIDGE_PASSWORD": "z", "HASHWATT_INFLUX_PASSWORD": "y",
                              "HASHWATT_PDU_AUTH_KEY": "a", "HASHWATT_PDU_PRIV_KEY": "p",
                              "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "ok: site" in run.stdout


def test_a_rig_mapped_to_an_unknown_pdu_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD.replace('pdu = "pdu-a1"', 'pdu = "pdu-zz"'))
    assert problems(path) == [f"{path}:22: rigs[0]: pdu: no PDU 'pdu-zz' in [[pdus]]"]


def test_two_rigs_on_one_outlet_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD + '\n[[rigs]]\nid = "r01-s02"\naddress = "10.0.1.12"\n'
                 'pdu = "pdu-a1"\noutlet = 3\n')
    assert problems(path) == [f"{path}:31: rigs[1]: outlet: pdu-a1 outlet 3 is already mapped "
                              "to r01-s01"]


def test_snmpv3_needs_a_user(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD.replace('community = "public"', 'snmp_version = "3"'))
    assert problems(path) == [f'{path}:17: pdus[0]: snmp_version = "3" needs v3_user']


def test_a_rig_on_a_link_units_outlet_names_its_unit(tmp_path: Path, monkeypatch) -> None:
    # outlet 3 of the master (no pdu_unit) and outlet 3 of link unit 2 are two outlets
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD + '\n[[rigs]]\nid = "r01-s02"\naddress = "10.0.1.12"\n'
                 'pdu = "pdu-a1"\npdu_unit = "2"\noutlet = 3\n')
    cfg = load_config(path)
    assert [(r.id, r.pdu_unit, r.outlet) for r in cfg.rigs] == [
        ("r01-s01", None, 3), ("r01-s02", "2", 3)]
    again = write(tmp_path, GOOD + '\n[[rigs]]\nid = "r01-s02"\naddress = "10.0.1.12"\n'
                  'pdu = "pdu-a1"\npdu_unit = "2"\noutlet = 3\n'
                  '\n[[rigs]]\nid = "r01-s03"\naddress = "10.0.1.13"\n'
                  'pdu = "pdu-a1"\npdu_unit = "2"\noutlet = 3\n')
    assert problems(again) == [f"{again}:38: rigs[2]: outlet: pdu-a1 unit 2 outlet 3 is already "
                               "mapped to r01-s02"]


def test_a_pdu_unit_without_its_pdu_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HW_TEST_MQTT_PASSWORD", "x")
    path = write(tmp_path, GOOD + '\n[[rigs]]\nid = "r01-s02"\naddress = "10.0.1.12"\n'
                 'pdu_unit = "2"\n')
    [line] = problems(path)
    assert line.startswith(f"{path}:31: rigs[1]") and "pdu_unit needs pdu and outlet" in line
