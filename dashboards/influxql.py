"""A typed InfluxQL query for grafana-foundation-sdk, which ships no InfluxDB query type."""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

DATASOURCE_UID = "hashwatt-influxdb"
DATASOURCE = dashboard.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
# the energy ledger: a database of its own (DBRP-mapped to the ledger bucket on 2.x), behind a
# data source only the logged-in Grafana has (README, "Who sees what")
LEDGER_UID = "hashwatt-ledger"
LEDGER = dashboard.DataSourceRef(type_val="influxdb", uid=LEDGER_UID)
ResultFormat = typing.Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB data source stores it."""

    def __init__(self, query: str = "", ref_id: str = "A", alias: str | None = None,
                 result_format: ResultFormat = "time_series",
                 datasource: dashboard.DataSourceRef = DATASOURCE) -> None:
        self.query = query
        self.datasource = datasource
        self.ref_id = ref_id
        self.alias = alias
        self.result_format = result_format

    def to_json(self) -> dict[str, object]:
        """The target JSON (rawQuery: the text is the query, no visual builder)."""
        out: dict[str, object] = {
            "refId": self.ref_id, "datasource": self.datasource.to_json(), "rawQuery": True,
            "query": self.query, "resultFormat": self.result_format}
        if self.alias:
            out["alias"] = self.alias
        return out


class Target(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of an InfluxQL target."""

    def __init__(self, query: str, datasource: dashboard.DataSourceRef = DATASOURCE) -> None:
        self._internal = InfluxQLQuery(query, datasource=datasource)

    def build(self) -> InfluxQLQuery:
        """The query object."""
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        """Name the query (A, B, ...)."""
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> typing.Self:
        """Series alias, e.g. `$tag_rig`."""
        self._internal.alias = alias
        return self

    def table(self) -> typing.Self:
        """Return a table instead of time series."""
        self._internal.result_format = "table"
        return self
