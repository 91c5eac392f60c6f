"""pyasic's `MinerData` → the contract's rig reading (a RigDoc: a plain dict, ready for JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hashwatt.config import RigConfig
from hashwatt.contract import SCHEMA_VERSION, BoardDoc, RigDoc
from hashwatt.models import lookup
from hashwatt.power import PowerSource, choose_power

HASHRATE_DECIMALS = 6  # TH/s to 1 MH/s: finer than any firmware reports


@dataclass(frozen=True, kw_only=True)
class Origin:
    """Who polled which rig when: the tags and stamp every reading carries."""

    site: str
    collector: str
    rig: RigConfig
    ts_ms: int
    outlet_w: float | None = None  # the rig's PDU outlet power in this cycle, when mapped


def _ths(rate: Any) -> float | None:
    if rate is None:
        return None
    value = float(rate.into(rate.unit.TH).rate) if hasattr(rate, "into") else float(rate)
    return round(max(value, 0.0), HASHRATE_DECIMALS)


def _temp(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if -60 <= value <= 250 and value != 0 else None


def base_reading(origin: Origin, online: bool, error: str | None = None) -> RigDoc:
    """The fields every reading has, online or not."""
    rig = origin.rig
    reading: RigDoc = {"schema": SCHEMA_VERSION, "kind": "rig", "ts_ms": origin.ts_ms,
            "site": origin.site, "rig": rig.id, "collector": origin.collector,
            "rack": rig.rack, "slot": rig.slot, "customer": rig.customer,
            "model": rig.model or "",
            "online": online, "error": error}
    return reading


def offline_reading(origin: Origin, error: str, *, make: str = "", model: str = "") -> RigDoc:
    """A rig that did not answer: published as offline, never skipped."""
    reading = base_reading(origin, online=False, error=error)
    reading["make"] = make
    reading["model"] = origin.rig.model or model
    reading["identified_model"] = model  # what answered, when identification got that far
    if origin.outlet_w is not None:  # a silent rig may still draw power: that is worth seeing
        reading.update({"power_w": float(origin.outlet_w), "power_source": "pdu"})
    return reading


def _boards(data: Any) -> list[BoardDoc]:
    out: list[BoardDoc] = []
    for board in data.hashboards or []:
        out.append({"board": int(board.slot), "hashrate_ths": _ths(board.hashrate),
                    "chip_temp_c": _temp(board.chip_temp), "board_temp_c": _temp(board.temp),
                    "chips": board.chips, "expected_chips": board.expected_chips})
    return out


def _power(data: Any, model: str,
           outlet_w: float | None) -> tuple[float | None, PowerSource | None]:
    """Wall power from the PDU outlet beats the miner's figure (0 W from a hashing rig is
    unknown), which beats nominal (hashwatt.power, shared with the energy ledger). A rig known
    to hash nothing (idle, soft-off) does not draw its nominal power: without a measured
    figure its power stays unknown, never a made-up nominal (an idle Avalon Q draws ~146 W,
    not 1674)."""
    info = lookup(model)
    idle = _ths(data.hashrate) == 0
    return choose_power(outlet_w=outlet_w, miner_w=data.wattage,
                        nominal_w=info.nominal_w if info is not None and not idle else None)


def _hottest(data: Any, boards: list[BoardDoc]) -> float | None:
    """The hottest sensor: the firmware's own per-sensor maximum where the fast path read one
    (four sensors per Antminer chain), else the hottest board figure."""
    hottest = _temp(getattr(data, "temp_max", None))
    if hottest is not None:
        return hottest
    temps = [b.get("chip_temp_c") if b.get("chip_temp_c") is not None else b.get("board_temp_c")
             for b in boards]
    present = [t for t in temps if t is not None]
    return max(present) if present else None


def answered(data: Any) -> bool:
    """Whether the rig gave any figure at all (pyasic's get_data swallows every failure and
    returns empty data): a rig that answers is online, whatever it left out."""
    if any(getattr(data, name, None) is not None
           for name in ("hashrate", "expected_hashrate", "wattage", "uptime", "env_temp")):
        return True
    if any(f.speed is not None for f in data.fans or []):
        return True
    return any(b.hashrate is not None or b.chips or b.chip_temp or b.temp
               for b in data.hashboards or [])


def reading_from_miner(origin: Origin, data: Any) -> RigDoc:
    """Map one `MinerData` (or fast-path telemetry) to a reading. Unknown figures stay None;
    a rig that gave nothing at all did not answer."""
    model = origin.rig.model or str(data.model or "")
    if not answered(data):
        return offline_reading(origin, "miner returned no data", make=str(data.make or ""),
                               model=str(data.model or ""))
    hashrate = _ths(data.hashrate)
    boards = _boards(data)
    power_w, source = _power(data, model, origin.outlet_w)
    info = lookup(model)
    reading = base_reading(origin, online=True)
    reading.update({
        "make": str(data.make or ""), "model": model, "identified_model": str(data.model or ""),
        "firmware": str(data.firmware or ""), "hashrate_ths": hashrate,
        "expected_hashrate_ths": _ths(data.expected_hashrate),
        "power_w": power_w, "power_source": source, "temp_max_c": _hottest(data, boards),
        "temp_limit_c": info.temp_limit_c if info else None,
        "nominal_efficiency_j_th": round(info.nominal_w / info.nominal_ths, 3) if info else None,
        "env_temp_c": _temp(data.env_temp),
        "fans_rpm": [int(f.speed) for f in data.fans or [] if f.speed is not None],
        "boards": boards, "boards_total": data.expected_hashboards,
        "uptime_s": int(data.uptime) if data.uptime is not None else None,
        "errors": (None if data.errors is None  # the rig's error list could not be read
                   else [_error_text(e) for e in data.errors][:32]),
    })
    return reading


def _error_text(err: Any) -> str:
    for attr in ("error_message", "error_code"):
        value = getattr(err, attr, None)
        if value not in (None, ""):
            return str(value)[:256]
    return str(err)[:256]
