"""InfluxDB through the v2 write API (influxdb-client; InfluxDB 1.8+, 2.x, 3.x), with
`[influxdb] api = "v2"`: `url`, `org`, `bucket`, `token`, `timeout_s`; the ledger in
`ledger_bucket`; read back with InfluxQL through the buckets' DBRP mappings."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

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


class InfluxV2Config(InfluxSettings):
    """[influxdb] with api = "v2": org, bucket and token."""

    api: Literal["v2"] = "v2"
    NEEDS: ClassVar[tuple[str, ...]] = ("org", "bucket", "token")


class InfluxV2Sink(LineProtocolSink):
    """The v2 write API through influxdb-client (InfluxDB 1.8+, 2.x, 3.x)."""

    def __init__(self, url: str, *, org: str, bucket: str, token: str,
                 timeout_s: float = 10.0) -> None:
        from influxdb_client import InfluxDBClient, WritePrecision
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.client = InfluxDBClient(url=url, token=token, org=org,
                                     timeout=int(timeout_s * 1000))
        self.api = self.client.write_api(write_options=SYNCHRONOUS)
        self.bucket, self.org = bucket, org
        self.precision: Any = WritePrecision.MS

    def post(self, body: bytes) -> None:
        """Write one body of line protocol; raise by the kind of failure."""
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self.api.write(bucket=self.bucket, org=self.org, record=body,
                           write_precision=self.precision)
        except ApiException as exc:
            raise_for(int(exc.status or 0), str(exc.body or exc.reason))
        except (HTTPError, OSError) as exc:
            raise WriteUnavailable(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def v2_settings(cfg: Config) -> InfluxV2Config:
    """The [influxdb] table, checked as the v2 API's."""
    return checked(cfg, InfluxV2Config)


def _sink(cfg: Config, bucket: str) -> InfluxV2Sink:
    influx = v2_settings(cfg)
    assert influx.org is not None
    return InfluxV2Sink(influx.url, org=influx.org, bucket=bucket,
                        token=cfg.secret(influx.token) or "", timeout_s=influx.timeout_s)


def site(cfg: Config, ledger: bool) -> InfluxV2Sink:
    """The site's raw readings, or with ledger=True its energy ledger's bucket."""
    influx = v2_settings(cfg)
    assert influx.org and influx.bucket
    return _sink(cfg, influx.ledger_bucket if ledger else influx.bucket)


def customer(cfg: Config, customer: CustomerConfig, ledger: bool) -> InfluxV2Sink:
    """A customer's bucket (`<bucket>-ledger` with ledger=True), written with the site's
    token."""
    return _sink(cfg, f"{customer.database}-ledger" if ledger else customer.database)


def reader(cfg: Config, database: str | None) -> InfluxQL:
    """InfluxQL over /query with the token, through the bucket's DBRP mapping."""
    influx = v2_settings(cfg)
    assert influx.bucket is not None
    return InfluxQL(influx.url, database or influx.bucket, token=cfg.secret(influx.token))


PLUGIN = SinkPlugin(config=InfluxV2Config, site=site, customer=customer, reader=reader)
