"""A statement as a PDF (reportlab; the daily chart drawn with matplotlib).

Numbers are printed as the statement's exact rounded decimals (no float formatting), so
the PDF, the XLSX and the JSON carry the same figures."""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from exporters.customers.render import RIG_COLUMNS, TOTAL_LABELS, rig_values, to_dict
from exporters.customers.statement import Statement

ENERGY_KEYS = ["rig", "rack", "kwh", "kwh_measured", "kwh_estimated", "source",
               "energy_cost", "fee"]
AVAIL_KEYS = ["rig", "assigned_hours", "hours_hashing", "hours_drawing", "hours_maintenance",
              "availability_pct", "avg_hashrate_ths", "expected_hashrate_ths", "hashrate_pct",
              "efficiency_j_th"]
LABELS = dict(RIG_COLUMNS)


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def chart_png(st: Statement) -> bytes:
    """Daily kWh, cost and availability per rig group (rack), one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for d in st.days:
        s = series[d.group]
        s["day"].append(int(d.day[-2:]))
        s["kwh"].append(float(d.kwh))
        s["cost"].append(float(d.cost))
        s["avail"].append(None if d.availability_pct is None else float(d.availability_pct))
    days = (dt.date.fromisoformat(st.period_end[:10]) - dt.timedelta(days=1)).day
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.9), dpi=110)
    panels = [("kwh", "kWh per day"), ("cost", f"Cost per day ({st.customer.currency})"),
              ("avail", "Availability per day (%)")]
    groups = sorted(series)
    width = 0.8 / max(len(groups), 1)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, group in enumerate(groups):
            s = series[group]
            points = [(x, y) for x, y in zip(s["day"], s[key], strict=True) if y is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            if key == "avail":  # a rate per day: points, never joined across missing days
                ax.plot(xs, ys, marker="o", markersize=3, linestyle="none", label=group)
            else:  # side by side per group
                ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], ys, width=width, label=group)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0.5, days + 0.5)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"day of {st.month}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[2].axhline(float(st.customer.availability_target_pct), color="red", linewidth=0.8,
                    linestyle="--", label="target")
    axes[2].set_ylim(bottom=0, top=105)
    axes[0].legend(fontsize=7, title="rig group", title_fontsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _table(rows: list[list[str]], widths: list[float] | None = None, total: bool = False) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
             ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f0")),
             ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
             ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
             ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if total:
        style += [("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 7.5),
                  ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.grey)]
    table.setStyle(TableStyle(style))
    return table


def render_pdf(st: Statement) -> bytes:
    """The PDF's bytes (A4 landscape)."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    c, cur, data = st.customer, st.customer.currency, to_dict(st)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"Statement {c.id} {st.month}", author="hashwatt",
                            # a fixed date and id: the same rows make the same bytes
                            invariant=1)
    # Paragraphs parse markup: names and contacts are text ("Smith & Sons <Mining>")
    story: list[Any] = [
        Paragraph(f"Statement {st.month}: {escape(c.name)}", styles["Title"]),
        Paragraph(f"Customer <b>{escape(c.id)}</b> &middot; site {escape(st.site)} &middot; "
                  f"period {st.period_start} to {st.period_end} ({st.month_hours} h) &middot; "
                  f"currency {cur} &middot; price {escape(st.price)}"
                  + (f" &middot; billing contact {escape(c.billing_contact)}"
                     if c.billing_contact else ""), styles["Normal"]),
        Spacer(1, 4 * mm)]
    target = data["availability_target_met"]
    totals = [["Summary", "Amount"]] + [
        [label.strip(), f"{_cell(st.totals[key])}" + (f" {cur}" if key in (
            "energy_cost", "rig_fees", "capacity_fee", "fees", "total") else "")]
        for key, label in TOTAL_LABELS]
    totals.append(["Availability target (%)", f"{c.availability_target_pct} ("
                   + ("met" if target else "not met" if target is False else "n/a") + ")"])
    story += [_table(totals, [55 * mm, 45 * mm]), Spacer(1, 4 * mm),
              Paragraph("Energy and cost per rig", styles["Heading3"])]
    rows = [rig_values(line) for line in st.rigs]
    energy = [[LABELS[k] for k in ENERGY_KEYS]] + [[_cell(r[k]) for k in ENERGY_KEYS]
                                                   for r in rows]
    energy.append(["Total", "", *[_cell(st.totals[k]) for k in
                                  ("kwh", "kwh_measured", "kwh_estimated")], "",
                   _cell(st.totals["energy_cost"]), _cell(st.totals["rig_fees"])])
    story += [_table(energy, [28 * mm, 20 * mm, 22 * mm, 24 * mm, 24 * mm, 60 * mm,
                              26 * mm, 22 * mm], total=True),
              Paragraph(f"Energy cost and rig fees in {cur}. Capacity fee: "
                        f"{c.fees.contracted_kw} kW x {c.fees.per_kw_month} {cur}"
                        + ("" if st.contract_hours is None else
                           f" x {st.contract_hours.normalize():f} of {st.month_hours:f} h "
                           "under contract")
                        + f" = {st.capacity_fee} {cur}.", styles["Normal"]),
              Spacer(1, 3 * mm), Paragraph("Availability and performance per rig",
                                           styles["Heading3"])]
    avail = [[LABELS[k] for k in AVAIL_KEYS]] + [[_cell(r[k]) for k in AVAIL_KEYS]
                                                 for r in rows]
    avail.append(["Total", _cell(sum((x.assigned_hours for x in st.rigs), Decimal(0))),
                  *[_cell(st.totals[k]) for k in ("hours_hashing", "hours_drawing",
                                                  "hours_maintenance", "availability_pct")],
                  "", "", "", ""])
    story += [_table(avail, total=True), Spacer(1, 4 * mm),
              Paragraph("Daily energy, cost and availability per rig group", styles["Heading3"]),
              Image(io.BytesIO(chart_png(st)), width=260 * mm, height=68 * mm),
              Paragraph("Method", styles["Heading3"])]
    story += [Paragraph(line, styles["BodyText"]) for line in st.method]
    story.append(Paragraph(f"Ledger state (SHA-256 of the {st.ledger_rows} ledger rows and "
                           f"{st.activity_rows} activity rows used): <font name='Courier'>"
                           f"{st.ledger_state}</font>", styles["BodyText"]))
    doc.build(story)
    return out.getvalue()
