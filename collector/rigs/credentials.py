"""Per-rig credentials: the web/RPC user and password a fast path logs in with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """A rig's logins; the passwords never show in a repr (and so never in a log line)."""

    web_user: str = "root"
    web_password: str = "root"
    rpc_user: str = "super"  # Whatsminer API v3 account (`super`, `user1`, ...)
    rpc_password: str | None = None

    def __repr__(self) -> str:
        return (f"Credentials(web_user={self.web_user!r}, web_password='**********', "
                f"rpc_user={self.rpc_user!r}, rpc_password='**********')")


DEFAULT = Credentials()
