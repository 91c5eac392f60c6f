"""Finance files that are the same bytes every time they are made from the same rows.

A closed month must reproduce exactly from its ledger state: XLSX files are zip archives
whose members openpyxl dates with the clock, and whose `docProps/core.xml` carries the save
time (openpyxl's writer sets `modified` to now); both are fixed here. PDFs are made with
reportlab's `invariant` option (a fixed creation date and document id).
"""

from __future__ import annotations

import io
import re
import zipfile

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip member can carry
CORE = "docProps/core.xml"


def fixed_xlsx(data: bytes, stamp: str) -> bytes:
    """The workbook with every member dated ZIP_EPOCH and its created/modified properties
    set to stamp (an ISO UTC time such as the end of the month it reports)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == CORE:
                body = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rb"\g<1>" + stamp.encode() + rb"\g<3>", body)
            member = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = info.external_attr
            dst.writestr(member, body)
    return out.getvalue()
