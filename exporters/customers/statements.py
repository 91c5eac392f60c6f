"""`hashwatt report statement`: read the ledger for a customer's month, build the statement,
write it as PDF, XLSX or JSON."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from exporters.customers import ledger_source as src
from exporters.customers.render import Format, render
from exporters.customers.statement import Statement, build_statement
from exporters.lineproto import Point
from exporters.sinks import customer_sink
from hashwatt.config import Config, CustomerConfig
from hashwatt.errors import UsageError
from hashwatt.influxql import InfluxQL
from hashwatt.names import Field, Measurement, Tag
from hashwatt.progress import Progress

log = logging.getLogger(__name__)


class StatementError(UsageError):
    """A statement cannot be made (unknown customer, bad month): one line for the user."""


def customer_of(cfg: Config, customer_id: str) -> CustomerConfig:
    """The customer with this id, or a StatementError naming the known ones."""
    for c in cfg.customers:
        if c.id == customer_id:
            return c
    known = ", ".join(c.id for c in cfg.customers) or "none configured"
    raise StatementError(f"{cfg.source}: customers: no customer {customer_id!r} "
                         f"(known: {known})")


def month_range(cfg: Config, month: str) -> tuple[int, int]:
    """[start, end) of a month (YYYY-MM) at the site's local midnights."""
    if not re.fullmatch(r"\d{4}-\d{2}", month):
        raise StatementError(f"--month {month!r}: expected YYYY-MM")
    try:
        return src.month_bounds(month, cfg.site.timezone)
    except ValueError as exc:
        raise StatementError(f"--month: {exc}") from None


def compute(cfg: Config, db: InfluxQL, customer: CustomerConfig, month: str, *,
            energy: list[src.EnergyRow] | None = None) -> Statement:
    """The customer's statement for a month (YYYY-MM, site timezone); `energy` is the site's
    ledger rows of the month when the caller read them already (--all-customers)."""
    start, end = month_range(cfg, month)
    if energy is None:
        energy = src.energy_rows(cfg, start, end)
    units = {r.unit for r in energy if r.customer == customer.id}
    # every row of the customer's units, whoever they belonged to: moves are seen
    mine = [r for r in energy if r.unit in units]
    activity = src.activity_rows(cfg, db, start_s=start, end_s=end, customer=customer.id)
    return build_statement(customer, site=cfg.site.name, timezone=cfg.site.timezone,
                           site_currency=cfg.site.currency, month=month, start_s=start,
                           end_s=end, energy=mine, activity=activity)


def file_name(cfg: Config, customer: CustomerConfig, month: str, fmt: Format) -> str:
    """statement-<site>-<customer>-<month>.<format>"""
    return f"statement-{cfg.site.name}-{customer.id}-{month}.{fmt}"


def statement_point(st: Statement, start_s: int) -> Point:
    """The statement's summary as a `statement` point (at the month's start) for the
    customer's own database, so its Grafana lists its statements."""
    t = st.totals
    fields: dict[str, float | int | bool | str] = {
        k: float(v) for k, v in t.items() if v is not None and k != "rigs"}
    fields.update({Field.RIGS: len(st.rigs), Field.LEDGER_STATE: st.ledger_state,
                   Field.TOTAL_TEXT: str(t["total"]), Field.CURRENCY: st.customer.currency})
    return Point(Measurement.STATEMENT, {Tag.SITE: st.site, Tag.CUSTOMER: st.customer.id,
                                         Tag.MONTH: st.month}, fields, start_s * 1000)


def publish(cfg: Config, st: Statement) -> None:
    """Write the statement's summary into the customer's database (ledger retention)."""
    sink = customer_sink(cfg, st.customer, ledger=True)
    try:
        sink.write([statement_point(st, src.month_bounds(st.month, st.timezone)[0])])
    finally:
        sink.close()


def write_statements(cfg: Config, month: str, fmt: Format, *, customer_id: str | None,
                     output: Path | None, publish_to_view: bool = False,
                     expect_state: str | None = None) -> int:
    """Write one statement (to output, or stdout) or, with customer_id None, one file per
    customer into the output folder. With expect_state (one customer), refuse to write when
    the ledger rows are no longer those a closed statement was made from. Returns the exit
    code."""
    customers = [customer_of(cfg, customer_id)] if customer_id else list(cfg.customers)
    if not customers:
        raise StatementError(f"{cfg.source}: customers: no [[customers]] configured")
    if customer_id is None:
        output = output or Path(".")
        if not output.is_dir():
            raise StatementError(f"--output {output}: --all-customers needs a folder")
    elif output is not None and not output.parent.is_dir():
        raise StatementError(f"--output {output}: folder {output.parent} does not exist")
    start, end = month_range(cfg, month)
    energy = src.energy_rows(cfg, start, end)
    db, empty = src.open_ledger(cfg), 0
    # every customer takes a while: a bar on a terminal, log lines otherwise (hashwatt.progress)
    progress = Progress("statements", len(customers), "customers",
                        terminal=None if customer_id is None else False)
    try:
        with progress:
            for c in customers:
                st = compute(cfg, db, c, month, energy=energy)
                if expect_state is not None and st.ledger_state != expect_state.lower():
                    raise StatementError(
                        f"{c.id} {month}: the ledger state is now {st.ledger_state}, not "
                        f"{expect_state}: its rows changed since that statement (a re-run of the "
                        "rollup or late data); nothing written")
                if not st.ledger_rows:
                    empty += 1
                    print(f"warning: {c.id}: no ledger rows in {month}; the statement holds "
                          "fixed fees only", file=sys.stderr)
                data = render(st, fmt)
                if publish_to_view:
                    publish(cfg, st)
                if customer_id is None:
                    assert output is not None
                    target = output / file_name(cfg, c, month, fmt)
                    target.write_bytes(data)
                    log.info("statement %s %s: %s (ledger state %s)", c.id, month, target,
                             st.ledger_state[:12])
                elif output is not None:
                    output.write_bytes(data)
                else:
                    sys.stdout.buffer.write(data)
                progress.advance(note=c.id)
    finally:
        db.close()
    return 1 if empty == len(customers) else 0
