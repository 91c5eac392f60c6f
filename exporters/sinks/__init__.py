"""Where points go: sink plugins, one module each, registered by type in SINKS.

A sink is built from `[influxdb]` (its `api` names the type) for the site's raw readings, its
energy ledger and each hosted customer. It takes points (exporters.lineproto.Point) and
encodes them itself: `encode(points)` one message at a time (one item per point),
`send(encoded)` a batch, `close()`, and from `base.BaseSink` `write(points)` (both) and
`without(point, item, fields)` (the customers' copies); failing with `WriteRejected` (do
not retry) or `WriteUnavailable` (retry), both `SinkError`s. Adding a sink is this folder
only: one module here with its config model (a `hashwatt.config.SinkConfig` subclass: its
keys and checks), its class, `site`, `customer` and `reader` (None when InfluxQL cannot read
it back) in a `PLUGIN`, and one entry in SINKS. The CLI hands CONFIGS to `load_config`, so a
bad table is one line (file:line, key, what is wrong) at start-up.

The ledger, the reports and the statements read back with InfluxQL: only the types in
LEDGER_READABLE can hold the ledger (today every registered one: "v1" and "v2").
"""

from __future__ import annotations

from exporters.sinks import influx_v1, influx_v2
from exporters.sinks.base import (
    BaseSink,
    LineProtocolSink,
    Sink,
    SinkPlugin,
    WriteRejected,
    WriteUnavailable,
    checked,
    influx_config,
)
from exporters.sinks.influx_v1 import InfluxV1Config, InfluxV1Sink
from exporters.sinks.influx_v2 import InfluxV2Config, InfluxV2Sink
from hashwatt.config import Config, ConfigError, CustomerConfig, SinkConfig
from hashwatt.influxql import InfluxQL

SINKS: dict[str, SinkPlugin] = {"v1": influx_v1.PLUGIN, "v2": influx_v2.PLUGIN}
# each type's config model, for load_config(sinks=CONFIGS)
CONFIGS = {name: plugin.config for name, plugin in SINKS.items()}
LEDGER_READABLE = frozenset(name for name, plugin in SINKS.items() if plugin.reader)

__all__ = ["CONFIGS", "LEDGER_READABLE", "SINKS", "BaseSink", "InfluxV1Config", "InfluxV1Sink",
           "InfluxV2Config", "InfluxV2Sink", "LineProtocolSink", "Sink", "SinkPlugin",
           "WriteRejected", "WriteUnavailable", "customer_sink", "make_sink", "query_client",
           "settings"]


def _plugin(cfg: Config) -> tuple[str, SinkPlugin]:
    api = influx_config(cfg).api
    if api not in SINKS:
        raise ConfigError([f"{cfg.source}: influxdb.api: unknown sink type {api!r} "
                           f"(known: {', '.join(sorted(SINKS))})"])
    return api, SINKS[api]


def settings(cfg: Config) -> SinkConfig:
    """The [influxdb] table checked by its sink's own model (ConfigError, one line per
    problem, when it is wrong)."""
    return checked(cfg, _plugin(cfg)[1].config)


def make_sink(cfg: Config, ledger: bool = False) -> Sink:
    """The sink the config asks for; with ledger=True the energy ledger's retention policy,
    database (v1) or bucket (v2)."""
    return _plugin(cfg)[1].site(cfg, ledger)


def customer_sink(cfg: Config, customer: CustomerConfig, ledger: bool = False) -> Sink:
    """A writer into a hosted customer's own database or bucket (its ledger with ledger=True),
    with the site's writer credentials."""
    return _plugin(cfg)[1].customer(cfg, customer, ledger)


def query_client(cfg: Config, database: str | None = None) -> InfluxQL:
    """InfluxQL over /query on what the configured sink wrote (user and password on 1.x, the
    token on 2.x through the DBRP mapping)."""
    api, plugin = _plugin(cfg)
    if plugin.reader is None:
        raise ValueError(f"{cfg.source}: [influxdb] api = {api!r} cannot be read back with "
                         f"InfluxQL: the ledger needs one of {', '.join(sorted(LEDGER_READABLE))}")
    return plugin.reader(cfg, database)
