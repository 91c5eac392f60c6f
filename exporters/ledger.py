"""The hourly energy ledger: kWh and cost per rig (and per unmapped outlet) for every closed
hour, written to `energy_hourly` in the long-retention ledger (v1 retention policy or v2
bucket). Portable InfluxQL only (no INTEGRAL, no Flux).

Energy per quarter hour, best source first:
  pdu_energy  difference of the outlet's energy counter (a counter that went backwards was
              reset: the value after the reset counts from zero), so a month's total is exactly
              the counter's growth even across gaps;
  pdu_power   mean outlet power x 15 min;
  miner / nominal  mean of the rig's own or nominal power x 15 min.
Quarters without readings inside an hour that has some are filled with the hour's mean
power (counted as estimated); hours without any reading get no row: the report shows them as
missing coverage, never as silent zeros. Each quarter is priced at its own tariff rate.
Re-running an hour rewrites the same points (same series, same timestamp).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from exporters.lineproto import Point, encode
from exporters.sinks import make_sink
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL
from hashwatt.tariff import QUARTER_S, Tariff

log = logging.getLogger(__name__)

HOUR_S = 3600
CHUNK_S = 86400
COUNTER_LOOKBACK_S = 31 * 86400
MEASURED = {"pdu_energy", "pdu_power"}
UNIT_TAGS = ("rig", "customer", "rack", "pdu", "outlet")


@dataclass
class Unit:
    """What one ledger row bills: a rig, or an outlet no rig is mapped to."""

    tags: dict[str, str]
    source: str
    # quarter start (s) -> kWh in that quarter, and -> mean W for power sources
    energy: dict[int, float] = field(default_factory=dict)


def _ms(ts_s: int) -> str:
    return f"{ts_s * 1000}ms"


def _window(start_s: int, end_s: int, site: str) -> str:
    return f'time >= {_ms(start_s)} AND time < {_ms(end_s)} AND "site" = \'{site}\''


def _series(db: InfluxQL, query: str) -> list[tuple[dict[str, str], list[list[Any]]]]:
    out = []
    for result in db.execute(query):
        for series in result.get("series", []):
            out.append((series.get("tags", {}), series["values"]))
    return out


def _unit_key(tags: dict[str, str]) -> tuple[str, ...]:
    if tags.get("rig"):
        return ("rig", tags["rig"])
    return ("outlet", tags.get("pdu", ""), tags.get("outlet", ""))


def _counter_units(db: InfluxQL, site: str, start_s: int, end_s: int) -> dict[tuple, Unit]:
    """Energy per quarter from outlet counters (last reading of each quarter)."""
    by = '"pdu", "outlet", "rig", "customer", "rack"'
    before = (f'SELECT last("energy_kwh") FROM "pdu_outlet" WHERE '
              f'{_window(start_s - COUNTER_LOOKBACK_S, start_s, site)} GROUP BY {by}')
    previous = {_unit_key(tags): values[-1][1] for tags, values in _series(db, before)}
    query = (f'SELECT last("energy_kwh") FROM "pdu_outlet" WHERE {_window(start_s, end_s, site)}'
             f' GROUP BY time(15m), {by} fill(none)')
    units: dict[tuple, Unit] = {}
    for tags, values in _series(db, query):
        unit = Unit({k: tags.get(k, "") for k in UNIT_TAGS}, "pdu_energy")
        last = previous.get(_unit_key(unit.tags))
        for ts_ms, value in values:
            if last is not None:
                unit.energy[int(ts_ms // 1000)] = value - last if value >= last else value
            last = value
        if unit.energy:
            units[_unit_key(unit.tags)] = unit
    return units


def _power_units(db: InfluxQL, query: str, source_of: Any) -> dict[tuple, Unit]:
    units: dict[tuple, Unit] = {}
    for tags, values in _series(db, query):
        unit = Unit({k: tags.get(k, "") for k in UNIT_TAGS}, source_of(values))
        for row in values:
            if row[1] is not None:
                unit.energy[int(row[0] // 1000)] = row[1] / 1000 * QUARTER_S / HOUR_S
        if unit.energy:
            units[_unit_key(unit.tags)] = unit
    return units


def _rig_source(values: list[list[Any]]) -> str:
    sources = [row[2] for row in values if len(row) > 2 and row[2]]
    last = sources[-1] if sources else "nominal"
    return "pdu_power" if last == "pdu" else last


def collect_units(db: InfluxQL, site: str, start_s: int, end_s: int) -> list[Unit]:
    """Every billable unit of the window with its best energy source."""
    window = _window(start_s, end_s, site)
    outlet_power = _power_units(db, (
        f'SELECT mean("power_w") FROM "pdu_outlet" WHERE {window} GROUP BY time(15m), "pdu", '
        f'"outlet", "rig", "customer", "rack" fill(none)'), lambda _v: "pdu_power")
    rig_power = _power_units(db, (
        f'SELECT mean("power_w"), last("power_source") FROM "rig" WHERE {window} '
        f'GROUP BY time(15m), "rig", "customer", "rack" fill(none)'), _rig_source)
    units = {**rig_power, **outlet_power, **_counter_units(db, site, start_s, end_s)}
    for key, unit in units.items():  # a rig's own tags (customer, rack) win over the PDU's
        if key in rig_power and unit is not rig_power[key]:
            unit.tags = {**unit.tags, **{k: v for k, v in rig_power[key].tags.items() if v}}
    return list(units.values())


def hour_rows(unit: Unit, site: str, tariff: Tariff | None) -> list[Point]:
    """One energy_hourly point per hour in which the unit has readings."""
    hours: dict[int, dict[int, float]] = defaultdict(dict)
    for quarter, kwh in unit.energy.items():
        hours[quarter - quarter % HOUR_S][quarter] = kwh
    return [_hour_point(unit, site, hour, quarters, tariff)
            for hour, quarters in sorted(hours.items())]


def _rate(tariff: Tariff | None, ts_s: int) -> float:
    rate = tariff.quarter_rate(ts_s) if tariff is not None else None
    return rate if rate is not None else 0.0


def _hour_point(unit: Unit, site: str, hour: int, quarters: dict[int, float],
                tariff: Tariff | None) -> Point:
    all_quarters = range(hour, hour + HOUR_S, QUARTER_S)
    measured = sum(quarters.values())
    cost = sum(kwh * _rate(tariff, q) for q, kwh in quarters.items())
    estimated = 0.0
    if unit.source != "pdu_energy":  # counters already hold the whole interval's energy
        fill = measured / len(quarters)
        missing = [q for q in all_quarters if q not in quarters]
        estimated = fill * len(missing)
        cost += sum(fill * _rate(tariff, q) for q in missing)
    kwh = measured + estimated
    if unit.source not in MEASURED:
        measured, estimated = 0.0, kwh
    tags = {"site": site, **{k: v for k, v in unit.tags.items() if v}}
    fields: dict[str, float | int | bool | str] = {
        "kwh": round(kwh, 6), "kwh_measured": round(measured, 6),
        "kwh_estimated": round(estimated, 6), "cost": round(cost, 6),
        "rate_per_kwh": round(cost / kwh, 6) if kwh else _rate(tariff, hour),
        "coverage": len(quarters) / len(all_quarters), "source": unit.source}
    return Point("energy_hourly", tags, fields, hour * 1000)


def rollup_points(cfg: Config, db: InfluxQL, start_s: int, end_s: int) -> list[Point]:
    """Ledger points for every closed hour in [start, end), day by day."""
    tariff = Tariff(cfg.tariff, cfg.site.timezone) if cfg.tariff is not None else None
    start_s, end_s = start_s - start_s % HOUR_S, end_s - end_s % HOUR_S
    points: list[Point] = []
    for chunk in range(start_s, end_s, CHUNK_S):
        for unit in collect_units(db, cfg.site.name, chunk, min(chunk + CHUNK_S, end_s)):
            points += hour_rows(unit, cfg.site.name, tariff)
    return points


def query_client(cfg: Config) -> InfluxQL:
    """InfluxQL over /query: user and password on 1.x, the token on 2.x (DBRP mapping)."""
    influx = cfg.influxdb
    if influx is None:
        raise ValueError(f"{cfg.source}: [influxdb] is required")
    if influx.api == "v1":
        assert influx.database is not None
        return InfluxQL(influx.url, influx.database, influx.username, cfg.secret(influx.password))
    assert influx.bucket is not None
    return InfluxQL(influx.url, influx.bucket, token=cfg.secret(influx.token))


def rollup(cfg: Config, start_s: int, end_s: int) -> int:
    """Write the ledger for [start, end); returns the number of rows written."""
    db, sink = query_client(cfg), make_sink(cfg, ledger=True)
    try:
        points = rollup_points(cfg, db, start_s, end_s)
        for i in range(0, len(points), 5000):
            sink.write(encode(points[i:i + 5000]))
    finally:
        sink.close()
        db.close()
    log.info("ledger: %d hourly rows for %d hours", len(points), (end_s - start_s) // HOUR_S)
    return len(points)
