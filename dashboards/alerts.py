"""Alert rules and the maintenance mute timing, built with the SDK and written in Grafana's
file-provisioning format (provisioning/alerting/*.json).

Contact points and the notification policy depend on which receivers a site configured, so
deploy/grafana/entrypoint.sh writes them when Grafana starts (see its header)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.influxql import DATASOURCE_UID, Target

FOLDER_TITLE = "hashwatt"
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


# Rules whose subject can vanish (a rig whose collector died, a silent collector) must not
# rely on the series: Grafana treats a series that stops arriving as *missing*, not 0, and
# resolves it as stale instead of firing; the `last` reducer gives NaN for an empty or null
# series (pkg/expressions/mathexp/reduce.go), and NaN never crosses a threshold. So these two
# queries union a recent window with every rig/collector seen in the rule's long window
# (KNOWN_S), each known one contributing 0: a vanished one still yields a value.
KNOWN_S = 86400
RECENT = "5m"

# A rig in maintenance pages nobody: its recent readings count as seen, never as failed.
RIG_OFFLINE = (
    'SELECT sum("bad") + 3 - 3 * sum("seen") AS "failed_polls" FROM '
    f'(SELECT count("up") - sum("up") AS "bad", count("up") * 0 + 1 AS "seen" FROM "rig" '
    f'WHERE time > now() - {RECENT} AND "maintenance" != \'yes\' GROUP BY {RIG_TAGS}), '
    f'(SELECT count("up") * 0 AS "bad", count("up") * 0 + 1 AS "seen" FROM "rig" '
    f'WHERE time > now() - {RECENT} AND "maintenance" = \'yes\' GROUP BY {RIG_TAGS}), '
    '(SELECT count("up") * 0 AS "bad", count("up") * 0 AS "seen" FROM "rig" '
    f'WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}) GROUP BY {RIG_TAGS}')
COLLECTOR_SILENT = (
    'SELECT sum("n") AS "cycles" FROM '
    f'(SELECT count("cycle_s") AS "n" FROM "collector" WHERE time > now() - {RECENT} '
    'GROUP BY "site", "collector"), '
    '(SELECT count("cycle_s") * 0 AS "n" FROM "collector" WHERE $timeFilter '
    'GROUP BY "site", "collector") GROUP BY "site", "collector"')

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
    # failed polls in the last 5 minutes; 3 when no reading arrived at all (collector dead)
    RuleSpec("hw-rig-offline", "Rig offline", "rigs", RIG_OFFLINE, KNOWN_S, "last", "gt", 2,
             "0s", "page",
             "{{ $labels.rig }} failed three polls in five minutes, or sent no reading"),
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
    # cycles in the last 5 minutes of every collector seen in the last day (0 when silent);
    # no collector at all in a day is NoData, which alerts too
    RuleSpec("hw-collector-silent", "Collector silent", "pipeline", COLLECTOR_SILENT, KNOWN_S,
             "last", "lt", 1, "0s", "page",
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
             .model(Target(spec.query).ref_id("A")))
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


def mute_timings(timezone: str = "Europe/Berlin") -> dict[str, Any]:
    """Tuesday 06:00-08:00 site time: the weekly maintenance window.

    Written as data: the SDK's TimeInterval models the Alertmanager API (weekday numbers,
    minute offsets), not the provisioning file's names and clock times.
    """
    interval = {"weekdays": ["tuesday"], "times": [{"start_time": "06:00", "end_time": "08:00"}],
                "location": timezone}
    return {"apiVersion": 1, "muteTimes": [{"orgId": 1, "name": "maintenance",
                                            "time_intervals": [interval]}]}
