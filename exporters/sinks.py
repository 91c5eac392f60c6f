"""Where points go: InfluxDB through the v1 `/write` API or the v2 API (influxdb-client).

A sink either accepts a whole body, raises `WriteRejected` when the database refuses the
data itself (retrying cannot help), or `WriteUnavailable` when it is down or overloaded.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from hashwatt.config import Config
from hashwatt.errors import SinkError


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


def _raise_for(status: int, text: str) -> None:
    if status in (200, 204):
        return
    if 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
        raise WriteRejected(f"HTTP {status}: {text[:300]}")
    raise WriteUnavailable(f"HTTP {status}: {text[:300]}")


class InfluxV1Sink:
    """POST /write?db=...&precision=ms (InfluxDB 1.x, 2.x compatibility API, 3.x)."""

    def __init__(self, url: str, database: str, *, username: str | None = None,
                 password: str | None = None, timeout_s: float = 10.0,
                 retention_policy: str | None = None) -> None:
        auth = (username, password or "") if username else None
        self.client = httpx.Client(base_url=url, auth=auth, timeout=timeout_s)
        self.params = {"db": database, "precision": "ms"}
        if retention_policy:
            self.params["rp"] = retention_policy

    def write(self, body: bytes) -> None:
        """Write one body; 204 means every point was stored."""
        try:
            resp = self.client.post("/write", params=self.params, content=body)
        except httpx.HTTPError as exc:
            raise WriteUnavailable(f"{type(exc).__name__}: {exc}") from None
        _raise_for(resp.status_code, resp.text)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


class InfluxV2Sink:
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

    def write(self, body: bytes) -> None:
        """Write one body; raise by the kind of failure."""
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self.api.write(bucket=self.bucket, org=self.org, record=body,
                           write_precision=self.precision)
        except ApiException as exc:
            _raise_for(int(exc.status or 0), str(exc.body or exc.reason))
        except (HTTPError, OSError) as exc:
            raise WriteUnavailable(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def make_sink(cfg: Config, ledger: bool = False) -> Sink:
    """The sink the config asks for; with ledger=True the energy ledger's retention policy
    (v1) or bucket (v2)."""
    influx = cfg.influxdb
    if influx is None:
        raise ValueError(f"{cfg.source}: [influxdb] section is required")
    if influx.api == "v1":
        assert influx.database is not None
        if ledger and influx.ledger_database:  # a database of its own (InfluxDB 3 Core)
            return InfluxV1Sink(influx.url, influx.ledger_database, username=influx.username,
                                password=cfg.secret(influx.password), timeout_s=influx.timeout_s)
        return InfluxV1Sink(influx.url, influx.database, username=influx.username,
                            password=cfg.secret(influx.password), timeout_s=influx.timeout_s,
                            retention_policy=influx.ledger_retention_policy if ledger else None)
    assert influx.org and influx.bucket
    bucket = influx.ledger_bucket if ledger else influx.bucket
    return InfluxV2Sink(influx.url, org=influx.org, bucket=bucket,
                        token=cfg.secret(influx.token) or "", timeout_s=influx.timeout_s)
