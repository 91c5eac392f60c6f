"""Seeding shared by the ledger, audit and recomputation tests: a fresh database with the
ledger's retention policy, and points written the way the bridge writes them."""

from __future__ import annotations

import uuid
from typing import Any

from exporters.finance.report import build_report
from exporters.finance.store import ledger_client
from exporters.lineproto import Point
from exporters.sinks import InfluxV1Sink
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL
from sim.launch import Influxd


def fresh_ledger_db(influxd: Influxd, prefix: str = "l") -> InfluxQL:
    """A new database on the test influxd with the `ledger` retention policy (kept forever)."""
    db = InfluxQL(influxd.url, f"{prefix}_{uuid.uuid4().hex[:10]}")
    db.create_database()
    db.execute(f'CREATE RETENTION POLICY "ledger" ON "{db.database}" DURATION INF '
               'REPLICATION 1')
    return db


def write_points(db: InfluxQL, points: list[Point]) -> None:
    """Write points through the bridge's InfluxDB 1.x sink, 5,000 a request."""
    sink = InfluxV1Sink(str(db.client.base_url).rstrip("/"), db.database)
    for i in range(0, len(points), 5000):
        sink.write(points[i:i + 5000])
    sink.close()


def report(cfg: Config, month: str, by: str = "customer") -> Any:
    """The energy report of a month, built against the configured InfluxDB."""
    db, measurement = ledger_client(cfg)
    try:
        return build_report(cfg, db, measurement=measurement, month=month, by=by)  # type: ignore[arg-type]
    finally:
        db.close()
