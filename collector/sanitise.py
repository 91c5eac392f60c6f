"""Device values checked where readings are built: the contract and the model's plausibility
bounds (hashwatt/data/models.toml, [plausible]).

A rig that answers NaN, 1e30 GH/s or a 1,000,000 rpm fan has a broken field, not a broken
reading: that field is dropped (null, never 0), named in the reading's `invalid` list and
counted; the rest of the reading is published. Without this, the bridge would set the whole
reading aside (no point, no offline marker) or store an online 1e27 TH/s.
"""

from __future__ import annotations

import logging
import math
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from hashwatt.contract import PduDoc, PduReading, RigDoc, RigReading
from hashwatt.models import Bounds, bounds

log = logging.getLogger(__name__)
MAX_PASSES = 8  # each pass drops the fields one validation found; a sane reading needs one
_warned: set[tuple[str, str]] = set()  # (device, field) said once, not every cycle


def _check(value: Any, low: float, high: float) -> str | None:
    """Why a number is not plausible, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"not a number: {str(value)[:40]!r}"
    if not math.isfinite(value):
        return f"not finite: {value}"
    if not low <= value <= high:
        return f"{value:g} outside {low:g}..{high:g}"
    return None


def _plausible(reading: dict[str, Any], b: Bounds) -> list[str]:
    """Drop implausible rig values in place; return what was dropped and why."""
    invalid = []
    limits = {"hashrate_ths": (0.0, b.max_hashrate_ths),
              "expected_hashrate_ths": (0.0, b.max_hashrate_ths),
              "power_w": (0.0, b.max_power_w), "temp_max_c": (b.temp_min_c, b.temp_max_c),
              "env_temp_c": (b.temp_min_c, b.temp_max_c)}
    for key, (low, high) in limits.items():
        why = _check(reading.get(key), low, high)
        if why:
            invalid.append(f"{key}: {why}")
            reading[key] = None
    if reading.get("power_w") is None:
        reading["power_source"] = None
    fans = reading.get("fans_rpm") or []
    kept = [f for f in fans if _check(f, 0, b.max_fan_rpm) is None]
    invalid += [f"fans_rpm: {_check(f, 0, b.max_fan_rpm)}" for f in fans if f not in kept]
    if fans:
        reading["fans_rpm"] = kept
    for board in reading.get("boards") or []:
        for key, (low, high) in (("hashrate_ths", (0.0, b.max_hashrate_ths)),
                                 ("chip_temp_c", (b.temp_min_c, b.temp_max_c)),
                                 ("board_temp_c", (b.temp_min_c, b.temp_max_c))):
            why = _check(board.get(key), low, high) if isinstance(board, dict) else None
            if why:
                invalid.append(f"boards.{board.get('board')}.{key}: {why}")
                board[key] = None
    return invalid


def _drop(doc: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Remove the value at loc (a list item, or a key made null); False if it cannot go."""
    parent: Any = doc
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        del parent[last]
        return True
    if isinstance(parent, dict) and last in parent and parent[last] is not None:
        parent[last] = None
        return True
    return False


def _contract(doc: dict[str, Any], model: type[BaseModel]) -> list[str] | None:
    """Drop the fields the contract refuses; the reasons, or None if it cannot be mended."""
    invalid: list[str] = []
    for _ in range(MAX_PASSES):
        try:
            model.model_validate(doc)
            return invalid
        except ValidationError as exc:
            errors = exc.errors()
        # drop list items from the back, so earlier indexes stay right
        for err in sorted(errors, key=lambda e: tuple(str(p) for p in e["loc"]), reverse=True):
            loc = tuple(err["loc"])
            if not loc or loc[0] in REQUIRED or not _drop(doc, loc):
                return None
            invalid.append(f"{'.'.join(str(p) for p in loc)}: {err['msg']}"[:256])
    return None


def _untyped(reading: RigDoc | PduDoc) -> dict[str, Any]:
    """The reading as the mender sees it: keys named by the contract's validation errors."""
    return cast(dict[str, Any], reading)


REQUIRED = {"schema", "kind", "ts_ms", "site", "rig", "pdu", "collector", "online"}


def sanitise_rig(rig: RigDoc) -> int:
    """Check one rig reading in place (bounds of its model, then the contract); return the
    number of fields dropped. A reading that cannot be mended becomes offline."""
    reading = _untyped(rig)
    invalid = _plausible(reading, bounds(reading.get("model")))
    mended = _contract(reading, RigReading)
    if mended is None:
        return _unmendable(reading, invalid)
    invalid += mended
    return _flag(reading, "rig", invalid)


def sanitise_pdu(pdu: PduDoc) -> int:
    """Check one PDU/meter reading in place against the contract; return fields dropped."""
    reading = _untyped(pdu)
    mended = _contract(reading, PduReading)
    if mended is None:
        return _unmendable(reading, [])
    return _flag(reading, "pdu", mended)


def _flag(reading: dict[str, Any], kind: str, invalid: list[str]) -> int:
    if not invalid:
        return 0
    reading["invalid"] = invalid[:32]
    device = str(reading.get(kind))
    for item in invalid:
        key = (device, item.split(":")[0])
        if key not in _warned and len(_warned) < 100_000:
            _warned.add(key)
            log.warning("%s %s: %s dropped (reading kept)", kind, device, item)
    return len(invalid)


def _unmendable(reading: dict[str, Any], invalid: list[str]) -> int:
    """Keep only what identifies the device and say it is offline with the reason."""
    kind = reading.get("kind")
    names = ("schema", "kind", "ts_ms", "site", "rig", "pdu", "collector", "rack", "slot",
             "customer", "model")
    keep: dict[str, Any] = {k: reading.get(k) for k in names if k in reading}
    log.warning("%s %s: reading does not fit the contract; published as offline", kind,
                reading.get("rig") or reading.get("pdu"))
    reading.clear()
    reading.update(keep)
    reading.update({"online": False, "error": "collector: reading failed the contract",
                    "invalid": invalid[:32]})
    return len(invalid) + 1
