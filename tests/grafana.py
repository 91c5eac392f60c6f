"""What Grafana does with our queries, emulated for tests, each step after the Grafana code
that does it:

- macros: $timeFilter (pkg/tsdb/influxdb/models/query.go renderTimeFilter: "time >= Xms and
  time <= Yms") and $__interval, which the backend replaces; $__interval is Grafana's
  calculateInterval (packages/grafana-data datetime/rangeutil.ts: roundInterval(range /
  resolution), raised to the panel's min interval);
- template variables, which the frontend replaces in the raw query text with the `regex`
  format (public/app/plugins/datasource/influxdb/datasource.ts applyVariables:
  templateSrv.replace(query, vars, 'regex')): each value escapeRegex'd
  (grafana-data text/string.ts), several values as (a|b), a custom all value (".*") as is,
  `${name:raw}` untouched; a variable is offered only the values its own query finds in the
  data, as Grafana's variable refresh does; InfluxQL's now() is the evaluation time;
- time ranges: "now-6h", and "now/d", "now/M" rounded in the *dashboard's* timezone
  (dashboard JSON "timezone"), as Grafana's dateMath does;
- frames: one per InfluxQL series and value column, named "measurement.column" unless the
  target has an alias (pkg/tsdb/influxdb/influxql/util FormatFrameName), labelled with the
  series' tags;
- alert rules: the Reduce expression in its default (strict) mode
  (pkg/expressions/mathexp/reduce.go: an empty series gives NaN; `last` gives the last value,
  null -> NaN; sum/mean/min/max give NaN if any value is null), then the threshold, which a NaN
  never crosses. A series the query no longer returns is *missing*: it has no instance at all
  (Grafana marks it stale and resolves it), and only "no series at all" is NoData;
- notification routing: Alertmanager's Route.Match (dispatch/route.go): depth-first, a
  matching child stops the search among its siblings unless it has `continue: true`, and a
  node is itself the match only when none of its children matched.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from hashwatt.influxql import InfluxQL

VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)\]\]")
# the value a multi-select variable holds when "All" is chosen (Grafana's ALL_VARIABLE_VALUE);
# the query then gets the variable's custom all value, unescaped
ALL_SELECTED = "$__all"
BACKEND_MACROS = ("timeFilter", "__interval", "__interval_ms", "interval")
Value = str | list[str]
Databases = dict[str, InfluxQL]  # data source uid -> a client on that data source's database


def time_filter(start_s: float, end_s: float) -> str:
    """Grafana's $timeFilter for the InfluxDB data source."""
    return f"time >= {int(start_s * 1000)}ms and time <= {int(end_s * 1000)}ms"


# a dashboard whose timezone is "browser" (what the committed JSON says until the Grafana
# entrypoint writes the site's in) rounds in the viewer's: the emulated viewer sits in UTC
VIEWER_TZ = "UTC"


def relative_start(time_from: str, now: float, timezone: str = "UTC") -> float:
    """The start of a relative range: 2m, now-6h, or now/d, now/M in the given timezone
    (the dashboard JSON's "timezone": an IANA name, "utc", or "browser"/"" = the viewer's;
    Grafana's dateMath.parse rounds with the dashboard's timeZone)."""
    timezone = {"browser": VIEWER_TZ, "": VIEWER_TZ, "utc": "UTC"}.get(timezone, timezone)
    if time_from in ("now/d", "now/M"):
        local = dt.datetime.fromtimestamp(now, ZoneInfo(timezone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if time_from == "now/M":
            start = start.replace(day=1)
        # a wall-clock midnight, re-resolved in its zone (its UTC offset may differ from now's)
        return dt.datetime(start.year, start.month, start.day,
                           tzinfo=ZoneInfo(timezone)).timestamp()
    spec = time_from.removeprefix("now-")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return now - int(spec[:-1]) * units[spec[-1]]


def escape_regex(value: str) -> str:
    """Grafana's escapeRegex (packages/grafana-data/src/text/string.ts)."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def format_value(value: Value, fmt: str = "regex", all_value: str = ".*") -> str:
    """One variable's text in the query: the `regex` format (the InfluxDB data source's),
    or `raw`; "All" gives the custom all value as it is."""
    if value == ALL_SELECTED or value == [ALL_SELECTED]:
        return all_value
    if fmt == "raw":
        return ",".join(value) if isinstance(value, list) else value
    if isinstance(value, str):
        return escape_regex(value)
    escaped = [escape_regex(v) for v in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def round_interval(ms: float) -> int:
    """Grafana's roundInterval (rangeutil.ts), the steps this project's ranges reach."""
    steps = [(10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
             (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000),
             (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000),
             (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
             (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
             (16200000, 10800000), (32400000, 21600000), (86400000, 43200000)]
    return next((out for below, out in steps if ms < below), 86400000)


def interval_for(start_s: float, end_s: float, min_interval: str = "",
                 resolution: int = 1000) -> str:
    """$__interval as Grafana's calculateInterval makes it: the range over the panel's
    resolution (about its width in pixels), rounded, at least the panel's min interval."""
    ms = round_interval((end_s - start_s) * 1000 / resolution)
    if min_interval:
        units = {"s": 1000, "m": 60_000, "h": 3_600_000}
        ms = max(ms, int(min_interval[:-1]) * units[min_interval[-1]])
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def expand(query: str, start_s: float, end_s: float, variables: dict[str, Value] | None = None,
           interval: str = "1m") -> str:
    """Expand $timeFilter, $__interval and template variables the way Grafana does."""
    macros = {"timeFilter": time_filter(start_s, end_s), "__interval": interval,
              "interval": interval}
    values = variables or {}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        fmt = match.group(2) or "regex"
        if name in macros:
            return macros[name]
        if name not in values:
            raise KeyError(f"query uses ${name}, which the test did not set")
        return format_value(values[name], fmt)

    # InfluxDB evaluates now() when the query arrives, i.e. at Grafana's evaluation time: the
    # emulation's evaluation time is end_s, however long ago a slow test suite computed it
    return VARIABLE.sub(one, query).replace("now()", f"{int(end_s * 1000)}ms")


ALL: dict[str, Value] = {"site": ALL_SELECTED, "rack": ALL_SELECTED,
                         "customer": ALL_SELECTED, "model": ALL_SELECTED, "currency": "EUR"}


def _client(dbs: Databases | InfluxQL, uid: str) -> InfluxQL:
    return dbs if isinstance(dbs, InfluxQL) else dbs[uid]


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, timeFrom or "", query) for every target of a dashboard."""
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], panel.get("timeFrom", ""), target["query"]))
    return out


def variable_options(dbs: Databases | InfluxQL, board: dict[str, Any], name: str,
                     now: float, variables: dict[str, Value] | None = None) -> list[str]:
    """The values a query variable offers: its query run on its own data source."""
    var = next(v for v in board["templating"]["list"] if v["name"] == name)
    if var["type"] != "query":
        return [o["value"] for o in var.get("options", [])] or str(var.get("query")).split(",")
    start = relative_start(board["time"]["from"], now, board.get("timezone", "UTC"))
    query = expand(var["query"], start, now, {**ALL, **(variables or {})})
    rows = _client(dbs, var["datasource"]["uid"]).rows(query)
    return sorted({str(r["value"]) for r in rows})


def run_panel(dbs: Databases | InfluxQL, board: dict[str, Any], title: str, now: float,
              variables: dict[str, Value] | None = None,
              resolution: int = 1000) -> list[list[dict[str, Any]]]:
    """Rows of each target of the panel with this title, over its own time range, on its
    target's data source. A chosen variable value must be one the variable offers."""
    chosen = variables or {}
    for name, value in chosen.items():
        declared = {v["name"]: v for v in board["templating"].get("list", [])}
        if name in declared and declared[name]["type"] == "query":
            offered = variable_options(dbs, board, name, now)
            for one in [value] if isinstance(value, str) else value:
                assert one == ALL_SELECTED or one in offered, (
                    f"${name} = {one!r} is not offered ({offered})")
    out = []
    tz = board.get("timezone", "UTC")
    for panel in board["panels"]:
        if panel["title"] != title:
            continue
        start = relative_start(panel.get("timeFrom") or board["time"]["from"], now, tz)
        interval = interval_for(start, now, panel.get("interval", ""), resolution)
        for target in panel.get("targets", []):
            query = expand(target["query"], start, now, {**ALL, **chosen}, interval)
            out.append(_client(dbs, target["datasource"]["uid"]).rows(query))
    if not out:
        raise KeyError(f"no panel titled {title!r}")
    return out


@dataclass(frozen=True)
class Frame:
    """One data frame of an InfluxQL answer: its display name, labels and values."""

    name: str
    labels: tuple[tuple[str, str], ...]
    values: tuple[float | None, ...]


def frames(db: InfluxQL, query: str, alias: str = "") -> list[Frame]:
    """The frames Grafana's InfluxQL data source makes of a query's answer."""
    out = []
    for result in db.execute(query):
        for series in result.get("series", []):
            tags = series.get("tags", {})
            for i, column in enumerate(series["columns"]):
                if column == "time":
                    continue
                name = alias or f'{series["name"]}.{column}'
                for key, value in tags.items():
                    name = name.replace(f"$tag_{key}", value)
                values = tuple(row[i] for row in series["values"])
                out.append(Frame(name, tuple(sorted(tags.items())), values))
    return out


def reduce(values: tuple[float | None, ...], reducer: str) -> float:
    """Grafana's Reduce expression, default (strict) mode."""
    if reducer == "count":
        return float(len(values))
    if not values:
        return math.nan
    if reducer == "last":
        return math.nan if values[-1] is None else float(values[-1])
    if any(v is None or math.isnan(v) for v in values):
        return math.nan
    nums = [float(v) for v in values if v is not None]
    return {"sum": sum(nums), "mean": sum(nums) / len(nums), "min": min(nums),
            "max": max(nums)}[reducer]


@dataclass(frozen=True)
class Firing:
    """One alert instance: the series labels and the reduced value (NoData: no labels)."""

    labels: tuple[tuple[str, str], ...]
    value: float
    no_data: bool = False


def evaluate_rule(db: InfluxQL, rule: dict[str, Any], now: float) -> list[Firing]:
    """Run query A over its relative range, reduce each frame (B), apply the threshold (C):
    the firing instances, one per series."""
    steps = {d["refId"]: d for d in rule["data"]}
    window = steps["A"]["relativeTimeRange"]["from"]
    query = expand(steps["A"]["model"]["query"], now - window, now)
    reducer = steps["B"]["model"]["reducer"]
    evaluator = steps["C"]["model"]["conditions"][0]["evaluator"]
    found = frames(db, query)
    if not found:
        return [Firing((), math.nan, no_data=True)] if rule["noDataState"] == "Alerting" else []
    firing = []
    for frame in found:
        value = reduce(frame.values, reducer)
        if _fires(evaluator, value):
            firing.append(Firing(frame.labels, value))
    return firing


def _fires(evaluator: dict[str, Any], value: float) -> bool:
    limit = evaluator["params"][0]
    return {"gt": value > limit, "lt": value < limit}[evaluator["type"]]  # NaN: never


def _matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    for name, op, value in route.get("object_matchers", []):
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None,
              "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def route(node: dict[str, Any], labels: dict[str, str]) -> list[dict[str, Any]]:
    """The routes an alert with these labels is sent through (Alertmanager Route.Match)."""
    if not _matches(node, labels):
        return []
    matched: list[dict[str, Any]] = []
    for child in node.get("routes", []):
        found = route(child, labels)
        matched += found
        if found and not child.get("continue", False):
            break
    return matched or [node]
