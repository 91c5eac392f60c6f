"""Per-rig credentials: the web/RPC logins a fast path and pyasic's own clients use.

A rig's own keys beat the `[[credentials]]` group it names, which beats the first group
listing its model; whatever is still unset keeps the firmware's default (pyasic's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hashwatt.config import Config, CredentialsConfig, RigConfig


@dataclass(frozen=True)
class Credentials:
    """A rig's logins; None keeps the firmware default. Passwords never show in a repr (and
    so never in a log line)."""

    web_user: str | None = None
    web_password: str | None = None
    rpc_user: str | None = None      # Whatsminer API v3 account (`super`, `user1`, ...)
    rpc_password: str | None = None  # Whatsminer API v2/v3 password

    def __repr__(self) -> str:
        hidden = {k: "**********" if v is not None else None for k, v in
                  (("web_password", self.web_password), ("rpc_password", self.rpc_password))}
        return (f"Credentials(web_user={self.web_user!r}, rpc_user={self.rpc_user!r}, "
                f"web_password={hidden['web_password']!r}, "
                f"rpc_password={hidden['rpc_password']!r})")


DEFAULT = Credentials()
Lookup = Callable[[RigConfig, str], Credentials]


def _plain(secret: object) -> str | None:
    value = getattr(secret, "get_secret_value", None)
    return value() if callable(value) else None


def _merge(first: Credentials, then: CredentialsConfig | None) -> Credentials:
    if then is None:
        return first
    return Credentials(web_user=first.web_user or then.web_user,
                       web_password=first.web_password or _plain(then.web_password),
                       rpc_user=first.rpc_user or then.rpc_user,
                       rpc_password=first.rpc_password or _plain(then.rpc_password))


def credentials_lookup(cfg: Config) -> Lookup:
    """rig, model (the inventory's or pyasic's) -> that rig's credentials."""
    by_name = {g.name: g for g in cfg.credentials}
    by_model: dict[str, CredentialsConfig] = {}
    for group in cfg.credentials:
        for model in group.models:
            by_model.setdefault(model.casefold(), group)

    def lookup(rig: RigConfig, model: str) -> Credentials:
        own = Credentials(web_user=rig.web_user, web_password=_plain(rig.web_password),
                          rpc_user=rig.rpc_user, rpc_password=_plain(rig.rpc_password))
        named = by_name.get(rig.credentials) if rig.credentials else None
        group = by_model.get((rig.model or model or "").casefold())
        return _merge(_merge(own, named), group)

    return lookup
