"""What the two InfluxDB sinks share: the keys of their `[influxdb]` table.

One table serves both APIs, as it always has: a file may switch `api` between "v1" and "v2"
without deleting the other API's keys. Each API's model (influx_v1.InfluxV1Config,
influx_v2.InfluxV2Config) says which of them it needs. Secrets (`password`, `token`) are
`{ env = "NAME" }` / `{ file = "path" }` tables, resolved at start-up and never logged.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, model_validator

from exporters.sinks.base import influx_config
from hashwatt.config import Config, ConfigError, SecretSpec, SinkConfig


class InfluxSettings(SinkConfig):
    """The [influxdb] keys of both InfluxDB APIs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str | None = None
    username: str | None = None
    password: SecretSpec | None = None
    org: str | None = None
    bucket: str | None = None
    token: SecretSpec | None = None
    # the energy ledger: a retention policy kept forever (v1), or a database of its own (set
    # ledger_database: InfluxDB 3 Core has no retention policies, and access is granted per
    # database on 1.x, so only then can a login read operations without the invoices), or
    # its own bucket (v2)
    ledger_retention_policy: str = "ledger"
    ledger_database: str | None = None
    ledger_bucket: str = "hashwatt-ledger"

    NEEDS: ClassVar[tuple[str, ...]] = ()  # the keys this API cannot do without

    @model_validator(mode="after")
    def _api_fields(self) -> InfluxSettings:
        missing = [k for k in type(self).NEEDS if getattr(self, k) in (None, "")]
        if missing:
            raise ValueError(f"api = \"{self.api}\" needs {', '.join(missing)}")
        return self


def influx_settings(cfg: Config) -> InfluxSettings:
    """The [influxdb] table as the InfluxDB sinks read it (ConfigError when the configured
    sink is not an InfluxDB one)."""
    from exporters.sinks import settings

    section = settings(cfg)
    if not isinstance(section, InfluxSettings):
        raise ConfigError([f"{cfg.source}: influxdb.api: {influx_config(cfg).api!r} is not an "
                           f"InfluxDB sink"])
    return section
