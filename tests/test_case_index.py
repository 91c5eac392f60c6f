"""The README's test-case index is generated from tests/cases/ and fresh, and the hand-written
"checked against" column of the PDU table agrees with the case folders."""

from __future__ import annotations

import re
import tomllib

from tests.case_index import CASES, README, REPO, current, render, rig_table


def test_the_readme_test_case_index_is_fresh() -> None:
    assert current(README.read_text()) == render(), "run: python -m tests.case_index"


def test_the_rig_tables_verified_against_column_is_generated_from_the_case_folders() -> None:
    text = README.read_text()
    assert rig_table(text) == text, "run: python -m tests.case_index"


def _pdu_table() -> dict[str, str]:
    """The README's PDU table: profile -> its "checked against" cell."""
    text = README.read_text()
    table = text[text.index("| profile | devices | checked against |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[re.sub(r"[`]", "", cells[0])] = cells[-1]
    return rows


def test_the_pdu_tables_checked_against_column_matches_the_case_folders() -> None:
    rows = _pdu_table()
    profiles = sorted(p.stem for p in (REPO / "collector" / "pdu" / "profiles").glob("*.toml"))
    assert sorted(rows) == profiles  # every shipped profile has a row, and no other
    for profile, said in rows.items():
        specs = [tomllib.loads(p.read_text()) for p in (CASES / "pdu" / profile).glob("*.toml")]
        real = any(not s.get("hand_written") for s in specs)
        by_hand = any(s.get("hand_written") for s in specs)
        assert ("real walk" in said) == real, (profile, said)
        assert ("hand-written" in said) == by_hand, (profile, said)
