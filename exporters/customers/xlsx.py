"""A statement as an XLSX workbook: Statement (totals and rigs), Daily, Method sheets.

Numbers are written as numbers (from the Decimals, so Excel shows exactly the rounded
figures) with currency, kWh and percent formats; the header row is frozen."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

from exporters.customers.render import (
    MONEY_KEYS,
    RIG_COLUMNS,
    TOTAL_LABELS,
    rig_values,
    to_dict,
)
from exporters.customers.statement import Statement
from exporters.finance.reproducible import fixed_xlsx

KWH_FORMAT = "#,##0.000"
HOURS_FORMAT = "#,##0.00"


def _money_format(currency: str) -> str:
    return f'#,##0.00 "{currency}"'


def _format_of(key: str, currency: str) -> str | None:
    if key in MONEY_KEYS or key == "cost":
        return _money_format(currency)
    if key.startswith("kwh"):
        return KWH_FORMAT
    if key.startswith("hours") or key.endswith(("_pct", "_ths", "_j_th", "_hours")):
        return HOURS_FORMAT
    return None


def _put(sheet: Any, row: int, col: int, value: Any, fmt: str | None) -> None:
    cell = sheet.cell(row=row, column=col, value=value)
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"  # openpyxl takes "=..." for a formula: names are text
    if fmt and isinstance(value, Decimal):
        cell.number_format = fmt


def render_xlsx(st: Statement) -> bytes:
    """The workbook's bytes."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    cur = st.customer.currency
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Statement"
    head = [("Customer", f"{st.customer.name} ({st.customer.id})"), ("Month", st.month),
            ("Site", st.site), ("Period", f"{st.period_start} - {st.period_end}"),
            ("Currency", cur), ("Price", st.price),
            ("Availability target (%)", st.customer.availability_target_pct),
            ("Ledger state (SHA-256)", st.ledger_state)]
    for i, (label, value) in enumerate(head, start=1):
        sheet.cell(row=i, column=1, value=label).font = Font(bold=True)
        _put(sheet, i, 2, value, HOURS_FORMAT)
    if st.customer.billing_contact:
        sheet.cell(row=len(head) + 1, column=1, value="Billing contact").font = Font(bold=True)
        _put(sheet, len(head) + 1, 2, st.customer.billing_contact, None)
    row = len(head) + 3
    for key, label in TOTAL_LABELS:
        sheet.cell(row=row, column=1, value=label).font = Font(bold=key == "total")
        _put(sheet, row, 2, st.totals[key], _format_of(key, cur))
        row += 1
    row += 1
    header_row = row
    for col, (_, label) in enumerate(RIG_COLUMNS, start=1):
        sheet.cell(row=row, column=col, value=label).font = Font(bold=True)
    for line in st.rigs:
        row += 1
        for col, (key, value) in enumerate(rig_values(line).items(), start=1):
            _put(sheet, row, col, value, _format_of(key, cur))
    sheet.freeze_panes = sheet.cell(row=header_row + 1, column=2)
    for letter, width in zip("ABCDEFGHIJKLMNOPQ", [26, 30, *[13] * 15], strict=True):
        sheet.column_dimensions[letter].width = width
    _daily_sheet(book, st)
    method = book.create_sheet("Method")
    for i, text in enumerate([*st.method, "", "JSON of this statement's numbers: use "
                              "--format json (exact decimal strings)."], start=1):
        method.cell(row=i, column=1, value=text)
    method.column_dimensions["A"].width = 120
    out = io.BytesIO()
    book.save(out)
    # the same bytes every time from the same rows (a closed month reproduces exactly)
    return fixed_xlsx(out.getvalue(), _stamp(st.period_end))


def _stamp(iso_local: str) -> str:
    """The period's end as an ISO UTC time, the workbook's created/modified date."""
    end = dt.datetime.fromisoformat(iso_local).astimezone(dt.UTC)
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _daily_sheet(book: Any, st: Statement) -> None:
    daily = book.create_sheet("Daily")
    daily.append(["Day", "Rig group (rack)", "kWh", f"Cost {st.customer.currency}",
                  "Availability %"])
    for d in to_dict(st)["daily"]:
        daily.append([d["day"], d["group"], Decimal(d["kwh"]), Decimal(d["cost"]),
                      None if d["availability_pct"] is None else Decimal(d["availability_pct"])])
    for row in daily.iter_rows(min_row=2):
        row[2].number_format = KWH_FORMAT
        row[3].number_format = _money_format(st.customer.currency)
        row[4].number_format = HOURS_FORMAT
    daily.freeze_panes = "A2"
