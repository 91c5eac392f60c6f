"""The customers' own databases: every point that carries a configured customer's tag is
also written to that customer's database (v1) or bucket (v2), without the site's own
electricity figures (rate_per_kwh, cost_per_h: the site's tariff is not the customer's
price).

A customer's database is a copy for their view. Its writes never hold up the bridge: the
reading is acknowledged once the site database has it, and a failed copy is logged and
counted (`customer_write_errors`). Energy heals itself: the ledger copy is rewritten by
every rollup (sync_ledgers); live readings lost in such a failure stay lost for the view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from exporters.customers import ledger_source as src
from exporters.lineproto import Point, encode
from exporters.sinks import InfluxV1Sink, InfluxV2Sink, Sink, WriteRejected, WriteUnavailable
from hashwatt.config import Config, CustomerConfig

log = logging.getLogger(__name__)
PRIVATE_FIELDS = frozenset({"rate_per_kwh", "cost_per_h"})
LOG_EVERY_S = 60.0


def customer_sink(cfg: Config, customer: CustomerConfig, ledger: bool = False) -> Sink:
    """A writer into the customer's database (v1: its ledger retention policy with
    ledger=True) or bucket (v2: `<bucket>-ledger` for the ledger), with the site's writer
    credentials."""
    influx = cfg.influxdb
    if influx is None:
        raise ValueError(f"{cfg.source}: [influxdb] is required")
    if influx.api == "v1":
        return InfluxV1Sink(influx.url, customer.database, influx.username,
                            cfg.secret(influx.password), influx.timeout_s,
                            retention_policy=influx.ledger_retention_policy if ledger else None)
    assert influx.org is not None
    bucket = f"{customer.database}-ledger" if ledger else customer.database
    return InfluxV2Sink(influx.url, influx.org, bucket, cfg.secret(influx.token) or "",
                        influx.timeout_s)


def customer_copy(point: Point) -> Point:
    """The point as the customer sees it: the site's tariff figures left out."""
    fields = point.fields
    if PRIVATE_FIELDS.isdisjoint(fields):
        return point
    return point._replace(fields={k: v for k, v in fields.items() if k not in PRIVATE_FIELDS})


class CustomerFanout:
    """Copies points into the database of the customer they belong to."""

    def __init__(self, sinks: dict[str, Sink]) -> None:
        self.sinks = sinks
        self.errors = 0
        self._logged_at = 0.0

    def write(self, points: Iterable[Point]) -> None:
        """Write each customer's points to its database; failures are counted, not raised."""
        sinks = self.sinks
        by: dict[str, list[Point]] = {}
        for p in points:
            customer = p.tags.get("customer")
            if customer and customer in sinks:
                by.setdefault(customer, []).append(customer_copy(p))
        for customer, mine in by.items():
            copies = [p for p in mine if p.fields]
            if not copies:
                continue
            try:
                sinks[customer].write(encode(copies))
            except (WriteRejected, WriteUnavailable) as exc:
                self.errors += 1
                now = time.monotonic()
                if now - self._logged_at >= LOG_EVERY_S:
                    self._logged_at = now
                    log.warning("customer %s: copy to its database failed (%s); %d failures "
                                "so far", customer, exc, self.errors)

    def close(self) -> None:
        """Close every customer's sink."""
        for sink in self.sinks.values():
            sink.close()


def make_fanout(cfg: Config) -> CustomerFanout | None:
    """The fan-out for the configured customers, or None when there are none."""
    if not cfg.customers or cfg.influxdb is None:
        return None
    return CustomerFanout({c.id: customer_sink(cfg, c) for c in cfg.customers})


def ledger_points(rows: Iterable[src.EnergyRow], site: str) -> list[Point]:
    """Ledger rows as `energy_hourly` points for a customer's database (no site tariff
    cost: the customer's price is in their statements)."""
    points = []
    for r in rows:
        pdu, outlet_unit, outlet = r.unit.partition("/")  # "pdu/outlet" for an outlet
        tags = {"site": site, "customer": r.customer, "rack": r.rack,
                **({"pdu": pdu, "outlet": outlet} if outlet_unit else {"rig": r.unit})}
        points.append(Point("energy_hourly", tags, {
            "kwh": float(r.kwh), "kwh_measured": float(r.kwh_measured),
            "kwh_estimated": float(r.kwh_estimated), "source": r.source}, r.start_s * 1000))
    return points


def sync_ledgers(cfg: Config, start_s: int, end_s: int) -> int:
    """Copy each customer's ledger rows of [start, end) into its database; returns rows."""
    if not cfg.customers:
        return 0
    db, copied = src.open_ledger(cfg), 0
    try:
        for c in cfg.customers:
            rows = src.energy_rows(cfg, db, start_s, end_s, customer=c.id)
            if not rows:
                continue
            sink = customer_sink(cfg, c, ledger=True)
            try:
                points = ledger_points(rows, cfg.site.name)
                for i in range(0, len(points), 5000):
                    sink.write(encode(points[i:i + 5000]))
                copied += len(points)
            finally:
                sink.close()
    finally:
        db.close()
    return copied
