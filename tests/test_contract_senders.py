"""Every sender's output against the contract with unknown keys refused: a mistyped key in a
reading fails here instead of vanishing in the bridge (which ignores unknown keys so a newer
collector can talk to an older one). Rigs of every simulated firmware family, the simulated
PDUs and the cycle statistics come from one real collector cycle here; the replayed captures
(tests/test_replay.py), the PDU walks (tests/test_pdu_walks.py) and the meters
(tests/test_meters.py) are checked the same way in their own helpers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from collector.pdu.source import PduSource
from collector.rigs import PyasicSource
from collector.service import poll_pdus, run_cycle
from hashwatt.config import load_config
from hashwatt.contract import CycleStats, PduReading, RigReading, unknown_keys
from sim.farm import EVERY_FAMILY_MIX
from tests.conftest import FarmFactory, write_config

pytestmark = pytest.mark.e2e


def checked(model: Any, payload: dict[str, Any]) -> None:
    """Unknown keys refused, then the bridge's own validation."""
    assert unknown_keys(model, payload) == [], payload
    model.model_validate(payload)


def test_one_cycle_of_every_family_and_the_pdus_fits_the_contract_exactly(
        tmp_path: Any, farm: FarmFactory) -> None:
    f = farm(len(EVERY_FAMILY_MIX), mix=EVERY_FAMILY_MIX, pdus=True)
    # deadlines generous enough for a loaded 2-core machine: this test is about shapes
    cfg = load_config(write_config(tmp_path / "c.toml", mqtt_port=1883, rigs=f.rigs,
                                   pdus=f.pdus, collector="interval_s = 60\ndeadline_s = 30"))
    published: list[dict[str, Any]] = []

    async def cycle() -> dict[str, Any]:
        pdus = PduSource(cfg)
        outlet_power, _ = await poll_pdus(cfg, pdus, published.append)
        return await run_cycle(cfg, PyasicSource(), published.append, outlet_power=outlet_power)

    stats = asyncio.run(cycle())
    rigs = [r for r in published if r["kind"] == "rig"]
    pdus = [r for r in published if r["kind"] == "pdu"]
    assert len(rigs) == len(EVERY_FAMILY_MIX) and len(pdus) == len(f.pdus) >= 1
    assert all(r["online"] for r in published), [r.get("error") for r in published]
    for reading in rigs:
        checked(RigReading, reading)
    for reading in pdus:
        checked(PduReading, reading)
    checked(CycleStats, stats)
