"""Every exception hashwatt raises on purpose, rooted in one place.

    HashwattError                  anything hashwatt raises on purpose; its text is one line
    ├── ConfigError                the configuration (file, key, what is wrong; `problems`)
    ├── UsageError                 the command line or its surroundings (cli.CliError,
    │                              discover.DiscoverError, customers' StatementError)
    ├── SourceError                a device we poll gave no usable answer
    │   ├── RigError               a rig (collector.rigs.base.FastPathError, ReplyTooLarge)
    │   ├── PduError               a PDU (collector.pdu.source.PduError, pdu.snmp.SnmpError)
    │   ├── MeterError             a power meter (collector.meters.source.MeterError)
    │   └── NoAnswer               nothing answered at all (identification found no miner):
    │       │                      a connect probe can tell a hung device from a dead one
    │       └── PollTimeout        no reply within the deadline (also a TimeoutError)
    ├── MessageError               a message that breaks the MQTT contract or its transport
    │                              (exporters.decode.Rejected, exporters.intake.ProtocolError,
    │                              exporters.intake.Refused)
    ├── SinkError                  a store did not take or give data
    │   ├── exporters.sinks.WriteRejected / WriteUnavailable, lineproto.NonFinite
    │   └── influxql.InfluxQLError
    └── ServiceError               a local service (mosquitto, influxd, the simulated farm)
                                   could not be found or started (services.ServiceError,
                                   sim.farm.FarmError)

The classes that existed before this root keep their names and their old standard bases
(`RuntimeError`, `ValueError`, `ConnectionError` ...), so every existing `except` still
catches them; new code catches the branch it can handle. Where a class is defined is named
above; this module defines only the root and the branches.
"""

from __future__ import annotations


class HashwattError(Exception):
    """The root of every exception hashwatt raises on purpose."""


class ConfigError(HashwattError):
    """A configuration problem; each line of `problems` names file, key and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UsageError(HashwattError):
    """A mistake on the command line or in what it names: one line for the user."""


class SourceError(HashwattError):
    """A device we poll (rig, PDU, meter) gave no usable answer; the text says why."""


class RigError(SourceError):
    """A rig's reply could not be used."""


class PduError(SourceError):
    """A PDU could not be read."""


class MeterError(SourceError):
    """A power meter could not be read."""


class NoAnswer(SourceError):
    """Nothing answered at all, so a connect probe can tell hung from dead
    (collector.diagnose); the text is the reading's published error."""


class PollTimeout(NoAnswer, TimeoutError):
    """No reply within the poll deadline; the text is the reading's published error."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"no reply within {deadline_s:g} s")
        self.deadline_s = deadline_s


class MessageError(HashwattError):
    """A message that breaks the MQTT contract, or a broker we cannot follow."""


class SinkError(HashwattError):
    """A store (InfluxDB, VictoriaMetrics ...) did not take or give data."""


class ServiceError(HashwattError, RuntimeError):
    """A local service could not be found or started."""
