"""Alert rules, contact points, notification policy and mute timing, built with the SDK and
written in Grafana's file-provisioning format (provisioning/alerting/*.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.influxql import DATASOURCE_UID, InfluxQL

FOLDER_UID, FOLDER_TITLE = "hashwatt", "hashwatt"
RIG_TAGS = '"site", "rig", "rack", "model"'
# rigs in maintenance (inventory column, a tag on their readings) page nobody
IN_SERVICE = '$timeFilter AND "maintenance" != \'yes\''


@dataclass(frozen=True)
class RuleSpec:
    """One alert rule: a query, how to reduce it per series, and the threshold that fires."""

    uid: str
    title: str
    group: str
    query: str
    window_s: int
    reducer: str
    op: str  # gt | lt
    value: float
    for_: str
    severity: str
    summary: str
    no_data: str = "OK"


RULES = [
    RuleSpec("hw-rig-overheat", "Rig overheating", "rigs",
             f'SELECT last("temp_margin_c") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
             300, "last", "lt", 0, "2m", "page",
             "{{ $labels.rig }} runs above its model's chip temperature limit"),
    RuleSpec("hw-rig-dead-fan", "Dead fan", "rigs",
             f'SELECT last("fan_min_rpm") FROM "rig" WHERE {IN_SERVICE} AND "online" = true '
             f'GROUP BY {RIG_TAGS}', 300, "last", "lt", 500, "2m", "page",
             "{{ $labels.rig }} has a fan below 500 rpm"),
    RuleSpec("hw-rig-board-lost", "Hashboard lost", "rigs",
             f'SELECT last("boards_total") - last("boards_ok") FROM "rig" WHERE {IN_SERVICE} '
             f'AND "online" = true GROUP BY {RIG_TAGS}', 600, "last", "gt", 0, "5m",
             "warning", "{{ $labels.rig }} hashes on fewer boards than it has"),
    RuleSpec("hw-rig-low-hashrate", "Hashrate below 80 % of expected", "rigs",
             f'SELECT mean("hashrate_ths") / mean("expected_hashrate_ths") FROM "rig" WHERE '
             f'{IN_SERVICE} AND "online" = true GROUP BY {RIG_TAGS}', 900, "last", "lt", 0.8,
             "15m", "warning", "{{ $labels.rig }} delivers under 80 % of its expected hashrate"),
    RuleSpec("hw-rig-offline", "Rig offline", "rigs",
             f'SELECT count("up") - sum("up") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
             300, "last", "gt", 2, "0s", "page",
             "{{ $labels.rig }} did not answer three polls in five minutes"),
    RuleSpec("hw-rig-wiring-suspect", "Outlet power does not fit the rig", "rigs",
             f'SELECT last("wiring_suspect") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
             900, "last", "gt", 0, "10m", "warning",
             "{{ $labels.rig }}: its PDU outlet's power does not fit the rig that answers "
             "(outlet mapping or addresses swapped?)"),
    RuleSpec("hw-rig-model-mismatch", "Rig identifies as another model", "rigs",
             f'SELECT last("model_mismatch") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
             900, "last", "gt", 0, "15m", "warning",
             "{{ $labels.rig }} answers as another model than the inventory's"),
    RuleSpec("hw-rig-pool-unexpected", "Rig mines on a pool the site does not allow", "rigs",
             f'SELECT last("pool_unexpected") FROM "rig" WHERE {IN_SERVICE} '
             f'GROUP BY {RIG_TAGS}', 900, "last", "gt", 0, "5m", "page",
             "{{ $labels.rig }} mines on a pool or worker outside the site's allow-list"),
    RuleSpec("hw-phase-overload", "Phase above 80 % of its breaker", "power",
             # "unit": each unit of a daisy chain (Sentry4 master + link) has its own phases
             'SELECT last("load_pct") FROM "pdu_phase" WHERE $timeFilter GROUP BY "site", '
             '"pdu", "unit", "phase"', 300, "last", "gt", 80, "2m", "page",
             "{{ $labels.pdu }} phase {{ $labels.phase }} carries over 80 % of its rating"),
    RuleSpec("hw-collector-silent", "Collector silent", "pipeline",
             'SELECT count("cycle_s") FROM "collector" WHERE $timeFilter GROUP BY "site", '
             '"collector"', 300, "last", "lt", 1, "5m", "page",
             "no poll cycle from collector {{ $labels.collector }} in five minutes",
             no_data="Alerting"),
    RuleSpec("hw-exporter-behind", "Exporter falling behind", "pipeline",
             'SELECT last("lag_ms") FROM "exporter" WHERE $timeFilter GROUP BY "site", '
             '"exporter"', 300, "last", "gt", 60_000, "5m", "warning",
             "exporter {{ $labels.exporter }} writes readings over a minute late"),
]
GROUP_INTERVAL = {"rigs": "1m", "power": "1m", "pipeline": "1m"}


def _rule(spec: RuleSpec) -> alerting.Rule:
    query = (alerting.Query("A").datasource_uid(DATASOURCE_UID)
             .model(InfluxQL(spec.query).ref_id("A")))
    reduce = (alerting.Query("B").datasource_uid("__expr__")
              .model(expr.TypeReduce().expression("A").reducer(spec.reducer)))  # type: ignore[arg-type]
    evaluator = expr.ExprTypeThresholdConditionsEvaluator().type(spec.op).params(  # type: ignore[arg-type]
        [spec.value])
    threshold = (alerting.Query("C").datasource_uid("__expr__").model(
        expr.TypeThreshold().expression("B").conditions(
            [expr.ExprTypeThresholdConditions().evaluator(evaluator)])))
    return (alerting.Rule(spec.title).uid(spec.uid).condition("C").for_val(spec.for_)
            .no_data_state(spec.no_data).exec_err_state("Error")  # type: ignore[arg-type]
            .labels({"severity": spec.severity, "team": "site-ops"})
            .annotations({"summary": spec.summary})
            .queries([query, reduce, threshold]))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def _file_rule(spec: RuleSpec) -> dict[str, Any]:
    raw = _jsonable(_rule(spec).build())
    for item in raw["data"]:
        item["model"]["refId"] = item["refId"]
        window = spec.window_s if item["datasourceUid"] == DATASOURCE_UID else 0
        item["relativeTimeRange"] = {"from": window, "to": 0}
    keep = ("uid", "title", "condition", "data", "noDataState", "execErrState", "for",
            "annotations", "labels")
    return {key: raw[key] for key in keep} | {"isPaused": False}


def rule_groups() -> dict[str, Any]:
    """The rules file: one group per area, each evaluated every minute."""
    groups = []
    for name, interval in GROUP_INTERVAL.items():
        rules = [_file_rule(s) for s in RULES if s.group == name]
        groups.append({"orgId": 1, "name": name, "folder": FOLDER_TITLE,
                       "interval": interval, "rules": rules})
    return {"apiVersion": 1, "groups": groups}


CONTACT_POINTS = [
    ("on-call", "pagerduty", {"integrationKey": "${HASHWATT_PAGERDUTY_KEY}",
                              "severity": "critical"}),
    ("on-call", "telegram", {"bottoken": "${HASHWATT_TELEGRAM_BOT_TOKEN}",
                             "chatid": "${HASHWATT_TELEGRAM_CHAT_ID}"}),
    ("site-ops", "email", {"addresses": "${HASHWATT_ALERT_EMAILS}"}),
    ("site-ops", "webhook", {"url": "${HASHWATT_ALERT_WEBHOOK_URL}", "httpMethod": "POST"}),
]


def contact_points() -> dict[str, Any]:
    """Example receivers; every secret comes from the environment of the Grafana container."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for name, kind, settings in CONTACT_POINTS:
        point = _jsonable(alerting.ContactPoint().name(name).type(kind)  # type: ignore[arg-type]
                          .uid(f"hw-{name}-{kind}").settings(settings)
                          .disable_resolve_message(False).build())
        by_name.setdefault(name, []).append(
            {k: point[k] for k in ("uid", "type", "settings", "disableResolveMessage")})
    return {"apiVersion": 1, "contactPoints": [
        {"orgId": 1, "name": name, "receivers": receivers}
        for name, receivers in by_name.items()]}


def policies() -> dict[str, Any]:
    """Pages go to on-call, everything goes to site-ops; maintenance mutes warnings."""
    page = (alerting.NotificationPolicy().receiver("on-call")
            .object_matchers([["severity", "=", "page"]]).continue_val(True))
    warn = (alerting.NotificationPolicy().receiver("site-ops")
            .object_matchers([["severity", "=", "warning"]])
            .mute_time_intervals(["maintenance"]))
    root = (alerting.NotificationPolicy().receiver("site-ops")
            .group_by(["alertname", "site", "rack"]).group_wait("30s")
            .group_interval("5m").repeat_interval("4h").routes([page, warn]))
    return {"apiVersion": 1, "policies": [{"orgId": 1, **_jsonable(root.build())}]}


def mute_timings(timezone: str = "Europe/Berlin") -> dict[str, Any]:
    """Tuesday 06:00-08:00 site time: the weekly maintenance window.

    Written as data: the SDK's TimeInterval models the Alertmanager API (weekday numbers,
    minute offsets), not the provisioning file's names and clock times.
    """
    interval = {"weekdays": ["tuesday"], "times": [{"start_time": "06:00", "end_time": "08:00"}],
                "location": timezone}
    return {"apiVersion": 1, "muteTimes": [{"orgId": 1, "name": "maintenance",
                                            "time_intervals": [interval]}]}
