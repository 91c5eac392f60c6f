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
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from exporters.customers import ledger_source as src
from exporters.lineproto import Point
from exporters.sinks import Sink, WriteRejected, WriteUnavailable, customer_sink
from hashwatt.config import Config
from hashwatt.influxql import InfluxQLError

log = logging.getLogger(__name__)
PRIVATE_FIELDS = frozenset({"rate_per_kwh", "cost_per_h"})
LOG_EVERY_S = 60.0
FLUSH_S = 2.0  # a customer's live view lags the site's by at most this (plus a batch)
MAX_MESSAGES = 1250  # ~5,000 points of rig readings


class CustomerFanout:
    """Copies points into the database of the customer they belong to, a few seconds'
    worth per write: one HTTP request per customer costs more CPU than the lines in it
    (measured: 100 customers written per 1,000-reading batch cut the bridge from ~22,000 to
    ~7,500 readings per CPU-second)."""

    def __init__(self, sinks: dict[str, Sink], flush_s: float = FLUSH_S,
                 max_messages: int = MAX_MESSAGES) -> None:
        self.sinks = sinks
        self.flush_s, self.max_messages = flush_s, max_messages
        self.errors = 0
        self._logged_at = 0.0
        self._pending: dict[str, list[Any]] = {}
        self._since: dict[str, float] = {}

    def write(self, messages: Iterable[tuple[Sequence[Point], Sequence[Any]]]) -> None:
        """Queue each customer's points of each message and write what is due. `messages`
        are each message's points with the site sink's encoding of them (one item per
        point): the customers' sinks are of the site's type, so a point the customer sees
        as it is keeps its item, and a point carrying the site's tariff gets it taken off by
        the sink (`Sink.without`; measured: encoding every copy again cost ~5-8 us more per
        reading than cutting the line protocol). A
        message whose copy cannot be encoded is left out of the copy (counted and logged),
        never the others."""
        sinks, pending = self.sinks, self._pending
        for points, items in messages:
            mine: dict[str, list[Any]] = {}
            for p, item in zip(points, items, strict=True):
                customer = p.tags.get("customer")
                if not customer or customer not in sinks:
                    continue
                if not PRIVATE_FIELDS.isdisjoint(p.fields):
                    item = self._without_tariff(customer, p, item)
                    if item is None:
                        continue
                mine.setdefault(customer, []).append(item)
            for customer, copy in mine.items():
                if customer not in pending:
                    pending[customer] = []
                    self._since[customer] = time.monotonic()
                pending[customer].append(copy)
        self.flush()

    def _without_tariff(self, customer: str, point: Point, item: Any) -> Any | None:
        """The point's item without the site's tariff figures (None when nothing else is
        left, or it cannot be encoded: counted and logged)."""
        try:
            return self.sinks[customer].without(point, item, PRIVATE_FIELDS)
        except Exception as exc:  # the site's write has it: a copy never stops the bridge
            self._failed(customer, f"cannot encode: {type(exc).__name__}: {exc}")
            return None

    def flush(self, force: bool = False) -> None:
        """Write every customer's queue that is old or long enough (all with force);
        failures are counted and logged, never raised."""
        now = time.monotonic()
        for customer in list(self._pending):
            mine = self._pending[customer]
            if not force and len(mine) < self.max_messages and \
                    now - self._since[customer] < self.flush_s:
                continue
            del self._pending[customer]
            try:
                self.sinks[customer].send(mine)
            except (WriteRejected, WriteUnavailable) as exc:
                self._failed(customer, str(exc))

    def _failed(self, customer: str, reason: str) -> None:
        """Count a failed copy; log it at most once a minute."""
        self.errors += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            log.warning("customer %s: copy to its database failed (%s); %d failures so far",
                        customer, reason, self.errors)

    def close(self) -> None:
        """Write what is queued and close every customer's sink."""
        self.flush(force=True)
        for sink in self.sinks.values():
            sink.close()


def make_fanout(cfg: Config) -> CustomerFanout | None:
    """The fan-out for the configured customers, or None when there are none."""
    viewers = [c for c in cfg.customers if c.has_view]
    if not viewers or cfg.influxdb is None:
        return None
    return CustomerFanout({c.id: customer_sink(cfg, c) for c in viewers})


def ledger_points(rows: Iterable[src.EnergyRow], site: str) -> list[Point]:
    """Ledger rows as points for a customer's database (no site tariff cost: the customer's
    price is in their statements)."""
    points = []
    for r in rows:
        parts = r.unit.split("/")  # "pdu/outlet" or "pdu/unit/outlet" for an outlet
        unit_tags = ({"rig": r.unit} if len(parts) == 1 else
                     {"pdu": parts[0], "unit": parts[1] if len(parts) == 3 else "",
                      "outlet": parts[-1]})
        tags = {"site": site, "customer": r.customer, "rack": r.rack, **unit_tags}
        points.append(Point(src.LEDGER_MEASUREMENT, tags, {
            "kwh": float(r.kwh), "kwh_measured": float(r.kwh_measured),
            "kwh_estimated": float(r.kwh_estimated), "source": r.source}, r.start_s * 1000))
    return points


def sync_ledgers(cfg: Config, start_s: int, end_s: int) -> int:
    """Copy each customer's ledger rows of [start, end) into its database; returns rows."""
    viewers = [c for c in cfg.customers if c.has_view]
    if not viewers:
        return 0
    rows, copied = src.energy_rows(cfg, start_s, end_s), 0
    for c in viewers:
        mine = [r for r in rows if r.customer == c.id]
        if not mine:
            continue
        sink = customer_sink(cfg, c, ledger=True)
        try:
            points = ledger_points(mine, cfg.site.name)
            for i in range(0, len(points), 5000):
                sink.write(points[i:i + 5000])
            copied += len(points)
        finally:
            sink.close()
    return copied


def follow_customers(cfg: Config, stop: threading.Event, *, interval_s: float | None = None,
                     hours: int | None = None) -> None:
    """Copy the recent ledger rows into the customers' databases every interval, after the
    rollup rewrote them (beside the rollup: in the bridge or in `hashwatt rollup --follow`);
    failures are logged and retried next time."""
    from exporters.finance.ledger import recent_range

    interval = interval_s or cfg.bridge.rollup_interval_s or 300.0
    hours = hours or cfg.bridge.rollup_hours
    while not stop.wait(interval):
        try:
            sync_ledgers(cfg, *recent_range(cfg, hours))
        except (WriteUnavailable, WriteRejected, InfluxQLError, OSError) as exc:
            log.warning("customers' ledger copy failed (%s); next try in %.0f s", exc,
                        interval)
