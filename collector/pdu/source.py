"""The SNMP PDU source: one poll = one PDU reading (device, phases, outlets)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from collector.pdu.profile import (
    SYS_OBJECT_ID,
    Column,
    Group,
    Profile,
    all_profiles,
    detect,
    group_columns,
    not_pdus,
    vendor_of,
)
from collector.pdu.snmp import SnmpClient, SnmpCredentials, SnmpError, Value
from hashwatt.config import Config, PduConfig, RigConfig
from hashwatt.contract import OutletDoc, PduBody, PduDoc, PhaseDoc, pdu_doc
from hashwatt.errors import PduError
from hashwatt.payloads import DeviceValues, OutletValues, PhaseValues

log = logging.getLogger(__name__)
DECIMALS = 6
SUMMED = ("power_w", "energy_kwh")  # device metrics that add up over units and input cords
Walked = dict[str, dict[str, Value]]
RowKey = tuple[str, str]  # (unit, key)
TRUTH_FALSE = 2  # SNMPv2-TC TruthValue false(2)
NEUTRAL = "N"
T = TypeVar("T")


def _row_key(index: str, column: Column) -> RowKey | None:
    parts = index.split(".")
    if column.index_suffix is not None:
        suffix = column.index_suffix.split(".")
        if parts[-len(suffix):] != suffix:
            return None
        parts = parts[:-len(suffix)]
    unit = parts.pop(0) if column.unit and len(parts) > 1 else ""
    return unit, ".".join(parts[column.index_drop:]) or "0"


def _convert(raw: Value, column: Column, profile: Profile, digits: Value) -> Value:
    """The value in the unit of the key's name; None when unknown or marked unavailable."""
    if raw is None:
        return None
    if column.kind == "text":
        return str(raw)
    if not isinstance(raw, int) or raw in profile.unsupported:
        return None
    if profile.negative_unavailable and raw < 0:
        return None
    if column.digits is not None:
        if not isinstance(digits, int) or not 0 <= digits <= 9:
            return None  # a value without its decimal digits is not known
        return round(raw * column.scale / 10 ** digits, DECIMALS)
    return round(raw * column.scale, DECIMALS)


def column_rows(walked: Walked, column: Column, profile: Profile) -> dict[RowKey, Value]:
    """One column's rows: {(unit, key): value}, None where the device marks it unavailable."""
    digits = walked.get(column.digits, {}) if column.digits else {}
    kinds = walked.get(column.key_column, {}) if column.key_column else {}
    available = walked.get(column.available, {}) if column.available else {}
    out: dict[RowKey, Value] = {}
    for index, raw in walked.get(column.oid, {}).items():
        key = _row_key(index, column)
        if key is not None and column.key_column:
            named = column.key_values.get(str(kinds.get(index)))
            key = (key[0], named) if named else None
        if key is not None:
            unavailable = available.get(index) == TRUTH_FALSE
            out[key] = None if unavailable else _convert(raw, column, profile,
                                                         digits.get(index))
    return out


def table(walked: Walked, group: Group, profile: Profile) -> dict[RowKey, dict[str, Value]]:
    """Rows of one group: {(unit, key): {metric: value}}; unavailable values left out."""
    rows: dict[RowKey, dict[str, Value]] = {}
    for metric, column in group.__dict__.items():
        if isinstance(column, Column):
            for key, value in column_rows(walked, column, profile).items():
                if value is not None:
                    rows.setdefault(key, {})[metric] = value
    return rows


def _sort_key(key: str) -> tuple[int, ...]:
    return tuple(int(p) for p in key.split(".") if p.isdigit())


def _row_order(key: RowKey) -> tuple[tuple[int, ...], bool, tuple[int, ...], str]:
    # numbered rows first, named ones (a neutral "N") after them
    return _sort_key(key[0]), not key[1][:1].isdigit(), _sort_key(key[1]), key[1]


def device_value(walked: Walked, column: Column, metric: str, profile: Profile) -> Value:
    """One device metric: power and energy summed over every row (units, input cords), the
    others from the first row; unknown when any summed row is unavailable."""
    rows = column_rows(walked, column, profile)
    values = [rows[k] for k in sorted(rows, key=_row_order)]
    if metric in SUMMED and column.kind == "number":
        result: Value = (None if not values or any(v is None for v in values)
                         else round(sum(float(v) for v in values if v is not None), DECIMALS))
    else:
        result = next((v for v in values if v not in (None, "")), None)
    if result is None and column.fallback is not None:
        return device_value(walked, column.fallback, metric, profile)
    return result


def _named(kind: type[T], row: dict[str, Value]) -> T:
    """A row whose keys are the profile's metric names, typed as what they are: the names
    of DeviceColumns, PhaseColumns and OutletColumns (tests/test_contract_payloads.py checks
    them against DeviceValues, PhaseValues and OutletValues)."""
    return cast(T, row)


def _phase(key: str, unit: str, row: dict[str, Value]) -> PhaseDoc:
    """One phase of the reading; unit only on a daisy chain."""
    phase: PhaseDoc = {"phase": key}
    if unit:
        phase["unit"] = unit
    phase.update(_named(PhaseValues, row))
    return phase


def outlet_numbers(outlets: Iterable[RowKey]) -> dict[RowKey, int]:
    """Each outlet's number on its unit. A key of one index component is the device's own
    number. Keys of several (Sentry3/Sentry4 index outlets per infeed or cord: AA1, AB1) are
    numbered on through the unit in index order: an infeed whose numbers restart is shifted
    past the highest number before it (AA1-AA10 are 1-10, AB1 is 11); numbers that already
    run on are kept."""
    groups: dict[tuple[str, tuple[int, ...]], list[tuple[str, int]]] = {}
    out: dict[RowKey, int] = {}
    for unit, key in sorted(outlets, key=_row_order):
        parts = _sort_key(key) or (0,)
        if len(parts) == 1:
            out[(unit, key)] = parts[0]
        else:
            groups.setdefault((unit, parts[:-1]), []).append((key, parts[-1]))
    ends: dict[str, int] = {}
    for (unit, _prefix), rows in groups.items():
        end = ends.get(unit, 0)
        shift = end if min(n for _, n in rows) <= end else 0
        for key, number in rows:
            out[(unit, key)] = shift + number
        ends[unit] = max(end, *(shift + n for _, n in rows))
    return out


def name_neutral(phases: dict[RowKey, dict[str, Value]],
                 without: Sequence[str]) -> dict[RowKey, dict[str, Value]]:
    """Rows with a current but none of `without`, on a unit whose other rows have them, are
    the unit's neutral: keyed "N". A unit that measures none of them anywhere keeps its rows."""
    measured = {unit for (unit, _), row in phases.items() if any(m in row for m in without)}
    out: dict[RowKey, dict[str, Value]] = {}
    for (unit, key), row in phases.items():
        neutral = (unit in measured and "current_a" in row
                   and not any(m in row for m in without))
        out[(unit, NEUTRAL) if neutral else (unit, key)] = row
    return out


class NoReadings(PduError):
    """A PDU that answers its profile's tables without a single reading."""

    def __init__(self, message: str, head: str) -> None:
        super().__init__(message)
        self.head = head  # the message without its guess, for when the device is known


def _measured(device: dict[str, Value], phases: dict[RowKey, dict[str, Value]],
              outlets: dict[RowKey, dict[str, Value]]) -> bool:
    """True when anything was measured: a name or model alone is no reading."""
    rows = [device, *phases.values(), *outlets.values()]
    return any(k not in ("model", "name") for row in rows for k in row)


async def identify(client: SnmpClient, sys_oid: str | None) -> str | None:
    """What a device no profile reads is (collector/pdu/not_pdus.toml), or None."""
    for known in not_pdus():
        if known.prefix and sys_oid and (sys_oid == known.prefix
                                         or sys_oid.startswith(known.prefix + ".")):
            return known.what
    for known in not_pdus():
        if known.probe and await client.has_rows(known.probe):
            return known.what
    return None


def credentials(pdu: PduConfig, secret: Any) -> SnmpCredentials:
    """SNMP credentials of a PDU from its config."""
    return SnmpCredentials(
        version=pdu.snmp_version, community=secret(pdu.community) or "public",
        user=pdu.v3_user or "", auth_key=secret(pdu.v3_auth_key),
        priv_key=secret(pdu.v3_priv_key), auth_protocol=pdu.v3_auth_protocol,
        priv_protocol=pdu.v3_priv_protocol, context=pdu.v3_context)


@dataclass
class PduSource:
    """Polls PDUs with their profiles; remembers energy counters to flag resets."""

    cfg: Config
    profiles: dict[str, Profile] = field(default_factory=dict)
    chosen: dict[str, Profile] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    energy: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.profiles:
            self.profiles = all_profiles(self.cfg.pdu_profiles_dir)
        # (pdu, unit, outlet): unit "" is the master unit (a rig without pdu_unit)
        self.outlets = {(r.pdu, r.pdu_unit or "", r.outlet): r for r in self.cfg.rigs if r.pdu}
        self.unit_warned: set[str] = set()

    def client(self, pdu: PduConfig, profile: Profile | None) -> SnmpClient:
        """An SNMP client with the PDU's settings, else the profile's."""
        return SnmpClient(
            pdu.address, pdu.port, credentials(pdu, self.cfg.secret),
            timeout_s=pdu.timeout_s or (profile.timeout_s if profile else 2.0),
            retries=pdu.retries if pdu.retries is not None else (
                profile.retries if profile else 1),
            max_repetitions=pdu.max_repetitions or (profile.max_repetitions if profile else 25))

    async def profile_for(self, pdu: PduConfig) -> Profile:
        """The configured profile, else the one sysObjectID (or a probe of tables) selects;
        chosen once per PDU and logged with the reason."""
        if pdu.id in self.chosen:
            return self.chosen[pdu.id]
        if pdu.profile is not None:
            if pdu.profile not in self.profiles:
                raise PduError(f"unknown profile {pdu.profile!r}; known: "
                               f"{', '.join(sorted(self.profiles))}")
            profile, reason = self.profiles[pdu.profile], "configured with `profile`"
        else:
            profile, reason = await self._detect(pdu)
        self.chosen[pdu.id], self.reasons[pdu.id] = profile, reason
        log.info("pdu %s: profile %s (%s)", pdu.id, profile.name, reason)
        return profile

    async def _detect(self, pdu: PduConfig) -> tuple[Profile, str]:
        client = self.client(pdu, None)
        answer = (await client.get(SYS_OBJECT_ID)).get(SYS_OBJECT_ID)
        # some agents answer the OID with a leading dot (recorded from net-snmp's output)
        sys_oid = str(answer).removeprefix(".") if answer is not None else "(none answered)"
        found = detect(sys_oid, self.profiles)
        if found is not None:
            return found[0], f"sysObjectID {sys_oid} is under {found[1]}"
        for profile in sorted(self.profiles.values(), key=lambda p: p.name):
            if profile.probe and await client.has_rows(profile.probe):
                return profile, (f"sysObjectID {sys_oid} matches no profile; its "
                                 f"{profile.table or profile.mib} table {profile.probe} answered")
        what = await identify(client, sys_oid)
        if what is not None:
            raise PduError(f"sysObjectID {sys_oid}: {what}; no profile's table answered")
        vendor = vendor_of(sys_oid)
        raise PduError(f"no profile matches sysObjectID {sys_oid}"
                       f"{f' ({vendor})' if vendor else ''} and no profile's table answered; "
                       "hashwatt has no profile for it: set `profile`, or add one in "
                       "pdu_profiles_dir")

    async def poll(self, pdu: PduConfig, ts_ms: int) -> PduDoc:
        """Read one PDU; errors give an offline reading with the reason."""
        doc = pdu_doc(ts_ms=ts_ms, site=self.cfg.site.name, pdu=pdu.id,
                      collector=self.cfg.collector.id, rack=pdu.rack, online=False)
        try:
            profile = await self.profile_for(pdu)
            client = self.client(pdu, profile)
            walked = await client.walk_columns(profile.oids())
            try:
                doc.update(self.reading(pdu, profile, walked))
            except NoReadings as exc:  # say what the device is, when it is a known other
                what = await identify(client, None)
                raise PduError(f"{exc.head}: {what}" if what else str(exc)) from exc
        except (SnmpError, PduError) as exc:
            doc["error"] = str(exc)[:500]
        return doc

    def reading(self, pdu: PduConfig, profile: Profile, walked: Walked) -> PduBody:
        """The contract's PDU fields from walked columns; a PDU that answers without any of
        the profile's tables is an error, never an empty success."""
        device = {metric: device_value(walked, column, metric, profile)
                  for metric, column in profile.device.__dict__.items()
                  if isinstance(column, Column)}
        device = {k: v for k, v in device.items() if v is not None}
        phases = self._phases(walked, profile)
        outlets = table(walked, profile.outlet, profile)
        if not phases and not outlets and not set(device) - {"model"}:
            table_name = profile.table or profile.mib or profile.name
            raise NoReadings(profile.missing_table(), f"no {table_name} table")
        if not _measured(device, phases, outlets):
            message = (f"its {profile.table or profile.mib} tables answered but every value "
                       "is marked not available")
            raise NoReadings(message, message)
        units = ({unit for unit, _ in [*phases, *outlets]}
                 | self._device_units(walked, profile)) - {""}
        tagged = len(units) > 1  # a daisy chain: say which unit each row belongs to
        master = min(units, key=_sort_key) if units else ""
        numbers = outlet_numbers(outlets.keys())
        self._check_units(pdu, units | {master})
        out: PduBody = {
            "online": True, "error": None, "vendor": profile.vendor, "profile": profile.name,
            "model": str(device.get("model", "")),
            **_named(DeviceValues, {k: v for k, v in device.items() if k != "model"}),
            "phases": [_phase(key, unit if tagged else "", row)
                       for (unit, key), row in sorted(phases.items(),
                                                      key=lambda kv: _row_order(kv[0]))],
            "outlets": [self._outlet(pdu, numbers[(unit, key)], row, unit, tagged=tagged,
                                     master=unit == master)
                        for (unit, key), row in sorted(outlets.items(),
                                                       key=lambda kv: _row_order(kv[0]))],
        }
        # the device counter of a chain is a sum over its units: when the set of units changes
        # (a link unit drops out), the sum falls without any counter being reset
        scope = "device" + (f"@{','.join(sorted(units))}" if tagged else "")
        out["energy_reset"] = self._reset(pdu.id, scope, out.get("energy_kwh"))
        return out

    def _phases(self, walked: Walked, profile: Profile) -> dict[RowKey, dict[str, Value]]:
        phases = table(walked, profile.phase, profile)
        if not phases and profile.phase_fallback is not None:
            phases = table(walked, profile.phase_fallback, profile)
        if profile.neutral_without:
            phases = name_neutral(phases, profile.neutral_without)
        for fixed in profile.fixed_phases:
            rows = table(walked, fixed, profile)
            if rows:
                phases[("", fixed.phase)] = rows[min(rows, key=_row_order)]
        return phases

    @staticmethod
    def _device_units(walked: Walked, profile: Profile) -> set[str]:
        units: set[str] = set()
        for column in group_columns(profile.device):
            units |= {unit for unit, _ in column_rows(walked, column, profile)}
        return units

    def _outlet(self, pdu: PduConfig, number: int, row: dict[str, Value], unit: str, *,
                tagged: bool, master: bool) -> OutletDoc:
        shown = unit if tagged else ""
        outlet: OutletDoc = {"outlet": number}
        if shown:
            outlet["unit"] = shown
        outlet.update(_named(OutletValues, row))
        outlet["name"] = str(row.get("name", ""))
        scope = f"outlet{shown}.{number}" if shown else f"outlet{number}"
        outlet["energy_reset"] = self._reset(pdu.id, scope, row.get("energy_kwh"))
        # a rig names its outlet by PDU, unit (pdu_unit; none = the master unit) and number
        rig: RigConfig | None = self.outlets.get((pdu.id, unit, number)) if unit else None
        if rig is None and master:
            rig = self.outlets.get((pdu.id, "", number))
        if rig is not None:
            outlet.update({"rig": rig.id, "customer": rig.customer, "rack": rig.rack})
        return outlet

    def _check_units(self, pdu: PduConfig, units: set[str]) -> None:
        """One warning per rig whose pdu_unit the PDU does not have (its outlet power would
        silently never arrive)."""
        for (pdu_id, unit, _number), rig in self.outlets.items():
            if pdu_id == pdu.id and unit and unit not in units and rig.id not in self.unit_warned:
                self.unit_warned.add(rig.id)
                have = ", ".join(sorted(units - {""}, key=_sort_key)) or "none (not a chain)"
                log.warning("rig %s: pdu_unit %s: PDU %s has no unit %s (its units: %s); "
                            "the rig gets no outlet power", rig.id, unit, pdu.id, unit, have)

    def _reset(self, pdu_id: str, scope: str, energy: Value) -> bool:
        """A counter that went backwards was reset: flag it, never report negative energy."""
        if not isinstance(energy, float | int):
            return False
        previous = self.energy.get((pdu_id, scope))
        self.energy[(pdu_id, scope)] = float(energy)
        return previous is not None and energy < previous
