"""InfluxDB through the v1 `/write` API (InfluxDB 1.x, 2.x compatibility API, 3.x), with
`[influxdb] api = "v1"`: `url`, `database`, `username`/`password`, `timeout_s`; the ledger in
`ledger_retention_policy` of the database or in `ledger_database` of its own."""

from __future__ import annotations

from typing import ClassVar, Literal

import httpx

from exporters.sinks.base import (
    LineProtocolSink,
    SinkPlugin,
    WriteUnavailable,
    checked,
    raise_for,
)
from exporters.sinks.influx_common import InfluxSettings
from hashwatt.config import Config, CustomerConfig
from hashwatt.influxql import InfluxQL

# a write that timed out is tried again with twice the time, up to this: a database that
# takes 10 s per write must not be asked again and again with a 10 s timeout (every try
# would time out: the bridge would stall). Retrying a write that did land is harmless: same
# series and timestamp overwrite.
MAX_TIMEOUT_S = 300.0


class InfluxV1Config(InfluxSettings):
    """[influxdb] with api = "v1": database (and username/password when auth is on)."""

    api: Literal["v1"] = "v1"
    NEEDS: ClassVar[tuple[str, ...]] = ("database",)


class InfluxV1Sink(LineProtocolSink):
    """POST /write?db=...&precision=ms (InfluxDB 1.x, 2.x compatibility API, 3.x)."""

    def __init__(self, url: str, database: str, *, username: str | None = None,
                 password: str | None = None, timeout_s: float = 10.0,
                 retention_policy: str | None = None) -> None:
        auth = (username, password or "") if username else None
        self.client = httpx.Client(base_url=url, auth=auth, timeout=timeout_s)
        self.timeout_s = timeout_s
        self.params = {"db": database, "precision": "ms"}
        if retention_policy:
            self.params["rp"] = retention_policy

    def post(self, body: bytes) -> None:
        """Write one body of line protocol; 204 means every point was stored."""
        try:
            resp = self.client.post("/write", params=self.params, content=body,
                                    timeout=self.timeout_s)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            waited = self.timeout_s
            self.timeout_s = min(waited * 2, max(MAX_TIMEOUT_S, waited))
            raise WriteUnavailable(f"no answer within {waited:.0f} s ({type(exc).__name__}); "
                                   f"the next try waits {self.timeout_s:.0f} s") from None
        except httpx.HTTPError as exc:
            raise WriteUnavailable(f"{type(exc).__name__}: {exc}") from None
        raise_for(resp.status_code, resp.text)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def v1_settings(cfg: Config) -> InfluxV1Config:
    """The [influxdb] table, checked as the v1 API's."""
    return checked(cfg, InfluxV1Config)


def _sink(cfg: Config, database: str, retention_policy: str | None = None) -> InfluxV1Sink:
    influx = v1_settings(cfg)
    return InfluxV1Sink(influx.url, database, username=influx.username,
                        password=cfg.secret(influx.password), timeout_s=influx.timeout_s,
                        retention_policy=retention_policy)


def site(cfg: Config, ledger: bool) -> InfluxV1Sink:
    """The site's raw readings, or with ledger=True its energy ledger."""
    influx = v1_settings(cfg)
    assert influx.database is not None
    if ledger and influx.ledger_database:  # a database of its own (InfluxDB 3 Core)
        return _sink(cfg, influx.ledger_database)
    return _sink(cfg, influx.database, influx.ledger_retention_policy if ledger else None)


def customer(cfg: Config, customer: CustomerConfig, ledger: bool) -> InfluxV1Sink:
    """A customer's database (its ledger retention policy with ledger=True), written with
    the site's writer credentials."""
    return _sink(cfg, customer.database,
                 v1_settings(cfg).ledger_retention_policy if ledger else None)


def reader(cfg: Config, database: str | None) -> InfluxQL:
    """InfluxQL over /query with user and password."""
    influx = v1_settings(cfg)
    assert influx.database is not None
    return InfluxQL(influx.url, database or influx.database, username=influx.username,
                    password=cfg.secret(influx.password))


PLUGIN = SinkPlugin(config=InfluxV1Config, site=site, customer=customer, reader=reader)
