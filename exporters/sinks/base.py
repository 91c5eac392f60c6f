"""What every sink shares: the protocol, the two ways a write fails, and a plugin's shape.

A sink either accepts a whole body, raises `WriteRejected` when the database refuses the
data itself (retrying cannot help), or `WriteUnavailable` when it is down or overloaded; both
are `SinkError`s (hashwatt/errors.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hashwatt.config import Config, CustomerConfig, InfluxConfig
from hashwatt.errors import SinkError
from hashwatt.influxql import InfluxQL


class WriteRejected(SinkError):
    """The database refused the data (HTTP 4xx): set it aside, do not retry."""


class WriteUnavailable(SinkError):
    """The database could not take the write now: retry later."""


class Sink(Protocol):
    """A destination of line protocol with millisecond timestamps."""

    def write(self, body: bytes) -> None:
        """Write one body of line protocol."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def influx_config(cfg: Config) -> InfluxConfig:
    """The config's [influxdb] section; a sink cannot be built without one."""
    if cfg.influxdb is None:
        raise ValueError(f"{cfg.source}: [influxdb] section is required")
    return cfg.influxdb


def raise_for(status: int, text: str) -> None:
    """Nothing for a stored write; WriteRejected or WriteUnavailable by the HTTP status."""
    if status in (200, 204):
        return
    if 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
        raise WriteRejected(f"HTTP {status}: {text[:300]}")
    raise WriteUnavailable(f"HTTP {status}: {text[:300]}")


@dataclass(frozen=True, kw_only=True)
class SinkPlugin:
    """One sink type: how it is built from the config for the site and for a customer, and
    how the ledger reads back what it wrote (None: it cannot, so it cannot hold the ledger)."""

    site: Callable[[Config, bool], Sink]  # (cfg, ledger)
    customer: Callable[[Config, CustomerConfig, bool], Sink]  # (cfg, customer, ledger)
    reader: Callable[[Config, str | None], InfluxQL] | None  # (cfg, database)
