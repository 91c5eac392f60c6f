"""Every measurement a query reads is one the contract names (hashwatt.contract.Measurement),
so a renamed or mistyped measurement fails here, not as an empty panel: the generated
dashboards and alert rules, and the InfluxQL the ledger, reports, statements, status and
set-up send."""

from __future__ import annotations

import re
from pathlib import Path

from exporters.finance.store import MEASUREMENT
from hashwatt.contract import MEASUREMENTS, Measurement

REPO = Path(__file__).resolve().parent.parent
# FROM "rig", FROM \"rig\" (in JSON), FROM "ledger"."energy_quarter": every query here quotes
# its measurement (a name built at run time, FROM {...}, is not seen)
FROM = re.compile(r'FROM\s+(?:\\?"[A-Za-z0-9_-]+\\?"\.)?\\?"([A-Za-z_][A-Za-z0-9_]*)\\?"')


def _named(text: str) -> set[str]:
    return {m.group(1) for m in FROM.finditer(text)}


def test_the_generated_dashboards_and_alert_rules_read_only_named_measurements() -> None:
    files = sorted((REPO / "dashboards" / "generated").rglob("*.json"))
    assert len(files) >= 5
    named = set().union(*(_named(f.read_text()) for f in files))
    assert named >= {Measurement.RIG, Measurement.PDU_PHASE, Measurement.ENERGY_QUARTER}
    assert named - MEASUREMENTS == set()


def test_the_queries_in_the_code_read_only_named_measurements() -> None:
    files = [f for d in ("exporters", "hashwatt", "dashboards") for f in (REPO / d).rglob("*.py")]
    named = set().union(*(_named(f.read_text()) for f in files))
    assert Measurement.RIG in named
    assert named - MEASUREMENTS == set()


def test_the_ledger_measurement_is_the_contracts() -> None:
    assert MEASUREMENT == Measurement.ENERGY_QUARTER == "energy_quarter"
