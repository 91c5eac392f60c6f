"""Forgiving reading of the CSV tables sites keep in spreadsheets (rigs, PDUs, meters).

Spreadsheets export what they like: `ID,Address` headers, `;` separators (a European
Excel), tabs, a byte-order mark, Windows-1252 text, trailing `,,,,` rows. This reader takes
all of that and is still exact: every row keeps its line number, unknown columns are named
once (with a "did you mean") and ignored, and a file it cannot read gives one clear line.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path

SEPARATORS = (",", ";", "\t")
# tried in this order: utf-8-sig reads plain UTF-8 too and drops Excel's byte-order mark;
# cp1252 is what Excel on Windows writes for "CSV" (not "CSV UTF-8")
ENCODINGS = ("utf-8-sig", "cp1252")


@dataclass
class Table:
    """The rows of one CSV file: (line number, {column: non-empty cell}) and what was odd."""

    path: Path
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    encoding: str = ""
    separator: str = ","


def _decode(path: Path, data: bytes, table: Table) -> str | None:
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        table.encoding = encoding
        return text
    table.problems.append(f"{path}: not UTF-8 or Windows-1252 text: save it as CSV UTF-8")
    return None


def detect_separator(header: str) -> str:
    """The separator the header line uses most (`,` when none appears)."""
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def normalise(name: str) -> str:
    """A header cell as a key: case and surrounding blanks ignored, inner blanks as `_`."""
    return "_".join(name.strip().strip("\ufeff").lower().replace("-", "_").split())


def read_table(path: Path, columns: set[str], required: tuple[str, ...] = ("id", "address"),
               what: str = "inventory") -> Table:
    """Read a CSV table whose known columns are `columns`; never raises for bad content."""
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
    text = _decode(path, data, table)
    if text is None:
        return table
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip(" ,;\t")), None)
    if first is None:
        table.warnings.append(f"{path}: the {what} file is empty")
        return table
    table.separator = detect_separator(lines[first])
    reader = csv.reader(lines[first:], delimiter=table.separator)
    header = [normalise(cell) for cell in next(reader)]
    header_line = first + 1
    _check_header(table, header, header_line, columns, required)
    if table.problems:
        return table
    for cells in reader:
        line = first + reader.line_num
        row = {header[i]: cell.strip() for i, cell in enumerate(cells)
               if i < len(header) and header[i] in columns and cell.strip()}
        extra = [c for c in cells[len(header):] if c.strip()]
        if extra:
            table.warnings.append(f"{path}:{line}: {len(extra)} cell(s) beyond the last "
                                  f"column ignored")
        if row:  # empty lines and Excel's ",,,," rows carry nothing
            table.rows.append((line, row))
    return table


def _check_header(table: Table, header: list[str], line: int, columns: set[str],
                  required: tuple[str, ...]) -> None:
    where = f"{table.path}:{line}"
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            table.problems.append(f"{where}: column {name!r} appears twice")
        seen.add(name)
    unknown = [name for name in header if name and name not in columns]
    for name in unknown:
        table.warnings.append(f"{where}: unknown column {name!r} ignored"
                              f"{did_you_mean(name, columns)}")
    missing = [name for name in required if name not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in "|:"):
            hint = " (the separator must be a comma, semicolon or tab)"
        table.problems.append(f"{where}: missing column(s) {', '.join(missing)}; the header "
                              f"reads {', '.join(header) or '(nothing)'}{hint}")


def did_you_mean(name: str, known: set[str] | list[str], cutoff: float = 0.6) -> str:
    """`; did you mean 'x'?` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""
