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

from dashboards.common import MUTE_LOCATION
from dashboards.influxql import DATASOURCE_UID, Target
from hashwatt.names import Roster, Tag, quoted

FOLDER_TITLE = "hashwatt"
RIG_TAGS = quoted(Tag.SITE, Tag.RIG, Tag.RACK, Tag.MODEL)
# rigs in maintenance (inventory column, a tag on their readings) page nobody
IN_SERVICE = f'$timeFilter AND "{Tag.MAINTENANCE}" != \'yes\''


@dataclass(frozen=True, kw_only=True)
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
# resolves it as stale instead of firing (pkg/services/ngalert/state: MissingSeries); the
# `last` reducer gives NaN for an empty or null series (pkg/expressions/mathexp/reduce.go),
# and NaN never crosses a threshold. So these two queries union the recent window with the
# roster marks the bridge writes every Roster.INTERVAL_S for every rig/collector ever seen
# and not forgotten (exporters/roster.py), each mark contributing 0: a subject silent for
# days still yields a value, with the tags of its last reading. The rule's own range
# ($timeFilter, MARKS_S) spans three mark intervals, so a bridge restart leaves no gap.
MARKS_S = 3 * Roster.INTERVAL_S
RECENT = "5m"
MARKED = f'"{Roster.FORGOTTEN}" = 0'
MARK = f'count("{Roster.LAST_SEEN}") * 0'

# A rig in maintenance pages nobody: its recent readings count as seen, never as failed, and
# its marks (tagged as its last reading was) are left out.
RIG_OFFLINE = (
    'SELECT sum("bad") + 3 - 3 * sum("seen") AS "failed_polls" FROM '
    f'(SELECT count("up") - sum("up") AS "bad", count("up") * 0 + 1 AS "seen" FROM "rig" '
    f'WHERE time > now() - {RECENT} AND "maintenance" != \'yes\' GROUP BY {RIG_TAGS}), '
    f'(SELECT count("up") * 0 AS "bad", count("up") * 0 + 1 AS "seen" FROM "rig" '
    f'WHERE time > now() - {RECENT} AND "maintenance" = \'yes\' GROUP BY {RIG_TAGS}), '
    f'(SELECT {MARK} AS "bad", {MARK} AS "seen" FROM "rig" '
    f'WHERE {IN_SERVICE} AND {MARKED} GROUP BY {RIG_TAGS}) GROUP BY {RIG_TAGS}')
COLLECTOR_SILENT = (
    'SELECT sum("n") AS "cycles" FROM '
    f'(SELECT count("cycle_s") AS "n" FROM "collector" WHERE time > now() - {RECENT} '
    'GROUP BY "site", "collector"), '
    f'(SELECT {MARK} AS "n" FROM "collector" WHERE $timeFilter AND {MARKED} '
    'GROUP BY "site", "collector") GROUP BY "site", "collector"')

RULES = [
    RuleSpec(
        uid="hw-rig-overheat",
        title="Rig overheating",
        group="rigs",
        query=f'SELECT last("temp_margin_c") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
        window_s=300,
        reducer="last",
        op="lt",
        value=0,
        for_="2m",
        severity="page",
        summary="{{ $labels.rig }} runs above its model's chip temperature limit",
    ),
    RuleSpec(
        uid="hw-rig-dead-fan",
        title="Dead fan",
        group="rigs",
        query=f'SELECT last("fan_min_rpm") FROM "rig" WHERE {IN_SERVICE} AND "online" = true '
              f'GROUP BY {RIG_TAGS}',
        window_s=300,
        reducer="last",
        op="lt",
        value=500,
        for_="2m",
        severity="page",
        summary="{{ $labels.rig }} has a fan below 500 rpm",
    ),
    RuleSpec(
        uid="hw-rig-board-lost",
        title="Hashboard lost",
        group="rigs",
        query=f'SELECT last("boards_total") - last("boards_ok") FROM "rig" WHERE {IN_SERVICE} '
              f'AND "online" = true GROUP BY {RIG_TAGS}',
        window_s=600,
        reducer="last",
        op="gt",
        value=0,
        for_="5m",
        severity="warning",
        summary="{{ $labels.rig }} hashes on fewer boards than it has",
    ),
    RuleSpec(
        uid="hw-rig-low-hashrate",
        title="Hashrate below 80 % of expected",
        group="rigs",
        query=f'SELECT mean("hashrate_ths") / mean("expected_hashrate_ths") FROM "rig" WHERE '
              f'{IN_SERVICE} AND "online" = true GROUP BY {RIG_TAGS}',
        window_s=900,
        reducer="last",
        op="lt",
        value=0.8,
        for_="15m",
        severity="warning",
        summary="{{ $labels.rig }} delivers under 80 % of its expected hashrate",
    ),
    # failed polls in the last 5 minutes; 3 when no reading arrived at all (collector dead,
    # for as long as the rig stays on the roster)
    RuleSpec(
        uid="hw-rig-offline",
        title="Rig offline",
        group="rigs",
        query=RIG_OFFLINE,
        window_s=MARKS_S,
        reducer="last",
        op="gt",
        value=2,
        for_="0s",
        severity="page",
        summary="{{ $labels.rig }} failed three polls in five minutes, or sent no reading",
    ),
    RuleSpec(
        uid="hw-rig-wiring-suspect",
        title="Outlet power does not fit the rig",
        group="rigs",
        query=f'SELECT last("wiring_suspect") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
        window_s=900,
        reducer="last",
        op="gt",
        value=0,
        for_="10m",
        severity="warning",
        summary="{{ $labels.rig }}: its PDU outlet's power does not fit the rig that answers "
                "(outlet mapping or addresses swapped?)",
    ),
    RuleSpec(
        uid="hw-rig-model-mismatch",
        title="Rig identifies as another model",
        group="rigs",
        query=f'SELECT last("model_mismatch") FROM "rig" WHERE {IN_SERVICE} GROUP BY {RIG_TAGS}',
        window_s=900,
        reducer="last",
        op="gt",
        value=0,
        for_="15m",
        severity="warning",
        summary="{{ $labels.rig }} answers as another model than the inventory's",
    ),
    RuleSpec(
        uid="hw-rig-pool-unexpected",
        title="Rig mines on a pool the site does not allow",
        group="rigs",
        query=f'SELECT last("pool_unexpected") FROM "rig" WHERE {IN_SERVICE} '
              f'GROUP BY {RIG_TAGS}',
        window_s=900,
        reducer="last",
        op="gt",
        value=0,
        for_="5m",
        severity="page",
        summary="{{ $labels.rig }} mines on a pool or worker outside the site's allow-list",
    ),
    RuleSpec(
        uid="hw-phase-overload",
        title="Phase above 80 % of its breaker",
        group="power",
        # "unit": each unit of a daisy chain (Sentry4 master + link) has its own phases
        query='SELECT last("load_pct") FROM "pdu_phase" WHERE $timeFilter GROUP BY "site", '
              '"pdu", "unit", "phase"',
        window_s=300,
        reducer="last",
        op="gt",
        value=80,
        for_="2m",
        severity="page",
        summary="{{ $labels.pdu }} phase {{ $labels.phase }} carries over 80 % of its rating",
    ),
    # cycles in the last 5 minutes of every collector on the roster (0 when silent); no
    # collector at all is NoData, which alerts too
    RuleSpec(
        uid="hw-collector-silent",
        title="Collector silent",
        group="pipeline",
        query=COLLECTOR_SILENT,
        window_s=MARKS_S,
        reducer="last",
        op="lt",
        value=1,
        for_="0s",
        severity="page",
        summary="no poll cycle from collector {{ $labels.collector }} in five minutes",
        no_data="Alerting",
    ),
    RuleSpec(
        uid="hw-exporter-behind",
        title="Exporter falling behind",
        group="pipeline",
        query='SELECT last("lag_ms") FROM "exporter" WHERE $timeFilter GROUP BY "site", '
              '"exporter"',
        window_s=300,
        reducer="last",
        op="gt",
        value=60_000,
        for_="5m",
        severity="warning",
        summary="exporter {{ $labels.exporter }} writes readings over a minute late",
    ),
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


def mute_timings(timezone: str = MUTE_LOCATION) -> dict[str, Any]:
    """Tuesday 06:00-08:00 site time: the weekly maintenance window (the site's timezone is
    written in by deploy/grafana/entrypoint.sh).

    Written as data: the SDK's TimeInterval models the Alertmanager API (weekday numbers,
    minute offsets), not the provisioning file's names and clock times.
    """
    interval = {"weekdays": ["tuesday"], "times": [{"start_time": "06:00", "end_time": "08:00"}],
                "location": timezone}
    return {"apiVersion": 1, "muteTimes": [{"orgId": 1, "name": "maintenance",
                                            "time_intervals": [interval]}]}
