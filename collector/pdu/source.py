"""The SNMP PDU source: one poll = one PDU reading (device, phases, outlets)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from collector.pdu.profile import SYS_OBJECT_ID, Column, Profile, all_profiles, detect
from collector.pdu.snmp import SnmpClient, SnmpCredentials, SnmpError, Value
from hashwatt.config import Config, PduConfig, RigConfig
from hashwatt.contract import SCHEMA_VERSION

log = logging.getLogger(__name__)
DECIMALS = 6


class PduError(Exception):
    """A PDU could not be read; the text says why."""


def _row_key(index: str, column: Column) -> str | None:
    parts = index.split(".")
    if column.index_suffix is not None:
        suffix = column.index_suffix.split(".")
        if parts[-len(suffix):] != suffix:
            return None
        parts = parts[:-len(suffix)]
    return ".".join(parts[column.index_drop:]) or "0"


def _convert(raw: Value, column: Column, unsupported: list[int]) -> Value:
    if raw is None:
        return None
    if column.kind == "text":
        return str(raw)
    if not isinstance(raw, int) or raw in unsupported:
        return None
    return round(raw * column.scale, DECIMALS)


def table(walked: dict[str, dict[str, Value]], group: Any,
          unsupported: list[int]) -> dict[str, dict[str, Value]]:
    """Rows of one group: {row key: {metric: value}}; unsupported values left out."""
    rows: dict[str, dict[str, Value]] = {}
    for metric, column in group.__dict__.items():
        if not isinstance(column, Column):
            continue
        for index, raw in walked.get(column.oid, {}).items():
            key = _row_key(index, column)
            value = _convert(raw, column, unsupported)
            if key is not None and value is not None:
                rows.setdefault(key, {})[metric] = value
    return rows


def _sort_key(key: str) -> tuple[int, ...]:
    return tuple(int(p) for p in key.split(".") if p.isdigit())


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
    energy: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.profiles:
            self.profiles = all_profiles(self.cfg.pdu_profiles_dir)
        self.outlets = {(r.pdu, r.outlet): r for r in self.cfg.rigs if r.pdu}

    def client(self, pdu: PduConfig, profile: Profile | None) -> SnmpClient:
        """An SNMP client with the PDU's settings, else the profile's."""
        return SnmpClient(
            pdu.address, pdu.port, credentials(pdu, self.cfg.secret),
            timeout_s=pdu.timeout_s or (profile.timeout_s if profile else 2.0),
            retries=pdu.retries if pdu.retries is not None else (
                profile.retries if profile else 1),
            max_repetitions=pdu.max_repetitions or (profile.max_repetitions if profile else 25))

    async def profile_for(self, pdu: PduConfig) -> Profile:
        """The configured profile, else the one sysObjectID selects (asked once)."""
        if pdu.id in self.chosen:
            return self.chosen[pdu.id]
        if pdu.profile is not None:
            if pdu.profile not in self.profiles:
                raise PduError(f"unknown profile {pdu.profile!r}; known: "
                               f"{', '.join(sorted(self.profiles))}")
            profile = self.profiles[pdu.profile]
        else:
            sys_oid = (await self.client(pdu, None).get(SYS_OBJECT_ID)).get(SYS_OBJECT_ID)
            found = detect(str(sys_oid), self.profiles)
            if found is None:
                raise PduError(f"no profile matches sysObjectID {sys_oid}; set `profile`")
            profile = found
        self.chosen[pdu.id] = profile
        return profile

    async def poll(self, pdu: PduConfig, ts_ms: int) -> dict[str, Any]:
        """Read one PDU; errors give an offline reading with the reason."""
        base = {"schema": SCHEMA_VERSION, "kind": "pdu", "ts_ms": ts_ms,
                "site": self.cfg.site.name, "pdu": pdu.id, "collector": self.cfg.collector.id,
                "rack": pdu.rack}
        try:
            profile = await self.profile_for(pdu)
            walked = await self.client(pdu, profile).walk_columns(
                [c.oid for c in profile.columns()])
        except (SnmpError, PduError) as exc:
            return {**base, "online": False, "error": str(exc)[:500]}
        return {**base, **self.reading(pdu, profile, walked)}

    def reading(self, pdu: PduConfig, profile: Profile,
                walked: dict[str, dict[str, Value]]) -> dict[str, Any]:
        """The contract's PDU fields from walked columns."""
        device_rows = table(walked, profile.device, profile.unsupported)
        device = device_rows[min(device_rows, key=_sort_key)] if device_rows else {}
        phases = table(walked, profile.phase, profile.unsupported)
        for fixed in profile.fixed_phases:
            rows = table(walked, fixed, profile.unsupported)
            if rows:
                phases[fixed.phase] = rows[min(rows, key=_sort_key)]
        outlets = table(walked, profile.outlet, profile.unsupported)
        out: dict[str, Any] = {
            "online": True, "error": None, "vendor": profile.vendor, "profile": profile.name,
            "model": str(device.get("model", "")),
            **{k: v for k, v in device.items() if k != "model"},
            "phases": [{"phase": key, **row} for key, row in
                       sorted(phases.items(), key=lambda kv: (_sort_key(kv[0]), kv[0]))],
            "outlets": [self._outlet(pdu, key, row) for key, row in
                        sorted(outlets.items(), key=lambda kv: _sort_key(kv[0]))],
        }
        out["energy_reset"] = self._reset(pdu.id, "device", out.get("energy_kwh"))
        return out

    def _outlet(self, pdu: PduConfig, key: str, row: dict[str, Value]) -> dict[str, Any]:
        number = _sort_key(key)[-1]
        rig: RigConfig | None = self.outlets.get((pdu.id, number))
        outlet: dict[str, Any] = {"outlet": number, **row}
        outlet["name"] = str(row.get("name", ""))
        outlet["energy_reset"] = self._reset(pdu.id, f"outlet{number}", row.get("energy_kwh"))
        if rig is not None:
            outlet.update({"rig": rig.id, "customer": rig.customer, "rack": rig.rack})
        return outlet

    def _reset(self, pdu_id: str, scope: str, energy: Value) -> bool:
        """A counter that went backwards was reset: flag it, never report negative energy."""
        if not isinstance(energy, float | int):
            return False
        previous = self.energy.get((pdu_id, scope))
        self.energy[(pdu_id, scope)] = float(energy)
        return previous is not None and energy < previous
