"""The provisioning files read against what Grafana 11.6 does with them, each rule named
after the Grafana / grafana-alerting code that applies it (not a Grafana server: none runs
here). Complements tests/test_alerting.py (receivers, routing, rule evaluation) and
tests/test_grafana_timezone.py (what the entrypoint writes)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from dashboards.build import ALERTING, DASHBOARDS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SOURCES = [DEPLOY / "grafana/provisioning/datasources/influxdb.yaml",
           DEPLOY / "grafana/wall/provisioning/datasources/influxdb.yaml"]
# Prometheus model.ParseDuration, which rules_types.go uses for `for` and the group interval
DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")


def rules() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    groups = json.loads((ALERTING / "rules.json").read_text())["groups"]
    return [(g, r) for g in groups for r in g["rules"]]


def seconds(duration: str) -> int:
    match = DURATION.match(duration)
    assert match and duration, f"{duration!r} is not a Prometheus duration"
    units = {2: 365 * 86400, 4: 7 * 86400, 6: 86400, 8: 3600, 10: 60, 12: 1}
    return sum(int(match.group(i) or 0) * size for i, size in units.items())


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.parent.parent.parent.name)
def test_influxdb_data_sources_carry_the_settings_grafana_reads(path: Path) -> None:
    """InfluxQL data sources as Grafana 11 reads them:
    - access "proxy": the InfluxDB data source refuses browser access
      (public/app/plugins/datasource/influxdb/datasource.ts query(): BROWSER_MODE_DISABLED);
    - the database in jsonData.dbName (pkg/tsdb/influxdb/models/datasource_info.go
      DatasourceInfo `json:"dbName"`; the frontend reads `jsonData.dbName ?? database`);
    - jsonData.version absent or "InfluxQL" (only "Flux" and "SQL" switch the language;
      every query here is InfluxQL), httpMode GET or POST;
    - the password in secureJsonData (encrypted at rest), the login in `user`;
    - ${VAR} only in values Grafana expands (pkg/services/provisioning/values)."""
    for source in yaml.safe_load(path.read_text())["datasources"]:
        assert source["type"] == "influxdb" and source["access"] == "proxy", source["name"]
        data = source["jsonData"]
        assert data["dbName"] in ("hashwatt", "hashwatt_ledger"), source["name"]
        assert data.get("version", "InfluxQL") == "InfluxQL"
        assert data.get("httpMode", "GET") in ("GET", "POST")
        assert "password" not in source and "database" not in source
        assert source["user"] and re.fullmatch(r"\$\{\w+\}", source["secureJsonData"]["password"])
        assert source["editable"] is False


def test_alert_rules_use_states_and_durations_grafana_accepts() -> None:
    """pkg/services/provisioning/alerting/rules_types.go AlertRuleV1.mapToModel:
    noDataState by models.NoDataStateFromString (Alerting, NoData, OK, KeepLast),
    execErrState by models.ErrStateFromString (Alerting, Error, OK, KeepLast), `for` and the
    group's interval by model.ParseDuration; the scheduler evaluates groups on multiples of
    its 10 s base interval (ngalert: an interval that is not one is refused)."""
    for group, rule in rules():
        assert rule["noDataState"] in {"Alerting", "NoData", "OK", "KeepLast"}, rule["uid"]
        assert rule["execErrState"] in {"Alerting", "Error", "OK", "KeepLast"}, rule["uid"]
        seconds(rule["for"])
        assert seconds(group["interval"]) % 10 == 0 and seconds(group["interval"]) > 0
        assert rule["title"] and rule["uid"] and rule["isPaused"] is False


def test_alert_rule_queries_and_expressions_fit_together() -> None:
    """Each step names itself (model.refId = refId), a query's range is relative to the
    evaluation and runs up to it (relativeTimeRange from > to = 0), an expression's input
    is an earlier step, the Reduce reducer and Threshold evaluator are ones Grafana's
    server-side expressions know (pkg/expressions: reduce.go, threshold.go), and the
    condition is the threshold."""
    reducers = {"sum", "mean", "min", "max", "count", "last", "median"}
    evaluators = {"gt", "lt", "within_range", "outside_range"}
    for _group, rule in rules():
        steps = {d["refId"]: d for d in rule["data"]}
        assert list(steps) == ["A", "B", "C"] and rule["condition"] == "C", rule["uid"]
        for ref, step in steps.items():
            assert step["model"]["refId"] == ref
        a, b, c = steps["A"], steps["B"], steps["C"]
        assert a["relativeTimeRange"]["from"] > a["relativeTimeRange"]["to"] == 0
        assert a["model"]["rawQuery"] is True and a["model"]["resultFormat"] == "time_series"
        assert (b["model"]["type"], b["model"]["expression"]) == ("reduce", "A")
        assert b["model"]["reducer"] in reducers
        assert (c["model"]["type"], c["model"]["expression"]) == ("threshold", "B")
        [condition] = c["model"]["conditions"]
        assert condition["evaluator"]["type"] in evaluators


def outer_group_by(query: str) -> set[str]:
    """The tags of a query's outermost GROUP BY: the labels Grafana gives each series."""
    depth, outer = 0, []
    for ch in query:
        depth += ch == "("
        if depth == 0:
            outer.append(ch)
        depth -= ch == ")"
    text = "".join(outer)
    match = re.search(r"GROUP BY (.*)$", text)
    return set(re.findall(r'"(\w+)"', match.group(1))) if match else set()


def test_every_label_a_summary_uses_is_a_label_of_its_series() -> None:
    """Annotations are Go templates over the instance's labels ({{ $labels.rig }}): the
    labels are the series' tags (the InfluxQL data source makes one frame per series,
    labelled by its GROUP BY tags) plus the rule's own; a name that is not there renders as
    "<no value>" in every page."""
    for _group, rule in rules():
        used = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        have = outer_group_by(rule["data"][0]["model"]["query"]) | set(rule["labels"])
        assert used and used <= have, (rule["uid"], used - have)


def test_the_mute_timing_is_a_valid_alertmanager_time_interval() -> None:
    """Alertmanager timeinterval (as Grafana's MuteTimeV1 embeds it): weekday names,
    HH:MM ranges with start before end, a location time.LoadLocation knows."""
    days = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
    [timing] = json.loads((ALERTING / "mute-timings.json").read_text())["muteTimes"]
    for interval in timing["time_intervals"]:
        assert set(interval["weekdays"]) <= days
        ZoneInfo(interval["location"])
        for span in interval["times"]:
            start, end = (tuple(map(int, span[k].split(":"))) for k in ("start_time", "end_time"))
            assert (0, 0) <= start < end <= (24, 0)


def test_dashboards_are_provisionable_json_for_their_folder() -> None:
    """What the file provisioner needs (pkg/services/provisioning/dashboards): a uid unique
    within the org, a title, and no "id" (a provisioned dashboard gets its own); every panel
    and variable names its data source by uid."""
    uids = set()
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"] and board.get("id") is None, path.name
        uids.add(board["uid"])
        for panel in board["panels"]:
            assert panel["datasource"]["uid"], panel["title"]
            assert all(t["datasource"]["uid"] for t in panel["targets"]), panel["title"]
    assert len(uids) == len(list(DASHBOARDS.glob("*.json")))
