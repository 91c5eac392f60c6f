"""Shared pieces of the dashboards: grid layout, template variables, filters, panel helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.influxql import DATASOURCE, Target
from hashwatt.names import Measurement, Tag

GRID_WIDTH = 24


def matches(*tags: str) -> str:
    """Each tag matched against the template variable of its name (All = `.*`)."""
    return " AND ".join(f'"{tag}" =~ /^${tag}$/' for tag in tags)


# the fleet variables: every fleet dashboard filters by them
FLEET_TAGS = (Tag.SITE, Tag.RACK, Tag.CUSTOMER, Tag.MODEL)
RIG_FILTER = matches(*FLEET_TAGS)
PDU_FILTER = matches(Tag.SITE)
# a rig's latest reading must be this fresh to count on the wall screen (2 poll cycles at 30 s
# plus margin): an offline rig then drops out of the fleet sums instead of lingering
LIVE = "2m"


@dataclass
class Grid:
    """Places panels left to right, wrapping rows at 24 columns."""

    x: int = 0
    y: int = 0
    row_height: int = 0
    placed: list[Any] = field(default_factory=list)

    def add(self, panel: Any, w: int, h: int) -> Any:
        """Give panel its position and return it."""
        if self.x + w > GRID_WIDTH:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel.grid_pos(model.GridPos(h=h, w=w, x=self.x, y=self.y))
        self.x += w
        self.row_height = max(self.row_height, h)
        self.placed.append(panel)
        return panel


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: (value, colour) pairs, the first value None (base)."""
    return dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


def big_stat(title: str, unit: str, *queries: Target, decimals: int = 1,
             steps: tuple[tuple[float | None, str], ...] = ((None, "green"),)) -> stat.Panel:
    """A wall-screen stat: large value, coloured background by threshold. One query shows
    its value only (the title names it); several show each value with its query's alias
    (Grafana names an unaliased InfluxQL series "measurement.column", e.g. "rig.sum":
    pkg/tsdb/influxdb/influxql/util formatFrameName)."""
    text = (common.BigValueTextMode.VALUE_AND_NAME if len(queries) > 1
            else common.BigValueTextMode.VALUE)
    panel = (stat.Panel().title(title).datasource(DATASOURCE).unit(unit).decimals(decimals)
             .color_mode(common.BigValueColorMode.BACKGROUND)
             .graph_mode(common.BigValueGraphMode.NONE)
             .text_mode(text)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
             .thresholds(thresholds(*steps)))
    for n, query in enumerate(queries):
        panel.with_target(query.ref_id(chr(ord("A") + n)))
    return panel


# the smallest $__interval of a time series: two poll cycles (30 s). Grafana's own would be
# range / panel width (6 h on 1,000 px: 20 s, rangeutil.ts calculateInterval), and a bucket
# without a rig's reading drops it from a fleet sum: the total would saw-tooth
MIN_INTERVAL = "1m"


def series(title: str, unit: str, *queries: Target) -> timeseries.Panel:
    """A time-series panel, at least MIN_INTERVAL per point."""
    panel = (timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit)
             .interval(MIN_INTERVAL))
    for n, query in enumerate(queries):
        panel.with_target(query.ref_id(chr(ord("A") + n)))
    return panel


def grid_table(title: str, query: Target, unit: str = "none", *,
               datasource: model.DataSourceRef = DATASOURCE) -> table.Panel:
    """A table panel over a table-format query."""
    return (table.Panel().title(title).datasource(datasource).unit(unit)
            .with_target(query.table()))


def coloured(panel: table.Panel) -> table.Panel:
    """Cells coloured by the panel's thresholds: a table colours nothing unless its cell
    type says so (fieldConfig.defaults.custom.cellOptions, "color-background")."""
    return panel.cell_options(common.TableColoredBackgroundCellOptions(
        mode=common.TableCellBackgroundDisplayMode.BASIC))


def tag_variable(name: str, measurement: str = Measurement.RIG, *, label: str = "",
                 datasource: model.DataSourceRef = DATASOURCE) -> dashboard.QueryVariable:
    """A multi-select variable over a tag's values, All = every value."""
    return (dashboard.QueryVariable(name).label(label or name.capitalize())
            .datasource(datasource)
            .query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{name}"')
            .multi(True).include_all(True).all_value(".*")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC))


def fleet_variables() -> list[cogbuilder.Builder[model.VariableModel]]:
    """site, rack, customer and model: every fleet dashboard filters by them."""
    return [tag_variable(tag) for tag in FLEET_TAGS]


def currency_variable(currency: str) -> dashboard.ConstantVariable:
    """The site currency, shown in titles (Grafana units cannot be variables)."""
    return dashboard.ConstantVariable("currency").value(currency)


def transform(kind: str, **options: Any) -> model.DataTransformerConfig:
    """A panel transformation by Grafana id."""
    return model.DataTransformerConfig(id_val=kind, options=options)


# What the committed dashboards say: the viewer's browser clock. A Grafana provisioned for a
# site gets the site's timezone (`[site] timezone` of the config it is given) written into
# every dashboard and the maintenance mute timing at start by deploy/grafana/entrypoint.sh,
# so "now/d" (cost today) and "now/M" (the finance month) start at the site's midnight
# (Grafana's dateMath rounds in the dashboard's timezone; "browser" = the viewer's).
TIMEZONE = "browser"
# the mute timing's default location until the entrypoint writes the site's (Alertmanager
# timeinterval.Location: an IANA name, "UTC" or "Local")
MUTE_LOCATION = "UTC"


def new_dashboard(uid: str, title: str, tags: list[str], *, refresh: str = "30s",
                  time_from: str = "now-6h", timezone: str = TIMEZONE) -> dashboard.Dashboard:
    """A dashboard with hashwatt's defaults."""
    return (dashboard.Dashboard(title).uid(uid).tags(["hashwatt", *tags]).refresh(refresh)
            .time(time_from, "now").timezone(timezone).readonly())
