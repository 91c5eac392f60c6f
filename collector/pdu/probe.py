"""`hashwatt pdu probe`: what a PDU reports under its profile, before it goes live."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.pdu.source import PduSource
from hashwatt.config import Config, PduConfig
from hashwatt.contract import PduDoc

FIELDS = ("current_a", "voltage_v", "power_w", "energy_kwh", "rating_a")


async def probe(cfg: Config, pdu: PduConfig) -> tuple[PduDoc, str]:
    """One poll of the PDU and the reason its profile was chosen ("" when none was)."""
    source = PduSource(cfg)
    reading = await source.poll(pdu, 1)
    return reading, source.reasons.get(pdu.id, "")


def _values(row: Mapping[str, Any]) -> str:
    shown = [f"{k}={row[k]:g}" for k in FIELDS if isinstance(row.get(k), int | float)]
    return "  ".join(shown) or "(no readings)"


def render(pdu: PduConfig, reading: PduDoc, reason: str) -> str:
    """The reading as an operator reads it: profile and why, device, phases, outlets."""
    where = f"{pdu.address}:{pdu.port}"
    if reason:
        lines = [f"{where}: profile {reading.get('profile') or pdu.profile} ({reason})"]
    else:
        lines = [f"{where}: no profile chosen"]
    if not reading["online"]:
        return "\n".join([*lines, f"error: {reading['error']}"])
    lines.append(f"vendor {reading['vendor']}, model {reading['model'] or '(not reported)'}")
    lines.append(f"device: {_values(reading)}")
    lines.append(f"phases ({len(reading['phases'])}):")
    for ph in reading["phases"]:
        unit = f"unit {ph['unit']} " if ph.get("unit") else ""
        lines.append(f"  {unit}phase {ph['phase']}: {_values(ph)}")
    lines.append(f"outlets ({len(reading['outlets'])}):")
    for o in reading["outlets"]:
        unit = f"unit {o['unit']} " if o.get("unit") else ""
        name = f" {o['name']!r}" if o.get("name") else ""
        lines.append(f"  {unit}outlet {o['outlet']}{name}: {_values(o)}")
    return "\n".join(lines)
