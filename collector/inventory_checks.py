"""What the inventory says about a reading: maintenance, and checks of the reading against
the inventory (model, wiring, pool)."""

from __future__ import annotations

from typing import Any

from hashwatt.config import RigConfig


def annotate(reading: dict[str, Any], rig: RigConfig) -> dict[str, Any]:
    """Add the inventory's flags to a rig reading (in place) and return it."""
    if rig.maintenance:
        reading["maintenance"] = True
    return reading
