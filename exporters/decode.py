"""Validate an MQTT message against the contract and turn it into line-protocol points."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from pydantic import ValidationError

from exporters.lineproto import FieldValue, Point, tag_text
from hashwatt.contract import SEGMENT, CollectorStatus, PduReading, RigReading
from hashwatt.tariff import Tariff

_SEGMENT = re.compile(SEGMENT)


class Rejected(Exception):
    """A message that is set aside; the text says why."""


@dataclass(frozen=True)
class Limits:
    """What the decoder accepts."""

    max_payload_bytes: int = 256 * 1024
    max_clock_skew_s: float = 7 * 86400


@lru_cache(maxsize=65536)
def _topic_parts(topic: str, prefix: str) -> tuple[str, ...]:
    """The checked topic segments (a farm's topics repeat every poll: cached)."""
    parts = tuple(topic.split("/"))
    if len(parts) < 5 or parts[0] != prefix or parts[1] != "v1":
        raise Rejected(f"topic {topic!r} is not under {prefix}/v1/")
    for part in parts[2:]:
        if not _SEGMENT.match(part):
            raise Rejected(f"topic segment {part!r} is not a valid id")
    return parts


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"schema: {where}: {first['msg']}{more}"


def _check_time(ts_ms: int, limits: Limits, now: float) -> None:
    skew = ts_ms / 1000 - now
    if abs(skew) > limits.max_clock_skew_s:
        side = "future" if skew > 0 else "past"
        raise Rejected(f"timestamp {ts_ms} is {abs(skew):.0f} s in the {side}")


def decode(topic: str, payload: bytes, prefix: str, limits: Limits,
           now: float | None = None, tariff: Tariff | None = None) -> list[Point]:
    """Points for one message, or Rejected with the reason it is set aside."""
    if len(payload) > limits.max_payload_bytes:
        raise Rejected(f"payload of {len(payload)} bytes exceeds {limits.max_payload_bytes}")
    parts = _topic_parts(topic, prefix)
    now = time.time() if now is None else now
    try:
        if parts[3] == "rig" and len(parts) == 5:
            reading = RigReading.model_validate_json(payload)
            _same(reading.site, parts[2], "site")
            _same(reading.rig, parts[4], "rig")
            _check_time(reading.ts_ms, limits, now)
            return rig_points(reading, tariff)
        if parts[3] == "pdu" and len(parts) == 5:
            pdu = PduReading.model_validate_json(payload)
            _same(pdu.site, parts[2], "site")
            _same(pdu.pdu, parts[4], "pdu")
            _check_time(pdu.ts_ms, limits, now)
            return pdu_points(pdu, tariff)
        if parts[3] == "collector" and len(parts) == 6 and parts[5] == "status":
            status = CollectorStatus.model_validate_json(payload)
            _same(status.site, parts[2], "site")
            _same(status.collector, parts[4], "collector")
            return collector_points(status, now)
    except ValidationError as exc:
        raise Rejected(_reason(exc)) from None
    raise Rejected(f"topic {topic!r} is not part of the contract")


def _same(value: str, segment: str, name: str) -> None:
    if value != segment:
        raise Rejected(f"{name} {value!r} in the payload differs from {segment!r} in the topic")


def pricing(ts_ms: int, power_w: float | None,
            tariff: Tariff | None) -> dict[str, FieldValue | None]:
    """rate_per_kwh and cost_per_h at the reading's own time, so no dashboard needs a join."""
    rate = tariff.rate_at(ts_ms / 1000) if tariff is not None else None
    if rate is None:
        return {}
    cost = round(power_w / 1000 * rate, 6) if power_w is not None else None
    return {"rate_per_kwh": rate, "cost_per_h": cost}


def rig_points(r: RigReading, tariff: Tariff | None = None) -> list[Point]:
    """The `rig` point and one `rig_board` point per board, with derived figures."""
    tags = {"site": r.site, "rig": r.rig, "rack": r.rack, "customer": r.customer,
            "make": r.make, "model": r.model, "firmware": r.firmware,
            "slot": "" if r.slot is None else str(r.slot)}
    # the model already gives each value its one type (floats as float, counts as int)
    fields: dict[str, FieldValue] = {"online": r.online, "up": int(r.online)}
    for key, value in (
            ("error", r.error), ("hashrate_ths", r.hashrate_ths),
            ("expected_hashrate_ths", r.expected_hashrate_ths), ("power_w", r.power_w),
            ("power_source", r.power_source), ("efficiency_j_th", _efficiency(r)),
            ("temp_max_c", r.temp_max_c), ("temp_limit_c", r.temp_limit_c),
            ("temp_margin_c", _margin(r)),
            ("nominal_efficiency_j_th", r.nominal_efficiency_j_th),
            ("env_temp_c", r.env_temp_c),
            ("fan_min_rpm", min(r.fans_rpm) if r.fans_rpm else None),
            ("boards_ok", _boards_ok(r)),
            ("boards_total", r.boards_total), ("uptime_s", r.uptime_s),
            ("errors", "; ".join(r.errors)[:1024] if r.errors else None)):
        if value is not None:
            fields[key] = value
    if tariff is not None:
        fields.update(_float_fields(pricing(r.ts_ms, r.power_w, tariff)))
    text = tag_text(tags)
    return [Point("rig", tags, fields, r.ts_ms, text), *_board_points(r, tags, text)]


def _boards_ok(r: RigReading) -> int | None:
    """Boards hashing; None (unknown) when no board's hashrate is known: a 0 would fire
    "hashboard lost" for a rig whose boards were simply not read."""
    known = [b.hashrate_ths for b in r.boards if b.hashrate_ths is not None]
    return sum(1 for h in known if h > 0) if r.online and known else None


def _efficiency(r: RigReading) -> float | None:
    return (round(r.power_w / r.hashrate_ths, 3)
            if r.power_w is not None and r.hashrate_ths else None)


def _margin(r: RigReading) -> float | None:
    return (round(r.temp_limit_c - r.temp_max_c, 3)
            if r.temp_limit_c is not None and r.temp_max_c is not None else None)


def _board_points(r: RigReading, tags: dict[str, str], text: str) -> list[Point]:
    points = []
    for b in r.boards:
        fields: dict[str, FieldValue] = {}
        if b.hashrate_ths is not None:
            fields["hashrate_ths"] = b.hashrate_ths
        if b.chip_temp_c is not None:
            fields["chip_temp_c"] = b.chip_temp_c
        if b.board_temp_c is not None:
            fields["board_temp_c"] = b.board_temp_c
        if b.chips is not None:
            fields["chips"] = b.chips
        if fields:
            board = str(b.board)
            # "board" sorts before every rig tag key, so the set stays sorted
            points.append(Point("rig_board", {**tags, "board": board}, fields, r.ts_ms,
                                f",board={board}{text}"))
    return points


def pdu_points(r: PduReading, tariff: Tariff | None = None) -> list[Point]:
    """The `pdu` point, one `pdu_phase` per phase and one `pdu_outlet` per outlet."""
    tags = {"site": r.site, "pdu": r.pdu, "vendor": r.vendor, "model": r.model, "rack": r.rack}
    fields = _float_fields({"online": r.online, "error": r.error, "power_w": r.power_w,
                            "energy_kwh": r.energy_kwh, "voltage_v": r.voltage_v,
                            "current_a": r.current_a,
                            "energy_reset": r.energy_reset if r.online else None})
    points = [Point("pdu", tags, fields, r.ts_ms)]
    for ph in r.phases:
        load = (round(ph.current_a / ph.rating_a * 100, 3)
                if ph.current_a is not None and ph.rating_a else None)
        phase_fields = _float_fields({
            "current_a": ph.current_a, "voltage_v": ph.voltage_v, "power_w": ph.power_w,
            "rating_a": ph.rating_a, "load_pct": load})
        if phase_fields:
            phase_tags = {**tags, "phase": ph.phase, **({"unit": ph.unit} if ph.unit else {})}
            points.append(Point("pdu_phase", phase_tags, phase_fields, r.ts_ms))
    for o in r.outlets:
        outlet_fields = _float_fields({
            "power_w": o.power_w, "current_a": o.current_a, "voltage_v": o.voltage_v,
            "energy_kwh": o.energy_kwh, "energy_reset": o.energy_reset,
            **pricing(r.ts_ms, o.power_w, tariff)})
        outlet_tags = {**tags, "outlet": str(o.outlet), "outlet_name": o.name,
                       "rig": o.rig or "", "customer": o.customer,
                       **({"unit": o.unit} if o.unit else {})}
        points.append(Point("pdu_outlet", outlet_tags, outlet_fields, r.ts_ms))
    return points


INT_FIELDS = {"up", "fan_min_rpm", "boards_ok", "boards_total", "uptime_s", "chips", "rigs_total",
              "rigs_ok", "rigs_failed", "rigs_timeout", "identified", "published", "overruns",
              "pdus_total", "pdus_ok", "spool_depth", "spool_dropped", "spool_refused"}


def _float_fields(fields: Mapping[str, FieldValue | None]) -> dict[str, FieldValue]:
    """Drop missing values and give each field one type forever: InfluxDB refuses a float
    where it stored an int."""
    out: dict[str, FieldValue] = {}
    for key, value in fields.items():
        if value is None:
            continue
        kind = type(value)
        if kind is bool or kind is str:
            out[key] = value
        elif key in INT_FIELDS:
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


def collector_points(s: CollectorStatus, now: float) -> list[Point]:
    """The `collector` self-monitoring point."""
    ts_ms = s.ts_ms or int(now * 1000)
    fields: dict[str, FieldValue] = {"online": s.state == "online"}
    if s.stats is not None:
        fields.update(s.stats.model_dump())
    tags = {"site": s.site, "collector": s.collector}
    return [Point("collector", tags, _float_fields(fields), ts_ms)]
