"""Forgiving reading of the CSV tables sites keep in spreadsheets (rigs, PDUs, meters).

Spreadsheets and tools export what they like: `ID,Address` or `IP Address,MAC,Location`
headers, `;` separators (a European Excel), tabs, a byte-order mark, UTF-16 ("Unicode text"
from Excel), Windows-1252 or Latin-1 text, CRLF or lone CR line ends, quoted cells holding
separators and line breaks, trailing `,,,,` rows and a "Total" row at the bottom. This reader
takes all of that and is still exact: every row keeps the line it starts on, unknown columns
are named once (with a "did you mean") and ignored, and a file it cannot read gives one line.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

SEPARATORS = (",", ";", "\t")
# tried in this order: utf-8-sig reads plain UTF-8 too and drops Excel's byte-order mark;
# cp1252 is what Excel on Windows writes for "CSV" (not "CSV UTF-8"); latin-1 decodes any
# byte (it differs from cp1252 only in 0x80-0x9F, which cp1252 leaves partly undefined)
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
# the synonyms spreadsheets use for a column, in order of preference; the real name always
# wins over a synonym, and of two synonyms the first listed
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("rig_id", "rig", "rig_name", "miner_id", "miner", "miner_name", "name",
           "device_id", "device"),
    "address": ("ip_address", "ip", "ipaddress", "ip_addr", "ipv4", "ipv6", "host",
                "hostname", "host_name"),
    "mac": ("mac_address", "macaddress", "mac_addr"),
    "serial": ("serial_number", "serial_no", "sn"),
    "make": ("vendor", "manufacturer", "brand"),
    "model": ("model_name", "miner_model", "rig_model", "hardware"),
    "firmware": ("firmware_version", "fw_version", "fw"),
    "rack": ("location", "rack_id", "rack_name"),
    "customer": ("customer_id", "customer_name", "client", "tenant"),
    "pdu": ("pdu_id", "pdu_name"),
    "outlet": ("outlet_number", "outlet_no", "outlet_id", "pdu_outlet", "pdu_port", "socket"),
    "maintenance": ("in_maintenance", "under_maintenance"),
}
# a row that sums the others (no address, a cell saying so) is not a rig
TOTAL = re.compile(r"^\s*(grand\s+)?(totals?|sum|subtotal)\b", re.IGNORECASE)
# C0 and C1 control characters: no name has them; they come from a wrong encoding guess
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# workbooks saved under a .csv name: zip (xlsx, ods) and OLE2 (xls)
WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")


@dataclass
class Table:
    """The rows of one CSV file: (line number, {column: non-empty cell}) and what was odd."""

    path: Path
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    encoding: str = ""
    separator: str = ","
    # column key -> the header as the file writes it, where the two differ ("IP Address")
    headers: dict[str, str] = field(default_factory=dict)

    def column(self, key: str) -> str:
        """A column as a problem line names it: the key, and the file's header if it differs."""
        if key == "(top level)":  # a rule about several cells of the row
            return "row"
        written = self.headers.get(key)
        return f"{key} (column {written!r})" if written else key


def _utf16(data: bytes) -> str | None:
    """UTF-16 (Excel's "Unicode text"): with a byte-order mark, or ASCII-heavy text whose
    every other byte is NUL."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = data[:4096]
    if len(sample) >= 4 and len(sample) % 2 == 0:
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        if odd > 0.4 * len(sample) / 2 and even == 0:
            return "utf-16-le"
        if even > 0.4 * len(sample) / 2 and odd == 0:
            return "utf-16-be"
    return None


def _decode(path: Path, data: bytes, table: Table, what: str) -> str | None:
    if data.startswith(WORKBOOK_MAGIC):
        table.problems.append(f"{path}: is a spreadsheet workbook (xlsx, ods or xls), not a "
                              f"CSV file: save the {what} sheet as \"CSV UTF-8\"")
        return None
    utf16 = _utf16(data)
    try:
        if utf16:
            table.encoding = utf16
            return data.decode(utf16).lstrip("\ufeff")
    except UnicodeDecodeError:
        table.problems.append(f"{path}: starts like UTF-16 text but does not decode as it: "
                              "save it as \"CSV UTF-8\"")
        return None
    if b"\x00" in data:
        table.problems.append(f"{path}: holds binary data (NUL bytes), not CSV text: save the "
                              f"{what} sheet as \"CSV UTF-8\"")
        return None
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        table.encoding = encoding
        return text
    raise AssertionError("latin-1 decodes every byte")


def detect_separator(header: str) -> str:
    """The separator the header line uses most (`,` when none appears)."""
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def normalise(name: str) -> str:
    """A header cell as a key: case and surrounding blanks ignored, inner blanks as `_`."""
    cleaned = name.strip().strip("\ufeff").lower().replace("-", "_").replace(".", "")
    return "_".join(cleaned.replace("#", " no ").split())


def cell(text: str) -> str:
    """A cell's value: blanks around it dropped, a wrapped cell's line breaks and runs of
    blanks as one space (a spreadsheet's Alt+Enter is layout, not data)."""
    return " ".join(text.split()) if any(c in text for c in "\r\n\t") else text.strip()


def read_table(path: Path, columns: set[str], *, required: tuple[str, ...] = ("id", "address"),
               what: str = "inventory", raw: frozenset[str] = frozenset()) -> Table:
    """Read a CSV table whose known columns are `columns` (those in `raw` keep their cells as
    written, but for blanks around them); never raises for bad content."""
    table = Table(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        table.problems.append(f"{path}: {what} file not found")
        return table
    except IsADirectoryError:
        table.problems.append(f"{path}: is a folder, not a {what} CSV file")
        return table
    except OSError as exc:
        table.problems.append(f"{path}: cannot read the {what} file: {exc.strerror}")
        return table
    text = _decode(path, data, table, what)
    if text is None:
        return table
    physical = re.split(r"\r\n|\r|\n", text)
    first = next((i for i, line in enumerate(physical) if line.strip(" ,;\t")), None)
    if first is None:
        table.warnings.append(f"{path}: the {what} file is empty")
        return table
    table.separator = detect_separator(physical[first])
    # newline="": the csv module sees \r\n, \r and \n as written, and line breaks inside
    # quoted cells stay in the cell (line_num counts physical lines)
    stream = io.StringIO("\n".join(physical[first:]), newline="")
    reader = csv.reader(stream, delimiter=table.separator)
    try:
        written = next(reader)
        header = _map_header(table, written, first + 1, columns, required)
        if table.problems:
            return table
        before = reader.line_num
        for cells in reader:
            line, before = first + before + 1, reader.line_num
            _add_row(table, line, cells, header, columns, raw)
    except csv.Error as exc:  # e.g. a NUL character, or a field larger than csv allows
        table.problems.append(f"{path}:{first + reader.line_num}: not readable as CSV: {exc}")
    return table


def _add_row(table: Table, line: int, cells: list[str], header: list[str], columns: set[str],
             raw: frozenset[str]) -> None:
    row = {header[i]: (value.strip() if header[i] in raw else cell(value))
           for i, value in enumerate(cells)
           if i < len(header) and header[i] in columns and value.strip()}
    extra = [c for c in cells[len(header):] if c.strip()]
    if extra:
        table.warnings.append(f"{table.path}:{line}: {len(extra)} cell(s) beyond the last "
                              f"column ignored")
    if not row:  # empty lines and Excel's ",,,," rows carry nothing
        return
    for key, value in row.items():
        control = CONTROL.search(value)
        if control:
            table.problems.append(
                f"{table.path}:{line}: {table.column(key)}: {value!r} holds the control "
                f"character U+{ord(control.group()):04X}: was the file saved in another "
                "encoding? save it as \"CSV UTF-8\"")
            return
    if "address" not in row and any(TOTAL.match(c) for c in cells if c.strip()):
        table.warnings.append(f"{table.path}:{line}: a total row (no address) skipped")
        return
    table.rows.append((line, row))


def _map_header(table: Table, written: list[str], line: int, columns: set[str],
                required: tuple[str, ...]) -> list[str]:
    """The column key of each header cell ("" for ignored ones); problems and warnings."""
    where = f"{table.path}:{line}"
    names = [normalise(name) for name in written]
    header = [name if name in columns else "" for name in names]
    for i, name in enumerate(names):
        if name and name in names[:i] and name in columns:
            table.problems.append(f"{where}: column {name!r} appears twice")
    for key, synonyms in ALIASES.items():
        if key not in columns:
            continue
        for synonym in synonyms:
            for i, name in enumerate(names):
                if name != synonym or header[i]:
                    continue
                if key in header:
                    source = written[header.index(key)].strip()
                    table.warnings.append(f"{where}: column {written[i].strip()!r} ignored: "
                                          f"{key} comes from column {source!r}")
                else:
                    header[i] = key
                    table.headers[key] = written[i].strip()
    for i, name in enumerate(names):
        if name and not header[i] and not any(name in s for s in ALIASES.values()):
            known = columns | {s for k, ss in ALIASES.items() if k in columns for s in ss}
            table.warnings.append(f"{where}: unknown column {written[i].strip()!r} ignored"
                                  f"{did_you_mean(name, known)}")
    missing = [name for name in required if name not in header]
    if missing:
        hint = ""
        if len(written) == 1 and any(sep in written[0] for sep in "|:"):
            hint = " (the separator must be a comma, semicolon or tab)"
        shown = ", ".join(w.strip() for w in written if w.strip()) or "(nothing)"
        table.problems.append(f"{where}: missing column(s) {', '.join(missing)}; the header "
                              f"reads {shown}{hint}")
    return header


def did_you_mean(name: str, known: set[str] | list[str], cutoff: float = 0.6) -> str:
    """`; did you mean 'x'?` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""
