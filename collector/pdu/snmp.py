"""A small SNMP client on pysnmp 7 (asyncio): GET and multi-column GETBULK walks.

One `SnmpEngine` for the whole process (starting one costs ~250 ms), no MIB lookups on the
hot path (`lookupMib=False`), and table columns walked side by side in one GETBULK stream
instead of one subtree walk per column.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any, Literal

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB256_AES,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto.rfc1902 import Integer, OctetString

from hashwatt.errors import PduError

AUTH_PROTOCOLS = {"MD5": USM_AUTH_HMAC96_MD5, "SHA": USM_AUTH_HMAC96_SHA,
                  "SHA224": USM_AUTH_HMAC128_SHA224, "SHA256": USM_AUTH_HMAC192_SHA256}
PRIV_PROTOCOLS = {"DES": USM_PRIV_CBC56_DES, "AES": USM_PRIV_CFB128_AES,
                  "AES256": USM_PRIV_CFB256_AES}
Value = int | float | str | None
V3_ERRORS = {
    "Wrong SNMP PDU digest": "SNMPv3 authentication failed for user {user!r}: wrong auth key "
                             "or auth protocol",
    "Ciphering services not available": "SNMPv3 decryption failed for user {user!r}: wrong "
                                        "privacy key or privacy protocol",
    "Unknown USM user": "SNMPv3 user {user!r} is unknown to the agent",
    "Unsupported security level": "SNMPv3 security level not accepted by the agent for "
                                  "user {user!r}",
}


class SnmpError(PduError):
    """The agent did not answer, refused the credentials, or answered with an error."""


@dataclass(frozen=True)
class SnmpCredentials:
    """v1/v2c community, or v3 user with authPriv keys."""

    version: Literal["1", "2c", "3"] = "2c"
    community: str = "public"
    user: str = ""
    auth_key: str | None = None
    priv_key: str | None = None
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"
    context: str = ""

    def auth_data(self) -> CommunityData | UsmUserData:
        """The pysnmp authentication object."""
        if self.version == "3":
            return UsmUserData(
                self.user, authKey=self.auth_key, privKey=self.priv_key,
                authProtocol=AUTH_PROTOCOLS[self.auth_protocol] if self.auth_key else None,
                privProtocol=PRIV_PROTOCOLS[self.priv_protocol] if self.priv_key else None)
        return CommunityData(self.community, mpModel=0 if self.version == "1" else 1)


_ENGINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SnmpEngine] = (
    weakref.WeakKeyDictionary())


def engine() -> SnmpEngine:
    """The SNMP engine of the running event loop (its transports are bound to the loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _ENGINES:
        _ENGINES[loop] = SnmpEngine()
    return _ENGINES[loop]


def plain(value: Any) -> Value:
    """A pysnmp value as a Python int or str (None for noSuchObject and friends)."""
    if isinstance(value, Integer) or value.__class__.__name__ in (
            "Integer32", "Unsigned32", "Gauge32", "Counter32", "Counter64", "TimeTicks"):
        return int(value)
    if isinstance(value, OctetString):
        return bytes(value).decode("utf-8", errors="replace").strip("\x00 ")
    if value.__class__.__name__ == "ObjectIdentifier":
        return str(value)
    return None


def _in(oid: str, column: str) -> bool:
    return oid.startswith(column + ".")


@dataclass
class SnmpClient:
    """GET and column walks against one agent."""

    host: str
    port: int
    credentials: SnmpCredentials
    timeout_s: float = 2.0
    retries: int = 1
    max_repetitions: int = 25

    async def _target(self) -> UdpTransportTarget:
        return await UdpTransportTarget.create((self.host, self.port), timeout=self.timeout_s,
                                               retries=self.retries)

    def _explain(self, indication: str) -> str:
        user = self.credentials.user
        for marker, meaning in V3_ERRORS.items():
            if marker in indication:
                return meaning.format(user=user)
        return indication

    def _context(self) -> ContextData:
        return ContextData(contextName=self.credentials.context)

    def _check(self, error_indication: Any, error_status: Any, error_index: Any) -> None:
        if error_indication:
            raise SnmpError(f"{self.host}:{self.port}: {self._explain(str(error_indication))}")
        if error_status:
            raise SnmpError(f"{self.host}:{self.port}: {error_status.prettyPrint()} at "
                            f"varbind {int(error_index)}")

    async def get(self, *oids: str) -> dict[str, Value]:
        """Scalar values by OID."""
        ei, es, ex, vbs = await get_cmd(
            engine(), self.credentials.auth_data(), await self._target(), self._context(),
            *(ObjectType(ObjectIdentity(o)) for o in oids), lookupMib=False)
        self._check(ei, es, ex)
        return {str(name): plain(value) for name, value in vbs}

    async def has_rows(self, column: str) -> bool:
        """True when the agent has at least one row under this column (a detection probe)."""
        target = await self._target()
        ei, es, ex, vbs = await next_cmd(engine(), self.credentials.auth_data(), target,
                                         self._context(), ObjectType(ObjectIdentity(column)),
                                         lookupMib=False)
        self._check(ei, es, ex)
        return any(_in(str(name), column) and _walk_value(value) is not None
                   for name, value in vbs)

    async def walk_columns(self, columns: list[str]) -> dict[str, dict[str, Value]]:
        """Every row of each column: {column: {index: value}}, the columns walked together."""
        out: dict[str, dict[str, Value]] = {c: {} for c in columns}
        cursor = {c: c for c in columns}
        target = await self._target()
        while cursor:
            live = list(cursor)
            rows = await self._next_rows(target, [cursor[c] for c in live])
            finished = set()
            for i, (name, value) in enumerate(rows):
                column = live[i % len(live)]
                if column in finished or not _in(name, column) or value is None:
                    finished.add(column)
                    continue
                out[column][name[len(column) + 1:]] = value
                cursor[column] = name
            for column in finished:
                cursor.pop(column, None)
        return out

    async def _next_rows(self, target: UdpTransportTarget,
                         oids: list[str]) -> list[tuple[str, Value]]:
        objs = [ObjectType(ObjectIdentity(o)) for o in oids]
        if self.credentials.version == "1":
            ei, es, ex, vbs = await next_cmd(engine(), self.credentials.auth_data(), target,
                                             self._context(), *objs, lookupMib=False)
        else:
            ei, es, ex, vbs = await bulk_cmd(engine(), self.credentials.auth_data(), target,
                                             self._context(), 0, self.max_repetitions, *objs,
                                             lookupMib=False)
        self._check(ei, es, ex)
        return [(str(name), _walk_value(value)) for name, value in vbs]


def _walk_value(value: Any) -> Value:
    """endOfMibView and noSuchInstance end a column's walk (None)."""
    if value.__class__.__name__ in ("EndOfMibView", "NoSuchObject", "NoSuchInstance", "Null"):
        return None
    return plain(value)
