"""A customer's own view, against the real influxd 1.6.7 with auth-enabled = true: the set-up
step makes per-customer databases and read-only logins (idempotently), the bridge copies
each customer's points into its database (without the site's tariff), the rollup's ledger
rows follow, and customer A's login reads its own database but nothing of customer B's or of
the site's through the HTTP /query API. The Grafana set-up is checked as a plan (no Grafana
server runs here)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporters.bridge import Bridge
from exporters.customers.access import grafana_plan, setup_influx
from exporters.customers.fanout import sync_ledgers
from exporters.intake import Inbound
from exporters.sinks import InfluxV1Sink, make_sink
from hashwatt.config import Config, load_config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd

pytestmark = pytest.mark.e2e
ADMIN_PASSWORD = "adm1n-" + uuid.uuid4().hex[:8]
ACME_PASSWORD = "acme-read-" + uuid.uuid4().hex[:8]
BLUE_PASSWORD = "blue'read\\" + uuid.uuid4().hex[:8]  # a quote and a backslash survive


@pytest.fixture(scope="module")
def auth_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = Influxd(tmp_path_factory.mktemp("customers-influxd"), auth=True).start()
    # 1.x with auth and no user yet accepts only the first admin's CREATE USER
    InfluxQL(server.url, "").execute(
        f"CREATE USER admin WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES")
    site = InfluxQL(server.url, "site", username="admin", password=ADMIN_PASSWORD)
    site.create_database()
    site.execute('CREATE RETENTION POLICY "ledger" ON "site" DURATION INF REPLICATION 1')
    site.close()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cfg(auth_influx: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Config:
    folder = tmp_path_factory.mktemp("customers-cfg")
    for name, secret in (("admin", ADMIN_PASSWORD), ("acme", ACME_PASSWORD),
                         ("blue", BLUE_PASSWORD), ("acme-gf", "acme-grafana"),
                         ("blue-gf", "blue-grafana")):
        (folder / f"{name}.secret").write_text(secret)
    path = folder / "site.toml"
    path.write_text(f"""
[site]
name = "north"
currency = "EUR"
[influxdb]
url = "{auth_influx.url}"
database = "site"
username = "admin"
password = {{ file = "admin.secret" }}
[[tariff.periods]]
from = 2026-01-01
rate = 0.1
[[customers]]
id = "acme"
name = "Acme"
currency = "EUR"
price = {{ kind = "fixed", per_kwh = "0.09" }}
access.password = {{ file = "acme.secret" }}
access.grafana_password = {{ file = "acme-gf.secret" }}
[[customers]]
id = "blue"
name = "Blue"
currency = "EUR"
price = {{ kind = "tariff", markup_pct = "5" }}
access.password = {{ file = "blue.secret" }}
access.grafana_password = {{ file = "blue-gf.secret" }}
[[customers]]
id = "cyan"
name = "Cyan (statements only, no view)"
currency = "EUR"
price = {{ kind = "fixed", per_kwh = "0.1" }}
[bridge]
dead_letter_file = "dead.jsonl"
""")
    return load_config(path)


def reading(rig: str, customer: str, ts_ms: int) -> Inbound:
    doc: dict[str, Any] = {
        "schema": 1, "kind": "rig", "ts_ms": ts_ms, "site": "north", "rig": rig,
        "collector": "c1", "rack": "R1", "customer": customer, "make": "AntMiner",
        "model": "S19 Pro", "online": True, "hashrate_ths": 110.0, "power_w": 3250.0,
        "power_source": "miner", "boards": [{"board": 0, "hashrate_ths": 36.5}]}
    return Inbound(0, 0, f"hashwatt/v1/north/rig/{rig}", json.dumps(doc).encode(), time.time())


def query(server: Influxd, user: str, password: str, db: str, q: str) -> httpx.Response:
    return httpx.get(f"{server.url}/query", params={"db": db, "q": q}, auth=(user, password))


@pytest.fixture(scope="module")
def populated(cfg: Config, auth_influx: Influxd) -> Config:
    admin = InfluxQL(auth_influx.url, "", username="admin", password=ADMIN_PASSWORD)
    first, second = setup_influx(cfg, admin), setup_influx(cfg, admin)  # idempotent
    admin.close()
    assert first == second
    assert first[0] == ("customer acme: database hashwatt_c_acme (raw 8w, ledger forever), "
                        "user customer_acme READ on hashwatt_c_acme only")
    assert first[2] == "customer cyan: no view of its own (access.password not set)"
    now = int(time.time() * 1000)
    bridge = Bridge(cfg, make_sink(cfg))
    bridge.process([reading("a1", "acme", now - 2000), reading("a2", "acme", now - 1000),
                    reading("b1", "blue", now - 1000), reading("x1", "", now - 1000),
                    reading("c1", "cyan", now - 1000)])
    assert bridge.counters.messages == 5 and bridge.fanout is not None
    assert set(bridge.fanout.sinks) == {"acme", "blue"}  # cyan has no view: no copy
    bridge.close()  # writes the customers' queued copies
    assert bridge.fanout.errors == 0
    return cfg


def values(resp: httpx.Response) -> list[list[Any]]:
    return [v for r in resp.json().get("results", []) for s in r.get("series", [])
            for v in s.get("values", [])]


def test_a_customer_reads_its_own_rigs_without_the_site_tariff(
        populated: Config, auth_influx: Influxd) -> None:
    resp = query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_acme",
                 'SELECT * FROM "rig"')
    assert resp.status_code == 200, resp.text
    series = resp.json()["results"][0]["series"][0]
    rows = [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    assert sorted(r["rig"] for r in rows) == ["a1", "a2"]
    assert "rate_per_kwh" not in series["columns"] and "cost_per_h" not in series["columns"]
    boards = query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_acme",
                   'SELECT count("hashrate_ths") FROM "rig_board"')
    assert values(boards)[0][1] == 2
    # the site's database has all four rigs with the tariff (admin's view)
    site = query(auth_influx, "admin", ADMIN_PASSWORD, "site", 'SELECT * FROM "rig"')
    site_series = site.json()["results"][0]["series"][0]
    assert len(site_series["values"]) == 5 and "rate_per_kwh" in site_series["columns"]
    # influxd lists a reader only the databases it may read
    shown = query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_acme",
                  "SHOW DATABASES")
    assert values(shown) == [["hashwatt_c_acme"]]


@pytest.mark.parametrize(("db", "q"), [
    ("hashwatt_c_blue", 'SELECT * FROM "rig"'),
    ("hashwatt_c_acme", 'SELECT * FROM "hashwatt_c_blue"."raw"."rig"'),
    ("site", 'SELECT * FROM "rig"'),
    ("hashwatt_c_acme", 'SELECT * FROM "site"."autogen"."rig"'),
    ("hashwatt_c_acme", 'SELECT * FROM "site"."ledger"."energy_quarter"'),
    ("hashwatt_c_acme", 'SHOW MEASUREMENTS ON "hashwatt_c_blue"'),
    ("hashwatt_c_acme", 'GRANT READ ON "hashwatt_c_blue" TO "customer_acme"'),
])
def test_a_customer_cannot_read_another_customers_or_the_sites_data(
        populated: Config, auth_influx: Influxd, db: str, q: str) -> None:
    resp = query(auth_influx, "customer_acme", ACME_PASSWORD, db, q)
    # influxd 1.6.7 answers 403 {"error":"error authorizing query: customer_acme not
    # authorized to execute statement '...', requires READ on hashwatt_c_blue"} (seen here)
    assert resp.status_code == 403, resp.text
    assert "not authorized" in resp.text and values(resp) == []


def test_a_customer_login_cannot_write_and_a_wrong_password_is_refused(
        populated: Config, auth_influx: Influxd) -> None:
    write = httpx.post(f"{auth_influx.url}/write", params={"db": "hashwatt_c_acme"},
                       content=b"rig,rig=fake,customer=acme hashrate_ths=1 1",
                       auth=("customer_acme", ACME_PASSWORD))
    assert write.status_code == 403, write.text
    wrong = query(auth_influx, "customer_acme", BLUE_PASSWORD, "hashwatt_c_acme",
                  'SELECT * FROM "rig"')
    assert wrong.status_code == 401
    # blue's password with a quote and a backslash was set exactly
    blue = query(auth_influx, "customer_blue", BLUE_PASSWORD, "hashwatt_c_blue",
                 'SELECT "rig", "power_w" FROM "rig"')
    assert blue.status_code == 200 and [v[1] for v in values(blue)] == ["b1"]


def test_a_stale_grant_on_another_database_is_revoked(cfg: Config, populated: Config,
                                                      auth_influx: Influxd) -> None:
    admin = InfluxQL(auth_influx.url, "", username="admin", password=ADMIN_PASSWORD)
    try:
        admin.execute('GRANT READ ON "hashwatt_c_blue" TO "customer_acme"')
        assert query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_blue",
                     'SELECT * FROM "rig"').status_code == 200
        done = setup_influx(cfg, admin)
    finally:
        admin.close()
    assert "user customer_acme: revoked READ on hashwatt_c_blue" in done
    assert query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_blue",
                 'SELECT * FROM "rig"').status_code == 403


def test_the_ledger_rows_reach_the_customers_database(populated: Config,
                                                      auth_influx: Influxd) -> None:
    hour = int(time.time() // 3600 * 3600) - 7200
    sink = InfluxV1Sink(auth_influx.url, "site", username="admin", password=ADMIN_PASSWORD,
                        retention_policy="ledger")
    sink.post("\n".join([
        f'energy_quarter,customer=acme,rack=R1,rig=a1,site=north kwh=0.8125,'
        f'kwh_measured=0.8125,kwh_estimated=0,cost=0.08125,rate_per_kwh=0.1,coverage=1,'
        f'source="pdu_energy" {hour * 1000}',
        f'energy_quarter,customer=blue,rack=R1,rig=b1,site=north kwh=0.775,kwh_measured=0,'
        f'kwh_estimated=0.775,cost=0.0775,rate_per_kwh=0.1,coverage=1,source="miner" '
        f'{hour * 1000}']).encode())
    sink.close()
    assert sync_ledgers(populated, hour - 3600, hour + 3600) == 2
    resp = query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_acme",
                 'SELECT * FROM "ledger"."energy_quarter"')
    series = resp.json()["results"][0]["series"][0]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert (row["rig"], row["kwh"], row["source"]) == ("a1", 0.8125, "pdu_energy")
    assert "cost" not in series["columns"]  # the site's tariff cost is not the customer's
    assert len(series["values"]) == 1


def test_grafana_plan_gives_each_customer_only_its_own_datasource(cfg: Config) -> None:
    calls = grafana_plan(cfg, "http://influxdb:8086")
    by_org: dict[str, list[Any]] = {}
    for call in calls:
        by_org.setdefault(call.org or "", []).append(call)
    for customer, password in (("acme", ACME_PASSWORD), ("blue", BLUE_PASSWORD)):
        mine = by_org[customer]
        ds = next(c.body for c in mine if c.method == "ENSURE_DATASOURCE")
        assert ds is not None
        assert (ds["user"], ds["jsonData"]["dbName"], ds["secureJsonData"]["password"]) == (
            f"customer_{customer}", f"hashwatt_c_{customer}", password)
        member = next(c.body for c in mine if c.method == "ENSURE_MEMBER")
        assert member == {"loginOrEmail": f"customer_{customer}", "role": "Viewer"}
        assert any(c.method == "REMOVE_FROM_OTHER_ORGS" for c in mine)
        board = next(c.body for c in mine if c.path == "/api/dashboards/db")
        assert board is not None
        for panel in board["dashboard"]["panels"]:
            assert panel["datasource"]["uid"] == ds["uid"]
            assert "site" not in json.dumps(panel["targets"]).replace('"site"', "")
    text = json.dumps([c.body for c in calls])
    assert ADMIN_PASSWORD not in text  # the site's writer login never reaches Grafana


def test_the_customer_copy_cuts_exactly_the_site_tariff_off_a_rendered_line() -> None:
    from exporters.customers.fanout import PRIVATE_FIELDS
    from exporters.lineproto import Point
    from exporters.sinks import InfluxV1Sink
    from exporters.sinks.base import BaseSink

    class Lines(BaseSink):  # any other sink: the point encoded again without the fields
        def encode(self, points: Any) -> list[str]:
            return [p.line() for p in points]

    tags = {"site": "north", "rig": "a1", "customer": "acme"}
    cases = [
        # the decoder's order: tariff figures last; an error text that looks like a field
        ({"online": True, "error": 'x,rate_per_kwh=9 cost_per_h="', "power_w": 3250.0,
          "rate_per_kwh": 0.1, "cost_per_h": 0.325},
         'rig,customer=acme,rig=a1,site=north online=true,'
         'error="x,rate_per_kwh=9 cost_per_h=\\"",power_w=3250.0 1000'),
        ({"power_w": 10.0, "rate_per_kwh": 0.1}, "rig,customer=acme,rig=a1,site=north "
         "power_w=10.0 1000"),
        ({"rate_per_kwh": 0.1, "cost_per_h": 0.2}, None),  # nothing of the customer's left
        # another order: rendered again without the tariff figures
        ({"rate_per_kwh": 0.1, "power_w": 10.0}, "rig,customer=acme,rig=a1,site=north "
         "power_w=10.0 1000"),
        ({"power_w": 10.0}, "rig,customer=acme,rig=a1,site=north power_w=10.0 1000"),
    ]
    influx = InfluxV1Sink("http://127.0.0.1:9", "x")
    for fields, expected in cases:
        point = Point("rig", tags, fields, 1000)  # type: ignore[arg-type]
        assert influx.without(point, point.line(), PRIVATE_FIELDS) == expected
        assert Lines().without(point, point.line(), PRIVATE_FIELDS) == expected
    influx.close()


def test_customers_setup_command_is_idempotent_and_keeps_passwords_off_argv(
        cfg: Config, populated: Config, auth_influx: Influxd,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hashwatt.cli import main

    monkeypatch.setenv("HASHWATT_INFLUX_ADMIN_USER", "admin")
    monkeypatch.setenv("HASHWATT_INFLUX_ADMIN_PASSWORD", ADMIN_PASSWORD)
    assert main(["customers", "setup", str(cfg.source)]) == 0
    out = capsys.readouterr().out
    assert "ok: customer blue: database hashwatt_c_blue" in out
    assert ACME_PASSWORD not in out and BLUE_PASSWORD not in out
    assert query(auth_influx, "customer_acme", ACME_PASSWORD, "hashwatt_c_acme",
                 'SELECT count("power_w") FROM "rig"').status_code == 200



def test_hashwatt_init_sets_up_the_customers_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from hashwatt.cli import main

    server = Influxd(tmp_path / "influxd", auth=True).start()  # no user yet: init makes one
    try:
        (tmp_path / "acme.secret").write_text(ACME_PASSWORD)
        path = tmp_path / "init.toml"
        path.write_text(f"""
[site]
name = "north"
[influxdb]
url = "{server.url}"
database = "hashwatt"
[[customers]]
id = "acme"
name = "Acme"
currency = "USD"
price = {{ kind = "fixed", per_kwh = "0.09" }}
access.password = {{ file = "acme.secret" }}
""")
        monkeypatch.setenv("HASHWATT_INFLUX_ADMIN_USER", "root")
        monkeypatch.setenv("HASHWATT_INFLUX_ADMIN_PASSWORD", ADMIN_PASSWORD)
        assert main(["init", str(path)]) == 0
        assert main(["init", str(path)]) == 0  # idempotent
        out = capsys.readouterr().out
        assert out.count("ok: customer acme: database hashwatt_c_acme") == 2
        own = query(server, "customer_acme", ACME_PASSWORD, "hashwatt_c_acme", "SHOW DATABASES")
        assert own.status_code == 200 and values(own) == [["hashwatt_c_acme"]]
        assert query(server, "customer_acme", ACME_PASSWORD, "hashwatt",
                     'SELECT * FROM "rig"').status_code == 403
    finally:
        server.stop()


def test_customers_setup_works_on_a_server_without_auth(influxd: Influxd,
                                                         tmp_path: Path) -> None:
    from exporters.customers.access import setup_customers

    name = f"c{uuid.uuid4().hex[:6]}"
    path = tmp_path / "noauth.toml"
    path.write_text(f"""
[site]
name = "north"
[influxdb]
url = "{influxd.url}"
database = "hashwatt"
[[customers]]
id = "{name}"
name = "No auth"
currency = "USD"
price = {{ kind = "fixed", per_kwh = "0.09" }}
access.password = "{ACME_PASSWORD}"
""")
    path.chmod(0o600)
    # the anonymous admin client of a server without auth stays usable (it was closed early)
    assert setup_customers(load_config(path))[0].startswith(f"customer {name}: database")


def test_the_bridge_role_copies_for_customers_without_reading_their_secrets(
        cfg: Config) -> None:
    from pydantic import SecretStr

    from exporters.customers.fanout import make_fanout
    from hashwatt.config import SecretRef

    bridge_cfg = load_config(cfg.source, "bridge")
    acme = next(c for c in bridge_cfg.customers if c.id == "acme")
    assert isinstance(acme.access.password, SecretRef)  # a reference, never read
    assert not isinstance(acme.access.password, SecretStr)
    fanout = make_fanout(bridge_cfg)
    assert fanout is not None and set(fanout.sinks) == {"acme", "blue"}
    fanout.close()


def test_setup_refuses_a_server_that_is_not_influxdb_1x(cfg: Config, victoria: Any) -> None:
    from hashwatt.config import ConfigError

    admin = InfluxQL(victoria.url, "")  # a real server without InfluxDB 1.x's user model
    try:
        with pytest.raises(ConfigError) as exc:
            setup_influx(cfg, admin)
    finally:
        admin.close()
    assert len(exc.value.problems) == 1
    assert "customer databases and logins are set up here on 1.x only" in str(exc.value)


def test_the_rollup_command_copies_the_customers_ledger_rows_too(
        populated: Config, capsys: pytest.CaptureFixture[str]) -> None:
    from hashwatt.cli import main

    assert main(["rollup", str(populated.source), "--hours", "2"]) == 0
    out = capsys.readouterr().out
    assert "ledger rows copied to their databases" in out, out
