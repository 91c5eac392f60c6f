"""The simulated farm: deterministic readings, loopback only, protocols pyasic recognises."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from pyasic import get_miner

from sim.farm import build_rigs, rig_addresses
from sim.model import Scenario, snapshot
from tests.conftest import FarmFactory


def test_the_same_seed_gives_the_same_readings() -> None:
    rig = build_rigs(1)[0]
    assert snapshot(rig, 3, 5) == snapshot(rig, 3, 5)


def test_another_seed_or_tick_gives_other_readings() -> None:
    rig = build_rigs(1)[0]
    assert snapshot(rig, 3, 5).hashrate_gh != snapshot(rig, 4, 5).hashrate_gh
    assert snapshot(rig, 3, 5).hashrate_gh != snapshot(rig, 3, 6).hashrate_gh


def test_hashrate_is_noise_around_nominal() -> None:
    rigs = build_rigs(70)
    ratios = [snapshot(r, 1, 0).hashrate_gh / (r.info.nominal_ths * 1000) for r in rigs]
    assert all(0.95 < x < 1.05 for x in ratios)


def test_temperatures_follow_ambient() -> None:
    rig = build_rigs(1)[0]
    warm = rig.__class__(rig.rig_id, rig.ip, rig.hw_name, ambient_c=rig.ambient_c + 10)
    assert snapshot(warm, 1, 0).chip_temp_max_c - snapshot(rig, 1, 0).chip_temp_max_c == 10


def test_overheat_raises_chip_temperature_above_the_model_limit() -> None:
    rig = build_rigs(1, scenarios={"r01-s01": Scenario.OVERHEAT})[0]
    assert snapshot(rig, 1, 0).chip_temp_max_c > rig.info.temp_limit_c


def test_rigs_live_only_on_loopback_addresses() -> None:
    assert rig_addresses("127.10.0.253", 3) == ["127.10.0.254", "127.10.1.1", "127.10.1.2"]
    with pytest.raises(ValueError):
        rig_addresses("10.0.0.0", 1)


@pytest.mark.e2e
def test_unmodified_pyasic_identifies_every_simulated_model(farm: FarmFactory) -> None:
    mix = ("s19pro", "s21", "m50", "m30splus", "a1246", "supra", "gamma")
    f = farm(len(mix), mix=mix)

    async def identify() -> list[str]:
        miners = await asyncio.gather(*(get_miner(r.ip) for r in f.rigs))
        return [str(m.raw_model) for m in miners]

    assert asyncio.run(identify()) == [r.hardware.model for r in f.rigs]


@pytest.mark.e2e
def test_a_scenario_can_be_switched_on_while_the_farm_runs(farm: FarmFactory) -> None:
    f = farm(2, mix=("m50",))
    url = f"http://127.0.0.1:{f.control_port}/rigs/r01-s02/scenario/overheat"
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5).read()
    with urllib.request.urlopen(f"http://127.0.0.1:{f.control_port}/rigs", timeout=5) as resp:
        rigs = {r["rig"]: r for r in json.load(resp)}
    assert rigs["r01-s02"]["scenario"] == "overheat"
    assert rigs["r01-s01"]["scenario"] == "normal"


def test_the_overheat_scenario_crosses_every_models_limit_and_healthy_rigs_stay_under() -> None:
    """The demo's "one overheats" rig must alert, whatever its model, and no healthy rig (the
    Bitaxes' limit is 70 °C) may: the overheat rule fires on temp_margin_c < 0."""
    from sim.farm import build_rigs
    from sim.model import HARDWARE

    for kind in HARDWARE:
        healthy, hot = build_rigs(2, "127.99.0.0", (kind,), {"r01-s02": Scenario.OVERHEAT})
        for tick in range(20):
            assert snapshot(healthy, 1, tick).chip_temp_max_c < healthy.info.temp_limit_c - 10
            assert snapshot(hot, 1, tick).chip_temp_max_c > hot.info.temp_limit_c, kind
