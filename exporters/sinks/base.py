"""What every sink shares: the protocol, the two ways a write fails, and a plugin's shape.

A sink takes points (exporters.lineproto.Point: measurement, tags, fields, a timestamp in
epoch milliseconds) and puts them into its store in its own wire form. It works in two steps
so that the bridge can set one message aside without losing its batch-mates: `encode` turns
one message's points into the sink's form, one item per point (raising for a point the form
cannot carry; nothing is written), `send` writes many encoded messages in one request;
`write(points)` is both at once. A send either stores everything, raises `WriteRejected`
when the store refuses the data itself (retrying cannot help), or `WriteUnavailable` when it
is down or overloaded; both are `SinkError`s (hashwatt/errors.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from exporters.lineproto import Point, line_without, lines
from hashwatt.config import Config, ConfigError, CustomerConfig, SinkConfig, sink_section
from hashwatt.errors import SinkError
from hashwatt.influxql import InfluxQL


class WriteRejected(SinkError):
    """The database refused the data (HTTP 4xx): set it aside, do not retry."""


class WriteUnavailable(SinkError):
    """The database could not take the write now: retry later."""


class Sink(Protocol):
    """A destination of points (subclass BaseSink to get `write` and `without`)."""

    def encode(self, points: Sequence[Point]) -> Sequence[Any]:
        """One message's points in the sink's own form, one item per point in order;
        raises (writing nothing) for a point the form cannot carry."""
        ...

    def send(self, encoded: Sequence[Sequence[Any]]) -> None:
        """Write encoded messages (from `encode`) in one go: all stored, or an error."""
        ...

    def write(self, points: Sequence[Point]) -> None:
        """Encode and send points."""
        ...

    def without(self, point: Point, item: Any, fields: frozenset[str]) -> Any | None:
        """The point's item without `fields`, given `item`, this sink type's encoding of
        the whole point (None when no other field is left); for the customers' copies."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class BaseSink:
    """What a sink inherits: `write` and `without` from its own `encode` and `send`."""

    def encode(self, points: Sequence[Point]) -> Sequence[Any]:
        """One message's points in the sink's own form, one item per point."""
        raise NotImplementedError

    def send(self, encoded: Sequence[Sequence[Any]]) -> None:
        """Write encoded messages in one go."""
        raise NotImplementedError

    def write(self, points: Sequence[Point]) -> None:
        """Encode and send points."""
        self.send([self.encode(points)])

    def without(self, point: Point, item: Any, fields: frozenset[str]) -> Any | None:
        """The point encoded again without `fields` (None when no other field is left)."""
        kept = {k: v for k, v in point.fields.items() if k not in fields}
        return self.encode([point._replace(fields=kept)])[0] if kept else None

    def close(self) -> None:
        """Release connections."""


class LineProtocolSink(BaseSink):
    """The encoding every line-protocol sink shares (InfluxDB v1, v2; InfluxDB 3 and
    VictoriaMetrics take the same): a point is a line, a batch one body with millisecond
    timestamps; a subclass only posts the body (`post`)."""

    def encode(self, points: Sequence[Point]) -> list[str]:
        """The message's lines, one per point (ValueError for a point with no field line
        protocol can carry; non-finite floats are left out and counted, see
        exporters.lineproto)."""
        return [p.line() for p in points]

    def send(self, encoded: Sequence[Sequence[str]]) -> None:
        """Write encoded messages as one body."""
        self.post(("\n".join([line for message in encoded for line in message]) + "\n")
                  .encode())

    def write(self, points: Sequence[Point]) -> None:
        """Encode and send points."""
        self.post(lines(points).encode())

    def without(self, point: Point, item: str, fields: frozenset[str]) -> str | None:
        """The point's line without `fields`, cut from its line (exporters.lineproto)."""
        return line_without(point, item, fields)

    def post(self, body: bytes) -> None:
        """Write a body of line protocol as it is (milliseconds)."""
        raise NotImplementedError


def influx_config(cfg: Config) -> SinkConfig:
    """The config's [influxdb] section; a sink cannot be built without one."""
    if cfg.influxdb is None:
        raise ValueError(f"{cfg.source}: [influxdb] section is required")
    return cfg.influxdb


ModelT = TypeVar("ModelT", bound=SinkConfig)


def checked(cfg: Config, model: type[ModelT]) -> ModelT:
    """The [influxdb] table as `model` reads it: checked at start-up when the config was
    loaded with the sinks' models (load_config(sinks=CONFIGS), as every command does), else
    here, with the same one-line problems (ConfigError)."""
    section = influx_config(cfg)
    if isinstance(section, model):
        return section
    found, problems = sink_section(str(cfg.source), section, {section.api: model})
    if not isinstance(found, model):
        raise ConfigError(problems)
    return found


def raise_for(status: int, text: str) -> None:
    """Nothing for a stored write; WriteRejected or WriteUnavailable by the HTTP status."""
    if status in (200, 204):
        return
    if 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
        raise WriteRejected(f"HTTP {status}: {text[:300]}")
    raise WriteUnavailable(f"HTTP {status}: {text[:300]}")


@dataclass(frozen=True, kw_only=True)
class SinkPlugin:
    """One sink type: its config model (the `[influxdb]` keys it reads, checked at start-up),
    how it is built from the config for the site and for a customer, and how the ledger
    reads back what it wrote (None: it cannot, so it cannot hold the ledger)."""

    config: type[SinkConfig]
    site: Callable[[Config, bool], Sink]  # (cfg, ledger)
    customer: Callable[[Config, CustomerConfig, bool], Sink]  # (cfg, customer, ledger)
    reader: Callable[[Config, str | None], InfluxQL] | None  # (cfg, database)
