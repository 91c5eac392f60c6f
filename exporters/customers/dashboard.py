"""The dashboard every customer sees in its own Grafana organisation: its rigs now, hashrate
and power, energy per day and its published statements. Every query reads the
organisation's one datasource, i.e. the customer's own database."""

from __future__ import annotations

from typing import Any

from exporters.finance.store import MEASUREMENT
from exporters.sinks.influx_common import influx_settings
from hashwatt.config import Config, CustomerConfig

DATASOURCE = {"type": "influxdb", "uid": "hashwatt-customer"}


def _target(query: str, fmt: str = "time_series") -> dict[str, Any]:
    return {"refId": "A", "datasource": DATASOURCE, "query": query, "rawQuery": True,
            "resultFormat": fmt}


def _panel(pid: int, title: str, kind: str, query: str, grid: tuple[int, int, int, int],
           unit: str = "", fmt: str = "time_series") -> dict[str, Any]:
    x, y, w, h = grid
    return {"id": pid, "title": title, "type": kind, "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": [_target(query, fmt)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}


def customer_dashboard(cfg: Config, c: CustomerConfig) -> dict[str, Any]:
    """The dashboard JSON (Grafana 11 schema)."""
    tz = cfg.site.timezone
    rp = influx_settings(cfg).ledger_retention_policy if cfg.influxdb else "ledger"
    panels = [
        _panel(1, "My rigs now", "table",
               'SELECT last("online") AS "online", last("hashrate_ths") AS "TH/s", '
               'last("power_w") AS "W", last("efficiency_j_th") AS "J/TH", '
               'last("temp_max_c") AS "max chip °C", last("error") AS "error" FROM "rig" '
               'WHERE time > now() - 5m GROUP BY "rig"', (0, 0, 24, 8), fmt="table"),
        _panel(2, "Hashrate", "timeseries",
               'SELECT mean("hashrate_ths") FROM "rig" WHERE $timeFilter '
               'GROUP BY time($__interval), "rig" fill(null)', (0, 8, 12, 8), "TH/s"),
        _panel(3, "Power", "timeseries",
               'SELECT mean("power_w") FROM "rig" WHERE $timeFilter '
               'GROUP BY time($__interval), "rig" fill(null)', (12, 8, 12, 8), "watt"),
        _panel(4, "Energy per day (kWh, from the ledger)", "barchart",
               f'SELECT sum("kwh") FROM "{rp}"."{MEASUREMENT}" WHERE $timeFilter '
               f"GROUP BY time(1d), \"rig\" fill(none) tz('{tz}')", (0, 16, 24, 8), "kwatth"),
        _panel(5, "Statements", "table",
               f'SELECT "kwh", "energy_cost", "fees", "total", "availability_pct", '
               f'"ledger_state" FROM "{rp}"."statement" WHERE time > now() - 400d',
               (0, 24, 24, 8), fmt="table"),
    ]
    return {"uid": "hashwatt-customer", "title": f"{c.name}: my rigs",
            "timezone": tz, "refresh": "30s", "schemaVersion": 39, "editable": False,
            "time": {"from": "now-24h", "to": "now"}, "panels": panels, "tags": ["hashwatt"]}
