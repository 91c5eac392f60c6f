"""The operator's panels on the wall screen: rigs that are down (with their reason) and rigs
whose readings do not fit the inventory (wiring, model, pool)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table

from dashboards.common import RIG_FILTER, grid_table
from dashboards.influxql import Target
from hashwatt.names import Roster, Tag

IN_SERVICE = f"\"{Tag.MAINTENANCE}\" != 'yes'"
MAINTENANCE = f"\"{Tag.MAINTENANCE}\" = 'yes'"


def latest_per_rig(fields: str, where: str = "", by: str = '"rig", "rack"') -> str:
    """An inner query: each rig's latest reading (all its fields at once, so an old error
    never sticks to a rig that came back)."""
    extra = f" AND {where}" if where else ""
    return (f'(SELECT {fields} FROM "rig" WHERE $timeFilter AND {RIG_FILTER}{extra} '
            f'GROUP BY {by} ORDER BY time DESC LIMIT 1)')


# subqueries ordered DESC need the outer query ordered the same way (InfluxDB 1.x says so)
DOWN_RIGS = ('SELECT "error" AS "reason" FROM '
             + latest_per_rig('"up", "error"', IN_SERVICE)
             + ' WHERE "up" = 0 GROUP BY "rig", "rack" ORDER BY time DESC')


def down_rigs_table() -> table.Panel:
    """Rigs whose latest reading says down, with the reason; maintenance left out."""
    return grid_table("Rigs down and why", Target(DOWN_RIGS)).time_from("10m")


SUSPECT_FIELDS = ('"wiring_suspect", "wiring_reason", "model_mismatch", "identified_model", '
                  '"pool_unexpected", "pool_url", "pool_user", "pool_reason"')
SUSPECTS = ('SELECT "wiring_reason" AS "wiring", "identified_model" AS "answers as", '
            '"pool_url" AS "pool", "pool_user" AS "worker", "pool_reason" AS "pool problem" '
            'FROM ' + latest_per_rig(SUSPECT_FIELDS, by='"rig", "rack", "model"')
            + ' WHERE "wiring_suspect" = 1 OR "model_mismatch" = 1 OR "pool_unexpected" = 1 '
            'GROUP BY "rig", "rack", "model" ORDER BY time DESC')


def suspects_table() -> table.Panel:
    """Rigs whose readings contradict the inventory (outlet power, model) or mine on a pool
    the site does not allow, with the reason."""
    return grid_table("Inventory, wiring and pool suspects", Target(SUSPECTS)).time_from("10m")


RIGS_IN_MAINTENANCE = ('SELECT count("u") AS "maintenance" FROM (SELECT last("up") AS "u" '
                       f'FROM "rig" WHERE $timeFilter AND {RIG_FILTER} AND {MAINTENANCE} '
                       'GROUP BY "rig")')


# Rigs and collectors that sent nothing for five minutes (the rules' window), from the
# bridge's roster marks (exporters/roster.py): listed for as long as they stay silent, days
# if need be, until `hashwatt forget`; the newest mark of the last three intervals counts
SILENT_AFTER_S = 300
MARKS = f"{3 * Roster.INTERVAL_S // 60}m"


def silent_query(measurement: str, by: str, where: str = "") -> str:
    """Each subject's newest mark, kept when it says silent for SILENT_AFTER_S or more."""
    extra = f" AND {where}" if where else ""
    return (f'SELECT "s" AS "silent for" FROM (SELECT last("{Roster.SILENT}") AS "s" FROM '
            f'"{measurement}" WHERE $timeFilter{extra} AND "{Roster.FORGOTTEN}" = 0 '
            f'GROUP BY {by}) WHERE "s" >= {SILENT_AFTER_S} GROUP BY {by}')


SILENT_RIGS = silent_query("rig", '"rig", "rack"', f"{RIG_FILTER} AND {IN_SERVICE}")
SILENT_COLLECTORS = silent_query("collector", '"site", "collector"')


def silent_table(title: str, query: str) -> table.Panel:
    """Subjects with no reading, and for how long (seconds, shown as a duration)."""
    return grid_table(title, Target(query), "s").time_from(MARKS)
