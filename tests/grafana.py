"""What Grafana does with our queries, emulated for tests: InfluxQL macro and template
variable expansion, and the reduce/threshold steps of an alert rule."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from hashwatt.influxql import InfluxQL

VARIABLE = re.compile(r"\$(\w+)")


def time_filter(start_s: float, end_s: float) -> str:
    """Grafana's $timeFilter for the InfluxDB data source."""
    return f"time >= {int(start_s * 1000)}ms and time <= {int(end_s * 1000)}ms"


def relative_start(time_from: str, now: float) -> float:
    """The start of a relative range like 2m, 6h, now-6h, now/d (UTC day)."""
    if time_from == "now/d":
        return now - now % 86400
    if time_from == "now/M":
        t = time.gmtime(now)
        return time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0)) - time.timezone
    spec = time_from.removeprefix("now-")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return now - int(spec[:-1]) * units[spec[-1]]


def expand(query: str, start_s: float, end_s: float, variables: dict[str, str] | None = None,
           interval: str = "1m") -> str:
    """Expand $timeFilter, $__interval and template variables the way Grafana does."""
    values = {"timeFilter": time_filter(start_s, end_s), "__interval": interval,
              **(variables or {})}

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"query uses ${name}, which the test did not set")
        return values[name]

    return VARIABLE.sub(one, query)


ALL = {"site": ".*", "rack": ".*", "customer": ".*", "model": ".*", "currency": "EUR"}


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, timeFrom or "", query) for every target of a dashboard."""
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], panel.get("timeFrom", ""), target["query"]))
    return out


def run_panel(db: InfluxQL, board: dict[str, Any], title: str, now: float,
              variables: dict[str, str] | None = None) -> list[list[dict[str, Any]]]:
    """Rows of each target of the panel with this title, over its own time range."""
    out = []
    for panel_title, time_from, query in panel_queries(board):
        if panel_title != title:
            continue
        start = relative_start(time_from or board["time"]["from"], now)
        out.append(db.rows(expand(query, start, now, {**ALL, **(variables or {})})))
    if not out:
        raise KeyError(f"no panel titled {title!r}")
    return out


@dataclass(frozen=True)
class Firing:
    """One alert instance: the series labels and the reduced value."""

    labels: tuple[tuple[str, str], ...]
    value: float


def evaluate_rule(db: InfluxQL, rule: dict[str, Any], now: float) -> list[Firing]:
    """Run query A, reduce each series (B), apply the threshold (C): the firing series."""
    steps = {d["refId"]: d for d in rule["data"]}
    window = steps["A"]["relativeTimeRange"]["from"]
    query = expand(steps["A"]["model"]["query"], now - window, now)
    reducer = steps["B"]["model"]["reducer"]
    evaluator = steps["C"]["model"]["conditions"][0]["evaluator"]
    firing = []
    for result in db.execute(query):
        for series in result.get("series", []):
            values = [row[1] for row in series["values"] if row[1] is not None]
            value = {"last": values[-1] if values else None, "max": max(values, default=None),
                     "mean": sum(values) / len(values) if values else None}[reducer]
            if value is not None and _fires(evaluator, value):
                firing.append(Firing(tuple(sorted(series.get("tags", {}).items())), value))
    return firing


def _fires(evaluator: dict[str, Any], value: float) -> bool:
    limit = evaluator["params"][0]
    return {"gt": value > limit, "lt": value < limit}[evaluator["type"]]
