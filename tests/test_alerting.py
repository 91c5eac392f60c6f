"""Alert rules on a real influxd with Grafana's evaluation emulated (tests/grafana.py): every
rule fires per rig / phase / collector, and each one's missing-series case is pinned down;
the receivers and the notification policy written by deploy/grafana/entrypoint.sh, run here
with /bin/sh as the Grafana image runs it, checked against grafana/alerting's validation and
routed the way Alertmanager routes."""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import ALERTING
from exporters.lineproto import Point, encode
from exporters.roster import RosterKeeper
from hashwatt.influxql import InfluxQL
from tests.grafana import Firing, evaluate_rule, reduce, route

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NOW = time.time()
TAGS = {"site": "north", "rack": "R01", "model": "S19 Pro"}


def rule(uid: str) -> dict[str, Any]:
    groups = json.loads((ALERTING / "rules.json").read_text())["groups"]
    return next(r for g in groups for r in g["rules"] if r["uid"] == uid)


def write(db: InfluxQL, lines: list[str]) -> None:
    resp = db.client.post("/write", params={"db": db.database, "precision": "s"},
                          content="\n".join(lines).encode())
    assert resp.status_code == 204, resp.text


def rig_line(rig: str, age_s: float, maintenance: str = "", **fields: Any) -> str:
    extra = {"maintenance": maintenance} if maintenance else {}
    tags = ",".join(f"{k}={v.replace(' ', chr(92) + ' ')}" for k, v in
                    sorted({**TAGS, "rig": rig, **extra}.items()))
    body = ",".join(f"{k}={v}i" if isinstance(v, int) and not isinstance(v, bool)
                    else f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in fields.items())
    return f"rig,{tags} {body} {int(NOW - age_s)}"


def marked(db: InfluxQL) -> None:
    """The bridge's roster marks, written a minute before the evaluation (exporters/roster.py:
    a bridge started now knows every rig and collector of the last 24 h)."""
    def write_ms(points: Sequence[Point]) -> None:  # as a line-protocol sink writes them
        resp = db.client.post("/write", params={"db": db.database, "precision": "ms"},
                              content=encode(points))
        assert resp.status_code == 204, resp.text

    RosterKeeper(db, write_ms).run(NOW - 60)


def fired(firing: list[Firing], key: str) -> dict[str, float]:
    return {dict(f.labels)[key]: f.value for f in firing}


def test_rig_offline_fires_per_rig_on_failed_polls_and_when_readings_stop(
        influx_db: InfluxQL) -> None:
    lines = []
    for age in (30, 60, 90, 120):  # healthy: four good polls in the last five minutes
        lines.append(rig_line("ok", age, up=1))
    for age in (30, 60, 90):  # three failed polls in five minutes
        lines.append(rig_line("flaky", age, up=0))
    lines.append(rig_line("flaky", 120, up=1))
    for age in (30, 60):  # two failed: under the rule's three
        lines.append(rig_line("two", age, up=0))
    # its collector died 20 minutes ago: the series is missing from the recent window, the
    # roster's mark keeps it (tests/test_roster.py: the same two days on)
    lines.append(rig_line("gone", 1200, up=1))
    write(influx_db, lines)
    marked(influx_db)
    got = fired(evaluate_rule(influx_db, rule("hw-rig-offline"), NOW), "rig")
    # by hand: flaky 3 failed polls; gone no reading in 5 min counts as 3; ok 0; two 2
    assert got == {"flaky": 3.0, "gone": 3.0}


def test_rig_offline_pages_nobody_for_a_rig_in_maintenance(influx_db: InfluxQL) -> None:
    lines = [rig_line("serviced", age, up=1) for age in (600, 900)]  # in service before
    lines += [rig_line("serviced", age, maintenance="yes", up=0) for age in (30, 60, 90)]
    lines += [rig_line("down", age, up=0) for age in (30, 60, 90)]
    write(influx_db, lines)
    marked(influx_db)  # serviced's mark carries its latest tags: maintenance=yes
    assert fired(evaluate_rule(influx_db, rule("hw-rig-offline"), NOW), "rig") == {"down": 3.0}


def test_collector_silent_fires_for_the_one_silent_collector_among_several(
        influx_db: InfluxQL) -> None:
    lines = [f"collector,site=north,collector=c1 cycle_s=2.5 {int(NOW - a)}" for a in (30, 60)]
    lines += [f"collector,site=north,collector=c2 cycle_s=2.5 {int(NOW - a)}" for a in (400, 900)]
    write(influx_db, lines)
    marked(influx_db)
    firing = evaluate_rule(influx_db, rule("hw-collector-silent"), NOW)
    assert [(dict(f.labels)["collector"], f.value) for f in firing] == [("c2", 0.0)]


def test_collector_silent_alerts_on_no_data_at_all(influx_db: InfluxQL) -> None:
    [only] = evaluate_rule(influx_db, rule("hw-collector-silent"), NOW)
    assert only.no_data and rule("hw-collector-silent")["noDataState"] == "Alerting"


def test_overheat_fires_per_rig_and_a_vanished_rig_is_left_to_the_offline_rule(
        influx_db: InfluxQL) -> None:
    write(influx_db, [rig_line("hot", 30, up=1, temp_margin_c=-4.0),
                      rig_line("cool", 30, up=1, temp_margin_c=20.0),
                      # was hot, then stopped reporting 10 minutes ago: missing, not firing
                      rig_line("vanished", 600, up=1, temp_margin_c=-9.0)])
    marked(influx_db)
    assert fired(evaluate_rule(influx_db, rule("hw-rig-overheat"), NOW), "rig") == {"hot": -4.0}
    assert fired(evaluate_rule(influx_db, rule("hw-rig-offline"), NOW), "rig") == {
        "vanished": 3.0}


def test_dead_fan_and_lost_board_fire_per_rig_only_for_online_rigs(influx_db: InfluxQL) -> None:
    write(influx_db, [rig_line("fan", 30, online=True, fan_min_rpm=0, boards_total=3,
                               boards_ok=3),
                      rig_line("board", 30, online=True, fan_min_rpm=4000, boards_total=3,
                               boards_ok=2),
                      # an offline rig reports no fans and no boards: neither rule fires
                      rig_line("off", 30, online=False, up=0)])
    assert fired(evaluate_rule(influx_db, rule("hw-rig-dead-fan"), NOW), "rig") == {"fan": 0.0}
    assert fired(evaluate_rule(influx_db, rule("hw-rig-board-lost"), NOW), "rig") == {
        "board": 1.0}


def test_low_hashrate_fires_per_rig_and_a_null_ratio_is_nan_which_never_fires(
        influx_db: InfluxQL) -> None:
    write(influx_db, [rig_line("slow", 30, online=True, hashrate_ths=70.0,
                               expected_hashrate_ths=100.0),
                      rig_line("fine", 30, online=True, hashrate_ths=99.0,
                               expected_hashrate_ths=100.0),
                      # no expected figure: the ratio is null, Grafana's `last` gives NaN
                      rig_line("unknown", 30, online=True, hashrate_ths=1.0)])
    assert fired(evaluate_rule(influx_db, rule("hw-rig-low-hashrate"), NOW), "rig") == {
        "slow": 0.7}


def test_phase_overload_fires_per_phase(influx_db: InfluxQL) -> None:
    write(influx_db, [f"pdu_phase,site=north,pdu=p1,phase={ph} load_pct={load} {int(NOW - 30)}"
                      for ph, load in (("1", 85.0), ("2", 50.0), ("3", 81.0))])
    firing = evaluate_rule(influx_db, rule("hw-phase-overload"), NOW)
    assert sorted((dict(f.labels)["phase"], f.value) for f in firing) == [("1", 85.0),
                                                                           ("3", 81.0)]


def test_exporter_behind_fires_per_exporter_and_not_for_a_vanished_one(
        influx_db: InfluxQL) -> None:
    write(influx_db, [f"exporter,site=north,exporter=b1 lag_ms=120000 {int(NOW - 30)}",
                      f"exporter,site=north,exporter=b2 lag_ms=100 {int(NOW - 30)}",
                      f"exporter,site=north,exporter=b3 lag_ms=900000 {int(NOW - 900)}"])
    assert fired(evaluate_rule(influx_db, rule("hw-exporter-behind"), NOW), "exporter") == {
        "b1": 120000.0}


def test_the_reducer_follows_grafanas_strict_mode() -> None:
    """pkg/expressions/mathexp/reduce.go: empty -> NaN, last of a null -> NaN, any null
    makes sum/mean/min/max NaN; count counts."""
    assert math.isnan(reduce((), "last")) and math.isnan(reduce((1.0, None), "last"))
    assert math.isnan(reduce((1.0, None), "mean")) and reduce((None, 2.0), "last") == 2.0
    assert reduce((1.0, None), "count") == 2.0 and reduce((1.0, 3.0), "mean") == 2.0


# --- receivers and routing, as deploy/grafana/entrypoint.sh writes them -------------------

RECEIVER_VARS = ("HASHWATT_PAGERDUTY_KEY", "HASHWATT_TELEGRAM_BOT_TOKEN",
                 "HASHWATT_TELEGRAM_CHAT_ID", "HASHWATT_ALERT_EMAILS",
                 "HASHWATT_ALERT_WEBHOOK_URL")


def run_entrypoint(tmp_path: Path, **env: str) -> tuple[dict[str, Any] | None,
                                                          dict[str, Any] | None, str]:
    out = tmp_path / "provisioning"
    result = subprocess.run(
        ["/bin/sh", str(DEPLOY / "grafana/entrypoint.sh"), "true"],
        env={"PATH": "/usr/bin:/bin", "GF_PATHS_PROVISIONING": str(out),
             "HASHWATT_PROVISIONING_SRC": str(DEPLOY / "grafana/provisioning"), **env},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    points, policies = (out / "alerting" / name for name in ("contact-points.yaml",
                                                             "policies.yaml"))
    load = lambda p: yaml.safe_load(p.read_text()) if p.exists() else None  # noqa: E731
    assert (out / "alerting/rules.json").exists() and (out / "datasources").is_dir()
    return load(points), load(policies), result.stderr


def expand_env(value: str, env: dict[str, str]) -> str:
    """Grafana's provisioning expansion of ${VAR} (pkg/services/provisioning/values)."""
    import re

    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), value)


def validate_receiver(kind: str, settings: dict[str, str]) -> None:
    """grafana/alerting receivers/*/config.go: the settings each integration requires."""
    required = {"pagerduty": ["integrationKey"], "telegram": ["bottoken", "chatid"],
                "email": ["addresses"], "webhook": ["url"]}[kind]
    for key in required:
        assert settings.get(key), f"{kind}: {key} is empty: Grafana would refuse to start"


def check(points: dict[str, Any] | None, policies: dict[str, Any] | None,
          env: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for point in (points or {}).get("contactPoints", []):
        assert point["receivers"], point["name"]
        names.add(point["name"])
        for r in point["receivers"]:
            validate_receiver(r["type"], {k: expand_env(str(v), env)
                                          for k, v in r["settings"].items()})
            assert not any(v in json.dumps(r) for v in env.values() if len(v) > 3)
    if policies is not None:
        mutes = {m["name"] for m in json.loads(
            (ALERTING / "mute-timings.json").read_text())["muteTimes"]}
        [root] = policies["policies"]
        for node in [root, *root.get("routes", [])]:
            assert node["receiver"] in names
            assert set(node.get("mute_time_intervals", [])) <= mutes
    return names


def receivers(policies: dict[str, Any], severity: str) -> list[tuple[str, list[str]]]:
    [root] = policies["policies"]
    return [(n["receiver"], n.get("mute_time_intervals", []))
            for n in route(root, {"severity": severity, "alertname": "x"})]


ALL_SET = {"HASHWATT_PAGERDUTY_KEY": "pd-key-123", "HASHWATT_TELEGRAM_BOT_TOKEN": "tg-token",
           "HASHWATT_TELEGRAM_CHAT_ID": "-1001", "HASHWATT_ALERT_EMAILS": "ops@example.com",
           "HASHWATT_ALERT_WEBHOOK_URL": "https://hooks.example.com/x", "GF_SMTP_ENABLED": "true"}


def test_every_receiver_configured_pages_reach_on_call_and_site_ops(tmp_path: Path) -> None:
    points, policies, _ = run_entrypoint(tmp_path, **ALL_SET)
    assert check(points, policies, ALL_SET) == {"on-call", "site-ops"}
    assert policies is not None
    assert receivers(policies, "page") == [("on-call", []), ("site-ops", [])]
    assert receivers(policies, "warning") == [("site-ops", ["maintenance"])]


@pytest.mark.parametrize("env, names", [
    ({}, set()),
    ({"HASHWATT_PAGERDUTY_KEY": "pd-key-123"}, {"on-call"}),
    ({"HASHWATT_ALERT_WEBHOOK_URL": "https://hooks.example.com/x"}, {"site-ops"}),
    # half a Telegram is no Telegram (Grafana would refuse an empty chat id)
    ({"HASHWATT_TELEGRAM_BOT_TOKEN": "tg-token", "HASHWATT_ALERT_EMAILS": "a@example.com"},
     {"site-ops"}),
])
def test_only_configured_receivers_are_provisioned_and_every_alert_is_routed(
        tmp_path: Path, env: dict[str, str], names: set[str]) -> None:
    # compose hands Grafana every variable, the unset ones empty
    full = {var: "" for var in RECEIVER_VARS} | env
    points, policies, stderr = run_entrypoint(tmp_path, **full)
    assert check(points, policies, full) == names
    if not names:
        assert policies is None and "no alert receiver configured" in stderr
        return
    assert policies is not None
    for severity in ("page", "warning"):
        assert {r for r, _ in receivers(policies, severity)} <= names
    assert receivers(policies, "warning")[0][1] == ["maintenance"]
    if "HASHWATT_ALERT_EMAILS" in env:
        assert "GF_SMTP_ENABLED is not true" in stderr


def test_alert_rules_and_dashboards_share_one_folder() -> None:
    """Rule groups name their folder by title (rules_types.go AlertRuleGroupV1.Folder, no
    uid); the dashboards provider must find that folder by the same title and give no
    folderUid, or dashboards FileReader.getOrCreateFolder makes a second one."""
    groups = json.loads((ALERTING / "rules.json").read_text())["groups"]
    for path in (DEPLOY / "grafana/provisioning/dashboards/hashwatt.yaml",
                 DEPLOY / "grafana/wall/provisioning/dashboards/hashwatt.yaml"):
        [provider] = yaml.safe_load(path.read_text())["providers"]
        assert "folderUid" not in provider
        assert {g["folder"] for g in groups} == {provider["folder"]}


# Every rule on one rig/phase/exporter's last value: a series that fires now, and one that
# would fire but stopped arriving 20 minutes ago (missing: Grafana gives it no instance; the
# offline and silent rules above are what notice a vanished subject).
LAST_VALUE_CASES = [
    ("hw-rig-overheat", {"up": 1, "temp_margin_c": -3.0}, -3.0),
    ("hw-rig-dead-fan", {"online": True, "fan_min_rpm": 0}, 0.0),
    ("hw-rig-board-lost", {"online": True, "boards_total": 3, "boards_ok": 1}, 2.0),
    ("hw-rig-low-hashrate", {"online": True, "hashrate_ths": 50.0,
                             "expected_hashrate_ths": 100.0}, 0.5),
    ("hw-rig-wiring-suspect", {"wiring_suspect": 1}, 1.0),
    ("hw-rig-model-mismatch", {"model_mismatch": 1}, 1.0),
    ("hw-rig-pool-unexpected", {"pool_unexpected": 1}, 1.0),
]


@pytest.mark.parametrize("uid, fields, value", LAST_VALUE_CASES)
def test_each_rig_rule_fires_per_rig_and_not_for_a_missing_series(
        influx_db: InfluxQL, uid: str, fields: dict[str, Any], value: float) -> None:
    write(influx_db, [rig_line("now", 30, **fields), rig_line("twin", 30, **fields),
                      rig_line("vanished", 1200, **fields)])
    assert fired(evaluate_rule(influx_db, rule(uid), NOW), "rig") == {"now": value,
                                                                      "twin": value}


def test_phase_and_exporter_rules_ignore_missing_series(influx_db: InfluxQL) -> None:
    write(influx_db, [f"pdu_phase,site=north,pdu=p9,phase=1 load_pct=95 {int(NOW - 1200)}",
                      f"exporter,site=north,exporter=b9 lag_ms=900000 {int(NOW - 1200)}"])
    assert evaluate_rule(influx_db, rule("hw-phase-overload"), NOW) == []
    assert evaluate_rule(influx_db, rule("hw-exporter-behind"), NOW) == []


def test_every_rule_has_a_test_with_its_missing_series_case() -> None:
    groups = json.loads((ALERTING / "rules.json").read_text())["groups"]
    uids = {r["uid"] for g in groups for r in g["rules"]}
    covered = {u for u, _, _ in LAST_VALUE_CASES} | {
        "hw-rig-offline", "hw-collector-silent", "hw-phase-overload", "hw-exporter-behind"}
    assert uids == covered
