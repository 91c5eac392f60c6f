"""Where the raw readings and the energy ledger live, and how to reach them with InfluxQL.

Raw readings are in `database` (v1) or `bucket` (v2, through its DBRP mapping). The ledger is
either a retention policy of the same database kept forever (`ledger_retention_policy`, 1.x
and 2.x), or a database of its own (`ledger_database`: InfluxDB 3 Core has no retention
policies), or a bucket of its own (v2 writes; read through the `<bucket>/<rp>` DBRP mapping).
Every query is sent for at most CHUNK_S of time: InfluxDB 3 Core refuses longer ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exporters import sinks
from exporters.sinks.influx_common import influx_settings
from hashwatt.config import Config
from hashwatt.influxql import InfluxQL
from hashwatt.names import Measurement, Tag

CHUNK_S = 72 * 3600  # InfluxDB 3 Core limits a query's time range to about 72 hours
MEASUREMENT = Measurement.ENERGY_QUARTER


def query_client(cfg: Config, database: str | None = None) -> InfluxQL:
    """InfluxQL over /query on what the configured sink wrote (exporters/sinks: only the
    types in LEDGER_READABLE can be read back)."""
    return sinks.query_client(cfg, database)


def ledger_client(cfg: Config, raw: InfluxQL | None = None) -> tuple[InfluxQL, str]:
    """A client for the ledger (raw's own when the ledger is a retention policy of the raw
    database) and the measurement's name as queries must give it."""
    influx = influx_settings(cfg) if cfg.influxdb is not None else None
    if influx is not None and influx.ledger_database:  # on 2.x: a DBRP mapping's name
        return query_client(cfg, influx.ledger_database), f'"{MEASUREMENT}"'
    rp = influx.ledger_retention_policy if influx is not None else "ledger"
    return raw or query_client(cfg), f'"{rp}"."{MEASUREMENT}"'


def chunks(start_s: int, end_s: int, size: int = CHUNK_S) -> Iterator[tuple[int, int]]:
    """[start, end) cut into pieces of at most size seconds."""
    for lo in range(start_s, end_s, size):
        yield lo, min(lo + size, end_s)


def window(start_s: int, end_s: int, site: str) -> str:
    """The WHERE clause of a site and a time range (never more than CHUNK_S)."""
    assert end_s - start_s <= CHUNK_S, "a query may span 72 hours at most"
    return (f"time >= {start_s * 1000}ms AND time < {end_s * 1000}ms AND "
            f"\"{Tag.SITE}\" = '{site}'")


Series = tuple[dict[str, str], list[dict[str, Any]]]


def series(db: InfluxQL, query: str) -> list[Series]:
    """Every series of the answer: its tags and its rows as dicts (time in epoch ms)."""
    out: list[Series] = []
    for result in db.execute(query):
        for s in result.get("series", []):
            rows = [dict(zip(s["columns"], v, strict=True)) for v in s["values"]]
            out.append((s.get("tags", {}), rows))
    return out
