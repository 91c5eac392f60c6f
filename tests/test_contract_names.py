"""Every measurement, tag and field a query reads is one hashwatt.names names, and every point
the bridge writes uses only the names SCHEMA gives its measurement: a renamed or mistyped name
fails here, not as an empty panel or a silent alert. Checked: the generated dashboards and alert
rules, and the InfluxQL the ledger, reports, statements, status and set-up send."""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exporters.decode import Limits, decode
from exporters.finance.store import MEASUREMENT
from exporters.lineproto import Point
from hashwatt.contract import MEASUREMENTS, Measurement
from hashwatt.names import FIELDS, SCHEMA, TAGS, Field, Tag
from hashwatt.tariff import Tariff, TariffConfig

REPO = Path(__file__).resolve().parent.parent
# FROM "rig", FROM \"rig\" (in JSON), FROM "ledger"."energy_quarter", FROM "{rp}"."statement":
# every query here quotes its measurement (a name built at run time, FROM {...}, is not seen)
FROM = re.compile(r'FROM\s+(?:\\?"[^"\\]*\\?"\.)?\\?"([A-Za-z_][A-Za-z0-9_]*)\\?"')
# a quoted identifier ("power_w"), not a retention policy ("ledger".) nor a variable ("$by")
QUOTED = re.compile(r'(?<![\w$])"([A-Za-z_][A-Za-z0-9_]*)"(?!\s*\.)')
# a name a query gives a column (AS "h", AS m): it may be read again by an outer query
ALIAS = re.compile(r'\bAS\s+"?([A-Za-z_][A-Za-z0-9_]*)"?', re.IGNORECASE)
# text that is (part of) InfluxQL: a clause, a regex match, or a bare list of quoted names
INFLUXQL = re.compile(r'\b(SELECT|FROM|WHERE|GROUP BY|SHOW)\b|=~|^\s*"\w+"(,\s*"\w+")*\s*$')


def _named(text: str) -> set[str]:
    return {m.group(1) for m in FROM.finditer(text)}


def referenced(texts: list[str]) -> set[str]:
    """The tags and fields the InfluxQL among texts names: quoted identifiers, without the
    measurements after FROM and without the aliases the texts define themselves."""
    queries = [t for t in texts if INFLUXQL.search(t)]
    aliases = {a for t in texts for a in ALIAS.findall(t)}  # a select may be a piece apart
    return {n for t in queries for n in QUOTED.findall(FROM.sub("FROM", t))} - aliases


def _strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from _strings(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _strings(value)


def _code_strings(path: Path) -> list[str]:
    """Every string constant of a module, an f-string's placeholders as NULs (so a quoted
    placeholder is no name)."""
    tree = ast.parse(path.read_text())
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("\0".join(v.value if isinstance(v, ast.Constant) else ""
                                 for v in node.values))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in parts):
            out.append(node.value)
    return out


def _generated() -> list[Path]:
    return sorted((REPO / "dashboards" / "generated").rglob("*.json"))


def _code() -> list[Path]:
    return [f for d in ("exporters", "hashwatt", "dashboards", "collector", "sim", "bench")
            for f in (REPO / d).rglob("*.py")]


def test_the_generated_dashboards_and_alert_rules_read_only_named_measurements() -> None:
    files = _generated()
    assert len(files) >= 5
    named = set().union(*(_named(f.read_text()) for f in files))
    assert named >= {Measurement.RIG, Measurement.PDU_PHASE, Measurement.ENERGY_QUARTER}
    assert named - MEASUREMENTS == set()


def test_the_queries_in_the_code_read_only_named_measurements() -> None:
    named = set().union(*(_named(f.read_text()) for f in _code()))
    assert {Measurement.RIG, Measurement.STATEMENT} <= named
    assert named - MEASUREMENTS == set()


def test_the_generated_dashboards_and_alert_rules_read_only_named_tags_and_fields() -> None:
    found: set[str] = set()
    for path in _generated():
        for text in _strings(json.loads(path.read_text())):
            found |= referenced([text])  # a query's aliases are its own
    # not vacuous: the wall screen, the power board, finance and an alert rule's names
    assert {Field.POWER_W, Field.LOAD_PCT, Field.KWH, Field.TEMP_MARGIN_C, Tag.SITE,
            Tag.RACK, Tag.MAINTENANCE} <= found
    assert found - TAGS - FIELDS == set()


def test_the_queries_in_the_code_read_only_named_tags_and_fields() -> None:
    unknown = {}
    found: set[str] = set()
    for path in _code():
        names = referenced(_code_strings(path))  # aliases of one module, e.g. per_rig's "h"
        found |= names
        if names - TAGS - FIELDS:
            unknown[str(path.relative_to(REPO))] = sorted(names - TAGS - FIELDS)
    assert {Field.POWER_W, Field.UP, Field.KWH_MEASURED, Field.CYCLE_S, Tag.WINDOW,
            Tag.OUTLET} <= found
    assert unknown == {}


def test_a_mistyped_field_or_tag_in_a_query_is_seen() -> None:
    query = ('SELECT sum("p") FROM (SELECT last("powr_w") AS "p" FROM "ledger"."rig" '
             'WHERE "sit" =~ /^$site$/ GROUP BY "$by", "rig")')
    assert referenced([query]) - TAGS - FIELDS == {"powr_w", "sit"}
    assert referenced(["a log line naming \"powr_w\""]) == set()


def test_the_ledger_measurement_is_the_contracts() -> None:
    assert MEASUREMENT == Measurement.ENERGY_QUARTER == "energy_quarter"


def _fits(points: list[Point]) -> None:
    for p in points:
        tags, fields = SCHEMA[p.measurement]
        assert set(p.tags) - tags == set(), p.measurement
        assert set(p.fields) - fields == set(), p.measurement


NOW_MS = int(time.time() * 1000)
RIG = {"schema": 1, "kind": "rig", "ts_ms": NOW_MS, "site": "s1", "rig": "r1",
       "collector": "c1", "rack": "A", "slot": 3, "customer": "acme", "make": "AntMiner",
       "model": "S19", "firmware": "Stock", "online": True, "error": "e",
       "hashrate_ths": 100.0, "expected_hashrate_ths": 110.0, "power_w": 3000.0,
       "power_source": "pdu", "temp_max_c": 70.0, "temp_limit_c": 95.0,
       "nominal_efficiency_j_th": 29.5, "env_temp_c": 20.0, "fans_rpm": [4000],
       "boards": [{"board": 0, "hashrate_ths": 33.0, "chip_temp_c": 70.0, "board_temp_c": 60.0,
                   "chips": 114, "expected_chips": 114}],
       "boards_total": 3, "uptime_s": 50, "errors": ["x"], "maintenance": True,
       "identified_model": "S19", "model_mismatch": False, "wiring_suspect": True,
       "wiring_reason": "w", "pool_url": "u", "pool_user": "p", "pool_unexpected": True,
       "pool_reason": "r", "invalid": ["fans_rpm: above 30000"]}
PDU = {"schema": 1, "kind": "pdu", "ts_ms": NOW_MS, "site": "s1", "pdu": "p1",
       "collector": "c1", "rack": "A", "vendor": "APC", "model": "AP8641", "profile": "apc",
       "online": True, "power_w": 5000.0, "energy_kwh": 10.0, "voltage_v": 230.0,
       "current_a": 20.0, "invalid": ["x: y"],
       "phases": [{"phase": "1", "unit": "2", "current_a": 10.0, "voltage_v": 230.0,
                   "power_w": 2300.0, "rating_a": 32.0}],
       "outlets": [{"outlet": 1, "unit": "2", "name": "o1", "current_a": 1.0, "voltage_v": 230.0,
                    "power_w": 230.0, "energy_kwh": 1.0, "rig": "r1", "customer": "acme",
                    "rack": "A"}]}
STATS = {"cycle_s": 1.0, "rigs_total": 1, "rigs_ok": 1, "rigs_failed": 0, "rigs_timeout": 0,
         "identified": 0, "published": 1, "overruns": 0, "pdus_total": 1, "pdus_ok": 1,
         "spool_depth": 0, "spool_dropped": 0, "spool_refused": 0, "spool_memory": 0,
         "spool_disk_errors": 0, "unstored": 0, "resent": 0, "fields_dropped": 0,
         "broker_connected": True}
TARIFF = Tariff(TariffConfig.model_validate({"periods": [{"from": "2020-01-01", "rate": 0.1}]}),
                "UTC")


def test_every_point_decode_writes_uses_only_its_measurements_names() -> None:
    def run(topic: str, doc: dict[str, Any]) -> list[Point]:
        return decode(f"hw/v1/s1/{topic}", json.dumps(doc).encode(), prefix="hw",
                      limits=Limits(), tariff=TARIFF)

    points = [*run("rig/r1", RIG), *run("pdu/p1", PDU),
              *run("collector/c1/cycle", {"schema": 1, "kind": "cycle", "site": "s1",
                                           "collector": "c1", "ts_ms": NOW_MS, "stats": STATS}),
              *run("collector/c1/status", {"schema": 1, "kind": "collector", "site": "s1",
                                            "collector": "c1", "state": "online"})]
    assert {p.measurement for p in points} == {
        Measurement.RIG, Measurement.RIG_BOARD, Measurement.PDU, Measurement.PDU_PHASE,
        Measurement.PDU_OUTLET, Measurement.COLLECTOR}
    _fits(points)
    rig = next(p for p in points if p.measurement == Measurement.RIG)
    # every rig field the schema names is written by a full reading (nothing stale in SCHEMA)
    assert set(rig.fields) == SCHEMA[Measurement.RIG][1]


def test_the_readmes_schema_table_lists_each_measurements_fields() -> None:
    """README "InfluxDB schema": a promise to the people who query the data."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| measurement | tags | fields |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        name, _tags, fields = (cell.strip() for cell in line.strip("|").split("|"))
        # "efficiency_j_th (= power_w / hashrate_ths)": the note is not a field
        listed = re.sub(r"\([^)]*\)", "", fields)
        rows[name.split("`")[1]] = {f.strip() for f in listed.split(",") if f.strip()}
    assert set(rows) == set(SCHEMA)
    for measurement, listed in rows.items():
        assert listed == SCHEMA[measurement][1], measurement
