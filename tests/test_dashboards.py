"""Dashboards and alert rules: every query runs on a real influxd seeded with known data,
macros expanded as Grafana expands them, and the numbers are the ones the data implies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.build import ALERTING, DASHBOARDS, main, outputs
from dashboards.common import TIMEZONE as TZ
from dashboards.influxql import DATASOURCE_UID, LEDGER_UID
from exporters.decode import pdu_points, rig_points
from exporters.lineproto import Point
from exporters.sinks import InfluxV1Sink
from hashwatt.contract import PduReading, PhaseReading, RigReading
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd
from tests.grafana import (
    ALL,
    Databases,
    evaluate_rule,
    expand,
    frames,
    panel_queries,
    relative_start,
    run_panel,
    variable_options,
)

NOW = time.time()
RATE = 0.12  # currency per kWh
# (rig, rack, slot, customer, model, hashrate TH/s, power W, hottest chip °C, limit °C)
RIGS = [("a", "R01", 1, "acme", "S19 Pro", 100.0, 3250.0, 80.0, 95.0),
        ("b", "R01", 2, "acme", "S19 Pro", 110.0, 3300.0, 99.0, 95.0),
        ("c", "R02", 1, "blockfarm", "Avalon 1246", 90.0, 3420.0, 75.0, 100.0)]
LIVE_J_TH = (3250.0 + 3300.0 + 3420.0) / (100.0 + 110.0 + 90.0)
LIVE_COST_PER_H = round(sum(w / 1000 * RATE for *_, w, _t, _l in RIGS), 6)


def boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}


def alerting(name: str) -> dict[str, Any]:
    return dict(json.loads((ALERTING / f"{name}.json").read_text()))


def reading(rig: tuple, ts_s: float, **changes: Any) -> RigReading:
    rid, rack, slot, customer, model, ths, watts, temp, limit = rig
    r = RigReading(ts_ms=int(ts_s * 1000), site="north", rig=rid, collector="c1", rack=rack,
                   slot=slot, customer=customer, model=model, online=True, hashrate_ths=ths,
                   expected_hashrate_ths=ths, power_w=watts, power_source="pdu",
                   temp_max_c=temp, temp_limit_c=limit, fans_rpm=[4000, 4100],
                   boards_total=3, uptime_s=1000)
    return r.model_copy(update=changes)


def with_cost(points: list[Point]) -> list[Point]:
    """Add what the tariff step of the bridge writes (rate and cost per hour)."""
    out = []
    for p in points:
        if p.measurement == "rig" and "power_w" in p.fields:
            cost = round(float(p.fields["power_w"]) / 1000 * RATE, 6)
            p = p._replace(fields={**p.fields, "rate_per_kwh": RATE, "cost_per_h": cost})
        out.append(p)
    return out


# two cycles of collector c1 in one minute: the later one at NOW - 30 s, the earlier one at
# the start of that minute (1 ms earlier still if NOW - 30 s falls on the minute itself)
LATER_MS = int((NOW - 30) * 1000)
EARLIER_MS = LATER_MS // 60_000 * 60_000 - (LATER_MS % 60_000 == 0)
DELIVERY_EARLIER = {"spool_memory": 9, "unstored": 4, "resent": 31, "spool_disk_errors": 1,
                    "broker_connected": True, "fields_dropped": 4}
DELIVERY_LATER = {"spool_memory": 5, "unstored": 12, "resent": 40, "spool_disk_errors": 2,
                  "broker_connected": False, "fields_dropped": 3}


def seed(sink: InfluxV1Sink) -> None:
    points: list[Point] = []
    for rig in RIGS:
        # ten minutes ago the rigs looked different: live panels must not see it
        points += with_cost(rig_points(reading(rig, NOW - 600, hashrate_ths=1.0, power_w=99.0)))
        points += with_cost(rig_points(reading(rig, NOW - 30)))
    offline = RigReading(ts_ms=int((NOW - 30) * 1000), site="north", rig="d", collector="c1",
                         rack="R02", slot=2, customer="acme", model="S19 Pro", online=False,
                         error="no reply within 10 s")
    points += rig_points(offline)
    pdu = PduReading(ts_ms=int((NOW - 30) * 1000), site="north", pdu="pdu-r01",
                     collector="c1", online=True, power_w=9970.0, energy_kwh=1234.5,
                     phases=[PhaseReading(phase="1", current_a=53.55, rating_a=63.0),
                             PhaseReading(phase="2", current_a=31.5, rating_a=63.0)])
    points += pdu_points(pdu)
    points.append(Point("collector", {"site": "north", "collector": "c1"},
                        {"cycle_s": 2.5, "rigs_total": 4, "rigs_ok": 3, "rigs_failed": 1,
                         "rigs_timeout": 0, "spool_depth": 0, **DELIVERY_LATER},
                        int((NOW - 30) * 1000)))
    # an earlier cycle in the same 1-minute bucket ($__interval), delivery figures only
    points.append(Point("collector", {"site": "north", "collector": "c1"},
                        {"online": True, **DELIVERY_EARLIER}, EARLIER_MS))
    points.append(Point("exporter", {"site": "north", "exporter": "bridge"},
                        {"lag_ms": 120_000.0, "dead_letters": 2, "queue_depth": 0,
                         "fields_dropped": 6, "dead_letter_errors": 1, "qos0_dropped": 250},
                        int((NOW - 30) * 1000)))
    sink.write(points)


LEDGER = [("acme", "R01", "a", 3.25, 0.39), ("acme", "R02", "d", 3.0, 0.36),
          ("blockfarm", "R02", "c", 3.42, 0.4104)]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """Operations in "hashwatt", the ledger in its own database, as `hashwatt init` and the
    compose stack's InfluxDB init lay them out; keyed by the data source uid that reads each."""
    server = Influxd(tmp_path_factory.mktemp("dash-influxd")).start()
    db = InfluxQL(server.url, "hashwatt")
    db.create_database()
    ledger_db = InfluxQL(server.url, "hashwatt_ledger")
    ledger_db.create_database()
    seed(InfluxV1Sink(server.url, "hashwatt"))
    hour = int(relative_start("now/M", NOW, TZ) // 3600 * 3600) + 3600
    ledger = [Point("energy_quarter", {"site": "north", "customer": c, "rack": rack, "rig": rig,
                                       "window": "standard"},
                    {"kwh": kwh, "kwh_measured": kwh, "kwh_estimated": 0.0, "cost": cost,
                     "rate_per_kwh": RATE, "coverage": 1.0, "source": "pdu_energy"},
                    (hour + h * 3600) * 1000)
              for h in range(2) for c, rack, rig, kwh, cost in LEDGER]
    InfluxV1Sink(server.url, "hashwatt_ledger").write(ledger)
    yield {DATASOURCE_UID: db, LEDGER_UID: ledger_db}
    server.stop()


def value(rows: list[dict[str, Any]]) -> float:
    [row] = rows
    return next(v for k, v in row.items() if k != "time")


def test_the_generated_files_are_fresh() -> None:
    assert main(["--check"]) == 0


def test_every_dashboard_query_runs_on_its_data_source_with_its_macros_expanded(
        seeded: Databases) -> None:
    variables = {**ALL, "rig": "a", "by": "customer", "currency": "EUR"}
    for _name, board in boards().items():
        for panel in board["panels"]:
            start = relative_start(panel.get("timeFrom") or board["time"]["from"], NOW, TZ)
            for target in panel["targets"]:
                db = seeded[target["datasource"]["uid"]]
                db.execute(expand(target["query"], start, NOW, variables))  # raises on error
        for var in board["templating"].get("list", []):
            if var["type"] == "query":
                assert variable_options(seeded, board, var["name"], NOW), var["name"]


def test_fleet_efficiency_is_wall_power_over_hashrate_of_the_live_rigs(
        seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["farm-overview"], "Efficiency", NOW)
    assert value(rows) == pytest.approx(LIVE_J_TH, rel=1e-12)


def test_cost_per_hour_sums_each_rigs_latest_cost(seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["farm-overview"], "Cost per hour ($currency)", NOW)
    assert round(value(rows), 6) == LIVE_COST_PER_H


def test_fleet_hashrate_and_power_count_only_the_live_window(seeded: Databases) -> None:
    board = boards()["farm-overview"]
    assert value(run_panel(seeded, board, "Fleet hashrate", NOW)[0]) == 300.0
    assert value(run_panel(seeded, board, "Wall power", NOW)[0]) == 9970.0


def test_rigs_online_offline_and_hot_are_counted(seeded: Databases) -> None:
    online, offline, hot, maintenance = run_panel(seeded, boards()["farm-overview"], "Rigs",
                                                  NOW)
    assert (value(online), value(offline), value(hot)) == (3, 1, 1)
    assert value(maintenance) == 0  # no rig in maintenance: 0, not a vanished row


def test_a_template_variable_narrows_the_fleet(seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["farm-overview"], "Fleet hashrate", NOW,
                       {"customer": "blockfarm"})
    assert value(rows) == 90.0


def test_the_heat_map_has_each_rack_and_slot(seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["farm-overview"], "Racks and slots: hottest chip (°C)",
                       NOW)
    assert {(r["rack"], r["slot"], r["temp"]) for r in rows} == {
        ("R01", "1", 80.0), ("R01", "2", 99.0), ("R02", "1", 75.0)}


def test_the_hottest_rig_tops_the_table(seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["farm-overview"], "Hottest rigs", NOW)
    assert [(r["rig"], r["temp_max_c"]) for r in rows][:1] == [("b", 99.0)]


def test_finance_totals_per_customer_come_from_the_ledger(seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["finance"], "kWh and cost for the chosen month", NOW,
                       {"by": "customer", "site": "north"})
    got = {r["customer"]: (round(r["kWh"], 6), round(r["cost (EUR)"], 6)) for r in rows}
    assert got == {"acme": (2 * (3.25 + 3.0), 2 * (0.39 + 0.36)),
                   "blockfarm": (2 * 3.42, 2 * 0.4104)}


def test_the_phase_load_table_shows_load_against_the_breaker(seeded: Databases) -> None:
    [rows] = run_panel(seeded, boards()["power"], "Phase load against breaker rating", NOW)
    assert {(r["phase"], r["load"]) for r in rows} == {("1", 85.0), ("2", 50.0)}


def rule(uid: str) -> dict[str, Any]:
    return next(r for g in alerting("rules")["groups"] for r in g["rules"] if r["uid"] == uid)


def test_the_overheat_rule_finds_the_hot_rig_and_not_the_cool_ones(seeded: Databases) -> None:
    firing = evaluate_rule(seeded[DATASOURCE_UID], rule("hw-rig-overheat"), NOW)
    assert [dict(f.labels)["rig"] for f in firing] == ["b"]
    assert firing[0].value == -4.0


def test_the_phase_rule_finds_the_overloaded_phase(seeded: Databases) -> None:
    firing = evaluate_rule(seeded[DATASOURCE_UID], rule("hw-phase-overload"), NOW)
    assert [(dict(f.labels)["pdu"], dict(f.labels)["phase"]) for f in firing] == [
        ("pdu-r01", "1")]


def test_the_exporter_rule_fires_on_two_minutes_of_lag(seeded: Databases) -> None:
    assert len(evaluate_rule(seeded[DATASOURCE_UID], rule("hw-exporter-behind"), NOW)) == 1


def test_the_collector_rule_is_quiet_while_cycles_arrive(seeded: Databases) -> None:
    assert evaluate_rule(seeded[DATASOURCE_UID], rule("hw-collector-silent"), NOW) == []


def test_every_alert_query_runs(seeded: Databases) -> None:
    for group in alerting("rules")["groups"]:
        for r in group["rules"]:
            evaluate_rule(seeded[DATASOURCE_UID], r, NOW)


# --- provisioning checked against Grafana's required fields ---------------------------

def provisioned_uids(path: str) -> set[str]:
    import yaml

    text = (ALERTING.parent.parent / path).read_text()
    return {d["uid"] for d in yaml.safe_load(text)["datasources"]}


def test_every_panel_and_rule_uses_a_provisioned_datasource() -> None:
    office = provisioned_uids("provisioning/datasources/influxdb.yaml")
    wall = provisioned_uids("wall/provisioning/datasources/influxdb.yaml")
    assert (office, wall) == ({DATASOURCE_UID, LEDGER_UID}, {DATASOURCE_UID})
    for name, board in boards().items():
        # the wall screen serves every dashboard but Finance, with the operations source only
        allowed = office if name == "finance" else wall
        for panel in board["panels"]:
            uids = {t["datasource"]["uid"] for t in panel["targets"]}
            assert uids | {panel["datasource"]["uid"]} <= allowed, panel["title"]
        for var in board["templating"].get("list", []):
            if var["type"] == "query":
                assert var["datasource"]["uid"] in allowed, var["name"]
    for group in alerting("rules")["groups"]:
        for r in group["rules"]:
            assert {d["datasourceUid"] for d in r["data"]} <= {DATASOURCE_UID, "__expr__"}


def test_rules_have_unique_uids_a_folder_an_interval_and_a_valid_condition() -> None:
    uids = []
    for group in alerting("rules")["groups"]:
        assert group["folder"] and group["interval"] and group["name"]
        for r in group["rules"]:
            uids.append(r["uid"])
            assert r["condition"] in {d["refId"] for d in r["data"]}
            assert r["title"] and r["for"] is not None
    assert len(uids) == len(set(uids)) == 11  # 8 + wiring, model mismatch, pool (operator)


def test_dashboards_have_unique_uids_and_a_valid_grid() -> None:
    uids = [b["uid"] for b in boards().values()]
    assert len(uids) == len(set(uids)) == 5
    for board in boards().values():
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                    for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not area & cells, f"{board['title']}: {panel['title']} overlaps"
            cells |= area


def test_no_query_uses_integral_or_flux() -> None:
    texts = [q for b in boards().values() for _, _, q in panel_queries(b)]
    texts += [d["model"].get("query", "") for g in alerting("rules")["groups"]
              for r in g["rules"] for d in r["data"]]
    assert not [t for t in texts if "INTEGRAL(" in t.upper() or "|>" in t]


def test_the_wall_screen_refreshes_every_ten_seconds() -> None:
    assert boards()["farm-overview"]["refresh"] == "10s"


def test_outputs_cover_every_committed_file() -> None:
    generated = set(outputs())
    assert set(DASHBOARDS.glob("*.json")) | set(ALERTING.glob("*.json")) == generated
    assert all(isinstance(p, Path) for p in generated)


def test_panel_titles_are_unique_within_a_dashboard() -> None:
    for board in boards().values():
        titles = [p["title"] for p in board["panels"]]
        assert len(titles) == len(set(titles)), board["title"]


def test_stat_names_are_the_aliases_not_measurement_dot_column(seeded: Databases) -> None:
    board = boards()["farm-overview"]
    [rigs] = [p for p in board["panels"] if p["title"] == "Rigs"]
    names = [f.name for t in rigs["targets"] for f in frames(
        seeded[DATASOURCE_UID], expand(t["query"], NOW - 120, NOW, ALL), t.get("alias", ""))]
    assert names == ["online", "offline", "hot", "maintenance"]
    for panel in board["panels"]:  # one value per stat: its title names it
        if panel["type"] == "stat" and len(panel["targets"]) == 1:
            assert panel["options"]["textMode"] == "value", panel["title"]


def test_the_hot_count_shows_zero_when_no_rig_is_hot(seeded: Databases) -> None:
    # customer blockfarm has rig c only, 25 °C under its limit: none hot, still a row of 0
    _, _, hot, _ = run_panel(seeded, boards()["farm-overview"], "Rigs", NOW,
                             {"customer": "blockfarm"})
    assert hot == [{"time": 0, "hot": 0}]


def test_heat_map_and_top_tables_colour_their_cells() -> None:
    board = boards()["farm-overview"]
    for title in ("Racks and slots: hottest chip (°C)", "Hottest rigs", "Worst efficiency"):
        [panel] = [p for p in board["panels"] if p["title"] == title]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["custom"]["cellOptions"]["type"] == "color-background", title
        assert len(defaults["thresholds"]["steps"]) >= 2, title


def test_the_finance_site_variable_reads_the_ledger_not_the_operations_database(
        seeded: Databases) -> None:
    board = boards()["finance"]
    assert variable_options(seeded, board, "site", NOW) == ["north"]
    # the same query on the operations database finds nothing (InfluxDB 2.x: another bucket)
    assert seeded[DATASOURCE_UID].rows('SHOW TAG VALUES FROM "energy_quarter" WITH KEY = '
                                       '"site"') == []


def shown(rows: list[dict[str, Any]]) -> list[Any]:
    """The non-empty values of a time series (empty buckets are null: fill(null)); the
    rows also carry the GROUP BY tag (collector / exporter)."""
    return [r[k] for r in rows for k in ("max", "last", "sum") if r.get(k) is not None]


@pytest.mark.parametrize(("title", "expected"), [
    # gauges: the larger of the two cycles in the minute (9 vs 5; 4 vs 12)
    ("Readings held in memory (spool disk refused)", 9),
    ("Sent, not yet known stored", 12),
    # counters since start: the larger is the later (31 then 40; 1 then 2)
    ("Readings resent (since start)", 40),
    ("Spool disk errors (since start)", 2),
    # the later cycle's state: connected at the first, not at the second
    ("Broker connected (1 = yes)", False),
    # per cycle, summed over the minute: 4 + 3
    ("Device fields dropped (collector)", 7),
    # the bridge's one exporter point
    ("Derived fields dropped (bridge, since start)", 6),
    ("Dead-letter write errors (since start)", 1),
    ("QoS 0 messages dropped (since start)", 250),
])
def test_delivery_health_panels_show_the_seeded_counters(
        seeded: Databases, title: str, expected: Any) -> None:
    [rows] = run_panel(seeded, boards()["collector-health"], title, NOW)
    assert shown(rows) == [expected]
