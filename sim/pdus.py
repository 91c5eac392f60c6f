"""Simulated PDUs: snmpsim agents shaped like an APC rPDU2 (AP8641) whose outlet readings
follow the simulated rigs plugged into them.

The farm writes a spec (seed, tick, rigs) and one .snmprec recording per PDU whose live
values point at the `hashwatt` snmpsim variation module; the module computes each value from
the same rig model the rigs serve, so outlet power and rig power agree exactly.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from sim.model import Scenario, SimRig, snapshot, tick_of

APC = "1.3.6.1.4.1.318.1.1.26"
SYS_OBJECT_ID = "1.3.6.1.4.1.318.1.3.4.6"
VOLTAGE_V = 230
PHASES = 3
PHASE_RATING_A = 63
VARIATION_DIR = Path(__file__).parent / "snmpsim_variation"


@dataclass(frozen=True)
class SimPdu:
    """One simulated PDU: rig i is plugged into outlet i + 1."""

    pdu_id: str
    ip: str
    rigs: tuple[SimRig, ...]


def pdus_for(rigs: list[SimRig], per_pdu: int = 10) -> list[SimPdu]:
    """One PDU per rack of per_pdu rigs, on addresses x.y.200.n of the rigs' subnet."""
    first = rigs[0].ip.split(".")[:2] if rigs else ["127", "10"]
    out = []
    for n, start in enumerate(range(0, len(rigs), per_pdu), 1):
        ip = ".".join([*first, str(200 + n // 250), str(n % 250 + 1)])
        out.append(SimPdu(f"pdu-r{n:02d}", ip, tuple(rigs[start:start + per_pdu])))
    return out


def _line(oid: str, tag: str, value: object) -> tuple[tuple[int, ...], str]:
    return tuple(int(x) for x in oid.split(".")), f"{oid}|{tag}|{value}"


def _live(oid: str, spec: Path, pdu: str, field: str, rig: str = "") -> tuple[tuple[int, ...],
                                                                              str]:
    return _line(oid, "2:hashwatt", f"spec={spec},pdu={pdu},field={field},rig={rig}")


def recording(pdu: SimPdu, spec: Path) -> str:
    """The .snmprec text of one PDU, sorted by OID as snmpsim requires."""
    lines = [_line("1.3.6.1.2.1.1.1.0", "4", "hashwatt simulated APC Rack PDU"),
             _line("1.3.6.1.2.1.1.2.0", "6", SYS_OBJECT_ID),
             _line("1.3.6.1.2.1.1.5.0", "4", pdu.pdu_id),
             _line(f"{APC}.2.1.8.1", "4", "AP8641"),
             _live(f"{APC}.4.3.1.5.1", spec, pdu.pdu_id, "device_power"),
             _live(f"{APC}.4.3.1.9.1", spec, pdu.pdu_id, "device_energy")]
    for ph in range(1, PHASES + 1):
        lines += [_line(f"{APC}.6.1.1.7.{ph}", "2", PHASE_RATING_A),
                  _live(f"{APC}.6.3.1.5.{ph}", spec, pdu.pdu_id, f"phase{ph}_current"),
                  _line(f"{APC}.6.3.1.6.{ph}", "2", VOLTAGE_V),
                  _live(f"{APC}.6.3.1.7.{ph}", spec, pdu.pdu_id, f"phase{ph}_power")]
    for n, rig in enumerate(pdu.rigs, 1):
        lines += [_line(f"{APC}.9.4.3.1.3.{n}", "4", rig.rig_id),
                  _live(f"{APC}.9.4.3.1.6.{n}", spec, pdu.pdu_id, "outlet_current", rig.rig_id),
                  _live(f"{APC}.9.4.3.1.7.{n}", spec, pdu.pdu_id, "outlet_power", rig.rig_id),
                  _live(f"{APC}.9.4.3.1.11.{n}", spec, pdu.pdu_id, "outlet_energy",
                        rig.rig_id)]
    return "\n".join(text for _, text in sorted(lines)) + "\n"


def static_recording(outlets: int, seed: int = 1) -> str:
    """An rPDU2-shaped recording with fixed values: no variation module, for benchmarks."""
    rng = random.Random(seed)
    lines = [_line("1.3.6.1.2.1.1.2.0", "6", SYS_OBJECT_ID), _line(f"{APC}.2.1.8.1", "4", "AP8641"),
             _line(f"{APC}.4.3.1.5.1", "2", rng.randint(100, 3000)),
             _line(f"{APC}.4.3.1.9.1", "2", rng.randint(10_000, 90_000))]
    for ph in range(1, PHASES + 1):
        lines += [_line(f"{APC}.6.1.1.7.{ph}", "2", PHASE_RATING_A),
                  _line(f"{APC}.6.3.1.5.{ph}", "2", rng.randint(10, 400)),
                  _line(f"{APC}.6.3.1.6.{ph}", "2", VOLTAGE_V),
                  _line(f"{APC}.6.3.1.7.{ph}", "2", rng.randint(10, 900))]
    for n in range(1, outlets + 1):
        lines += [_line(f"{APC}.9.4.3.1.3.{n}", "4", f"outlet-{n}"),
                  _line(f"{APC}.9.4.3.1.6.{n}", "2", rng.randint(0, 160)),
                  _line(f"{APC}.9.4.3.1.7.{n}", "2", rng.randint(0, 3600)),
                  _line(f"{APC}.9.4.3.1.11.{n}", "2", rng.randint(0, 90_000))]
    return "\n".join(text for _, text in sorted(lines)) + "\n"


def write_agent_files(pdus: list[SimPdu], farm_spec: dict[str, Any], folder: Path) -> Path:
    """Write the spec and every PDU's recording (community = PDU id); return the data dir."""
    data = folder / "snmp-data"
    data.mkdir(parents=True, exist_ok=True)
    spec = folder / "farm-spec.json"
    spec.write_text(json.dumps(farm_spec))
    for pdu in pdus:
        (data / f"{pdu.pdu_id}.snmprec").write_text(recording(pdu, spec))
    return data


def farm_spec(rigs: list[SimRig], pdus: list[SimPdu], seed: int, tick_s: float,
              frozen: bool, scenarios: dict[str, Scenario]) -> dict[str, Any]:
    """What the variation module needs to recompute the rigs' power."""
    return {"seed": seed, "tick_s": tick_s, "frozen": frozen,
            "rigs": {r.rig_id: {"ip": r.ip, "hw": r.hw_name, "ambient_c": r.ambient_c,
                                "scenario": str(scenarios.get(r.rig_id, r.scenario))}
                     for r in rigs},
            "pdus": {p.pdu_id: [r.rig_id for r in p.rigs] for p in pdus}}


@cache
def _load_spec(path: str, mtime: float) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def rig_power_w(spec: dict[str, Any], rig_id: str, tick: int) -> int:
    """The wall power of a simulated rig: what it serves, or 0 when switched off."""
    raw = spec["rigs"][rig_id]
    return _power_w(spec["seed"], rig_id, raw["ip"], raw["hw"], raw["scenario"],
                    raw["ambient_c"], tick)


# A counter value sums 360 ticks of each rig's power, and one GETBULK asks for every outlet:
# without this cache a 50-rig farm's agent spent seconds per request and its PDUs timed out.
@lru_cache(maxsize=200_000)
def _power_w(seed: int, rig_id: str, ip: str, hw: str, scenario: str, ambient_c: float,
             tick: int) -> int:
    rig = SimRig(rig_id, ip, hw, Scenario(scenario), ambient_c)
    if rig.scenario is Scenario.OFFLINE:
        return 0
    return snapshot(rig, seed, tick).power_w


def energy_kwh(spec: dict[str, Any], rig_id: str, tick: int) -> float:
    """A counter that starts at a seeded value and grows with the rig's power per tick."""
    base = random.Random(f"{spec['seed']}/{rig_id}/energy").uniform(100, 5000)
    grown = sum(rig_power_w(spec, rig_id, t) for t in range(max(0, tick - 360), tick))
    return base + grown * spec["tick_s"] / 3600 / 1000


def value(settings: dict[str, str], now: float) -> int:
    """One live OID's value in the units of the APC MIB."""
    path = Path(settings["spec"])
    spec = _load_spec(str(path), path.stat().st_mtime)
    tick = tick_of(now, spec["tick_s"], spec["frozen"])
    field, rig = settings["field"], settings.get("rig", "")
    if field.startswith("outlet_"):
        watts = rig_power_w(spec, rig, tick)
        return {"outlet_power": watts, "outlet_current": round(watts / VOLTAGE_V * 10),
                "outlet_energy": round(energy_kwh(spec, rig, tick) * 10)}[field]
    rigs = spec["pdus"][settings["pdu"]]
    if field.startswith("phase"):  # outlet n is wired to phase (n - 1) % 3 + 1
        phase = int(field[5])
        rigs = [r for n, r in enumerate(rigs) if n % PHASES == phase - 1]
    watts = sum(rig_power_w(spec, r, tick) for r in rigs)
    if field.endswith("_current"):
        return round(watts / VOLTAGE_V * 10)
    if field.endswith("_power"):
        return round(watts / 10)
    return round(sum(energy_kwh(spec, r, tick) for r in rigs) * 10)


def now() -> float:
    """The clock the variation module reads (a function so tests can see it is wall time)."""
    return time.time()
