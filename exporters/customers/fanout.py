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

from exporters.customers import ledger_source as src
from exporters.lineproto import Point, encode
from exporters.sinks import Sink, WriteRejected, WriteUnavailable, customer_sink
from hashwatt.config import Config
from hashwatt.influxql import InfluxQLError

log = logging.getLogger(__name__)
PRIVATE_FIELDS = frozenset({"rate_per_kwh", "cost_per_h"})
LOG_EVERY_S = 60.0
FLUSH_S = 2.0  # a customer's live view lags the site's by at most this (plus a batch)
MAX_LINES = 5000


def customer_line(point: Point, line: str | None = None) -> str:
    """The point's line as the customer sees it: the site's tariff figures left out ("" when
    nothing else is left). `line` is point.line() when the caller rendered it already."""
    fields = point.fields
    private = [k for k in PRIVATE_FIELDS if k in fields]
    if not private:
        return line if line is not None else point.line()
    if line is not None:
        newest = reversed(fields)
        tail = [next(newest) for _ in private]
        if set(tail) == set(private):
            # the decoder appends the tariff figures last (exporters/decode.py, pricing), so
            # they end the line's field set: cut them off instead of rendering the point
            # again (this runs for every customer point). The last match is the real one:
            # only numbers follow it, while a string field before it could hold the text.
            first = tail[-1]
            cut = max(line.rfind(f",{first}="), line.rfind(f" {first}="))
            if line[cut] == " ":
                return ""
            return line[:cut] + line[line.rindex(" "):]
    kept = {k: v for k, v in fields.items() if k not in PRIVATE_FIELDS}
    return point._replace(fields=kept).line() if kept else ""


class CustomerFanout:
    """Copies points into the database of the customer they belong to, a few seconds'
    worth per write: one HTTP request per customer costs more CPU than the lines in it
    (measured: 100 customers written per 1,000-reading batch cut the bridge from ~22,000 to
    ~7,500 readings per CPU-second)."""

    def __init__(self, sinks: dict[str, Sink], flush_s: float = FLUSH_S,
                 max_lines: int = MAX_LINES) -> None:
        self.sinks = sinks
        self.flush_s, self.max_lines = flush_s, max_lines
        self.errors = 0
        self._logged_at = 0.0
        self._pending: dict[str, list[str]] = {}
        self._since: dict[str, float] = {}

    def write(self, messages: Iterable[tuple[Sequence[Point], bytes]]) -> None:
        """Queue each customer's points and write what is due. `messages` are the points of
        each message with the body the site's write rendered from them, one line per point:
        the customers' lines are cut from it, not rendered again."""
        sinks, pending = self.sinks, self._pending
        for points, body in messages:
            lines: list[str] | None = None
            for i, p in enumerate(points):
                customer = p.tags.get("customer")
                if not customer or customer not in sinks:
                    continue
                if lines is None:
                    lines = body.decode().split("\n")
                line = customer_line(p, lines[i])
                if line:
                    if customer not in pending:
                        pending[customer] = []
                        self._since[customer] = time.monotonic()
                    pending[customer].append(line)
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Write every customer's queue that is old or long enough (all with force);
        failures are counted and logged, never raised."""
        now = time.monotonic()
        for customer in list(self._pending):
            mine = self._pending[customer]
            if not force and len(mine) < self.max_lines and \
                    now - self._since[customer] < self.flush_s:
                continue
            del self._pending[customer]
            try:
                self.sinks[customer].write(("\n".join(mine) + "\n").encode())
            except (WriteRejected, WriteUnavailable) as exc:
                self.errors += 1
                if now - self._logged_at >= LOG_EVERY_S:
                    self._logged_at = now
                    log.warning("customer %s: copy to its database failed (%s); %d failures "
                                "so far", customer, exc, self.errors)

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
                sink.write(encode(points[i:i + 5000]))
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
