"""Validate an MQTT message against the contract and turn it into line-protocol points."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from pydantic import ValidationError

from exporters.lineproto import DROPPED, FieldValue, Point, tag_text
from hashwatt.contract import (
    SEGMENT,
    CollectorStatus,
    CycleReport,
    Delivered,
    PduReading,
    RigReading,
)
from hashwatt.errors import MessageError
from hashwatt.names import Field as F
from hashwatt.names import Measurement
from hashwatt.names import Tag as T
from hashwatt.tariff import Tariff

_SEGMENT = re.compile(SEGMENT)
_SPOOL = re.compile(r"^[0-9a-f]{1,32}$")


class Rejected(MessageError):
    """A message that is set aside; the text says why."""


class Receipt(NamedTuple):
    """Which collector's spooled message this was: (site, collector, spool epoch, seq)."""

    site: str
    collector: str
    spool: str
    seq: int


class Decoded(NamedTuple):
    """A message's points and, for a spooled message, its receipt."""

    points: list[Point]
    receipt: Receipt | None


# derived figures outside these are left out of the point (and counted): a rig drawing
# 1e308 W at 1e-300 TH/s would otherwise be stored as an efficiency of 1e308 J/TH or inf
EFFICIENCY_MAX_J_TH = 100_000.0  # the least efficient SHA-256 rig ever sold: ~10,000
LOAD_MAX_PCT = 1000.0  # ten times a breaker's rating: a wrong reading, not a load


@dataclass(frozen=True, kw_only=True)
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


def decode(topic: str, payload: bytes, *, prefix: str, limits: Limits,
           now: float | None = None, tariff: Tariff | None = None) -> list[Point]:
    """Points for one message, or Rejected with the reason it is set aside."""
    return decode_message(topic, payload, prefix=prefix, limits=limits, now=now,
                          tariff=tariff).points


def decode_message(topic: str, payload: bytes, *, prefix: str, limits: Limits,
                   now: float | None = None, tariff: Tariff | None = None) -> Decoded:
    """Points and receipt for one message, or Rejected with the reason it is set aside."""
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
            return Decoded(rig_points(reading, tariff), _receipt(reading, reading.collector))
        if parts[3] == "pdu" and len(parts) == 5:
            pdu = PduReading.model_validate_json(payload)
            _same(pdu.site, parts[2], "site")
            _same(pdu.pdu, parts[4], "pdu")
            _check_time(pdu.ts_ms, limits, now)
            return Decoded(pdu_points(pdu, tariff), _receipt(pdu, pdu.collector))
        if parts[3] == "collector" and len(parts) == 6 and parts[5] == "cycle":
            cycle = CycleReport.model_validate_json(payload)
            _same(cycle.site, parts[2], "site")
            _same(cycle.collector, parts[4], "collector")
            _check_time(cycle.ts_ms, limits, now)
            return Decoded(cycle_points(cycle), _receipt(cycle, cycle.collector))
        if parts[3] == "collector" and len(parts) == 6 and parts[5] == "status":
            status = CollectorStatus.model_validate_json(payload)
            _same(status.site, parts[2], "site")
            _same(status.collector, parts[4], "collector")
            return Decoded(collector_points(status, now), None)
    except ValidationError as exc:
        raise Rejected(_reason(exc)) from None
    raise Rejected(f"topic {topic!r} is not part of the contract")


def _receipt(message: Delivered, collector: str) -> Receipt | None:
    site = getattr(message, "site", "")
    if message.spool is None or message.seq is None:
        return None
    return Receipt(site, collector, message.spool, message.seq)


def receipt_of(topic: str, payload: bytes, prefix: str) -> Receipt | None:
    """The receipt of a message that is set aside, if it has one (it is settled as well:
    sending it again cannot help)."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != prefix or len(payload) > 1024 * 1024:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    collector, spool, seq = doc.get("collector"), doc.get("spool"), doc.get("seq")
    if (isinstance(collector, str) and _SEGMENT.match(collector) and isinstance(spool, str)
            and _SPOOL.match(spool) and type(seq) is int and seq > 0):
        return Receipt(parts[2], collector, spool, seq)
    return None


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
    return {F.RATE_PER_KWH: rate, F.COST_PER_H: cost}


def rig_points(r: RigReading, tariff: Tariff | None = None) -> list[Point]:
    """The `rig` point and one `rig_board` point per board, with derived figures."""
    tags = {T.SITE: r.site, T.RIG: r.rig, T.RACK: r.rack, T.CUSTOMER: r.customer,
            T.MAKE: r.make, T.MODEL: r.model, T.FIRMWARE: r.firmware,
            T.SLOT: "" if r.slot is None else str(r.slot)}
    if r.maintenance:  # a tag, so alert rules and availability leave the rig out with a WHERE
        tags[T.MAINTENANCE] = "yes"
    # the model already gives each value its one type (floats as float, counts as int)
    fields: dict[str, FieldValue] = {F.ONLINE: r.online, F.UP: int(r.online)}
    for key, value in zip(RIG_FIELDS, (
            r.error, r.hashrate_ths, r.expected_hashrate_ths, r.power_w, r.power_source,
            _efficiency(r), r.temp_max_c, r.temp_limit_c, _margin(r),
            r.nominal_efficiency_j_th, r.env_temp_c,
            min(r.fans_rpm) if r.fans_rpm else None, _boards_ok(r), r.boards_total, r.uptime_s,
            "; ".join(r.errors)[:1024] if r.errors else None,
            "; ".join(r.invalid)[:1024] if r.invalid else None,
            len(r.invalid) if r.invalid else None,
            *_operator_fields(r)), strict=True):
        if value is not None:
            fields[key] = value
    if tariff is not None:
        fields.update(_float_fields(pricing(r.ts_ms, r.power_w, tariff)))
    text = tag_text(tags)
    return [Point(Measurement.RIG, tags, fields, r.ts_ms, text), *_board_points(r, tags, text)]


def _boards_ok(r: RigReading) -> int | None:
    """Boards hashing; None (unknown) when no board's hashrate is known: a 0 would fire
    "hashboard lost" for a rig whose boards were simply not read."""
    known = [b.hashrate_ths for b in r.boards if b.hashrate_ths is not None]
    return sum(1 for h in known if h > 0) if r.online and known else None


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


# a rig point's optional fields, in the order rig_points gives their values
RIG_FIELDS = (F.ERROR, F.HASHRATE_THS, F.EXPECTED_HASHRATE_THS, F.POWER_W, F.POWER_SOURCE,
              F.EFFICIENCY_J_TH, F.TEMP_MAX_C, F.TEMP_LIMIT_C, F.TEMP_MARGIN_C,
              F.NOMINAL_EFFICIENCY_J_TH, F.ENV_TEMP_C, F.FAN_MIN_RPM, F.BOARDS_OK,
              F.BOARDS_TOTAL, F.UPTIME_S, F.ERRORS, F.INVALID, F.INVALID_FIELDS,
              F.IDENTIFIED_MODEL, F.MODEL_MISMATCH, F.WIRING_SUSPECT, F.WIRING_REASON,
              F.POOL_URL, F.POOL_USER, F.POOL_UNEXPECTED, F.POOL_REASON)


def _operator_fields(r: RigReading) -> tuple[FieldValue | None, ...]:
    """Inventory sanity and pool integrity (the last eight of RIG_FIELDS); flags as 0/1
    integers so alert rules reduce them."""
    return (r.identified_model or None, _flag(r.model_mismatch), _flag(r.wiring_suspect),
            r.wiring_reason, r.pool_url, r.pool_user, _flag(r.pool_unexpected), r.pool_reason)


def _efficiency(r: RigReading) -> float | None:
    if r.power_w is None or not r.hashrate_ths:
        return None
    value = r.power_w / r.hashrate_ths
    if not 0 <= value <= EFFICIENCY_MAX_J_TH:  # inf and NaN fail the comparison too
        DROPPED.count += 1
        return None
    return round(value, 3)



def _bounded(value: float, upper: float) -> float | None:
    if not 0 <= value <= upper:
        DROPPED.count += 1
        return None
    return round(value, 3)


def _margin(r: RigReading) -> float | None:
    return (round(r.temp_limit_c - r.temp_max_c, 3)
            if r.temp_limit_c is not None and r.temp_max_c is not None else None)


def _board_points(r: RigReading, tags: dict[str, str], text: str) -> list[Point]:
    points = []
    for b in r.boards:
        fields: dict[str, FieldValue] = {}
        if b.hashrate_ths is not None:
            fields[F.HASHRATE_THS] = b.hashrate_ths
        if b.chip_temp_c is not None:
            fields[F.CHIP_TEMP_C] = b.chip_temp_c
        if b.board_temp_c is not None:
            fields[F.BOARD_TEMP_C] = b.board_temp_c
        if b.chips is not None:
            fields[F.CHIPS] = b.chips
        if fields:
            board = str(b.board)
            # "board" sorts before every rig tag key, so the set stays sorted
            points.append(Point(Measurement.RIG_BOARD, {**tags, T.BOARD: board}, fields,
                                r.ts_ms, f",{T.BOARD}={board}{text}"))
    return points


def pdu_points(r: PduReading, tariff: Tariff | None = None) -> list[Point]:
    """The `pdu` point, one `pdu_phase` per phase and one `pdu_outlet` per outlet."""
    tags = {T.SITE: r.site, T.PDU: r.pdu, T.VENDOR: r.vendor, T.MODEL: r.model, T.RACK: r.rack}
    fields = _float_fields({F.ONLINE: r.online, F.ERROR: r.error, F.POWER_W: r.power_w,
                            F.ENERGY_KWH: r.energy_kwh, F.VOLTAGE_V: r.voltage_v,
                            F.CURRENT_A: r.current_a,
                            F.ENERGY_RESET: r.energy_reset if r.online else None,
                            F.INVALID: "; ".join(r.invalid)[:1024] if r.invalid else None,
                            F.INVALID_FIELDS: len(r.invalid) if r.invalid else None})
    points = [Point(Measurement.PDU, tags, fields, r.ts_ms)]
    for ph in r.phases:
        load = (_bounded(ph.current_a / ph.rating_a * 100, LOAD_MAX_PCT)
                if ph.current_a is not None and ph.rating_a else None)
        phase_fields = _float_fields({
            F.CURRENT_A: ph.current_a, F.VOLTAGE_V: ph.voltage_v, F.POWER_W: ph.power_w,
            F.RATING_A: ph.rating_a, F.LOAD_PCT: load})
        if phase_fields:
            phase_tags = {**tags, T.PHASE: ph.phase, **({T.UNIT: ph.unit} if ph.unit else {})}
            points.append(Point(Measurement.PDU_PHASE, phase_tags, phase_fields, r.ts_ms))
    for o in r.outlets:
        outlet_fields = _float_fields({
            F.POWER_W: o.power_w, F.CURRENT_A: o.current_a, F.VOLTAGE_V: o.voltage_v,
            F.ENERGY_KWH: o.energy_kwh, F.ENERGY_RESET: o.energy_reset,
            **pricing(r.ts_ms, o.power_w, tariff)})
        outlet_tags = {**tags, T.OUTLET: str(o.outlet), T.OUTLET_NAME: o.name,
                       T.RIG: o.rig or "", T.CUSTOMER: o.customer,
                       **({T.UNIT: o.unit} if o.unit else {})}
        points.append(Point(Measurement.PDU_OUTLET, outlet_tags, outlet_fields, r.ts_ms))
    return points


INT_FIELDS = {F.UP, F.FAN_MIN_RPM, F.BOARDS_OK, F.BOARDS_TOTAL, F.UPTIME_S, F.CHIPS,
              F.RIGS_TOTAL, F.RIGS_OK, F.RIGS_FAILED, F.RIGS_TIMEOUT, F.IDENTIFIED,
              F.PUBLISHED, F.OVERRUNS, F.PDUS_TOTAL, F.PDUS_OK, F.SPOOL_DEPTH,
              F.SPOOL_DROPPED, F.SPOOL_REFUSED, F.SPOOL_MEMORY, F.SPOOL_DISK_ERRORS,
              F.UNSTORED, F.RESENT, F.FIELDS_DROPPED, F.INVALID_FIELDS}


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
    """The `collector` online/offline point. A status's stats are for people: the cycle's
    figures come from its spooled cycle message, so a reconnect makes no phantom cycle."""
    ts_ms = s.ts_ms or int(now * 1000)
    tags = {T.SITE: s.site, T.COLLECTOR: s.collector}
    return [Point(Measurement.COLLECTOR, tags, {F.ONLINE: s.state == "online"}, ts_ms)]


def cycle_points(c: CycleReport) -> list[Point]:
    """The `collector` self-monitoring point of one poll cycle, at the cycle's end."""
    fields: dict[str, FieldValue | None] = {F.ONLINE: True, **c.stats.model_dump()}
    tags = {T.SITE: c.site, T.COLLECTOR: c.collector}
    return [Point(Measurement.COLLECTOR, tags, _float_fields(fields), c.ts_ms)]
