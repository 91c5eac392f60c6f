"""Every real PDU walk in ../shared/reference/pdu-walks (and the hand-written CyberPower walks)
served by snmpsim, read under the profile hashwatt detects, and compared field by field with
the readings worked out by hand from the vendor MIBs in tests/cases/pdu/<profile>/<walk>.toml.

The walks are read where they are at test time and copied only into a temporary data folder
for snmpsim (the community is the file stem), never into the repository.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from collector.pdu.source import PduSource
from hashwatt.config import Config, PduConfig, RigConfig, SiteConfig
from hashwatt.contract import PduReading, unknown_keys
from sim.launch import SnmpSim

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "tests" / "cases" / "pdu"
DEVICE_FIELDS = ("power_w", "energy_kwh", "voltage_v", "current_a")


def reference_dir(kind: str) -> Path:
    """`shared/reference/<kind>` beside the repository (a clone, or a worktree deeper down)."""
    for parent in REPO.parents:
        candidate = parent / "shared" / "reference" / kind
        if candidate.is_dir():
            return candidate
    pytest.skip(f"shared/reference/{kind} not found beside {REPO}")


WALKS = reference_dir("pdu-walks")
CASE_FILES = sorted(CASES.glob("*/*.toml"))


def case(path: Path) -> dict[str, Any]:
    """One hand-derived case."""
    return tomllib.loads(path.read_text())


def walk_path(spec: dict[str, Any]) -> Path:
    """A real walk by file name, or a hand-written one by its path under tests/cases/pdu."""
    return CASES / spec["walk"] if spec.get("hand_written") else WALKS / spec["walk"]


@pytest.fixture(scope="module")
def walk_agent(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """snmpsim serving every walk the cases name, plus a Sentry4 walk whose sysObjectID no
    profile knows (for detection by probe)."""
    run_dir = tmp_path_factory.mktemp("walks")
    data = run_dir / "data"
    data.mkdir()
    for path in CASE_FILES:
        shutil.copy(walk_path(case(path)), data)
    sentry = (WALKS / "sentry4.snmprec").read_text().replace(
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.1718.4\n", "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10\n")
    (data / "sentry4-unknown-oid.snmprec").write_text(sentry)
    # a first-generation Raritan Dominion PX as LibreNMS's raritan-pdu recording opens
    # (sysObjectID 13742.4, PDU-MIB), written by hand with the system group only
    (data / "raritan-px1-system-only.snmprec").write_text(
        "1.3.6.1.2.1.1.1.0|4|Raritan Dominion PX - Firmware Version 010507-11172\n"
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.13742.4\n")
    (data / "panduit-system-only.snmprec").write_text(
        "1.3.6.1.2.1.1.1.0|4|SN:PDU Metered PN:Device Model:P42D04M (hand-written)\n"
        "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.19536.10.1\n")
    agent = SnmpSim(run_dir, data_dir=data).start()
    yield agent
    agent.stop()


def poll(agent: SnmpSim, community: str, *, rigs: list[RigConfig] | None = None,
         **settings: Any) -> tuple[dict[str, Any], PduSource]:
    pdu = PduConfig(id="pdu-1", address="127.0.0.1", port=agent.port,
                    community=SecretStr(community), **settings)
    source = PduSource(Config(site=SiteConfig(name="north"), pdus=[pdu], rigs=rigs or []))
    reading = asyncio.run(source.poll(pdu, 1_790_000_000_000))
    assert unknown_keys(PduReading, reading) == []  # the contract, unknown keys refused
    return reading, source


def _outlet_view(outlet: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outlet.items() if k not in ("energy_reset", "rig", "customer",
                                                         "rack")}


@pytest.mark.parametrize("path", CASE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in CASE_FILES])
def test_each_walk_reads_the_values_worked_out_from_the_mib(path: Path,
                                                            walk_agent: SnmpSim) -> None:
    spec = case(path)
    community = walk_path(spec).stem
    r, source = poll(walk_agent, community)
    assert source.reasons["pdu-1"] == spec["reason"]
    if "error" in spec:
        assert (r["online"], r["error"]) == (False, spec["error"])
        return
    assert r["online"] is True, r.get("error")
    assert r["profile"] == spec["profile"]
    device = dict(spec["device"])
    assert r["model"] == device.pop("model")
    assert {k: r[k] for k in device} == device
    assert [k for k in spec["absent"] if k in r] == []
    assert set(DEVICE_FIELDS) <= set(device) | set(spec["absent"])
    assert r["phases"] == spec.get("phases", [])
    assert [_outlet_view(o) for o in r["outlets"]] == spec.get("outlets", [])


def test_the_sentry4_chain_sums_master_and_link_for_the_device(walk_agent: SnmpSim) -> None:
    r, _ = poll(walk_agent, "sentry4")
    # st4InputCordActivePower 1701 W (master) + 1265 W (link); the old profile stored 1,701 W
    assert r["power_w"] == 2966.0
    assert sum(p["power_w"] for p in r["phases"] if p["unit"] == "2") == 513 + 358 + 403


def test_an_easy_pdu_read_as_rpdu2_is_an_error_with_a_reason(walk_agent: SnmpSim) -> None:
    r, _ = poll(walk_agent, "apc-epdu_epdu1116s", profile="apc_rpdu2")
    assert (r["online"], r["error"]) == (False, "no rPDU2 table: not an rPDU2 device?")


def test_a_unit_no_sys_object_id_matches_is_detected_by_a_probe_of_tables(
        walk_agent: SnmpSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="collector.pdu.source")
    pdu = PduConfig(id="pdu-9", address="127.0.0.1", port=walk_agent.port,
                    community=SecretStr("sentry4-unknown-oid"))
    source = PduSource(Config(site=SiteConfig(name="north"), pdus=[pdu]))

    async def twice() -> list[dict[str, Any]]:
        return [await source.poll(pdu, 1), await source.poll(pdu, 2)]

    first, second = asyncio.run(twice())
    assert (first["profile"], first["power_w"], second["power_w"]) == (
        "servertech_sentry4", 2966.0, 2966.0)
    reason = ("sysObjectID 1.3.6.1.4.1.8072.3.2.10 matches no profile; its Sentry4 table "
              "1.3.6.1.4.1.1718.4.1.3.3.1.3 answered")
    assert source.reasons["pdu-9"] == reason
    chosen = [r.getMessage() for r in caplog.records if "profile" in r.getMessage()]
    assert chosen == [f"pdu pdu-9: profile servertech_sentry4 ({reason})"]  # once, at INFO


def test_rigs_map_to_the_master_units_outlets_only(walk_agent: SnmpSim) -> None:
    rigs = [RigConfig(id="r1", address="10.0.0.1", customer="acme", pdu="pdu-1", outlet=3)]
    r, _ = poll(walk_agent, "raritan-pdu_px2", rigs=rigs)
    mapped = [o for o in r["outlets"] if o.get("rig")]
    assert [(o["outlet"], o["rig"], o["power_w"]) for o in mapped] == [(3, "r1", 68.0)]


def probe_cli(agent: SnmpSim, community: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`hashwatt pdu probe` as an operator runs it, the community in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "hashwatt.cli", "pdu", "probe", f"127.0.0.1:{agent.port}", *args],
        env={**os.environ, "HASHWATT_SNMP_COMMUNITY": community}, capture_output=True,
        text=True, timeout=60)


def test_pdu_probe_prints_what_a_real_sentry4_chain_reports(walk_agent: SnmpSim) -> None:
    done = probe_cli(walk_agent, "sentry4")
    assert done.returncode == 0, done.stderr
    # the values of tests/cases/pdu/servertech_sentry4/sentry4.toml, as printed
    assert done.stdout.splitlines() == [
        f"127.0.0.1:{walk_agent.port}: profile servertech_sentry4 (sysObjectID "
        "1.3.6.1.4.1.1718.4 is under 1.3.6.1.4.1.1718.4)",
        "vendor Server Technology, model C2S42CE-YCMFAM00",
        "device: power_w=2966  energy_kwh=3459.6",
        "phases (6):",
        "  unit 1 phase 1: current_a=2.09  voltage_v=207.9  power_w=415",
        "  unit 1 phase 2: current_a=2.22  voltage_v=208.9  power_w=444",
        "  unit 1 phase 3: current_a=4.29  voltage_v=209.4  power_w=848",
        "  unit 2 phase 1: current_a=2.52  voltage_v=208.2  power_w=513",
        "  unit 2 phase 2: current_a=1.85  voltage_v=210.3  power_w=358",
        "  unit 2 phase 3: current_a=2.01  voltage_v=208.2  power_w=403",
        "outlets (0):"]
    assert "sentry4" not in done.stderr.replace("servertech_sentry4", "")  # no secret logged


def test_pdu_probe_with_the_wrong_profile_names_the_missing_table(walk_agent: SnmpSim) -> None:
    done = probe_cli(walk_agent, "vertiv-pdu_mg02e4w1", "--profile", "vertiv_geist")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == (
        "error: no GEIST-MIB-V3 table: not a GEIST-MIB-V3 device?")


def test_pdu_probe_takes_a_configured_pdu_and_its_secret_from_the_config(
        walk_agent: SnmpSim, tmp_path: Path) -> None:
    config = tmp_path / "hashwatt.toml"
    config.write_text('[site]\nname = "north"\n[mqtt]\nhost = "127.0.0.1"\n'
                      f'[[pdus]]\nid = "pdu-r07"\naddress = "127.0.0.1"\nport = {walk_agent.port}\n'
                      'community = { env = "PDU_R07_COMMUNITY" }\n')
    done = subprocess.run(
        [sys.executable, "-m", "hashwatt.cli", "pdu", "probe", "pdu-r07", "--config",
         str(config), "--json"], env={**os.environ, "PDU_R07_COMMUNITY": "apc_ap8853"},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reading = json.loads(done.stdout)
    # tests/cases/pdu/apc_rpdu2/apc_ap8853.toml: 114 hundredths of kW, 35128 tenths of kWh
    assert (reading["profile"], reading["power_w"], reading["energy_kwh"]) == (
        "apc_rpdu2", 1140.0, 3512.8)
    assert reading["reason"] == ("sysObjectID 1.3.6.1.4.1.318.1.3.4.6 is under "
                                 "1.3.6.1.4.1.318.1.3.4")
    assert "apc_ap8853" not in done.stderr  # the community never reaches a log line


def test_a_device_no_profile_reads_is_named_in_its_offline_reason(walk_agent: SnmpSim) -> None:
    # collector/pdu/not_pdus.toml: 13742.4 is the Raritan PX of the first generation
    r, _ = poll(walk_agent, "raritan-px1-system-only")
    assert (r["online"], r["error"]) == (False, (
        "sysObjectID 1.3.6.1.4.1.13742.4: a Raritan Dominion PX of the first generation "
        "(PDU-MIB), which no profile reads; no profile's table answered"))


def test_a_pdu_no_profile_reads_names_its_vendor(walk_agent: SnmpSim) -> None:
    # a Panduit metered PDU answers sysObjectID 1.3.6.1.4.1.19536.10.1 (LibreNMS's panduit
    # recordings): hashwatt has no profile for it, and says whose it is
    r, _ = poll(walk_agent, "panduit-system-only")
    assert (r["online"], r["error"]) == (False, (
        "no profile matches sysObjectID 1.3.6.1.4.1.19536.10.1 (Panduit) and no profile's "
        "table answered; hashwatt has no profile for it: set `profile`, or add one in "
        "pdu_profiles_dir"))


def test_a_rig_without_pdu_unit_maps_to_the_master_units_outlet(walk_agent: SnmpSim) -> None:
    # hand-written Sentry4 chain: master outlet 1 "rig-c1" 1215 W, link outlet 1 "rig-d1" 1180 W
    rigs = [RigConfig(id="c1", address="10.0.0.1", customer="acme", pdu="pdu-1", outlet=1)]
    r, _ = poll(walk_agent, "sentry4-outlets-hand-written", rigs=rigs)
    assert [(o["unit"], o["outlet"], o.get("rig"), o["power_w"]) for o in r["outlets"]] == [
        ("1", 1, "c1", 1215.0), ("1", 2, None, 1195.0), ("2", 1, None, 1180.0),
        ("2", 2, None, 0.0)]


def _rig(rig_id: str, outlet: int, unit: str | None = None) -> RigConfig:
    return RigConfig(id=rig_id, address=f"10.0.0.{outlet}", customer="acme", pdu="pdu-1",
                     outlet=outlet, pdu_unit=unit)


@pytest.mark.parametrize(("walk", "rigs", "expected"), [
    # hand-written Sentry4 chain (sentry4-outlets-hand-written.toml): master outlet 1
    # st4OutletActivePower 1215 W, link unit 2 outlet 1 1180 W
    ("sentry4-outlets-hand-written", [_rig("c1", 1), _rig("d1", 1, "2")],
     {"c1": 1215.0, "d1": 1180.0}),
    # hand-written strapped Eatons (eaton-strapped-3phase-hand-written.toml): strapping 0
    # outlet 1 outletWatts 1120 W (also named as unit "0"), strapping 1 outlet 1 650 W
    ("eaton-strapped-3phase-hand-written", [_rig("e1", 1, "0"), _rig("e2", 2), _rig("f1", 1, "1")],
     {"e1": 1120.0, "e2": 1100.0, "f1": 650.0}),
    # real Raritan PX2 (no chain, pduId 1): outlet 3 outletActivePower 68 W whether or not the
    # rig names unit 1, outlet 10 35 W; a rig naming unit 2 gets nothing (and one warning)
    ("raritan-pdu_px2", [_rig("x3", 3, "1"), _rig("x10", 10), _rig("x11", 11, "2")],
     {"x3": 68.0, "x10": 35.0}),
])
def test_a_rig_on_a_daisy_chain_gets_the_power_of_its_units_outlet(
        walk: str, rigs: list[RigConfig], expected: dict[str, float], walk_agent: SnmpSim,
        caplog: pytest.LogCaptureFixture) -> None:
    from collector.service import poll_pdus

    pdu = PduConfig(id="pdu-1", address="127.0.0.1", port=walk_agent.port,
                    community=SecretStr(walk))
    cfg = Config(site=SiteConfig(name="north"), pdus=[pdu], rigs=rigs)
    source = PduSource(cfg)
    published: list[dict[str, Any]] = []

    async def two_cycles() -> dict[str, float]:
        await poll_pdus(cfg, source, published.append)
        return (await poll_pdus(cfg, source, published.append))[0]

    assert asyncio.run(two_cycles()) == expected
    warned = [r.getMessage() for r in caplog.records if "pdu_unit" in r.getMessage()]
    if walk == "raritan-pdu_px2":  # once, not every cycle
        assert warned == ["rig x11: pdu_unit 2: PDU pdu-1 has no unit 2 (its units: 1); the "
                          "rig gets no outlet power"]
    else:
        assert warned == []


def test_chain_units_become_a_unit_tag_on_phase_and_outlet_points(walk_agent: SnmpSim) -> None:
    from exporters.decode import pdu_points
    from hashwatt.contract import PduReading

    r, _ = poll(walk_agent, "sentry4-outlets-hand-written")
    points = pdu_points(PduReading.model_validate(r))
    tags = sorted((p.measurement, p.tags.get("unit", ""), p.tags.get("phase") or
                   p.tags.get("outlet", "")) for p in points if p.measurement != "pdu")
    assert tags == [("pdu_outlet", "1", "1"), ("pdu_outlet", "1", "2"), ("pdu_outlet", "2", "1"),
                    ("pdu_outlet", "2", "2"), ("pdu_phase", "1", "1"), ("pdu_phase", "2", "1")]
