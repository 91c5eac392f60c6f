"""Differential test: every fast path yields exactly the telemetry pyasic yields, for every
simulated model and the scenarios that change what firmware reports, except where the
difference is documented (tests/differences.py) and the firmware's figures decide."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pyasic import get_miner

from collector.mapping import Origin, reading_from_miner
from collector.rigs import FIELDS
from collector.rigs.registry import fast_path_for
from hashwatt.config import RigConfig
from hashwatt.sim.model import Scenario
from tests.conftest import FarmFactory
from tests.differences import without_documented

pytestmark = pytest.mark.e2e
MODELS = ("s19pro", "s21", "m50", "m30splus", "a1246", "supra", "gamma")


def both_readings(ip: str, rig_id: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    async def run() -> tuple[Any, Any, str]:
        miner = await get_miner(ip)
        path = fast_path_for(miner, 5.0)
        assert path is not None, f"no fast path for {type(miner).__name__}"
        slow, fast = await miner.get_data(include=FIELDS), await path.telemetry()
        await path.close()
        return slow, fast, type(path).__name__

    slow, fast, kind = asyncio.run(run())
    origin = Origin("north", "c1", RigConfig(id=rig_id, address=ip), 1)
    return reading_from_miner(origin, slow), reading_from_miner(origin, fast), kind


@pytest.mark.parametrize("scenario", [Scenario.NORMAL, Scenario.DEAD_BOARD, Scenario.DEAD_FAN,
                                      Scenario.OVERHEAT])
def test_every_fast_path_equals_pyasic_for_every_model(farm: FarmFactory,
                                                        scenario: Scenario) -> None:
    f = farm(len(MODELS), mix=MODELS, scenarios={r: scenario for r in
                                                 [f"r01-s{i:02d}" for i in range(1, 8)]})
    kinds = set()
    for rig in f.rigs:
        slow, fast, kind = both_readings(rig.ip, rig.rig_id)
        kinds.add(kind)
        assert without_documented(fast, kind) == without_documented(slow, kind), \
            f"{rig.hw_name} {scenario}"
        assert slow["online"] is True
    assert kinds == {"AntminerPath", "WhatsminerPath", "AvalonPath", "BitaxePath"}
