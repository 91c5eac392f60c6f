"""Device values checked where readings are built: contract and the model's plausibility
bounds (pure logic; the hostile-device drill in test_reliability runs real rigs)."""

from __future__ import annotations

import json
import math

from collector.sanitise import sanitise_pdu, sanitise_rig
from hashwatt.contract import PduReading, RigReading
from hashwatt.models import bounds


def rig(**overrides: object) -> dict:
    doc = {"schema": 1, "kind": "rig", "ts_ms": 1_790_000_000_000, "site": "north",
           "rig": "r01-s01", "collector": "c1", "rack": "R01", "slot": 1, "customer": "acme",
           "make": "AntMiner", "model": "S19 Pro", "firmware": "Stock", "online": True,
           "error": None, "hashrate_ths": 100.0, "expected_hashrate_ths": 110.0,
           "power_w": 3250.0, "power_source": "miner", "temp_max_c": 80.0,
           "fans_rpm": [4000, 3900], "boards_total": 1, "uptime_s": 3600,
           "boards": [{"board": 0, "hashrate_ths": 100.0, "chip_temp_c": 80.0,
                       "board_temp_c": 65.0, "chips": 114}], "errors": []}
    doc.update(overrides)
    return doc


def test_the_model_table_gives_per_model_bounds_and_defaults() -> None:
    # S19 Pro: nominal 110 TH/s and 3250 W (models.toml) times the factor 2.0
    assert (bounds("S19 Pro").max_hashrate_ths, bounds("S19 Pro").max_power_w) == (220.0, 6500.0)
    # an unknown model gets the [plausible] defaults
    assert (bounds("Mystery 9000").max_hashrate_ths, bounds(None).max_fan_rpm) == (1000.0, 20000)


def test_a_sane_reading_is_left_alone() -> None:
    doc = rig()
    assert sanitise_rig(doc) == 0 and "invalid" not in doc and doc == rig()


def test_nan_hashrate_is_dropped_and_flagged_and_the_rest_is_kept() -> None:
    doc = rig(hashrate_ths=math.nan)
    assert sanitise_rig(doc) == 1
    assert doc["hashrate_ths"] is None and doc["online"] is True
    assert doc["invalid"] == ["hashrate_ths: not finite: nan"]
    assert doc["power_w"] == 3250.0 and doc["fans_rpm"] == [4000, 3900]
    RigReading.model_validate_json(json.dumps(doc))  # the bridge takes it


def test_a_million_rpm_fan_and_1e27_ths_are_dropped_at_the_source() -> None:
    # 1e30 GH/s is 1e27 TH/s: an online rig must not be stored with it
    doc = rig(hashrate_ths=1e27, fans_rpm=[4000, 1_000_000, 3900])
    assert sanitise_rig(doc) == 2
    assert doc["hashrate_ths"] is None and doc["fans_rpm"] == [4000, 3900]
    assert doc["invalid"] == ["hashrate_ths: 1e+27 outside 0..220",
                              "fans_rpm: 1e+06 outside 0..20000"]


def test_absurd_power_drops_the_power_source_with_it() -> None:
    doc = rig(power_w=1e308, temp_max_c=math.inf)
    assert sanitise_rig(doc) == 2
    assert (doc["power_w"], doc["power_source"], doc["temp_max_c"]) == (None, None, None)


def test_a_board_value_out_of_bounds_is_dropped_alone() -> None:
    doc = rig(boards=[{"board": 0, "hashrate_ths": 50.0, "chip_temp_c": -300.0,
                       "board_temp_c": 60.0, "chips": 114}])
    assert sanitise_rig(doc) == 1
    assert doc["boards"][0] == {"board": 0, "hashrate_ths": 50.0, "chip_temp_c": None,
                                "board_temp_c": 60.0, "chips": 114}


def test_a_field_of_the_wrong_type_is_dropped_by_the_contract() -> None:
    doc = rig(uptime_s="forever", errors=["ok", "x" * 300])
    assert sanitise_rig(doc) == 2
    assert doc["uptime_s"] is None and doc["errors"] == ["ok"]
    RigReading.model_validate(doc)


def test_a_reading_that_cannot_be_mended_is_published_offline() -> None:
    doc = rig(online="yes")
    sanitise_rig(doc)
    assert doc["online"] is False and "contract" in doc["error"]
    RigReading.model_validate(doc)


def test_a_pdu_reading_keeps_its_good_phases() -> None:
    doc = {"schema": 1, "kind": "pdu", "ts_ms": 1_790_000_000_000, "site": "north",
           "pdu": "p1", "collector": "c1", "online": True, "power_w": math.nan,
           "phases": [{"phase": "L1", "current_a": 8.0}, {"phase": "L2", "current_a": -1.0}]}
    assert sanitise_pdu(doc) == 2
    assert doc["power_w"] is None and doc["phases"][1]["current_a"] is None
    PduReading.model_validate(doc)
