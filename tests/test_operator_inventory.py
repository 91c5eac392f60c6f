"""Inventory files as spreadsheets and tools really write them: every encoding, line end,
header spelling and mistake an operator's file has, each either read with its obvious meaning
or refused with one line per problem (file:line: column: what), all problems in one run,
never a traceback. Expected rigs and lines are written out by hand from each case's bytes."""

from __future__ import annotations

import codecs
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from hashwatt.config import ConfigError, load_config

TOML = '[site]\nname = "north"\n\n[inventory]\ncsv = "inventory.csv"\n'
Rig = tuple[str, str, str, str]  # id, address, rack, customer


def load(tmp_path: Path, data: bytes, extra: str = "") -> tuple[list[Rig], list[str]]:
    """(rigs as (id, address, rack, customer), problems) of a config with this CSV."""
    path = tmp_path / "hashwatt.toml"
    path.write_text(TOML + extra)
    (tmp_path / "inventory.csv").write_bytes(data)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return [], [p.replace(f"{tmp_path}/", "") for p in exc.problems]
    return [(r.id, r.address, r.rack, r.customer) for r in cfg.rigs], []


TWO = [("r1", "10.0.0.1", "R01", "Müller"), ("r2", "10.0.0.2", "R01", "Café Olé")]
TEXT = "ID{s}Address{s}Rack{s}Customer{e}r1{s}10.0.0.1{s}R01{s}Müller{e}" \
       "r2{s}10.0.0.2{s}R01{s}Café Olé{e}"

ACCEPTED: dict[str, tuple[bytes, list[Rig]]] = {
    "utf-8 with BOM": (codecs.BOM_UTF8 + TEXT.format(s=",", e="\n").encode(), TWO),
    # Excel "Unicode text": UTF-16 LE with a BOM, tab-separated, CRLF
    "utf-16 (Excel Unicode text)": (TEXT.format(s="\t", e="\r\n").encode("utf-16"), TWO),
    "utf-16 LE without BOM": (TEXT.format(s="\t", e="\n").encode("utf-16-le"), TWO),
    "utf-16 BE with BOM": (codecs.BOM_UTF16_BE + TEXT.format(s=",", e="\n")
                           .encode("utf-16-be"), TWO),
    "windows-1252, semicolons, CRLF": (TEXT.format(s=";", e="\r\n").encode("cp1252"), TWO),
    "latin-1": (TEXT.format(s=",", e="\n").encode("latin-1"), TWO),
    "lone CR line ends (old Mac Excel)": (TEXT.format(s=",", e="\r").encode(), TWO),
    "quoted cells with separators and line breaks": (
        b'id,address,rack,customer\r\nr1,10.0.0.1,"R01","Acme, Inc."\r\n'
        b'r2,10.0.0.2,R01,"Bitfarm\r\nNord GmbH"\r\n',
        [("r1", "10.0.0.1", "R01", "Acme, Inc."), ("r2", "10.0.0.2", "R01", "Bitfarm Nord GmbH")]),
    "header synonyms, any case and spacing": (
        b"Miner , IP Address,MAC Address,  LOCATION,Customer,Model,Notes\n"
        b"r1,10.0.0.1,aa-bb-cc-dd-ee-01,R01,acme,S19 Pro,noisy\n",
        [("r1", "10.0.0.1", "R01", "acme")]),
    "Host and Rig Id": (b"Rig ID;Host;Rack\nr1;miner-1.farm.local;R01\n",
                        [("r1", "miner-1.farm.local", "R01", "")]),
    "IPv6, bracketed IPv6 and hostnames": (
        b"id,address\nr1,fd00::1\nr2,[fd00::2]\nr3,Miner-3.local\n",
        [("r1", "fd00::1", "", ""), ("r2", "fd00::2", "", ""),
         ("r3", "Miner-3.local", "", "")]),
    "blank rows in the middle and a trailing total row": (
        b"id,address,rack,power_w\nr1,10.0.0.1,R01,3250\n,,,\n\nr2,10.0.0.2,R01,3250\n"
        b"Total,,,6500\n,,,\n",
        [("r1", "10.0.0.1", "R01", ""), ("r2", "10.0.0.2", "R01", "")]),
    "a total row under another column": (
        b"id,address,rack\nr1,10.0.0.1,R01\n,,Grand total: 1 rig\n",
        [("r1", "10.0.0.1", "R01", "")]),
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_with_the_obvious_meaning(tmp_path: Path, name: str) -> None:
    data, rigs = ACCEPTED[name]
    assert load(tmp_path, data) == (rigs, [])


REFUSED: dict[str, tuple[bytes, list[str]]] = {
    "duplicate ids, case variants, addresses and MACs, all in one run": (
        b"id,address,mac\nr1,10.0.0.1,02:48:57:00:00:01\nr1,10.0.0.2,\nR1,10.0.0.3,\n"
        b"r4,10.0.0.1,\nr5,fd00::5,\nr6,FD00:0::5,\nr7,miner.local,\nr8,MINER.local,\n"
        b"r9,10.0.0.9,02-48-57-00-00-01\n",
        ["inventory.csv:3: id: duplicate rig id 'r1' (first at inventory.csv:2)",
         "inventory.csv:4: id: rig id 'R1' differs from 'r1' (at inventory.csv:2) only in "
         "case: the same rig twice?",
         "inventory.csv:5: address: duplicate rig address '10.0.0.1' (first at "
         "inventory.csv:2)",
         "inventory.csv:7: address: duplicate rig address 'FD00:0::5' (the same as 'fd00::5' "
         "at inventory.csv:6)",
         "inventory.csv:9: address: duplicate rig address 'MINER.local' (the same as "
         "'miner.local' at inventory.csv:8)",
         "inventory.csv:10: mac: duplicate rig MAC '02-48-57-00-00-01' (the same as "
         "'02:48:57:00:00:01' at inventory.csv:2)"]),
    "ports, schemes and bad addresses, each on its own line": (
        b"IP,Name\n10.0.0.1:4028,r1\nhttp://10.0.0.2/,r2\n[fd00::3]:80,r3\n"
        b"010.0.0.4,r4\n10.0.0.256,r5\nfd00::6::7,r6\nmy miner,r7\n",
        ["inventory.csv:2: address (column 'IP'): '10.0.0.1:4028': give the host only, "
         "without :4028 (the ports are the firmware's or their own keys)",
         "inventory.csv:3: address (column 'IP'): 'http://10.0.0.2/': give the host only, "
         "without http:// (e.g. 10.0.0.2)",
         "inventory.csv:4: address (column 'IP'): '[fd00::3]:80': give the host only, "
         "without :80 (e.g. fd00::3)",
         "inventory.csv:5: address (column 'IP'): '010.0.0.4' is not a valid IPv4 address "
         "(leading zeros are not allowed)",
         "inventory.csv:6: address (column 'IP'): '10.0.0.256' is not a valid IPv4 address",
         "inventory.csv:7: address (column 'IP'): 'fd00::6::7' is not a valid IPv6 address",
         "inventory.csv:8: address (column 'IP'): 'my miner' is not a valid IP address or "
         "hostname"]),
    "bad cells name their column as the file writes it": (
        b"id,address,Outlet #,PDU,maintenance,slot\nRig 1,10.0.0.1,,,,\n"
        b"r2,10.0.0.2,3,,,\nr3,10.0.0.3,,,maybe,two\n",
        ["inventory.csv:2: id: 'Rig 1' is not a valid id: letters, digits, '.', '_' and '-' "
         "(no spaces), starting with a letter or digit, at most 64",
         "inventory.csv:3: row: pdu and outlet go together: give both or neither",
         "inventory.csv:4: slot: 'two' is not a whole number",
         "inventory.csv:4: maintenance: 'maybe' is neither yes nor no"]),
    "a row without an address": (b"id,address,rack\nr1,,R01\n,10.0.0.2,R01\n",
                                 ["inventory.csv:2: address: required key is missing",
                                  "inventory.csv:3: id: required key is missing"]),
    "a workbook saved as .csv": (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
                                 ['inventory.csv: is a spreadsheet workbook (xlsx, ods or '
                                  'xls), not a CSV file: save the inventory sheet as "CSV '
                                  'UTF-8"']),
    "binary data": (b"id,address\n\x00\x01\x02\xff\xfe\x00\x00\x00\x10",
                    ['inventory.csv: holds binary data (NUL bytes), not CSV text: save the '
                     'inventory sheet as "CSV UTF-8"']),
    "no id or address column": (b"Rack|Serial\nR01|123\n",
                                ["inventory.csv:1: missing column(s) id, address; the header "
                                 "reads Rack|Serial (the separator must be a comma, semicolon "
                                 "or tab)"]),
    "control characters from a wrong encoding": (
        b"id,address,customer\nr1,10.0.0.1,Bitfarm\x81Nord\n",
        ["inventory.csv:2: customer: 'Bitfarm\\x81Nord' holds the control character U+0081: "
         'was the file saved in another encoding? save it as "CSV UTF-8"']),
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused_with_one_line_per_problem(tmp_path: Path, name: str) -> None:
    data, lines = REFUSED[name]
    assert load(tmp_path, data) == ([], lines)


def test_a_synonym_beside_the_real_column_is_ignored_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    data = b"id,address,IP,Hostname,Notes\nr1,10.0.0.1,10.0.0.9,m1,x\n"
    assert load(tmp_path, data) == ([("r1", "10.0.0.1", "", "")], [])
    csv = tmp_path / "inventory.csv"
    assert [r.getMessage() for r in caplog.records] == [
        f"{csv}:1: column 'IP' ignored: address comes from column 'address'",
        f"{csv}:1: column 'Hostname' ignored: address comes from column 'address'",
        f"{csv}:1: unknown column 'Notes' ignored"]


def test_a_discover_export_edited_in_excel_reads_back(tmp_path: Path) -> None:
    """`hashwatt discover`'s own CSV, opened in a German Excel, racks and customers filled in,
    one rig marked for repair, saved as "CSV" (Windows-1252, `;`, CRLF, a trailing ;;;; row)."""
    from hashwatt.discover import COLUMNS, to_csv

    found = [{**dict.fromkeys(COLUMNS, ""), "id": "r01-s01", "address": "10.0.1.11",
              "make": "AntMiner", "model": "S19 Pro", "firmware": "BHB42601",
              "mac": "02:48:57:00:01:0B", "serial": "JYZZ4A"},
             {**dict.fromkeys(COLUMNS, ""), "id": "rig-10-0-1-12", "address": "10.0.1.12",
              "make": "WhatsMiner", "model": "M50 VH50", "mac": "02:48:57:00:01:0C"}]
    lines = to_csv(found).splitlines()
    assert lines[0] == ("id,address,make,model,firmware,mac,serial,rack,slot,customer,pdu,"
                        "outlet,pdu_unit,maintenance")
    edited = [lines[0].replace(",", ";"),
              "r01-s01;10.0.1.11;AntMiner;S19 Pro;BHB42601;02:48:57:00:01:0B;JYZZ4A;R01;1;"
              "Bäckerei;;;;",
              "r01-s02;10.0.1.12;WhatsMiner;M50 VH50;;02:48:57:00:01:0C;;R01;2;Bäckerei;;;;x",
              ";;;;;;;;;;;;;"]
    path = tmp_path / "hashwatt.toml"
    path.write_text(TOML)
    (tmp_path / "inventory.csv").write_bytes("\r\n".join(edited).encode("cp1252") + b"\r\n")
    cfg = load_config(path)
    assert [(r.id, r.address, r.make, r.model, r.firmware, r.mac, r.serial, r.rack, r.slot,
             r.customer, r.maintenance) for r in cfg.rigs] == [
        ("r01-s01", "10.0.1.11", "AntMiner", "S19 Pro", "BHB42601", "02:48:57:00:01:0B",
         "JYZZ4A", "R01", 1, "Bäckerei", False),
        ("r01-s02", "10.0.1.12", "WhatsMiner", "M50 VH50", None, "02:48:57:00:01:0C", None,
         "R01", 2, "Bäckerei", True)]


def test_check_config_prints_every_problem_and_no_traceback(tmp_path: Path) -> None:
    data, lines = REFUSED["duplicate ids, case variants, addresses and MACs, all in one run"]
    path = tmp_path / "hashwatt.toml"
    path.write_text(TOML)
    (tmp_path / "inventory.csv").write_bytes(data.replace(b"\n", b"\r\n").decode()
                                             .encode("utf-16"))
    run = subprocess.run([sys.executable, "-m", "hashwatt.cli", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.replace(f"{tmp_path}/", "").splitlines() == [f"error: {line}"
                                                                  for line in lines]


def test_a_model_the_table_does_not_know_is_one_warning_with_a_suggestion(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    data = b"id,address,model\nr1,10.0.0.1,S19 Prx\nr2,10.0.0.2,S19 Prx\nr3,10.0.0.3,s19 pro\n"
    assert load(tmp_path, data)[1] == []
    # "s19 pro" is the table's "S19 Pro" (looked up case-insensitively): no warning for it
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'inventory.csv'}:2 and 1 more rigs: model: 'S19 Prx' is not in the "
        "models table, so its nominal power and hashrate are unknown; did you mean 'S19 Pro'?"]
