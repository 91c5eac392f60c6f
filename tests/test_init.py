"""`hashwatt init` against the real influxd 1.6.7 with auth-enabled = true: the first admin,
the databases and retention policies, the bridge's login and read-only logins, twice (the
second run changes nothing and still succeeds), and what each login may then do."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporters.finance.store import MEASUREMENT, ledger_client
from exporters.sinks import WriteUnavailable, make_sink
from hashwatt.config import load_config
from hashwatt.influxql import InfluxQL, InfluxQLError
from sim.launch import Influxd

SECRETS = {"HASHWATT_INFLUX_ADMIN_USER": "admin", "HASHWATT_INFLUX_ADMIN_PASSWORD": "adm1n-S3cret",
           "T_WRITER": "wr1ter-S3cret", "T_GRAFANA": "gr4fana-S3cret", "T_WALL": "w4ll-S3cret"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    influxd = Influxd(tmp_path_factory.mktemp("init-influxd"), auth=True).start()
    yield influxd
    influxd.stop()


def write_config(path: Path, url: str) -> Path:
    path.write_text('state_dir = "."\n[site]\nname = "north"\n'
                    f'[influxdb]\nurl = "{url}"\ndatabase = "hashwatt"\n'
                    'ledger_database = "hashwatt_ledger"\nusername = "hashwatt-bridge"\n'
                    'password = { env = "T_WRITER" }\n')
    path.chmod(0o600)
    return path


def run_init(config: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **SECRETS}
    return subprocess.run([sys.executable, "-m", "hashwatt.cli", "init", str(config),
                           "--reader", "hashwatt-grafana:T_GRAFANA",
                           "--ops-reader", "hashwatt-wall:T_WALL"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_init_sets_up_an_auth_enabled_server_twice_and_every_login_gets_its_access(
        server: Influxd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "hashwatt.toml", server.url)
    first = run_init(config)
    assert first.returncode == 0, first.stderr
    again = run_init(config)  # idempotent: same output, no error
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    passwords = [v for k, v in SECRETS.items() if k != "HASHWATT_INFLUX_ADMIN_USER"]
    assert not any(p in first.stdout + first.stderr for p in passwords)

    admin = InfluxQL(server.url, "", username="admin",
                     password=SECRETS["HASHWATT_INFLUX_ADMIN_PASSWORD"])
    policies = {(r["name"], r["duration"], r["default"])
                for r in admin.rows('SHOW RETENTION POLICIES ON "hashwatt"')}
    assert ("raw", "1344h0m0s", True) in policies  # 8 weeks = 56 x 24 h
    assert {(r["name"], r["duration"], r["default"]) for r in admin.rows(
        'SHOW RETENTION POLICIES ON "hashwatt_ledger"')} >= {("forever", "0s", True)}

    # the bridge writes readings and the ledger through the sinks the config makes
    monkeypatch.setenv("T_WRITER", SECRETS["T_WRITER"])
    cfg = load_config(config)
    hour = int(time.time()) // 3600 * 3600 - 3600  # inside the 8-week policy
    make_sink(cfg).post(f"rig,site=north,rig=r1 up=1i {hour * 1000}\n".encode())
    make_sink(cfg, ledger=True).post(
        f"{MEASUREMENT},site=north,customer=acme,rig=r1 kwh=3.25,kwh_measured=3.25,"
        f"kwh_estimated=0,cost=0.39,coverage=1 {hour * 1000}\n".encode())
    # the bridge's own ledger client reads it back where the finance code looks
    ledger, source = ledger_client(cfg)
    assert [r["kwh"] for r in ledger.rows(f"SELECT kwh FROM {source}")] == [3.25]
    # Grafana's login reads both databases, as its two data sources do
    grafana = InfluxQL(server.url, "hashwatt", username="hashwatt-grafana",
                       password=SECRETS["T_GRAFANA"])
    assert grafana.rows('SELECT "up" FROM "rig"')[0]["up"] == 1
    assert InfluxQL(server.url, "hashwatt_ledger", username="hashwatt-grafana",
                    password=SECRETS["T_GRAFANA"]).rows(
        f'SELECT "kwh" FROM "{MEASUREMENT}"')[0]["kwh"] == 3.25

    # the wall screen's login reads operations and nothing else
    wall = InfluxQL(server.url, "hashwatt", username="hashwatt-wall", password=SECRETS["T_WALL"])
    assert wall.rows('SELECT "up" FROM "rig"')[0]["up"] == 1
    with pytest.raises(InfluxQLError, match="not authorized"):
        wall.rows(f'SELECT * FROM "hashwatt_ledger".."{MEASUREMENT}"')
    with pytest.raises(InfluxQLError, match="not authorized"):
        InfluxQL(server.url, "hashwatt_ledger", username="hashwatt-wall",
                 password=SECRETS["T_WALL"]).rows(
            f'SELECT * FROM "{MEASUREMENT}"')
    # readers cannot write
    from exporters.sinks import InfluxV1Sink

    with pytest.raises(WriteUnavailable, match="HTTP 403"):
        InfluxV1Sink(server.url, "hashwatt", username="hashwatt-grafana",
                     password=SECRETS["T_GRAFANA"]).post(
            f"rig,site=north,rig=evil up=0i {hour * 1000}\n".encode())


def test_init_without_admin_credentials_says_so_in_one_line(
        server: Influxd, tmp_path: Path) -> None:
    config = write_config(tmp_path / "hashwatt.toml", server.url)
    result = subprocess.run([sys.executable, "-m", "hashwatt.cli", "init", str(config)],
                            env={"PATH": "/usr/bin:/bin", "T_WRITER": "x"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: hashwatt init: the server requires authentication: set "
        "HASHWATT_INFLUX_ADMIN_USER and HASHWATT_INFLUX_ADMIN_PASSWORD"]
