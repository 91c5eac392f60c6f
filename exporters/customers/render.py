"""A statement as JSON (exact decimal strings), XLSX (numbers with currency and kWh
formats) and PDF (reportlab, with a matplotlib chart). All three print the same rounded
numbers, taken from the same Statement."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any, Literal

from exporters.customers.statement import RigLine, Statement

Format = Literal["json", "xlsx", "pdf"]

RIG_COLUMNS: list[tuple[str, str]] = [
    ("rig", "Rig"), ("rack", "Rack"), ("kwh", "kWh"), ("kwh_measured", "Measured kWh"),
    ("kwh_estimated", "Estimated kWh"), ("source", "Source"), ("energy_cost", "Energy cost"),
    ("fee", "Rig fee"), ("assigned_hours", "Hours yours"), ("hours_hashing", "Hours hashing"),
    ("hours_drawing", "Hours drawing"), ("hours_maintenance", "Hours maint."),
    ("availability_pct", "Avail. %"), ("avg_hashrate_ths", "Avg TH/s"),
    ("expected_hashrate_ths", "Exp. TH/s"), ("hashrate_pct", "% of exp."),
    ("efficiency_j_th", "J/TH")]
TOTAL_LABELS: list[tuple[str, str]] = [
    ("kwh", "Energy (kWh)"), ("kwh_measured", "  measured (kWh)"),
    ("kwh_estimated", "  estimated (kWh)"), ("energy_cost", "Energy cost"),
    ("rig_fees", "Rig fees"), ("capacity_fee", "Capacity fee"), ("fees", "Fees"),
    ("total", "Total"), ("hours_hashing", "Hours hashing"),
    ("hours_drawing", "Hours drawing power"), ("hours_maintenance", "Hours in maintenance"),
    ("hours_available", "Hours hashing outside maintenance"),
    ("availability_pct", "Availability (%)")]
MONEY_KEYS = {"energy_cost", "fee", "rig_fees", "capacity_fee", "fees", "total"}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def source_text(line: RigLine) -> str:
    """The rig's sources with their kWh, largest first."""
    return ", ".join(f"{k} {v}" for k, v in sorted(line.sources.items(),
                                                    key=lambda kv: (-kv[1], kv[0])))


def rig_values(line: RigLine) -> dict[str, Any]:
    """A rig line by column key (Decimals, strings, None)."""
    return {key: source_text(line) if key == "source" else getattr(line, key)
            for key, _ in RIG_COLUMNS}


def to_dict(st: Statement) -> dict[str, Any]:
    """The statement as JSON-ready data: every number an exact decimal string."""
    c = st.customer
    return {
        "customer": {"id": c.id, "name": c.name, "currency": c.currency,
                     "billing_contact": c.billing_contact,
                     "availability_target_pct": str(c.availability_target_pct)},
        "site": st.site, "timezone": st.timezone, "month": st.month,
        "period": {"start": st.period_start, "end": st.period_end,
                   "hours": str(st.month_hours)},
        "price": st.price,
        "rigs": [{**{k: (_text(v) if isinstance(v, Decimal) or v is None else v)
                     for k, v in rig_values(line).items()},
                  "sources": {k: str(v) for k, v in line.sources.items()},
                  "hours_available": str(line.hours_available)} for line in st.rigs],
        "fees": {"per_rig_month": str(c.fees.per_rig_month),
                 "per_kw_month": str(c.fees.per_kw_month),
                 "contracted_kw": str(c.fees.contracted_kw),
                 "capacity_fee": str(st.capacity_fee),
                 # only for a month the contract covers in part: the fee is pro rata
                 **({} if st.contract_hours is None else
                    {"contract_hours": f"{st.contract_hours.normalize():f}",
                     "contract_start": str(c.contract_start or ""),
                     "contract_end": str(c.contract_end or "")})},
        "totals": {k: _text(v) for k, v in st.totals.items()},
        "availability_target_met": _target_met(st),
        "daily": [{"day": d.day, "group": d.group, "kwh": str(d.kwh), "cost": str(d.cost),
                   "availability_pct": _text(d.availability_pct)} for d in st.days],
        "method": st.method,
        "ledger_state": {"sha256": st.ledger_state, "ledger_rows": st.ledger_rows,
                         "activity_rows": st.activity_rows},
    }


def _target_met(st: Statement) -> bool | None:
    pct = st.totals["availability_pct"]
    return None if pct is None else pct >= st.customer.availability_target_pct


def render_json(st: Statement) -> bytes:
    """JSON, exact strings."""
    return (json.dumps(to_dict(st), indent=2) + "\n").encode()


def render(st: Statement, fmt: Format) -> bytes:
    """The statement in the asked format."""
    if fmt == "json":
        return render_json(st)
    if fmt == "xlsx":
        from exporters.customers.xlsx import render_xlsx

        return render_xlsx(st)
    from exporters.customers.pdf import render_pdf

    return render_pdf(st)


def buffer() -> io.BytesIO:
    """An in-memory file for the binary formats."""
    return io.BytesIO()
