"""Every shipped profile: valid, detected by its sysObjectID, and read back with its units.

A synthetic agent per profile serves raw values at the profile's own OIDs (with its index
layout: sensor-type suffixes, daisy-chain prefixes); the test checks detection, row keys and
scaling. It proves the profile mechanics, not the vendor's MIB: only the APC profile is
checked against real recordings (test_pdu_snmp.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from collector.pdu.profile import Column, Profile, builtin_profiles, load_profile
from collector.pdu.source import PduSource
from hashwatt.config import Config, ConfigError, PduConfig, SiteConfig
from sim.launch import SnmpSim

PROFILES = builtin_profiles()
KEYS = {"device": ["1"], "phase": ["1", "2", "3"], "outlet": ["1", "2"]}
DIGITS = 2


def raw_value(group: str, metric: str, key: str) -> int:
    rank = list(KEYS).index(group) + 1 if group in KEYS else 5 + ord(group[-1]) % 7
    return 100 * rank + 10 * int(key) + len(metric)


def records(profile: Profile) -> list[str]:
    lines = {(1, 3, 6, 1, 2, 1, 1, 2, 0): f"1.3.6.1.2.1.1.2.0|6|{profile.sys_object_ids[0]}.1"}
    groups = [(g, getattr(profile, g), KEYS[g]) for g in KEYS]
    groups += [(f"fixed-{f.phase}", f, ["1"]) for f in profile.fixed_phases]
    for group, columns, keys in groups:
        for metric, column in columns.__dict__.items():
            if not isinstance(column, Column):
                continue
            for key in keys:
                index = ".".join(["1"] * (column.unit + column.index_drop) + [key] +
                                 ([column.index_suffix] if column.index_suffix else []))
                oid = f"{column.oid}.{index}"
                value = (f"4|{group}-{key}" if column.kind == "text"
                         else f"2|{raw_value(group, metric, key)}")
                lines[tuple(int(x) for x in oid.split("."))] = f"{oid}|{value}"
                if column.key_column:  # the row says which phase it measures
                    kind = next(t for t, named in column.key_values.items() if named == key)
                    named_oid = f"{column.key_column}.{index}"
                    lines[tuple(int(x) for x in named_oid.split("."))] = f"{named_oid}|2|{kind}"
                if column.digits:  # every value of a decimal-digits column has DIGITS digits
                    digits = f"{column.digits}.{index}"
                    lines[tuple(int(x) for x in digits.split("."))] = f"{digits}|66|{DIGITS}"
    return [lines[k] for k in sorted(lines)]


def expected(profile: Profile, group: str, key: str, columns: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric, column in (columns or getattr(profile, group)).__dict__.items():
        if isinstance(column, Column):
            digits = DIGITS if column.digits else 0
            out[metric] = (f"{group}-{key}" if column.kind == "text"
                           else round(raw_value(group, metric, key) * column.scale
                                      / 10 ** digits, 6))
    return out


@pytest.fixture(scope="module")
def synthetic_agent(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("profiles")
    data = run_dir / "data"
    data.mkdir()
    for name, profile in PROFILES.items():
        (data / f"{name}.snmprec").write_text("\n".join(records(profile)) + "\n")
    agent = SnmpSim(run_dir, data_dir=data).start()
    yield agent
    agent.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_is_detected_and_reads_its_columns_in_its_units(
        name: str, synthetic_agent: SnmpSim) -> None:
    profile = PROFILES[name]
    pdu = PduConfig(id="p", address="127.0.0.1", port=synthetic_agent.port,
                    community=SecretStr(name))
    r = asyncio.run(PduSource(Config(site=SiteConfig(name="s"), pdus=[pdu])).poll(pdu, 1))
    assert r["online"] is True, r.get("error")
    assert r["profile"] == name
    device = expected(profile, "device", "1")
    assert {k: r[k] for k in device if k != "model"} == {
        k: v for k, v in device.items() if k != "model"}
    phases = [{"phase": k, **expected(profile, "phase", k)} for k in KEYS["phase"]
              ] if any(profile.phase.__dict__.values()) else []
    phases += [{"phase": f.phase, **{k: v for k, v in expected(
        profile, f"fixed-{f.phase}", "1", f).items() if k != "phase"}}
        for f in profile.fixed_phases]
    assert r["phases"] == phases
    outlets = [{k: v for k, v in o.items() if k not in ("outlet", "energy_reset")}
               for o in r["outlets"]]
    want = [expected(profile, "outlet", k) for k in KEYS["outlet"]] if any(
        profile.outlet.__dict__.values()) else []
    assert outlets == [{**w, "name": w.get("name", "")} for w in want]


def test_a_broken_profile_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('vendor = "X"\n[outlet]\npower_w = { oid = "1.3.6.x" }\n')
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.problems[0].startswith(f"{path}: outlet.power_w.oid: ")


def test_the_longest_sys_object_id_prefix_wins() -> None:
    from collector.pdu.profile import detect

    broad = Profile(name="broad", vendor="A", sys_object_ids=["1.3.6.1.4.1.318"])
    narrow = Profile(name="narrow", vendor="A", sys_object_ids=["1.3.6.1.4.1.318.1.3.4"])
    found = detect("1.3.6.1.4.1.318.1.3.4.6", {"broad": broad, "narrow": narrow})
    assert found == (narrow, "1.3.6.1.4.1.318.1.3.4")
    assert detect("1.3.6.1.4.1.3180.1", {"broad": broad}) is None


def test_eaton_three_phase_rows_are_named_by_their_measurement_type() -> None:
    """EATON-EPDU-MIB: inputCurrentTable also has a neutral row (phase N), inputPowerTable a
    total row (dropped); the MeasType columns say which is which (values typed by hand)."""
    from collector.pdu.source import PduSource

    eaton = PROFILES["eaton_epdu"]
    base = "1.3.6.1.4.1.534.6.6.7.3"
    walked = {
        f"{base}.3.1.2": {"0.1.1": 3, "0.1.2": 4, "0.1.3": 5, "0.1.4": 2},  # phase1..3, neutral
        f"{base}.3.1.4": {"0.1.1": 10000, "0.1.2": 10500, "0.1.3": 9800, "0.1.4": 700},  # mA
        f"{base}.4.1.2": {"0.1.1": 1, "0.1.2": 2, "0.1.3": 3, "0.1.4": 4},  # phase1..3, total
        f"{base}.4.1.4": {"0.1.1": 2300, "0.1.2": 2410, "0.1.3": 2250, "0.1.4": 6960},  # W
        f"{base}.5.1.4": {"0.1": 6960},  # inputTotalWatts
    }
    source = PduSource(Config(site=SiteConfig(name="s")))
    r = source.reading(PduConfig(id="p", address="127.0.0.1"), eaton, walked)
    assert r["power_w"] == 6960.0
    assert r["phases"] == [{"phase": "1", "current_a": 10.0, "power_w": 2300.0},
                           {"phase": "2", "current_a": 10.5, "power_w": 2410.0},
                           {"phase": "3", "current_a": 9.8, "power_w": 2250.0},
                           {"phase": "N", "current_a": 0.7}]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_unit_without_the_profiles_tables_is_an_error_never_an_empty_success(
        name: str) -> None:
    from collector.pdu.source import PduError, PduSource

    profile = PROFILES[name]
    source = PduSource(Config(site=SiteConfig(name="s")))
    model_only = {c.oid: {"0": "X1"} for c in [profile.device.model] if c is not None}
    with pytest.raises(PduError) as err:
        source.reading(PduConfig(id="p", address="127.0.0.1"), profile, model_only)
    assert str(err.value) == profile.missing_table()
    assert str(err.value).startswith("no ") and str(err.value).endswith(" device?")


def test_a_unit_whose_every_value_is_unavailable_is_an_error_not_an_empty_success() -> None:
    """A switched Sentry3 tower without outlet or infeed sensing answers outlet names and
    -1 everywhere else (Sentry3-MIB: negative = not available): nothing was measured."""
    from collector.pdu.source import PduError, PduSource

    sentry3 = PROFILES["servertech_sentry3"]
    base = "1.3.6.1.4.1.1718.3.2"
    walked = {f"{base}.3.1.3": {"1.1.1": "Outlet AA1", "1.1.2": "Outlet AA2"},  # outletName
              f"{base}.3.1.7": {"1.1.1": -1, "1.1.2": -1},                      # outletLoadValue
              f"{base}.2.1.7": {"1.1": -1}}                                      # infeedLoadValue
    with pytest.raises(PduError) as err:
        PduSource(Config(site=SiteConfig(name="s"))).reading(
            PduConfig(id="p", address="127.0.0.1"), sentry3, walked)
    assert str(err.value) == ("its Sentry3 tables answered but every value is marked not "
                              "available")


def test_a_link_unit_dropping_out_of_a_chain_is_not_an_energy_reset() -> None:
    """Sentry4 device energy = sum of st4InputCordEnergy over units (tenth kWh): without the
    link unit the sum falls from 3459.6 to 893.7 kWh, but no counter went backwards."""
    from collector.pdu.source import PduSource

    sentry = PROFILES["servertech_sentry4"]
    energy, power = "1.3.6.1.4.1.1718.4.1.3.3.1.10", "1.3.6.1.4.1.1718.4.1.3.3.1.3"
    source = PduSource(Config(site=SiteConfig(name="s")))
    pdu = PduConfig(id="p", address="127.0.0.1")
    both = source.reading(pdu, sentry, {energy: {"1.1": 8937, "2.1": 25659},
                                        power: {"1.1": 1701, "2.1": 1265}})
    master = source.reading(pdu, sentry, {energy: {"1.1": 8937}, power: {"1.1": 1701}})
    lower = source.reading(pdu, sentry, {energy: {"1.1": 8000}, power: {"1.1": 1701}})
    assert (both["energy_kwh"], master["energy_kwh"]) == (3459.6, 893.7)
    assert (both["energy_reset"], master["energy_reset"], lower["energy_reset"]) == (
        False, False, True)


def test_a_raritan_sensor_marked_unavailable_is_unknown_not_zero() -> None:
    """PDU2-MIB measurementsOutletSensorIsAvailable false(2): the value column still answers
    (0 here), but the sensor has no reading; rows typed by hand."""
    from collector.pdu.source import PduSource

    raritan = PROFILES["raritan_pdu2"]
    value, available = "1.3.6.1.4.1.13742.6.5.4.3.1.4", "1.3.6.1.4.1.13742.6.5.4.3.1.2"
    digits = "1.3.6.1.4.1.13742.6.3.5.4.1.7"
    walked = {value: {"1.1.5": 120, "1.2.5": 0}, available: {"1.1.5": 1, "1.2.5": 2},
              digits: {"1.1.5": 0, "1.2.5": 0}}
    r = PduSource(Config(site=SiteConfig(name="s"))).reading(
        PduConfig(id="p", address="127.0.0.1"), raritan, walked)
    assert [(o["outlet"], o.get("power_w")) for o in r["outlets"]] == [(1, 120.0)]


def test_outlets_indexed_per_input_are_numbered_on_through_their_unit() -> None:
    from collector.pdu.source import outlet_numbers

    # Sentry3 CWG tower: infeeds 1-3, ten outlets each (AA1-AA10, AB1-AB10, AC1-AC10)
    keys = [("", f"{f}.{o}") for f in (1, 2, 3) for o in range(1, 11)]
    numbers = outlet_numbers(keys)
    assert [numbers[("", "1.1")], numbers[("", "1.10")], numbers[("", "2.1")],
            numbers[("", "3.10")]] == [1, 10, 11, 30]
    # a unit whose second cord already numbers on (9-16) keeps the device's numbers; units
    # are numbered apart; a one-component index is the device's own number
    run_on = outlet_numbers([("1", "1.1"), ("1", "1.8"), ("1", "2.9"), ("1", "2.16"),
                             ("2", "1.1"), ("", "7")])
    assert run_on == {("1", "1.1"): 1, ("1", "1.8"): 8, ("1", "2.9"): 9, ("1", "2.16"): 16,
                      ("2", "1.1"): 1, ("", "7"): 7}


def test_a_row_with_a_current_but_no_voltage_or_power_is_the_neutral() -> None:
    from collector.pdu.source import name_neutral

    phases = {("1", "1"): {"current_a": 1.11, "voltage_v": 230.0, "power_w": 147.0},
              ("1", "4"): {"current_a": 2.12, "rating_a": 10.0},
              # a tower that measures no voltage or power anywhere keeps its rows as phases
              ("2", "1"): {"current_a": 3.0}, ("2", "2"): {"current_a": 2.0}}
    assert list(name_neutral(phases, ["voltage_v", "power_w"])) == [
        ("1", "1"), ("1", "N"), ("2", "1"), ("2", "2")]
