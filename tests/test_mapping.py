"""pyasic MinerData → reading: power source precedence, offline rigs, units."""

from __future__ import annotations

from pyasic.data import Fan, HashBoard, MinerData
from pyasic.device.algorithm import SHA256Unit
from pyasic.device.algorithm.hashrate import SHA256HashRate

from collector.mapping import Origin, reading_from_miner
from hashwatt.config import RigConfig

RIG = RigConfig(id="r01-s01", address="10.0.0.1", rack="R01", customer="acme", model="S19 Pro")


def origin(rig: RigConfig = RIG, outlet_w: float | None = None) -> Origin:
    return Origin(site="north", collector="c1", rig=rig, ts_ms=1_790_000_000_000, outlet_w=outlet_w)


def data(wattage: int | None = None, th: float | None = 100.0) -> MinerData:
    rate = SHA256HashRate(rate=th, unit=SHA256Unit.TH) if th is not None else None
    board = HashBoard(slot=0, hashrate=rate, chip_temp=70, temp=60, chips=114)
    return MinerData(ip="10.0.0.1", raw_hashrate=rate, wattage=wattage, hashboards=[board],
                     fans=[Fan(speed=4000), Fan(speed=3900)], uptime=10)


def test_the_pdu_outlet_power_beats_the_miners_own_figure() -> None:
    r = reading_from_miner(origin(outlet_w=3333.0), data(wattage=3100))
    assert (r["power_w"], r["power_source"]) == (3333.0, "pdu")


def test_the_miners_figure_beats_the_nominal_one() -> None:
    r = reading_from_miner(origin(), data(wattage=3100))
    assert (r["power_w"], r["power_source"]) == (3100.0, "miner")


def test_without_any_figure_the_models_nominal_power_is_used() -> None:
    r = reading_from_miner(origin(), data(wattage=None))
    assert (r["power_w"], r["power_source"]) == (3250.0, "nominal")


def test_an_unknown_model_without_power_has_no_power() -> None:
    rig = RIG.model_copy(update={"model": "Mystery 9000"})
    r = reading_from_miner(origin(rig), data(wattage=None))
    assert (r["power_w"], r["power_source"]) == (None, None)


def test_a_rig_that_answers_without_a_hashrate_is_online_with_the_hashrate_unknown() -> None:
    r = reading_from_miner(origin(), data(wattage=3100, th=None))
    assert (r["online"], r["hashrate_ths"], r["power_w"], r["uptime_s"]) == (True, None,
                                                                          3100.0, 10)
    assert r["boards"][0]["hashrate_ths"] is None and r["boards"][0]["chip_temp_c"] == 70.0


def test_no_figure_at_all_is_an_offline_reading() -> None:
    empty = MinerData(ip="10.0.0.1", hashboards=[HashBoard(slot=0)], fans=[Fan()])
    r = reading_from_miner(origin(), empty)
    assert r["online"] is False and r["error"] == "miner returned no data"


def test_inventory_tags_and_the_poll_time_travel_with_the_reading() -> None:
    r = reading_from_miner(origin(), data(wattage=3100))
    assert (r["rack"], r["customer"], r["ts_ms"]) == ("R01", "acme", 1_790_000_000_000)
    assert r["temp_limit_c"] == 95.0 and r["temp_max_c"] == 70.0
    assert r["fans_rpm"] == [4000, 3900]


def test_an_offline_rig_still_shows_the_power_its_outlet_draws() -> None:
    empty = MinerData(ip="10.0.0.1", hashboards=[HashBoard(slot=0)], fans=[Fan()])
    r = reading_from_miner(origin(outlet_w=3010.0), empty)
    assert (r["online"], r["power_w"], r["power_source"]) == (False, 3010.0, "pdu")
