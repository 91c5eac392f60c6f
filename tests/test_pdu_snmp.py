"""The SNMP PDU source against snmpsim serving real APC recordings: exact values, units right."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from collector.pdu.profile import builtin_profiles
from collector.pdu.source import PduSource
from hashwatt.config import Config, PduConfig, RigConfig, SiteConfig
from sim.launch import SnmpSim
from tests.conftest import V3_AUTH, V3_PRIV, V3_USER

pytestmark = pytest.mark.e2e


def poll(agent: SnmpSim, community: str, **pdu: Any) -> dict[str, Any]:
    settings = {"community": SecretStr(community), **pdu}
    pdu_cfg = PduConfig(id="pdu-1", address="127.0.0.1", port=agent.port, **settings)
    rigs = [RigConfig(id="r01-s01", address="10.0.0.1", customer="acme", pdu="pdu-1", outlet=1)]
    cfg = Config(site=SiteConfig(name="north"), pdus=[pdu_cfg], rigs=rigs)
    return asyncio.run(PduSource(cfg).poll(pdu_cfg, 1_790_000_000_000))


def test_ap8641_outlet_one_draws_163_w_and_has_304_6_kwh(apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "apc-8641")
    assert r["outlets"][0] == {"outlet": 1, "name": "CP-CM-SAN-01", "current_a": 0.9,
                               "power_w": 163.0, "energy_kwh": 304.6, "energy_reset": False,
                               "rig": "r01-s01", "customer": "acme", "rack": ""}
    assert len(r["outlets"]) == 24


def test_ap8641_device_reads_1_21_kw_and_1951_6_kwh(apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "apc-8641")
    assert (r["power_w"], r["energy_kwh"], r["model"]) == (1210.0, 1951.6, "AP8641")
    assert r["phases"] == [{"phase": "1", "current_a": 6.5, "voltage_v": 201.0,
                            "power_w": 1220.0, "rating_a": 24.0}]


def test_ap8641_outlet_energies_need_not_add_up_to_the_device_counter(
        apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "apc-8641")
    outlets = sum(o["energy_kwh"] for o in r["outlets"])
    assert abs(outlets - r["energy_kwh"]) / r["energy_kwh"] > 0.10  # both kept as measured


def test_ap8932_switched_unit_has_device_figures_and_no_metered_outlets(
        apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "apc-8932")
    assert (r["power_w"], r["energy_kwh"], r["outlets"]) == (160.0, 642.6, [])
    assert r["phases"][0]["current_a"] == 1.4


def test_ap7902b_energy_is_absent_not_minus_one_and_power_is_the_legacy_total(
        apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "apc-7902b")
    assert r["online"] is True
    assert "energy_kwh" not in r  # rPDU2DeviceStatusEnergy.1 = -1, no legacy energy column
    # rPDU2DeviceStatusPower.1 = -1 -> rPDUIdentDevicePowerWatts.0 = 192 W (PowerNet-MIB
    # rPDUIdent 16, W); the unit's own arithmetic: rPDULoadStatusLoad 16 tenths A = 1.6 A x
    # rPDUIdentDeviceLinetoLineVoltage 120 V x rPDUIdentDevicePowerFactor 1000/1000 = 192 W
    assert r["power_w"] == 192.0
    assert r["phases"] == [{"phase": "1", "current_a": 1.6, "rating_a": 24.0}]


def test_the_profile_is_detected_from_sys_object_id(apc_agent: SnmpSim) -> None:
    assert poll(apc_agent, "apc-8641")["profile"] == "apc_rpdu2"


def test_a_device_no_profile_knows_gives_a_clear_error(apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "slackware")
    assert r["online"] is False
    assert r["error"].startswith("no profile matches sysObjectID")


def test_snmp_v1_reads_the_same_values(apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "apc-8641", snmp_version="1")
    assert (r["power_w"], r["outlets"][0]["power_w"]) == (1210.0, 163.0)


def test_snmpv3_auth_priv_reads_the_same_values(apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "", snmp_version="3", v3_user=V3_USER, v3_auth_key=SecretStr(V3_AUTH),
             v3_priv_key=SecretStr(V3_PRIV), v3_context="apc-8641")
    assert (r["power_w"], r["outlets"][0]["energy_kwh"]) == (1210.0, 304.6)


def test_snmpv3_with_a_wrong_auth_key_gives_one_clear_error(apc_agent: SnmpSim) -> None:
    r = poll(apc_agent, "", snmp_version="3", v3_user=V3_USER, profile="apc_rpdu2",
             v3_auth_key=SecretStr("not-the-key"), v3_priv_key=SecretStr(V3_PRIV),
             v3_context="apc-8641", retries=0)
    assert r["online"] is False
    assert r["error"] == (f"127.0.0.1:{apc_agent.port}: SNMPv3 authentication failed for user "
                          "'hashwatt': wrong auth key or auth protocol")


def test_a_silent_agent_is_an_offline_reading_within_its_timeout(apc_agent: SnmpSim) -> None:
    from sim.launch import free_udp_port

    pdu = PduConfig(id="pdu-x", address="127.0.0.1", port=free_udp_port(), timeout_s=0.3,
                    retries=0, profile="apc_rpdu2")
    cfg = Config(site=SiteConfig(name="north"), pdus=[pdu])
    r = asyncio.run(PduSource(cfg).poll(pdu, 1))
    assert r["online"] is False and "No SNMP response" in r["error"]


def test_an_energy_counter_that_goes_backwards_is_flagged_as_a_reset() -> None:
    cfg = Config(site=SiteConfig(name="north"))
    source = PduSource(cfg)
    profile = builtin_profiles()["apc_rpdu2"]
    pdu = PduConfig(id="p", address="127.0.0.1")
    energy = "1.3.6.1.4.1.318.1.1.26.4.3.1.9"
    first = source.reading(pdu, profile, {energy: {"1": 19516}})
    second = source.reading(pdu, profile, {energy: {"1": 12}})
    assert (first["energy_reset"], second["energy_reset"]) == (False, True)
    assert second["energy_kwh"] == 1.2
