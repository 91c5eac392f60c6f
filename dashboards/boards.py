"""The five dashboards. Every query is InfluxQL (InfluxDB 1.x, 2.x via DBRP, 3.x): no
INTEGRAL(), no Flux. Fleet figures sum each rig's latest reading of the live window."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    LIVE,
    PDU_FILTER,
    RIG_FILTER,
    Grid,
    big_stat,
    coloured,
    currency_variable,
    fleet_variables,
    grid_table,
    new_dashboard,
    series,
    tag_variable,
    thresholds,
    transform,
)
from dashboards.influxql import DATASOURCE, LEDGER, Target
from dashboards.operator import (
    IN_SERVICE,
    SILENT_COLLECTORS,
    SILENT_RIGS,
    down_rigs_table,
    silent_table,
    suspects_table,
)
from dashboards.operator import RIGS_IN_MAINTENANCE as MAINTENANCE_COUNT
from hashwatt.names import Field, Measurement, Tag

LAST_PER_RIG = 'FROM "rig" WHERE $timeFilter AND {filter} GROUP BY "rig"'


def per_rig(select: str) -> str:
    """An inner query: each rig's latest values (select like `last("x") AS "x"`)."""
    return f'(SELECT {select} {LAST_PER_RIG.format(filter=RIG_FILTER)})'


FLEET_HASHRATE = 'SELECT sum("h") FROM ' + per_rig('last("hashrate_ths") AS "h"')
FLEET_POWER = 'SELECT sum("p") FROM ' + per_rig('last("power_w") AS "p"')
FLEET_EFFICIENCY = ('SELECT sum("p") / sum("h") FROM '
                    + per_rig('last("power_w") AS "p", last("hashrate_ths") AS "h"'))
COST_PER_HOUR = 'SELECT sum("c") FROM ' + per_rig('last("cost_per_h") AS "c"')
# availability: rigs in maintenance are counted apart, never as offline
IN_SERVICE_RIG = ('(SELECT last("up") AS "u" ' + LAST_PER_RIG.format(
    filter=f"{RIG_FILTER} AND {IN_SERVICE}") + ')')
RIGS_ONLINE = 'SELECT sum("u") AS "online" FROM ' + IN_SERVICE_RIG
RIGS_OFFLINE = 'SELECT count("u") - sum("u") AS "offline" FROM ' + IN_SERVICE_RIG


def zero_filled(name: str, counted: str) -> str:
    """A count that is 0, not absent, when nothing matches: count() of nothing is no row at
    all and a stat drops a query without rows, so each live rig adds a 0 to the sum."""
    return (f'SELECT sum("{name}") AS "{name}" FROM ({counted}), (SELECT count("u") * 0 AS '
            f'"{name}" FROM ' + per_rig('last("up") AS "u"') + ')')


RIGS_HOT = zero_filled("hot", 'SELECT count("m") AS "hot" FROM '
                       + per_rig('last("temp_margin_c") AS "m"') + ' WHERE "m" < 5')
RIGS_IN_MAINTENANCE = zero_filled("maintenance", MAINTENANCE_COUNT)
# cost so far today: per rig and quarter hour its mean cost rate times a quarter of an hour.
# Quarters, not hours: `now/d` starts at the site's midnight and every timezone's offset is a
# whole number of quarter hours (Kathmandu +05:45), so no bucket straddles midnight; InfluxQL
# buckets are aligned to the epoch. The quarter in progress counts as a whole one (at most
# 15 minutes of cost ahead).
COST_TODAY = ('SELECT sum("c") / 4 FROM (SELECT mean("cost_per_h") AS "c" FROM "rig" WHERE '
              f'$timeFilter AND {RIG_FILTER} GROUP BY time(15m), "rig")')


def farm_overview(currency: str) -> dashboard.Dashboard:
    """The wall screen: big numbers, thresholds coloured, 10 s refresh, kiosk-ready."""
    d = new_dashboard("hashwatt-farm", "Farm overview", ["wall"], refresh="10s",
                      time_from="now-6h")
    for var in [*fleet_variables(), currency_variable(currency)]:
        d.with_variable(var)
    g = Grid()
    live = [
        big_stat("Fleet hashrate", "TH/s", Target(FLEET_HASHRATE)),
        big_stat("Wall power", "watt", Target(FLEET_POWER)),
        big_stat("Efficiency", "J/TH", Target(FLEET_EFFICIENCY), decimals=2,
                 steps=((None, "green"), (25, "yellow"), (32, "red"))),
        big_stat("Cost per hour ($currency)", "none", Target(COST_PER_HOUR), decimals=2),
    ]
    for panel in live:
        d.with_panel(g.add(panel.time_from(LIVE), 6, 5))
    d.with_panel(g.add(big_stat("Cost today ($currency)", "none", Target(COST_TODAY),
                                decimals=2).time_from("now/d"), 6, 5))
    d.with_panel(g.add(big_stat(
        "Rigs", "none", Target(RIGS_ONLINE).alias("online"),
        Target(RIGS_OFFLINE).alias("offline"), Target(RIGS_HOT).alias("hot"),
        Target(RIGS_IN_MAINTENANCE).alias("maintenance"), decimals=0,
        steps=((None, "blue"),)).time_from(LIVE), 18, 5))
    d.with_panel(g.add(rack_heat_map().time_from(LIVE), 24, 9))
    d.with_panel(g.add(down_rigs_table(), 24, 8))
    d.with_panel(g.add(silent_table("Rigs silent (no reading: collector down?)",
                                    SILENT_RIGS), 24, 6))
    d.with_panel(g.add(suspects_table(), 24, 8))
    d.with_panel(g.add(top_table("Hottest rigs", Field.TEMP_MAX_C, "celsius"), 12, 9))
    d.with_panel(g.add(top_table("Worst efficiency", Field.EFFICIENCY_J_TH, "J/TH"), 12, 9))
    d.with_panel(g.add(series("Fleet hashrate over time", "TH/s", Target(fleet_over_time(
        Field.HASHRATE_THS))), 12, 8))
    d.with_panel(g.add(series("Wall power over time", "watt",
                              Target(fleet_over_time(Field.POWER_W))), 12, 8))
    return d


def fleet_over_time(field: str) -> str:
    """Fleet total per interval: the sum over rigs of each rig's mean in the interval."""
    return (f'SELECT sum("v") FROM (SELECT mean("{field}") AS "v" FROM "rig" WHERE $timeFilter '
            f'AND {RIG_FILTER} GROUP BY time($__interval), "rig") GROUP BY time($__interval)')


def rack_heat_map() -> table.Panel:
    """Racks as rows, slots as columns, cells coloured by the hottest chip."""
    query = Target(f'SELECT last("temp_max_c") AS "temp" FROM "rig" WHERE $timeFilter AND '
                     f'{RIG_FILTER} GROUP BY "rack", "slot"')
    return (coloured(grid_table("Racks and slots: hottest chip (°C)", query, "celsius"))
            .with_transformation(transform("groupingToMatrix", rowField="rack",
                                           columnField="slot", valueField="temp"))
            .thresholds(thresholds((None, "green"), (80, "yellow"), (90, "red"))))


def top_table(title: str, field: str, unit: str) -> table.Panel:
    """The ten rigs with the highest latest value of field."""
    query = Target(f'SELECT top("v", "rig", 10) AS "{field}" FROM '
                     + per_rig(f'last("{field}") AS "v"'))
    return coloured(grid_table(title, query, unit)).time_from(LIVE).thresholds(
        thresholds((None, "green"), (85, "red")) if unit == "celsius"
        else thresholds((None, "green"), (30, "red")))


def rig_detail() -> dashboard.Dashboard:
    """One rig: boards, temperatures, fans, power and its source, efficiency, uptime, errors."""
    d = new_dashboard("hashwatt-rig", "Rig detail", ["rig"], time_from="now-6h")
    d.with_variable(tag_variable(Tag.SITE)).with_variable(
        dashboard.QueryVariable("rig").label("Rig").datasource(DATASOURCE)
        .query('SHOW TAG VALUES FROM "rig" WITH KEY = "rig" WHERE "site" =~ /^$site$/')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED))
    # ${rig:raw}: Grafana fills a raw query's variables with the `regex` format (the
    # InfluxDB data source's applyVariables), which would escape a rig id's "." into "\."
    # and break the string literal; ids are [A-Za-z0-9._-] (hashwatt.contract SEGMENT), so
    # the raw value is a safe literal
    where = "$timeFilter AND \"site\" =~ /^$site$/ AND \"rig\" = '${rig:raw}'"
    g = Grid()
    # the latest reading as a whole (not each field's last value: an online rig's reading has
    # no error, and last("error") would show one from hours ago)
    last = (f'SELECT "online", "power_w" AS "power", "power_source" AS "source", '
            f'"efficiency_j_th" AS "J/TH", "nominal_efficiency_j_th" AS "nominal J/TH", '
            f'"uptime_s" AS "uptime", "error", "errors" FROM "rig" WHERE {where} '
            'ORDER BY time DESC LIMIT 1')
    d.with_panel(g.add(grid_table("Now", Target(last)), 24, 4))
    board = f'FROM "rig_board" WHERE {where} GROUP BY time($__interval), "board"'
    d.with_panel(g.add(series("Hashrate per board", "TH/s", Target(
        f'SELECT mean("hashrate_ths") {board}').alias("board $tag_board")), 12, 8))
    d.with_panel(g.add(series("Chip temperature per board", "celsius", Target(
        f'SELECT mean("chip_temp_c") {board}').alias("board $tag_board")), 12, 8))
    d.with_panel(g.add(series("Board temperature per board", "celsius", Target(
        f'SELECT mean("board_temp_c") {board}').alias("board $tag_board")), 12, 8))
    d.with_panel(g.add(series("Chips per board", "none", Target(
        f'SELECT last("chips") {board}').alias("board $tag_board")), 12, 8))
    rig = f'FROM "rig" WHERE {where} GROUP BY time($__interval)'
    d.with_panel(g.add(series("Efficiency against nominal", "J/TH",
                              Target(f'SELECT mean("efficiency_j_th") AS "actual" {rig}'),
                              Target(f'SELECT mean("nominal_efficiency_j_th") AS "nominal" '
                                       f'{rig}')), 12, 8))
    d.with_panel(g.add(series("Slowest fan", "rpm",
                              Target(f'SELECT min("fan_min_rpm") AS "fan" {rig}')), 12, 8))
    d.with_panel(g.add(series("Wall power", "watt",
                              Target(f'SELECT mean("power_w") AS "power" {rig}')), 24, 8))
    return d


def power() -> dashboard.Dashboard:
    """Site, PDU, phase and outlet power; phase load against breakers; energy counters."""
    d = new_dashboard("hashwatt-power", "Power", ["power"])
    d.with_variable(tag_variable(Tag.SITE, Measurement.PDU))
    g = Grid()
    site = (f'SELECT sum("p") FROM (SELECT mean("power_w") AS "p" FROM "pdu" WHERE $timeFilter '
            f'AND {PDU_FILTER} GROUP BY time($__interval), "pdu") GROUP BY time($__interval)')
    d.with_panel(g.add(series("Site power (PDUs and meters)", "watt",
                              Target(site).alias("site")), 24, 8))
    load = (f'SELECT last("load_pct") AS "load" FROM "pdu_phase" WHERE $timeFilter AND '
            f'{PDU_FILTER} GROUP BY "pdu", "unit", "phase"')
    d.with_panel(g.add(grid_table("Phase load against breaker rating", Target(load),
                                  "percent").time_from(LIVE).thresholds(thresholds(
                                      (None, "green"), (80, "orange"), (90, "red"))), 12, 9))
    energy = (f'SELECT last("energy_kwh") AS "kWh" FROM "pdu" WHERE $timeFilter AND '
              f'{PDU_FILTER} GROUP BY "pdu"')
    d.with_panel(g.add(grid_table("Energy counters", Target(energy), "kwatth"), 12, 9))
    per_pdu = (f'SELECT mean("power_w") FROM "pdu" WHERE $timeFilter AND {PDU_FILTER} '
               'GROUP BY time($__interval), "pdu"')
    d.with_panel(g.add(series("Power per PDU", "watt", Target(per_pdu).alias("$tag_pdu")),
                       12, 8))
    phase = (f'SELECT mean("current_a") FROM "pdu_phase" WHERE $timeFilter AND {PDU_FILTER} '
             'GROUP BY time($__interval), "pdu", "unit", "phase"')
    d.with_panel(g.add(series("Phase current", "amp",
                              Target(phase).alias("$tag_pdu $tag_unit $tag_phase")), 12, 8))
    outlets = (f'SELECT last("power_w") AS "W", last("energy_kwh") AS "kWh" FROM "pdu_outlet" '
               f'WHERE $timeFilter AND {PDU_FILTER} GROUP BY "pdu", "unit", "outlet", "rig"')
    d.with_panel(g.add(grid_table("Outlets", Target(outlets)).time_from(LIVE), 24, 10))
    return d


def finance(currency: str) -> dashboard.Dashboard:
    """Month totals from the quarter-hour energy ledger, as tables that download as CSV.

    Every query, the Site variable's too, goes to the ledger's own data source (database
    `hashwatt_ledger`, its default retention policy): on 2.x the ledger is a bucket of its
    own and the operations database's default mapping would find nothing there."""
    d = new_dashboard("hashwatt-finance", "Finance", ["finance"], refresh="",
                      time_from="now/M")
    d.with_variable(tag_variable(Tag.SITE, Measurement.ENERGY_QUARTER, datasource=LEDGER)
                    ).with_variable(
        currency_variable(currency)).with_variable(
        dashboard.CustomVariable("by").label("Per").values("customer,site,rack,rig")
        .current(model.VariableOption(text="customer", value="customer", selected=True)))
    g = Grid()
    # rows a re-run superseded are zeros with source "void": harmless in sums, not in means
    where = ('FROM "energy_quarter" WHERE $timeFilter AND "site" =~ /^$site$/ '
             "AND \"source\" != 'void'")
    totals = (f'SELECT sum("kwh") AS "kWh", sum("cost") AS "cost ($currency)", '
              f'mean("coverage") AS "coverage" {where} GROUP BY "$by"')
    d.with_panel(g.add(grid_table("kWh and cost for the chosen month", Target(totals, LEDGER),
                                  datasource=LEDGER)
                       .with_transformation(transform("merge")), 24, 12))
    split = ('SELECT sum("kwh_measured") AS "measured kWh", sum("kwh_estimated") AS '
             f'"estimated kWh" {where} GROUP BY "$by"')
    d.with_panel(g.add(grid_table("Measured and estimated kWh", Target(split, LEDGER),
                                  datasource=LEDGER), 24, 10))
    windows = (f'SELECT sum("kwh") AS "kWh", sum("cost") AS "cost ($currency)" {where} '
               'GROUP BY "$by", "window"')
    d.with_panel(g.add(grid_table("kWh and cost per tariff window (peak / off-peak)",
                                  Target(windows, LEDGER), datasource=LEDGER), 24, 10))
    return d


def collector_health() -> dashboard.Dashboard:
    """Cycle times, failed polls, spool depth, exporter lag, set-aside messages."""
    d = new_dashboard("hashwatt-health", "Collector health", ["ops"])
    g = Grid()
    d.with_panel(g.add(silent_table("Collectors silent", SILENT_COLLECTORS), 24, 5))
    per = 'GROUP BY time($__interval), "collector"'
    d.with_panel(g.add(series("Cycle time", "s", Target(
        f'SELECT max("cycle_s") FROM "collector" WHERE $timeFilter {per}')
        .alias("$tag_collector")), 12, 8))
    d.with_panel(g.add(series("Failed polls per cycle", "none", Target(
        f'SELECT max("rigs_failed") + max("rigs_timeout") FROM "collector" WHERE $timeFilter '
        f'{per}').alias("$tag_collector")), 12, 8))
    d.with_panel(g.add(series("Spool depth", "none", Target(
        f'SELECT max("spool_depth") FROM "collector" WHERE $timeFilter {per}')
        .alias("$tag_collector")), 12, 8))
    exporter = 'FROM "exporter" WHERE $timeFilter GROUP BY time($__interval), "exporter"'
    d.with_panel(g.add(series("Exporter lag", "ms", Target(
        f'SELECT max("lag_ms") {exporter}').alias("$tag_exporter")), 12, 8))
    d.with_panel(g.add(series("Set-aside messages (total)", "none", Target(
        f'SELECT max("dead_letters") {exporter}').alias("$tag_exporter")), 12, 8))
    d.with_panel(g.add(series("Exporter queue depth", "none", Target(
        f'SELECT max("queue_depth") {exporter}').alias("$tag_exporter")), 12, 8))
    delivery_health(d, g)
    return d


COLLECTOR, EXPORTER = Measurement.COLLECTOR, Measurement.EXPORTER
# (title, (aggregate, field), measurement) of the delivery and bad-input counters: the
# collector's cycle point (collector/publisher.py spool_stats, collector/service.py) and the
# bridge's `exporter` point (exporters/bridge.py stats_point)
DELIVERY_PANELS = [
    # gauges at the cycle's end: the largest in each interval
    ("Readings held in memory (spool disk refused)", ("max", Field.SPOOL_MEMORY), COLLECTOR),
    ("Sent, not yet known stored", ("max", Field.UNSTORED), COLLECTOR),
    # counters since the process started: the latest (largest) in each interval
    ("Readings resent (since start)", ("max", Field.RESENT), COLLECTOR),
    ("Spool disk errors (since start)", ("max", Field.SPOOL_DISK_ERRORS), COLLECTOR),
    # a boolean: last() works on it where max() does not; the panel shows it as 1/0
    ("Broker connected (1 = yes)", ("last", Field.BROKER_CONNECTED), COLLECTOR),
    # per cycle: the sum over the interval is what was dropped in it
    ("Device fields dropped (collector)", ("sum", Field.FIELDS_DROPPED), COLLECTOR),
    ("Derived fields dropped (bridge, since start)", ("max", Field.FIELDS_DROPPED), EXPORTER),
    ("Dead-letter write errors (since start)", ("max", Field.DEAD_LETTER_ERRORS), EXPORTER),
    ("QoS 0 messages dropped (since start)", ("max", Field.QOS0_DROPPED), EXPORTER),
]


def delivery_health(d: dashboard.Dashboard, g: Grid) -> None:
    """One time series per delivery counter, per collector or bridge."""
    for title, (aggregate, field), measurement in DELIVERY_PANELS:
        # the collector and exporter measurements are tagged with their own name
        query = (f'SELECT {aggregate}("{field}") FROM "{measurement}" WHERE $timeFilter '
                 f'GROUP BY time($__interval), "{measurement}"')
        d.with_panel(g.add(series(title, "none", Target(query).alias(f"$tag_{measurement}")),
                           12, 8))


def all_dashboards(currency: str) -> dict[str, dashboard.Dashboard]:
    """Every dashboard by file name."""
    return {"farm-overview": farm_overview(currency), "rig-detail": rig_detail(),
            "power": power(), "finance": finance(currency),
            "collector-health": collector_health()}
